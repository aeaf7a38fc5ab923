//! The interop suite: the example binaries and the example broker against AMQP 1.0 peers we did
//! not write.
//!
//! | Peer | What runs | Installed by |
//! |---|---|---|
//! | `proton-c` | Qpid Proton C 0.37's `send`, `receive`, `broker`, `direct` examples | `scripts/proton-c-examples.sh` |
//! | `rabbitmq` | RabbitMQ 3.10 with its AMQP 1.0 plugin, on loopback | `scripts/rabbitmq.sh` (Debian's `rabbitmq-server`) |
//! | `rhea` | `tests/interop/rhea_send.js` / `rhea_recv.js` on rhea 3 (npm) | `scripts/rhea.sh` |
//! | `python-proton` | `tests/python/proton_client.py` on python-qpid-proton | `pip install python-qpid-proton` |
//!
//! Each scenario prints one line, `interop <peer> <scenario>: PASS|FAIL (details)`, straight
//! to stderr (so it shows even when the test harness captures output), and any failure fails
//! the peer's test. A peer that cannot be set up fails too, unless `INTEROP_OPTIONAL=1`, in
//! which case its scenarios print `SKIP`. Every process is bounded in time and killed by PID.

mod common;

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{broker, sequence_lines, Proc, LIMIT};
use serde_json::Value as Json;

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Writes one line to stderr at once, bypassing the test harness's capture.
fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

fn optional() -> bool {
    std::env::var("INTEROP_OPTIONAL").as_deref() == Ok("1")
}

/// The scenarios of one peer: runs each, prints its line, and fails at the end if any failed.
struct Suite {
    peer: &'static str,
    failed: Vec<String>,
    passed: usize,
    started: Instant,
}

type Outcome = Result<String, String>;

impl Suite {
    fn new(peer: &'static str) -> Suite {
        Suite {
            peer,
            failed: Vec::new(),
            passed: 0,
            started: Instant::now(),
        }
    }

    /// Runs a scenario; a panic inside it (a timed-out process, say) counts as a failure.
    fn run(&mut self, scenario: &str, f: impl FnOnce() -> Outcome) {
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
            Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into()))
        });
        let secs = t.elapsed().as_secs_f64();
        match r {
            Ok(d) => {
                self.passed += 1;
                say(&format!(
                    "interop {} {scenario}: PASS ({d}; {secs:.2} s)",
                    self.peer
                ));
            }
            Err(e) => {
                let e = shorten(&e, 1500);
                say(&format!(
                    "interop {} {scenario}: FAIL ({e}; {secs:.2} s)",
                    self.peer
                ));
                self.failed.push(format!("{scenario}: {e}"));
            }
        }
    }

    /// The peer could not be set up: every scenario fails (or is skipped with
    /// `INTEROP_OPTIONAL=1`).
    fn unavailable(&mut self, scenarios: &[&str], why: &str) {
        for s in scenarios {
            if optional() {
                say(&format!(
                    "interop {} {s}: SKIP ({why}; INTEROP_OPTIONAL=1)",
                    self.peer
                ));
            } else {
                say(&format!("interop {} {s}: FAIL ({why})", self.peer));
                self.failed.push(format!("{s}: {why}"));
            }
        }
    }

    fn finish(self) {
        say(&format!(
            "interop {}: {} passed, {} failed in {:.1} s",
            self.peer,
            self.passed,
            self.failed.len(),
            self.started.elapsed().as_secs_f64()
        ));
        assert!(
            self.failed.is_empty(),
            "interop {}: {} scenario(s) failed:\n{}",
            self.peer,
            self.failed.len(),
            self.failed.join("\n")
        );
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.replace('\n', " | ");
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end]).replace('\n', " | ")
}

/// Fails unless `cond`, with `msg`.
fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

fn tail(v: &[String], n: usize) -> Vec<String> {
    v.iter().skip(v.len().saturating_sub(n)).cloned().collect()
}

/// Runs a command to completion within [`LIMIT`]; its output, or why it failed.
fn run_ok(name: &str, cmd: &mut Command) -> Result<common::Output, String> {
    let o = Proc::spawn(name, cmd).wait(LIMIT);
    if o.status.success() {
        Ok(o)
    } else {
        Err(format!(
            "{name} exited with {}; stdout tail {:?}; stderr tail {:?}",
            o.status,
            tail(&o.stdout, 5),
            tail(&o.stderr, 5)
        ))
    }
}

/// Runs an example binary to completion within [`LIMIT`].
fn example(name: &str, args: &[&str]) -> Result<common::Output, String> {
    run_ok(name, Command::new(common::bin(name)).args(args))
}

/// Checks that `simple_recv` printed exactly `expected` (in order) and nothing else.
fn check_lines(who: &str, got: &[String], expected: &[String]) -> Result<(), String> {
    if got == expected {
        return Ok(());
    }
    let first_diff = got
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expected.len()));
    Err(format!(
        "{who} printed {} lines, expected {}; first difference at line {first_diff}: got {:?}, expected {:?}",
        got.len(),
        expected.len(),
        got.get(first_diff),
        expected.get(first_diff)
    ))
}

/// Runs an install script (idempotent; it prints the directory it installed into).
fn install(script: &str) -> Result<PathBuf, String> {
    let out = Command::new(root().join("scripts").join(script))
        .output()
        .map_err(|e| format!("cannot run scripts/{script}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/{script} failed: {}",
            shorten(String::from_utf8_lossy(&out.stderr).trim(), 600)
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(PathBuf::from(dir))
}

// ---------------------------------------------------------------------------------------------
// Proton C
// ---------------------------------------------------------------------------------------------

/// How many messages go through in the Proton C scenarios that carry the bulk.
const C_BULK: usize = 10_000;
/// Messages in the other Proton C scenarios.
const C_SMALL: usize = 1_000;

/// `{"sequence"=1}` … `{"sequence"=n}`, as Proton C's `receive` and `direct` print bodies.
fn c_sequence_lines(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{{\"sequence\"={i}}}")).collect()
}

/// Starts a Proton C example that listens (`broker`, `direct`) on a free loopback port, from
/// `dir` (where `broker` finds its TLS files); returns it and the port it printed.
fn c_listener(dir: &Path, name: &str, args: &[&str]) -> Result<(Proc, u16), String> {
    let p = Proc::spawn(
        name,
        Command::new(dir.join(name))
            .args(["127.0.0.1", "0"])
            .args(args)
            .current_dir(dir),
    );
    let line = p
        .wait_line(Duration::from_secs(10), |l| l.starts_with("listening on "))
        .ok_or_else(|| format!("{name} did not say it was listening: {:?}", p.stdout()))?;
    let port = line
        .trim_start_matches("listening on ")
        .trim()
        .parse()
        .map_err(|_| format!("{name}: no port in {line:?}"))?;
    Ok((p, port))
}

/// Checks Proton C `receive`/`direct` output: the bodies 1..=n in order, then the count.
fn check_c_received(who: &str, o: &common::Output, n: usize) -> Result<(), String> {
    let mut expected = c_sequence_lines(n);
    expected.push(format!("{n} messages received"));
    check_lines(who, &o.stdout, &expected)
}

#[test]
fn interop_proton_c() {
    let mut suite = Suite::new("proton-c");
    let scenarios = [
        "send->broker->receive",
        "simple_send->c-broker->simple_recv",
        "send->broker->simple_recv",
        "c-direct->simple_recv",
        "simple_send->c-direct",
        "send->direct_recv",
        "direct_send->receive",
    ];
    let dir = match install("proton-c-examples.sh") {
        Ok(d) => d,
        Err(e) => {
            suite.unavailable(&scenarios, &e);
            return suite.finish();
        }
    };
    let c = |name: &str| dir.join(name);
    let n_bulk = C_BULK.to_string();
    let n_small = C_SMALL.to_string();

    // Proton C's send and receive through our broker: 10k in order.
    suite.run(scenarios[0], || {
        let (_b, port) = broker(&[]);
        let port = port.to_string();
        let t = Instant::now();
        let o = run_ok(
            "c send",
            Command::new(c("send")).args(["127.0.0.1", &port, "c-bulk", &n_bulk]),
        )?;
        check(
            o.stdout.last().map(String::as_str)
                == Some(&*format!("{C_BULK} messages sent and acknowledged")),
            || format!("send said {:?}", tail(&o.stdout, 3)),
        )?;
        let sent = t.elapsed();
        let o = run_ok(
            "c receive",
            Command::new(c("receive")).args(["127.0.0.1", &port, "c-bulk", &n_bulk]),
        )?;
        check_c_received("receive", &o, C_BULK)?;
        Ok(format!(
            "{C_BULK} messages in order; send {:.2} s, receive {:.2} s",
            sent.as_secs_f64(),
            o.elapsed.as_secs_f64()
        ))
    });

    // Our clients through Proton C's broker (credit window 5): 10k in order.
    suite.run(scenarios[1], || {
        let (mut b, port) = c_listener(&dir, "broker", &[])?;
        let url = format!("127.0.0.1:{port}/rust-bulk");
        let t = Instant::now();
        let o = example("simple_send", &["-a", &url, "-m", &n_bulk])?;
        check(o.stdout == ["all messages confirmed"], || {
            format!("simple_send said {:?}", tail(&o.stdout, 3))
        })?;
        let sent = t.elapsed();
        let o = example("simple_recv", &["-a", &url, "-m", &n_bulk])?;
        check_lines("simple_recv", &o.stdout, &sequence_lines(C_BULK))?;
        b.kill();
        Ok(format!(
            "{C_BULK} messages in order; simple_send {:.2} s, simple_recv {:.2} s",
            sent.as_secs_f64(),
            o.elapsed.as_secs_f64()
        ))
    });

    // Proton C's message encoding read by our client, through our broker.
    suite.run(scenarios[2], || {
        let (_b, port) = broker(&[]);
        let p = port.to_string();
        run_ok(
            "c send",
            Command::new(c("send")).args(["127.0.0.1", &p, "c-mixed", &n_small]),
        )?;
        let o = example(
            "simple_recv",
            &["-a", &format!("127.0.0.1:{port}/c-mixed"), "-m", &n_small],
        )?;
        check_lines("simple_recv", &o.stdout, &sequence_lines(C_SMALL))?;
        Ok(format!("{C_SMALL} messages in order"))
    });

    // Proton C's direct listens and sends to our receiver.
    suite.run(scenarios[3], || {
        let (d, port) = c_listener(&dir, "direct", &["examples", &n_small])?;
        let o = example(
            "simple_recv",
            &["-a", &format!("127.0.0.1:{port}/examples"), "-m", &n_small],
        )?;
        check_lines("simple_recv", &o.stdout, &sequence_lines(C_SMALL))?;
        let od = d.wait(Duration::from_secs(10));
        check(
            od.stdout.last().map(String::as_str)
                == Some(&*format!("{C_SMALL} messages sent and acknowledged")),
            || {
                format!(
                    "direct did not see every message accepted: {:?}",
                    tail(&od.stdout, 3)
                )
            },
        )?;
        Ok(format!("{C_SMALL} messages in order, all accepted"))
    });

    // Proton C's direct listens and receives from our sender.
    suite.run(scenarios[4], || {
        let (d, port) = c_listener(&dir, "direct", &["examples", &n_small])?;
        let o = example(
            "simple_send",
            &["-a", &format!("127.0.0.1:{port}/examples"), "-m", &n_small],
        )?;
        check(o.stdout == ["all messages confirmed"], || {
            format!("simple_send said {:?}", tail(&o.stdout, 3))
        })?;
        let od = d.wait(Duration::from_secs(10));
        let mut expected = c_sequence_lines(C_SMALL);
        expected.push(format!("{C_SMALL} messages received"));
        // direct prints "listening on PORT" first.
        check_lines("direct", &od.stdout[1.min(od.stdout.len())..], &expected)?;
        Ok(format!("{C_SMALL} messages in order, all confirmed"))
    });

    // Our direct_recv listens; Proton C's send connects.
    suite.run(scenarios[5], || {
        let r = Proc::example(
            "direct_recv",
            &["-a", "127.0.0.1:0/examples", "-m", &n_small],
        );
        let port = r.listening_port().to_string();
        run_ok(
            "c send",
            Command::new(c("send")).args(["127.0.0.1", &port, "examples", &n_small]),
        )?;
        let o = r.wait(LIMIT);
        check(o.status.success(), || {
            format!("direct_recv: {:?}", o.status)
        })?;
        check_lines("direct_recv", &o.stdout, &sequence_lines(C_SMALL))?;
        Ok(format!("{C_SMALL} messages in order"))
    });

    // Our direct_send listens; Proton C's receive connects.
    suite.run(scenarios[6], || {
        let s = Proc::example(
            "direct_send",
            &["-a", "127.0.0.1:0/examples", "-m", &n_small],
        );
        let port = s.listening_port().to_string();
        let o = run_ok(
            "c receive",
            Command::new(c("receive")).args(["127.0.0.1", &port, "examples", &n_small]),
        )?;
        check_c_received("receive", &o, C_SMALL)?;
        let os = s.wait(LIMIT);
        check(os.status.success(), || {
            format!("direct_send: {:?} {:?}", os.status, tail(&os.stderr, 3))
        })?;
        check(
            os.stdout.last().map(String::as_str) == Some("all messages confirmed"),
            || format!("direct_send said {:?}", tail(&os.stdout, 3)),
        )?;
        Ok(format!("{C_SMALL} messages in order, all confirmed"))
    });

    suite.finish();
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ
// ---------------------------------------------------------------------------------------------

/// Messages through RabbitMQ.
const RABBIT_N: usize = 1_000;

/// A RabbitMQ node started by `scripts/rabbitmq.sh`; stopped (by its PID) on drop.
struct Rabbit {
    dir: PathBuf,
    port: u16,
}

impl Rabbit {
    fn start() -> Result<Rabbit, String> {
        let dir =
            std::env::temp_dir().join(format!("amqp-rs-interop-rabbitmq-{}", std::process::id()));
        // Dropped on failure: stops whatever the script got started.
        let mut node = Rabbit { dir, port: 0 };
        let out = Command::new(root().join("scripts/rabbitmq.sh"))
            .arg("start")
            .arg(&node.dir)
            .output()
            .map_err(|e| format!("cannot run scripts/rabbitmq.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot start RabbitMQ: {}",
                shorten(String::from_utf8_lossy(&out.stderr).trim(), 600)
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        node.port = text
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("scripts/rabbitmq.sh said {text:?}"))?;
        Ok(node)
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/rabbitmq.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn interop_rabbitmq() {
    let mut suite = Suite::new("rabbitmq");
    let scenarios = [
        "simple_send->queue->simple_recv",
        "anonymous",
        "wrong-password",
    ];
    let t = Instant::now();
    let node = match Rabbit::start() {
        Ok(n) => n,
        Err(e) => {
            suite.unavailable(&scenarios, &e);
            return suite.finish();
        }
    };
    let startup = t.elapsed().as_secs_f64();

    // SASL PLAIN (guest:guest, from the URL) over plain TCP, which Proton allows by default;
    // RabbitMQ 3.10 names queues `/queue/NAME`: the URL's path after the authority's `/`.
    suite.run(scenarios[0], || {
        let url = format!(
            "amqp://guest:guest@127.0.0.1:{}//queue/amqp-rs-interop",
            node.port
        );
        let n = RABBIT_N.to_string();
        let o = example("simple_send", &["-a", &url, "-m", &n])?;
        check(o.stdout == ["all messages confirmed"], || {
            format!("simple_send said {:?}", tail(&o.stdout, 3))
        })?;
        let sent = o.elapsed;
        let o = example("simple_recv", &["-a", &url, "-m", &n])?;
        check_lines("simple_recv", &o.stdout, &sequence_lines(RABBIT_N))?;
        Ok(format!(
            "{RABBIT_N} messages in order, SASL PLAIN; node start {startup:.1} s, \
             simple_send {:.2} s, simple_recv {:.2} s",
            sent.as_secs_f64(),
            o.elapsed.as_secs_f64()
        ))
    });

    // No credentials: SASL ANONYMOUS, which RabbitMQ maps to its default user.
    suite.run(scenarios[1], || {
        let url = format!("127.0.0.1:{}//queue/amqp-rs-interop-anon", node.port);
        let o = example("simple_send", &["-a", &url, "-m", "100"])?;
        check(o.stdout == ["all messages confirmed"], || {
            format!("simple_send said {:?}", tail(&o.stdout, 3))
        })?;
        let o = example("simple_recv", &["-a", &url, "-m", "100"])?;
        check_lines("simple_recv", &o.stdout, &sequence_lines(100))?;
        Ok("100 messages in order, SASL ANONYMOUS".into())
    });

    // A wrong password: RabbitMQ refuses the SASL exchange (after a delay of its own); like
    // Proton's Python simple_send, ours gives up (unauthorized-access is fatal, no reconnect
    // loop) without confirming anything.
    suite.run(scenarios[2], || {
        let url = format!(
            "amqp://guest:wrong@127.0.0.1:{}//queue/amqp-rs-interop-bad",
            node.port
        );
        let o = Proc::example("simple_send", &["-a", &url, "-m", "3"]).wait(LIMIT);
        check(o.stdout.is_empty(), || {
            format!("simple_send said {:?}", tail(&o.stdout, 3))
        })?;
        Ok(format!(
            "refused; simple_send gave up in {:.1} s ({})",
            o.elapsed.as_secs_f64(),
            o.status
        ))
    });

    drop(node);
    suite.finish();
}

// ---------------------------------------------------------------------------------------------
// rhea
// ---------------------------------------------------------------------------------------------

/// Messages in rhea's bulk scenarios.
const RHEA_N: usize = 1_000;

fn rhea_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// Runs a rhea script; returns its JSON summary (the last line of stdout).
fn rhea(prefix: &Path, script: &str, port: u16, args: &[&str]) -> Result<Json, String> {
    let mut cmd = Command::new("node");
    cmd.arg(rhea_script(script))
        .args(["--port", &port.to_string()])
        .args(args)
        .env("RHEA_PREFIX", prefix);
    let o = Proc::spawn(script, &mut cmd).wait(LIMIT);
    let last = o.stdout.last().cloned().unwrap_or_default();
    let v: Json = serde_json::from_str(&last).map_err(|e| {
        format!(
            "{script} {args:?}: no JSON summary ({e}); stdout {:?}; stderr {:?}",
            tail(&o.stdout, 5),
            tail(&o.stderr, 5)
        )
    })?;
    check(
        o.status.success() && v["timed_out"] == Json::Bool(false),
        || format!("{script} {args:?} failed ({:?}): {v}", o.status),
    )?;
    Ok(v)
}

fn u64s(v: &Json, key: &str) -> Vec<u64> {
    v[key]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_u64).collect())
        .unwrap_or_default()
}

#[test]
fn interop_rhea() {
    let mut suite = Suite::new("rhea");
    let scenarios = [
        "send->broker->recv",
        "outcomes",
        "selector",
        "send->broker->simple_recv",
        "simple_send->broker->recv",
        "drain",
    ];
    let prefix = match install("rhea.sh") {
        Ok(d) => d,
        Err(e) => {
            suite.unavailable(&scenarios, &e);
            return suite.finish();
        }
    };
    let n = RHEA_N.to_string();
    let all: Vec<u64> = (1..=RHEA_N as u64).collect();

    suite.run(scenarios[0], || {
        let (_b, port) = broker(&[]);
        let v = rhea(
            &prefix,
            "rhea_send.js",
            port,
            &["--address", "bulk", "--count", &n],
        )?;
        check(v["accepted"] == RHEA_N, || format!("rhea_send: {v}"))?;
        let v = rhea(
            &prefix,
            "rhea_recv.js",
            port,
            &["--address", "bulk", "--count", &n],
        )?;
        check(u64s(&v, "ids") == all, || {
            format!(
                "ids not 1..={RHEA_N}: {}",
                shorten(&v["ids"].to_string(), 300)
            )
        })?;
        check(v["bodies_ok"] == true, || "bodies altered".into())?;
        Ok(format!("{RHEA_N} messages in order"))
    });

    // Five messages; rhea rejects 1, releases 2, modifies 3 (delivery-failed); then takes
    // what is left: 2 (delivery-count 0), 3 (delivery-count 1), 4, 5.
    suite.run(scenarios[1], || {
        let (_b, port) = broker(&[]);
        rhea(
            &prefix,
            "rhea_send.js",
            port,
            &["--address", "oc", "--count", "5"],
        )?;
        let v = rhea(
            &prefix,
            "rhea_recv.js",
            port,
            &[
                "--address",
                "oc",
                "--count",
                "3",
                "--credit",
                "3",
                "--dispositions",
                "reject,release,modify",
            ],
        )?;
        check(u64s(&v, "ids") == [1, 2, 3], || format!("first pass: {v}"))?;
        let v = rhea(
            &prefix,
            "rhea_recv.js",
            port,
            &["--address", "oc", "--count", "0", "--grace", "0.5"],
        )?;
        check(u64s(&v, "ids") == [2, 3, 4, 5], || {
            format!("after reject/release/modify: {v}")
        })?;
        check(u64s(&v, "delivery_counts") == [0, 1, 0, 0], || {
            format!("delivery counts: {v}")
        })?;
        Ok("rejected gone, released back as is, modified back with delivery-count 1".into())
    });

    suite.run(scenarios[2], || {
        let (_b, port) = broker(&[]);
        rhea(
            &prefix,
            "rhea_send.js",
            port,
            &["--address", "colours", "--count", "10", "--colour"],
        )?;
        let v = rhea(
            &prefix,
            "rhea_recv.js",
            port,
            &[
                "--address",
                "colours",
                "--count",
                "0",
                "--grace",
                "0.5",
                "--selector",
                "colour = 'green'",
            ],
        )?;
        check(u64s(&v, "ids") == [1, 3, 5, 7, 9], || {
            format!("green ones: {v}")
        })?;
        let v = rhea(
            &prefix,
            "rhea_recv.js",
            port,
            &["--address", "colours", "--count", "0", "--grace", "0.5"],
        )?;
        check(u64s(&v, "ids") == [2, 4, 6, 8, 10], || {
            format!("left over: {v}")
        })?;
        Ok("colour = 'green' got the 5 green, the 5 red stayed queued".into())
    });

    suite.run(scenarios[3], || {
        let (_b, port) = broker(&[]);
        rhea(
            &prefix,
            "rhea_send.js",
            port,
            &["--address", "to-rust", "--count", &n],
        )?;
        let o = example(
            "simple_recv",
            &["-a", &format!("127.0.0.1:{port}/to-rust"), "-m", &n],
        )?;
        check_lines("simple_recv", &o.stdout, &sequence_lines(RHEA_N))?;
        Ok(format!("{RHEA_N} messages in order"))
    });

    suite.run(scenarios[4], || {
        let (_b, port) = broker(&[]);
        let o = example(
            "simple_send",
            &["-a", &format!("127.0.0.1:{port}/to-rhea"), "-m", &n],
        )?;
        check(o.stdout == ["all messages confirmed"], || {
            format!("simple_send said {:?}", tail(&o.stdout, 3))
        })?;
        let v = rhea(
            &prefix,
            "rhea_recv.js",
            port,
            &["--address", "to-rhea", "--count", &n],
        )?;
        check(u64s(&v, "ids") == all, || {
            format!(
                "ids not 1..={RHEA_N}: {}",
                shorten(&v["ids"].to_string(), 300)
            )
        })?;
        check(v["bodies_ok"] == true, || "bodies altered".into())?;
        Ok(format!("{RHEA_N} messages in order"))
    });

    // rhea asks for 10 with drain set; the broker has 3: it sends them, then answers the
    // drain (delivery-count advanced, no credit, drain = true), which rhea reports as
    // receiver_drained. The idle grace (5 s) would end the run only if that never came.
    suite.run(scenarios[5], || {
        let (_b, port) = broker(&[]);
        rhea(
            &prefix,
            "rhea_send.js",
            port,
            &["--address", "dr", "--count", "3"],
        )?;
        let t = Instant::now();
        let v = rhea(
            &prefix,
            "rhea_recv.js",
            port,
            &[
                "--address",
                "dr",
                "--count",
                "0",
                "--credit",
                "10",
                "--drain",
                "--grace",
                "5",
            ],
        )?;
        check(u64s(&v, "ids") == [1, 2, 3], || format!("ids: {v}"))?;
        check(v["drained"] == true, || {
            format!("rhea never saw receiver_drained: {v}")
        })?;
        Ok(format!(
            "3 messages, then drained in {:.2} s",
            t.elapsed().as_secs_f64()
        ))
    });

    suite.finish();
}

// ---------------------------------------------------------------------------------------------
// python-qpid-proton
// ---------------------------------------------------------------------------------------------

const PY_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/proton_client.py");

/// Runs the python client; returns its JSON summary (the last line of stdout).
fn py(args: &[&str]) -> Result<Json, String> {
    let mut cmd = Command::new("python3");
    cmd.arg("-u").arg(PY_SCRIPT).args(args);
    let o = Proc::spawn("proton_client.py", &mut cmd).wait(LIMIT);
    let last = o.stdout.last().cloned().unwrap_or_default();
    let v: Json = serde_json::from_str(&last).map_err(|e| {
        format!(
            "proton_client.py {args:?}: no JSON summary ({e}); stderr {:?}",
            tail(&o.stderr, 5)
        )
    })?;
    check(v["timed_out"] == Json::Bool(false), || {
        format!("{args:?} timed out: {v}")
    })?;
    Ok(v)
}

/// A compact version of `tests/broker_python.rs` (which has the full set: outcomes,
/// redelivery, selectors, browsing, dynamic queues, SASL, TLS), so the suite lists every peer.
#[test]
fn interop_python_proton() {
    let mut suite = Suite::new("python-proton");
    let scenarios = ["send->broker->recv", "send->broker->simple_recv"];
    let ok = Command::new("python3")
        .args(["-c", "import proton"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        suite.unavailable(
            &scenarios,
            "python3 cannot import proton (pip install python-qpid-proton)",
        );
        return suite.finish();
    }
    let n = 1000usize;
    let ns = n.to_string();

    suite.run(scenarios[0], || {
        let (_b, port) = broker(&[]);
        let u = format!("127.0.0.1:{port}");
        let v = py(&["send", "--url", &u, "--address", "q", "--count", &ns])?;
        check(v["accepted"] == n, || format!("send: {v}"))?;
        let v = py(&["recv", "--url", &u, "--address", "q", "--count", &ns])?;
        check(u64s(&v, "ids") == (0..n as u64).collect::<Vec<_>>(), || {
            format!("ids not 0..{n}: {}", shorten(&v["ids"].to_string(), 300))
        })?;
        check(v["bodies_ok"] == true, || "bodies altered".into())?;
        Ok(format!(
            "{n} messages in order (the rest: tests/broker_python.rs)"
        ))
    });

    suite.run(scenarios[1], || {
        let (_b, port) = broker(&[]);
        let u = format!("127.0.0.1:{port}");
        py(&["send", "--url", &u, "--address", "py", "--count", &ns])?;
        let o = example("simple_recv", &["-a", &format!("{u}/py"), "-m", &ns])?;
        let expected: Vec<String> = (0..n).map(|i| format!("message {i}")).collect();
        check_lines("simple_recv", &o.stdout, &expected)?;
        Ok(format!("{n} messages in order"))
    });

    suite.finish();
}
