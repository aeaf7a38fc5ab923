//! Frames out: writing performatives, flushing the deferred (coalesced) flows, dispositions
//! and detach replies, our `open` and `close`, and failing or finishing the connection.

use super::*;

impl Connection {
    pub(super) fn write<P: Encode>(&mut self, channel: u16, body: &P) {
        let size = FRAME_HEADER_SIZE + body.encoded_len();
        let out = self.amqp_out(size);
        frame::put_frame_header(out, size as u32, frame::FRAME_TYPE_AMQP, channel);
        body.encode(out);
    }

    pub(super) fn write_close(&mut self, error: Option<Error>) {
        self.flush_deferred();
        self.local = EndpointState::Closed;
        self.close_sent = Some(self.now);
        self.write(0, &Close { error });
    }

    /// Writes the deferred, coalesced frames: session and link flows, and dispositions merged
    /// into ranges.
    pub(super) fn flush_deferred(&mut self) {
        if self.dirty_sessions.is_empty()
            && self.dirty_links.is_empty()
            && self.detach_replies.is_empty()
        {
            return;
        }
        // The taken vectors are handed back empty afterwards, so their allocations are reused.
        let mut sessions = std::mem::take(&mut self.dirty_sessions);
        for sid in sessions.drain(..) {
            let Some(s) = self.sessions.get_mut(sid.0) else {
                continue;
            };
            if s.local != EndpointState::Active {
                s.dispositions.clear();
                s.flow_dirty = false;
                continue;
            }
            let ch = s.channel;
            let mut disps = std::mem::take(&mut s.dispositions);
            let flow = std::mem::take(&mut s.flow_dirty);
            if flow {
                s.incoming_window = s.incoming_window_max;
            }
            self.write_dispositions(ch, &disps);
            disps.clear();
            if let Some(s) = self.sessions.get_mut(sid.0) {
                if s.dispositions.is_empty() {
                    s.dispositions = disps;
                }
            }
            if flow {
                if let Some(s) = self.sessions.get(sid.0) {
                    let f = s.flow();
                    self.write(ch, &f);
                }
            }
        }
        if self.dirty_sessions.is_empty() {
            self.dirty_sessions = sessions;
        }
        let mut links = std::mem::take(&mut self.dirty_links);
        for lid in links.drain(..) {
            let Some(l) = self.links.get_mut(lid.0) else {
                continue;
            };
            if !l.flow_dirty || l.local != EndpointState::Active {
                l.flow_dirty = false;
                continue;
            }
            let (handle, dc, credit, drain, avail, sid) = (
                l.handle,
                l.delivery_count,
                l.credit,
                l.drain,
                l.available,
                l.session,
            );
            let Some(s) = self.sessions.get(sid.0) else {
                l.flow_dirty = false;
                continue;
            };
            if l.role == Role::Sender && s.blocked.iter().any(|b| b.header.handle == handle) {
                // Our delivery-count counts transfers still waiting for the session window:
                // the flow must not overtake them (unblock_session sends it after them).
                continue;
            }
            l.flow_dirty = false;
            if s.local != EndpointState::Active {
                continue;
            }
            let ch = s.channel;
            let mut f = s.flow();
            f.handle = Some(handle);
            f.delivery_count = Some(dc.get());
            f.link_credit = Some(credit);
            f.drain = Some(drain);
            if avail > 0 {
                f.available = Some(avail);
            }
            self.write(ch, &f);
        }
        if self.dirty_links.is_empty() {
            self.dirty_links = links;
        }
        for (lid, closed) in std::mem::take(&mut self.detach_replies) {
            // (Skipped inside if the application detached the link itself meanwhile.)
            self.write_detach(lid, closed, None);
            self.maybe_free_link(lid);
        }
    }

    pub(super) fn finish(&mut self) {
        if !self.finished {
            // What we sent and the peer never settled stays known after the sessions are gone:
            // the messaging layer reports it as in doubt.
            self.lost_unsettled = self.unsettled_sent();
            self.finished = true;
            self.handshake = Handshake::Done;
            self.events.push_back(Event::Finished);
            // Closing the connection ends every session and detaches every link: forget them
            // (ids stay stale, never reused, as the slabs bump generations).
            for k in self.links.keys() {
                self.links.remove(k);
            }
            for k in self.sessions.keys() {
                self.sessions.remove(k);
            }
            self.blocked_bytes = 0;
            self.local_channels.clear();
            self.channels = IdPool::default();
            self.remote_channels.clear();
            self.dirty_links.clear();
            self.dirty_sessions.clear();
        }
    }

    /// Fails the connection: records the sticky error, tells the peer (open first if we never
    /// sent one), and finishes.
    pub(super) fn fail(&mut self, e: ConnectionError) {
        if self.error.is_some() || self.finished {
            return;
        }
        self.error = Some(e.clone());
        self.events.push_back(Event::Error(e.clone()));
        // A header mismatch means the peer does not speak our protocol: no frames follow.
        // An AMQP close needs our AMQP header out (so SASL is over, or there is none).
        let can_close = self.handshake.amqp_header_sent(self.side)
            && e.kind != ErrorKind::ProtocolHeader
            && self.local != EndpointState::Closed;
        if can_close {
            if self.local == EndpointState::Uninit {
                self.write_open();
            }
            self.write_close(Some(e.error.clone()));
        }
        self.finish();
    }

    pub(super) fn write_open(&mut self) {
        self.local = EndpointState::Active;
        let c = &self.config;
        let open = Open {
            container_id: c.container_id.as_str().into(),
            hostname: c.hostname.as_deref().map(Into::into),
            max_frame_size: Some(c.max_frame_size.max(MIN_MAX_FRAME_SIZE)),
            channel_max: Some(c.channel_max),
            // Advertise half our threshold, as the spec recommends (§2.4.5) and Proton does: a
            // peer may send its heartbeat a little late and must not be timed out for it.
            idle_time_out: c
                .idle_timeout
                .map(|d| (d.as_millis() / 2).clamp(1, u32::MAX as u128) as u32),
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: (!c.offered_capabilities.is_empty())
                .then(|| c.offered_capabilities.clone()),
            desired_capabilities: (!c.desired_capabilities.is_empty())
                .then(|| c.desired_capabilities.clone()),
            properties: c.properties.clone(),
        };
        self.write(0, &open);
    }

    /// Sends `open`. On a client it may be called at once: it is held until SASL completes and
    /// sessions and links created meanwhile follow it (pipelined open).
    pub fn open(&mut self) -> Result<(), OpError> {
        self.check_usable()?;
        if self.local != EndpointState::Uninit {
            return Err(OpError::IllegalState("already open"));
        }
        self.write_open();
        self.answer_ended_sessions();
        Ok(())
    }

    /// Closes the connection, with an optional error. The peer's close completes it
    /// ([`Event::Finished`]).
    pub fn close(&mut self, error: Option<Error>) -> Result<(), OpError> {
        if self.finished {
            return Err(OpError::Closed(self.error.clone()));
        }
        if self.local == EndpointState::Closed {
            return Ok(());
        }
        if self.local == EndpointState::Uninit {
            self.write_open();
        }
        self.close_error = error.clone();
        self.write_close(error);
        if self.remote == EndpointState::Closed {
            self.finish();
        }
        Ok(())
    }
}
