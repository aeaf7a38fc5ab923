//! The driver's side: the core behind the lock as an [`IoCore`] the shared driver runs, and
//! what each [`ClientEvent`] completes (futures woken through their wakers).

use super::*;
use bytes::BytesMut;

/// The shared state as the driver sees it: every [`IoCore`] call locks, calls the core, and
/// applies the events the call produced before unlocking.
pub(super) struct Driven(pub(super) Arc<Shared>);

impl Driven {
    fn with<T>(&self, f: impl FnOnce(&mut ClientCore) -> T) -> T {
        let mut st = self.0.lock();
        let r = f(&mut st.core);
        st.apply_events();
        r
    }
}

impl IoCore for Driven {
    fn start(&mut self, now: Instant) {
        self.with(|c| c.start(now));
    }

    fn poll_io(&mut self) -> Option<IoRequest> {
        let mut st = self.0.lock();
        // The driver is polling: what handles change from now on needs a new wake-up.
        st.wake_pending = false;
        let r = st.core.poll_io();
        st.apply_events();
        r
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.0.lock().core.poll_timeout()
    }

    fn is_done(&self) -> bool {
        self.0.lock().core.is_done()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.with(|c| c.handle_timeout(now));
    }

    fn is_transport_live(&self, t: TransportId) -> bool {
        self.0.lock().core.is_transport_live(t)
    }

    fn handle_connected(&mut self, t: TransportId, info: TransportInfo, now: Instant) {
        self.with(|c| c.handle_connected(t, info, now));
    }

    fn handle_connect_failed(&mut self, t: TransportId, reason: TransportError, now: Instant) {
        self.with(|c| c.handle_connect_failed(t, reason, now));
    }

    fn handle_read(&mut self, t: TransportId, data: &[u8], now: Instant) {
        self.with(|c| c.handle_read(t, data, now));
    }

    /// Hands the read buffer over (the engine decodes frames that share its memory).
    fn handle_read_owned(&mut self, t: TransportId, data: BytesMut, now: Instant) {
        self.with(|c| c.handle_read_owned(t, data, now));
    }

    fn handle_disconnected(
        &mut self,
        t: TransportId,
        reason: Option<TransportError>,
        now: Instant,
    ) {
        self.with(|c| c.handle_disconnected(t, reason, now));
    }

    fn handle_listening(
        &mut self,
        acceptor: AcceptorHandle,
        result: Result<u16, TransportError>,
        now: Instant,
    ) {
        self.with(|c| c.handle_listening(acceptor, result, now));
    }

    fn handle_accepted(
        &mut self,
        acceptor: AcceptorHandle,
        info: TransportInfo,
        now: Instant,
    ) -> Option<TransportId> {
        self.with(|c| c.handle_accepted(acceptor, info, now))
    }
}

/// Keeps a receiver's window: credit + queued deliveries = prefetch, topped up in batches
/// (when they fall to half the window). True if a flow was issued.
pub(super) fn top_up(core: &mut ClientCore, lh: LinkHandle, l: &mut LinkState) -> bool {
    if let Some(n) = l.manual_credit {
        // Not attached (reconnecting): granted once it is.
        if core.flow(lh, n).is_ok() {
            l.manual_credit = None;
            return true;
        }
    } else if l.prefetch > 0 {
        let credit = core.credit(lh);
        let queued = l.incoming.len().min(u32::MAX as usize) as u32;
        if credit.saturating_add(queued) <= l.prefetch / 2 {
            return core.flow(lh, l.prefetch.saturating_sub(queued)).is_ok();
        }
    }
    false
}

impl State {
    /// Applies every event the core has queued.
    pub(super) fn apply_events(&mut self) {
        while let Some(ev) = self.core.poll_event() {
            self.apply(ev);
        }
    }

    fn apply(&mut self, ev: ClientEvent) {
        match ev {
            ClientEvent::ConnectionOpened(_) => {
                if self.phase == ConnPhase::Opening {
                    self.phase = ConnPhase::Open;
                }
                self.transport_error = None;
                self.waiters.wake_all();
            }
            ClientEvent::ConnectionError(_, e) => self.peer_error = Some(e),
            ClientEvent::TransportError(_, t) => self.transport_error = Some(t),
            ClientEvent::Disconnected(_, t) => self.on_disconnected(t),
            ClientEvent::ConnectionClosed(_, t) => {
                // Reconnecting gave up (or was off): the error is the last attempt's.
                if t.is_some() {
                    self.transport_error = t;
                }
                self.finish(None);
            }
            ClientEvent::LinkOpened { link, refused } => self.on_link_opened(link, refused),
            ClientEvent::LinkClosed(link, error) => self.on_link_closed(link, error),
            ClientEvent::Sendable(link) => self.pump_sender(link),
            ClientEvent::Message {
                link,
                delivery,
                mut message,
            } => {
                let Some(l) = self.links.get_mut(&link) else {
                    self.core.recycle_message(message);
                    return;
                };
                l.incoming.push_back(Incoming {
                    message: std::mem::take(&mut *message),
                    handle: delivery,
                });
                // The box goes back to the core for the next delivery.
                self.core.recycle_message(message);
                if let Some(w) = l.recv_waker.take() {
                    w.wake();
                }
                top_up(&mut self.core, link, l);
            }
            ClientEvent::Outcome(t, state) => {
                if let Some(ticket) = self.trackers.remove(&t) {
                    self.complete(ticket, Ok(Outcome::from_state(state.as_ref())));
                }
            }
            ClientEvent::InDoubt(t) => {
                if let Some(ticket) = self.trackers.remove(&t) {
                    self.complete(ticket, Ok(Outcome::InDoubt));
                }
            }
            ClientEvent::Drained(link) => {
                if let Some(l) = self.links.get_mut(&link) {
                    l.drains_done = l.drains_requested;
                    l.waiters.wake_all();
                }
            }
            _ => {}
        }
    }

    /// Sends what a sender has queued, as far as the credit goes.
    pub(super) fn pump_sender(&mut self, lh: LinkHandle) {
        let Some(l) = self.links.get_mut(&lh) else {
            return;
        };
        let presettled = l.presettled;
        let mut done = Vec::new();
        while self.core.credit(lh) > 0 {
            let Some((msg, ticket)) = l.unsent.pop_front() else {
                break;
            };
            done.push((ticket, self.core.send(lh, &msg)));
        }
        if l.has_buffer_room(self.core.credit(lh)) {
            l.waiters.wake_all();
        }
        for (ticket, r) in done {
            self.sent(ticket, presettled, r);
        }
    }

    fn on_disconnected(&mut self, t: Option<TransportError>) {
        if t.is_some() {
            self.transport_error = t;
        }
        // Links being closed are dropped by the core on reconnect, without an event.
        let closed: Vec<LinkHandle> = self
            .links
            .iter_mut()
            .filter(|(_, l)| l.close_requested && l.phase == Phase::Open)
            .map(|(&lh, l)| {
                l.phase = Phase::Closed;
                l.wake_all();
                lh
            })
            .collect();
        for lh in closed {
            self.release_link(lh);
        }
    }

    fn on_link_opened(&mut self, lh: LinkHandle, refused: bool) {
        let Some(l) = self.links.get_mut(&lh) else {
            return;
        };
        if l.close_requested {
            self.core.close_link(lh);
            return;
        }
        if refused {
            l.refused = true;
            return;
        }
        l.remote_address = self.core.remote_address(lh);
        if l.phase == Phase::Attaching {
            l.phase = Phase::Open;
        }
        if !l.sender {
            top_up(&mut self.core, lh, l);
        }
        l.waiters.wake_all();
    }

    fn on_link_closed(&mut self, lh: LinkHandle, peer: Option<AmqpError>) {
        let mut failed = Vec::new();
        let mut err = None;
        if let Some(l) = self.links.get_mut(&lh) {
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
            failed.extend(l.unsent.drain(..).map(|(_, t)| t));
            l.wake_all();
            err = Some(error);
        }
        if let Some(err) = err {
            for t in failed {
                self.complete(t, Err(err.clone()));
            }
        }
        // Sent on this link, outcome never came.
        let mut lost = Vec::new();
        self.trackers.retain(|t, ticket| {
            if t.link() == lh {
                lost.push(*ticket);
                false
            } else {
                true
            }
        });
        for t in lost {
            self.complete(t, Ok(Outcome::InDoubt));
        }
        self.release_link(lh);
    }

    /// The connection is over: resolve everything still waiting.
    pub(super) fn finish(&mut self, why: Option<ClientError>) {
        if self.phase != ConnPhase::Closed {
            self.phase = ConnPhase::Closed;
            let err = why
                .or_else(|| {
                    self.peer_error
                        .clone()
                        .map(|e| ClientError::ConnectionClosed {
                            remote: true,
                            error: Some(e),
                        })
                })
                .or_else(|| {
                    if self.close_requested {
                        None
                    } else {
                        Some(match self.transport_error.clone() {
                            Some(t) => ClientError::Transport(t),
                            None => ClientError::ConnectionClosed {
                                remote: true,
                                error: None,
                            },
                        })
                    }
                });
            self.close_result = match &err {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            };
            self.error = err;
        }
        let conn_err = self.conn_error();
        let mut failed = Vec::new();
        for l in self.links.values_mut() {
            if l.phase != Phase::Closed {
                l.phase = Phase::Closed;
                l.error = conn_err.clone();
                if !l.close_requested {
                    l.close_result = Err(conn_err.clone().unwrap_or(ClientError::closed_here()));
                }
            }
            failed.extend(l.unsent.drain(..).map(|(_, t)| t));
            l.core_released = true;
            l.wake_all();
        }
        self.links.retain(|_, l| !l.user_dropped);
        let err = conn_err.unwrap_or(ClientError::ConnectionClosed {
            remote: false,
            error: None,
        });
        for t in failed {
            self.complete(t, Err(err.clone()));
        }
        // Everything else was handed to the engine: its fate is unknown.
        self.trackers.clear();
        let pending: Vec<u64> = self
            .outcomes
            .iter()
            .filter(|(_, s)| !matches!(s, Slot::Done(_)))
            .map(|(&k, _)| k)
            .collect();
        for k in pending {
            self.complete(k, Ok(Outcome::InDoubt));
        }
        self.waiters.wake_all();
    }
}
