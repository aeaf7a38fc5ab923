//! Proton's default actions after a handler callback returns: open what the peer opened,
//! accept links, auto-accept messages and keep the prefetch window topped up, finish a drain
//! the handler did not satisfy, and forget closed links.

use amqp_proto::definitions::{condition, Error, Role};
use amqp_proto::messaging::DeliveryState;

use super::event_record::EventRecord;
use super::handler::EventType;
use super::handles::{ConnectionHandle, DeliveryHandle, LinkHandle, SessionHandle};
use super::reactor::ContainerContext;
use crate::connection::EndpointState;

impl ContainerContext {
    /// A message for a link the application has closed since it arrived (for example several
    /// deliveries read in one batch, the handler closing the link at the first): released,
    /// not dispatched, as Proton's `MessagingHandler` does.
    pub(super) fn release_if_link_closed(&mut self, ctx: &EventRecord) -> bool {
        let Some(d) = ctx.delivery() else {
            return false;
        };
        let Some(c) = self.conns.get_mut(d.conn) else {
            return false;
        };
        if !c.links.get(d.link.link).is_some_and(|l| l.handler_closed) || c.gen != d.gen {
            return false;
        }
        if let Some(e) = c.engine.as_mut() {
            // An unsettled delivery of the current transport: the disposition cannot fail.
            let _ = e.disposition(d.id, Some(DeliveryState::released()), true);
            c.dirty = true;
        }
        true
    }

    /// Proton's default behaviour after a callback returns.
    pub(super) fn after_callback(&mut self, kind: EventType, ctx: EventRecord) {
        match kind {
            EventType::ConnectionOpening => {
                if let Some(conn) = ctx.connection {
                    self.open_connection(conn, ctx);
                }
            }
            EventType::SessionOpening => {
                if let Some(s) = ctx.session() {
                    self.open_session(s, ctx);
                }
            }
            EventType::LinkOpening => {
                if let Some(lh) = ctx.link {
                    self.open_link(lh, ctx);
                }
            }
            EventType::Message => {
                if let Some(d) = ctx.delivery() {
                    self.after_message(d);
                }
            }
            EventType::Sendable => {
                if let Some(lh) = ctx.link {
                    self.finish_drain(lh);
                }
            }
            EventType::ConnectionClosing => {
                if let Some(c) = ctx.connection.and_then(|conn| self.conns.get_mut(conn.0)) {
                    c.app_closed = true;
                }
            }
            EventType::LinkClosed => {
                if let Some(lh) = ctx.link {
                    self.forget_closed_link(lh);
                }
            }
            _ => {}
        }
    }

    /// Opens a connection the peer opened, unless the handler opened or closed it.
    fn open_connection(&mut self, conn: ConnectionHandle, ctx: EventRecord) {
        let Some(c) = self.conns.get_mut(conn.0) else {
            return;
        };
        let Some(e) = c.engine.as_mut() else { return };
        if e.state().0 != EndpointState::Uninit || c.app_closed {
            return;
        }
        // Uninitialised: open is allowed.
        let _ = e.open();
        c.dirty = true;
        self.push_record(EventType::ConnectionOpened, ctx);
    }

    /// Accepts a session the peer began.
    fn open_session(&mut self, s: SessionHandle, ctx: EventRecord) {
        let Some(c) = self.conns.get_mut(s.conn) else {
            return;
        };
        let Some(e) = c.engine.as_mut() else { return };
        if e.accept_session(s.session).is_ok() {
            c.dirty = true;
            self.push_record(EventType::SessionOpened, ctx);
        }
    }

    /// Accepts a link the peer attached (granting a receiver its prefetch), or refuses it if
    /// the handler closed it.
    fn open_link(&mut self, lh: LinkHandle, ctx: EventRecord) {
        let Some(c) = self.conns.get_mut(lh.conn) else {
            return;
        };
        let Some(l) = c.links.get_mut(lh.link) else {
            return;
        };
        let (Some(e), Some(lid)) = (c.engine.as_mut(), l.engine) else {
            return;
        };
        c.dirty = true;
        if l.app_closed {
            let error = l
                .close_error
                .take()
                .unwrap_or_else(|| Error::condition(condition::NOT_FOUND));
            // The peer's attach is pending: refusing it cannot fail.
            let _ = e.refuse_link(lid, error);
            return;
        }
        let uninit = e
            .link_state(lid)
            .is_some_and(|s| s.0 == EndpointState::Uninit);
        if !uninit || e.accept_link(lid, l.config.clone()).is_err() {
            return;
        }
        if l.role == Role::Receiver && l.prefetch > 0 {
            // Just accepted: the flow cannot be refused.
            let _ = e.flow(lid, l.prefetch, false);
        }
        self.push_record(EventType::LinkOpened, ctx);
    }

    /// Auto-accepts a message the handler did not settle, and tops the credit window up (in
    /// batches, at half the prefetch).
    fn after_message(&mut self, d: DeliveryHandle) {
        let auto_accept = self.handler_options.auto_accept && !self.touched;
        let Some(c) = self.conns.get_mut(d.conn) else {
            return;
        };
        if c.gen != d.gen {
            return;
        }
        let Some(e) = c.engine.as_mut() else { return };
        c.dirty = true;
        if auto_accept {
            // Unsettled and of the current transport: the disposition cannot fail.
            let _ = e.disposition(d.id, Some(DeliveryState::accepted()), true);
        }
        let Some(l) = c.links.get(d.link.link) else {
            return;
        };
        let Some(lid) = l.engine.filter(|_| l.prefetch > 0) else {
            return;
        };
        if e.link_credit(lid).unwrap_or(0) <= l.prefetch / 2 {
            // A receiver of the current transport: the flow cannot be refused.
            let _ = e.flow(lid, l.prefetch, false);
        }
    }

    /// A drain request the handler did not satisfy in `on_sendable`: nothing more to send.
    fn finish_drain(&mut self, lh: LinkHandle) {
        let Some(c) = self.conns.get_mut(lh.conn) else {
            return;
        };
        let lid = c.links.get(lh.link).and_then(|l| l.engine);
        if let (Some(e), Some(lid)) = (c.engine.as_mut(), lid) {
            // A no-op unless the peer asked for a drain.
            let _ = e.drained(lid);
            c.dirty = true;
        }
    }

    /// A link closed by both sides that the application closed too: its record goes.
    fn forget_closed_link(&mut self, lh: LinkHandle) {
        let Some(c) = self.conns.get_mut(lh.conn) else {
            return;
        };
        if !c.links.get(lh.link).is_some_and(|l| l.app_closed) {
            return;
        }
        if let Some(lid) = c.links.remove(lh.link).and_then(|l| l.engine) {
            c.by_engine.remove(&lid);
        }
    }
}
