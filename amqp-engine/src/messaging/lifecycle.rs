//! A connection's transports: connect attempts, reconnect and failover, accepted transports,
//! and the end of a transport.

use std::collections::HashMap;

use amqp_proto::definitions::Role;
use amqp_proto::{Symbol, Value};

use super::error::TransportError;
use super::handler::EventType;
use super::handles::*;
use super::io::*;
use super::managed::*;
use super::reactor::*;
use crate::config::{ConnectionConfig, SaslMode, Side};
use crate::connection::{Connection, EndpointState, SessionConfig};
use crate::ids::{DeliveryId, Key, LinkId, Slab};
use crate::sasl::{SaslClientConfig, SaslServerConfig};

impl Reactor {
    pub(super) fn next_attempt(&mut self, ck: Key) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        let Some(o) = c.outgoing.as_mut() else { return };
        let started = *o.process_started.get_or_insert(now);
        let next = if c.auth_failed {
            None
        } else {
            o.failover
                .next_attempt_within(now.saturating_duration_since(started))
        };
        match next {
            Some((index, delay)) => {
                o.url_index = index;
                if delay.is_zero() {
                    self.start_attempt(ck);
                } else {
                    let t = self.add_timer(now + delay, TimerKind::Reconnect(ck));
                    if let Some(c) = self.conns.get_mut(ck) {
                        c.reconnect_timer = Some(t);
                    }
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
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        c.gen += 1;
        c.engine = None;
        c.session = None;
        c.by_engine.clear();
        let gen = c.gen;
        let Some(o) = c.outgoing.as_ref() else { return };
        let Some(url) = o.failover.urls().get(o.url_index).cloned() else {
            return;
        };
        let tls = url.is_tls().then(|| TlsConnect {
            server_name: o.options.effective_sni(&url).to_string(),
            options: o.options.tls.clone().unwrap_or_default(),
        });
        self.io.push_back(IoRequest::Connect {
            transport: TransportId { conn: ck, gen },
            host: url.host().to_string(),
            port: url.port(),
            tls,
        });
    }

    pub(super) fn attach_link(&mut self, ck: Key, lk: Key) {
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        let (Some(e), Some(sid)) = (c.engine.as_mut(), c.session) else {
            return;
        };
        let Some(l) = c.links.get_mut(lk) else { return };
        if l.app_closed || l.engine.is_some() {
            return;
        }
        let r = match l.role {
            Role::Sender => e.attach_sender(sid, l.config.clone()),
            Role::Receiver => e.attach_receiver(sid, l.config.clone()),
        };
        if let Ok(lid) = r {
            l.engine = Some(lid);
            if l.role == Role::Receiver && l.prefetch > 0 {
                let _ = e.flow(lid, l.prefetch, false);
            }
            c.by_engine.insert(lid, lk);
            c.dirty = true;
        }
    }

    pub(super) fn new_client_engine(
        &mut self,
        ck: Key,
        info: &TransportInfo,
    ) -> Option<Connection> {
        let nonce = self.random_bytes(24);
        let id = self.id.clone();
        let now = self.now;
        let c = self.conns.get(ck)?;
        let o = c.outgoing.as_ref()?;
        let url = o.failover.urls().get(o.url_index)?;
        let opts = &o.options;
        let mut cfg = ConnectionConfig::new(opts.container_id.clone().unwrap_or(id));
        cfg.hostname = Some(opts.effective_virtual_host(url).to_string());
        if let Some(mfs) = opts.max_frame_size {
            cfg.max_frame_size = mfs;
        }
        cfg.idle_timeout = opts.effective_heartbeat();
        cfg.offered_capabilities = opts
            .offered_capabilities
            .iter()
            .map(|s| Symbol::from(s.as_str()))
            .collect();
        cfg.desired_capabilities = opts
            .desired_capabilities
            .iter()
            .map(|s| Symbol::from(s.as_str()))
            .collect();
        if !opts.properties.is_empty() {
            cfg.properties = Some(
                opts.properties
                    .iter()
                    .map(|(k, v)| (Symbol::from(k.as_str()), Value::string(v.as_str())))
                    .collect(),
            );
        }
        cfg.transport_encrypted = info.encrypted;
        cfg.transport_identity = info.peer_identity.clone();
        if opts.sasl_enabled {
            let mut s = SaslClientConfig {
                user: opts.effective_user(url).map(str::to_owned),
                password: opts.effective_password(url).map(str::to_owned),
                allow_insecure_mechs: opts.allow_insecure_mechs,
                nonce,
                ..SaslClientConfig::default()
            };
            if let Some(m) = &opts.allowed_mechs {
                s.set_allowed_mechs(m);
            }
            cfg.sasl = SaslMode::Client(s);
        }
        Some(Connection::new(Side::Client, cfg, now))
    }

    pub(super) fn on_connected(&mut self, t: TransportId, info: TransportInfo) {
        let Some(c) = self.conns.get(t.conn) else {
            return;
        };
        if c.gen != t.gen || c.engine.is_some() {
            return;
        }
        let Some(mut engine) = self.new_client_engine(t.conn, &info) else {
            return;
        };
        let _ = engine.open();
        let session = engine.begin_session(SessionConfig::default()).ok();
        let Some(c) = self.conns.get_mut(t.conn) else {
            return;
        };
        c.engine = Some(engine);
        c.session = session;
        c.dirty = true;
        c.close_sent = false;
        let links = c.links.keys();
        for lk in links {
            if let Some(c) = self.conns.get_mut(t.conn) {
                if let Some(l) = c.links.get_mut(lk) {
                    l.engine = None;
                }
            }
            self.attach_link(t.conn, lk);
        }
    }

    pub(super) fn on_accepted(
        &mut self,
        acceptor: AcceptorHandle,
        info: TransportInfo,
    ) -> Option<TransportId> {
        let (_, lo, _) = self.acceptors.get(acceptor.0)?.clone();
        let mut cfg = ConnectionConfig::new(self.id.clone());
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
        let ck = self.conns.insert(Conn {
            gen: 1,
            engine: Some(engine),
            acceptor: Some(acceptor),
            outgoing: None,
            session: None,
            links: Slab::default(),
            by_engine: HashMap::new(),
            app_closed: false,
            dirty: true,
            reconnect_timer: None,
            auth_failed: false,
            last_error: None,
            close_sent: false,
        });
        Some(TransportId { conn: ck, gen: 1 })
    }

    pub(super) fn link_handle(&self, ck: Key, lid: LinkId) -> Option<LinkHandle> {
        let c = self.conns.get(ck)?;
        c.by_engine
            .get(&lid)
            .map(|&lk| LinkHandle { conn: ck, link: lk })
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
        let in_doubt: Vec<DeliveryId> = c
            .engine
            .as_ref()
            .map(Connection::unsettled_sent)
            .unwrap_or_default();
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
        c.dirty = false;
        let gen = c.gen;
        if let Some(e) = c.engine.as_mut() {
            let data = e.poll_transmit_bytes();
            if !data.is_empty() {
                self.io.push_back(IoRequest::Write {
                    transport: TransportId { conn: ck, gen },
                    data,
                });
            }
        }
    }

    pub(super) fn valid(&self, t: TransportId) -> bool {
        self.conns.get(t.conn).is_some_and(|c| c.gen == t.gen)
    }
}
