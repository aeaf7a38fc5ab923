//! An in-memory pair of engines with a virtual clock, and byte-stream faults.
#![allow(dead_code, unreachable_pub, clippy::result_large_err)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use amqp_engine::messaging::sim::SimRng;
use amqp_engine::*;
use amqp_proto::frame::{self, Frame, FrameBody, FrameDecoder, ProtocolHeader};
use amqp_proto::message::Message;
use amqp_proto::messaging::{DeliveryState, Source, Target, TargetKind};
use amqp_proto::performatives::Performative;
use amqp_proto::sasl::SaslFrame;
use bytes::{Bytes, BytesMut};

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
    rng: SimRng,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
    pub c2s_bytes: usize,
    pub s2c_bytes: usize,
    pub client_err: Option<ConnectionError>,
    pub server_err: Option<ConnectionError>,
    /// Faults applied to bytes in flight (see [`Faults`]).
    pub faults: Faults,
    /// Print every frame written (for debugging a failing test or seed).
    pub trace: bool,
    corrupt_rng: SimRng,
    steps: usize,
    c2s_held: VecDeque<(usize, Vec<u8>)>,
    s2c_held: VecDeque<(usize, Vec<u8>)>,
}

/// Byte-stream faults between the two engines. The default is a perfect wire.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Flip one bit in about one byte out of `one_in` (seeded; see [`Pair::set_corrupt`]).
    pub corrupt_one_in: Option<u64>,
    /// Hold bytes this many steps before they arrive.
    pub delay_steps: usize,
    /// Drop everything the client writes (a black hole towards the server).
    pub cut_c2s: bool,
    /// Drop everything the server writes (a silent server).
    pub cut_s2c: bool,
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
            rng: SimRng::new(1),
            client_events: vec![],
            server_events: vec![],
            c2s_bytes: 0,
            s2c_bytes: 0,
            client_err: None,
            server_err: None,
            faults: Faults::default(),
            trace: false,
            corrupt_rng: SimRng::new(1),
            steps: 0,
            c2s_held: VecDeque::new(),
            s2c_held: VecDeque::new(),
        }
    }

    pub fn default_pair() -> Pair {
        Pair::new(cfg("client"), cfg("server"))
    }

    pub fn set_wire(&mut self, w: Wire) {
        if let Wire::Random(seed) = w {
            self.rng = SimRng::new(seed);
        }
        self.wire = w;
    }

    /// Corrupts bytes in flight: about one byte in `one_in` gets a bit flipped, at positions
    /// drawn from `seed`.
    pub fn set_corrupt(&mut self, seed: u64, one_in: u64) {
        self.corrupt_rng = SimRng::new(seed);
        self.faults.corrupt_one_in = Some(one_in.max(1));
    }

    /// Holds bytes `steps` steps before they arrive.
    pub fn set_delay(&mut self, steps: usize) {
        self.faults.delay_steps = steps;
    }

    /// Applies corruption, delay and cuts to bytes written in one direction, then delivers
    /// whatever is due.
    fn transmit(&mut self, to_server: bool, mut data: Vec<u8>) {
        if self.trace && !data.is_empty() {
            let dir = if to_server { "C->S" } else { "S->C" };
            for item in decode_wire(&data) {
                match item {
                    WireItem::Frame(Frame {
                        channel,
                        body:
                            FrameBody::Amqp {
                                performative,
                                payload,
                            },
                    }) => eprintln!(
                        "  {dir} [{}] ch{channel} {performative:?} +{}B",
                        self.steps,
                        payload.len()
                    ),
                    other => eprintln!("  {dir} [{}] {other:?}", self.steps),
                }
            }
        }
        if let Some(n) = self.faults.corrupt_one_in {
            for b in data.iter_mut() {
                if self.corrupt_rng.next_u64() % n == 0 {
                    *b ^= 1 << (self.corrupt_rng.next_u64() % 8);
                }
            }
        }
        let cut = if to_server {
            self.faults.cut_c2s
        } else {
            self.faults.cut_s2c
        };
        if cut {
            return;
        }
        let due = self.steps + self.faults.delay_steps;
        let steps = self.steps;
        let q = if to_server {
            &mut self.c2s_held
        } else {
            &mut self.s2c_held
        };
        if !data.is_empty() {
            q.push_back((due, data));
        }
        let mut ready = vec![];
        while q.front().is_some_and(|(t, _)| *t <= steps) {
            if let Some((_, d)) = q.pop_front() {
                ready.push(d);
            }
        }
        for d in ready {
            self.deliver(to_server, &d);
        }
    }

    /// Bytes held by the delay fault, both directions.
    pub fn held_bytes(&self) -> usize {
        self.c2s_held
            .iter()
            .chain(self.s2c_held.iter())
            .map(|(_, d)| d.len())
            .sum()
    }

    /// Feeds raw bytes to the server as if the client had written them (no faults applied).
    pub fn inject_server(&mut self, data: &[u8]) -> Result<(), ConnectionError> {
        let r = self.server.handle_input(data, self.now);
        if let Err(e) = &r {
            self.server_err.get_or_insert(e.clone());
        }
        r
    }

    /// Feeds raw bytes to the client as if the server had written them (no faults applied).
    pub fn inject_client(&mut self, data: &[u8]) -> Result<(), ConnectionError> {
        let r = self.client.handle_input(data, self.now);
        if let Err(e) = &r {
            self.client_err.get_or_insert(e.clone());
        }
        r
    }

    /// What the server would write now, taken without delivering it.
    pub fn server_output(&mut self) -> Bytes {
        self.server.poll_transmit_bytes()
    }

    /// What the client would write now, taken without delivering it.
    pub fn client_output(&mut self) -> Bytes {
        self.client.poll_transmit_bytes()
    }

    /// The transport breaks: both engines see it closed.
    pub fn drop_connection(&mut self) {
        let now = self.now;
        self.client.handle_transport_closed(now);
        self.server.handle_transport_closed(now);
        self.c2s_held.clear();
        self.s2c_held.clear();
    }

    fn deliver(&mut self, to_server: bool, data: &[u8]) {
        let mut off = 0;
        while off < data.len() {
            let n = match self.wire {
                Wire::Whole => data.len() - off,
                Wire::Chunks(n) => n.max(1).min(data.len() - off),
                Wire::Random(_) => (1 + (self.rng.next_u64() % 700) as usize).min(data.len() - off),
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
        self.steps += 1;
        let mut buf = BytesMut::new();
        self.client.poll_transmit(&mut buf);
        let a = buf.len();
        self.c2s_bytes += a;
        self.transmit(true, buf.to_vec());
        let mut buf = BytesMut::new();
        self.server.poll_transmit(&mut buf);
        let b = buf.len();
        self.s2c_bytes += b;
        self.transmit(false, buf.to_vec());
        // Bytes still held count as movement, so loops waiting for quiet keep stepping.
        a + b + usize::from(!self.c2s_held.is_empty() || !self.s2c_held.is_empty())
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
            // The session may already be gone (the peer ended it before we answered).
            return server.accept_session(*session).is_ok();
        }
        Event::LinkOpened {
            link,
            remote_initiated: true,
        } => {
            if server.accept_link(*link, LinkConfig::default()).is_err() {
                // Already detached by the peer before we answered.
                return false;
            }
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

/// One item on the wire: a protocol header or a frame.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum WireItem {
    Header(ProtocolHeader),
    Frame(Frame),
}

/// Decodes what an engine wrote: protocol headers and frames, in order. Panics on bytes that
/// do not decode (an engine must never write those).
pub fn decode_wire(bytes: &[u8]) -> Vec<WireItem> {
    let mut buf = BytesMut::from(bytes);
    let mut dec = FrameDecoder::new(u32::MAX);
    let mut out = vec![];
    while !buf.is_empty() {
        if buf.starts_with(b"AMQP") {
            let h = ProtocolHeader::parse(&buf)
                .expect("valid header")
                .expect("whole header");
            let _ = buf.split_to(8);
            out.push(WireItem::Header(h));
            continue;
        }
        match dec.decode(&mut buf).expect("engine output decodes") {
            frame::Decoded::Frame(f) => out.push(WireItem::Frame(f)),
            frame::Decoded::NeedMore(n) => panic!("engine wrote a truncated frame ({n} missing)"),
        }
    }
    out
}

/// The performatives (with channels and payloads) in decoded wire items.
pub fn performatives(items: &[WireItem]) -> Vec<(u16, Performative, Bytes)> {
    items
        .iter()
        .filter_map(|i| match i {
            WireItem::Frame(Frame {
                channel,
                body:
                    FrameBody::Amqp {
                        performative,
                        payload,
                    },
            }) => Some((*channel, performative.clone(), payload.clone())),
            _ => None,
        })
        .collect()
}

/// The SASL frames in decoded wire items.
pub fn sasl_frames(items: &[WireItem]) -> Vec<SaslFrame> {
    items
        .iter()
        .filter_map(|i| match i {
            WireItem::Frame(Frame {
                body: FrameBody::Sasl(s),
                ..
            }) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// The protocol headers in decoded wire items.
pub fn headers(items: &[WireItem]) -> Vec<ProtocolHeader> {
    items
        .iter()
        .filter_map(|i| match i {
            WireItem::Header(h) => Some(*h),
            _ => None,
        })
        .collect()
}

/// Encodes one AMQP frame.
pub fn amqp_frame(channel: u16, p: impl Into<Performative>, payload: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    frame::encode_frame(&mut b, channel, &p.into(), payload);
    b.to_vec()
}

/// Encodes one SASL frame.
pub fn sasl_frame(f: impl Into<SaslFrame>) -> Vec<u8> {
    let mut b = BytesMut::new();
    frame::encode_sasl_frame(&mut b, &f.into());
    b.to_vec()
}

/// A raw frame: header fields as given, then `body`.
pub fn raw_frame(size: u32, doff: u8, frame_type: u8, channel: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + body.len());
    v.extend_from_slice(&size.to_be_bytes());
    v.push(doff);
    v.push(frame_type);
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// The `close` performatives in decoded wire items, as their errors' conditions.
pub fn close_conditions(items: &[WireItem]) -> Vec<Option<String>> {
    performatives(items)
        .into_iter()
        .filter_map(|(_, p, _)| match p {
            Performative::Close(c) => Some(c.error.map(|e| e.condition.as_str().to_owned())),
            _ => None,
        })
        .collect()
}
