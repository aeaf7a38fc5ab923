//! Engine events of one connection, translated into handler events.

use amqp_proto::definitions::{condition, Error, Role};
use amqp_proto::message::Message;
use amqp_proto::messaging::{DeliveryState, Rejected};

use super::error::TransportError;
use super::handler::EventType;
use super::handles::*;
use super::managed::*;
use super::reactor::*;
use crate::connection::{EndpointState, LinkConfig};
use crate::event::Event as EngineEvent;
use crate::ids::Key;

impl Reactor {
    /// Translates the engine's events of one connection into handler events.
    pub(super) fn process_engine(&mut self, ck: Key) {
        loop {
            let Some(c) = self.conns.get_mut(ck) else {
                return;
            };
            let gen = c.gen;
            let Some(e) = c.engine.as_mut() else { return };
            let Some(ev) = e.poll_event() else { return };
            c.dirty = true;
            let conn = ConnectionHandle(ck);
            let mut ctx = self.ctx_conn(ck);
            match ev {
                EngineEvent::Authenticated { .. } => {}
                EngineEvent::ConnectionOpened => {
                    let Some(c) = self.conns.get_mut(ck) else {
                        return;
                    };
                    let local_open = c
                        .engine
                        .as_ref()
                        .is_some_and(|e| e.state().0 != EndpointState::Uninit);
                    if let Some(o) = c.outgoing.as_mut() {
                        o.failover.reset();
                        o.process_started = None;
                    }
                    if local_open {
                        self.push(EventType::ConnectionOpened, ctx);
                    } else {
                        self.push(EventType::ConnectionOpening, ctx);
                    }
                }
                EngineEvent::ConnectionClosed { error } => {
                    let Some(c) = self.conns.get_mut(ck) else {
                        return;
                    };
                    let forced = error
                        .as_ref()
                        .is_some_and(|e| e.condition == condition::CONNECTION_FORCED);
                    let reconnecting = forced
                        && c.outgoing
                            .as_ref()
                            .is_some_and(|o| !o.failover.urls().is_empty())
                        && !c.app_closed
                        && !self.stopping;
                    if error
                        .as_ref()
                        .is_some_and(|e| e.condition == condition::UNAUTHORIZED_ACCESS)
                    {
                        c.auth_failed = true;
                    }
                    let app_closed = c.app_closed;
                    ctx.error = error.clone();
                    if reconnecting {
                        // amqp:connection:forced: treat as a lost transport; reconnect follows.
                        continue;
                    }
                    if error.is_some() {
                        self.push(EventType::ConnectionError, ctx.clone());
                    }
                    if !app_closed {
                        self.push(EventType::ConnectionClosing, ctx.clone());
                    }
                    if let Some(c) = self.conns.get_mut(ck) {
                        c.app_closed = true; // the peer closed: no reconnect
                    }
                    self.push(EventType::ConnectionClosed, ctx);
                }
                EngineEvent::SessionOpened {
                    session,
                    remote_initiated,
                } => {
                    ctx.session = Some(SessionHandle {
                        conn: ck,
                        gen,
                        session,
                    });
                    self.push(
                        if remote_initiated {
                            EventType::SessionOpening
                        } else {
                            EventType::SessionOpened
                        },
                        ctx,
                    );
                }
                EngineEvent::SessionEnded { session, error } => {
                    ctx.session = Some(SessionHandle {
                        conn: ck,
                        gen,
                        session,
                    });
                    ctx.error = error.clone();
                    if error.is_some() {
                        self.push(EventType::SessionError, ctx.clone());
                    }
                    self.push(EventType::SessionClosed, ctx);
                }
                EngineEvent::SessionError { session, error } => {
                    ctx.session = Some(SessionHandle {
                        conn: ck,
                        gen,
                        session,
                    });
                    ctx.error = Some(error);
                    self.push(EventType::SessionError, ctx);
                }
                EngineEvent::LinkOpened {
                    link,
                    remote_initiated,
                } => {
                    let lh = if remote_initiated {
                        let Some(c) = self.conns.get_mut(ck) else {
                            return;
                        };
                        let Some(e) = c.engine.as_ref() else { return };
                        let role = e.link_role(link).unwrap_or(Role::Sender);
                        let name = e.link_name(link).unwrap_or_default().to_string();
                        let prefetch = self.handler_options.prefetch;
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
                        LinkHandle { conn: ck, link: lk }
                    } else {
                        match self.link_handle(ck, link) {
                            Some(h) => h,
                            None => continue,
                        }
                    };
                    ctx.link = Some(lh);
                    self.push(
                        if remote_initiated {
                            EventType::LinkOpening
                        } else {
                            EventType::LinkOpened
                        },
                        ctx,
                    );
                }
                EngineEvent::LinkClosed { link, error, .. } => {
                    let Some(lh) = self.link_handle(ck, link) else {
                        continue;
                    };
                    ctx.link = Some(lh);
                    ctx.error = error.clone();
                    if error.is_some() {
                        self.push(EventType::LinkError, ctx.clone());
                    }
                    let app_closed = self
                        .conns
                        .get(ck)
                        .and_then(|c| c.links.get(lh.link))
                        .is_some_and(|l| l.app_closed);
                    if !app_closed {
                        self.push(EventType::LinkClosing, ctx.clone());
                    }
                    if let Some(c) = self.conns.get_mut(ck) {
                        if let Some(l) = c.links.get_mut(lh.link) {
                            // Detached by the peer: the link is over (not re-attached later).
                            l.app_closed = true;
                        }
                    }
                    self.push(EventType::LinkClosed, ctx);
                }
                EngineEvent::LinkError { link, error } => {
                    let Some(lh) = self.link_handle(ck, link) else {
                        continue;
                    };
                    ctx.link = Some(lh);
                    ctx.error = Some(error);
                    self.push(EventType::LinkError, ctx);
                }
                EngineEvent::LinkFlow { link, credit, .. } => {
                    let Some(lh) = self.link_handle(ck, link) else {
                        continue;
                    };
                    if credit > 0 {
                        ctx.link = Some(lh);
                        self.push(EventType::Sendable, ctx);
                    }
                }
                EngineEvent::LinkDrained { link } => {
                    let Some(lh) = self.link_handle(ck, link) else {
                        continue;
                    };
                    ctx.link = Some(lh);
                    self.push(EventType::Drained, ctx);
                }
                EngineEvent::Delivery(d) => {
                    let Some(lh) = self.link_handle(ck, d.link) else {
                        continue;
                    };
                    let closed = self
                        .conns
                        .get(ck)
                        .and_then(|c| c.links.get(lh.link))
                        .is_none_or(|l| l.app_closed);
                    let Some(c) = self.conns.get_mut(ck) else {
                        return;
                    };
                    let Some(e) = c.engine.as_mut() else { return };
                    if closed {
                        // Deliveries arriving on a link the application closed are released.
                        if !d.settled {
                            let _ =
                                e.disposition(d.delivery, Some(DeliveryState::released()), true);
                        }
                        continue;
                    }
                    match Message::decode(&d.payload) {
                        Ok(m) => {
                            ctx.link = Some(lh);
                            ctx.delivery = Some(DeliveryHandle {
                                conn: ck,
                                gen,
                                link: lh,
                                id: d.delivery,
                            });
                            ctx.message = Some(Box::new(m));
                            ctx.state = d.state;
                            if d.settled {
                                // Nothing to accept.
                                ctx.tracker = None;
                            }
                            self.push(EventType::Message, ctx);
                        }
                        Err(err) => {
                            if !d.settled {
                                let error = Error::new(condition::DECODE_ERROR, err.to_string());
                                let _ = e.disposition(
                                    d.delivery,
                                    Some(DeliveryState::Rejected(Rejected { error: Some(error) })),
                                    true,
                                );
                            }
                        }
                    }
                }
                EngineEvent::Disposition {
                    delivery,
                    state,
                    settled,
                } => {
                    let Some(lh) = self.link_handle(ck, delivery.link) else {
                        continue;
                    };
                    let role = self
                        .conns
                        .get(ck)
                        .and_then(|c| c.links.get(lh.link))
                        .map(|l| l.role);
                    ctx.link = Some(lh);
                    ctx.state = state.clone();
                    match role {
                        Some(Role::Sender) => {
                            let tracker = Tracker {
                                conn: ck,
                                gen,
                                link: lh,
                                id: delivery,
                            };
                            ctx.tracker = Some(tracker);
                            match &state {
                                Some(DeliveryState::Accepted(_)) => {
                                    self.push(EventType::Accepted, ctx.clone())
                                }
                                Some(DeliveryState::Rejected(r)) => {
                                    let mut c2 = ctx.clone();
                                    c2.error = r.error.clone();
                                    self.push(EventType::Rejected, c2)
                                }
                                Some(DeliveryState::Released(_))
                                | Some(DeliveryState::Modified(_)) => {
                                    self.push(EventType::Released, ctx.clone())
                                }
                                _ => {}
                            }
                            if settled {
                                self.push(EventType::Settled, ctx);
                            } else if self.handler_options.auto_settle
                                && state.as_ref().is_some_and(DeliveryState::is_terminal)
                            {
                                if let Some(e) =
                                    self.conns.get_mut(ck).and_then(|c| c.engine.as_mut())
                                {
                                    let _ = e.settle(delivery);
                                }
                            }
                        }
                        Some(Role::Receiver) if settled => {
                            ctx.delivery = Some(DeliveryHandle {
                                conn: ck,
                                gen,
                                link: lh,
                                id: delivery,
                            });
                            self.push(EventType::Settled, ctx);
                        }
                        _ => {}
                    }
                }
                EngineEvent::Aborted { delivery } => {
                    let Some(lh) = self.link_handle(ck, delivery.link) else {
                        continue;
                    };
                    ctx.link = Some(lh);
                    ctx.delivery = Some(DeliveryHandle {
                        conn: ck,
                        gen,
                        link: lh,
                        id: delivery,
                    });
                    self.push(EventType::Aborted, ctx);
                }
                EngineEvent::Error(err) => {
                    let no_mechanism = matches!(
                        err.kind,
                        crate::error::ErrorKind::Sasl(crate::sasl::SaslError::NoMechanism(_))
                    );
                    // Retrying cannot make wrong credentials or mechanisms right.
                    if err.is_auth_failure() || no_mechanism {
                        if let Some(c) = self.conns.get_mut(ck) {
                            c.auth_failed = true;
                        }
                    }
                    if !matches!(
                        err.kind,
                        crate::error::ErrorKind::RemoteClose
                            | crate::error::ErrorKind::TransportEnded
                    ) {
                        ctx.transport_error = Some(TransportError::from(&err));
                        ctx.error = Some(err.error.clone());
                        self.push(EventType::TransportError, ctx);
                    }
                }
                EngineEvent::Finished => {
                    self.transport_done(ck, None);
                    return;
                }
            }
            let _ = conn;
        }
    }
}
