//! The poll loop: a [`Driver`] owns a `mio::Poll`, the sockets and listeners, and carries out a
//! sans-IO core's ([`IoCore`]) requests in the calling thread. One [`turn`](Driver::turn)
//! carries out what the core asked for, waits for readiness or the next deadline (the core's
//! `poll_timeout`, and the driver's own TLS-handshake and drain deadlines kept in a heap), and
//! feeds the core what happened.
//!
//! Writes are coalesced: everything the core produced for a connection in one turn goes out in
//! one vectored write. Back-pressure: a connection with more than
//! [`WRITE_HIGH_WATER`](amqp_adapter::WRITE_HIGH_WATER) bytes
//! waiting to be written is not read from, so a slow peer slows what makes us write to it.
//! DNS: host names that are not addresses are resolved on a short-lived thread (the system
//! resolver blocks), which wakes the loop with the result.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_adapter::amqp_engine::messaging::{
    AcceptorHandle, IoCore, IoRequest, TlsConnect, TransportError, TransportErrorKind, TransportId,
};
use amqp_adapter::{tls, ConnectionLimit, FLUSH_GRACE};
use bytes::BytesMut;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::conn::{io_error, Conn, Phase, Side};

mod service;

const WAKE: Token = Token(0);
/// Reads from one connection per turn before others get theirs.
const READS_PER_TURN: usize = 4;

enum Resolved {
    Connect(TransportId, io::Result<Vec<SocketAddr>>),
    Listen(AcceptorHandle, io::Result<Vec<SocketAddr>>),
}

struct Listening {
    listener: TcpListener,
    acceptor: AcceptorHandle,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Its `max_connections`, if it has one: checked at accept.
    limit: Option<ConnectionLimit>,
}

/// What a listener needs besides its address: its TLS configuration and connection limit.
type ListenSetup = (Option<Arc<rustls::ServerConfig>>, Option<ConnectionLimit>);

enum Slot {
    Conn(Box<Conn>),
    Listener(Listening),
}

/// What a driver needs to run a core on a `mio::Poll` in the calling thread.
pub(crate) struct Driver {
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    next_token: usize,
    slots: HashMap<Token, Slot>,
    transports: HashMap<TransportId, Token>,
    listeners: HashMap<AcceptorHandle, Token>,
    /// Listens waiting for DNS, with their TLS configuration.
    resolving_listens: HashMap<AcceptorHandle, ListenSetup>,
    /// Connects waiting for DNS.
    resolving_connects: HashMap<TransportId, Option<TlsConnect>>,
    dns_tx: mpsc::Sender<Resolved>,
    dns_rx: mpsc::Receiver<Resolved>,
    /// Handshake and drain deadlines (checked against the connection's own on expiry).
    deadlines: BinaryHeap<Reverse<(Instant, Token)>>,
    /// Connect time-outs (resolving, connecting and the TLS handshake together): deadlines
    /// by sequence number, and each one's transport and limit. One whose transport is up by
    /// then is dropped.
    connect_deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    connect_limits: HashMap<u64, (TransportId, Duration)>,
    connect_seq: u64,
    /// Connections with data left to read after their turn's budget (a token may appear
    /// twice: serving a connection again is harmless).
    hot: Vec<Token>,
    /// This turn's ready tokens, and the connections written to (reused buffers).
    ready: Vec<Token>,
    dirty: Vec<Token>,
    /// Reads go into the unused tail of this buffer and are split off it, so the core keeps
    /// them without a copy ([`IoCore::handle_read_owned`]); a fresh one is made when little
    /// room is left.
    buf: BytesMut,
    trace: bool,
}

impl Driver {
    pub(crate) fn new() -> io::Result<Driver> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (dns_tx, dns_rx) = mpsc::channel();
        Ok(Driver {
            poll,
            events: Events::with_capacity(256),
            waker,
            next_token: 1,
            slots: HashMap::new(),
            transports: HashMap::new(),
            listeners: HashMap::new(),
            resolving_listens: HashMap::new(),
            resolving_connects: HashMap::new(),
            dns_tx,
            dns_rx,
            deadlines: BinaryHeap::new(),
            connect_deadlines: BinaryHeap::new(),
            connect_limits: HashMap::new(),
            connect_seq: 0,
            hot: Vec::new(),
            ready: Vec::new(),
            dirty: Vec::new(),
            buf: BytesMut::new(),
            trace: amqp_adapter::trace::enabled(),
        })
    }

    /// Wakes the loop from another thread (its poll returns).
    pub(crate) fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// Installs the wake function (for injectors) and starts the core.
    pub(crate) fn start<C: IoCore>(&mut self, core: &mut C) {
        let waker = self.waker.clone();
        core.set_waker(Arc::new(move || {
            if let Err(e) = waker.wake() {
                tracing::warn!(target: "amqp", "cannot wake the mio loop: {e}");
            }
        }));
        core.start(Instant::now());
    }

    /// Runs a started core until it is done, then lets the last writes go out.
    pub(crate) fn run<C: IoCore>(&mut self, core: &mut C) -> io::Result<()> {
        while !self.turn(core, None)? {}
        self.finish();
        Ok(())
    }

    /// One turn of the loop, waiting at most until `until`; true when the core is done.
    pub(crate) fn turn<C: IoCore>(
        &mut self,
        core: &mut C,
        until: Option<Instant>,
    ) -> io::Result<bool> {
        self.carry_out_requests(core);
        if core.is_done() {
            return Ok(true);
        }
        let now = Instant::now();
        let mut wake_at = core.poll_timeout();
        for d in [
            self.deadlines.peek().map(|Reverse((t, _))| *t),
            self.connect_deadlines.peek().map(|Reverse((t, ..))| *t),
            until,
        ]
        .into_iter()
        .flatten()
        {
            wake_at = Some(wake_at.map_or(d, |w| w.min(d)));
        }
        let timeout = if self.hot.is_empty() {
            wake_at.map(|t| t.saturating_duration_since(now))
        } else {
            Some(Duration::ZERO)
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.append(&mut self.hot);
        let mut woken = false;
        for ev in self.events.iter() {
            let token = ev.token();
            if token == WAKE {
                woken = true;
                continue;
            }
            if let Some(Slot::Conn(c)) = self.slots.get_mut(&token) {
                // Errors and hang-ups surface through the next read or write.
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    c.readable = true;
                }
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    c.writable = true;
                }
            }
            ready.push(token);
        }
        if woken {
            self.take_resolutions(core);
        }
        for &token in &ready {
            match self.slots.get(&token) {
                Some(Slot::Listener(_)) => self.accept(token, core),
                Some(Slot::Conn(_)) => self.service(token, core),
                None => {}
            }
        }
        self.ready = ready;
        self.expire_deadlines(core);
        let now = Instant::now();
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        Ok(false)
    }

    /// After the core is done: listeners closed, the last writes (the close frame answering a
    /// peer's close, TLS close_notify) flushed and the connections drained, for at most
    /// [`FLUSH_GRACE`].
    pub(crate) fn finish(&mut self) {
        self.slots.retain(|_, s| matches!(s, Slot::Conn(_)));
        self.listeners.clear();
        let end = Instant::now() + FLUSH_GRACE;
        let tokens: Vec<Token> = self.slots.keys().copied().collect();
        for token in tokens {
            if let Some(Slot::Conn(c)) = self.slots.get_mut(&token) {
                match c.phase {
                    Phase::Open | Phase::Draining => c.closing = true,
                    Phase::Connecting { .. } | Phase::Handshaking => {
                        self.slots.remove(&token);
                    }
                }
            }
        }
        while !self.slots.is_empty() && Instant::now() < end {
            let tokens: Vec<Token> = self.slots.keys().copied().collect();
            for token in &tokens {
                self.flush_or_drop(*token);
                self.drain(*token);
            }
            let left = end.saturating_duration_since(Instant::now());
            if self
                .poll
                .poll(&mut self.events, Some(left.min(Duration::from_millis(50))))
                .is_err()
            {
                break;
            }
            for ev in self.events.iter() {
                if let Some(Slot::Conn(c)) = self.slots.get_mut(&ev.token()) {
                    c.readable = true;
                    c.writable = true;
                }
            }
        }
        self.slots.clear();
        self.transports.clear();
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token)
    }

    fn carry_out_requests<C: IoCore>(&mut self, core: &mut C) {
        let mut dirty = std::mem::take(&mut self.dirty);
        while let Some(req) = core.poll_io() {
            match req {
                IoRequest::Connect {
                    transport,
                    host,
                    port,
                    tls,
                    timeout,
                } => {
                    if let Some(limit) = timeout {
                        self.connect_seq += 1;
                        let at = Instant::now() + limit;
                        self.connect_deadlines.push(Reverse((at, self.connect_seq)));
                        self.connect_limits
                            .insert(self.connect_seq, (transport, limit));
                    }
                    match self.resolve(&host, port, move |r| Resolved::Connect(transport, r)) {
                        Some(r) => self.connect(transport, r, tls, core),
                        None => {
                            self.resolving_connects.insert(transport, tls);
                        }
                    }
                }
                IoRequest::Write { transport, data } => {
                    if let Some(&token) = self.transports.get(&transport) {
                        if let Some(Slot::Conn(c)) = self.slots.get_mut(&token) {
                            if c.queued == 0 && !c.closing {
                                // Its first bytes this turn: flush it after the requests.
                                dirty.push(token);
                            }
                            c.queue(data);
                        }
                    }
                }
                IoRequest::Close { transport } => {
                    self.resolving_connects.remove(&transport);
                    if let Some(token) = self.transports.remove(&transport) {
                        if let Some(Slot::Conn(c)) = self.slots.get_mut(&token) {
                            match c.phase {
                                Phase::Open => {
                                    c.closing = true;
                                    dirty.push(token);
                                }
                                _ => {
                                    self.slots.remove(&token);
                                }
                            }
                        }
                    }
                }
                IoRequest::Listen {
                    acceptor,
                    host,
                    port,
                    tls,
                    max_connections,
                } => {
                    let server_tls = match tls.as_ref().map(tls::server_config) {
                        Some(Ok(c)) => Some(c),
                        Some(Err(e)) => {
                            core.handle_listening(
                                acceptor,
                                Err(TransportError::new(
                                    TransportErrorKind::Tls,
                                    format!("TLS configuration: {e}"),
                                )),
                                Instant::now(),
                            );
                            continue;
                        }
                        None => None,
                    };
                    let setup = (server_tls, max_connections.map(ConnectionLimit::new));
                    match self.resolve(&host, port, move |r| Resolved::Listen(acceptor, r)) {
                        Some(r) => self.listen(acceptor, r, setup, core),
                        None => {
                            self.resolving_listens.insert(acceptor, setup);
                        }
                    }
                }
                IoRequest::StopListening { acceptor } => {
                    self.resolving_listens.remove(&acceptor);
                    if let Some(token) = self.listeners.remove(&acceptor) {
                        self.slots.remove(&token);
                    }
                }
                _ => {}
            }
        }
        for &token in &dirty {
            self.flush_or_fail(token, core);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Addresses for `host:port` now when `host` is an address; otherwise `None`, and a
    /// thread resolves it and wakes the loop with `wrap(result)`.
    fn resolve(
        &self,
        host: &str,
        port: u16,
        wrap: impl FnOnce(io::Result<Vec<SocketAddr>>) -> Resolved + Send + 'static,
    ) -> Option<io::Result<Vec<SocketAddr>>> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(Ok(vec![SocketAddr::new(ip, port)]));
        }
        let (tx, waker, host) = (self.dns_tx.clone(), self.waker.clone(), host.to_string());
        let spawned = std::thread::Builder::new()
            .name("amqp-mio-dns".into())
            .spawn(move || {
                let r = (host.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>());
                if tx.send(wrap(r)).is_ok() {
                    let _ = waker.wake();
                }
            });
        match spawned {
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    }

    fn take_resolutions<C: IoCore>(&mut self, core: &mut C) {
        while let Ok(r) = self.dns_rx.try_recv() {
            match r {
                Resolved::Connect(t, r) => {
                    if let Some(tls) = self.resolving_connects.remove(&t) {
                        self.connect(t, r, tls, core);
                    }
                }
                Resolved::Listen(a, r) => {
                    if let Some(setup) = self.resolving_listens.remove(&a) {
                        self.listen(a, r, setup, core);
                    }
                }
            }
        }
    }

    fn connect<C: IoCore>(
        &mut self,
        t: TransportId,
        addrs: io::Result<Vec<SocketAddr>>,
        tls: Option<TlsConnect>,
        core: &mut C,
    ) {
        let now = Instant::now();
        let mut rest: VecDeque<SocketAddr> = match addrs {
            Ok(a) => a.into(),
            Err(e) => return core.handle_connect_failed(t, dns_error(&e), now),
        };
        let mut last = TransportError::new(TransportErrorKind::Dns, "no address");
        while let Some(addr) = rest.pop_front() {
            match self.start_connect(t, addr, &mut rest, &tls) {
                Ok(()) => return,
                Err(e) => last = io_error(&e, format_args!("connect to {addr}")),
            }
        }
        core.handle_connect_failed(t, last, now);
    }

    /// Starts a non-blocking connect to `addr` and registers it.
    fn start_connect(
        &mut self,
        t: TransportId,
        addr: SocketAddr,
        rest: &mut VecDeque<SocketAddr>,
        tls: &Option<TlsConnect>,
    ) -> io::Result<()> {
        let mut stream = TcpStream::connect(addr)?;
        let token = self.token();
        self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let phase = Phase::Connecting {
            addr,
            rest: std::mem::take(rest),
            tls: tls.clone(),
        };
        let conn = Conn::new(stream, Side::Client(t), phase, addr);
        self.slots.insert(token, Slot::Conn(Box::new(conn)));
        self.transports.insert(t, token);
        Ok(())
    }

    fn listen<C: IoCore>(
        &mut self,
        acceptor: AcceptorHandle,
        addrs: io::Result<Vec<SocketAddr>>,
        (tls, limit): ListenSetup,
        core: &mut C,
    ) {
        let r = addrs.map_err(|e| dns_error(&e)).and_then(|a| {
            let addr = a
                .into_iter()
                .next()
                .ok_or_else(|| TransportError::new(TransportErrorKind::Dns, "no address"))?;
            let mut bind = || -> io::Result<u16> {
                let mut listener = TcpListener::from_std(amqp_adapter::bind_tcp_listener(addr)?);
                let port = listener.local_addr()?.port();
                let token = self.token();
                self.poll
                    .registry()
                    .register(&mut listener, token, Interest::READABLE)?;
                let (tls, limit) = (tls.clone(), limit.clone());
                self.slots.insert(
                    token,
                    Slot::Listener(Listening {
                        listener,
                        acceptor,
                        tls,
                        limit,
                    }),
                );
                self.listeners.insert(acceptor, token);
                Ok(port)
            };
            bind().map_err(|e| io_error(&e, format_args!("listen on {addr}")))
        });
        core.handle_listening(acceptor, r, Instant::now());
    }
}

fn dns_error(e: &io::Error) -> TransportError {
    TransportError::new(TransportErrorKind::Dns, format!("resolve: {e}"))
}
