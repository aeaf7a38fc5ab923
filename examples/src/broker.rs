//! A small but real message broker, written as a [`MessagingHandler`] (the `broker` example,
//! and the in-process broker `helloworld` starts when given no address).
//!
//! * **Queues** are named by link addresses and created on demand (a producer's target, a
//!   consumer's source, or a message's `to` for anonymous producers). An empty queue nobody
//!   consumes from is forgotten.
//! * **Competing consumers**: several producers and consumers per queue; messages go to the
//!   consumers that have credit, round-robin, in queue order. Credit is always respected.
//! * **Acknowledgement**: a message stays the broker's until the consumer settles it.
//!   *accepted* removes it; *rejected* removes it (to the dead-letter queue, if configured);
//!   *released* puts it back where it was, unchanged; *modified* puts it back, with the
//!   header's `delivery-count` incremented if `delivery-failed`, never again to the same link
//!   if `undeliverable-here`, and with the given message annotations merged in. A message whose
//!   `delivery-count` reached the redelivery limit is dropped (or dead-lettered) instead.
//! * **Consumers that go away** (detach, connection close, lost transport) give back their
//!   unsettled messages: they are requeued in their original order with `delivery-count`
//!   incremented (the consumer may have seen them), subject to the same limit.
//! * **Dynamic nodes**: a receiver with a `dynamic` source (or a sender with a `dynamic`
//!   target) gets a fresh temporary queue, deleted with its messages when that link closes
//!   (the reply queue of request/response clients).
//! * **Browsing**: a receiver whose source asks for distribution mode `copy` sees the messages
//!   without taking them (each once, in order, including ones that arrive later).
//! * **Selectors**: a `apache.org:selector-filter:string` filter (Proton's `Selector(…)`) on a
//!   receiver's source limits it to matching messages; others stay for other consumers. See
//!   [`crate::selector`] for the supported syntax. A selector that does not parse refuses the
//!   link with `amqp:not-implemented`. Other filter types are ignored and not echoed in the
//!   broker's source (so the client can tell they are not in force).
//! * **At-most-once consumers** (sender-settle-mode `settled`) get pre-settled messages.
//! * Transactions (a coordinator target) are refused with `amqp:not-implemented`.
//! * **Stalled consumers**: a consumer whose connection has more than
//!   [`OUTPUT_HIGH_WATER`](amqp_engine::messaging::OUTPUT_HIGH_WATER) bytes of unsent output
//!   (granted credit, does not read) gets no more messages until that drains; they go to the
//!   other consumers.
//! * **Limits** ([`Limits`]): each queue holds at most so many messages and bytes, the broker
//!   so many bytes in all; producers of a nearly full queue get no more credit until it
//!   drains, and a message past a limit is rejected with `amqp:resource-limit-exceeded`. Every
//!   producer's link advertises the largest message accepted (`max-message-size`), and the
//!   listener an idle time-out (60 s by default) so that dead peers are reaped.
//!
//! SASL and TLS are the listener's business: see [`BrokerConfig::listen`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use amqp_engine::messaging::{
    uuid_from_bytes, ContainerContext, Event, HandlerOptions, LinkHandle, ListenOptions,
    MessagingHandler, Tracker,
};
use amqp_proto::definitions::{condition, Error, SenderSettleMode};
use amqp_proto::message::{Annotations, Header, ReceivedMessage, Rewrite};
use amqp_proto::messaging::{distribution_mode, DeliveryState, FilterSet, TargetKind};
use amqp_proto::{Descriptor, Value};

use crate::limits::{Holdings, Limits};
use crate::selector::Selector;

/// The descriptor code of the JMS selector filter (`apache.org:selector-filter:string`).
pub const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;
/// The descriptor symbol of the JMS selector filter.
pub const SELECTOR_FILTER_NAME: &str = "apache.org:selector-filter:string";

/// How the broker runs.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// The URL to listen on (`localhost:5672`, `0.0.0.0:5672`, `amqps://[::]:5671`, port 0 for
    /// any free port).
    pub address: String,
    /// Print what happens to each message.
    pub verbose: bool,
    /// A message whose delivery-count reaches this is not redelivered (Proton's broker: 5).
    pub redelivery_limit: u32,
    /// Where dropped messages go (rejected, over the redelivery limit, undeliverable); `None`
    /// drops them.
    pub dead_letter_queue: Option<String>,
    /// SASL (`None`: ANONYMOUS) and TLS settings of the listener.
    pub listen: ListenOptions,
    /// Credit kept on each producer's link.
    pub prefetch: u32,
    /// Print `Listening on URL` to stderr once listening.
    pub announce: bool,
    /// How much the queues and the broker may hold, and the largest message.
    pub limits: Limits,
}

/// The idle time-out the broker's listener uses unless told otherwise: a peer silent for
/// this long is disconnected (half of it is advertised in `open`, so the peer's heartbeats
/// arrive in time).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            address: "localhost:5672".into(),
            verbose: false,
            redelivery_limit: 5,
            dead_letter_queue: None,
            listen: ListenOptions {
                idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
                ..ListenOptions::default()
            },
            prefetch: 100,
            announce: true,
            limits: Limits::default(),
        }
    }
}

/// Counters, for tests and `--verbose`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Messages received from producers.
    pub received: u64,
    /// Transfers to consumers (including redeliveries and browsing).
    pub delivered: u64,
    /// Outcomes: accepted.
    pub accepted: u64,
    /// Outcomes: rejected.
    pub rejected: u64,
    /// Messages put back on their queue (released, modified, consumer gone).
    pub requeued: u64,
    /// Messages dropped or dead-lettered.
    pub dead: u64,
    /// Messages rejected with `amqp:resource-limit-exceeded` (a queue or the budget was full).
    pub refused: u64,
}

/// A queued message: the bytes it was received with, forwarded unchanged; only a redelivery
/// rewrites its header (delivery-count, first-acquirer) and a `modified` outcome its message
/// annotations, spliced in front of the rest.
struct Stored {
    msg: ReceivedMessage,
    /// The header to send instead of the received one, once a delivery attempt failed.
    header: Option<Header>,
    /// The message annotations to send instead of the received ones, once a consumer added some.
    annotations: Option<Annotations>,
    /// Consumers that said `undeliverable-here`.
    excluded: Vec<LinkHandle>,
}

impl Stored {
    fn new(msg: ReceivedMessage) -> Stored {
        Stored {
            msg,
            header: None,
            annotations: None,
            excluded: Vec::new(),
        }
    }

    /// What the message counts for against the limits.
    fn size(&self) -> u64 {
        self.msg.as_bytes().len() as u64
    }

    fn delivery_count(&self) -> u32 {
        match &self.header {
            Some(h) => h.delivery_count.unwrap_or(0),
            None => self.msg.delivery_count(),
        }
    }

    /// Counts a failed delivery attempt in the header sent next time.
    fn count_failure(&mut self) {
        let count = self.delivery_count();
        let h = self
            .header
            .get_or_insert_with(|| self.msg.header().cloned().unwrap_or_default());
        h.delivery_count = Some(count + 1);
        h.first_acquirer = Some(false);
    }

    /// Adds the annotations of a `modified` outcome to the message annotations sent next time.
    fn annotate(&mut self, added: &amqp_proto::definitions::Fields) {
        let ma = self
            .annotations
            .get_or_insert_with(|| self.msg.message_annotations().cloned().unwrap_or_default());
        for (k, v) in added.iter() {
            ma.insert(Value::Symbol(k.clone()), v.clone());
        }
    }

    /// What to send: the received bytes, with the header and annotations replaced if changed.
    fn outgoing(&self) -> Rewrite<'_> {
        let mut w = self.msg.rewrite();
        if let Some(h) = &self.header {
            w = w.header(h);
        }
        if let Some(a) = &self.annotations {
            w = w.message_annotations(a);
        }
        w
    }
}

#[derive(Default)]
struct Queue {
    messages: BTreeMap<u64, Stored>,
    consumers: Vec<LinkHandle>,
    /// Where the next round-robin pass starts.
    next: usize,
    /// The link whose dynamic terminus created the queue: the queue goes when it goes.
    owner: Option<LinkHandle>,
}

struct Consumer {
    queue: Arc<str>,
    selector: Option<Selector>,
    browse: bool,
    presettled: bool,
    /// Messages below this sequence number are known not to be for this consumer (they did
    /// not match, were excluded, or, when browsing, were already seen).
    cursor: u64,
}

enum Role {
    Consumer(Consumer),
    /// A producer's target address; `None`: the anonymous relay (messages carry `to`).
    Producer(Option<Arc<str>>),
}

struct Unacked {
    queue: Arc<str>,
    seq: u64,
    stored: Stored,
    link: LinkHandle,
    dynamic: bool,
}

/// What to do with a message given back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Back {
    /// Released: as it was.
    Released,
    /// Delivery failed (modified, or the consumer went away): count the attempt.
    Failed,
}

/// The broker handler. Run it with `amqp_tokio::Container::new(Broker::new(config)).run()`.
pub struct Broker {
    cfg: BrokerConfig,
    queues: HashMap<String, Queue>,
    links: HashMap<LinkHandle, Role>,
    unacked: HashMap<Tracker, Unacked>,
    next_seq: u64,
    listening: Option<Box<dyn FnMut(u16) + Send>>,
    error: Option<String>,
    port: Option<u16>,
    stats: BrokerStats,
    /// What each queue and the broker hold, against `cfg.limits`.
    holdings: Holdings,
    /// Producers whose credit is not topped up until their queue (and the budget) drain.
    paused: HashSet<LinkHandle>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("cfg", &self.cfg)
            .field("queues", &self.queues.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

/// Whether a filter value is a JMS selector; its text if so.
pub fn selector_text(v: &Value) -> Option<&str> {
    let Value::Described(d) = v else { return None };
    let is_selector = match &d.descriptor {
        Descriptor::Code(c) => *c == SELECTOR_FILTER_CODE,
        Descriptor::Name(s) => s.as_str() == SELECTOR_FILTER_NAME,
    };
    if is_selector {
        d.value.as_str()
    } else {
        None
    }
}

impl Broker {
    /// A broker with this configuration.
    pub fn new(cfg: BrokerConfig) -> Broker {
        Broker {
            cfg,
            queues: HashMap::new(),
            links: HashMap::new(),
            unacked: HashMap::new(),
            next_seq: 1,
            listening: None,
            error: None,
            port: None,
            stats: BrokerStats::default(),
            holdings: Holdings::default(),
            paused: HashSet::new(),
        }
    }

    /// Calls `f` with the bound port once the broker listens (for brokers embedded in tests or
    /// in `helloworld`).
    pub fn on_listening(mut self, f: impl FnMut(u16) + Send + 'static) -> Broker {
        self.listening = Some(Box::new(f));
        self
    }

    /// The port the broker listens on, once it does.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Why the broker could not listen, if it could not.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The counters.
    pub fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    /// How many messages a queue holds (not counting those out with consumers).
    pub fn depth(&self, queue: &str) -> usize {
        self.queues.get(queue).map_or(0, |q| q.messages.len())
    }

    /// What the broker holds against its memory budget (messages queued or out with
    /// consumers).
    pub fn held(&self) -> crate::limits::Held {
        self.holdings.total()
    }

    fn log(&self, what: std::fmt::Arguments<'_>) {
        if self.cfg.verbose {
            println!("{what}");
        }
    }

    fn new_dynamic_name(&mut self) -> String {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&random_u64().to_le_bytes());
        b[8..].copy_from_slice(&random_u64().to_le_bytes());
        uuid_from_bytes(b)
    }

    /// Adds a message to a queue (created if need be) and hands out what can be. A
    /// [`ReceivedMessage`] is stored and forwarded as received; a
    /// [`Message`](amqp_proto::message::Message) is encoded once.
    pub fn publish(
        &mut self,
        r: &mut ContainerContext,
        queue: &str,
        msg: impl Into<ReceivedMessage>,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let stored = Stored::new(msg.into());
        self.holdings.add(queue, stored.size());
        // Looked up by `&str` first: a queue's name is copied only when the queue is made.
        if !self.queues.contains_key(queue) {
            self.queues.insert(queue.to_string(), Queue::default());
        }
        if let Some(q) = self.queues.get_mut(queue) {
            q.messages.insert(seq, stored);
        }
        self.dispatch(r, queue);
    }

    /// Gives messages to the queue's consumers that have credit, one each per round.
    fn dispatch(&mut self, r: &mut ContainerContext, name: &str) {
        let Broker {
            queues,
            links,
            unacked,
            stats,
            cfg,
            holdings,
            ..
        } = self;
        let Some(q) = queues.get_mut(name) else {
            return;
        };
        let n = q.consumers.len();
        loop {
            let mut progress = false;
            let start = q.next;
            for i in 0..n {
                if q.messages.is_empty() {
                    return;
                }
                let idx = (start + i) % n;
                let link = q.consumers[idx];
                // A consumer whose connection has a backlog of unsent output (it does not
                // read) gets nothing more until it drains (`on_sendable` then): its messages
                // stay here for the others.
                if r.credit(link) == 0 || r.is_output_blocked(link.connection()) {
                    continue;
                }
                let Some(Role::Consumer(c)) = links.get_mut(&link) else {
                    continue;
                };
                let mut found = None;
                for (&seq, s) in q.messages.range(c.cursor..) {
                    if !s.excluded.contains(&link)
                        && c.selector.as_ref().is_none_or(|sel| sel.matches(&s.msg))
                    {
                        found = Some(seq);
                        break;
                    }
                    c.cursor = seq + 1;
                }
                let Some(seq) = found else { continue };
                if c.browse {
                    let s = &q.messages[&seq];
                    if let Err(e) = r.send(link, &s.outgoing()) {
                        if cfg.verbose {
                            println!("{link:?}: cannot send: {e}");
                        }
                        continue;
                    }
                    c.cursor = seq + 1;
                } else {
                    let Some(s) = q.messages.remove(&seq) else {
                        continue;
                    };
                    match r.send(link, &s.outgoing()) {
                        Ok(_) if c.presettled => holdings.remove(name, s.size()),
                        Ok(t) => {
                            unacked.insert(
                                t,
                                Unacked {
                                    queue: Arc::clone(&c.queue),
                                    seq,
                                    stored: s,
                                    link,
                                    dynamic: q.owner.is_some(),
                                },
                            );
                        }
                        Err(e) => {
                            if cfg.verbose {
                                println!("{link:?}: cannot send: {e}");
                            }
                            q.messages.insert(seq, s);
                            continue;
                        }
                    }
                }
                stats.delivered += 1;
                progress = true;
                q.next = (idx + 1) % n;
            }
            if !progress {
                return;
            }
        }
    }

    /// Puts a message given back by a consumer where it belongs. Returns the queue to
    /// dispatch, if it was requeued.
    fn give_back(&mut self, u: Unacked, how: Back, undeliverable_here: bool) -> Option<String> {
        let Unacked {
            queue,
            seq,
            mut stored,
            link,
            dynamic,
        } = u;
        if how == Back::Failed {
            let count = stored.delivery_count();
            if count >= self.cfg.redelivery_limit {
                self.log(format_args!(
                    "{queue}: message {seq} reached the redelivery limit ({count})"
                ));
                self.dead_letter(&queue, stored);
                return None;
            }
            stored.count_failure();
        }
        if undeliverable_here {
            stored.excluded.push(link);
        }
        let q = match self.queues.get_mut(&*queue) {
            Some(q) => q,
            None if dynamic => {
                // Its temporary queue is gone.
                self.stats.dead += 1;
                self.holdings.remove(&queue, stored.size());
                return None;
            }
            None => self.queues.entry(queue.to_string()).or_default(),
        };
        q.messages.insert(seq, stored);
        // Messages below the consumers' cursors may now be for them again.
        for l in &q.consumers {
            if let Some(Role::Consumer(c)) = self.links.get_mut(l) {
                if !c.browse {
                    c.cursor = c.cursor.min(seq);
                }
            }
        }
        self.stats.requeued += 1;
        self.log(format_args!("{queue}: message {seq} requeued"));
        Some(queue.to_string())
    }

    fn dead_letter(&mut self, from: &str, stored: Stored) {
        self.stats.dead += 1;
        self.holdings.remove(from, stored.size());
        let Some(dlq) = self.cfg.dead_letter_queue.clone() else {
            return;
        };
        if dlq == from {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let stored = Stored {
            excluded: Vec::new(),
            ..stored
        };
        self.holdings.add(&dlq, stored.size());
        self.queues
            .entry(dlq)
            .or_default()
            .messages
            .insert(seq, stored);
    }

    fn dead_letter_and_dispatch(&mut self, r: &mut ContainerContext, from: &str, stored: Stored) {
        self.dead_letter(from, stored);
        if let Some(dlq) = self.cfg.dead_letter_queue.clone() {
            self.dispatch(r, &dlq);
        }
    }

    /// A link is gone: give back its unsettled messages, unsubscribe it, delete its dynamic
    /// queue.
    fn link_gone(&mut self, r: &mut ContainerContext, link: LinkHandle) {
        let Some(role) = self.links.remove(&link) else {
            return;
        };
        let Role::Consumer(c) = role else {
            // A producer whose dynamic target made a queue.
            self.paused.remove(&link);
            self.drop_owned_queue(link);
            self.resume(r);
            return;
        };
        let mut mine: Vec<Tracker> = self
            .unacked
            .iter()
            .filter(|(_, u)| u.link == link)
            .map(|(t, _)| *t)
            .collect();
        mine.sort_by_key(|t| self.unacked.get(t).map_or(0, |u| u.seq));
        let mut touched = Vec::new();
        for t in mine {
            if let Some(u) = self.unacked.remove(&t) {
                if let Some(q) = self.give_back(u, Back::Failed, false) {
                    touched.push(q);
                }
            }
        }
        if let Some(q) = self.queues.get_mut(&*c.queue) {
            q.consumers.retain(|l| *l != link);
            q.next = 0;
        }
        self.log(format_args!("{link:?}: unsubscribed from {}", c.queue));
        self.drop_owned_queue(link);
        if let Some(q) = self.queues.get(&*c.queue) {
            if q.consumers.is_empty() && q.messages.is_empty() && q.owner.is_none() {
                self.queues.remove(&*c.queue);
            }
        }
        touched.sort();
        touched.dedup();
        for q in touched {
            self.dispatch(r, &q);
        }
        self.resume(r);
    }

    fn drop_owned_queue(&mut self, link: LinkHandle) {
        let owned: Vec<String> = self
            .queues
            .iter()
            .filter(|(_, q)| q.owner == Some(link))
            .map(|(n, _)| n.clone())
            .collect();
        for name in owned {
            if let Some(q) = self.queues.remove(&name) {
                self.stats.dead += q.messages.len() as u64;
                for s in q.messages.values() {
                    self.holdings.remove(&name, s.size());
                }
                self.log(format_args!("{name}: temporary queue deleted"));
            }
        }
    }

    fn connection_gone(
        &mut self,
        r: &mut ContainerContext,
        conn: amqp_engine::messaging::ConnectionHandle,
    ) {
        let gone: Vec<LinkHandle> = self
            .links
            .keys()
            .filter(|l| l.connection() == conn)
            .copied()
            .collect();
        // Requeued messages keep their place in the queue, whatever the order here.
        for l in gone {
            self.link_gone(r, l);
        }
    }

    /// A consumer settled a message (accepted it, or settled with no outcome we act on): it is
    /// gone.
    fn settled(&mut self, e: &mut Event<'_>) {
        let Some(u) = e.tracker().and_then(|t| self.unacked.remove(&t)) else {
            return;
        };
        self.stats.accepted += 1;
        self.holdings.remove(&u.queue, u.stored.size());
        self.resume(e.container_mut());
    }

    /// The queue a producer's messages go to (`None`: the anonymous relay).
    fn producer_queue(&self, link: LinkHandle) -> Option<Option<&str>> {
        match self.links.get(&link) {
            Some(Role::Producer(q)) => Some(q.as_deref()),
            _ => None,
        }
    }

    /// Tops a producer's credit up to the prefetch once half of it is used, unless its queue
    /// or the broker is above the high-water mark: then the producer is paused.
    fn top_up(&mut self, r: &mut ContainerContext, link: LinkHandle) {
        let Some(queue) = self.producer_queue(link) else {
            return;
        };
        if self.paused.contains(&link) || r.credit(link) > self.cfg.prefetch / 2 {
            return;
        }
        let limits = &self.cfg.limits;
        let total = self.holdings.total().bytes;
        let full = limits.budget_high(total)
            || queue.is_some_and(|q| limits.queue_high(self.holdings.queue(q)));
        if !full {
            // An attached receiver: granting credit does not fail.
            let _ = r.flow(link, self.cfg.prefetch);
            return;
        }
        let held = queue.map_or(self.holdings.total(), |q| self.holdings.queue(q));
        eprintln!(
            "broker: {}: {} messages, {} bytes held (broker: {total} bytes): producer paused",
            queue.unwrap_or("(anonymous relay)"),
            held.messages,
            held.bytes,
        );
        self.paused.insert(link);
    }

    /// Gives paused producers credit again once their queue and the broker are below the
    /// low-water mark.
    fn resume(&mut self, r: &mut ContainerContext) {
        if self.paused.is_empty() {
            return;
        }
        let limits = &self.cfg.limits;
        if !limits.budget_low(self.holdings.total().bytes) {
            return;
        }
        let ready: Vec<LinkHandle> = self
            .paused
            .iter()
            .filter(|l| {
                self.producer_queue(**l)
                    .is_none_or(|q| q.is_none_or(|q| limits.queue_low(self.holdings.queue(q))))
            })
            .copied()
            .collect();
        for link in ready {
            self.paused.remove(&link);
            if self.producer_queue(link).is_some() {
                eprintln!("broker: {link:?}: producer resumed");
                self.top_up(r, link);
            }
        }
    }

    fn refuse(e: &mut Event<'_>, link: LinkHandle, cond: amqp_proto::Symbol, why: String) {
        e.container_mut()
            .close_link_with_error(link, Some(Error::new(cond, why)));
    }

    fn consumer_opening(&mut self, e: &mut Event<'_>, link: LinkHandle) {
        let r = e.container();
        let Some(attach) = r.remote_attach(link).cloned() else {
            return;
        };
        let src = attach.source.clone().unwrap_or_default();
        let dynamic = src.dynamic == Some(true);
        let name = if dynamic {
            self.new_dynamic_name()
        } else {
            match src.address.as_deref() {
                Some(a) if !a.is_empty() => a.to_string(),
                _ => {
                    Self::refuse(
                        e,
                        link,
                        condition::INVALID_FIELD,
                        "a receiver needs a source address (or a dynamic source)".into(),
                    );
                    return;
                }
            }
        };
        let mut selector = None;
        let mut echoed = FilterSet::new();
        for (k, v) in src.filter.iter().flat_map(|f| f.iter()) {
            if let Some(text) = selector_text(v) {
                match Selector::parse(text) {
                    Ok(s) => {
                        selector = Some(s);
                        echoed.insert(k.clone(), v.clone());
                    }
                    Err(err) => {
                        Self::refuse(
                            e,
                            link,
                            condition::NOT_IMPLEMENTED,
                            format!("unsupported selector {text:?}: {err}"),
                        );
                        return;
                    }
                }
            }
        }
        let browse = src.distribution_mode.as_ref() == Some(&distribution_mode::COPY);
        let presettled = attach.snd_settle_mode == Some(SenderSettleMode::Settled);
        let mut local = src.clone();
        local.address = Some(name.as_str().into());
        local.filter = (!echoed.is_empty()).then_some(echoed);
        if let Some(cfg) = e.container_mut().link_config_mut(link) {
            cfg.source = Some(local);
        }
        let q = self.queues.entry(name.clone()).or_default();
        q.consumers.push(link);
        if dynamic {
            q.owner = Some(link);
        }
        self.log(format_args!(
            "{link:?}: subscribed to {name}{}{}{}",
            if dynamic { " (temporary)" } else { "" },
            if browse { " (browsing)" } else { "" },
            selector
                .as_ref()
                .map(|s| format!(" where {}", s.text()))
                .unwrap_or_default()
        ));
        self.links.insert(
            link,
            Role::Consumer(Consumer {
                queue: Arc::from(name),
                selector,
                browse,
                presettled,
                cursor: 0,
            }),
        );
    }

    fn producer_opening(&mut self, e: &mut Event<'_>, link: LinkHandle) {
        let r = e.container_mut();
        let Some(attach) = r.remote_attach(link).cloned() else {
            return;
        };
        if let Some(cfg) = r.link_config_mut(link) {
            // Advertised in our attach; the engine enforces it on what arrives.
            cfg.max_message_size = Some(self.cfg.limits.max_message_size);
        }
        match attach.target {
            Some(TargetKind::Coordinator(_)) => {
                Self::refuse(
                    e,
                    link,
                    condition::NOT_IMPLEMENTED,
                    "this broker does not support transactions".into(),
                );
            }
            Some(TargetKind::Target(t)) if t.dynamic == Some(true) => {
                let name = self.new_dynamic_name();
                let mut local = t.clone();
                local.address = Some(name.as_str().into());
                if let Some(cfg) = e.container_mut().link_config_mut(link) {
                    cfg.target = Some(TargetKind::Target(local));
                }
                self.queues.entry(name.clone()).or_default().owner = Some(link);
                self.log(format_args!("{link:?}: publishing to {name} (temporary)"));
                self.links
                    .insert(link, Role::Producer(Some(Arc::from(name))));
            }
            Some(TargetKind::Target(t)) => {
                let addr = t
                    .address
                    .as_deref()
                    .filter(|a| !a.is_empty())
                    .map(Arc::<str>::from);
                self.log(format_args!(
                    "{link:?}: publishing to {}",
                    addr.as_deref().unwrap_or("(anonymous relay)")
                ));
                self.links.insert(link, Role::Producer(addr));
            }
            None => {
                self.links.insert(link, Role::Producer(None));
            }
        }
    }
}

impl MessagingHandler for Broker {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            // Producers' credit is the broker's flow control: granted by `top_up`.
            prefetch: 0,
            auto_accept: false,
            auto_settle: true,
        }
    }

    fn on_start(&mut self, e: &mut Event<'_>) {
        let address = self.cfg.address.clone();
        if let Err(err) = e
            .container_mut()
            .listen_with(&address, self.cfg.listen.clone())
        {
            eprintln!("broker: cannot listen on {address}: {err}");
            self.error = Some(err.to_string());
            e.container_mut().stop();
        }
    }

    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let Some(a) = e.acceptor() else { return };
        let r = e.container();
        self.port = r.acceptor_port(a);
        if self.cfg.announce {
            crate::announce_listening(r, Some(a));
        }
        if let (Some(f), Some(p)) = (self.listening.as_mut(), self.port) {
            f(p);
        }
    }

    fn on_acceptor_error(&mut self, e: &mut Event<'_>) {
        let why = e
            .transport_error()
            .map_or_else(|| "unknown error".to_string(), ToString::to_string);
        eprintln!("broker: {why}");
        self.error = Some(why);
        e.container_mut().stop();
    }

    fn on_link_opening(&mut self, e: &mut Event<'_>) {
        let Some(link) = e.link() else { return };
        if e.container().is_sender(link) {
            self.consumer_opening(e, link);
        } else {
            self.producer_opening(e, link);
        }
    }

    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        let Some(link) = e.link() else { return };
        match self.links.get(&link) {
            Some(Role::Consumer(c)) => {
                let q = c.queue.clone();
                self.dispatch(e.container_mut(), &q);
            }
            Some(Role::Producer(_)) => self.top_up(e.container_mut(), link),
            None => {}
        }
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        let Some(link) = e.link() else { return };
        if let Some(Role::Consumer(c)) = self.links.get(&link) {
            let q = c.queue.clone();
            self.dispatch(e.container_mut(), &q);
            // Pre-settled deliveries leave the queue for good as they go.
            self.resume(e.container_mut());
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let Some(link) = e.link() else { return };
        let Some(msg) = e.take_message() else { return };
        let target = match self.links.get(&link) {
            Some(Role::Producer(a)) => a.clone(),
            _ => None,
        };
        // The link's address is shared, not copied: nothing here allocates per message.
        let Some(address) = target.or_else(|| msg.address().map(Arc::from)) else {
            self.log(format_args!(
                "{link:?}: message without an address rejected"
            ));
            let err = Error::new(
                "amqp:link:invalid-address",
                "the message has no address and the link no target address",
            );
            let _ = e.reject(Some(err));
            return;
        };
        let size = msg.as_bytes().len() as u64;
        let admitted = self.cfg.limits.admits(
            self.holdings.queue(&address),
            self.holdings.total().bytes,
            size,
        );
        if let Err(why) = admitted {
            self.stats.refused += 1;
            self.log(format_args!("{address}: message refused: {why}"));
            let _ = e.reject(Some(Error::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                why.to_string(),
            )));
            self.top_up(e.container_mut(), link);
            return;
        }
        self.stats.received += 1;
        self.log(format_args!(
            "{address}: message {} queued ({size} bytes)",
            self.next_seq,
        ));
        self.publish(e.container_mut(), &address, msg);
        let _ = e.accept();
        self.top_up(e.container_mut(), link);
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.settled(e);
    }

    fn on_rejected(&mut self, e: &mut Event<'_>) {
        let Some(t) = e.tracker() else { return };
        if let Some(u) = self.unacked.remove(&t) {
            self.stats.rejected += 1;
            self.log(format_args!("{}: message {} rejected", u.queue, u.seq));
            self.dead_letter_and_dispatch(e.container_mut(), &u.queue.clone(), u.stored);
            self.resume(e.container_mut());
        }
    }

    fn on_released(&mut self, e: &mut Event<'_>) {
        let Some(t) = e.tracker() else { return };
        let Some(mut u) = self.unacked.remove(&t) else {
            return;
        };
        let (how, undeliverable) = match e.remote_state() {
            Some(DeliveryState::Modified(m)) => {
                if let Some(ann) = &m.message_annotations {
                    u.stored.annotate(ann);
                }
                (
                    if m.delivery_failed == Some(true) {
                        Back::Failed
                    } else {
                        Back::Released
                    },
                    m.undeliverable_here == Some(true),
                )
            }
            _ => (Back::Released, false),
        };
        if let Some(q) = self.give_back(u, how, undeliverable) {
            self.dispatch(e.container_mut(), &q);
        } else if let Some(dlq) = self.cfg.dead_letter_queue.clone() {
            self.dispatch(e.container_mut(), &dlq);
        }
        self.resume(e.container_mut());
    }

    fn on_settled(&mut self, e: &mut Event<'_>) {
        // Settled without an outcome we acted on (no state, or a non-terminal one): the
        // consumer is done with it.
        self.settled(e);
    }

    fn on_in_doubt(&mut self, e: &mut Event<'_>) {
        // The transport went before the outcome arrived (normally already handled by
        // `on_disconnected`).
        let Some(t) = e.tracker() else { return };
        if let Some(u) = self.unacked.remove(&t) {
            if let Some(q) = self.give_back(u, Back::Failed, false) {
                self.dispatch(e.container_mut(), &q);
            }
            self.resume(e.container_mut());
        }
    }

    fn on_link_closing(&mut self, e: &mut Event<'_>) {
        if let Some(l) = e.link() {
            self.link_gone(e.container_mut(), l);
        }
    }

    fn on_link_closed(&mut self, e: &mut Event<'_>) {
        if let Some(l) = e.link() {
            self.link_gone(e.container_mut(), l);
        }
    }

    fn on_connection_closing(&mut self, e: &mut Event<'_>) {
        if let Some(c) = e.connection() {
            self.connection_gone(e.container_mut(), c);
        }
    }

    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        if let Some(c) = e.connection() {
            self.connection_gone(e.container_mut(), c);
        }
    }

    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        if let Some(c) = e.connection() {
            self.connection_gone(e.container_mut(), c);
        }
    }

    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        if self.cfg.verbose {
            println!(
                "{:?}: transport error: {}",
                e.connection(),
                e.transport_error()
                    .map_or_else(|| "".to_string(), ToString::to_string)
            );
        }
    }
}
