//! The `futures-io` / `async-io` glue shared by `amqp-smol` and `amqp-async-std` (cargo feature
//! `async-io-glue`).
//!
//! Both runtimes sit on the same reactor (`async-io`), so everything except spawning a task and
//! blocking a thread is written here once: TCP through `async-net` (`Async<TcpStream>`, with
//! `TCP_NODELAY` set), timers through [`async_io::Timer`], and name resolution through
//! `async-net` (which runs `getaddrinfo` on the `blocking` thread pool; IP literals are parsed
//! without it). A runtime crate supplies an [`Executor`] and names the result:
//!
//! ```ignore
//! #[derive(Clone, Copy, Debug, Default)]
//! pub struct SmolExecutor;
//! impl Executor for SmolExecutor {
//!     fn spawn(&self, fut: BoxFuture<()>) { smol::spawn(fut).detach() }
//!     fn block_on<F: Future>(&self, fut: F) -> F::Output { smol::block_on(fut) }
//! }
//! pub type Smol = AsyncIo<SmolExecutor>;
//! ```

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::runtime::{
    AcceptFuture, BlockOn, BoxFuture, BoxStream, BoxTimer, Listener, Runtime, Timer,
};

/// What differs between the `async-io` based runtimes: how a task is spawned and how a thread
/// blocks on a future.
pub trait Executor: Clone + Send + Sync + 'static {
    /// Runs a future in the background (detached: it is not cancelled when forgotten).
    fn spawn(&self, fut: BoxFuture<()>);
    /// Runs `fut` to completion, blocking the calling thread (driving the `async-io` reactor
    /// meanwhile).
    fn block_on<F: Future>(&self, fut: F) -> F::Output;
}

/// A [`Runtime`] over the `async-io` reactor and an [`Executor`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncIo<E>(pub E);

/// async-io's `Timer`, re-armed in place by [`Timer::reset`].
struct AsyncIoTimer(async_io::Timer);

impl Timer for AsyncIoTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.set_at(deadline);
    }

    fn poll_expired(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A fired one-shot timer ends its stream; it stays expired until reset.
        match Pin::new(&mut self.0).poll_next(cx) {
            Poll::Ready(_) => Poll::Ready(()),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A TCP listener from `async-net`.
struct AsyncNetListener(async_net::TcpListener);

impl Listener for AsyncNetListener {
    fn accept(&self) -> AcceptFuture<'_> {
        Box::pin(async move {
            let (s, a) = self.0.accept().await?;
            s.set_nodelay(true)?;
            #[cfg(unix)]
            let s = crate::QuickAck::new(s, crate::set_quickack);
            Ok((Box::new(s) as BoxStream, a))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Opens a TCP connection with `TCP_NODELAY` set.
pub(crate) async fn connect(addr: SocketAddr) -> io::Result<BoxStream> {
    let s = async_net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(Box::new(s))
}

/// Binds a TCP listener (see [`bind_tcp_listener`](crate::runtime::bind_tcp_listener)).
pub(crate) async fn bind(addr: SocketAddr) -> io::Result<Box<dyn Listener>> {
    let l = async_net::TcpListener::try_from(crate::runtime::bind_tcp_listener(addr)?)?;
    Ok(Box::new(AsyncNetListener(l)))
}

/// Resolves `host:port`: IP literals directly, names on the `blocking` thread pool.
pub(crate) async fn resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    async_net::resolve((host.as_str(), port)).await
}

impl<E: Executor> Runtime for AsyncIo<E> {
    fn spawn(&self, fut: BoxFuture<()>) {
        self.0.spawn(fut);
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(async move {
            async_io::Timer::at(deadline).await;
        })
    }

    fn timer(&self, deadline: Instant) -> BoxTimer {
        Box::pin(AsyncIoTimer(async_io::Timer::at(deadline)))
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<io::Result<BoxStream>> {
        Box::pin(connect(addr))
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<io::Result<Box<dyn Listener>>> {
        Box::pin(bind(addr))
    }

    fn resolve(&self, host: String, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        Box::pin(resolve(host, port))
    }
}

impl<E: Executor> BlockOn for AsyncIo<E> {
    fn block_on<F: Future + Send + 'static>(&self, fut: F) -> F::Output
    where
        F::Output: Send + 'static,
    {
        self.0.block_on(fut)
    }
}
