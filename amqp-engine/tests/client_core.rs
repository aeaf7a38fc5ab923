//! The async API's sans-IO core, [`ClientCore`], against a container peer on the simulated
//! network: sends and outcomes, receives and credit, typed errors for sends that cannot go,
//! and reconnects after cut transports (links re-attached, in-doubt deliveries reported,
//! every sent delivery resolved exactly once).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use amqp_engine::messaging::sim::World;
use amqp_engine::messaging::{
    ClientCore, ClientEvent, ConnectOptions, ConnectionHandle, Event, HandlerOptions, IoCore,
    LinkHandle, MessagingError, MessagingHandler, SansIoContainer, Tracker, TransportErrorKind,
};
use amqp_engine::OpError;
use amqp_proto::message::Message;
use amqp_proto::messaging::DeliveryState;

/// A peer: listens on 5672, accepts what it receives (crediting `prefetch` at a time), and
/// sends `to_send` numbered messages on every link the client receives from.
struct Peer {
    prefetch: u32,
    to_send: usize,
    sent: usize,
    received: usize,
}

impl Peer {
    fn new(prefetch: u32, to_send: usize) -> Self {
        Peer {
            prefetch,
            to_send,
            sent: 0,
            received: 0,
        }
    }
}

impl MessagingHandler for Peer {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: self.prefetch,
            ..HandlerOptions::default()
        }
    }
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("0.0.0.0:5672").unwrap();
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        while self.sent < self.to_send && e.credit() > 0 {
            e.send(&Message::new(format!("m{}", self.sent))).unwrap();
            self.sent += 1;
        }
    }
    fn on_message(&mut self, _e: &mut Event<'_>) {
        self.received += 1;
    }
}

const URL: &str = "amqp://127.0.0.1:5672";

fn world_with_peer(peer: Peer) -> World {
    let mut world = World::new(Instant::now(), 7);
    world.add(SansIoContainer::with_id(peer, "peer", world.now()));
    world
}

fn core(world: &mut World, n: usize) -> &mut ClientCore {
    world.node_mut::<ClientCore>(n).expect("a client core")
}

fn events(world: &mut World, n: usize) -> Vec<ClientEvent> {
    std::iter::from_fn(|| core(world, n).poll_event()).collect()
}

/// A client core connected to the peer, with one sender and one receiver (receiver credit
/// `credit`), after the attaches.
fn connected(world: &mut World, credit: u32) -> (usize, ConnectionHandle, LinkHandle, LinkHandle) {
    let mut c = ClientCore::new("client", world.now());
    let conn = c.connect(ConnectOptions::new().url(URL)).unwrap();
    let snd = c.open_sender(conn, "q".into()).unwrap();
    let rcv = c.open_receiver(conn, "q".into()).unwrap();
    let n = world.add(c);
    world.run_for(Duration::from_millis(20));
    let evs = events(world, n);
    assert!(evs
        .iter()
        .any(|e| matches!(e, ClientEvent::ConnectionOpened(c) if *c == conn)));
    for l in [snd, rcv] {
        assert!(
            evs.iter().any(
                |e| matches!(e, ClientEvent::LinkOpened { link, refused: false } if *link == l)
            ),
            "{l} attached: {evs:?}"
        );
    }
    core(world, n).flow(rcv, credit).unwrap();
    (n, conn, snd, rcv)
}

fn outcomes(evs: &[ClientEvent]) -> HashMap<Tracker, Option<DeliveryState>> {
    evs.iter()
        .filter_map(|e| match e {
            ClientEvent::Outcome(t, s) => Some((*t, s.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn sends_get_their_outcomes_and_messages_arrive_within_the_credit() {
    let mut world = world_with_peer(Peer::new(10, 5));
    let (n, _, snd, rcv) = connected(&mut world, 3);
    let trackers: Vec<Tracker> = (0..4)
        .map(|i| {
            core(&mut world, n)
                .send(snd, &Message::new(format!("s{i}")))
                .unwrap()
        })
        .collect();
    world.run_for(Duration::from_millis(20));
    let evs = events(&mut world, n);
    let got = outcomes(&evs);
    for t in &trackers {
        assert!(
            matches!(got.get(t), Some(Some(DeliveryState::Accepted(_)))),
            "{t}: {got:?}"
        );
    }
    // The receiver granted 3: exactly 3 of the peer's 5 messages arrive, in order.
    let bodies: Vec<String> = evs
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Message { link, message, .. } if *link == rcv => {
                message.body_str().map(str::to_owned)
            }
            _ => None,
        })
        .collect();
    assert_eq!(bodies, ["m0", "m1", "m2"]);
    assert_eq!(core(&mut world, n).credit(rcv), 0);
    let peer = world.handler::<Peer>(0).unwrap();
    assert_eq!(peer.received, 4);
}

#[test]
fn sends_that_cannot_go_are_typed_errors() {
    // The peer grants 2 credits at a time (topped up only as it receives).
    let mut world = world_with_peer(Peer::new(2, 0));
    let mut c = ClientCore::new("client", world.now());
    let conn = c.connect(ConnectOptions::new().url(URL)).unwrap();
    let snd = c.open_sender(conn, "q".into()).unwrap();
    // Not attached yet.
    assert!(matches!(
        c.send(snd, &Message::new("early")),
        Err(MessagingError::NotReady(_))
    ));
    let n = world.add(c);
    world.run_for(Duration::from_millis(20));
    let c = core(&mut world, n);
    assert_eq!(c.credit(snd), 2);
    c.send(snd, &Message::new("a")).unwrap();
    c.send(snd, &Message::new("b")).unwrap();
    assert!(matches!(
        c.send(snd, &Message::new("c")),
        Err(MessagingError::Engine(OpError::NoCredit))
    ));
    c.close_link(snd);
    assert!(matches!(
        c.send(snd, &Message::new("d")),
        Err(MessagingError::LinkClosed)
    ));
    world.run_for(Duration::from_millis(20));
    let evs = events(&mut world, n);
    assert!(evs
        .iter()
        .any(|e| matches!(e, ClientEvent::LinkClosed(l, None) if *l == snd)));
}

#[test]
fn a_refused_connection_without_reconnect_ends_with_its_error() {
    let mut world = World::new(Instant::now(), 3);
    let mut c = ClientCore::new("client", world.now());
    let conn = c
        .connect(ConnectOptions::new().url(URL).reconnect(false))
        .unwrap();
    let n = world.add(c);
    world.run_for(Duration::from_secs(1));
    let evs = events(&mut world, n);
    assert!(evs.iter().any(|e| matches!(
        e,
        ClientEvent::ConnectionClosed(c, Some(t)) if *c == conn && t.kind() == TransportErrorKind::Refused
    )));
    assert!(core(&mut world, n).is_done());
}

#[test]
fn a_cut_transport_reports_in_doubt_sends_and_reattaches_the_links() {
    let mut world = world_with_peer(Peer::new(100, 0));
    let (n, conn, snd, rcv) = connected(&mut world, 5);
    // Sent, then cut before the peer can answer: in doubt.
    let lost: Vec<Tracker> = (0..3)
        .map(|i| {
            core(&mut world, n)
                .send(snd, &Message::new(format!("x{i}")))
                .unwrap()
        })
        .collect();
    world.cut_all();
    let evs = events(&mut world, n);
    assert!(evs
        .iter()
        .any(|e| matches!(e, ClientEvent::Disconnected(c, Some(_)) if *c == conn)));
    let in_doubt: HashSet<Tracker> = evs
        .iter()
        .filter_map(|e| match e {
            ClientEvent::InDoubt(t) => Some(*t),
            _ => None,
        })
        .collect();
    assert_eq!(in_doubt, lost.iter().copied().collect());
    assert!(!evs
        .iter()
        .any(|e| matches!(e, ClientEvent::ConnectionClosed(..))));
    // The reconnect re-attaches both links under the same handles; sends work again.
    world.run_for(Duration::from_millis(200));
    let evs = events(&mut world, n);
    for l in [snd, rcv] {
        assert!(evs
            .iter()
            .any(|e| matches!(e, ClientEvent::LinkOpened { link, .. } if *link == l)));
    }
    let t = core(&mut world, n)
        .send(snd, &Message::new("again"))
        .unwrap();
    world.run_for(Duration::from_millis(20));
    let got = outcomes(&events(&mut world, n));
    assert!(matches!(
        got.get(&t),
        Some(Some(DeliveryState::Accepted(_)))
    ));
}

#[test]
fn every_send_resolves_exactly_once_across_random_cuts() {
    let mut world = world_with_peer(Peer::new(50, 0));
    let (n, _, snd, _) = connected(&mut world, 0);
    // Trackers carry the transport's generation: unique across reconnects.
    let mut sent: HashSet<Tracker> = HashSet::new();
    let mut resolved: HashSet<Tracker> = HashSet::new();
    let collect = |world: &mut World, resolved: &mut HashSet<Tracker>| {
        for e in events(world, n) {
            if let ClientEvent::Outcome(t, _) | ClientEvent::InDoubt(t) = e {
                resolved.insert(t);
            }
        }
    };
    for round in 0..40 {
        let c = core(&mut world, n);
        for i in 0..c.credit(snd).min(20) {
            let t = c.send(snd, &Message::new(format!("{round}/{i}"))).unwrap();
            assert!(sent.insert(t), "tracker {t} reused");
        }
        if round % 4 == 3 {
            assert!(world.cut_random());
        }
        world.run_for(Duration::from_millis(30));
        collect(&mut world, &mut resolved);
    }
    world.run_for(Duration::from_millis(500));
    collect(&mut world, &mut resolved);
    let unresolved: Vec<_> = sent.difference(&resolved).collect();
    assert!(unresolved.is_empty(), "never resolved: {unresolved:?}");
    assert!(resolved.is_subset(&sent));
    assert!(world.handler::<Peer>(0).unwrap().received > 100);
}
