mod util;

use std::time::Duration;

use amqp_engine::*;
use amqp_proto::definitions::{condition, Error};
use amqp_proto::message::Message;
use amqp_proto::messaging::DeliveryState;
use util::*;

#[test]
fn open_session_link_send_accept_close() {
    let mut p = Pair::default_pair();
    let (_s, sender, _rl) = p.open_sender(10);
    assert_eq!(p.client.link_credit(sender), Some(10));
    assert_eq!(p.server.remote_container_id(), Some("client"));
    assert_eq!(p.client.remote_container_id(), Some("server"));
    let mut ids = vec![];
    for i in 0..5 {
        ids.push(
            p.client
                .send(sender, &msg(i), SendOptions::default())
                .unwrap(),
        );
    }
    let (_, sev) = p.settle();
    let ds = deliveries(&sev);
    assert_eq!(ds.len(), 5);
    for (i, d) in ds.iter().enumerate() {
        let m = Message::decode(&d.payload).unwrap();
        assert_eq!(m.body_str(), Some(&*format!("message {i}")));
        p.server.disposition(d.delivery, accepted(), true).unwrap();
    }
    let (cev, _) = p.settle();
    let settled: Vec<_> = cev
        .iter()
        .filter_map(|e| match e {
            Event::Disposition {
                delivery,
                state,
                settled,
            } => Some((*delivery, state.clone(), *settled)),
            _ => None,
        })
        .collect();
    assert_eq!(settled.len(), 5);
    for (i, (d, st, s)) in settled.iter().enumerate() {
        assert_eq!(*d, ids[i]);
        assert_eq!(st, &Some(DeliveryState::accepted()));
        assert!(*s);
    }
    // One disposition frame covered all five (ranges).
    p.client.close(None).unwrap();
    let (cev, sev) = p.settle();
    assert!(sev
        .iter()
        .any(|e| matches!(e, Event::ConnectionClosed { error: None })));
    assert!(cev.iter().any(|e| matches!(e, Event::Finished)));
    assert!(p.client.is_finished() && p.server.is_finished());
    assert!(p.client.error().is_none() && p.server.error().is_none());
}

#[test]
fn every_split_boundary() {
    // Run the same exchange with the byte stream cut at every chunk size from 1 to 40.
    for chunk in 1..=40 {
        let mut p = Pair::default_pair();
        p.set_wire(Wire::Chunks(chunk));
        let (_s, sender, _) = p.open_sender(3);
        for i in 0..3 {
            p.client
                .send(sender, &msg(i), SendOptions::default())
                .unwrap();
        }
        let (_, sev) = p.settle();
        assert_eq!(deliveries(&sev).len(), 3, "chunk size {chunk}");
    }
}

#[test]
fn multi_frame_transfer_split_and_reassembled() {
    let mut c = cfg("client");
    c.max_frame_size = 512;
    let mut s = cfg("server");
    s.max_frame_size = 512;
    let mut p = Pair::new(c, s);
    let (_s, sender, _) = p.open_sender(2);
    let body = vec![0xabu8; 10_000];
    let m = Message::builder().data(body.clone()).build();
    p.client.send(sender, &m, SendOptions::default()).unwrap();
    let (_, sev) = p.settle();
    let ds = deliveries(&sev);
    assert_eq!(ds.len(), 1);
    let back = Message::decode(&ds[0].payload).unwrap();
    assert_eq!(back, m);
    assert!(p.c2s_bytes > 10_000);
}

#[test]
fn presettled_sends_need_no_disposition() {
    let mut p = Pair::default_pair();
    let (_s, sender, _) = p.open_sender(5);
    p.client
        .send(
            sender,
            &msg(1),
            SendOptions {
                settled: true,
                ..Default::default()
            },
        )
        .unwrap();
    let (_, sev) = p.settle();
    let ds = deliveries(&sev);
    assert!(ds[0].settled);
    assert!(p
        .server
        .disposition(ds[0].delivery, accepted(), true)
        .is_err());
}

#[test]
fn no_credit_is_refused() {
    let mut p = Pair::default_pair();
    let (_s, sender, _) = p.open_sender(1);
    p.client
        .send(sender, &msg(1), SendOptions::default())
        .unwrap();
    assert_eq!(
        p.client.send(sender, &msg(2), SendOptions::default()),
        Err(OpError::NoCredit)
    );
}

#[test]
fn heartbeats_keep_idle_connection_alive_and_idle_timeout_fires() {
    let mut c = cfg("client");
    c.idle_timeout = Some(Duration::from_secs(2));
    let mut s = cfg("server");
    s.idle_timeout = Some(Duration::from_secs(2));
    let mut p = Pair::new(c, s);
    p.client.open().unwrap();
    p.run_auto(0);
    // 30 simulated seconds, stepping by 500 ms: heartbeats flow, nobody times out.
    for _ in 0..60 {
        p.advance(Duration::from_millis(500));
        p.step();
    }
    p.drain();
    assert!(p.client.error().is_none(), "{:?}", p.client.error());
    assert!(p.server.error().is_none());
    // Now cut the wire: only time passes. The server times out with resource-limit-exceeded.
    p.advance(Duration::from_millis(2100));
    let e = p.server.error().expect("server idle timeout");
    assert_eq!(e.condition(), &condition::RESOURCE_LIMIT_EXCEEDED);
    assert_eq!(e.kind, ErrorKind::IdleTimeout);
}

#[test]
fn deadline_reports_heartbeat_due() {
    let mut c = cfg("client");
    c.idle_timeout = None;
    let mut s = cfg("server");
    s.idle_timeout = Some(Duration::from_secs(10));
    let mut p = Pair::new(c, s);
    p.client.open().unwrap();
    p.run_auto(0);
    let t = p.client.poll_timeout().expect("client must heartbeat");
    assert!(t <= p.now + Duration::from_secs(5));
}

#[test]
fn remote_close_with_error_is_reported() {
    let mut p = Pair::default_pair();
    p.open_sender(1);
    p.server
        .close(Some(amqp_proto::definitions::Error::new(
            condition::CONNECTION_FORCED,
            "bye",
        )))
        .unwrap();
    let (cev, _) = p.settle();
    assert!(cev.iter().any(|e| matches!(e, Event::ConnectionClosed { error: Some(er) } if er.condition == condition::CONNECTION_FORCED)));
    let e = p.client.error().unwrap();
    assert_eq!(e.origin, Origin::Remote);
    assert!(p.client.is_finished());
}

#[test]
fn receiver_grants_credit_and_gets_messages_from_server() {
    let mut p = Pair::default_pair();
    let (_s, rcv, srv_sender) = p.open_receiver();
    p.client.flow(rcv, 4, false).unwrap();
    let (_, sev) = p.settle();
    assert!(sev
        .iter()
        .any(|e| matches!(e, Event::LinkFlow { credit: 4, .. })));
    for i in 0..4 {
        p.server
            .send(srv_sender, &msg(i), SendOptions::default())
            .unwrap();
    }
    assert_eq!(
        p.server.send(srv_sender, &msg(9), SendOptions::default()),
        Err(OpError::NoCredit)
    );
    let (cev, _) = p.settle();
    assert_eq!(deliveries(&cev).len(), 4);
    assert_eq!(p.client.link_credit(rcv), Some(0));
}

#[test]
fn drain_uses_up_credit() {
    let mut p = Pair::default_pair();
    let (_s, rcv, srv_sender) = p.open_receiver();
    p.client.flow(rcv, 10, true).unwrap();
    let (_, sev) = p.settle();
    assert!(sev.iter().any(|e| matches!(
        e,
        Event::LinkFlow {
            credit: 10,
            drain: true,
            ..
        }
    )));
    p.server
        .send(srv_sender, &msg(0), SendOptions::default())
        .unwrap();
    p.server.drained(srv_sender).unwrap();
    let (cev, _) = p.settle();
    assert_eq!(deliveries(&cev).len(), 1);
    assert!(cev.iter().any(|e| matches!(e, Event::LinkDrained { .. })));
    assert_eq!(p.client.link_credit(rcv), Some(0));
    assert_eq!(p.server.link_credit(srv_sender), Some(0));
}

#[test]
fn detach_and_end_are_answered() {
    let mut p = Pair::default_pair();
    let (s, sender, _) = p.open_sender(1);
    p.client.detach(sender, true, None).unwrap();
    let (cev, sev) = p.settle();
    assert!(sev
        .iter()
        .any(|e| matches!(e, Event::LinkClosed { closed: true, .. })));
    assert!(cev
        .iter()
        .any(|e| matches!(e, Event::LinkClosed { closed: true, .. })));
    assert!(p.client.links().is_empty());
    assert!(p.server.links().is_empty());
    p.client.end_session(s, None).unwrap();
    let (cev, _) = p.settle();
    assert!(cev.iter().any(|e| matches!(e, Event::SessionEnded { .. })));
    assert!(p.client.sessions().is_empty());
    assert!(p.server.sessions().is_empty());
}

#[test]
fn unsettled_sent_survives_transport_loss() {
    let mut p = Pair::default_pair();
    let (_s, sender, _) = p.open_sender(5);
    for i in 0..3 {
        p.client
            .send(sender, &msg(i), SendOptions::default())
            .unwrap();
    }
    assert_eq!(p.client.unsettled_sent().len(), 3);
    let now = p.now;
    p.client.handle_transport_closed(now);
    assert!(p.client.is_finished());
    assert_eq!(
        p.client.unsettled_sent().len(),
        3,
        "in-doubt deliveries stay known after the transport is lost"
    );
}

#[test]
fn unsettled_sent_survives_the_peer_ending_the_session() {
    // RabbitMQ, shutting down, ends each session (internal-error "shutdown") before it closes
    // the connection: what it never settled must still be in doubt (and so be resent).
    let mut p = Pair::default_pair();
    let (_s, sender, _) = p.open_sender(5);
    for i in 0..3 {
        p.client
            .send(sender, &msg(i), SendOptions::default())
            .unwrap();
    }
    p.settle();
    let server_session = p.server.sessions()[0];
    p.server.end_session(server_session, None).unwrap();
    let (cev, _) = p.settle();
    assert!(cev.iter().any(|e| matches!(e, Event::SessionEnded { .. })));
    assert!(p.client.sessions().is_empty());
    assert_eq!(p.client.unsettled_sent().len(), 3);
    let now = p.now;
    p.client.handle_transport_closed(now);
    assert_eq!(p.client.unsettled_sent().len(), 3);
}

#[test]
fn the_peer_ending_a_session_closes_its_links() {
    // RabbitMQ 3.10 ends a session whose channel crashed (internal-error) and keeps the
    // connection: the links on it are gone too, and must say so (else a receiver waits for
    // deliveries, and a sender for credit, forever).
    let mut p = Pair::default_pair();
    let (s, sender, _) = p.open_sender(5);
    let receiver = p.client.attach_receiver(s, receiver_cfg("r")).unwrap();
    p.run_auto(0);
    for i in 0..3 {
        p.client
            .send(sender, &msg(i), SendOptions::default())
            .unwrap();
    }
    p.settle();
    let server_session = p.server.sessions()[0];
    let crash = Error::new(condition::INTERNAL_ERROR, "channel crashed");
    p.server
        .end_session(server_session, Some(crash.clone()))
        .unwrap();
    let (cev, _) = p.settle();
    let closed: Vec<LinkId> = cev
        .iter()
        .filter_map(|e| match e {
            Event::LinkClosed {
                link,
                closed: true,
                error: Some(er),
                session_ended: true,
            } if *er == crash => Some(*link),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 2, "{cev:?}");
    assert!(closed.contains(&sender) && closed.contains(&receiver));
    let ended = cev
        .iter()
        .position(|e| matches!(e, Event::SessionEnded { .. }))
        .expect("session ended");
    assert!(
        cev.iter()
            .take(ended)
            .filter(|e| matches!(e, Event::LinkClosed { .. }))
            .count()
            == 2,
        "links are closed before their session ends: {cev:?}"
    );
    assert!(p.client.links().is_empty());
    // What was sent on the sender is in doubt, once.
    assert_eq!(p.client.take_unsettled_sent(sender).len(), 3);
    assert!(p.client.take_unsettled_sent(sender).is_empty());
    assert!(p.client.unsettled_sent().is_empty());
}

#[test]
fn what_a_detached_sender_never_got_settled_stays_in_doubt() {
    let mut p = Pair::default_pair();
    let (_s, sender, srv) = p.open_sender(5);
    for i in 0..2 {
        p.client
            .send(sender, &msg(i), SendOptions::default())
            .unwrap();
    }
    p.settle();
    p.server.detach(srv, true, None).unwrap();
    let (cev, _) = p.settle();
    assert!(cev.iter().any(|e| matches!(e, Event::LinkClosed { .. })));
    assert!(p.client.links().is_empty(), "both ends detached");
    assert_eq!(p.client.unsettled_sent().len(), 2);
    assert_eq!(p.client.take_unsettled_sent(sender).len(), 2);
    assert!(p.client.unsettled_sent().is_empty());
}

#[test]
fn a_second_link_of_the_same_name_and_role_is_refused() {
    let mut p = Pair::default_pair();
    let (s, _sender, _) = p.open_sender(1);
    let again = p.client.attach_sender(s, sender_cfg("q"));
    assert!(matches!(again, Err(OpError::IllegalState(_))), "{again:?}");
    // The other direction may use the name.
    assert!(p
        .client
        .attach_receiver(
            s,
            LinkConfig {
                name: "sender-q".into(),
                ..LinkConfig::default()
            }
        )
        .is_ok());
}

/// The client's `LinkOpened` events for links it attached itself (the peer's answers).
fn answered(events: &[Event]) -> Vec<LinkId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::LinkOpened {
                link,
                remote_initiated: false,
            } => Some(*link),
            _ => None,
        })
        .collect()
}

#[test]
fn ending_a_session_frees_only_its_links_and_names_match_by_role() {
    let mut p = Pair::default_pair();
    p.client.open().unwrap();
    let s1 = p.client.begin_session(SessionConfig::default()).unwrap();
    let s2 = p.client.begin_session(SessionConfig::default()).unwrap();
    // A sender and a receiver of the same name on one session: each answer finds its own.
    let a_out = p.client.attach_sender(s1, sender_cfg("a")).unwrap();
    let a_in = p.client.attach_receiver(s1, receiver_cfg("a")).unwrap();
    let c = p.client.attach_sender(s2, sender_cfg("c")).unwrap();
    let (cev, _) = p.run_auto(5);
    let mut opened = answered(&cev);
    opened.sort();
    let mut want = vec![a_out, a_in, c];
    want.sort();
    assert_eq!(opened, want);
    assert_eq!(p.client.links().len(), 3);
    assert_eq!(p.server.links().len(), 3);

    p.client.end_session(s1, None).unwrap();
    p.run_auto(5);
    assert_eq!(p.client.links(), vec![c]);
    assert_eq!(p.server.links().len(), 1);
    assert_eq!(p.client.sessions(), vec![s2]);

    // The name "a" is free again, and an answer on the other session finds the new link.
    let a2 = p.client.attach_sender(s2, sender_cfg("a")).unwrap();
    let (cev, _) = p.run_auto(5);
    assert_eq!(answered(&cev), vec![a2]);
    assert_eq!(p.client.link_credit(a2), Some(5));
    assert_eq!(p.client.links().len(), 2);
}
