//! Links: [`Link`] (handle, credit, delivery-count, drain, terminus configuration) and the
//! `attach`/`detach`/`flow` exchanges, ours and the peer's.

use super::*;

/// One link (sender or receiver): handles, terminus configuration, credit and delivery-count.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) session: SessionId,
    pub(super) name: bytestring::ByteString,
    pub(super) role: Role,
    pub(super) handle: u32,
    pub(super) remote_handle: Option<u32>,
    pub(super) local: EndpointState,
    pub(super) remote: EndpointState,
    pub(super) config: LinkConfig,
    pub(super) remote_attach: Option<Box<Attach>>,
    pub(super) delivery_count: SequenceNo,
    pub(super) credit: u32,
    pub(super) available: u32,
    /// Receiver: the drain mode we ask for. Sender: the receiver's, which is our actual drain
    /// mode and goes in every flow we send (2.7.4: "when the flow state is sent from the
    /// sender to the receiver, this field contains the actual drain mode of the sender").
    pub(super) drain: bool,
    /// Sender: a drain request not yet answered by [`Connection::drained`].
    pub(super) drain_pending: bool,
    pub(super) flow_dirty: bool,
    pub(super) next_tag: u64,
    pub(super) partial: Option<Partial>,
    /// An aborted or refused delivery still receiving frames we discard.
    pub(super) discarding: bool,
    pub(super) max_message_size: u64,
    /// The peer's detach had `closed` set (mirrored when we answer it late).
    pub(super) remote_closed: bool,
    /// Receiver: the furthest delivery-count any flow of ours allowed. A sender acting on an
    /// older, larger grant may legitimately send up to it after we lowered credit.
    pub(super) credit_end: SequenceNo,
}

impl Link {
    /// A link not yet attached by either end.
    pub(super) fn new(
        session: SessionId,
        role: Role,
        config: LinkConfig,
        max_message_size: u64,
    ) -> Link {
        Link {
            session,
            name: config.name.as_str().into(),
            role,
            handle: u32::MAX,
            remote_handle: None,
            local: EndpointState::Uninit,
            remote: EndpointState::Uninit,
            config,
            remote_attach: None,
            delivery_count: SequenceNo::default(),
            credit: 0,
            available: 0,
            drain: false,
            drain_pending: false,
            flow_dirty: false,
            next_tag: 0,
            partial: None,
            discarding: false,
            max_message_size,
            remote_closed: false,
            credit_end: SequenceNo::default(),
        }
    }

    /// Receiver: the sender's initial delivery-count (from its attach) is our starting point;
    /// grants made before its attach arrived move with it.
    fn rebase_delivery_count(&mut self, initial: SequenceNo) {
        self.credit_end = self
            .credit_end
            .add(initial.offset_from(self.delivery_count));
        self.delivery_count = initial;
    }

    /// Sender: the receiver's flow. 2.6.7: credit = delivery-count(rcv) + link-credit(rcv) -
    /// delivery-count(snd), in serial arithmetic. What we sent that the receiver had not yet
    /// seen uses up its grant; below zero (it lowered credit under what was in flight) is 0.
    fn sender_flow(&mut self, remote_delivery_count: Option<u32>, credit: u32, drain: bool) {
        let remote_dc = remote_delivery_count.map_or(self.delivery_count, SequenceNo::from);
        self.credit = credit.saturating_sub(self.delivery_count.since(remote_dc));
        self.drain = drain;
        self.drain_pending = drain;
    }

    /// Receiver: the sender's flow. A sender that advanced its delivery-count (drain) used up
    /// that much credit (never below zero, never backwards). Returns true when a drain we asked
    /// for is complete.
    fn receiver_flow(&mut self, delivery_count: Option<u32>, available: Option<u32>) -> bool {
        if let Some(dc) = delivery_count.map(SequenceNo::from) {
            if dc >= self.delivery_count {
                self.credit = self.credit.saturating_sub(dc.since(self.delivery_count));
                self.delivery_count = dc;
            }
        }
        self.available = available.unwrap_or(self.available);
        let drained = self.drain && self.credit == 0;
        if drained {
            self.drain = false;
        }
        drained
    }

    /// Receiver: grants `credit` (replacing the current credit). Transfers are accepted up to
    /// everything granted so far, read additively: some senders (RabbitMQ 3.10's AMQP 1.0
    /// plugin) add a new grant to credit still in flight instead of replacing it. Memory stays
    /// bounded by the credit we granted.
    fn grant(&mut self, credit: u32, drain: bool) {
        self.credit = credit;
        self.drain = drain;
        let replaced = self.delivery_count.add_comparable(credit);
        let added = if self.credit_end > self.delivery_count {
            self.credit_end.add_comparable(credit)
        } else {
            replaced
        };
        for end in [replaced, added] {
            if end > self.credit_end {
                self.credit_end = end;
            }
        }
    }

    /// Receiver: the first frame of a delivery arrived. False when it is beyond every grant we
    /// made (not merely beyond the credit we have now: transfers sent under a grant we since
    /// lowered are legitimate); else it uses one credit.
    pub(super) fn take_incoming(&mut self) -> bool {
        if self.credit_end <= self.delivery_count {
            return false;
        }
        self.credit = self.credit.saturating_sub(1);
        self.delivery_count.incr();
        true
    }

    /// Sender: a delivery is sent; it uses one credit (the caller checked there is one).
    pub(super) fn take_outgoing(&mut self) {
        self.credit = self.credit.saturating_sub(1);
        self.delivery_count.incr();
    }

    /// Sender: answers a drain request by using up the rest of the credit. False if none was
    /// pending.
    fn drain_credit(&mut self) -> bool {
        if !self.drain_pending {
            return false;
        }
        self.delivery_count = self.delivery_count.add(self.credit);
        self.credit = 0;
        // The flow says drain = true (our drain mode, until the receiver changes it):
        // receivers such as rhea take a flow with drain set and no credit as "drained".
        self.drain_pending = false;
        true
    }
}

impl Connection {
    pub(super) fn link_error(&mut self, lid: LinkId, cond: Symbol, desc: String) {
        let err = Error::new(cond, desc);
        self.events.push_back(Event::LinkError {
            link: lid,
            error: err.clone(),
        });
        if self
            .links
            .get(lid.0)
            .is_some_and(|l| l.local != EndpointState::Closed)
        {
            self.write_detach(lid, true, Some(err));
        }
        if let Some(l) = self.links.get_mut(lid.0) {
            l.partial = None;
            l.discarding = true;
        }
    }

    pub(super) fn on_attach(
        &mut self,
        sid: SessionId,
        a: Box<Attach>,
    ) -> Result<(), ConnectionError> {
        let Some(s) = self.sessions.get(sid.0) else {
            return Ok(());
        };
        if s.local == EndpointState::Closed {
            return Ok(());
        }
        if a.handle > self.config.handle_max {
            return self.session_error(
                sid,
                condition::NOT_ALLOWED,
                format!(
                    "handle {} exceeds handle-max {}",
                    a.handle, self.config.handle_max
                ),
            );
        }
        if s.remote_handles.contains_key(&a.handle) {
            return self.session_error(
                sid,
                condition::HANDLE_IN_USE,
                format!("handle {} already attached", a.handle),
            );
        }
        // Our role is the opposite of theirs; find a link of ours with that name awaiting an attach.
        let our_role = match a.role {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        };
        let existing = s
            .awaiting_attach
            .get(&(a.name.clone(), our_role))
            .copied()
            .filter(|l| {
                self.links
                    .get(l.0)
                    .is_some_and(|l| l.remote == EndpointState::Uninit)
            });
        let (lid, remote_initiated) = match existing {
            Some(l) => (l, false),
            None => {
                let config = LinkConfig {
                    name: a.name.to_string(),
                    ..LinkConfig::default()
                };
                let link = Link::new(sid, our_role, config, self.config.max_message_size);
                let lid = LinkId(self.links.insert(link));
                if let Some(s) = self.sessions.get_mut(sid.0) {
                    s.links.insert(lid);
                }
                (lid, true)
            }
        };
        let handle = a.handle;
        let a_name = a.name.clone();
        let Some(l) = self.links.get_mut(lid.0) else {
            return Ok(());
        };
        l.remote = EndpointState::Active;
        l.remote_handle = Some(handle);
        if our_role == Role::Receiver {
            l.rebase_delivery_count(a.initial_delivery_count.unwrap_or(0).into());
        }
        l.remote_attach = Some(a);
        if let Some(s) = self.sessions.get_mut(sid.0) {
            s.remote_handles.insert(handle, lid);
            if !remote_initiated {
                s.awaiting_attach.remove(&(a_name, our_role));
            }
        }
        self.events.push_back(Event::LinkOpened {
            link: lid,
            remote_initiated,
        });
        Ok(())
    }

    pub(super) fn on_detach(&mut self, sid: SessionId, d: Detach) -> Result<(), ConnectionError> {
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return Ok(());
        };
        let Some(lid) = s.remote_handles.remove(&d.handle) else {
            return self.session_error(
                sid,
                condition::UNATTACHED_HANDLE,
                format!("detach of unattached handle {}", d.handle),
            );
        };
        let closed = d.closed.unwrap_or(false);
        let Some(l) = self.links.get_mut(lid.0) else {
            return Ok(());
        };
        l.remote = EndpointState::Closed;
        l.remote_handle = None;
        l.remote_closed = closed;
        let local = l.local;
        self.events.push_back(Event::LinkClosed {
            link: lid,
            closed,
            error: d.error,
            session_ended: false,
        });
        let session_active = self
            .sessions
            .get(sid.0)
            .is_some_and(|s| s.local == EndpointState::Active);
        match local {
            // Answered at the next transmit, not now: the application may still settle
            // deliveries that arrived before the detach (a sender that sends and detaches at
            // once, as Proton's helloworld does, then waits for the outcome). Proton writes
            // those dispositions before the detach too.
            EndpointState::Active => self.detach_replies.push((lid, closed)),
            // Never attached: answer with attach (no terminus) + detach now, or when the
            // session is begun.
            EndpointState::Uninit if session_active => {
                if let Some(l) = self.links.get_mut(lid.0) {
                    l.config.source = None;
                    l.config.target = None;
                }
                let _ = self.answer_link(lid);
            }
            _ => {}
        }
        self.maybe_free_link(lid);
        Ok(())
    }

    pub(super) fn on_flow(&mut self, sid: SessionId, f: Flow) -> Result<(), ConnectionError> {
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return Ok(());
        };
        s.remote_flow(&f);
        let echo = f.echo.unwrap_or(false);
        let Some(handle) = f.handle else {
            if echo {
                s.flow_dirty = true;
                self.dirty_sessions.push(sid);
            }
            self.unblock_session(sid);
            return Ok(());
        };
        let Some(&lid) = s.remote_handles.get(&handle) else {
            return self.session_error(
                sid,
                condition::UNATTACHED_HANDLE,
                format!("flow for unattached handle {handle}"),
            );
        };
        let Some(l) = self.links.get_mut(lid.0) else {
            return Ok(());
        };
        match l.role {
            Role::Sender => {
                l.sender_flow(
                    f.delivery_count,
                    f.link_credit.unwrap_or(0),
                    f.drain.unwrap_or(false),
                );
                self.events.push_back(Event::LinkFlow {
                    link: lid,
                    credit: l.credit,
                    drain: l.drain,
                });
                if echo {
                    l.flow_dirty = true;
                    self.dirty_links.push(lid);
                }
            }
            Role::Receiver => {
                if l.receiver_flow(f.delivery_count, f.available) {
                    self.events.push_back(Event::LinkDrained { link: lid });
                }
                if echo {
                    l.flow_dirty = true;
                    self.dirty_links.push(lid);
                }
            }
        }
        self.unblock_session(sid);
        Ok(())
    }

    pub(super) fn write_detach(&mut self, lid: LinkId, closed: bool, error: Option<Error>) {
        self.flush_deferred();
        let Some(l) = self.links.get_mut(lid.0) else {
            return;
        };
        if l.local == EndpointState::Closed {
            return;
        }
        l.local = EndpointState::Closed;
        let handle = l.handle;
        let sid = l.session;
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return;
        };
        // Frames still waiting for the session window must not follow the detach.
        let mut freed = 0;
        s.blocked.retain(|b| {
            let keep = b.header.handle != handle;
            if !keep {
                freed += b.payload.len();
            }
            keep
        });
        self.blocked_bytes = self.blocked_bytes.saturating_sub(freed);
        let ch = s.channel;
        if s.local == EndpointState::Active {
            self.write(
                ch,
                &Detach {
                    handle,
                    closed: Some(closed),
                    error,
                },
            );
        }
        self.maybe_free_link(lid);
    }

    pub(super) fn maybe_free_link(&mut self, lid: LinkId) {
        let Some(l) = self.links.get(lid.0) else {
            return;
        };
        // Both ends detached: a link we detached first stays until the peer's detach, so
        // its late attach reply is not taken for a new link and its handle is not reused.
        if l.local == EndpointState::Closed && l.remote == EndpointState::Closed {
            let (sid, handle) = (l.session, l.handle);
            if let Some(s) = self.sessions.get_mut(sid.0) {
                if s.local_handles.remove(&handle).is_some() {
                    s.handles.release(handle);
                }
                s.links.remove(&lid);
                if s.awaiting_attach.get(&(l.name.clone(), l.role)) == Some(&lid) {
                    s.awaiting_attach.remove(&(l.name.clone(), l.role));
                }
                // Deliveries of a gone link cannot be settled any more; those we sent are in
                // doubt (see `take_unsettled_sent`).
                s.in_unsettled.retain(|e| e.link != lid);
                let lost = s
                    .out_unsettled
                    .iter()
                    .filter(|(_, e)| e.link == lid)
                    .map(|(number, _)| DeliveryId { link: lid, number });
                self.lost_unsettled.extend(lost);
                s.out_unsettled.retain(|e| e.link != lid);
            }
            self.links.remove(lid.0);
        }
    }

    /// Attaches a link the peer attached; if the peer has already detached it, detaches too.
    pub(super) fn answer_link(&mut self, lid: LinkId) -> Result<(), OpError> {
        if let Err(e) = self.write_attach(lid) {
            if let Some(l) = self.links.get_mut(lid.0) {
                if l.remote == EndpointState::Closed {
                    // Nothing can be sent; forget it.
                    l.local = EndpointState::Closed;
                }
            }
            self.maybe_free_link(lid);
            return Err(e);
        }
        if let Some(l) = self.links.get(lid.0) {
            if l.remote == EndpointState::Closed {
                let closed = l.remote_closed;
                self.write_detach(lid, closed, None);
            }
        }
        Ok(())
    }

    pub(super) fn write_attach(&mut self, lid: LinkId) -> Result<(), OpError> {
        let l = self.links.get(lid.0).ok_or(OpError::UnknownHandle)?;
        let sid = l.session;
        let s = self.sessions.get_mut(sid.0).ok_or(OpError::UnknownHandle)?;
        if s.local != EndpointState::Active {
            return Err(OpError::IllegalState("session not active"));
        }
        let max = self.config.handle_max.min(s.remote_handle_max);
        let handle = s.handles.alloc(max).ok_or(OpError::NoHandle)?;
        s.local_handles.insert(handle, lid);
        let ch = s.channel;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.remote == EndpointState::Uninit {
            s.awaiting_attach.insert((l.name.clone(), l.role), lid);
        }
        l.handle = handle;
        l.local = EndpointState::Active;
        let c = &l.config;
        let attach = Attach {
            name: l.name.clone(),
            handle,
            role: l.role,
            snd_settle_mode: c.snd_settle_mode,
            rcv_settle_mode: c.rcv_settle_mode,
            source: c.source.clone(),
            target: c.target.clone(),
            unsettled: None,
            incomplete_unsettled: None,
            initial_delivery_count: (l.role == Role::Sender).then_some(l.delivery_count.get()),
            max_message_size: c.max_message_size,
            offered_capabilities: c.offered_capabilities.clone(),
            desired_capabilities: c.desired_capabilities.clone(),
            properties: c.properties.clone(),
        };
        if let Some(m) = c.max_message_size {
            l.max_message_size = m;
        }
        self.write(ch, &attach);
        Ok(())
    }

    pub(super) fn attach(
        &mut self,
        sid: SessionId,
        role: Role,
        config: LinkConfig,
    ) -> Result<LinkId, OpError> {
        self.check_usable()?;
        if self.sessions.get(sid.0).is_none() {
            return Err(OpError::UnknownHandle);
        }
        // Link names are unique per direction between two containers: a second link of the
        // same name and role would make the peer's attach ambiguous.
        let in_use = self.links.keys().any(|k| {
            self.links
                .get(k)
                .is_some_and(|l| l.role == role && *l.name == *config.name)
        });
        if in_use {
            return Err(OpError::IllegalState(
                "a link with this name and role already exists on the connection",
            ));
        }
        let link = Link::new(sid, role, config, self.config.max_message_size);
        let lid = LinkId(self.links.insert(link));
        if let Err(e) = self.write_attach(lid) {
            self.links.remove(lid.0);
            return Err(e);
        }
        if let Some(s) = self.sessions.get_mut(sid.0) {
            s.links.insert(lid);
        }
        Ok(lid)
    }

    /// Attaches a sending link.
    pub fn attach_sender(&mut self, sid: SessionId, config: LinkConfig) -> Result<LinkId, OpError> {
        self.attach(sid, Role::Sender, config)
    }

    /// Attaches a receiving link. Grant credit with [`flow`](Self::flow) to receive.
    pub fn attach_receiver(
        &mut self,
        sid: SessionId,
        config: LinkConfig,
    ) -> Result<LinkId, OpError> {
        self.attach(sid, Role::Receiver, config)
    }

    /// Answers a link the peer attached ([`Event::LinkOpened`] with `remote_initiated`). The
    /// name is taken from the peer's attach; terminus fields default to the peer's.
    pub fn accept_link(&mut self, lid: LinkId, mut config: LinkConfig) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.local != EndpointState::Uninit {
            return Err(OpError::IllegalState("link already attached"));
        }
        config.name = l.name.to_string();
        if let Some(ra) = &l.remote_attach {
            if config.source.is_none() {
                config.source = ra.source.clone();
            }
            if config.target.is_none() {
                config.target = ra.target.clone();
            }
            if config.snd_settle_mode.is_none() {
                config.snd_settle_mode = ra.snd_settle_mode;
            }
            if config.rcv_settle_mode.is_none() {
                config.rcv_settle_mode = ra.rcv_settle_mode;
            }
        }
        l.config = config;
        self.answer_link(lid)
    }

    /// Refuses a link the peer attached: attaches with no terminus, then detaches (closed) with
    /// `error`, as the spec prescribes.
    pub fn refuse_link(&mut self, lid: LinkId, error: Error) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.local != EndpointState::Uninit {
            return Err(OpError::IllegalState("link already attached"));
        }
        l.config.source = None;
        l.config.target = None;
        self.write_attach(lid)?;
        self.write_detach(lid, true, Some(error));
        Ok(())
    }

    /// Detaches (`closed = false`) or closes (`closed = true`) a link.
    pub fn detach(
        &mut self,
        lid: LinkId,
        closed: bool,
        error: Option<Error>,
    ) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.local != EndpointState::Active {
            return Err(OpError::IllegalState("link not attached"));
        }
        self.write_detach(lid, closed, error);
        Ok(())
    }

    /// Grants a receiver `credit` (replacing the current credit) and optionally asks the sender
    /// to drain. Flow frames are coalesced: several calls before the next transmit send one.
    pub fn flow(&mut self, lid: LinkId, credit: u32, drain: bool) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.role != Role::Receiver {
            return Err(OpError::IllegalState(
                "flow is for receivers; senders use drained()",
            ));
        }
        if l.local != EndpointState::Active {
            return Err(OpError::IllegalState("link not attached"));
        }
        l.grant(credit, drain);
        if !l.flow_dirty {
            l.flow_dirty = true;
            self.dirty_links.push(lid);
        }
        Ok(())
    }

    /// Tells a draining receiver we have nothing more to send: the rest of the credit is used up.
    pub fn drained(&mut self, lid: LinkId) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.role != Role::Sender {
            return Err(OpError::IllegalState("drained is for senders"));
        }
        if l.drain_credit() && !l.flow_dirty {
            l.flow_dirty = true;
            self.dirty_links.push(lid);
        }
        Ok(())
    }

    /// Tells the receiver how many messages we could send (`available`).
    pub fn set_available(&mut self, lid: LinkId, available: u32) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        l.available = available;
        if !l.flow_dirty {
            l.flow_dirty = true;
            self.dirty_links.push(lid);
        }
        Ok(())
    }
}
