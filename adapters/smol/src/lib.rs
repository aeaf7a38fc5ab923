#![forbid(unsafe_code)]
//! # amqp-smol — AMQP 1.0 containers on smol
//!
//! Proton's `Container(handler).run()` on the [smol](https://docs.rs/smol) runtime. TCP, timers
//! and name resolution come from `async-io` / `async-net` (the glue `amqp-async-std` shares),
//! TLS from rustls; background tasks run on smol's global executor and [`Container::run`]
//! blocks the calling thread with `smol::block_on`. Inside async code, use
//! [`amqp_adapter::Container::run_async`] instead.
//!
//! [`Container::run`]: amqp_adapter::Container::run
//!
//! A sender and a receiver in one container, over loopback (Proton's `helloworld.py` with its
//! own listener):
//!
//! ```
//! use amqp_smol::Container;
//! use amqp_smol::{Event, MessagingHandler};
//! use amqp_smol::amqp_proto::message::Message;
//!
//! #[derive(Default)]
//! struct HelloWorld { got: Option<String> }
//! impl MessagingHandler for HelloWorld {
//!     fn on_start(&mut self, e: &mut Event<'_>) {
//!         e.container_mut().listen("127.0.0.1:0").unwrap(); // any free port
//!     }
//!     fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
//!         let a = e.acceptor().unwrap();
//!         let port = e.container().acceptor_port(a).unwrap();
//!         let conn = e.container_mut().connect(&format!("amqp://127.0.0.1:{port}")).unwrap();
//!         e.container_mut().create_sender(conn, "examples").unwrap();
//!     }
//!     fn on_sendable(&mut self, e: &mut Event<'_>) {
//!         e.send(&Message::new("Hello World!")).unwrap();
//!         let s = e.sender().unwrap();
//!         e.container_mut().close_link(s);
//!     }
//!     fn on_message(&mut self, e: &mut Event<'_>) {
//!         self.got = e.message().and_then(|m| m.body_str()).map(str::to_owned);
//!         e.container_mut().stop(); // close everything; run() returns
//!     }
//! }
//! let h = Container::new(HelloWorld::default()).run();
//! assert_eq!(h.got.as_deref(), Some("Hello World!"));
//! ```

use std::future::Future;

use amqp_adapter::BoxFuture;
use amqp_adapter::{AsyncIo, Executor};

amqp_adapter::reexport_user_api!();

/// Kerberos: the GSSAPI SASL mechanism (`KerberosServer` for listeners; clients use it
/// without configuration when a server offers it and a ticket is available).
#[cfg(feature = "gssapi")]
pub use amqp_adapter::gssapi;

/// Proton's `Container` on smol.
pub type Container<H> = amqp_adapter::Container<H, Smol>;

/// The async API on smol: `Client::open(url).await`.
pub type Client = amqp_adapter::Client<Smol>;

/// The smol runtime, for the driver: `async-io` for I/O and timers, smol's global executor for
/// tasks.
pub type Smol = AsyncIo<SmolExecutor>;

/// Spawns on smol's global executor; blocks with `smol::block_on`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolExecutor;

impl Executor for SmolExecutor {
    fn spawn(&self, fut: BoxFuture<()>) {
        smol::spawn(fut).detach();
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        smol::block_on(fut)
    }
}
