//! The container state a handler works with: connections, listeners, links, timers and the
//! operations of Proton's `Container` (connect, listen, create_sender, send, schedule, …).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_proto::definitions::{Error, Role};
use amqp_proto::messaging::{DeliveryState, Modified, Rejected, TargetKind};
use amqp_proto::Encode;
use bytes::Bytes;

use super::conns::Conns;
use super::engine_events::SpareMessage;
use super::error::MessagingError;
use super::event_record::EventRecord;
use super::handler::{EventContext, EventType, HandlerOptions};
use super::handles::{
    AcceptorHandle, ConnectionHandle, DeliveryHandle, LinkHandle, TimerHandle, Tracker, TransportId,
};
use super::inject::{Inbox, Injector, Payload};
use super::io::{Acceptor, IoRequest, ListenOptions};
use super::link_options::LinkOptions;
use super::managed::{LinkRec, ManagedConnection};
use super::options::{ConnectOptions, ResolvedTargets};
use super::reconnect::Failover;
use super::url::Url;
use crate::connection::{Connection, LinkConfig, SendOptions};
use crate::ids::{Key, LinkId, Slab};
use crate::rng::Rng;
use crate::sasl::ClientMechanismFactory;

/// A close asked for inside a callback, carried out after Proton's default actions for the
/// event (so an `on_message` that closes its link or connection still gets its delivery
/// auto-accepted first, as Proton writes dispositions before detach and close).
pub(super) enum DeferredClose {
    Link(LinkHandle, Option<Error>),
    Connection(ConnectionHandle, Option<Error>),
}

pub(super) enum TimerKind {
    Task,
    Reconnect(Key),
    HardStop,
}

/// Where Proton's container methods live: what `e.container()` returns in every callback
/// ([`Event::container`](super::Event::container)), and what an adapter's
/// `Container::context()` gives before running. Connect and listen, create senders and
/// receivers, send and settle, schedule timer tasks, close, stop; and read-only accessors
/// (`id`, `credit`, `link_name`, `remote_address`, …) on `&self`.
///
/// The guide's recurring timer: `schedule` a task, and schedule it again from
/// `on_timer_task`.
///
/// ```
/// use std::time::{Duration, Instant};
/// use amqp_engine::messaging::sim::World;
/// use amqp_engine::messaging::{Event, IoCore, MessagingHandler, SansIoContainer};
///
/// #[derive(Default)]
/// struct Recurring { ticks: u32 }
///
/// impl MessagingHandler for Recurring {
///     fn on_start(&mut self, e: &mut Event<'_>) {
///         e.container_mut().schedule(Duration::from_millis(100));
///     }
///     fn on_timer_task(&mut self, e: &mut Event<'_>) {
///         self.ticks += 1;
///         if self.ticks < 3 {
///             e.container_mut().schedule(Duration::from_millis(100));
///         }
///     }
/// }
///
/// let mut world = World::new(Instant::now(), 1);
/// let n = world.add(SansIoContainer::with_id(Recurring::default(), "timer", world.now()));
/// world.run_for(Duration::from_secs(1));
/// assert_eq!(world.handler::<Recurring>(n).unwrap().ticks, 3);
/// assert!(world.container::<Recurring>(n).unwrap().is_done());
/// ```
pub struct ContainerContext {
    pub(super) id: String,
    pub(super) now: Instant,
    pub(super) started: bool,
    pub(super) stopping: bool,
    pub(super) handler_options: HandlerOptions,
    /// The managed connections, boxed in a slab (it keeps its capacity after a burst of
    /// connections is gone, and a record is large, so slots hold only a pointer), with the
    /// list of those touched since the last flush and the heap of their engine deadlines.
    pub(super) conns: Conns,
    pub(super) acceptors: Slab<Acceptor>,
    pub(super) timers: BTreeMap<(Instant, u64), TimerKind>,
    pub(super) timer_index: HashMap<u64, Instant>,
    pub(super) timer_seq: u64,
    pub(super) io: VecDeque<IoRequest>,
    pub(super) pending: VecDeque<(EventType, EventRecord)>,
    pub(super) touched: bool,
    pub(super) name_seq: u64,
    pub(super) entropy: Entropy,
    pub(super) config_file: Option<String>,
    /// Pluggable SASL client mechanisms (GSSAPI) given to every outgoing connection.
    pub(super) client_mechanisms: Vec<Arc<dyn ClientMechanismFactory>>,
    pub(super) in_callback: bool,
    pub(super) deferred_closes: Vec<DeferredClose>,
    /// What [`Injector`]s queued from other threads, and the driver's wake function.
    pub(super) inbox: Arc<Inbox>,
    /// Payloads of the application events in `pending`, in the same order.
    pub(super) app_payloads: VecDeque<Payload>,
    /// Message boxes handed back after `on_message`, reused for the next deliveries (at most
    /// [`SPARE_MESSAGES`](super::engine_events::SPARE_MESSAGES), each reset to an empty message).
    pub(super) spare_messages: Vec<SpareMessage>,
}

impl fmt::Debug for ContainerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerContext")
            .field("id", &self.id)
            .field("connections", &self.conns.len())
            .field("acceptors", &self.acceptors.len())
            .field("timers", &self.timers.len())
            .finish_non_exhaustive()
    }
}

/// A source of random bytes.
pub(super) type Entropy = Box<dyn FnMut(&mut [u8]) + Send>;

/// A deterministic entropy source (the crate's [`Rng`]) for when the driver supplies none.
pub(super) fn seeded_entropy(seed: u64) -> Entropy {
    let mut rng = Rng::new(seed);
    Box::new(move |buf: &mut [u8]| rng.fill(buf))
}

/// A version-4 UUID string from 16 random bytes.
pub fn uuid_from_bytes(bytes: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

impl ContainerContext {
    pub(super) fn new(
        id: String,
        handler_options: HandlerOptions,
        seed: u64,
        now: Instant,
    ) -> ContainerContext {
        ContainerContext {
            id,
            now,
            started: false,
            stopping: false,
            handler_options,
            conns: Conns::default(),
            acceptors: Slab::default(),
            timers: BTreeMap::new(),
            timer_index: HashMap::new(),
            timer_seq: 0,
            io: VecDeque::new(),
            pending: VecDeque::new(),
            touched: false,
            name_seq: 0,
            entropy: seeded_entropy(seed),
            config_file: None,
            client_mechanisms: Vec::new(),
            in_callback: false,
            deferred_closes: Vec::new(),
            inbox: Arc::default(),
            app_payloads: VecDeque::new(),
            spare_messages: Vec::new(),
        }
    }

    /// The container id (sent as `container-id` in `open`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A handle that delivers application events to this container's handler from other
    /// threads (Proton's `EventInjector`); see [`Injector`].
    pub fn injector(&self) -> Injector {
        Injector::new(&self.inbox)
    }

    /// The current time (as last given by the driver).
    pub fn now(&self) -> Instant {
        self.now
    }

    pub(super) fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        (self.entropy)(&mut v);
        v
    }

    pub(super) fn push(&mut self, kind: EventType, ctx: EventContext) {
        self.pending.push_back((kind, ctx.into()));
    }

    /// Queues an event again (the default actions' `opened` after `opening`).
    pub(super) fn push_record(&mut self, kind: EventType, record: EventRecord) {
        self.pending.push_back((kind, record));
    }

    pub(super) fn ctx_conn(&self, ck: Key) -> EventContext {
        EventContext {
            connection: Some(ConnectionHandle(ck)),
            ..EventContext::default()
        }
    }

    // ------------------------------------------------------------------------------------
    // Public operations (Proton's Container API)
    // ------------------------------------------------------------------------------------

    /// Connects to a URL with default options (reconnect on). Proton's `container.connect(url)`.
    pub fn connect(&mut self, url: &str) -> Result<ConnectionHandle, MessagingError> {
        self.connect_with(ConnectOptions::new().url(Url::parse(url)?))
    }

    /// Connects with options. With neither `url` nor `urls`, the connect configuration file
    /// handed to [`SansIoContainer::set_connect_config`](super::SansIoContainer::set_connect_config) is used (Proton's `connect.json`).
    pub fn connect_with(
        &mut self,
        mut options: ConnectOptions,
    ) -> Result<ConnectionHandle, MessagingError> {
        if self.stopping {
            return Err(MessagingError::Stopped);
        }
        let urls = match options.validate()? {
            ResolvedTargets::Urls(u) => u,
            ResolvedTargets::UseConfig => {
                let cfg = match &self.config_file {
                    Some(json) => super::connect_config::parse_connect_config(json)?,
                    None => super::connect_config::ConnectConfig::default(),
                };
                cfg.apply(&mut options);
                match options.validate()? {
                    ResolvedTargets::Urls(u) => u,
                    ResolvedTargets::UseConfig => return Err(MessagingError::NotReady("no URL")),
                }
            }
        };
        let reconnect = std::mem::take(&mut options.reconnect);
        let failover = Failover::new(urls, reconnect).with_limits(options.reconnect_limits);
        let conn = ManagedConnection::outgoing(options, failover);
        let ck = self.conns.insert(Box::new(conn));
        self.next_attempt(ck);
        Ok(ConnectionHandle(ck))
    }

    /// Listens for connections on a URL such as `0.0.0.0:5672`, `[::0]:5672`,
    /// `amqp://127.0.0.1:0` (port 0: any free port; see [`ContainerContext::acceptor_port`]).
    pub fn listen(&mut self, url: &str) -> Result<AcceptorHandle, MessagingError> {
        self.listen_with(url, ListenOptions::default())
    }

    /// Listens with options (SASL, TLS).
    pub fn listen_with(
        &mut self,
        url: &str,
        options: ListenOptions,
    ) -> Result<AcceptorHandle, MessagingError> {
        let url = Url::parse_listen(url)?;
        let tls = if url.is_tls() {
            Some(options.tls.clone().unwrap_or_default())
        } else {
            None
        };
        let host = url.host().to_string();
        let port = url.port();
        let max_connections = options.max_connections;
        let key = self.acceptors.insert(Acceptor::new(url, options));
        let acceptor = AcceptorHandle(key);
        self.io.push_back(IoRequest::Listen {
            acceptor,
            host,
            port,
            tls,
            max_connections,
        });
        Ok(acceptor)
    }

    /// Stops a listener.
    pub fn close_acceptor(&mut self, acceptor: AcceptorHandle) {
        if self.acceptors.remove(acceptor.0).is_some() {
            self.io.push_back(IoRequest::StopListening { acceptor });
        }
    }

    /// The URL a listener was asked to bind, with the port it actually bound once listening.
    pub fn acceptor_url(&self, acceptor: AcceptorHandle) -> Option<&Url> {
        self.acceptors.get(acceptor.0).map(|a| &a.url)
    }

    /// The port a listener is bound to (the real one once listening, even for port 0).
    pub fn acceptor_port(&self, acceptor: AcceptorHandle) -> Option<u16> {
        self.acceptors.get(acceptor.0).map(|a| a.url.port())
    }

    pub(super) fn gen_name(&mut self, prefix: &str) -> String {
        self.name_seq += 1;
        format!("{}-{}-{}", self.id, prefix, self.name_seq)
    }

    pub(super) fn create_link(
        &mut self,
        conn: ConnectionHandle,
        role: Role,
        opts: LinkOptions,
    ) -> Result<LinkHandle, MessagingError> {
        if self.conns.get(conn.0).is_none() {
            return Err(MessagingError::NoSuchObject("connection"));
        }
        let name = opts.name.clone().unwrap_or_else(|| {
            self.gen_name(match role {
                Role::Sender => "sender",
                Role::Receiver => "receiver",
            })
        });
        let config = opts.link_config(role, name);
        let prefetch = opts.prefetch.unwrap_or(self.handler_options.prefetch);
        let c = self
            .conns
            .get_mut(conn.0)
            .ok_or(MessagingError::NoSuchObject("connection"))?;
        let key = c.add_link(LinkRec {
            role,
            config,
            engine: None,
            app_closed: false,
            handler_closed: false,
            prefetch,
            persistent: true,
            close_error: None,
        });
        Ok(LinkHandle {
            conn: conn.0,
            link: key,
        })
    }

    /// Creates a sender on a connection (Proton's `create_sender(conn, "address")`).
    pub fn create_sender(
        &mut self,
        conn: ConnectionHandle,
        opts: impl Into<LinkOptions>,
    ) -> Result<LinkHandle, MessagingError> {
        self.create_link(conn, Role::Sender, opts.into())
    }

    /// Creates a receiver on a connection (Proton's `create_receiver(conn, "address")`).
    pub fn create_receiver(
        &mut self,
        conn: ConnectionHandle,
        opts: impl Into<LinkOptions>,
    ) -> Result<LinkHandle, MessagingError> {
        self.create_link(conn, Role::Receiver, opts.into())
    }

    /// Opens a new connection to `url` and creates a sender to the URL's address on it
    /// (Proton's `create_sender("amqp://host/queue")`; to add a sender to a connection you
    /// already have, use [`create_sender`](Self::create_sender)).
    pub fn connect_sender(&mut self, url: &str) -> Result<LinkHandle, MessagingError> {
        let u = Url::parse(url)?;
        let addr = u.address().map(str::to_owned);
        let conn = self.connect_with(ConnectOptions::new().url(u))?;
        self.create_sender(
            conn,
            LinkOptions {
                address: addr,
                ..LinkOptions::default()
            },
        )
    }

    /// Opens a new connection to `url` and creates a receiver from the URL's address on it
    /// (Proton's `create_receiver("amqp://host/queue")`; to add a receiver to a connection you
    /// already have, use [`create_receiver`](Self::create_receiver)).
    pub fn connect_receiver(&mut self, url: &str) -> Result<LinkHandle, MessagingError> {
        let u = Url::parse(url)?;
        let addr = u.address().map(str::to_owned);
        let conn = self.connect_with(ConnectOptions::new().url(u))?;
        self.create_receiver(
            conn,
            LinkOptions {
                address: addr,
                ..LinkOptions::default()
            },
        )
    }

    /// Schedules `on_timer_task` after `delay`.
    pub fn schedule(&mut self, delay: Duration) -> TimerHandle {
        self.add_timer(self.now + delay, TimerKind::Task)
    }

    pub(super) fn add_timer(&mut self, at: Instant, kind: TimerKind) -> TimerHandle {
        self.timer_seq += 1;
        let id = self.timer_seq;
        self.timers.insert((at, id), kind);
        self.timer_index.insert(id, at);
        TimerHandle(id)
    }

    /// Cancels a scheduled task. Returns false if it already fired or was cancelled.
    pub fn cancel(&mut self, timer: TimerHandle) -> bool {
        match self.timer_index.remove(&timer.0) {
            Some(at) => self.timers.remove(&(at, timer.0)).is_some(),
            None => false,
        }
    }

    /// Stops the container: closes every connection and listener and cancels timers; the
    /// driver's run loop ends once connections have closed (or after a 2 s grace period).
    pub fn stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        for k in self.acceptors.keys() {
            self.close_acceptor(AcceptorHandle(k));
        }
        self.timers.clear();
        self.timer_index.clear();
        for k in self.conns.keys() {
            self.close_connection(ConnectionHandle(k), None);
        }
        self.add_timer(self.now + Duration::from_secs(2), TimerKind::HardStop);
    }

    /// True once [`stop`](Self::stop) has been called.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Closes a connection (no reconnect follows).
    pub fn close_connection(&mut self, conn: ConnectionHandle, error: Option<Error>) {
        let Some(c) = self.conns.get_mut(conn.0) else {
            return;
        };
        c.app_closed = true;
        if let Some(t) = c.reconnect_timer.take() {
            self.cancel(t);
        }
        let Some(c) = self.conns.get_mut(conn.0) else {
            return;
        };
        match c.engine.as_mut() {
            Some(_) if self.in_callback => {
                self.deferred_closes
                    .push(DeferredClose::Connection(conn, error));
            }
            Some(_) => c.close_engine(error, self.now),
            None => {
                // Not connected (connecting or waiting to reconnect): just drop it.
                let gen = c.gen;
                self.io.push_back(IoRequest::Close {
                    transport: TransportId { conn: conn.0, gen },
                });
                self.conns.remove(conn.0);
            }
        }
    }

    /// Closes a link.
    pub fn close_link(&mut self, link: LinkHandle) {
        self.close_link_with_error(link, None);
    }

    /// Closes a link with an error condition. Called in `on_link_opening` for a link the peer
    /// is attaching, it refuses the link with this error (the default is `amqp:not-found`).
    pub fn close_link_with_error(&mut self, link: LinkHandle, error: Option<Error>) {
        let Some(c) = self.conns.get_mut(link.conn) else {
            return;
        };
        let Some(l) = c.links.get_mut(link.link) else {
            return;
        };
        l.app_closed = true;
        l.handler_closed = true;
        l.close_error = error.clone();
        if self.in_callback {
            self.deferred_closes.push(DeferredClose::Link(link, error));
            return;
        }
        c.detach_link(link.link, error);
    }

    /// Carries out the closes asked for during the last callback.
    pub(super) fn run_deferred_closes(&mut self) {
        // Called after every callback; nearly always with nothing to do.
        if self.deferred_closes.is_empty() {
            return;
        }
        for d in std::mem::take(&mut self.deferred_closes) {
            match d {
                DeferredClose::Link(link, error) => {
                    if let Some(c) = self.conns.get_mut(link.conn) {
                        c.detach_link(link.link, error);
                    }
                }
                DeferredClose::Connection(conn, error) => {
                    if let Some(c) = self.conns.get_mut(conn.0) {
                        c.close_engine(error, self.now);
                    }
                }
            }
        }
    }

    /// True if the link is open on our side: attached on the current transport and not closed
    /// by the application or the peer. Proton raises `on_sendable` only for such links.
    pub(super) fn is_link_open(&self, link: Option<LinkHandle>) -> bool {
        link.is_some_and(|lh| {
            self.conns
                .get(lh.conn)
                .is_some_and(|c| c.is_link_open(lh.link))
        })
    }

    /// True if the link is a sender.
    pub fn is_sender(&self, link: LinkHandle) -> bool {
        self.conns
            .get(link.conn)
            .and_then(|c| c.links.get(link.link))
            .is_some_and(|l| l.role == Role::Sender)
    }

    /// Credit available on a sender (0 if not attached).
    pub fn credit(&self, link: LinkHandle) -> u32 {
        let Some(c) = self.conns.get(link.conn) else {
            return 0;
        };
        let Some(l) = c.links.get(link.link) else {
            return 0;
        };
        match (c.engine.as_ref(), l.engine) {
            (Some(e), Some(lid)) => e.link_credit(lid).unwrap_or(0),
            _ => 0,
        }
    }

    /// The link's name.
    pub fn link_name(&self, link: LinkHandle) -> Option<&str> {
        self.conns
            .get(link.conn)?
            .links
            .get(link.link)
            .map(|l| l.config.name.as_str())
    }

    /// The address of the link's remote terminus as the peer attached it (the source for a
    /// receiver, the target for a sender); for a dynamic node, the address the peer assigned.
    pub fn remote_address(&self, link: LinkHandle) -> Option<String> {
        let c = self.conns.get(link.conn)?;
        let l = c.links.get(link.link)?;
        let a = c.engine.as_ref()?.link_remote_attach(l.engine?)?;
        match l.role {
            Role::Receiver => a.source.as_ref()?.address.as_deref().map(str::to_owned),
            Role::Sender => match a.target.as_ref()? {
                TargetKind::Target(t) => t.address.as_deref().map(str::to_owned),
                TargetKind::Coordinator(_) => None,
            },
        }
    }

    /// The peer's `attach` of a link (source, target, properties, …).
    pub fn remote_attach(&self, link: LinkHandle) -> Option<&amqp_proto::performatives::Attach> {
        let c = self.conns.get(link.conn)?;
        let l = c.links.get(link.link)?;
        c.engine.as_ref()?.link_remote_attach(l.engine?)
    }

    /// The local configuration of a link, to adjust in `on_link_opening` before we attach
    /// in reply (e.g. set the source address of a dynamic node).
    pub fn link_config_mut(&mut self, link: LinkHandle) -> Option<&mut LinkConfig> {
        self.conns
            .get_mut(link.conn)?
            .links
            .get_mut(link.link)
            .map(|l| &mut l.config)
    }

    /// The peer's container id on a connection.
    pub fn remote_container_id(&self, conn: ConnectionHandle) -> Option<&str> {
        self.conns
            .get(conn.0)?
            .engine
            .as_ref()?
            .remote_container_id()
    }

    /// The listener that accepted a connection (`None` for outgoing connections).
    pub fn connection_acceptor(&self, conn: ConnectionHandle) -> Option<AcceptorHandle> {
        self.conns.get(conn.0)?.acceptor
    }

    /// The identity a connecting peer authenticated as (server side).
    /// `None` on connections this container opened (it is the server that authenticates).
    pub fn authenticated_user(&self, conn: ConnectionHandle) -> Option<&str> {
        let c = self.conns.get(conn.0)?;
        if c.outgoing.is_some() {
            return None;
        }
        c.engine.as_ref()?.authenticated_identity()
    }

    /// The engine connection of the current transport, for anything the container does not
    /// wrap.
    pub fn engine(&mut self, conn: ConnectionHandle) -> Option<&mut Connection> {
        let c = self.conns.get_mut(conn.0)?;
        c.dirty = true;
        c.engine.as_mut()
    }

    /// Sends a message (a [`Message`](amqp_proto::message::Message), or a received one
    /// forwarded as it came). Returns a tracker for its outcome.
    pub fn send<M: Encode + ?Sized>(
        &mut self,
        link: LinkHandle,
        message: &M,
    ) -> Result<Tracker, MessagingError> {
        self.send_encoded(link, message, SendOptions::default())
    }

    /// Sends an already-encoded message (for example one received, forwarded unchanged).
    pub fn send_bytes(
        &mut self,
        link: LinkHandle,
        payload: Bytes,
    ) -> Result<Tracker, MessagingError> {
        let (gen, e, lid) = self.engine_link(link)?;
        let id = e.send_bytes(lid, payload, SendOptions::default())?;
        Ok(Tracker {
            conn: link.conn,
            gen,
            link,
            id,
        })
    }

    pub(super) fn send_encoded<P: Encode + ?Sized>(
        &mut self,
        link: LinkHandle,
        payload: &P,
        opts: SendOptions<'_>,
    ) -> Result<Tracker, MessagingError> {
        let (gen, e, lid) = self.engine_link(link)?;
        let id = e.send(lid, payload, opts)?;
        Ok(Tracker {
            conn: link.conn,
            gen,
            link,
            id,
        })
    }

    /// The managed connection, engine and engine link of an open link.
    fn engine_link(
        &mut self,
        link: LinkHandle,
    ) -> Result<(u32, &mut Connection, LinkId), MessagingError> {
        let c = self
            .conns
            .get_mut(link.conn)
            .ok_or(MessagingError::NoSuchObject("connection"))?;
        let gen = c.gen;
        let (e, lid) = c.engine_link(link.link)?;
        Ok((gen, e, lid))
    }

    /// Grants a receiver credit (replacing what is left). For receivers with prefetch 0.
    pub fn flow(&mut self, link: LinkHandle, credit: u32) -> Result<(), MessagingError> {
        let (_, e, lid) = self.engine_link(link)?;
        e.flow(lid, credit, false)?;
        Ok(())
    }

    /// Asks a receiver's sender to drain (use up or give up the credit): `on_drained` follows.
    pub fn drain(&mut self, link: LinkHandle) -> Result<(), MessagingError> {
        let (_, e, lid) = self.engine_link(link)?;
        let credit = e.link_credit(lid).unwrap_or(0);
        e.flow(lid, credit, true)?;
        Ok(())
    }

    pub(super) fn dispose(
        &mut self,
        d: DeliveryHandle,
        state: Option<DeliveryState>,
        settle: bool,
    ) -> Result<(), MessagingError> {
        let c = self
            .conns
            .get_mut(d.conn)
            .ok_or(MessagingError::NoSuchObject("connection"))?;
        if c.gen != d.gen {
            return Err(MessagingError::NotReady("the delivery's transport is gone"));
        }
        let e = c
            .engine
            .as_mut()
            .ok_or(MessagingError::NotReady("not connected"))?;
        e.disposition(d.id, state, settle)?;
        c.dirty = true;
        self.touched = true;
        Ok(())
    }

    /// Accepts and settles a received delivery.
    pub fn accept(&mut self, d: DeliveryHandle) -> Result<(), MessagingError> {
        self.dispose(d, Some(DeliveryState::accepted()), true)
    }

    /// Rejects and settles a received delivery.
    pub fn reject(
        &mut self,
        d: DeliveryHandle,
        error: Option<Error>,
    ) -> Result<(), MessagingError> {
        self.dispose(d, Some(DeliveryState::Rejected(Rejected { error })), true)
    }

    /// Releases and settles a received delivery (it may be redelivered to anyone). Proton's
    /// `release(delivered=False)`.
    pub fn release(&mut self, d: DeliveryHandle) -> Result<(), MessagingError> {
        self.dispose(d, Some(DeliveryState::released()), true)
    }

    /// Modifies and settles a received delivery (Proton's `release(delivered=True)` is
    /// `modify(d, true, false)`).
    pub fn modify(
        &mut self,
        d: DeliveryHandle,
        delivery_failed: bool,
        undeliverable_here: bool,
    ) -> Result<(), MessagingError> {
        let m = Modified {
            delivery_failed: Some(delivery_failed),
            undeliverable_here: Some(undeliverable_here),
            message_annotations: None,
        };
        self.dispose(d, Some(DeliveryState::Modified(m)), true)
    }

    /// Sets a received delivery's state without settling it.
    pub fn update(
        &mut self,
        d: DeliveryHandle,
        state: DeliveryState,
    ) -> Result<(), MessagingError> {
        self.dispose(d, Some(state), false)
    }

    /// Settles a received delivery.
    pub fn settle(&mut self, d: DeliveryHandle) -> Result<(), MessagingError> {
        self.dispose(d, None, true)
    }

    /// Settles a sent delivery (when `auto_settle` is off).
    pub fn settle_tracker(&mut self, t: Tracker) -> Result<(), MessagingError> {
        let c = self
            .conns
            .get_mut(t.conn)
            .ok_or(MessagingError::NoSuchObject("connection"))?;
        if c.gen != t.gen {
            return Err(MessagingError::NotReady("the delivery's transport is gone"));
        }
        let e = c
            .engine
            .as_mut()
            .ok_or(MessagingError::NotReady("not connected"))?;
        e.settle(t.id)?;
        c.dirty = true;
        Ok(())
    }
}
