//! Our side of the scenarios no example binary covers: a small client on the tokio
//! [`Container`] that sends messages and records their outcomes, receives messages and settles
//! each as its plan says (accept, reject, release, modify), drains, and reports what it saw,
//! bounded by its own timer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_tokio::amqp_proto::message::{Body, Message};
use amqp_tokio::Container;
use amqp_tokio::{
    ConnectOptions, Event, HandlerOptions, LinkHandle, LinkOptions, MessagingHandler,
};

/// How the probe settles a received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    Accept,
    Reject,
    Release,
    /// Modified, delivery-failed (the broker counts a delivery attempt).
    Modify,
}

/// What to do, and then what happened.
pub(crate) struct Probe {
    opts: Option<ConnectOptions>,
    address: String,
    /// Messages to send, in order.
    pub(crate) to_send: Vec<Message>,
    sent: usize,
    /// Messages to receive (0: no receiver).
    pub(crate) expect: usize,
    /// How to settle received message `i` (missing: accept).
    pub(crate) plan: Vec<Then>,
    /// Receiver credit: granted once (no top-up) when `drain`, else the prefetch window.
    pub(crate) credit: u32,
    /// After granting `credit`, ask the sender to drain.
    pub(crate) drain: bool,
    /// Attach a receiver even with `expect == 0` (to see that nothing comes).
    pub(crate) listen: bool,
    /// Keep going after a transport error (the connection reconnects).
    pub(crate) reconnects: bool,
    /// Stay connected this long doing nothing (idle-timeout scenarios).
    pub(crate) idle_for: Option<Duration>,
    limit: Duration,
    receiver: Option<LinkHandle>,
    /// Set once the connection is open (read by the test's thread).
    pub(crate) opened_flag: Arc<AtomicBool>,
    /// Outcome of each sent message, in the order they came back.
    pub(crate) outcomes: Vec<&'static str>,
    /// Messages received, in order.
    pub(crate) received: Vec<Message>,
    /// `on_drained` came.
    pub(crate) drained: bool,
    /// Connections opened (more than 1: reconnected).
    pub(crate) opened: usize,
    /// Transport, connection and link errors.
    pub(crate) errors: Vec<String>,
    /// When the first error came.
    pub(crate) first_error_at: Option<Instant>,
    /// Messages received so far (read by the test's thread).
    pub(crate) progress: Arc<AtomicUsize>,
    /// The probe's own limit ran out.
    pub(crate) timed_out: bool,
}

impl Probe {
    /// A probe for `address` on the connection `opts` makes, stopped after `limit` at most.
    pub(crate) fn new(opts: ConnectOptions, address: &str, limit: Duration) -> Probe {
        Probe {
            opts: Some(opts),
            address: address.to_string(),
            to_send: Vec::new(),
            sent: 0,
            expect: 0,
            plan: Vec::new(),
            credit: 100,
            drain: false,
            listen: false,
            reconnects: false,
            idle_for: None,
            limit,
            receiver: None,
            opened_flag: Arc::new(AtomicBool::new(false)),
            outcomes: Vec::new(),
            received: Vec::new(),
            drained: false,
            opened: 0,
            errors: Vec::new(),
            first_error_at: None,
            progress: Arc::new(AtomicUsize::new(0)),
            timed_out: false,
        }
    }

    /// Runs the probe to its end on a tokio container.
    pub(crate) fn run(self) -> Probe {
        Container::new(self).run()
    }

    fn done(&self) -> bool {
        self.idle_for.is_none()
            && self.outcomes.len() == self.to_send.len()
            && self.received.len() >= self.expect
            && (!self.drain || self.drained)
    }

    fn check_done(&mut self, e: &mut Event<'_>) {
        if self.done() {
            e.container_mut().stop();
        }
    }

    fn error(&mut self, what: &str, e: &mut Event<'_>) {
        let text = match (e.transport_error(), e.error()) {
            (Some(t), _) => t.to_string(),
            (None, Some(err)) => format!("{err:?}"),
            (None, None) => String::new(),
        };
        if self.first_error_at.is_none() {
            self.first_error_at = Some(Instant::now());
        }
        self.errors.push(format!("{what}: {text}"));
    }
}

/// Message `i` of the big-message scenarios: a data body of `size` bytes, [`pattern`]`(i)`.
pub(crate) fn big(i: usize, size: usize) -> Message {
    Message::new(Body::data(pattern(i, size)))
}

/// Checks a probe that sent and received `n` [`big`] messages: every one accepted, every one
/// received in order and byte-identical.
pub(crate) fn check_big(p: &Probe, n: usize, size: usize) -> Result<(), String> {
    if p.outcomes != vec!["accepted"; n] {
        return Err(format!("outcomes {:?}; errors {:?}", p.outcomes, p.errors));
    }
    if p.received.len() != n {
        return Err(format!(
            "received {}; errors {:?}",
            p.received.len(),
            p.errors
        ));
    }
    for (i, m) in p.received.iter().enumerate() {
        let got = data_bytes(m);
        if got != pattern(i, size) {
            return Err(format!("message {i}: {} bytes, not the pattern", got.len()));
        }
    }
    Ok(())
}

/// The bytes of a message's data sections.
fn data_bytes(m: &Message) -> Vec<u8> {
    match &m.body {
        Body::Data(parts) => parts.iter().flat_map(|b| b.iter().copied()).collect(),
        _ => Vec::new(),
    }
}

/// `size` bytes that depend on `i`: byte k is (i + k) % 251.
fn pattern(i: usize, size: usize) -> Vec<u8> {
    (0..size).map(|k| ((i + k) % 251) as u8).collect()
}

impl MessagingHandler for Probe {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: if self.drain { 0 } else { self.credit },
            auto_accept: false,
            auto_settle: true,
        }
    }

    fn on_start(&mut self, e: &mut Event<'_>) {
        let Some(opts) = self.opts.take() else { return };
        let c = match e.container_mut().connect_with(opts) {
            Ok(c) => c,
            Err(err) => {
                self.errors.push(format!("connect: {err}"));
                e.container_mut().stop();
                return;
            }
        };
        if self.expect > 0 || self.drain || self.listen {
            match e
                .container_mut()
                .create_receiver(c, LinkOptions::address(self.address.as_str()))
            {
                Ok(l) => self.receiver = Some(l),
                Err(err) => self.errors.push(format!("receiver: {err}")),
            }
        }
        if !self.to_send.is_empty() {
            if let Err(err) = e.container_mut().create_sender(c, self.address.as_str()) {
                self.errors.push(format!("sender: {err}"));
            }
        }
        let limit = self.idle_for.unwrap_or(self.limit);
        e.container_mut().schedule(limit);
    }

    fn on_connection_opened(&mut self, _e: &mut Event<'_>) {
        self.opened += 1;
        self.opened_flag.store(true, Ordering::SeqCst);
    }

    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        if self.drain && e.link() == self.receiver {
            if let Some(l) = self.receiver {
                if let Err(err) = e.container_mut().flow(l, self.credit) {
                    self.errors.push(format!("flow: {err}"));
                }
                if let Err(err) = e.container_mut().drain(l) {
                    self.errors.push(format!("drain: {err}"));
                }
            }
        }
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        while self.sent < self.to_send.len() && e.credit() > 0 {
            match e.send(&self.to_send[self.sent]) {
                Ok(_) => self.sent += 1,
                Err(err) => {
                    self.errors.push(format!("send: {err}"));
                    break;
                }
            }
        }
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.outcomes.push("accepted");
        self.check_done(e);
    }

    fn on_rejected(&mut self, e: &mut Event<'_>) {
        self.outcomes.push("rejected");
        self.check_done(e);
    }

    fn on_released(&mut self, e: &mut Event<'_>) {
        self.outcomes.push("released or modified");
        self.check_done(e);
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let Some(m) = e.take_message() else { return };
        let m = match m.into_message() {
            Ok(m) => m,
            Err(err) => {
                self.errors.push(format!("decode: {err}"));
                return;
            }
        };
        let then = self
            .plan
            .get(self.received.len())
            .copied()
            .unwrap_or(Then::Accept);
        self.received.push(m);
        self.progress.store(self.received.len(), Ordering::SeqCst);
        let r = match (then, e.delivery()) {
            (Then::Accept, _) => e.accept(),
            (Then::Reject, _) => e.reject(None),
            (Then::Release, _) => e.release(),
            (Then::Modify, Some(d)) => e.container_mut().modify(d, true, false),
            (Then::Modify, None) => Ok(()),
        };
        if let Err(err) = r {
            self.errors.push(format!("settle: {err}"));
        }
        self.check_done(e);
    }

    fn on_drained(&mut self, e: &mut Event<'_>) {
        self.drained = true;
        self.check_done(e);
    }

    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        self.error("transport", e);
        if !self.reconnects {
            e.container_mut().stop();
        }
    }

    fn on_connection_error(&mut self, e: &mut Event<'_>) {
        self.error("connection", e);
        e.container_mut().stop();
    }

    fn on_link_error(&mut self, e: &mut Event<'_>) {
        self.error("link", e);
        e.container_mut().stop();
    }

    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.timed_out = self.idle_for.is_none();
        e.container_mut().stop();
    }
}
