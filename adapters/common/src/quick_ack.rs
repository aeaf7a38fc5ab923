//! [`QuickAck`]: an accepted TCP stream that acknowledges what it reads at once.
//!
//! After a burst we send, Linux treats the connection as interactive and delays its ACK of the
//! peer's next small segment (~40 ms) hoping to piggyback it on a reply. A peer with Nagle's
//! algorithm on (fe2o3-amqp's default) then holds every further small write (one disposition
//! per message, the flow that grants the next credit) until that ACK: each credit batch through
//! the broker stalled ~40 ms. Setting `TCP_QUICKACK` when we have read and have nothing to
//! answer sends the ACK now. Every runtime's listener wraps its accepted sockets in it, giving
//! the one call that reaches its socket type.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncWrite};

/// A stream that sets `TCP_QUICKACK` (through `ack`, which does it on Linux and nothing
/// elsewhere) when it goes idle with bytes read and nothing written since: the only case
/// where the kernel would hold the ACK. When we answer before polling the read again, the
/// ACK rides on the answer and no extra segment is sent.
pub struct QuickAck<S> {
    stream: S,
    /// Bytes were read and nothing has been written since.
    unanswered: bool,
    ack: fn(&S),
}

impl<S> QuickAck<S> {
    /// Wraps `stream`; `ack` sets `TCP_QUICKACK` on its socket (a hint: it ignores errors).
    pub fn new(stream: S, ack: fn(&S)) -> Self {
        QuickAck {
            stream,
            unanswered: false,
            ack,
        }
    }

    fn answered(&mut self, polled: &Poll<io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            self.unanswered = false;
        }
    }
}

/// Sets `TCP_QUICKACK` on a socket (Linux; nothing elsewhere). When it fails the ACK is only
/// late, so the error is dropped.
#[cfg(unix)]
pub fn set_quickack(socket: &impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    socket2::SockRef::from(socket).set_tcp_quickack(true).ok();
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

impl<S: AsyncRead + Unpin> AsyncRead for QuickAck<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(n)) if n > 0 => self.unanswered = true,
            Poll::Pending if self.unanswered => {
                self.unanswered = false;
                (self.ack)(&self.stream);
            }
            _ => {}
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for QuickAck<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.answered(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.answered(&polled);
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    use futures::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

    use super::{set_quickack, QuickAck};

    type Stream = QuickAck<Compat<tokio::net::TcpStream>>;

    /// One round of the stall: the peer (Nagle on, as fe2o3-amqp) asks, we answer with a burst,
    /// the peer writes two small frames back to back. Nagle holds the second until our ACK of
    /// the first, which Linux delays (~40 ms) on a connection that just answered a request.
    /// Returns how long we waited for both small frames.
    async fn round(ours: &mut Stream, peer: &mut std::net::TcpStream) -> Duration {
        let burst = vec![7u8; 27_000];
        peer.write_all(b"?").unwrap();
        let mut one = [0u8; 1];
        ours.read_exact(&mut one).await.unwrap();
        ours.write_all(&burst).await.unwrap();
        let mut got = vec![0u8; burst.len()];
        peer.read_exact(&mut got).unwrap();
        let start = Instant::now();
        peer.write_all(b"a").unwrap();
        peer.write_all(b"b").unwrap();
        let mut two = [0u8; 2];
        ours.read_exact(&mut two[..1]).await.unwrap();
        ours.read_exact(&mut two[1..]).await.unwrap();
        assert_eq!(&two, b"ab");
        start.elapsed()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_nagle_peer_is_not_held_by_a_delayed_ack() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut peer = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        accepted.set_nodelay(true).unwrap();
        let mut ours = QuickAck::new(accepted.compat(), |s| set_quickack(s.get_ref()));
        // The best of a few rounds: a loaded machine may delay one, a delayed ACK delays all.
        let mut best = Duration::MAX;
        for _ in 0..5 {
            best = best.min(round(&mut ours, &mut peer).await);
        }
        assert!(best < Duration::from_millis(20), "best round {best:?}");
    }
}
