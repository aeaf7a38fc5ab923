//! Heap allocations per message, end to end through two containers: a sender handler encoding
//! each message into its connection's output, a receiver handler reading one application
//! property of each message it is given (auto-accepted, every outcome back at the sender).
//! The containers are wired back to back by a few lines of driver below (no sockets, no
//! simulated network whose own bookkeeping would be counted). A counting global allocator
//! measures the steady state after a warm-up: it must be free of allocations.
//!
//! This binary holds one test only: the allocator counts every thread of the process.

use std::alloc::System;
use std::collections::VecDeque;
use std::time::Instant;

use amqp_engine::messaging::{
    AcceptorHandle, Event, HandlerOptions, IoCore, IoRequest, MessagingHandler, SansIoContainer,
    TransportId, TransportInfo,
};
use amqp_proto::message::{Body, Message};
use amqp_proto::Value;
use bytes::Bytes;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const WARM_UP: u64 = 5_000;
const MEASURED: u64 = 20_000;
const CREDIT: u32 = 500;

struct Sender {
    message: Message,
    sent: u64,
    accepted: u64,
}

impl MessagingHandler for Sender {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: 0,
            ..HandlerOptions::default()
        }
    }
    fn on_start(&mut self, e: &mut Event<'_>) {
        let conn = e.container_mut().connect("amqp://127.0.0.1:5672").unwrap();
        e.container_mut().create_sender(conn, "q").unwrap();
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        while e.credit() > 0 && self.sent < WARM_UP + MEASURED + u64::from(CREDIT) {
            if let Some(ap) = self.message.application_properties.as_mut() {
                ap.0[0].1 = Value::Ulong(self.sent);
            }
            e.send(&self.message).unwrap();
            self.sent += 1;
        }
    }
    fn on_accepted(&mut self, _: &mut Event<'_>) {
        self.accepted += 1;
    }
}

#[derive(Default)]
struct Receiver {
    /// Take each message out of its event (as a broker does) instead of reading it in place.
    take: bool,
    received: u64,
    ts_sum: u64,
}

impl MessagingHandler for Receiver {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: CREDIT,
            ..HandlerOptions::default()
        }
    }
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:5672").unwrap();
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        self.received += 1;
        let taken = if self.take { e.take_message() } else { None };
        let m = taken.as_ref().or(e.message()).unwrap();
        assert_eq!(m.data().map(<[u8]>::len), Some(100));
        if let Some(Value::Ulong(ts)) = m.find_application_property("ts") {
            self.ts_sum = self.ts_sum.wrapping_add(ts);
        }
    }
}

/// Carries out both containers' I/O requests, each transport's writes read by its peer,
/// until `done` holds (or nothing moves).
struct Wire {
    /// (sender's transport, receiver's transport) once connected.
    link: Option<(TransportId, TransportId)>,
    acceptor: Option<AcceptorHandle>,
    queue: VecDeque<(bool, IoRequest)>,
}

impl Wire {
    fn run(
        &mut self,
        s: &mut SansIoContainer<Sender>,
        r: &mut SansIoContainer<Receiver>,
        done: impl Fn(&Sender, &Receiver) -> bool,
    ) {
        let now = Instant::now();
        for _ in 0..10_000_000 {
            if done(s.handler(), r.handler()) {
                return;
            }
            // `true`: a request of the sender's container (the receiver's go first: it listens
            // before the sender connects).
            while let Some(req) = r.poll_io() {
                self.queue.push_back((false, req));
            }
            while let Some(req) = s.poll_io() {
                self.queue.push_back((true, req));
            }
            if self.queue.is_empty() {
                return;
            }
            while let Some((from_sender, req)) = self.queue.pop_front() {
                match req {
                    IoRequest::Listen { acceptor, port, .. } => {
                        self.acceptor = Some(acceptor);
                        r.handle_listening(acceptor, Ok(port), now);
                    }
                    IoRequest::Connect { transport, .. } => {
                        s.handle_connected(transport, TransportInfo::default(), now);
                        let acceptor = self.acceptor.unwrap();
                        let peer = r
                            .handle_accepted(acceptor, TransportInfo::default(), now)
                            .unwrap();
                        self.link = Some((transport, peer));
                    }
                    IoRequest::Write { data, .. } => {
                        let (st, rt) = self.link.unwrap();
                        deliver(from_sender, &data, (s, st), (r, rt), now);
                    }
                    other => panic!("unexpected request {other:?}"),
                }
            }
        }
        panic!("the exchange did not settle");
    }
}

fn deliver(
    from_sender: bool,
    data: &Bytes,
    (s, st): (&mut SansIoContainer<Sender>, TransportId),
    (r, rt): (&mut SansIoContainer<Receiver>, TransportId),
    now: Instant,
) {
    if from_sender {
        r.handle_read(rt, data, now);
    } else {
        s.handle_read(st, data, now);
    }
}

#[test]
fn messages_in_steady_state_allocate_nothing_end_to_end() {
    // The receiver reads each message in place, then takes each out of its event.
    steady_state(false);
    steady_state(true);
}

fn steady_state(take: bool) {
    let now = Instant::now();
    let mut message = Message::new(Body::data(Bytes::from(vec![b'x'; 100])));
    message.set_application_property("ts", Value::Ulong(0));
    let mut s = SansIoContainer::with_id(
        Sender {
            message,
            sent: 0,
            accepted: 0,
        },
        "sender",
        now,
    );
    let receiver = Receiver {
        take,
        ..Receiver::default()
    };
    let mut r = SansIoContainer::with_id(receiver, "receiver", now);
    let mut wire = Wire {
        link: None,
        acceptor: None,
        queue: VecDeque::new(),
    };
    r.start(now);
    s.start(now);
    wire.run(&mut s, &mut r, |s, r| {
        r.received >= WARM_UP && s.accepted >= WARM_UP
    });

    let region = Region::new(GLOBAL);
    let from = r.handler().received;
    wire.run(&mut s, &mut r, |s, r| {
        r.received >= WARM_UP + MEASURED && s.accepted >= WARM_UP + MEASURED
    });
    let stats = region.change();
    let messages = r.handler().received - from;
    assert!(messages >= MEASURED);
    assert!(r.handler().ts_sum > 0);
    let allocations = stats.allocations + stats.reallocations;
    // The run is deterministic (no clock, no sockets): exactly none, where boxing each received
    // message and the per-read key snapshots cost ~20,300.
    assert!(
        allocations == 0,
        "{allocations} allocations ({} bytes) for {messages} messages (take: {take})",
        stats.bytes_allocated
    );
}
