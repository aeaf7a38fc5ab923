//! The driver on tokio, over real loopback sockets: its one re-armed timer, the connect
//! timeout, a listener's failed TLS handshake reaching the handler, and a listener's
//! `max_connections`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_adapter::{BlockOn, BoxFuture, BoxStream, BoxTimer, Listener, Runtime};
use amqp_tokio::amqp_proto::message::Message;
use amqp_tokio::{
    ConnectOptions, ConnectionHandle, Container, Event, ListenOptions, MessagingHandler, PemSource,
    TlsListen, Tokio, TransportErrorKind,
};
use common::pki::pki;

/// Tokio, counting the sleeps and timers the driver asks for.
#[derive(Clone, Default)]
struct Counting {
    inner: Tokio,
    sleeps: Arc<AtomicUsize>,
    timers: Arc<AtomicUsize>,
}

impl Runtime for Counting {
    fn spawn(&self, fut: BoxFuture<()>) {
        self.inner.spawn(fut);
    }
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        self.sleeps.fetch_add(1, Ordering::Relaxed);
        self.inner.sleep_until(deadline)
    }
    fn timer(&self, deadline: Instant) -> BoxTimer {
        self.timers.fetch_add(1, Ordering::Relaxed);
        self.inner.timer(deadline)
    }
    fn connect(&self, addr: std::net::SocketAddr) -> BoxFuture<std::io::Result<BoxStream>> {
        self.inner.connect(addr)
    }
    fn bind(&self, addr: std::net::SocketAddr) -> BoxFuture<std::io::Result<Box<dyn Listener>>> {
        self.inner.bind(addr)
    }
    fn resolve(
        &self,
        host: String,
        port: u16,
    ) -> BoxFuture<std::io::Result<Vec<std::net::SocketAddr>>> {
        self.inner.resolve(host, port)
    }
}

impl BlockOn for Counting {
    fn block_on<F: std::future::Future + Send + 'static>(&self, fut: F) -> F::Output
    where
        F::Output: Send + 'static,
    {
        self.inner.block_on(fut)
    }
}

/// Sends `n` messages to itself through a listener, one at a time.
struct PingPong {
    n: usize,
    sent: usize,
    received: usize,
}

impl MessagingHandler for PingPong {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:0").unwrap();
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let port = {
            let a = e.acceptor().unwrap();
            e.container().acceptor_port(a)
        }
        .unwrap();
        let conn = e
            .container_mut()
            .connect(&format!("amqp://127.0.0.1:{port}"))
            .unwrap();
        e.container_mut().create_sender(conn, "q").unwrap();
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        if self.sent == self.received && self.sent < self.n {
            self.sent += 1;
            e.send(&Message::new(format!("m{}", self.sent))).unwrap();
        }
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        self.received += 1;
        if self.received == self.n {
            e.container_mut().stop();
        }
    }
    fn on_accepted(&mut self, e: &mut Event<'_>) {
        if self.sent < self.n {
            self.sent += 1;
            e.send(&Message::new(format!("m{}", self.sent))).unwrap();
        }
    }
}

/// The driver makes one timer and re-arms it, however many turns its loop takes (it used to
/// box a new sleep on every turn).
#[test]
fn the_driver_re_arms_one_timer_instead_of_a_sleep_per_turn() {
    let rt = Counting::default();
    let (sleeps, timers) = (rt.sleeps.clone(), rt.timers.clone());
    let handler = amqp_adapter::Container::with_runtime(
        PingPong {
            n: 200,
            sent: 0,
            received: 0,
        },
        "timer-test",
        rt,
    )
    .run();
    let (sleeps, timers) = (
        sleeps.load(Ordering::Relaxed),
        timers.load(Ordering::Relaxed),
    );
    println!("200 round trips: {timers} timer(s) made, {sleeps} sleeps");
    assert_eq!(handler.received, 200);
    assert_eq!(timers, 1, "the driver made {timers} timers");
    // Only the wait for the writers' last flush at shutdown sleeps (one per writer that
    // exits meanwhile); the loop's turns, 200 round trips' worth, made one sleep each.
    assert!(sleeps < 10, "the driver made {sleeps} sleeps");
}

/// Records the transport errors it sees, and stops at the first one or after `limit`.
struct Watch {
    /// What to do at start (connect, listen).
    start: Box<dyn FnMut(&mut Event<'_>) + Send>,
    errors: Vec<(TransportErrorKind, bool, String)>,
    started: Option<Instant>,
    took: Option<Duration>,
}

impl Watch {
    fn new(start: impl FnMut(&mut Event<'_>) + Send + 'static) -> Self {
        Watch {
            start: Box::new(start),
            errors: Vec::new(),
            started: None,
            took: None,
        }
    }
}

impl MessagingHandler for Watch {
    fn on_start(&mut self, e: &mut Event<'_>) {
        self.started = Some(Instant::now());
        e.container_mut().schedule(Duration::from_secs(20));
        (self.start)(e);
    }
    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        let err = e.transport_error().unwrap();
        self.errors
            .push((err.kind(), e.acceptor().is_some(), err.to_string()));
        self.took = self.started.map(|s| s.elapsed());
        e.container_mut().stop();
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        e.container_mut().stop();
    }
}

/// A peer that accepts TCP and then never answers (here: never answers the TLS handshake)
/// fails the attempt with a `Timeout` transport error once the connect timeout passes, well
/// before the 10 s TLS handshake limit.
#[test]
fn a_connect_that_takes_too_long_fails_with_a_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let conn = silent.accept();
        std::thread::sleep(Duration::from_secs(5));
        drop(conn);
    });
    let w = Container::new(Watch::new(move |e| {
        let opts = ConnectOptions::new()
            .url(format!("amqps://127.0.0.1:{port}").as_str())
            .reconnect(false)
            .connect_timeout(Duration::from_millis(300));
        e.container_mut().connect_with(opts).unwrap();
    }))
    .run();
    let _ = holder.join();
    println!("connect timeout: {:?} after {:?}", w.errors, w.took);
    assert_eq!(w.errors.len(), 1, "{:?}", w.errors);
    assert_eq!(w.errors[0].0, TransportErrorKind::Timeout, "{:?}", w.errors);
    let took = w.took.unwrap();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// A client that speaks plain AMQP to an amqps listener: the listener's handler gets
/// `on_transport_error` with a `Tls` error (it used to be only a log line).
#[test]
fn a_failed_tls_handshake_on_a_listener_reaches_the_handler() {
    let p = pki();
    let listen = ListenOptions {
        tls: Some(TlsListen {
            cert: Some(PemSource::Pem(p.server_cert.clone())),
            key: Some(PemSource::Pem(p.server_key.clone())),
            ..TlsListen::default()
        }),
        ..ListenOptions::default()
    };
    let (tx, rx) = std::sync::mpsc::channel::<u16>();
    let client = std::thread::spawn(move || {
        let port = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::io::Write::write_all(&mut s, b"AMQP\x00\x01\x00\x00").unwrap();
        let mut b = [0u8; 64];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = std::io::Read::read(&mut s, &mut b);
    });
    struct Server {
        inner: Watch,
        port: Option<std::sync::mpsc::Sender<u16>>,
    }
    impl MessagingHandler for Server {
        fn on_start(&mut self, e: &mut Event<'_>) {
            self.inner.on_start(e);
        }
        fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
            let port = {
                let a = e.acceptor().unwrap();
                e.container().acceptor_port(a)
            }
            .unwrap();
            if let Some(tx) = self.port.take() {
                tx.send(port).unwrap();
            }
        }
        fn on_transport_error(&mut self, e: &mut Event<'_>) {
            self.inner.on_transport_error(e);
        }
        fn on_timer_task(&mut self, e: &mut Event<'_>) {
            self.inner.on_timer_task(e);
        }
    }
    let s = Container::new(Server {
        inner: Watch::new(move |e| {
            e.container_mut()
                .listen_with("amqps://127.0.0.1:0", listen.clone())
                .unwrap();
        }),
        port: Some(tx),
    })
    .run();
    client.join().unwrap();
    let errors = &s.inner.errors;
    println!("listener saw: {errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (kind, on_acceptor, _) = &errors[0];
    assert_eq!(*kind, TransportErrorKind::Tls, "{errors:?}");
    assert!(on_acceptor, "the event names no listener: {errors:?}");
}

/// Connects twice to its own listener limited to one connection: the second is closed at
/// accept (not left hanging), the first stays open.
#[derive(Default)]
struct TwoConnections {
    port: u16,
    first: Option<ConnectionHandle>,
    second: Option<ConnectionHandle>,
    first_opened: bool,
    second_opened: bool,
    second_error: Option<String>,
    took: Option<Duration>,
    second_at: Option<Instant>,
}

impl TwoConnections {
    fn second_failed(&mut self, e: &mut Event<'_>, what: &str) {
        if e.connection() == self.second && self.second_error.is_none() {
            let why = e.transport_error().map(ToString::to_string);
            self.second_error = Some(format!("{what}: {why:?}"));
            self.took = self.second_at.map(|t| t.elapsed());
            e.container_mut().stop();
        }
    }
}

impl MessagingHandler for TwoConnections {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().schedule(Duration::from_secs(20));
        let opts = ListenOptions {
            max_connections: Some(1),
            ..ListenOptions::default()
        };
        e.container_mut().listen_with("127.0.0.1:0", opts).unwrap();
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        self.port = {
            let a = e.acceptor().unwrap();
            e.container().acceptor_port(a)
        }
        .unwrap();
        let url = format!("amqp://127.0.0.1:{}", self.port);
        self.first = Some(e.container_mut().connect(&url).unwrap());
    }
    fn on_connection_opened(&mut self, e: &mut Event<'_>) {
        if e.connection() == self.first {
            self.first_opened = true;
            let opts = ConnectOptions::new()
                .url(format!("amqp://127.0.0.1:{}", self.port).as_str())
                .reconnect(false);
            self.second_at = Some(Instant::now());
            self.second = Some(e.container_mut().connect_with(opts).unwrap());
        } else if e.connection() == self.second {
            self.second_opened = true;
        }
    }
    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        self.second_failed(e, "transport_error");
    }
    fn on_connection_error(&mut self, e: &mut Event<'_>) {
        self.second_failed(e, "connection_error");
    }
    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        self.second_failed(e, "disconnected");
    }
    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        self.second_failed(e, "connection_closed");
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        e.container_mut().stop();
    }
}

/// A connection past the listener's `max_connections` is closed at accept, before the
/// protocol header is answered: the client sees its transport fail promptly, never an open.
#[test]
fn a_listener_past_max_connections_closes_the_socket_at_accept() {
    let h = Container::new(TwoConnections::default()).run();
    println!("second connection: {:?} after {:?}", h.second_error, h.took);
    assert!(h.first_opened, "the first connection did not open");
    assert!(!h.second_opened, "the second connection opened");
    assert!(
        h.second_error.is_some(),
        "the second connection did not fail"
    );
    assert!(h.took.unwrap() < Duration::from_secs(2), "{:?}", h.took);
}

/// Listens with the given options, sends its port, and stops after `for_`.
struct ListenFor {
    options: ListenOptions,
    for_: Duration,
    port: std::sync::mpsc::Sender<u16>,
}

impl MessagingHandler for ListenFor {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().schedule(self.for_);
        e.container_mut()
            .listen_with("127.0.0.1:0", self.options.clone())
            .unwrap();
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().unwrap();
        let _ = self.port.send(e.container().acceptor_port(a).unwrap());
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        e.container_mut().stop();
    }
}

/// A listener's `handshake_timeout` closes a client that connects and says nothing after
/// that time, not the engine's default 10 s.
#[test]
fn a_listeners_handshake_timeout_closes_a_silent_client() {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        Container::new(ListenFor {
            options: ListenOptions {
                handshake_timeout: Some(Duration::from_millis(300)),
                ..ListenOptions::default()
            },
            for_: Duration::from_secs(5),
            port: tx,
        })
        .run()
    });
    let port = rx.recv_timeout(Duration::from_secs(10)).expect("port");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let r = std::io::Read::read(&mut s, &mut buf);
    let took = started.elapsed();
    let _ = server.join();
    println!("silent client closed after {took:?} ({r:?})");
    assert!(matches!(r, Ok(0)) || r.is_err(), "{r:?}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

/// What the server sent back to `bytes` before closing (or within 2 s).
fn answer_to(s: &mut std::net::TcpStream, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if s.write_all(bytes).is_err() {
        return Vec::new();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// An amqps listener at its `max_connections` closes the next socket at accept, before any
/// TLS or AMQP work: bytes that an admitted connection answers get no answer at all on the
/// refused one.
#[test]
fn an_amqps_listener_past_max_connections_spends_no_tls_handshake() {
    let p = pki();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        Container::new(ListenFor {
            options: ListenOptions {
                tls: Some(TlsListen {
                    cert: Some(PemSource::Pem(p.server_cert.clone())),
                    key: Some(PemSource::Pem(p.server_key.clone())),
                    ..TlsListen::default()
                }),
                max_connections: Some(1),
                ..ListenOptions::default()
            },
            for_: Duration::from_secs(4),
            port: tx,
        })
        .run()
    });
    let port = rx.recv_timeout(Duration::from_secs(10)).expect("port");
    let not_tls = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    // The first connection holds the only place while its TLS handshake waits.
    let mut admitted = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut refused = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let started = Instant::now();
    let nothing = answer_to(&mut refused, not_tls);
    let took = started.elapsed();
    let alert = answer_to(&mut admitted, not_tls);
    let _ = server.join();
    println!("refused: {nothing:?} after {took:?}; admitted: {alert:?}");
    assert!(nothing.is_empty(), "the refused connection got {nothing:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(
        !alert.is_empty(),
        "the admitted connection is served (answered): {alert:?}"
    );
}
