//! fe2o3-amqp (a real client with its default settings: Nagle on, credit 200, one disposition
//! frame per message) through the example broker: 10,000 messages in order. The peer is built
//! by `scripts/fe2o3.sh` (idempotent; `scripts/test-all.sh` builds it beforehand). Not timed:
//! the throughput floor is in `scripts/bench-fe2o3.sh`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{broker, Proc, LIMIT};

/// Builds (when needed) and finds the fe2o3 peer.
fn fe2o3_peer() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(root.join("scripts/fe2o3.sh"))
        .output()
        .expect("run scripts/fe2o3.sh");
    assert!(
        out.status.success(),
        "scripts/fe2o3.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn fe2o3_sender_to_fe2o3_receiver_through_the_broker_in_order() {
    let peer = fe2o3_peer();
    let (_broker, port) = broker(&[]);
    let url = format!("amqp://127.0.0.1:{port}");
    let n = "10000";
    // The receiver checks every body against the index it expects next (order and content).
    let receiver = Proc::spawn(
        "fe2o3 receive",
        Command::new(&peer).args(["receive", &url, "fe2o3-q", n, "100"]),
    );
    let sender = Proc::spawn(
        "fe2o3 send",
        Command::new(&peer).args(["send", &url, "fe2o3-q", n, "100"]),
    );
    for (name, out) in [
        ("send", sender.wait(LIMIT)),
        ("receive", receiver.wait(LIMIT)),
    ] {
        assert!(
            out.status.success(),
            "fe2o3 {name} failed: {:?}; stderr: {:?}",
            out.status,
            out.stderr
        );
        let prefix = format!("{name} 10000 msgs in ");
        assert!(
            out.stdout.iter().any(|l| l.starts_with(&prefix)),
            "fe2o3 {name} printed {:?}",
            out.stdout
        );
    }
}
