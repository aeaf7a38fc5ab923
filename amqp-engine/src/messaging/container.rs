//! [`SansIoContainer`]: Proton's `Container` as a state machine, and its drive API.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::error::TransportError;
use super::event_record::EventRecord;
use super::handler::{Event, EventContext, EventType, MessagingHandler};
use super::handles::{AcceptorHandle, TransportId};
use super::inject::WakeFn;
use super::io::{IoCore, IoRequest, TransportInfo};
use super::reactor::ContainerContext;
use crate::sasl::ClientMechanismFactory;

/// Proton's `Container` as a sans-IO state machine: a [`MessagingHandler`] plus the
/// [`ContainerContext`] state. It dispatches events to the handler and asks its driver for
/// I/O through [`IoRequest`]s; the driver (an adapter crate such as `amqp-tokio`, or a test)
/// answers through the `handle_*` calls. Users run the adapters' `Container`; this type is
/// for drivers.
///
/// A driver (an adapter crate, or a test) runs this loop:
///
/// ```text
/// container.start(now);
/// loop {
///     while let Some(req) = container.poll_io() { carry it out (connect, listen, write, close) }
///     if container.is_done() { break }
///     wait for: socket readable/connected/closed, or container.poll_timeout()
///     container.handle_read(transport, &bytes, now) / handle_connected / handle_disconnected /
///         handle_accepted / handle_timeout(now) ...
/// }
/// ```
pub struct SansIoContainer<H: MessagingHandler> {
    handler: H,
    reactor: ContainerContext,
}

impl<H: MessagingHandler> fmt::Debug for SansIoContainer<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SansIoContainer")
            .field("reactor", &self.reactor)
            .finish_non_exhaustive()
    }
}

impl<H: MessagingHandler> SansIoContainer<H> {
    /// A container with this id. Drivers generate a UUID v4 when the user sets none, as
    /// Proton does; see [`uuid_from_bytes`](super::uuid_from_bytes).
    pub fn with_id(handler: H, id: impl Into<String>, now: Instant) -> Self {
        let id: String = id.into();
        let seed = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let opts = handler.options();
        let reactor = ContainerContext::new(id, opts, seed, now);
        SansIoContainer { handler, reactor }
    }

    /// Supplies randomness (SCRAM nonces); by default a deterministic generator seeded by the
    /// container id, so simulations replay.
    pub fn set_entropy(&mut self, f: impl FnMut(&mut [u8]) + Send + 'static) {
        self.reactor.entropy = Box::new(f);
    }

    /// Supplies the contents of Proton's connect configuration file, used by `connect_with`
    /// when no URL is given.
    pub fn set_connect_config(&mut self, json: Option<String>) {
        self.reactor.config_file = json;
    }

    /// Adds a SASL client mechanism beyond the built-in ones (GSSAPI) to every outgoing
    /// connection; such mechanisms are preferred when the server offers them and the
    /// connection's `allowed_mechs` permits them (see [`crate::sasl::SaslClientConfig`]).
    pub fn add_client_mechanism(&mut self, mechanism: Arc<dyn ClientMechanismFactory>) {
        self.reactor.client_mechanisms.push(mechanism);
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Consumes the container, returning the handler.
    pub fn into_handler(self) -> H {
        self.handler
    }

    /// The container state, to read (the id, a link's credit, … from outside a callback).
    pub fn context(&self) -> &ContainerContext {
        &self.reactor
    }

    /// The container state, to act on (connect, listen, … from outside a callback).
    pub fn context_mut(&mut self) -> &mut ContainerContext {
        &mut self.reactor
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.reactor.id
    }

    /// How many times the container has visited a connection's record to flush it or to fire
    /// its deadline, since it was made: what the cost of a turn of the driver grows with. A
    /// read on one connection, or one passed deadline, visits a few records however many
    /// connections are open. With the `sim` feature, for tests.
    #[cfg(feature = "sim")]
    pub fn connections_visited(&self) -> u64 {
        self.reactor.conns.visits
    }

    /// Dispatches pending events to the handler and flushes output, until quiet.
    fn pump(&mut self) {
        for payload in self.reactor.inbox.take() {
            self.reactor.app_payloads.push_back(payload);
            self.reactor
                .push(EventType::ApplicationEvent, EventContext::default());
        }
        for _ in 0..1_000_000 {
            if let Some((kind, ctx)) = self.reactor.pending.pop_front() {
                self.dispatch(kind, ctx);
                continue;
            }
            // Engine events caused by what handlers did (e.g. errors), then output.
            let any = self.reactor.flush_dirty();
            if !any && self.reactor.pending.is_empty() {
                break;
            }
        }
    }

    fn dispatch(&mut self, kind: EventType, ctx: EventRecord) {
        if kind == EventType::Message && self.reactor.release_if_link_closed(&ctx) {
            return;
        }
        if kind == EventType::Sendable && !self.reactor.is_link_open(ctx.link) {
            return;
        }
        let h = &mut self.handler;
        self.reactor.touched = false;
        self.reactor.in_callback = true;
        let mut e = Event {
            reactor: &mut self.reactor,
            kind,
            ctx,
        };
        match kind {
            EventType::Start => h.on_start(&mut e),
            EventType::Sendable => h.on_sendable(&mut e),
            EventType::Message => h.on_message(&mut e),
            EventType::Accepted => h.on_accepted(&mut e),
            EventType::Rejected => h.on_rejected(&mut e),
            EventType::Released => h.on_released(&mut e),
            EventType::Settled => h.on_settled(&mut e),
            EventType::Aborted => h.on_aborted(&mut e),
            EventType::InDoubt => h.on_in_doubt(&mut e),
            EventType::ConnectionOpening => h.on_connection_opening(&mut e),
            EventType::ConnectionOpened => h.on_connection_opened(&mut e),
            EventType::ConnectionClosing => h.on_connection_closing(&mut e),
            EventType::ConnectionClosed => h.on_connection_closed(&mut e),
            EventType::ConnectionError => h.on_connection_error(&mut e),
            EventType::SessionOpening => h.on_session_opening(&mut e),
            EventType::SessionOpened => h.on_session_opened(&mut e),
            EventType::SessionClosing => h.on_session_closing(&mut e),
            EventType::SessionClosed => h.on_session_closed(&mut e),
            EventType::SessionError => h.on_session_error(&mut e),
            EventType::LinkOpening => h.on_link_opening(&mut e),
            EventType::LinkOpened => h.on_link_opened(&mut e),
            EventType::LinkClosing => h.on_link_closing(&mut e),
            EventType::LinkClosed => h.on_link_closed(&mut e),
            EventType::LinkError => h.on_link_error(&mut e),
            EventType::Drained => h.on_drained(&mut e),
            EventType::Disconnected => h.on_disconnected(&mut e),
            EventType::TransportError => h.on_transport_error(&mut e),
            EventType::TimerTask => h.on_timer_task(&mut e),
            EventType::AcceptorOpened => h.on_acceptor_opened(&mut e),
            EventType::AcceptorError => h.on_acceptor_error(&mut e),
            EventType::Stop => h.on_stop(&mut e),
            EventType::ApplicationEvent => {
                if let Some(payload) = e.reactor.app_payloads.pop_front() {
                    h.on_application_event(&mut e, payload);
                }
            }
        }
        let mut ctx = e.ctx;
        if let Some(m) = ctx.message.take() {
            self.reactor.recycle_message(m);
        }
        self.reactor.in_callback = false;
        self.reactor.after_callback(kind, ctx);
        self.reactor.run_deferred_closes();
    }
}

impl<H: MessagingHandler> IoCore for SansIoContainer<H> {
    /// Installs the driver's wake function, called by every [`Injector`](super::Injector).
    fn set_waker(&mut self, wake: WakeFn) {
        self.reactor.inbox.set_wake(wake);
    }

    /// Starts: calls `on_start`.
    fn start(&mut self, now: Instant) {
        self.reactor.input_start(now);
        self.pump();
    }

    /// The next I/O request.
    fn poll_io(&mut self) -> Option<IoRequest> {
        if self.reactor.io.is_empty() {
            // Operations made outside a callback (through `reactor()`) are flushed here.
            self.pump();
        }
        self.reactor.io.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    fn poll_timeout(&self) -> Option<Instant> {
        self.reactor.next_deadline()
    }

    /// True when the container has nothing left to do (stopped, or no connections, listeners
    /// or timers): the driver's run loop ends.
    fn is_done(&self) -> bool {
        self.reactor.is_idle()
    }

    /// Time passed.
    fn handle_timeout(&mut self, now: Instant) {
        self.reactor.input_timeout(now);
        self.pump();
    }

    /// True while `t` is the current transport of a connection, i.e. while the container still
    /// wants it. A connect that completes for a transport that is no longer wanted (its
    /// connection was closed, or stopped, while connecting) must be closed by the driver:
    /// [`handle_connected`](Self::handle_connected) ignores it.
    fn is_transport_live(&self, t: TransportId) -> bool {
        self.reactor.valid(t)
    }

    /// A transport came up.
    fn handle_connected(&mut self, t: TransportId, info: TransportInfo, now: Instant) {
        self.reactor.now = now;
        self.reactor.on_connected(t, info);
        self.pump();
    }

    /// A connect attempt failed.
    fn handle_connect_failed(&mut self, t: TransportId, reason: TransportError, now: Instant) {
        self.reactor.input_connect_failed(t, reason, now);
        self.pump();
    }

    /// Bytes arrived on a transport.
    fn handle_read(&mut self, t: TransportId, data: &[u8], now: Instant) {
        self.reactor
            .input_with(t, now, |e| e.handle_input(data, now));
        self.pump();
    }

    /// Bytes arrived on a transport, in a buffer the engine takes over (no copy).
    fn handle_read_owned(&mut self, t: TransportId, data: BytesMut, now: Instant) {
        self.reactor
            .input_with(t, now, |e| e.handle_input_owned(data, now));
        self.pump();
    }

    /// The driver wrote output of a transport: see [`IoCore::handle_written`].
    fn handle_written(&mut self, t: TransportId, bytes: usize, now: Instant) {
        self.reactor.now = now;
        if self.reactor.output_written(t, bytes) {
            self.pump();
        }
    }

    /// The transport closed (EOF or error).
    fn handle_disconnected(
        &mut self,
        t: TransportId,
        reason: Option<TransportError>,
        now: Instant,
    ) {
        self.reactor.input_disconnected(t, reason, now);
        self.pump();
    }

    /// A listener is bound (`Ok(port)`) or failed.
    fn handle_listening(
        &mut self,
        acceptor: AcceptorHandle,
        result: Result<u16, TransportError>,
        now: Instant,
    ) {
        self.reactor.input_listening(acceptor, result, now);
        self.pump();
    }

    /// A connection a listener accepted failed before it became a transport (its TLS
    /// handshake): the handler's `on_transport_error`, with the listener and the typed error.
    fn handle_accept_failed(
        &mut self,
        acceptor: AcceptorHandle,
        error: TransportError,
        now: Instant,
    ) {
        self.reactor.now = now;
        if self.reactor.acceptors.get(acceptor.0).is_none() {
            return;
        }
        let ctx = EventContext {
            acceptor: Some(acceptor),
            transport_error: Some(error),
            ..EventContext::default()
        };
        self.reactor.push(EventType::TransportError, ctx);
        self.pump();
    }

    /// A listener accepted a transport: returns its id for later calls.
    fn handle_accepted(
        &mut self,
        acceptor: AcceptorHandle,
        info: TransportInfo,
        now: Instant,
    ) -> Option<TransportId> {
        self.reactor.now = now;
        let t = self.reactor.on_accepted(acceptor, info);
        self.pump();
        t
    }
}
