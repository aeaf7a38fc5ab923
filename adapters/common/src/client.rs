//! The async API: [`Client`] and its connection, senders, receivers and deliveries.

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use amqp_engine::messaging::{
    AcceptorHandle, ClientCore, ClientEvent, ConnectOptions, ConnectionHandle, DeliveryHandle,
    IoCore, IoRequest, LinkHandle, LinkOption, LinkOptions, MessagingError, Tracker,
    TransportError, TransportId, TransportInfo, Url,
};
use amqp_proto::definitions::Error as AmqpError;
use amqp_proto::message::{Message, ReceivedMessage};
use amqp_proto::messaging::{DeliveryState, Modified, Rejected};

use crate::driver;
use crate::runtime::Runtime;

/// Receiver credit window when [`LinkOptions::prefetch`] is unset (Proton's default, 10).
pub const DEFAULT_PREFETCH: u32 = 10;

/// Messages [`Sender::send_nowait`] queues beyond the link credit (see
/// [`Sender::set_send_buffer`]).
pub const DEFAULT_SEND_BUFFER: usize = 1024;

// ------------------------------------------------------------------------------------------
// Public value types
// ------------------------------------------------------------------------------------------

/// Errors of the async API. They say who caused them (`remote`) and carry the peer's AMQP
/// error condition when there is one.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum ClientError {
    /// The container refused an operation (bad URL or options, message too large, …).
    Messaging(Box<MessagingError>),
    /// The transport could not be established or was lost, and no reconnect follows; the
    /// error's [`kind`](TransportError::kind) tells refused, DNS, TLS, authentication, timeout
    /// and protocol failures apart.
    Transport(TransportError),
    /// The connection is closed: by us (`remote: false`) or by the peer.
    ConnectionClosed {
        /// The peer closed it (or refused it).
        remote: bool,
        /// The peer's error condition.
        error: Option<AmqpError>,
    },
    /// The link is closed: by us (`remote: false`), or refused or detached by the peer.
    LinkClosed {
        /// The peer closed (or refused) it.
        remote: bool,
        /// The peer's error condition.
        error: Option<AmqpError>,
    },
    /// The delivery was already settled (accepted, rejected, released or modified).
    AlreadySettled,
}

impl ClientError {
    /// The link is closed, by us.
    fn closed_here() -> ClientError {
        ClientError::LinkClosed {
            remote: false,
            error: None,
        }
    }

    /// The peer's AMQP error condition, if the peer gave one.
    pub fn condition(&self) -> Option<&AmqpError> {
        match self {
            ClientError::ConnectionClosed { error, .. } | ClientError::LinkClosed { error, .. } => {
                error.as_ref()
            }
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn cond(f: &mut fmt::Formatter<'_>, e: &Option<AmqpError>) -> fmt::Result {
            match e {
                Some(e) => {
                    write!(f, ": {}", e.condition.as_str())?;
                    if let Some(d) = &e.description {
                        write!(f, " ({})", &**d)?;
                    }
                    Ok(())
                }
                None => Ok(()),
            }
        }
        match self {
            ClientError::Messaging(e) => write!(f, "{e}"),
            ClientError::Transport(e) => write!(f, "transport failed: {e}"),
            ClientError::ConnectionClosed { remote, error } => {
                f.write_str(if *remote {
                    "connection closed by the peer"
                } else {
                    "connection closed"
                })?;
                cond(f, error)
            }
            ClientError::LinkClosed { remote, error } => {
                f.write_str(if *remote {
                    "link closed by the peer"
                } else {
                    "link closed"
                })?;
                cond(f, error)
            }
            ClientError::AlreadySettled => f.write_str("delivery already settled"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Messaging(e) => Some(&**e),
            ClientError::Transport(e) => Some(e),
            _ => None,
        }
    }
}

impl From<MessagingError> for ClientError {
    fn from(e: MessagingError) -> Self {
        ClientError::Messaging(Box::new(e))
    }
}

/// Why [`Sender::send_nowait`] did not queue a message; the message comes back (boxed, so
/// the `Result` stays small on the fast path).
#[derive(Debug)]
pub enum TrySendError {
    /// `credit + send_buffer` messages already wait: retry after [`Sender::ready`].
    Full(Box<Message>),
    /// The link or connection is closed.
    Closed(Box<Message>, ClientError),
}

impl TrySendError {
    /// The message that was not sent.
    pub fn into_message(self) -> Message {
        match self {
            TrySendError::Full(m) | TrySendError::Closed(m, _) => *m,
        }
    }

    /// The error, for [`TrySendError::Closed`].
    pub fn error(&self) -> Option<&ClientError> {
        match self {
            TrySendError::Full(_) => None,
            TrySendError::Closed(_, e) => Some(e),
        }
    }
}

impl fmt::Display for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("send buffer full (no credit)"),
            TrySendError::Closed(_, e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TrySendError {}

/// The fate of a sent message.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The peer accepted it.
    Accepted,
    /// The peer rejected it (invalid, not to be redelivered), with its reason.
    Rejected(Option<AmqpError>),
    /// The peer released it: not processed, may be redelivered.
    Released,
    /// The peer did not process it and asks for modifications for redelivery.
    Modified(Modified),
    /// Settled without a terminal outcome: sent pre-settled ([`LinkOption::AtMostOnce`]), or
    /// settled by the peer with no outcome.
    Settled,
    /// The transport was lost, or the link or connection closed, before the outcome arrived:
    /// the peer may or may not have it. Resend for at-least-once delivery.
    InDoubt,
}

impl Outcome {
    /// True for [`Outcome::Accepted`].
    pub fn is_accepted(&self) -> bool {
        matches!(self, Outcome::Accepted)
    }

    /// The outcome a peer's delivery state stands for (no state, or a non-terminal one:
    /// [`Outcome::Settled`]).
    pub fn from_state(state: Option<&DeliveryState>) -> Outcome {
        match state {
            Some(DeliveryState::Accepted(_)) => Outcome::Accepted,
            Some(DeliveryState::Rejected(r)) => Outcome::Rejected(r.error.clone()),
            Some(DeliveryState::Released(_)) => Outcome::Released,
            Some(DeliveryState::Modified(m)) => Outcome::Modified(m.clone()),
            _ => Outcome::Settled,
        }
    }
}

/// Where [`Client::open`] connects: a URL (`&str`, `String`, [`Url`]) or full
/// [`ConnectOptions`] (failover URLs, reconnect, SASL, TLS, heartbeat, …).
#[derive(Debug)]
pub enum ConnectTarget {
    /// A URL, parsed by `open`.
    Url(String),
    /// Connect options.
    Options(Box<ConnectOptions>),
}

impl From<&str> for ConnectTarget {
    fn from(s: &str) -> Self {
        ConnectTarget::Url(s.to_string())
    }
}
impl From<String> for ConnectTarget {
    fn from(s: String) -> Self {
        ConnectTarget::Url(s)
    }
}
impl From<&String> for ConnectTarget {
    fn from(s: &String) -> Self {
        ConnectTarget::Url(s.clone())
    }
}
impl From<Url> for ConnectTarget {
    fn from(u: Url) -> Self {
        ConnectTarget::Options(Box::new(ConnectOptions::new().url(u)))
    }
}
impl From<ConnectOptions> for ConnectTarget {
    fn from(o: ConnectOptions) -> Self {
        ConnectTarget::Options(Box::new(o))
    }
}

mod events;
mod receiver;
mod sender;
mod state;

use events::*;
pub use receiver::{Delivery, Receiver};
pub use sender::{SendFuture, Sender};
use state::*;

// ------------------------------------------------------------------------------------------
// Client and Connection
// ------------------------------------------------------------------------------------------

/// Opens connections on runtime `R`. Runtime crates alias it: `amqp_tokio::Client`.
///
/// The idiomatic async API, on any [`Runtime`]: `Client::open(url).await`, `open_sender`,
/// `sender.send(msg).await -> Outcome`, `receiver.recv().await -> Delivery`.
///
/// The guide's "Hello World!" with the async API (here against an in-process peer):
///
/// ```
/// use amqp_tokio::{Client, Outcome};
/// use amqp_tokio::amqp_proto::message::Message;
///
/// # use amqp_tokio::{Container, Event, MessagingHandler};
/// # /// An in-process peer on a free loopback port: accepts what it receives, and sends
/// # /// "Hello World!" once on each link it sends on.
/// # #[derive(Default)]
/// # struct Peer { port: Option<tokio::sync::oneshot::Sender<u16>>, sent: bool }
/// # impl MessagingHandler for Peer {
/// #     fn on_start(&mut self, e: &mut Event<'_>) { e.container_mut().listen("127.0.0.1:0").unwrap(); }
/// #     fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
/// #         let acceptor = e.acceptor().unwrap();
/// #         let port = e.container().acceptor_port(acceptor).unwrap();
/// #         let _ = self.port.take().unwrap().send(port);
/// #     }
/// #     fn on_sendable(&mut self, e: &mut Event<'_>) {
/// #         if !self.sent {
/// #             self.sent = true;
/// #             e.send(&amqp_tokio::amqp_proto::message::Message::new("Hello World!")).unwrap();
/// #         }
/// #     }
/// # }
/// # async fn peer() -> String {
/// #     let (tx, rx) = tokio::sync::oneshot::channel();
/// #     let peer = Peer { port: Some(tx), ..Peer::default() };
/// #     tokio::spawn(Container::with_id(peer, "peer").run_async());
/// #     format!("amqp://127.0.0.1:{}", rx.await.unwrap())
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), amqp_tokio::ClientError> {
/// # let url = peer().await;
/// let conn = Client::open(url.as_str()).await?;
/// let sender = conn.open_sender("examples").await?;
/// let outcome = sender.send(Message::new("Hello World!")).await?;
/// assert_eq!(outcome, Outcome::Accepted);
/// let mut receiver = conn.open_receiver("examples").await?;
/// let delivery = receiver.recv().await.expect("a message");
/// assert_eq!(delivery.message().body_str(), Some("Hello World!"));
/// delivery.accept()?;
/// conn.close().await
/// # }
/// ```
///
/// The API is generic over [`Runtime`]; a runtime crate exposes it with one alias
/// (`pub type Client = amqp_adapter::Client<MyRuntime>;`), as `amqp-tokio` does.
///
/// # How it works
///
/// [`Client::open`] spawns one *driver task* on the runtime. The connection's state machine is
/// a sans-IO [`ClientCore`] (managed connections: reconnect, failover, links re-attached,
/// in-doubt deliveries), shared by the handles ([`Connection`], [`Sender`], [`Receiver`],
/// [`Delivery`], [`SendFuture`]) and the driver behind one `Mutex`, with the wakers of what
/// waits on it:
///
/// * a send locks, calls the core (which encodes the message once, straight into the output
///   buffer), records the delivery in the outcome map and wakes the driver — at most one
///   wake-up is in flight, however many operations are made meanwhile;
/// * the driver runs the core like any [`IoCore`]; after each call it applies the core's
///   [`ClientEvent`]s under the same lock: an outcome completes its [`SendFuture`] through the
///   one delivery → outcome map, a message goes onto its receiver's queue and wakes the task
///   waiting in [`Receiver::recv`] (one wake per wait, not per delivery);
/// * settling, granting credit, draining and closing are direct calls on the core too;
///   dispositions and flow frames are batched by the engine as usual. Credit lives in the
///   engine alone: [`Sender::credit`] reads it.
///
/// No channel message is sent per delivery, per send or per outcome.
///
/// # Flow control and back-pressure
///
/// * **Receivers** keep a credit window of `prefetch` messages (default [`DEFAULT_PREFETCH`],
///   set with [`LinkOptions::prefetch`] or [`Receiver::set_prefetch`]). Credit is granted for
///   what the application has *consumed* with `recv`, in batches (when credit plus queued
///   deliveries fall to half the window), so a slow consumer holds at most `prefetch`
///   deliveries in memory. `prefetch: Some(0)` or [`Receiver::set_credit`] switches to
///   manual credit; [`Receiver::drain`] asks the sender to use or give up the credit.
/// * **Senders**: [`Sender::send`] waits while the link has no credit, so memory is bounded by
///   the peer's credit. [`Sender::send_nowait`] never waits: it queues the message if fewer
///   than `credit + send_buffer` messages wait to go out (the buffer is
///   [`DEFAULT_SEND_BUFFER`], see [`Sender::set_send_buffer`]; it lets an application queue
///   before the first credit arrives) and otherwise hands the message back in
///   [`TrySendError::Full`]; [`Sender::ready`] waits until it would queue. Queued messages
///   go out as credit arrives, in order. The returned [`SendFuture`] resolves to the outcome.
///
/// # Cancel safety
///
/// | operation | what dropping its future before completion does |
/// |---|---|
/// | [`Client::open`] | the connection attempt is abandoned: closed, driver task ends |
/// | [`Connection::open_sender`] / [`open_receiver`](Connection::open_receiver) | the link being attached is closed once attached; nothing leaks |
/// | [`Sender::ready`] | nothing: cancel-safe |
/// | [`Sender::send`], waiting for credit | the message is dropped with the future and never sent |
/// | [`Sender::send`], message queued | nothing lost: the message is still sent; only its outcome is discarded |
/// | [`SendFuture`] (from [`Sender::send_nowait`]) | the message is still sent; the outcome is discarded |
/// | [`Receiver::recv`] | nothing: cancel-safe, no delivery is lost (a delivery is only taken off the queue by the poll that returns it) |
/// | [`Receiver::drain`] | the drain still completes (credit ends at 0); only the notification is lost |
/// | [`Sender::close`] / [`Receiver::close`] | the link is still closed (dropping a link handle closes it too) |
/// | [`Connection::close`] | once polled, the connection is still closed |
///
/// Dropping a handle: dropping a [`Sender`] or [`Receiver`] closes its link (deliveries queued
/// in a dropped receiver and not yet returned by `recv` are released, so the peer can
/// redeliver them); dropping the last handle of a connection (every [`Connection`] clone, link,
/// [`Delivery`] and [`SendFuture`]) closes it.
///
/// # Shutdown and reconnect
///
/// [`Connection::close`] sends `close` and waits for the peer's `close` (at most 2 s, Proton's
/// stop grace period; then the transport is dropped). Then every pending [`SendFuture`]
/// resolves: messages the engine had sent whose outcome had not arrived to
/// [`Outcome::InDoubt`], messages still queued for credit to [`ClientError::ConnectionClosed`];
/// [`Receiver::recv`] returns the deliveries already queued, then `None`.
///
/// With reconnect on (Proton's default, [`ConnectOptions::reconnect`]), a lost transport is
/// re-established and links re-attached, invisibly to the handles: messages sent but not
/// settled resolve to [`Outcome::InDoubt`] (resend them for at-least-once delivery), queued
/// ones go out on the new transport. Deliveries received on the old transport can no longer
/// be settled (their `accept` is silently ignored by the engine; the peer redelivers them).
/// [`Client::open`] keeps retrying per the reconnect policy until the connection opens: use
/// `reconnect(false)`, [`ReconnectLimits`](amqp_engine::messaging::ReconnectLimits) or a
/// timeout to fail fast.
pub struct Client<R> {
    _r: PhantomData<fn() -> R>,
}

impl<R: Runtime + Default> Client<R> {
    /// Connects, and resolves once the peer's `open` arrives.
    ///
    /// `target` is a URL (`amqp[s]://[user[:password]@]host[:port]`) or
    /// [`ConnectOptions`] (failover URLs, reconnect, SASL, TLS, …). One driver task is
    /// spawned on the runtime for the connection. With reconnect on (the default) failed
    /// attempts are retried per the policy; with `reconnect(false)` the first failure is
    /// returned as [`ClientError::Transport`].
    ///
    /// Cancel safety: dropping the future abandons the attempt (the connection is closed
    /// and the driver task ends).
    ///
    /// ```no_run
    /// use amqp_adapter::{Client, Outcome};
    /// use amqp_adapter::amqp_proto::message::Message;
    /// use amqp_adapter::amqp_engine::messaging::{ConnectOptions, Url};
    ///
    /// # async fn example<R: amqp_adapter::Runtime + Default>() -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = Client::<R>::open("amqp://localhost:5672").await?;
    /// // Or with options: no reconnect, so a refused connection fails at once.
    /// let other = Client::<R>::open(
    ///     ConnectOptions::new().url(Url::parse("amqp://localhost")?).reconnect(false),
    /// )
    /// .await?;
    /// let sender = conn.open_sender("examples").await?;
    /// let outcome = sender.send(Message::new("Hello World!")).await?;
    /// assert_eq!(outcome, Outcome::Accepted);
    /// conn.close().await?;
    /// other.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(target: impl Into<ConnectTarget>) -> Result<Connection, ClientError> {
        Self::open_on(R::default(), target).await
    }
}

impl<R: Runtime> Client<R> {
    /// [`open`](Self::open) on a given runtime instance.
    pub async fn open_on(
        rt: R,
        target: impl Into<ConnectTarget>,
    ) -> Result<Connection, ClientError> {
        let options = match target.into() {
            ConnectTarget::Url(u) => ConnectOptions::new()
                .url(Url::parse(&u).map_err(|e| ClientError::from(MessagingError::Url(e)))?),
            ConnectTarget::Options(o) => *o,
        };
        let mut core = ClientCore::new(crate::new_uuid(), Instant::now());
        crate::prepare(&mut core);
        let conn = core.connect(options)?;
        let (waker, tx, rx) = driver::wake_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(core, conn)),
            driver: waker,
        });
        let driven = Driven(shared.clone());
        let rt2 = rt.clone();
        rt.spawn(Box::pin(async move {
            let driven = driver::drive_with(driven, rt2, tx, rx).await;
            let mut st = driven.0.lock();
            st.finish(None);
            st.waiters.wake_all();
        }));
        let inner = Arc::new(ClientRef { shared });
        poll_fn(|cx| {
            let mut st = inner.shared.lock();
            match st.phase {
                ConnPhase::Open => Poll::Ready(Ok(())),
                ConnPhase::Closed => Poll::Ready(Err(st.conn_error().unwrap_or(
                    ClientError::ConnectionClosed {
                        remote: false,
                        error: None,
                    },
                ))),
                ConnPhase::Opening => {
                    st.waiters.register(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await?;
        Ok(Connection { inner })
    }
}

/// An open connection. Clones share it; the connection closes when [`close`](Self::close) is
/// called or when the last handle (connection, link, delivery or send future) is dropped.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<ClientRef>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.shared.lock();
        f.debug_struct("Connection")
            .field("phase", &st.phase)
            .field("links", &st.links.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Attaches a sender to an address (`"queue"`) or with [`LinkOptions`] (name,
    /// `AtMostOnce`, dynamic target, …); resolves once the peer has attached.
    ///
    /// Errors: [`ClientError::LinkClosed`] if the peer refused it (with its condition),
    /// [`ClientError::ConnectionClosed`] if the connection is closed. Cancel safety: dropping the
    /// future closes the link being attached.
    pub async fn open_sender(
        &self,
        options: impl Into<LinkOptions>,
    ) -> Result<Sender, ClientError> {
        let link = self.open_link(true, options.into()).await?;
        Ok(Sender { link })
    }

    /// Attaches a receiver from an address (`"queue"`) or with [`LinkOptions`] (selector,
    /// `DurableSubscription`, `prefetch`, `LinkOptions::dynamic()` for a reply queue — see
    /// [`Receiver::address`]); resolves once the peer has attached. Credit: a window of
    /// `options.prefetch` (default [`DEFAULT_PREFETCH`]); `Some(0)` for manual credit.
    ///
    /// Errors and cancel safety as [`open_sender`](Self::open_sender).
    pub async fn open_receiver(
        &self,
        options: impl Into<LinkOptions>,
    ) -> Result<Receiver, ClientError> {
        let link = self.open_link(false, options.into()).await?;
        Ok(Receiver {
            link,
            auto_accept: true,
        })
    }

    async fn open_link(&self, sender: bool, opts: LinkOptions) -> Result<LinkRef, ClientError> {
        let shared = &self.inner.shared;
        let id = shared.update(|st| {
            if let Some(e) = st.conn_error() {
                return (Err(e), false);
            }
            let state = LinkState::new(sender, &opts);
            let conn = st.conn;
            let r = if sender {
                st.core.open_sender(conn, opts)
            } else {
                st.core.open_receiver(conn, opts)
            };
            match r {
                Ok(lh) => {
                    st.links.insert(lh, state);
                    (Ok(lh), true)
                }
                Err(e) => (Err(ClientError::from(e)), false),
            }
        })?;
        let link = LinkRef {
            conn: self.inner.clone(),
            id,
        };
        poll_fn(|cx| {
            let mut st = shared.lock();
            let Some(l) = st.links.get_mut(&id) else {
                return Poll::Ready(Err(ClientError::closed_here()));
            };
            match l.phase {
                Phase::Open => Poll::Ready(Ok(())),
                Phase::Closed => {
                    Poll::Ready(Err(l.closed_error().unwrap_or(ClientError::closed_here())))
                }
                Phase::Attaching => {
                    l.waiters.register(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await?;
        Ok(link)
    }

    /// Closes the connection and waits for the peer's `close` (at most 2 s). Then pending
    /// outcomes resolve (in flight: [`Outcome::InDoubt`]; still queued:
    /// [`ClientError::ConnectionClosed`]) and receivers return `None` once their queues are empty.
    ///
    /// Returns `Ok` for a clean close; the error if the connection had failed or the peer
    /// closed it with an error. Cancel safety: once polled, the close proceeds even if the
    /// future is dropped.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.close_inner(None).await
    }

    /// Closes the connection with an error condition for the peer; see
    /// [`close`](Self::close).
    pub async fn close_with_error(&self, error: AmqpError) -> Result<(), ClientError> {
        self.close_inner(Some(error)).await
    }

    async fn close_inner(&self, error: Option<AmqpError>) -> Result<(), ClientError> {
        let shared = &self.inner.shared;
        shared.update(|st| ((), st.close_connection(error)));
        poll_fn(|cx| {
            let mut st = shared.lock();
            if st.phase == ConnPhase::Closed {
                Poll::Ready(st.close_result.clone())
            } else {
                st.waiters.register(cx.waker());
                Poll::Pending
            }
        })
        .await
    }

    /// True once the connection is closed (no reconnect follows).
    pub fn is_closed(&self) -> bool {
        self.inner.shared.lock().phase == ConnPhase::Closed
    }

    /// Why the connection closed, once it has (`None` while open, or after a clean close).
    pub fn error(&self) -> Option<ClientError> {
        self.inner.shared.lock().error.clone()
    }
}

/// A link's share of the connection; dropping it closes the link.
struct LinkRef {
    conn: Arc<ClientRef>,
    id: LinkHandle,
}

impl LinkRef {
    fn shared(&self) -> &Shared {
        &self.conn.shared
    }

    async fn close(&self) -> Result<(), ClientError> {
        self.shared().update(|st| ((), st.close_link(self.id)));
        poll_fn(|cx| {
            let mut st = self.shared().lock();
            match st.links.get_mut(&self.id) {
                Some(l) if l.phase != Phase::Closed => {
                    l.waiters.register(cx.waker());
                    Poll::Pending
                }
                Some(l) => Poll::Ready(l.close_result.clone()),
                None => Poll::Ready(Ok(())),
            }
        })
        .await
    }

    fn address(&self) -> Option<String> {
        self.shared()
            .lock()
            .links
            .get(&self.id)?
            .remote_address
            .clone()
    }

    fn error(&self) -> Option<ClientError> {
        self.shared().lock().links.get(&self.id)?.closed_error()
    }
}

impl Drop for LinkRef {
    fn drop(&mut self) {
        self.shared().update(|st| {
            let Some(l) = st.links.get_mut(&self.id) else {
                return ((), false);
            };
            l.user_dropped = true;
            if l.core_released {
                st.links.remove(&self.id);
                return ((), false);
            }
            // Deliveries arriving after this are released by the core.
            ((), st.close_link(self.id))
        });
    }
}
