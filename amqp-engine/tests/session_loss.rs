//! A session the peer ends while its connection stays up (RabbitMQ 3.10 does this when the
//! channel behind an AMQP 1.0 session crashes, e.g. on a quorum-queue leader change): the
//! links on it are reported closed, what a sender had in flight on it is in doubt, and links
//! opened again on the same connection work (on a new session).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use amqp_engine::messaging::sim::World;
use amqp_engine::messaging::*;
use amqp_proto::message::{Message, MessageId};
use common::broker::Broker;

/// An at-least-once sender and a receiver on two connections to "work"; a link the peer
/// closes is opened again at once, as an application must.
#[derive(Default)]
struct Relinker {
    total: usize,
    next: usize,
    conns: Option<(ConnectionHandle, ConnectionHandle)>,
    sender: Option<LinkHandle>,
    receiver: Option<LinkHandle>,
    in_flight: HashMap<Tracker, usize>,
    resend: Vec<usize>,
    confirmed: BTreeSet<usize>,
    seen: BTreeSet<u64>,
    closed_with_error: usize,
    in_doubt: usize,
}

impl Relinker {
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

    fn done(&self) -> bool {
        self.confirmed.len() == self.total && self.seen.len() == self.total
    }
}

impl MessagingHandler for Relinker {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let url = "amqp://127.0.0.1:5672";
        let s = e.container_mut().connect(url).unwrap();
        let r = e.container_mut().connect(url).unwrap();
        self.conns = Some((s, r));
        self.sender = e.container_mut().create_sender(s, "work").ok();
        self.receiver = e.container_mut().create_receiver(r, "work").ok();
    }

    fn on_link_closed(&mut self, e: &mut Event<'_>) {
        let (Some(link), Some((s, r))) = (e.link(), self.conns) else {
            return;
        };
        if e.error().is_some() {
            self.closed_with_error += 1;
        }
        if Some(link) == self.sender {
            self.sender = e.container_mut().create_sender(s, "work").ok();
        } else if Some(link) == self.receiver {
            self.receiver = e.container_mut().create_receiver(r, "work").ok();
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
        if self.done() {
            if let Some((s, r)) = self.conns {
                e.container_mut().close_connection(s, None);
                e.container_mut().close_connection(r, None);
            }
        }
    }
}

fn run(end_sessions_after: usize) -> (Relinker, usize) {
    let mut w = World::new(Instant::now(), 11);
    let mut broker = Broker::new(5672);
    broker.end_sessions_after = Some(end_sessions_after);
    let b = w.add(SansIoContainer::with_id(broker, "broker", w.now()));
    let c = w.add(SansIoContainer::with_id(
        Relinker {
            total: 300,
            ..Default::default()
        },
        "client",
        w.now(),
    ));
    w.run_for(Duration::from_secs(10));
    let received = w.handler::<Broker>(b).unwrap().received;
    let h = w.handler_mut::<Relinker>(c).unwrap();
    (std::mem::take(h), received)
}

#[test]
fn links_of_a_session_the_peer_ended_are_closed_and_can_be_opened_again() {
    let (h, received) = run(100);
    assert!(received >= 100, "the broker ended the sessions: {received}");
    // Both links were reported closed with the broker's error, and opened again.
    assert_eq!(h.closed_with_error, 2);
    assert_eq!(h.confirmed.len(), 300, "sender confirmed everything");
    let missing: Vec<u64> = (0..300).filter(|i| !h.seen.contains(i)).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
}

#[test]
fn what_a_sender_had_in_flight_on_an_ended_session_is_in_doubt() {
    // The broker ends the sessions while the sender has deliveries it has not settled yet
    // (the message that triggers it among them).
    let (h, _) = run(1);
    assert!(h.in_doubt >= 1, "in doubt: {}", h.in_doubt);
    assert_eq!(h.confirmed.len(), 300);
    assert_eq!(h.seen.len(), 300);
}
