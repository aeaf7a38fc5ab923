//! The interop suite: our example binaries, example broker and a small probe client against
//! AMQP 1.0 peers we did not write, one module per peer, each filling its column of the
//! interop matrix (`common/matrix.rs`: peer × scenario → PASS / FAIL / n/a, written to
//! `target/interop-matrix.md` and printed when the last peer is done; `docs/INTEROP.md` keeps
//! the last table).
//!
//! | Peer | What runs | Installed by |
//! |---|---|---|
//! | `proton-c` ([`proton_c`]) | Qpid Proton C 0.37's `send`, `receive`, `broker`, `direct` examples | `scripts/proton-c-examples.sh` |
//! | `rabbitmq` ([`rabbitmq`]) | RabbitMQ 3.10 with its AMQP 1.0 plugin, plain and TLS listeners on loopback | `scripts/rabbitmq.sh` (Debian's `rabbitmq-server`) |
//! | `rhea` ([`rhea`]) | `tests/interop/rhea_send.js`, `rhea_recv.js`, `rhea_listen.js` on rhea 3 (npm) | `scripts/rhea.sh` |
//! | `fe2o3` ([`fe2o3`]) | `scripts/fe2o3-peer` on fe2o3-amqp 0.18: its client, and its acceptor as a listener | `scripts/fe2o3.sh` (crates.io) |
//! | `python-proton` ([`python`]) | `tests/python/proton_client.py`, `proton_listener.py` on python-qpid-proton | `pip install python-qpid-proton` |
//!
//! `tests/broker_python.rs` (more Python Proton cells) and `amqp-tokio`'s `tests/sasl_cyrus.rs`
//! (the `cyrus-proton` column) record their cells in the same matrix.
//!
//! Each scenario prints one line, `interop <peer> <scenario>: PASS|FAIL (details)`, straight
//! to stderr (so it shows even when the test harness captures output), and any failure fails
//! the peer's test. A peer that cannot be set up fails too, unless `INTEROP_OPTIONAL=1`, in
//! which case its scenarios print `SKIP`. Every process is bounded in time and killed by PID.

#[path = "../common/mod.rs"]
mod common;
mod fe2o3;
mod probe;
mod proton_c;
mod python;
mod rabbitmq;
mod rhea;

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::matrix::{self, Cell};
use common::{Proc, LIMIT};

/// The peer tests in this binary; the last one to finish prints the matrix.
const PEER_TESTS: usize = 5;
static FINISHED: AtomicUsize = AtomicUsize::new(0);

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

/// A scenario's result: messages moved and what was asserted, or why it failed.
type Outcome = Result<(u64, String), String>;

impl Suite {
    fn new(peer: &'static str) -> Suite {
        Suite {
            peer,
            failed: Vec::new(),
            passed: 0,
            started: Instant::now(),
        }
    }

    /// Runs a scenario, which fills the matrix `cells` of this peer; a panic inside it (a
    /// timed-out process, say) counts as a failure.
    fn run(&mut self, scenario: &str, cells: &[&'static str], f: impl FnOnce() -> Outcome) {
        let t = Instant::now();
        let records: Vec<Cell> = cells
            .iter()
            .map(|c| {
                Cell::start(
                    self.peer,
                    c,
                    &format!("interop_suite {} {scenario}", self.peer),
                )
            })
            .collect();
        let r = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
            Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into()))
        });
        let secs = t.elapsed().as_secs_f64();
        match r {
            Ok((n, d)) => {
                self.passed += 1;
                for c in records {
                    c.pass(n, &d);
                }
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
        let table = matrix::write_table();
        if FINISHED.fetch_add(1, Ordering::SeqCst) + 1 == PEER_TESTS {
            say(&format!(
                "\ninterop matrix ({}):\n{table}",
                matrix::table_path().display()
            ));
        }
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

/// The JSON summary a peer program printed as its last line of stdout.
fn summary(who: &str, o: &common::Output) -> Result<serde_json::Value, String> {
    let last = o.stdout.last().map_or("", String::as_str);
    serde_json::from_str(last).map_err(|e| {
        format!(
            "{who}: no JSON summary ({e}); stdout {:?}; stderr {:?}",
            tail(&o.stdout, 3),
            tail(&o.stderr, 5)
        )
    })
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

/// A CA and a server certificate for `localhost` and 127.0.0.1, as PEM files in `dir`.
fn write_pki(dir: &Path) -> Result<(), String> {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};
    let e = |e: rcgen::Error| e.to_string();
    // Distinct subject names: with rcgen's default name on both, the leaf's issuer would equal
    // its subject and verifiers (Node's, say) would take it for self-signed.
    let named = |cn: &str| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name = named("amqp-rs interop test CA");
    let ca_key = KeyPair::generate().map_err(e)?;
    let ca = ca_params.self_signed(&ca_key).map_err(e)?;
    let key = KeyPair::generate().map_err(e)?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(e)?;
    leaf.distinguished_name = named("localhost");
    let cert = leaf.signed_by(&key, &ca, &ca_key).map_err(e)?;
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), pem).map_err(|err| format!("write {name}: {err}"))?;
    }
    Ok(())
}
