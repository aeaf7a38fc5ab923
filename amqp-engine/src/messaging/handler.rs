//! The [`MessagingHandler`] trait (Proton's callbacks) and the [`Event`] it receives.

use amqp_proto::definitions::Error;
use amqp_proto::message::ReceivedMessage;
use amqp_proto::messaging::DeliveryState;
use amqp_proto::Encode;

use super::error::{MessagingError, TransportError};
use super::event_record::EventRecord;
use super::handles::{
    AcceptorHandle, ConnectionHandle, DeliveryHandle, LinkHandle, SessionHandle, TimerHandle,
    Tracker,
};
use super::reactor::ContainerContext;

/// Proton's `MessagingHandler(prefetch=10, auto_accept=True, auto_settle=True)` options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandlerOptions {
    /// Credit kept topped up on every receiver (`0`: the application grants credit itself).
    pub prefetch: u32,
    /// Accept and settle a delivery when `on_message` returns without having settled it.
    pub auto_accept: bool,
    /// Settle a sent delivery locally when the peer reports a terminal outcome.
    pub auto_settle: bool,
}

impl Default for HandlerOptions {
    fn default() -> Self {
        HandlerOptions {
            prefetch: 10,
            auto_accept: true,
            auto_settle: true,
        }
    }
}

/// Which callback an [`Event`] is for.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum EventType {
    Start,
    Sendable,
    Message,
    Accepted,
    Rejected,
    Released,
    Settled,
    Aborted,
    InDoubt,
    ConnectionOpening,
    ConnectionOpened,
    ConnectionClosing,
    ConnectionClosed,
    ConnectionError,
    SessionOpening,
    SessionOpened,
    SessionClosing,
    SessionClosed,
    SessionError,
    LinkOpening,
    LinkOpened,
    LinkClosing,
    LinkClosed,
    LinkError,
    Drained,
    Disconnected,
    TransportError,
    TimerTask,
    AcceptorOpened,
    AcceptorError,
    Stop,
    /// An [`Injector`](super::Injector) delivered an application event.
    ApplicationEvent,
}

/// What an event concerns, as the code that raises it fills it in; it is queued as an
/// [`EventRecord`]. Fields that do not apply to an event are `None`, as in Proton.
#[derive(Clone, Debug, Default)]
pub(crate) struct EventContext {
    pub(crate) connection: Option<ConnectionHandle>,
    pub(crate) session: Option<SessionHandle>,
    pub(crate) link: Option<LinkHandle>,
    pub(crate) delivery: Option<DeliveryHandle>,
    pub(crate) tracker: Option<Tracker>,
    // Boxed: a `ReceivedMessage` inline would make every event ~500 bytes larger.
    pub(crate) message: Option<Box<ReceivedMessage>>,
    pub(crate) error: Option<Error>,
    pub(crate) state: Option<DeliveryState>,
    pub(crate) timer: Option<TimerHandle>,
    pub(crate) acceptor: Option<AcceptorHandle>,
    pub(crate) transport_error: Option<TransportError>,
}

/// The argument of every callback: the container ([`container`](Self::container), where
/// Proton's container methods live), and the objects the event concerns (connection, link,
/// delivery, message, tracker, timer, errors), as Proton's `event.connection`,
/// `event.sender`, `event.message`, … .
///
/// The guide's selected receive: read the message in `on_message` and settle it yourself
/// (auto-accept off), here rejecting what lacks a colour.
///
/// ```
/// use std::time::{Duration, Instant};
/// use amqp_engine::messaging::sim::World;
/// use amqp_engine::messaging::{Event, HandlerOptions, MessagingHandler, SansIoContainer};
/// use amqp_proto::message::Message;
///
/// #[derive(Default)]
/// struct Checker { accepted: usize, rejected: usize }
///
/// impl MessagingHandler for Checker {
///     fn options(&self) -> HandlerOptions {
///         HandlerOptions { auto_accept: false, ..HandlerOptions::default() }
///     }
///     fn on_start(&mut self, e: &mut Event<'_>) {
///         e.container_mut().listen("0.0.0.0:5672").unwrap();
///     }
///     fn on_message(&mut self, e: &mut Event<'_>) {
///         let coloured = e.message().is_some_and(|m| m.body_str() != Some("plain"));
///         if coloured {
///             e.accept().unwrap();
///             self.accepted += 1;
///         } else {
///             e.reject(None).unwrap();
///             self.rejected += 1;
///         }
///     }
/// }
///
/// #[derive(Default)]
/// struct Sender { outcomes: Vec<&'static str> }
///
/// impl MessagingHandler for Sender {
///     fn on_start(&mut self, e: &mut Event<'_>) {
///         let conn = e.container_mut().connect("amqp://127.0.0.1:5672").unwrap();
///         e.container_mut().create_sender(conn, "colours").unwrap();
///     }
///     fn on_sendable(&mut self, e: &mut Event<'_>) {
///         if self.outcomes.is_empty() && e.credit() >= 2 {
///             e.send(&Message::new("red")).unwrap();
///             e.send(&Message::new("plain")).unwrap();
///             self.outcomes.push("sent");
///         }
///     }
///     fn on_accepted(&mut self, _: &mut Event<'_>) { self.outcomes.push("accepted"); }
///     fn on_rejected(&mut self, _: &mut Event<'_>) { self.outcomes.push("rejected"); }
/// }
///
/// let mut world = World::new(Instant::now(), 1);
/// let r = world.add(SansIoContainer::with_id(Checker::default(), "checker", world.now()));
/// let s = world.add(SansIoContainer::with_id(Sender::default(), "sender", world.now()));
/// world.run_for(Duration::from_secs(1));
/// let checker = world.handler::<Checker>(r).unwrap();
/// assert_eq!((checker.accepted, checker.rejected), (1, 1));
/// assert_eq!(world.handler::<Sender>(s).unwrap().outcomes, ["sent", "accepted", "rejected"]);
/// ```
pub struct Event<'a> {
    pub(crate) reactor: &'a mut ContainerContext,
    pub(crate) kind: EventType,
    pub(crate) ctx: EventRecord,
}

impl std::fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("type", &self.kind)
            .field("connection", &self.ctx.connection)
            .field("link", &self.ctx.link)
            .field("delivery", &self.ctx.delivery())
            .field("tracker", &self.ctx.tracker())
            .finish_non_exhaustive()
    }
}

impl<'a> Event<'a> {
    /// Which callback this is.
    pub fn event_type(&self) -> EventType {
        self.kind
    }

    /// The container, to read: its [`id`](ContainerContext::id), a link's
    /// [`credit`](ContainerContext::credit) or [`link_name`](ContainerContext::link_name), a
    /// connection's [`remote_container_id`](ContainerContext::remote_container_id), … .
    pub fn container(&self) -> &ContainerContext {
        self.reactor
    }

    /// The container, to act on (Proton's `event.container`): connect, listen, create links,
    /// schedule tasks, close, stop.
    pub fn container_mut(&mut self) -> &mut ContainerContext {
        self.reactor
    }

    /// The connection the event concerns.
    pub fn connection(&self) -> Option<ConnectionHandle> {
        self.ctx.connection
    }

    /// The session the event concerns.
    pub fn session(&self) -> Option<SessionHandle> {
        self.ctx.session()
    }

    /// The link (sender or receiver) the event concerns.
    pub fn link(&self) -> Option<LinkHandle> {
        self.ctx.link
    }

    /// The link, if it is a sender.
    pub fn sender(&self) -> Option<LinkHandle> {
        self.ctx.link.filter(|l| self.reactor.is_sender(*l))
    }

    /// The link, if it is a receiver.
    pub fn receiver(&self) -> Option<LinkHandle> {
        self.ctx.link.filter(|l| !self.reactor.is_sender(*l))
    }

    /// The received delivery the event concerns (`on_message`, `on_settled` of a receiver, …).
    pub fn delivery(&self) -> Option<DeliveryHandle> {
        self.ctx.delivery()
    }

    /// The sent delivery the event concerns (`on_accepted`, `on_rejected`, `on_released`,
    /// `on_settled`, `on_in_doubt`).
    pub fn tracker(&self) -> Option<Tracker> {
        self.ctx.tracker()
    }

    /// The received message (`on_message`); its sections decode on first access.
    pub fn message(&self) -> Option<&ReceivedMessage> {
        self.ctx.message.as_deref()
    }

    /// Takes the received message out of the event (avoids a clone; its box stays with the
    /// container for the next delivery).
    pub fn take_message(&mut self) -> Option<ReceivedMessage> {
        let mut b = self.ctx.message.take()?;
        let m = std::mem::take(&mut *b);
        self.reactor.recycle_message(b);
        Some(m)
    }

    /// The error condition (`on_*_error`, `on_rejected`).
    pub fn error(&self) -> Option<&Error> {
        self.ctx.error()
    }

    /// The remote delivery state (`on_accepted`, `on_rejected`, `on_released`, `on_settled`).
    pub fn remote_state(&self) -> Option<&DeliveryState> {
        self.ctx.state()
    }

    /// The timer that fired (`on_timer_task`).
    pub fn timer(&self) -> Option<TimerHandle> {
        self.ctx.timer()
    }

    /// The acceptor (`on_acceptor_opened`, `on_acceptor_error`).
    pub fn acceptor(&self) -> Option<AcceptorHandle> {
        self.ctx.acceptor()
    }

    /// The transport failure (`on_transport_error`, `on_disconnected`, `on_acceptor_error`,
    /// and `on_connection_closed` when reconnecting gave up): its
    /// [`kind`](TransportError::kind) tells a refused connection from a DNS, TLS,
    /// authentication, timeout or protocol failure.
    pub fn transport_error(&self) -> Option<&TransportError> {
        self.ctx.transport_error()
    }

    // Convenience actions on the objects of the event.

    /// Sends a message on the event's sender. See [`ContainerContext::send`].
    pub fn send<M: Encode + ?Sized>(&mut self, message: &M) -> Result<Tracker, MessagingError> {
        let link = self
            .sender()
            .ok_or(MessagingError::NoSuchObject("event has no sender"))?;
        self.reactor.send(link, message)
    }

    /// Accepts and settles the event's delivery.
    pub fn accept(&mut self) -> Result<(), MessagingError> {
        let d = self.delivery_required()?;
        self.reactor.accept(d)
    }

    /// Rejects and settles the event's delivery.
    pub fn reject(&mut self, error: Option<Error>) -> Result<(), MessagingError> {
        let d = self.delivery_required()?;
        self.reactor.reject(d, error)
    }

    /// Releases and settles the event's delivery.
    pub fn release(&mut self) -> Result<(), MessagingError> {
        let d = self.delivery_required()?;
        self.reactor.release(d)
    }

    /// Credit available on the event's sender.
    pub fn credit(&self) -> u32 {
        self.ctx.link.map_or(0, |l| self.reactor.credit(l))
    }

    fn delivery_required(&self) -> Result<DeliveryHandle, MessagingError> {
        self.ctx
            .delivery()
            .ok_or(MessagingError::NoSuchObject("event has no delivery"))
    }
}

/// Proton's `MessagingHandler`: implement the callbacks you need; the rest do nothing (or, for
/// the `*_opening`/`*_closing` ones, let the container apply Proton's defaults: open in reply,
/// close in reply). [`options`](Self::options) sets Proton's `prefetch`, `auto_accept` and
/// `auto_settle`.
///
/// The guide's "Hello World!": send a message to a queue and receive it back, here peer to
/// peer (a second handler plays the broker) on the simulated network of the `sim` feature;
/// with `amqp_tokio::Container::new(HelloWorld).run()` the same handler runs over TCP.
///
/// ```
/// use std::time::{Duration, Instant};
/// use amqp_engine::messaging::sim::World;
/// use amqp_engine::messaging::{Event, MessagingHandler, SansIoContainer};
/// use amqp_proto::message::Message;
///
/// #[derive(Default)]
/// struct HelloWorld { received: Option<String> }
///
/// impl MessagingHandler for HelloWorld {
///     fn on_start(&mut self, e: &mut Event<'_>) {
///         let conn = e.container_mut().connect("amqp://127.0.0.1:5672").unwrap();
///         e.container_mut().create_receiver(conn, "examples").unwrap();
///         e.container_mut().create_sender(conn, "examples").unwrap();
///     }
///     fn on_sendable(&mut self, e: &mut Event<'_>) {
///         e.send(&Message::new("Hello World!")).unwrap();
///         let sender = e.sender().unwrap();
///         e.container_mut().close_link(sender);
///     }
///     fn on_message(&mut self, e: &mut Event<'_>) {
///         self.received = e.message().and_then(|m| m.body_str()).map(str::to_string);
///         let conn = e.connection().unwrap();
///         e.container_mut().close_connection(conn, None);
///     }
/// }
///
/// /// The "broker": relays what arrives on a sender link to the receiver link.
/// #[derive(Default)]
/// struct Relay { out: Option<amqp_engine::messaging::LinkHandle> }
///
/// impl MessagingHandler for Relay {
///     fn on_start(&mut self, e: &mut Event<'_>) {
///         e.container_mut().listen("0.0.0.0:5672").unwrap();
///     }
///     fn on_link_opened(&mut self, e: &mut Event<'_>) {
///         let link = e.link().unwrap();
///         if e.container().is_sender(link) {
///             self.out = Some(link);
///         }
///     }
///     fn on_message(&mut self, e: &mut Event<'_>) {
///         let m = e.message().unwrap().clone();
///         e.container_mut().send(self.out.unwrap(), &m).unwrap();
///     }
/// }
///
/// let mut world = World::new(Instant::now(), 1);
/// world.add(SansIoContainer::with_id(Relay::default(), "broker", world.now()));
/// let c = world.add(SansIoContainer::with_id(HelloWorld::default(), "hello", world.now()));
/// world.run_for(Duration::from_secs(1));
/// let hello = world.handler::<HelloWorld>(c).unwrap();
/// assert_eq!(hello.received.as_deref(), Some("Hello World!"));
/// ```
#[allow(unused_variables)]
pub trait MessagingHandler {
    /// `prefetch`, `auto_accept`, `auto_settle`.
    fn options(&self) -> HandlerOptions {
        HandlerOptions::default()
    }
    /// The container started: connect, listen, schedule here.
    fn on_start(&mut self, e: &mut Event<'_>) {}
    /// A sender has credit: send now.
    fn on_sendable(&mut self, e: &mut Event<'_>) {}
    /// A message arrived (see [`Event::message`], [`Event::delivery`]).
    fn on_message(&mut self, e: &mut Event<'_>) {}
    /// The peer accepted a sent message.
    fn on_accepted(&mut self, e: &mut Event<'_>) {}
    /// The peer rejected a sent message.
    fn on_rejected(&mut self, e: &mut Event<'_>) {}
    /// The peer released (or modified) a sent message.
    fn on_released(&mut self, e: &mut Event<'_>) {}
    /// The peer settled a delivery.
    fn on_settled(&mut self, e: &mut Event<'_>) {}
    /// An incoming delivery was aborted by its sender.
    fn on_aborted(&mut self, e: &mut Event<'_>) {}
    /// A sent delivery's fate is unknown: the connection was lost before its outcome arrived.
    /// Resend it if you need at-least-once delivery (after a reconnect, links are re-attached
    /// and `on_sendable` fires again).
    fn on_in_doubt(&mut self, e: &mut Event<'_>) {}
    /// The peer opened a connection we have not opened (incoming); we open in reply afterwards.
    fn on_connection_opening(&mut self, e: &mut Event<'_>) {}
    /// The connection is open on both sides.
    fn on_connection_opened(&mut self, e: &mut Event<'_>) {}
    /// The peer closed the connection; we close in reply afterwards.
    fn on_connection_closing(&mut self, e: &mut Event<'_>) {}
    /// The connection is closed on both sides.
    fn on_connection_closed(&mut self, e: &mut Event<'_>) {}
    /// The peer closed the connection with an error.
    fn on_connection_error(&mut self, e: &mut Event<'_>) {}
    /// The peer began a session; we begin in reply afterwards.
    fn on_session_opening(&mut self, e: &mut Event<'_>) {}
    /// A session is open on both sides.
    fn on_session_opened(&mut self, e: &mut Event<'_>) {}
    /// The peer ended a session.
    fn on_session_closing(&mut self, e: &mut Event<'_>) {}
    /// A session ended on both sides.
    fn on_session_closed(&mut self, e: &mut Event<'_>) {}
    /// A session ended with an error.
    fn on_session_error(&mut self, e: &mut Event<'_>) {}
    /// The peer attached a link we have not (incoming); we attach in reply afterwards, unless
    /// the handler closed it. A receiver then gets `prefetch` credit.
    fn on_link_opening(&mut self, e: &mut Event<'_>) {}
    /// A link is attached on both sides.
    fn on_link_opened(&mut self, e: &mut Event<'_>) {}
    /// The peer detached a link.
    fn on_link_closing(&mut self, e: &mut Event<'_>) {}
    /// A link is detached on both sides.
    fn on_link_closed(&mut self, e: &mut Event<'_>) {}
    /// A link was detached with an error.
    fn on_link_error(&mut self, e: &mut Event<'_>) {}
    /// A receiver's drain completed.
    fn on_drained(&mut self, e: &mut Event<'_>) {}
    /// The transport was lost (a reconnect follows if enabled).
    fn on_disconnected(&mut self, e: &mut Event<'_>) {}
    /// The transport failed (connect refused, TLS or protocol error, authentication failure).
    fn on_transport_error(&mut self, e: &mut Event<'_>) {}
    /// A scheduled task fired.
    fn on_timer_task(&mut self, e: &mut Event<'_>) {}
    /// A listener is accepting connections.
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {}
    /// A listener could not be opened.
    fn on_acceptor_error(&mut self, e: &mut Event<'_>) {}
    /// The container is stopping: the last callback.
    fn on_stop(&mut self, e: &mut Event<'_>) {}
    /// Another thread sent this payload through an [`Injector`](super::Injector) (Proton's
    /// `EventInjector`); downcast it to the type you injected:
    /// `if let Ok(cmd) = payload.downcast::<MyCommand>() { … }`.
    fn on_application_event(&mut self, e: &mut Event<'_>, payload: super::Payload) {}
}
