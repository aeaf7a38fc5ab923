//! The fault-injection soak: `simple_send` (at least once, resending in-doubt deliveries)
//! → TCP proxy → broker → TCP proxy → `simple_recv`, with the proxies cutting connections at
//! random moments. Messages carry sequence numbers; the test counts cuts, lost messages (must
//! be 0) and duplicates (allowed for at-least-once, dropped by the receiver by message-id).
//! Rounds of [`MESSAGES`] run until [`MIN_CUTS`] cuts are made, bounded by [`SOAK_LIMIT`].
//! The same soak runs against a RabbitMQ node (`scripts/rabbitmq.sh`, loopback only) when
//! RabbitMQ is installed, as the test command installs it.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqp_engine::messaging::sim::SimRng;
use common::{broker, Proc};

/// The whole soak's time limit.
const SOAK_LIMIT: Duration = Duration::from_secs(150);
/// Messages sent.
const MESSAGES: u64 = 20_000;
/// Cuts the soak must make at least.
const MIN_CUTS: u64 = 100;

/// A loopback TCP proxy whose live connections can be cut at any moment.
struct Proxy {
    port: u16,
    live: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = l.local_addr().expect("addr").port();
        let live = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (live2, stop2) = (live.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in l.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (Ok(c2), Ok(u2)) = (client.try_clone(), up.try_clone()) else {
                    continue;
                };
                if let (Ok(c3), Ok(u3)) = (client.try_clone(), up.try_clone()) {
                    live2.lock().expect("live").extend([c3, u3]);
                }
                std::thread::spawn(move || pump(client, u2));
                std::thread::spawn(move || pump(up, c2));
            }
        });
        Proxy { port, live, stop }
    }

    /// Cuts every live connection (both sides); whether there was one.
    fn cut(&self) -> bool {
        let conns: Vec<TcpStream> = std::mem::take(&mut *self.live.lock().expect("live"));
        for s in &conns {
            let _ = s.shutdown(Shutdown::Both);
        }
        !conns.is_empty()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// What one round of the soak saw.
struct Round {
    cuts: u64,
    lost: usize,
    duplicates: usize,
    confirmed: bool,
}

/// Sends `messages` through the proxies to the node `path` (after `host:port/`) while
/// cutting connections; stops cutting when both clients are done or at `deadline`.
fn round(
    (to, from): (&Proxy, &Proxy),
    (userinfo, path): (&str, &str),
    messages: u64,
    rng: &mut SimRng,
    deadline: Instant,
) -> Round {
    let n = messages.to_string();
    let url = |p: &Proxy| format!("amqp://{userinfo}127.0.0.1:{}/{path}", p.port);
    let mut send = Proc::example("simple_send", &["-a", &url(to), "-m", &n]);
    let mut recv = Proc::example("simple_recv", &["-a", &url(from), "-m", &n]);
    let mut cuts = 0;
    while Instant::now() < deadline && (send.is_running() || recv.is_running()) {
        std::thread::sleep(Duration::from_millis(20 + rng.next_u64() % 150));
        let proxy = if rng.next_u64() % 2 == 0 { to } else { from };
        if proxy.cut() {
            cuts += 1;
        }
    }
    let s = send.wait(Duration::from_secs(5));
    let r = recv.wait(Duration::from_secs(5));
    let seen: BTreeSet<u64> = r
        .stdout
        .iter()
        .filter_map(|l| l.strip_prefix("{'sequence': "))
        .filter_map(|l| l.trim_end_matches('}').parse().ok())
        .collect();
    Round {
        cuts,
        lost: (1..=messages).filter(|i| !seen.contains(i)).count(),
        duplicates: r
            .stdout
            .iter()
            .filter(|l| l.starts_with("duplicate message ignored"))
            .count(),
        confirmed: s.stdout.iter().any(|l| l == "all messages confirmed"),
    }
}

/// Soaks the node behind `upstream` in rounds of `messages` until `min_cuts` cuts, asserting
/// that no round loses a message; prints the totals.
fn soak(upstream: u16, userinfo: &str, queue_prefix: &str, messages: u64, min_cuts: u64) {
    let to_broker = Proxy::start(upstream);
    let from_broker = Proxy::start(upstream);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    println!("soak seed {seed}");
    let mut rng = SimRng::new(seed);
    let start = Instant::now();
    let deadline = start + SOAK_LIMIT;
    let (mut cuts, mut sent, mut duplicates) = (0, 0, 0);
    let mut rounds = 0;
    while cuts < min_cuts && Instant::now() < deadline {
        rounds += 1;
        let r = round(
            (&to_broker, &from_broker),
            (userinfo, &format!("{queue_prefix}{rounds}")),
            messages,
            &mut rng,
            deadline,
        );
        println!(
            "round {rounds}: {} cuts, {} lost, {} duplicates",
            r.cuts, r.lost, r.duplicates
        );
        assert_eq!(r.lost, 0, "round {rounds} lost messages");
        assert!(
            r.confirmed,
            "round {rounds}: the sender did not confirm all"
        );
        cuts += r.cuts;
        duplicates += r.duplicates;
        sent += messages;
    }
    println!(
        "soak: {sent} messages in {:?}, {cuts} cuts, 0 lost, {duplicates} duplicates",
        start.elapsed()
    );
    assert!(cuts >= min_cuts, "only {cuts} cuts in {SOAK_LIMIT:?}");
}

#[test]
fn at_least_once_through_random_connection_cuts_loses_nothing() {
    // A high redelivery limit: a message may be cut in flight to the receiver many times.
    let (_b, port) = broker(&["-l", "1000000"]);
    soak(port, "", "soak", MESSAGES, MIN_CUTS);
}

/// A RabbitMQ node started by `scripts/rabbitmq.sh` (loopback only), stopped on drop.
struct Rabbit(PathBuf);

impl Drop for Rabbit {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/rabbitmq.sh")
}

#[test]
fn the_same_soak_against_rabbitmq_loses_nothing() {
    if !Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() {
        println!("RabbitMQ is not installed (scripts/test-all.sh installs it): soak skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("amqp-rs-soak-rabbitmq-{}", std::process::id()));
    let node = Rabbit(dir);
    let out = Command::new(script())
        .arg("start")
        .arg(&node.0)
        .output()
        .expect("run scripts/rabbitmq.sh");
    assert!(
        out.status.success(),
        "cannot start RabbitMQ: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port: u16 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("scripts/rabbitmq.sh prints the port");
    // RabbitMQ 3.10 names queues `/queue/NAME` (the URL path after the authority's `/`).
    soak(port, "guest:guest@", "/queue/soak", 5_000, 50);
}
