//! The container's deadlines, kept in a heap, still fire on time on the simulated network
//! with a hundred other connections open: heartbeats, the idle time-out, the handshake
//! deadline, the reconnect back-off, scheduled tasks and the close deadline. Every callback is
//! logged with its virtual time since the world started, and the times are asserted. And
//! what one passed deadline, or one read, costs does not grow with the connections open: the
//! container's count of connection records visited is the same with 10 and 10,000.

use std::time::{Duration, Instant};

use amqp_engine::messaging::sim::World;
use amqp_engine::messaging::*;

/// The idle time-out the first server advertises and enforces.
const IDLE: Duration = Duration::from_secs(4);
/// The engine's default handshake deadline (both roles) and close deadline.
const HANDSHAKE: Duration = Duration::from_secs(10);
const CLOSE: Duration = Duration::from_secs(5);
/// Slack for the simulated network's 1 ms latency over a handshake's few round trips.
const SLACK: Duration = Duration::from_millis(10);
/// Connections that only heartbeat.
const BULK: usize = 100;

/// Listens (`listen`), connects (`connects`: URL and reconnect), schedules `tasks`; logs
/// every callback with its time and connection.
#[derive(Default)]
struct Rec {
    t0: Option<Instant>,
    listen: Option<(&'static str, ListenOptions)>,
    connects: Vec<(&'static str, bool)>,
    tasks: Vec<Duration>,
    /// The task at this time closes the connection with this index.
    close_on_task: Option<(Duration, usize)>,
    handles: Vec<ConnectionHandle>,
    log: Vec<(Duration, &'static str, Option<ConnectionHandle>)>,
}

impl Rec {
    fn note(&mut self, e: &Event<'_>, what: &'static str) {
        let t0 = self.t0.unwrap_or(e.container().now());
        self.log
            .push((e.container().now() - t0, what, e.connection()));
    }

    /// When `what` happened (to connection `c`, if given).
    fn times(&self, what: &str, c: Option<ConnectionHandle>) -> Vec<Duration> {
        self.log
            .iter()
            .filter(|(_, w, h)| *w == what && (c.is_none() || *h == c))
            .map(|(t, _, _)| *t)
            .collect()
    }

    /// Everything but connections opening and tasks: the failures.
    fn failures(&self, c: Option<ConnectionHandle>) -> Vec<(Duration, &'static str)> {
        self.log
            .iter()
            .filter(|(_, w, h)| !matches!(*w, "opened" | "task") && (c.is_none() || *h == c))
            .map(|(t, w, _)| (*t, *w))
            .collect()
    }
}

impl MessagingHandler for Rec {
    fn on_start(&mut self, e: &mut Event<'_>) {
        self.t0 = Some(e.container().now());
        if let Some((url, opts)) = self.listen.take() {
            e.container_mut().listen_with(url, opts).expect("listen");
        }
        for &(url, reconnect) in &self.connects {
            let opts = ConnectOptions::new().url(url).reconnect(reconnect);
            let h = e.container_mut().connect_with(opts).expect("connect");
            self.handles.push(h);
        }
        for &d in &self.tasks {
            e.container_mut().schedule(d);
        }
    }
    fn on_connection_opened(&mut self, e: &mut Event<'_>) {
        self.note(e, "opened");
    }
    fn on_connection_error(&mut self, e: &mut Event<'_>) {
        self.note(e, "connection_error");
    }
    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        self.note(e, "closed");
    }
    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        self.note(e, "transport_error");
    }
    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        self.note(e, "disconnected");
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.note(e, "task");
        let now = self.log.last().map(|(t, _, _)| *t);
        if let Some((_, i)) = self.close_on_task.filter(|(at, _)| Some(*at) == now) {
            e.container_mut().close_connection(self.handles[i], None);
        }
    }
}

fn server(url: &'static str, idle: Option<Duration>, handshake: Option<Duration>) -> Rec {
    let opts = ListenOptions {
        idle_timeout: idle,
        handshake_timeout: handshake,
        ..ListenOptions::default()
    };
    Rec {
        listen: Some((url, opts)),
        ..Rec::default()
    }
}

fn add(w: &mut World, id: &str, h: Rec) -> usize {
    let now = w.now();
    w.add(SansIoContainer::with_id(h, id, now))
}

fn rec(w: &World, n: usize) -> &Rec {
    w.handler::<Rec>(n).expect("a Rec node")
}

#[track_caller]
fn assert_at(t: Option<&Duration>, expected: Duration, what: &str) {
    let t = *t.unwrap_or_else(|| panic!("{what}: did not happen"));
    assert!(
        t >= expected && t <= expected + SLACK,
        "{what}: at {t:?}, expected {expected:?} (+ {SLACK:?})"
    );
}

#[test]
fn deadlines_fire_on_time_among_a_hundred_idle_connections() {
    let mut w = World::new(Instant::now(), 1);
    // The one with a hundred connections, heartbeating to keep them open.
    let s1 = add(
        &mut w,
        "server",
        server("127.0.0.1:5672", Some(IDLE), Some(HANDSHAKE)),
    );
    // Reads nothing from the start: a handshake with it never completes.
    let mute = add(&mut w, "mute", server("127.0.0.1:5673", None, None));
    w.set_stalled(mute, true);
    // Answers at first, then stops reading: our close to it is never answered.
    let deaf = add(&mut w, "deaf", server("127.0.0.1:5674", None, None));
    let mut client = Rec {
        tasks: vec![
            Duration::from_secs(6),
            Duration::from_millis(7_500),
            Duration::from_secs(25),
        ],
        close_on_task: Some((Duration::from_secs(6), BULK + 1)),
        ..Rec::default()
    };
    client.connects = vec![("amqp://127.0.0.1:5672", false); BULK];
    client.connects.push(("amqp://127.0.0.1:5673", true));
    client.connects.push(("amqp://127.0.0.1:5674", false));
    let c = add(&mut w, "client", client);
    // Reads nothing from the start: it never heartbeats, so the server's idle time-out fires.
    let quiet = add(
        &mut w,
        "quiet",
        Rec {
            connects: vec![("amqp://127.0.0.1:5672", false)],
            ..Rec::default()
        },
    );
    w.set_stalled(quiet, true);

    w.run_for(Duration::from_secs(5));
    w.set_stalled(deaf, true);
    w.run_for(Duration::from_secs(25));

    let (server, client) = (rec(&w, s1), rec(&w, c));
    // Heartbeats: for 30 s nothing but heartbeats flowed on the hundred; a heartbeat not
    // re-registered after output would have let the server's 4 s idle time-out close one.
    assert_eq!(server.times("opened", None).len(), BULK, "{:?}", server.log);
    for &h in &client.handles[..BULK] {
        assert_eq!(
            client.failures(Some(h)),
            [],
            "a heartbeating connection failed"
        );
    }
    // The idle time-out: the quiet client's bytes arrived within a few ms of the start.
    let idle = server.failures(None);
    assert!(!idle.is_empty(), "the quiet connection was never closed");
    assert_at(idle.first().map(|(t, _)| t), IDLE, "idle time-out");
    // The handshake deadline, then the reconnect back-off (Proton's: the first attempt at
    // once, the first reconnect after 0.1 s) and the next attempt's handshake deadline.
    let to_mute = client.handles[BULK];
    let failed = client.times("transport_error", Some(to_mute));
    assert_at(failed.first(), HANDSHAKE, "first handshake deadline");
    let backoff = Duration::from_millis(100);
    assert_at(
        failed.get(1),
        failed[0] + backoff + HANDSHAKE,
        "after the back-off",
    );
    assert!(failed.len() == 2, "two attempts within 30 s: {failed:?}");
    // The close deadline: closed by the task at 6 s, never answered.
    let to_deaf = client.handles[BULK + 1];
    let ended = client.failures(Some(to_deaf));
    assert_at(
        ended.first().map(|(t, _)| t),
        Duration::from_secs(6) + CLOSE,
        "close deadline",
    );
    // Scheduled tasks.
    assert_eq!(
        client.times("task", None),
        [
            Duration::from_secs(6),
            Duration::from_millis(7_500),
            Duration::from_secs(25)
        ],
        "tasks at their exact times"
    );
}

struct Quiet;
impl MessagingHandler for Quiet {}

/// A container listening, with `first` accepted at `t0` and `n` more a second later, none of
/// which sends anything: each has only its handshake deadline (10 s after its accept).
fn idle_server(n: usize, t0: Instant) -> (SansIoContainer<Quiet>, TransportId) {
    let mut c = SansIoContainer::with_id(Quiet, "server", t0);
    c.start(t0);
    let a = c
        .context_mut()
        .listen_with("127.0.0.1:0", ListenOptions::default())
        .expect("listen");
    while c.poll_io().is_some() {}
    c.handle_listening(a, Ok(5672), t0);
    let accept = |c: &mut SansIoContainer<Quiet>, now| {
        c.handle_accepted(a, TransportInfo::default(), now)
            .expect("accepted")
    };
    let first = accept(&mut c, t0);
    for _ in 0..n {
        accept(&mut c, t0 + Duration::from_secs(1));
    }
    while c.poll_io().is_some() {}
    (c, first)
}

/// Connection records visited by `f`.
fn visits(c: &mut SansIoContainer<Quiet>, f: impl FnOnce(&mut SansIoContainer<Quiet>)) -> u64 {
    let before = c.connections_visited();
    f(c);
    c.connections_visited() - before
}

#[test]
fn one_passed_deadline_visits_the_same_connections_with_10_or_10000_open() {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    for n in [10, 10_000] {
        let (mut c, first) = idle_server(n, t0);
        assert_eq!(
            c.poll_timeout(),
            Some(t0 + HANDSHAKE),
            "the first one's deadline"
        );
        let cost = visits(&mut c, |c| {
            c.handle_timeout(t0 + HANDSHAKE);
            assert_eq!(
                c.poll_timeout(),
                Some(t0 + HANDSHAKE + Duration::from_secs(1)),
                "the others' deadline is next"
            );
        });
        let closed: Vec<TransportId> = std::iter::from_fn(|| c.poll_io())
            .filter_map(|r| match r {
                IoRequest::Close { transport } => Some(transport),
                _ => None,
            })
            .collect();
        assert_eq!(closed, [first], "only the connection whose deadline passed");
        seen.push(cost);
    }
    println!("connections visited by one passed deadline, 10 and 10,000 open: {seen:?}");
    assert!(seen[0] <= 4, "a handful of visits: {seen:?}");
    assert_eq!(seen[0], seen[1], "the cost does not grow with connections");
}

#[test]
fn bytes_on_one_connection_visit_the_same_connections_with_10_or_10000_open() {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    for n in [10, 10_000] {
        let (mut c, first) = idle_server(n, t0);
        let cost = visits(&mut c, |c| {
            c.handle_read(first, b"AMQP\x00\x01\x00\x00", t0 + Duration::from_secs(2));
            while c.poll_io().is_some() {}
            assert_eq!(c.poll_timeout(), Some(t0 + HANDSHAKE));
        });
        seen.push(cost);
    }
    println!("connections visited by one read, 10 and 10,000 open: {seen:?}");
    assert!(seen[0] <= 4, "{seen:?}");
    assert_eq!(seen[0], seen[1], "the cost does not grow with connections");
}
