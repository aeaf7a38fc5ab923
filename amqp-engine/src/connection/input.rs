//! AMQP frames in: the per-message performatives (transfer, disposition, flow) decoded
//! straight into their structs on a fast path, every other frame through the generic decoder,
//! then dispatched by performative; and the peer's `open` and `close`.

use super::*;
use amqp_proto::frame::transfer::TransferFields;

impl Connection {
    pub(super) fn read_amqp(&mut self) -> Result<bool, ConnectionError> {
        let size = match self.decoder.frame_size(&self.input) {
            Ok(Decoded::Frame(size)) => size,
            Ok(Decoded::NeedMore(_)) => return Ok(false),
            Err(e) => return Err(frame_error(e)),
        };
        let bytes = self.input.split_to(size).freeze();
        // Fast path for the per-message performatives (transfer, disposition, flow): decoded
        // straight into their struct and handled, without building a `Frame` and a
        // `Performative` (hundreds of bytes, moved several times per frame).
        if bytes[5] == frame::FRAME_TYPE_AMQP {
            let doff = bytes[4] as usize * 4;
            if let [0x00, 0x53, code @ 0x13..=0x15, ..] = bytes[doff..] {
                let channel = u16::from_be_bytes([bytes[6], bytes[7]]);
                // The performative's list starts after the 3-byte descriptor.
                let start = doff + 3;
                let body = || bytes.slice(start..);
                let limits = self.config.limits;
                let name = match code {
                    0x13 => Flow::NAME,
                    0x14 => Transfer::NAME,
                    _ => Disposition::NAME,
                };
                match code {
                    0x13 => {
                        let body = body();
                        let mut d = codec::Decoder::with_limits(&body, limits);
                        let f = Flow::decode_body(&mut d).map_err(decode_error)?;
                        if let Some(sid) = self.session_for(channel, name)? {
                            self.on_flow(sid, f)?;
                        }
                    }
                    0x14 => {
                        let (t, state, payload) = match TransferFields::decode_common(&bytes, start)
                        {
                            Some((t, end)) => {
                                // The payload is the rest of the frame: reuse its reference.
                                let mut payload = bytes;
                                payload.advance(end);
                                (t, None, payload)
                            }
                            None => {
                                let body = body();
                                let mut d = codec::Decoder::with_limits(&body, limits);
                                let t = Transfer::decode_body(&mut d).map_err(decode_error)?;
                                let (t, state) = TransferFields::from_transfer(t);
                                (t, state, d.rest_bytes())
                            }
                        };
                        if let Some(sid) = self.session_for(channel, name)? {
                            self.on_transfer(sid, t, state, payload)?;
                        }
                    }
                    _ => {
                        let body = body();
                        let mut d = codec::Decoder::with_limits(&body, limits);
                        let disp = Disposition::decode_body(&mut d).map_err(decode_error)?;
                        if let Some(sid) = self.session_for(channel, name)? {
                            self.on_disposition(sid, disp)?;
                        }
                    }
                }
                return Ok(matches!(self.handshake, Handshake::Amqp));
            }
        }
        let f = self.decoder.decode_frame(&bytes).map_err(frame_error)?;
        match f.body {
            FrameBody::Empty => Ok(true),
            FrameBody::Sasl(s) => Err(framing(format!(
                "SASL {} frame after SASL completed",
                s.name()
            ))),
            FrameBody::Amqp {
                performative,
                payload,
            } => {
                self.handle_performative(f.channel, performative, payload)?;
                Ok(matches!(self.handshake, Handshake::Amqp))
            }
        }
    }

    pub(super) fn handle_performative(
        &mut self,
        channel: u16,
        p: Performative,
        payload: Bytes,
    ) -> Result<(), ConnectionError> {
        if self.remote == EndpointState::Uninit && !matches!(p, Performative::Open(_)) {
            return Err(not_allowed(format!("{} before open", p.name())));
        }
        if self.remote == EndpointState::Closed {
            return Err(not_allowed(format!("{} after close", p.name())));
        }
        match p {
            Performative::Open(o) => self.on_open(o),
            Performative::Close(c) => self.on_close(c),
            Performative::Begin(b) => self.on_begin(channel, &b),
            other => {
                let Some(&sid) = self.remote_channels.get(&channel) else {
                    return Err(no_session(other.name(), channel));
                };
                // After we sent end, the peer's frames in flight are discarded until its end.
                let ending = self
                    .sessions
                    .get(sid.0)
                    .is_some_and(|s| s.local == EndpointState::Closed);
                if ending && !matches!(other, Performative::End(_)) {
                    return Ok(());
                }
                match other {
                    Performative::End(e) => self.on_end(sid, e),
                    Performative::Attach(a) => self.on_attach(sid, a),
                    Performative::Flow(f) => self.on_flow(sid, f),
                    Performative::Transfer(t) => {
                        let (t, state) = TransferFields::from_transfer(t);
                        self.on_transfer(sid, t, state, payload)
                    }
                    Performative::Disposition(d) => self.on_disposition(sid, d),
                    Performative::Detach(d) => self.on_detach(sid, d),
                    _ => Ok(()),
                }
            }
        }
    }

    /// The checks of [`handle_performative`](Self::handle_performative) for a session-level
    /// performative other than `begin` or `end`, and its session; `None` when the frame is to be
    /// discarded (we ended the session and await the peer's end).
    #[inline]
    pub(super) fn session_for(
        &self,
        channel: u16,
        name: &'static str,
    ) -> Result<Option<SessionId>, ConnectionError> {
        if self.remote == EndpointState::Uninit {
            return Err(not_allowed(format!("{name} before open")));
        }
        if self.remote == EndpointState::Closed {
            return Err(not_allowed(format!("{name} after close")));
        }
        match self.remote_channels.get(&channel) {
            Some(&sid) => Ok(self
                .sessions
                .get(sid.0)
                .is_some_and(|s| s.local != EndpointState::Closed)
                .then_some(sid)),
            None => Err(no_session(name, channel)),
        }
    }

    pub(super) fn on_open(&mut self, o: Box<Open>) -> Result<(), ConnectionError> {
        if self.remote != EndpointState::Uninit {
            return Err(not_allowed("second open"));
        }
        self.remote = EndpointState::Active;
        let mfs = o.max_frame_size();
        if mfs < MIN_MAX_FRAME_SIZE {
            return Err(ConnectionError::local(
                ErrorKind::Protocol,
                condition::INVALID_FIELD,
                format!("max-frame-size {mfs} below the minimum 512"),
            ));
        }
        self.remote_max_frame = mfs;
        self.remote_channel_max = o.channel_max();
        self.remote_idle = o
            .idle_time_out
            .filter(|&ms| ms > 0)
            .map(|ms| Duration::from_millis(ms as u64));
        self.remote_open = Some(o);
        self.events.push_back(Event::ConnectionOpened);
        Ok(())
    }

    pub(super) fn on_close(&mut self, c: Close) -> Result<(), ConnectionError> {
        self.remote = EndpointState::Closed;
        let err = c.error.clone();
        self.events
            .push_back(Event::ConnectionClosed { error: c.error });
        if let Some(e) = err {
            let ce = ConnectionError {
                kind: ErrorKind::RemoteClose,
                origin: Origin::Remote,
                error: e,
            };
            if self.error.is_none() {
                self.error = Some(ce);
            }
        }
        if self.local != EndpointState::Closed {
            if self.local == EndpointState::Uninit {
                // A close must follow an open of ours (2.4.5).
                self.write_open();
            }
            self.write_close(None);
        }
        self.finish();
        Ok(())
    }
}
