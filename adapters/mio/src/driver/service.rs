//! What the [`Driver`] does for a ready socket: finish a connect (then the next address, or
//! TLS), accept, read (with the TLS handshake's completion reported before the first bytes),
//! flush, drain a closed connection, and give up on connections past their deadline.

use std::cmp::Reverse;
use std::io;
use std::time::{Duration, Instant};

use amqp_adapter::amqp_engine::messaging::{
    IoCore, TransportError, TransportErrorKind, TransportId,
};
use amqp_adapter::trace::Tracer;
use amqp_adapter::{tls, FLUSH_GRACE, READ_CHUNK, TLS_HANDSHAKE_TIMEOUT, WRITE_HIGH_WATER};
use bytes::BytesMut;
use mio::{Interest, Token};

use super::{Driver, Slot, READS_PER_TURN};
use crate::conn::{io_error, Conn, Phase, ReadStep, Side};

/// Most connections taken from a listener's backlog per turn.
const ACCEPTS_PER_TURN: usize = 256;
/// A read buffer with less room than this left is replaced by a fresh one.
const READ_MIN: usize = READ_CHUNK / 4;

/// Makes sure the read buffer has room for a read: zeroing a fresh one costs about one byte
/// per byte read, not a whole [`READ_CHUNK`] per read.
fn room(buf: &mut BytesMut) {
    if buf.len() < READ_MIN {
        *buf = BytesMut::zeroed(READ_CHUNK);
    }
}

impl Driver {
    /// Serves a connection the poll reported ready (or left with data to read).
    pub(super) fn service<C: IoCore>(&mut self, token: Token, core: &mut C) {
        let Some(Slot::Conn(c)) = self.slots.get_mut(&token) else {
            return;
        };
        match c.phase {
            Phase::Connecting { .. } => {
                if !(c.readable || c.writable) || !self.finish_connect(token, core) {
                    return;
                }
            }
            Phase::Draining => return self.drain(token),
            Phase::Handshaking | Phase::Open => {}
        }
        if self.flush_or_fail(token, core) {
            self.read(token, core);
            // Reading may have produced TLS records to send (handshake, alerts).
            self.flush_or_fail(token, core);
        }
    }

    /// A connecting socket became ready: true when it is up (and now open or handshaking).
    fn finish_connect<C: IoCore>(&mut self, token: Token, core: &mut C) -> bool {
        let Some(Slot::Conn(c)) = self.slots.get_mut(&token) else {
            return false;
        };
        let Side::Client(t) = c.side else {
            return false;
        };
        let failed = match c.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match c.stream.peer_addr() {
                Ok(_) => None,
                // Not connected yet: a spurious wake-up.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotConnected | io::ErrorKind::WouldBlock
                    ) =>
                {
                    c.readable = false;
                    c.writable = false;
                    return false;
                }
                Err(e) => Some(e),
            },
        };
        let now = Instant::now();
        let Phase::Connecting { addr, rest, tls } =
            std::mem::replace(&mut c.phase, Phase::Handshaking)
        else {
            return false;
        };
        if let Some(e) = failed {
            self.slots.remove(&token);
            self.transports.remove(&t);
            let mut rest = rest;
            let mut last = io_error(&e, format_args!("connect to {addr}"));
            while let Some(next) = rest.pop_front() {
                match self.start_connect(t, next, &mut rest, &tls) {
                    Ok(()) => return false,
                    Err(e) => last = io_error(&e, format_args!("connect to {next}")),
                }
            }
            core.handle_connect_failed(t, last, now);
            return false;
        }
        if !core.is_transport_live(t) {
            // Closed while connecting: let the socket go.
            self.slots.remove(&token);
            self.transports.remove(&t);
            return false;
        }
        if let Err(e) = c.stream.set_nodelay(true) {
            tracing::debug!(target: "amqp", "TCP_NODELAY on {addr}: {e}");
        }
        c.readable = true;
        c.writable = true;
        c.tracer = self.trace.then(Tracer::new);
        let Some(tc) = tls else {
            c.phase = Phase::Open;
            let info = c.info.clone();
            core.handle_connected(t, info, now);
            return true;
        };
        let tls_error = |e: &dyn std::fmt::Display| {
            TransportError::new(TransportErrorKind::Tls, format!("{addr}: {e}"))
        };
        let client = tls::client_config(&tc.options)
            .and_then(|cfg| Ok((cfg, tls::server_name(&tc.server_name)?)))
            .map_err(|e| tls_error(&e))
            .and_then(|(cfg, name)| {
                rustls::ClientConnection::new(cfg, name).map_err(|e| tls_error(&e))
            });
        match client {
            Ok(client) => {
                c.tls = Some(client.into());
                c.info.encrypted = true;
                if tc.options.client_cert.is_some() {
                    // We present a certificate: SASL EXTERNAL becomes usable.
                    c.info.peer_identity = Some("client-certificate".into());
                }
                let at = now + TLS_HANDSHAKE_TIMEOUT;
                c.deadline = Some(at);
                self.deadlines.push(Reverse((at, token)));
                true
            }
            Err(e) => {
                self.slots.remove(&token);
                self.transports.remove(&t);
                core.handle_connect_failed(t, e, now);
                false
            }
        }
    }

    /// Takes connections from a listener's backlog.
    pub(super) fn accept<C: IoCore>(&mut self, token: Token, core: &mut C) {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(Slot::Listener(l)) = self.slots.get(&token) else {
                return;
            };
            let (acceptor, tls) = (l.acceptor, l.tls.clone());
            let (mut stream, peer) = match l.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(target: "amqp", "accept on {acceptor:?} failed: {e}");
                    return;
                }
            };
            let permit = match &l.limit {
                None => None,
                Some(limit) => match limit.try_admit() {
                    Some(p) => Some(p),
                    // Past max_connections: closed here, before any TLS, SASL or AMQP work
                    // (and unseen by the core).
                    None => continue,
                },
            };
            let now = Instant::now();
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(target: "amqp", "TCP_NODELAY for {peer}: {e}");
            }
            let conn_token = self.token();
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                conn_token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!(target: "amqp", "cannot poll a connection from {peer}: {e}");
                continue;
            }
            let mut conn = Conn::new(stream, Side::Server(acceptor, None), Phase::Open, peer);
            conn.permit = permit;
            conn.readable = true;
            conn.writable = true;
            match tls {
                Some(cfg) => match rustls::ServerConnection::new(cfg) {
                    Ok(server) => {
                        conn.tls = Some(server.into());
                        conn.info.encrypted = true;
                        conn.phase = Phase::Handshaking;
                        let at = now + TLS_HANDSHAKE_TIMEOUT;
                        conn.deadline = Some(at);
                        self.deadlines.push(Reverse((at, conn_token)));
                    }
                    Err(e) => {
                        tracing::warn!(target: "amqp", "TLS with {peer}: {e}");
                        continue;
                    }
                },
                None => match core.handle_accepted(acceptor, conn.info.clone(), now) {
                    Some(t) => {
                        conn.side = Side::Server(acceptor, Some(t));
                        conn.tracer = self.trace.then(Tracer::new);
                        self.transports.insert(t, conn_token);
                    }
                    None => continue,
                },
            }
            self.slots.insert(conn_token, Slot::Conn(Box::new(conn)));
            // Bytes may have arrived before it was registered.
            self.hot.push(conn_token);
        }
        // More may be waiting: come back next turn.
        self.hot.push(token);
    }

    /// A connect's time is up: fails it, unless its transport is up (or gone) by now.
    fn connect_timed_out<C: IoCore>(&mut self, t: TransportId, limit: Duration, core: &mut C) {
        let connecting = match self.transports.get(&t).and_then(|k| self.slots.get(k)) {
            Some(Slot::Conn(c)) => matches!(c.phase, Phase::Connecting { .. } | Phase::Handshaking),
            _ => self.resolving_connects.contains_key(&t),
        };
        if !connecting {
            return;
        }
        self.resolving_connects.remove(&t);
        if let Some(token) = self.transports.remove(&t) {
            self.slots.remove(&token);
        }
        let reason = TransportError::new(
            TransportErrorKind::Timeout,
            format!("no connection within {} ms", limit.as_millis()),
        );
        core.handle_connect_failed(t, reason, Instant::now());
    }

    /// Reads what a connection has (up to a budget), feeding the core.
    fn read<C: IoCore>(&mut self, token: Token, core: &mut C) {
        for _ in 0..READS_PER_TURN {
            let Some(Slot::Conn(c)) = self.slots.get_mut(&token) else {
                return;
            };
            if !c.readable || c.queued > WRITE_HIGH_WATER {
                return;
            }
            room(&mut self.buf);
            match c.read_socket(&mut self.buf[..]) {
                Ok(ReadStep::Plain(n)) => {
                    let data = self.buf.split_to(n);
                    if let Some(tracer) = c.tracer.as_mut() {
                        tracer.incoming(&data);
                    }
                    if let Some(t) = c.transport() {
                        core.handle_read_owned(t, data, Instant::now());
                    }
                }
                Ok(ReadStep::Tls) => {
                    if !self.tls_progress(token, core) {
                        return;
                    }
                }
                Ok(ReadStep::Eof) => {
                    if self.tls_progress(token, core) {
                        self.lost(token, None, core);
                    }
                    return;
                }
                Ok(ReadStep::Blocked) => return,
                Err(e) => return self.lost(token, Some(e), core),
            }
        }
        if let Some(Slot::Conn(c)) = self.slots.get(&token) {
            if c.readable {
                self.hot.push(token);
            }
        }
    }

    /// After TLS records were processed: reports a finished handshake, then hands the
    /// decrypted bytes to the core. False when the connection is gone.
    fn tls_progress<C: IoCore>(&mut self, token: Token, core: &mut C) -> bool {
        let Some(Slot::Conn(c)) = self.slots.get_mut(&token) else {
            return false;
        };
        if matches!(c.phase, Phase::Handshaking) && c.handshake_done() {
            c.deadline = None;
            c.phase = Phase::Open;
            let now = Instant::now();
            match c.side {
                Side::Client(t) => core.handle_connected(t, c.info.clone(), now),
                Side::Server(acceptor, _) => {
                    c.info.peer_identity = c
                        .tls
                        .as_ref()
                        .and_then(|s| s.peer_certificates())
                        .and_then(|certs| certs.first())
                        .and_then(tls::certificate_identity);
                    match core.handle_accepted(acceptor, c.info.clone(), now) {
                        Some(t) => {
                            c.side = Side::Server(acceptor, Some(t));
                            c.tracer = self.trace.then(Tracer::new);
                            self.transports.insert(t, token);
                        }
                        None => {
                            self.slots.remove(&token);
                            return false;
                        }
                    }
                }
            }
        }
        loop {
            let Some(Slot::Conn(c)) = self.slots.get_mut(&token) else {
                return false;
            };
            room(&mut self.buf);
            match c.plaintext(&mut self.buf[..]) {
                Ok(0) => return true,
                Ok(n) => {
                    let data = self.buf.split_to(n);
                    if let Some(tracer) = c.tracer.as_mut() {
                        tracer.incoming(&data);
                    }
                    if let (Some(t), Phase::Open) = (c.transport(), &c.phase) {
                        core.handle_read_owned(t, data, Instant::now());
                    }
                }
                Err(e) => {
                    self.lost(token, Some(io_error(&e, "TLS read")), core);
                    return false;
                }
            }
        }
    }

    /// The connection failed or the peer closed it: tells the core, unless it had closed
    /// the transport itself.
    fn lost<C: IoCore>(&mut self, token: Token, reason: Option<TransportError>, core: &mut C) {
        let Some(Slot::Conn(c)) = self.slots.remove(&token) else {
            return;
        };
        let now = Instant::now();
        match (&c.phase, c.side) {
            (Phase::Handshaking, Side::Client(t)) => {
                self.transports.remove(&t);
                let reason = reason.unwrap_or_else(|| {
                    TransportError::new(
                        TransportErrorKind::Tls,
                        "connection closed during the TLS handshake",
                    )
                });
                core.handle_connect_failed(t, reason, now);
            }
            (Phase::Handshaking, Side::Server(acceptor, _)) => {
                let peer = c.info.peer_addr.as_deref().unwrap_or("?");
                let (kind, why) = reason.map_or_else(
                    || (TransportErrorKind::Tls, "closed".to_string()),
                    |r| (r.kind(), r.to_string()),
                );
                let error = TransportError::new(kind, format!("TLS handshake with {peer}: {why}"));
                core.handle_accept_failed(acceptor, error, now);
            }
            (Phase::Open, _) if !c.closing => {
                if let Some(t) = c.transport() {
                    self.transports.remove(&t);
                    core.handle_disconnected(t, reason, now);
                }
            }
            _ => {}
        }
    }

    /// Flushes a connection's queue; a closed one that is flushed starts draining. False
    /// when the connection failed (the core is told) or is gone.
    pub(super) fn flush_or_fail<C: IoCore>(&mut self, token: Token, core: &mut C) -> bool {
        match self.flush_step(token) {
            Ok(alive) => alive,
            Err(e) => {
                self.lost(token, Some(io_error(&e, "write")), core);
                false
            }
        }
    }

    /// [`flush_or_fail`](Self::flush_or_fail) once the core is gone.
    pub(super) fn flush_or_drop(&mut self, token: Token) {
        if self.flush_step(token).is_err() {
            self.slots.remove(&token);
        }
    }

    fn flush_step(&mut self, token: Token) -> io::Result<bool> {
        let Some(Slot::Conn(c)) = self.slots.get_mut(&token) else {
            return Ok(false);
        };
        if matches!(c.phase, Phase::Connecting { .. } | Phase::Draining) {
            return Ok(true);
        }
        c.flush()?;
        if c.closing && c.flushed() {
            c.shut_down_write();
            c.readable = true;
            let at = Instant::now() + FLUSH_GRACE;
            c.deadline = Some(at);
            self.deadlines.push(Reverse((at, token)));
            self.drain(token);
        }
        Ok(true)
    }

    /// Reads and discards what a closed connection still receives, until the peer closes.
    pub(super) fn drain(&mut self, token: Token) {
        for _ in 0..READS_PER_TURN {
            let Some(Slot::Conn(c)) = self.slots.get_mut(&token) else {
                return;
            };
            if !matches!(c.phase, Phase::Draining) || !c.readable {
                return;
            }
            match c.read_socket(&mut self.buf) {
                Ok(ReadStep::Plain(_)) => {}
                Ok(ReadStep::Tls) => while matches!(c.plaintext(&mut self.buf), Ok(n) if n > 0) {},
                Ok(ReadStep::Blocked) => return,
                Ok(ReadStep::Eof) | Err(_) => {
                    self.slots.remove(&token);
                    return;
                }
            }
        }
        self.hot.push(token);
    }

    /// Handshakes, drains and connects past their deadline.
    pub(super) fn expire_deadlines<C: IoCore>(&mut self, core: &mut C) {
        let now = Instant::now();
        while let Some(&Reverse((at, seq))) = self.connect_deadlines.peek() {
            if at > now {
                break;
            }
            self.connect_deadlines.pop();
            if let Some((t, limit)) = self.connect_limits.remove(&seq) {
                self.connect_timed_out(t, limit, core);
            }
        }
        while let Some(&Reverse((at, token))) = self.deadlines.peek() {
            if at > now {
                return;
            }
            self.deadlines.pop();
            let Some(Slot::Conn(c)) = self.slots.get(&token) else {
                continue;
            };
            if c.deadline != Some(at) {
                continue;
            }
            match c.phase {
                Phase::Handshaking => {
                    let reason = TransportError::new(
                        TransportErrorKind::Timeout,
                        format!("TLS handshake timed out after {TLS_HANDSHAKE_TIMEOUT:?}"),
                    );
                    self.lost(token, Some(reason), core);
                }
                Phase::Draining => {
                    self.slots.remove(&token);
                }
                Phase::Connecting { .. } | Phase::Open => {}
            }
        }
    }
}
