//! Heap allocations per message, end to end through two cores: a sender handler encoding
//! each message into its connection's output, and a receiver reading one application property
//! of each message it is given (every outcome back at the sender). The receiver is a container
//! handler (auto-accepting), or a [`ClientCore`] (the async API's core) whose application
//! takes each message out of its event, hands the box back, accepts and keeps the credit up.
//! The cores are wired back to back by a few lines of driver below (no sockets, no simulated
//! network whose own bookkeeping would be counted). A counting global allocator measures the
//! steady state after a warm-up: it must be free of allocations.
//!
//! This binary holds one test only: the allocator counts every thread of the process.

use std::alloc::System;
use std::collections::VecDeque;
use std::time::Instant;

use amqp_engine::messaging::{
    AcceptorHandle, ClientCore, ClientEvent, ConnectOptions, Event, HandlerOptions, IoCore,
    IoRequest, MessagingHandler, SansIoContainer, TransportId, TransportInfo, Url,
};
use amqp_proto::message::{Body, Message, ReceivedMessage};
use amqp_proto::messaging::DeliveryState;
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
    /// Listen for the receiver (a client) instead of connecting to it.
    listen: bool,
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
        if self.listen {
            e.container_mut().listen("127.0.0.1:5672").unwrap();
            return;
        }
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
        let taken = if self.take { e.take_message() } else { None };
        let m = taken.as_ref().or(e.message()).unwrap();
        self.read(m);
    }
}

impl Receiver {
    fn read(&mut self, m: &ReceivedMessage) {
        self.received += 1;
        assert_eq!(m.data().map(<[u8]>::len), Some(100));
        if let Some(Value::Ulong(ts)) = m.find_application_property("ts") {
            self.ts_sum = self.ts_sum.wrapping_add(ts);
        }
    }

    /// The application of a [`ClientCore`] receiver: takes each message out of its event and
    /// hands the box back, accepts it, and tops the credit up at half the window.
    fn serve(&mut self, core: &mut ClientCore) {
        while let Some(ev) = core.poll_event() {
            match ev {
                ClientEvent::LinkOpened { link, .. } => core.flow(link, CREDIT).unwrap(),
                ClientEvent::Message {
                    link,
                    delivery,
                    mut message,
                } => {
                    let m = std::mem::take(&mut *message);
                    core.recycle_message(message);
                    self.read(&m);
                    core.dispose(delivery, Some(DeliveryState::accepted()))
                        .unwrap();
                    if core.credit(link) <= CREDIT / 2 {
                        core.flow(link, CREDIT).unwrap();
                    }
                }
                _ => {}
            }
        }
    }
}

/// Carries out two cores' I/O requests, each transport's writes read by its peer, until
/// `until` (which also does the test's own work between rounds) holds, or nothing moves. `l`
/// listens, `c` connects.
struct Wire {
    /// (connector's transport, listener's transport) once connected.
    link: Option<(TransportId, TransportId)>,
    acceptor: Option<AcceptorHandle>,
    /// Requests; `true`: of the connector.
    queue: VecDeque<(bool, IoRequest)>,
}

impl Wire {
    fn new() -> Self {
        Wire {
            link: None,
            acceptor: None,
            queue: VecDeque::new(),
        }
    }

    fn run<L: IoCore, C: IoCore>(
        &mut self,
        l: &mut L,
        c: &mut C,
        mut until: impl FnMut(&mut L, &mut C) -> bool,
    ) {
        let now = Instant::now();
        for _ in 0..10_000_000 {
            if until(l, c) {
                return;
            }
            // The listener's requests go first: it listens before the other connects.
            while let Some(req) = l.poll_io() {
                self.queue.push_back((false, req));
            }
            while let Some(req) = c.poll_io() {
                self.queue.push_back((true, req));
            }
            if self.queue.is_empty() {
                return;
            }
            while let Some((from_connector, req)) = self.queue.pop_front() {
                match req {
                    IoRequest::Listen { acceptor, port, .. } => {
                        self.acceptor = Some(acceptor);
                        l.handle_listening(acceptor, Ok(port), now);
                    }
                    IoRequest::Connect { transport, .. } => {
                        c.handle_connected(transport, TransportInfo::default(), now);
                        let acceptor = self.acceptor.unwrap();
                        let peer = l
                            .handle_accepted(acceptor, TransportInfo::default(), now)
                            .unwrap();
                        self.link = Some((transport, peer));
                    }
                    IoRequest::Write { data, .. } => {
                        let (ct, lt) = self.link.unwrap();
                        if from_connector {
                            l.handle_read(lt, &data, now);
                        } else {
                            c.handle_read(ct, &data, now);
                        }
                    }
                    other => panic!("unexpected request {other:?}"),
                }
            }
        }
        panic!("the exchange did not settle");
    }
}

/// Allocations over `run`, asserted to be none.
fn assert_none_allocated(what: &str, run: impl FnOnce() -> u64) {
    let region = Region::new(GLOBAL);
    let messages = run();
    let stats = region.change();
    assert!(messages >= MEASURED);
    let allocations = stats.allocations + stats.reallocations;
    // The run is deterministic (no clock, no sockets): exactly none, where boxing each received
    // message and the per-read key snapshots cost ~20,300.
    assert!(
        allocations == 0,
        "{allocations} allocations ({} bytes) for {messages} messages ({what})",
        stats.bytes_allocated
    );
}

fn message() -> Message {
    let mut message = Message::new(Body::data(Bytes::from(vec![b'x'; 100])));
    message.set_application_property("ts", Value::Ulong(0));
    message
}

#[test]
fn messages_in_steady_state_allocate_nothing_end_to_end() {
    // The receiver reads each message in place, then takes each out of its event.
    steady_state(false);
    steady_state(true);
    // The receiver is the async API's core.
    client_core_steady_state();
}

fn steady_state(take: bool) {
    let now = Instant::now();
    let sender = Sender {
        message: message(),
        listen: false,
        sent: 0,
        accepted: 0,
    };
    let mut s = SansIoContainer::with_id(sender, "sender", now);
    let receiver = Receiver {
        take,
        ..Receiver::default()
    };
    let mut r = SansIoContainer::with_id(receiver, "receiver", now);
    let mut wire = Wire::new();
    r.start(now);
    s.start(now);
    wire.run(&mut r, &mut s, |r, s| {
        r.handler().received >= WARM_UP && s.handler().accepted >= WARM_UP
    });
    assert_none_allocated(&format!("container receiver, take: {take}"), || {
        let from = r.handler().received;
        wire.run(&mut r, &mut s, |r, s| {
            let (r, s) = (r.handler(), s.handler());
            r.received >= WARM_UP + MEASURED && s.accepted >= WARM_UP + MEASURED
        });
        r.handler().received - from
    });
    assert!(r.handler().ts_sum > 0);
}

fn client_core_steady_state() {
    let now = Instant::now();
    let sender = Sender {
        message: message(),
        listen: true,
        sent: 0,
        accepted: 0,
    };
    let mut s = SansIoContainer::with_id(sender, "sender", now);
    let mut core = ClientCore::new("client", now);
    let url = Url::parse("amqp://127.0.0.1:5672").unwrap();
    let conn = core.connect(ConnectOptions::new().url(url)).unwrap();
    core.open_receiver(conn, "q".into()).unwrap();
    let mut app = Receiver::default();
    let mut wire = Wire::new();
    s.start(now);
    core.start(now);
    wire.run(&mut s, &mut core, |s, core| {
        app.serve(core);
        app.received >= WARM_UP && s.handler().accepted >= WARM_UP
    });
    assert_none_allocated("client core receiver", || {
        let from = app.received;
        wire.run(&mut s, &mut core, |s, core| {
            app.serve(core);
            app.received >= WARM_UP + MEASURED && s.handler().accepted >= WARM_UP + MEASURED
        });
        app.received - from
    });
    assert!(app.ts_sum > 0);
}
