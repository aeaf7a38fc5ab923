//! The messaging layer under a simulated network: Proton's callbacks, defaults, reconnect,
//! failover, credit and timers.

mod common;

use std::time::{Duration, Instant};

use amqp_engine::messaging::sim::World;
use amqp_engine::messaging::*;
use amqp_proto::message::Message;
use common::broker::Broker;

fn world() -> World {
    World::new(Instant::now(), 7)
}

/// Records every callback's name.
#[derive(Default)]
struct Recorder {
    log: Vec<&'static str>,
    url: String,
    to_send: usize,
    sent: usize,
    accepted: usize,
    close_after: usize,
}

impl MessagingHandler for Recorder {
    fn on_start(&mut self, e: &mut Event<'_>) {
        self.log.push("start");
        let c = e.container_mut().connect(&self.url).unwrap();
        e.container_mut().create_sender(c, "q").unwrap();
    }
    fn on_connection_opened(&mut self, _: &mut Event<'_>) {
        self.log.push("connection_opened");
    }
    fn on_session_opened(&mut self, _: &mut Event<'_>) {
        self.log.push("session_opened");
    }
    fn on_link_opened(&mut self, _: &mut Event<'_>) {
        self.log.push("link_opened");
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        self.log.push("sendable");
        while self.sent < self.to_send && e.credit() > 0 {
            e.send(&Message::new(format!("m{}", self.sent))).unwrap();
            self.sent += 1;
        }
    }
    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.log.push("accepted");
        self.accepted += 1;
        if self.accepted == self.close_after {
            let c = e.connection().unwrap();
            e.container_mut().close_connection(c, None);
        }
    }
    fn on_settled(&mut self, _: &mut Event<'_>) {
        self.log.push("settled");
    }
    fn on_connection_closed(&mut self, _: &mut Event<'_>) {
        self.log.push("connection_closed");
    }
    fn on_disconnected(&mut self, _: &mut Event<'_>) {
        self.log.push("disconnected");
    }
    fn on_transport_error(&mut self, _: &mut Event<'_>) {
        self.log.push("transport_error");
    }
}

#[test]
fn callbacks_fire_in_protons_order() {
    let mut w = world();
    w.add(SansIoContainer::with_id(
        Broker::new(5672),
        "broker",
        w.now(),
    ));
    let c = w.add(SansIoContainer::with_id(
        Recorder {
            url: "amqp://127.0.0.1:5672".into(),
            to_send: 1,
            close_after: 1,
            ..Default::default()
        },
        "client",
        w.now(),
    ));
    w.run_for(Duration::from_secs(2));
    let log = &w.handler::<Recorder>(c).unwrap().log;
    assert_eq!(
        log,
        &vec![
            "start",
            "connection_opened",
            "session_opened",
            "link_opened",
            "sendable",
            "accepted",
            "settled",
            "connection_closed"
        ],
        "{log:?}"
    );
    assert!(w.container::<Recorder>(c).unwrap().is_done());
}

/// Connects (to nothing, or to a sequence of URLs) and counts failures.
struct Dialer {
    opts: Option<ConnectOptions>,
    errors: usize,
    result: Option<Result<(), MessagingError>>,
}

impl MessagingHandler for Dialer {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let o = self.opts.take().unwrap();
        self.result = Some(e.container_mut().connect_with(o).map(|_| ()));
    }
    fn on_transport_error(&mut self, _: &mut Event<'_>) {
        self.errors += 1;
    }
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn reconnect_delays_follow_protons_backoff_and_cap_at_10s() {
    let mut w = world();
    w.latency = Duration::ZERO;
    let start = w.now();
    w.add(SansIoContainer::with_id(
        Dialer {
            opts: Some(ConnectOptions::new().url(url("amqp://127.0.0.1:1"))),
            errors: 0,
            result: None,
        },
        "dialer",
        start,
    ));
    w.run_for(Duration::from_secs(60));
    let times: Vec<f64> = w
        .attempts
        .iter()
        .map(|a| (a.at - start).as_secs_f64())
        .collect();
    let gaps: Vec<f64> = times
        .windows(2)
        .map(|p| ((p[1] - p[0]) * 1000.0).round() / 1000.0)
        .collect();
    assert_eq!(
        &gaps[..10],
        &[0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0],
        "{gaps:?}"
    );
    assert_eq!(times[0], 0.0);
    assert!(w.attempts.iter().all(|a| !a.succeeded));
}

#[test]
fn failover_cycles_through_every_url_for_each_delay() {
    let mut w = world();
    w.latency = Duration::ZERO;
    let start = w.now();
    let opts = ConnectOptions::new().urls(vec![
        url("amqp://a:1"),
        url("amqp://b:2"),
        url("amqp://c:3"),
    ]);
    w.add(SansIoContainer::with_id(
        Dialer {
            opts: Some(opts),
            errors: 0,
            result: None,
        },
        "dialer",
        start,
    ));
    w.run_for(Duration::from_millis(1000));
    let seq: Vec<(String, u128)> = w
        .attempts
        .iter()
        .map(|a| (a.host.clone(), (a.at - start).as_millis()))
        .collect();
    // Proton waits the round's delay before each attempt of the round.
    let expect = [
        ("a", 0),
        ("b", 0),
        ("c", 0),
        ("a", 100),
        ("b", 200),
        ("c", 300),
        ("a", 500),
        ("b", 700),
        ("c", 900),
    ];
    for (i, (h, t)) in expect.iter().enumerate() {
        assert_eq!(seq[i].0, *h, "{seq:?}");
        assert_eq!(seq[i].1, *t, "{seq:?}");
    }
}

#[test]
fn failover_reaches_the_second_url() {
    let mut w = world();
    w.add(SansIoContainer::with_id(
        Broker::new(6000),
        "broker",
        w.now(),
    ));
    let opts = ConnectOptions::new().urls(vec![
        url("amqp://127.0.0.1:5999"),
        url("amqp://127.0.0.1:6000"),
    ]);
    let d = w.add(SansIoContainer::with_id(
        Dialer {
            opts: Some(opts),
            errors: 0,
            result: None,
        },
        "dialer",
        w.now(),
    ));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.attempts.len(), 2);
    assert!(!w.attempts[0].succeeded && w.attempts[1].succeeded);
    assert_eq!(w.handler::<Dialer>(d).unwrap().errors, 1);
}

#[test]
fn reconnect_false_tries_once() {
    let mut w = world();
    let opts = ConnectOptions::new()
        .url(url("amqp://127.0.0.1:1"))
        .reconnect(false);
    let d = w.add(SansIoContainer::with_id(
        Dialer {
            opts: Some(opts),
            errors: 0,
            result: None,
        },
        "dialer",
        w.now(),
    ));
    w.run_for(Duration::from_secs(30));
    assert_eq!(w.attempts.len(), 1);
    assert_eq!(w.handler::<Dialer>(d).unwrap().errors, 1);
    assert!(w.container::<Dialer>(d).unwrap().is_done());
}

#[test]
fn a_bad_url_given_to_the_builder_is_reported_by_connect() {
    let mut w = world();
    let opts = ConnectOptions::new().url("amqp://bad host:1");
    let d = w.add(SansIoContainer::with_id(
        Dialer {
            opts: Some(opts),
            errors: 0,
            result: None,
        },
        "dialer",
        w.now(),
    ));
    w.run_for(Duration::from_millis(10));
    let r = w.handler_mut::<Dialer>(d).unwrap().result.take();
    assert!(
        matches!(r, Some(Err(MessagingError::Options(OptionsError::Url(_))))),
        "{r:?}"
    );
}

#[test]
fn url_and_urls_together_is_an_error() {
    let mut w = world();
    let opts = ConnectOptions::new()
        .url(url("amqp://a"))
        .urls(vec![url("amqp://b")]);
    let d = w.add(SansIoContainer::with_id(
        Dialer {
            opts: Some(opts),
            errors: 0,
            result: None,
        },
        "dialer",
        w.now(),
    ));
    let r = w.handler::<Dialer>(d).unwrap().result.clone().unwrap();
    assert!(
        matches!(r, Err(MessagingError::Options(OptionsError::UrlAndUrls))),
        "{r:?}"
    );
    assert!(w.attempts.is_empty());
}

struct Counting {
    resets: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    nexts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ReconnectPolicy for Counting {
    fn reset(&mut self) {
        self.resets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    /// 100 ms, 200 ms, 300 ms, ...: each delay tells which call gave it.
    fn next(&mut self) -> Duration {
        let n = self.nexts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) as u64;
        Duration::from_millis(100 * (n + 1))
    }
}

#[test]
fn custom_reconnect_policy_is_reset_once_then_asked_for_each_delay() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let resets = Arc::new(AtomicUsize::new(0));
    let nexts = Arc::new(AtomicUsize::new(0));
    let mut w = world();
    w.latency = Duration::ZERO;
    let start = w.now();
    let policy = Counting {
        resets: resets.clone(),
        nexts: nexts.clone(),
    };
    // The builder takes the URL as text and the user's policy as is.
    let opts = ConnectOptions::new()
        .url("amqp://127.0.0.1:1")
        .reconnect(policy);
    w.add(SansIoContainer::with_id(
        Dialer {
            opts: Some(opts),
            errors: 0,
            result: None,
        },
        "dialer",
        start,
    ));
    w.run_for(Duration::from_millis(1050));
    let times: Vec<u128> = w
        .attempts
        .iter()
        .map(|a| (a.at - start).as_millis())
        .collect();
    // The initial attempt is immediate; then each delay the policy gives is waited, the
    // first one (100 ms) included.
    assert_eq!(times, vec![0, 100, 300, 600, 1000]);
    assert_eq!(resets.load(Ordering::SeqCst), 1);
    assert_eq!(nexts.load(Ordering::SeqCst), 5);
}

/// Sends `total` messages at least once, resending what is in doubt after a reconnect.
#[derive(Default)]
struct AtLeastOnceSender {
    url: String,
    total: usize,
    next: usize,
    confirmed: std::collections::BTreeSet<usize>,
    in_flight: std::collections::HashMap<Tracker, usize>,
    resend: Vec<usize>,
    link_opened: usize,
    disconnects: usize,
}

impl AtLeastOnceSender {
    fn pump(&mut self, e: &mut Event<'_>) {
        let Some(link) = e.sender() else { return };
        while e.container().credit(link) > 0 {
            let i = if let Some(i) = self.resend.pop() {
                i
            } else if self.next < self.total {
                self.next += 1;
                self.next - 1
            } else {
                break;
            };
            let m = Message::builder()
                .message_id(i as u64)
                .body(format!("m{i}"))
                .build();
            match e.container_mut().send(link, &m) {
                Ok(t) => {
                    self.in_flight.insert(t, i);
                }
                Err(_) => {
                    self.resend.push(i);
                    break;
                }
            }
        }
    }
}

impl MessagingHandler for AtLeastOnceSender {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let c = e.container_mut().connect(&self.url).unwrap();
        e.container_mut()
            .create_sender(
                c,
                LinkOptions::address("work").with(LinkOption::AtLeastOnce),
            )
            .unwrap();
    }
    fn on_link_opened(&mut self, _: &mut Event<'_>) {
        self.link_opened += 1;
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        self.pump(e);
    }
    fn on_accepted(&mut self, e: &mut Event<'_>) {
        if let Some(i) = self.in_flight.remove(&e.tracker().unwrap()) {
            self.confirmed.insert(i);
        }
        if self.confirmed.len() == self.total {
            let c = e.connection().unwrap();
            e.container_mut().close_connection(c, None);
        }
    }
    fn on_released(&mut self, e: &mut Event<'_>) {
        if let Some(i) = self.in_flight.remove(&e.tracker().unwrap()) {
            self.resend.push(i);
        }
    }
    fn on_in_doubt(&mut self, e: &mut Event<'_>) {
        if let Some(i) = self.in_flight.remove(&e.tracker().unwrap()) {
            if !self.confirmed.contains(&i) {
                self.resend.push(i);
            }
        }
    }
    fn on_disconnected(&mut self, _: &mut Event<'_>) {
        self.disconnects += 1;
        // Anything not confirmed and not yet reported in doubt is resent too.
        let lost: Vec<usize> = self.in_flight.drain().map(|(_, i)| i).collect();
        self.resend
            .extend(lost.into_iter().filter(|i| !self.confirmed.contains(i)));
    }
}

/// Receives from "work", recording every message id seen.
#[derive(Default)]
struct Collector {
    url: String,
    seen: std::collections::BTreeMap<u64, usize>,
    auto_accept: bool,
    prefetch: u32,
    held: Vec<DeliveryHandle>,
    link: Option<LinkHandle>,
}

impl MessagingHandler for Collector {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: self.prefetch,
            auto_accept: self.auto_accept,
            auto_settle: true,
        }
    }
    fn on_start(&mut self, e: &mut Event<'_>) {
        let c = e.container_mut().connect(&self.url).unwrap();
        self.link = Some(e.container_mut().create_receiver(c, "work").unwrap());
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        if let Some(amqp_proto::message::MessageId::Ulong(id)) =
            e.message().and_then(|m| m.message_id().cloned())
        {
            *self.seen.entry(id).or_default() += 1;
        }
        if !self.auto_accept {
            self.held.push(e.delivery().unwrap());
        }
    }
}

#[test]
fn links_are_reattached_and_sending_resumes_after_reconnect() {
    let mut w = world();
    w.add(SansIoContainer::with_id(
        Broker::new(5672),
        "broker",
        w.now(),
    ));
    let s = w.add(SansIoContainer::with_id(
        AtLeastOnceSender {
            url: "amqp://127.0.0.1:5672".into(),
            total: 5000,
            ..Default::default()
        },
        "sender",
        w.now(),
    ));
    w.run_for(Duration::from_millis(20));
    assert!(!w
        .handler::<AtLeastOnceSender>(s)
        .unwrap()
        .confirmed
        .is_empty());
    w.cut_all();
    w.run_for(Duration::from_secs(5));
    let h = w.handler::<AtLeastOnceSender>(s).unwrap();
    assert!(h.disconnects >= 1);
    assert!(h.link_opened >= 2, "link re-attached: {}", h.link_opened);
    assert_eq!(h.confirmed.len(), 5000);
}

#[test]
fn auto_accept_off_leaves_deliveries_to_the_application() {
    let mut w = world();
    let b = w.add(SansIoContainer::with_id(
        Broker::new(5672),
        "broker",
        w.now(),
    ));
    w.handler_mut::<Broker>(b)
        .unwrap()
        .queues
        .entry("work".into())
        .or_default()
        .extend((0..5u64).map(|i| Message::builder().message_id(i).body("x").build().into()));
    let r = w.add(SansIoContainer::with_id(
        Collector {
            url: "amqp://127.0.0.1:5672".into(),
            auto_accept: false,
            prefetch: 10,
            ..Default::default()
        },
        "collector",
        w.now(),
    ));
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.handler::<Collector>(r).unwrap().seen.len(), 5);
    // Nothing accepted yet: closing the receiver's connection returns them to the queue.
    let held = w.handler::<Collector>(r).unwrap().held.clone();
    assert_eq!(held.len(), 5);
    {
        let c = w.container_mut::<Collector>(r).unwrap();
        for d in &held[..2] {
            c.context_mut().accept(*d).unwrap();
        }
        let conn = held[0].link().connection();
        c.context_mut().close_connection(conn, None);
    }
    w.run_for(Duration::from_millis(100));
    assert_eq!(
        w.handler::<Broker>(b).unwrap().queues["work"].len(),
        3,
        "3 unaccepted messages went back"
    );
}

#[test]
fn auto_accept_on_settles_after_on_message() {
    let mut w = world();
    let b = w.add(SansIoContainer::with_id(
        Broker::new(5672),
        "broker",
        w.now(),
    ));
    w.handler_mut::<Broker>(b)
        .unwrap()
        .queues
        .entry("work".into())
        .or_default()
        .extend((0..5u64).map(|i| Message::builder().message_id(i).body("x").build().into()));
    let r = w.add(SansIoContainer::with_id(
        Collector {
            url: "amqp://127.0.0.1:5672".into(),
            auto_accept: true,
            prefetch: 10,
            ..Default::default()
        },
        "collector",
        w.now(),
    ));
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.handler::<Collector>(r).unwrap().seen.len(), 5);
    let conn = w
        .handler::<Collector>(r)
        .unwrap()
        .link
        .unwrap()
        .connection();
    w.container_mut::<Collector>(r)
        .unwrap()
        .context_mut()
        .close_connection(conn, None);
    w.run_for(Duration::from_millis(100));
    assert!(
        w.handler::<Broker>(b).unwrap().queues["work"].is_empty(),
        "all accepted"
    );
}

#[test]
fn prefetch_zero_means_the_application_grants_credit() {
    let mut w = world();
    let b = w.add(SansIoContainer::with_id(
        Broker::new(5672),
        "broker",
        w.now(),
    ));
    w.handler_mut::<Broker>(b)
        .unwrap()
        .queues
        .entry("work".into())
        .or_default()
        .extend((0..30u64).map(|i| Message::builder().message_id(i).body("x").build().into()));
    let r = w.add(SansIoContainer::with_id(
        Collector {
            url: "amqp://127.0.0.1:5672".into(),
            auto_accept: true,
            prefetch: 0,
            ..Default::default()
        },
        "collector",
        w.now(),
    ));
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.handler::<Collector>(r).unwrap().seen.len(), 0);
    let link = w.handler::<Collector>(r).unwrap().link.unwrap();
    w.container_mut::<Collector>(r)
        .unwrap()
        .context_mut()
        .flow(link, 7)
        .unwrap();
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.handler::<Collector>(r).unwrap().seen.len(), 7);
}

#[test]
fn prefetch_keeps_credit_topped_up() {
    let mut w = world();
    let b = w.add(SansIoContainer::with_id(
        Broker::new(5672),
        "broker",
        w.now(),
    ));
    w.handler_mut::<Broker>(b)
        .unwrap()
        .queues
        .entry("work".into())
        .or_default()
        .extend((0..1000u64).map(|i| Message::builder().message_id(i).body("x").build().into()));
    let r = w.add(SansIoContainer::with_id(
        Collector {
            url: "amqp://127.0.0.1:5672".into(),
            auto_accept: true,
            prefetch: 10,
            ..Default::default()
        },
        "collector",
        w.now(),
    ));
    w.run_for(Duration::from_secs(2));
    assert_eq!(w.handler::<Collector>(r).unwrap().seen.len(), 1000);
}

#[derive(Default)]
struct Timers {
    fired: Vec<(TimerHandle, u128)>,
    keep: Option<TimerHandle>,
    start: Option<Instant>,
}

impl MessagingHandler for Timers {
    fn on_start(&mut self, e: &mut Event<'_>) {
        self.start = Some(e.container().now());
        let a = e.container_mut().schedule(Duration::from_millis(250));
        let b = e.container_mut().schedule(Duration::from_millis(100));
        self.keep = Some(a);
        assert!(e.container_mut().cancel(b));
        assert!(!e.container_mut().cancel(b));
        e.container_mut().schedule(Duration::from_secs(1));
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        let at = (e.container().now() - self.start.unwrap()).as_millis();
        self.fired.push((e.timer().unwrap(), at));
    }
}

#[test]
fn schedule_and_cancel() {
    let mut w = world();
    let t = w.add(SansIoContainer::with_id(
        Timers::default(),
        "timers",
        w.now(),
    ));
    w.run_for(Duration::from_secs(5));
    let h = w.handler::<Timers>(t).unwrap();
    assert_eq!(h.fired.len(), 2);
    assert_eq!(h.fired[0], (h.keep.unwrap(), 250));
    assert_eq!(h.fired[1].1, 1000);
    assert!(w.container::<Timers>(t).unwrap().is_done());
}

/// The seeded fault simulation: sender and receiver through the broker while the network
/// drops connections at random; every message arrives at least once.
#[test]
fn seeded_fault_simulation_loses_nothing() {
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut total_msgs = 0;
    let mut total_cuts = 0;
    for seed in 1..=seeds {
        let mut w = World::new(Instant::now(), seed);
        w.add(SansIoContainer::with_id(
            Broker::new(5672),
            "broker",
            w.now(),
        ));
        let n = 40 + (seed as usize % 60);
        let s = w.add(SansIoContainer::with_id(
            AtLeastOnceSender {
                url: "amqp://127.0.0.1:5672".into(),
                total: n,
                ..Default::default()
            },
            "sender",
            w.now(),
        ));
        let r = w.add(SansIoContainer::with_id(
            Collector {
                url: "amqp://127.0.0.1:5672".into(),
                auto_accept: true,
                prefetch: 10,
                ..Default::default()
            },
            "receiver",
            w.now(),
        ));
        for _ in 0..20 {
            let d = w.random() % 8;
            w.run_for(Duration::from_millis(d));
            if w.random() % 3 == 0 && w.cut_random() {
                total_cuts += 1;
            }
        }
        w.run_for(Duration::from_secs(30));
        let sent = w.handler::<AtLeastOnceSender>(s).unwrap().confirmed.len();
        assert_eq!(sent, n, "seed {seed}: sender confirmed {sent}/{n}");
        let seen = w.handler::<Collector>(r).unwrap().seen.clone();
        if std::env::var("SIM_DEBUG").is_ok() && (0..n as u64).any(|i| !seen.contains_key(&i)) {
            let b = w.handler::<Broker>(0).unwrap();
            eprintln!(
                "seed {seed}: broker queues {:?}",
                b.queues
                    .iter()
                    .map(|(k, v)| (k.clone(), v.len()))
                    .collect::<Vec<_>>()
            );
            eprintln!("seed {seed}: broker {}", b.debug_state());
            eprintln!("seed {seed}: seen {:?}", seen.keys().collect::<Vec<_>>());
        }
        for i in 0..n as u64 {
            assert!(
                seen.contains_key(&i),
                "seed {seed}: message {i} never received"
            );
        }
        total_msgs += n;
    }
    println!("fault simulation: {seeds} seeds, {total_msgs} messages, {total_cuts} connections cut, none lost");
}

#[test]
fn unauthorized_access_does_not_retry_forever() {
    use amqp_engine::sasl::{SaslServerConfig, StaticUsers};
    let mut w = world();
    let users = StaticUsers::new().with_user("alice", "secret", b"salt-salt-salt", 4096);
    let mut broker = Broker::new(5672);
    broker.sasl = Some(SaslServerConfig::new(
        &["PLAIN"],
        std::sync::Arc::new(users),
    ));
    w.add(SansIoContainer::with_id(broker, "broker", w.now()));
    // Reconnect is on (the default), but a refused login must not loop.
    let opts = ConnectOptions::new()
        .url(url("amqp://alice:wrong@127.0.0.1:5672"))
        .allow_insecure_mechs(true);
    let d = w.add(SansIoContainer::with_id(
        Dialer {
            opts: Some(opts),
            errors: 0,
            result: None,
        },
        "dialer",
        w.now(),
    ));
    w.run_for(Duration::from_secs(60));
    assert_eq!(
        w.attempts.len(),
        1,
        "one attempt, no retry after an authentication failure"
    );
    assert_eq!(w.handler::<Dialer>(d).unwrap().errors, 1);
    assert!(w.container::<Dialer>(d).unwrap().is_done());

    // The right password gets in.
    let opts = ConnectOptions::new()
        .url(url("amqp://alice:secret@127.0.0.1:5672"))
        .allow_insecure_mechs(true);
    let ok = w.add(SansIoContainer::with_id(
        Dialer {
            opts: Some(opts),
            errors: 0,
            result: None,
        },
        "ok",
        w.now(),
    ));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.handler::<Dialer>(ok).unwrap().errors, 0);
}

/// Closes its receiver after the first message; later deliveries must go back to the broker.
#[derive(Default)]
struct CloseAfterFirst {
    got: usize,
}

impl MessagingHandler for CloseAfterFirst {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: 10,
            auto_accept: false,
            auto_settle: true,
        }
    }
    fn on_start(&mut self, e: &mut Event<'_>) {
        let c = e.container_mut().connect("amqp://127.0.0.1:5672").unwrap();
        e.container_mut().create_receiver(c, "work").unwrap();
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        self.got += 1;
        if self.got == 1 {
            e.accept().unwrap();
            let l = e.link().unwrap();
            e.container_mut().close_link(l);
        }
    }
}

#[test]
fn deliveries_on_a_link_the_application_closed_are_released() {
    let mut w = world();
    let b = w.add(SansIoContainer::with_id(
        Broker::new(5672),
        "broker",
        w.now(),
    ));
    w.handler_mut::<Broker>(b)
        .unwrap()
        .queues
        .entry("work".into())
        .or_default()
        .extend((0..10u64).map(|i| Message::builder().message_id(i).body("x").build().into()));
    let r = w.add(SansIoContainer::with_id(
        CloseAfterFirst::default(),
        "closer",
        w.now(),
    ));
    w.run_for(Duration::from_secs(1));
    // Only the first was handed to the application; the other nine (already in flight under
    // the prefetch window) were released and are back on the queue.
    assert_eq!(w.handler::<CloseAfterFirst>(r).unwrap().got, 1);
    assert_eq!(w.handler::<Broker>(b).unwrap().queues["work"].len(), 9);
}

/// The README's handler: per `on_sendable`, send `per_sendable` messages then close the sender.
#[derive(Default)]
struct SendThenClose {
    per_sendable: usize,
    sendables: usize,
    sent: usize,
    send_errors: Vec<MessagingError>,
}

impl MessagingHandler for SendThenClose {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let c = e.container_mut().connect("amqp://127.0.0.1:5672").unwrap();
        e.container_mut().create_sender(c, "examples").unwrap();
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        self.sendables += 1;
        for _ in 0..self.per_sendable {
            match e.send(&Message::new("Hello World!")) {
                Ok(_) => self.sent += 1,
                Err(err) => self.send_errors.push(err),
            }
        }
        let sender = e.sender().unwrap();
        e.container_mut().close_link(sender);
    }
}

fn send_then_close(per_sendable: usize, broker_prefetch: u32) -> (usize, SendThenClose) {
    let mut w = world();
    let mut broker = Broker::new(5672);
    broker.prefetch = Some(broker_prefetch);
    let b = w.add(SansIoContainer::with_id(broker, "broker", w.now()));
    let c = w.add(SansIoContainer::with_id(
        SendThenClose {
            per_sendable,
            ..SendThenClose::default()
        },
        "client",
        w.now(),
    ));
    w.run_for(Duration::from_secs(1));
    let queued = w.handler::<Broker>(b).unwrap().queues["examples"].len();
    let h = std::mem::take(w.handler_mut::<SendThenClose>(c).unwrap());
    (queued, h)
}

#[test]
fn on_sendable_is_not_raised_for_a_link_the_handler_closed() {
    // The broker grants one credit at a time: its top-up after the first message arrives
    // after the handler closed the sender, and must not raise on_sendable again.
    let (queued, h) = send_then_close(1, 1);
    assert_eq!(h.sendables, 1);
    assert!(h.send_errors.is_empty(), "{:?}", h.send_errors);
    assert_eq!((h.sent, queued), (1, 1));
}

#[test]
fn five_sends_per_sendable_then_close() {
    // Within the credit: all five go, and the credit left raises no further on_sendable.
    let (queued, h) = send_then_close(5, 10);
    assert_eq!(h.sendables, 1);
    assert!(h.send_errors.is_empty(), "{:?}", h.send_errors);
    assert_eq!((h.sent, queued), (5, 5));
    // Past the credit: the sends without credit are refused with a typed error, the
    // rest is delivered, and on_sendable is not raised for the closed link.
    let (queued, h) = send_then_close(5, 1);
    assert_eq!(h.sendables, 1);
    assert_eq!((h.sent, queued), (1, 1));
    assert_eq!(
        h.send_errors,
        vec![MessagingError::Engine(amqp_engine::OpError::NoCredit); 4]
    );
}

/// Sends on its sender after closing it.
#[derive(Default)]
struct SendAfterClose {
    result: Option<Result<Tracker, MessagingError>>,
}

impl MessagingHandler for SendAfterClose {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let c = e.container_mut().connect("amqp://127.0.0.1:5672").unwrap();
        e.container_mut().create_sender(c, "examples").unwrap();
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        let sender = e.sender().unwrap();
        e.container_mut().close_link(sender);
        self.result = Some(e.container_mut().send(sender, &Message::new("late")));
    }
}

#[test]
fn sending_on_a_closed_link_is_a_typed_error() {
    let mut w = world();
    w.add(SansIoContainer::with_id(
        Broker::new(5672),
        "broker",
        w.now(),
    ));
    let c = w.add(SansIoContainer::with_id(
        SendAfterClose::default(),
        "client",
        w.now(),
    ));
    w.run_for(Duration::from_secs(1));
    let r = w.handler_mut::<SendAfterClose>(c).unwrap().result.take();
    assert!(matches!(r, Some(Err(MessagingError::LinkClosed))), "{r:?}");
}

/// Records what it sees of the connection and link handles.
#[derive(Default)]
struct Observer {
    user: Option<Option<String>>,
    shown: Vec<String>,
}

impl MessagingHandler for Observer {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let c = e.container_mut().connect("amqp://127.0.0.1:5672").unwrap();
        let l = e.container_mut().create_sender(c, "q").unwrap();
        self.shown = vec![format!("{c}"), format!("{c:?}"), format!("{l}")];
    }
    fn on_connection_opened(&mut self, e: &mut Event<'_>) {
        let c = e.connection().unwrap();
        self.user = Some(e.container().authenticated_user(c).map(str::to_string));
        e.container_mut().close_connection(c, None);
    }
}

#[test]
fn client_side_has_no_authenticated_user_and_handles_print_short() {
    let mut w = world();
    w.add(SansIoContainer::with_id(
        Broker::new(5672),
        "broker",
        w.now(),
    ));
    let c = w.add(SansIoContainer::with_id(
        Observer::default(),
        "client",
        w.now(),
    ));
    w.run_for(Duration::from_secs(1));
    let h = w.handler::<Observer>(c).unwrap();
    assert_eq!(h.user, Some(None));
    assert_eq!(h.shown, ["c0", "c0", "c0/l0"]);
}
