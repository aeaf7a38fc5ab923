//! Every protocol error is answered on the right endpoint (close, end or detach) with the right
//! condition. Hostile frames are crafted with the codec and injected into one engine; the
//! frames it sends back are decoded and checked.
mod util;

use std::time::Duration;

use amqp_engine::sasl::{SaslClientConfig, SaslServerConfig, StaticUsers};
use amqp_engine::*;
use amqp_proto::definitions::{condition, Error, Role};
use amqp_proto::frame::{ProtocolHeader, ProtocolId};
use amqp_proto::performatives::*;
use amqp_proto::sasl::{SaslFrame, SaslMechanisms};
use amqp_proto::Symbol;
use bytes::Bytes;
use util::*;

/// A pair with an open connection, a session and a client sender whose server receiver granted
/// `credit`. Nothing is left in flight.
fn ready(
    client: ConnectionConfig,
    server: ConnectionConfig,
    credit: u32,
) -> (Pair, LinkId, LinkId) {
    let mut p = Pair::new(client, server);
    let (_s, sender, rl) = p.open_sender(credit);
    assert!(!p.client.has_transmit() && !p.server.has_transmit());
    p.drain();
    (p, sender, rl)
}

fn ready_default(credit: u32) -> (Pair, LinkId, LinkId) {
    ready(cfg("client"), cfg("server"), credit)
}

/// Injects bytes into the server; returns what it wrote back (decoded) and its new events.
fn to_server(
    p: &mut Pair,
    bytes: &[u8],
) -> (Result<(), ConnectionError>, Vec<WireItem>, Vec<Event>) {
    let r = p.inject_server(bytes);
    let out = p.server_output();
    let (_, sev) = p.drain();
    (r, decode_wire(&out), sev)
}

/// Injects bytes into the client; returns what it wrote back (decoded) and its new events.
fn to_client(
    p: &mut Pair,
    bytes: &[u8],
) -> (Result<(), ConnectionError>, Vec<WireItem>, Vec<Event>) {
    let r = p.inject_client(bytes);
    let out = p.client_output();
    let (cev, _) = p.drain();
    (r, decode_wire(&out), cev)
}

fn transfer(handle: u32, id: Option<u32>, more: bool) -> Transfer {
    Transfer {
        handle,
        delivery_id: id,
        delivery_tag: id.map(|i| Bytes::from(i.to_be_bytes().to_vec())),
        message_format: id.map(|_| 0),
        settled: Some(false),
        more: Some(more),
        ..Transfer::default()
    }
}

/// Asserts the engine failed with `kind`/`cond`, reported it once, finished, and sent exactly
/// one `close` carrying `cond` as the last frame.
fn assert_connection_error(
    r: Result<(), ConnectionError>,
    out: &[WireItem],
    events: &[Event],
    kind: ErrorKind,
    cond: &Symbol,
) {
    let e = r.expect_err("handle_input reports the fatal error");
    assert_eq!(e.kind, kind, "{e}");
    assert_eq!(e.condition(), cond, "{e}");
    assert_eq!(e.origin, Origin::Local);
    assert_eq!(
        close_conditions(out),
        vec![Some(cond.as_str().to_owned())],
        "one close with {cond}: {out:?}"
    );
    assert!(
        matches!(
            performatives(out).last(),
            Some((0, Performative::Close(_), _))
        ),
        "close is the last frame"
    );
    let errs: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::Error(_)))
        .collect();
    assert_eq!(errs.len(), 1, "{events:?}");
    assert!(matches!(events.last(), Some(Event::Finished)), "{events:?}");
}

// ---------------------------------------------------------------------------------------------
// Protocol headers
// ---------------------------------------------------------------------------------------------

fn bad_header_to_server(server: ConnectionConfig, bytes: &[u8], answer: ProtocolHeader) {
    let mut p = Pair::new(cfg("client"), server);
    let (r, out, sev) = to_server(&mut p, bytes);
    let e = r.expect_err("bad header is fatal");
    assert_eq!(e.kind, ErrorKind::ProtocolHeader);
    assert_eq!(
        out,
        vec![WireItem::Header(answer)],
        "only our header, no frames"
    );
    assert!(
        matches!(&sev[..], [Event::Error(er), Event::Finished] if er.kind == ErrorKind::ProtocolHeader)
    );
    assert!(p.server.is_finished());
    assert_eq!(p.server.poll_timeout(), None);
    // Later input is refused with the same error.
    assert_eq!(p.inject_server(b"AMQP\x00\x01\x00\x00"), Err(e));
    assert!(p.server_output().is_empty());
}

#[test]
fn http_request_gets_our_header_and_a_finish() {
    bad_header_to_server(
        cfg("server"),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ProtocolHeader::AMQP,
    );
    let mut s = cfg("server");
    s.sasl = SaslMode::Server(SaslServerConfig::anonymous());
    bad_header_to_server(s, b"GET / HTTP/1.1\r\n\r\n", ProtocolHeader::SASL);
}

#[test]
fn amqp_0_9_1_and_other_versions_get_our_header() {
    bad_header_to_server(cfg("server"), b"AMQP\x00\x00\x09\x01", ProtocolHeader::AMQP);
    bad_header_to_server(cfg("server"), b"AMQP\x01\x01\x00\x0a", ProtocolHeader::AMQP);
    bad_header_to_server(cfg("server"), b"AMQP\x00\x01\x00\x01", ProtocolHeader::AMQP);
    // TLS requested from a server that does not do TLS in the engine.
    bad_header_to_server(cfg("server"), b"AMQP\x02\x01\x00\x00", ProtocolHeader::AMQP);
    // SASL requested from a server without SASL.
    bad_header_to_server(cfg("server"), b"AMQP\x03\x01\x00\x00", ProtocolHeader::AMQP);
    // A bad header detected from its first bytes, before 8 have arrived.
    bad_header_to_server(cfg("server"), b"AMQX", ProtocolHeader::AMQP);
}

#[test]
fn sasl_server_refuses_plain_amqp_header_without_skip() {
    let mut s = cfg("server");
    let mut sc = SaslServerConfig::new(&["PLAIN"], std::sync::Arc::new(StaticUsers::new()));
    sc.allow_skip_sasl = false;
    s.sasl = SaslMode::Server(sc);
    bad_header_to_server(s, &ProtocolHeader::AMQP.to_bytes(), ProtocolHeader::SASL);
}

#[test]
fn client_receiving_the_wrong_header_fails_without_frames() {
    // Plain client, SASL answer.
    let mut p = Pair::default_pair();
    p.client.open().unwrap();
    let first = decode_wire(&p.client_output());
    assert_eq!(headers(&first), vec![ProtocolHeader::AMQP]);
    let (r, out, cev) = to_client(&mut p, &ProtocolHeader::SASL.to_bytes());
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ProtocolHeader);
    assert!(
        out.is_empty(),
        "nothing more after a header mismatch: {out:?}"
    );
    assert!(matches!(cev.last(), Some(Event::Finished)));

    // SASL client, plain AMQP answer.
    let mut c = cfg("client");
    c.sasl = SaslMode::Client(SaslClientConfig::default());
    let mut p = Pair::new(c, cfg("server"));
    p.client.open().unwrap();
    assert_eq!(
        headers(&decode_wire(&p.client_output())),
        vec![ProtocolHeader::SASL]
    );
    let (r, out, _) = to_client(&mut p, &ProtocolHeader::AMQP.to_bytes());
    assert_eq!(r.unwrap_err().kind, ErrorKind::ProtocolHeader);
    assert!(out.is_empty(), "{out:?}");

    // Garbage answer.
    let mut p = Pair::default_pair();
    let _ = p.client_output();
    let (r, out, _) = to_client(&mut p, b"HTTP/1.1 400 Bad Request\r\n\r\n");
    assert_eq!(r.unwrap_err().kind, ErrorKind::ProtocolHeader);
    assert!(out.is_empty());
    assert!(p.client.is_finished());
}

#[test]
fn client_accepts_split_header() {
    let mut p = Pair::default_pair();
    p.client.open().unwrap();
    let _ = p.client_output();
    for b in ProtocolHeader::AMQP.to_bytes() {
        p.inject_client(&[b]).unwrap();
    }
    assert!(p.client.error().is_none());
}

// ---------------------------------------------------------------------------------------------
// Framing and decoding
// ---------------------------------------------------------------------------------------------

#[test]
fn frame_larger_than_max_frame_size_is_a_framing_error() {
    let mut s = cfg("server");
    s.max_frame_size = 512;
    let (mut p, _, _) = ready(cfg("client"), s, 1);
    // Only the header is needed: the size is refused before the body arrives.
    let hdr = raw_frame(513, 2, 0, 0, &[]);
    let (r, out, sev) = to_server(&mut p, &hdr);
    assert_connection_error(r, &out, &sev, ErrorKind::Framing, &condition::FRAMING_ERROR);
    // The client sees the close with the error.
    p.inject_client(&amqp_frame(
        0,
        Close {
            error: Some(Error::new(condition::FRAMING_ERROR, "x")),
        },
        &[],
    ))
    .unwrap();
    let e = p.client.error().unwrap();
    assert_eq!(e.origin, Origin::Remote);
    assert_eq!(e.kind, ErrorKind::RemoteClose);
}

#[test]
fn a_frame_of_exactly_max_frame_size_is_fine() {
    let mut s = cfg("server");
    s.max_frame_size = 512;
    let (mut p, _, _) = ready(cfg("client"), s, 1);
    let mut f = amqp_frame(0, transfer(0, Some(0), false), &[0u8; 0]);
    let pad = 512 - f.len();
    f = amqp_frame(0, transfer(0, Some(0), false), &vec![7u8; pad]);
    assert_eq!(f.len(), 512);
    let (r, _, sev) = to_server(&mut p, &f);
    r.unwrap();
    assert_eq!(deliveries(&sev).len(), 1);
}

#[test]
fn malformed_frame_headers_are_framing_errors() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("size below 8", raw_frame(4, 2, 0, 0, &[])),
        ("size zero", raw_frame(0, 2, 0, 0, &[])),
        ("doff 0", raw_frame(8, 0, 0, 0, &[])),
        ("doff 1", raw_frame(16, 1, 0, 0, &[0; 8])),
        ("doff beyond frame", raw_frame(12, 4, 0, 0, &[0; 4])),
        ("unknown frame type", raw_frame(8, 2, 7, 0, &[])),
    ];
    for (what, bytes) in cases {
        let (mut p, _, _) = ready_default(1);
        let (r, out, sev) = to_server(&mut p, &bytes);
        let e = r.as_ref().err().cloned();
        assert!(e.is_some(), "{what}");
        assert_connection_error(r, &out, &sev, ErrorKind::Framing, &condition::FRAMING_ERROR);
    }
}

#[test]
fn undecodable_performative_is_a_decode_error() {
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("not a described type", vec![0x40]),
        ("unknown descriptor", vec![0x00, 0x53, 0x99, 0x45]),
        (
            "delivery state instead of a performative",
            vec![0x00, 0x53, 0x24, 0x45],
        ),
        ("truncated list", vec![0x00, 0x53, 0x10, 0xc0, 0x10, 0x05]),
        ("open without container-id", vec![0x00, 0x53, 0x10, 0x45]),
        ("attach with a string handle", {
            let mut v = vec![0x00, 0x53, 0x12, 0xc0, 0x07, 0x03];
            v.extend_from_slice(&[0xa1, 0x01, b'n', 0xa1, 0x00, 0x41]);
            v
        }),
        ("garbage", vec![0xff; 20]),
    ];
    for (what, body) in bodies {
        let (mut p, _, _) = ready_default(1);
        let f = raw_frame(8 + body.len() as u32, 2, 0, 0, &body);
        let (r, out, sev) = to_server(&mut p, &f);
        assert!(r.is_err(), "{what}");
        assert_connection_error(r, &out, &sev, ErrorKind::Decode, &condition::DECODE_ERROR);
    }
}

#[test]
fn undecodable_frame_before_open_sends_open_then_close() {
    let mut p = Pair::default_pair();
    let mut bytes = ProtocolHeader::AMQP.to_bytes().to_vec();
    bytes.extend(raw_frame(10, 2, 0, 0, &[0xff, 0xff]));
    let (r, out, sev) = to_server(&mut p, &bytes);
    assert_connection_error(r, &out, &sev, ErrorKind::Decode, &condition::DECODE_ERROR);
    let ps = performatives(&out);
    assert_eq!(headers(&out), vec![ProtocolHeader::AMQP]);
    assert!(
        matches!(ps[0].1, Performative::Open(_)),
        "open first: {ps:?}"
    );
    assert!(matches!(ps[1].1, Performative::Close(_)));
    assert_eq!(ps.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Connection-level rule violations
// ---------------------------------------------------------------------------------------------

#[test]
fn performative_before_open_is_not_allowed() {
    let mut p = Pair::default_pair();
    let mut bytes = ProtocolHeader::AMQP.to_bytes().to_vec();
    bytes.extend(amqp_frame(
        0,
        Begin {
            next_outgoing_id: 0,
            incoming_window: 10,
            outgoing_window: 10,
            ..Begin::default()
        },
        &[],
    ));
    let (r, out, sev) = to_server(&mut p, &bytes);
    assert_connection_error(r, &out, &sev, ErrorKind::Protocol, &condition::NOT_ALLOWED);
    // We never sent open: it goes first, then the close.
    let ps = performatives(&out);
    assert!(matches!(ps[0], (0, Performative::Open(_), _)));
    assert_eq!(ps.len(), 2);
    // Heartbeats (empty frames) before open are fine.
    let mut p = Pair::default_pair();
    let mut bytes = ProtocolHeader::AMQP.to_bytes().to_vec();
    bytes.extend(raw_frame(8, 2, 0, 0, &[]));
    p.inject_server(&bytes).unwrap();
}

#[test]
fn second_open_is_not_allowed() {
    let (mut p, _, _) = ready_default(1);
    let (r, out, sev) = to_server(
        &mut p,
        &amqp_frame(
            0,
            Open {
                container_id: "again".into(),
                ..Open::default()
            },
            &[],
        ),
    );
    assert_connection_error(r, &out, &sev, ErrorKind::Protocol, &condition::NOT_ALLOWED);
    // Only a close: we had already sent our open.
    assert_eq!(performatives(&out).len(), 1);
}

#[test]
fn frame_on_a_channel_without_session_is_not_allowed() {
    for p_ in [
        Performative::from(Attach {
            name: "x".into(),
            handle: 0,
            role: Role::Sender,
            ..Attach::default()
        }),
        Performative::from(transfer(0, Some(0), false)),
        Performative::from(End { error: None }),
        Performative::from(Flow {
            incoming_window: 5,
            ..Flow::default()
        }),
        Performative::from(Disposition {
            role: Role::Receiver,
            first: 0,
            ..Disposition::default()
        }),
        Performative::from(Detach {
            handle: 0,
            ..Detach::default()
        }),
    ] {
        let (mut p, _, _) = ready_default(1);
        let (r, out, sev) = to_server(&mut p, &amqp_frame(5, p_.clone(), &[]));
        assert_connection_error(r, &out, &sev, ErrorKind::Protocol, &condition::NOT_ALLOWED);
    }
}

#[test]
fn begin_beyond_channel_max_is_not_allowed() {
    let mut s = cfg("server");
    s.channel_max = 3;
    let (mut p, _, _) = ready(cfg("client"), s, 1);
    let begin = Begin {
        next_outgoing_id: 0,
        incoming_window: 10,
        outgoing_window: 10,
        ..Begin::default()
    };
    // Channel 3 is fine.
    let (r, out, _) = to_server(&mut p, &amqp_frame(3, begin.clone(), &[]));
    r.unwrap();
    assert!(out.is_empty());
    let (r, out, sev) = to_server(&mut p, &amqp_frame(4, begin.clone(), &[]));
    assert_connection_error(r, &out, &sev, ErrorKind::Protocol, &condition::NOT_ALLOWED);
    // And a begin on a channel already in use.
    let (mut p, _, _) = ready_default(1);
    let (r, out, sev) = to_server(&mut p, &amqp_frame(0, begin, &[]));
    assert_connection_error(r, &out, &sev, ErrorKind::Protocol, &condition::NOT_ALLOWED);
}

#[test]
fn begin_answering_an_unknown_channel_is_not_allowed() {
    let (mut p, _, _) = ready_default(1);
    let begin = Begin {
        remote_channel: Some(9),
        next_outgoing_id: 0,
        incoming_window: 10,
        outgoing_window: 10,
        ..Begin::default()
    };
    let (r, out, sev) = to_server(&mut p, &amqp_frame(1, begin, &[]));
    assert_connection_error(r, &out, &sev, ErrorKind::Protocol, &condition::NOT_ALLOWED);
}

#[test]
fn open_with_tiny_max_frame_size_is_invalid_field() {
    let mut p = Pair::default_pair();
    let mut bytes = ProtocolHeader::AMQP.to_bytes().to_vec();
    bytes.extend(amqp_frame(
        0,
        Open {
            container_id: "c".into(),
            max_frame_size: Some(100),
            ..Open::default()
        },
        &[],
    ));
    let (r, out, sev) = to_server(&mut p, &bytes);
    assert_connection_error(
        r,
        &out,
        &sev,
        ErrorKind::Protocol,
        &condition::INVALID_FIELD,
    );
}

#[test]
fn frames_after_close_are_not_processed() {
    let (mut p, _, _) = ready_default(1);
    // The client closes; the server answers and is finished. Anything after is ignored.
    p.client.close(None).unwrap();
    p.settle();
    assert!(p.server.is_finished());
    let r = p.inject_server(&amqp_frame(0, End { error: None }, &[]));
    assert!(r.is_ok());
    assert!(p.server_output().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Session-level rule violations: answered with end, the connection survives
// ---------------------------------------------------------------------------------------------

/// Asserts exactly one `end` carrying `cond` on channel 0, a SessionError event, and a healthy
/// connection. Then lets the client answer and checks both sides forgot the session.
fn assert_session_error(p: &mut Pair, out: &[WireItem], sev: &[Event], cond: &Symbol) {
    assert!(p.server.error().is_none(), "{:?}", p.server.error());
    let ends: Vec<_> = performatives(out)
        .into_iter()
        .filter_map(|(ch, pf, _)| match pf {
            Performative::End(e) => Some((ch, e)),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 1, "{out:?}");
    assert_eq!(ends[0].0, 0);
    assert_eq!(ends[0].1.error.as_ref().map(|e| &e.condition), Some(cond));
    assert!(sev
        .iter()
        .any(|e| matches!(e, Event::SessionError { error, .. } if &error.condition == cond)));
    assert!(close_conditions(out).is_empty());
    // Deliver the end to the client; it answers; both forget the session.
    let bytes: Vec<u8> = out
        .iter()
        .filter_map(|i| match i {
            WireItem::Frame(f) => match &f.body {
                amqp_proto::frame::FrameBody::Amqp {
                    performative,
                    payload,
                } => Some(amqp_frame(f.channel, performative.clone(), payload)),
                _ => None,
            },
            _ => None,
        })
        .flatten()
        .collect();
    p.inject_client(&bytes).unwrap();
    let (cev, _) = p.settle();
    assert!(cev.iter().any(
        |e| matches!(e, Event::SessionEnded { error: Some(er), .. } if &er.condition == cond)
    ));
    assert!(p.client.sessions().is_empty(), "{:?}", p.client.sessions());
    assert!(p.server.sessions().is_empty(), "{:?}", p.server.sessions());
    assert!(p.client.links().is_empty());
    assert!(p.server.links().is_empty());
    assert!(p.client.error().is_none() && p.server.error().is_none());
    // The connection is still usable.
    let s = p.client.begin_session(SessionConfig::default()).unwrap();
    p.client.attach_sender(s, sender_cfg("again")).unwrap();
    p.run_auto(1);
    assert_eq!(p.client.sessions().len(), 1);
    assert_eq!(p.server.sessions().len(), 1);
}

#[test]
fn transfer_beyond_session_incoming_window_is_a_window_violation() {
    let mut s = cfg("server");
    s.incoming_window = 2;
    let (mut p, _, _) = ready(cfg("client"), s, 10);
    let mut bytes = vec![];
    for i in 0..3 {
        bytes.extend(amqp_frame(0, transfer(0, Some(i), false), b"x"));
    }
    let (r, out, sev) = to_server(&mut p, &bytes);
    r.unwrap();
    assert_eq!(
        deliveries(&sev).len(),
        2,
        "the first two are within the window"
    );
    assert_session_error(&mut p, &out, &sev, &condition::WINDOW_VIOLATION);
}

#[test]
fn session_window_is_replenished_between_reads() {
    let mut s = cfg("server");
    s.incoming_window = 2;
    let (mut p, _, _) = ready(cfg("client"), s, 10);
    // Two transfers, then the server writes a flow reopening its window; two more are fine.
    for round in 0..3u32 {
        let mut bytes = vec![];
        for i in 0..2 {
            bytes.extend(amqp_frame(0, transfer(0, Some(round * 2 + i), false), b"x"));
        }
        let (r, out, _) = to_server(&mut p, &bytes);
        r.unwrap();
        let flows: Vec<_> = performatives(&out)
            .into_iter()
            .filter_map(|(_, pf, _)| match pf {
                Performative::Flow(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(flows.len(), 1, "{out:?}");
        assert_eq!(flows[0].incoming_window, 2);
        assert_eq!(flows[0].next_incoming_id, Some((round + 1) * 2));
    }
    assert!(p.server.error().is_none());
}

#[test]
fn attach_with_a_handle_in_use_is_handle_in_use() {
    let (mut p, _, _) = ready_default(1);
    let a = Attach {
        name: "other".into(),
        handle: 0,
        role: Role::Sender,
        initial_delivery_count: Some(0),
        ..Attach::default()
    };
    let (r, out, sev) = to_server(&mut p, &amqp_frame(0, a, &[]));
    r.unwrap();
    assert_session_error(&mut p, &out, &sev, &condition::HANDLE_IN_USE);
}

#[test]
fn attach_beyond_handle_max_is_refused() {
    let mut s = cfg("server");
    s.handle_max = 4;
    let (mut p, _, _) = ready(cfg("client"), s, 1);
    let a = Attach {
        name: "other".into(),
        handle: 5,
        role: Role::Sender,
        initial_delivery_count: Some(0),
        ..Attach::default()
    };
    let (r, out, sev) = to_server(&mut p, &amqp_frame(0, a, &[]));
    r.unwrap();
    assert_session_error(&mut p, &out, &sev, &condition::NOT_ALLOWED);
}

#[test]
fn transfer_flow_detach_on_unattached_handle() {
    let frames: Vec<(&str, Performative)> = vec![
        ("transfer", transfer(7, Some(0), false).into()),
        (
            "flow",
            Flow {
                next_incoming_id: Some(0),
                incoming_window: 10,
                next_outgoing_id: 0,
                outgoing_window: 10,
                handle: Some(7),
                delivery_count: Some(0),
                link_credit: Some(1),
                ..Flow::default()
            }
            .into(),
        ),
        (
            "detach",
            Detach {
                handle: 7,
                closed: Some(true),
                error: None,
            }
            .into(),
        ),
    ];
    for (what, f) in frames {
        let (mut p, _, _) = ready_default(1);
        let (r, out, sev) = to_server(&mut p, &amqp_frame(0, f, b"x"));
        assert!(r.is_ok(), "{what}");
        assert_session_error(&mut p, &out, &sev, &condition::UNATTACHED_HANDLE);
    }
}

#[test]
fn frames_for_an_ended_session_are_ignored_until_the_peer_ends() {
    let mut s = cfg("server");
    s.incoming_window = 1;
    let (mut p, _, _) = ready(cfg("client"), s, 10);
    // Violate the window: the server ends the session. Frames the client sent before it saw
    // the end (more transfers, a flow on an unknown handle) are dropped, not answered.
    let mut bytes = vec![];
    for i in 0..2 {
        bytes.extend(amqp_frame(0, transfer(0, Some(i), false), b"x"));
    }
    let (_, out, sev) = to_server(&mut p, &bytes);
    let non_flow = performatives(&out)
        .into_iter()
        .filter(|(_, pf, _)| !matches!(pf, Performative::Flow(_)))
        .count();
    assert_eq!(non_flow, 1, "only the end: {out:?}");
    let mut late = amqp_frame(0, transfer(0, Some(2), false), b"x");
    late.extend(amqp_frame(
        0,
        Flow {
            incoming_window: 1,
            handle: Some(42),
            ..Flow::default()
        },
        &[],
    ));
    late.extend(amqp_frame(
        0,
        Detach {
            handle: 42,
            closed: Some(true),
            error: None,
        },
        &[],
    ));
    let (r, out2, sev2) = to_server(&mut p, &late);
    r.unwrap();
    assert!(
        out2.is_empty(),
        "nothing answers frames of an ended session: {out2:?}"
    );
    assert!(
        sev2.is_empty(),
        "no events for frames of an ended session: {sev2:?}"
    );
    assert_session_error(&mut p, &out, &sev, &condition::WINDOW_VIOLATION);
}

// ---------------------------------------------------------------------------------------------
// Link-level rule violations: answered with detach (closed), the session survives
// ---------------------------------------------------------------------------------------------

fn assert_link_error(p: &mut Pair, out: &[WireItem], sev: &[Event], cond: &Symbol) {
    assert!(p.server.error().is_none());
    let ps = performatives(out);
    let detaches: Vec<_> = ps
        .iter()
        .filter_map(|(_, pf, _)| match pf {
            Performative::Detach(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(detaches.len(), 1, "{ps:?}");
    assert_eq!(detaches[0].closed, Some(true));
    assert_eq!(detaches[0].error.as_ref().map(|e| &e.condition), Some(cond));
    assert!(!ps
        .iter()
        .any(|(_, pf, _)| matches!(pf, Performative::End(_) | Performative::Close(_))));
    assert!(sev
        .iter()
        .any(|e| matches!(e, Event::LinkError { error, .. } if &error.condition == cond)));
}

#[test]
fn transfer_beyond_link_credit_is_transfer_limit_exceeded() {
    let (mut p, sender, _) = ready_default(1);
    p.client
        .send(sender, &msg(0), SendOptions::default())
        .unwrap();
    let legit = p.client_output();
    let mut bytes = legit.to_vec();
    bytes.extend(amqp_frame(0, transfer(0, Some(1), false), b"x"));
    let (r, out, sev) = to_server(&mut p, &bytes);
    r.unwrap();
    assert_eq!(deliveries(&sev).len(), 1, "the first one had credit");
    assert_link_error(&mut p, &out, &sev, &condition::TRANSFER_LIMIT_EXCEEDED);
    // The client gets the detach, answers it, and both forget the link.
    let out_bytes = reencode(&out);
    p.inject_client(&out_bytes).unwrap();
    let (cev, _) = p.settle();
    assert!(cev.iter().any(
        |e| matches!(e, Event::LinkClosed { closed: true, error: Some(er), .. }
        if er.condition == condition::TRANSFER_LIMIT_EXCEEDED)
    ));
    assert!(p.client.links().is_empty());
    assert!(p.server.links().is_empty());
    assert_eq!(p.client.sessions().len(), 1);
    assert!(p.client.error().is_none() && p.server.error().is_none());
}

fn reencode(items: &[WireItem]) -> Vec<u8> {
    let mut v = vec![];
    for i in items {
        match i {
            WireItem::Header(h) => v.extend_from_slice(&h.to_bytes()),
            WireItem::Frame(f) => match &f.body {
                amqp_proto::frame::FrameBody::Amqp {
                    performative,
                    payload,
                } => v.extend(amqp_frame(f.channel, performative.clone(), payload)),
                amqp_proto::frame::FrameBody::Sasl(s) => v.extend(sasl_frame(s.clone())),
                amqp_proto::frame::FrameBody::Empty => v.extend(raw_frame(8, 2, 0, f.channel, &[])),
            },
        }
    }
    v
}

#[test]
fn multi_frame_message_beyond_max_message_size_is_detached_at_the_crossing_frame() {
    let mut s = cfg("server");
    s.max_message_size = 1000;
    let (mut p, _, _) = ready(cfg("client"), s, 5);
    // 300-byte frames: 300, 600, 900 are fine; the fourth crosses 1000.
    for i in 0..4u32 {
        let t = if i == 0 {
            transfer(0, Some(0), true)
        } else {
            transfer(0, None, true)
        };
        let (r, out, sev) = to_server(&mut p, &amqp_frame(0, t, &[i as u8; 300]));
        r.unwrap();
        if i < 3 {
            assert!(out.is_empty() || close_conditions(&out).is_empty());
            assert!(
                !sev.iter().any(|e| matches!(e, Event::LinkError { .. })),
                "frame {i}"
            );
        } else {
            assert_link_error(&mut p, &out, &sev, &condition::MESSAGE_SIZE_EXCEEDED);
        }
    }
    // A flood of further frames of the same delivery is dropped without events or replies.
    for _ in 0..1000 {
        let (r, out, sev) = to_server(&mut p, &amqp_frame(0, transfer(0, None, true), &[9u8; 300]));
        r.unwrap();
        assert!(performatives(&out)
            .iter()
            .all(|(_, pf, _)| matches!(pf, Performative::Flow(_))));
        assert!(sev.is_empty(), "{sev:?}");
    }
    let (r, _, sev) = to_server(&mut p, &amqp_frame(0, transfer(0, None, false), &[1]));
    r.unwrap();
    assert!(deliveries(&sev).is_empty());
    assert!(p.server.error().is_none());
}

#[test]
fn first_frame_beyond_max_message_size_is_detached() {
    let mut s = cfg("server");
    s.max_message_size = 100;
    let (mut p, _, _) = ready(cfg("client"), s, 5);
    let (r, out, sev) = to_server(
        &mut p,
        &amqp_frame(0, transfer(0, Some(0), true), &[0u8; 101]),
    );
    r.unwrap();
    assert_link_error(&mut p, &out, &sev, &condition::MESSAGE_SIZE_EXCEEDED);
    // Single-frame too.
    let mut s = cfg("server");
    s.max_message_size = 100;
    let (mut p, _, _) = ready(cfg("client"), s, 5);
    let (r, out, sev) = to_server(
        &mut p,
        &amqp_frame(0, transfer(0, Some(0), false), &[0u8; 101]),
    );
    r.unwrap();
    assert!(deliveries(&sev).is_empty());
    assert_link_error(&mut p, &out, &sev, &condition::MESSAGE_SIZE_EXCEEDED);
}

#[test]
fn link_max_message_size_is_enforced_both_ways() {
    // The receiver advertises 200 bytes: our sender refuses larger messages itself.
    let mut p = Pair::default_pair();
    p.client.open().unwrap();
    let s = p.client.begin_session(SessionConfig::default()).unwrap();
    let l = p.client.attach_sender(s, sender_cfg("q")).unwrap();
    p.step();
    let (_, sev) = p.drain();
    for e in &sev {
        match e {
            Event::ConnectionOpened => p.server.open().unwrap(),
            Event::SessionOpened { session, .. } => p.server.accept_session(*session).unwrap(),
            Event::LinkOpened { link, .. } => {
                p.server
                    .accept_link(
                        *link,
                        LinkConfig {
                            max_message_size: Some(200),
                            ..LinkConfig::default()
                        },
                    )
                    .unwrap();
                p.server.flow(*link, 5, false).unwrap();
            }
            _ => {}
        }
    }
    p.settle();
    let big = Bytes::from(vec![0u8; 201]);
    assert!(matches!(
        p.client.send_bytes(l, big, SendOptions::default()),
        Err(OpError::MessageTooLarge {
            size: 201,
            max: 200
        })
    ));
    p.client
        .send_bytes(l, Bytes::from(vec![0u8; 200]), SendOptions::default())
        .unwrap();
    let (_, sev) = p.settle();
    assert_eq!(deliveries(&sev).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Idle timeout
// ---------------------------------------------------------------------------------------------

#[test]
fn idle_timeout_closes_with_resource_limit_exceeded() {
    let mut s = cfg("server");
    s.idle_timeout = Some(Duration::from_secs(1));
    let (mut p, _, _) = ready(cfg("client"), s, 1);
    let deadline = p.server.poll_timeout().expect("idle deadline");
    assert_eq!(deadline, p.now + Duration::from_secs(1));
    // Just before: nothing.
    p.now += Duration::from_millis(999);
    p.server.handle_timeout(p.now);
    assert!(p.server.error().is_none());
    p.now += Duration::from_millis(1);
    p.server.handle_timeout(p.now);
    let out = decode_wire(&p.server_output());
    assert_eq!(
        close_conditions(&out),
        vec![Some(condition::RESOURCE_LIMIT_EXCEEDED.as_str().to_owned())]
    );
    let (_, sev) = p.drain();
    assert!(
        matches!(&sev[..], [Event::Error(e), Event::Finished] if e.kind == ErrorKind::IdleTimeout)
    );
    assert_eq!(p.server.poll_timeout(), None);
}

#[test]
fn idle_timeout_before_the_peer_opens_sends_open_then_close() {
    let mut s = cfg("server");
    s.idle_timeout = Some(Duration::from_secs(1));
    let mut p = Pair::new(cfg("client"), s);
    p.inject_server(&ProtocolHeader::AMQP.to_bytes()).unwrap();
    p.advance(Duration::from_secs(2));
    let out = decode_wire(&p.server_output());
    let ps = performatives(&out);
    assert!(matches!(ps[0].1, Performative::Open(_)));
    assert!(matches!(ps[1].1, Performative::Close(_)));
    assert_eq!(p.server.error().unwrap().kind, ErrorKind::IdleTimeout);
}

#[test]
fn idle_timeout_while_waiting_for_the_header() {
    let mut c = cfg("client");
    c.idle_timeout = Some(Duration::from_secs(1));
    let mut p = Pair::new(c, cfg("server"));
    p.faults.cut_s2c = true;
    p.client.open().unwrap();
    p.step();
    p.advance(Duration::from_secs(1));
    let e = p.client.error().expect("client timed out").clone();
    assert_eq!(e.kind, ErrorKind::IdleTimeout);
    assert!(p.client.is_finished());
}

// ---------------------------------------------------------------------------------------------
// Sticky errors
// ---------------------------------------------------------------------------------------------

#[test]
fn after_a_fatal_error_every_operation_reports_it() {
    let (mut p, sender, rl) = ready_default(5);
    let d = p
        .client
        .send(sender, &msg(1), SendOptions::default())
        .unwrap();
    let s = p.client.link_session(sender).unwrap();
    p.step();
    p.drain();
    // The client gets garbage from the server: decode error.
    let (r, _, _) = to_client(&mut p, &raw_frame(10, 2, 0, 0, &[0xff, 0xff]));
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Decode);
    let closed = Err(OpError::Closed(Some(e.clone())));
    let c = &mut p.client;
    assert_eq!(c.open(), closed);
    assert_eq!(c.close(None), closed);
    assert_eq!(
        c.begin_session(SessionConfig::default()).map(|_| ()),
        closed
    );
    assert_eq!(c.accept_session(s), closed);
    assert_eq!(c.end_session(s, None), closed);
    assert_eq!(c.attach_sender(s, sender_cfg("x")).map(|_| ()), closed);
    assert_eq!(c.attach_receiver(s, receiver_cfg("x")).map(|_| ()), closed);
    assert_eq!(c.accept_link(sender, LinkConfig::default()), closed);
    assert_eq!(
        c.refuse_link(sender, Error::new(condition::NOT_FOUND, "x")),
        closed
    );
    assert_eq!(c.detach(sender, true, None), closed);
    assert_eq!(c.flow(sender, 1, false), closed);
    assert_eq!(c.drained(sender), closed);
    assert_eq!(c.set_available(sender, 3), closed);
    assert_eq!(
        c.send(sender, &msg(2), SendOptions::default()).map(|_| ()),
        closed
    );
    assert_eq!(
        c.send_bytes(sender, Bytes::from_static(b"x"), SendOptions::default())
            .map(|_| ()),
        closed
    );
    assert_eq!(c.abort(d).map(|_| ()), closed);
    assert_eq!(c.disposition(d, accepted(), true), closed);
    assert_eq!(c.settle(d), closed);
    assert_eq!(c.handle_input(b"anything", p.now), Err(e.clone()));
    assert_eq!(c.error(), Some(&e));
    assert!(c.is_finished());
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(p.now + Duration::from_secs(1000));
    c.handle_transport_closed(p.now);
    assert_eq!(c.error(), Some(&e), "the first error sticks");
    let _ = rl;
}

#[test]
fn transport_closed_before_close_is_an_error() {
    let (mut p, sender, _) = ready_default(1);
    p.drop_connection();
    let (cev, sev) = p.drain();
    for ev in [&cev, &sev] {
        assert!(
            matches!(&ev[..], [Event::Error(e), Event::Finished] if e.kind == ErrorKind::TransportEnded),
            "{ev:?}"
        );
    }
    assert!(matches!(
        p.client.send(sender, &msg(0), SendOptions::default()),
        Err(OpError::Closed(Some(ConnectionError {
            kind: ErrorKind::TransportEnded,
            ..
        })))
    ));
    // After a clean close, the transport ending is not an error.
    let (mut p, _, _) = ready_default(1);
    p.client.close(None).unwrap();
    p.settle();
    p.drop_connection();
    assert!(p.client.error().is_none() && p.server.error().is_none());
}

// ---------------------------------------------------------------------------------------------
// SASL framing
// ---------------------------------------------------------------------------------------------

#[test]
fn sasl_frame_after_sasl_is_a_framing_error() {
    // No SASL at all.
    let (mut p, _, _) = ready_default(1);
    let f = sasl_frame(SaslFrame::SaslMechanisms(SaslMechanisms {
        sasl_server_mechanisms: vec!["PLAIN".into()],
    }));
    let (r, out, sev) = to_server(&mut p, &f);
    assert_connection_error(r, &out, &sev, ErrorKind::Framing, &condition::FRAMING_ERROR);

    // After a completed SASL exchange: the client gets a stray outcome.
    let mut c = cfg("client");
    c.sasl = SaslMode::Client(SaslClientConfig::default());
    let mut s = cfg("server");
    s.sasl = SaslMode::Server(SaslServerConfig::anonymous());
    let (mut p, _, _) = ready(c, s, 1);
    assert_eq!(p.server.authenticated_identity(), Some("anonymous"));
    let f = sasl_frame(SaslFrame::SaslOutcome(amqp_proto::sasl::SaslOutcome {
        code: amqp_proto::definitions::SaslCode::Ok,
        additional_data: None,
    }));
    let (r, out, cev) = to_client(&mut p, &f);
    assert_connection_error(r, &out, &cev, ErrorKind::Framing, &condition::FRAMING_ERROR);
}

#[test]
fn amqp_frame_during_sasl_fails_without_amqp_frames() {
    let mut s = cfg("server");
    s.sasl = SaslMode::Server(SaslServerConfig::anonymous());
    let mut p = Pair::new(cfg("client"), s);
    let mut bytes = ProtocolHeader::SASL.to_bytes().to_vec();
    bytes.extend(amqp_frame(
        0,
        Open {
            container_id: "c".into(),
            ..Open::default()
        },
        &[],
    ));
    let (r, out, sev) = to_server(&mut p, &bytes);
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Framing);
    // The SASL header and mechanisms went out; no AMQP frame can follow.
    assert_eq!(headers(&out), vec![ProtocolHeader::SASL]);
    assert_eq!(sasl_frames(&out).len(), 1);
    assert!(performatives(&out).is_empty(), "{out:?}");
    assert!(matches!(sev.last(), Some(Event::Finished)));
    let _ = ProtocolId::Sasl;
}

#[test]
fn close_answered_before_we_opened_sends_open_first() {
    let mut p = Pair::default_pair();
    p.client.close(None).unwrap();
    let out = p.client_output();
    let (r, back, sev) = to_server(&mut p, &out);
    r.unwrap();
    let kinds: Vec<_> = performatives(&back)
        .iter()
        .map(|(_, p, _)| p.name())
        .collect();
    assert_eq!(kinds, vec!["open", "close"]);
    assert!(sev.contains(&Event::ConnectionClosed { error: None }));
    p.inject_client(&reencode(&back)).unwrap();
    assert!(p.client.is_finished() && p.server.is_finished());
    assert!(p.client.error().is_none() && p.server.error().is_none());
}
