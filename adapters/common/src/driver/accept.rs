//! A listener's accept loop: accepts until stopped, runs each TLS handshake in a task of its
//! own, and backs off while the process is out of descriptors or memory instead of spinning.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_engine::messaging::{AcceptorHandle, TransportInfo};
use event_listener::Event as Notify;
use futures::future::{select, Either};

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

/// Everything an accept loop needs.
pub(super) struct AcceptLoop<R: Runtime> {
    pub(super) acceptor: AcceptorHandle,
    pub(super) listener: Arc<dyn Listener>,
    pub(super) stop: Arc<StopSignal>,
    pub(super) rt: R,
    pub(super) events: super::queue::Sender<IoEventBox>,
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
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
