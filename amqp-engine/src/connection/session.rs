//! Sessions: [`Session`] (channels, the transfer windows both ways, handles, unsettled
//! deliveries and blocked frames) and the `begin`/`end` exchanges, ours and the peer's.

use super::*;

/// One session: its channels, transfer windows both ways, link handles, unsettled deliveries
/// and queued frames.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) channel: u16,
    pub(super) remote_channel: Option<u16>,
    pub(super) local: EndpointState,
    pub(super) remote: EndpointState,
    pub(super) next_outgoing_id: SequenceNo,
    pub(super) remote_incoming_window: u32,
    pub(super) next_incoming_id: SequenceNo,
    pub(super) incoming_window: u32,
    pub(super) incoming_window_max: u32,
    pub(super) remote_outgoing_window: u32,
    pub(super) remote_handle_max: u32,
    pub(super) local_handles: IdMap<u32, LinkId>,
    /// Every link of this session, whatever its state, so ending the session frees only its
    /// own links.
    pub(super) links: HashSet<LinkId>,
    /// Our links attached and still waiting for the peer's attach, by name and our role: the
    /// peer's attach finds its link here without a scan.
    pub(super) awaiting_attach: HashMap<(ByteString, Role), LinkId>,
    /// The handles of ours: the lowest free one for each attach.
    pub(super) handles: IdPool,
    pub(super) remote_handles: IdMap<u32, LinkId>,
    pub(super) next_delivery_id: SequenceNo,
    pub(super) out_unsettled: Ring<OutEntry>,
    pub(super) in_unsettled: Ring<InEntry>,
    pub(super) dispositions: Vec<PendingDisposition>,
    pub(super) flow_dirty: bool,
    pub(super) blocked: VecDeque<BlockedTransfer>,
    pub(super) error: Option<Error>,
    pub(super) properties: Option<amqp_proto::definitions::Fields>,
}

impl Session {
    /// A session not yet begun by either end, with an incoming window of `window` frames.
    pub(super) fn new(window: u32, properties: Option<amqp_proto::definitions::Fields>) -> Session {
        Session {
            channel: u16::MAX,
            remote_channel: None,
            local: EndpointState::Uninit,
            remote: EndpointState::Uninit,
            next_outgoing_id: SequenceNo::default(),
            remote_incoming_window: 0,
            next_incoming_id: SequenceNo::default(),
            incoming_window: window,
            incoming_window_max: window,
            remote_outgoing_window: 0,
            remote_handle_max: u32::MAX,
            local_handles: IdMap::default(),
            links: HashSet::new(),
            awaiting_attach: HashMap::new(),
            handles: IdPool::default(),
            remote_handles: IdMap::default(),
            next_delivery_id: SequenceNo::default(),
            out_unsettled: Ring::new(),
            in_unsettled: Ring::new(),
            dispositions: Vec::new(),
            flow_dirty: false,
            blocked: VecDeque::new(),
            error: None,
            properties,
        }
    }

    /// The session part of a `flow` of ours.
    pub(super) fn flow(&self) -> Flow {
        Flow {
            next_incoming_id: self.remote_channel.map(|_| self.next_incoming_id.get()),
            incoming_window: self.incoming_window,
            next_outgoing_id: self.next_outgoing_id.get(),
            outgoing_window: u32::MAX,
            ..Flow::default()
        }
    }

    /// The session part of the peer's `flow` (2.5.6): its incoming window as seen from our
    /// next-outgoing-id. Without next-incoming-id (sent before our begin reached the peer) it
    /// counts from our initial next-outgoing-id, 0. Transfers of ours the peer had not seen
    /// when it wrote this use the window up (never below zero).
    pub(super) fn remote_flow(&mut self, f: &Flow) {
        let seen = SequenceNo::from(f.next_incoming_id.unwrap_or(0));
        let in_flight = self.next_outgoing_id.since(seen);
        self.remote_incoming_window = f.incoming_window.saturating_sub(in_flight);
        self.remote_outgoing_window = f.outgoing_window;
    }

    /// A transfer frame of ours goes out: it uses one frame of the peer's incoming window.
    pub(super) fn take_outgoing_frame(&mut self) {
        self.remote_incoming_window = self.remote_incoming_window.saturating_sub(1);
        self.next_outgoing_id.incr();
    }

    /// A transfer frame arrived: `None` if it is beyond our incoming window, else whether the
    /// window is down to half (a flow should widen it).
    pub(super) fn take_incoming_frame(&mut self) -> Option<bool> {
        if self.incoming_window == 0 {
            return None;
        }
        self.incoming_window -= 1;
        self.next_incoming_id.incr();
        Some(self.incoming_window <= self.incoming_window_max / 2)
    }
}

impl Connection {
    pub(super) fn on_begin(&mut self, channel: u16, b: &Begin) -> Result<(), ConnectionError> {
        if channel > self.config.channel_max {
            return Err(not_allowed(format!(
                "channel {channel} exceeds channel-max {}",
                self.config.channel_max
            )));
        }
        if self.remote_channels.contains_key(&channel) {
            return Err(not_allowed(format!(
                "begin on channel {channel} already in use"
            )));
        }
        let (sid, remote_initiated) = match b.remote_channel {
            Some(ours) => {
                let Some(&sid) = self.local_channels.get(&ours) else {
                    return Err(not_allowed(format!("begin answers unknown channel {ours}")));
                };
                match self.sessions.get(sid.0) {
                    Some(s) if s.remote == EndpointState::Uninit && s.remote_channel.is_none() => {}
                    _ => return Err(not_allowed(format!("begin answers channel {ours} twice"))),
                }
                (sid, false)
            }
            None => {
                // The channel our answer will use is taken now: a begin that could never be
                // answered is refused at once, not left waiting.
                let Some(ours) = self.alloc_channel() else {
                    return Err(ConnectionError::local(
                        ErrorKind::Protocol,
                        condition::RESOURCE_LIMIT_EXCEEDED,
                        format!(
                            "no channel free to answer the begin on channel {channel} \
                             (the peer's channel-max is {})",
                            self.remote_channel_max
                        ),
                    ));
                };
                let mut s = self.new_session(SessionConfig::default());
                s.channel = ours;
                let sid = SessionId(self.sessions.insert(s));
                self.local_channels.insert(ours, sid);
                (sid, true)
            }
        };
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return Ok(());
        };
        s.remote = EndpointState::Active;
        s.remote_channel = Some(channel);
        s.next_incoming_id = b.next_outgoing_id.into();
        s.remote_incoming_window = b.incoming_window;
        s.remote_outgoing_window = b.outgoing_window;
        s.remote_handle_max = b.handle_max();
        self.remote_channels.insert(channel, sid);
        self.events.push_back(Event::SessionOpened {
            session: sid,
            remote_initiated,
        });
        Ok(())
    }

    pub(super) fn on_end(&mut self, sid: SessionId, e: End) -> Result<(), ConnectionError> {
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return Ok(());
        };
        s.remote = EndpointState::Closed;
        if let Some(ch) = s.remote_channel {
            self.remote_channels.remove(&ch);
        }
        let local = s.local;
        self.detach_implicitly(sid, e.error.as_ref());
        self.events.push_back(Event::SessionEnded {
            session: sid,
            error: e.error,
        });
        match local {
            EndpointState::Active => self.write_end(sid, None),
            // Never begun: answer with begin + end now, or when we open.
            EndpointState::Uninit if self.local == EndpointState::Active => {
                let _ = self.answer_session(sid);
            }
            _ => {}
        }
        self.maybe_free_session(sid);
        Ok(())
    }

    /// The peer ended the session: every link on it that the peer had not detached goes with
    /// it (a link cannot outlive its session, and no detach will come for it). Each one is
    /// reported as [`Event::LinkClosed`], closed, with the session's error, so that nothing
    /// waits for credit or deliveries on a link that is gone.
    fn detach_implicitly(&mut self, sid: SessionId, error: Option<&Error>) {
        let Some(s) = self.sessions.get(sid.0) else {
            return;
        };
        let mut gone: Vec<LinkId> = s.links.iter().copied().collect();
        // In a stable order (the set's own order is not).
        gone.sort_unstable();
        for lid in gone {
            let Some(l) = self.links.get_mut(lid.0) else {
                continue;
            };
            if l.remote == EndpointState::Closed {
                // Detached by the peer already, and reported then.
                continue;
            }
            l.remote = EndpointState::Closed;
            l.remote_handle = None;
            l.remote_closed = true;
            l.local = EndpointState::Closed;
            l.partial = None;
            self.events.push_back(Event::LinkClosed {
                link: lid,
                closed: true,
                error: error.cloned(),
                session_ended: true,
            });
        }
    }

    pub(super) fn session_error(
        &mut self,
        sid: SessionId,
        cond: Symbol,
        desc: String,
    ) -> Result<(), ConnectionError> {
        let err = Error::new(cond, desc);
        self.events.push_back(Event::SessionError {
            session: sid,
            error: err.clone(),
        });
        let local_open = self
            .sessions
            .get(sid.0)
            .is_some_and(|s| s.local != EndpointState::Closed);
        if local_open {
            self.write_end(sid, Some(err));
        }
        Ok(())
    }

    pub(super) fn write_end(&mut self, sid: SessionId, error: Option<Error>) {
        self.flush_deferred();
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return;
        };
        if s.local == EndpointState::Closed {
            return;
        }
        s.local = EndpointState::Closed;
        let ch = s.channel;
        s.error = error.clone();
        self.write(ch, &End { error });
        self.maybe_free_session(sid);
    }

    pub(super) fn maybe_free_session(&mut self, sid: SessionId) {
        let Some(s) = self.sessions.get(sid.0) else {
            return;
        };
        // Both ends ended: a session we ended first stays until the peer's end (its begin
        // reply may still be on the way).
        if s.local == EndpointState::Closed && s.remote == EndpointState::Closed {
            // What we sent on it and the peer never settled is in doubt: keep it known (the
            // messaging layer reports it when the transport ends, and resends).
            let lost: Vec<DeliveryId> = s
                .out_unsettled
                .iter()
                .map(|(number, e)| DeliveryId {
                    link: e.link,
                    number,
                })
                .collect();
            self.lost_unsettled.extend(lost);
            let Some(s) = self.sessions.get(sid.0) else {
                return;
            };
            let ch = s.channel;
            if let Some(rc) = s.remote_channel {
                if self.remote_channels.get(&rc) == Some(&sid) {
                    self.remote_channels.remove(&rc);
                }
            }
            if self.local_channels.get(&ch) == Some(&sid) {
                self.local_channels.remove(&ch);
                self.channels.release(ch.into());
            }
            // Only this session's links: attached ones and peer-initiated ones never answered.
            if let Some(s) = self.sessions.get(sid.0) {
                for l in &s.links {
                    self.links.remove(l.0);
                }
                let held: usize = s.blocked.iter().map(|b| b.payload.len()).sum();
                self.blocked_bytes = self.blocked_bytes.saturating_sub(held);
            }
            self.sessions.remove(sid.0);
        }
    }

    /// Sessions the peer began and ended before we opened: answer them (begin + end).
    pub(super) fn answer_ended_sessions(&mut self) {
        for k in self.sessions.keys() {
            if self.sessions.get(k).is_some_and(|s| {
                s.local == EndpointState::Uninit && s.remote == EndpointState::Closed
            }) {
                let _ = self.answer_session(SessionId(k));
            }
        }
    }

    /// Begins a session the peer began; if the peer has already ended it, ends it too, and
    /// answers the links the peer attached and detached meanwhile.
    pub(super) fn answer_session(&mut self, sid: SessionId) -> Result<(), OpError> {
        if let Err(e) = self.write_begin(sid) {
            if let Some(s) = self.sessions.get_mut(sid.0) {
                if s.remote == EndpointState::Closed {
                    // No channel free: nothing can be sent; forget it.
                    s.local = EndpointState::Closed;
                }
            }
            self.maybe_free_session(sid);
            return Err(e);
        }
        for k in self.links.keys() {
            if self.links.get(k).is_some_and(|l| {
                l.session == sid
                    && l.local == EndpointState::Uninit
                    && l.remote == EndpointState::Closed
            }) {
                if let Some(l) = self.links.get_mut(k) {
                    l.config.source = None;
                    l.config.target = None;
                }
                let _ = self.answer_link(LinkId(k));
            }
        }
        if self
            .sessions
            .get(sid.0)
            .is_some_and(|s| s.remote == EndpointState::Closed)
        {
            self.write_end(sid, None);
        }
        Ok(())
    }

    fn new_session(&self, cfg: SessionConfig) -> Session {
        let window = cfg
            .incoming_window
            .unwrap_or(self.config.incoming_window)
            .max(1);
        Session::new(window, cfg.properties)
    }

    /// The lowest channel of ours that is free, within both ends' channel-max; it is then in
    /// use (until [`maybe_free_session`](Self::maybe_free_session) gives it back).
    pub(super) fn alloc_channel(&mut self) -> Option<u16> {
        let max = if self.remote == EndpointState::Active {
            self.remote_channel_max.min(self.config.channel_max)
        } else {
            self.config.channel_max
        };
        let ch = self.channels.alloc(max.into())?;
        u16::try_from(ch).ok()
    }

    pub(super) fn write_begin(&mut self, sid: SessionId) -> Result<(), OpError> {
        let s = self.sessions.get(sid.0).ok_or(OpError::UnknownHandle)?;
        // A session the peer began has its channel since its begin arrived.
        let ch = if self.local_channels.get(&s.channel) == Some(&sid) {
            s.channel
        } else {
            let ch = self.alloc_channel().ok_or(OpError::NoChannel)?;
            self.local_channels.insert(ch, sid);
            ch
        };
        let handle_max = self.config.handle_max;
        let s = self.sessions.get_mut(sid.0).ok_or(OpError::UnknownHandle)?;
        s.channel = ch;
        s.local = EndpointState::Active;
        let begin = Begin {
            remote_channel: s.remote_channel,
            next_outgoing_id: s.next_outgoing_id.get(),
            incoming_window: s.incoming_window,
            outgoing_window: u32::MAX,
            handle_max: Some(handle_max),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: s.properties.clone(),
        };
        self.write(ch, &begin);
        Ok(())
    }

    /// Begins a new session.
    pub fn begin_session(&mut self, cfg: SessionConfig) -> Result<SessionId, OpError> {
        self.check_usable()?;
        if self.local == EndpointState::Uninit {
            return Err(OpError::IllegalState("open the connection first"));
        }
        let s = self.new_session(cfg);
        let sid = SessionId(self.sessions.insert(s));
        if let Err(e) = self.write_begin(sid) {
            // (No channel was taken: write_begin fails only for want of one.)
            self.sessions.remove(sid.0);
            return Err(e);
        }
        Ok(sid)
    }

    /// Answers a session the peer began ([`Event::SessionOpened`] with `remote_initiated`).
    pub fn accept_session(&mut self, sid: SessionId) -> Result<(), OpError> {
        self.check_usable()?;
        let s = self.sessions.get(sid.0).ok_or(OpError::UnknownHandle)?;
        if s.local != EndpointState::Uninit {
            return Err(OpError::IllegalState("session already begun"));
        }
        if self.local == EndpointState::Uninit {
            self.write_open();
            self.answer_ended_sessions();
            if self
                .sessions
                .get(sid.0)
                .is_none_or(|s| s.local != EndpointState::Uninit)
            {
                // It was one of those the peer had already ended: answered.
                return Ok(());
            }
        }
        self.answer_session(sid)
    }

    /// Ends a session, with an optional error.
    pub fn end_session(&mut self, sid: SessionId, error: Option<Error>) -> Result<(), OpError> {
        self.check_usable()?;
        let s = self.sessions.get(sid.0).ok_or(OpError::UnknownHandle)?;
        if s.local != EndpointState::Active {
            return Err(OpError::IllegalState("session not active"));
        }
        self.write_end(sid, error);
        Ok(())
    }
}
