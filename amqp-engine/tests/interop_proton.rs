//! Interop: amqp-engine against python-qpid-proton (an implementation we did not write), over
//! loopback TCP, with the tiny blocking driver in `interop/driver.rs` and the proton peer in
//! `interop/proton_peer.py`.
//!
//! Every scenario is bounded in time (the driver's deadline, the peer's own `--timeout`, and
//! a kill by PID when the peer overstays). If `python3 -c 'import proton'` fails, the tests
//! fail, unless `INTEROP_OPTIONAL=1` is set, in which case they are skipped with a message.

#[path = "interop/driver.rs"]
mod driver;
#[path = "interop/peer.rs"]
mod peer;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_engine::sasl::{SaslClientConfig, SaslError, SaslServerConfig, StaticUsers};
use amqp_engine::*;
use amqp_proto::definitions::Role;
use amqp_proto::message::{Body, Message, MessageId};
use amqp_proto::messaging::{DeliveryState, Source, Target, TargetKind};
use amqp_proto::Value;
use driver::{Driver, Flow};
use peer::{require_proton, ProtonPeer};
use serde_json::Value as Json;

/// Messages each way in the bulk scenarios.
const N: usize = 10_000;
/// Our receivers' credit window, re-granted (in one flow) when half is used.
const WINDOW: u32 = 1000;
/// Every engine run must finish within this.
const LIMIT: Duration = Duration::from_secs(60);
/// The peer's own timeout (it stops itself after this), in seconds.
const PEER_TIMEOUT: &str = "50";

fn s(v: &str) -> String {
    v.to_string()
}

/// The body of message `i`: a short string, or `size` bytes of a pattern that depends on `i`
/// (the same pattern as `proton_peer.py`).
fn body_for(i: usize, size: usize) -> Body {
    if size == 0 {
        Body::Value(Value::String(format!("message {i}").into()))
    } else {
        Body::data(pattern(i, size))
    }
}

fn pattern(i: usize, size: usize) -> Vec<u8> {
    (0..size).map(|k| ((i + k) % 251) as u8).collect()
}

fn body_ok(body: &Body, i: usize, size: usize) -> bool {
    if size == 0 {
        return matches!(body, Body::Value(Value::String(s)) if **s == format!("message {i}"));
    }
    // Proton sends a python `bytes` body as an amqp-value binary; accept a data section too.
    let bytes: Vec<u8> = match body {
        Body::Value(Value::Binary(b)) => b.to_vec(),
        Body::Data(parts) => parts.iter().flat_map(|p| p.iter().copied()).collect(),
        _ => return false,
    };
    bytes.len() == size && bytes == pattern(i, size)
}

/// Our half of the exchange: send `n` messages on our sender (the peer's "in"), receive `n`
/// on our receiver (the peer's "out"), accept each, and await an outcome for each we sent.
#[derive(Debug, Default)]
struct Exchange {
    n: usize,
    size: usize,
    /// Close the connection once everything is done (the client side does).
    close_when_done: bool,
    sender: Option<LinkId>,
    receiver: Option<LinkId>,
    sent: usize,
    received: usize,
    in_order: bool,
    bodies_ok: bool,
    accepted: usize,
    other_outcomes: usize,
    unsettled_outcomes: usize,
    flow_calls: usize,
    authenticated: Option<(Option<String>, Option<String>)>,
    remote_closed: Option<Option<amqp_proto::definitions::Error>>,
    errors: Vec<ConnectionError>,
    link_errors: Vec<String>,
    finished: bool,
    closing: bool,
    decode_errors: usize,
}

impl Exchange {
    fn new(n: usize, size: usize, close_when_done: bool) -> Exchange {
        Exchange {
            n,
            size,
            close_when_done,
            in_order: true,
            bodies_ok: true,
            ..Default::default()
        }
    }

    fn done(&self) -> bool {
        self.received >= self.n && self.accepted + self.other_outcomes >= self.n
    }

    /// Client side: open, begin, attach a sender to "in" and a receiver from "out".
    fn start_client(&mut self, c: &mut Connection) {
        c.open().unwrap();
        if self.n == 0 {
            return;
        }
        let ssn = c.begin_session(SessionConfig::default()).unwrap();
        let tx = c
            .attach_sender(
                ssn,
                LinkConfig {
                    name: "engine-tx".into(),
                    source: Some(Source::default()),
                    target: Some(TargetKind::Target(Target::new("in"))),
                    ..Default::default()
                },
            )
            .unwrap();
        let rx = c
            .attach_receiver(
                ssn,
                LinkConfig {
                    name: "engine-rx".into(),
                    source: Some(Source::new("out")),
                    target: Some(TargetKind::Target(Target::default())),
                    ..Default::default()
                },
            )
            .unwrap();
        self.sender = Some(tx);
        self.receiver = Some(rx);
        self.grant(c);
    }

    /// Grants the receiver a full window when half of it is used (and more is expected).
    fn grant(&mut self, c: &mut Connection) {
        let Some(rx) = self.receiver else { return };
        let credit = c.link_credit(rx).unwrap_or(0);
        let outstanding = (self.n - self.received) as u32;
        let want = WINDOW.min(outstanding);
        if credit < want / 2 || (credit == 0 && want > 0) {
            c.flow(rx, want, false).unwrap();
            self.flow_calls += 1;
        }
    }

    fn pump(&mut self, c: &mut Connection) {
        let Some(tx) = self.sender else { return };
        while self.sent < self.n && c.link_credit(tx).unwrap_or(0) > 0 {
            let m = Message {
                properties: Some(amqp_proto::message::Properties {
                    message_id: Some(MessageId::Ulong(self.sent as u64)),
                    ..Default::default()
                }),
                body: body_for(self.sent, self.size),
                ..Default::default()
            };
            match c.send(tx, &m, SendOptions::default()) {
                Ok(_) => self.sent += 1,
                Err(e) => panic!("send {}: {e}", self.sent),
            }
        }
    }

    fn on_event(&mut self, c: &mut Connection, ev: Event) -> Flow {
        match ev {
            Event::Authenticated {
                mechanism,
                identity,
            } => self.authenticated = Some((mechanism, identity)),
            Event::ConnectionOpened if c.state().0 == EndpointState::Uninit => c.open().unwrap(),
            Event::SessionOpened {
                session,
                remote_initiated: true,
            } => c.accept_session(session).unwrap(),
            Event::LinkOpened {
                link,
                remote_initiated: true,
            } => {
                c.accept_link(link, LinkConfig::default()).unwrap();
                match c.link_role(link) {
                    Some(Role::Receiver) => {
                        self.receiver = Some(link);
                        self.grant(c);
                    }
                    _ => self.sender = Some(link),
                }
            }
            Event::LinkFlow { link, .. } if Some(link) == self.sender => self.pump(c),
            Event::Delivery(d) => {
                match Message::decode(&d.payload) {
                    Ok(m) => {
                        if m.message_id() != Some(&MessageId::Ulong(self.received as u64)) {
                            self.in_order = false;
                        }
                        if !body_ok(&m.body, self.received, self.size) {
                            self.bodies_ok = false;
                        }
                    }
                    Err(_) => self.decode_errors += 1,
                }
                self.received += 1;
                if !d.settled {
                    c.disposition(d.delivery, Some(DeliveryState::accepted()), true)
                        .unwrap();
                }
                self.grant(c);
            }
            Event::Disposition { state, settled, .. } => {
                match state {
                    Some(DeliveryState::Accepted(_)) => self.accepted += 1,
                    _ => self.other_outcomes += 1,
                }
                if !settled {
                    self.unsettled_outcomes += 1;
                }
            }
            Event::ConnectionClosed { error } => self.remote_closed = Some(error),
            Event::LinkError { link, error } => self.link_errors.push(format!("{link:?}: {error}")),
            Event::SessionError { error, .. } => self.link_errors.push(format!("session: {error}")),
            Event::Error(e) => self.errors.push(e),
            Event::Finished => self.finished = true,
            _ => {}
        }
        if self.close_when_done
            && !self.closing
            && self.done()
            && c.state().0 == EndpointState::Active
        {
            self.closing = true;
            c.close(None).unwrap();
        }
        Flow::Continue
    }

    /// Asserts our half: counts, order, outcomes, clean close.
    fn assert_ok(&self, what: &str) {
        assert!(
            self.errors.is_empty(),
            "{what}: engine errors {:?}",
            self.errors
        );
        assert!(
            self.link_errors.is_empty(),
            "{what}: {:?}",
            self.link_errors
        );
        assert_eq!(self.sent, self.n, "{what}: sent");
        assert_eq!(self.received, self.n, "{what}: received");
        assert_eq!(self.decode_errors, 0, "{what}: undecodable messages");
        assert!(self.in_order, "{what}: messages out of order");
        assert!(self.bodies_ok, "{what}: message bodies differ");
        assert_eq!(self.accepted, self.n, "{what}: accepted outcomes");
        assert_eq!(self.other_outcomes, 0, "{what}: other outcomes");
        assert!(self.finished, "{what}: not finished");
        assert_eq!(self.remote_closed, Some(None), "{what}: peer's close");
    }
}

/// Asserts the peer's half from its JSON summary.
fn assert_peer_ok(p: &Json, n: usize, what: &str) {
    let u = |k: &str| p[k].as_u64().unwrap_or(u64::MAX) as usize;
    assert_eq!(p["transport_error"], Json::Null, "{what}: peer: {p}");
    assert_eq!(p["remote_close_error"], Json::Null, "{what}: peer: {p}");
    assert_eq!(
        p["timed_out"],
        Json::Bool(false),
        "{what}: peer timed out: {p}"
    );
    assert_eq!(u("sent"), n, "{what}: peer sent: {p}");
    assert_eq!(u("received"), n, "{what}: peer received: {p}");
    assert_eq!(p["in_order"], Json::Bool(true), "{what}: peer order: {p}");
    assert_eq!(p["bodies_ok"], Json::Bool(true), "{what}: peer bodies: {p}");
    assert_eq!(
        p["outcomes"]["accepted"].as_u64(),
        Some(n as u64),
        "{what}: peer outcomes: {p}"
    );
    assert_eq!(
        p["closed_cleanly"],
        Json::Bool(true),
        "{what}: peer close: {p}"
    );
}

fn anonymous_server() -> SaslMode {
    let users = StaticUsers::new().with_anonymous(true);
    SaslMode::Server(SaslServerConfig::new(&["ANONYMOUS"], Arc::new(users)))
}

fn anonymous_client() -> SaslMode {
    SaslMode::Client(SaslClientConfig {
        allowed_mechs: Some(vec![s("ANONYMOUS")]),
        ..Default::default()
    })
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let a = l.local_addr().unwrap();
    (l, a)
}

/// Runs a proton client (`--connect` to our listener, plus `args`) against our server.
fn serve_proton_client(
    cfg: ConnectionConfig,
    args: &[String],
    ex: &mut Exchange,
) -> (Result<(), String>, Result<Json, String>, Driver) {
    let (l, addr) = listener();
    let mut a = vec![
        s("--connect"),
        format!("127.0.0.1:{}", addr.port()),
        s("--timeout"),
        s(PEER_TIMEOUT),
    ];
    a.extend_from_slice(args);
    let t0 = Instant::now();
    let mut peer = ProtonPeer::spawn(&a);
    // Wait for the client to connect, but not for a peer that has already died.
    let mut stream = None;
    for _ in 0..100 {
        stream = Driver::accept(&l, Duration::from_millis(200)).expect("accept");
        if stream.is_some() || peer.exited() {
            break;
        }
    }
    let Some(stream) = stream else {
        panic!(
            "proton client did not connect: {:?}",
            peer.finish(Duration::from_secs(1))
        );
    };
    let conn = Connection::new(Side::Server, cfg, Instant::now());
    let mut d = Driver::new(stream, conn, LIMIT).expect("socket options");
    let t1 = t0.elapsed();
    let r = d.run(|c, ev| ex.on_event(c, ev));
    let t2 = t0.elapsed();
    let p = peer.finish(Duration::from_secs(20));
    debug(format_args!(
        "accept {t1:?} run {t2:?} peer exit {:?}",
        t0.elapsed()
    ));
    (r, p, d)
}

/// Starts a proton listener (`--listen 0`, plus `args`) and runs our client against it.
fn connect_proton_listener(
    cfg: ConnectionConfig,
    args: &[String],
    ex: &mut Exchange,
) -> (Result<(), String>, Result<Json, String>, Driver) {
    let mut a = vec![s("--listen"), s("0"), s("--timeout"), s(PEER_TIMEOUT)];
    a.extend_from_slice(args);
    let mut peer = ProtonPeer::spawn(&a);
    let port = peer
        .wait_ready(Duration::from_secs(20))
        .expect("proton listener");
    let conn = Connection::new(Side::Client, cfg, Instant::now());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut d = Driver::connect(addr, conn, LIMIT).expect("connect to proton listener");
    ex.start_client(&mut d.conn);
    let r = d.run(|c, ev| ex.on_event(c, ev));
    let p = peer.finish(Duration::from_secs(20));
    (r, p, d)
}

fn debug(a: std::fmt::Arguments<'_>) {
    if std::env::var("INTEROP_DEBUG").as_deref() == Ok("1") {
        eprintln!("{a}");
    }
}

fn frames_summary(d: &Driver) -> String {
    format!(
        "frames out: {} transfer, {} disposition, {} flow; in: {} transfer, {} disposition, {} flow",
        d.tap_out.count(0x14),
        d.tap_out.count(0x15),
        d.tap_out.count(0x13),
        d.tap_in.count(0x14),
        d.tap_in.count(0x15),
        d.tap_in.count(0x13),
    )
}

/// Credit is granted in batches and dispositions are coalesced: far fewer frames than messages.
fn assert_batched(d: &Driver, n: usize, what: &str) {
    let flows = d.tap_out.count(0x13) as usize;
    let dispositions = d.tap_out.count(0x15) as usize;
    assert!(
        flows <= n / 100 + 10,
        "{what}: {flows} flow frames for {n} messages"
    );
    assert!(
        dispositions <= n / 4,
        "{what}: {dispositions} disposition frames for {n} messages (not coalesced)"
    );
}

#[test]
fn proton_client_to_engine_server() {
    let what = "proton-client->engine-server";
    if !require_proton(what) {
        return;
    }
    let t0 = Instant::now();
    let mut cfg = ConnectionConfig::new("engine-server");
    cfg.sasl = anonymous_server();
    let mut ex = Exchange::new(N, 0, false);
    let (r, p, d) = serve_proton_client(cfg, &[s("--count"), N.to_string()], &mut ex);
    let p = p.unwrap_or_else(|e| panic!("{what}: peer: {e}"));
    r.unwrap_or_else(|e| panic!("{what}: driver: {e}; {ex:?}; peer {p}"));
    ex.assert_ok(what);
    assert_peer_ok(&p, N, what);
    assert_eq!(
        ex.authenticated,
        Some((Some(s("ANONYMOUS")), Some(s("anonymous"))))
    );
    assert_batched(&d, N, what);
    println!(
        "interop {what} {}/{} received, {}/{} accepted ok in {:.2}s ({})",
        ex.received,
        N,
        ex.accepted,
        N,
        t0.elapsed().as_secs_f64(),
        frames_summary(&d)
    );
}

#[test]
fn engine_client_to_proton_listener() {
    let what = "engine-client->proton-listener";
    if !require_proton(what) {
        return;
    }
    let t0 = Instant::now();
    let mut cfg = ConnectionConfig::new("engine-client");
    cfg.sasl = anonymous_client();
    let mut ex = Exchange::new(N, 0, true);
    let (r, p, d) = connect_proton_listener(cfg, &[s("--count"), N.to_string()], &mut ex);
    let p = p.unwrap_or_else(|e| panic!("{what}: peer: {e}"));
    r.unwrap_or_else(|e| panic!("{what}: driver: {e}; {ex:?}; peer {p}"));
    ex.assert_ok(what);
    assert_peer_ok(&p, N, what);
    assert_eq!(
        ex.authenticated.as_ref().map(|a| a.0.clone()),
        Some(Some(s("ANONYMOUS")))
    );
    assert_batched(&d, N, what);
    println!(
        "interop {what} {}/{} received, {}/{} accepted ok in {:.2}s ({})",
        ex.received,
        N,
        ex.accepted,
        N,
        t0.elapsed().as_secs_f64(),
        frames_summary(&d)
    );
}

fn plain_server() -> SaslMode {
    let users = StaticUsers::new()
        .with_user("alice", "secret", b"interop-salt", 4096)
        .with_anonymous(true);
    SaslMode::Server(SaslServerConfig::new(
        &["PLAIN", "ANONYMOUS"],
        Arc::new(users),
    ))
}

#[test]
fn sasl_proton_client_to_engine_server() {
    let what = "sasl proton-client->engine-server";
    if !require_proton(what) {
        return;
    }
    let n = 10;
    // PLAIN with the right password (proton needs allow_insecure_mechs for PLAIN on plaintext;
    // the peer always sets it).
    for (mechs, user, pass) in [
        ("PLAIN", Some("alice"), Some("secret")),
        ("ANONYMOUS", None, None),
    ] {
        let t0 = Instant::now();
        let mut cfg = ConnectionConfig::new("engine-server");
        cfg.sasl = plain_server();
        let mut ex = Exchange::new(n, 0, false);
        let mut args = vec![s("--count"), n.to_string(), s("--mechs"), s(mechs)];
        if let (Some(u), Some(p)) = (user, pass) {
            args.extend([s("--user"), s(u), s("--password"), s(p)]);
        }
        let (r, p, _d) = serve_proton_client(cfg, &args, &mut ex);
        let p = p.unwrap_or_else(|e| panic!("{what} {mechs}: peer: {e}"));
        r.unwrap_or_else(|e| panic!("{what} {mechs}: driver: {e}; {ex:?}; peer {p}"));
        ex.assert_ok(what);
        assert_peer_ok(&p, n, what);
        let identity = user.map_or("anonymous", |u| u);
        assert_eq!(
            ex.authenticated,
            Some((Some(s(mechs)), Some(s(identity)))),
            "{what} {mechs}"
        );
        assert_eq!(p["sasl_mech"], Json::String(s(mechs)), "{what}: {p}");
        assert_eq!(p["sasl_outcome"], Json::from(0), "{what}: {p}");
        println!(
            "interop {what} {mechs} as {identity:?}: {n}/{n} each way ok in {:.2}s",
            t0.elapsed().as_secs_f64()
        );
    }

    // PLAIN with a wrong password: proton reports an authentication failure; so do we.
    let t0 = Instant::now();
    let mut cfg = ConnectionConfig::new("engine-server");
    cfg.sasl = plain_server();
    let mut ex = Exchange::new(n, 0, false);
    let args = [
        s("--count"),
        n.to_string(),
        s("--mechs"),
        s("PLAIN"),
        s("--user"),
        s("alice"),
        s("--password"),
        s("wrong"),
    ];
    let (r, p, _d) = serve_proton_client(cfg, &args, &mut ex);
    let p = p.unwrap_or_else(|e| panic!("{what} bad password: peer: {e}"));
    r.unwrap_or_else(|e| panic!("{what} bad password: driver: {e}"));
    assert_eq!(ex.authenticated, None);
    assert_eq!(ex.received, 0);
    assert!(
        ex.errors.iter().any(|e| e.is_auth_failure()),
        "{what}: engine errors {:?}",
        ex.errors
    );
    assert_eq!(p["opened"], Json::Bool(false), "{what}: {p}");
    assert_eq!(
        p["sasl_outcome"],
        Json::from(1),
        "{what}: sasl-outcome auth: {p}"
    );
    assert_eq!(
        p["transport_error"]["condition"],
        Json::String(s("amqp:unauthorized-access")),
        "{what}: {p}"
    );
    println!(
        "interop {what} PLAIN wrong password: refused ok (proton: {}) in {:.2}s",
        p["transport_error"]["description"],
        t0.elapsed().as_secs_f64()
    );

    // A proton client without SASL: refused unless the server allows skipping SASL.
    for allow_skip in [false, true] {
        let t0 = Instant::now();
        let mut cfg = ConnectionConfig::new("engine-server");
        let users = StaticUsers::new().with_anonymous(true);
        let mut sc = SaslServerConfig::new(&["ANONYMOUS"], Arc::new(users));
        sc.allow_skip_sasl = allow_skip;
        cfg.sasl = SaslMode::Server(sc);
        let mut ex = Exchange::new(n, 0, false);
        let args = [s("--count"), n.to_string(), s("--no-sasl")];
        let (r, p, _d) = serve_proton_client(cfg, &args, &mut ex);
        let p = p.unwrap_or_else(|e| panic!("{what} no SASL: peer: {e}"));
        r.unwrap_or_else(|e| panic!("{what} no SASL: driver: {e}"));
        if allow_skip {
            ex.assert_ok(what);
            assert_peer_ok(&p, n, what);
        } else {
            assert_eq!(p["opened"], Json::Bool(false), "{what}: {p}");
            assert!(!ex.errors.is_empty());
            assert_ne!(p["transport_error"], Json::Null, "{what}: {p}");
        }
        println!(
            "interop {what} no-SASL client, allow_skip_sasl={allow_skip}: {} ok in {:.2}s",
            if allow_skip { "served" } else { "refused" },
            t0.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn sasl_engine_client_to_proton_listener() {
    let what = "sasl engine-client->proton-listener";
    if !require_proton(what) {
        return;
    }
    let n = 10;
    // ANONYMOUS: the only mechanism the pip build's built-in (non-Cyrus) SASL server offers.
    let t0 = Instant::now();
    let mut cfg = ConnectionConfig::new("engine-client");
    cfg.sasl = SaslMode::Client(SaslClientConfig::default());
    let mut ex = Exchange::new(n, 0, true);
    let (r, p, _d) = connect_proton_listener(cfg, &[s("--count"), n.to_string()], &mut ex);
    let p = p.unwrap_or_else(|e| panic!("{what}: peer: {e}"));
    r.unwrap_or_else(|e| panic!("{what}: driver: {e}; {ex:?}; peer {p}"));
    ex.assert_ok(what);
    assert_peer_ok(&p, n, what);
    assert_eq!(p["sasl_mech"], Json::String(s("ANONYMOUS")), "{p}");
    assert_eq!(p["sasl_user"], Json::String(s("anonymous")), "{p}");
    println!(
        "interop {what} ANONYMOUS: {n}/{n} each way ok in {:.2}s",
        t0.elapsed().as_secs_f64()
    );

    // PLAIN only: proton's built-in server cannot do PLAIN (it offers only ANONYMOUS, even
    // when allowed_mechs lists PLAIN), so our client must refuse rather than downgrade.
    let t0 = Instant::now();
    let mut cfg = ConnectionConfig::new("engine-client");
    cfg.sasl = SaslMode::Client(SaslClientConfig {
        user: Some(s("alice")),
        password: Some(s("secret")),
        allowed_mechs: Some(vec![s("PLAIN")]),
        allow_insecure_mechs: true,
        ..Default::default()
    });
    let mut ex = Exchange::new(n, 0, true);
    let (r, p, _d) = connect_proton_listener(
        cfg,
        &[
            s("--count"),
            n.to_string(),
            s("--mechs"),
            s("PLAIN ANONYMOUS"),
        ],
        &mut ex,
    );
    let p = p.unwrap_or_else(|e| panic!("{what} PLAIN: peer: {e}"));
    r.unwrap_or_else(|e| panic!("{what} PLAIN: driver: {e}"));
    assert!(
        ex.errors
            .iter()
            .any(|e| matches!(&e.kind, ErrorKind::Sasl(SaslError::NoMechanism(_)))),
        "{what}: {:?}",
        ex.errors
    );
    assert_eq!(p["opened"], Json::Bool(false), "{p}");
    println!(
        "interop {what} PLAIN-only vs proton's ANONYMOUS-only server: refused ok ({}) in {:.2}s",
        ex.errors[0].error.description.as_deref().unwrap_or(""),
        t0.elapsed().as_secs_f64()
    );

    // No SASL layer at all: proton's listener detects the plain AMQP header.
    let t0 = Instant::now();
    let cfg = ConnectionConfig::new("engine-client");
    let mut ex = Exchange::new(n, 0, true);
    let (r, p, _d) = connect_proton_listener(cfg, &[s("--count"), n.to_string()], &mut ex);
    let p = p.unwrap_or_else(|e| panic!("{what} no SASL: peer: {e}"));
    r.unwrap_or_else(|e| panic!("{what} no SASL: driver: {e}; {ex:?}; peer {p}"));
    ex.assert_ok(what);
    assert_peer_ok(&p, n, what);
    println!(
        "interop {what} no SASL layer: {n}/{n} each way ok in {:.2}s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn multi_frame_1mib_each_way() {
    let what = "multi-frame 1MiB";
    if !require_proton(what) {
        return;
    }
    const SIZE: usize = 1 << 20;
    let n = 2;
    // Our max-frame-size 4096; proton's 8192, so each side splits at the other's limit.
    let mut cfg = ConnectionConfig::new("engine-server");
    cfg.max_frame_size = 4096;
    cfg.sasl = anonymous_server();
    let t0 = Instant::now();
    let mut ex = Exchange::new(n, SIZE, false);
    let args = [
        s("--count"),
        n.to_string(),
        s("--size"),
        SIZE.to_string(),
        s("--max-frame"),
        s("8192"),
    ];
    let (r, p, d) = serve_proton_client(cfg, &args, &mut ex);
    let p = p.unwrap_or_else(|e| panic!("{what}: peer: {e}"));
    r.unwrap_or_else(|e| panic!("{what}: driver: {e}; {ex:?}; peer {p}"));
    ex.assert_ok(what);
    assert_peer_ok(&p, n, what);
    assert_eq!(p["remote_max_frame"], Json::from(4096), "{p}");
    assert_eq!(d.conn.max_frame_size_out(), 8192);
    let (tin, tout) = (d.tap_in.count(0x14), d.tap_out.count(0x14));
    assert!(tin as usize >= n * SIZE / 4096, "{tin} transfer frames in");
    assert!(
        tout as usize >= n * SIZE / 8192,
        "{tout} transfer frames out"
    );
    assert!(
        d.tap_in.max_frame <= 4096,
        "proton sent a {}-byte frame",
        d.tap_in.max_frame
    );
    assert!(
        d.tap_out.max_frame <= 8192,
        "we sent a {}-byte frame",
        d.tap_out.max_frame
    );
    println!(
        "interop {what} proton-client->engine-server (max-frame ours 4096, theirs 8192): \
         {n}x1MiB each way ok in {:.2}s ({tin} transfer frames in, {tout} out)",
        t0.elapsed().as_secs_f64()
    );

    // The other way round: our client, proton listener.
    let mut cfg = ConnectionConfig::new("engine-client");
    cfg.max_frame_size = 4096;
    cfg.sasl = anonymous_client();
    let t0 = Instant::now();
    let mut ex = Exchange::new(n, SIZE, true);
    let (r, p, d) = connect_proton_listener(cfg, &args, &mut ex);
    let p = p.unwrap_or_else(|e| panic!("{what}: peer: {e}"));
    r.unwrap_or_else(|e| panic!("{what}: driver: {e}; {ex:?}; peer {p}"));
    ex.assert_ok(what);
    assert_peer_ok(&p, n, what);
    let (tin, tout) = (d.tap_in.count(0x14), d.tap_out.count(0x14));
    assert!(tin as usize >= n * SIZE / 4096, "{tin} transfer frames in");
    assert!(d.tap_in.max_frame <= 4096 && d.tap_out.max_frame <= 8192);
    println!(
        "interop {what} engine-client->proton-listener: {n}x1MiB each way ok in {:.2}s \
         ({tin} transfer frames in, {tout} out)",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn heartbeats_keep_idle_connection_alive() {
    let what = "heartbeats";
    if !require_proton(what) {
        return;
    }
    // Our threshold is 2000 ms, so we advertise idle-time-out 1000 ms (half, like Proton);
    // proton's heartbeat option of 2 s advertises 1000 ms too. Both sides must send empty
    // frames while the proton client stays idle for 3 s.
    let mut cfg = ConnectionConfig::new("engine-server");
    cfg.idle_timeout = Some(Duration::from_millis(2000));
    cfg.sasl = anonymous_server();
    let t0 = Instant::now();
    let mut ex = Exchange::new(0, 0, false);
    let args = [
        s("--count"),
        s("0"),
        s("--idle"),
        s("3"),
        s("--heartbeat"),
        s("2"),
    ];
    let (r, p, d) = serve_proton_client(cfg, &args, &mut ex);
    let p = p.unwrap_or_else(|e| panic!("{what}: peer: {e}"));
    r.unwrap_or_else(|e| panic!("{what}: driver: {e}; {ex:?}; peer {p}"));
    let secs = t0.elapsed().as_secs_f64();
    ex.assert_ok(what);
    assert_peer_ok(&p, 0, what);
    assert_eq!(p["remote_idle_timeout_ms"], Json::from(1000), "{p}");
    assert_eq!(
        d.conn.remote_open().and_then(|o| o.idle_time_out),
        Some(1000)
    );
    let peer_idle = d.conn.remote_open().and_then(|o| o.idle_time_out);
    assert!(secs >= 3.0, "connection ended after {secs:.2}s");
    let (hb_in, hb_out) = (d.tap_in.empty_frames, d.tap_out.empty_frames);
    assert!(hb_in >= 3, "{hb_in} heartbeats from proton in {secs:.2}s");
    assert!(hb_out >= 1, "{hb_out} heartbeats from us in {secs:.2}s");
    let gap = d.max_read_gap.as_millis();
    // Proton re-arms its keepalive from the tick that notices output, not from the write, so
    // its heartbeats may come nearly a full advertised idle-time-out apart (~1000 ms here).
    assert!(gap < 2000, "proton was silent for {gap} ms");
    println!(
        "interop {what}: idle 3s, we advertised 1000 ms (threshold 2000), proton {:?} ms: \
         survived, closed cleanly ok ({hb_in} heartbeats in, {hb_out} out, longest silence \
         from proton {gap} ms; run {secs:.2}s, peer {}s)",
        peer_idle, p["secs"]
    );
}
