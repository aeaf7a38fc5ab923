#![forbid(unsafe_code)]
//! # amqp-tokio — AMQP 1.0 containers on tokio
//!
//! ```no_run
//! use amqp_tokio::Container;
//! use amqp_tokio::{Event, MessagingHandler};
//! use amqp_tokio::amqp_proto::message::Message;
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
//! The same with the async API ([`Client`], whose page covers flow control, cancel safety and
//! shutdown):
//!
//! ```no_run
//! use amqp_tokio::Client;
//! use amqp_tokio::amqp_proto::message::Message;
//!
//! # async fn hello() -> Result<(), amqp_tokio::ClientError> {
//! let conn = Client::open("amqp://localhost:5672").await?;
//! let mut receiver = conn.open_receiver("examples").await?;
//! let sender = conn.open_sender("examples").await?;
//! let outcome = sender.send_nowait(Message::new("Hello World!")).expect("room to queue");
//! let delivery = receiver.recv().await.expect("a message");
//! println!("{}", delivery.message().body_str().unwrap_or(""));
//! delivery.accept()?;
//! assert!(outcome.await?.is_accepted());
//! conn.close().await
//! # }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use amqp_adapter::{BlockOn, BoxFuture, BoxStream, BoxTimer, Listener, Runtime, Timer};
use tokio_util::compat::TokioAsyncReadCompatExt;

amqp_adapter::reexport_user_api!();

/// Kerberos: the GSSAPI SASL mechanism (`KerberosServer` for listeners; clients use it
/// without configuration when a server offers it and a ticket is available).
#[cfg(feature = "gssapi")]
pub use amqp_adapter::gssapi;

/// Proton's `Container` on tokio: `Container::new(handler).run()` runs the handler until
/// nothing is left to do.
///
/// The guide's direct "Hello World!" (no broker): the container listens, connects to itself,
/// sends one message and receives it.
///
/// ```
/// use amqp_tokio::{Container, Event, MessagingHandler};
/// use amqp_tokio::amqp_proto::message::Message;
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
pub type Container<H> = amqp_adapter::Container<H, Tokio>;

/// The async API on tokio: `Client::open(url).await`.
pub type Client = amqp_adapter::Client<Tokio>;

/// The tokio runtime, for the driver. Inside a tokio runtime it uses the current one;
/// otherwise [`BlockOn::block_on`] builds a multi-threaded runtime.
#[derive(Clone, Debug, Default)]
pub struct Tokio {
    handle: Option<tokio::runtime::Handle>,
}

impl Tokio {
    /// A runtime bound to an existing tokio runtime handle.
    pub fn with_handle(handle: tokio::runtime::Handle) -> Self {
        Tokio {
            handle: Some(handle),
        }
    }

    fn spawn_on<F: std::future::Future<Output = ()> + Send + 'static>(&self, f: F) {
        match &self.handle {
            Some(h) => {
                h.spawn(f);
            }
            None => {
                tokio::spawn(f);
            }
        }
    }
}

/// tokio's `Sleep`, re-armed in place by [`Timer::reset`].
struct TokioTimer(std::pin::Pin<Box<tokio::time::Sleep>>);

impl Timer for TokioTimer {
    fn reset(mut self: std::pin::Pin<&mut Self>, deadline: Instant) {
        self.0.as_mut().reset(deadline.into());
    }

    fn poll_expired(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

struct TokioListener(tokio::net::TcpListener);

impl Listener for TokioListener {
    fn accept(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = io::Result<(BoxStream, SocketAddr)>> + Send + '_>,
    > {
        Box::pin(async move {
            let (s, a) = self.0.accept().await?;
            s.set_nodelay(true)?;
            #[cfg(unix)]
            let s = amqp_adapter::QuickAck::new(s.compat(), |s| {
                amqp_adapter::set_quickack(s.get_ref())
            });
            #[cfg(not(unix))]
            let s = s.compat();
            Ok((Box::new(s) as BoxStream, a))
        })
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Runtime for Tokio {
    fn spawn(&self, fut: BoxFuture<()>) {
        self.spawn_on(fut);
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn timer(&self, deadline: Instant) -> BoxTimer {
        Box::pin(TokioTimer(Box::pin(tokio::time::sleep_until(
            deadline.into(),
        ))))
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<io::Result<BoxStream>> {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s.compat()) as BoxStream)
        })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let l = tokio::net::TcpListener::from_std(amqp_adapter::bind_tcp_listener(addr)?)?;
            Ok(Box::new(TokioListener(l)) as Box<dyn Listener>)
        })
    }

    fn resolve(&self, host: String, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

impl BlockOn for Tokio {
    fn block_on<F: std::future::Future + Send + 'static>(&self, fut: F) -> F::Output
    where
        F::Output: Send + 'static,
    {
        match tokio::runtime::Handle::try_current() {
            // Inside a runtime: run on a helper thread with its own runtime.
            Ok(_) => std::thread::scope(|s| {
                s.spawn(|| build().block_on(fut))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            }),
            Err(_) => build().block_on(fut),
        }
    }
}

fn build() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"))
}
