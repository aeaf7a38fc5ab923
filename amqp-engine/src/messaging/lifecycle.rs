//! A connection's transports: connect attempts, reconnect and failover, accepted transports,
//! and the end of a transport.

use super::error::TransportError;
use super::handler::EventType;
use super::handles::{AcceptorHandle, LinkHandle, Tracker, TransportId};
use super::io::{IoRequest, TransportInfo};
use super::managed::ManagedConnection;
use super::reactor::{ContainerContext, TimerKind};
use crate::config::{ConnectionConfig, SaslMode, Side};
use crate::connection::{Connection, EndpointState};
use crate::ids::{Key, LinkId};
use crate::sasl::SaslServerConfig;

impl ContainerContext {
    /// Schedules (or starts) the next connect attempt of an outgoing connection, or gives up.
    pub(super) fn next_attempt(&mut self, ck: Key) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        match c.next_attempt(now) {
            Some(delay) if delay.is_zero() => self.start_attempt(ck),
            Some(delay) => {
                let t = self.add_timer(now + delay, TimerKind::Reconnect(ck));
                if let Some(c) = self.conns.get_mut(ck) {
                    c.reconnect_timer = Some(t);
                }
            }
            None => {
                // Give up: the connection is over.
                let mut ctx = self.ctx_conn(ck);
                // The error is the last attempt's: with reconnect off, the only one.
                ctx.transport_error = self.conns.remove(ck).and_then(|c| c.last_error);
                self.push(EventType::ConnectionClosed, ctx);
            }
        }
    }

    pub(super) fn start_attempt(&mut self, ck: Key) {
        if let Some(req) = self.conns.get_mut(ck).and_then(|c| c.begin_attempt(ck)) {
            self.io.push_back(req);
        }
    }

    pub(super) fn on_connected(&mut self, t: TransportId, info: TransportInfo) {
        if !self.valid(t) || self.conns.get(t.conn).is_some_and(|c| c.engine.is_some()) {
            return;
        }
        let nonce = self.random_bytes(24);
        let (id, now) = (self.id.as_str(), self.now);
        let Some(c) = self.conns.get_mut(t.conn) else {
            return;
        };
        let Some(mut cfg) = c.client_config(id, &info, nonce) else {
            return;
        };
        if let SaslMode::Client(s) = &mut cfg.sasl {
            s.extra_mechanisms.clone_from(&self.client_mechanisms);
        }
        c.install_engine(Connection::new(Side::Client, cfg, now));
    }

    pub(super) fn on_accepted(
        &mut self,
        acceptor: AcceptorHandle,
        info: TransportInfo,
    ) -> Option<TransportId> {
        let a = self.acceptors.get(acceptor.0)?;
        let admission = a.admit();
        let lo = a.options.clone();
        let mut cfg = ConnectionConfig::new(self.id.clone());
        cfg.handshake_timeout = lo.handshake_timeout;
        cfg.transport_encrypted = info.encrypted;
        cfg.transport_identity = info.peer_identity.clone();
        cfg.idle_timeout = lo.idle_timeout;
        if let Some(m) = lo.max_frame_size {
            cfg.max_frame_size = m;
        }
        let mut sasl = lo.sasl.clone().unwrap_or_else(SaslServerConfig::anonymous);
        sasl.nonce = self.random_bytes(24);
        cfg.sasl = SaslMode::Server(sasl);
        let engine = Connection::new(Side::Server, cfg, self.now);
        let ck = self.conns.insert(Box::new(ManagedConnection::accepted(
            engine, acceptor, admission,
        )));
        Some(TransportId { conn: ck, gen: 1 })
    }

    pub(super) fn link_handle(&self, ck: Key, lid: LinkId) -> Option<LinkHandle> {
        let link = self.conns.get(ck)?.link_key(lid)?;
        Some(LinkHandle { conn: ck, link })
    }

    /// The transport of a connection is over: flush, close, and reconnect or forget it.
    pub(super) fn transport_done(&mut self, ck: Key, reason: Option<TransportError>) {
        self.flush_conn(ck);
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        let gen = c.gen;
        if !c.close_sent {
            c.close_sent = true;
            self.io.push_back(IoRequest::Close {
                transport: TransportId { conn: ck, gen },
            });
        }
        let mut ctx = self.ctx_conn(ck);
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        let clean = c.engine.as_ref().is_some_and(|e| {
            e.state() == (EndpointState::Closed, EndpointState::Closed) && e.error().is_none()
        });
        let in_doubt = c.in_doubt();
        let reconnect = c.outgoing.is_some() && !c.app_closed && !self.stopping && !c.auth_failed;
        ctx.transport_error =
            reason.or_else(|| c.engine.as_ref().and_then(|e| e.error()).map(Into::into));
        c.last_error.clone_from(&ctx.transport_error);
        if !clean {
            self.push(EventType::Disconnected, ctx.clone());
            for id in in_doubt {
                if let Some(lh) = self.link_handle(ck, id.link) {
                    let mut c2 = ctx.clone();
                    c2.link = Some(lh);
                    c2.tracker = Some(Tracker {
                        conn: ck,
                        gen,
                        link: lh,
                        id,
                    });
                    self.push(EventType::InDoubt, c2);
                }
            }
        }
        if reconnect {
            if let Some(c) = self.conns.get_mut(ck) {
                // This transport is over: a second report of its end (a driver's reader and
                // writer may both see it fail) is stale, not another failure that would
                // schedule a second attempt beside the next one.
                c.gen += 1;
                c.engine = None;
                c.session = None;
                c.by_engine.clear();
                // Links the peer created, or the app closed, do not come back.
                for k in c.links.keys() {
                    if c.links
                        .get(k)
                        .is_some_and(|l| !l.persistent || l.app_closed)
                    {
                        c.links.remove(k);
                    } else if let Some(l) = c.links.get_mut(k) {
                        l.engine = None;
                    }
                }
            }
            self.next_attempt(ck);
        } else {
            if !clean && self.conns.get(ck).is_some_and(|c| c.outgoing.is_some()) {
                // An outgoing connection that will not come back.
                self.push(EventType::ConnectionClosed, ctx);
            }
            self.conns.remove(ck);
        }
    }

    pub(super) fn flush_conn(&mut self, ck: Key) {
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        if let Some(data) = c.take_output() {
            let transport = TransportId {
                conn: ck,
                gen: c.gen,
            };
            self.output_handed(ck, data.len());
            self.io.push_back(IoRequest::Write { transport, data });
        }
    }

    pub(super) fn valid(&self, t: TransportId) -> bool {
        self.conns.get(t.conn).is_some_and(|c| c.gen == t.gen)
    }
}
