//! The driver side: the handler the container runs, and the hook that applies commands.

use super::*;

// ------------------------------------------------------------------------------------------
// The driver side: the handler and the hook
// ------------------------------------------------------------------------------------------

#[derive(Default)]
pub(super) struct Local {
    pub(super) conn: Option<ConnectionHandle>,
    pub(super) links: HashMap<u64, LinkHandle>,
    pub(super) by_handle: HashMap<LinkHandle, u64>,
    pub(super) trackers: HashMap<Tracker, usize>,
    pub(super) commands: Vec<Command>,
    pub(super) batch: Vec<(Message, usize)>,
    pub(super) results: Vec<(usize, Result<Outcome, ClientError>)>,
}

pub(super) struct ClientHandler {
    pub(super) shared: Arc<Shared>,
    pub(super) local: Local,
}

/// Sends what a sender has queued, as far as credit allows, and publishes the credit left.
pub(super) fn pump_sender(
    r: &mut ContainerContext,
    local: &mut Local,
    shared: &Shared,
    id: u64,
    lh: LinkHandle,
) {
    loop {
        let credit = r.credit(lh);
        let presettled;
        {
            let mut st = shared.lock();
            let Some(l) = st.links.get_mut(&id) else {
                return;
            };
            l.pump_queued = false;
            let n = (credit as usize).min(l.unsent.len());
            l.credit = credit - n as u32;
            let room = l.has_buffer_room();
            if n == 0 {
                if room {
                    l.waiters.wake_all();
                }
                return;
            }
            local.batch.extend(l.unsent.drain(..n));
            presettled = l.presettled;
            if room {
                l.waiters.wake_all();
            }
        }
        for (msg, slot) in local.batch.drain(..) {
            match r.send(lh, &msg) {
                Ok(t) if !presettled => {
                    local.trackers.insert(t, slot);
                }
                Ok(_) => local.results.push((slot, Ok(Outcome::Settled))),
                Err(e) => local.results.push((slot, Err(ClientError::from(e)))),
            }
        }
        if !local.results.is_empty() {
            let mut st = shared.lock();
            for (slot, res) in local.results.drain(..) {
                st.complete(slot, res);
            }
        }
    }
}

/// Keeps a receiver's window: credit + queued deliveries = prefetch, topped up in batches.
pub(super) fn top_up(r: &mut ContainerContext, lh: LinkHandle, l: &mut LinkState) {
    if let Some(n) = l.manual_credit {
        if r.flow(lh, n).is_ok() {
            l.manual_credit = None;
        }
    } else if l.prefetch > 0 {
        let credit = r.credit(lh);
        let queued = l.incoming.len().min(u32::MAX as usize) as u32;
        if credit.saturating_add(queued) <= l.prefetch / 2 {
            let _ = r.flow(lh, l.prefetch.saturating_sub(queued));
        }
    }
    l.credit = r.credit(lh);
}

impl ClientHandler {
    pub(super) fn link_id(&self, lh: Option<LinkHandle>) -> Option<(u64, LinkHandle)> {
        let lh = lh?;
        self.local.by_handle.get(&lh).map(|&id| (id, lh))
    }

    /// Applies the commands the handles queued (the driver's hook).
    pub(super) fn hook(core: &mut Core<ClientHandler>) {
        let h = core.handler_mut();
        let shared = h.shared.clone();
        let mut local = std::mem::take(&mut h.local);
        {
            let mut st = shared.lock();
            st.wake_pending = false;
            if st.commands.is_empty() {
                drop(st);
                core.handler_mut().local = local;
                return;
            }
            std::mem::swap(&mut st.commands, &mut local.commands);
        }
        let r = core.context();
        let mut commands = std::mem::take(&mut local.commands);
        for c in commands.drain(..) {
            apply(c, r, &mut local, &shared);
        }
        local.commands = commands;
        core.handler_mut().local = local;
    }

    /// The connection is over: resolve everything still waiting.
    pub(super) fn finish(&mut self, why: Option<ClientError>) {
        let mut st = self.shared.lock();
        if st.phase != ConnPhase::Closed {
            st.phase = ConnPhase::Closed;
            let err = why
                .or_else(|| {
                    st.peer_error
                        .clone()
                        .map(|e| ClientError::ConnectionClosed {
                            remote: true,
                            error: Some(e),
                        })
                })
                .or_else(|| {
                    if st.close_requested {
                        None
                    } else {
                        Some(match st.transport_error.clone() {
                            Some(t) => ClientError::Transport(t),
                            None => ClientError::ConnectionClosed {
                                remote: true,
                                error: None,
                            },
                        })
                    }
                });
            st.close_result = match &err {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            };
            st.error = err;
        }
        let conn_err = st.conn_error();
        let mut failed = Vec::new();
        for l in st.links.values_mut() {
            if l.phase != Phase::Closed {
                l.phase = Phase::Closed;
                l.error = conn_err.clone();
                if !l.close_requested {
                    l.close_result = Err(conn_err.clone().unwrap_or(ClientError::LinkClosed {
                        remote: false,
                        error: None,
                    }));
                }
            }
            failed.extend(l.unsent.drain(..).map(|(_, s)| s));
            l.driver_released = true;
            l.wake_all();
        }
        st.links.retain(|_, l| !l.user_dropped);
        let err = conn_err.unwrap_or(ClientError::ConnectionClosed {
            remote: false,
            error: None,
        });
        for s in failed {
            st.complete(s, Err(err.clone()));
        }
        // Everything else was handed to the engine: its fate is unknown.
        self.local.trackers.clear();
        let pending: Vec<usize> = st
            .slots
            .iter_mut()
            .filter(|(_, s)| !matches!(s, Slot::Done(_)))
            .map(|(k, _)| k)
            .collect();
        for k in pending {
            st.complete(k, Ok(Outcome::InDoubt));
        }
        self.local.links.clear();
        self.local.by_handle.clear();
        st.waiters.wake_all();
    }

    pub(super) fn outcome(&mut self, e: &mut Event<'_>, outcome: Option<Outcome>) {
        let Some(t) = e.tracker() else { return };
        let Some(slot) = self.local.trackers.remove(&t) else {
            return;
        };
        let o = outcome.unwrap_or_else(|| Outcome::from_state(e.remote_state()));
        self.shared.lock().complete(slot, Ok(o));
    }
}

pub(super) fn apply(c: Command, r: &mut ContainerContext, local: &mut Local, shared: &Shared) {
    match c {
        Command::Open(id, role, mut opts) => {
            let Some(conn) = local.conn else { return };
            // The container grants no credit of its own: we keep the window (`top_up`).
            opts.prefetch = Some(0);
            let res = match role {
                Role::Sender => r.create_sender(conn, opts),
                Role::Receiver => r.create_receiver(conn, opts),
            };
            match res {
                Ok(lh) => {
                    local.links.insert(id, lh);
                    local.by_handle.insert(lh, id);
                }
                Err(e) => {
                    let mut st = shared.lock();
                    if let Some(l) = st.links.get_mut(&id) {
                        l.phase = Phase::Closed;
                        l.error = Some(ClientError::from(e));
                        l.close_result = Err(l.error.clone().expect("just set"));
                        l.wake_all();
                    }
                    st.release_link(id);
                }
            }
        }
        Command::Pump(id) => {
            if let Some(&lh) = local.links.get(&id) {
                pump_sender(r, local, shared, id, lh);
            }
        }
        Command::Dispose(d, disp) => {
            let _ = match disp {
                Disposition::Accept => r.accept(d),
                Disposition::Reject(e) => r.reject(d, e),
                Disposition::Release => r.release(d),
                Disposition::Modify(failed, here) => r.modify(d, failed, here),
            };
        }
        Command::Credit(id) => {
            let Some(&lh) = local.links.get(&id) else {
                return;
            };
            let mut st = shared.lock();
            if let Some(l) = st.links.get_mut(&id) {
                l.credit_queued = false;
                top_up(r, lh, l);
            }
        }
        Command::Drain(id) => {
            let Some(&lh) = local.links.get(&id) else {
                return;
            };
            let mut st = shared.lock();
            if let Some(l) = st.links.get_mut(&id) {
                if let Some(n) = l.manual_credit.take() {
                    let _ = r.flow(lh, n);
                }
                // Nothing to drain (or not attached): done at once; the peer would not answer.
                if r.credit(lh) == 0 || r.drain(lh).is_err() {
                    l.drains_done = l.drains_requested;
                    l.waiters.wake_all();
                }
                l.credit = r.credit(lh);
            }
        }
        Command::CloseLink(id) => {
            let Some(&lh) = local.links.get(&id) else {
                return;
            };
            let mut st = shared.lock();
            let Some(l) = st.links.get_mut(&id) else {
                return;
            };
            if l.phase == Phase::Attaching {
                // Closed once attached (`on_link_opened`): the container cannot detach a link
                // that is not attached yet.
                return;
            }
            // A receiver's handle is gone (closed or dropped): what it never took is released.
            let release: Vec<DeliveryHandle> = if l.role == Role::Receiver {
                l.incoming.drain(..).map(|i| i.handle).collect()
            } else {
                Vec::new()
            };
            drop(st);
            for d in release {
                let _ = r.release(d);
            }
            r.close_link(lh);
        }
        Command::CloseConnection(err) => {
            if let Some(conn) = local.conn {
                r.close_connection(conn, err);
            }
            // Proton's stop: wait for the peer's close at most 2 s.
            r.stop();
        }
    }
}

impl MessagingHandler for ClientHandler {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: 0,
            auto_accept: false,
            auto_settle: true,
        }
    }

    fn on_connection_opened(&mut self, _e: &mut Event<'_>) {
        let mut st = self.shared.lock();
        if st.phase == ConnPhase::Opening {
            st.phase = ConnPhase::Open;
        }
        st.transport_error = None;
        st.waiters.wake_all();
    }

    fn on_connection_error(&mut self, e: &mut Event<'_>) {
        self.shared.lock().peer_error = e.error().cloned();
    }

    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        if let Some(t) = e.transport_error() {
            self.shared.lock().transport_error = Some(t.clone());
        }
    }

    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        let mut st = self.shared.lock();
        if let Some(t) = e.transport_error() {
            st.transport_error = Some(t.clone());
        }
        // Links being closed are dropped by the container on reconnect, without an event.
        let mut released = Vec::new();
        for (&id, l) in st.links.iter_mut() {
            l.credit = 0;
            if l.close_requested && l.phase == Phase::Open {
                l.phase = Phase::Closed;
                l.wake_all();
                released.push(id);
            }
        }
        for id in released {
            if let Some(lh) = self.local.links.remove(&id) {
                self.local.by_handle.remove(&lh);
            }
            st.release_link(id);
        }
    }

    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        // Reconnecting gave up (or was off): the error is the last attempt's.
        if let Some(t) = e.transport_error() {
            self.shared.lock().transport_error = Some(t.clone());
        }
        self.finish(None);
    }

    fn on_link_opening(&mut self, e: &mut Event<'_>) {
        // A link the peer initiated: this client does not serve any.
        if let Some(l) = e.link() {
            e.container().close_link(l);
        }
    }

    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        let Some((id, lh)) = self.link_id(e.link()) else {
            return;
        };
        let r = e.container();
        let mut st = self.shared.lock();
        let Some(l) = st.links.get_mut(&id) else {
            return;
        };
        if l.close_requested {
            drop(st);
            r.close_link(lh);
            return;
        }
        // No terminus: the peer refused the link. No attach at all: the link is already
        // detached again. Either way its detach (with the reason) follows.
        let refused = match r.remote_attach(lh) {
            Some(a) => match l.role {
                Role::Sender => a.target.is_none(),
                Role::Receiver => a.source.is_none(),
            },
            None => true,
        };
        if refused {
            l.refused = true;
            return;
        }
        l.remote_address = r.remote_address(lh);
        if l.phase == Phase::Attaching {
            l.phase = Phase::Open;
        }
        match l.role {
            Role::Receiver => top_up(r, lh, l),
            Role::Sender => l.credit = r.credit(lh),
        }
        l.waiters.wake_all();
    }

    fn on_link_closed(&mut self, e: &mut Event<'_>) {
        let Some((id, lh)) = self.link_id(e.link()) else {
            return;
        };
        self.local.links.remove(&id);
        self.local.by_handle.remove(&lh);
        let mut st = self.shared.lock();
        let mut failed = Vec::new();
        let mut err = None;
        if let Some(l) = st.links.get_mut(&id) {
            let peer = e.error().cloned();
            let remote = !l.close_requested || l.refused;
            let error = ClientError::LinkClosed {
                remote,
                error: peer.clone(),
            };
            l.phase = Phase::Closed;
            l.close_result = if peer.is_some() || (remote && l.refused) {
                Err(error.clone())
            } else {
                Ok(())
            };
            l.error = Some(error.clone());
            failed.extend(l.unsent.drain(..).map(|(_, s)| s));
            l.wake_all();
            err = Some(error);
        }
        if let Some(err) = err {
            for s in failed {
                st.complete(s, Err(err.clone()));
            }
        }
        // Sent on this link, outcome never came.
        let mut lost = Vec::new();
        self.local.trackers.retain(|t, s| {
            if t.link() == lh {
                lost.push(*s);
                false
            } else {
                true
            }
        });
        for s in lost {
            st.complete(s, Ok(Outcome::InDoubt));
        }
        st.release_link(id);
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        let Some((id, lh)) = self.link_id(e.sender()) else {
            return;
        };
        pump_sender(e.container(), &mut self.local, &self.shared, id, lh);
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let (Some((id, lh)), Some(d)) = (self.link_id(e.receiver()), e.delivery()) else {
            return;
        };
        let Some(message) = e.take_message() else {
            return;
        };
        let mut st = self.shared.lock();
        let Some(l) = st.links.get_mut(&id) else {
            return;
        };
        l.incoming.push_back(Incoming { message, handle: d });
        if let Some(w) = l.recv_waker.take() {
            w.wake();
        }
        top_up(e.container(), lh, l);
    }

    fn on_drained(&mut self, e: &mut Event<'_>) {
        let Some((id, lh)) = self.link_id(e.receiver()) else {
            return;
        };
        let mut st = self.shared.lock();
        if let Some(l) = st.links.get_mut(&id) {
            l.drains_done = l.drains_requested;
            l.credit = e.container().credit(lh);
            l.waiters.wake_all();
        }
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.outcome(e, None);
    }

    fn on_rejected(&mut self, e: &mut Event<'_>) {
        self.outcome(e, None);
    }

    fn on_released(&mut self, e: &mut Event<'_>) {
        self.outcome(e, None);
    }

    fn on_settled(&mut self, e: &mut Event<'_>) {
        self.outcome(e, None);
    }

    fn on_in_doubt(&mut self, e: &mut Event<'_>) {
        self.outcome(e, Some(Outcome::InDoubt));
    }
}
