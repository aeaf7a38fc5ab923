//! [`ClientCore`]: the sans-IO core under the async `Client`, a sibling of
//! [`SansIoContainer`](super::SansIoContainer). No handler and no callbacks: the application
//! calls it directly (connect, open a sender or receiver, send, settle, grant credit, drain,
//! close) and drains [`ClientEvent`]s — outcomes, messages, links attached and detached,
//! connections up and down. Both cores drive the same managed connections through the same
//! reactor (reconnect, failover, re-attach, in-doubt) and take the driver's inputs through the
//! same calls; only what they do with the resulting events differs.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use amqp_proto::definitions::{Error, Role};
use amqp_proto::message::ReceivedMessage;
use amqp_proto::messaging::DeliveryState;
use amqp_proto::Encode;
use bytes::BytesMut;

use super::error::{MessagingError, TransportError};
use super::event_record::EventRecord;
use super::handler::{EventType, HandlerOptions};
use super::handles::{
    AcceptorHandle, ConnectionHandle, DeliveryHandle, LinkHandle, Tracker, TransportId,
};
use super::io::{IoCore, IoRequest, TransportInfo};
use super::link_options::LinkOptions;
use super::options::ConnectOptions;
use super::reactor::ContainerContext;
use crate::connection::SendOptions;
use crate::sasl::ClientMechanismFactory;

/// What happened, for the application of a [`ClientCore`]: drained with
/// [`ClientCore::poll_event`] after every call.
#[non_exhaustive]
#[derive(Debug)]
pub enum ClientEvent {
    /// The peer's `open` arrived (again, after a reconnect).
    ConnectionOpened(ConnectionHandle),
    /// The peer closed the connection with this error.
    ConnectionError(ConnectionHandle, Error),
    /// A transport failed (refused, TLS, authentication, …); a reconnect may follow.
    TransportError(ConnectionHandle, TransportError),
    /// The transport was lost; unless [`ConnectionClosed`](Self::ConnectionClosed) follows,
    /// a reconnect is on its way and the links are re-attached after it.
    Disconnected(ConnectionHandle, Option<TransportError>),
    /// The connection is over: closed, or reconnecting gave up (with the last error).
    ConnectionClosed(ConnectionHandle, Option<TransportError>),
    /// The peer attached a link we opened; `refused` when it attached with no terminus (its
    /// detach, with the reason, follows).
    LinkOpened {
        /// The link.
        link: LinkHandle,
        /// The peer refused it.
        refused: bool,
    },
    /// The link is detached for good, with the peer's error if it gave one.
    LinkClosed(LinkHandle, Option<Error>),
    /// A sender has credit.
    Sendable(LinkHandle),
    /// A message arrived on a receiver; settle it with [`ClientCore::dispose`]. Move the
    /// message out of its box (`std::mem::take`) and hand the box back with
    /// [`ClientCore::recycle_message`] for the core to reuse.
    Message {
        /// The receiver.
        link: LinkHandle,
        /// The delivery, to settle.
        delivery: DeliveryHandle,
        /// The message (sections decode on first access).
        message: Box<ReceivedMessage>,
    },
    /// The peer reported the outcome of a sent delivery, or settled it (`state` is then the
    /// last one it gave, if any).
    Outcome(Tracker, Option<DeliveryState>),
    /// The transport ended before a sent delivery's outcome arrived.
    InDoubt(Tracker),
    /// A drain asked for with [`ClientCore::drain`] is over: the credit is used up.
    Drained(LinkHandle),
}

/// The sans-IO core of the async API: managed connections (reconnect, failover, links
/// re-attached, in-doubt deliveries) driven by direct calls, reporting [`ClientEvent`]s.
/// A driver runs it through [`IoCore`] like any core; the async layer locks it, calls it,
/// and wakes the driver.
///
/// A sender and a receiver on one connection, against a peer on the simulated network:
///
/// ```
/// use std::time::{Duration, Instant};
/// use amqp_engine::messaging::sim::World;
/// use amqp_engine::messaging::{
///     ClientCore, ClientEvent, ConnectOptions, Event, MessagingHandler, SansIoContainer, Url,
/// };
/// use amqp_proto::message::Message;
/// use amqp_proto::messaging::DeliveryState;
///
/// /// Accepts every message it receives.
/// struct Peer;
/// impl MessagingHandler for Peer {
///     fn on_start(&mut self, e: &mut Event<'_>) { e.container_mut().listen("0.0.0.0:5672").unwrap(); }
/// }
///
/// let mut world = World::new(Instant::now(), 1);
/// world.add(SansIoContainer::with_id(Peer, "peer", world.now()));
/// let mut core = ClientCore::new("client", world.now());
/// let conn = core.connect(ConnectOptions::new().url(Url::parse("amqp://127.0.0.1")?))?;
/// let sender = core.open_sender(conn, "queue".into())?;
/// let n = world.add(core);
/// world.run_for(Duration::from_millis(50));
///
/// let core = world.node_mut::<ClientCore>(n).unwrap();
/// let mut sendable = false;
/// while let Some(ev) = core.poll_event() {
///     sendable |= matches!(ev, ClientEvent::Sendable(l) if l == sender);
/// }
/// assert!(sendable);
/// let tracker = core.send(sender, &Message::new("hello"))?;
/// world.run_for(Duration::from_millis(50));
///
/// let core = world.node_mut::<ClientCore>(n).unwrap();
/// let outcome = std::iter::from_fn(|| core.poll_event())
///     .find_map(|ev| match ev { ClientEvent::Outcome(t, s) if t == tracker => s, _ => None });
/// assert!(matches!(outcome, Some(DeliveryState::Accepted(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClientCore {
    reactor: ContainerContext,
    events: VecDeque<ClientEvent>,
}

impl fmt::Debug for ClientCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCore")
            .field("reactor", &self.reactor)
            .field("events", &self.events.len())
            .finish()
    }
}

/// The reactor's defaults for the client: no automatic credit (the application keeps each
/// receiver's window), no auto-accept (the application settles), and sent deliveries settled
/// once their outcome arrives.
const CLIENT_OPTIONS: HandlerOptions = HandlerOptions {
    prefetch: 0,
    auto_accept: false,
    auto_settle: true,
};

impl ClientCore {
    /// A core whose connections send `id` as their container id.
    pub fn new(id: impl Into<String>, now: Instant) -> Self {
        let id: String = id.into();
        let seed = id.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let reactor = ContainerContext::new(id, CLIENT_OPTIONS, seed, now);
        ClientCore {
            reactor,
            events: VecDeque::new(),
        }
    }

    /// Supplies randomness (SCRAM nonces); by default a deterministic generator seeded by
    /// the id.
    pub fn set_entropy(&mut self, f: impl FnMut(&mut [u8]) + Send + 'static) {
        self.reactor.entropy = Box::new(f);
    }

    /// Supplies Proton's connect configuration file, used when the options name no URL.
    pub fn set_connect_config(&mut self, json: Option<String>) {
        self.reactor.config_file = json;
    }

    /// Adds a SASL client mechanism beyond the built-in ones (GSSAPI).
    pub fn add_client_mechanism(&mut self, mechanism: Arc<dyn ClientMechanismFactory>) {
        self.reactor.client_mechanisms.push(mechanism);
    }

    /// The id sent as `container-id`.
    pub fn id(&self) -> &str {
        self.reactor.id()
    }

    /// Starts connecting (with reconnect and failover as the options say).
    pub fn connect(&mut self, options: ConnectOptions) -> Result<ConnectionHandle, MessagingError> {
        self.reactor.connect_with(options)
    }

    /// Opens a sender; [`ClientEvent::LinkOpened`] follows once the peer attaches, and the
    /// link is re-attached after every reconnect until closed.
    pub fn open_sender(
        &mut self,
        conn: ConnectionHandle,
        options: LinkOptions,
    ) -> Result<LinkHandle, MessagingError> {
        self.reactor.create_link(conn, Role::Sender, options)
    }

    /// Opens a receiver. It has no credit until [`flow`](Self::flow) grants some (the
    /// options' `prefetch` is the application's to keep).
    pub fn open_receiver(
        &mut self,
        conn: ConnectionHandle,
        mut options: LinkOptions,
    ) -> Result<LinkHandle, MessagingError> {
        options.prefetch = Some(0);
        self.reactor.create_link(conn, Role::Receiver, options)
    }

    /// Sends a message on an attached sender with credit. Errors: the link is closed
    /// ([`MessagingError::LinkClosed`]), not attached on the current transport
    /// ([`MessagingError::NotReady`]), or has no credit
    /// ([`MessagingError::Engine`] with [`OpError::NoCredit`](crate::OpError::NoCredit)).
    /// The outcome comes as [`ClientEvent::Outcome`] (or [`ClientEvent::InDoubt`]); a
    /// pre-settled send has none.
    pub fn send<M: Encode + ?Sized>(
        &mut self,
        link: LinkHandle,
        message: &M,
    ) -> Result<Tracker, MessagingError> {
        self.reactor
            .send_encoded(link, message, SendOptions::default())
    }

    /// Credit the peer has granted a sender, or a receiver has outstanding (0 when not
    /// attached).
    pub fn credit(&self, link: LinkHandle) -> u32 {
        self.reactor.credit(link)
    }

    /// Sets a receiver's credit (replacing what is left).
    pub fn flow(&mut self, link: LinkHandle, credit: u32) -> Result<(), MessagingError> {
        self.reactor.flow(link, credit)
    }

    /// Asks a receiver's peer to use up or give up its credit: [`ClientEvent::Drained`]
    /// follows.
    pub fn drain(&mut self, link: LinkHandle) -> Result<(), MessagingError> {
        self.reactor.drain(link)
    }

    /// Settles a received delivery with a state (`None`: settle only).
    pub fn dispose(
        &mut self,
        delivery: DeliveryHandle,
        state: Option<DeliveryState>,
    ) -> Result<(), MessagingError> {
        self.reactor.dispose(delivery, state, true)
    }

    /// Takes back the box of a [`ClientEvent::Message`] (emptied, or with a message the
    /// application no longer needs) for a later delivery: a receiver that hands back every box
    /// allocates none per message.
    pub fn recycle_message(&mut self, message: Box<ReceivedMessage>) {
        self.reactor.recycle_message(message);
    }

    /// True if the link is a sender.
    pub fn is_sender(&self, link: LinkHandle) -> bool {
        self.reactor.is_sender(link)
    }

    /// The address of the link's remote terminus as the peer attached it (for a dynamic node,
    /// the one the peer assigned).
    pub fn remote_address(&self, link: LinkHandle) -> Option<String> {
        self.reactor.remote_address(link)
    }

    /// Detaches a link for good (a no-op for one already closed).
    pub fn close_link(&mut self, link: LinkHandle) {
        self.reactor.close_link(link);
    }

    /// Closes a connection (no reconnect follows) and stops: the core is done once the peer
    /// answers, or after Proton's 2 s grace period.
    pub fn close(&mut self, conn: ConnectionHandle, error: Option<Error>) {
        self.reactor.close_connection(conn, error);
        self.reactor.stop();
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Turns the reactor's queued events into client events (with the reactor's default
    /// actions after each), until nothing changes.
    fn pump(&mut self) {
        for _ in 0..1_000_000 {
            if let Some((kind, ctx)) = self.reactor.pending.pop_front() {
                self.translate(kind, ctx);
                continue;
            }
            if !self.reactor.flush_dirty() && self.reactor.pending.is_empty() {
                break;
            }
        }
    }

    fn translate(&mut self, kind: EventType, mut ctx: EventRecord) {
        if kind == EventType::Message && self.reactor.release_if_link_closed(&ctx) {
            return;
        }
        if kind == EventType::Sendable && !self.reactor.is_link_open(ctx.link) {
            return;
        }
        let conn = ctx.connection;
        let ev = match kind {
            EventType::ConnectionOpened => conn.map(ClientEvent::ConnectionOpened),
            EventType::ConnectionError => conn
                .zip(ctx.error().cloned())
                .map(|(c, e)| ClientEvent::ConnectionError(c, e)),
            EventType::TransportError => conn
                .zip(ctx.transport_error().cloned())
                .map(|(c, e)| ClientEvent::TransportError(c, e)),
            EventType::Disconnected => {
                conn.map(|c| ClientEvent::Disconnected(c, ctx.transport_error().cloned()))
            }
            EventType::ConnectionClosed => {
                conn.map(|c| ClientEvent::ConnectionClosed(c, ctx.transport_error().cloned()))
            }
            EventType::LinkOpening => {
                // A link the peer initiated: a client serves none (refused below, by the
                // reactor's default action for a link the application closed).
                if let Some(l) = ctx.link {
                    self.reactor.close_link(l);
                }
                None
            }
            EventType::LinkOpened => ctx.link.map(|link| ClientEvent::LinkOpened {
                link,
                refused: self.refused(link),
            }),
            EventType::LinkClosed => ctx
                .link
                .map(|l| ClientEvent::LinkClosed(l, ctx.error().cloned())),
            EventType::Sendable => ctx.link.map(ClientEvent::Sendable),
            EventType::Drained => ctx.link.map(ClientEvent::Drained),
            EventType::Message => match (ctx.link, ctx.delivery(), ctx.message.take()) {
                (Some(link), Some(delivery), Some(message)) => Some(ClientEvent::Message {
                    link,
                    delivery,
                    message,
                }),
                _ => None,
            },
            EventType::Accepted | EventType::Rejected | EventType::Released => ctx
                .tracker()
                .map(|t| ClientEvent::Outcome(t, ctx.state().cloned())),
            // Settled with a terminal state: its outcome was just reported.
            EventType::Settled if ctx.state().is_some_and(DeliveryState::is_terminal) => None,
            EventType::Settled => ctx
                .tracker()
                .map(|t| ClientEvent::Outcome(t, ctx.state().cloned())),
            EventType::InDoubt => ctx.tracker().map(ClientEvent::InDoubt),
            _ => None,
        };
        if let Some(ev) = ev {
            self.events.push_back(ev);
        }
        self.reactor.after_callback(kind, ctx);
    }

    /// The peer attached with no terminus (a refusal), or its attach is already gone.
    fn refused(&self, link: LinkHandle) -> bool {
        match self.reactor.remote_attach(link) {
            Some(a) if self.reactor.is_sender(link) => a.target.is_none(),
            Some(a) => a.source.is_none(),
            None => true,
        }
    }
}

impl IoCore for ClientCore {
    fn start(&mut self, now: Instant) {
        self.reactor.input_start(now);
        self.pump();
    }

    fn poll_io(&mut self) -> Option<IoRequest> {
        if self.reactor.io.is_empty() {
            // Operations called since the last poll are flushed here.
            self.pump();
        }
        self.reactor.io.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.reactor.next_deadline()
    }

    fn is_done(&self) -> bool {
        self.reactor.is_idle()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.reactor.input_timeout(now);
        self.pump();
    }

    fn is_transport_live(&self, t: TransportId) -> bool {
        self.reactor.valid(t)
    }

    fn handle_connected(&mut self, t: TransportId, info: TransportInfo, now: Instant) {
        self.reactor.now = now;
        self.reactor.on_connected(t, info);
        self.pump();
    }

    fn handle_connect_failed(&mut self, t: TransportId, reason: TransportError, now: Instant) {
        self.reactor.input_connect_failed(t, reason, now);
        self.pump();
    }

    fn handle_read(&mut self, t: TransportId, data: &[u8], now: Instant) {
        self.reactor
            .input_with(t, now, |e| e.handle_input(data, now));
        self.pump();
    }

    fn handle_read_owned(&mut self, t: TransportId, data: BytesMut, now: Instant) {
        self.reactor
            .input_with(t, now, |e| e.handle_input_owned(data, now));
        self.pump();
    }

    fn handle_disconnected(
        &mut self,
        t: TransportId,
        reason: Option<TransportError>,
        now: Instant,
    ) {
        self.reactor.input_disconnected(t, reason, now);
        self.pump();
    }

    fn handle_listening(
        &mut self,
        acceptor: AcceptorHandle,
        result: Result<u16, TransportError>,
        now: Instant,
    ) {
        self.reactor.input_listening(acceptor, result, now);
        self.pump();
    }

    /// A client listens on nothing: every accepted transport is refused.
    fn handle_accepted(
        &mut self,
        _acceptor: AcceptorHandle,
        _info: TransportInfo,
        now: Instant,
    ) -> Option<TransportId> {
        self.reactor.now = now;
        None
    }
}
