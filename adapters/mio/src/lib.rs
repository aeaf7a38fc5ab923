#![forbid(unsafe_code)]
//! # amqp-mio — AMQP 1.0 with no async runtime
//!
//! Proton's `Container::new(handler).run()` on a `mio` poll loop in the calling thread: the
//! same [`MessagingHandler`] as every other adapter, the same sans-IO container, and no
//! tokio, async-std, smol or async-io in the dependency tree. TLS is rustls driven directly
//! (the same [`TlsOptions`] as the other adapters); `AMQP_TRACE_FRM=1` traces frames.
//!
//! ```no_run
//! use amqp_mio::{Container, Event, MessagingHandler};
//! use amqp_mio::amqp_proto::message::Message;
//!
//! struct HelloWorld;
//! impl MessagingHandler for HelloWorld {
//!     fn on_start(&mut self, e: &mut Event<'_>) {
//!         let conn = e.container_mut().connect("amqp://localhost:5672").unwrap();
//!         e.container_mut().create_receiver(conn, "examples").unwrap();
//!         e.container_mut().create_sender(conn, "examples").unwrap();
//!     }
//!     fn on_sendable(&mut self, e: &mut Event<'_>) {
//!         e.send(&Message::new("Hello World!")).unwrap();
//!         let s = e.sender().unwrap();
//!         e.container_mut().close_link(s);
//!     }
//!     fn on_message(&mut self, e: &mut Event<'_>) {
//!         println!("{}", e.message().and_then(|m| m.body_str()).unwrap_or(""));
//!         let c = e.connection().unwrap();
//!         e.container_mut().close_connection(c, None);
//!     }
//! }
//! Container::new(HelloWorld).run();
//! ```
//!
//! [`BlockingConnection`] is Proton's blocking API on the same loop:
//! `BlockingConnection::open(url)?.sender("queue")?.send(&message)?` returns the outcome.
//!
//! Other threads reach a running container through an [`Injector`]
//! (`container.context().injector()`), whose payloads arrive in
//! [`MessagingHandler::on_application_event`].

mod blocking;
mod conn;
mod driver;

use std::io;
use std::time::Instant;

use amqp_adapter::amqp_engine::messaging::SansIoContainer;

amqp_adapter::reexport_messaging_api!();

pub use blocking::{
    BlockingConnection, BlockingError, BlockingReceiver, BlockingSender, Delivery, Outcome,
    DEFAULT_TIMEOUT,
};

/// Kerberos: the GSSAPI SASL mechanism (`KerberosServer` for listeners; clients use it
/// without configuration when a server offers it and a ticket is available).
#[cfg(feature = "gssapi")]
pub use amqp_adapter::gssapi;

/// Proton's `Container` on a mio poll loop: [`run`](Self::run) runs the handler in the
/// calling thread until nothing is left to do.
///
/// The guide's direct "Hello World!" (no broker): the container listens, connects to itself,
/// sends one message and receives it.
///
/// ```
/// use amqp_mio::{Container, Event, MessagingHandler};
/// use amqp_mio::amqp_proto::message::Message;
///
/// #[derive(Default)]
/// struct HelloWorldDirect { received: Option<String> }
///
/// impl MessagingHandler for HelloWorldDirect {
///     fn on_start(&mut self, e: &mut Event<'_>) {
///         e.container_mut().listen("127.0.0.1:0").unwrap();
///     }
///     fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
///         let acceptor = e.acceptor().unwrap();
///         let port = e.container().acceptor_port(acceptor).unwrap();
///         let conn = e.container_mut().connect(&format!("amqp://127.0.0.1:{port}")).unwrap();
///         e.container_mut().create_sender(conn, "examples").unwrap();
///     }
///     fn on_sendable(&mut self, e: &mut Event<'_>) {
///         e.send(&Message::new("Hello World!")).unwrap();
///         let sender = e.sender().unwrap();
///         e.container_mut().close_link(sender);
///     }
///     fn on_message(&mut self, e: &mut Event<'_>) {
///         self.received = e.message().and_then(|m| m.body_str()).map(str::to_string);
///     }
///     fn on_accepted(&mut self, e: &mut Event<'_>) {
///         e.container_mut().stop();
///     }
/// }
///
/// let done = Container::new(HelloWorldDirect::default()).run();
/// assert_eq!(done.received.as_deref(), Some("Hello World!"));
/// ```
pub struct Container<H: MessagingHandler> {
    core: SansIoContainer<H>,
}

impl<H: MessagingHandler> std::fmt::Debug for Container<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("id", &self.core.id())
            .finish_non_exhaustive()
    }
}

impl<H: MessagingHandler> Container<H> {
    /// A container with a generated UUID v4 id (as Proton's `Container()` does).
    pub fn new(handler: H) -> Self {
        Self::with_id(handler, amqp_adapter::new_uuid())
    }

    /// A container with this id (Proton's `Container(handler, "job-processor-3")`).
    pub fn with_id(handler: H, id: impl Into<String>) -> Self {
        Container {
            core: new_core(handler, id),
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

    /// The container state, to read before running (the id, an acceptor's port,
    /// [`injector`](ContainerContext::injector), …).
    pub fn context(&self) -> &ContainerContext {
        self.core.context()
    }

    /// Proton's container methods (connect, listen, schedule, …), to use before running.
    pub fn context_mut(&mut self) -> &mut ContainerContext {
        self.core.context_mut()
    }

    /// Runs the event loop in the calling thread until the container is done (stopped, or no
    /// connections, listeners or timers left), as Proton's `container.run()`; returns the
    /// handler. Panics if the operating system refuses a poll instance (see
    /// [`try_run`](Self::try_run)).
    pub fn run(self) -> H {
        self.try_run()
            .unwrap_or_else(|e| panic!("the mio poll loop failed: {e}"))
    }

    /// [`run`](Self::run), returning the error when the poll instance cannot be created or
    /// polling fails.
    pub fn try_run(mut self) -> io::Result<H> {
        let mut driver = driver::Driver::new()?;
        driver.start(&mut self.core);
        driver.run(&mut self.core)?;
        Ok(self.core.into_handler())
    }
}

/// A container core prepared as every adapter's is ([`amqp_adapter::prepare`]).
pub(crate) fn new_core<H: MessagingHandler>(
    handler: H,
    id: impl Into<String>,
) -> SansIoContainer<H> {
    let mut core = SansIoContainer::with_id(handler, id, Instant::now());
    amqp_adapter::prepare(&mut core);
    core
}
