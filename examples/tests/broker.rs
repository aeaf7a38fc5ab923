//! The example broker's behaviour, checked by Rust clients (containers in this process)
//! against the broker binary on a free loopback port: round-robin dispatch that respects each
//! consumer's credit, and temporary queues that go with their link.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use amqp_engine::messaging::{Event, LinkHandle, LinkOption, LinkOptions, MessagingHandler};
use amqp_proto::message::{Message, MessageId, ReceivedMessage};
use amqp_tokio::Container;
use common::broker;

/// Runs a client container on a thread, failing the test if it takes longer than `limit`.
fn run_bounded<H: MessagingHandler + Send + 'static>(h: H, limit: Duration) -> H {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Container::new(h).run());
    });
    rx.recv_timeout(limit)
        .expect("the client container did not finish in time")
}

fn id_of(m: &ReceivedMessage) -> u64 {
    match m.message_id() {
        Some(MessageId::Ulong(n)) => *n,
        other => panic!("unexpected id {other:?}"),
    }
}

/// Two consumers on one queue with credit 3 and 5 (granted by hand, no top-up); ten
/// messages. They alternate until each runs out of credit; the two left wait for credit.
#[derive(Default)]
struct RoundRobin {
    url: String,
    a: Option<LinkHandle>,
    b: Option<LinkHandle>,
    s: Option<LinkHandle>,
    opened: usize,
    sent: bool,
    got: HashMap<&'static str, Vec<u64>>,
    total: usize,
    granted_more: bool,
}

impl RoundRobin {
    fn maybe_send(&mut self, e: &mut Event<'_>) {
        let Some(s) = self.s else { return };
        let r = e.container_mut();
        if self.sent || self.opened < 2 || r.credit(s) < 10 {
            return;
        }
        self.sent = true;
        for i in 0..10u64 {
            r.send(s, &Message::builder().message_id(i).body("x").build())
                .expect("send");
        }
    }
}

impl MessagingHandler for RoundRobin {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let r = e.container_mut();
        let c = r.connect(&self.url).expect("connect");
        let mut o = LinkOptions::address("rr");
        o.prefetch = Some(0);
        self.a = r.create_receiver(c, o.clone()).ok();
        self.b = r.create_receiver(c, o).ok();
        self.s = r.create_sender(c, "rr").ok();
    }

    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        let l = e.link();
        if l == self.a {
            e.container_mut().flow(self.a.unwrap(), 3).unwrap();
            self.opened += 1;
        } else if l == self.b {
            e.container_mut().flow(self.b.unwrap(), 5).unwrap();
            self.opened += 1;
        }
        self.maybe_send(e);
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        self.maybe_send(e);
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let who = if e.link() == self.a { "a" } else { "b" };
        let id = id_of(e.message().unwrap());
        self.got.entry(who).or_default().push(id);
        self.total += 1;
        if self.total == 8 {
            // Give the broker time to (wrongly) send more, then grant A more credit.
            e.container_mut().schedule(Duration::from_millis(300));
        }
        if self.total == 10 {
            let c = e.connection().unwrap();
            e.container_mut().close_connection(c, None);
        }
    }

    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        assert_eq!(self.total, 8, "the broker sent beyond the credit given");
        self.granted_more = true;
        e.container_mut().flow(self.a.unwrap(), 10).unwrap();
    }
}

#[test]
fn round_robin_within_credit() {
    let (_b, port) = broker(&[]);
    let h = run_bounded(
        RoundRobin {
            url: format!("amqp://127.0.0.1:{port}"),
            ..RoundRobin::default()
        },
        Duration::from_secs(60),
    );
    assert!(h.granted_more);
    assert_eq!(h.got["a"], [0, 2, 4, 8, 9]);
    assert_eq!(h.got["b"], [1, 3, 5, 6, 7]);
}

/// A dynamic receiver gets a temporary queue; a message is sent to it; then (if
/// `close_first`) the receiver closes. A browser then looks at the queue's address.
#[derive(Default)]
struct TempQueue {
    url: String,
    close_first: bool,
    conn: Option<amqp_engine::messaging::ConnectionHandle>,
    dynamic: Option<LinkHandle>,
    browser: Option<LinkHandle>,
    address: Option<String>,
    sent: bool,
    browsed: Option<usize>,
    seen: usize,
}

impl TempQueue {
    fn browse(&mut self, e: &mut Event<'_>) {
        let mut o = LinkOptions::address(self.address.clone().unwrap()).with(LinkOption::Copy);
        o.prefetch = Some(0);
        self.browser = e
            .container_mut()
            .create_receiver(self.conn.unwrap(), o)
            .ok();
    }
}

impl MessagingHandler for TempQueue {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let r = e.container_mut();
        let c = r.connect(&self.url).expect("connect");
        self.conn = Some(c);
        let mut o = LinkOptions::dynamic();
        o.prefetch = Some(0); // the message stays on the queue
        self.dynamic = r.create_receiver(c, o).ok();
    }

    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        let l = e.link();
        if l == self.dynamic {
            let addr = e.container().remote_address(l.unwrap()).expect("address");
            self.address = Some(addr.clone());
            e.container_mut()
                .create_sender(self.conn.unwrap(), addr.as_str())
                .unwrap();
        } else if l == self.browser {
            let b = self.browser.unwrap();
            e.container_mut().flow(b, 10).unwrap();
            e.container_mut().drain(b).unwrap();
        }
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        if !self.sent {
            self.sent = true;
            e.send(&Message::builder().message_id(7u64).body("temp").build())
                .unwrap();
        }
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        if self.close_first {
            e.container_mut().close_link(self.dynamic.unwrap());
        } else {
            self.browse(e);
        }
    }

    fn on_link_closed(&mut self, e: &mut Event<'_>) {
        if e.link() == self.dynamic && self.browser.is_none() {
            self.browse(e);
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        if e.link() == self.browser {
            self.seen += 1;
        }
    }

    fn on_drained(&mut self, e: &mut Event<'_>) {
        self.browsed = Some(self.seen);
        let c = e.connection().unwrap();
        e.container_mut().close_connection(c, None);
    }
}

#[test]
fn temporary_queue_goes_with_its_link() {
    let (_b, port) = broker(&[]);
    let url = format!("amqp://127.0.0.1:{port}");
    let kept = run_bounded(
        TempQueue {
            url: url.clone(),
            close_first: false,
            ..TempQueue::default()
        },
        Duration::from_secs(60),
    );
    assert_eq!(
        kept.browsed,
        Some(1),
        "while its receiver lives, the queue holds the message"
    );
    let gone = run_bounded(
        TempQueue {
            url,
            close_first: true,
            ..TempQueue::default()
        },
        Duration::from_secs(60),
    );
    assert_eq!(
        gone.browsed,
        Some(0),
        "the temporary queue and its message were deleted"
    );
}

/// A message in an encoding of its own (not the one we would write): full-width `uint`, a
/// `list8` header. The broker forwards it byte for byte; after a failed delivery it rewrites
/// only the header (delivery-count 1), the rest still byte for byte.
const OWN_ENCODING: &[u8] = &[
    0x00, 0x53, 0x70, 0xc0, 0x02, 0x01, 0x41, // header: durable
    0x00, 0x53, 0x73, 0xc0, 0x04, 0x01, 0xa1, 0x01, b'm', // properties: message-id "m"
    0x00, 0x53, 0x77, 0x70, 0x00, 0x00, 0x00, 0x07, // amqp-value: uint 7, 4 bytes wide
];
const HEADER_LEN: usize = 7;

#[derive(Default)]
struct Forward {
    url: String,
    s: Option<LinkHandle>,
    sent: bool,
    got: Vec<ReceivedMessage>,
}

impl MessagingHandler for Forward {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let r = e.container_mut();
        let c = r.connect(&self.url).expect("connect");
        r.create_receiver(c, LinkOptions::address("fwd")).unwrap();
        self.s = r.create_sender(c, "fwd").ok();
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        if !self.sent {
            self.sent = true;
            let s = self.s.unwrap();
            e.container_mut()
                .send_bytes(s, bytes::Bytes::from_static(OWN_ENCODING))
                .unwrap();
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        self.got.push(e.take_message().unwrap());
        if self.got.len() == 1 {
            // Delivery failed: the broker counts it and sends the message again.
            let d = e.delivery().unwrap();
            e.container_mut().modify(d, true, false).unwrap();
        } else {
            let c = e.connection().unwrap();
            e.container_mut().close_connection(c, None);
        }
    }
}

#[test]
fn messages_are_forwarded_as_received_and_only_the_header_is_rewritten() {
    let (_b, port) = broker(&[]);
    let h = run_bounded(
        Forward {
            url: format!("amqp://127.0.0.1:{port}"),
            ..Forward::default()
        },
        Duration::from_secs(60),
    );
    assert_eq!(h.got.len(), 2);
    assert_eq!(
        &h.got[0].as_bytes()[..],
        OWN_ENCODING,
        "forwarded unchanged"
    );
    let again = &h.got[1];
    assert_eq!(again.delivery_count(), 1);
    assert!(again.durable(), "the rest of the header is kept");
    assert_eq!(again.header().and_then(|h| h.first_acquirer), Some(false));
    assert!(
        again.as_bytes().ends_with(&OWN_ENCODING[HEADER_LEN..]),
        "only the header was re-encoded: {:?}",
        again.as_bytes()
    );
    assert_eq!(again.message_id(), Some(&MessageId::from("m")));
}
