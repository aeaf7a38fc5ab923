//! The cluster soak: a 3-node RabbitMQ cluster on loopback (`scripts/rabbitmq-cluster.sh`,
//! a quorum queue declared before the run), our container with a failover list of the three
//! nodes for a sender (at least once: in-doubt, released and rejected messages are sent
//! again) and a receiver (duplicates dropped by sequence number), while the test stops and
//! restarts the nodes in rotation (the sender may send a quarter of the messages more as each
//! restart begins, so the flow spans every restart). Asserts 0 lost and at least one restart
//! of every node; prints sent, resent, duplicates, disconnects, sessions the broker ended and
//! the time taken. Bounded by [`SOAK_LIMIT`]; skipped when RabbitMQ is not installed.
//!
//! RabbitMQ 3.10 ends the AMQP 1.0 session of a link whose channel crashed (a quorum queue
//! changing leader: `internal-error` with a badmatch in `amqp_channel`, or a timed-out
//! `register_enqueuer`) and keeps the connection open; the container attaches the links
//! again on a new session (before that fix the receiver waited forever: the stall this soak
//! used to show in about half the runs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use amqp_engine::messaging::{
    ConnectOptions, ConnectionHandle, Event, LinkHandle, MessagingHandler, Url,
};
use amqp_proto::message::Message;
use amqp_proto::Value;
use amqp_tokio::Container;

/// Messages that flow through the cluster.
const MESSAGES: u64 = 20_000;
/// Messages the sender may send per [`TICK`] (paced so that the flow spans the restarts).
const PER_TICK: u64 = 25;
/// The sender's pacing period.
const TICK: Duration = Duration::from_millis(100);
/// The whole flow's time limit.
const SOAK_LIMIT: Duration = Duration::from_secs(240);
/// The quorum queue.
const QUEUE: &str = "cluster-soak";

/// A cluster started by the script, stopped (every node, by PID) on drop.
struct Cluster(PathBuf);

impl Cluster {
    fn node(&self, what: &str, i: usize) {
        let out = Command::new(script())
            .arg(what)
            .arg(&self.0)
            .arg(i.to_string())
            .output()
            .expect("run scripts/rabbitmq-cluster.sh");
        assert!(
            out.status.success(),
            "{what} {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/rabbitmq-cluster.sh")
}

/// What the soak saw.
#[derive(Debug, Default)]
struct Stats {
    sent: u64,
    resent: u64,
    confirmed: u64,
    rejected: u64,
    duplicates: u64,
    disconnects: u64,
    /// Sessions the broker ended under a link (its links are then attached again).
    session_errors: u64,
    received: BTreeSet<u64>,
}

/// One container, two connections with the same failover list (in different orders): a
/// paced at-least-once sender and a receiver.
struct Soak {
    ports: Vec<u16>,
    sender: Option<LinkHandle>,
    receiver: Option<LinkHandle>,
    /// The sender's and the receiver's connections.
    links_on: Option<(ConnectionHandle, ConnectionHandle)>,
    /// A link the broker closed (a quorum queue moving its leader can detach a consumer):
    /// opened again on the next tick, as an application must.
    relink: Vec<bool>,
    conns: Vec<ConnectionHandle>,
    next: u64,
    tokens: u64,
    resend: BTreeSet<u64>,
    outstanding: std::collections::HashMap<amqp_engine::messaging::Tracker, u64>,
    stats: Stats,
    progress: mpsc::Sender<(u64, u64)>,
    /// The highest sequence number the test lets the sender send yet: raised as each node
    /// restart begins, so that the flow cannot end before every node was restarted.
    allowed: Arc<AtomicU64>,
    closing: bool,
}

impl Soak {
    fn connect(&mut self, e: &mut Event<'_>, first: usize) -> ConnectionHandle {
        let urls = (0..3).map(|k| {
            let port = self.ports[(first + k) % 3];
            Url::parse(&format!("amqp://guest:guest@127.0.0.1:{port}")).expect("url")
        });
        let c = e
            .container_mut()
            .connect_with(ConnectOptions::new().urls(urls))
            .expect("connect");
        self.conns.push(c);
        c
    }

    /// Opens the sender and the receiver where they are not open.
    fn open_links(&mut self, e: &mut Event<'_>) {
        let Some((s, r)) = self.links_on else { return };
        let address = format!("/amq/queue/{QUEUE}");
        if std::mem::take(&mut self.relink[0]) {
            self.sender = e.container_mut().create_sender(s, address.as_str()).ok();
        }
        if std::mem::take(&mut self.relink[1]) {
            self.receiver = e.container_mut().create_receiver(r, address.as_str()).ok();
        }
    }

    fn send_some(&mut self, e: &mut Event<'_>) {
        let Some(link) = self.sender else { return };
        while self.tokens > 0 && e.container().credit(link) > 0 {
            let n = match self.resend.pop_first() {
                Some(n) => {
                    self.stats.resent += 1;
                    n
                }
                None if self.next <= self.allowed.load(Ordering::Relaxed) => {
                    self.next += 1;
                    self.next - 1
                }
                None => break,
            };
            let msg = Message::builder()
                .message_id(n)
                .durable(true)
                .body(Value::string(n.to_string()))
                .build();
            match e.container_mut().send(link, &msg) {
                Ok(t) => {
                    self.outstanding.insert(t, n);
                    self.stats.sent += 1;
                    self.tokens -= 1;
                }
                Err(_) => {
                    self.resend.insert(n);
                    break;
                }
            }
        }
    }

    fn outcome(&mut self, e: &mut Event<'_>, accepted: bool) {
        let Some(n) = e.tracker().and_then(|t| self.outstanding.remove(&t)) else {
            return;
        };
        if accepted {
            self.stats.confirmed += 1;
        } else {
            self.resend.insert(n);
        }
        self.maybe_done(e);
    }

    fn maybe_done(&mut self, e: &mut Event<'_>) {
        if !self.closing
            && self.stats.confirmed >= MESSAGES
            && self.stats.received.len() as u64 == MESSAGES
        {
            self.closing = true;
            for c in self.conns.clone() {
                e.container_mut().close_connection(c, None);
            }
        }
    }
}

impl MessagingHandler for Soak {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let s = self.connect(e, 0);
        let r = self.connect(e, 1);
        self.links_on = Some((s, r));
        self.relink = vec![true, true];
        self.open_links(e);
        e.container_mut().schedule(TICK);
    }

    fn on_link_closed(&mut self, e: &mut Event<'_>) {
        let link = e.link();
        if self.closing || link.is_none() {
            return;
        }
        let error = e.error().cloned();
        if link == self.sender {
            println!("the broker closed the sender ({error:?}): opening it again");
            self.sender = None;
            self.relink[0] = true;
        } else if link == self.receiver {
            println!("the broker closed the receiver ({error:?}): opening it again");
            self.receiver = None;
            self.relink[1] = true;
        }
    }

    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.open_links(e);
        self.tokens = PER_TICK;
        self.send_some(e);
        let _ = self
            .progress
            .send((self.stats.confirmed, self.stats.received.len() as u64));
        if !self.closing {
            e.container_mut().schedule(TICK);
        }
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        self.send_some(e);
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.outcome(e, true);
    }

    fn on_rejected(&mut self, e: &mut Event<'_>) {
        self.stats.rejected += 1;
        self.outcome(e, false);
    }

    fn on_released(&mut self, e: &mut Event<'_>) {
        self.outcome(e, false);
    }

    fn on_in_doubt(&mut self, e: &mut Event<'_>) {
        self.outcome(e, false);
    }

    fn on_disconnected(&mut self, _: &mut Event<'_>) {
        self.stats.disconnects += 1;
    }

    fn on_session_error(&mut self, e: &mut Event<'_>) {
        self.stats.session_errors += 1;
        println!(
            "the broker ended a session ({:?}): its links are attached again",
            e.error()
        );
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let n = e
            .message()
            .and_then(|m| m.body_str())
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(n) = n {
            if !self.stats.received.insert(n) {
                self.stats.duplicates += 1;
            }
        }
        self.maybe_done(e);
    }
}

#[test]
fn at_least_once_through_a_3_node_cluster_restarted_in_rotation_loses_nothing() {
    if !Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() {
        println!("RabbitMQ is not installed (scripts/test-all.sh installs it): soak skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("amqp-rs-cluster-soak-{}", std::process::id()));
    let cluster = Cluster(dir);
    let started = Instant::now();
    let out = Command::new(script())
        .arg("start")
        .arg(&cluster.0)
        .arg(QUEUE)
        .output()
        .expect("run scripts/rabbitmq-cluster.sh");
    assert!(
        out.status.success(),
        "cannot start the cluster: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ports: Vec<u16> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(
        ports.len(),
        3,
        "scripts/rabbitmq-cluster.sh prints three ports"
    );
    println!(
        "cluster of 3 on ports {ports:?} up in {:?}",
        started.elapsed()
    );

    let (progress, rx) = mpsc::channel();
    // A quarter of the messages before the first restart, a quarter more as each begins.
    let allowed = Arc::new(AtomicU64::new(MESSAGES / 4));
    let (done_tx, done_rx) = mpsc::channel();
    let soak = Soak {
        ports,
        sender: None,
        receiver: None,
        links_on: None,
        relink: Vec::new(),
        conns: Vec::new(),
        next: 1,
        tokens: 0,
        resend: BTreeSet::new(),
        outstanding: Default::default(),
        stats: Stats::default(),
        progress,
        allowed: allowed.clone(),
        closing: false,
    };
    std::thread::spawn(move || {
        let _ = done_tx.send(Container::new(soak).run());
    });
    let start = Instant::now();
    let mut restarts = [0u32; 3];
    let mut node = 0;
    let mut last = (0, 0);
    // Stop and restart the nodes in turn while messages flow.
    let soak = loop {
        if let Ok(s) = done_rx.recv_timeout(Duration::from_secs(6)) {
            break s;
        }
        while let Ok(p) = rx.try_recv() {
            last = p;
        }
        assert!(
            start.elapsed() < SOAK_LIMIT,
            "confirmed {} and received {} of {MESSAGES} after {SOAK_LIMIT:?}",
            last.0,
            last.1
        );
        if last.0 < MESSAGES {
            let begun = restarts.iter().sum::<u32>() as u64 + 1;
            allowed.store(
                (MESSAGES * (begun + 1) / 4).min(MESSAGES),
                Ordering::Relaxed,
            );
            cluster.node("stop-node", node + 1);
            std::thread::sleep(Duration::from_secs(3));
            cluster.node("start-node", node + 1);
            restarts[node] += 1;
            println!(
                "{:?}: node {} restarted; confirmed {}, received {}",
                start.elapsed(),
                node + 1,
                last.0,
                last.1
            );
            node = (node + 1) % 3;
        }
    };
    let s = &soak.stats;
    let lost = (1..=MESSAGES).filter(|n| !s.received.contains(n)).count();
    println!(
        "cluster soak: {MESSAGES} messages in {:?}, node restarts {restarts:?}, {} sent \
         ({} resent, {} rejected), {} disconnects seen, {} sessions ended by the broker, \
         {lost} lost, {} duplicates",
        start.elapsed(),
        s.sent,
        s.resent,
        s.rejected,
        s.disconnects,
        s.session_errors,
        s.duplicates
    );
    assert_eq!(lost, 0);
    assert!(
        restarts.iter().all(|&r| r >= 1),
        "not every node was restarted while messages flowed: {restarts:?}"
    );
}
