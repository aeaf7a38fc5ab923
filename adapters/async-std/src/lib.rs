#![forbid(unsafe_code)]
//! # amqp-async-std — AMQP 1.0 containers on async-std
//!
//! **async-std is discontinued upstream** ([RUSTSEC-2025-0052]); its maintainers point to
//! [smol](https://docs.rs/smol). New code should use **`amqp-smol`**: it shares all of this
//! crate's I/O glue (`async-io` / `async-net`), so switching is a change of crate name. This
//! crate stays for applications that still run async-std: it differs from `amqp-smol` only in
//! spawning tasks with `async_std::task::spawn` and blocking with `async_std::task::block_on`.
//!
//! [RUSTSEC-2025-0052]: https://rustsec.org/advisories/RUSTSEC-2025-0052.html
//!
//! ```no_run
//! use amqp_async_std::Container;
//! use amqp_async_std::{Event, MessagingHandler};
//! use amqp_async_std::amqp_proto::message::Message;
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

use std::future::Future;

use amqp_adapter::BoxFuture;
use amqp_adapter::{AsyncIo, Executor};

amqp_adapter::reexport_user_api!();

/// Kerberos: the GSSAPI SASL mechanism (`KerberosServer` for listeners; clients use it
/// without configuration when a server offers it and a ticket is available).
#[cfg(feature = "gssapi")]
pub use amqp_adapter::gssapi;

/// Proton's `Container` on async-std.
pub type Container<H> = amqp_adapter::Container<H, AsyncStd>;

/// The async API on async-std: `Client::open(url).await`.
pub type Client = amqp_adapter::Client<AsyncStd>;

/// The async-std runtime, for the driver: the `async-io` glue shared with `amqp-smol`, with
/// async-std's task executor.
pub type AsyncStd = AsyncIo<AsyncStdExecutor>;

/// Spawns with `async_std::task::spawn`; blocks with `async_std::task::block_on`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdExecutor;

impl Executor for AsyncStdExecutor {
    fn spawn(&self, fut: BoxFuture<()>) {
        // Dropping the handle detaches the task.
        drop(async_std::task::spawn(fut));
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        async_std::task::block_on(fut)
    }
}
