//! The handshake: protocol headers and the SASL exchange, up to the first AMQP frame.
//!
//! [`Handshake`] is one state per phase (which bytes the peer must send next), in the order a
//! connection goes through them; the SASL machines live in the phase that uses them.

use super::*;

/// Where a connection is in its handshake: what it expects from the peer next.
pub(super) enum Handshake {
    /// Server: the peer's first protocol header; `sasl` is our SASL layer, if configured.
    Header { sasl: Option<Box<SaslServer>> },
    /// Client: we sent the SASL header and await the server's.
    SaslHeader(Box<SaslClient>),
    /// Client: the SASL exchange.
    SaslClient(Box<SaslClient>),
    /// Server: the SASL exchange.
    SaslServer(Box<SaslServer>),
    /// The peer's AMQP header. A client has sent its own already; a server answers the
    /// peer's.
    AmqpHeader,
    /// AMQP frames.
    Amqp,
    /// Finished: nothing more is read.
    Done,
}

impl Handshake {
    /// The first phase of a connection on `side` (a client writes its header at once).
    pub(super) fn new(side: Side, config: &ConnectionConfig) -> Handshake {
        match (side, &config.sasl) {
            (Side::Client, SaslMode::Client(cfg)) => {
                Handshake::SaslHeader(Box::new(SaslClient::new(
                    cfg.clone(),
                    config.transport_encrypted,
                    config.transport_identity.is_some(),
                    config.hostname.clone(),
                )))
            }
            (Side::Client, _) => Handshake::AmqpHeader,
            (Side::Server, SaslMode::Server(cfg)) => Handshake::Header {
                sasl: Some(Box::new(SaslServer::new(
                    cfg.clone(),
                    config.transport_identity.clone(),
                ))),
            },
            (Side::Server, _) => Handshake::Header { sasl: None },
        }
    }

    /// The protocol header a connection in this phase writes first (clients only).
    pub(super) fn first_header(&self) -> Option<ProtocolHeader> {
        match self {
            Handshake::SaslHeader(_) => Some(ProtocolHeader::SASL),
            Handshake::AmqpHeader => Some(ProtocolHeader::AMQP),
            _ => None,
        }
    }

    /// True once our AMQP header is written, so AMQP frames go straight out (before it they
    /// wait in `pending_amqp`: an `open` pipelined behind SASL).
    pub(super) fn amqp_header_sent(&self, side: Side) -> bool {
        match self {
            Handshake::Amqp => true,
            Handshake::AmqpHeader => side == Side::Client,
            _ => false,
        }
    }
}

impl Connection {
    /// Reads a protocol header in a phase that expects one.
    pub(super) fn read_header(&mut self) -> Result<bool, ConnectionError> {
        let h = match ProtocolHeader::parse(&self.input) {
            Ok(None) => return Ok(false),
            Ok(Some(h)) => h,
            Err(e) => {
                // Tell the peer what we speak, then give up.
                if self.side == Side::Server {
                    self.out.put_slice(&self.server_header().to_bytes());
                }
                return Err(ConnectionError::local(
                    ErrorKind::ProtocolHeader,
                    condition::NOT_ALLOWED,
                    e.to_string(),
                ));
            }
        };
        self.input.advance(ProtocolHeader::SIZE);
        let phase = std::mem::replace(&mut self.handshake, Handshake::Done);
        self.handshake = match (phase, h.id) {
            (Handshake::SaslHeader(c), ProtocolId::Sasl) => Handshake::SaslClient(c),
            (Handshake::AmqpHeader, ProtocolId::Amqp) if self.side == Side::Client => {
                Handshake::Amqp
            }
            (phase @ (Handshake::SaslHeader(_) | Handshake::AmqpHeader), _)
                if self.side == Side::Client =>
            {
                let want = match phase {
                    Handshake::SaslHeader(_) => "SASL",
                    _ => "AMQP",
                };
                return Err(ConnectionError::local(
                    ErrorKind::ProtocolHeader,
                    condition::NOT_ALLOWED,
                    format!("expected {want} header, peer sent {h}"),
                ));
            }
            (Handshake::Header { sasl: Some(server) }, ProtocolId::Sasl) => {
                self.out.put_slice(&ProtocolHeader::SASL.to_bytes());
                frame::encode_sasl_frame(&mut self.out, &server.mechanisms_frame());
                Handshake::SaslServer(server)
            }
            (Handshake::Header { sasl }, ProtocolId::Amqp)
                if sasl.is_none()
                    || matches!(&self.config.sasl, SaslMode::Server(s) if s.allow_skip_sasl) =>
            {
                if sasl.is_some() {
                    self.identity = Some("anonymous".into());
                }
                self.handshake = Handshake::Amqp;
                self.send_amqp_header();
                Handshake::Amqp
            }
            (Handshake::AmqpHeader, ProtocolId::Amqp) => {
                self.handshake = Handshake::Amqp;
                self.send_amqp_header();
                Handshake::Amqp
            }
            (phase, _) => {
                self.handshake = phase;
                let ours = self.server_header();
                self.out.put_slice(&ours.to_bytes());
                return Err(ConnectionError::local(
                    ErrorKind::ProtocolHeader,
                    condition::NOT_ALLOWED,
                    format!("peer sent {h} header; this server requires {ours}"),
                ));
            }
        };
        Ok(true)
    }

    /// The header a server answers a bad header with: SASL while it still requires SASL.
    fn server_header(&self) -> ProtocolHeader {
        match self.handshake {
            Handshake::Header { sasl: Some(_) } => ProtocolHeader::SASL,
            _ => ProtocolHeader::AMQP,
        }
    }

    /// Reads one SASL frame and steps the client or server machine with it.
    pub(super) fn read_sasl(&mut self) -> Result<bool, ConnectionError> {
        // Before any negotiation, frames are limited to MIN-MAX-FRAME-SIZE (2.4.1, 5.3.1),
        // unless a mechanism with larger tokens (GSSAPI) is in play: see `sasl_frame_limit`.
        let limit = match &self.handshake {
            Handshake::SaslClient(c) => c.sasl_frame_limit(),
            Handshake::SaslServer(s) => s.sasl_frame_limit(),
            _ => MIN_MAX_FRAME_SIZE,
        };
        if let Some(&[a, b, c, d]) = self.input.get(..4) {
            let size = u32::from_be_bytes([a, b, c, d]);
            if size > limit {
                return Err(framing(format!(
                    "SASL frame of {size} bytes exceeds {limit}, the limit before negotiation"
                )));
            }
        }
        let f = match self.decoder.decode(&mut self.input) {
            Ok(Decoded::Frame(f)) => f,
            Ok(Decoded::NeedMore(_)) => return Ok(false),
            Err(e) => return Err(frame_error(e)),
        };
        let sf = match f.body {
            FrameBody::Sasl(s) => s,
            FrameBody::Empty => return Ok(true),
            FrameBody::Amqp { performative, .. } => {
                return Err(framing(format!(
                    "{} frame during SASL negotiation",
                    performative.name()
                )))
            }
        };
        match &mut self.handshake {
            Handshake::SaslClient(client) => match client.handle(sf) {
                Ok(ClientStep::Send(f)) => frame::encode_sasl_frame(&mut self.out, &f),
                Ok(ClientStep::Done) => {
                    let mech = client.mechanism().map(str::to_owned);
                    self.events.push_back(Event::Authenticated {
                        mechanism: mech,
                        identity: None,
                    });
                    self.identity = Some(String::new());
                    self.handshake = Handshake::AmqpHeader;
                    self.send_amqp_header();
                }
                Err(e) => return Err(sasl_error(e)),
            },
            Handshake::SaslServer(server) => match server.handle(sf) {
                ServerAction::Send(f) => frame::encode_sasl_frame(&mut self.out, &f),
                ServerAction::Success(f, identity) => {
                    frame::encode_sasl_frame(&mut self.out, &f);
                    let mech = server.mechanism().map(str::to_owned);
                    self.events.push_back(Event::Authenticated {
                        mechanism: mech,
                        identity: Some(identity.clone()),
                    });
                    self.identity = Some(identity);
                    self.handshake = Handshake::AmqpHeader;
                }
                ServerAction::Failure(f, e) => {
                    frame::encode_sasl_frame(&mut self.out, &f);
                    // The outcome tells the peer; no AMQP close can follow a failed SASL exchange.
                    let err = sasl_error(e);
                    self.error = Some(err.clone());
                    self.events.push_back(Event::Error(err.clone()));
                    self.finish();
                    return Err(err);
                }
            },
            _ => return Err(framing("SASL frame without a SASL layer")),
        }
        Ok(true)
    }

    /// Writes our AMQP header, then the AMQP frames that waited for it. Call after moving to
    /// the phase where the header counts as sent.
    fn send_amqp_header(&mut self) {
        self.out.put_slice(&ProtocolHeader::AMQP.to_bytes());
        if !self.pending_amqp.is_empty() {
            let p = self.pending_amqp.split();
            self.out.extend_from_slice(&p);
        }
    }

    /// Where AMQP frames are written: the output, or `pending_amqp` before our AMQP header.
    pub(super) fn amqp_out(&mut self, size: usize) -> &mut BytesMut {
        let out = if self.handshake.amqp_header_sent(self.side) {
            &mut self.out
        } else {
            &mut self.pending_amqp
        };
        // Grown in steps of at least OUT_STEP: an idle connection holds no output buffer, and
        // a busy one reuses its own (reclaimed once what it handed out has been written)
        // rather than allocating a little more at every flush.
        if out.capacity() - out.len() < size {
            out.reserve(size.max(OUT_STEP));
        }
        out
    }
}
