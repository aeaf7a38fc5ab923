//! The state the handles share with the driver: links, outcome slots, waiters.

use super::*;

// ------------------------------------------------------------------------------------------
// Shared state
// ------------------------------------------------------------------------------------------

/// A minimal slab: stable keys, reused slots.
pub(super) struct Slab<T> {
    pub(super) entries: Vec<Option<T>>,
    pub(super) free: Vec<usize>,
}

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
    pub(super) fn insert(&mut self, v: T) -> usize {
        match self.free.pop() {
            Some(k) => {
                self.entries[k] = Some(v);
                k
            }
            None => {
                self.entries.push(Some(v));
                self.entries.len() - 1
            }
        }
    }
    pub(super) fn get_mut(&mut self, k: usize) -> Option<&mut T> {
        self.entries.get_mut(k).and_then(Option::as_mut)
    }
    pub(super) fn remove(&mut self, k: usize) -> Option<T> {
        let v = self.entries.get_mut(k)?.take();
        if v.is_some() {
            self.free.push(k);
        }
        v
    }
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(k, e)| e.as_mut().map(|v| (k, v)))
    }
}

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

/// The outcome slot of one sent message.
pub(super) enum Slot {
    Pending(Option<Waker>),
    Done(Result<Outcome, ClientError>),
    /// Its `SendFuture` was dropped: freed when the outcome arrives.
    Detached,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Role {
    Sender,
    Receiver,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    Attaching,
    Open,
    Closed,
}

pub(super) enum Disposition {
    Accept,
    Reject(Option<AmqpError>),
    Release,
    Modify(bool, bool),
}

pub(super) enum Command {
    Open(u64, Role, LinkOptions),
    /// A sender has queued messages.
    Pump(u64),
    Dispose(DeliveryHandle, Disposition),
    /// A receiver's credit settings changed, or it consumed enough to top up.
    Credit(u64),
    Drain(u64),
    CloseLink(u64),
    CloseConnection(Option<AmqpError>),
}

pub(super) struct Incoming {
    pub(super) message: ReceivedMessage,
    pub(super) handle: DeliveryHandle,
}

pub(super) struct LinkState {
    pub(super) role: Role,
    pub(super) phase: Phase,
    /// Why operations fail once closed.
    pub(super) error: Option<ClientError>,
    /// What `close()` returns.
    pub(super) close_result: Result<(), ClientError>,
    pub(super) close_requested: bool,
    /// The handle (or open future) is gone.
    pub(super) user_dropped: bool,
    /// The driver forgot the link: the state can go once the user has too.
    pub(super) driver_released: bool,
    /// The peer attached with no terminus: a refusal (a detach follows).
    pub(super) refused: bool,
    pub(super) waiters: Waiters,
    pub(super) remote_address: Option<String>,
    /// Sender: credit not yet used by queued messages (as of the last driver update);
    /// receiver: credit outstanding at the peer.
    pub(super) credit: u32,
    // Sender.
    pub(super) unsent: VecDeque<(Message, usize)>,
    pub(super) send_buffer: usize,
    pub(super) presettled: bool,
    pub(super) pump_queued: bool,
    // Receiver.
    pub(super) incoming: VecDeque<Incoming>,
    pub(super) recv_waker: Option<Waker>,
    pub(super) prefetch: u32,
    pub(super) manual_credit: Option<u32>,
    pub(super) credit_queued: bool,
    pub(super) drains_requested: u64,
    pub(super) drains_done: u64,
}

impl LinkState {
    pub(super) fn new(role: Role, opts: &LinkOptions) -> LinkState {
        LinkState {
            role,
            phase: Phase::Attaching,
            error: None,
            close_result: Ok(()),
            close_requested: false,
            user_dropped: false,
            driver_released: false,
            refused: false,
            waiters: Waiters::default(),
            remote_address: None,
            credit: 0,
            unsent: VecDeque::new(),
            send_buffer: DEFAULT_SEND_BUFFER,
            presettled: opts.options.contains(&LinkOption::AtMostOnce),
            pump_queued: false,
            incoming: VecDeque::new(),
            recv_waker: None,
            prefetch: opts.prefetch.unwrap_or(DEFAULT_PREFETCH),
            manual_credit: None,
            credit_queued: false,
            drains_requested: 0,
            drains_done: 0,
        }
    }

    pub(super) fn closed_error(&self) -> Option<ClientError> {
        (self.phase == Phase::Closed).then(|| {
            self.error.clone().unwrap_or(ClientError::LinkClosed {
                remote: false,
                error: None,
            })
        })
    }

    /// Room for `send` (credit covers it).
    pub(super) fn has_credit_room(&self) -> bool {
        self.unsent.len() < self.credit as usize
    }

    /// Room for `send_nowait`.
    pub(super) fn has_buffer_room(&self) -> bool {
        self.unsent.len() < self.credit as usize + self.send_buffer
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

pub(super) struct State {
    pub(super) commands: Vec<Command>,
    /// A wake-up of the driver is in flight (it clears this before taking the commands).
    pub(super) wake_pending: bool,
    pub(super) phase: ConnPhase,
    pub(super) error: Option<ClientError>,
    pub(super) close_requested: bool,
    pub(super) close_result: Result<(), ClientError>,
    pub(super) peer_error: Option<AmqpError>,
    pub(super) transport_error: Option<TransportError>,
    pub(super) driver_done: bool,
    pub(super) waiters: Waiters,
    pub(super) links: HashMap<u64, LinkState>,
    pub(super) next_link: u64,
    pub(super) slots: Slab<Slot>,
}

impl State {
    /// Queues a command; true if the caller must wake the driver (after unlocking). Once
    /// the connection is closed, commands are dropped.
    #[must_use]
    pub(super) fn push(&mut self, c: Command) -> bool {
        if self.phase == ConnPhase::Closed {
            return false;
        }
        self.commands.push(c);
        !std::mem::replace(&mut self.wake_pending, true)
    }

    pub(super) fn conn_error(&self) -> Option<ClientError> {
        (self.phase == ConnPhase::Closed).then(|| {
            self.error.clone().unwrap_or(ClientError::ConnectionClosed {
                remote: false,
                error: None,
            })
        })
    }

    pub(super) fn complete(&mut self, slot: usize, r: Result<Outcome, ClientError>) {
        match self.slots.get_mut(slot) {
            Some(Slot::Pending(w)) => {
                let w = w.take();
                if let Some(s) = self.slots.get_mut(slot) {
                    *s = Slot::Done(r);
                }
                if let Some(w) = w {
                    w.wake();
                }
            }
            Some(Slot::Detached) => {
                self.slots.remove(slot);
            }
            _ => {}
        }
    }

    pub(super) fn release_link(&mut self, id: u64) {
        if let Some(l) = self.links.get_mut(&id) {
            l.driver_released = true;
            if l.user_dropped {
                self.links.remove(&id);
            }
        }
    }
}

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) driver: driver::Waker,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn wake_driver(&self, needed: bool) {
        if needed {
            self.driver.wake();
        }
    }
}

/// Held by every user handle; the last one dropped closes the connection.
pub(super) struct ClientRef {
    pub(super) shared: Arc<Shared>,
}

impl Drop for ClientRef {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if st.phase != ConnPhase::Closed && !st.close_requested {
            st.close_requested = true;
            let w = st.push(Command::CloseConnection(None));
            drop(st);
            self.shared.wake_driver(w);
        }
    }
}
