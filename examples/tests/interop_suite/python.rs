//! python-qpid-proton as the peer: `tests/python/proton_client.py` as a client of our broker,
//! and `tests/python/proton_listener.py` as a listener our probe and `simple_send` connect to
//! (drain answered by a Proton sender, idle timeout against a frozen Proton, reconnect after
//! Proton's listener restarts). `tests/broker_python.rs` has the rest of this column.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use amqp_tokio::{ConnectOptions, Url};
use serde_json::Value as Json;

use crate::common::{broker, free_port, Proc, LIMIT};
use crate::probe::Probe;
use crate::rhea::u64s;
use crate::{check, check_lines, example, shorten, summary, tail, Suite};

const PY_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/proton_client.py");

/// Runs the python client; returns its JSON summary (the last line of stdout).
fn py(args: &[&str]) -> Result<Json, String> {
    let mut cmd = Command::new("python3");
    cmd.arg("-u").arg(PY_SCRIPT).args(args);
    let o = Proc::spawn("proton_client.py", &mut cmd).wait(LIMIT);
    let v = summary(&format!("proton_client.py {args:?}"), &o)?;
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
    let scenarios = [
        "send->broker->recv",
        "send->broker->simple_recv",
        "our-drain-to-proton-sender",
        "idle-timeout-frozen-proton",
        "simple_send-reconnects-to-restarted-proton",
    ];
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
    let n = 10_000usize;
    let ns = n.to_string();

    suite.run(
        scenarios[0],
        &["peer-as-client", "sasl-anonymous", "10k-in-order"],
        || {
            let (_b, port) = broker(&[]);
            let u = format!("127.0.0.1:{port}");
            let v = py(&["send", "--url", &u, "--address", "q", "--count", &ns])?;
            check(v["accepted"] == n, || format!("send: {v}"))?;
            let v = py(&["recv", "--url", &u, "--address", "q", "--count", &ns])?;
            check(u64s(&v, "ids") == (0..n as u64).collect::<Vec<_>>(), || {
                format!("ids not 0..{n}: {}", shorten(&v["ids"].to_string(), 300))
            })?;
            check(v["bodies_ok"] == true, || "bodies altered".into())?;
            Ok((
                n as u64,
                format!("{n} messages in order (the rest: tests/broker_python.rs)"),
            ))
        },
    );

    suite.run(scenarios[1], &[], || {
        let (_b, port) = broker(&[]);
        let u = format!("127.0.0.1:{port}");
        py(&["send", "--url", &u, "--address", "py", "--count", &ns])?;
        let o = example("simple_recv", &["-a", &format!("{u}/py"), "-m", &ns])?;
        let expected: Vec<String> = (0..n).map(|i| format!("message {i}")).collect();
        check_lines("simple_recv", &o.stdout, &expected)?;
        Ok((n as u64, format!("{n} messages in order")))
    });

    // Our receiver grants 10 credits with drain to a Proton sender that has 3 messages: it
    // sends them, then answers the drain (Proton leaves that to the application:
    // `link.drained()`), which we report as on_drained.
    suite.run(scenarios[2], &["drain"], || {
        let port = free_port();
        let l = listener(&["source", "--port", &port.to_string(), "--count", "3"])?;
        let mut d = Probe::new(local(port), "src", Duration::from_secs(20));
        d.drain = true;
        d.credit = 10;
        let d = d.run();
        let got: Vec<&str> = d
            .received
            .iter()
            .map(|m| m.body_str().unwrap_or("?"))
            .collect();
        check(got == ["message 1", "message 2", "message 3"], || {
            format!("received {got:?}; errors {:?}", d.errors)
        })?;
        check(d.drained, || {
            format!("no on_drained; errors {:?}", d.errors)
        })?;
        let line = l.wait_line(Duration::from_secs(5), |l| l.starts_with("drained "));
        check(line.as_deref() == Some("drained 7"), || {
            format!("Proton said {line:?}")
        })?;
        Ok((
            3,
            "our receiver: credit 10 + drain; the Proton sender sends messages 1..3, then \
             hands back 7 credits (`drained 7`); we get exactly those 3 messages and \
             on_drained"
                .into(),
        ))
    });

    // Idle-timeout 1 s: Proton's heartbeats keep the idle connection up for 4 s; then the
    // Proton process is frozen (SIGSTOP) and our side must close within ~2 s.
    suite.run(scenarios[3], &["idle-timeout"], || {
        let port = free_port();
        let l = listener(&["source", "--port", &port.to_string()])?;
        let idle = Duration::from_secs(1);
        let (after, _err) = frozen_peer_idle_timeout(local(port).heartbeat(idle), idle, l.pid())?;
        Ok((
            0,
            format!(
                "idle-timeout 1 s: no error for 4 s while Proton heartbeats; Proton frozen → \
                 our side closes {:.1} s later with local-idle-timeout",
                after.as_secs_f64()
            ),
        ))
    });

    // simple_send (at least once, reconnect on) sends 3000 to a Proton listener that is
    // killed after the first 500 and started again on the same port: simple_send reconnects,
    // resends what was in doubt, and the two listeners together saw every message.
    suite.run(scenarios[4], &["reconnect"], || {
        let port = free_port();
        let args = ["sink", "--port", &port.to_string()];
        let (total, before, after, dups) =
            simple_send_across_listener_restart(port, || listener(&args))?;
        Ok((
            total as u64,
            format!(
                "Proton listener killed after message 500 and restarted on the same port: \
                 simple_send still prints `all messages confirmed`; the two listeners \
                 together saw every id 1..={total} ({before} before, {after} after, {dups} resent \
                 duplicates)"
            ),
        ))
    });

    suite.finish();
}

const LISTENER_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/proton_listener.py"
);

/// Starts `proton_listener.py` and waits until it listens.
fn listener(args: &[&str]) -> Result<Proc, String> {
    let mut cmd = Command::new("python3");
    cmd.arg("-u").arg(LISTENER_SCRIPT).args(args);
    let p = Proc::spawn("proton_listener.py", &mut cmd);
    p.wait_line(Duration::from_secs(15), |l| l == "listening")
        .ok_or_else(|| {
            format!(
                "proton_listener.py did not listen: {:?}",
                tail(&p.stderr(), 5)
            )
        })?;
    Ok(p)
}

/// Connects with `opts` (an idle-timeout `idle`), stays idle for 4 × `idle` (heartbeats
/// must keep the connection up), then freezes the peer process `pid` (SIGSTOP, CONT after):
/// our side must close for idle timeout within 2 × `idle` + 1 s. Returns how long that took
/// and the error.
pub(crate) fn frozen_peer_idle_timeout(
    opts: ConnectOptions,
    idle: Duration,
    pid: u32,
) -> Result<(Duration, String), String> {
    let mut p = Probe::new(opts, "unused", LIMIT);
    p.idle_for = Some(Duration::from_secs(30));
    let opened = p.opened_flag.clone();
    let h = std::thread::spawn(move || p.run());
    let t = Instant::now();
    while !opened.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(20));
    }
    check(opened.load(Ordering::SeqCst), || "never opened".into())?;
    std::thread::sleep(4 * idle);
    signal(pid, "STOP")?;
    let frozen = Instant::now();
    let p = h.join().map_err(|_| "probe panicked".to_string());
    signal(pid, "CONT")?;
    let p = p?;
    let err = p.errors.join("; ");
    let at = p.first_error_at.ok_or("no error after the peer froze")?;
    check(at > frozen, || format!("an error before the freeze: {err}"))?;
    let after = at - frozen;
    check(after <= 2 * idle + Duration::from_secs(1), || {
        format!("idle timeout noticed only after {after:?}: {err}")
    })?;
    check(err.contains("idle-timeout"), || err.clone())?;
    Ok((after, err))
}

/// simple_send (at least once, reconnect on) sends 3000 messages to the listener `start`
/// starts on `port` (it prints `id N` for each message); the listener is killed after message
/// 500 and started again on the same port. simple_send must still print `all messages
/// confirmed`, and the two listeners together must have seen every id. Returns the total, the
/// ids seen before and after the restart, and the duplicates (resent in-doubt messages).
pub(crate) fn simple_send_across_listener_restart(
    port: u16,
    start: impl Fn() -> Result<Proc, String>,
) -> Result<(usize, usize, usize, usize), String> {
    let total = 3000usize;
    let mut first = start()?;
    let s = Proc::example(
        "simple_send",
        &[
            "-a",
            &format!("127.0.0.1:{port}/sink"),
            "-m",
            &total.to_string(),
        ],
    );
    let hit = first.wait_line(Duration::from_secs(30), |l| l == "id 500");
    check(hit.is_some(), || {
        "the first listener never got message 500".into()
    })?;
    first.kill();
    let before = ids_seen(&first.stdout());
    let second = start()?;
    let o = s.wait(LIMIT);
    check(o.stdout == ["all messages confirmed"], || {
        format!(
            "simple_send said {:?}; stderr {:?}",
            tail(&o.stdout, 3),
            tail(&o.stderr, 3)
        )
    })?;
    let after = ids_seen(&second.stdout());
    let all: BTreeSet<u64> = before.iter().chain(after.iter()).copied().collect();
    check(all == (1..=total as u64).collect(), || {
        format!(
            "{} distinct ids seen ({} before, {} after the restart)",
            all.len(),
            before.len(),
            after.len()
        )
    })?;
    check(!after.is_empty(), || "nothing after the restart".into())?;
    let dups = before.len() + after.len() - all.len();
    Ok((total, before.len(), after.len(), dups))
}

/// The ids a sink printed (`id N` lines).
fn ids_seen(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("id ")?.parse().ok())
        .collect()
}

/// Connect options for a listener on loopback `port`, no reconnect.
pub(crate) fn local(port: u16) -> ConnectOptions {
    ConnectOptions::new()
        .url(Url::parse(&format!("amqp://127.0.0.1:{port}")).expect("url"))
        .reconnect(false)
}

/// Sends `signal` (STOP, CONT) to a process we started.
pub(crate) fn signal(pid: u32, signal: &str) -> Result<(), String> {
    let st = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| format!("kill: {e}"))?;
    check(st.success(), || {
        format!("kill -{signal} {pid} failed: {st}")
    })
}
