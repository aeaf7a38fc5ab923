//! # amqp-perf — end-to-end throughput and latency, quiver-style
//!
//! Runs a sender and a receiver (Proton-style [`MessagingHandler`]s on the tokio adapter) and
//! reports messages per second, payload megabytes per second and latency percentiles, as
//! human-readable lines followed by one JSON line.
//!
//! * `amqp-perf peer` — one process, two containers on two threads: a receiver listening on
//!   `127.0.0.1:0` and a sender connecting straight to it (peer-to-peer, no broker).
//! * `amqp-perf peer --role receiver --url amqp://127.0.0.1:5673` and
//!   `amqp-perf peer --role sender --url amqp://127.0.0.1:5673` — the same in two processes.
//! * `amqp-perf --url amqp://127.0.0.1:5672/queue` — through a broker: the receiver attaches
//!   to the address first, then the sender sends to it (`--role` splits them too).
//!
//! The sender sends while it has credit; with `--settle-mode unsettled` (the default) it waits
//! for every outcome, and the receiver accepts each message (`auto_accept`). Each message is a
//! `data` body of `--body-size` bytes and an application property `ts`: the send time in
//! nanoseconds, on a monotonic clock shared in one process or the wall clock across two.
//! Every run is bounded by `--count` and `--duration-max`. Measure release builds:
//!
//! ```text
//! cargo run --release -p amqp-perf -- peer --count 1000000
//! ```
//!
//! [`MessagingHandler`]: amqp_tokio::MessagingHandler

mod alloc;
mod args;
mod async_sender;
mod handlers;
mod hist;

use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use amqp_tokio::{Container, Tokio};
use amqp_tokio::{MessagingHandler, Url};

use alloc::{AllocWindow, PerMessage};
use args::{Api, Config, Mode, Role, RuntimeKind, Settle};
use handlers::{Clock, Ready, ReceiverHandler, SenderConfig, SenderHandler, SenderReport, Source};
use hist::Histogram;

/// Extra time the main thread allows past `--duration-max` (the containers' own stop and flush
/// grace) before it gives up on them and exits.
const WATCHDOG_GRACE: Duration = Duration::from_secs(10);

/// Runs a container to completion on the chosen runtime and returns its handler.
fn run_container<H: MessagingHandler + Send + 'static>(
    handler: H,
    id: &str,
    kind: RuntimeKind,
) -> Result<H, String> {
    match kind {
        RuntimeKind::MultiThread => Ok(Container::with_id(handler, id).run()),
        RuntimeKind::Mio => amqp_mio::Container::with_id(handler, id)
            .try_run()
            .map_err(|e| format!("mio poll loop: {e}")),
        RuntimeKind::CurrentThread => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("tokio runtime: {e}"))?;
            let c = Container::with_runtime(handler, id, Tokio::with_handle(rt.handle().clone()));
            Ok(rt.block_on(c.run_async()))
        }
    }
}

/// Spawns a thread running a container; its handler comes back on the join handle, and a unit
/// on `done` when it returns (for the watchdog).
fn spawn_container<H: MessagingHandler + Send + 'static>(
    handler: H,
    id: String,
    kind: RuntimeKind,
    done: mpsc::Sender<()>,
) -> thread::JoinHandle<Result<H, String>> {
    thread::Builder::new()
        .name(id.clone())
        .spawn(move || {
            let r = run_container(handler, &id, kind);
            let _ = done.send(());
            r
        })
        .expect("spawn a thread")
}

/// Waits for `n` containers to finish, or exits the process after `deadline`.
fn wait_for(done: &mpsc::Receiver<()>, n: usize, deadline: Instant) {
    for _ in 0..n {
        let left = deadline.saturating_duration_since(Instant::now());
        if done.recv_timeout(left).is_err() {
            eprintln!("amqp-perf: containers did not finish within --duration-max + grace");
            std::process::exit(3);
        }
    }
}

/// `host:port` and the address of a URL (address defaulting to `amqp-perf`).
fn split_url(url: &str) -> Result<(String, String), String> {
    let u = Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let host = if u.host().contains(':') {
        format!("[{}]:{}", u.host(), u.port())
    } else {
        format!("{}:{}", u.host(), u.port())
    };
    let address = u
        .address()
        .filter(|a| !a.is_empty())
        .unwrap_or("amqp-perf")
        .to_string();
    Ok((host, address))
}

/// What one run measured.
#[derive(Default)]
struct Outcome {
    sent: u64,
    accepted: u64,
    not_accepted: u64,
    received: u64,
    untimed: u64,
    /// Messages the throughput figure counts, and over how long.
    transferred: u64,
    elapsed: Option<Duration>,
    latency: Option<Histogram>,
    errors: Vec<String>,
    timed_out: bool,
    /// Allocations per message over the steady state, for the whole process.
    allocs: Option<PerMessage>,
}

impl Outcome {
    /// The process's allocations over `w`, unless another end already gave them.
    fn add_allocs(&mut self, w: &AllocWindow) {
        if self.allocs.is_none() {
            self.allocs = w.per_message();
        }
    }

    fn add_sender(&mut self, s: &SenderReport) {
        self.sent = s.sent;
        self.accepted = s.accepted;
        self.not_accepted = s.not_accepted;
        self.timed_out |= s.timed_out;
        self.errors.extend(s.error.clone());
    }

    fn add_receiver(&mut self, r: ReceiverHandler) {
        self.received = r.received;
        self.untimed = r.untimed;
        self.timed_out |= r.timed_out;
        self.errors.extend(r.error);
        self.latency = Some(r.latency);
    }
}

/// Spawns the sender of `--api`: a handler in a container, or the async client.
fn spawn_sender(
    cfg: &Config,
    url: String,
    address: String,
    clock: Clock,
    done: mpsc::Sender<()>,
) -> thread::JoinHandle<Result<SenderReport, String>> {
    let id = format!("amqp-perf-sender-{}", std::process::id());
    let kind = cfg.runtime;
    let run: Box<dyn FnOnce() -> Result<SenderReport, String> + Send> = match cfg.api {
        Api::Handler => {
            let sender = SenderHandler::new(SenderConfig {
                url,
                address,
                count: cfg.count,
                body_size: cfg.body_size,
                settle: cfg.settle,
                clock,
                duration_max: cfg.duration_max,
                rate: cfg.rate,
                connections: cfg.connections,
                links: cfg.links,
                max_in_flight: cfg.max_in_flight,
            });
            let id = id.clone();
            Box::new(move || run_container(sender, &id, kind).map(|s| s.report))
        }
        Api::Async => {
            let job = async_sender::AsyncSend {
                url,
                address,
                count: cfg.count,
                body_size: cfg.body_size,
                window: cfg.credit as usize,
                clock,
                duration_max: cfg.duration_max,
            };
            Box::new(move || async_sender::run(job, kind))
        }
    };
    thread::Builder::new()
        .name(id)
        .spawn(move || {
            let r = run();
            let _ = done.send(());
            r
        })
        .expect("spawn a thread")
}

fn join<H>(h: thread::JoinHandle<Result<H, String>>) -> Result<H, String> {
    h.join()
        .map_err(|_| "a container thread panicked".to_string())?
}

/// Both ends in this process: start the receiver, wait until it is ready, start the sender.
fn run_both(cfg: &Config) -> Result<Outcome, String> {
    let clock = Clock::Mono(Instant::now());
    let pid = std::process::id();
    let (source, sender_url, address) = match cfg.mode {
        Mode::Peer => (
            Source::Listen("127.0.0.1:0".into()),
            None,
            "amqp-perf".to_string(),
        ),
        Mode::Broker => {
            let url = cfg.url.clone().unwrap_or_default();
            let (_, address) = split_url(&url)?;
            (
                Source::Connect {
                    url: url.clone(),
                    address: address.clone(),
                },
                Some(url),
                address,
            )
        }
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let deadline = Instant::now() + cfg.duration_max + WATCHDOG_GRACE;
    let receiver = ReceiverHandler::new(
        source,
        cfg.count,
        cfg.credit,
        clock,
        cfg.duration_max,
        ready_tx,
    );
    let rh = spawn_container(
        receiver,
        format!("amqp-perf-receiver-{pid}"),
        cfg.runtime,
        done_tx.clone(),
    );
    let left = deadline.saturating_duration_since(Instant::now());
    let sender_url = match ready_rx.recv_timeout(left) {
        Ok(Ready::Port(port)) => format!("amqp://127.0.0.1:{port}"),
        Ok(Ready::Attached) => sender_url.unwrap_or_default(),
        Ok(Ready::Failed(why)) => {
            let _ = join(rh);
            return Err(why);
        }
        Err(_) => {
            // The receiver returned (its channel end is gone) or never got ready.
            wait_for(&done_rx, 1, deadline);
            let r = join(rh)?;
            return Err(r
                .error
                .unwrap_or_else(|| "the receiver never became ready".into()));
        }
    };
    let sh = spawn_sender(cfg, sender_url, address, clock, done_tx);
    wait_for(&done_rx, 2, deadline);
    let s = join(sh)?;
    let r = join(rh)?;
    let mut o = Outcome::default();
    o.add_sender(&s);
    if let (Some(start), Some(s_end), Some(r_last)) = (s.start, s.end, r.last) {
        o.elapsed = Some(s_end.max(r_last).saturating_duration_since(start));
        o.transferred = r.received;
    }
    o.add_allocs(&r.allocs);
    o.add_receiver(r);
    Ok(o)
}

/// Only the sender: peer-to-peer to a listening receiver, or to a broker.
fn run_sender(cfg: &Config) -> Result<Outcome, String> {
    let url = cfg.url.clone().unwrap_or_default();
    let (_, address) = split_url(&url)?;
    let (done_tx, done_rx) = mpsc::channel();
    let deadline = Instant::now() + cfg.duration_max + WATCHDOG_GRACE;
    let sh = spawn_sender(cfg, url, address, Clock::Wall, done_tx);
    wait_for(&done_rx, 1, deadline);
    let s = join(sh)?;
    let mut o = Outcome::default();
    o.add_sender(&s);
    o.add_allocs(&s.allocs);
    if let (Some(start), Some(end)) = (s.start, s.end) {
        o.elapsed = Some(end.saturating_duration_since(start));
        o.transferred = match cfg.settle {
            Settle::Unsettled => s.accepted,
            Settle::Presettled => s.sent,
        };
    }
    Ok(o)
}

/// Only the receiver: listening (peer) or attached to a broker.
fn run_receiver(cfg: &Config) -> Result<Outcome, String> {
    let url = cfg.url.clone().unwrap_or_default();
    let (hostport, address) = split_url(&url)?;
    let source = match cfg.mode {
        Mode::Peer => Source::Listen(hostport),
        Mode::Broker => Source::Connect { url, address },
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let deadline = Instant::now() + cfg.duration_max + WATCHDOG_GRACE;
    let receiver = ReceiverHandler::new(
        source,
        cfg.count,
        cfg.credit,
        Clock::Wall,
        cfg.duration_max,
        ready_tx,
    );
    let id = format!("amqp-perf-receiver-{}", std::process::id());
    let rh = spawn_container(receiver, id, cfg.runtime, done_tx);
    let announcer = thread::spawn(move || match ready_rx.recv() {
        Ok(Ready::Port(port)) => eprintln!("amqp-perf: receiver listening on port {port}"),
        Ok(Ready::Attached) => eprintln!("amqp-perf: receiver attached"),
        _ => {}
    });
    wait_for(&done_rx, 1, deadline);
    let r = join(rh)?;
    let _ = announcer.join();
    let mut o = Outcome::default();
    if let (Some(first), Some(last)) = (r.first, r.last) {
        o.elapsed = Some(last.saturating_duration_since(first));
        // The first message starts the clock: count the intervals after it.
        o.transferred = r.received.saturating_sub(1);
    }
    o.add_allocs(&r.allocs);
    o.add_receiver(r);
    Ok(o)
}

/// Peak resident set size of this process in KiB (Linux), for the flat-memory target.
fn max_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn report(cfg: &Config, o: &Outcome) -> bool {
    let complete = o.errors.is_empty() && !o.timed_out && o.elapsed.is_some();
    let secs = o.elapsed.map_or(0.0, |d| d.as_secs_f64());
    let rate = if secs > 0.0 {
        o.transferred as f64 / secs
    } else {
        0.0
    };
    let mbps = rate * cfg.body_size as f64 / 1e6;
    let path = match (cfg.mode, cfg.role) {
        (Mode::Peer, Role::Both) => "peer-to-peer (one process, two containers)".to_string(),
        (Mode::Peer, r) => format!("peer-to-peer, {} only", r.name()),
        (Mode::Broker, Role::Both) => format!("through {}", cfg.url.as_deref().unwrap_or("?")),
        (Mode::Broker, r) => format!(
            "through {}, {} only",
            cfg.url.as_deref().unwrap_or("?"),
            r.name()
        ),
    };
    let mut pacing = cfg.rate.map_or_else(
        || "unpaced".to_string(),
        |r| format!("paced at {r:.0} msg/s"),
    );
    if cfg.max_in_flight > 0 {
        pacing.push_str(&format!(", at most {} in flight", cfg.max_in_flight));
    }
    println!(
        "amqp-perf: {path}; {} messages, body {} B, credit {}, {}, {} runtime, {} API, {}, {} connection(s) x {} link(s)",
        cfg.count,
        cfg.body_size,
        cfg.credit,
        cfg.settle.name(),
        cfg.runtime.name(),
        cfg.api.name(),
        pacing,
        cfg.connections,
        cfg.links
    );
    println!(
        "  sent {}  accepted {}  not accepted {}  received {}",
        o.sent, o.accepted, o.not_accepted, o.received
    );
    if o.elapsed.is_some() {
        println!("  duration     {secs:.3} s");
        println!("  throughput   {rate:.0} msg/s   {mbps:.1} MB/s (payload, 10^6 B)");
    }
    let lat = o.latency.as_ref().filter(|h| h.len() > 0);
    if let Some(h) = lat {
        println!(
            "  latency ms   p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3}, n {})",
            ms(h.percentile(50.0)),
            ms(h.percentile(90.0)),
            ms(h.percentile(99.0)),
            ms(h.percentile(99.9)),
            ms(h.max()),
            h.mean() / 1e6,
            h.len()
        );
    }
    if let Some(a) = o.allocs {
        println!(
            "  allocations  {:.3} per message, {:.1} B per message  (this process, steady state: {} messages from 10 % to 90 % of the count)",
            a.allocations, a.bytes, a.messages
        );
    }
    let rss = max_rss_kib();
    if let Some(kib) = rss {
        println!("  peak RSS     {:.1} MiB", kib as f64 / 1024.0);
    }
    if o.timed_out {
        println!("  TIMED OUT after --duration-max {:?}", cfg.duration_max);
    }
    for e in &o.errors {
        println!("  error: {e}");
    }
    if o.untimed > 0 {
        println!("  {} messages without a timestamp", o.untimed);
    }
    let lat_json = match lat {
        Some(h) => format!(
            "{{\"p50\":{:.4},\"p90\":{:.4},\"p99\":{:.4},\"p99_9\":{:.4},\"max\":{:.4},\"mean\":{:.4}}}",
            ms(h.percentile(50.0)),
            ms(h.percentile(90.0)),
            ms(h.percentile(99.0)),
            ms(h.percentile(99.9)),
            ms(h.max()),
            h.mean() / 1e6
        ),
        None => "null".into(),
    };
    let errors: Vec<String> = o.errors.iter().map(|e| json_str(e)).collect();
    let allocs_json = match o.allocs {
        Some(a) => format!(
            "{{\"per_msg\":{:.4},\"bytes_per_msg\":{:.1},\"messages\":{}}}",
            a.allocations, a.bytes, a.messages
        ),
        None => "null".into(),
    };
    let rate_json = cfg.rate.map_or("null".into(), |r| format!("{r:.0}"));
    println!(
        "{{\"tool\":\"amqp-perf\",\"mode\":{},\"role\":{},\"url\":{},\"count\":{},\"body_size\":{},\"credit\":{},\"settle_mode\":{},\"runtime\":{},\"api\":{},\"sent\":{},\"accepted\":{},\"not_accepted\":{},\"received\":{},\"duration_s\":{:.6},\"msg_per_s\":{:.1},\"mb_per_s\":{:.3},\"latency_ms\":{},\"allocations\":{},\"rate\":{},\"connections\":{},\"links\":{},\"max_rss_kib\":{},\"timed_out\":{},\"complete\":{},\"errors\":[{}]}}",
        json_str(cfg.mode.name()),
        json_str(cfg.role.name()),
        cfg.url.as_deref().map_or("null".into(), json_str),
        cfg.count,
        cfg.body_size,
        cfg.credit,
        json_str(cfg.settle.name()),
        json_str(cfg.runtime.name()),
        json_str(cfg.api.name()),
        o.sent,
        o.accepted,
        o.not_accepted,
        o.received,
        secs,
        rate,
        mbps,
        lat_json,
        allocs_json,
        rate_json,
        cfg.connections,
        cfg.links,
        rss.map_or("null".into(), |k| k.to_string()),
        o.timed_out,
        complete,
        errors.join(",")
    );
    complete
}

fn main() -> ExitCode {
    let cfg = match args::parse(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if cfg.api == Api::Async && (cfg.settle != Settle::Unsettled || cfg.role == Role::Receiver) {
        eprintln!("amqp-perf: --api async measures an unsettled sender");
        return ExitCode::from(2);
    }
    let r = match cfg.role {
        Role::Both => run_both(&cfg),
        Role::Sender => run_sender(&cfg),
        Role::Receiver => run_receiver(&cfg),
    };
    match r {
        Ok(o) => {
            if report(&cfg, &o) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("amqp-perf: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("amqp://127.0.0.1:5673/q1").unwrap(),
            ("127.0.0.1:5673".into(), "q1".into())
        );
        assert_eq!(
            split_url("amqp://127.0.0.1:5673").unwrap(),
            ("127.0.0.1:5673".into(), "amqp-perf".into())
        );
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    /// 2,000 messages of 100 B peer-to-peer in one process, credit 100, unsettled, unpaced.
    fn small() -> Config {
        Config {
            mode: Mode::Peer,
            role: Role::Both,
            url: None,
            count: 2000,
            body_size: 100,
            credit: 100,
            settle: Settle::Unsettled,
            duration_max: Duration::from_secs(20),
            runtime: RuntimeKind::CurrentThread,
            api: Api::Handler,
            rate: None,
            connections: 1,
            links: 1,
            max_in_flight: 200,
        }
    }

    /// A small end-to-end run over loopback, both settle modes.
    #[test]
    fn peer_loopback_small() {
        for settle in [Settle::Unsettled, Settle::Presettled] {
            let cfg = Config { settle, ..small() };
            let o = run_both(&cfg).unwrap();
            assert!(o.errors.is_empty(), "{:?}", o.errors);
            assert!(!o.timed_out);
            assert_eq!(o.received, 2000);
            assert_eq!(o.sent, 2000);
            if settle == Settle::Unsettled {
                assert_eq!(o.accepted, 2000);
            }
            assert_eq!(o.latency.as_ref().unwrap().len(), 2000);
        }
    }

    /// Paced fan-in: 2 connections x 2 links at 20,000 msg/s take at least the time the rate
    /// says; every message arrives once, and the steady-state allocation window is reported.
    #[test]
    fn peer_loopback_paced_fan_in() {
        let cfg = Config {
            rate: Some(20_000.0),
            connections: 2,
            links: 2,
            ..small()
        };
        let o = run_both(&cfg).unwrap();
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!((o.sent, o.accepted, o.received), (2000, 2000, 2000));
        // 2,000 messages at 20,000/s: the last is due after 100 ms.
        assert!(
            o.elapsed.unwrap() >= Duration::from_millis(95),
            "{:?}",
            o.elapsed
        );
        assert_eq!(o.allocs.unwrap().messages, 1600);
    }

    /// The async sender (`--api async`) against a handler receiver, over loopback.
    #[test]
    fn peer_loopback_async_sender() {
        let cfg = Config {
            api: Api::Async,
            ..small()
        };
        let o = run_both(&cfg).unwrap();
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert!(!o.timed_out);
        assert_eq!((o.sent, o.accepted, o.received), (2000, 2000, 2000));
        assert_eq!(o.latency.as_ref().unwrap().len(), 2000);
    }
}
