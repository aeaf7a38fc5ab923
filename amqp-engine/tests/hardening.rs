//! What a server exposed to a network needs from the engine: a handshake deadline, a close
//! deadline, channels found in constant time however many sessions are open, and begins
//! that cannot be answered refused rather than left waiting.
mod util;

use std::time::{Duration, Instant};

use amqp_engine::*;
use amqp_proto::definitions::condition;
use amqp_proto::frame::ProtocolHeader;
use amqp_proto::performatives::*;
use bytes::BytesMut;
use util::*;

fn open(channel_max: u16) -> Open {
    Open {
        container_id: "raw-client".into(),
        channel_max: Some(channel_max),
        ..Open::default()
    }
}

fn begin() -> Begin {
    Begin {
        remote_channel: None,
        next_outgoing_id: 0,
        incoming_window: 100,
        outgoing_window: 100,
        ..Begin::default()
    }
}

/// A server that has read a client's header and open (with `channel_max`), and opened.
fn opened_server(channel_max: u16) -> Pair {
    let mut p = Pair::new(cfg("client"), cfg("server"));
    let mut hello = ProtocolHeader::AMQP.to_bytes().to_vec();
    hello.extend(amqp_frame(0, open(channel_max), &[]));
    p.inject_server(&hello).unwrap();
    p.server.open().unwrap();
    let _ = p.server_output();
    p.drain();
    p
}

/// Begins `n` sessions on channels `from..from + n` and has the server answer each; returns
/// how long the server took.
fn begins(p: &mut Pair, from: u16, n: u16) -> Duration {
    let mut wire = BytesMut::new();
    for ch in from..from + n {
        wire.extend_from_slice(&amqp_frame(ch, begin(), &[]));
    }
    let t = Instant::now();
    p.inject_server(&wire).unwrap();
    while let Some(e) = p.server.poll_event() {
        if let Event::SessionOpened {
            session,
            remote_initiated: true,
        } = e
        {
            p.server.accept_session(session).unwrap();
        }
    }
    let out = p.server_output();
    let elapsed = t.elapsed();
    let answers = performatives(&decode_wire(&out))
        .into_iter()
        .filter(|(_, f, _)| matches!(f, Performative::Begin(b) if b.remote_channel.is_some()))
        .count();
    assert_eq!(answers, n as usize, "every begin is answered");
    elapsed
}

#[test]
fn thirty_thousand_begins_are_answered_at_a_cost_that_does_not_grow() {
    let mut p = opened_server(u16::MAX);
    let chunk = 5_000;
    let mut times = Vec::new();
    for i in 0..6 {
        times.push(begins(&mut p, i * chunk, chunk));
    }
    let total: Duration = times.iter().sum();
    // A linear scan for a free channel made the last 5,000 begins cost ~11 times the first
    // 5,000 (and 30,000 begins take seconds even in release).
    let (first, last) = (times[0], times[5]);
    assert!(
        last <= first * 3 + Duration::from_millis(100),
        "later begins cost more: {times:?}"
    );
    assert!(total < Duration::from_secs(10), "{times:?}");
    assert_eq!(p.server.sessions().len(), 30_000);
}

#[test]
fn a_begin_that_cannot_be_answered_is_refused() {
    // The peer allows us channel 0 only, then begins a second session.
    let mut p = opened_server(0);
    let _ = begins(&mut p, 0, 1);
    let r = p.inject_server(&amqp_frame(1, begin(), &[]));
    let e = r.expect_err("a begin we cannot answer fails the connection");
    assert_eq!(e.error.condition, condition::RESOURCE_LIMIT_EXCEEDED);
    let out = decode_wire(&p.server_output());
    assert_eq!(
        close_conditions(&out),
        vec![Some(condition::RESOURCE_LIMIT_EXCEEDED.as_str().to_owned())]
    );
    assert!(p.server.is_finished());
}

#[test]
fn handshake_deadline_defaults_to_ten_seconds_on_both_sides() {
    // A silent peer: the server never gets a header, the client never gets the server's.
    let mut p = Pair::new(cfg("client"), cfg("server"));
    p.client.open().unwrap();
    let t0 = p.now;
    assert_eq!(p.server.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    assert_eq!(p.client.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    let _ = p.client_output();
    p.advance(Duration::from_millis(9_999));
    assert!(p.server.error().is_none() && p.client.error().is_none());
    p.advance(Duration::from_millis(1));
    for c in [&p.server, &p.client] {
        assert_eq!(
            c.error().map(|e| &e.kind),
            Some(&ErrorKind::HandshakeTimeout)
        );
        assert!(c.is_finished());
        assert_eq!(c.poll_timeout(), None);
    }
    // The server had nothing to close (no header exchanged): a plain transport close.
    assert!(p.server_output().is_empty());
}

#[test]
fn a_slow_peer_is_closed_with_resource_limit_exceeded() {
    // Slow loris: the header, then the open one byte every two seconds. Bytes arriving do not
    // extend the deadline.
    let mut p = Pair::new(cfg("client"), cfg("server"));
    p.inject_server(&ProtocolHeader::AMQP.to_bytes()).unwrap();
    let _ = p.server_output();
    let frame = amqp_frame(0, open(10), &[]);
    for b in frame.iter().take(5) {
        p.advance(Duration::from_secs(2));
        if p.server.is_finished() {
            break;
        }
        p.inject_server(&[*b]).unwrap();
    }
    assert_eq!(
        p.server.error().map(|e| &e.kind),
        Some(&ErrorKind::HandshakeTimeout)
    );
    let out = decode_wire(&p.server_output());
    let ps = performatives(&out);
    assert!(matches!(ps[0].1, Performative::Open(_)), "{ps:?}");
    assert_eq!(
        close_conditions(&out),
        vec![Some(condition::RESOURCE_LIMIT_EXCEEDED.as_str().to_owned())]
    );
}

#[test]
fn handshake_deadline_ends_with_the_peers_open_and_can_be_disabled() {
    let mut p = Pair::new(cfg("client"), cfg("server"));
    p.client.open().unwrap();
    p.run_auto(0);
    assert_eq!(p.client.poll_timeout(), None);
    assert_eq!(p.server.poll_timeout(), None);
    p.advance(Duration::from_secs(3600));
    assert!(p.client.error().is_none() && p.server.error().is_none());

    let mut c = cfg("client");
    c.handshake_timeout = None;
    let mut p = Pair::new(c, cfg("server"));
    assert_eq!(p.client.poll_timeout(), None);
    p.advance(Duration::from_secs(3600));
    assert!(p.client.error().is_none());
}

#[test]
fn close_deadline_finishes_a_connection_whose_peer_never_answers() {
    let mut p = Pair::new(cfg("client"), cfg("server"));
    p.client.open().unwrap();
    p.run_auto(0);
    p.faults.cut_s2c = true;
    p.client.close(None).unwrap();
    p.step();
    let t0 = p.now;
    assert_eq!(p.client.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    p.advance(Duration::from_millis(4_999));
    assert!(!p.client.is_finished());
    p.advance(Duration::from_millis(1));
    assert!(p.client.is_finished());
    let (c, _) = p.drain();
    assert!(matches!(c.last(), Some(Event::Finished)), "{c:?}");
    assert_eq!(p.client.poll_timeout(), None);

    // Disabled: it waits for ever.
    let mut cc = cfg("client");
    cc.close_timeout = None;
    let mut p = Pair::new(cc, cfg("server"));
    p.client.open().unwrap();
    p.run_auto(0);
    p.faults.cut_s2c = true;
    p.client.close(None).unwrap();
    p.step();
    assert_eq!(p.client.poll_timeout(), None);
    p.advance(Duration::from_secs(3600));
    assert!(!p.client.is_finished());
}

/// A peer that grants credit but keeps its session window shut makes a sender hold frames;
/// they count as pending output (what a broker's back-pressure reads), and leave the count
/// when the window opens.
#[test]
fn frames_held_by_a_closed_session_window_count_as_pending_output() {
    let mut server = cfg("server");
    server.incoming_window = 1;
    let mut p = Pair::new(cfg("client"), server);
    let (_, link, _) = p.open_sender(100);
    assert_eq!(p.client.pending_transmit_len(), 0);
    let body = "x".repeat(1000);
    for _ in 0..10 {
        p.client
            .send(
                link,
                &amqp_proto::message::Message::new(body.as_str()),
                SendOptions::default(),
            )
            .unwrap();
    }
    // One transfer fits the window; nine wait behind it, and count.
    let held = p.client.pending_transmit_len();
    let wire = p.client_output();
    let after_flush = p.client.pending_transmit_len();
    assert!(held > 9 * 1000, "{held} bytes pending");
    assert!(
        (9 * 1000..held).contains(&after_flush),
        "{after_flush} bytes held behind the window (of {held} pending)"
    );
    // The receiver reads and reopens its window: nothing is held any more.
    p.inject_server(&wire).unwrap();
    let (_, s) = p.run_auto(100);
    assert_eq!(deliveries(&s).len(), 10);
    assert_eq!(p.client.pending_transmit_len(), 0);
}
