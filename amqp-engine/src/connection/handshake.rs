use super::*;

impl Connection {
    pub(super) fn read_header(
        &mut self,
        want: Option<ProtocolId>,
    ) -> Result<bool, ConnectionError> {
        let h = match ProtocolHeader::parse(&self.input) {
            Ok(None) => return Ok(false),
            Ok(Some(h)) => h,
            Err(e) => {
                // Tell the peer what we speak, then give up.
                if self.side == Side::Server {
                    let ours = if self.sasl_server.is_some() {
                        ProtocolHeader::SASL
                    } else {
                        ProtocolHeader::AMQP
                    };
                    self.out.put_slice(&ours.to_bytes());
                }
                return Err(ConnectionError::local(
                    ErrorKind::ProtocolHeader,
                    condition::NOT_ALLOWED,
                    e.to_string(),
                ));
            }
        };
        let _ = self.input.split_to(ProtocolHeader::SIZE);
        match self.side {
            Side::Client => {
                if Some(h.id) != want {
                    return Err(ConnectionError::local(
                        ErrorKind::ProtocolHeader,
                        condition::NOT_ALLOWED,
                        format!(
                            "expected {} header, peer sent {h}",
                            match want {
                                Some(ProtocolId::Sasl) => "SASL",
                                _ => "AMQP",
                            }
                        ),
                    ));
                }
                self.expect = if h.id == ProtocolId::Sasl {
                    Expect::Sasl
                } else {
                    Expect::Amqp
                };
            }
            Side::Server => match h.id {
                ProtocolId::Sasl if self.sasl_server.is_some() && self.authenticated.is_none() => {
                    self.out.put_slice(&ProtocolHeader::SASL.to_bytes());
                    let mechs = self.sasl_server.as_ref().map(SaslServer::mechanisms_frame);
                    if let Some(m) = mechs {
                        frame::encode_sasl_frame(&mut self.out, &m);
                    }
                    self.expect = Expect::Sasl;
                }
                ProtocolId::Amqp
                    if self.sasl_server.is_none()
                        || self.authenticated.is_some()
                        || matches!(&self.config.sasl, SaslMode::Server(s) if s.allow_skip_sasl) =>
                {
                    if self.authenticated.is_none() && self.sasl_server.is_some() {
                        self.authenticated = Some("anonymous".into());
                    }
                    self.send_amqp_header();
                    self.expect = Expect::Amqp;
                }
                _ => {
                    let ours = if self.sasl_server.is_some() && self.authenticated.is_none() {
                        ProtocolHeader::SASL
                    } else {
                        ProtocolHeader::AMQP
                    };
                    self.out.put_slice(&ours.to_bytes());
                    return Err(ConnectionError::local(
                        ErrorKind::ProtocolHeader,
                        condition::NOT_ALLOWED,
                        format!("peer sent {h} header; this server requires {ours}"),
                    ));
                }
            },
        }
        Ok(true)
    }

    pub(super) fn next_frame(&mut self) -> Result<Option<frame::Frame>, ConnectionError> {
        match self.decoder.decode(&mut self.input) {
            Ok(Decoded::Frame(f)) => Ok(Some(f)),
            Ok(Decoded::NeedMore(_)) => Ok(None),
            Err(e) => Err(frame_error(e)),
        }
    }

    pub(super) fn read_sasl(&mut self) -> Result<bool, ConnectionError> {
        let Some(f) = self.next_frame()? else {
            return Ok(false);
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
        if let Some(client) = self.sasl_client.as_mut() {
            match client.handle(sf) {
                Ok(ClientStep::Send(f)) => frame::encode_sasl_frame(&mut self.out, &f),
                Ok(ClientStep::Done) => {
                    let mech = client.mechanism().map(str::to_owned);
                    self.events.push_back(Event::Authenticated {
                        mechanism: mech,
                        identity: None,
                    });
                    self.authenticated = Some(String::new());
                    self.send_amqp_header();
                    self.expect = Expect::Header(Some(ProtocolId::Amqp));
                }
                Err(e) => return Err(sasl_error(e)),
            }
        } else if let Some(server) = self.sasl_server.as_mut() {
            match server.handle(sf) {
                ServerAction::Send(f) => frame::encode_sasl_frame(&mut self.out, &f),
                ServerAction::Success(f, identity) => {
                    frame::encode_sasl_frame(&mut self.out, &f);
                    let mech = server.mechanism().map(str::to_owned);
                    self.events.push_back(Event::Authenticated {
                        mechanism: mech,
                        identity: Some(identity.clone()),
                    });
                    self.authenticated = Some(identity);
                    self.expect = Expect::Header(Some(ProtocolId::Amqp));
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
            }
        } else {
            return Err(framing("SASL frame without a SASL layer"));
        }
        Ok(true)
    }

    pub(super) fn send_amqp_header(&mut self) {
        if self.amqp_header_sent {
            return;
        }
        self.out.put_slice(&ProtocolHeader::AMQP.to_bytes());
        self.amqp_header_sent = true;
        if !self.pending_amqp.is_empty() {
            let p = self.pending_amqp.split();
            self.out.extend_from_slice(&p);
        }
    }

    pub(super) fn amqp_out(&mut self) -> &mut BytesMut {
        if self.amqp_header_sent {
            &mut self.out
        } else {
            &mut self.pending_amqp
        }
    }

    pub(super) fn sasl_ok(&self) -> bool {
        (self.sasl_client.is_none() && self.sasl_server.is_none()) || self.authenticated.is_some()
    }
}
