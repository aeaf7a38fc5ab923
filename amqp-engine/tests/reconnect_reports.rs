//! How a container takes a driver's reports of a transport's end: a driver's reader and writer
//! may both report the same transport closed, and the second report must not schedule a second
//! connect attempt (that attempt would later replace the live transport the first one made,
//! dropping what was in flight on it without a word: a sender that never finishes).

use std::time::{Duration, Instant};

use amqp_engine::messaging::*;

#[derive(Default)]
struct Dialer;

impl MessagingHandler for Dialer {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().connect("amqp://127.0.0.1:5672").unwrap();
    }
}

/// The connect attempts the container asks for, among its I/O requests.
fn connects(c: &mut SansIoContainer<Dialer>) -> Vec<TransportId> {
    let mut out = Vec::new();
    while let Some(req) = c.poll_io() {
        if let IoRequest::Connect { transport, .. } = req {
            out.push(transport);
        }
    }
    out
}

fn reset() -> TransportError {
    TransportError::new(TransportErrorKind::Io, "read: connection reset by peer")
}

/// Lets time pass until the container asks for a connect attempt (within a minute).
fn next_connect(c: &mut SansIoContainer<Dialer>, now: &mut Instant) -> TransportId {
    for _ in 0..600 {
        if let Some(t) = connects(c).pop() {
            return t;
        }
        *now += Duration::from_millis(100);
        c.handle_timeout(*now);
    }
    panic!("no connect attempt within a minute");
}

#[test]
fn a_transport_reported_closed_twice_is_retried_once() {
    let mut now = Instant::now();
    let mut c = SansIoContainer::with_id(Dialer, "client", now);
    c.start(now);
    let first = next_connect(&mut c, &mut now);
    c.handle_connect_failed(
        first,
        TransportError::new(TransportErrorKind::Refused, "refused"),
        now,
    );
    let second = next_connect(&mut c, &mut now);
    // Connected, then reset during SASL; the reader and the writer both report it.
    c.handle_connected(second, TransportInfo::default(), now);
    c.handle_disconnected(second, Some(reset()), now);
    c.handle_disconnected(second, None, now);
    // One retry after the backoff, and no other one ever.
    next_connect(&mut c, &mut now);
    let mut again = Vec::new();
    for _ in 0..1200 {
        now += Duration::from_millis(100);
        c.handle_timeout(now);
        again.extend(connects(&mut c));
    }
    assert!(
        again.is_empty(),
        "a second attempt beside the first: {again:?}"
    );
}
