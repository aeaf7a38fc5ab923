//! Proton's `BlockingConnection`: [`BlockingConnection::open`], then
//! [`sender`](BlockingConnection::sender)`(address)?.`[`send`](BlockingSender::send)`(msg)`
//! (blocks until the outcome) and
//! [`receiver`](BlockingConnection::receiver)`(address, credit)?.`[`receive`](BlockingReceiver::receive)`(timeout)`.
//!
//! As in Proton, there is no background thread: a container with a recording handler runs on
//! the mio loop, in whichever thread is blocked in a call. The container, its loop and the
//! handler's records sit behind one mutex; a call takes it for one turn of the loop at a time
//! (waking a thread that is polling, so callers from several threads take turns), and returns
//! when what it waits for has been recorded, or its timeout passes.

mod error;
mod link;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use amqp_adapter::amqp_engine::messaging::{
    ConnectOptions, ConnectionHandle, LinkHandle, LinkOptions, SansIoContainer, Url,
};
use mio::Waker;

pub use amqp_adapter::Outcome;
pub use error::BlockingError;
pub use link::{BlockingReceiver, BlockingSender, Delivery};
use state::{BlockingHandler, LinkState};

use crate::driver::Driver;

/// How long [`BlockingConnection::open`], link creation and [`BlockingSender::send`] wait by
/// default (see [`BlockingConnection::set_timeout`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long dropping the last handle of an open connection waits for the close handshake.
const DROP_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The container, its loop, and whether the loop has finished.
struct Inner {
    driver: Driver,
    core: SansIoContainer<BlockingHandler>,
    finished: bool,
}

impl Inner {
    fn handler(&mut self) -> &mut BlockingHandler {
        self.core.handler_mut()
    }
}

pub(crate) struct Shared {
    /// Taken on the way to `inner`: a thread that lets go of `inner` and comes back for it
    /// queues here behind one already waiting, so callers take turns.
    entry: Mutex<()>,
    inner: Mutex<Inner>,
    waker: Arc<Waker>,
    conn: ConnectionHandle,
    /// The default timeout in milliseconds; `u64::MAX`: none.
    timeout_ms: AtomicU64,
}

impl Shared {
    /// Takes the loop; if another thread holds it (polling), wakes that thread first so it
    /// lets go after its turn.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        let _entry = self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        match self.inner.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                if let Err(e) = self.waker.wake() {
                    tracing::debug!(target: "amqp", "cannot wake the blocking loop: {e}");
                }
                self.inner.lock().unwrap_or_else(PoisonError::into_inner)
            }
        }
    }

    fn timeout(&self) -> Option<Duration> {
        match self.timeout_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Runs the loop until `ready` returns a result, failing with
    /// [`BlockingError::Timeout`] once `timeout` has passed and with the connection's error
    /// once the container has finished.
    fn wait<T>(
        &self,
        timeout: Option<Duration>,
        mut ready: impl FnMut(&mut Inner) -> Option<Result<T, BlockingError>>,
    ) -> Result<T, BlockingError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let mut g = self.lock();
            if let Some(r) = ready(&mut g) {
                return r;
            }
            if g.finished {
                return Err(g.handler().closed_error());
            }
            if let (Some(d), Some(t)) = (deadline, timeout) {
                if Instant::now() >= d {
                    return Err(BlockingError::Timeout(t));
                }
            }
            Self::turn(&mut g, deadline)?;
        }
    }

    /// One turn of the loop (waiting at most until `until`); finishes the loop when the
    /// container is done.
    fn turn(g: &mut Inner, until: Option<Instant>) -> Result<(), BlockingError> {
        let Inner {
            driver,
            core,
            finished,
        } = g;
        if *finished {
            return Ok(());
        }
        if driver.turn(core, until)? {
            driver.finish();
            *finished = true;
        }
        Ok(())
    }

    /// Carries out what was just asked of the container (a disposition, a flow) without
    /// waiting.
    fn flush(g: &mut Inner) -> Result<(), BlockingError> {
        Self::turn(g, Some(Instant::now()))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let g = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        if g.finished {
            return;
        }
        if g.core.handler().closed.is_none() {
            g.handler().close_requested = true;
            g.core.context_mut().close_connection(self.conn, None);
        }
        let end = Instant::now() + DROP_CLOSE_WAIT;
        while !g.finished && Instant::now() < end {
            if Self::turn(g, Some(end)).is_err() {
                return;
            }
        }
    }
}

/// Proton's `BlockingConnection`: a connection whose calls block the calling thread until
/// done, with no async runtime. `Send` and cheap to clone: clones share the connection, and
/// several threads may use it at once (each blocked call runs the loop in turn). The
/// connection closes on [`close`](Self::close), or when the last handle (connection, sender,
/// receiver or delivery) is dropped.
///
/// Reconnect and failover are the container's (see [`ConnectOptions`]): while the connection
/// is down, calls wait for it to come back (up to their timeout); a message whose outcome was
/// lost with the transport reports [`Outcome::InDoubt`].
///
/// Sending to the guide's direct receiver, played here by a container on another thread:
///
/// ```
/// use amqp_mio::{BlockingConnection, Container, Event, MessagingHandler};
/// use amqp_mio::amqp_proto::message::Message;
///
/// /// Listens, and accepts (by default) the one message it receives.
/// struct DirectReceiver { port: std::sync::mpsc::Sender<u16> }
/// impl MessagingHandler for DirectReceiver {
///     fn on_start(&mut self, e: &mut Event<'_>) {
///         e.container_mut().listen("127.0.0.1:0").unwrap();
///     }
///     fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
///         let a = e.acceptor().unwrap();
///         self.port.send(e.container().acceptor_port(a).unwrap()).unwrap();
///     }
///     fn on_connection_closed(&mut self, e: &mut Event<'_>) {
///         e.container_mut().stop();
///     }
/// }
///
/// let (port, rx) = std::sync::mpsc::channel();
/// let server = std::thread::spawn(move || Container::new(DirectReceiver { port }).run());
/// let port = rx.recv().unwrap();
///
/// let conn = BlockingConnection::open(&format!("amqp://127.0.0.1:{port}"))?;
/// let sender = conn.sender("examples")?;
/// assert!(sender.send(&Message::new("Hello World!"))?.is_accepted());
/// conn.close()?;
/// server.join().unwrap();
/// # Ok::<(), amqp_mio::BlockingError>(())
/// ```
#[derive(Clone)]
pub struct BlockingConnection {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BlockingConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingConnection")
            .field("connection", &self.shared.conn)
            .finish_non_exhaustive()
    }
}

impl BlockingConnection {
    /// Connects to `url` (`amqp[s]://[user[:password]@]host[:port]`) with default options
    /// (reconnect on) and blocks until the peer's `open` arrives, for at most
    /// [`DEFAULT_TIMEOUT`].
    pub fn open(url: &str) -> Result<BlockingConnection, BlockingError> {
        let url = Url::parse(url)?;
        Self::open_with(ConnectOptions::new().url(url), Some(DEFAULT_TIMEOUT))
    }

    /// Connects with options (failover `urls`, reconnect, SASL, TLS, heartbeat, …) and blocks
    /// until the connection is open, for at most `timeout` (`None`: no limit). With
    /// reconnect off, the first failure is returned as [`BlockingError::Transport`].
    pub fn open_with(
        options: ConnectOptions,
        timeout: Option<Duration>,
    ) -> Result<BlockingConnection, BlockingError> {
        let mut core = crate::new_core(BlockingHandler::default(), amqp_adapter::new_uuid());
        let conn = core.context_mut().connect_with(options)?;
        let mut driver = Driver::new()?;
        let waker = driver.waker();
        driver.start(&mut core);
        let shared = Arc::new(Shared {
            entry: Mutex::new(()),
            inner: Mutex::new(Inner {
                driver,
                core,
                finished: false,
            }),
            waker,
            conn,
            timeout_ms: AtomicU64::new(millis(timeout)),
        });
        shared.wait(timeout, |g| {
            let h = g.handler();
            if h.opened {
                Some(Ok(()))
            } else {
                h.closed.clone().map(Err)
            }
        })?;
        Ok(BlockingConnection { shared })
    }

    /// How long link creation and [`BlockingSender::send`] wait (`None`: no limit).
    pub fn timeout(&self) -> Option<Duration> {
        self.shared.timeout()
    }

    /// Sets how long link creation and [`BlockingSender::send`] wait, for every clone.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.shared
            .timeout_ms
            .store(millis(timeout), Ordering::Relaxed);
    }

    /// Opens a sender to `address` and blocks until the peer attaches it.
    pub fn sender(&self, address: &str) -> Result<BlockingSender, BlockingError> {
        self.sender_with(LinkOptions::address(address))
    }

    /// Opens a sender with link options (name, delivery mode, …).
    pub fn sender_with(&self, options: LinkOptions) -> Result<BlockingSender, BlockingError> {
        let link = self.open_link(options, None)?;
        Ok(BlockingSender::new(self.clone(), link))
    }

    /// Opens a receiver from `address` with a window of `credit` messages (granted again as
    /// [`BlockingReceiver::receive`] takes them), and blocks until the peer attaches it.
    pub fn receiver(&self, address: &str, credit: u32) -> Result<BlockingReceiver, BlockingError> {
        self.receiver_with(LinkOptions::address(address), credit)
    }

    /// A receiver from a node the peer creates for it (a temporary reply queue): its
    /// [`address`](BlockingReceiver::address) goes in requests' `reply_to`.
    pub fn dynamic_receiver(&self, credit: u32) -> Result<BlockingReceiver, BlockingError> {
        self.receiver_with(LinkOptions::dynamic(), credit)
    }

    /// Opens a receiver with link options (filters, durable subscriptions, …).
    pub fn receiver_with(
        &self,
        options: LinkOptions,
        credit: u32,
    ) -> Result<BlockingReceiver, BlockingError> {
        let link = self.open_link(options, Some(credit))?;
        Ok(BlockingReceiver::new(self.clone(), link))
    }

    fn open_link(
        &self,
        mut options: LinkOptions,
        receiver_credit: Option<u32>,
    ) -> Result<LinkHandle, BlockingError> {
        let link = {
            let mut g = self.shared.lock();
            if g.finished || g.core.handler().closed.is_some() {
                return Err(g.handler().closed_error());
            }
            let conn = self.shared.conn;
            let link = match receiver_credit {
                Some(_) => {
                    options.prefetch = Some(0);
                    g.core.context_mut().create_receiver(conn, options)?
                }
                None => g.core.context_mut().create_sender(conn, options)?,
            };
            g.handler().links.insert(
                link,
                LinkState {
                    capacity: receiver_credit.unwrap_or(0),
                    ..LinkState::default()
                },
            );
            link
        };
        let opened = self.shared.wait(self.timeout(), |g| {
            let l = g.handler().links.get(&link)?;
            match (&l.closed, l.opened) {
                (Some(e), _) => Some(Err(e.clone())),
                (None, true) => Some(Ok(())),
                (None, false) => None,
            }
        });
        if opened.is_err() {
            let mut g = self.shared.lock();
            g.handler().links.remove(&link);
            if !g.finished {
                g.core.context_mut().close_link(link);
            }
        }
        opened.map(|()| link)
    }

    /// Closes the connection and blocks until the peer answers (or the timeout passes).
    /// Closing a closed connection succeeds.
    pub fn close(&self) -> Result<(), BlockingError> {
        {
            let mut g = self.shared.lock();
            if g.finished || g.core.handler().closed.is_some() {
                return Ok(());
            }
            g.handler().close_requested = true;
            g.core
                .context_mut()
                .close_connection(self.shared.conn, None);
        }
        self.shared.wait(self.timeout(), |g| {
            let h = g.handler();
            match &h.closed {
                Some(BlockingError::ConnectionClosed { remote: false, .. }) => Some(Ok(())),
                Some(e) => Some(Err(e.clone())),
                None => None,
            }
        })
    }

    /// Why the connection is closed, once it is.
    pub fn error(&self) -> Option<BlockingError> {
        self.shared.lock().core.handler().closed.clone()
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}

fn millis(t: Option<Duration>) -> u64 {
    t.map_or(u64::MAX, |d| d.as_millis().min(u64::MAX as u128 - 1) as u64)
}
