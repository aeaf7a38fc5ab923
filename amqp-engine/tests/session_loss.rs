//! A session the peer ends while its connection stays up (RabbitMQ 3.10 does this when the
//! channel behind an AMQP 1.0 session crashes, e.g. on a quorum-queue leader change): the
//! application's links on it are attached again on a new session, and what a sender had in
//! flight on it is in doubt; a peer that keeps ending sessions gets the links closed.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use amqp_engine::messaging::sim::World;
use amqp_engine::messaging::*;
use amqp_proto::message::{Message, MessageId};
use common::broker::Broker;

/// An at-least-once sender and a receiver on two connections to "work".
#[derive(Default)]
struct Client {
    total: usize,
    next: usize,
    conns: Option<(ConnectionHandle, ConnectionHandle)>,
    sender: Option<LinkHandle>,
    in_flight: HashMap<Tracker, usize>,
    resend: Vec<usize>,
    confirmed: BTreeSet<usize>,
    seen: BTreeSet<u64>,
    session_errors: usize,
    links_opened: usize,
    links_closed_with_error: usize,
    in_doubt: usize,
}

impl Client {
    fn pump(&mut self, e: &mut Event<'_>) {
        let Some(link) = self.sender else { return };
        while e.container().credit(link) > 0 {
            let i = match self.resend.pop() {
                Some(i) => i,
                None if self.next < self.total => {
                    self.next += 1;
                    self.next - 1
                }
                None => break,
            };
            let m = Message::builder().message_id(i as u64).body("m").build();
            match e.container_mut().send(link, &m) {
                Ok(t) => {
                    self.in_flight.insert(t, i);
                }
                Err(_) => {
                    self.resend.push(i);
                    break;
                }
            }
        }
    }
}

impl MessagingHandler for Client {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let url = "amqp://127.0.0.1:5672";
        let s = e.container_mut().connect(url).unwrap();
        let r = e.container_mut().connect(url).unwrap();
        self.conns = Some((s, r));
        self.sender = e.container_mut().create_sender(s, "work").ok();
        e.container_mut().create_receiver(r, "work").unwrap();
    }

    fn on_session_error(&mut self, _: &mut Event<'_>) {
        self.session_errors += 1;
    }

    fn on_link_opened(&mut self, _: &mut Event<'_>) {
        self.links_opened += 1;
    }

    fn on_link_closed(&mut self, e: &mut Event<'_>) {
        if e.error().is_some() {
            self.links_closed_with_error += 1;
        }
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        self.pump(e);
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        if let Some(i) = e.tracker().and_then(|t| self.in_flight.remove(&t)) {
            self.confirmed.insert(i);
        }
    }

    fn on_released(&mut self, e: &mut Event<'_>) {
        if let Some(i) = e.tracker().and_then(|t| self.in_flight.remove(&t)) {
            self.resend.push(i);
        }
    }

    fn on_in_doubt(&mut self, e: &mut Event<'_>) {
        self.in_doubt += 1;
        if let Some(i) = e.tracker().and_then(|t| self.in_flight.remove(&t)) {
            self.resend.push(i);
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        if let Some(MessageId::Ulong(id)) = e.message().and_then(|m| m.message_id().cloned()) {
            self.seen.insert(id);
        }
        if self.confirmed.len() == self.total && self.seen.len() == self.total {
            if let Some((s, r)) = self.conns {
                e.container_mut().close_connection(s, None);
                e.container_mut().close_connection(r, None);
            }
        }
    }
}

fn run(broker: Broker, total: usize) -> Client {
    let mut w = World::new(Instant::now(), 11);
    w.add(SansIoContainer::with_id(broker, "broker", w.now()));
    let c = w.add(SansIoContainer::with_id(
        Client {
            total,
            ..Default::default()
        },
        "client",
        w.now(),
    ));
    w.run_for(Duration::from_secs(10));
    std::mem::take(w.handler_mut::<Client>(c).unwrap())
}

fn ends_sessions_after(n: usize) -> Broker {
    let mut b = Broker::new(5672);
    b.end_sessions_after = Some(n);
    b
}

#[test]
fn links_of_a_session_the_peer_ended_are_attached_again_and_nothing_is_lost() {
    let h = run(ends_sessions_after(100), 300);
    // Each connection's session ended with the broker's error; each link came back on its
    // own, not closed.
    assert_eq!(h.session_errors, 2);
    assert_eq!(h.links_closed_with_error, 0);
    assert_eq!(h.links_opened, 4, "each link opened twice");
    assert_eq!(h.confirmed.len(), 300, "sender confirmed everything");
    let missing: Vec<u64> = (0..300).filter(|i| !h.seen.contains(i)).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
}

#[test]
fn what_a_sender_had_in_flight_on_an_ended_session_is_in_doubt() {
    // The broker ends the sessions on the first message: the rest of the sender's first
    // window is unsettled then.
    let h = run(ends_sessions_after(1), 300);
    assert!(h.in_doubt >= 1, "in doubt: {}", h.in_doubt);
    assert_eq!(h.confirmed.len(), 300);
    assert_eq!(h.seen.len(), 300);
}

#[test]
fn a_peer_that_ends_every_session_gets_the_links_closed() {
    let mut b = Broker::new(5672);
    b.end_sessions_on_attach = true;
    let h = run(b, 10);
    // Attached again a bounded number of times, then closed (with the broker's error).
    assert_eq!(h.links_closed_with_error, 2);
    assert!(h.session_errors <= 2 * 9, "{}", h.session_errors);
    assert!(h.confirmed.is_empty());
}
