//! [`SansIoContainer`]: Proton's `Container` as a state machine, and its drive API.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use super::error::TransportError;
use super::handler::{Event, EventContext, EventType, MessagingHandler};
use super::handles::{AcceptorHandle, TimerHandle, TransportId};
use super::io::{IoCore, IoRequest, TransportInfo};
use super::reactor::{ContainerContext, TimerKind};
use crate::connection::EndpointState;
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

    /// The container state (connect, listen, … from outside a callback).
    pub fn context(&mut self) -> &mut ContainerContext {
        &mut self.reactor
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.reactor.id
    }

    /// Dispatches pending events to the handler and flushes output, until quiet.
    fn pump(&mut self) {
        for _ in 0..1_000_000 {
            if let Some((kind, ctx)) = self.reactor.pending.pop_front() {
                self.dispatch(kind, ctx);
                continue;
            }
            // Engine events caused by what handlers did (e.g. errors), then output.
            let mut any = false;
            for ck in self.reactor.conns.keys() {
                let dirty = self.reactor.conns.get(ck).is_some_and(|c| c.dirty);
                if dirty {
                    self.reactor.process_engine(ck);
                    self.reactor.flush_conn(ck);
                    any = true;
                }
            }
            if !any && self.reactor.pending.is_empty() {
                break;
            }
        }
    }

    fn dispatch(&mut self, kind: EventType, ctx: EventContext) {
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
    /// Starts: calls `on_start`.
    fn start(&mut self, now: Instant) {
        self.reactor.now = now;
        if !self.reactor.started {
            self.reactor.started = true;
            self.reactor.push(EventType::Start, EventContext::default());
        }
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
        let mut t = self.reactor.timers.keys().next().map(|(at, _)| *at);
        for k in self.reactor.conns.keys() {
            if let Some(e) = self.reactor.conns.get(k).and_then(|c| c.engine.as_ref()) {
                if let Some(et) = e.poll_timeout() {
                    t = Some(t.map_or(et, |x| x.min(et)));
                }
            }
        }
        t
    }

    /// True when the container has nothing left to do (stopped, or no connections, listeners
    /// or timers): the driver's run loop ends.
    fn is_done(&self) -> bool {
        let r = &self.reactor;
        r.started
            && r.pending.is_empty()
            && r.io.is_empty()
            && r.conns.len() == 0
            && (r.acceptors.len() == 0 || r.stopping)
            && (r.timers.is_empty() || r.stopping)
    }

    /// Time passed.
    fn handle_timeout(&mut self, now: Instant) {
        self.reactor.now = now;
        while let Some((&(at, id), _)) = self.reactor.timers.iter().next() {
            if at > now {
                break;
            }
            let Some(kind) = self.reactor.timers.remove(&(at, id)) else {
                break;
            };
            self.reactor.timer_index.remove(&id);
            match kind {
                TimerKind::Task => {
                    let ctx = EventContext {
                        timer: Some(TimerHandle(id)),
                        ..EventContext::default()
                    };
                    self.reactor.push(EventType::TimerTask, ctx);
                }
                TimerKind::Reconnect(ck) => {
                    if let Some(c) = self.reactor.conns.get_mut(ck) {
                        c.reconnect_timer = None;
                    }
                    self.reactor.start_attempt(ck);
                }
                TimerKind::HardStop => {
                    for ck in self.reactor.conns.keys() {
                        let gen = self.reactor.conns.get(ck).map_or(0, |c| c.gen);
                        self.reactor.flush_conn(ck);
                        self.reactor.io.push_back(IoRequest::Close {
                            transport: TransportId { conn: ck, gen },
                        });
                        self.reactor.conns.remove(ck);
                    }
                }
            }
        }
        for ck in self.reactor.conns.keys() {
            if let Some(e) = self
                .reactor
                .conns
                .get_mut(ck)
                .and_then(|c| c.engine.as_mut())
            {
                if e.poll_timeout().is_some_and(|t| t <= now) {
                    e.handle_timeout(now);
                }
            }
            if let Some(c) = self.reactor.conns.get_mut(ck) {
                c.dirty = true;
            }
            self.reactor.process_engine(ck);
        }
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
        self.reactor.now = now;
        if !self.reactor.valid(t) {
            return;
        }
        let mut ctx = self.reactor.ctx_conn(t.conn);
        ctx.transport_error = Some(reason.clone());
        self.reactor.push(EventType::TransportError, ctx);
        if let Some(c) = self.reactor.conns.get_mut(t.conn) {
            c.close_sent = true;
        }
        self.reactor.transport_done(t.conn, Some(reason));
        self.pump();
    }

    /// Bytes arrived on a transport.
    fn handle_read(&mut self, t: TransportId, data: &[u8], now: Instant) {
        self.reactor.now = now;
        if !self.reactor.valid(t) {
            return;
        }
        if let Some(c) = self.reactor.conns.get_mut(t.conn) {
            if let Some(e) = c.engine.as_mut() {
                // A fatal error also comes out as an engine event, handled there.
                let _ = e.handle_input(data, now);
                c.dirty = true;
            }
        }
        self.reactor.process_engine(t.conn);
        self.pump();
    }

    /// The transport closed (EOF or error).
    fn handle_disconnected(
        &mut self,
        t: TransportId,
        reason: Option<TransportError>,
        now: Instant,
    ) {
        self.reactor.now = now;
        if !self.reactor.valid(t) {
            return;
        }
        if let Some(c) = self.reactor.conns.get_mut(t.conn) {
            c.close_sent = true;
            match c.engine.as_mut() {
                // The transport failed before the peer's open (a TLS alert after the handshake,
                // e.g. a refused client certificate; a reset during SASL): a failed connect,
                // reported the same way, with the driver's reason rather than a generic one.
                Some(e) if reason.is_some() && e.state().1 == EndpointState::Uninit => {
                    e.handle_transport_closed(now);
                    let mut ctx = self.reactor.ctx_conn(t.conn);
                    ctx.transport_error = reason.clone();
                    self.reactor.push(EventType::TransportError, ctx);
                    self.reactor.transport_done(t.conn, reason);
                    self.pump();
                    return;
                }
                Some(e) => {
                    e.handle_transport_closed(now);
                }
                None => {
                    self.reactor.transport_done(t.conn, reason);
                    self.pump();
                    return;
                }
            }
        }
        self.reactor.process_engine(t.conn);
        self.pump();
    }

    /// A listener is bound (`Ok(port)`) or failed.
    fn handle_listening(
        &mut self,
        acceptor: AcceptorHandle,
        result: Result<u16, TransportError>,
        now: Instant,
    ) {
        self.reactor.now = now;
        let ctx = EventContext {
            acceptor: Some(acceptor),
            ..EventContext::default()
        };
        match result {
            Ok(port) => {
                if let Some(a) = self.reactor.acceptors.get_mut(acceptor.0) {
                    a.url = a.url.clone().with_port(port);
                }
                self.reactor.push(EventType::AcceptorOpened, ctx);
            }
            Err(e) => {
                self.reactor.acceptors.remove(acceptor.0);
                let mut ctx = ctx;
                ctx.transport_error = Some(e);
                self.reactor.push(EventType::AcceptorError, ctx);
            }
        }
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
