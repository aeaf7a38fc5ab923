//! One managed connection: the engine `Connection` of the current transport, the reconnect and
//! failover state, the link records re-attached after a reconnect, and the in-doubt
//! bookkeeping.

use rustc_hash::FxHashMap;
use std::time::{Duration, Instant};

use amqp_proto::definitions::{Error, Role};
use amqp_proto::{Symbol, Value};
use bytes::Bytes;

use super::backlog::Backlog;
use super::error::{MessagingError, TransportError};
use super::handles::{AcceptorHandle, TimerHandle, TransportId};
use super::io::{Admission, IoRequest, TlsConnect, TransportInfo};
use super::options::ConnectOptions;
use super::reconnect::Failover;
use crate::config::{ConnectionConfig, SaslMode};
use crate::connection::{Connection, EndpointState, LinkConfig, SessionConfig};
use crate::ids::{DeliveryId, Key, LinkId, SessionId, Slab};
use crate::sasl::SaslClientConfig;

/// How many sessions the peer may end on one transport of an outgoing connection before its
/// links are no longer attached again on a new session (they are closed instead): a peer that
/// ends every session it is given cannot make us begin sessions forever.
pub(super) const SESSION_RESTORES: u32 = 8;

/// The outgoing side of a managed connection: what to connect to and how to reconnect.
pub(super) struct Outgoing {
    pub(super) options: ConnectOptions,
    pub(super) failover: Failover,
    pub(super) url_index: usize,
    pub(super) process_started: Option<Instant>,
}

/// A link the application (or the peer) opened; it keeps its key across reconnects.
pub(super) struct LinkRec {
    pub(super) role: Role,
    pub(super) config: LinkConfig,
    pub(super) engine: Option<LinkId>,
    pub(super) app_closed: bool,
    /// The handler closed it (not the peer): messages still queued for it are released.
    pub(super) handler_closed: bool,
    pub(super) prefetch: u32,
    /// Created by the application: re-attached after reconnect.
    pub(super) persistent: bool,
    /// The error to close (or, for a link the peer is attaching, refuse) the link with.
    pub(super) close_error: Option<Error>,
}

/// One logical connection, sans-IO: the engine [`Connection`] of its current transport (a
/// generation number tells transports apart), the reconnect and failover state of an outgoing
/// connection, the link records re-attached after a reconnect, and what is in doubt when a
/// transport ends. The [`ContainerContext`](super::ContainerContext) owns many and turns their engine events
/// into events, which the [`SansIoContainer`](super::SansIoContainer) dispatches to its handler and the
/// [`ClientCore`](super::ClientCore) reports as [`ClientEvent`](super::ClientEvent)s.
pub(super) struct ManagedConnection {
    /// The current transport's generation: I/O results for older ones are ignored.
    pub(super) gen: u32,
    pub(super) engine: Option<Connection>,
    pub(super) acceptor: Option<AcceptorHandle>,
    /// An accepted connection's place in its listener's count.
    pub(super) admission: Option<Admission>,
    pub(super) outgoing: Option<Outgoing>,
    pub(super) session: Option<SessionId>,
    pub(super) links: Slab<LinkRec>,
    /// Looked up for every event of a link; keyed by the engine's own ids (nothing a peer
    /// chooses), so a fast hash is safe.
    pub(super) by_engine: FxHashMap<LinkId, Key>,
    pub(super) app_closed: bool,
    pub(super) dirty: bool,
    /// In its container's list of touched connections (see [`Conns`](super::conns::Conns)).
    pub(super) listed: bool,
    pub(super) reconnect_timer: Option<TimerHandle>,
    pub(super) auth_failed: bool,
    pub(super) close_sent: bool,
    /// Why the last transport ended: reported when reconnecting gives up.
    pub(super) last_error: Option<TransportError>,
    /// Output handed to the driver and not yet written.
    pub(super) backlog: Backlog,
    /// Sessions of ours the peer ended on the current transport.
    pub(super) sessions_lost: u32,
}

impl ManagedConnection {
    fn new(gen: u32, engine: Option<Connection>, outgoing: Option<Outgoing>) -> Self {
        ManagedConnection {
            gen,
            dirty: engine.is_some(),
            listed: false,
            engine,
            acceptor: None,
            admission: None,
            outgoing,
            session: None,
            links: Slab::default(),
            by_engine: FxHashMap::default(),
            app_closed: false,
            reconnect_timer: None,
            auth_failed: false,
            close_sent: false,
            last_error: None,
            backlog: Backlog::default(),
            sessions_lost: 0,
        }
    }

    /// A connection to make: no transport yet; [`next_attempt`](Self::next_attempt) says when.
    pub(super) fn outgoing(options: ConnectOptions, failover: Failover) -> Self {
        let outgoing = Outgoing {
            options,
            failover,
            url_index: 0,
            process_started: None,
        };
        Self::new(0, None, Some(outgoing))
    }

    /// A connection a listener accepted, on its one transport (generation 1).
    pub(super) fn accepted(
        engine: Connection,
        acceptor: AcceptorHandle,
        admission: Admission,
    ) -> Self {
        let mut c = Self::new(1, Some(engine), None);
        c.acceptor = Some(acceptor);
        c.admission = Some(admission);
        c
    }

    /// An accepted connection past its listener's `max_connections`.
    pub(super) fn over_limit(&self) -> bool {
        self.admission.as_ref().is_some_and(|a| a.over_limit)
    }

    /// The delay before the next connect attempt (choosing its URL), or `None` to give up:
    /// reconnect is off or exhausted, authentication failed, or this is not an outgoing
    /// connection.
    pub(super) fn next_attempt(&mut self, now: Instant) -> Option<Duration> {
        let o = self.outgoing.as_mut()?;
        let started = *o.process_started.get_or_insert(now);
        if self.auth_failed {
            return None;
        }
        let (index, delay) = o
            .failover
            .next_attempt_within(now.saturating_duration_since(started))?;
        o.url_index = index;
        Some(delay)
    }

    /// Starts a new transport for an outgoing connection, forgetting the last one; returns the
    /// connect request for the driver. `key` is this connection's key in the reactor.
    pub(super) fn begin_attempt(&mut self, key: Key) -> Option<IoRequest> {
        self.gen += 1;
        self.engine = None;
        self.session = None;
        self.by_engine.clear();
        let o = self.outgoing.as_ref()?;
        let url = o.failover.urls().get(o.url_index)?;
        let tls = url.is_tls().then(|| TlsConnect {
            server_name: o.options.effective_sni(url).to_string(),
            options: o.options.tls.clone().unwrap_or_default(),
        });
        Some(IoRequest::Connect {
            transport: TransportId {
                conn: key,
                gen: self.gen,
            },
            host: url.host().to_string(),
            port: url.port(),
            tls,
            timeout: o.options.connect_timeout,
        })
    }

    /// The engine configuration for the current attempt of an outgoing connection.
    pub(super) fn client_config(
        &self,
        container_id: &str,
        info: &TransportInfo,
        nonce: Vec<u8>,
    ) -> Option<ConnectionConfig> {
        let o = self.outgoing.as_ref()?;
        let url = o.failover.urls().get(o.url_index)?;
        let opts = &o.options;
        let id = opts.container_id.as_deref().unwrap_or(container_id);
        let mut cfg = ConnectionConfig::new(id);
        cfg.hostname = Some(opts.effective_virtual_host(url).to_string());
        if let Some(mfs) = opts.max_frame_size {
            cfg.max_frame_size = mfs;
        }
        cfg.idle_timeout = opts.effective_heartbeat();
        let symbols = |v: &[String]| v.iter().map(|s| Symbol::from(s.as_str())).collect();
        cfg.offered_capabilities = symbols(&opts.offered_capabilities);
        cfg.desired_capabilities = symbols(&opts.desired_capabilities);
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
                service: opts.sasl_service.clone(),
                ..SaslClientConfig::default()
            };
            if let Some(m) = &opts.allowed_mechs {
                s.set_allowed_mechs(m);
            }
            cfg.sasl = SaslMode::Client(s);
        }
        Some(cfg)
    }

    /// The transport came up with this engine: open it, begin the session and re-attach every
    /// link the application has not closed.
    pub(super) fn install_engine(&mut self, mut engine: Connection) {
        // A fresh engine accepts open and begin; a failure shows as the engine's own error.
        let _ = engine.open();
        self.session = engine.begin_session(SessionConfig::default()).ok();
        self.engine = Some(engine);
        self.dirty = true;
        self.close_sent = false;
        self.sessions_lost = 0;
        for lk in self.links.keys() {
            if let Some(l) = self.links.get_mut(lk) {
                l.engine = None;
            }
            self.attach_link(lk);
        }
    }

    /// Adds a link record and attaches it if the transport is up.
    pub(super) fn add_link(&mut self, link: LinkRec) -> Key {
        let key = self.links.insert(link);
        self.attach_link(key);
        key
    }

    /// Attaches a link on the current transport (a no-op before it is up, or once closed).
    /// On an outgoing connection whose session the peer ended (its links went with it, each
    /// reported closed), a new session is begun first.
    pub(super) fn attach_link(&mut self, lk: Key) {
        let Some(e) = self.engine.as_mut() else {
            return;
        };
        let ours = |s: Option<(EndpointState, EndpointState)>| {
            s.is_some_and(|s| s.0 == EndpointState::Active && s.1 != EndpointState::Closed)
        };
        if self.outgoing.is_some() && !self.session.is_some_and(|sid| ours(e.session_state(sid))) {
            // Refused once the connection is closing or failed: then nothing is attached.
            self.session = e.begin_session(SessionConfig::default()).ok();
        }
        let Some(sid) = self.session else {
            return;
        };
        let Some(l) = self.links.get_mut(lk) else {
            return;
        };
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
                // Just attached: the flow cannot be refused.
                let _ = e.flow(lid, l.prefetch, false);
            }
            self.by_engine.insert(lid, lk);
            self.dirty = true;
        }
    }

    /// Detaches (closes) a link that is attached on our side, with an optional error.
    pub(super) fn detach_link(&mut self, lk: Key, error: Option<Error>) {
        let lid = self.links.get(lk).and_then(|l| l.engine);
        let (Some(e), Some(lid)) = (self.engine.as_mut(), lid) else {
            return;
        };
        if e.link_state(lid)
            .is_some_and(|s| s.0 == EndpointState::Active)
        {
            // Attached on our side: detach is allowed.
            let _ = e.detach(lid, true, error);
        }
        self.dirty = true;
    }

    /// Closes the engine's connection at `now` (the transport ends once the peer answers, or
    /// when the close deadline counted from `now` passes).
    pub(super) fn close_engine(&mut self, error: Option<Error>, now: Instant) {
        if let Some(e) = self.engine.as_mut().filter(|e| !e.is_finished()) {
            // The engine knows the time of its last input: on a quiet connection that may be
            // long ago, and the close deadline would count from then. Tell it the time first
            // (anything due by now, such as a heartbeat, is done as well).
            e.handle_timeout(now);
            // Not finished: close is allowed (a second close is a no-op).
            let _ = e.close(error);
            self.dirty = true;
        }
    }

    /// The key of the link record of an engine link.
    pub(super) fn link_key(&self, lid: LinkId) -> Option<Key> {
        self.by_engine.get(&lid).copied()
    }

    /// True if the link is open on our side: attached on the current transport and not closed
    /// by the application or the peer.
    pub(super) fn is_link_open(&self, lk: Key) -> bool {
        let Some(l) = self.links.get(lk) else {
            return false;
        };
        let (Some(e), Some(lid)) = (self.engine.as_ref(), l.engine) else {
            return false;
        };
        !l.app_closed
            && e.link_state(lid)
                .is_some_and(|s| s.0 == EndpointState::Active)
    }

    /// The engine and engine link of an open link, for an operation on it.
    pub(super) fn engine_link(
        &mut self,
        lk: Key,
    ) -> Result<(&mut Connection, LinkId), MessagingError> {
        let l = self.links.get(lk).ok_or(MessagingError::LinkClosed)?;
        if l.app_closed {
            return Err(MessagingError::LinkClosed);
        }
        let lid = l
            .engine
            .ok_or(MessagingError::NotReady("link not attached"))?;
        let e = self
            .engine
            .as_mut()
            .ok_or(MessagingError::NotReady("not connected"))?;
        self.dirty = true;
        Ok((e, lid))
    }

    /// The sent deliveries whose outcome is unknown (unsettled when the transport ended).
    pub(super) fn in_doubt(&self) -> Vec<DeliveryId> {
        self.engine
            .as_ref()
            .map(Connection::unsettled_sent)
            .unwrap_or_default()
    }

    /// Everything the engine has to write.
    pub(super) fn take_output(&mut self) -> Option<Bytes> {
        self.dirty = false;
        let data = self.engine.as_mut()?.poll_transmit_bytes();
        (!data.is_empty()).then_some(data)
    }
}
