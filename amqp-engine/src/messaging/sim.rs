//! A deterministic simulated network for containers: in-memory transports with latency, a
//! virtual clock, listeners, and faults (cut connections, kill listeners, nodes that stop
//! reading). A write counts as written (reported through [`IoCore::handle_written`]) when the
//! network takes it, unless its receiver is stalled ([`World::set_stalled`]). It runs the same
//! container code the adapters run, with time and failures under the test's control.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use amqp_engine::messaging::sim::World;
//! use amqp_engine::messaging::{SansIoContainer, Event, MessagingHandler};
//!
//! #[derive(Default)]
//! struct Server { opened: usize }
//! impl MessagingHandler for Server {
//!     fn on_start(&mut self, e: &mut Event<'_>) { e.container_mut().listen("0.0.0.0:5672").unwrap(); }
//!     fn on_connection_opened(&mut self, _: &mut Event<'_>) { self.opened += 1; }
//! }
//! #[derive(Default)]
//! struct Client { opened: bool }
//! impl MessagingHandler for Client {
//!     fn on_start(&mut self, e: &mut Event<'_>) { e.container_mut().connect("amqp://127.0.0.1:5672").unwrap(); }
//!     fn on_connection_opened(&mut self, e: &mut Event<'_>) {
//!         self.opened = true;
//!         let c = e.connection().unwrap();
//!         e.container_mut().close_connection(c, None);
//!     }
//! }
//! let mut world = World::new(Instant::now(), 1);
//! let s = world.add(SansIoContainer::with_id(Server::default(), "server", world.now()));
//! let c = world.add(SansIoContainer::with_id(Client::default(), "client", world.now()));
//! world.run_for(Duration::from_secs(1));
//! assert!(world.handler::<Client>(c).unwrap().opened);
//! assert_eq!(world.handler::<Server>(s).unwrap().opened, 1);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::container::SansIoContainer;
use super::error::{TransportError, TransportErrorKind};
use super::handler::MessagingHandler;
use super::handles::{AcceptorHandle, TransportId};
use super::io::{IoCore, IoRequest, TransportInfo};
use crate::rng::Rng;

/// A node of the simulated network: any sans-IO core, reachable as `Any` to get at its
/// handler or state after a run.
pub trait Node: IoCore {
    /// The node as `Any`.
    fn as_any(&self) -> &dyn std::any::Any;
    /// The node as `Any`, mutably.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

impl<T: IoCore + 'static> Node for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

type End = (usize, TransportId);

#[derive(Debug)]
enum Action {
    Resolve {
        node: usize,
        t: TransportId,
        host: String,
        port: u16,
    },
    Deliver {
        to: End,
        pipe: u64,
        data: Bytes,
    },
    Hangup {
        to: End,
        pipe: u64,
    },
}

#[derive(Debug)]
struct Pipe {
    a: End,
    b: End,
    open: bool,
}

/// A record of a connect attempt, for assertions on reconnect timing and failover order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectAttempt {
    /// When the node asked to connect.
    pub at: Instant,
    /// The node.
    pub node: usize,
    /// Host asked for.
    pub host: String,
    /// Port asked for.
    pub port: u16,
    /// Whether a listener was there.
    pub succeeded: bool,
}

/// The simulated network.
pub struct World {
    now: Instant,
    nodes: Vec<Box<dyn Node>>,
    listeners: HashMap<(String, u16), (usize, AcceptorHandle)>,
    acceptors: HashMap<(usize, AcceptorHandle), (String, u16)>,
    pipes: HashMap<u64, Pipe>,
    by_end: HashMap<End, u64>,
    queue: BTreeMap<(Instant, u64), Action>,
    seq: u64,
    next_port: u16,
    rng: Rng,
    /// One-way latency of every transport.
    pub latency: Duration,
    /// Every connect attempt, in order.
    pub attempts: Vec<ConnectAttempt>,
    /// Bytes moved.
    pub bytes: u64,
    /// Nodes that read nothing, and the writes held for them (sender end, pipe, bytes).
    stalled: HashMap<usize, Vec<(End, u64, Bytes)>>,
}

impl World {
    /// An empty world at time `now`, with a seed for its random faults.
    pub fn new(now: Instant, seed: u64) -> World {
        World {
            now,
            nodes: Vec::new(),
            listeners: HashMap::new(),
            acceptors: HashMap::new(),
            pipes: HashMap::new(),
            by_end: HashMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            next_port: 40000,
            rng: Rng::new(seed),
            latency: Duration::from_millis(1),
            attempts: Vec::new(),
            bytes: 0,
            stalled: HashMap::new(),
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Adds a container and starts it. Returns its index.
    pub fn add(&mut self, node: impl Node + 'static) -> usize {
        self.nodes.push(Box::new(node));
        let i = self.nodes.len() - 1;
        let now = self.now;
        self.nodes[i].start(now);
        self.pump();
        i
    }

    /// The number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The handler of a node, by type.
    pub fn handler<H: MessagingHandler + 'static>(&self, node: usize) -> Option<&H> {
        self.container::<H>(node).map(SansIoContainer::handler)
    }

    /// The handler of a node, by type, mutably.
    pub fn handler_mut<H: MessagingHandler + 'static>(&mut self, node: usize) -> Option<&mut H> {
        self.container_mut::<H>(node)
            .map(SansIoContainer::handler_mut)
    }

    /// A node, by type (a [`ClientCore`](super::ClientCore), say).
    pub fn node<T: 'static>(&self, node: usize) -> Option<&T> {
        self.nodes.get(node)?.as_any().downcast_ref::<T>()
    }

    /// A node, by type, mutably.
    pub fn node_mut<T: 'static>(&mut self, node: usize) -> Option<&mut T> {
        self.nodes.get_mut(node)?.as_any_mut().downcast_mut::<T>()
    }

    /// The container of a node, by handler type.
    pub fn container<H: MessagingHandler + 'static>(
        &self,
        node: usize,
    ) -> Option<&SansIoContainer<H>> {
        self.node::<SansIoContainer<H>>(node)
    }

    /// The container of a node, by handler type, mutably.
    pub fn container_mut<H: MessagingHandler + 'static>(
        &mut self,
        node: usize,
    ) -> Option<&mut SansIoContainer<H>> {
        self.node_mut::<SansIoContainer<H>>(node)
    }

    /// A pseudo-random number (the crate's splitmix64), for tests that inject faults.
    pub fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn at(&mut self, t: Instant, a: Action) {
        self.seq += 1;
        self.queue.insert((t, self.seq), a);
    }

    /// Carries out every I/O request the nodes have made.
    fn pump(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Some(req) = self.nodes[i].poll_io() {
                    any = true;
                    self.io(i, req);
                }
            }
            if !any {
                break;
            }
        }
    }

    fn io(&mut self, node: usize, req: IoRequest) {
        let now = self.now;
        let lat = self.latency;
        match req {
            IoRequest::Connect {
                transport,
                host,
                port,
                ..
            } => {
                self.at(
                    now + lat,
                    Action::Resolve {
                        node,
                        t: transport,
                        host,
                        port,
                    },
                );
            }
            IoRequest::Write { transport, data } => {
                if let Some(&pid) = self.by_end.get(&(node, transport)) {
                    if let Some(p) = self.pipes.get(&pid) {
                        if p.open {
                            let to = if p.a == (node, transport) { p.b } else { p.a };
                            if let Some(held) = self.stalled.get_mut(&to.0) {
                                held.push(((node, transport), pid, data));
                                return;
                            }
                            let n = data.len();
                            self.bytes += n as u64;
                            self.at(
                                now + lat,
                                Action::Deliver {
                                    to,
                                    pipe: pid,
                                    data,
                                },
                            );
                            self.nodes[node].handle_written(transport, n, now);
                        }
                    }
                }
            }
            IoRequest::Close { transport } => {
                if let Some(pid) = self.by_end.remove(&(node, transport)) {
                    if let Some(p) = self.pipes.get_mut(&pid) {
                        if p.open {
                            p.open = false;
                            let to = if p.a == (node, transport) { p.b } else { p.a };
                            self.at(now + lat, Action::Hangup { to, pipe: pid });
                        }
                    }
                }
            }
            IoRequest::Listen {
                acceptor,
                host,
                port,
                ..
            } => {
                let port = if port == 0 {
                    self.next_port += 1;
                    self.next_port
                } else {
                    port
                };
                let key = (normalize(&host), port);
                if self.listeners.contains_key(&key) {
                    self.nodes[node].handle_listening(
                        acceptor,
                        Err(TransportError::new(
                            TransportErrorKind::AddressInUse,
                            "address in use",
                        )),
                        now,
                    );
                } else {
                    self.listeners.insert(key.clone(), (node, acceptor));
                    self.acceptors.insert((node, acceptor), key);
                    self.nodes[node].handle_listening(acceptor, Ok(port), now);
                }
            }
            IoRequest::StopListening { acceptor } => {
                if let Some(key) = self.acceptors.remove(&(node, acceptor)) {
                    self.listeners.remove(&key);
                }
            }
        }
    }

    fn run_action(&mut self, a: Action) {
        let now = self.now;
        match a {
            Action::Resolve {
                node,
                t,
                host,
                port,
            } => {
                let target = self.listeners.get(&(normalize(&host), port)).copied();
                self.attempts.push(ConnectAttempt {
                    at: now - self.latency,
                    node,
                    host: host.clone(),
                    port,
                    succeeded: target.is_some(),
                });
                match target {
                    Some((srv, acc)) => {
                        let info = TransportInfo {
                            encrypted: false,
                            peer_identity: None,
                            peer_addr: Some(format!("node{node}")),
                        };
                        let Some(st) = self.nodes[srv].handle_accepted(acc, info.clone(), now)
                        else {
                            self.nodes[node].handle_connect_failed(
                                t,
                                TransportError::new(TransportErrorKind::Refused, "refused"),
                                now,
                            );
                            return;
                        };
                        self.seq += 1;
                        let pid = self.seq;
                        self.pipes.insert(
                            pid,
                            Pipe {
                                a: (node, t),
                                b: (srv, st),
                                open: true,
                            },
                        );
                        self.by_end.insert((node, t), pid);
                        self.by_end.insert((srv, st), pid);
                        // Both ends report writes from the start.
                        self.nodes[srv].handle_written(st, 0, now);
                        self.nodes[node].handle_connected(t, info, now);
                        self.nodes[node].handle_written(t, 0, now);
                    }
                    None => self.nodes[node].handle_connect_failed(
                        t,
                        TransportError::new(
                            TransportErrorKind::Refused,
                            format!("connect to {host}:{port}"),
                        ),
                        now,
                    ),
                }
            }
            Action::Deliver { to, pipe, data } => {
                if self.pipes.get(&pipe).is_some_and(|p| p.open)
                    || self.by_end.get(&to) == Some(&pipe)
                {
                    self.nodes[to.0].handle_read(to.1, &data, now);
                }
            }
            Action::Hangup { to, pipe } => {
                if self.by_end.get(&to) == Some(&pipe) {
                    self.by_end.remove(&to);
                    self.pipes.remove(&pipe);
                    self.nodes[to.0].handle_disconnected(
                        to.1,
                        Some(TransportError::new(TransportErrorKind::Io, "peer closed")),
                        now,
                    );
                }
            }
        }
    }

    /// Stalls a node (`true`): it reads nothing, and what others write to it is held, not
    /// reported written, as by a peer whose socket buffers are full. `false` lets the held
    /// bytes through, in order.
    pub fn set_stalled(&mut self, node: usize, stalled: bool) {
        if stalled {
            self.stalled.entry(node).or_default();
            return;
        }
        let now = self.now;
        let lat = self.latency;
        for (from, pid, data) in self.stalled.remove(&node).unwrap_or_default() {
            let Some(p) = self.pipes.get(&pid).filter(|p| p.open) else {
                continue;
            };
            let to = if p.a == from { p.b } else { p.a };
            let n = data.len();
            self.bytes += n as u64;
            self.at(
                now + lat,
                Action::Deliver {
                    to,
                    pipe: pid,
                    data,
                },
            );
            self.nodes[from.0].handle_written(from.1, n, now);
        }
        self.pump();
    }

    /// Bytes written to a stalled node and held.
    pub fn held_bytes(&self, node: usize) -> usize {
        self.stalled
            .get(&node)
            .map_or(0, |h| h.iter().map(|(_, _, d)| d.len()).sum())
    }

    /// Cuts every open transport (both ends see a disconnect now).
    pub fn cut_all(&mut self) {
        let pids: Vec<u64> = self.pipes.keys().copied().collect();
        for pid in pids {
            self.cut(pid);
        }
        self.pump();
    }

    /// Cuts one random open transport, if any. Returns whether one was cut.
    pub fn cut_random(&mut self) -> bool {
        let mut pids: Vec<u64> = self
            .pipes
            .iter()
            .filter(|(_, p)| p.open)
            .map(|(k, _)| *k)
            .collect();
        pids.sort_unstable();
        if pids.is_empty() {
            return false;
        }
        let i = (self.random() % pids.len() as u64) as usize;
        self.cut(pids[i]);
        self.pump();
        true
    }

    fn cut(&mut self, pid: u64) {
        let Some(p) = self.pipes.remove(&pid) else {
            return;
        };
        let now = self.now;
        for end in [p.a, p.b] {
            if self.by_end.remove(&end).is_some() {
                self.nodes[end.0].handle_disconnected(
                    end.1,
                    Some(TransportError::new(
                        TransportErrorKind::Io,
                        "connection reset",
                    )),
                    now,
                );
            }
        }
    }

    /// Removes a listener (the port refuses connections) until [`restore_listener`] — the node
    /// keeps thinking it listens, like a firewall drop.
    ///
    /// [`restore_listener`]: World::restore_listener
    pub fn block_port(&mut self, host: &str, port: u16) -> Option<(usize, AcceptorHandle)> {
        self.listeners.remove(&(normalize(host), port))
    }

    /// Puts back a listener removed by [`block_port`](World::block_port).
    pub fn restore_listener(&mut self, host: &str, port: u16, l: (usize, AcceptorHandle)) {
        self.listeners.insert((normalize(host), port), l);
    }

    /// Runs until `deadline` of virtual time (or until nothing is left to happen).
    pub fn run_until(&mut self, deadline: Instant) {
        for _ in 0..10_000_000u64 {
            self.pump();
            let next_q = self.queue.keys().next().map(|(t, _)| *t);
            let next_n = self.nodes.iter().filter_map(|n| n.poll_timeout()).min();
            let next = match (next_q, next_n) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > deadline {
                break;
            }
            if next > self.now {
                self.now = next;
            }
            let now = self.now;
            // Queued actions due now, in order.
            while let Some((&(t, s), _)) = self.queue.iter().next() {
                if t > now {
                    break;
                }
                if let Some(a) = self.queue.remove(&(t, s)) {
                    self.run_action(a);
                    self.pump();
                }
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i].poll_timeout().is_some_and(|t| t <= now) {
                    self.nodes[i].handle_timeout(now);
                }
            }
        }
        if self.now < deadline {
            self.now = deadline;
        }
        self.pump();
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let deadline = self.now + d;
        self.run_until(deadline);
    }

    /// True when every node is done.
    pub fn all_done(&self) -> bool {
        self.nodes.iter().all(|n| n.is_done())
    }
}

fn normalize(host: &str) -> String {
    match host {
        "" | "0.0.0.0" | "localhost" | "::" | "::0" | "::1" => "127.0.0.1".to_string(),
        h => h.to_ascii_lowercase(),
    }
}

/// The crate's pseudo-random generator (splitmix64) for tests: choosing actions, sizes and
/// fault timings from a seed, so a failing run is repeated by its seed. Not for secrets.
#[derive(Debug, Clone)]
pub struct SimRng(Rng);

impl SimRng {
    /// A generator whose sequence is fixed by `seed` (zero included).
    pub fn new(seed: u64) -> SimRng {
        SimRng(Rng::new(seed))
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}
