//! The async API: [`Client`] and its connection, senders, receivers and deliveries.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use amqp_engine::messaging::{
    ConnectOptions, ConnectionHandle, ContainerContext, DeliveryHandle, Event, HandlerOptions,
    LinkHandle, LinkOption, LinkOptions, MessagingError, MessagingHandler, SansIoContainer as Core,
    Tracker, TransportError, Url,
};
use amqp_proto::definitions::Error as AmqpError;
use amqp_proto::message::{Message, ReceivedMessage};
use amqp_proto::messaging::{DeliveryState, Modified};

use crate::driver;
use crate::runtime::Runtime;

/// Receiver credit window when [`LinkOptions::prefetch`] is unset (Proton's default, 10).
pub const DEFAULT_PREFETCH: u32 = 10;

/// Messages [`Sender::send_nowait`] queues beyond the link credit (see
/// [`Sender::set_send_buffer`]).
pub const DEFAULT_SEND_BUFFER: usize = 1024;

// ------------------------------------------------------------------------------------------
// Public value types
// ------------------------------------------------------------------------------------------

/// Errors of the async API. They say who caused them (`remote`) and carry the peer's AMQP
/// error condition when there is one.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum ClientError {
    /// The container refused an operation (bad URL or options, message too large, …).
    Messaging(Box<MessagingError>),
    /// The transport could not be established or was lost, and no reconnect follows; the
    /// error's [`kind`](TransportError::kind) tells refused, DNS, TLS, authentication, timeout
    /// and protocol failures apart.
    Transport(TransportError),
    /// The connection is closed: by us (`remote: false`) or by the peer.
    ConnectionClosed {
        /// The peer closed it (or refused it).
        remote: bool,
        /// The peer's error condition.
        error: Option<AmqpError>,
    },
    /// The link is closed: by us (`remote: false`), or refused or detached by the peer.
    LinkClosed {
        /// The peer closed (or refused) it.
        remote: bool,
        /// The peer's error condition.
        error: Option<AmqpError>,
    },
    /// The delivery was already settled (accepted, rejected, released or modified).
    AlreadySettled,
}

impl ClientError {
    /// The peer's AMQP error condition, if the peer gave one.
    pub fn condition(&self) -> Option<&AmqpError> {
        match self {
            ClientError::ConnectionClosed { error, .. } | ClientError::LinkClosed { error, .. } => {
                error.as_ref()
            }
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn cond(f: &mut fmt::Formatter<'_>, e: &Option<AmqpError>) -> fmt::Result {
            match e {
                Some(e) => {
                    write!(f, ": {}", e.condition.as_str())?;
                    if let Some(d) = &e.description {
                        write!(f, " ({})", &**d)?;
                    }
                    Ok(())
                }
                None => Ok(()),
            }
        }
        match self {
            ClientError::Messaging(e) => write!(f, "{e}"),
            ClientError::Transport(e) => write!(f, "transport failed: {e}"),
            ClientError::ConnectionClosed { remote, error } => {
                f.write_str(if *remote {
                    "connection closed by the peer"
                } else {
                    "connection closed"
                })?;
                cond(f, error)
            }
            ClientError::LinkClosed { remote, error } => {
                f.write_str(if *remote {
                    "link closed by the peer"
                } else {
                    "link closed"
                })?;
                cond(f, error)
            }
            ClientError::AlreadySettled => f.write_str("delivery already settled"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Messaging(e) => Some(&**e),
            ClientError::Transport(e) => Some(e),
            _ => None,
        }
    }
}

impl From<MessagingError> for ClientError {
    fn from(e: MessagingError) -> Self {
        ClientError::Messaging(Box::new(e))
    }
}

/// Why [`Sender::send_nowait`] did not queue a message; the message comes back (boxed, so
/// the `Result` stays small on the fast path).
#[derive(Debug)]
pub enum TrySendError {
    /// `credit + send_buffer` messages already wait: retry after [`Sender::ready`].
    Full(Box<Message>),
    /// The link or connection is closed.
    Closed(Box<Message>, ClientError),
}

impl TrySendError {
    /// The message that was not sent.
    pub fn into_message(self) -> Message {
        match self {
            TrySendError::Full(m) | TrySendError::Closed(m, _) => *m,
        }
    }

    /// The error, for [`TrySendError::Closed`].
    pub fn error(&self) -> Option<&ClientError> {
        match self {
            TrySendError::Full(_) => None,
            TrySendError::Closed(_, e) => Some(e),
        }
    }
}

impl fmt::Display for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("send buffer full (no credit)"),
            TrySendError::Closed(_, e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TrySendError {}

/// The fate of a sent message.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The peer accepted it.
    Accepted,
    /// The peer rejected it (invalid, not to be redelivered), with its reason.
    Rejected(Option<AmqpError>),
    /// The peer released it: not processed, may be redelivered.
    Released,
    /// The peer did not process it and asks for modifications for redelivery.
    Modified(Modified),
    /// Settled without a terminal outcome: sent pre-settled ([`LinkOption::AtMostOnce`]), or
    /// settled by the peer with no outcome.
    Settled,
    /// The transport was lost, or the link or connection closed, before the outcome arrived:
    /// the peer may or may not have it. Resend for at-least-once delivery.
    InDoubt,
}

impl Outcome {
    /// True for [`Outcome::Accepted`].
    pub fn is_accepted(&self) -> bool {
        matches!(self, Outcome::Accepted)
    }

    fn from_state(state: Option<&DeliveryState>) -> Outcome {
        match state {
            Some(DeliveryState::Accepted(_)) => Outcome::Accepted,
            Some(DeliveryState::Rejected(r)) => Outcome::Rejected(r.error.clone()),
            Some(DeliveryState::Released(_)) => Outcome::Released,
            Some(DeliveryState::Modified(m)) => Outcome::Modified(m.clone()),
            _ => Outcome::Settled,
        }
    }
}

/// Where [`Client::open`] connects: a URL (`&str`, `String`, [`Url`]) or full
/// [`ConnectOptions`] (failover URLs, reconnect, SASL, TLS, heartbeat, …).
#[derive(Debug)]
pub enum ConnectTarget {
    /// A URL, parsed by `open`.
    Url(String),
    /// Connect options.
    Options(Box<ConnectOptions>),
}

impl From<&str> for ConnectTarget {
    fn from(s: &str) -> Self {
        ConnectTarget::Url(s.to_string())
    }
}
impl From<String> for ConnectTarget {
    fn from(s: String) -> Self {
        ConnectTarget::Url(s)
    }
}
impl From<&String> for ConnectTarget {
    fn from(s: &String) -> Self {
        ConnectTarget::Url(s.clone())
    }
}
impl From<Url> for ConnectTarget {
    fn from(u: Url) -> Self {
        ConnectTarget::Options(Box::new(ConnectOptions::new().url(u)))
    }
}
impl From<ConnectOptions> for ConnectTarget {
    fn from(o: ConnectOptions) -> Self {
        ConnectTarget::Options(Box::new(o))
    }
}

// ------------------------------------------------------------------------------------------
// Shared state
// ------------------------------------------------------------------------------------------

/// A minimal slab: stable keys, reused slots.
struct Slab<T> {
    entries: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
    fn insert(&mut self, v: T) -> usize {
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
    fn get_mut(&mut self, k: usize) -> Option<&mut T> {
        self.entries.get_mut(k).and_then(Option::as_mut)
    }
    fn remove(&mut self, k: usize) -> Option<T> {
        let v = self.entries.get_mut(k)?.take();
        if v.is_some() {
            self.free.push(k);
        }
        v
    }
    fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(k, e)| e.as_mut().map(|v| (k, v)))
    }
}

/// Wakers of tasks waiting for a state change (several tasks may wait on one link).
#[derive(Default)]
struct Waiters(Vec<Waker>);

impl Waiters {
    fn register(&mut self, w: &Waker) {
        if !self.0.iter().any(|x| x.will_wake(w)) {
            self.0.push(w.clone());
        }
    }
    fn wake_all(&mut self) {
        for w in self.0.drain(..) {
            w.wake();
        }
    }
}

fn set_waker(slot: &mut Option<Waker>, w: &Waker) {
    match slot {
        Some(x) if x.will_wake(w) => {}
        _ => *slot = Some(w.clone()),
    }
}

/// The outcome slot of one sent message.
enum Slot {
    Pending(Option<Waker>),
    Done(Result<Outcome, ClientError>),
    /// Its `SendFuture` was dropped: freed when the outcome arrives.
    Detached,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Sender,
    Receiver,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Attaching,
    Open,
    Closed,
}

enum Disposition {
    Accept,
    Reject(Option<AmqpError>),
    Release,
    Modify(bool, bool),
}

enum Command {
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

struct Incoming {
    message: ReceivedMessage,
    handle: DeliveryHandle,
}

struct LinkState {
    role: Role,
    phase: Phase,
    /// Why operations fail once closed.
    error: Option<ClientError>,
    /// What `close()` returns.
    close_result: Result<(), ClientError>,
    close_requested: bool,
    /// The handle (or open future) is gone.
    user_dropped: bool,
    /// The driver forgot the link: the state can go once the user has too.
    driver_released: bool,
    /// The peer attached with no terminus: a refusal (a detach follows).
    refused: bool,
    waiters: Waiters,
    remote_address: Option<String>,
    /// Sender: credit not yet used by queued messages (as of the last driver update);
    /// receiver: credit outstanding at the peer.
    credit: u32,
    // Sender.
    unsent: VecDeque<(Message, usize)>,
    send_buffer: usize,
    presettled: bool,
    pump_queued: bool,
    // Receiver.
    incoming: VecDeque<Incoming>,
    recv_waker: Option<Waker>,
    prefetch: u32,
    manual_credit: Option<u32>,
    credit_queued: bool,
    drains_requested: u64,
    drains_done: u64,
}

impl LinkState {
    fn new(role: Role, opts: &LinkOptions) -> LinkState {
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

    fn closed_error(&self) -> Option<ClientError> {
        (self.phase == Phase::Closed).then(|| {
            self.error.clone().unwrap_or(ClientError::LinkClosed {
                remote: false,
                error: None,
            })
        })
    }

    /// Room for `send` (credit covers it).
    fn has_credit_room(&self) -> bool {
        self.unsent.len() < self.credit as usize
    }

    /// Room for `send_nowait`.
    fn has_buffer_room(&self) -> bool {
        self.unsent.len() < self.credit as usize + self.send_buffer
    }

    fn wake_all(&mut self) {
        self.waiters.wake_all();
        if let Some(w) = self.recv_waker.take() {
            w.wake();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ConnPhase {
    Opening,
    Open,
    Closed,
}

struct State {
    commands: Vec<Command>,
    /// A wake-up of the driver is in flight (it clears this before taking the commands).
    wake_pending: bool,
    phase: ConnPhase,
    error: Option<ClientError>,
    close_requested: bool,
    close_result: Result<(), ClientError>,
    peer_error: Option<AmqpError>,
    transport_error: Option<TransportError>,
    driver_done: bool,
    waiters: Waiters,
    links: HashMap<u64, LinkState>,
    next_link: u64,
    slots: Slab<Slot>,
}

impl State {
    /// Queues a command; true if the caller must wake the driver (after unlocking). Once
    /// the connection is closed, commands are dropped.
    #[must_use]
    fn push(&mut self, c: Command) -> bool {
        if self.phase == ConnPhase::Closed {
            return false;
        }
        self.commands.push(c);
        !std::mem::replace(&mut self.wake_pending, true)
    }

    fn conn_error(&self) -> Option<ClientError> {
        (self.phase == ConnPhase::Closed).then(|| {
            self.error.clone().unwrap_or(ClientError::ConnectionClosed {
                remote: false,
                error: None,
            })
        })
    }

    fn complete(&mut self, slot: usize, r: Result<Outcome, ClientError>) {
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

    fn release_link(&mut self, id: u64) {
        if let Some(l) = self.links.get_mut(&id) {
            l.driver_released = true;
            if l.user_dropped {
                self.links.remove(&id);
            }
        }
    }
}

struct Shared {
    state: Mutex<State>,
    driver: driver::Waker,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_driver(&self, needed: bool) {
        if needed {
            self.driver.wake();
        }
    }
}

/// Held by every user handle; the last one dropped closes the connection.
struct ClientRef {
    shared: Arc<Shared>,
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

// ------------------------------------------------------------------------------------------
// The driver side: the handler and the hook
// ------------------------------------------------------------------------------------------

#[derive(Default)]
struct Local {
    conn: Option<ConnectionHandle>,
    links: HashMap<u64, LinkHandle>,
    by_handle: HashMap<LinkHandle, u64>,
    trackers: HashMap<Tracker, usize>,
    commands: Vec<Command>,
    batch: Vec<(Message, usize)>,
    results: Vec<(usize, Result<Outcome, ClientError>)>,
}

struct ClientHandler {
    shared: Arc<Shared>,
    local: Local,
}

/// Sends what a sender has queued, as far as credit allows, and publishes the credit left.
fn pump_sender(
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
fn top_up(r: &mut ContainerContext, lh: LinkHandle, l: &mut LinkState) {
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
    fn link_id(&self, lh: Option<LinkHandle>) -> Option<(u64, LinkHandle)> {
        let lh = lh?;
        self.local.by_handle.get(&lh).map(|&id| (id, lh))
    }

    /// Applies the commands the handles queued (the driver's hook).
    fn hook(core: &mut Core<ClientHandler>) {
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
    fn finish(&mut self, why: Option<ClientError>) {
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

    fn outcome(&mut self, e: &mut Event<'_>, outcome: Option<Outcome>) {
        let Some(t) = e.tracker() else { return };
        let Some(slot) = self.local.trackers.remove(&t) else {
            return;
        };
        let o = outcome.unwrap_or_else(|| Outcome::from_state(e.remote_state()));
        self.shared.lock().complete(slot, Ok(o));
    }
}

fn apply(c: Command, r: &mut ContainerContext, local: &mut Local, shared: &Shared) {
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

// ------------------------------------------------------------------------------------------
// Client and Connection
// ------------------------------------------------------------------------------------------

/// Opens connections on runtime `R`. Runtime crates alias it: `amqp_tokio::Client`.
///
/// The idiomatic async API, on any [`Runtime`]: `Client::open(url).await`, `open_sender`,
/// `sender.send(msg).await -> Outcome`, `receiver.recv().await -> Delivery`.
///
/// The guide's "Hello World!" with the async API (here against an in-process peer):
///
/// ```
/// use amqp_tokio::{Client, Outcome};
/// use amqp_tokio::amqp_proto::message::Message;
///
/// # use amqp_tokio::{Container, Event, MessagingHandler};
/// # /// An in-process peer on a free loopback port: accepts what it receives, and sends
/// # /// "Hello World!" once on each link it sends on.
/// # #[derive(Default)]
/// # struct Peer { port: Option<tokio::sync::oneshot::Sender<u16>>, sent: bool }
/// # impl MessagingHandler for Peer {
/// #     fn on_start(&mut self, e: &mut Event<'_>) { e.container().listen("127.0.0.1:0").unwrap(); }
/// #     fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
/// #         let acceptor = e.acceptor().unwrap();
/// #         let port = e.container().acceptor_port(acceptor).unwrap();
/// #         let _ = self.port.take().unwrap().send(port);
/// #     }
/// #     fn on_sendable(&mut self, e: &mut Event<'_>) {
/// #         if !self.sent {
/// #             self.sent = true;
/// #             e.send(&amqp_tokio::amqp_proto::message::Message::new("Hello World!")).unwrap();
/// #         }
/// #     }
/// # }
/// # async fn peer() -> String {
/// #     let (tx, rx) = tokio::sync::oneshot::channel();
/// #     let peer = Peer { port: Some(tx), ..Peer::default() };
/// #     tokio::spawn(Container::with_id(peer, "peer").run_async());
/// #     format!("amqp://127.0.0.1:{}", rx.await.unwrap())
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), amqp_tokio::ClientError> {
/// # let url = peer().await;
/// let conn = Client::open(url.as_str()).await?;
/// let sender = conn.open_sender("examples").await?;
/// let outcome = sender.send(Message::new("Hello World!")).await?;
/// assert_eq!(outcome, Outcome::Accepted);
/// let mut receiver = conn.open_receiver("examples").await?;
/// let delivery = receiver.recv().await.expect("a message");
/// assert_eq!(delivery.message().body_str(), Some("Hello World!"));
/// delivery.accept()?;
/// conn.close().await
/// # }
/// ```
///
/// The API is generic over [`Runtime`]; a runtime crate exposes it with one alias
/// (`pub type Client = amqp_adapter::Client<MyRuntime>;`), as `amqp-tokio` does.
///
/// # How it works
///
/// [`Client::open`] spawns one *driver task* on the runtime. It owns a sans-IO
/// [`SansIoContainer`](amqp_engine::messaging::SansIoContainer) with one connection and an internal
/// [`MessagingHandler`], and runs the shared driver loop. The handles
/// ([`Connection`], [`Sender`], [`Receiver`], [`Delivery`], [`SendFuture`]) share one
/// `Mutex`-protected state with the driver, and wakers:
///
/// * the handler pushes each incoming delivery onto its receiver's queue and wakes the task
///   waiting in [`Receiver::recv`] (if any: one wake per wait, not per delivery);
/// * each sent message has an *outcome slot*, completed by the handler when the peer's
///   disposition arrives; the [`SendFuture`] reads it;
/// * user operations (send, accept, credit, close, …) push commands onto a queue and wake the
///   driver — at most one wake-up is in flight, however many commands are queued; the driver's
///   hook applies them all at the top of its next iteration. Messages are encoded once, by
///   the engine, straight into the output buffer; dispositions and flow frames are batched
///   by the engine as usual.
///
/// No channel message is sent per delivery, per send or per outcome.
///
/// # Flow control and back-pressure
///
/// * **Receivers** keep a credit window of `prefetch` messages (default [`DEFAULT_PREFETCH`],
///   set with [`LinkOptions::prefetch`] or [`Receiver::set_prefetch`]). Credit is granted for
///   what the application has *consumed* with `recv`, in batches (when credit plus queued
///   deliveries fall to half the window), so a slow consumer holds at most `prefetch`
///   deliveries in memory. `prefetch: Some(0)` or [`Receiver::set_credit`] switches to
///   manual credit; [`Receiver::drain`] asks the sender to use or give up the credit.
/// * **Senders**: [`Sender::send`] waits while the link has no credit, so memory is bounded by
///   the peer's credit. [`Sender::send_nowait`] never waits: it queues the message if fewer
///   than `credit + send_buffer` messages wait to go out (the buffer is
///   [`DEFAULT_SEND_BUFFER`], see [`Sender::set_send_buffer`]; it lets an application queue
///   before the first credit arrives) and otherwise hands the message back in
///   [`TrySendError::Full`]; [`Sender::ready`] waits until it would queue. Queued messages
///   go out as credit arrives, in order. The returned [`SendFuture`] resolves to the outcome.
///
/// # Cancel safety
///
/// | operation | what dropping its future before completion does |
/// |---|---|
/// | [`Client::open`] | the connection attempt is abandoned: closed, driver task ends |
/// | [`Connection::open_sender`] / [`open_receiver`](Connection::open_receiver) | the link being attached is closed once attached; nothing leaks |
/// | [`Sender::ready`] | nothing: cancel-safe |
/// | [`Sender::send`], waiting for credit | the message is dropped with the future and never sent |
/// | [`Sender::send`], message queued | nothing lost: the message is still sent; only its outcome is discarded |
/// | [`SendFuture`] (from [`Sender::send_nowait`]) | the message is still sent; the outcome is discarded |
/// | [`Receiver::recv`] | nothing: cancel-safe, no delivery is lost (a delivery is only taken off the queue by the poll that returns it) |
/// | [`Receiver::drain`] | the drain still completes (credit ends at 0); only the notification is lost |
/// | [`Sender::close`] / [`Receiver::close`] | the link is still closed (dropping a link handle closes it too) |
/// | [`Connection::close`] | once polled, the connection is still closed |
///
/// Dropping a handle: dropping a [`Sender`] or [`Receiver`] closes its link (deliveries queued
/// in a dropped receiver and not yet returned by `recv` are released, so the peer can
/// redeliver them); dropping the last handle of a connection (every [`Connection`] clone, link,
/// [`Delivery`] and [`SendFuture`]) closes it.
///
/// # Shutdown and reconnect
///
/// [`Connection::close`] sends `close` and waits for the peer's `close` (at most 2 s, Proton's
/// stop grace period; then the transport is dropped). Then every pending [`SendFuture`]
/// resolves: messages the engine had sent whose outcome had not arrived to
/// [`Outcome::InDoubt`], messages still queued for credit to [`ClientError::ConnectionClosed`];
/// [`Receiver::recv`] returns the deliveries already queued, then `None`.
///
/// With reconnect on (Proton's default, [`ConnectOptions::reconnect`]), a lost transport is
/// re-established and links re-attached, invisibly to the handles: messages sent but not
/// settled resolve to [`Outcome::InDoubt`] (resend them for at-least-once delivery), queued
/// ones go out on the new transport. Deliveries received on the old transport can no longer
/// be settled (their `accept` is silently ignored by the engine; the peer redelivers them).
/// [`Client::open`] keeps retrying per the reconnect policy until the connection opens: use
/// `reconnect(false)`, [`ReconnectLimits`](amqp_engine::messaging::ReconnectLimits) or a
/// timeout to fail fast.
pub struct Client<R> {
    _r: PhantomData<fn() -> R>,
}

impl<R: Runtime + Default> Client<R> {
    /// Connects, and resolves once the peer's `open` arrives.
    ///
    /// `target` is a URL (`amqp[s]://[user[:password]@]host[:port]`) or
    /// [`ConnectOptions`] (failover URLs, reconnect, SASL, TLS, …). One driver task is
    /// spawned on the runtime for the connection. With reconnect on (the default) failed
    /// attempts are retried per the policy; with `reconnect(false)` the first failure is
    /// returned as [`ClientError::Transport`].
    ///
    /// Cancel safety: dropping the future abandons the attempt (the connection is closed
    /// and the driver task ends).
    ///
    /// ```no_run
    /// use amqp_adapter::{Client, Outcome};
    /// use amqp_adapter::amqp_proto::message::Message;
    /// use amqp_adapter::amqp_engine::messaging::{ConnectOptions, Url};
    ///
    /// # async fn example<R: amqp_adapter::Runtime + Default>() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Client::<R>::open("amqp://localhost:5672").await?;
    /// // Or with options: no reconnect, so a refused connection fails at once.
    /// let other = Client::<R>::open(
    ///     ConnectOptions::new().url(Url::parse("amqp://localhost")?).reconnect(false),
    /// )
    /// .await?;
    /// let sender = conn.open_sender("examples").await?;
    /// let outcome = sender.send(Message::new("Hello World!")).await?;
    /// assert_eq!(outcome, Outcome::Accepted);
    /// conn.close().await?;
    /// other.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(target: impl Into<ConnectTarget>) -> Result<Connection, ClientError> {
        Self::open_on(R::default(), target).await
    }
}

impl<R: Runtime> Client<R> {
    /// [`open`](Self::open) on a given runtime instance.
    pub async fn open_on(
        rt: R,
        target: impl Into<ConnectTarget>,
    ) -> Result<Connection, ClientError> {
        let options = match target.into() {
            ConnectTarget::Url(u) => ConnectOptions::new()
                .url(Url::parse(&u).map_err(|e| ClientError::from(MessagingError::Url(e)))?),
            ConnectTarget::Options(o) => *o,
        };
        let (waker, tx, mut rx) = driver::wake_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                commands: Vec::new(),
                wake_pending: false,
                phase: ConnPhase::Opening,
                error: None,
                close_requested: false,
                close_result: Ok(()),
                peer_error: None,
                transport_error: None,
                driver_done: false,
                waiters: Waiters::default(),
                links: HashMap::new(),
                next_link: 1,
                slots: Slab::new(),
            }),
            driver: waker,
        });
        let handler = ClientHandler {
            shared: shared.clone(),
            local: Local::default(),
        };
        let mut core = Core::with_id(handler, crate::new_uuid(), Instant::now());
        crate::prepare(&mut core);
        let conn = core.context().connect_with(options)?;
        core.handler_mut().local.conn = Some(conn);
        let rt2 = rt.clone();
        rt.spawn(Box::pin(async move {
            let mut core = core;
            driver::drive_with(
                &mut core,
                rt2,
                tx,
                &mut rx,
                Some(|c: &mut Core<ClientHandler>| ClientHandler::hook(c)),
            )
            .await;
            let h = core.handler_mut();
            h.finish(None);
            let mut st = h.shared.lock();
            st.driver_done = true;
            st.waiters.wake_all();
        }));
        let inner = Arc::new(ClientRef { shared });
        poll_fn(|cx| {
            let mut st = inner.shared.lock();
            match st.phase {
                ConnPhase::Open => Poll::Ready(Ok(())),
                ConnPhase::Closed => Poll::Ready(Err(st.conn_error().unwrap_or(
                    ClientError::ConnectionClosed {
                        remote: false,
                        error: None,
                    },
                ))),
                ConnPhase::Opening => {
                    st.waiters.register(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await?;
        Ok(Connection { inner })
    }
}

/// An open connection. Clones share it; the connection closes when [`close`](Self::close) is
/// called or when the last handle (connection, link, delivery or send future) is dropped.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<ClientRef>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.shared.lock();
        f.debug_struct("Connection")
            .field("phase", &st.phase)
            .field("links", &st.links.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Attaches a sender to an address (`"queue"`) or with [`LinkOptions`] (name,
    /// `AtMostOnce`, dynamic target, …); resolves once the peer has attached.
    ///
    /// Errors: [`ClientError::LinkClosed`] if the peer refused it (with its condition),
    /// [`ClientError::ConnectionClosed`] if the connection is closed. Cancel safety: dropping the
    /// future closes the link being attached.
    pub async fn open_sender(
        &self,
        options: impl Into<LinkOptions>,
    ) -> Result<Sender, ClientError> {
        let link = self.open_link(Role::Sender, options.into()).await?;
        Ok(Sender { link })
    }

    /// Attaches a receiver from an address (`"queue"`) or with [`LinkOptions`] (selector,
    /// `DurableSubscription`, `prefetch`, `LinkOptions::dynamic()` for a reply queue — see
    /// [`Receiver::address`]); resolves once the peer has attached. Credit: a window of
    /// `options.prefetch` (default [`DEFAULT_PREFETCH`]); `Some(0)` for manual credit.
    ///
    /// Errors and cancel safety as [`open_sender`](Self::open_sender).
    pub async fn open_receiver(
        &self,
        options: impl Into<LinkOptions>,
    ) -> Result<Receiver, ClientError> {
        let link = self.open_link(Role::Receiver, options.into()).await?;
        Ok(Receiver {
            link,
            auto_accept: true,
        })
    }

    async fn open_link(&self, role: Role, opts: LinkOptions) -> Result<LinkRef, ClientError> {
        let shared = &self.inner.shared;
        let (id, wake) = {
            let mut st = shared.lock();
            if let Some(e) = st.conn_error() {
                return Err(e);
            }
            let id = st.next_link;
            st.next_link += 1;
            st.links.insert(id, LinkState::new(role, &opts));
            (id, st.push(Command::Open(id, role, opts)))
        };
        shared.wake_driver(wake);
        let link = LinkRef {
            conn: self.inner.clone(),
            id,
        };
        poll_fn(|cx| {
            let mut st = shared.lock();
            let Some(l) = st.links.get_mut(&id) else {
                return Poll::Ready(Err(ClientError::LinkClosed {
                    remote: false,
                    error: None,
                }));
            };
            match l.phase {
                Phase::Open => Poll::Ready(Ok(())),
                Phase::Closed => {
                    Poll::Ready(Err(l.closed_error().unwrap_or(ClientError::LinkClosed {
                        remote: false,
                        error: None,
                    })))
                }
                Phase::Attaching => {
                    l.waiters.register(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await?;
        Ok(link)
    }

    /// Closes the connection and waits for the peer's `close` (at most 2 s). Then pending
    /// outcomes resolve (in flight: [`Outcome::InDoubt`]; still queued:
    /// [`ClientError::ConnectionClosed`]) and receivers return `None` once their queues are empty.
    ///
    /// Returns `Ok` for a clean close; the error if the connection had failed or the peer
    /// closed it with an error. Cancel safety: once polled, the close proceeds even if the
    /// future is dropped.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.close_inner(None).await
    }

    /// Closes the connection with an error condition for the peer; see
    /// [`close`](Self::close).
    pub async fn close_with_error(&self, error: AmqpError) -> Result<(), ClientError> {
        self.close_inner(Some(error)).await
    }

    async fn close_inner(&self, error: Option<AmqpError>) -> Result<(), ClientError> {
        let shared = &self.inner.shared;
        {
            let mut st = shared.lock();
            if !st.close_requested && st.phase != ConnPhase::Closed {
                st.close_requested = true;
                let w = st.push(Command::CloseConnection(error));
                drop(st);
                shared.wake_driver(w);
            }
        }
        poll_fn(|cx| {
            let mut st = shared.lock();
            if st.phase == ConnPhase::Closed {
                Poll::Ready(st.close_result.clone())
            } else {
                st.waiters.register(cx.waker());
                Poll::Pending
            }
        })
        .await
    }

    /// True once the connection is closed (no reconnect follows).
    pub fn is_closed(&self) -> bool {
        self.inner.shared.lock().phase == ConnPhase::Closed
    }

    /// Why the connection closed, once it has (`None` while open, or after a clean close).
    pub fn error(&self) -> Option<ClientError> {
        self.inner.shared.lock().error.clone()
    }
}

/// A link's share of the connection; dropping it closes the link.
struct LinkRef {
    conn: Arc<ClientRef>,
    id: u64,
}

impl LinkRef {
    fn shared(&self) -> &Shared {
        &self.conn.shared
    }

    /// Requests the close (once); true if the driver must be woken.
    fn request_close(&self, st: &mut State) -> bool {
        if st.phase == ConnPhase::Closed {
            return false;
        }
        match st.links.get_mut(&self.id) {
            Some(l) if !l.close_requested && l.phase != Phase::Closed => {
                l.close_requested = true;
                st.push(Command::CloseLink(self.id))
            }
            _ => false,
        }
    }

    async fn close(&self) -> Result<(), ClientError> {
        let w = self.request_close(&mut self.shared().lock());
        self.shared().wake_driver(w);
        poll_fn(|cx| {
            let mut st = self.shared().lock();
            match st.links.get_mut(&self.id) {
                Some(l) if l.phase != Phase::Closed => {
                    l.waiters.register(cx.waker());
                    Poll::Pending
                }
                Some(l) => Poll::Ready(l.close_result.clone()),
                None => Poll::Ready(Ok(())),
            }
        })
        .await
    }

    fn address(&self) -> Option<String> {
        self.shared()
            .lock()
            .links
            .get(&self.id)?
            .remote_address
            .clone()
    }

    fn error(&self) -> Option<ClientError> {
        self.shared().lock().links.get(&self.id)?.closed_error()
    }
}

impl Drop for LinkRef {
    fn drop(&mut self) {
        let shared = self.conn.shared.clone();
        let mut st = shared.lock();
        let mut wake = false;
        if let Some(l) = st.links.get_mut(&self.id) {
            l.user_dropped = true;
            if l.driver_released {
                st.links.remove(&self.id);
            } else {
                // Deliveries arriving after this are released by the container.
                wake = self.request_close(&mut st);
            }
        }
        drop(st);
        shared.wake_driver(wake);
    }
}

// ------------------------------------------------------------------------------------------
// Sender
// ------------------------------------------------------------------------------------------

/// A sending link. Methods take `&self`: share it (`Arc<Sender>`) to send from several tasks.
///
/// Dropping it closes the link (after messages that already have credit are sent); messages
/// still waiting for credit then fail with [`ClientError::LinkClosed`], and sent messages whose
/// outcome had not arrived resolve to [`Outcome::InDoubt`].
///
/// The guide's simple send, pipelined: queue many messages without waiting, then collect
/// the outcomes.
///
/// ```
/// use amqp_tokio::{Client, Outcome};
/// use amqp_tokio::amqp_proto::message::Message;
///
/// # use amqp_tokio::{Container, Event, MessagingHandler};
/// # /// An in-process peer on a free loopback port: accepts what it receives, and sends
/// # /// "Hello World!" once on each link it sends on.
/// # #[derive(Default)]
/// # struct Peer { port: Option<tokio::sync::oneshot::Sender<u16>>, sent: bool }
/// # impl MessagingHandler for Peer {
/// #     fn on_start(&mut self, e: &mut Event<'_>) { e.container().listen("127.0.0.1:0").unwrap(); }
/// #     fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
/// #         let acceptor = e.acceptor().unwrap();
/// #         let port = e.container().acceptor_port(acceptor).unwrap();
/// #         let _ = self.port.take().unwrap().send(port);
/// #     }
/// #     fn on_sendable(&mut self, e: &mut Event<'_>) {
/// #         if !self.sent {
/// #             self.sent = true;
/// #             e.send(&amqp_tokio::amqp_proto::message::Message::new("Hello World!")).unwrap();
/// #         }
/// #     }
/// # }
/// # async fn peer() -> String {
/// #     let (tx, rx) = tokio::sync::oneshot::channel();
/// #     let peer = Peer { port: Some(tx), ..Peer::default() };
/// #     tokio::spawn(Container::with_id(peer, "peer").run_async());
/// #     format!("amqp://127.0.0.1:{}", rx.await.unwrap())
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), amqp_tokio::ClientError> {
/// # let url = peer().await;
/// let conn = Client::open(url.as_str()).await?;
/// let sender = conn.open_sender("examples").await?;
/// let outcomes: Vec<_> = (0..5)
///     .map(|i| sender.send_nowait(Message::new(format!("message {i}"))).expect("room"))
///     .collect();
/// for outcome in outcomes {
///     assert_eq!(outcome.await?, Outcome::Accepted);
/// }
/// conn.close().await
/// # }
/// ```
pub struct Sender {
    link: LinkRef,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("id", &self.link.id)
            .finish_non_exhaustive()
    }
}

enum Room {
    Credit,
    Buffer,
}

impl Sender {
    fn poll_room(&self, cx: &mut Context<'_>, room: Room) -> Poll<Result<(), ClientError>> {
        let mut st = self.link.shared().lock();
        if let Some(e) = st.conn_error() {
            return Poll::Ready(Err(e));
        }
        let Some(l) = st.links.get_mut(&self.link.id) else {
            return Poll::Ready(Err(ClientError::LinkClosed {
                remote: false,
                error: None,
            }));
        };
        if let Some(e) = l.closed_error() {
            return Poll::Ready(Err(e));
        }
        let ok = match room {
            Room::Credit => l.has_credit_room(),
            Room::Buffer => l.has_buffer_room(),
        };
        if ok {
            return Poll::Ready(Ok(()));
        }
        l.waiters.register(cx.waker());
        Poll::Pending
    }

    /// Queues a message that has room; returns its outcome future.
    fn enqueue(&self, msg: Message, room: Room) -> Result<SendFuture, TrySendError> {
        let shared = self.link.shared();
        let mut st = shared.lock();
        if let Some(e) = st.conn_error() {
            return Err(TrySendError::Closed(Box::new(msg), e));
        }
        let Some(l) = st.links.get_mut(&self.link.id) else {
            return Err(TrySendError::Closed(
                Box::new(msg),
                ClientError::LinkClosed {
                    remote: false,
                    error: None,
                },
            ));
        };
        if let Some(e) = l.closed_error() {
            return Err(TrySendError::Closed(Box::new(msg), e));
        }
        let ok = match room {
            Room::Credit => l.has_credit_room(),
            Room::Buffer => l.has_buffer_room(),
        };
        if !ok {
            return Err(TrySendError::Full(Box::new(msg)));
        }
        let key = st.slots.insert(Slot::Pending(None));
        let Some(l) = st.links.get_mut(&self.link.id) else {
            unreachable!("checked above")
        };
        l.unsent.push_back((msg, key));
        let wake = if l.pump_queued {
            false
        } else {
            l.pump_queued = true;
            st.push(Command::Pump(self.link.id))
        };
        drop(st);
        shared.wake_driver(wake);
        Ok(SendFuture {
            conn: self.link.conn.clone(),
            slot: key,
            done: false,
        })
    }

    /// Sends a message and waits for its outcome.
    ///
    /// Waits first while the link has no credit for it (so memory is bounded by the peer's
    /// credit), then queues it and waits for the peer's disposition.
    ///
    /// Cancel safety: dropped while waiting for credit, the message is dropped and not sent;
    /// dropped once queued, the message is still sent (the outcome is discarded).
    pub async fn send(&self, message: Message) -> Result<Outcome, ClientError> {
        let mut message = message;
        loop {
            poll_fn(|cx| self.poll_room(cx, Room::Credit)).await?;
            match self.enqueue(message, Room::Credit) {
                Ok(f) => return f.await,
                Err(TrySendError::Closed(_, e)) => return Err(e),
                // Another task took the room in between: wait again.
                Err(TrySendError::Full(m)) => message = *m,
            }
        }
    }

    /// Queues a message without waiting and returns a future of its outcome, so many sends
    /// can be in flight (pipelining): `let f = sender.send_nowait(msg)?; … f.await`.
    ///
    /// The message is queued if fewer than `credit + send_buffer` messages wait to go out
    /// (see [`set_send_buffer`](Self::set_send_buffer)); those without credit yet go out, in
    /// order, as the peer grants it — the returned future covers that wait too. Otherwise
    /// the message comes back in [`TrySendError::Full`]: wait with [`ready`](Self::ready)
    /// and retry. A closed link or connection gives [`TrySendError::Closed`].
    ///
    /// Dropping the returned [`SendFuture`] does not cancel the send.
    pub fn send_nowait(&self, message: Message) -> Result<SendFuture, TrySendError> {
        self.enqueue(message, Room::Buffer)
    }

    /// Waits until [`send_nowait`](Self::send_nowait) would queue a message (or the link
    /// closes: the error). Cancel-safe.
    pub async fn ready(&self) -> Result<(), ClientError> {
        poll_fn(|cx| self.poll_room(cx, Room::Buffer)).await
    }

    /// Credit not yet used by queued messages (as last reported by the driver).
    pub fn credit(&self) -> u32 {
        let mut st = self.link.shared().lock();
        st.links.get_mut(&self.link.id).map_or(0, |l| {
            l.credit
                .saturating_sub(l.unsent.len().min(u32::MAX as usize) as u32)
        })
    }

    /// Messages queued and not yet handed to the engine (waiting for credit).
    pub fn queued(&self) -> usize {
        let mut st = self.link.shared().lock();
        st.links
            .get_mut(&self.link.id)
            .map_or(0, |l| l.unsent.len())
    }

    /// How many messages [`send_nowait`](Self::send_nowait) may queue beyond the credit
    /// (default [`DEFAULT_SEND_BUFFER`]; `0`: only as many as the credit covers).
    pub fn set_send_buffer(&self, messages: usize) {
        let mut st = self.link.shared().lock();
        if let Some(l) = st.links.get_mut(&self.link.id) {
            l.send_buffer = messages;
            if l.has_buffer_room() {
                l.waiters.wake_all();
            }
        }
    }

    /// The target address the peer attached with (for a dynamic target, the one it assigned).
    pub fn address(&self) -> Option<String> {
        self.link.address()
    }

    /// Why the link closed, once it has.
    pub fn error(&self) -> Option<ClientError> {
        self.link.error()
    }

    /// Closes the link and waits for the peer's detach. Messages still queued for credit
    /// fail with [`ClientError::LinkClosed`]; sent ones without an outcome resolve to
    /// [`Outcome::InDoubt`]. Cancel safety: the link is closed even if the future is dropped.
    pub async fn close(self) -> Result<(), ClientError> {
        self.link.close().await
    }
}

/// The outcome of a message queued by [`Sender::send_nowait`] or [`Sender::send`].
///
/// Dropping it does not cancel the send: the message still goes out and its outcome is
/// discarded.
#[must_use = "the outcome is discarded (the message is sent anyway)"]
pub struct SendFuture {
    conn: Arc<ClientRef>,
    slot: usize,
    done: bool,
}

impl fmt::Debug for SendFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFuture")
            .field("slot", &self.slot)
            .field("done", &self.done)
            .finish()
    }
}

impl Future for SendFuture {
    type Output = Result<Outcome, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(ClientError::AlreadySettled));
        }
        let mut st = this.conn.shared.lock();
        match st.slots.get_mut(this.slot) {
            Some(Slot::Pending(w)) => {
                match w {
                    Some(x) if x.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Some(Slot::Done(_)) => {
                this.done = true;
                match st.slots.remove(this.slot) {
                    Some(Slot::Done(r)) => Poll::Ready(r),
                    _ => Poll::Ready(Ok(Outcome::InDoubt)),
                }
            }
            _ => {
                this.done = true;
                Poll::Ready(Ok(Outcome::InDoubt))
            }
        }
    }
}

impl Drop for SendFuture {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.conn.shared.lock();
        match st.slots.get_mut(self.slot) {
            Some(Slot::Pending(_)) => {
                if let Some(s) = st.slots.get_mut(self.slot) {
                    *s = Slot::Detached;
                }
            }
            Some(Slot::Done(_)) => {
                st.slots.remove(self.slot);
            }
            _ => {}
        }
    }
}

// ------------------------------------------------------------------------------------------
// Receiver and Delivery
// ------------------------------------------------------------------------------------------

/// A receiving link. Also a [`Stream`](futures::Stream) of [`Delivery`].
///
/// The guide's simple receive: `recv` each delivery and settle it (a delivery dropped
/// unsettled is accepted, as Proton's `auto_accept`; see [`Receiver::set_auto_accept`]).
///
/// ```
/// use amqp_tokio::Client;
///
/// # use amqp_tokio::{Container, Event, MessagingHandler};
/// # /// An in-process peer on a free loopback port: accepts what it receives, and sends
/// # /// "Hello World!" once on each link it sends on.
/// # #[derive(Default)]
/// # struct Peer { port: Option<tokio::sync::oneshot::Sender<u16>>, sent: bool }
/// # impl MessagingHandler for Peer {
/// #     fn on_start(&mut self, e: &mut Event<'_>) { e.container().listen("127.0.0.1:0").unwrap(); }
/// #     fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
/// #         let acceptor = e.acceptor().unwrap();
/// #         let port = e.container().acceptor_port(acceptor).unwrap();
/// #         let _ = self.port.take().unwrap().send(port);
/// #     }
/// #     fn on_sendable(&mut self, e: &mut Event<'_>) {
/// #         if !self.sent {
/// #             self.sent = true;
/// #             e.send(&amqp_tokio::amqp_proto::message::Message::new("Hello World!")).unwrap();
/// #         }
/// #     }
/// # }
/// # async fn peer() -> String {
/// #     let (tx, rx) = tokio::sync::oneshot::channel();
/// #     let peer = Peer { port: Some(tx), ..Peer::default() };
/// #     tokio::spawn(Container::with_id(peer, "peer").run_async());
/// #     format!("amqp://127.0.0.1:{}", rx.await.unwrap())
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), amqp_tokio::ClientError> {
/// # let url = peer().await;
/// let conn = Client::open(url.as_str()).await?;
/// let mut receiver = conn.open_receiver("examples").await?;
/// let delivery = receiver.recv().await.expect("a message");
/// println!("{}", delivery.message().body_str().unwrap_or(""));
/// delivery.accept()?;
/// conn.close().await
/// # }
/// ```
pub struct Receiver {
    link: LinkRef,
    auto_accept: bool,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("id", &self.link.id)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// The next delivery; `None` once the link or connection is closed and every delivery
    /// that arrived before has been returned.
    ///
    /// Cancel-safe: a delivery is only taken off the queue by the poll that returns it, so
    /// dropping the future (in `select!`, a timeout) never loses one.
    pub async fn recv(&mut self) -> Option<Delivery> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next delivery if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.take(None).ok().flatten()
    }

    /// Polls for the next delivery (see [`recv`](Self::recv)).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        match self.take(Some(cx)) {
            Ok(d) => Poll::Ready(d),
            Err(()) => Poll::Pending,
        }
    }

    /// `Ok(Some)`: a delivery; `Ok(None)`: closed; `Err`: nothing yet.
    fn take(&mut self, cx: Option<&mut Context<'_>>) -> Result<Option<Delivery>, ()> {
        let shared = self.link.shared();
        let mut st = shared.lock();
        let conn_closed = st.phase == ConnPhase::Closed;
        let id = self.link.id;
        let Some(l) = st.links.get_mut(&id) else {
            return Ok(None);
        };
        if let Some(i) = l.incoming.pop_front() {
            // Consumed enough to top the window up: ask the driver (once).
            let wake = l.prefetch > 0
                && !l.credit_queued
                && (l.credit as usize).saturating_add(l.incoming.len())
                    <= (l.prefetch / 2) as usize
                && l.phase == Phase::Open
                && !conn_closed;
            let wake = if wake {
                l.credit_queued = true;
                st.push(Command::Credit(id))
            } else {
                false
            };
            drop(st);
            shared.wake_driver(wake);
            return Ok(Some(Delivery {
                message: i.message,
                settlement: Settlement {
                    handle: i.handle,
                    conn: self.link.conn.clone(),
                    settled: AtomicBool::new(false),
                    auto_accept: self.auto_accept,
                },
            }));
        }
        if l.phase == Phase::Closed || conn_closed {
            return Ok(None);
        }
        if let Some(cx) = cx {
            set_waker(&mut l.recv_waker, cx.waker());
        }
        Err(())
    }

    /// Whether deliveries dropped unsettled are accepted (on by default, as Proton's
    /// `auto_accept`); off, a delivery dropped unsettled stays unsettled at the peer until
    /// the link or connection closes. Applies to deliveries `recv` returns from now on.
    pub fn set_auto_accept(&mut self, on: bool) {
        self.auto_accept = on;
    }

    /// Whether deliveries dropped unsettled are accepted (see
    /// [`set_auto_accept`](Self::set_auto_accept)).
    pub fn auto_accept(&self) -> bool {
        self.auto_accept
    }

    /// Deliveries queued and not yet returned by `recv`.
    pub fn queued(&self) -> usize {
        let mut st = self.link.shared().lock();
        st.links
            .get_mut(&self.link.id)
            .map_or(0, |l| l.incoming.len())
    }

    /// Switches to manual credit and sets the link credit to `credit` (replacing what is
    /// left): the peer may send that many more messages. No automatic top-up follows.
    pub fn set_credit(&self, credit: u32) {
        self.credit_command(|l| {
            l.prefetch = 0;
            l.manual_credit = Some(credit);
        });
    }

    /// Switches to an automatic credit window of `prefetch` deliveries (`0`: manual credit,
    /// none granted).
    pub fn set_prefetch(&self, prefetch: u32) {
        self.credit_command(|l| {
            l.prefetch = prefetch;
            l.manual_credit = None;
        });
    }

    fn credit_command(&self, f: impl FnOnce(&mut LinkState)) {
        let shared = self.link.shared();
        let mut st = shared.lock();
        let Some(l) = st.links.get_mut(&self.link.id) else {
            return;
        };
        f(l);
        l.credit_queued = true;
        let w = st.push(Command::Credit(self.link.id));
        drop(st);
        shared.wake_driver(w);
    }

    /// Asks the peer to use up or give up the credit, switching to manual credit; resolves
    /// once it has (messages it sent meanwhile are queued for `recv`). Resolves at once if
    /// there is no credit.
    ///
    /// Cancel safety: the drain still completes if the future is dropped.
    pub async fn drain(&mut self) -> Result<(), ClientError> {
        let shared = self.link.shared();
        let ticket = {
            let mut st = shared.lock();
            if let Some(e) = st.conn_error() {
                return Err(e);
            }
            let Some(l) = st.links.get_mut(&self.link.id) else {
                return Err(ClientError::LinkClosed {
                    remote: false,
                    error: None,
                });
            };
            if let Some(e) = l.closed_error() {
                return Err(e);
            }
            l.prefetch = 0;
            l.drains_requested += 1;
            let t = l.drains_requested;
            let w = st.push(Command::Drain(self.link.id));
            drop(st);
            shared.wake_driver(w);
            t
        };
        poll_fn(|cx| {
            let mut st = shared.lock();
            let conn_err = st.conn_error();
            let Some(l) = st.links.get_mut(&self.link.id) else {
                return Poll::Ready(Err(ClientError::LinkClosed {
                    remote: false,
                    error: None,
                }));
            };
            if l.drains_done >= ticket {
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = l.closed_error().or(conn_err) {
                return Poll::Ready(Err(e));
            }
            l.waiters.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// The source address the peer attached with: for a dynamic receiver
    /// (`LinkOptions::dynamic()`), the address the peer created (a reply-to address).
    pub fn address(&self) -> Option<String> {
        self.link.address()
    }

    /// Why the link closed, once it has.
    pub fn error(&self) -> Option<ClientError> {
        self.link.error()
    }

    /// Closes the link and waits for the peer's detach. Deliveries queued and never returned
    /// by `recv` are released first (the peer may redeliver them); those returned and not
    /// settled are left to the peer's policy. Cancel safety: the link is closed even if the
    /// future is dropped.
    pub async fn close(self) -> Result<(), ClientError> {
        self.link.close().await
    }
}

impl futures::Stream for Receiver {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.get_mut().poll_recv(cx)
    }
}

/// A received message, to settle with [`accept`](Self::accept), [`reject`](Self::reject),
/// [`release`](Self::release) or [`modify`](Self::modify).
///
/// Settling is synchronous: it queues the disposition for the driver (which batches
/// dispositions into ranges) and never waits; it fails only if the delivery is already
/// settled or the connection is closed. A delivery dropped unsettled is accepted, as Proton's
/// `auto_accept` does after `on_message`, unless its receiver's
/// [`set_auto_accept(false)`](Receiver::set_auto_accept) turned that off;
/// [`into_message`](Self::into_message) leaves it unsettled.
pub struct Delivery {
    message: ReceivedMessage,
    settlement: Settlement,
}

/// The settling half of a [`Delivery`]: accepts on drop when still unsettled and asked to.
struct Settlement {
    handle: DeliveryHandle,
    conn: Arc<ClientRef>,
    settled: AtomicBool,
    auto_accept: bool,
}

impl Settlement {
    fn dispose(&self, d: Disposition) -> Result<(), ClientError> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return Err(ClientError::AlreadySettled);
        }
        let shared = &self.conn.shared;
        let mut st = shared.lock();
        if let Some(e) = st.conn_error() {
            return Err(e);
        }
        let w = st.push(Command::Dispose(self.handle, d));
        drop(st);
        shared.wake_driver(w);
        Ok(())
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        if self.auto_accept && !self.settled.load(Ordering::Acquire) {
            // A closed connection has nothing left to accept: the error is moot.
            let _ = self.dispose(Disposition::Accept);
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("handle", &self.settlement.handle)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// The message; its sections decode on first access.
    pub fn message(&self) -> &ReceivedMessage {
        &self.message
    }

    /// The message, leaving the delivery unsettled (unless settled before), whatever the
    /// receiver's auto-accept setting. To change it before forwarding it, take an owned copy
    /// with [`ReceivedMessage::into_message`].
    pub fn into_message(mut self) -> ReceivedMessage {
        self.settlement.auto_accept = false;
        self.message
    }

    fn dispose(&self, d: Disposition) -> Result<(), ClientError> {
        self.settlement.dispose(d)
    }

    /// Accepts and settles it.
    pub fn accept(&self) -> Result<(), ClientError> {
        self.dispose(Disposition::Accept)
    }

    /// Rejects and settles it (invalid; not to be redelivered), with an optional reason.
    pub fn reject(&self, error: Option<AmqpError>) -> Result<(), ClientError> {
        self.dispose(Disposition::Reject(error))
    }

    /// Releases and settles it (not processed; may be redelivered to anyone).
    pub fn release(&self) -> Result<(), ClientError> {
        self.dispose(Disposition::Release)
    }

    /// Modifies and settles it: `delivery_failed` counts a failed attempt,
    /// `undeliverable_here` asks not to redeliver it on this link.
    pub fn modify(
        &self,
        delivery_failed: bool,
        undeliverable_here: bool,
    ) -> Result<(), ClientError> {
        self.dispose(Disposition::Modify(delivery_failed, undeliverable_here))
    }

    /// True once settled through this handle.
    pub fn is_settled(&self) -> bool {
        self.settlement.settled.load(Ordering::Acquire)
    }
}
