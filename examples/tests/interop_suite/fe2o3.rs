//! fe2o3-amqp 0.18 (Rust, crates.io) as the peer: `scripts/fe2o3-peer` (built by
//! `scripts/fe2o3.sh`) as a client of our example broker and listeners, and, with fe2o3's
//! acceptor, as a listener our probe and `simple_send` connect to. The peer prints a JSON
//! summary as its last line (`send`, `receive`, `request`) or one line per event (`listen`,
//! `idle`); every scenario checks content, order and outcomes from it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use amqp_tokio::amqp_proto::message::Message;
use serde_json::Value as Json;

use crate::common::{broker, free_port, sequence_lines, Proc, LIMIT};
use crate::probe::{Probe, Then};
use crate::python::{frozen_peer_idle_timeout, local, signal, simple_send_across_listener_restart};
use crate::rhea::u64s;
use crate::{check, check_lines, example, install, shorten, summary, tail, write_pki, Suite};

/// Messages in the bulk scenarios.
const N: usize = 10_000;

/// Runs the peer with `args`; its JSON summary (the last line of stdout), which must say no
/// errors unless `refused` (then the run must fail and the summary say why).
fn peer(bin: &Path, args: &[&str], refused: bool) -> Result<Json, String> {
    let mut cmd = Command::new(bin);
    cmd.args(args).arg("--json");
    let o = Proc::spawn("fe2o3-peer", &mut cmd).wait(LIMIT);
    let v = summary(&format!("fe2o3-peer {args:?}"), &o)?;
    let errors = v["errors"].as_array().map_or(0, Vec::len);
    if refused {
        check(!o.status.success() && errors > 0, || {
            format!("fe2o3-peer {args:?} was not refused: {v}")
        })?;
    } else {
        check(o.status.success() && errors == 0, || {
            format!("fe2o3-peer {args:?} failed ({}): {v}", o.status)
        })?;
    }
    Ok(v)
}

/// `send URL ADDRESS COUNT SIZE extra…`: checks that all `count` were accepted.
fn send(
    bin: &Path,
    url: &str,
    address: &str,
    count: usize,
    size: usize,
    extra: &[&str],
) -> Result<(), String> {
    let (c, s) = (count.to_string(), size.to_string());
    let v = peer(
        bin,
        &[&["send", url, address, &c, &s][..], extra].concat(),
        false,
    )?;
    check(v["accepted"] == count, || {
        format!("fe2o3 send: {}", shorten(&v.to_string(), 300))
    })
}

/// `receive URL ADDRESS COUNT SIZE extra…`: the summary, bodies checked.
fn receive(
    bin: &Path,
    url: &str,
    address: &str,
    count: usize,
    size: usize,
    extra: &[&str],
) -> Result<Json, String> {
    let (c, s) = (count.to_string(), size.to_string());
    let v = peer(
        bin,
        &[&["receive", url, address, &c, &s][..], extra].concat(),
        false,
    )?;
    check(v["bodies_ok"] == true, || {
        format!(
            "fe2o3 receive: bodies altered: {}",
            shorten(&v.to_string(), 300)
        )
    })?;
    Ok(v)
}

fn ids_are(v: &Json, want: impl IntoIterator<Item = u64>) -> Result<(), String> {
    let want: Vec<u64> = want.into_iter().collect();
    check(u64s(v, "ids") == want, || {
        format!(
            "ids {}, expected {}",
            shorten(&v["ids"].to_string(), 200),
            shorten(&format!("{want:?}"), 200)
        )
    })
}

/// Starts the peer's listener (`sink` or `source`) on `port`; waits until it listens.
fn listener(bin: &Path, role: &str, port: u16, extra: &[&str]) -> Result<Proc, String> {
    let p = Proc::spawn(
        "fe2o3-peer listen",
        Command::new(bin)
            .args(["listen", role, "--port", &port.to_string()])
            .args(extra),
    );
    p.wait_line(Duration::from_secs(15), |l| l == "listening")
        .ok_or_else(|| format!("fe2o3 listener did not listen: {:?}", tail(&p.stderr(), 5)))?;
    Ok(p)
}

#[test]
fn interop_fe2o3() {
    let mut suite = Suite::new("fe2o3");
    let scenarios = [
        "send->broker->receive",
        "send->broker->simple_recv",
        "simple_send->broker->receive",
        "sasl-anonymous",
        "sasl-plain",
        "our-plain-client-to-fe2o3-listener",
        "scram-sha256-to-our-broker",
        "tls",
        "1mib-messages",
        "receiver-reject-release-modify",
        "sender-sees-reject-release-modify",
        "drain-our-broker",
        "our-drain-to-fe2o3-sender",
        "idle-timeout-frozen-fe2o3",
        "fe2o3-idle-timeout-frozen-broker",
        "dynamic-reply-to",
        "selector",
        "simple_send-reconnects-to-restarted-fe2o3",
        "fe2o3-reconnects-to-restarted-direct_recv",
    ];
    let bin = match install("fe2o3.sh") {
        Ok(b) => b,
        Err(e) => {
            suite.unavailable(&scenarios, &e);
            return suite.finish();
        }
    };
    let bin = bin.as_path();

    suite.run(scenarios[0], &["peer-as-client", "10k-in-order"], || {
        let (_b, port) = broker(&[]);
        let url = format!("amqp://127.0.0.1:{port}");
        send(bin, &url, "bulk", N, 100, &[])?;
        let v = receive(bin, &url, "bulk", N, 100, &[])?;
        ids_are(&v, 1..=N as u64)?;
        Ok((
            2 * N as u64,
            format!(
                "fe2o3 sends {N} (each awaited: all accepted) to our broker; fe2o3 receives ids \
                 1..={N} in order, each 100-byte body the one sent"
            ),
        ))
    });

    suite.run(scenarios[1], &["10k-in-order"], || {
        let (_b, port) = broker(&[]);
        let url = format!("amqp://127.0.0.1:{port}");
        send(bin, &url, "to-rust", N, 0, &["--sequence-body"])?;
        let o = example("simple_recv", &["-a", &format!("127.0.0.1:{port}/to-rust"), "-m", &N.to_string()])?;
        check_lines("simple_recv", &o.stdout, &sequence_lines(N))?;
        Ok((
            N as u64,
            format!("fe2o3 sends {N} (all accepted); simple_recv prints {{'sequence': 1}}..{{'sequence': {N}}} in order"),
        ))
    });

    suite.run(scenarios[2], &["10k-in-order"], || {
        let (_b, port) = broker(&[]);
        let o = example("simple_send", &["-a", &format!("127.0.0.1:{port}/to-fe2o3"), "-m", &N.to_string()])?;
        check(o.stdout == ["all messages confirmed"], || {
            format!("simple_send said {:?}", tail(&o.stdout, 3))
        })?;
        let v = receive(bin, &format!("amqp://127.0.0.1:{port}"), "to-fe2o3", N, 0, &[])?;
        ids_are(&v, 1..=N as u64)?;
        Ok((
            N as u64,
            format!("simple_send's {N} all accepted; fe2o3 receives message-ids 1..={N} in order, each body {{'sequence': id}}"),
        ))
    });

    // fe2o3 with SaslProfile::Anonymous; our broker lets it in only with --allow-anonymous.
    suite.run(scenarios[3], &["sasl-anonymous"], || {
        let (_b, port) = broker(&[
            "--user",
            "alice",
            "--password",
            "secret",
            "--allow-anonymous",
        ]);
        let url = format!("amqp://127.0.0.1:{port}");
        let anon = ["--sasl", "anonymous"];
        send(bin, &url, "anon", 100, 0, &anon)?;
        let v = receive(bin, &url, "anon", 100, 0, &anon)?;
        ids_are(&v, 1..=100)?;
        let (_b2, strict) = broker(&["--user", "alice", "--password", "secret"]);
        let url = format!("amqp://127.0.0.1:{strict}");
        let v = peer(
            bin,
            &["send", &url, "refused", "1", "0", "--sasl", "anonymous"],
            true,
        )?;
        check(v["accepted"] == 0, || format!("refused send: {v}"))?;
        Ok((
            200,
            format!(
                "fe2o3 SASL ANONYMOUS to broker --allow-anonymous: 100 sent (all accepted), \
                 1..=100 received in order; without --allow-anonymous refused ({})",
                shorten(&v["errors"].to_string(), 100)
            ),
        ))
    });

    suite.run(scenarios[4], &["sasl-plain"], || {
        let (_b, port) = broker(&["--user", "alice", "--password", "secret"]);
        let url = format!("amqp://127.0.0.1:{port}");
        let creds = ["--sasl", "plain", "--user", "alice", "--password", "secret"];
        send(bin, &url, "auth", 100, 0, &creds)?;
        let v = receive(bin, &url, "auth", 100, 0, &creds)?;
        ids_are(&v, 1..=100)?;
        let args = [
            "send",
            &url,
            "refused",
            "1",
            "0",
            "--sasl",
            "plain",
            "--user",
            "alice",
            "--password",
            "wrong",
        ];
        let v = peer(bin, &args, true)?;
        check(v["accepted"] == 0, || format!("refused send: {v}"))?;
        Ok((
            200,
            format!(
                "broker --user alice: fe2o3 PLAIN alice:secret sends 100 (all accepted) and \
                 receives 1..=100 in order; alice:wrong is refused ({})",
                shorten(&v["errors"].to_string(), 100)
            ),
        ))
    });

    // The other way round: our probe authenticates with PLAIN to fe2o3's listener (its
    // SaslPlainMechanism, alice:secret) and sends 100; a wrong password is refused.
    suite.run(scenarios[5], &["sasl-plain"], || {
        let port = free_port();
        let creds = ["--user", "alice", "--password", "secret"];
        let l = listener(bin, "sink", port, &creds)?;
        let plain = |password: &str| {
            local(port)
                .user("alice")
                .password(password)
                .allowed_mechs("PLAIN")
                .allow_insecure_mechs(true)
        };
        let mut p = Probe::new(plain("secret"), "sink", Duration::from_secs(30));
        p.to_send = (1..=100u64)
            .map(|i| {
                Message::builder()
                    .message_id(i)
                    .body(format!("message {i}"))
                    .build()
            })
            .collect();
        let p = p.run();
        check(p.outcomes == vec!["accepted"; 100], || {
            format!("outcomes {:?}; errors {:?}", p.outcomes, p.errors)
        })?;
        let want: Vec<String> = (1..=100).map(|i| format!("id {i}")).collect();
        let t = Instant::now();
        while l.stdout().len() < 101 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let got: Vec<String> = l
            .stdout()
            .into_iter()
            .filter(|x| x.starts_with("id "))
            .collect();
        check(got == want, || {
            format!("fe2o3 printed {}", shorten(&format!("{got:?}"), 300))
        })?;
        let mut bad = Probe::new(plain("wrong"), "sink", Duration::from_secs(30));
        bad.to_send = vec![Message::builder().message_id(0u64).body("refused").build()];
        let bad = bad.run();
        let err = bad.errors.join("; ");
        check(bad.outcomes.is_empty() && !bad.timed_out, || {
            format!(
                "wrong password: outcomes {:?}, timed out {}, errors {err}",
                bad.outcomes, bad.timed_out
            )
        })?;
        check(
            err.contains("unauthorized") || err.to_lowercase().contains("auth"),
            || format!("no authentication error: {err}"),
        )?;
        Ok((
            100,
            format!(
                "our client PLAIN alice:secret to fe2o3's listener (SaslPlainMechanism): 100 \
                 sent, all accepted, fe2o3 printed ids 1..=100 in order; alice:wrong is refused \
                 ({})",
                shorten(&err, 100)
            ),
        ))
    });

    // fe2o3's SCRAM-SHA-256 client (its own implementation) against our broker's SCRAM
    // server: 100 each way as alice:secret; alice:wrong refused.
    suite.run(scenarios[6], &["peer-as-client"], || {
        let (_b, port) = broker(&["--user", "alice", "--password", "secret"]);
        let url = format!("amqp://127.0.0.1:{port}");
        let scram = |pw| {
            [
                "--sasl",
                "scram-sha256",
                "--user",
                "alice",
                "--password",
                pw,
            ]
        };
        send(bin, &url, "scram", 100, 0, &scram("secret"))?;
        let v = receive(bin, &url, "scram", 100, 0, &scram("secret"))?;
        ids_are(&v, 1..=100)?;
        let args = [&["send", &url, "refused", "1", "0"][..], &scram("wrong")].concat();
        let v = peer(bin, &args, true)?;
        check(v["accepted"] == 0, || format!("refused send: {v}"))?;
        Ok((
            200,
            format!(
                "fe2o3 SCRAM-SHA-256 alice:secret to broker --user alice: 100 sent (all \
                 accepted), 1..=100 received in order; alice:wrong refused ({})",
                shorten(&v["errors"].to_string(), 100)
            ),
        ))
    });

    // Our broker on amqps, its certificate from the test's CA; fe2o3 (rustls) trusts only that
    // CA and checks the name `localhost`. A client trusting another CA fails the handshake.
    suite.run(scenarios[7], &["tls"], || {
        let dir =
            std::env::temp_dir().join(format!("amqp-rs-interop-fe2o3-tls-{}", std::process::id()));
        let other = dir.join("other");
        std::fs::create_dir_all(&other).map_err(|e| e.to_string())?;
        write_pki(&dir)?;
        write_pki(&other)?;
        let path = |d: &Path, f: &str| d.join(f).to_string_lossy().to_string();
        let (cert, key, ca) = (
            path(&dir, "cert.pem"),
            path(&dir, "key.pem"),
            path(&dir, "ca.pem"),
        );
        let (_b, port) = broker(&["--tls-cert", &cert, "--tls-key", &key]);
        let url = format!("amqps://localhost:{port}");
        send(bin, &url, "tls", 1000, 100, &["--ca", &ca])?;
        let v = receive(bin, &url, "tls", 1000, 100, &["--ca", &ca])?;
        ids_are(&v, 1..=1000)?;
        let wrong = path(&other, "ca.pem");
        let v = peer(bin, &["send", &url, "tls", "1", "0", "--ca", &wrong], true)?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok((
            2000,
            format!(
                "fe2o3 (rustls) over TLS to our broker's amqps listener, verifying its \
                 certificate (test CA, name localhost): 1000 sent, all accepted, 1..=1000 \
                 received in order with intact 100-byte bodies; trusting another CA it fails \
                 ({})",
                shorten(&v["errors"].to_string(), 100)
            ),
        ))
    });

    suite.run(scenarios[8], &["1mib-message"], || {
        let (_b, port) = broker(&[]);
        let url = format!("amqp://127.0.0.1:{port}");
        let size = 1 << 20;
        send(bin, &url, "big", 3, size, &[])?;
        let v = receive(bin, &url, "big", 3, size, &[])?;
        ids_are(&v, 1..=3)?;
        Ok((
            6,
            "fe2o3 sends 3 × 1 MiB string bodies through our broker (all accepted); fe2o3 \
             receives ids 1, 2, 3, each body byte-identical"
                .into(),
        ))
    });

    // Five messages; fe2o3 (credit 3, granted once) rejects 1, releases 2, modifies 3
    // (delivery-failed); the next receiver gets 2 (delivery-count 0), 3 (1), 4, 5.
    suite.run(scenarios[9], &["outcomes"], || {
        let (_b, port) = broker(&[]);
        let url = format!("amqp://127.0.0.1:{port}");
        send(bin, &url, "oc", 5, 0, &[])?;
        let plan = ["--credit", "3", "--dispositions", "reject,release,modify"];
        let v = receive(bin, &url, "oc", 3, 0, &plan)?;
        ids_are(&v, [1, 2, 3])?;
        let v = receive(bin, &url, "oc", 0, 0, &["--grace", "0.5"])?;
        ids_are(&v, [2, 3, 4, 5])?;
        check(u64s(&v, "delivery_counts") == [0, 1, 0, 0], || {
            format!("delivery counts: {v}")
        })?;
        Ok((
            5,
            "fe2o3 rejects 1, releases 2, modifies 3 (delivery-failed): rejected gone, \
             released back as is, modified back with delivery-count 1 (next receiver: ids 2, \
             3, 4, 5, delivery-counts 0, 1, 0, 0)"
                .into(),
        ))
    });

    // fe2o3's listener sends 4 on the link our probe attaches; the probe rejects 1, releases
    // 2, modifies 3, accepts 4; fe2o3 reports each outcome its send got.
    suite.run(scenarios[10], &["outcomes"], || {
        let port = free_port();
        let l = listener(bin, "source", port, &["--count", "4"])?;
        let mut p = Probe::new(local(port), "src", Duration::from_secs(20));
        p.expect = 4;
        p.plan = vec![Then::Reject, Then::Release, Then::Modify, Then::Accept];
        let p = p.run();
        let got: Vec<&str> = p
            .received
            .iter()
            .map(|m| m.body_str().unwrap_or("?"))
            .collect();
        check(
            got == ["message 1", "message 2", "message 3", "message 4"],
            || format!("received {got:?}; errors {:?}", p.errors),
        )?;
        let sent = l.wait_line(Duration::from_secs(10), |l| l == "sent 4");
        check(sent.is_some(), || format!("fe2o3 said {:?}", l.stdout()))?;
        let outcomes: Vec<String> = l
            .stdout()
            .into_iter()
            .filter(|l| l.starts_with("outcome "))
            .collect();
        let want = [
            "outcome 1 rejected",
            "outcome 2 released",
            "outcome 3 modified",
            "outcome 4 accepted",
        ];
        check(outcomes == want, || format!("fe2o3 reported {outcomes:?}"))?;
        Ok((
            4,
            "fe2o3's sender (its acceptor) sends messages 1..4 to our probe, which rejects 1, \
             releases 2, modifies 3, accepts 4; fe2o3 reports rejected, released, modified, \
             accepted, in order"
                .into(),
        ))
    });

    // fe2o3 grants 10 credits once and drains; our broker has 3: it sends them and answers
    // the drain (credit used up). fe2o3 has no drained event, so the peer checks the effect: a
    // message sent afterwards does not come on the drained link within 1 s (without the drain
    // answer 7 credits would remain and it would), and comes once fe2o3 grants 1 credit.
    suite.run(scenarios[11], &["drain"], || {
        let (_b, port) = broker(&[]);
        let url = format!("amqp://127.0.0.1:{port}");
        send(bin, &url, "dr", 3, 0, &[])?;
        let v = receive(
            bin,
            &url,
            "dr",
            0,
            0,
            &["--credit", "10", "--drain", "--grace", "1"],
        )?;
        ids_are(&v, [1, 2, 3])?;
        check(
            v["late_before_credit"] == false && v["late_after_credit"] == true,
            || format!("after the drain: {v}"),
        )?;
        Ok((
            4,
            "fe2o3: credit 10 + drain on a queue of 3: gets ids 1, 2, 3; a 4th message sent \
             afterwards does not come within 1 s (our broker used up the credit answering the \
             drain) and comes after fe2o3 grants 1 credit"
                .into(),
        ))
    });

    // Our receiver grants 10 credits with drain (one flow) to fe2o3's sender (its acceptor),
    // whose application has 3 messages to send. fe2o3 answers the drain at once:
    // delivery-count advanced by all 10, nothing sent (it counts as available only what the
    // application has already handed to the link, and the credit is gone before its `send`
    // sees it). Our side must report on_drained with no message and no error.
    suite.run(scenarios[12], &["drain"], || {
        let port = free_port();
        let mut l = listener(bin, "source", port, &["--count", "3"])?;
        let mut d = Probe::new(local(port), "src", Duration::from_secs(20));
        d.drain = true;
        d.credit = 10;
        let d = d.run();
        check(
            d.drained && d.received.is_empty() && d.errors.is_empty(),
            || {
                format!(
                    "drained {}, received {}, errors {:?}",
                    d.drained,
                    d.received.len(),
                    d.errors
                )
            },
        )?;
        check(l.is_running() && l.stdout() == ["listening"], || {
            format!(
                "fe2o3 said {:?}; stderr {:?}",
                l.stdout(),
                tail(&l.stderr(), 3)
            )
        })?;
        Ok((
            0,
            "our receiver: credit 10 + drain in one flow to fe2o3's sender, whose application \
             has 3 to send: fe2o3 answers the drain at once with all 10 credits used and no \
             message (see Findings); we report on_drained, no message, no error"
                .into(),
        ))
    });

    // Idle-timeout 1 s: fe2o3's listener heartbeats keep the idle connection up for 4 s;
    // then the fe2o3 process is frozen (SIGSTOP) and our side must close within ~2 s.
    suite.run(scenarios[13], &["idle-timeout"], || {
        let port = free_port();
        let l = listener(bin, "sink", port, &[])?;
        let idle = Duration::from_secs(1);
        let (after, err) = frozen_peer_idle_timeout(local(port).heartbeat(idle), idle, l.pid())?;
        Ok((
            0,
            format!(
                "idle-timeout 1 s: no error for 4 s while fe2o3 heartbeats; fe2o3 frozen → our \
                 side closes {:.1} s later ({})",
                after.as_secs_f64(),
                shorten(&err, 80)
            ),
        ))
    });

    // The other way: fe2o3 announces idle-timeout 1 s to our broker, which must heartbeat;
    // after 4 s quiet the broker is frozen and fe2o3 must end the connection.
    suite.run(scenarios[14], &["idle-timeout"], || {
        let (b, port) = broker(&[]);
        let p = Proc::spawn(
            "fe2o3-peer idle",
            Command::new(bin).args([
                "idle",
                &format!("amqp://127.0.0.1:{port}"),
                "--idle-timeout-ms",
                "1000",
                "--hold",
                "20",
            ]),
        );
        p.wait_line(Duration::from_secs(15), |l| l == "opened")
            .ok_or_else(|| format!("fe2o3 never opened: {:?}", tail(&p.stderr(), 3)))?;
        std::thread::sleep(Duration::from_secs(4));
        check(p.stdout() == ["opened"], || {
            format!("fe2o3 said {:?} while our broker heartbeat", p.stdout())
        })?;
        signal(b.pid(), "STOP")?;
        let frozen = Instant::now();
        let closed = p.wait_line(Duration::from_secs(5), |l| l.starts_with("closed after"));
        let after = frozen.elapsed();
        signal(b.pid(), "CONT")?;
        let closed = closed.ok_or("fe2o3 kept the connection to the frozen broker")?;
        check(after <= Duration::from_secs(3), || {
            format!("fe2o3 noticed only after {after:?}")
        })?;
        Ok((
            0,
            format!(
                "fe2o3 announces idle-timeout 1 s: no error for 4 s while our broker heartbeats; \
                 broker frozen → fe2o3 ends the connection {:.1} s later ({})",
                after.as_secs_f64(),
                shorten(&closed, 80)
            ),
        ))
    });

    // fe2o3 asks our broker for a dynamic node, sends 3 requests with it as reply-to to our
    // `server` example, and gets the answers there.
    suite.run(scenarios[15], &["dynamic-reply-to"], || {
        let (_b, port) = broker(&[]);
        let _server = Proc::example("server", &["-a", &format!("127.0.0.1:{port}/requests")]);
        let url = format!("amqp://127.0.0.1:{port}");
        let mut cmd = Command::new(bin);
        cmd.args(["request", &url, "requests", "one", "Two", "three four"]);
        let o = Proc::spawn("fe2o3-peer request", &mut cmd).wait(LIMIT);
        let v = summary("fe2o3-peer request", &o)?;
        check(o.status.success(), || format!("request failed: {v}"))?;
        let reply_to = v["reply_to"].as_str().unwrap_or("");
        check(!reply_to.is_empty(), || format!("no reply-to: {v}"))?;
        check(
            v["outcomes"] == serde_json::json!(["accepted", "accepted", "accepted"]),
            || format!("outcomes: {v}"),
        )?;
        check(
            v["replies"] == serde_json::json!(["ONE", "TWO", "THREE FOUR"]),
            || format!("replies: {v}"),
        )?;
        Ok((
            6,
            format!(
                "fe2o3's dynamic receiver gets a node address from our broker ({}) and uses it \
                 as reply-to; our server answers the 3 requests there: ONE, TWO, THREE FOUR, in \
                 order; the requests all accepted",
                shorten(reply_to, 40)
            ),
        ))
    });

    suite.run(scenarios[16], &["selector"], || {
        let (_b, port) = broker(&[]);
        let url = format!("amqp://127.0.0.1:{port}");
        send(bin, &url, "colours", 10, 0, &["--colour"])?;
        let v = receive(
            bin,
            &url,
            "colours",
            0,
            0,
            &["--grace", "0.5", "--selector", "colour = 'green'"],
        )?;
        ids_are(&v, [1, 3, 5, 7, 9])?;
        let v = receive(bin, &url, "colours", 0, 0, &["--grace", "0.5"])?;
        ids_are(&v, [2, 4, 6, 8, 10])?;
        Ok((
            10,
            "fe2o3's receiver with the filter apache.org:selector-filter:string \
             colour = 'green' gets the 5 green (ids 1, 3, 5, 7, 9); the 5 red stayed queued \
             for a plain receiver"
                .into(),
        ))
    });

    // simple_send (at least once, reconnect on) sends 3000 to fe2o3's listener, which is
    // killed after message 500 and started again on the same port.
    suite.run(scenarios[17], &["reconnect"], || {
        let port = free_port();
        let (total, before, after, dups) =
            simple_send_across_listener_restart(port, || listener(bin, "sink", port, &[]))?;
        Ok((
            total as u64,
            format!(
                "fe2o3 listener killed after message 500 and restarted on the same port: \
                 simple_send still prints `all messages confirmed`; the two listeners together \
                 saw every id 1..={total} ({before} before, {after} after, {dups} resent \
                 duplicates)"
            ),
        ))
    });

    // fe2o3 has no reconnect of its own: the peer's send loop reconnects (for up to 20 s
    // after a failure) and sends again the message whose outcome it did not get. Our
    // direct_recv is killed after message 500 and started again on the same port.
    suite.run(scenarios[18], &["reconnect"], || {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}/sink");
        let total = 3000usize;
        let mut first = Proc::example("direct_recv", &["-a", &addr, "-m", "0"]);
        first.listening_port();
        let url = format!("amqp://127.0.0.1:{port}");
        let c = total.to_string();
        let mut cmd = Command::new(bin);
        cmd.args([
            "send",
            &url,
            "sink",
            &c,
            "0",
            "--sequence-body",
            "--reconnect",
            "20",
            "--json",
        ]);
        let s = Proc::spawn("fe2o3-peer send", &mut cmd);
        let hit = first.wait_line(Duration::from_secs(30), |l| l == "{'sequence': 500}");
        check(hit.is_some(), || "direct_recv never got message 500".into())?;
        first.kill();
        let before = sequences(&first.stdout());
        let second = Proc::example("direct_recv", &["-a", &addr, "-m", "0"]);
        let o = s.wait(LIMIT);
        let v = summary("fe2o3-peer send --reconnect", &o)?;
        check(o.status.success() && v["accepted"] == total, || {
            format!("fe2o3 send: {}", shorten(&v.to_string(), 400))
        })?;
        let connections = v["connections"].as_u64().unwrap_or(0);
        check(connections >= 2, || format!("fe2o3 never reconnected: {v}"))?;
        let t = Instant::now();
        while sequences(&second.stdout()).len() < total - before.len()
            && t.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = sequences(&second.stdout());
        let all: BTreeSet<u64> = before.iter().chain(after.iter()).copied().collect();
        check(all == (1..=total as u64).collect(), || {
            format!(
                "{} distinct ids seen ({} before, {} after the restart)",
                all.len(),
                before.len(),
                after.len()
            )
        })?;
        let dups = before.len() + after.len() - all.len();
        Ok((
            total as u64,
            format!(
                "direct_recv killed after message 500 and restarted on the same port: the \
                 peer's own reconnect loop (fe2o3 has none) opened {connections} connections \
                 and got all {total} accepted; the two direct_recvs together printed every \
                 sequence 1..={total} ({} before, {} after, {dups} resent duplicates)",
                before.len(),
                after.len()
            ),
        ))
    });

    suite.finish();
}

/// The sequence numbers direct_recv printed (`{'sequence': N}` lines).
fn sequences(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| {
            l.strip_prefix("{'sequence': ")?
                .strip_suffix('}')?
                .parse()
                .ok()
        })
        .collect()
}
