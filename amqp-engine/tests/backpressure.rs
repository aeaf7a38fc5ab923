//! Output back-pressure in the container: a sender that stops at
//! `ContainerContext::is_output_blocked` holds at most about `OUTPUT_HIGH_WATER` bytes for a
//! receiver that reads nothing, and is told (`on_sendable`) when that receiver drains.

use std::time::{Duration, Instant};

use amqp_engine::messaging::sim::World;
use amqp_engine::messaging::*;
use amqp_proto::message::Message;

const BODY: usize = 10 * 1024;
const TOTAL: usize = 1000;

/// Sends `TOTAL` messages of `BODY` bytes to whoever attaches a receiver, while it has credit
/// and the connection's output is not blocked.
#[derive(Default)]
struct Source {
    sent: usize,
    sendable: usize,
    blocked_seen: usize,
}

impl MessagingHandler for Source {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:5672").unwrap();
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        self.sendable += 1;
        let conn = e.connection().unwrap();
        while self.sent < TOTAL && e.credit() > 0 {
            if e.container().is_output_blocked(conn) {
                self.blocked_seen += 1;
                break;
            }
            e.send(&Message::new("x".repeat(BODY))).unwrap();
            self.sent += 1;
        }
    }
}

/// Receives everything; the test grants the credit.
#[derive(Default)]
struct Sink {
    link: Option<LinkHandle>,
    received: usize,
}

impl MessagingHandler for Sink {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: 0,
            ..HandlerOptions::default()
        }
    }
    fn on_start(&mut self, e: &mut Event<'_>) {
        let c = e.container_mut().connect("amqp://127.0.0.1:5672").unwrap();
        self.link = Some(e.container_mut().create_receiver(c, "q").unwrap());
    }
    fn on_message(&mut self, _: &mut Event<'_>) {
        self.received += 1;
    }
}

#[test]
fn a_receiver_that_reads_nothing_holds_at_most_the_high_water_mark() {
    let now = Instant::now();
    let mut world = World::new(now, 3);
    let src = world.add(SansIoContainer::with_id(Source::default(), "src", now));
    let sink = world.add(SansIoContainer::with_id(Sink::default(), "sink", now));
    // Let the link open, stop the receiver reading, then grant credit for everything.
    world.run_for(Duration::from_millis(20));
    world.set_stalled(sink, true);
    let c = world.container_mut::<Sink>(sink).unwrap();
    let link = c.handler().link.unwrap();
    c.context_mut().flow(link, 5000).unwrap();
    world.run_for(Duration::from_secs(5));
    let held = world.held_bytes(sink);
    let sent = world.handler::<Source>(src).unwrap().sent;
    assert!(
        held <= OUTPUT_HIGH_WATER + 2 * BODY + 64 * 1024,
        "{held} bytes held for a receiver that reads nothing ({sent} messages sent)"
    );
    eprintln!("held {held} bytes, {sent} messages sent while stalled");
    assert!(
        sent < TOTAL / 5,
        "{sent} messages sent to a stalled receiver"
    );
    assert!(world.handler::<Source>(src).unwrap().blocked_seen > 0);
    // It reads again: the sender is told, and everything arrives.
    world.set_stalled(sink, false);
    world.run_for(Duration::from_secs(10));
    let s = world.handler::<Source>(src).unwrap();
    assert_eq!(s.sent, TOTAL);
    assert!(s.sendable >= 2);
    assert_eq!(world.handler::<Sink>(sink).unwrap().received, TOTAL);
}
