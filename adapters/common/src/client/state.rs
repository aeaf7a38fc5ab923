//! The state the handles share with the driver: the sans-IO [`ClientCore`] itself, and
//! beside it what the futures wait on (link phases, queues, the outcome map, wakers).

use super::*;

use rustc_hash::FxHashMap;

/// Wakers of tasks waiting for a state change (several tasks may wait on one link).
#[derive(Default)]
pub(super) struct Waiters(Vec<Waker>);

impl Waiters {
    pub(super) fn register(&mut self, w: &Waker) {
        if !self.0.iter().any(|x| x.will_wake(w)) {
            self.0.push(w.clone());
        }
    }
    pub(super) fn wake_all(&mut self) {
        for w in self.0.drain(..) {
            w.wake();
        }
    }
}

pub(super) fn set_waker(slot: &mut Option<Waker>, w: &Waker) {
    match slot {
        Some(x) if x.will_wake(w) => {}
        _ => *slot = Some(w.clone()),
    }
}

/// The outcome of one sent message, as its [`SendFuture`] sees it.
pub(super) enum Slot {
    Pending(Option<Waker>),
    Done(Result<Outcome, ClientError>),
    /// Its `SendFuture` was dropped: removed when the outcome arrives.
    Detached,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    Attaching,
    Open,
    Closed,
}

pub(super) struct LinkState {
    pub(super) sender: bool,
    pub(super) phase: Phase,
    /// Why operations fail once closed.
    pub(super) error: Option<ClientError>,
    /// What `close()` returns.
    pub(super) close_result: Result<(), ClientError>,
    pub(super) close_requested: bool,
    /// The handle (or open future) is gone.
    pub(super) user_dropped: bool,
    /// The core forgot the link: the state can go once the user has too.
    pub(super) core_released: bool,
    /// The peer attached with no terminus: a refusal (a detach follows).
    pub(super) refused: bool,
    pub(super) waiters: Waiters,
    pub(super) remote_address: Option<String>,
    // Sender: messages waiting for credit, with their outcome tickets.
    pub(super) unsent: VecDeque<(Message, u64)>,
    pub(super) send_buffer: usize,
    pub(super) presettled: bool,
    // Receiver.
    pub(super) incoming: VecDeque<Incoming>,
    pub(super) recv_waker: Option<Waker>,
    pub(super) prefetch: u32,
    pub(super) manual_credit: Option<u32>,
    pub(super) drains_requested: u64,
    pub(super) drains_done: u64,
}

pub(super) struct Incoming {
    pub(super) message: ReceivedMessage,
    pub(super) handle: DeliveryHandle,
}

impl LinkState {
    pub(super) fn new(sender: bool, opts: &LinkOptions) -> LinkState {
        LinkState {
            sender,
            phase: Phase::Attaching,
            error: None,
            close_result: Ok(()),
            close_requested: false,
            user_dropped: false,
            core_released: false,
            refused: false,
            waiters: Waiters::default(),
            remote_address: None,
            unsent: VecDeque::new(),
            send_buffer: DEFAULT_SEND_BUFFER,
            presettled: opts.options.contains(&LinkOption::AtMostOnce),
            incoming: VecDeque::new(),
            recv_waker: None,
            prefetch: opts.prefetch.unwrap_or(DEFAULT_PREFETCH),
            manual_credit: None,
            drains_requested: 0,
            drains_done: 0,
        }
    }

    pub(super) fn closed_error(&self) -> Option<ClientError> {
        (self.phase == Phase::Closed)
            .then(|| self.error.clone().unwrap_or(ClientError::closed_here()))
    }

    /// Room for `send` (the credit covers it).
    pub(super) fn has_credit_room(&self, credit: u32) -> bool {
        self.unsent.len() < credit as usize
    }

    /// Room for `send_nowait`.
    pub(super) fn has_buffer_room(&self, credit: u32) -> bool {
        self.unsent.len() < credit as usize + self.send_buffer
    }

    pub(super) fn wake_all(&mut self) {
        self.waiters.wake_all();
        if let Some(w) = self.recv_waker.take() {
            w.wake();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ConnPhase {
    Opening,
    Open,
    Closed,
}

/// Everything behind the one lock: the core and the async state around it.
pub(super) struct State {
    pub(super) core: ClientCore,
    pub(super) conn: ConnectionHandle,
    /// A wake-up of the driver is in flight (cleared when the driver polls the core).
    pub(super) wake_pending: bool,
    pub(super) phase: ConnPhase,
    pub(super) error: Option<ClientError>,
    pub(super) close_requested: bool,
    pub(super) close_result: Result<(), ClientError>,
    pub(super) peer_error: Option<AmqpError>,
    pub(super) transport_error: Option<TransportError>,
    pub(super) waiters: Waiters,
    pub(super) links: FxHashMap<LinkHandle, LinkState>,
    /// The outcome of every message sent or queued, by ticket.
    pub(super) outcomes: FxHashMap<u64, Slot>,
    /// The ticket of every message the core sent whose outcome is still awaited.
    pub(super) trackers: FxHashMap<Tracker, u64>,
    pub(super) next_ticket: u64,
}

impl State {
    pub(super) fn new(core: ClientCore, conn: ConnectionHandle) -> State {
        State {
            core,
            conn,
            wake_pending: false,
            phase: ConnPhase::Opening,
            error: None,
            close_requested: false,
            close_result: Ok(()),
            peer_error: None,
            transport_error: None,
            waiters: Waiters::default(),
            links: FxHashMap::default(),
            outcomes: FxHashMap::default(),
            trackers: FxHashMap::default(),
            next_ticket: 0,
        }
    }

    /// True if the caller must wake the driver (after unlocking) to act on what it changed.
    #[must_use]
    pub(super) fn wake_needed(&mut self) -> bool {
        self.phase != ConnPhase::Closed && !std::mem::replace(&mut self.wake_pending, true)
    }

    pub(super) fn conn_error(&self) -> Option<ClientError> {
        (self.phase == ConnPhase::Closed).then(|| {
            self.error.clone().unwrap_or(ClientError::ConnectionClosed {
                remote: false,
                error: None,
            })
        })
    }

    /// A new outcome slot.
    pub(super) fn ticket(&mut self, slot: Slot) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        self.outcomes.insert(t, slot);
        t
    }

    pub(super) fn complete(&mut self, ticket: u64, r: Result<Outcome, ClientError>) {
        let Some(slot) = self.outcomes.get_mut(&ticket) else {
            return;
        };
        match slot {
            Slot::Pending(w) => {
                let w = w.take();
                *slot = Slot::Done(r);
                if let Some(w) = w {
                    w.wake();
                }
            }
            Slot::Detached => {
                self.outcomes.remove(&ticket);
            }
            Slot::Done(_) => {}
        }
    }

    /// The core sent (or failed to send) a message: its outcome now waits for the peer,
    /// is known (pre-settled), or is the error.
    pub(super) fn sent(
        &mut self,
        ticket: u64,
        presettled: bool,
        r: Result<Tracker, MessagingError>,
    ) {
        match r {
            Ok(t) if !presettled => {
                self.trackers.insert(t, ticket);
            }
            Ok(_) => self.complete(ticket, Ok(Outcome::Settled)),
            Err(e) => self.complete(ticket, Err(ClientError::from(e))),
        }
    }

    /// The core is done with a link: its state goes once the user's handle has gone too.
    pub(super) fn release_link(&mut self, lh: LinkHandle) {
        if let Some(l) = self.links.get_mut(&lh) {
            l.core_released = true;
            if l.user_dropped {
                self.links.remove(&lh);
            }
        }
    }

    /// Requests a link's close (once); true if anything changed.
    pub(super) fn close_link(&mut self, lh: LinkHandle) -> bool {
        if self.phase == ConnPhase::Closed {
            return false;
        }
        let Some(l) = self.links.get_mut(&lh) else {
            return false;
        };
        if l.close_requested || l.phase == Phase::Closed {
            return false;
        }
        l.close_requested = true;
        if l.phase == Phase::Attaching {
            // Closed once attached (`LinkOpened`): a link is detached only once attached.
            return false;
        }
        // A receiver's handle is gone (closed or dropped): what it never took is released.
        let release: Vec<DeliveryHandle> = l.incoming.drain(..).map(|i| i.handle).collect();
        for d in release {
            // A delivery of an earlier transport cannot be settled any more: nothing to do.
            let _ = self.core.dispose(d, Some(DeliveryState::released()));
        }
        self.core.close_link(lh);
        true
    }

    /// Closes the connection (once); true if anything changed.
    pub(super) fn close_connection(&mut self, error: Option<AmqpError>) -> bool {
        if self.close_requested || self.phase == ConnPhase::Closed {
            return false;
        }
        self.close_requested = true;
        self.core.close(self.conn, error);
        true
    }
}

/// The lock and the driver's wake-up.
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) driver: driver::Waker,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state, then wakes the driver if `f` changed the core and no wake-up
    /// is in flight.
    pub(super) fn update<T>(&self, f: impl FnOnce(&mut State) -> (T, bool)) -> T {
        let mut st = self.lock();
        let (r, changed) = f(&mut st);
        let wake = changed && st.wake_needed();
        drop(st);
        if wake {
            self.driver.wake();
        }
        r
    }
}

/// Held by every user handle; the last one dropped closes the connection.
pub(super) struct ClientRef {
    pub(super) shared: Arc<Shared>,
}

impl Drop for ClientRef {
    fn drop(&mut self) {
        self.shared.update(|st| ((), st.close_connection(None)));
    }
}
