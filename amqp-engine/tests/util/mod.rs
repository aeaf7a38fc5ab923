//! An in-memory pair of engines with a virtual clock, and byte-stream faults.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use amqp_engine::*;
use amqp_proto::message::Message;
use amqp_proto::messaging::{DeliveryState, Source, Target, TargetKind};
use bytes::BytesMut;

/// How bytes travel between the two engines.
#[derive(Clone, Debug)]
pub enum Wire {
    /// Everything in one piece.
    Whole,
    /// Split into chunks of this size.
    Chunks(usize),
    /// Split into pseudo-random chunk sizes from this seed.
    Random(u64),
}

pub struct Pair {
    pub client: Connection,
    pub server: Connection,
    pub now: Instant,
    pub wire: Wire,
    rng: u64,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
    pub c2s_bytes: usize,
    pub s2c_bytes: usize,
    pub client_err: Option<ConnectionError>,
    pub server_err: Option<ConnectionError>,
}

pub fn cfg(id: &str) -> ConnectionConfig {
    ConnectionConfig::new(id)
}

impl Pair {
    pub fn new(client: ConnectionConfig, server: ConnectionConfig) -> Pair {
        let now = Instant::now();
        Pair {
            client: Connection::new(Side::Client, client, now),
            server: Connection::new(Side::Server, server, now),
            now,
            wire: Wire::Whole,
            rng: 1,
            client_events: vec![],
            server_events: vec![],
            c2s_bytes: 0,
            s2c_bytes: 0,
            client_err: None,
            server_err: None,
        }
    }

    pub fn default_pair() -> Pair {
        Pair::new(cfg("client"), cfg("server"))
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn set_wire(&mut self, w: Wire) {
        if let Wire::Random(seed) = w {
            self.rng = seed.max(1);
        }
        self.wire = w;
    }

    fn deliver(&mut self, to_server: bool, data: &[u8]) {
        let mut off = 0;
        while off < data.len() {
            let n = match self.wire {
                Wire::Whole => data.len() - off,
                Wire::Chunks(n) => n.max(1).min(data.len() - off),
                Wire::Random(_) => (1 + (self.next_rand() % 700) as usize).min(data.len() - off),
            };
            let chunk = &data[off..off + n];
            off += n;
            let now = self.now;
            if to_server {
                if let Err(e) = self.server.handle_input(chunk, now) {
                    self.server_err.get_or_insert(e);
                }
            } else if let Err(e) = self.client.handle_input(chunk, now) {
                self.client_err.get_or_insert(e);
            }
        }
    }

    /// Moves bytes both ways once. Returns the bytes moved.
    pub fn step(&mut self) -> usize {
        let mut buf = BytesMut::new();
        self.client.poll_transmit(&mut buf);
        let a = buf.len();
        self.c2s_bytes += a;
        self.deliver(true, &buf.clone());
        let mut buf = BytesMut::new();
        self.server.poll_transmit(&mut buf);
        let b = buf.len();
        self.s2c_bytes += b;
        self.deliver(false, &buf.clone());
        a + b
    }

    /// Drains events from both sides into the logs, returning the new ones.
    pub fn drain(&mut self) -> (Vec<Event>, Vec<Event>) {
        let mut c = vec![];
        while let Some(e) = self.client.poll_event() {
            c.push(e);
        }
        let mut s = vec![];
        while let Some(e) = self.server.poll_event() {
            s.push(e);
        }
        self.client_events.extend(c.iter().cloned());
        self.server_events.extend(s.iter().cloned());
        (c, s)
    }

    /// Steps until quiet, with an "auto server" that accepts sessions and links and, for
    /// receivers it accepts, grants `credit`.
    pub fn run_auto(&mut self, credit: u32) -> (Vec<Event>, Vec<Event>) {
        let mut all_c = vec![];
        let mut all_s = vec![];
        for _ in 0..200 {
            let moved = self.step();
            let (c, s) = self.drain();
            let mut acted = false;
            for e in &s {
                acted |= auto_server(&mut self.server, e, credit);
            }
            let quiet = moved == 0
                && c.is_empty()
                && s.is_empty()
                && !acted
                && !self.client.has_transmit()
                && !self.server.has_transmit();
            all_c.extend(c);
            all_s.extend(s);
            if quiet {
                break;
            }
        }
        (all_c, all_s)
    }

    /// Steps until no bytes move.
    pub fn settle(&mut self) -> (Vec<Event>, Vec<Event>) {
        let mut all_c = vec![];
        let mut all_s = vec![];
        for _ in 0..200 {
            let moved = self.step();
            let (c, s) = self.drain();
            let quiet = moved == 0 && c.is_empty() && s.is_empty();
            all_c.extend(c);
            all_s.extend(s);
            if quiet {
                break;
            }
        }
        (all_c, all_s)
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        self.client.handle_timeout(now);
        self.server.handle_timeout(now);
    }

    /// Opens the connection, a session and a sender (client→server), with credit granted by
    /// the server. Returns (client session, client sender, server receiver).
    pub fn open_sender(&mut self, credit: u32) -> (SessionId, LinkId, LinkId) {
        self.client.open().unwrap();
        let s = self.client.begin_session(SessionConfig::default()).unwrap();
        let l = self.client.attach_sender(s, sender_cfg("q")).unwrap();
        let (_c, sev) = self.run_auto(credit);
        let rl = sev
            .iter()
            .find_map(|e| match e {
                Event::LinkOpened { link, .. } => Some(*link),
                _ => None,
            })
            .expect("server saw the attach");
        (s, l, rl)
    }

    /// Opens a receiver on the client (server→client) and has the server accept its sending end.
    pub fn open_receiver(&mut self) -> (SessionId, LinkId, LinkId) {
        self.client.open().unwrap();
        let s = self.client.begin_session(SessionConfig::default()).unwrap();
        let l = self.client.attach_receiver(s, receiver_cfg("q")).unwrap();
        let (_c, sev) = self.run_auto(0);
        let sl = sev
            .iter()
            .find_map(|e| match e {
                Event::LinkOpened { link, .. } => Some(*link),
                _ => None,
            })
            .expect("server saw the attach");
        (s, l, sl)
    }
}

pub fn sender_cfg(addr: &str) -> LinkConfig {
    LinkConfig {
        name: format!("sender-{addr}"),
        target: Some(TargetKind::Target(Target::new(addr))),
        source: Some(Source::default()),
        ..LinkConfig::default()
    }
}

pub fn receiver_cfg(addr: &str) -> LinkConfig {
    LinkConfig {
        name: format!("receiver-{addr}"),
        source: Some(Source::new(addr)),
        target: Some(TargetKind::Target(Target::default())),
        ..LinkConfig::default()
    }
}

/// The behaviour of a minimal server: open in reply, accept sessions and links, grant credit
/// to accepted receivers. Returns true if it did something.
pub fn auto_server(server: &mut Connection, e: &Event, credit: u32) -> bool {
    match e {
        Event::ConnectionOpened if server.state().0 == EndpointState::Uninit => {
            server.open().unwrap();
            return true;
        }
        Event::SessionOpened {
            session,
            remote_initiated: true,
        } => {
            server.accept_session(*session).unwrap();
            return true;
        }
        Event::LinkOpened {
            link,
            remote_initiated: true,
        } => {
            server.accept_link(*link, LinkConfig::default()).unwrap();
            if server.link_role(*link) == Some(amqp_proto::definitions::Role::Receiver)
                && credit > 0
            {
                server.flow(*link, credit, false).unwrap();
            }
            return true;
        }
        _ => {}
    }
    false
}

pub fn msg(i: usize) -> Message {
    Message::builder()
        .message_id(i as u64)
        .body(format!("message {i}"))
        .build()
}

pub fn accepted() -> Option<DeliveryState> {
    Some(DeliveryState::accepted())
}

pub fn deliveries(events: &[Event]) -> Vec<IncomingDelivery> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delivery(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}
