//! A listener's accept loop: accepts until stopped, closes at once what is past the
//! listener's [`ConnectionLimit`], runs each TLS handshake in a task of its own, and backs off
//! while the process is out of descriptors or memory instead of spinning.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use amqp_engine::messaging::{AcceptorHandle, TransportInfo};
use event_listener::Event as Notify;
use futures::future::{select, Either};
use futures::io::{AsyncRead, AsyncWrite};

use super::connect::{handshake_error, handshake_within};
use super::{IoEvent, IoEventBox};
use crate::runtime::{BoxStream, Listener, Runtime};
use crate::tls;

/// The first pause of an accept loop that ran out of descriptors (or buffers, or memory).
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest pause: the pause doubles while accepting keeps failing, up to this.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Tells an accept loop to stop. A flag as well as a notification: a notification sent while
/// the loop is not waiting (not yet started, or between two accepts) would be lost, and the
/// listener would keep its port.
#[derive(Default)]
pub(super) struct StopSignal {
    stopped: AtomicBool,
    notify: Notify,
}

impl StopSignal {
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.notify.notify(usize::MAX);
    }
}

/// True for the accept errors that say the process or the system is out of a resource
/// (descriptors, socket buffers, memory): accepting again at once would fail the same way.
pub(super) fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    ) || e.kind() == io::ErrorKind::OutOfMemory
}

/// The pauses of one exhaustion episode: doubling from [`ACCEPT_BACKOFF_MIN`] to
/// [`ACCEPT_BACKOFF_MAX`]; the episode (and its one log line) ends with the next accept.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    episode: Option<(Instant, Duration)>,
}

impl Backoff {
    /// Accepting failed for lack of a resource: how long to pause, and whether this failure
    /// starts an episode (the one to log).
    pub(super) fn failed(&mut self, now: Instant) -> (Duration, bool) {
        match &mut self.episode {
            Some((_, pause)) => {
                *pause = (*pause * 2).min(ACCEPT_BACKOFF_MAX);
                (*pause, false)
            }
            None => {
                self.episode = Some((now, ACCEPT_BACKOFF_MIN));
                (ACCEPT_BACKOFF_MIN, true)
            }
        }
    }

    /// Accepting works again: when the episode started, if there was one.
    pub(super) fn recovered(&mut self) -> Option<Instant> {
        self.episode.take().map(|(start, _)| start)
    }
}

/// A listener's count of its open connections against its `max_connections`
/// ([`ListenOptions::max_connections`](amqp_engine::messaging::ListenOptions::max_connections)):
/// a driver takes a [`ConnectionPermit`] for each connection it accepts, before any TLS, SASL
/// or AMQP work, and keeps it as long as the socket; a connection that gets none is closed at
/// once. The async adapters' accept loop and the mio driver both use it; the first refusal
/// after an admission is logged (one line per episode, not one per refused connection).
///
/// ```
/// use amqp_adapter::ConnectionLimit;
///
/// let limit = ConnectionLimit::new(2);
/// let a = limit.try_admit().expect("first");
/// let _b = limit.try_admit().expect("second");
/// assert!(limit.try_admit().is_none(), "past the limit");
/// assert_eq!(limit.open(), 2);
/// drop(a);
/// assert!(limit.try_admit().is_some(), "a place came free");
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionLimit {
    shared: Arc<LimitState>,
    max: usize,
}

#[derive(Debug, Default)]
struct LimitState {
    open: AtomicUsize,
    /// Set by a refusal, cleared by an admission: only the first refusal of a run is logged.
    refusing: AtomicBool,
}

impl ConnectionLimit {
    /// A limit of `max` connections open at once.
    pub fn new(max: usize) -> Self {
        ConnectionLimit {
            shared: Arc::default(),
            max,
        }
    }

    /// A place for one more connection, or `None` when `max` are open.
    pub fn try_admit(&self) -> Option<ConnectionPermit> {
        let s = &self.shared;
        let admitted = s
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            if !s.refusing.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    target: "amqp",
                    "a listener has {} connections open (its max_connections): closing new \
                     ones at accept until one closes",
                    self.max
                );
            }
            return None;
        }
        s.refusing.store(false, Ordering::Release);
        Some(ConnectionPermit { shared: s.clone() })
    }

    /// How many connections hold a permit.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::Acquire)
    }
}

/// One connection's place in its listener's [`ConnectionLimit`], given back when dropped:
/// keep it with the socket.
#[derive(Debug)]
pub struct ConnectionPermit {
    shared: Arc<LimitState>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An accepted stream that holds its [`ConnectionPermit`]: the reader and writer tasks share
/// the stream, so the place is given back when the last of them lets the socket go.
struct Counted {
    stream: BoxStream,
    _permit: ConnectionPermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

/// Everything an accept loop needs.
pub(super) struct AcceptLoop<R: Runtime> {
    pub(super) acceptor: AcceptorHandle,
    pub(super) listener: Arc<dyn Listener>,
    pub(super) stop: Arc<StopSignal>,
    pub(super) rt: R,
    pub(super) events: super::queue::Sender<IoEventBox>,
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    /// The listener's `max_connections`, if it has one.
    pub(super) limit: Option<ConnectionLimit>,
}

impl<R: Runtime> AcceptLoop<R> {
    /// Accepts until stopped.
    pub(super) async fn run(self) {
        let a = self.acceptor;
        let mut backoff = Backoff::default();
        loop {
            let stopped = self.stop.notify.listen();
            if self.stop.stopped.load(Ordering::Acquire) {
                return;
            }
            let accepted = {
                let l = self.listener.clone();
                Box::pin(async move { l.accept().await })
            };
            let r = match select(accepted, stopped).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => return,
            };
            match r {
                Ok((stream, peer)) => {
                    if let Some(start) = backoff.recovered() {
                        tracing::warn!(
                            target: "amqp",
                            "listener {a:?}: accepting again after {:?}",
                            start.elapsed()
                        );
                    }
                    let stream = match &self.limit {
                        None => stream,
                        Some(limit) => match limit.try_admit() {
                            Some(permit) => Box::new(Counted {
                                stream,
                                _permit: permit,
                            }),
                            // Closed before any TLS, SASL or AMQP work.
                            None => continue,
                        },
                    };
                    self.admit(stream, peer);
                }
                Err(e) if is_exhaustion(&e) => {
                    let (pause, first) = backoff.failed(Instant::now());
                    if first {
                        tracing::warn!(
                            target: "amqp",
                            "listener {a:?}: accept failed ({e}); pausing accepts up to \
                             {ACCEPT_BACKOFF_MAX:?} at a time until it recovers"
                        );
                    }
                    let stopped = self.stop.notify.listen();
                    if self.stop.stopped.load(Ordering::Acquire) {
                        return;
                    }
                    let sleep = self.rt.sleep_until(Instant::now() + pause);
                    if let Either::Right(_) = select(sleep, stopped).await {
                        return;
                    }
                }
                // One connection's failure (reset before accept, …): the next may work.
                Err(e) => tracing::debug!(target: "amqp", "listener {a:?}: accept failed: {e}"),
            }
        }
    }

    /// Hands an accepted connection to the driver, after its TLS handshake (in a task of its
    /// own, so one slow client cannot hold up accepts); a failed handshake is reported as
    /// [`IoEvent::AcceptFailed`].
    fn admit(&self, stream: BoxStream, peer: SocketAddr) {
        let (a, events, tls, rt) = (
            self.acceptor,
            self.events.clone(),
            self.tls.clone(),
            self.rt.clone(),
        );
        let info = TransportInfo {
            encrypted: tls.is_some(),
            peer_identity: None,
            peer_addr: Some(peer.to_string()),
        };
        let Some(cfg) = tls else {
            let _ = events.unbounded_send(IoEventBox(IoEvent::Accepted(a, stream, info)));
            return;
        };
        self.rt.spawn(Box::pin(async move {
            let accept = futures_rustls::TlsAcceptor::from(cfg).accept(stream);
            let ev = match handshake_within(&rt, accept).await {
                Ok(s) => {
                    let mut info = info;
                    info.peer_identity = s
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(tls::certificate_identity);
                    IoEvent::Accepted(a, Box::new(s), info)
                }
                Err(e) => IoEvent::AcceptFailed(a, handshake_error(&e, peer)),
            };
            let _ = events.unbounded_send(IoEventBox(ev));
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhaustion_errors_are_told_from_per_connection_ones() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(is_exhaustion(&io::Error::from_raw_os_error(code)), "{code}");
        }
        for code in [libc::ECONNABORTED, libc::EPROTO, libc::EPERM] {
            assert!(
                !is_exhaustion(&io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
    }

    #[test]
    fn pauses_double_to_the_maximum_and_an_episode_is_logged_once() {
        let mut b = Backoff::default();
        let now = Instant::now();
        let pauses: Vec<(Duration, bool)> = (0..6).map(|_| b.failed(now)).collect();
        assert_eq!(pauses[0], (ACCEPT_BACKOFF_MIN, true));
        assert!(pauses[1..].iter().all(|&(_, first)| !first), "{pauses:?}");
        assert_eq!(pauses[1].0, ACCEPT_BACKOFF_MIN * 2);
        assert_eq!(pauses[5].0, ACCEPT_BACKOFF_MAX);
        assert_eq!(b.recovered(), Some(now));
        assert_eq!(b.failed(now), (ACCEPT_BACKOFF_MIN, true), "a new episode");
    }
}
