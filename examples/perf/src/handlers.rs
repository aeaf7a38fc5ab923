//! The sender and receiver [`MessagingHandler`]s.

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use amqp_tokio::amqp_proto::message::{Body, Message};
use amqp_tokio::amqp_proto::Value;
use amqp_tokio::{
    ConnectOptions, Event, HandlerOptions, LinkHandle, LinkOption, LinkOptions, MessagingHandler,
    Reconnect, TimerHandle, Url,
};
use bytes::Bytes;

use crate::alloc::AllocWindow;
use crate::args::Settle;
use crate::hist::Histogram;

/// The application property carrying the send timestamp (u64 nanoseconds).
pub(crate) const TS_KEY: &str = "ts";

/// The clock timestamps are taken from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Clock {
    /// Nanoseconds since an `Instant` both ends share (one process).
    Mono(Instant),
    /// Nanoseconds since the Unix epoch (two processes, one machine).
    Wall,
}

impl Clock {
    /// The time `at` (taken just before) as nanoseconds on this clock.
    pub(crate) fn ns(self, at: Instant) -> u64 {
        match self {
            Clock::Mono(epoch) => at.saturating_duration_since(epoch).as_nanos() as u64,
            Clock::Wall => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        }
    }
}

/// What a receiver tells the main thread once it can take messages.
#[derive(Debug)]
pub(crate) enum Ready {
    /// Listening on this port.
    Port(u16),
    /// Its link to the broker is attached.
    Attached,
    /// It failed before being ready.
    Failed(String),
}

fn connect_options(url: &str) -> Result<ConnectOptions, String> {
    let u = Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    Ok(ConnectOptions::new().url(u).reconnect(Reconnect::Disabled))
}

/// What a sender (handler or async) did.
#[derive(Default)]
pub(crate) struct SenderReport {
    pub(crate) sent: u64,
    pub(crate) accepted: u64,
    pub(crate) not_accepted: u64,
    pub(crate) start: Option<Instant>,
    pub(crate) end: Option<Instant>,
    pub(crate) error: Option<String>,
    pub(crate) timed_out: bool,
    /// Allocations over the steady state, counted by this sender's outcomes.
    pub(crate) allocs: AllocWindow,
}

/// What a sender is asked to do.
#[derive(Clone, Debug)]
pub(crate) struct SenderConfig {
    pub(crate) url: String,
    pub(crate) address: String,
    pub(crate) count: u64,
    pub(crate) body_size: usize,
    pub(crate) settle: Settle,
    pub(crate) clock: Clock,
    pub(crate) duration_max: Duration,
    /// Messages per second over the whole run (`None`: as fast as credit allows).
    pub(crate) rate: Option<f64>,
    /// Connections, each with `links` sender links (fan-in).
    pub(crate) connections: u32,
    pub(crate) links: u32,
    /// Unsettled messages in flight at most (0: as many as credit allows).
    pub(crate) max_in_flight: u64,
}

/// Sends `count` messages, as fast as credit allows or paced at `rate`, over every link of
/// every connection it opens; counts outcomes.
pub(crate) struct SenderHandler {
    cfg: SenderConfig,
    message: Message,
    deadline: Option<TimerHandle>,
    /// The pacing timer, while one is pending.
    tick: Option<TimerHandle>,
    links: Vec<LinkHandle>,
    /// The link a paced round starts from (round robin).
    next_link: usize,
    /// What it did so far.
    pub(crate) report: SenderReport,
}

impl SenderHandler {
    pub(crate) fn new(cfg: SenderConfig) -> Self {
        let mut message = Message::new(Body::data(Bytes::from(vec![b'x'; cfg.body_size])));
        message.set_application_property(TS_KEY, Value::Ulong(0));
        SenderHandler {
            cfg,
            message,
            deadline: None,
            tick: None,
            links: Vec::new(),
            next_link: 0,
            report: SenderReport::default(),
        }
    }

    /// True once every message is sent and (unsettled) every outcome is in.
    pub(crate) fn complete(&self) -> bool {
        match self.cfg.settle {
            Settle::Presettled => self.report.sent == self.cfg.count,
            Settle::Unsettled => self.report.accepted + self.report.not_accepted == self.cfg.count,
        }
    }

    fn fail(&mut self, e: &mut Event<'_>, what: String) {
        if !self.complete() && self.report.error.is_none() {
            self.report.error = Some(what);
        }
        e.container_mut().stop();
    }

    fn outcome(&mut self, e: &mut Event<'_>, accepted: bool) {
        if accepted {
            self.report.accepted += 1;
        } else {
            self.report.not_accepted += 1;
        }
        let outcomes = self.report.accepted + self.report.not_accepted;
        self.report.allocs.observe(outcomes, self.cfg.count);
        if self.complete() && self.report.end.is_none() {
            self.report.end = Some(Instant::now());
            e.container_mut().stop();
        } else if self.cfg.max_in_flight > 0
            && self.cfg.rate.is_none()
            && self.room() >= self.cfg.max_in_flight / 2
        {
            // Capped: refill in batches of half the cap, not one message per outcome.
            self.fill(e);
        }
    }

    /// How many more messages may be sent now under `max_in_flight` (unsettled only).
    fn room(&self) -> u64 {
        let r = &self.report;
        if self.cfg.max_in_flight == 0 || self.cfg.settle == Settle::Presettled {
            return u64::MAX;
        }
        let in_flight = r.sent - (r.accepted + r.not_accepted);
        self.cfg.max_in_flight.saturating_sub(in_flight)
    }

    /// Unpaced: sends what credit and the in-flight cap allow, over every link.
    fn fill(&mut self, e: &mut Event<'_>) {
        for i in 0..self.links.len() {
            let n = (self.cfg.count - self.report.sent).min(self.room());
            if n == 0 {
                break;
            }
            if !self.send_on(e, self.links[i], n) {
                return;
            }
        }
        self.after_send(e);
    }

    /// Sends up to `n` messages on `link` within its credit; false after a send error.
    fn send_on(&mut self, e: &mut Event<'_>, link: LinkHandle, n: u64) -> bool {
        let n = n.min(u64::from(e.container().credit(link)));
        for _ in 0..n {
            let ts = self.cfg.clock.ns(Instant::now());
            if let Some(ap) = self.message.application_properties.as_mut() {
                ap.0[0].1 = Value::Ulong(ts);
            }
            if let Err(err) = e.container_mut().send(link, &self.message) {
                self.fail(e, format!("send: {err}"));
                return false;
            }
            self.report.sent += 1;
            if self.cfg.settle == Settle::Presettled {
                self.report.allocs.observe(self.report.sent, self.cfg.count);
            }
        }
        true
    }

    /// Paced: sends what is due by now (round robin over the links, within their credit),
    /// then sets the timer for the next message unless credit is what holds it back (the next
    /// `on_sendable` resumes then).
    fn pace(&mut self, e: &mut Event<'_>, rate: f64) {
        let now = Instant::now();
        let start = *self.report.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start).as_secs_f64();
        let due_by_now = ((elapsed * rate) as u64 + 1).min(self.cfg.count);
        let mut due = due_by_now.saturating_sub(self.report.sent).min(self.room());
        let nl = self.links.len();
        for i in 0..nl {
            if due == 0 {
                break;
            }
            let link = self.links[(self.next_link + i) % nl];
            let before = self.report.sent;
            if !self.send_on(e, link, due) {
                return;
            }
            due -= self.report.sent - before;
        }
        self.next_link = (self.next_link + 1) % nl.max(1);
        if self.report.sent < self.cfg.count && due == 0 && self.tick.is_none() {
            let next_at = self.report.sent as f64 / rate;
            let wait = Duration::from_secs_f64((next_at - elapsed).max(0.0));
            self.tick = Some(e.container_mut().schedule(wait));
        }
    }

    fn after_send(&mut self, e: &mut Event<'_>) {
        if self.cfg.settle == Settle::Presettled && self.complete() && self.report.end.is_none() {
            self.report.end = Some(Instant::now());
            // Stopping closes the connection after the transfers already written.
            e.container_mut().stop();
        }
    }
}

impl MessagingHandler for SenderHandler {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: 0,
            auto_accept: true,
            auto_settle: true,
        }
    }

    fn on_start(&mut self, e: &mut Event<'_>) {
        self.deadline = Some(e.container_mut().schedule(self.cfg.duration_max));
        let mut lo = LinkOptions::address(self.cfg.address.clone());
        if self.cfg.settle == Settle::Presettled {
            lo = lo.with(LinkOption::AtMostOnce);
        }
        for _ in 0..self.cfg.connections {
            let opts = match connect_options(&self.cfg.url) {
                Ok(o) => o,
                Err(err) => return self.fail(e, err),
            };
            let conn = match e.container_mut().connect_with(opts) {
                Ok(c) => c,
                Err(err) => return self.fail(e, format!("connect: {err}")),
            };
            for _ in 0..self.cfg.links {
                match e.container_mut().create_sender(conn, lo.clone()) {
                    Ok(l) => self.links.push(l),
                    Err(err) => return self.fail(e, format!("create_sender: {err}")),
                }
            }
        }
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        match self.cfg.rate {
            Some(rate) => self.pace(e, rate),
            None => {
                self.report.start.get_or_insert_with(Instant::now);
                let Some(link) = e.sender() else { return };
                let n = (self.cfg.count - self.report.sent).min(self.room());
                if !self.send_on(e, link, n) {
                    return;
                }
            }
        }
        self.after_send(e);
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.outcome(e, true);
    }

    fn on_rejected(&mut self, e: &mut Event<'_>) {
        self.outcome(e, false);
    }

    fn on_released(&mut self, e: &mut Event<'_>) {
        self.outcome(e, false);
    }

    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        let t = e.timer();
        if t == self.deadline {
            self.report.timed_out = true;
            e.container_mut().stop();
        } else if t.is_some() && t == self.tick {
            self.tick = None;
            if let Some(rate) = self.cfg.rate {
                self.pace(e, rate);
                self.after_send(e);
            }
        }
    }

    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        let why = e
            .transport_error()
            .map_or_else(|| "transport error".to_string(), ToString::to_string);
        self.fail(e, format!("sender: {why}"));
    }

    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        let why = e
            .transport_error()
            .map_or_else(|| "disconnected".to_string(), ToString::to_string);
        self.fail(e, format!("sender: {why}"));
    }

    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        let why = format!(
            "sender: connection closed after {} outcomes",
            self.report.accepted
        );
        self.fail(e, why);
    }

    fn on_link_error(&mut self, e: &mut Event<'_>) {
        let why = format!("sender: link error: {:?}", e.error());
        self.fail(e, why);
    }

    fn on_connection_error(&mut self, e: &mut Event<'_>) {
        let why = format!("sender: connection error: {:?}", e.error());
        self.fail(e, why);
    }
}

/// Where a receiver gets its messages from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// Listen on `host:port` for a sender (peer-to-peer).
    Listen(String),
    /// Connect to a broker URL and receive from an address.
    Connect { url: String, address: String },
}

/// Receives `count` messages (auto-accepting them) and records their latency.
pub(crate) struct ReceiverHandler {
    source: Source,
    count: u64,
    credit: u32,
    clock: Clock,
    duration_max: Duration,
    ready: Option<mpsc::Sender<Ready>>,
    deadline: Option<TimerHandle>,
    finish: Option<TimerHandle>,
    pub(crate) received: u64,
    pub(crate) untimed: u64,
    pub(crate) latency: Histogram,
    pub(crate) first: Option<Instant>,
    pub(crate) last: Option<Instant>,
    pub(crate) error: Option<String>,
    pub(crate) timed_out: bool,
    /// Allocations over the steady state, counted by messages received.
    pub(crate) allocs: AllocWindow,
}

impl ReceiverHandler {
    pub(crate) fn new(
        source: Source,
        count: u64,
        credit: u32,
        clock: Clock,
        duration_max: Duration,
        ready: mpsc::Sender<Ready>,
    ) -> Self {
        ReceiverHandler {
            source,
            count,
            credit,
            clock,
            duration_max,
            ready: Some(ready),
            deadline: None,
            finish: None,
            received: 0,
            untimed: 0,
            latency: Histogram::default(),
            first: None,
            last: None,
            error: None,
            timed_out: false,
            allocs: AllocWindow::default(),
        }
    }

    fn signal(&mut self, r: Ready) {
        if let Some(tx) = self.ready.take() {
            let _ = tx.send(r);
        }
    }

    fn fail(&mut self, e: &mut Event<'_>, what: String) {
        if self.received < self.count && self.error.is_none() {
            self.signal(Ready::Failed(what.clone()));
            self.error = Some(what);
        }
        e.container_mut().stop();
    }
}

impl MessagingHandler for ReceiverHandler {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: self.credit,
            auto_accept: true,
            auto_settle: true,
        }
    }

    fn on_start(&mut self, e: &mut Event<'_>) {
        self.deadline = Some(e.container_mut().schedule(self.duration_max));
        match self.source.clone() {
            Source::Listen(hostport) => {
                if let Err(err) = e.container_mut().listen(&hostport) {
                    self.fail(e, format!("listen on {hostport}: {err}"));
                }
            }
            Source::Connect { url, address } => {
                let opts = match connect_options(&url) {
                    Ok(o) => o,
                    Err(err) => return self.fail(e, err),
                };
                let conn = match e.container_mut().connect_with(opts) {
                    Ok(c) => c,
                    Err(err) => return self.fail(e, format!("connect: {err}")),
                };
                let lo = LinkOptions {
                    prefetch: Some(self.credit),
                    ..LinkOptions::address(address)
                };
                if let Err(err) = e.container_mut().create_receiver(conn, lo) {
                    self.fail(e, format!("create_receiver: {err}"));
                }
            }
        }
    }

    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        if let Some(port) = e.acceptor().and_then(|a| e.container().acceptor_port(a)) {
            self.signal(Ready::Port(port));
        }
    }

    fn on_acceptor_error(&mut self, e: &mut Event<'_>) {
        let why = e
            .transport_error()
            .map_or_else(|| "listen failed".to_string(), ToString::to_string);
        self.fail(e, why);
    }

    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        if e.receiver().is_some() {
            self.signal(Ready::Attached);
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.received += 1;
        self.allocs.observe(self.received, self.count);
        // One property read in place: decoding the whole map would allocate per message.
        match e
            .message()
            .and_then(|m| m.find_application_property(TS_KEY))
        {
            Some(Value::Ulong(ts)) => {
                let lat = self.clock.ns(now).saturating_sub(ts);
                self.latency.record(lat);
            }
            _ => self.untimed += 1,
        }
        if self.received == self.count {
            self.last = Some(now);
            // Stop on the next turn, once this message's disposition is written.
            self.finish = Some(e.container_mut().schedule(Duration::ZERO));
        }
    }

    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        let t = e.timer();
        if t == self.deadline {
            self.timed_out = self.received < self.count;
            e.container_mut().stop();
        } else if t == self.finish {
            e.container_mut().stop();
        }
    }

    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        let why = e
            .transport_error()
            .map_or_else(|| "transport error".to_string(), ToString::to_string);
        self.fail(e, format!("receiver: {why}"));
    }

    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        let why = e
            .transport_error()
            .map_or_else(|| "disconnected".to_string(), ToString::to_string);
        self.fail(e, format!("receiver: {why}"));
    }

    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        let why = format!(
            "receiver: connection closed after {} of {} messages",
            self.received, self.count
        );
        self.fail(e, why);
    }

    fn on_link_error(&mut self, e: &mut Event<'_>) {
        let why = format!("receiver: link error: {:?}", e.error());
        self.fail(e, why);
    }
}
