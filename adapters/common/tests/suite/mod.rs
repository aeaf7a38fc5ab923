//! The adapter test suite, run on every runtime: each runtime crate's `tests/suite.rs` includes
//! this file and invokes [`adapter_suite!`] with its runtime type (or, for a crate with its
//! own container type such as `amqp-mio`, with `runner T` where `T` implements
//! [`RunContainer`]):
//!
//! ```ignore
//! #[macro_use]
//! #[path = "../../common/tests/suite/mod.rs"]
//! mod suite;
//! adapter_suite!(amqp_smol::Smol);
//! ```
//!
//! Every scenario is bounded: containers schedule a safety `stop()` and threads are joined with
//! a deadline, so a broken feature fails the test instead of hanging it. Everything listens on
//! loopback, on port 0 or on a port the test bound first.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) use amqp_adapter::amqp_engine::messaging::MessagingHandler;
use amqp_adapter::amqp_engine::messaging::{
    AcceptorHandle, Backoff, ConnectOptions, ConnectionHandle, Event, ReconnectPolicy, TimerHandle,
    Tracker, TransportErrorKind, Url,
};
use amqp_adapter::amqp_proto::definitions::{condition, Error};
use amqp_adapter::amqp_proto::message::Message;

pub(crate) mod async_client;
#[macro_use]
pub(crate) mod gssapi;
pub(crate) mod inject;
pub(crate) mod max_connections;

/// Generates one `#[test]` per scenario for runtime `$rt`; with `runner T` (a crate with its
/// own container, such as `amqp-mio`), all but the async client's.
macro_rules! adapter_suite {
    ($rt:ty) => {
        impl $crate::suite::RunContainer for $rt {
            fn run<H>(handler: H, id: &str) -> H
            where
                H: $crate::suite::MessagingHandler + Send + 'static,
            {
                amqp_adapter::Container::<H, $rt>::with_id(handler, id).run()
            }
        }
        adapter_suite!(runner $rt);

        #[test]
        fn async_client_pipelined_sends_and_receive() {
            $crate::suite::async_client::round_trip::<$rt>();
        }

        #[test]
        fn async_client_reconnects_and_resolves_every_send() {
            $crate::suite::async_client::reconnect::<$rt>();
        }

        #[test]
        fn async_client_refused_without_reconnect() {
            $crate::suite::async_client::refused::<$rt>();
        }
    };
    (runner $rt:ty) => {
        #[test]
        fn ipv4_loopback_port_0() {
            $crate::suite::loopback::<$rt>("127.0.0.1:0", "127.0.0.1");
        }

        #[test]
        fn ipv6_loopback_port_0() {
            $crate::suite::loopback::<$rt>("[::1]:0", "[::1]");
        }

        #[test]
        fn ten_thousand_messages_with_outcomes() {
            $crate::suite::many_messages::<$rt>(10_000);
        }

        #[test]
        fn listen_on_ipv4_and_ipv6_any_on_one_port() {
            $crate::suite::dual_listen::<$rt>();
        }

        #[test]
        fn close_acceptor_frees_the_port() {
            $crate::suite::close_acceptor::<$rt>();
        }

        #[test]
        fn connection_closed_while_connecting_lets_go_of_its_socket() {
            $crate::suite::close_while_connecting::<$rt>();
        }

        #[test]
        fn reconnect_after_listener_restart() {
            $crate::suite::reconnect_after_restart::<$rt>();
        }

        #[test]
        fn reconnect_after_transport_loss_mid_stream() {
            $crate::suite::transport_loss::<$rt>();
        }

        #[test]
        fn failover_to_second_url() {
            $crate::suite::failover::<$rt>();
        }

        #[test]
        fn ten_thousand_injected_events_all_accepted() {
            $crate::suite::inject::injected_messages::<$rt>(10_000);
        }

        #[test]
        fn no_reconnect_fails_once_and_finishes() {
            $crate::suite::no_reconnect::<$rt>();
        }

        #[test]
        fn max_connections_are_refused_at_accept_and_freed_on_close() {
            $crate::suite::max_connections::refused_at_accept::<$rt>();
        }

    };
}

/// Longest a container may run before its safety timer stops it (a test failure).
const SAFETY: Duration = Duration::from_secs(15);

/// How a test binary runs a container to completion in the calling thread: for the async
/// runtimes `amqp_adapter::Container::<H, R>::with_id(handler, id).run()` (implemented by
/// [`adapter_suite!`]), for `amqp-mio` its own `Container`.
pub(crate) trait RunContainer {
    /// Runs `handler` in a container named `id` until it is done; returns the handler.
    fn run<H: MessagingHandler + Send + 'static>(handler: H, id: &str) -> H;
}

/// Joins a thread, failing the test if it has not finished within `limit`.
fn join_within<T>(h: thread::JoinHandle<T>, limit: Duration, what: &str) -> T {
    let end = Instant::now() + limit;
    while !h.is_finished() {
        assert!(
            Instant::now() < end,
            "{what} did not finish within {limit:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// A loopback port with nothing listening on it (bound, then released).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn body_number(e: &Event<'_>) -> usize {
    e.message()
        .and_then(|m| m.body_str())
        .and_then(|s| s.parse().ok())
        .expect("a message whose body is a number")
}

// ---------------------------------------------------------------------------------------------
// Listen on port 0 (IPv4 or IPv6 loopback), connect to the reported port, send a few messages.

#[derive(Default)]
struct Loopback {
    listen: &'static str,
    host: &'static str,
    port: u16,
    acceptor_host: String,
    sent: usize,
    received: Vec<usize>,
    accepted: usize,
    timed_out: bool,
}

const LOOPBACK_N: usize = 3;

impl MessagingHandler for Loopback {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen(self.listen).expect("listen");
        e.container_mut().schedule(SAFETY);
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().expect("acceptor");
        self.port = e.container().acceptor_port(a).expect("port");
        self.acceptor_host = e
            .container()
            .acceptor_url(a)
            .map(|u| u.host().to_string())
            .unwrap_or_default();
        let url = format!("amqp://{}:{}", self.host, self.port);
        let c = e.container_mut().connect(&url).expect("connect");
        e.container_mut()
            .create_sender(c, "loopback")
            .expect("sender");
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        while self.sent < LOOPBACK_N && e.credit() > 0 {
            e.send(&Message::new(self.sent.to_string())).expect("send");
            self.sent += 1;
        }
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        self.received.push(body_number(e));
    }
    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.accepted += 1;
        if self.accepted == LOOPBACK_N {
            e.container_mut().stop();
        }
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.timed_out = true;
        e.container_mut().stop();
    }
}

/// Listens on `listen` (port 0), connects to `host` on the reported port, sends 3 messages.
pub(crate) fn loopback<R: RunContainer>(listen: &'static str, host: &'static str) {
    if host.starts_with('[') && TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let start = Instant::now();
    let h = Loopback {
        listen,
        host,
        ..Loopback::default()
    };
    let h = R::run(h, "loopback");
    assert!(!h.timed_out, "timed out");
    assert_ne!(h.port, 0, "the bound port is reported");
    assert_eq!(h.acceptor_host, host.trim_matches(['[', ']']));
    assert_eq!(h.received, (0..LOOPBACK_N).collect::<Vec<_>>());
    assert_eq!(h.accepted, LOOPBACK_N);
    eprintln!("loopback {listen}: {:?}", start.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Many messages, each with its outcome, in order.

#[derive(Default)]
struct Many {
    n: usize,
    sent: Vec<Tracker>,
    received: usize,
    out_of_order: usize,
    accepted: usize,
    accepted_out_of_order: usize,
    other_outcomes: usize,
    timed_out: bool,
}

impl MessagingHandler for Many {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:0").expect("listen");
        e.container_mut().schedule(SAFETY);
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().unwrap();
        let port = e.container().acceptor_port(a).unwrap();
        let c = e
            .container_mut()
            .connect(&format!("amqp://127.0.0.1:{port}"))
            .expect("connect");
        e.container_mut().create_sender(c, "many").expect("sender");
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        while self.sent.len() < self.n && e.credit() > 0 {
            let t = e
                .send(&Message::new(self.sent.len().to_string()))
                .expect("send");
            self.sent.push(t);
        }
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        if body_number(e) != self.received {
            self.out_of_order += 1;
        }
        self.received += 1;
    }
    fn on_accepted(&mut self, e: &mut Event<'_>) {
        if self.sent.get(self.accepted) != e.tracker().as_ref() {
            self.accepted_out_of_order += 1;
        }
        self.accepted += 1;
        if self.accepted == self.n {
            e.container_mut().stop();
        }
    }
    fn on_rejected(&mut self, _e: &mut Event<'_>) {
        self.other_outcomes += 1;
    }
    fn on_released(&mut self, _e: &mut Event<'_>) {
        self.other_outcomes += 1;
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.timed_out = true;
        e.container_mut().stop();
    }
}

/// Sends `n` messages from a sender to a receiver (both in one container, over loopback TCP)
/// and checks every message arrives once, in order, and every outcome is `accepted`, in order.
pub(crate) fn many_messages<R: RunContainer>(n: usize) {
    let start = Instant::now();
    let h = R::run(
        Many {
            n,
            ..Many::default()
        },
        "many",
    );
    let elapsed = start.elapsed();
    assert!(!h.timed_out, "timed out after {} accepted", h.accepted);
    assert_eq!(h.sent.len(), n);
    assert_eq!(h.received, n, "on_message count");
    assert_eq!(h.out_of_order, 0, "messages out of order");
    assert_eq!(h.accepted, n, "on_accepted count");
    assert_eq!(h.accepted_out_of_order, 0, "outcomes out of order");
    assert_eq!(h.other_outcomes, 0);
    eprintln!(
        "{n} messages: {elapsed:?} ({:.0} msg/s)",
        n as f64 / elapsed.as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Reconnect: a server that goes away (connection:forced, listener closed) and comes back on the
// same port; the client reconnects with the default backoff and finishes.

struct Server {
    listen: String,
    port_tx: Option<mpsc::Sender<u16>>,
    /// Close the connection (amqp:connection:forced) and the listener after this many messages.
    kill_after: Option<usize>,
    acceptor: Option<AcceptorHandle>,
    safety: Option<TimerHandle>,
    received: Vec<usize>,
    /// Messages received so far, for the test thread to watch.
    progress: Arc<AtomicUsize>,
    link_names: Vec<String>,
    timed_out: bool,
}

impl Server {
    fn new(listen: String, port_tx: Option<mpsc::Sender<u16>>, kill_after: Option<usize>) -> Self {
        Server {
            listen,
            port_tx,
            kill_after,
            acceptor: None,
            safety: None,
            received: Vec::new(),
            progress: Arc::default(),
            link_names: Vec::new(),
            timed_out: false,
        }
    }
}

impl MessagingHandler for Server {
    fn on_start(&mut self, e: &mut Event<'_>) {
        self.acceptor = Some(e.container_mut().listen(&self.listen).expect("listen"));
        self.safety = Some(e.container_mut().schedule(SAFETY));
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().unwrap();
        let port = e.container().acceptor_port(a).unwrap();
        if let Some(tx) = self.port_tx.take() {
            let _ = tx.send(port);
        }
    }
    fn on_link_opening(&mut self, e: &mut Event<'_>) {
        let l = e.link().unwrap();
        let name = e.container().link_name(l).unwrap_or_default().to_string();
        self.link_names.push(name);
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        self.received.push(body_number(e));
        self.progress.fetch_add(1, Ordering::Relaxed);
        if self.kill_after == Some(self.received.len()) {
            // Go away as a broker does on shutdown: close with amqp:connection:forced and stop
            // listening. With no timer left, the container then finishes.
            let c = e.connection().unwrap();
            let err = Error::new(condition::CONNECTION_FORCED, "server restarting");
            e.container_mut().close_connection(c, Some(err));
            if let Some(a) = self.acceptor.take() {
                e.container_mut().close_acceptor(a);
            }
            if let Some(t) = self.safety.take() {
                e.container_mut().cancel(t);
            }
        }
    }
    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        if self.kill_after.is_none() {
            // The restarted server: done when the client closes.
            e.container_mut().stop();
        }
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.timed_out = true;
        e.container_mut().stop();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Opened,
    Disconnected,
    TransportError,
}

struct Client {
    url: String,
    total: usize,
    pending: VecDeque<usize>,
    in_flight: HashMap<Tracker, usize>,
    accepted: BTreeSet<usize>,
    in_doubt: usize,
    marks: Vec<(Mark, Instant)>,
    conn: Option<ConnectionHandle>,
    safety: Option<TimerHandle>,
    timed_out: bool,
}

impl Client {
    fn new(url: String, total: usize) -> Self {
        Client {
            url,
            total,
            pending: (0..total).collect(),
            in_flight: HashMap::new(),
            accepted: BTreeSet::new(),
            in_doubt: 0,
            marks: Vec::new(),
            conn: None,
            safety: None,
            timed_out: false,
        }
    }
}

impl MessagingHandler for Client {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let c = e.container_mut().connect(&self.url).expect("connect");
        e.container_mut().create_sender(c, "jobs").expect("sender");
        self.conn = Some(c);
        self.safety = Some(e.container_mut().schedule(SAFETY));
    }
    fn on_connection_opened(&mut self, e: &mut Event<'_>) {
        let now = e.container().now();
        self.marks.push((Mark::Opened, now));
    }
    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        let now = e.container().now();
        self.marks.push((Mark::Disconnected, now));
    }
    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        let now = e.container().now();
        self.marks.push((Mark::TransportError, now));
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        while e.credit() > 0 {
            let Some(id) = self.pending.pop_front() else {
                break;
            };
            let t = e.send(&Message::new(id.to_string())).expect("send");
            self.in_flight.insert(t, id);
        }
    }
    fn on_accepted(&mut self, e: &mut Event<'_>) {
        if let Some(id) = self.in_flight.remove(&e.tracker().unwrap()) {
            self.accepted.insert(id);
        }
        if self.accepted.len() == self.total {
            let c = self.conn.take().unwrap();
            e.container_mut().close_connection(c, None);
            if let Some(t) = self.safety.take() {
                e.container_mut().cancel(t);
            }
        }
    }
    fn on_released(&mut self, e: &mut Event<'_>) {
        if let Some(id) = self.in_flight.remove(&e.tracker().unwrap()) {
            self.pending.push_front(id);
        }
    }
    fn on_in_doubt(&mut self, e: &mut Event<'_>) {
        // Lost with the connection: send again after the reconnect (at-least-once).
        if let Some(id) = self.in_flight.remove(&e.tracker().unwrap()) {
            self.in_doubt += 1;
            self.pending.push_front(id);
        }
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.timed_out = true;
        e.container_mut().stop();
    }
}

/// How long the server stays away before it comes back: long enough for three failed attempts
/// (after 0, 0.1 and 0.2 s).
const DOWNTIME: Duration = Duration::from_millis(500);

pub(crate) fn reconnect_after_restart<R: RunContainer>() {
    const TOTAL: usize = 300;
    const KILL_AFTER: usize = 50;
    let start = Instant::now();
    let (ptx, prx) = mpsc::channel();
    let s1 = thread::spawn(move || {
        let s = Server::new("127.0.0.1:0".into(), Some(ptx), Some(KILL_AFTER));
        R::run(s, "server-1")
    });
    let port = prx
        .recv_timeout(Duration::from_secs(10))
        .expect("server 1 listening");
    let url = format!("amqp://127.0.0.1:{port}");
    let client = thread::spawn(move || R::run(Client::new(url, TOTAL), "client"));
    let s1 = join_within(s1, Duration::from_secs(10), "server 1");
    let server_down = Instant::now();
    thread::sleep(DOWNTIME);
    let listen = format!("127.0.0.1:{port}");
    let s2 = thread::spawn(move || R::run(Server::new(listen, None, None), "server-2"));
    let client = join_within(client, Duration::from_secs(20), "client");
    let s2 = join_within(s2, Duration::from_secs(10), "server 2");
    let elapsed = start.elapsed();

    assert!(
        !client.timed_out && !s1.timed_out && !s2.timed_out,
        "timed out"
    );
    assert_eq!(s1.received.len(), KILL_AFTER);
    // Every message was accepted by one of the servers; nothing got lost.
    assert_eq!(client.accepted, (0..TOTAL).collect::<BTreeSet<_>>());
    let got: BTreeSet<usize> = s1.received.iter().chain(&s2.received).copied().collect();
    assert_eq!(got, (0..TOTAL).collect::<BTreeSet<_>>());
    // The link was re-attached under its name.
    assert_eq!(s1.link_names.len(), 1);
    assert_eq!(s2.link_names, s1.link_names, "the same link re-attached");

    // The attempts: opened, then lost (forced close), then failures while the server is away,
    // then opened again. The gap before attempt k is at least the k-th Backoff delay.
    let marks = &client.marks;
    let opened: Vec<Instant> = marks
        .iter()
        .filter(|m| m.0 == Mark::Opened)
        .map(|m| m.1)
        .collect();
    assert_eq!(opened.len(), 2, "opened twice: {marks:?}");
    // The final close was clean: the server's close reply reached us before its socket closed.
    assert_eq!(
        marks.last().map(|m| m.0),
        Some(Mark::Opened),
        "nothing after the last open: {marks:?}"
    );
    let ends: Vec<Instant> = marks
        .iter()
        .filter(|m| m.0 == Mark::Disconnected)
        .map(|m| m.1)
        .collect();
    let errors = marks.iter().filter(|m| m.0 == Mark::TransportError).count();
    // ends[0] is the forced close; every later one a failed attempt.
    assert!(
        ends.len() >= 3,
        "at least two failed attempts while the server was down: {marks:?}"
    );
    assert!(
        errors >= 2,
        "connect failures are transport errors: {marks:?}"
    );
    let mut backoff = Backoff::default();
    let delays: Vec<Duration> = (0..ends.len()).map(|_| backoff.next()).collect();
    assert_eq!(
        &delays[..3],
        &[
            Duration::ZERO,
            Duration::from_millis(100),
            Duration::from_millis(200)
        ]
    );
    // Connect failures (transport errors) are the failed attempts: attempt k+1 starts
    // delays[k] after attempt k failed. (Disconnect marks are not used for this: a transport
    // that drops right after a failed attempt can add one under load.)
    let fails: Vec<Instant> = marks
        .iter()
        .filter(|m| m.0 == Mark::TransportError)
        .map(|m| m.1)
        .collect();
    for k in 1..fails.len() {
        let gap = fails[k] - fails[k - 1];
        assert!(
            gap >= delays[k],
            "attempt {} failed {gap:?} after the previous one, before its delay {:?}: {marks:?}",
            k + 1,
            delays[k]
        );
    }
    assert!(
        opened[1] >= server_down,
        "reconnected only once the server was back"
    );
    // And no needless wait: back within the delay that was due when the server returned.
    let back = opened[1] - *ends.last().unwrap();
    assert!(
        back < Duration::from_secs(2),
        "reconnected {back:?} after the last failure"
    );
    eprintln!(
        "reconnect: {elapsed:?}; {} failed attempts, gaps {:?}, {} in doubt",
        ends.len() - 1,
        fails.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>(),
        client.in_doubt
    );
}

// ---------------------------------------------------------------------------------------------
// Failover: the first URL is a closed port, the second a live listener.

#[derive(Default)]
struct Failover {
    closed_port: u16,
    errors: Vec<String>,
    client_opened: usize,
    server_opened: usize,
    received: usize,
    accepted: usize,
    timed_out: bool,
}

impl MessagingHandler for Failover {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:0").expect("listen");
        e.container_mut().schedule(SAFETY);
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().unwrap();
        let port = e.container().acceptor_port(a).unwrap();
        let urls = [
            Url::parse(&format!("amqp://127.0.0.1:{}", self.closed_port)).unwrap(),
            Url::parse(&format!("amqp://127.0.0.1:{port}")).unwrap(),
        ];
        let c = e
            .container_mut()
            .connect_with(ConnectOptions::new().urls(urls))
            .expect("connect");
        e.container_mut()
            .create_sender(c, "failover")
            .expect("sender");
    }
    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        self.errors.push(
            e.transport_error()
                .map(ToString::to_string)
                .unwrap_or_default(),
        );
    }
    fn on_connection_opened(&mut self, e: &mut Event<'_>) {
        let c = e.connection().unwrap();
        if e.container().connection_acceptor(c).is_some() {
            self.server_opened += 1;
        } else {
            self.client_opened += 1;
        }
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        if self.accepted == 0 && e.credit() > 0 {
            e.send(&Message::new("0")).expect("send");
        }
    }
    fn on_message(&mut self, _e: &mut Event<'_>) {
        self.received += 1;
    }
    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.accepted += 1;
        e.container_mut().stop();
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.timed_out = true;
        e.container_mut().stop();
    }
}

pub(crate) fn failover<R: RunContainer>() {
    let start = Instant::now();
    let h = Failover {
        closed_port: closed_port(),
        ..Failover::default()
    };
    let h = R::run(h, "failover");
    assert!(!h.timed_out, "timed out");
    assert_eq!(h.errors.len(), 1, "one failed attempt: {:?}", h.errors);
    assert!(
        h.errors[0].contains(&format!(":{}", h.closed_port)),
        "the failure was the first URL's: {:?}",
        h.errors
    );
    assert_eq!(h.client_opened, 1);
    assert_eq!(h.server_opened, 1);
    assert_eq!((h.received, h.accepted), (1, 1));
    eprintln!("failover: {:?}", start.elapsed());
}

// ---------------------------------------------------------------------------------------------
// reconnect = false: one failure, then the container has nothing left and finishes.

#[derive(Default)]
struct NoReconnect {
    port: u16,
    errors: usize,
    kinds: Vec<Option<TransportErrorKind>>,
    disconnected: usize,
    closed: usize,
    opened: usize,
}

impl MessagingHandler for NoReconnect {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let url = Url::parse(&format!("amqp://127.0.0.1:{}", self.port)).unwrap();
        let c = e
            .container_mut()
            .connect_with(ConnectOptions::new().url(url).reconnect(false))
            .expect("connect");
        e.container_mut()
            .create_sender(c, "nowhere")
            .expect("sender");
    }
    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        self.errors += 1;
        self.kinds.push(e.transport_error().map(|t| t.kind()));
    }
    fn on_disconnected(&mut self, _e: &mut Event<'_>) {
        self.disconnected += 1;
    }
    fn on_connection_closed(&mut self, _e: &mut Event<'_>) {
        self.closed += 1;
    }
    fn on_connection_opened(&mut self, _e: &mut Event<'_>) {
        self.opened += 1;
    }
}

pub(crate) fn no_reconnect<R: RunContainer>() {
    let start = Instant::now();
    let h = NoReconnect {
        port: closed_port(),
        ..NoReconnect::default()
    };
    // No safety timer here (it would keep the container alive): the thread is joined with a
    // deadline instead.
    let t = thread::spawn(move || R::run(h, "no-reconnect"));
    let h = join_within(t, Duration::from_secs(10), "the container");
    assert_eq!(h.errors, 1, "exactly one transport error");
    assert_eq!(h.kinds, [Some(TransportErrorKind::Refused)]);
    assert_eq!(h.opened, 0);
    assert!(h.closed <= 1);
    eprintln!(
        "no reconnect: finished in {:?} (disconnected {}, closed {})",
        start.elapsed(),
        h.disconnected,
        h.closed
    );
}

// ---------------------------------------------------------------------------------------------
// close_acceptor really stops listening, even right after the listener opened.

#[derive(Default)]
struct CloseAcceptor {
    port: u16,
    checks: usize,
    refused: bool,
}

impl MessagingHandler for CloseAcceptor {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:0").expect("listen");
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().unwrap();
        self.port = e.container().acceptor_port(a).unwrap();
        e.container_mut().close_acceptor(a);
        e.container_mut().schedule(Duration::from_millis(20));
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        // The container is still running: its listener must be gone by now (give it up to
        // 50 checks, 1 s).
        self.checks += 1;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(_) => self.refused = true,
            Ok(_) if self.checks < 50 => {
                e.container_mut().schedule(Duration::from_millis(20));
            }
            Ok(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `0.0.0.0:P` and `[::0]:P` together (both in Proton's guide); a third listen on the port fails
// with a typed error.

#[derive(Default)]
struct DualListen {
    port: u16,
    urls: Vec<String>,
    errors: Vec<TransportErrorKind>,
}

impl MessagingHandler for DualListen {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("0.0.0.0:0").expect("listen");
        e.container_mut().schedule(SAFETY);
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().unwrap();
        let url = e.container().acceptor_url(a).unwrap().clone();
        self.urls.push(url.host_port());
        if self.urls.len() == 1 {
            self.port = url.port();
            let v6 = format!("[::0]:{}", self.port);
            e.container_mut().listen(&v6).expect("listen");
        } else {
            let v4 = format!("0.0.0.0:{}", self.port);
            e.container_mut().listen(&v4).expect("listen");
        }
    }
    fn on_acceptor_error(&mut self, e: &mut Event<'_>) {
        let kind = e.transport_error().map(|t| t.kind());
        self.errors.push(kind.unwrap_or(TransportErrorKind::Io));
        e.container_mut().stop();
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        e.container_mut().stop();
    }
}

pub(crate) fn dual_listen<R: RunContainer>() {
    let t = thread::spawn(move || R::run(DualListen::default(), "dual-listen"));
    let h = join_within(t, Duration::from_secs(10), "the container");
    let p = h.port;
    assert_eq!(h.urls, [format!("0.0.0.0:{p}"), format!("[::]:{p}")]);
    assert_eq!(h.errors, [TransportErrorKind::AddressInUse]);
}

pub(crate) fn close_acceptor<R: RunContainer>() {
    let t = thread::spawn(move || R::run(CloseAcceptor::default(), "close-acceptor"));
    let h = join_within(t, Duration::from_secs(10), "the container");
    assert_ne!(h.port, 0);
    assert!(
        h.refused,
        "port {} still accepts connections after close_acceptor ({} checks)",
        h.port, h.checks
    );
}

// ---------------------------------------------------------------------------------------------
// A connection closed while its TCP connect is in flight: when the connect completes, the socket
// must be closed, not kept open by a transport nobody owns.

#[derive(Default)]
struct CloseWhileConnecting {
    server_side_ended: usize,
    timed_out: bool,
}

impl MessagingHandler for CloseWhileConnecting {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:0").expect("listen");
        e.container_mut().schedule(Duration::from_secs(5));
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().unwrap();
        let port = e.container().acceptor_port(a).unwrap();
        let c = e
            .container_mut()
            .connect(&format!("amqp://127.0.0.1:{port}"))
            .expect("connect");
        // Changed our mind before the connect completed.
        e.container_mut().close_connection(c, None);
    }
    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        // The accepted (server) side of the abandoned socket saw it close (the closed outgoing
        // connection reports nothing more).
        self.server_side_ended += 1;
        e.container_mut().stop();
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.timed_out = true;
        e.container_mut().stop();
    }
}

pub(crate) fn close_while_connecting<R: RunContainer>() {
    let h = R::run(CloseWhileConnecting::default(), "close-while-connecting");
    assert!(
        !h.timed_out,
        "the abandoned socket was still open after 5 s"
    );
    assert_eq!(h.server_side_ended, 1);
}

// ---------------------------------------------------------------------------------------------
// Transport lost mid-stream (no close frame: the TCP connections are cut), through a proxy.

/// A loopback TCP proxy whose connections the test can cut.
struct Proxy {
    port: u16,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().unwrap().port();
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accepted: Arc<AtomicUsize> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let (c2, a2, s2) = (conns.clone(), accepted.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(30);
            while !s2.load(Ordering::Relaxed) && Instant::now() < end {
                match l.accept() {
                    Ok((down, _)) => {
                        down.set_nonblocking(false).unwrap();
                        let Ok(up) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        let _ = (down.set_nodelay(true), up.set_nodelay(true));
                        a2.fetch_add(1, Ordering::Relaxed);
                        let mut all = c2.lock().unwrap();
                        for (mut from, mut to) in [
                            (down.try_clone().unwrap(), up.try_clone().unwrap()),
                            (up.try_clone().unwrap(), down.try_clone().unwrap()),
                        ] {
                            thread::spawn(move || {
                                let _ = io::copy(&mut from, &mut to);
                                let _ = to.shutdown(Shutdown::Write);
                            });
                        }
                        all.push(down);
                        all.push(up);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => break,
                }
            }
        });
        Proxy {
            port,
            conns,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    /// Cuts every connection made so far, in both directions, without a goodbye.
    fn cut(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn transport_loss<R: RunContainer>() {
    const TOTAL: usize = 2_000;
    const CUT_AFTER: usize = 300;
    let start = Instant::now();
    let (ptx, prx) = mpsc::channel();
    let server = Server::new("127.0.0.1:0".into(), Some(ptx), None);
    let progress = server.progress.clone();
    let s = thread::spawn(move || R::run(server, "server"));
    let port = prx
        .recv_timeout(Duration::from_secs(10))
        .expect("server listening");
    let proxy = Proxy::start(port);
    let url = format!("amqp://127.0.0.1:{}", proxy.port);
    let client = thread::spawn(move || R::run(Client::new(url, TOTAL), "client"));
    // Cut the connection once the server is well into the stream.
    let end = Instant::now() + Duration::from_secs(10);
    while progress.load(Ordering::Relaxed) < CUT_AFTER {
        assert!(Instant::now() < end, "no progress before the cut");
        thread::sleep(Duration::from_millis(1));
    }
    proxy.cut();
    let client = join_within(client, Duration::from_secs(20), "client");
    let s = join_within(s, Duration::from_secs(10), "server");
    let proxied = proxy.accepted.load(Ordering::Relaxed);
    drop(proxy);
    let elapsed = start.elapsed();

    assert!(!client.timed_out && !s.timed_out, "timed out");
    assert_eq!(client.accepted, (0..TOTAL).collect::<BTreeSet<_>>());
    let got: BTreeSet<usize> = s.received.iter().copied().collect();
    assert_eq!(got, (0..TOTAL).collect::<BTreeSet<_>>());
    assert_eq!(proxied, 2, "one reconnect");
    let marks = &client.marks;
    let kinds: Vec<Mark> = marks.iter().map(|m| m.0).collect();
    assert_eq!(
        kinds,
        [Mark::Opened, Mark::Disconnected, Mark::Opened],
        "lost once, back at the first attempt (delay 0)"
    );
    assert_eq!(s.link_names.len(), 2);
    assert_eq!(
        s.link_names[0], s.link_names[1],
        "the same link re-attached"
    );
    eprintln!(
        "transport loss: {elapsed:?}; back after {:?}; {} in doubt, {} received twice",
        marks[2].1 - marks[1].1,
        client.in_doubt,
        s.received.len() - TOTAL
    );
}
