//! Bodies of the engine's fuzz targets (the connection engine, SASL, the connect-URL parser,
//! and the messaging layer in the simulated world: [`fuzz_messaging`]), callable from tests
//! so CI exercises them on a seed corpus without a nightly toolchain. Each must never panic, whatever the input; the assertions inside are the
//! invariants a crash report means were broken.
//!
//! The engine reads no clock, so the caller passes the base time (`Instant::now()` in a fuzz
//! target); everything after it is virtual.

use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_proto::definitions::{condition, Error, ReceiverSettleMode, Role, SenderSettleMode};
use amqp_proto::frame::ProtocolHeader;
use amqp_proto::messaging::{DeliveryState, Modified, Rejected};
use bytes::{Bytes, BytesMut};

use crate::config::{ConnectionConfig, SaslMode, Side};
use crate::connection::{Connection, EndpointState, LinkConfig, SendOptions, SessionConfig};
use crate::error::{ConnectionError, ErrorKind, Origin};
use crate::event::Event;
use crate::ids::{DeliveryId, LinkId, SessionId};
use crate::messaging::Url;
use crate::sasl::{SaslServerConfig, StaticUsers};

mod messaging;
pub use messaging::{fuzz_messaging, MessagingReport};

/// Limits that keep one fuzz input's memory small.
fn fuzz_config(id: &str) -> ConnectionConfig {
    let mut c = ConnectionConfig::new(id);
    c.max_frame_size = 4096;
    c.max_message_size = 256 * 1024;
    c.incoming_window = 64;
    c.channel_max = 64;
    c.handle_max = 64;
    c
}

/// The most bytes an engine may write in answer to `input` bytes: replies are bounded by what
/// the peer sent (flows answer flows, a close answers anything), never amplified without bound.
fn output_bound(input: usize) -> usize {
    64 * 1024 + 64 * input
}

/// Answers events like a permissive application: opens, accepts sessions and links, grants
/// credit, settles deliveries. Returns the number of events seen.
fn auto_respond(conn: &mut Connection) -> usize {
    let mut n = 0;
    while let Some(e) = conn.poll_event() {
        n += 1;
        match e {
            Event::ConnectionOpened if conn.state().0 == EndpointState::Uninit => {
                let _ = conn.open();
            }
            Event::SessionOpened {
                session,
                remote_initiated: true,
            } => {
                let _ = conn.accept_session(session);
            }
            Event::LinkOpened {
                link,
                remote_initiated: true,
            } => {
                let accepted = conn.accept_link(link, LinkConfig::default()).is_ok();
                if accepted && conn.link_role(link) == Some(Role::Receiver) {
                    let _ = conn.flow(link, 100, false);
                }
            }
            Event::LinkFlow {
                link, drain: true, ..
            } => {
                let _ = conn.drained(link);
            }
            Event::Delivery(d) if !d.settled => {
                let _ = conn.disposition(d.delivery, Some(DeliveryState::accepted()), true);
            }
            Event::Disposition {
                delivery,
                settled: false,
                ..
            } => {
                let _ = conn.settle(delivery);
            }
            _ => {}
        }
    }
    n
}

/// Feeds `data` to `conn` in pieces whose sizes come from `chunk` (0 = all at once), answering
/// events as it goes, and checks the invariants every untrusted-input target shares.
fn feed(conn: &mut Connection, data: &[u8], chunk: usize, now: Instant) {
    let mut written = 0usize;
    let mut out = BytesMut::new();
    let mut first_error = None;
    let step = if chunk == 0 { data.len().max(1) } else { chunk };
    for (i, piece) in data.chunks(step).enumerate() {
        let t = now + Duration::from_millis(i as u64);
        match conn.handle_input(piece, t) {
            Ok(()) => assert!(first_error.is_none(), "input accepted after a fatal error"),
            Err(e) => {
                // A fatal error is sticky: the same error every time.
                if let Some(f) = &first_error {
                    assert_eq!(f, &e, "sticky error changed");
                }
                assert_eq!(conn.error(), Some(&e));
                assert_eq!(e.origin, Origin::Local);
                first_error = Some(e);
            }
        }
        auto_respond(conn);
        out.clear();
        written += conn.poll_transmit(&mut out);
        conn.handle_timeout(t);
        if conn.is_finished() {
            assert_eq!(
                conn.poll_timeout(),
                None,
                "a finished connection sets no timer"
            );
            assert!(conn.sessions().is_empty() && conn.links().is_empty());
        }
    }
    assert!(
        written <= output_bound(data.len()),
        "{written} bytes written for {} read",
        data.len()
    );
    // The transport ends: the connection always finishes.
    conn.handle_transport_closed(now + Duration::from_secs(1));
    auto_respond(conn);
    assert!(conn.is_finished());
    out.clear();
    let _ = conn.poll_transmit(&mut out);
}

/// A server engine after a valid AMQP header, fed arbitrary bytes. The first byte chooses how
/// the rest is chunked. No panic; output bounded by input; errors sticky; always finishes.
pub fn fuzz_server_input(data: &[u8], now: Instant) {
    let (chunk, rest) = match data.split_first() {
        Some((&c, rest)) => (c as usize, rest),
        None => (0, data),
    };
    let mut conn = Connection::new(Side::Server, fuzz_config("fuzz-server"), now);
    let mut input = ProtocolHeader::AMQP.to_bytes().to_vec();
    input.extend_from_slice(rest);
    feed(&mut conn, &input, chunk, now);
}

/// A client engine that opened a session with a sender and a receiver (pipelined), fed
/// arbitrary bytes as the server's answer. If the first byte is odd, a valid AMQP header is
/// put in front; its other bits choose the chunking.
pub fn fuzz_client_input(data: &[u8], now: Instant) {
    let (ctl, rest) = match data.split_first() {
        Some((&c, rest)) => (c, rest),
        None => (0, data),
    };
    let mut conn = Connection::new(Side::Client, fuzz_config("fuzz-client"), now);
    let _ = conn.open();
    if let Ok(s) = conn.begin_session(SessionConfig::default()) {
        let _ = conn.attach_sender(
            s,
            LinkConfig {
                name: "fuzz-sender".into(),
                ..LinkConfig::default()
            },
        );
        if let Ok(r) = conn.attach_receiver(
            s,
            LinkConfig {
                name: "fuzz-receiver".into(),
                ..LinkConfig::default()
            },
        ) {
            let _ = conn.flow(r, 10, false);
        }
    }
    let mut input = Vec::with_capacity(rest.len() + 8);
    if ctl & 1 == 1 {
        input.extend_from_slice(&ProtocolHeader::AMQP.to_bytes());
    }
    input.extend_from_slice(rest);
    feed(&mut conn, &input, (ctl >> 1) as usize, now);
}

fn fuzz_users() -> Arc<StaticUsers> {
    Arc::new(
        StaticUsers::new()
            .with_user("user", "password", b"fuzz-salt", 16)
            .with_anonymous(true),
    )
}

/// A server with SASL configured (PLAIN, SCRAM-SHA-1/256, EXTERNAL, ANONYMOUS): the SASL header
/// then arbitrary bytes. The first byte chooses the chunking.
pub fn fuzz_sasl_server_input(data: &[u8], now: Instant) {
    let (chunk, rest) = match data.split_first() {
        Some((&c, rest)) => (c as usize, rest),
        None => (0, data),
    };
    let mut sasl = SaslServerConfig::new(
        &[
            "SCRAM-SHA-256",
            "SCRAM-SHA-1",
            "PLAIN",
            "EXTERNAL",
            "ANONYMOUS",
        ],
        fuzz_users(),
    );
    sasl.nonce = b"fuzz-server-nonce".to_vec();
    sasl.scram_final_in_challenge = chunk & 1 == 1;
    let mut cfg = fuzz_config("fuzz-sasl-server");
    cfg.sasl = SaslMode::Server(sasl);
    cfg.transport_identity = Some("CN=fuzz".into());
    let mut conn = Connection::new(Side::Server, cfg, now);
    let mut input = ProtocolHeader::SASL.to_bytes().to_vec();
    input.extend_from_slice(rest);
    feed(&mut conn, &input, chunk >> 1, now);
    if conn.authenticated_identity().is_some() {
        // Authenticated means a SASL exchange succeeded or was skipped: never with an error
        // of the SASL layer.
        assert!(!matches!(
            conn.error().map(|e| &e.kind),
            Some(ErrorKind::Sasl(_))
        ));
    }
}

/// Reads structured choices from fuzz bytes.
struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        (u16::from(self.byte()) << 8) | u16::from(self.byte())
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        if v.is_empty() {
            None
        } else {
            Some(v[self.byte() as usize % v.len()])
        }
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One side of the pair, as an application sees it.
#[derive(Default)]
struct Peer {
    sessions: Vec<SessionId>,
    links: Vec<LinkId>,
    pending_links: Vec<LinkId>,
    pending_sessions: Vec<SessionId>,
    received: Vec<DeliveryId>,
    sent: Vec<DeliveryId>,
    draining: Vec<LinkId>,
}

/// What one [`fuzz_pair_ops`] run did, so a seed corpus can be checked for depth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairOpsReport {
    /// Operations decoded and applied.
    pub ops: usize,
    /// Messages delivered (both directions).
    pub deliveries: usize,
    /// Outcomes or settlements reported to senders.
    pub dispositions: usize,
    /// Bytes moved between the engines.
    pub bytes: usize,
}

struct FuzzPair {
    report: PairOpsReport,
    conns: [Connection; 2],
    peers: [Peer; 2],
    now: Instant,
    /// Someone closed with an error, dropped the transport or let time pass: errors of the
    /// kinds that follow from those are expected.
    disturbed: bool,
    /// Answer opens, sessions and links automatically (random inputs get further).
    auto: bool,
}

impl FuzzPair {
    /// Moves everything written, in pieces of `chunk` bytes (0 = whole), both ways once.
    fn shuttle(&mut self, chunk: usize) -> usize {
        let mut moved = 0;
        for from in 0..2 {
            let mut out = BytesMut::new();
            self.conns[from].poll_transmit(&mut out);
            moved += out.len();
            self.report.bytes += out.len();
            let step = if chunk == 0 { out.len().max(1) } else { chunk };
            let now = self.now;
            for piece in out.chunks(step) {
                let _ = self.conns[1 - from].handle_input(piece, now);
            }
        }
        self.events();
        moved
    }

    fn events(&mut self) {
        for side in 0..2 {
            while let Some(e) = self.conns[side].poll_event() {
                let auto = self.auto;
                let conn = &mut self.conns[side];
                let peer = &mut self.peers[side];
                match e {
                    Event::ConnectionOpened if auto && conn.state().0 == EndpointState::Uninit => {
                        let _ = conn.open();
                    }
                    Event::SessionOpened {
                        session,
                        remote_initiated: true,
                    } => {
                        if !auto {
                            peer.pending_sessions.push(session);
                        } else if conn.accept_session(session).is_ok() {
                            peer.sessions.push(session);
                        }
                    }
                    Event::LinkOpened {
                        link,
                        remote_initiated: true,
                    } => {
                        if !auto {
                            peer.pending_links.push(link);
                        } else if conn.accept_link(link, LinkConfig::default()).is_ok() {
                            peer.links.push(link);
                        }
                    }
                    Event::LinkFlow { link, drain, .. } => {
                        assert_eq!(conn.link_role(link).unwrap_or(Role::Sender), Role::Sender);
                        if drain {
                            peer.draining.push(link);
                        }
                    }
                    Event::Delivery(d) => {
                        assert_eq!(
                            conn.link_role(d.link).unwrap_or(Role::Receiver),
                            Role::Receiver,
                            "delivery on a sender"
                        );
                        self.report.deliveries += 1;
                        if !d.settled {
                            peer.received.push(d.delivery);
                        }
                    }
                    Event::Disposition { delivery, .. } => {
                        self.report.dispositions += 1;
                        peer.sent.push(delivery);
                    }
                    // Engines driven only through the API never break each other's rules.
                    Event::LinkError { error, .. } | Event::SessionError { error, .. } => {
                        panic!("{} broke a rule: {error}", ["client", "server"][1 - side])
                    }
                    Event::Error(err) => {
                        let expected = self.disturbed
                            || no_channel_to_answer(&err)
                            || matches!(
                                err.kind,
                                ErrorKind::RemoteClose
                                    | ErrorKind::LocalClose
                                    | ErrorKind::TransportEnded
                                    | ErrorKind::IdleTimeout
                            );
                        assert!(expected, "unexpected connection error: {err}");
                    }
                    _ => {}
                }
            }
            let conn = &self.conns[side];
            // Up to channel-max + 1 sessions we began, plus as many the peer began and we have not answered.
            assert!(conn.sessions().len() <= 2 * (64 + 1));
            assert!(conn.links().len() <= (2 * 65) * (2 * 65));
            if conn.is_finished() {
                assert_eq!(conn.poll_timeout(), None);
            }
        }
    }
}

// Operation codes of `fuzz_pair_ops`: an op byte is `code << 1 | side` (0 client, 1 server),
// with codes taken modulo 32; constructive operations get several codes, destructive ones
// one (and most of those also need a further byte to agree), so random inputs get far.
const OP_OPEN: u8 = 0;
const OP_BEGIN: u8 = 1;
const OP_ACCEPT_SESSION: u8 = 2;
const OP_ATTACH: u8 = 3;
const OP_ACCEPT_LINK: u8 = 4;
const OP_FLOW: u8 = 5;
const OP_SEND: u8 = 6;
const OP_DISPOSITION: u8 = 7;
const OP_SETTLE: u8 = 8;
const OP_DETACH: u8 = 9;
const OP_END: u8 = 10;
const OP_CLOSE: u8 = 11;
const OP_TIME: u8 = 12;
const OP_SHUTTLE: u8 = 13;
const OP_DRAINED: u8 = 14;
const OP_AVAILABLE: u8 = 15;
const OP_DROP: u8 = 16;

fn op_code(op: u8) -> u8 {
    match (op >> 1) % 32 {
        0 | 17 => OP_OPEN,
        1 | 18 => OP_BEGIN,
        2 | 19 => OP_ACCEPT_SESSION,
        3 | 20 | 21 => OP_ATTACH,
        4 | 22 => OP_ACCEPT_LINK,
        5 | 23 | 24 => OP_FLOW,
        6 | 25 | 26 | 27 => OP_SEND,
        7 | 28 => OP_DISPOSITION,
        8 => OP_SETTLE,
        9 => OP_DETACH,
        10 => OP_END,
        11 => OP_CLOSE,
        12 => OP_TIME,
        13 | 29 | 30 => OP_SHUTTLE,
        14 => OP_DRAINED,
        15 => OP_AVAILABLE,
        31 => OP_DROP,
        _ => OP_SHUTTLE,
    }
}

fn state(b: u8) -> Option<DeliveryState> {
    match b % 6 {
        0 => None,
        1 | 2 => Some(DeliveryState::accepted()),
        3 => Some(DeliveryState::released()),
        4 => Some(DeliveryState::Rejected(Rejected {
            error: Some(Error::new(condition::NOT_ALLOWED, "fuzz")),
        })),
        _ => Some(DeliveryState::Modified(Modified {
            delivery_failed: Some(true),
            undeliverable_here: None,
            message_annotations: None,
        })),
    }
}

/// A side whose every channel (0..=channel-max) is held, by sessions open or still ending (our
/// end sent, the peer's not yet seen), cannot answer the peer's begin: refused by design, with
/// the connection closed (the only local `resource-limit-exceeded` close an engine driven
/// through its API makes).
fn no_channel_to_answer(err: &ConnectionError) -> bool {
    err.kind == ErrorKind::Protocol
        && err.origin == Origin::Local
        && err.error.condition == condition::RESOURCE_LIMIT_EXCEEDED
}

/// A client and a server driven by a sequence of API operations decoded from `data`: open,
/// begin, attach, accept, flow, send, disposition, settle, detach, end, close, time passing,
/// chunked delivery of the bytes in flight, drains, aborts, transport loss. Neither engine may
/// panic, and — since both are driven only through the API, over a perfect wire — neither may
/// see the other break a protocol rule.
///
/// Layout: one mode byte (bit 0: answer opens, sessions and links automatically), then per
/// side a big-endian u16 (max-frame-size above 512) and a byte (incoming window), then op
/// bytes `code << 1 | side` (codes modulo 32, see `op_code`), each followed by its arguments.
pub fn fuzz_pair_ops(data: &[u8], now: Instant) -> PairOpsReport {
    let mut ops = Ops(data);
    let auto = ops.byte() & 1 == 1;
    let mut cfgs = [fuzz_config("fuzz-client"), fuzz_config("fuzz-server")];
    for c in cfgs.iter_mut() {
        c.max_frame_size = 512 + u32::from(ops.u16() % 8192);
        c.incoming_window = 1 + u32::from(ops.byte() % 16);
    }
    let [c, s] = cfgs;
    let mut p = FuzzPair {
        report: PairOpsReport::default(),
        conns: [
            Connection::new(Side::Client, c, now),
            Connection::new(Side::Server, s, now),
        ],
        peers: [Peer::default(), Peer::default()],
        now,
        disturbed: false,
        auto,
    };
    let mut steps = 0;
    while !ops.is_empty() && steps < 2000 {
        steps += 1;
        p.report.ops += 1;
        let op = ops.byte();
        let side = (op & 1) as usize;
        let conn = &mut p.conns[side];
        let peer = &mut p.peers[side];
        match op_code(op) {
            OP_OPEN => {
                let _ = conn.open();
            }
            OP_BEGIN => {
                let window = ops.byte();
                let cfg = SessionConfig {
                    incoming_window: (window > 0).then_some(u32::from(window)),
                    ..SessionConfig::default()
                };
                if let Ok(s) = conn.begin_session(cfg) {
                    peer.sessions.push(s);
                }
            }
            OP_ACCEPT_SESSION => {
                if let Some(s) = ops.pick(&peer.pending_sessions) {
                    peer.pending_sessions.retain(|&x| x != s);
                    if conn.accept_session(s).is_ok() {
                        peer.sessions.push(s);
                    }
                }
            }
            OP_ATTACH => {
                let Some(s) = ops.pick(&peer.sessions) else {
                    continue;
                };
                let b = ops.byte();
                let cfg = LinkConfig {
                    name: format!("l{}-{}", side, ops.u16()),
                    snd_settle_mode: match (b >> 1) & 3 {
                        0 => Some(SenderSettleMode::Settled),
                        1 => Some(SenderSettleMode::Unsettled),
                        2 => Some(SenderSettleMode::Mixed),
                        _ => None,
                    },
                    rcv_settle_mode: (b & 8 != 0).then_some(ReceiverSettleMode::Second),
                    ..LinkConfig::default()
                };
                let r = if b & 1 == 0 {
                    conn.attach_sender(s, cfg)
                } else {
                    conn.attach_receiver(s, cfg)
                };
                if let Ok(l) = r {
                    peer.links.push(l);
                }
            }
            OP_ACCEPT_LINK => {
                if let Some(l) = ops.pick(&peer.pending_links) {
                    peer.pending_links.retain(|&x| x != l);
                    if ops.byte() % 8 == 0 {
                        let _ = conn.refuse_link(l, Error::new(condition::NOT_FOUND, "fuzz"));
                    } else if conn.accept_link(l, LinkConfig::default()).is_ok() {
                        peer.links.push(l);
                    }
                }
            }
            OP_FLOW => {
                if let Some(l) = ops.pick(&peer.links) {
                    let credit = u32::from(ops.byte() % 32);
                    let drain = ops.byte() % 4 == 0;
                    let _ = conn.flow(l, credit, drain);
                }
            }
            OP_SEND => {
                if let Some(l) = ops.pick(&peer.links) {
                    let len = ops.u16() as usize % 12_000;
                    let settled = ops.byte() % 3 == 0;
                    let body = Bytes::from(vec![0x5a; len]);
                    if let Ok(d) = conn.send_bytes(
                        l,
                        body,
                        SendOptions {
                            settled,
                            ..SendOptions::default()
                        },
                    ) {
                        if ops.byte() % 16 == 0 {
                            let _ = conn.abort(d);
                        }
                    }
                }
            }
            OP_DISPOSITION => {
                if let Some(d) = ops.pick(&peer.received) {
                    let st = state(ops.byte());
                    let settled = ops.byte() % 4 != 0;
                    let _ = conn.disposition(d, st, settled);
                    if settled {
                        peer.received.retain(|&x| x != d);
                    }
                }
            }
            OP_SETTLE => {
                if let Some(d) = ops.pick(&peer.sent) {
                    peer.sent.retain(|&x| x != d);
                    let _ = conn.settle(d);
                }
            }
            OP_DETACH => {
                if ops.byte() % 4 != 0 {
                    continue;
                }
                if let Some(l) = ops.pick(&peer.links) {
                    let closed = ops.byte() % 2 == 0;
                    let _ = conn.detach(l, closed, None);
                    peer.links.retain(|&x| x != l);
                }
            }
            OP_END => {
                if ops.byte() % 16 != 0 {
                    continue;
                }
                if let Some(s) = ops.pick(&peer.sessions) {
                    let _ = conn.end_session(s, None);
                    peer.sessions.retain(|&x| x != s);
                }
            }
            OP_CLOSE => {
                if ops.byte() % 64 != 0 {
                    continue;
                }
                let with_error = ops.byte() % 4 == 0;
                if with_error {
                    p.disturbed = true;
                }
                let _ = conn
                    .close(with_error.then(|| Error::new(condition::INTERNAL_ERROR, "fuzz close")));
            }
            OP_TIME => {
                p.disturbed = true;
                p.now += Duration::from_millis(u64::from(ops.byte()) * 100);
                let now = p.now;
                p.conns[0].handle_timeout(now);
                p.conns[1].handle_timeout(now);
            }
            OP_SHUTTLE => {
                let chunk = ops.byte() as usize;
                p.shuttle(chunk);
            }
            OP_DRAINED => {
                if let Some(l) = ops.pick(&peer.draining) {
                    peer.draining.retain(|&x| x != l);
                    let _ = conn.drained(l);
                }
            }
            OP_AVAILABLE => {
                if let Some(l) = ops.pick(&peer.links) {
                    let _ = conn.set_available(l, u32::from(ops.byte()));
                }
            }
            _ => {
                if ops.byte() == 0xa5 {
                    p.disturbed = true;
                    let now = p.now;
                    p.conns[0].handle_transport_closed(now);
                    p.conns[1].handle_transport_closed(now);
                }
            }
        }
        p.events();
    }
    // Let everything in flight arrive; the exchange must go quiet. Frames held behind a
    // session window of one frame cross one per round trip (the receiver's flow reopens it),
    // so the bound grows with what is held: at least 256 payload bytes per frame (max frame
    // sizes are 512 or more), two round trips each.
    let held: usize = p.conns.iter().map(Connection::pending_transmit_len).sum();
    let mut quiet = false;
    for _ in 0..500 + 2 * held / 256 {
        if p.shuttle(0) == 0 && !p.conns[0].has_transmit() && !p.conns[1].has_transmit() {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "the pair never went quiet");
    if !p.disturbed {
        for c in &p.conns {
            if let Some(e) = c.error() {
                assert!(
                    matches!(e.kind, ErrorKind::RemoteClose | ErrorKind::LocalClose)
                        || no_channel_to_answer(e),
                    "unexpected error: {e}"
                );
            }
        }
    }
    // A close from either side finishes both, cleanly.
    let both_open = p
        .conns
        .iter()
        .all(|c| c.state() == (EndpointState::Active, EndpointState::Active));
    if both_open {
        let _ = p.conns[0].close(None);
        for _ in 0..50 {
            if p.shuttle(0) == 0 {
                break;
            }
        }
        for c in &p.conns {
            assert!(c.is_finished(), "close did not finish the connection");
            assert!(c.sessions().is_empty() && c.links().is_empty());
        }
    }
    p.report
}

/// Fuzz entry point: parses `data` (when it is UTF-8) as a connect and as a listen URL and
/// checks the invariants of every URL that parses:
///
/// * its [`Display`](core::fmt::Display) output parses again to the same URL, except that the
///   password reads `***` (it is masked),
/// * [`host_port`](crate::messaging::Url::host_port) parses again to the same host and port,
/// * `Debug` and `Display` output do not depend on the password's value (so they cannot
///   leak it).
///
/// Never panics on its own account for any input: a panic means a broken invariant (a bug).
/// Also runs in normal tests, so the fuzz target stays a thin wrapper.
pub fn fuzz_url(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    for url in [Url::parse(text), Url::parse_listen(text)]
        .into_iter()
        .flatten()
    {
        let shown = url.to_string();
        let debug = format!("{url:?}");
        let again = match Url::parse(&shown) {
            Ok(again) => again,
            Err(e) => panic!("Display output {shown:?} does not re-parse: {e}"),
        };
        let expected = match url.password() {
            Some(_) => url.clone().with_password("***"),
            None => url.clone(),
        };
        assert_eq!(
            again, expected,
            "Display output {shown:?} re-parses differently"
        );

        match Url::parse(&url.host_port()) {
            Ok(hp) => {
                assert_eq!(hp.host(), url.host(), "host_port host");
                assert_eq!(hp.port(), url.port(), "host_port port");
            }
            Err(e) => panic!("host_port {:?} does not re-parse: {e}", url.host_port()),
        }

        // The output must not depend on the password's value at all.
        let other = match url.password() {
            Some(_) => url.clone().with_password("other"),
            None => url.clone(),
        };
        assert_eq!(shown, other.to_string(), "Display depends on the password");
        assert_eq!(debug, format!("{other:?}"), "Debug depends on the password");
    }
}
