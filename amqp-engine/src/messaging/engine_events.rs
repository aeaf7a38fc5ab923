//! Engine events of one connection, translated into handler events: one method per engine
//! event.

use amqp_proto::definitions::{condition, Error, Role};
use amqp_proto::message::ReceivedMessage;
use amqp_proto::messaging::{DeliveryState, Rejected};

use super::error::TransportError;
use super::event_record::EventRecord;
use super::handler::{EventContext, EventType};
use super::handles::{DeliveryHandle, LinkHandle, SessionHandle, Tracker};
use super::managed::{LinkRec, SESSION_RESTORES};
use super::reactor::ContainerContext;
use crate::connection::{EndpointState, LinkConfig};
use crate::error::{ConnectionError, ErrorKind};
use crate::event::{Event as EngineEvent, IncomingDelivery};
use crate::ids::{DeliveryId, Key, LinkId, SessionId};
use crate::sasl::SaslError;

/// How many emptied message boxes a container keeps for reuse: enough for the deliveries of
/// one large read (a 64 KiB read holds ~480 small messages), all dispatched before the boxes
/// come back.
pub(super) const SPARE_MESSAGES: usize = 1024;

/// An emptied message box kept for the next delivery: the box's heap allocation is what is
/// reused (events carry messages boxed, so a vector of messages would not spare it).
pub(super) struct SpareMessage(Box<ReceivedMessage>);

/// Where an engine event happened: the connection's key and its transport generation.
#[derive(Clone, Copy)]
struct At {
    conn: Key,
    gen: u32,
}

impl ContainerContext {
    /// Translates the engine's events of one connection into handler events.
    pub(super) fn process_engine(&mut self, ck: Key) {
        loop {
            let Some(c) = self.conns.get_mut(ck) else {
                return;
            };
            let at = At {
                conn: ck,
                gen: c.gen,
            };
            let Some(ev) = c.engine.as_mut().and_then(|e| e.poll_event()) else {
                return;
            };
            c.dirty = true;
            match ev {
                EngineEvent::Authenticated { .. } => {}
                EngineEvent::ConnectionOpened => self.on_engine_opened(at),
                EngineEvent::ConnectionClosed { error } => self.on_engine_closed(at, error),
                EngineEvent::SessionOpened {
                    session,
                    remote_initiated,
                } => {
                    let kind = if remote_initiated {
                        EventType::SessionOpening
                    } else {
                        EventType::SessionOpened
                    };
                    let ctx = self.session_ctx(at, session);
                    self.push(kind, ctx);
                }
                EngineEvent::SessionEnded { session, error } => {
                    if c.outgoing.is_some() {
                        // (An outgoing connection's sessions are ours.)
                        c.sessions_lost += 1;
                    }
                    let mut ctx = self.session_ctx(at, session);
                    ctx.error = error;
                    if ctx.error.is_some() {
                        self.push(EventType::SessionError, ctx.clone());
                    }
                    self.push(EventType::SessionClosed, ctx);
                }
                EngineEvent::SessionError { session, error } => {
                    let mut ctx = self.session_ctx(at, session);
                    ctx.error = Some(error);
                    self.push(EventType::SessionError, ctx);
                }
                EngineEvent::LinkOpened {
                    link,
                    remote_initiated,
                } => self.on_link_opened(at, link, remote_initiated),
                EngineEvent::LinkClosed {
                    link,
                    error,
                    session_ended,
                    ..
                } => {
                    if !(session_ended && self.restore_link(at, link)) {
                        self.on_link_closed(at, link, error);
                    }
                }
                EngineEvent::LinkError { link, error } => {
                    self.push_link_event(at, link, EventType::LinkError, Some(error));
                }
                EngineEvent::LinkFlow { link, credit, .. } if credit > 0 => {
                    self.push_link_event(at, link, EventType::Sendable, None);
                }
                EngineEvent::LinkFlow { .. } => {}
                EngineEvent::LinkDrained { link } => {
                    self.push_link_event(at, link, EventType::Drained, None);
                }
                EngineEvent::Delivery(d) => self.on_delivery(at, d),
                EngineEvent::Disposition {
                    delivery,
                    state,
                    settled,
                } => self.on_disposition(at, delivery, state, settled),
                EngineEvent::Aborted { delivery } => {
                    let Some(lh) = self.link_handle(ck, delivery.link) else {
                        continue;
                    };
                    let mut ctx = self.ctx_conn(ck);
                    ctx.link = Some(lh);
                    ctx.delivery = Some(delivery_handle(at, lh, delivery));
                    self.push(EventType::Aborted, ctx);
                }
                EngineEvent::Error(err) => self.on_engine_error(at, err),
                EngineEvent::Finished => {
                    self.transport_done(ck, None);
                    return;
                }
            }
        }
    }

    fn session_ctx(&self, at: At, session: SessionId) -> EventContext {
        let mut ctx = self.ctx_conn(at.conn);
        ctx.session = Some(SessionHandle {
            conn: at.conn,
            gen: at.gen,
            session,
        });
        ctx
    }

    /// Pushes a link event with an optional error, if the link is one we know.
    fn push_link_event(&mut self, at: At, link: LinkId, kind: EventType, error: Option<Error>) {
        let Some(lh) = self.link_handle(at.conn, link) else {
            return;
        };
        let mut ctx = self.ctx_conn(at.conn);
        ctx.link = Some(lh);
        ctx.error = error;
        self.push(kind, ctx);
    }

    /// The peer's open arrived: opened (we opened first) or opening (the peer did).
    fn on_engine_opened(&mut self, at: At) {
        let Some(c) = self.conns.get_mut(at.conn) else {
            return;
        };
        if c.over_limit() {
            // Past its listener's max_connections: refused, unseen by the handler.
            c.app_closed = true;
            if let Some(e) = c.engine.as_mut() {
                let _ = e.close(Some(Error::new(
                    condition::RESOURCE_LIMIT_EXCEEDED,
                    "too many connections to this listener",
                )));
            }
            return;
        }
        let local_open = c
            .engine
            .as_ref()
            .is_some_and(|e| e.state().0 != EndpointState::Uninit);
        if let Some(o) = c.outgoing.as_mut() {
            o.failover.reset();
            o.process_started = None;
        }
        let kind = if local_open {
            EventType::ConnectionOpened
        } else {
            EventType::ConnectionOpening
        };
        let ctx = self.ctx_conn(at.conn);
        self.push(kind, ctx);
    }

    /// The peer closed the connection. `amqp:connection:forced` on a connection that can
    /// reconnect is a lost transport (reconnect follows); anything else ends it.
    fn on_engine_closed(&mut self, at: At, error: Option<Error>) {
        let stopping = self.stopping;
        let Some(c) = self.conns.get_mut(at.conn) else {
            return;
        };
        let forced = error
            .as_ref()
            .is_some_and(|e| e.condition == condition::CONNECTION_FORCED);
        let can_reconnect = c
            .outgoing
            .as_ref()
            .is_some_and(|o| !o.failover.urls().is_empty());
        if forced && can_reconnect && !c.app_closed && !stopping {
            return;
        }
        if error
            .as_ref()
            .is_some_and(|e| e.condition == condition::UNAUTHORIZED_ACCESS)
        {
            c.auth_failed = true;
        }
        let app_closed = std::mem::replace(&mut c.app_closed, true); // the peer closed: no reconnect
        if c.over_limit() {
            // Refused past max_connections: the handler never saw it open.
            return;
        }
        let mut ctx = self.ctx_conn(at.conn);
        ctx.error = error;
        if ctx.error.is_some() {
            self.push(EventType::ConnectionError, ctx.clone());
        }
        if !app_closed {
            self.push(EventType::ConnectionClosing, ctx.clone());
        }
        self.push(EventType::ConnectionClosed, ctx);
    }

    /// A link attached: ours (opened), or the peer's (opening; a record is made for it).
    fn on_link_opened(&mut self, at: At, link: LinkId, remote_initiated: bool) {
        let lh = if remote_initiated {
            match self.add_peer_link(at.conn, link) {
                Some(lh) => lh,
                None => return,
            }
        } else {
            match self.link_handle(at.conn, link) {
                Some(lh) => lh,
                None => return,
            }
        };
        let mut ctx = self.ctx_conn(at.conn);
        ctx.link = Some(lh);
        let kind = if remote_initiated {
            EventType::LinkOpening
        } else {
            EventType::LinkOpened
        };
        self.push(kind, ctx);
    }

    /// A record for a link the peer is attaching (not re-attached after a reconnect).
    fn add_peer_link(&mut self, ck: Key, link: LinkId) -> Option<LinkHandle> {
        let prefetch = self.handler_options.prefetch;
        let c = self.conns.get_mut(ck)?;
        let e = c.engine.as_ref()?;
        let role = e.link_role(link).unwrap_or(Role::Sender);
        let name = e.link_name(link).unwrap_or_default().to_string();
        let lk = c.links.insert(LinkRec {
            role,
            config: LinkConfig {
                name,
                ..LinkConfig::default()
            },
            engine: Some(link),
            app_closed: false,
            handler_closed: false,
            prefetch,
            persistent: false,
            close_error: None,
        });
        c.by_engine.insert(link, lk);
        Some(LinkHandle { conn: ck, link: lk })
    }

    /// A link of the application's that went with the session the peer ended (the connection
    /// is still up): what it had in flight is in doubt, and it is attached again on a new
    /// session, as after a reconnect (the handler sees the session error, the in-doubt
    /// deliveries, and the link opened again). False when it is not the application's link on
    /// an outgoing connection, or the peer has ended too many sessions on this transport: the
    /// link is then closed.
    fn restore_link(&mut self, at: At, link: LinkId) -> bool {
        let Some(c) = self.conns.get_mut(at.conn) else {
            return false;
        };
        let Some(lk) = c.link_key(link) else {
            return false;
        };
        let ours = c
            .links
            .get(lk)
            .is_some_and(|l| l.persistent && !l.app_closed);
        if !ours || c.outgoing.is_none() || c.app_closed || c.sessions_lost >= SESSION_RESTORES {
            return false;
        }
        let unsettled = c
            .engine
            .as_mut()
            .map(|e| e.take_unsettled_sent(link))
            .unwrap_or_default();
        c.by_engine.remove(&link);
        if let Some(l) = c.links.get_mut(lk) {
            l.engine = None;
        }
        // On a new session; or, when the connection is closing too, after the reconnect.
        c.attach_link(lk);
        let lh = LinkHandle {
            conn: at.conn,
            link: lk,
        };
        for id in unsettled {
            let mut ctx = self.ctx_conn(at.conn);
            ctx.link = Some(lh);
            ctx.tracker = Some(Tracker {
                conn: at.conn,
                gen: at.gen,
                link: lh,
                id,
            });
            self.push(EventType::InDoubt, ctx);
        }
        true
    }

    /// The link detached (by the peer, or with its session): what we sent on it and the peer
    /// never settled is in doubt (unless the handler closed the link), then error (if any),
    /// closing (if the peer started it), closed.
    fn on_link_closed(&mut self, at: At, link: LinkId, error: Option<Error>) {
        let Some(lh) = self.link_handle(at.conn, link) else {
            return;
        };
        let mut ctx = self.ctx_conn(at.conn);
        ctx.link = Some(lh);
        let Some(c) = self.conns.get_mut(at.conn) else {
            return;
        };
        // Taken in any case: a link that is over can learn no more outcomes.
        let unsettled = c
            .engine
            .as_mut()
            .map(|e| e.take_unsettled_sent(link))
            .unwrap_or_default();
        // Detached by the peer: the link is over (not re-attached later).
        let app_closed = c
            .links
            .get_mut(lh.link)
            .is_some_and(|l| std::mem::replace(&mut l.app_closed, true));
        if !app_closed {
            for id in unsettled {
                let mut c2 = ctx.clone();
                c2.tracker = Some(Tracker {
                    conn: at.conn,
                    gen: at.gen,
                    link: lh,
                    id,
                });
                self.push(EventType::InDoubt, c2);
            }
        }
        ctx.error = error;
        if ctx.error.is_some() {
            self.push(EventType::LinkError, ctx.clone());
        }
        if !app_closed {
            self.push(EventType::LinkClosing, ctx.clone());
        }
        self.push(EventType::LinkClosed, ctx);
    }

    /// A message arrived: decoded and handed to the handler; released if the application closed
    /// the link, rejected if it cannot be decoded.
    fn on_delivery(&mut self, at: At, d: IncomingDelivery) {
        let Some(lh) = self.link_handle(at.conn, d.link) else {
            return;
        };
        let Some(c) = self.conns.get_mut(at.conn) else {
            return;
        };
        let closed = c.links.get(lh.link).is_none_or(|l| l.app_closed);
        let Some(e) = c.engine.as_mut() else { return };
        let refusal = if closed {
            DeliveryState::released()
        } else {
            // Decoded straight into a spare box (no allocation, no message-sized moves).
            let mut message = match self.spare_messages.pop() {
                Some(SpareMessage(b)) => b,
                None => Box::default(),
            };
            match message.decode_in_place(d.payload) {
                Ok(()) => {
                    let delivery = delivery_handle(at, lh, d.delivery);
                    let record = EventRecord::received(delivery, message, d.state);
                    self.push_record(EventType::Message, record);
                    return;
                }
                Err(err) => {
                    // Still empty: back to the spares.
                    self.spare_messages.push(SpareMessage(message));
                    let error = Error::new(condition::DECODE_ERROR, err.to_string());
                    DeliveryState::Rejected(Rejected { error: Some(error) })
                }
            }
        };
        if !d.settled {
            // The delivery is the engine's own and unsettled: the disposition cannot fail.
            let _ = e.disposition(d.delivery, Some(refusal), true);
        }
    }

    /// Takes back the box of a message the handler did not take: emptied (releasing the
    /// message's bytes) and kept for a later delivery, up to [`SPARE_MESSAGES`] boxes.
    pub(super) fn recycle_message(&mut self, mut b: Box<ReceivedMessage>) {
        if self.spare_messages.len() < SPARE_MESSAGES {
            b.clear();
            self.spare_messages.push(SpareMessage(b));
        }
    }

    /// The peer updated or settled a delivery: outcomes for a sender (auto-settled when the
    /// handler options say so), settled for a receiver.
    fn on_disposition(
        &mut self,
        at: At,
        delivery: DeliveryId,
        state: Option<DeliveryState>,
        settled: bool,
    ) {
        let Some(lh) = self.link_handle(at.conn, delivery.link) else {
            return;
        };
        let role = self
            .conns
            .get(at.conn)
            .and_then(|c| c.links.get(lh.link))
            .map(|l| l.role);
        match role {
            Some(Role::Sender) => {
                let terminal = state.as_ref().is_some_and(DeliveryState::is_terminal);
                // `on_rejected` carries the rejection's error; `on_settled` does not.
                let (kind, rejection) = match &state {
                    Some(DeliveryState::Accepted(_)) => (Some(EventType::Accepted), None),
                    Some(DeliveryState::Rejected(r)) => {
                        (Some(EventType::Rejected), r.error.clone())
                    }
                    Some(DeliveryState::Released(_) | DeliveryState::Modified(_)) => {
                        (Some(EventType::Released), None)
                    }
                    _ => (None, None),
                };
                let tracker = Tracker {
                    conn: at.conn,
                    gen: at.gen,
                    link: lh,
                    id: delivery,
                };
                let record = EventRecord::sent(tracker, state);
                let settled_record = settled.then(|| record.clone());
                if let Some(kind) = kind {
                    let mut outcome = record;
                    outcome.set_error(rejection);
                    self.push_record(kind, outcome);
                }
                if let Some(record) = settled_record {
                    self.push_record(EventType::Settled, record);
                    return;
                }
                if self.handler_options.auto_settle && terminal {
                    if let Some(e) = self.conns.get_mut(at.conn).and_then(|c| c.engine.as_mut()) {
                        // An outcome for a delivery the engine tracks: settling cannot fail.
                        let _ = e.settle(delivery);
                    }
                }
            }
            Some(Role::Receiver) if settled => {
                let mut ctx = self.ctx_conn(at.conn);
                ctx.link = Some(lh);
                ctx.delivery = Some(delivery_handle(at, lh, delivery));
                ctx.state = state;
                self.push(EventType::Settled, ctx);
            }
            _ => {}
        }
    }

    /// The engine failed: a transport error for the handler (unless the peer closed or the
    /// transport simply ended); failed authentication stops reconnecting.
    fn on_engine_error(&mut self, at: At, err: ConnectionError) {
        let no_mechanism = matches!(err.kind, ErrorKind::Sasl(SaslError::NoMechanism(_)));
        // Retrying cannot make wrong credentials or mechanisms right.
        if err.is_auth_failure() || no_mechanism {
            if let Some(c) = self.conns.get_mut(at.conn) {
                c.auth_failed = true;
            }
        }
        if matches!(err.kind, ErrorKind::RemoteClose | ErrorKind::TransportEnded) {
            return;
        }
        let mut ctx = self.ctx_conn(at.conn);
        ctx.transport_error = Some(TransportError::from(&err));
        ctx.error = Some(err.error);
        self.push(EventType::TransportError, ctx);
    }
}

fn delivery_handle(at: At, link: LinkHandle, id: DeliveryId) -> DeliveryHandle {
    DeliveryHandle {
        conn: at.conn,
        gen: at.gen,
        link,
        id,
    }
}
