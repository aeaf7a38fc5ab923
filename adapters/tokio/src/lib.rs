#![forbid(unsafe_code)]
//! # amqp-tokio — AMQP 1.0 containers on tokio
//!
//! ```no_run
//! use amqp_tokio::Container;
//! use amqp_tokio::messaging::{Event, MessagingHandler};
//! use amqp_tokio::amqp_proto::message::Message;
//!
//! struct HelloWorld;
//! impl MessagingHandler for HelloWorld {
//!     fn on_start(&mut self, e: &mut Event<'_>) {
//!         let conn = e.container().connect("amqp://localhost:5672").unwrap();
//!         e.container().create_receiver(conn, "examples").unwrap();
//!         e.container().create_sender(conn, "examples").unwrap();
//!     }
//!     fn on_sendable(&mut self, e: &mut Event<'_>) {
//!         e.send(&Message::new("Hello World!")).unwrap();
//!         let s = e.sender().unwrap();
//!         e.container().close_link(s);
//!     }
//!     fn on_message(&mut self, e: &mut Event<'_>) {
//!         println!("{}", e.message().and_then(|m| m.body_str()).unwrap_or(""));
//!         let c = e.connection().unwrap();
//!         e.container().close_connection(c, None);
//!     }
//! }
//! Container::new(HelloWorld).run();
//! ```
//!
//! The same with the async API ([`Client`], see [`client`] for flow control, cancel safety and
//! shutdown):
//!
//! ```no_run
//! use amqp_tokio::Client;
//! use amqp_tokio::amqp_proto::message::Message;
//!
//! # async fn hello() -> Result<(), amqp_tokio::client::Error> {
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

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use amqp_adapter::{BlockOn, BoxFuture, BoxStream, Listener, Runtime};
use tokio_util::compat::TokioAsyncReadCompatExt;

pub use amqp_adapter::{amqp_engine, amqp_proto, messaging};

/// Kerberos: the GSSAPI SASL mechanism (`KerberosServer` for listeners; clients use it
/// without configuration when a server offers it and a ticket is available).
#[cfg(feature = "gssapi")]
pub use amqp_adapter::gssapi;

/// Proton's `Container` on tokio.
pub type Container<H> = amqp_adapter::Container<H, Tokio>;

/// The async API on tokio: `Client::open(url).await` (see [`client`]).
pub type Client = amqp_adapter::client::Client<Tokio>;

pub use amqp_adapter::client;

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
            Ok((Box::new(s.compat()) as BoxStream, a))
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

    fn connect(&self, addr: SocketAddr) -> BoxFuture<io::Result<BoxStream>> {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s.compat()) as BoxStream)
        })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let l = tokio::net::TcpListener::bind(addr).await?;
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
