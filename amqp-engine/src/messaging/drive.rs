//! What the driver reports, applied to the reactor: transports connected, failed, read,
//! closed; listeners bound; time passed. Both sans-IO cores — [`SansIoContainer`] and
//! [`ClientCore`] — take their [`IoCore`] inputs through these, then drain the events they
//! queue in their own way (handler callbacks, or client completions).
//!
//! [`SansIoContainer`]: super::SansIoContainer
//! [`ClientCore`]: super::ClientCore
//! [`IoCore`]: super::IoCore

use std::time::Instant;

use super::error::TransportError;
use super::handler::{EventContext, EventType};
use super::handles::{AcceptorHandle, TimerHandle, TransportId};
use super::io::IoRequest;
use super::reactor::{ContainerContext, TimerKind};
use crate::connection::{Connection, EndpointState};
use crate::error::ConnectionError;

impl ContainerContext {
    /// Starts the reactor once (queues `Start`).
    pub(super) fn input_start(&mut self, now: Instant) {
        self.now = now;
        if !self.started {
            self.started = true;
            self.push(EventType::Start, EventContext::default());
        }
    }

    /// Translates the engine events of every connection that changed and queues its output,
    /// visiting only the connections touched since the last flush, and re-registers their
    /// engines' deadlines; false when none had anything to do.
    pub(super) fn flush_dirty(&mut self) -> bool {
        let mut any = false;
        let touched = self.conns.take_touched();
        for &ck in &touched {
            if self.conns.get(ck).is_some_and(|c| c.dirty) {
                self.process_engine(ck);
                self.flush_conn(ck);
                any = true;
            }
            self.conns.sync_deadline(ck);
        }
        self.conns.give_back(touched);
        // Connections touched while flushing (by their own flush, or another's events) are
        // visited in the next round, so their deadlines are current when the caller is done.
        any || self.conns.any_touched()
    }

    /// The earliest timer or engine deadline: O(1), however many connections are open.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.keys().next().map(|(at, _)| *at);
        match (timer, self.conns.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when nothing is left to do: stopped, or no connections, listeners or timers.
    pub(super) fn is_idle(&self) -> bool {
        self.started
            && self.pending.is_empty()
            && self.io.is_empty()
            && self.conns.len() == 0
            && (self.acceptors.len() == 0 || self.stopping)
            && (self.timers.is_empty() || self.stopping)
    }

    /// Time passed: fires due timers (tasks, reconnect attempts, the hard stop) and the
    /// engine deadlines (heartbeat, idle, handshake, close) that passed, visiting only those
    /// connections.
    pub(super) fn input_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some((&(at, id), _)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            let Some(kind) = self.timers.remove(&(at, id)) else {
                break;
            };
            self.timer_index.remove(&id);
            match kind {
                TimerKind::Task => {
                    let ctx = EventContext {
                        timer: Some(TimerHandle(id)),
                        ..EventContext::default()
                    };
                    self.push(EventType::TimerTask, ctx);
                }
                TimerKind::Reconnect(ck) => {
                    if let Some(c) = self.conns.get_mut(ck) {
                        c.reconnect_timer = None;
                    }
                    self.start_attempt(ck);
                }
                TimerKind::HardStop => {
                    for ck in self.conns.keys() {
                        let gen = self.conns.get(ck).map_or(0, |c| c.gen);
                        self.flush_conn(ck);
                        self.io.push_back(IoRequest::Close {
                            transport: TransportId { conn: ck, gen },
                        });
                        self.conns.remove(ck);
                    }
                }
            }
        }
        // Only the connections whose deadline passed: the others are not visited.
        while let Some(ck) = self.conns.pop_due(now) {
            let Some(c) = self.conns.get_mut(ck) else {
                continue;
            };
            if let Some(e) = c.engine.as_mut() {
                if e.poll_timeout().is_some_and(|t| t <= now) {
                    e.handle_timeout(now);
                }
            }
            c.dirty = true;
            self.process_engine(ck);
        }
    }

    /// A connect attempt failed: a transport error, then reconnect or give up.
    pub(super) fn input_connect_failed(
        &mut self,
        t: TransportId,
        reason: TransportError,
        now: Instant,
    ) {
        self.now = now;
        if !self.valid(t) {
            return;
        }
        let mut ctx = self.ctx_conn(t.conn);
        ctx.transport_error = Some(reason.clone());
        self.push(EventType::TransportError, ctx);
        if let Some(c) = self.conns.get_mut(t.conn) {
            c.close_sent = true;
        }
        self.transport_done(t.conn, Some(reason));
    }

    /// Bytes arrived on a transport: `input` hands them to its connection's engine (copied or
    /// taken over).
    pub(super) fn input_with(
        &mut self,
        t: TransportId,
        now: Instant,
        input: impl FnOnce(&mut Connection) -> Result<(), ConnectionError>,
    ) {
        self.now = now;
        if !self.valid(t) {
            return;
        }
        if let Some(c) = self.conns.get_mut(t.conn) {
            if let Some(e) = c.engine.as_mut() {
                // A fatal error also comes out as an engine event, handled there.
                let _ = input(e);
                c.dirty = true;
            }
        }
        self.process_engine(t.conn);
    }

    /// The transport closed (EOF or error).
    pub(super) fn input_disconnected(
        &mut self,
        t: TransportId,
        reason: Option<TransportError>,
        now: Instant,
    ) {
        self.now = now;
        if !self.valid(t) {
            return;
        }
        if let Some(c) = self.conns.get_mut(t.conn) {
            c.close_sent = true;
            match c.engine.as_mut() {
                // The transport failed before the peer's open (a TLS alert after the handshake,
                // e.g. a refused client certificate; a reset during SASL): a failed connect,
                // reported the same way, with the driver's reason rather than a generic one.
                Some(e) if reason.is_some() && e.state().1 == EndpointState::Uninit => {
                    e.handle_transport_closed(now);
                    let mut ctx = self.ctx_conn(t.conn);
                    ctx.transport_error = reason.clone();
                    self.push(EventType::TransportError, ctx);
                    self.transport_done(t.conn, reason);
                    return;
                }
                Some(e) => {
                    e.handle_transport_closed(now);
                }
                None => {
                    self.transport_done(t.conn, reason);
                    return;
                }
            }
        }
        self.process_engine(t.conn);
    }

    /// A listener is bound (`Ok(port)`) or failed.
    pub(super) fn input_listening(
        &mut self,
        acceptor: AcceptorHandle,
        result: Result<u16, TransportError>,
        now: Instant,
    ) {
        self.now = now;
        let ctx = EventContext {
            acceptor: Some(acceptor),
            ..EventContext::default()
        };
        match result {
            Ok(port) => {
                if let Some(a) = self.acceptors.get_mut(acceptor.0) {
                    a.url = a.url.clone().with_port(port);
                }
                self.push(EventType::AcceptorOpened, ctx);
            }
            Err(e) => {
                self.acceptors.remove(acceptor.0);
                let mut ctx = ctx;
                ctx.transport_error = Some(e);
                self.push(EventType::AcceptorError, ctx);
            }
        }
    }
}
