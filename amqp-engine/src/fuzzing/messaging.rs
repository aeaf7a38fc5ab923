//! The messaging layer's fuzz body: bytes decoded into a script of handler actions (connect,
//! listen, create links, send, grant credit, settle, close, stop) and network events (cut a
//! transport, block a port, stall a node's reading, let time pass) on containers in the simulated world. It checks,
//! after every step, that nothing is delivered that was not sent, and at the end that every
//! container stops once asked to.

use std::time::{Duration, Instant};

use amqp_proto::definitions::{condition, Error};
use amqp_proto::message::Message;

use crate::messaging::sim::World;
use crate::messaging::{
    ConnectOptions, ConnectionHandle, DeliveryHandle, Event, HandlerOptions, LinkHandle,
    LinkOptions, MessagingHandler, ReconnectLimits, SansIoContainer, Tracker, Url,
};

/// Containers in one world: each listens on its own port and may connect to any.
const NODES: usize = 3;
/// First port; node `i` listens on `PORT + i`.
const PORT: u16 = 5672;
/// At most this many script steps are run (each may move a little virtual time).
const MAX_STEPS: usize = 400;
/// At most this many handles of each kind are remembered per node.
const MAX_HANDLES: usize = 16;

/// What one run saw, for tests that check the scripts reach deep enough.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessagingReport {
    /// Messages whose `send` succeeded.
    pub sent: u64,
    /// Messages handed to `on_message`.
    pub received: u64,
    /// Outcomes reported to senders (accepted, rejected, released).
    pub outcomes: u64,
    /// Connections opened (both ends count).
    pub opened: u64,
    /// Transports that went down.
    pub disconnects: u64,
}

/// A handler that remembers what it saw and answers the way its options say.
#[derive(Default)]
struct Recorder {
    options: HandlerOptions,
    /// Settle received deliveries in `on_message` with this action (0: leave it to
    /// auto-accept or to the script).
    answer: u8,
    conns: Vec<ConnectionHandle>,
    links: Vec<LinkHandle>,
    deliveries: Vec<DeliveryHandle>,
    trackers: Vec<Tracker>,
    report: MessagingReport,
    /// Sum of the numbers carried by the messages received (each message carries its
    /// sequence number in the whole world), to tie deliveries to sends.
    received_seq: u64,
}

fn remember<T: Copy + PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        if v.len() >= MAX_HANDLES {
            v.remove(0);
        }
        v.push(x);
    }
}

impl MessagingHandler for Recorder {
    fn options(&self) -> HandlerOptions {
        self.options
    }
    fn on_connection_opened(&mut self, e: &mut Event<'_>) {
        self.report.opened += 1;
        if let Some(c) = e.connection() {
            remember(&mut self.conns, c);
        }
    }
    fn on_connection_opening(&mut self, e: &mut Event<'_>) {
        if let Some(c) = e.connection() {
            remember(&mut self.conns, c);
        }
    }
    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        if let Some(l) = e.link() {
            remember(&mut self.links, l);
        }
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        self.report.received += 1;
        let seq = e
            .message()
            .and_then(|m| m.body_str())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        self.received_seq = self.received_seq.wrapping_add(seq);
        let _ = match self.answer % 5 {
            1 => e.accept(),
            2 => e.reject(Some(Error::new(condition::INTERNAL_ERROR, "fuzz"))),
            3 => e.release(),
            _ => Ok(()),
        };
        if let Some(d) = e.delivery() {
            remember(&mut self.deliveries, d);
        }
    }
    fn on_accepted(&mut self, _: &mut Event<'_>) {
        self.report.outcomes += 1;
    }
    fn on_rejected(&mut self, _: &mut Event<'_>) {
        self.report.outcomes += 1;
    }
    fn on_released(&mut self, _: &mut Event<'_>) {
        self.report.outcomes += 1;
    }
    fn on_disconnected(&mut self, _: &mut Event<'_>) {
        self.report.disconnects += 1;
    }
}

/// The script's bytes, read one at a time (zero once exhausted).
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        let b = self.byte() as usize;
        (!v.is_empty()).then(|| v[b % v.len()])
    }
}

fn node(world: &mut World, i: usize) -> Option<&mut SansIoContainer<Recorder>> {
    world.container_mut::<Recorder>(i)
}

/// Runs one script. Never panics on any input unless an invariant of the messaging layer is
/// broken: no more messages arrive than were sent (redeliveries after a cut need a resend, and
/// this script never resends), every received message is one that was sent, and every
/// container is done within a bounded virtual time once all are stopped.
pub fn fuzz_messaging(data: &[u8], now: Instant) -> MessagingReport {
    let mut s = Script(data);
    let mut world = World::new(now, u64::from(s.byte()));
    world.latency = Duration::from_micros(100 + 100 * u64::from(s.byte() % 50));
    for i in 0..NODES {
        let flags = s.byte();
        let rec = Recorder {
            options: HandlerOptions {
                prefetch: u32::from(s.byte() % 20),
                auto_accept: flags & 1 != 0,
                auto_settle: flags & 2 != 0,
            },
            answer: flags >> 2,
            ..Recorder::default()
        };
        let n = world.add(SansIoContainer::with_id(rec, format!("n{i}"), now));
        // Every node listens from the start, so that most connects find a peer; a script's
        // own `listen` finds the address in use.
        if let Some(c) = node(&mut world, n) {
            let _ = c
                .context_mut()
                .listen(&format!("127.0.0.1:{}", PORT + n as u16));
        }
    }
    let mut sent_seq: u64 = 0;
    let mut next_seq: u64 = 1;
    let mut blocked = Vec::new();
    let mut stalled = [false; NODES];
    for _ in 0..MAX_STEPS {
        if s.0.is_empty() {
            break;
        }
        let op = s.byte();
        let i = usize::from(op >> 5) % NODES;
        let Some(c) = node(&mut world, i) else {
            break;
        };
        match op & 0x1f {
            0 => {
                let _ = c
                    .context_mut()
                    .listen(&format!("127.0.0.1:{}", PORT + i as u16));
            }
            1 | 2 => {
                let to = usize::from(s.byte()) % NODES;
                let alt = usize::from(s.byte()) % NODES;
                let urls =
                    [to, alt].map(|n| Url::parse(&format!("amqp://127.0.0.1:{}", PORT + n as u16)));
                let mut opts = ConnectOptions::new()
                    .urls(urls.into_iter().flatten())
                    .reconnect(op & 0x1f == 1)
                    .reconnect_limits(ReconnectLimits {
                        max_attempts: Some(u32::from(s.byte() % 8) + 1),
                        max_duration: None,
                    });
                let hb = s.byte();
                if hb & 1 != 0 {
                    opts = opts.heartbeat(Duration::from_millis(200 * u64::from(hb >> 1) + 100));
                }
                if let Ok(h) = c.context_mut().connect_with(opts) {
                    remember(&mut c.handler_mut().conns, h);
                }
            }
            3 | 4 => {
                let conn = c.handler().conns.clone();
                let address = format!("q{}", s.byte() % 4);
                if let Some(h) = s.pick(&conn) {
                    let r = if op & 0x1f == 3 {
                        c.context_mut()
                            .create_sender(h, LinkOptions::address(address))
                    } else {
                        c.context_mut()
                            .create_receiver(h, LinkOptions::address(address))
                    };
                    if let Ok(l) = r {
                        remember(&mut c.handler_mut().links, l);
                    }
                }
            }
            5..=8 => {
                let links = c.handler().links.clone();
                let size = usize::from(s.byte()) * 64;
                if let Some(l) = s.pick(&links) {
                    let seq = next_seq;
                    // The number parses back only without the padding.
                    let msg = Message::new(format!("{seq}{}", " ".repeat(size)));
                    if let Ok(t) = c.context_mut().send(l, &msg) {
                        next_seq += 1;
                        if size == 0 {
                            sent_seq = sent_seq.wrapping_add(seq);
                        }
                        c.handler_mut().report.sent += 1;
                        remember(&mut c.handler_mut().trackers, t);
                    }
                }
            }
            9 => {
                let links = c.handler().links.clone();
                let credit = u32::from(s.byte());
                if let Some(l) = s.pick(&links) {
                    let _ = c.context_mut().flow(l, credit);
                }
            }
            10 => {
                let links = c.handler().links.clone();
                if let Some(l) = s.pick(&links) {
                    let _ = c.context_mut().drain(l);
                }
            }
            11 => {
                let ds = c.handler().deliveries.clone();
                let how = s.byte();
                if let Some(d) = s.pick(&ds) {
                    let ctx = c.context_mut();
                    let _ = match how % 6 {
                        0 => ctx.accept(d),
                        1 => ctx.reject(d, None),
                        2 => ctx.release(d),
                        3 => ctx.modify(d, how & 8 != 0, how & 16 != 0),
                        4 => ctx.settle(d),
                        _ => ctx.update(d, amqp_proto::messaging::DeliveryState::accepted()),
                    };
                }
            }
            12 => {
                let ts = c.handler().trackers.clone();
                if let Some(t) = s.pick(&ts) {
                    let _ = c.context_mut().settle_tracker(t);
                }
            }
            13 => {
                let links = c.handler().links.clone();
                let with_error = s.byte() & 1 != 0;
                if let Some(l) = s.pick(&links) {
                    let err = with_error.then(|| Error::new(condition::NOT_ALLOWED, "fuzz"));
                    c.context_mut().close_link_with_error(l, err);
                }
            }
            14 => {
                let conns = c.handler().conns.clone();
                let with_error = s.byte() & 1 != 0;
                if let Some(h) = s.pick(&conns) {
                    let err = with_error.then(|| Error::new(condition::INTERNAL_ERROR, "fuzz"));
                    c.context_mut().close_connection(h, err);
                }
            }
            15 => {
                let delay = u64::from(s.byte());
                c.context_mut().schedule(Duration::from_millis(delay * 10));
            }
            16 => c.context_mut().stop(),
            17 => {
                world.cut_random();
            }
            18 => world.cut_all(),
            19 => {
                let p = PORT + u16::from(s.byte()) % NODES as u16;
                if let Some(l) = world.block_port("127.0.0.1", p) {
                    blocked.push((p, l));
                }
            }
            20 => {
                if let Some((p, l)) = blocked.pop() {
                    world.restore_listener("127.0.0.1", p, l);
                }
            }
            22 => {
                // The node stops (or starts again) reading: its peers' output backs up.
                stalled[i] = !stalled[i];
                world.set_stalled(i, stalled[i]);
            }
            21 => {
                let to = usize::from(s.byte()) % NODES;
                let _ = c.context_mut().connect(&format!(
                    "amqp://127.0.0.1:{}/q{}",
                    PORT + to as u16,
                    s.byte() % 4
                ));
            }
            _ => {
                // Let time pass: up to ~25 s of virtual time, mostly short steps.
                let b = s.byte();
                let ms = if b < 200 {
                    u64::from(b)
                } else {
                    u64::from(b - 199) * 500
                };
                world.run_for(Duration::from_millis(ms));
            }
        }
        world.run_for(Duration::from_millis(1));
        check_counts(&mut world, sent_seq);
    }
    for (p, l) in blocked.drain(..) {
        world.restore_listener("127.0.0.1", p, l);
    }
    for (i, &stall) in stalled.iter().enumerate() {
        if stall {
            world.set_stalled(i, false);
        }
    }
    world.run_for(Duration::from_secs(5));
    check_counts(&mut world, sent_seq);
    for i in 0..NODES {
        if let Some(c) = node(&mut world, i) {
            c.context_mut().stop();
        }
    }
    // Stopping closes every connection; a peer that never answers a close is dropped after
    // the close deadline, and reconnect timers are cancelled.
    world.run_for(Duration::from_secs(120));
    assert!(world.all_done(), "containers still running after stop");
    let mut total = MessagingReport::default();
    for i in 0..NODES {
        if let Some(c) = node(&mut world, i) {
            let r = c.handler().report;
            total.sent += r.sent;
            total.received += r.received;
            total.outcomes += r.outcomes;
            total.opened += r.opened;
            total.disconnects += r.disconnects;
        }
    }
    total
}

/// No node receives more than was sent, and the unpadded messages received carry numbers
/// that were sent (their sum cannot exceed the sum of those sent, each being received at
/// most once without a resend).
fn check_counts(world: &mut World, sent_seq: u64) {
    let mut sent = 0;
    let mut received = 0;
    let mut received_seq: u64 = 0;
    let mut outcomes = 0;
    for i in 0..NODES {
        if let Some(c) = node(world, i) {
            let h = c.handler();
            sent += h.report.sent;
            received += h.report.received;
            outcomes += h.report.outcomes;
            received_seq = received_seq.wrapping_add(h.received_seq);
        }
    }
    assert!(received <= sent, "received {received} > sent {sent}");
    assert!(outcomes <= sent, "outcomes {outcomes} > sent {sent}");
    assert!(
        received_seq <= sent_seq,
        "received numbers {received_seq} > sent {sent_seq}"
    );
}
