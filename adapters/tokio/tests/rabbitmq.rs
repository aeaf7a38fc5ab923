//! Our tokio client against RabbitMQ's AMQP 1.0 plugin (a peer we did not write): SASL PLAIN
//! and ANONYMOUS, sending and receiving with outcomes.
//!
//! The node is started by `scripts/rabbitmq.sh` on loopback. Without `rabbitmq-server`
//! installed the test fails, unless `INTEROP_OPTIONAL=1`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use amqp_tokio::amqp_proto::message::Message;
use amqp_tokio::Container;
use amqp_tokio::{ConnectOptions, Event, MessagingHandler, Url};

struct Node {
    dir: PathBuf,
    port: u16,
}

impl Node {
    fn start() -> Option<Node> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = std::env::temp_dir().join(format!("amqp-rs-rabbitmq-{}", std::process::id()));
        let out = Command::new(root.join("scripts/rabbitmq.sh"))
            .arg("start")
            .arg(&dir)
            .output()
            .ok()?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr).to_string();
            if std::env::var("INTEROP_OPTIONAL").is_ok() {
                eprintln!("skipping: {msg}");
                return None;
            }
            panic!("cannot start RabbitMQ: {msg}");
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let port = text.split_whitespace().next()?.parse().ok()?;
        Some(Node { dir, port })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let _ = Command::new(root.join("scripts/rabbitmq.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct RoundTrip {
    opts: Option<ConnectOptions>,
    queue: String,
    total: usize,
    sent: usize,
    accepted: usize,
    received: Vec<String>,
    errors: Vec<String>,
}

impl MessagingHandler for RoundTrip {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let c = e
            .container_mut()
            .connect_with(self.opts.take().unwrap())
            .unwrap();
        e.container_mut()
            .create_receiver(c, self.queue.as_str())
            .unwrap();
        e.container_mut()
            .create_sender(c, self.queue.as_str())
            .unwrap();
        e.container_mut().schedule(Duration::from_secs(20));
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        while self.sent < self.total && e.credit() > 0 {
            e.send(&Message::new(format!("m{}", self.sent))).unwrap();
            self.sent += 1;
        }
    }
    fn on_accepted(&mut self, _e: &mut Event<'_>) {
        self.accepted += 1;
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        self.received
            .push(e.message().unwrap().body_str().unwrap_or("").to_string());
        if self.received.len() == self.total {
            e.container_mut().stop();
        }
    }
    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        self.errors.push(
            e.transport_error()
                .map_or_else(|| "".to_string(), ToString::to_string),
        );
        e.container_mut().stop();
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.errors.push("timed out".into());
        e.container_mut().stop();
    }
}

fn round_trip(port: u16, mech: &str, user: Option<(&str, &str)>, queue: &str) -> RoundTrip {
    let mut opts = ConnectOptions::new()
        .url(Url::parse(&format!("amqp://127.0.0.1:{port}")).unwrap())
        .reconnect(false)
        .allowed_mechs(mech)
        .allow_insecure_mechs(true);
    if let Some((u, p)) = user {
        opts = opts.user(u).password(p);
    }
    let h = RoundTrip {
        opts: Some(opts),
        queue: queue.into(),
        total: 2000,
        sent: 0,
        accepted: 0,
        received: vec![],
        errors: vec![],
    };
    Container::new(h).run()
}

#[test]
fn rabbitmq_plain_and_anonymous() {
    let Some(node) = Node::start() else { return };
    let h = round_trip(
        node.port,
        "PLAIN",
        Some(("guest", "guest")),
        "/queue/amqp-rs-plain",
    );
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.received.len(), 2000);
    assert_eq!(h.received[0], "m0");
    assert_eq!(h.received[1999], "m1999");
    println!(
        "rabbitmq PLAIN: 2000 sent, {} accepted, 2000 received in order",
        h.accepted
    );

    let h = round_trip(node.port, "ANONYMOUS", None, "/queue/amqp-rs-anon");
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.received.len(), 2000);
    println!(
        "rabbitmq ANONYMOUS: 2000 sent, {} accepted, 2000 received",
        h.accepted
    );

    let h = round_trip(
        node.port,
        "PLAIN",
        Some(("guest", "wrong")),
        "/queue/amqp-rs-bad",
    );
    assert!(!h.errors.is_empty(), "a wrong password must fail");
    assert!(h.received.is_empty());
    println!("rabbitmq PLAIN wrong password: refused ({})", h.errors[0]);
}
