//! Qpid Proton C 0.37 as the peer: Debian's `send`, `receive`, `broker` and `direct` examples
//! (built by `scripts/proton-c-examples.sh`) against our example binaries and broker, and our
//! probe against Proton C's broker over TLS (its own test certificate), with 1 MiB messages,
//! heartbeats, a frozen broker (idle timeout) and a broker restart (reconnect).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use amqp_examples::pyfmt;
use amqp_tokio::{ConnectOptions, TlsOptions, Url, VerifyMode};

use crate::common::{self, broker, free_port, sequence_lines, Proc, LIMIT};
use crate::probe::{big, check_big, Probe};
use crate::python::frozen_peer_idle_timeout;
use crate::{check, check_lines, example, install, run_ok, tail, write_pki, Suite};

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
    c_listener_at(dir, name, 0, args)
}

/// [`c_listener`] on a given port (0: any free one).
fn c_listener_at(dir: &Path, name: &str, port: u16, args: &[&str]) -> Result<(Proc, u16), String> {
    c_listener_in(dir, dir, name, port, args)
}

/// [`c_listener_at`] run from `cwd` (where `broker` looks for `ssl-certs/`).
fn c_listener_in(
    dir: &Path,
    cwd: &Path,
    name: &str,
    port: u16,
    args: &[&str],
) -> Result<(Proc, u16), String> {
    let p = Proc::spawn(
        name,
        Command::new(dir.join(name))
            .args(["127.0.0.1", &port.to_string()])
            .args(args)
            .current_dir(cwd),
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
        "tls-1mib-messages",
        "tls-heartbeats-then-frozen-broker",
        "reconnect-across-broker-restart",
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
    suite.run(
        scenarios[0],
        &["10k-in-order", "peer-as-client", "sasl-anonymous"],
        || {
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
            Ok((
                C_BULK as u64,
                format!(
                    "{C_BULK} messages in order; send {:.2} s, receive {:.2} s",
                    sent.as_secs_f64(),
                    o.elapsed.as_secs_f64()
                ),
            ))
        },
    );

    // Our clients through Proton C's broker (credit window 5): 10k in order.
    suite.run(scenarios[1], &["10k-in-order"], || {
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
        Ok((
            C_BULK as u64,
            format!(
                "{C_BULK} messages in order; simple_send {:.2} s, simple_recv {:.2} s",
                sent.as_secs_f64(),
                o.elapsed.as_secs_f64()
            ),
        ))
    });

    // Proton C's message encoding read by our client, through our broker.
    suite.run(scenarios[2], &[], || {
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
        Ok((C_SMALL as u64, format!("{C_SMALL} messages in order")))
    });

    // Proton C's direct listens and sends to our receiver.
    suite.run(scenarios[3], &[], || {
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
        Ok((
            C_SMALL as u64,
            format!("{C_SMALL} messages in order, all accepted"),
        ))
    });

    // Proton C's direct listens and receives from our sender.
    suite.run(scenarios[4], &[], || {
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
        Ok((
            C_SMALL as u64,
            format!("{C_SMALL} messages in order, all confirmed"),
        ))
    });

    // Our direct_recv listens; Proton C's send connects.
    suite.run(scenarios[5], &["peer-as-client"], || {
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
        Ok((C_SMALL as u64, format!("{C_SMALL} messages in order")))
    });

    // Our direct_send listens; Proton C's receive connects.
    suite.run(scenarios[6], &[], || {
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
        Ok((
            C_SMALL as u64,
            format!("{C_SMALL} messages in order, all confirmed"),
        ))
    });

    // Our probe to Proton C's broker over TLS (a certificate from the test's CA, verified with
    // its name), three 1 MiB messages through a queue, compared byte for byte.
    suite.run(scenarios[7], &["tls", "1mib-message"], || {
        let (_b, port, certs) = c_tls_broker(&dir)?;
        let size = 1 << 20;
        let mut p = Probe::new(c_tls_opts(&certs, port), "big", Duration::from_secs(40));
        p.to_send = (0..3).map(|i| big(i, size)).collect();
        p.expect = 3;
        check_big(&p.run(), 3, size)?;
        Ok((
            6,
            "amqps to Proton C's broker (OpenSSL), its certificate verified (test CA, name \
             127.0.0.1): 3 × 1 MiB sent, all accepted, received byte-identical in order"
                .into(),
        ))
    });

    // Over TLS, idle-timeout 1 s: heartbeats keep the idle connection up for 4 s; then the
    // broker is frozen (SIGSTOP) and our side must close for idle timeout within ~2 s.
    suite.run(scenarios[8], &["idle-timeout"], || {
        let (b, port, certs) = c_tls_broker(&dir)?;
        let idle = Duration::from_secs(1);
        let (after, _err) =
            frozen_peer_idle_timeout(c_tls_opts(&certs, port).heartbeat(idle), idle, b.pid())?;
        Ok((
            0,
            format!(
                "amqps, idle-timeout 1 s: no error for 4 s while Proton C heartbeats; broker \
                 frozen → our side closes {:.1} s later with local-idle-timeout",
                after.as_secs_f64()
            ),
        ))
    });

    // Our receiver (reconnect on) takes 100 messages from Proton C's broker; the broker is
    // killed and started again on the same port; our receiver reconnects and re-attaches and
    // takes the next 100. (Proton C's broker keeps nothing across a restart, so what was
    // queued when it died is gone: the check is that nothing is missing on either side of the
    // restart and that the link came back.)
    suite.run(scenarios[9], &["reconnect"], || {
        let port = free_port();
        let (mut b, _) = c_listener_at(&dir, "broker", port, &[])?;
        let url = Url::parse(&format!("amqp://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
        let mut p = Probe::new(ConnectOptions::new().url(url), "again", LIMIT);
        p.expect = 200;
        p.reconnects = true;
        let progress = p.progress.clone();
        let h = std::thread::spawn(move || p.run());
        let send = |n: &str| {
            run_ok(
                "c send",
                Command::new(dir.join("send")).args(["127.0.0.1", &port.to_string(), "again", n]),
            )
        };
        send("100")?;
        let t = Instant::now();
        while progress.load(Ordering::SeqCst) < 100 && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        check(progress.load(Ordering::SeqCst) == 100, || {
            format!(
                "first 100 not received: {}",
                progress.load(Ordering::SeqCst)
            )
        })?;
        b.kill();
        let down = Instant::now();
        std::thread::sleep(Duration::from_millis(500));
        let (_b2, _) = c_listener_at(&dir, "broker", port, &[])?;
        send("100")?;
        let p = h.join().map_err(|_| "probe panicked".to_string())?;
        let got: Vec<String> = p
            .received
            .iter()
            .map(|m| pyfmt::body_str(&m.body))
            .collect();
        let mut want = sequence_lines(100);
        want.extend(sequence_lines(100));
        check(got == want, || {
            format!(
                "received {} (timed out {}; errors {:?})",
                got.len(),
                p.timed_out,
                tail(&p.errors, 3)
            )
        })?;
        check(p.opened >= 2, || format!("opened {} times", p.opened))?;
        Ok((
            200,
            format!(
                "receiver reconnected and re-attached after the broker was killed and \
                 restarted on the same port: 1..=100 before and 1..=100 after, in order, \
                 {} connections opened; back {:.1} s after the kill",
                p.opened,
                down.elapsed().as_secs_f64()
            ),
        ))
    });

    suite.finish();
}

/// Proton C's broker with TLS on: run from a directory whose `ssl-certs/` holds a certificate
/// (for 127.0.0.1) from the test's CA, in place of Debian's test certificate (expired since
/// November 2025). The broker takes TLS and plain connections on the same port.
fn c_tls_broker(dir: &Path) -> Result<(Proc, u16, TempDir), String> {
    let tmp = TempDir::new("c-broker-tls")?;
    let certs = tmp.0.join("ssl-certs");
    std::fs::create_dir_all(&certs).map_err(|e| e.to_string())?;
    write_pki(&tmp.0)?;
    for (from, to) in [
        ("cert.pem", "tserver-certificate.pem"),
        ("key.pem", "tserver-private-key.pem"),
    ] {
        std::fs::copy(tmp.0.join(from), certs.join(to)).map_err(|e| e.to_string())?;
    }
    let (p, port) = c_listener_in(dir, &tmp.0, "broker", 0, &[])?;
    Ok((p, port, tmp))
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(what: &str) -> Result<TempDir, String> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "amqp-rs-interop-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&d).map_err(|e| format!("mkdir {d:?}: {e}"))?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// amqps to Proton C's TLS broker on `port`, verifying its certificate by the test's CA and
/// the name 127.0.0.1.
fn c_tls_opts(certs: &TempDir, port: u16) -> ConnectOptions {
    let ca = certs.0.join("ca.pem");
    ConnectOptions::new()
        .url(Url::parse(&format!("amqps://127.0.0.1:{port}")).expect("url"))
        .reconnect(false)
        .tls(
            TlsOptions::new()
                .ca_file(ca.to_string_lossy())
                .verify(VerifyMode::VerifyPeerName),
        )
}
