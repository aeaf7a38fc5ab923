//! The blocking API against python-qpid-proton, both ways (`tests/python/proton_blocking.py`):
//! Proton's own `BlockingConnection` against our broker (sends blocking until accepted,
//! receive with credit, release and redelivery, a dynamic reply queue), and our blocking
//! examples (`blocking_send`, `blocking_recv`, `blocking_request` with `server`) against a
//! broker written on Proton's Container.
//!
//! If `python3 -c 'import proton'` fails, these tests fail, unless `INTEROP_OPTIONAL=1`, in
//! which case they are skipped with a message. Every run is bounded (the script's own
//! `--timeout`, and a kill by PID after [`common::LIMIT`]).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{broker, free_port, proton_available, run, sequence_lines, Proc, LIMIT};
use serde_json::Value as Json;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/proton_blocking.py"
);

fn python(args: &[&str]) -> Proc {
    let mut cmd = Command::new("python3");
    cmd.arg("-u").arg(SCRIPT).args(args);
    Proc::spawn("proton_blocking.py", &mut cmd)
}

#[test]
fn proton_blocking_connection_against_our_broker() {
    if !proton_available("proton_blocking_connection_against_our_broker") {
        return;
    }
    let (_b, port) = broker(&[]);
    let url = format!("amqp://127.0.0.1:{port}");
    let o = python(&["client", "--url", &url, "--count", "100", "--timeout", "20"]).wait(LIMIT);
    let last = o.stdout.last().cloned().unwrap_or_default();
    let v: Json = serde_json::from_str(&last)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}); stderr {:?}", o.stderr));
    assert_eq!(v["accepted"], 100, "{v}");
    let want: Vec<Json> = (0..100).map(|i| Json::String(format!("m{i}"))).collect();
    assert_eq!(v["received"], Json::Array(want));
    assert_eq!(v["redelivered"], "again");
    assert_eq!(v["reply"], "pong");
}

#[test]
fn our_blocking_examples_against_a_proton_broker() {
    if !proton_available("our_blocking_examples_against_a_proton_broker") {
        return;
    }
    let port = free_port().to_string();
    let b = python(&["broker", "--port", &port, "--timeout", "50"]);
    b.wait_line(Duration::from_secs(10), |l| l == "listening")
        .expect("the Proton broker listens");
    let a = format!("127.0.0.1:{port}/examples");
    let o = run("blocking_send", &["-a", &a, "-m", "50"]);
    assert_eq!(o.stdout, ["all messages confirmed"]);
    let o = run("blocking_recv", &["-a", &a, "-m", "50"]);
    assert_eq!(o.stdout, sequence_lines(50));
    let s = Proc::example("server", &["-a", &a]);
    s.wait_line(Duration::from_secs(10), |l| l.starts_with("Listening on"))
        .expect("server started");
    let o = run("blocking_request", &["-a", &a, "one", "two"]);
    assert_eq!(o.stdout, ["one => ONE", "two => TWO"]);
}
