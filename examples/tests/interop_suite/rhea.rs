//! rhea 3 (npm) as the peer: `tests/interop/rhea_send.js` and `rhea_recv.js` as clients of
//! our example broker, in bulk, with outcomes, a selector, drain, SASL (PLAIN, and ANONYMOUS
//! through a SASL layer) and TLS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use amqp_tokio::{ConnectOptions, Url};

use serde_json::Value as Json;

use crate::common::{broker, free_port, sequence_lines, Proc, LIMIT};
use crate::python::{frozen_peer_idle_timeout, simple_send_across_listener_restart};
use crate::{check, check_lines, example, install, shorten, summary, tail, write_pki, Suite};

/// Messages in rhea's bulk scenarios.
const RHEA_N: usize = 10_000;

fn rhea_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// Runs a rhea script; returns its JSON summary (the last line of stdout).
pub(crate) fn rhea(prefix: &Path, script: &str, port: u16, args: &[&str]) -> Result<Json, String> {
    let mut cmd = Command::new("node");
    cmd.arg(rhea_script(script))
        .args(["--port", &port.to_string()])
        .args(args)
        .env("RHEA_PREFIX", prefix);
    let o = Proc::spawn(script, &mut cmd).wait(LIMIT);
    let v = summary(&format!("{script} {args:?}"), &o)?;
    check(
        o.status.success() && v["timed_out"] == Json::Bool(false),
        || format!("{script} {args:?} failed ({:?}): {v}", o.status),
    )?;
    Ok(v)
}

pub(crate) fn u64s(v: &Json, key: &str) -> Vec<u64> {
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
        "sasl-plain",
        "sasl-anonymous",
        "tls",
        "client-dynamic-reply-to-rhea-server",
        "idle-timeout-frozen-rhea",
        "simple_send-reconnects-to-restarted-rhea",
        "1mib-messages",
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

    suite.run(scenarios[0], &["peer-as-client"], || {
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
        Ok((RHEA_N as u64, format!("{RHEA_N} messages in order")))
    });

    // Five messages; rhea rejects 1, releases 2, modifies 3 (delivery-failed); then takes
    // what is left: 2 (delivery-count 0), 3 (delivery-count 1), 4, 5.
    suite.run(scenarios[1], &["outcomes"], || {
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
        Ok((
            5,
            "rejected gone, released back as is, modified back with delivery-count 1".into(),
        ))
    });

    suite.run(scenarios[2], &["selector"], || {
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
        Ok((
            10,
            "colour = 'green' got the 5 green, the 5 red stayed queued".into(),
        ))
    });

    suite.run(scenarios[3], &["10k-in-order"], || {
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
        Ok((RHEA_N as u64, format!("{RHEA_N} messages in order")))
    });

    suite.run(scenarios[4], &["10k-in-order"], || {
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
        Ok((RHEA_N as u64, format!("{RHEA_N} messages in order")))
    });

    // rhea asks for 10 with drain set; the broker has 3: it sends them, then answers the
    // drain (delivery-count advanced, no credit, drain = true), which rhea reports as
    // receiver_drained. The idle grace (5 s) would end the run only if that never came.
    suite.run(scenarios[5], &["drain"], || {
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
        Ok((
            3,
            format!(
                "3 messages, then drained in {:.2} s",
                t.elapsed().as_secs_f64()
            ),
        ))
    });

    // Our broker requires SASL (alice:secret): rhea with a username and password speaks
    // PLAIN; a wrong password is refused with an authentication error.
    suite.run(scenarios[6], &["sasl-plain"], || {
        let (_b, port) = broker(&["--user", "alice", "--password", "secret"]);
        let creds = ["--username", "alice", "--password", "secret"];
        let v = rhea(
            &prefix,
            "rhea_send.js",
            port,
            &[&["--address", "auth", "--count", "100"][..], &creds[..]].concat(),
        )?;
        check(v["accepted"] == 100, || format!("rhea_send: {v}"))?;
        let v = rhea(
            &prefix,
            "rhea_recv.js",
            port,
            &[&["--address", "auth", "--count", "100"][..], &creds[..]].concat(),
        )?;
        check(u64s(&v, "ids") == (1..=100).collect::<Vec<u64>>(), || {
            format!("ids: {}", shorten(&v["ids"].to_string(), 300))
        })?;
        let err = rhea_refused(
            &prefix,
            port,
            &["--username", "alice", "--password", "wrong"],
        )?;
        Ok((
            200,
            format!(
                "broker --user alice: rhea PLAIN alice:secret sends 100 (all accepted) and \
                 receives 1..=100 in order; alice:wrong is refused ({})",
                shorten(&err, 100)
            ),
        ))
    });

    // rhea with a username and no password goes through a SASL layer with ANONYMOUS: our
    // broker lets it in only with --allow-anonymous.
    suite.run(scenarios[7], &["sasl-anonymous"], || {
        let (_b, port) = broker(&[
            "--user",
            "alice",
            "--password",
            "secret",
            "--allow-anonymous",
        ]);
        let anon = ["--username", "anonymous"];
        let v = rhea(
            &prefix,
            "rhea_send.js",
            port,
            &[&["--address", "anon", "--count", "100"][..], &anon[..]].concat(),
        )?;
        check(v["accepted"] == 100, || format!("rhea_send: {v}"))?;
        let v = rhea(
            &prefix,
            "rhea_recv.js",
            port,
            &[&["--address", "anon", "--count", "100"][..], &anon[..]].concat(),
        )?;
        check(u64s(&v, "ids") == (1..=100).collect::<Vec<u64>>(), || {
            format!("ids: {}", shorten(&v["ids"].to_string(), 300))
        })?;
        let (_b2, strict) = broker(&["--user", "alice", "--password", "secret"]);
        let err = rhea_refused(&prefix, strict, &anon)?;
        Ok((
            200,
            format!(
                "SASL ANONYMOUS through rhea's SASL layer: with --allow-anonymous 100 sent \
                 (all accepted) and 1..=100 received in order; without it refused ({})",
                shorten(&err, 100)
            ),
        ))
    });

    // Our broker on amqps (certificate from the test's CA); rhea verifies it for `localhost`.
    suite.run(scenarios[8], &["tls"], || {
        let dir =
            std::env::temp_dir().join(format!("amqp-rs-interop-rhea-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        write_pki(&dir)?;
        let cert = dir.join("cert.pem").to_string_lossy().to_string();
        let key = dir.join("key.pem").to_string_lossy().to_string();
        let ca = dir.join("ca.pem").to_string_lossy().to_string();
        let (_b, port) = broker(&["--tls-cert", &cert, "--tls-key", &key]);
        let tls = ["--ca", &ca];
        let v = rhea(
            &prefix,
            "rhea_send.js",
            port,
            &[&["--address", "tls", "--count", "1000"][..], &tls[..]].concat(),
        )?;
        check(v["accepted"] == 1000, || format!("rhea_send: {v}"))?;
        let v = rhea(
            &prefix,
            "rhea_recv.js",
            port,
            &[&["--address", "tls", "--count", "1000"][..], &tls[..]].concat(),
        )?;
        check(u64s(&v, "ids") == (1..=1000).collect::<Vec<u64>>(), || {
            format!("ids: {}", shorten(&v["ids"].to_string(), 300))
        })?;
        check(v["bodies_ok"] == true, || "bodies altered".into())?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok((
            2000,
            "rhea over TLS to our broker's amqps listener, verifying its certificate \
             (test CA, name localhost): 1000 sent, all accepted, 1..=1000 received in order \
             with intact bodies"
                .into(),
        ))
    });

    // Our `client` example against a rhea listener that acts as the server: our dynamic
    // receiver gets its address from rhea, and rhea answers each request on it.
    suite.run(scenarios[9], &["dynamic-reply-to"], || {
        let port = free_port();
        let _l = rhea_listener(&prefix, port)?;
        let reqs = ["one", "Two", "three four"];
        let mut args = vec!["-a".to_string(), format!("127.0.0.1:{port}/requests")];
        args.extend(reqs.iter().map(|r| r.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = example("client", &args)?;
        let want: Vec<String> = reqs
            .iter()
            .map(|r| format!("{r} => {}", r.to_uppercase()))
            .collect();
        check(o.stdout == want, || format!("client said {:?}", o.stdout))?;
        Ok((
            6,
            "our client's dynamic receiver gets a node address from rhea (dynamic-1) and uses \
             it as reply-to; rhea answers the 3 requests on it: `one => ONE`, `Two => TWO`, \
             `three four => THREE FOUR`, in order"
                .into(),
        ))
    });

    // Idle-timeout 1 s: rhea's heartbeats keep the idle connection up for 4 s; then the rhea
    // process is frozen (SIGSTOP) and our side must close within ~2 s.
    suite.run(scenarios[10], &["idle-timeout"], || {
        let port = free_port();
        let l = rhea_listener(&prefix, port)?;
        let idle = Duration::from_secs(1);
        let opts = ConnectOptions::new()
            .url(Url::parse(&format!("amqp://127.0.0.1:{port}")).expect("url"))
            .reconnect(false)
            .heartbeat(idle);
        let (after, err) = frozen_peer_idle_timeout(opts, idle, l.pid())?;
        Ok((
            0,
            format!(
                "idle-timeout 1 s: no error for 4 s while rhea heartbeats; rhea frozen → our \
                 side closes {:.1} s later ({})",
                after.as_secs_f64(),
                shorten(&err, 80)
            ),
        ))
    });

    // simple_send (at least once, reconnect on) sends 3000 to a rhea listener that is killed
    // after message 500 and started again on the same port.
    suite.run(scenarios[11], &["reconnect"], || {
        let port = free_port();
        let (total, before, after, dups) =
            simple_send_across_listener_restart(port, || rhea_listener(&prefix, port))?;
        Ok((
            total as u64,
            format!(
                "rhea listener killed after message 500 and restarted on the same port: \
                 simple_send still prints `all messages confirmed`; the two listeners together \
                 saw every id 1..={total} ({before} before, {after} after, {dups} resent \
                 duplicates)"
            ),
        ))
    });

    // Three 1 MiB data bodies from rhea through our broker to rhea, compared byte for byte.
    suite.run(scenarios[12], &["1mib-message"], || {
        let (_b, port) = broker(&[]);
        let size = (1 << 20).to_string();
        let v = rhea(
            &prefix,
            "rhea_send.js",
            port,
            &["--address", "big", "--count", "3", "--size", &size],
        )?;
        check(v["accepted"] == 3, || format!("rhea_send: {v}"))?;
        let v = rhea(
            &prefix,
            "rhea_recv.js",
            port,
            &["--address", "big", "--count", "3", "--size", &size],
        )?;
        check(u64s(&v, "ids") == [1, 2, 3], || format!("ids: {v}"))?;
        check(v["bodies_ok"] == true, || {
            "a 1 MiB body came back altered".into()
        })?;
        Ok((
            6,
            "rhea sends 3 × 1 MiB data sections through our broker (all accepted); rhea \
             receives ids 1, 2, 3 with each body byte-identical"
                .into(),
        ))
    });

    suite.finish();
}

/// Starts `rhea_listen.js` on `port` and waits until it listens.
fn rhea_listener(prefix: &Path, port: u16) -> Result<Proc, String> {
    let mut cmd = Command::new("node");
    cmd.arg(rhea_script("rhea_listen.js"))
        .args(["--port", &port.to_string()])
        .env("RHEA_PREFIX", prefix);
    let p = Proc::spawn("rhea_listen.js", &mut cmd);
    p.wait_line(Duration::from_secs(15), |l| l == "listening")
        .ok_or_else(|| format!("rhea_listen.js did not listen: {:?}", tail(&p.stderr(), 5)))?;
    Ok(p)
}

/// Runs rhea_send.js with `args`, expecting the broker to refuse it; returns rhea's error.
fn rhea_refused(prefix: &Path, port: u16, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("node");
    cmd.arg(rhea_script("rhea_send.js"))
        .args([
            "--port",
            &port.to_string(),
            "--address",
            "refused",
            "--count",
            "1",
            "--timeout",
            "10",
        ])
        .args(args)
        .env("RHEA_PREFIX", prefix);
    let o = Proc::spawn("rhea_send.js", &mut cmd).wait(LIMIT);
    let v = summary(&format!("rhea_send.js {args:?}"), &o)?;
    check(!o.status.success() && v["accepted"] == 0, || {
        format!("rhea_send {args:?} was not refused: {v}")
    })?;
    check(v["timed_out"] == false, || {
        format!("timed out instead of refused: {v}")
    })?;
    Ok(v["errors"].to_string())
}
