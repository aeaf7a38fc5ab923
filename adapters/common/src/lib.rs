#![forbid(unsafe_code)]
//! # amqp-adapter — what every runtime adapter shares
//!
//! The runtime adapters (`amqp-tokio`, `amqp-smol`, `amqp-async-std`) are glue: each implements
//! the small [`Runtime`] trait. Everything else is here, written once:
//!
//! * the driver — the loop that carries out the container's I/O requests (connect, listen,
//!   write, close), feeds it reads, disconnects and timer expiries, with back-pressure;
//! * [`tls`] — rustls client and server configuration from the engine's plain-data options;
//! * [`trace`] — `AMQP_TRACE_FRM=1` / `PN_TRACE_FRM=1` frame tracing, in Proton's notation
//!   (both public for adapters that drive their sockets themselves, as `amqp-mio` does);
//! * [`QuickAck`] — accepted sockets that do not delay their ACKs (each runtime wraps its
//!   listener's sockets in it);
//! * [`Container`] — Proton's `Container::new(handler).run()` over any runtime;
//! * [`Client`] — the idiomatic async API (`Client::open(url).await`, `sender.send(msg).await`,
//!   `receiver.recv().await`) over any runtime.
//! * `gssapi` (cargo feature `gssapi`) — Kerberos: the `amqp-gssapi` crate; with the feature
//!   every container offers the GSSAPI client mechanism to its connections (preferred when a
//!   server offers it, `allowed_mechs` permits it and a ticket is in the ccache);
//! * `async_io_glue` (cargo feature `async-io-glue`) — TCP, timers and DNS over `async-io`,
//!   shared by `amqp-smol` and `amqp-async-std`, which differ only in how they spawn and block.

#[cfg(feature = "async-io-glue")]
mod async_io_glue;
mod client;
mod driver;
mod quick_ack;
mod runtime;
pub mod tls;
pub mod trace;

use std::marker::PhantomData;
use std::time::Instant;

use amqp_engine::messaging::{
    uuid_from_bytes, ClientCore, ContainerContext, MessagingHandler, SansIoContainer as Core,
};
#[cfg(feature = "gssapi")]
use amqp_engine::sasl::ClientMechanismFactory;

pub use amqp_engine;
#[cfg(feature = "gssapi")]
pub use amqp_gssapi as gssapi;
pub use amqp_proto;
#[cfg(feature = "async-io-glue")]
pub use async_io_glue::{AsyncIo, Executor};
pub use client::{
    Client, ClientError, ConnectTarget, Connection, Delivery, Outcome, Receiver, SendFuture,
    Sender, TrySendError, DEFAULT_PREFETCH, DEFAULT_SEND_BUFFER,
};
pub use driver::{
    ConnectionLimit, ConnectionPermit, ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN, FLUSH_GRACE,
    READ_CHUNK, TLS_HANDSHAKE_TIMEOUT, WRITE_HIGH_WATER,
};
#[cfg(unix)]
pub use quick_ack::set_quickack;
pub use quick_ack::QuickAck;
pub use runtime::{
    bind_tcp_listener, AcceptFuture, AsyncStream, BlockOn, BoxFuture, BoxStream, BoxTimer,
    Listener, Runtime, Timer,
};

/// Re-exports, at a runtime crate's root, the messaging types every runtime crate shares:
/// handler, events, options, URLs, errors, the cross-thread [`Injector`], the SASL server
/// types a listener takes, and the `amqp_proto` crate (messages). [`reexport_user_api!`]
/// invokes it; a crate without the async API (`amqp-mio`) invokes it alone.
///
/// [`Injector`]: amqp_engine::messaging::Injector
#[macro_export]
macro_rules! reexport_messaging_api {
    () => {
        pub use $crate::amqp_engine::messaging::{
            AcceptorHandle, Backoff, ConnectOptions, ConnectionHandle, ContainerContext,
            DeliveryHandle, Event, EventType, HandlerOptions, InjectError, Injector, LinkHandle,
            LinkOption, LinkOptions, ListenOptions, MessagingError, MessagingHandler, OptionsError,
            Payload, PemSource, Reconnect, ReconnectLimits, ReconnectPolicy, Scheme, SessionHandle,
            TimerHandle, TlsListen, TlsOptions, Tracker, TransportError, TransportErrorKind, Url,
            UrlError, VerifyMode,
        };
        pub use $crate::amqp_engine::sasl::{
            Authenticator, SaslServerConfig, ScramCredentials, ScramHash, StaticUsers,
        };
        pub use $crate::amqp_proto;
    };
}

/// Re-exports, at a runtime crate's root, everything a user of that crate needs: the
/// async API's types and everything [`reexport_messaging_api!`] re-exports. A runtime crate
/// invokes it once and adds its own `Container` and `Client` aliases, so a user depends on
/// that one crate and finds every type at one path.
#[macro_export]
macro_rules! reexport_user_api {
    () => {
        $crate::reexport_messaging_api!();
        pub use $crate::{
            ClientError, ConnectTarget, Connection, Delivery, Outcome, Receiver, SendFuture,
            Sender, TrySendError, DEFAULT_PREFETCH, DEFAULT_SEND_BUFFER,
        };
    };
}

/// Fills `buf` with operating-system randomness.
pub fn os_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // Never expected; fall back to a time-derived value rather than failing a connect.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ i as u8;
        }
    }
}

/// What [`prepare`] sets on a sans-IO core (the container's or the client's).
pub trait CoreSetup {
    /// Supplies randomness.
    fn set_entropy(&mut self, f: fn(&mut [u8]));
    /// Supplies Proton's connect configuration file.
    fn set_connect_config(&mut self, json: Option<String>);
    /// Adds a SASL client mechanism (GSSAPI).
    #[cfg(feature = "gssapi")]
    fn add_client_mechanism(&mut self, m: std::sync::Arc<dyn ClientMechanismFactory>);
}

impl<H: MessagingHandler> CoreSetup for Core<H> {
    fn set_entropy(&mut self, f: fn(&mut [u8])) {
        Core::set_entropy(self, f);
    }
    fn set_connect_config(&mut self, json: Option<String>) {
        Core::set_connect_config(self, json);
    }
    #[cfg(feature = "gssapi")]
    fn add_client_mechanism(&mut self, m: std::sync::Arc<dyn ClientMechanismFactory>) {
        Core::add_client_mechanism(self, m);
    }
}

impl CoreSetup for ClientCore {
    fn set_entropy(&mut self, f: fn(&mut [u8])) {
        ClientCore::set_entropy(self, f);
    }
    fn set_connect_config(&mut self, json: Option<String>) {
        ClientCore::set_connect_config(self, json);
    }
    #[cfg(feature = "gssapi")]
    fn add_client_mechanism(&mut self, m: std::sync::Arc<dyn ClientMechanismFactory>) {
        ClientCore::add_client_mechanism(self, m);
    }
}

/// Prepares a new sans-IO core: OS randomness, Proton's connect config file, and the
/// client mechanisms of enabled features (GSSAPI). Every adapter's cores go through it
/// (`amqp-mio`'s too).
pub fn prepare(core: &mut impl CoreSetup) {
    core.set_entropy(os_random);
    if let Some(cfg) = read_connect_config() {
        core.set_connect_config(Some(cfg));
    }
    #[cfg(feature = "gssapi")]
    core.add_client_mechanism(amqp_gssapi::client_mechanism());
}

/// A UUID v4 from operating-system randomness (the default container id).
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    os_random(&mut b);
    uuid_from_bytes(b)
}

/// Proton's `Container`: a [`MessagingHandler`] and the event loop that runs it on runtime `R`.
///
/// Runtime crates alias it (`amqp_tokio::Container<H>`, whose page has a runnable example), so
/// user code reads like Proton's: `amqp_tokio::Container::new(handler).run()`.
pub struct Container<H: MessagingHandler, R: Runtime> {
    core: Core<H>,
    rt: R,
    _r: PhantomData<R>,
}

impl<H: MessagingHandler + Send + 'static, R: Runtime + Default> Container<H, R> {
    /// A container with a generated UUID v4 id (as Proton's `Container()` does).
    pub fn new(handler: H) -> Self {
        Self::with_id(handler, new_uuid())
    }

    /// A container with this id (Proton's `Container(handler, "job-processor-3")`).
    pub fn with_id(handler: H, id: impl Into<String>) -> Self {
        Self::with_runtime(handler, id, R::default())
    }
}

impl<H: MessagingHandler + Send + 'static, R: Runtime> Container<H, R> {
    /// A container on a given runtime instance.
    pub fn with_runtime(handler: H, id: impl Into<String>, rt: R) -> Self {
        let mut core = Core::with_id(handler, id, Instant::now());
        prepare(&mut core);
        Container {
            core,
            rt,
            _r: PhantomData,
        }
    }

    /// The container id.
    pub fn id(&self) -> &str {
        self.core.id()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        self.core.handler()
    }

    /// The container state, to read before running (the id, an acceptor's port, …).
    pub fn context(&self) -> &ContainerContext {
        self.core.context()
    }

    /// Proton's container methods (connect, listen, schedule, …), to use before running.
    pub fn context_mut(&mut self) -> &mut ContainerContext {
        self.core.context_mut()
    }

    /// Runs the event loop in the current task until the container is done; returns the
    /// handler.
    pub async fn run_async(self) -> H {
        let core = driver::drive(self.core, self.rt).await;
        core.into_handler()
    }

    /// Runs the event loop, blocking the calling thread until the container is done (stopped,
    /// or no connections, listeners or timers left), as Proton's `container.run()`. Returns the
    /// handler.
    pub fn run(self) -> H
    where
        R: BlockOn,
    {
        let rt = self.rt.clone();
        let core = self.core;
        let rt2 = rt.clone();
        rt.block_on(async move { driver::drive(core, rt2).await.into_handler() })
    }
}

/// Reads Proton's connect configuration file from its usual places (`MESSAGING_CONNECT_FILE`,
/// `./connect.json`, `~/.config/messaging/connect.json`, `/etc/messaging/connect.json`).
pub fn read_connect_config() -> Option<String> {
    let env = std::env::var("MESSAGING_CONNECT_FILE").ok();
    let home = std::env::var("HOME").ok();
    for p in amqp_engine::messaging::connect_config_search_paths(env.as_deref(), home.as_deref()) {
        if let Ok(s) = std::fs::read_to_string(&p) {
            return Some(s);
        }
    }
    None
}
