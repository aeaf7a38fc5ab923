//! The small runtime trait every adapter implements (quinn's `Runtime` is the model): spawn,
//! timers, TCP and DNS. Everything else is written once, over it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::io::{AsyncRead, AsyncWrite};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A byte stream: TCP, or TLS over TCP.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// A boxed byte stream.
pub type BoxStream = Box<dyn AsyncStream>;

/// What [`Listener::accept`] returns: a connection and the peer's address.
pub type AcceptFuture<'a> =
    Pin<Box<dyn Future<Output = io::Result<(BoxStream, SocketAddr)>> + Send + 'a>>;

/// A bound TCP listener.
pub trait Listener: Send + Sync + 'static {
    /// Accepts the next connection (with `TCP_NODELAY` set).
    fn accept(&self) -> AcceptFuture<'_>;
    /// The address it is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A timer the driver re-arms whenever its core's next deadline changes, instead of making
/// a new sleep each turn of its loop.
pub trait Timer: Send {
    /// Moves the deadline (earlier or later); an expired timer starts waiting again.
    fn reset(self: Pin<&mut Self>, deadline: Instant);
    /// Ready once the deadline has passed.
    fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}

/// A boxed [`Timer`].
pub type BoxTimer = Pin<Box<dyn Timer>>;

/// The [`Timer`] of a runtime without its own: a new [`Runtime::sleep_until`] per reset.
struct SleepTimer<R: Runtime> {
    rt: R,
    sleep: BoxFuture<()>,
}

// Nothing in it is pinned: the sleep is boxed.
impl<R: Runtime> Unpin for SleepTimer<R> {}

impl<R: Runtime> Timer for SleepTimer<R> {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.sleep = self.rt.sleep_until(deadline);
    }

    fn poll_expired(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.sleep.as_mut().poll(cx)
    }
}

/// What an async runtime provides to the driver.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// Runs a future in the background.
    fn spawn(&self, fut: BoxFuture<()>);
    /// Completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;
    /// A timer expiring at `deadline` that [`Timer::reset`] re-arms in place. The default
    /// makes a new [`sleep_until`](Self::sleep_until) per reset; runtimes with resettable
    /// timers (tokio's `Sleep`, async-io's `Timer`) override it.
    fn timer(&self, deadline: Instant) -> BoxTimer {
        Box::pin(SleepTimer {
            rt: self.clone(),
            sleep: self.sleep_until(deadline),
        })
    }
    /// Opens a TCP connection (with `TCP_NODELAY` set).
    fn connect(&self, addr: SocketAddr) -> BoxFuture<io::Result<BoxStream>>;
    /// Binds a TCP listener.
    fn bind(&self, addr: SocketAddr) -> BoxFuture<io::Result<Box<dyn Listener>>>;
    /// Resolves a host name to addresses.
    fn resolve(&self, host: String, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>>;
}

/// A runtime that can block the current thread on a future (for Proton's `container.run()`).
pub trait BlockOn: Runtime {
    /// Runs `fut` to completion on this runtime, blocking the calling thread.
    fn block_on<F: Future + Send + 'static>(&self, fut: F) -> F::Output
    where
        F::Output: Send + 'static;
}

/// Binds a non-blocking TCP listener socket for [`Runtime::bind`] to wrap. An IPv6 socket is
/// IPv6-only, so `0.0.0.0:P` and `[::]:P` can both be listened on (Proton's guide listens on
/// both); `SO_REUSEADDR` is set on Unix, as `std` does, so a restarted listener takes its
/// port back at once.
pub fn bind_tcp_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
