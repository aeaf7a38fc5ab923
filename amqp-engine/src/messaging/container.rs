//! The sans-IO container: Proton's `Container` as a state machine that dispatches to a
//! [`MessagingHandler`] and asks its driver for I/O through [`IoRequest`]s.
//!
//! A driver (an adapter crate, or a test) runs this loop:
//!
//! ```text
//! container.start(now);
//! loop {
//!     while let Some(req) = container.poll_io() { carry it out (connect, listen, write, close) }
//!     if container.is_done() { break }
//!     wait for: socket readable/connected/closed, or container.poll_timeout()
//!     container.handle_read(transport, &bytes, now) / handle_connected / handle_disconnected /
//!         handle_accepted / handle_timeout(now) ...
//! }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_proto::definitions::{
    condition, Error, Fields, ReceiverSettleMode, Role, SenderSettleMode,
};
use amqp_proto::message::Message;
use amqp_proto::messaging::{
    distribution_mode, DeliveryState, FilterSet, Modified, Rejected, Source, Target, TargetKind,
    TerminusDurability, TerminusExpiryPolicy,
};
use amqp_proto::{Described, Descriptor, Encode, Symbol, Value};
use bytes::Bytes;

use super::handler::{Event, EventContext, EventType, HandlerOptions, MessagingHandler};
use super::options::{ConnectOptions, OptionsError, ResolvedTargets, TlsOptions};
use super::reconnect::Failover;
use super::url::{Url, UrlError};
use crate::config::{ConnectionConfig, SaslMode, Side};
use crate::connection::{Connection, EndpointState, LinkConfig, SendOptions, SessionConfig};
use crate::event::Event as EngineEvent;
use crate::ids::{DeliveryId, Key, LinkId, SessionId, Slab};
use crate::sasl::{ClientMechanismFactory, SaslClientConfig, SaslServerConfig};

/// A logical connection: it survives reconnects.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConnectionHandle(Key);

/// One transport attempt of a connection; I/O results name it so stale ones are ignored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TransportId {
    conn: Key,
    gen: u32,
}

impl TransportId {
    /// The connection this transport belongs to.
    pub fn connection(&self) -> ConnectionHandle {
        ConnectionHandle(self.conn)
    }
}

/// A session of the current transport of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionHandle {
    conn: Key,
    gen: u32,
    session: SessionId,
}

/// A sender or receiver. Links created by the application are re-attached after a reconnect and
/// keep their handle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct LinkHandle {
    conn: Key,
    link: Key,
}

impl LinkHandle {
    /// The connection of the link.
    pub fn connection(&self) -> ConnectionHandle {
        ConnectionHandle(self.conn)
    }
}

/// A received delivery, to accept, reject, release, modify or settle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DeliveryHandle {
    conn: Key,
    gen: u32,
    link: LinkHandle,
    id: DeliveryId,
}

impl DeliveryHandle {
    /// The receiving link.
    pub fn link(&self) -> LinkHandle {
        self.link
    }
}

/// A sent delivery (Proton's tracker): its outcome arrives in `on_accepted`, `on_rejected`,
/// `on_released`, `on_settled`, or `on_in_doubt`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Tracker {
    conn: Key,
    gen: u32,
    link: LinkHandle,
    id: DeliveryId,
}

impl Tracker {
    /// The sending link.
    pub fn link(&self) -> LinkHandle {
        self.link
    }
    /// A number unique among the trackers of one transport of one connection.
    pub fn delivery_number(&self) -> u32 {
        self.id.number
    }
}

/// A scheduled task.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct TimerHandle(u64);

/// A listener.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AcceptorHandle(Key);

/// What the driver must do.
#[non_exhaustive]
#[derive(Debug)]
pub enum IoRequest {
    /// Open a transport to `host:port` (trying every address it resolves to), with TLS if
    /// `tls` is set; answer with [`Container::handle_connected`] or
    /// [`Container::handle_connect_failed`].
    Connect {
        /// The transport.
        transport: TransportId,
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
        /// TLS settings, for `amqps`.
        tls: Option<TlsConnect>,
    },
    /// Write these bytes, in order.
    Write {
        /// The transport.
        transport: TransportId,
        /// The bytes.
        data: Bytes,
    },
    /// Close the transport once earlier writes are flushed. No answer is needed.
    Close {
        /// The transport.
        transport: TransportId,
    },
    /// Listen on `host:port` (port 0: any); answer with [`Container::handle_listening`], then
    /// [`Container::handle_accepted`] for each connection.
    Listen {
        /// The listener.
        acceptor: AcceptorHandle,
        /// Host or address to bind (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
        /// Server-side TLS, for `amqps`.
        tls: Option<TlsListen>,
    },
    /// Stop listening.
    StopListening {
        /// The listener.
        acceptor: AcceptorHandle,
    },
}

/// TLS for an outgoing transport.
#[derive(Clone, Debug)]
pub struct TlsConnect {
    /// Name to verify the server certificate against and send as SNI.
    pub server_name: String,
    /// CA, client certificate and verification settings.
    pub options: TlsOptions,
}

/// TLS for a listener.
#[derive(Clone, Debug, Default)]
pub struct TlsListen {
    /// The server certificate chain (PEM).
    pub cert: Option<super::options::PemSource>,
    /// The server private key (PEM).
    pub key: Option<super::options::PemSource>,
    /// Verify client certificates against this CA (PEM); clients must present one if
    /// `require_client_cert`.
    pub client_ca: Option<super::options::PemSource>,
    /// Require a client certificate.
    pub require_client_cert: bool,
}

/// What the driver learned about a transport when it came up.
#[derive(Clone, Debug, Default)]
pub struct TransportInfo {
    /// TLS is on.
    pub encrypted: bool,
    /// The verified peer identity from TLS (client certificate subject), if any; on the client
    /// side, set it to anything when presenting a client certificate (enables SASL EXTERNAL).
    pub peer_identity: Option<String>,
    /// The peer's address, for diagnostics.
    pub peer_addr: Option<String>,
}

/// Options for [`Reactor::listen_with`].
#[derive(Clone, Debug, Default)]
pub struct ListenOptions {
    /// The SASL server layer; `None` accepts clients with or without SASL (ANONYMOUS).
    pub sasl: Option<SaslServerConfig>,
    /// Server-side TLS (required for `amqps://` URLs).
    pub tls: Option<TlsListen>,
    /// Idle timeout we advertise to clients.
    pub idle_timeout: Option<Duration>,
    /// Largest frame we accept.
    pub max_frame_size: Option<u32>,
}

/// A link option, as in Proton's `proton.reactor` (`AtMostOnce()`, `Selector("…")`, …).
#[derive(Clone, Debug, PartialEq)]
pub enum LinkOption {
    /// Pre-settled sends (sender settle mode `settled`).
    AtMostOnce,
    /// Unsettled sends, receiver settles first.
    AtLeastOnce,
    /// A durable subscription: terminus durability `unsettled-state`, expiry `never`.
    DurableSubscription,
    /// Browse: distribution mode `copy`.
    Copy,
    /// Consume: distribution mode `move`.
    Move,
    /// Add filters to the source.
    Filter(FilterSet),
    /// A JMS selector filter (`apache.org:selector-filter:string`).
    Selector(String),
    /// Properties for a dynamic node.
    DynamicNodeProperties(Fields),
}

/// Options for a new sender or receiver.
#[derive(Clone, Debug, Default)]
pub struct LinkOptions {
    /// The link name (default: unique, generated).
    pub name: Option<String>,
    /// The node address: the target of a sender, the source of a receiver.
    pub address: Option<String>,
    /// Ask the peer to create a node (`dynamic = true`, e.g. a temporary reply queue).
    pub dynamic: bool,
    /// Link options.
    pub options: Vec<LinkOption>,
    /// Receiver prefetch (default: the handler's).
    pub prefetch: Option<u32>,
}

impl LinkOptions {
    /// Options with this address.
    pub fn address(address: impl Into<String>) -> LinkOptions {
        LinkOptions {
            address: Some(address.into()),
            ..LinkOptions::default()
        }
    }

    /// Adds a link option.
    pub fn with(mut self, o: LinkOption) -> LinkOptions {
        self.options.push(o);
        self
    }

    /// Sets the link name.
    pub fn name(mut self, n: impl Into<String>) -> LinkOptions {
        self.name = Some(n.into());
        self
    }

    /// A dynamic node.
    pub fn dynamic() -> LinkOptions {
        LinkOptions {
            dynamic: true,
            ..LinkOptions::default()
        }
    }
}

impl From<&str> for LinkOptions {
    fn from(s: &str) -> Self {
        LinkOptions::address(s)
    }
}

impl From<String> for LinkOptions {
    fn from(s: String) -> Self {
        LinkOptions::address(s)
    }
}

/// Errors of the container's operations.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum MessagingError {
    /// A bad URL.
    Url(UrlError),
    /// Bad connect options (e.g. `url` and `urls` together).
    Options(OptionsError),
    /// The object is gone or the event has none.
    NoSuchObject(&'static str),
    /// The link is not attached on the current transport, or has no credit.
    NotReady(&'static str),
    /// The engine refused the operation.
    Engine(crate::error::OpError),
    /// The container is stopping.
    Stopped,
}

impl fmt::Display for MessagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessagingError::Url(e) => write!(f, "bad URL: {e}"),
            MessagingError::Options(e) => write!(f, "bad connect options: {e}"),
            MessagingError::NoSuchObject(s) => write!(f, "no such object: {s}"),
            MessagingError::NotReady(s) => write!(f, "not ready: {s}"),
            MessagingError::Engine(e) => write!(f, "{e}"),
            MessagingError::Stopped => f.write_str("container stopped"),
        }
    }
}

impl std::error::Error for MessagingError {}

impl From<UrlError> for MessagingError {
    fn from(e: UrlError) -> Self {
        MessagingError::Url(e)
    }
}
impl From<OptionsError> for MessagingError {
    fn from(e: OptionsError) -> Self {
        MessagingError::Options(e)
    }
}
impl From<crate::error::OpError> for MessagingError {
    fn from(e: crate::error::OpError) -> Self {
        MessagingError::Engine(e)
    }
}

struct Outgoing {
    options: ConnectOptions,
    failover: Failover,
    url_index: usize,
    process_started: Option<Instant>,
}

struct LinkRec {
    role: Role,
    config: LinkConfig,
    engine: Option<LinkId>,
    app_closed: bool,
    /// The handler closed it (not the peer): messages still queued for it are released.
    handler_closed: bool,
    prefetch: u32,
    /// Created by the application: re-attached after reconnect.
    persistent: bool,
    /// The error to close (or, for a link the peer is attaching, refuse) the link with.
    close_error: Option<Error>,
}

struct Conn {
    gen: u32,
    engine: Option<Connection>,
    acceptor: Option<AcceptorHandle>,
    outgoing: Option<Outgoing>,
    session: Option<SessionId>,
    links: Slab<LinkRec>,
    by_engine: HashMap<LinkId, Key>,
    app_closed: bool,
    dirty: bool,
    reconnect_timer: Option<TimerHandle>,
    auth_failed: bool,
    close_sent: bool,
}

/// A close asked for inside a callback, carried out after Proton's default actions for the
/// event (so an `on_message` that closes its link or connection still gets its delivery
/// auto-accepted first, as Proton writes dispositions before detach and close).
enum DeferredClose {
    Link(LinkHandle, Option<Error>),
    Connection(ConnectionHandle, Option<Error>),
}

enum TimerKind {
    Task,
    Reconnect(Key),
    HardStop,
}

/// The container state the handler works with through [`Event::container`]: connections,
/// links, timers, I/O requests. (Proton's `Container`, minus the handler.)
pub struct Reactor {
    id: String,
    now: Instant,
    started: bool,
    stopping: bool,
    handler_options: HandlerOptions,
    conns: Slab<Conn>,
    acceptors: Slab<(Url, ListenOptions, bool)>,
    timers: BTreeMap<(Instant, u64), TimerKind>,
    timer_index: HashMap<u64, Instant>,
    timer_seq: u64,
    io: VecDeque<IoRequest>,
    pending: VecDeque<(EventType, EventContext)>,
    touched: bool,
    name_seq: u64,
    entropy: Entropy,
    config_file: Option<String>,
    client_mechanisms: Vec<Arc<dyn ClientMechanismFactory>>,
    in_callback: bool,
    deferred_closes: Vec<DeferredClose>,
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("id", &self.id)
            .field("connections", &self.conns.len())
            .field("acceptors", &self.acceptors.len())
            .field("timers", &self.timers.len())
            .finish_non_exhaustive()
    }
}

/// A source of random bytes.
type Entropy = Box<dyn FnMut(&mut [u8]) + Send>;

/// A deterministic entropy source (splitmix64) for when the driver supplies none.
fn seeded_entropy(seed: u64) -> Entropy {
    let mut state = seed;
    Box::new(move |buf: &mut [u8]| {
        for chunk in buf.chunks_mut(8) {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let b = z.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    })
}

/// A version-4 UUID string from 16 random bytes.
pub fn uuid_from_bytes(bytes: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The selector filter descriptor, `apache.org:selector-filter:string`.
pub const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;

impl Reactor {
    fn new(id: String, handler_options: HandlerOptions, seed: u64, now: Instant) -> Reactor {
        Reactor {
            id,
            now,
            started: false,
            stopping: false,
            handler_options,
            conns: Slab::default(),
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
        }
    }

    /// The container id (sent as `container-id` in `open`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current time (as last given by the driver).
    pub fn now(&self) -> Instant {
        self.now
    }

    fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        (self.entropy)(&mut v);
        v
    }

    fn push(&mut self, kind: EventType, ctx: EventContext) {
        self.pending.push_back((kind, ctx));
    }

    fn ctx_conn(&self, ck: Key) -> EventContext {
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
    /// handed to [`Container::set_connect_config`] is used (Proton's `connect.json`).
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
                    Some(json) => super::options::parse_connect_config(json)?,
                    None => super::options::ConnectConfig::default(),
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
        let conn = Conn {
            gen: 0,
            engine: None,
            acceptor: None,
            outgoing: Some(Outgoing {
                options,
                failover,
                url_index: 0,
                process_started: None,
            }),
            session: None,
            links: Slab::default(),
            by_engine: HashMap::new(),
            app_closed: false,
            dirty: false,
            reconnect_timer: None,
            auth_failed: false,
            close_sent: false,
        };
        let ck = self.conns.insert(conn);
        self.next_attempt(ck);
        Ok(ConnectionHandle(ck))
    }

    /// Listens for connections on a URL such as `0.0.0.0:5672`, `[::0]:5672`,
    /// `amqp://127.0.0.1:0` (port 0: any free port; see [`Reactor::acceptor_port`]).
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
        let key = self.acceptors.insert((url, options, false));
        let acceptor = AcceptorHandle(key);
        self.io.push_back(IoRequest::Listen {
            acceptor,
            host,
            port,
            tls,
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
        self.acceptors.get(acceptor.0).map(|a| &a.0)
    }

    /// The port a listener is bound to (the real one once listening, even for port 0).
    pub fn acceptor_port(&self, acceptor: AcceptorHandle) -> Option<u16> {
        self.acceptors.get(acceptor.0).map(|a| a.0.port())
    }

    fn gen_name(&mut self, prefix: &str) -> String {
        self.name_seq += 1;
        format!("{}-{}-{}", self.id, prefix, self.name_seq)
    }

    fn link_config(&mut self, role: Role, opts: &LinkOptions) -> LinkConfig {
        let name = opts.name.clone().unwrap_or_else(|| {
            self.gen_name(if role == Role::Sender {
                "sender"
            } else {
                "receiver"
            })
        });
        let mut source = Source::default();
        let mut target = Target::default();
        match role {
            Role::Sender => {
                target.address = opts.address.as_deref().map(Into::into);
                if opts.dynamic {
                    target.dynamic = Some(true);
                    target.address = None;
                }
            }
            Role::Receiver => {
                source.address = opts.address.as_deref().map(Into::into);
                if opts.dynamic {
                    source.dynamic = Some(true);
                    source.address = None;
                }
            }
        }
        let mut cfg = LinkConfig {
            name,
            ..LinkConfig::default()
        };
        for o in &opts.options {
            match o {
                LinkOption::AtMostOnce => {
                    cfg.snd_settle_mode = Some(SenderSettleMode::Settled);
                }
                LinkOption::AtLeastOnce => {
                    cfg.snd_settle_mode = Some(SenderSettleMode::Unsettled);
                    cfg.rcv_settle_mode = Some(ReceiverSettleMode::First);
                }
                LinkOption::DurableSubscription => {
                    source.durable = Some(TerminusDurability::UnsettledState);
                    source.expiry_policy = Some(TerminusExpiryPolicy::Never);
                }
                LinkOption::Copy => source.distribution_mode = Some(distribution_mode::COPY),
                LinkOption::Move => source.distribution_mode = Some(distribution_mode::MOVE),
                LinkOption::Filter(f) => {
                    let set = source.filter.get_or_insert_with(FilterSet::new);
                    for (k, v) in f.iter() {
                        set.insert(k.clone(), v.clone());
                    }
                }
                LinkOption::Selector(sel) => {
                    let v = Value::Described(Box::new(Described {
                        descriptor: Descriptor::Code(SELECTOR_FILTER_CODE),
                        value: Value::string(sel.as_str()),
                    }));
                    source
                        .filter
                        .get_or_insert_with(FilterSet::new)
                        .insert(Symbol::from("selector"), v);
                }
                LinkOption::DynamicNodeProperties(p) => {
                    if role == Role::Receiver {
                        source.dynamic_node_properties = Some(p.clone());
                    } else {
                        target.dynamic_node_properties = Some(p.clone());
                    }
                }
            }
        }
        cfg.source = Some(source);
        cfg.target = Some(TargetKind::Target(target));
        cfg
    }

    fn create_link(
        &mut self,
        conn: ConnectionHandle,
        role: Role,
        opts: LinkOptions,
    ) -> Result<LinkHandle, MessagingError> {
        if self.conns.get(conn.0).is_none() {
            return Err(MessagingError::NoSuchObject("connection"));
        }
        let config = self.link_config(role, &opts);
        let prefetch = opts.prefetch.unwrap_or(self.handler_options.prefetch);
        let c = self
            .conns
            .get_mut(conn.0)
            .ok_or(MessagingError::NoSuchObject("connection"))?;
        let key = c.links.insert(LinkRec {
            role,
            config,
            engine: None,
            app_closed: false,
            handler_closed: false,
            prefetch,
            persistent: true,
            close_error: None,
        });
        self.attach_link(conn.0, key);
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

    /// Connects to `url` and creates a sender to the URL's address (Proton's
    /// `create_sender("amqp://host/queue")`).
    pub fn create_sender_url(&mut self, url: &str) -> Result<LinkHandle, MessagingError> {
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

    /// Connects to `url` and creates a receiver from the URL's address.
    pub fn create_receiver_url(&mut self, url: &str) -> Result<LinkHandle, MessagingError> {
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

    fn add_timer(&mut self, at: Instant, kind: TimerKind) -> TimerHandle {
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
            Some(e) if !e.is_finished() => {
                let _ = e.close(error);
                c.dirty = true;
            }
            Some(_) => {}
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
        if let (Some(e), Some(lid)) = (c.engine.as_mut(), l.engine) {
            if e.link_state(lid)
                .is_some_and(|s| s.0 == EndpointState::Active)
            {
                let _ = e.detach(lid, true, error);
            }
            c.dirty = true;
        }
    }

    /// Carries out the closes asked for during the last callback.
    fn run_deferred_closes(&mut self) {
        for d in std::mem::take(&mut self.deferred_closes) {
            match d {
                DeferredClose::Link(link, error) => {
                    let Some(c) = self.conns.get_mut(link.conn) else {
                        continue;
                    };
                    let Some(lid) = c.links.get(link.link).and_then(|l| l.engine) else {
                        continue;
                    };
                    if let Some(e) = c.engine.as_mut() {
                        if e.link_state(lid)
                            .is_some_and(|s| s.0 == EndpointState::Active)
                        {
                            let _ = e.detach(lid, true, error);
                        }
                        c.dirty = true;
                    }
                }
                DeferredClose::Connection(conn, error) => {
                    let Some(c) = self.conns.get_mut(conn.0) else {
                        continue;
                    };
                    if let Some(e) = c.engine.as_mut() {
                        if !e.is_finished() {
                            let _ = e.close(error);
                            c.dirty = true;
                        }
                    }
                }
            }
        }
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
    pub fn authenticated_user(&self, conn: ConnectionHandle) -> Option<&str> {
        self.conns
            .get(conn.0)?
            .engine
            .as_ref()?
            .authenticated_identity()
    }

    /// The engine connection of the current transport, for anything the container does not
    /// wrap.
    pub fn engine(&mut self, conn: ConnectionHandle) -> Option<&mut Connection> {
        let c = self.conns.get_mut(conn.0)?;
        c.dirty = true;
        c.engine.as_mut()
    }

    /// Sends a message. Returns a tracker for its outcome.
    pub fn send(&mut self, link: LinkHandle, message: &Message) -> Result<Tracker, MessagingError> {
        self.send_encoded(link, message, SendOptions::default())
    }

    /// Sends an already-encoded message (for example one received, forwarded unchanged).
    pub fn send_bytes(
        &mut self,
        link: LinkHandle,
        payload: Bytes,
    ) -> Result<Tracker, MessagingError> {
        let (c, lid) = self.engine_link(link)?;
        let gen = c.gen;
        let e = c
            .engine
            .as_mut()
            .ok_or(MessagingError::NotReady("not connected"))?;
        let id = e.send_bytes(lid, payload, SendOptions::default())?;
        c.dirty = true;
        Ok(Tracker {
            conn: link.conn,
            gen,
            link,
            id,
        })
    }

    fn send_encoded<P: Encode + ?Sized>(
        &mut self,
        link: LinkHandle,
        payload: &P,
        opts: SendOptions<'_>,
    ) -> Result<Tracker, MessagingError> {
        let (c, lid) = self.engine_link(link)?;
        let gen = c.gen;
        let e = c
            .engine
            .as_mut()
            .ok_or(MessagingError::NotReady("not connected"))?;
        let id = e.send(lid, payload, opts)?;
        c.dirty = true;
        Ok(Tracker {
            conn: link.conn,
            gen,
            link,
            id,
        })
    }

    fn engine_link(&mut self, link: LinkHandle) -> Result<(&mut Conn, LinkId), MessagingError> {
        let c = self
            .conns
            .get_mut(link.conn)
            .ok_or(MessagingError::NoSuchObject("connection"))?;
        let l = c
            .links
            .get(link.link)
            .ok_or(MessagingError::NoSuchObject("link"))?;
        let lid = l
            .engine
            .ok_or(MessagingError::NotReady("link not attached"))?;
        Ok((c, lid))
    }

    /// Grants a receiver credit (replacing what is left). For receivers with prefetch 0.
    pub fn flow(&mut self, link: LinkHandle, credit: u32) -> Result<(), MessagingError> {
        let (c, lid) = self.engine_link(link)?;
        let e = c
            .engine
            .as_mut()
            .ok_or(MessagingError::NotReady("not connected"))?;
        e.flow(lid, credit, false)?;
        c.dirty = true;
        Ok(())
    }

    /// Asks a receiver's sender to drain (use up or give up the credit): `on_drained` follows.
    pub fn drain(&mut self, link: LinkHandle) -> Result<(), MessagingError> {
        let (c, lid) = self.engine_link(link)?;
        let e = c
            .engine
            .as_mut()
            .ok_or(MessagingError::NotReady("not connected"))?;
        let credit = e.link_credit(lid).unwrap_or(0);
        e.flow(lid, credit, true)?;
        c.dirty = true;
        Ok(())
    }

    fn dispose(
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

    // ------------------------------------------------------------------------------------
    // Internals: attempts, engines, events
    // ------------------------------------------------------------------------------------

    fn next_attempt(&mut self, ck: Key) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        let Some(o) = c.outgoing.as_mut() else { return };
        let started = *o.process_started.get_or_insert(now);
        let next = if c.auth_failed {
            None
        } else {
            o.failover
                .next_attempt_within(now.saturating_duration_since(started))
        };
        match next {
            Some((index, delay)) => {
                o.url_index = index;
                if delay.is_zero() {
                    self.start_attempt(ck);
                } else {
                    let t = self.add_timer(now + delay, TimerKind::Reconnect(ck));
                    if let Some(c) = self.conns.get_mut(ck) {
                        c.reconnect_timer = Some(t);
                    }
                }
            }
            None => {
                // Give up: the connection is over.
                let mut ctx = self.ctx_conn(ck);
                ctx.transport_error = Some("reconnect gave up".into());
                self.conns.remove(ck);
                self.push(EventType::ConnectionClosed, ctx);
            }
        }
    }

    fn start_attempt(&mut self, ck: Key) {
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        c.gen += 1;
        c.engine = None;
        c.session = None;
        c.by_engine.clear();
        let gen = c.gen;
        let Some(o) = c.outgoing.as_ref() else { return };
        let Some(url) = o.failover.urls().get(o.url_index).cloned() else {
            return;
        };
        let tls = url.is_tls().then(|| TlsConnect {
            server_name: o.options.effective_sni(&url).to_string(),
            options: o.options.tls.clone().unwrap_or_default(),
        });
        self.io.push_back(IoRequest::Connect {
            transport: TransportId { conn: ck, gen },
            host: url.host().to_string(),
            port: url.port(),
            tls,
        });
    }

    fn attach_link(&mut self, ck: Key, lk: Key) {
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        let (Some(e), Some(sid)) = (c.engine.as_mut(), c.session) else {
            return;
        };
        let Some(l) = c.links.get_mut(lk) else { return };
        if l.app_closed || l.engine.is_some() {
            return;
        }
        let r = match l.role {
            Role::Sender => e.attach_sender(sid, l.config.clone()),
            Role::Receiver => e.attach_receiver(sid, l.config.clone()),
        };
        if let Ok(lid) = r {
            l.engine = Some(lid);
            if l.role == Role::Receiver && l.prefetch > 0 {
                let _ = e.flow(lid, l.prefetch, false);
            }
            c.by_engine.insert(lid, lk);
            c.dirty = true;
        }
    }

    fn new_client_engine(&mut self, ck: Key, info: &TransportInfo) -> Option<Connection> {
        let nonce = self.random_bytes(24);
        let id = self.id.clone();
        let now = self.now;
        let c = self.conns.get(ck)?;
        let o = c.outgoing.as_ref()?;
        let url = o.failover.urls().get(o.url_index)?;
        let opts = &o.options;
        let mut cfg = ConnectionConfig::new(opts.container_id.clone().unwrap_or(id));
        cfg.hostname = Some(opts.effective_virtual_host(url).to_string());
        if let Some(mfs) = opts.max_frame_size {
            cfg.max_frame_size = mfs;
        }
        cfg.idle_timeout = opts.effective_heartbeat();
        cfg.offered_capabilities = opts
            .offered_capabilities
            .iter()
            .map(|s| Symbol::from(s.as_str()))
            .collect();
        cfg.desired_capabilities = opts
            .desired_capabilities
            .iter()
            .map(|s| Symbol::from(s.as_str()))
            .collect();
        if !opts.properties.is_empty() {
            cfg.properties = Some(
                opts.properties
                    .iter()
                    .map(|(k, v)| (Symbol::from(k.as_str()), Value::string(v.as_str())))
                    .collect(),
            );
        }
        cfg.transport_encrypted = info.encrypted;
        cfg.transport_identity = info.peer_identity.clone();
        if opts.sasl_enabled {
            let mut s = SaslClientConfig {
                user: opts.effective_user(url).map(str::to_owned),
                password: opts.effective_password(url).map(str::to_owned),
                allow_insecure_mechs: opts.allow_insecure_mechs,
                nonce,
                service: opts.sasl_service.clone(),
                extra_mechanisms: self.client_mechanisms.clone(),
                ..SaslClientConfig::default()
            };
            if let Some(m) = &opts.allowed_mechs {
                s.set_allowed_mechs(m);
            }
            cfg.sasl = SaslMode::Client(s);
        }
        Some(Connection::new(Side::Client, cfg, now))
    }

    fn on_connected(&mut self, t: TransportId, info: TransportInfo) {
        let Some(c) = self.conns.get(t.conn) else {
            return;
        };
        if c.gen != t.gen || c.engine.is_some() {
            return;
        }
        let Some(mut engine) = self.new_client_engine(t.conn, &info) else {
            return;
        };
        let _ = engine.open();
        let session = engine.begin_session(SessionConfig::default()).ok();
        let Some(c) = self.conns.get_mut(t.conn) else {
            return;
        };
        c.engine = Some(engine);
        c.session = session;
        c.dirty = true;
        c.close_sent = false;
        let links = c.links.keys();
        for lk in links {
            if let Some(c) = self.conns.get_mut(t.conn) {
                if let Some(l) = c.links.get_mut(lk) {
                    l.engine = None;
                }
            }
            self.attach_link(t.conn, lk);
        }
    }

    fn on_accepted(
        &mut self,
        acceptor: AcceptorHandle,
        info: TransportInfo,
    ) -> Option<TransportId> {
        let (_, lo, _) = self.acceptors.get(acceptor.0)?.clone();
        let mut cfg = ConnectionConfig::new(self.id.clone());
        cfg.transport_encrypted = info.encrypted;
        cfg.transport_identity = info.peer_identity.clone();
        cfg.idle_timeout = lo.idle_timeout;
        if let Some(m) = lo.max_frame_size {
            cfg.max_frame_size = m;
        }
        let mut sasl = lo.sasl.clone().unwrap_or_else(SaslServerConfig::anonymous);
        sasl.nonce = self.random_bytes(24);
        cfg.sasl = SaslMode::Server(sasl);
        let engine = Connection::new(Side::Server, cfg, self.now);
        let ck = self.conns.insert(Conn {
            gen: 1,
            engine: Some(engine),
            acceptor: Some(acceptor),
            outgoing: None,
            session: None,
            links: Slab::default(),
            by_engine: HashMap::new(),
            app_closed: false,
            dirty: true,
            reconnect_timer: None,
            auth_failed: false,
            close_sent: false,
        });
        Some(TransportId { conn: ck, gen: 1 })
    }

    fn link_handle(&self, ck: Key, lid: LinkId) -> Option<LinkHandle> {
        let c = self.conns.get(ck)?;
        c.by_engine
            .get(&lid)
            .map(|&lk| LinkHandle { conn: ck, link: lk })
    }

    /// Translates the engine's events of one connection into handler events.
    fn process_engine(&mut self, ck: Key) {
        loop {
            let Some(c) = self.conns.get_mut(ck) else {
                return;
            };
            let gen = c.gen;
            let Some(e) = c.engine.as_mut() else { return };
            let Some(ev) = e.poll_event() else { return };
            c.dirty = true;
            let conn = ConnectionHandle(ck);
            let mut ctx = self.ctx_conn(ck);
            match ev {
                EngineEvent::Authenticated { .. } => {}
                EngineEvent::ConnectionOpened => {
                    let Some(c) = self.conns.get_mut(ck) else {
                        return;
                    };
                    let local_open = c
                        .engine
                        .as_ref()
                        .is_some_and(|e| e.state().0 != EndpointState::Uninit);
                    if let Some(o) = c.outgoing.as_mut() {
                        o.failover.reset();
                        o.process_started = None;
                    }
                    if local_open {
                        self.push(EventType::ConnectionOpened, ctx);
                    } else {
                        self.push(EventType::ConnectionOpening, ctx);
                    }
                }
                EngineEvent::ConnectionClosed { error } => {
                    let Some(c) = self.conns.get_mut(ck) else {
                        return;
                    };
                    let forced = error
                        .as_ref()
                        .is_some_and(|e| e.condition == condition::CONNECTION_FORCED);
                    let reconnecting = forced
                        && c.outgoing
                            .as_ref()
                            .is_some_and(|o| !o.failover.urls().is_empty())
                        && !c.app_closed
                        && !self.stopping;
                    if error
                        .as_ref()
                        .is_some_and(|e| e.condition == condition::UNAUTHORIZED_ACCESS)
                    {
                        c.auth_failed = true;
                    }
                    let app_closed = c.app_closed;
                    ctx.error = error.clone();
                    if reconnecting {
                        // amqp:connection:forced: treat as a lost transport; reconnect follows.
                        continue;
                    }
                    if error.is_some() {
                        self.push(EventType::ConnectionError, ctx.clone());
                    }
                    if !app_closed {
                        self.push(EventType::ConnectionClosing, ctx.clone());
                    }
                    if let Some(c) = self.conns.get_mut(ck) {
                        c.app_closed = true; // the peer closed: no reconnect
                    }
                    self.push(EventType::ConnectionClosed, ctx);
                }
                EngineEvent::SessionOpened {
                    session,
                    remote_initiated,
                } => {
                    ctx.session = Some(SessionHandle {
                        conn: ck,
                        gen,
                        session,
                    });
                    self.push(
                        if remote_initiated {
                            EventType::SessionOpening
                        } else {
                            EventType::SessionOpened
                        },
                        ctx,
                    );
                }
                EngineEvent::SessionEnded { session, error } => {
                    ctx.session = Some(SessionHandle {
                        conn: ck,
                        gen,
                        session,
                    });
                    ctx.error = error.clone();
                    if error.is_some() {
                        self.push(EventType::SessionError, ctx.clone());
                    }
                    self.push(EventType::SessionClosed, ctx);
                }
                EngineEvent::SessionError { session, error } => {
                    ctx.session = Some(SessionHandle {
                        conn: ck,
                        gen,
                        session,
                    });
                    ctx.error = Some(error);
                    self.push(EventType::SessionError, ctx);
                }
                EngineEvent::LinkOpened {
                    link,
                    remote_initiated,
                } => {
                    let lh = if remote_initiated {
                        let Some(c) = self.conns.get_mut(ck) else {
                            return;
                        };
                        let Some(e) = c.engine.as_ref() else { return };
                        let role = e.link_role(link).unwrap_or(Role::Sender);
                        let name = e.link_name(link).unwrap_or_default().to_string();
                        let prefetch = self.handler_options.prefetch;
                        let lk = c.links.insert(LinkRec {
                            role,
                            config: LinkConfig {
                                name,
                                ..LinkConfig::default()
                            },
                            engine: Some(link),
                            app_closed: false,
                            handler_closed: false,
                            prefetch,
                            persistent: false,
                            close_error: None,
                        });
                        c.by_engine.insert(link, lk);
                        LinkHandle { conn: ck, link: lk }
                    } else {
                        match self.link_handle(ck, link) {
                            Some(h) => h,
                            None => continue,
                        }
                    };
                    ctx.link = Some(lh);
                    self.push(
                        if remote_initiated {
                            EventType::LinkOpening
                        } else {
                            EventType::LinkOpened
                        },
                        ctx,
                    );
                }
                EngineEvent::LinkClosed { link, error, .. } => {
                    let Some(lh) = self.link_handle(ck, link) else {
                        continue;
                    };
                    ctx.link = Some(lh);
                    ctx.error = error.clone();
                    if error.is_some() {
                        self.push(EventType::LinkError, ctx.clone());
                    }
                    let app_closed = self
                        .conns
                        .get(ck)
                        .and_then(|c| c.links.get(lh.link))
                        .is_some_and(|l| l.app_closed);
                    if !app_closed {
                        self.push(EventType::LinkClosing, ctx.clone());
                    }
                    if let Some(c) = self.conns.get_mut(ck) {
                        if let Some(l) = c.links.get_mut(lh.link) {
                            // Detached by the peer: the link is over (not re-attached later).
                            l.app_closed = true;
                        }
                    }
                    self.push(EventType::LinkClosed, ctx);
                }
                EngineEvent::LinkError { link, error } => {
                    let Some(lh) = self.link_handle(ck, link) else {
                        continue;
                    };
                    ctx.link = Some(lh);
                    ctx.error = Some(error);
                    self.push(EventType::LinkError, ctx);
                }
                EngineEvent::LinkFlow { link, credit, .. } => {
                    let Some(lh) = self.link_handle(ck, link) else {
                        continue;
                    };
                    if credit > 0 {
                        ctx.link = Some(lh);
                        self.push(EventType::Sendable, ctx);
                    }
                }
                EngineEvent::LinkDrained { link } => {
                    let Some(lh) = self.link_handle(ck, link) else {
                        continue;
                    };
                    ctx.link = Some(lh);
                    self.push(EventType::Drained, ctx);
                }
                EngineEvent::Delivery(d) => {
                    let Some(lh) = self.link_handle(ck, d.link) else {
                        continue;
                    };
                    let closed = self
                        .conns
                        .get(ck)
                        .and_then(|c| c.links.get(lh.link))
                        .is_none_or(|l| l.app_closed);
                    let Some(c) = self.conns.get_mut(ck) else {
                        return;
                    };
                    let Some(e) = c.engine.as_mut() else { return };
                    if closed {
                        // Deliveries arriving on a link the application closed are released.
                        if !d.settled {
                            let _ =
                                e.disposition(d.delivery, Some(DeliveryState::released()), true);
                        }
                        continue;
                    }
                    match Message::decode(&d.payload) {
                        Ok(m) => {
                            ctx.link = Some(lh);
                            ctx.delivery = Some(DeliveryHandle {
                                conn: ck,
                                gen,
                                link: lh,
                                id: d.delivery,
                            });
                            ctx.message = Some(Box::new(m));
                            ctx.state = d.state;
                            if d.settled {
                                // Nothing to accept.
                                ctx.tracker = None;
                            }
                            self.push(EventType::Message, ctx);
                        }
                        Err(err) => {
                            if !d.settled {
                                let error = Error::new(condition::DECODE_ERROR, err.to_string());
                                let _ = e.disposition(
                                    d.delivery,
                                    Some(DeliveryState::Rejected(Rejected { error: Some(error) })),
                                    true,
                                );
                            }
                        }
                    }
                }
                EngineEvent::Disposition {
                    delivery,
                    state,
                    settled,
                } => {
                    let Some(lh) = self.link_handle(ck, delivery.link) else {
                        continue;
                    };
                    let role = self
                        .conns
                        .get(ck)
                        .and_then(|c| c.links.get(lh.link))
                        .map(|l| l.role);
                    ctx.link = Some(lh);
                    ctx.state = state.clone();
                    match role {
                        Some(Role::Sender) => {
                            let tracker = Tracker {
                                conn: ck,
                                gen,
                                link: lh,
                                id: delivery,
                            };
                            ctx.tracker = Some(tracker);
                            match &state {
                                Some(DeliveryState::Accepted(_)) => {
                                    self.push(EventType::Accepted, ctx.clone())
                                }
                                Some(DeliveryState::Rejected(r)) => {
                                    let mut c2 = ctx.clone();
                                    c2.error = r.error.clone();
                                    self.push(EventType::Rejected, c2)
                                }
                                Some(DeliveryState::Released(_))
                                | Some(DeliveryState::Modified(_)) => {
                                    self.push(EventType::Released, ctx.clone())
                                }
                                _ => {}
                            }
                            if settled {
                                self.push(EventType::Settled, ctx);
                            } else if self.handler_options.auto_settle
                                && state.as_ref().is_some_and(DeliveryState::is_terminal)
                            {
                                if let Some(e) =
                                    self.conns.get_mut(ck).and_then(|c| c.engine.as_mut())
                                {
                                    let _ = e.settle(delivery);
                                }
                            }
                        }
                        Some(Role::Receiver) if settled => {
                            ctx.delivery = Some(DeliveryHandle {
                                conn: ck,
                                gen,
                                link: lh,
                                id: delivery,
                            });
                            self.push(EventType::Settled, ctx);
                        }
                        _ => {}
                    }
                }
                EngineEvent::Aborted { delivery } => {
                    let Some(lh) = self.link_handle(ck, delivery.link) else {
                        continue;
                    };
                    ctx.link = Some(lh);
                    ctx.delivery = Some(DeliveryHandle {
                        conn: ck,
                        gen,
                        link: lh,
                        id: delivery,
                    });
                    self.push(EventType::Aborted, ctx);
                }
                EngineEvent::Error(err) => {
                    if err.is_auth_failure() {
                        if let Some(c) = self.conns.get_mut(ck) {
                            c.auth_failed = true;
                        }
                    }
                    if !matches!(
                        err.kind,
                        crate::error::ErrorKind::RemoteClose
                            | crate::error::ErrorKind::TransportEnded
                    ) {
                        ctx.transport_error = Some(err.to_string());
                        ctx.error = Some(err.error.clone());
                        self.push(EventType::TransportError, ctx);
                    }
                }
                EngineEvent::Finished => {
                    self.transport_done(ck, None);
                    return;
                }
            }
            let _ = conn;
        }
    }

    /// The transport of a connection is over: flush, close, and reconnect or forget it.
    fn transport_done(&mut self, ck: Key, reason: Option<String>) {
        self.flush_conn(ck);
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        let gen = c.gen;
        if !c.close_sent {
            c.close_sent = true;
            self.io.push_back(IoRequest::Close {
                transport: TransportId { conn: ck, gen },
            });
        }
        let mut ctx = self.ctx_conn(ck);
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        let clean = c.engine.as_ref().is_some_and(|e| {
            e.state() == (EndpointState::Closed, EndpointState::Closed) && e.error().is_none()
        });
        let in_doubt: Vec<DeliveryId> = c
            .engine
            .as_ref()
            .map(Connection::unsettled_sent)
            .unwrap_or_default();
        let reconnect = c.outgoing.is_some() && !c.app_closed && !self.stopping && !c.auth_failed;
        ctx.transport_error = reason.or_else(|| {
            c.engine
                .as_ref()
                .and_then(|e| e.error())
                .map(|e| e.to_string())
        });
        if !clean {
            self.push(EventType::Disconnected, ctx.clone());
            for id in in_doubt {
                if let Some(lh) = self.link_handle(ck, id.link) {
                    let mut c2 = ctx.clone();
                    c2.link = Some(lh);
                    c2.tracker = Some(Tracker {
                        conn: ck,
                        gen,
                        link: lh,
                        id,
                    });
                    self.push(EventType::InDoubt, c2);
                }
            }
        }
        if reconnect {
            if let Some(c) = self.conns.get_mut(ck) {
                c.engine = None;
                c.session = None;
                c.by_engine.clear();
                // Links the peer created, or the app closed, do not come back.
                for k in c.links.keys() {
                    if c.links
                        .get(k)
                        .is_some_and(|l| !l.persistent || l.app_closed)
                    {
                        c.links.remove(k);
                    } else if let Some(l) = c.links.get_mut(k) {
                        l.engine = None;
                    }
                }
            }
            self.next_attempt(ck);
        } else {
            if !clean && self.conns.get(ck).is_some_and(|c| c.outgoing.is_some()) {
                // An outgoing connection that will not come back.
                self.push(EventType::ConnectionClosed, ctx);
            }
            self.conns.remove(ck);
        }
    }

    fn flush_conn(&mut self, ck: Key) {
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        c.dirty = false;
        let gen = c.gen;
        if let Some(e) = c.engine.as_mut() {
            let data = e.poll_transmit_bytes();
            if !data.is_empty() {
                self.io.push_back(IoRequest::Write {
                    transport: TransportId { conn: ck, gen },
                    data,
                });
            }
        }
    }

    fn valid(&self, t: TransportId) -> bool {
        self.conns.get(t.conn).is_some_and(|c| c.gen == t.gen)
    }
}

/// Proton's `Container`: a handler plus the [`Reactor`] state, driven through `handle_*` and
/// `poll_*` calls by an adapter or a test driver.
pub struct Container<H: MessagingHandler> {
    handler: H,
    reactor: Reactor,
}

impl<H: MessagingHandler> fmt::Debug for Container<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Container")
            .field("reactor", &self.reactor)
            .finish_non_exhaustive()
    }
}

impl<H: MessagingHandler> Container<H> {
    /// A container with this id. Drivers generate a UUID v4 when the user sets none (seed
    /// §5.1.2); see [`uuid_from_bytes`].
    pub fn with_id(handler: H, id: impl Into<String>, now: Instant) -> Self {
        let id: String = id.into();
        let seed = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let opts = handler.options();
        let reactor = Reactor::new(id, opts, seed, now);
        Container { handler, reactor }
    }

    /// Supplies randomness (SCRAM nonces); by default a deterministic generator seeded by the
    /// container id, so simulations replay.
    pub fn set_entropy(&mut self, f: impl FnMut(&mut [u8]) + Send + 'static) {
        self.reactor.entropy = Box::new(f);
    }

    /// Supplies the contents of Proton's connect configuration file, used by `connect_with`
    /// when no URL is given.
    pub fn set_connect_config(&mut self, json: Option<String>) {
        self.reactor.config_file = json;
    }

    /// Adds a SASL client mechanism beyond the built-in ones (GSSAPI) to every outgoing
    /// connection; such mechanisms are preferred when the server offers them and the
    /// connection's `allowed_mechs` permits them (see [`crate::sasl::SaslClientConfig`]).
    pub fn add_client_mechanism(&mut self, mechanism: Arc<dyn ClientMechanismFactory>) {
        self.reactor.client_mechanisms.push(mechanism);
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Consumes the container, returning the handler.
    pub fn into_handler(self) -> H {
        self.handler
    }

    /// The container state (connect, listen, … from outside a callback).
    pub fn reactor(&mut self) -> &mut Reactor {
        &mut self.reactor
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.reactor.id
    }

    /// Starts: calls `on_start`.
    pub fn start(&mut self, now: Instant) {
        self.reactor.now = now;
        if !self.reactor.started {
            self.reactor.started = true;
            self.reactor.push(EventType::Start, EventContext::default());
        }
        self.pump();
    }

    /// The next I/O request.
    pub fn poll_io(&mut self) -> Option<IoRequest> {
        if self.reactor.io.is_empty() {
            // Operations made outside a callback (through `reactor()`) are flushed here.
            self.pump();
        }
        self.reactor.io.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.reactor.timers.keys().next().map(|(at, _)| *at);
        for k in self.reactor.conns.keys() {
            if let Some(e) = self.reactor.conns.get(k).and_then(|c| c.engine.as_ref()) {
                if let Some(et) = e.poll_timeout() {
                    t = Some(t.map_or(et, |x| x.min(et)));
                }
            }
        }
        t
    }

    /// True when the container has nothing left to do (stopped, or no connections, listeners
    /// or timers): the driver's run loop ends.
    pub fn is_done(&self) -> bool {
        let r = &self.reactor;
        r.started
            && r.pending.is_empty()
            && r.io.is_empty()
            && r.conns.len() == 0
            && (r.acceptors.len() == 0 || r.stopping)
            && (r.timers.is_empty() || r.stopping)
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.reactor.now = now;
        while let Some((&(at, id), _)) = self.reactor.timers.iter().next() {
            if at > now {
                break;
            }
            let Some(kind) = self.reactor.timers.remove(&(at, id)) else {
                break;
            };
            self.reactor.timer_index.remove(&id);
            match kind {
                TimerKind::Task => {
                    let ctx = EventContext {
                        timer: Some(TimerHandle(id)),
                        ..EventContext::default()
                    };
                    self.reactor.push(EventType::TimerTask, ctx);
                }
                TimerKind::Reconnect(ck) => {
                    if let Some(c) = self.reactor.conns.get_mut(ck) {
                        c.reconnect_timer = None;
                    }
                    self.reactor.start_attempt(ck);
                }
                TimerKind::HardStop => {
                    for ck in self.reactor.conns.keys() {
                        let gen = self.reactor.conns.get(ck).map_or(0, |c| c.gen);
                        self.reactor.flush_conn(ck);
                        self.reactor.io.push_back(IoRequest::Close {
                            transport: TransportId { conn: ck, gen },
                        });
                        self.reactor.conns.remove(ck);
                    }
                }
            }
        }
        for ck in self.reactor.conns.keys() {
            if let Some(e) = self
                .reactor
                .conns
                .get_mut(ck)
                .and_then(|c| c.engine.as_mut())
            {
                if e.poll_timeout().is_some_and(|t| t <= now) {
                    e.handle_timeout(now);
                }
            }
            if let Some(c) = self.reactor.conns.get_mut(ck) {
                c.dirty = true;
            }
            self.reactor.process_engine(ck);
        }
        self.pump();
    }

    /// True while `t` is the current transport of a connection, i.e. while the container still
    /// wants it. A connect that completes for a transport that is no longer wanted (its
    /// connection was closed, or stopped, while connecting) must be closed by the driver:
    /// [`handle_connected`](Self::handle_connected) ignores it.
    pub fn is_transport_live(&self, t: TransportId) -> bool {
        self.reactor.valid(t)
    }

    /// A transport came up.
    pub fn handle_connected(&mut self, t: TransportId, info: TransportInfo, now: Instant) {
        self.reactor.now = now;
        self.reactor.on_connected(t, info);
        self.pump();
    }

    /// A connect attempt failed.
    pub fn handle_connect_failed(
        &mut self,
        t: TransportId,
        reason: impl Into<String>,
        now: Instant,
    ) {
        self.reactor.now = now;
        if !self.reactor.valid(t) {
            return;
        }
        let reason: String = reason.into();
        let mut ctx = self.reactor.ctx_conn(t.conn);
        ctx.transport_error = Some(reason.clone());
        self.reactor.push(EventType::TransportError, ctx);
        if let Some(c) = self.reactor.conns.get_mut(t.conn) {
            c.close_sent = true;
        }
        self.reactor.transport_done(t.conn, Some(reason));
        self.pump();
    }

    /// Bytes arrived on a transport.
    pub fn handle_read(&mut self, t: TransportId, data: &[u8], now: Instant) {
        self.reactor.now = now;
        if !self.reactor.valid(t) {
            return;
        }
        if let Some(c) = self.reactor.conns.get_mut(t.conn) {
            if let Some(e) = c.engine.as_mut() {
                let _ = e.handle_input(data, now);
                c.dirty = true;
            }
        }
        self.reactor.process_engine(t.conn);
        self.pump();
    }

    /// The transport closed (EOF or error).
    pub fn handle_disconnected(&mut self, t: TransportId, reason: Option<String>, now: Instant) {
        self.reactor.now = now;
        if !self.reactor.valid(t) {
            return;
        }
        if let Some(c) = self.reactor.conns.get_mut(t.conn) {
            c.close_sent = true;
            match c.engine.as_mut() {
                // The transport failed before the peer's open (a TLS alert after the handshake,
                // e.g. a refused client certificate; a reset during SASL): a failed connect,
                // reported the same way, with the driver's reason rather than a generic one.
                Some(e) if reason.is_some() && e.state().1 == EndpointState::Uninit => {
                    e.handle_transport_closed(now);
                    let mut ctx = self.reactor.ctx_conn(t.conn);
                    ctx.transport_error = reason.clone();
                    self.reactor.push(EventType::TransportError, ctx);
                    self.reactor.transport_done(t.conn, reason);
                    self.pump();
                    return;
                }
                Some(e) => {
                    e.handle_transport_closed(now);
                }
                None => {
                    self.reactor.transport_done(t.conn, reason);
                    self.pump();
                    return;
                }
            }
        }
        self.reactor.process_engine(t.conn);
        self.pump();
    }

    /// A listener is bound (`Ok(port)`) or failed.
    pub fn handle_listening(
        &mut self,
        acceptor: AcceptorHandle,
        result: Result<u16, String>,
        now: Instant,
    ) {
        self.reactor.now = now;
        let ctx = EventContext {
            acceptor: Some(acceptor),
            ..EventContext::default()
        };
        match result {
            Ok(port) => {
                if let Some(a) = self.reactor.acceptors.get_mut(acceptor.0) {
                    a.0 = a.0.clone().with_port(port);
                    a.2 = true;
                }
                self.reactor.push(EventType::AcceptorOpened, ctx);
            }
            Err(e) => {
                self.reactor.acceptors.remove(acceptor.0);
                let mut ctx = ctx;
                ctx.transport_error = Some(e);
                self.reactor.push(EventType::AcceptorError, ctx);
            }
        }
        self.pump();
    }

    /// A listener accepted a transport: returns its id for later calls.
    pub fn handle_accepted(
        &mut self,
        acceptor: AcceptorHandle,
        info: TransportInfo,
        now: Instant,
    ) -> Option<TransportId> {
        self.reactor.now = now;
        let t = self.reactor.on_accepted(acceptor, info);
        self.pump();
        t
    }

    /// Dispatches pending events to the handler and flushes output, until quiet.
    fn pump(&mut self) {
        for _ in 0..1_000_000 {
            if let Some((kind, ctx)) = self.reactor.pending.pop_front() {
                self.dispatch(kind, ctx);
                continue;
            }
            // Engine events caused by what handlers did (e.g. errors), then output.
            let mut any = false;
            for ck in self.reactor.conns.keys() {
                let dirty = self.reactor.conns.get(ck).is_some_and(|c| c.dirty);
                if dirty {
                    self.reactor.process_engine(ck);
                    self.reactor.flush_conn(ck);
                    any = true;
                }
            }
            if !any && self.reactor.pending.is_empty() {
                break;
            }
        }
    }

    fn dispatch(&mut self, kind: EventType, ctx: EventContext) {
        if kind == EventType::Message && self.release_if_link_closed(&ctx) {
            return;
        }
        let h = &mut self.handler;
        self.reactor.touched = false;
        self.reactor.in_callback = true;
        let mut e = Event {
            reactor: &mut self.reactor,
            kind,
            ctx,
        };
        match kind {
            EventType::Start => h.on_start(&mut e),
            EventType::Sendable => h.on_sendable(&mut e),
            EventType::Message => h.on_message(&mut e),
            EventType::Accepted => h.on_accepted(&mut e),
            EventType::Rejected => h.on_rejected(&mut e),
            EventType::Released => h.on_released(&mut e),
            EventType::Settled => h.on_settled(&mut e),
            EventType::Aborted => h.on_aborted(&mut e),
            EventType::InDoubt => h.on_in_doubt(&mut e),
            EventType::ConnectionOpening => h.on_connection_opening(&mut e),
            EventType::ConnectionOpened => h.on_connection_opened(&mut e),
            EventType::ConnectionClosing => h.on_connection_closing(&mut e),
            EventType::ConnectionClosed => h.on_connection_closed(&mut e),
            EventType::ConnectionError => h.on_connection_error(&mut e),
            EventType::SessionOpening => h.on_session_opening(&mut e),
            EventType::SessionOpened => h.on_session_opened(&mut e),
            EventType::SessionClosing => h.on_session_closing(&mut e),
            EventType::SessionClosed => h.on_session_closed(&mut e),
            EventType::SessionError => h.on_session_error(&mut e),
            EventType::LinkOpening => h.on_link_opening(&mut e),
            EventType::LinkOpened => h.on_link_opened(&mut e),
            EventType::LinkClosing => h.on_link_closing(&mut e),
            EventType::LinkClosed => h.on_link_closed(&mut e),
            EventType::LinkError => h.on_link_error(&mut e),
            EventType::Drained => h.on_drained(&mut e),
            EventType::Disconnected => h.on_disconnected(&mut e),
            EventType::TransportError => h.on_transport_error(&mut e),
            EventType::TimerTask => h.on_timer_task(&mut e),
            EventType::AcceptorOpened => h.on_acceptor_opened(&mut e),
            EventType::AcceptorError => h.on_acceptor_error(&mut e),
            EventType::Stop => h.on_stop(&mut e),
        }
        let ctx = e.ctx;
        self.reactor.in_callback = false;
        self.after(kind, ctx);
        self.reactor.run_deferred_closes();
    }

    /// A message for a link the application has closed since it arrived (for example several
    /// deliveries read in one batch, the handler closing the link at the first): released,
    /// not dispatched, as Proton's `MessagingHandler` does.
    fn release_if_link_closed(&mut self, ctx: &EventContext) -> bool {
        let Some(d) = ctx.delivery else { return false };
        let Some(c) = self.reactor.conns.get_mut(d.conn) else {
            return false;
        };
        if !c.links.get(d.link.link).is_some_and(|l| l.handler_closed) || c.gen != d.gen {
            return false;
        }
        if let Some(e) = c.engine.as_mut() {
            let _ = e.disposition(d.id, Some(DeliveryState::released()), true);
            c.dirty = true;
        }
        true
    }

    /// Proton's default behaviour after a callback returns.
    fn after(&mut self, kind: EventType, ctx: EventContext) {
        let r = &mut self.reactor;
        let opts = r.handler_options;
        match kind {
            EventType::ConnectionOpening => {
                if let Some(conn) = ctx.connection {
                    if let Some(c) = r.conns.get_mut(conn.0) {
                        if let Some(e) = c.engine.as_mut() {
                            if e.state().0 == EndpointState::Uninit && !c.app_closed {
                                let _ = e.open();
                                c.dirty = true;
                                r.push(EventType::ConnectionOpened, ctx);
                            }
                        }
                    }
                }
            }
            EventType::SessionOpening => {
                if let (Some(conn), Some(s)) = (ctx.connection, ctx.session) {
                    if let Some(c) = r.conns.get_mut(conn.0) {
                        if let Some(e) = c.engine.as_mut() {
                            if e.accept_session(s.session).is_ok() {
                                c.dirty = true;
                                r.push(EventType::SessionOpened, ctx);
                            }
                        }
                    }
                }
            }
            EventType::LinkOpening => {
                let mut opened = false;
                if let Some(lh) = ctx.link {
                    if let Some(c) = r.conns.get_mut(lh.conn) {
                        if let Some(l) = c.links.get_mut(lh.link) {
                            if let (Some(e), Some(lid)) = (c.engine.as_mut(), l.engine) {
                                if l.app_closed {
                                    let error = l
                                        .close_error
                                        .take()
                                        .unwrap_or_else(|| Error::condition(condition::NOT_FOUND));
                                    let _ = e.refuse_link(lid, error);
                                } else if e
                                    .link_state(lid)
                                    .is_some_and(|s| s.0 == EndpointState::Uninit)
                                {
                                    let cfg = l.config.clone();
                                    if e.accept_link(lid, cfg).is_ok() {
                                        if l.role == Role::Receiver && l.prefetch > 0 {
                                            let _ = e.flow(lid, l.prefetch, false);
                                        }
                                        opened = true;
                                    }
                                }
                                c.dirty = true;
                            }
                        }
                    }
                }
                if opened {
                    r.push(EventType::LinkOpened, ctx);
                }
            }
            EventType::Message => {
                if let Some(d) = ctx.delivery {
                    let touched = r.touched;
                    if let Some(c) = r.conns.get_mut(d.conn) {
                        if let (Some(e), true) = (c.engine.as_mut(), c.gen == d.gen) {
                            if opts.auto_accept && !touched {
                                let _ = e.disposition(d.id, Some(DeliveryState::accepted()), true);
                            }
                            // Keep the credit window topped up, in batches.
                            if let Some(l) = c.links.get(d.link.link) {
                                if l.prefetch > 0 {
                                    if let Some(lid) = l.engine {
                                        let credit = e.link_credit(lid).unwrap_or(0);
                                        if credit <= l.prefetch / 2 {
                                            let _ = e.flow(lid, l.prefetch, false);
                                        }
                                    }
                                }
                            }
                            c.dirty = true;
                        }
                    }
                }
            }
            EventType::Sendable => {
                // A drain request the handler did not satisfy: nothing more to send.
                if let Some(lh) = ctx.link {
                    if let Some(c) = r.conns.get_mut(lh.conn) {
                        if let (Some(e), Some(lid)) = (
                            c.engine.as_mut(),
                            c.links.get(lh.link).and_then(|l| l.engine),
                        ) {
                            let _ = e.drained(lid);
                            c.dirty = true;
                        }
                    }
                }
            }
            EventType::ConnectionClosing => {
                if let Some(conn) = ctx.connection {
                    if let Some(c) = r.conns.get_mut(conn.0) {
                        c.app_closed = true;
                    }
                }
            }
            EventType::LinkClosed => {
                if let Some(lh) = ctx.link {
                    if let Some(c) = r.conns.get_mut(lh.conn) {
                        let remove = c.links.get(lh.link).is_some_and(|l| l.app_closed);
                        if remove {
                            if let Some(l) = c.links.remove(lh.link) {
                                if let Some(lid) = l.engine {
                                    c.by_engine.remove(&lid);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        let _ = Bytes::new();
    }
}
