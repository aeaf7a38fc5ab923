//! SASL between a client and a server of this crate, in memory: every mechanism, every
//! failure as a typed error, and a clean finish (never a hang).
mod util;

use std::sync::Arc;
use std::time::Duration;

use amqp_engine::sasl::{SaslClientConfig, SaslError, SaslServerConfig, StaticUsers};
use amqp_engine::*;
use amqp_proto::definitions::SaslCode;
use amqp_proto::frame::ProtocolHeader;
use amqp_proto::performatives::Performative;
use amqp_proto::sasl::{SaslFrame, SaslInit, SaslMechanisms, SaslResponse};
use bytes::Bytes;
use util::*;

fn users() -> Arc<StaticUsers> {
    Arc::new(
        StaticUsers::new()
            .with_user("alice", "secret", b"salt-of-alice", 16)
            .with_user("bob", "hunter2", b"salt-of-bob", 16),
    )
}

fn client_sasl(user: Option<&str>, password: Option<&str>) -> SaslClientConfig {
    SaslClientConfig {
        user: user.map(str::to_owned),
        password: password.map(str::to_owned),
        nonce: b"client-nonce-0123456789".to_vec(),
        ..SaslClientConfig::default()
    }
}

fn server_sasl(mechs: &[&str]) -> SaslServerConfig {
    let mut s = SaslServerConfig::new(mechs, users());
    s.nonce = b"server-nonce-9876543210".to_vec();
    s
}

fn pair(c: SaslClientConfig, s: SaslServerConfig) -> Pair {
    let mut cc = cfg("client");
    cc.sasl = SaslMode::Client(c);
    let mut sc = cfg("server");
    sc.sasl = SaslMode::Server(s);
    Pair::new(cc, sc)
}

/// Opens the client and runs to quiet with the auto server. Returns the events.
fn run(p: &mut Pair) -> (Vec<Event>, Vec<Event>) {
    p.client.open().unwrap();
    p.run_auto(0)
}

fn authenticated(events: &[Event]) -> Option<(Option<String>, Option<String>)> {
    events.iter().find_map(|e| match e {
        Event::Authenticated {
            mechanism,
            identity,
        } => Some((mechanism.clone(), identity.clone())),
        _ => None,
    })
}

/// Asserts SASL succeeded with `mech` as `identity`, and the AMQP connection opened.
fn assert_success(p: &mut Pair, mech: &str, identity: &str) {
    let (cev, sev) = run(p);
    assert!(p.client.error().is_none(), "{:?}", p.client.error());
    assert!(p.server.error().is_none(), "{:?}", p.server.error());
    assert_eq!(
        authenticated(&cev),
        Some((Some(mech.to_owned()), None)),
        "{cev:?}"
    );
    assert_eq!(
        authenticated(&sev).map(|a| a.1),
        Some(Some(identity.to_owned()))
    );
    assert_eq!(p.server.authenticated_identity(), Some(identity));
    assert!(cev.contains(&Event::ConnectionOpened));
    assert!(sev.contains(&Event::ConnectionOpened));
    // And the connection works.
    let s = p.client.begin_session(SessionConfig::default()).unwrap();
    let l = p.client.attach_sender(s, sender_cfg("q")).unwrap();
    p.run_auto(1);
    p.client.send(l, &msg(0), SendOptions::default()).unwrap();
    let (_, sev) = p.settle();
    assert_eq!(deliveries(&sev).len(), 1);
    p.client.close(None).unwrap();
    p.settle();
    assert!(p.client.is_finished() && p.server.is_finished());
}

/// Asserts the exchange failed with a typed SASL error on `side` and both ends finished.
fn assert_failure(p: &mut Pair, client_err: fn(&SaslError) -> bool) -> ConnectionError {
    let (cev, _sev) = run(p);
    let e = p.client.error().cloned().expect("client failed");
    match &e.kind {
        ErrorKind::Sasl(s) => assert!(client_err(s), "{s:?}"),
        k => panic!("not a SASL error: {k:?}"),
    }
    assert!(cev.iter().any(|x| matches!(x, Event::Error(_))));
    assert!(!cev.contains(&Event::ConnectionOpened));
    assert!(p.client.is_finished(), "client finished");
    // The server either finished (it sent an outcome) or is told the transport ended.
    if !p.server.is_finished() {
        p.drop_connection();
    }
    assert!(p.server.is_finished());
    assert!(p.server.error().is_some());
    e
}

#[test]
fn anonymous() {
    let mut p = pair(client_sasl(None, None), SaslServerConfig::anonymous());
    // The wire: SASL header first, nothing AMQP before the outcome.
    p.client.open().unwrap();
    let first = decode_wire(&p.client_output());
    assert_eq!(headers(&first), vec![ProtocolHeader::SASL]);
    assert!(performatives(&first).is_empty());
    p.inject_server(&ProtocolHeader::SASL.to_bytes()).unwrap();
    let out = decode_wire(&p.server_output());
    assert_eq!(headers(&out), vec![ProtocolHeader::SASL]);
    assert!(
        matches!(&sasl_frames(&out)[..], [SaslFrame::SaslMechanisms(m)]
        if m.sasl_server_mechanisms.iter().map(|s| s.as_str()).collect::<Vec<_>>() == ["ANONYMOUS"])
    );
    let mut p = pair(client_sasl(None, None), SaslServerConfig::anonymous());
    assert_success(&mut p, "ANONYMOUS", "anonymous");
}

#[test]
fn anonymous_refused_by_the_server() {
    let mut p = pair(client_sasl(None, None), server_sasl(&["ANONYMOUS"]));
    assert_failure(&mut p, |e| matches!(e, SaslError::Auth(_)));
}

#[test]
fn plain_with_allow_insecure() {
    let mut c = client_sasl(Some("alice"), Some("secret"));
    c.allow_insecure_mechs = true;
    let mut p = pair(c, server_sasl(&["PLAIN"]));
    assert_success(&mut p, "PLAIN", "alice");
}

#[test]
fn plain_over_an_encrypted_transport() {
    let mut cc = cfg("client");
    cc.sasl = SaslMode::Client(client_sasl(Some("bob"), Some("hunter2")));
    cc.transport_encrypted = true;
    let mut sc = cfg("server");
    sc.sasl = SaslMode::Server(server_sasl(&["PLAIN", "ANONYMOUS"]));
    sc.transport_encrypted = true;
    let mut p = Pair::new(cc, sc);
    assert_success(&mut p, "PLAIN", "bob");
}

#[test]
fn plain_refused_on_plaintext_without_allow_insecure() {
    let mut p = pair(
        client_sasl(Some("alice"), Some("secret")),
        server_sasl(&["PLAIN"]),
    );
    let e = assert_failure(&mut p, |e| matches!(e, SaslError::NoMechanism(_)));
    assert!(e.to_string().contains("TLS"), "{e}");
    // No common mechanism is an authentication failure, not an internal error.
    assert_eq!(
        e.condition(),
        &amqp_proto::definitions::condition::UNAUTHORIZED_ACCESS
    );
    // The client sent no credentials: nothing after its header.
    p.client_output();
}

#[test]
fn external_with_transport_identity() {
    let mut cc = cfg("client");
    cc.sasl = SaslMode::Client(client_sasl(None, None));
    cc.transport_identity = Some("CN=alice".into());
    let mut sc = cfg("server");
    sc.sasl = SaslMode::Server(server_sasl(&["EXTERNAL", "ANONYMOUS"]));
    sc.transport_identity = Some("CN=alice".into());
    let mut p = Pair::new(cc, sc);
    assert_success(&mut p, "EXTERNAL", "CN=alice");
}

#[test]
fn external_without_server_identity_fails() {
    let mut cc = cfg("client");
    cc.sasl = SaslMode::Client(client_sasl(None, None));
    cc.transport_identity = Some("CN=alice".into());
    let mut sc = cfg("server");
    sc.sasl = SaslMode::Server(server_sasl(&["EXTERNAL"]));
    let mut p = Pair::new(cc, sc);
    assert_failure(&mut p, |e| matches!(e, SaslError::Auth(_)));
}

#[test]
fn scram_sha_1() {
    let mut p = pair(
        client_sasl(Some("alice"), Some("secret")),
        server_sasl(&["SCRAM-SHA-1", "PLAIN"]),
    );
    assert_success(&mut p, "SCRAM-SHA-1", "alice");
}

#[test]
fn scram_sha_256_is_preferred() {
    let mut p = pair(
        client_sasl(Some("alice"), Some("secret")),
        server_sasl(&["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "ANONYMOUS"]),
    );
    assert_success(&mut p, "SCRAM-SHA-256", "alice");
}

#[test]
fn scram_final_in_challenge() {
    for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256"] {
        let mut s = server_sasl(&[mech]);
        s.scram_final_in_challenge = true;
        let mut p = pair(client_sasl(Some("bob"), Some("hunter2")), s);
        assert_success(&mut p, mech, "bob");
    }
}

#[test]
fn scram_exchange_replays_byte_for_byte() {
    let run_once = || {
        let mut p = pair(
            client_sasl(Some("alice"), Some("secret")),
            server_sasl(&["SCRAM-SHA-256"]),
        );
        p.client.open().unwrap();
        let mut wire = vec![];
        for _ in 0..10 {
            let c = p.client_output();
            wire.extend_from_slice(&c);
            p.inject_server(&c).unwrap();
            let s = p.server_output();
            wire.extend_from_slice(&s);
            p.inject_client(&s).unwrap();
        }
        assert!(p.client.error().is_none());
        wire
    };
    let a = run_once();
    assert_eq!(a, run_once());
    // The exchange had a challenge and a response.
    let frames = sasl_frames(&decode_wire(&a));
    assert!(frames
        .iter()
        .any(|f| matches!(f, SaslFrame::SaslChallenge(_))));
    assert!(frames
        .iter()
        .any(|f| matches!(f, SaslFrame::SaslResponse(_))));
}

#[test]
fn wrong_password() {
    for mech in ["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"] {
        let mut c = client_sasl(Some("alice"), Some("wrong"));
        c.allow_insecure_mechs = true;
        let mut p = pair(c, server_sasl(&[mech]));
        let e = assert_failure(&mut p, |e| matches!(e, SaslError::Auth(_)));
        assert!(e.is_auth_failure());
        assert!(p.server.is_finished(), "{mech}: the server finished itself");
        assert!(matches!(
            p.server.error().map(|e| &e.kind),
            Some(ErrorKind::Sasl(SaslError::Auth(_)))
        ));
        assert_eq!(p.server.authenticated_identity(), None);
        // The password is never echoed in errors.
        assert!(!e.to_string().contains("wrong"), "{e}");
    }
}

#[test]
fn unknown_user() {
    let mut p = pair(
        client_sasl(Some("mallory"), Some("x")),
        server_sasl(&["SCRAM-SHA-256"]),
    );
    assert_failure(&mut p, |e| matches!(e, SaslError::Auth(_)));
}

#[test]
fn no_common_mechanism() {
    let mut c = client_sasl(Some("alice"), Some("secret"));
    c.set_allowed_mechs("SCRAM-SHA-256 GSSAPI");
    let mut p = pair(c, server_sasl(&["PLAIN", "ANONYMOUS"]));
    let e = assert_failure(&mut p, |e| matches!(e, SaslError::NoMechanism(_)));
    assert_eq!(
        p.server.error().map(|e| &e.kind),
        Some(&ErrorKind::TransportEnded)
    );
    let _ = e;
}

#[test]
fn server_offers_nothing() {
    let mut p = pair(client_sasl(None, None), server_sasl(&[]));
    assert_failure(&mut p, |e| matches!(e, SaslError::NoMechanism(_)));
}

/// A server after the SASL header, with what it wrote so far taken.
fn sasl_server() -> Pair {
    let mut p = pair(
        client_sasl(None, None),
        server_sasl(&["PLAIN", "SCRAM-SHA-256", "ANONYMOUS"]),
    );
    p.inject_server(&ProtocolHeader::SASL.to_bytes()).unwrap();
    let _ = p.server_output();
    p
}

/// Feeds `bytes` to a fresh SASL server; asserts it failed (typed), finished, and what it
/// answered (a failed outcome, or nothing for undecodable input).
fn hostile_sasl(bytes: &[u8], expect_outcome: bool) -> ConnectionError {
    let mut p = sasl_server();
    let r = p.inject_server(bytes);
    let Err(e) = r else {
        panic!(
            "hostile SASL input must fail the server; it wrote {:?}",
            decode_wire(&p.server_output())
        );
    };
    assert!(p.server.is_finished());
    let out = decode_wire(&p.server_output());
    assert!(performatives(&out).is_empty(), "no AMQP frames: {out:?}");
    let outcomes: Vec<_> = sasl_frames(&out)
        .into_iter()
        .filter_map(|f| match f {
            SaslFrame::SaslOutcome(o) => Some(o.code),
            _ => None,
        })
        .collect();
    if expect_outcome {
        assert_eq!(outcomes.len(), 1, "{out:?}");
        assert_ne!(outcomes[0], SaslCode::Ok);
    } else {
        assert!(outcomes.is_empty());
    }
    let (_, sev) = p.drain();
    assert!(matches!(sev.last(), Some(Event::Finished)));
    assert_eq!(p.server.authenticated_identity(), None);
    e
}

#[test]
fn malformed_sasl_frames_into_the_server() {
    // A response before any init.
    let e = hostile_sasl(
        &sasl_frame(SaslFrame::SaslResponse(SaslResponse {
            response: Bytes::from_static(b"x"),
        })),
        true,
    );
    assert!(
        matches!(e.kind, ErrorKind::Sasl(SaslError::Protocol(_))),
        "{e:?}"
    );
    // Init for a mechanism not offered.
    let e = hostile_sasl(
        &sasl_frame(SaslFrame::SaslInit(SaslInit {
            mechanism: "CRAM-MD5".into(),
            initial_response: None,
            hostname: None,
        })),
        true,
    );
    assert!(matches!(e.kind, ErrorKind::Sasl(SaslError::NoMechanism(_))));
    // PLAIN with a malformed initial response (no NUL separators, too many).
    for resp in [
        &b"alice-secret"[..],
        &b"\0\0\0\0"[..],
        &b"\0alice\0\xff\xfe"[..],
    ] {
        let e = hostile_sasl(
            &sasl_frame(SaslFrame::SaslInit(SaslInit {
                mechanism: "PLAIN".into(),
                initial_response: Some(Bytes::copy_from_slice(resp)),
                hostname: None,
            })),
            true,
        );
        assert!(matches!(e.kind, ErrorKind::Sasl(_)), "{e:?}");
    }
    // PLAIN without an initial response gets an empty challenge; a garbage response fails.
    let mut p = sasl_server();
    p.inject_server(&sasl_frame(SaslFrame::SaslInit(SaslInit {
        mechanism: "PLAIN".into(),
        initial_response: None,
        hostname: None,
    })))
    .unwrap();
    let out = decode_wire(&p.server_output());
    assert!(
        matches!(&sasl_frames(&out)[..], [SaslFrame::SaslChallenge(c)] if c.challenge.is_empty())
    );
    let e = p
        .inject_server(&sasl_frame(SaslFrame::SaslResponse(SaslResponse {
            response: Bytes::from_static(b"garbage"),
        })))
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Sasl(_)));
    assert!(p.server.is_finished());
    // SCRAM with a garbage client-first message.
    let e = hostile_sasl(
        &sasl_frame(SaslFrame::SaslInit(SaslInit {
            mechanism: "SCRAM-SHA-256".into(),
            initial_response: Some(Bytes::from_static(b"\xff\xfe garbage")),
            hostname: None,
        })),
        true,
    );
    assert!(matches!(e.kind, ErrorKind::Sasl(_)));
    // A frame only a server sends.
    let e = hostile_sasl(
        &sasl_frame(SaslFrame::SaslMechanisms(SaslMechanisms {
            sasl_server_mechanisms: vec!["PLAIN".into()],
        })),
        true,
    );
    assert!(matches!(e.kind, ErrorKind::Sasl(SaslError::Protocol(_))));
    // Undecodable bodies: a decode error, nothing to answer with.
    let e = hostile_sasl(&raw_frame(12, 2, 1, 0, &[0x00, 0x53, 0x41, 0xff]), false);
    assert_eq!(e.kind, ErrorKind::Decode);
    let e = hostile_sasl(&raw_frame(10, 2, 1, 0, &[0x00, 0x53]), false);
    assert_eq!(e.kind, ErrorKind::Decode);
    // A SASL frame too large for the negotiation.
    let e = hostile_sasl(&raw_frame(1 << 24, 2, 1, 0, &[]), false);
    assert_eq!(e.kind, ErrorKind::Framing);
    // An AMQP frame during SASL.
    let e = hostile_sasl(
        &amqp_frame(
            0,
            amqp_proto::performatives::Open {
                container_id: "c".into(),
                ..Default::default()
            },
            &[],
        ),
        false,
    );
    assert_eq!(e.kind, ErrorKind::Framing);
    // A second init after a challenge.
    let mut p = sasl_server();
    let init = |r: &[u8]| {
        sasl_frame(SaslFrame::SaslInit(SaslInit {
            mechanism: "SCRAM-SHA-256".into(),
            initial_response: Some(Bytes::copy_from_slice(r)),
            hostname: None,
        }))
    };
    p.inject_server(&init(b"n,,n=alice,r=abcdefgh")).unwrap();
    let out = decode_wire(&p.server_output());
    assert!(matches!(
        &sasl_frames(&out)[..],
        [SaslFrame::SaslChallenge(_)]
    ));
    let e = p
        .inject_server(&init(b"n,,n=alice,r=abcdefgh"))
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Sasl(SaslError::Protocol(_))));
    assert!(p.server.is_finished());
}

#[test]
fn malformed_sasl_frames_into_the_client() {
    type Check = fn(&ErrorKind) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        // An outcome before mechanisms.
        (
            sasl_frame(SaslFrame::SaslOutcome(amqp_proto::sasl::SaslOutcome {
                code: SaslCode::Ok,
                additional_data: None,
            })),
            |k| matches!(k, ErrorKind::Sasl(SaslError::Protocol(_))),
        ),
        // A challenge before mechanisms.
        (
            sasl_frame(SaslFrame::SaslChallenge(amqp_proto::sasl::SaslChallenge {
                challenge: Bytes::from_static(b"?"),
            })),
            |k| matches!(k, ErrorKind::Sasl(SaslError::Protocol(_))),
        ),
        // An init (a client frame).
        (
            sasl_frame(SaslFrame::SaslInit(SaslInit {
                mechanism: "PLAIN".into(),
                initial_response: None,
                hostname: None,
            })),
            |k| matches!(k, ErrorKind::Sasl(SaslError::Protocol(_))),
        ),
        (raw_frame(11, 2, 1, 0, &[0x00, 0x53, 0x40]), |k| {
            *k == ErrorKind::Decode
        }),
    ];
    for (bytes, check) in cases {
        let mut p = pair(client_sasl(None, None), SaslServerConfig::anonymous());
        p.client.open().unwrap();
        let _ = p.client_output();
        p.inject_client(&ProtocolHeader::SASL.to_bytes()).unwrap();
        let e = p.inject_client(&bytes).unwrap_err();
        assert!(check(&e.kind), "{e:?}");
        assert!(p.client.is_finished());
        assert!(performatives(&decode_wire(&p.client_output())).is_empty());
    }
    // A SCRAM server whose final message does not verify: the client refuses it.
    let mut p = pair(
        client_sasl(Some("alice"), Some("secret")),
        server_sasl(&["SCRAM-SHA-256"]),
    );
    p.client.open().unwrap();
    let c = p.client_output();
    p.inject_server(&c).unwrap();
    let s = p.server_output();
    p.inject_client(&s).unwrap();
    let c = p.client_output();
    p.inject_server(&c).unwrap();
    let _real = p.server_output();
    let forged = sasl_frame(SaslFrame::SaslOutcome(amqp_proto::sasl::SaslOutcome {
        code: SaslCode::Ok,
        additional_data: Some(Bytes::from_static(
            b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )),
    }));
    let e = p.inject_client(&forged).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Sasl(SaslError::Auth(_))),
        "{e:?}"
    );
    assert!(!p.client.is_finished() || p.client.error().is_some());
}

#[test]
fn silent_server_leaves_the_client_waiting_without_idle_or_handshake_timeout() {
    let mut cc = cfg("client");
    cc.sasl = SaslMode::Client(client_sasl(None, None));
    cc.handshake_timeout = None;
    let mut sc = cfg("server");
    sc.sasl = SaslMode::Server(SaslServerConfig::anonymous());
    let mut p = Pair::new(cc, sc);
    p.faults.cut_s2c = true;
    p.client.open().unwrap();
    p.step();
    assert_eq!(p.client.poll_timeout(), None);
    p.advance(Duration::from_secs(3600));
    assert!(p.client.error().is_none());
    assert!(!p.client.is_finished());
    // The transport ending finishes it.
    p.drop_connection();
    assert_eq!(
        p.client.error().map(|e| &e.kind),
        Some(&ErrorKind::TransportEnded)
    );
}

#[test]
fn silent_server_times_out_a_client_with_idle_timeout() {
    // Silent from the start, and silent after the mechanisms (no outcome ever).
    for after_mechanisms in [false, true] {
        let mut cc = cfg("client");
        cc.sasl = SaslMode::Client(client_sasl(None, None));
        cc.idle_timeout = Some(Duration::from_secs(5));
        let mut sc = cfg("server");
        sc.sasl = SaslMode::Server(server_sasl(&["ANONYMOUS"]));
        let mut p = Pair::new(cc, sc);
        p.client.open().unwrap();
        if after_mechanisms {
            p.step();
            // The server got the init but will never answer (it refuses to send).
        }
        p.faults.cut_s2c = true;
        p.step();
        p.step();
        let deadline = p.client.poll_timeout().expect("a deadline while waiting");
        assert!(deadline <= p.now + Duration::from_secs(5));
        p.advance(Duration::from_secs(4));
        assert!(p.client.error().is_none());
        p.advance(Duration::from_secs(1));
        let e = p.client.error().expect("timed out").clone();
        assert_eq!(e.kind, ErrorKind::IdleTimeout);
        assert!(p.client.is_finished());
        // Nothing AMQP was written: there was no AMQP layer yet.
        let out = decode_wire(&p.client_output());
        assert!(performatives(&out).is_empty(), "{out:?}");
    }
}

#[test]
fn silent_client_times_out_a_sasl_server() {
    let mut sc = cfg("server");
    sc.sasl = SaslMode::Server(SaslServerConfig::anonymous());
    sc.idle_timeout = Some(Duration::from_secs(2));
    let mut p = Pair::new(cfg("client"), sc);
    p.inject_server(&ProtocolHeader::SASL.to_bytes()).unwrap();
    let _ = p.server_output();
    p.advance(Duration::from_secs(2));
    assert_eq!(
        p.server.error().map(|e| &e.kind),
        Some(&ErrorKind::IdleTimeout)
    );
    assert!(p.server.is_finished());
    assert!(performatives(&decode_wire(&p.server_output())).is_empty());
}

#[test]
fn server_with_allow_skip_sasl_accepts_a_plain_client() {
    let mut sc = cfg("server");
    sc.sasl = SaslMode::Server(SaslServerConfig::anonymous());
    let mut p = Pair::new(cfg("client"), sc);
    let (cev, sev) = run(&mut p);
    assert!(cev.contains(&Event::ConnectionOpened), "{cev:?}");
    assert!(sev.contains(&Event::ConnectionOpened));
    assert_eq!(p.server.authenticated_identity(), Some("anonymous"));
    assert!(p.client.error().is_none() && p.server.error().is_none());
}

#[test]
fn server_without_skip_rejects_a_plain_client() {
    let mut sc = cfg("server");
    sc.sasl = SaslMode::Server(server_sasl(&["PLAIN"]));
    let mut p = Pair::new(cfg("client"), sc);
    run(&mut p);
    assert_eq!(
        p.server.error().map(|e| &e.kind),
        Some(&ErrorKind::ProtocolHeader)
    );
    assert_eq!(
        p.client.error().map(|e| &e.kind),
        Some(&ErrorKind::ProtocolHeader)
    );
    assert!(p.client.is_finished() && p.server.is_finished());
    assert_eq!(p.server.authenticated_identity(), None);
}

#[test]
fn pipelined_open_follows_the_amqp_header_in_order() {
    let mut c = client_sasl(Some("alice"), Some("secret"));
    c.allow_insecure_mechs = true;
    let mut p = pair(c, server_sasl(&["SCRAM-SHA-256"]));
    p.client.open().unwrap();
    let s = p.client.begin_session(SessionConfig::default()).unwrap();
    let _l = p.client.attach_sender(s, sender_cfg("q")).unwrap();
    let _r = p.client.attach_receiver(s, receiver_cfg("r")).unwrap();
    // Everything the client writes, across the whole exchange, in order.
    let mut wire = vec![];
    for _ in 0..10 {
        let c = p.client_output();
        wire.extend_from_slice(&c);
        p.inject_server(&c).unwrap();
        let (_, sev) = p.drain();
        for e in &sev {
            auto_server(&mut p.server, e, 0);
        }
        let s = p.server_output();
        p.inject_client(&s).unwrap();
        p.drain();
    }
    assert!(p.client.error().is_none(), "{:?}", p.client.error());
    let items = decode_wire(&wire);
    let seq: Vec<String> = items
        .iter()
        .map(|i| match i {
            WireItem::Header(h) => format!("header {h}"),
            WireItem::Frame(f) => match &f.body {
                amqp_proto::frame::FrameBody::Sasl(s) => s.name().to_owned(),
                amqp_proto::frame::FrameBody::Amqp { performative, .. } => {
                    performative.name().to_owned()
                }
                amqp_proto::frame::FrameBody::Empty => "empty".into(),
            },
        })
        .collect();
    assert_eq!(
        seq,
        vec![
            "header AMQP 3 1.0.0",
            "sasl-init",
            "sasl-response",
            "header AMQP 0 1.0.0",
            "open",
            "begin",
            "attach",
            "attach",
        ],
        "{seq:?}"
    );
    let _ = Performative::name;
}

#[test]
fn sasl_frames_above_512_bytes_are_refused_before_negotiation() {
    // A well-formed init whose initial response makes the frame 2 KiB: the peer may not send
    // frames above MIN-MAX-FRAME-SIZE before open negotiates a larger one.
    let big = sasl_frame(SaslFrame::SaslInit(SaslInit {
        mechanism: "PLAIN".into(),
        initial_response: Some(Bytes::from(vec![b'x'; 2048])),
        hostname: None,
    }));
    assert!(big.len() > 2048);
    let e = hostile_sasl(&big, false);
    assert_eq!(e.kind, ErrorKind::Framing, "{e:?}");
    assert!(
        e.error.description.as_deref().unwrap_or("").contains("512"),
        "{e:?}"
    );
    // Its header alone is enough: the server does not wait for (or buffer) the rest.
    let e = hostile_sasl(&big[..8], false);
    assert_eq!(e.kind, ErrorKind::Framing, "{e:?}");
    // A frame of exactly 512 bytes is read (and answered by the mechanism, not refused).
    let mut p = sasl_server();
    let fits = sasl_frame(SaslFrame::SaslInit(SaslInit {
        mechanism: "ANONYMOUS".into(),
        initial_response: Some(Bytes::from(vec![b'x'; 512 - 36])),
        hostname: None,
    }));
    assert_eq!(fits.len(), 512, "adjust the response length");
    if let Err(e) = p.inject_server(&fits) {
        assert!(matches!(e.kind, ErrorKind::Sasl(_)), "{e:?}");
    }
}
