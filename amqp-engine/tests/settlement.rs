//! Settlement, dispositions, aborts, session windows and cleanup.
mod util;

use std::collections::HashSet;

use amqp_engine::*;
use amqp_proto::definitions::{condition, Error, ReceiverSettleMode, Role, SenderSettleMode};
use amqp_proto::messaging::{DeliveryState, Modified, Rejected};
use amqp_proto::performatives::*;
use bytes::Bytes;
use util::*;

fn dispositions(events: &[Event]) -> Vec<(DeliveryId, Option<DeliveryState>, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Disposition {
                delivery,
                state,
                settled,
            } => Some((*delivery, state.clone(), *settled)),
            _ => None,
        })
        .collect()
}

fn disposition_frames(bytes: &[u8]) -> Vec<Disposition> {
    performatives(&decode_wire(bytes))
        .into_iter()
        .filter_map(|(_, p, _)| match p {
            Performative::Disposition(d) => Some(d),
            _ => None,
        })
        .collect()
}

fn transfer_frames(bytes: &[u8]) -> Vec<(Transfer, Bytes)> {
    performatives(&decode_wire(bytes))
        .into_iter()
        .filter_map(|(_, p, payload)| match p {
            Performative::Transfer(t) => Some((t, payload)),
            _ => None,
        })
        .collect()
}

/// Opens a client sender with `link` settings; the server accepts (adopting the settle modes)
/// and grants `credit`.
fn sender_with(p: &mut Pair, link: LinkConfig, credit: u32) -> (SessionId, LinkId, LinkId) {
    p.client.open().unwrap();
    let s = p.client.begin_session(SessionConfig::default()).unwrap();
    let l = p.client.attach_sender(s, link).unwrap();
    let (_, sev) = p.run_auto(credit);
    let rl = sev
        .iter()
        .find_map(|e| match e {
            Event::LinkOpened { link, .. } => Some(*link),
            _ => None,
        })
        .unwrap();
    (s, l, rl)
}

fn assert_no_unsettled(p: &Pair) {
    for s in p.client.sessions() {
        assert_eq!(p.client.session_unsettled(s), Some((0, 0)), "client");
    }
    for s in p.server.sessions() {
        assert_eq!(p.server.session_unsettled(s), Some((0, 0)), "server");
    }
}

#[test]
fn receiver_settle_mode_second() {
    let mut p = Pair::default_pair();
    let link = LinkConfig {
        rcv_settle_mode: Some(ReceiverSettleMode::Second),
        ..sender_cfg("q")
    };
    let (cs, sender, rl) = sender_with(&mut p, link, 10);
    assert_eq!(
        p.server.link_remote_attach(rl).unwrap().rcv_settle_mode,
        Some(ReceiverSettleMode::Second)
    );
    let ids: Vec<_> = (0..3)
        .map(|i| {
            p.client
                .send(sender, &msg(i), SendOptions::default())
                .unwrap()
        })
        .collect();
    let (_, sev) = p.settle();
    let ds = deliveries(&sev);
    assert_eq!(ds.len(), 3);
    // The receiver "settles": in mode second the outcome goes out unsettled.
    for d in &ds {
        p.server.disposition(d.delivery, accepted(), true).unwrap();
    }
    let out = p.server_output();
    let frames = disposition_frames(&out);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].role, Role::Receiver);
    assert_eq!((frames[0].first, frames[0].last), (0, Some(2)));
    assert_eq!(frames[0].settled, Some(false));
    assert_eq!(frames[0].state, accepted());
    let ss = p.server.sessions()[0];
    assert_eq!(
        p.server.session_unsettled(ss),
        Some((0, 3)),
        "still unsettled"
    );
    p.inject_client(&out).unwrap();
    let (cev, _) = p.drain();
    let disp = dispositions(&cev);
    assert_eq!(disp.len(), 3);
    for (i, (d, st, settled)) in disp.iter().enumerate() {
        assert_eq!(*d, ids[i]);
        assert_eq!(st, &accepted());
        assert!(!settled);
    }
    assert_eq!(p.client.session_unsettled(cs), Some((3, 0)));
    // The sender settles; the receiver then settles too.
    for d in &ids {
        p.client.settle(*d).unwrap();
    }
    assert_eq!(p.client.session_unsettled(cs), Some((0, 0)));
    let out = p.client_output();
    let frames = disposition_frames(&out);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].role, Role::Sender);
    assert_eq!(frames[0].settled, Some(true));
    assert_eq!((frames[0].first, frames[0].last), (0, Some(2)));
    p.inject_server(&out).unwrap();
    let (_, sev) = p.drain();
    assert_eq!(dispositions(&sev).len(), 3);
    assert!(dispositions(&sev).iter().all(|d| d.2));
    p.settle();
    assert_no_unsettled(&p);
    assert!(p.client.error().is_none() && p.server.error().is_none());
}

#[test]
fn sender_settle_mode_settled_sends_everything_presettled() {
    let mut p = Pair::default_pair();
    let link = LinkConfig {
        snd_settle_mode: Some(SenderSettleMode::Settled),
        ..sender_cfg("q")
    };
    let (_, sender, _) = sender_with(&mut p, link, 10);
    for i in 0..5 {
        p.client
            .send(sender, &msg(i), SendOptions::default())
            .unwrap();
    }
    let out = p.client_output();
    let ts = transfer_frames(&out);
    assert_eq!(ts.len(), 5);
    assert!(ts.iter().all(|(t, _)| t.settled == Some(true)));
    p.inject_server(&out).unwrap();
    let (_, sev) = p.drain();
    let ds = deliveries(&sev);
    assert_eq!(ds.len(), 5);
    assert!(ds.iter().all(|d| d.settled));
    assert_no_unsettled(&p);
    // A disposition on a pre-settled delivery is refused.
    assert_eq!(
        p.server.disposition(ds[0].delivery, accepted(), true),
        Err(OpError::UnknownHandle)
    );
}

#[test]
fn mixed_settle_mode() {
    let mut p = Pair::default_pair();
    let (_, sender, _) = sender_with(&mut p, sender_cfg("q"), 10);
    let mut unsettled = vec![];
    for i in 0..10 {
        let settled = i % 3 == 0;
        let d = p
            .client
            .send(
                sender,
                &msg(i),
                SendOptions {
                    settled,
                    ..Default::default()
                },
            )
            .unwrap();
        if !settled {
            unsettled.push(d);
        }
    }
    let (_, sev) = p.settle();
    let ds = deliveries(&sev);
    assert_eq!(ds.len(), 10);
    for (i, d) in ds.iter().enumerate() {
        assert_eq!(d.settled, i % 3 == 0);
        if !d.settled {
            p.server.disposition(d.delivery, accepted(), true).unwrap();
        }
    }
    let (cev, _) = p.settle();
    let disp = dispositions(&cev);
    assert_eq!(
        disp.iter().map(|d| d.0).collect::<Vec<_>>(),
        unsettled,
        "only unsettled deliveries get outcomes"
    );
    assert_no_unsettled(&p);
}

#[test]
fn dispositions_coalesce_into_ranges() {
    let mut p = Pair::default_pair();
    let (_, sender, _) = sender_with(&mut p, sender_cfg("q"), 100);
    for i in 0..50 {
        p.client
            .send(sender, &msg(i), SendOptions::default())
            .unwrap();
    }
    let (_, sev) = p.settle();
    let ds = deliveries(&sev);
    // 20 accepts in order: one frame.
    for d in &ds[..20] {
        p.server.disposition(d.delivery, accepted(), true).unwrap();
    }
    let f = disposition_frames(&p.server_output());
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].first, f[0].last, f[0].settled),
        (0, Some(19), Some(true))
    );
    assert_eq!(f[0].state, accepted());
    // Interleaved states split into ranges: 20-22 accept, 23 reject, 24-25 accept,
    // 26-29 release, 30 modified, 31 accepted but not settled, 32 accept.
    let rejected = Some(DeliveryState::Rejected(Rejected {
        error: Some(Error::new(condition::NOT_ALLOWED, "no")),
    }));
    let modified = Some(DeliveryState::Modified(Modified {
        delivery_failed: Some(true),
        undeliverable_here: None,
        message_annotations: None,
    }));
    let released = Some(DeliveryState::released());
    let plan: Vec<(Option<DeliveryState>, bool)> = vec![
        (accepted(), true),
        (accepted(), true),
        (accepted(), true),
        (rejected.clone(), true),
        (accepted(), true),
        (accepted(), true),
        (released.clone(), true),
        (released.clone(), true),
        (released.clone(), true),
        (released.clone(), true),
        (modified.clone(), true),
        (accepted(), false),
        (accepted(), true),
    ];
    for (i, (st, settled)) in plan.iter().enumerate() {
        p.server
            .disposition(ds[20 + i].delivery, st.clone(), *settled)
            .unwrap();
    }
    let out = p.server_output();
    let f = disposition_frames(&out);
    let got: Vec<_> = f
        .iter()
        .map(|d| {
            (
                d.first,
                d.last.unwrap_or(d.first),
                d.state.clone(),
                d.settled,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (20, 22, accepted(), Some(true)),
            (23, 23, rejected.clone(), Some(true)),
            (24, 25, accepted(), Some(true)),
            (26, 29, released.clone(), Some(true)),
            (30, 30, modified.clone(), Some(true)),
            (31, 31, accepted(), Some(false)),
            (32, 32, accepted(), Some(true)),
        ]
    );
    // Out of order: no merging across a descending step.
    p.server
        .disposition(ds[34].delivery, accepted(), true)
        .unwrap();
    p.server
        .disposition(ds[33].delivery, accepted(), true)
        .unwrap();
    let f2 = disposition_frames(&p.server_output());
    assert_eq!(f2.len(), 2);
    // The sender sees each outcome on its delivery.
    p.inject_client(&out).unwrap();
    let (cev, _) = p.drain();
    let disp = dispositions(&cev);
    assert_eq!(disp.len(), 13);
    assert_eq!(disp[3].1, rejected);
    assert_eq!(disp[10].1, modified);
    assert!(!disp[11].2);
}

#[test]
fn remote_disposition_with_huge_range_touches_only_known_deliveries() {
    let mut p = Pair::default_pair();
    let (cs, sender, _) = sender_with(&mut p, sender_cfg("q"), 10);
    let ids: Vec<_> = (0..3)
        .map(|i| {
            p.client
                .send(sender, &msg(i), SendOptions::default())
                .unwrap()
        })
        .collect();
    p.settle();
    // Unsettled, whole range: three events, nothing settled.
    let f = amqp_frame(
        0,
        Disposition {
            role: Role::Receiver,
            first: 0,
            last: Some(u32::MAX),
            settled: Some(false),
            state: Some(DeliveryState::Received(amqp_proto::messaging::Received {
                section_number: 0,
                section_offset: 0,
            })),
            batchable: None,
        },
        &[],
    );
    p.inject_client(&f).unwrap();
    let (cev, _) = p.drain();
    assert_eq!(dispositions(&cev).len(), 3);
    assert_eq!(p.client.session_unsettled(cs), Some((3, 0)));
    // A wrapping range u32::MAX-1 ..= 1 covers ids 0 and 1.
    let f = amqp_frame(
        0,
        Disposition {
            role: Role::Receiver,
            first: u32::MAX - 1,
            last: Some(1),
            settled: Some(true),
            state: accepted(),
            batchable: None,
        },
        &[],
    );
    p.inject_client(&f).unwrap();
    let (cev, _) = p.drain();
    let d = dispositions(&cev);
    assert_eq!(
        d.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![ids[0], ids[1]]
    );
    assert_eq!(p.client.session_unsettled(cs), Some((1, 0)));
    // The whole range again, settled: only the one left.
    let f = amqp_frame(
        0,
        Disposition {
            role: Role::Receiver,
            first: 0,
            last: Some(u32::MAX),
            settled: Some(true),
            state: accepted(),
            batchable: None,
        },
        &[],
    );
    p.inject_client(&f).unwrap();
    p.inject_client(&f).unwrap();
    let (cev, _) = p.drain();
    assert_eq!(dispositions(&cev).len(), 1);
    assert_eq!(p.client.session_unsettled(cs), Some((0, 0)));
    // Unknown deliveries (and the wrong role) are ignored.
    let f = amqp_frame(
        0,
        Disposition {
            role: Role::Sender,
            first: 0,
            last: Some(u32::MAX),
            settled: Some(true),
            state: accepted(),
            batchable: None,
        },
        &[],
    );
    p.inject_client(&f).unwrap();
    let (cev, _) = p.drain();
    assert!(cev.is_empty());
    assert!(p.client.error().is_none());
}

/// A pair with 512-byte frames and a 2-frame server session window, so that large messages
/// queue on the client.
fn narrow_pair(credit: u32) -> (Pair, SessionId, LinkId, LinkId) {
    let mut c = cfg("client");
    c.max_frame_size = 512;
    let mut s = cfg("server");
    s.max_frame_size = 512;
    s.incoming_window = 2;
    let mut p = Pair::new(c, s);
    let (cs, l, rl) = sender_with(&mut p, sender_cfg("q"), credit);
    (p, cs, l, rl)
}

#[test]
fn abort_a_started_multi_frame_delivery() {
    let (mut p, cs, sender, rl) = narrow_pair(5);
    let d = p
        .client
        .send_bytes(sender, Bytes::from(vec![1u8; 5000]), SendOptions::default())
        .unwrap();
    // Two frames leave (the window), the rest wait.
    let out = p.client_output();
    assert_eq!(transfer_frames(&out).len(), 2);
    p.inject_server(&out).unwrap();
    assert!(p.client.abort(d).unwrap());
    assert_eq!(p.client.session_unsettled(cs), Some((0, 0)));
    let (_, sev) = p.settle();
    assert!(deliveries(&sev).is_empty(), "{sev:?}");
    assert!(sev
        .iter()
        .any(|e| matches!(e, Event::Aborted { delivery } if delivery.number == d.number)));
    // The link goes on.
    let d2 = p
        .client
        .send_bytes(sender, Bytes::from(vec![2u8; 3000]), SendOptions::default())
        .unwrap();
    let (_, sev) = p.settle();
    let ds = deliveries(&sev);
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].delivery.number, d2.number);
    assert_eq!(ds[0].payload.len(), 3000);
    assert!(ds[0].payload.iter().all(|&b| b == 2));
    // Aborting a delivery that is already on the wire in full does nothing.
    assert!(!p.client.abort(d2).unwrap());
    assert_eq!(p.server.link_credit(rl), p.client.link_credit(sender));
    assert!(p.server.error().is_none());
}

#[test]
fn abort_the_queued_delivery_not_the_one_in_progress() {
    let (mut p, _cs, sender, rl) = narrow_pair(5);
    let a = p
        .client
        .send_bytes(sender, Bytes::from(vec![1u8; 5000]), SendOptions::default())
        .unwrap();
    let b = p
        .client
        .send_bytes(sender, Bytes::from(vec![2u8; 5000]), SendOptions::default())
        .unwrap();
    // A has started on the wire; B is wholly queued. Aborting B must leave A intact.
    assert!(p.client.abort(b).unwrap());
    let c = p
        .client
        .send_bytes(sender, Bytes::from(vec![3u8; 100]), SendOptions::default())
        .unwrap();
    let (cev, sev) = p.settle();
    let ds = deliveries(&sev);
    let got: Vec<_> = ds
        .iter()
        .map(|d| (d.delivery.number, d.payload.len(), d.payload[0]))
        .collect();
    assert_eq!(got, vec![(a.number, 5000, 1), (c.number, 100, 3)]);
    // The aborted delivery is reported to the receiver, and credit stays in step.
    assert!(sev
        .iter()
        .any(|e| matches!(e, Event::Aborted { delivery } if delivery.number == b.number)));
    assert_eq!(p.server.link_credit(rl), Some(2));
    assert_eq!(p.client.link_credit(sender), Some(2));
    assert!(p.client.error().is_none() && p.server.error().is_none());
    let _ = cev;
}

#[test]
fn crafted_aborted_transfers() {
    let mut p = Pair::default_pair();
    let (_, _sender, rl) = sender_with(&mut p, sender_cfg("q"), 5);
    let t = |id: Option<u32>, more: bool, aborted: bool| Transfer {
        handle: 0,
        delivery_id: id,
        delivery_tag: id.map(|i| Bytes::from(vec![i as u8])),
        message_format: id.map(|_| 0),
        more: Some(more),
        aborted: aborted.then_some(true),
        settled: aborted.then_some(true),
        ..Transfer::default()
    };
    // Two frames then an abort.
    let mut bytes = amqp_frame(0, t(Some(0), true, false), b"part one");
    bytes.extend(amqp_frame(0, t(None, true, false), b"part two"));
    bytes.extend(amqp_frame(0, t(None, false, true), b""));
    p.inject_server(&bytes).unwrap();
    let (_, sev) = p.drain();
    assert!(deliveries(&sev).is_empty());
    assert!(matches!(&sev[..], [Event::Aborted { delivery }] if delivery.number == 0));
    // An aborted first (and only) frame: reported too, and it used its credit.
    p.inject_server(&amqp_frame(0, t(Some(1), false, true), b""))
        .unwrap();
    let (_, sev) = p.drain();
    assert!(
        matches!(&sev[..], [Event::Aborted { delivery }] if delivery.number == 1),
        "{sev:?}"
    );
    assert_eq!(p.server.link_credit(rl), Some(3));
    // Then a normal delivery.
    p.inject_server(&amqp_frame(0, t(Some(2), false, false), b"whole"))
        .unwrap();
    let (_, sev) = p.drain();
    assert_eq!(deliveries(&sev)[0].payload, Bytes::from_static(b"whole"));
    let ss = p.server.sessions()[0];
    assert_eq!(p.server.session_unsettled(ss), Some((0, 1)));
}

#[test]
fn small_session_window_queues_frames_on_the_sender() {
    // The client receiver's session accepts 2 frames at a time.
    let mut p = Pair::default_pair();
    p.client.open().unwrap();
    let s = p
        .client
        .begin_session(SessionConfig {
            incoming_window: Some(2),
            ..Default::default()
        })
        .unwrap();
    let rcv = p.client.attach_receiver(s, receiver_cfg("q")).unwrap();
    let (_, sev) = p.run_auto(0);
    let srv = sev
        .iter()
        .find_map(|e| match e {
            Event::LinkOpened { link, .. } => Some(*link),
            _ => None,
        })
        .unwrap();
    p.client.flow(rcv, 100, false).unwrap();
    p.settle();
    assert_eq!(p.server.link_credit(srv), Some(100));
    for i in 0..40 {
        p.server
            .send_bytes(srv, Bytes::from(vec![i as u8; 100]), SendOptions::default())
            .unwrap();
    }
    // Never more than the window in flight per step; all arrive, in order.
    let mut got = vec![];
    for _ in 0..200 {
        let out = p.server_output();
        let n = transfer_frames(&out).len();
        assert!(n <= 2, "{n} transfers in one flight");
        p.inject_client(&out).unwrap();
        let (cev, _) = p.drain();
        for d in deliveries(&cev) {
            got.push(d.payload[0]);
            p.client.disposition(d.delivery, accepted(), true).unwrap();
        }
        let back = p.client_output();
        p.inject_server(&back).unwrap();
        p.drain();
        if got.len() == 40 {
            break;
        }
    }
    assert_eq!(got, (0..40).collect::<Vec<u8>>());
    p.settle();
    assert_no_unsettled(&p);
}

#[test]
fn multi_frame_messages_through_a_one_frame_window() {
    let mut c = cfg("client");
    c.max_frame_size = 512;
    c.incoming_window = 1;
    let mut s = cfg("server");
    s.max_frame_size = 512;
    s.incoming_window = 1;
    let mut p = Pair::new(c, s);
    let (_, sender, _) = sender_with(&mut p, sender_cfg("q"), 10);
    let bodies: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; 700 * (i + 1)]).collect();
    for b in &bodies {
        p.client
            .send_bytes(sender, Bytes::from(b.clone()), SendOptions::default())
            .unwrap();
    }
    let mut got = vec![];
    for _ in 0..500 {
        p.step();
        let (_, sev) = p.drain();
        got.extend(deliveries(&sev).into_iter().map(|d| d.payload.to_vec()));
        if got.len() == 5 {
            break;
        }
    }
    assert_eq!(got, bodies);
    assert!(p.client.error().is_none() && p.server.error().is_none());
}

#[test]
fn no_state_left_after_detach_end_and_close() {
    let mut p = Pair::default_pair();
    let (cs, sender, _) = sender_with(&mut p, sender_cfg("q"), 10);
    // Unsettled deliveries both ways, never settled.
    for i in 0..5 {
        p.client
            .send(sender, &msg(i), SendOptions::default())
            .unwrap();
    }
    p.settle();
    let ss = p.server.sessions()[0];
    assert_eq!(p.client.session_unsettled(cs), Some((5, 0)));
    assert_eq!(p.server.session_unsettled(ss), Some((0, 5)));
    p.client.detach(sender, true, None).unwrap();
    p.settle();
    assert!(p.client.links().is_empty() && p.server.links().is_empty());
    assert_eq!(p.client.session_unsettled(cs), Some((0, 0)));
    assert_eq!(p.server.session_unsettled(ss), Some((0, 0)));
    // Links in a session that ends are gone with it.
    let l2 = p.client.attach_sender(cs, sender_cfg("q2")).unwrap();
    let _l3 = p.client.attach_receiver(cs, receiver_cfg("q3")).unwrap();
    p.run_auto(5);
    p.client.send(l2, &msg(0), SendOptions::default()).unwrap();
    p.settle();
    assert_eq!(p.client.links().len(), 2);
    p.client.end_session(cs, None).unwrap();
    p.settle();
    assert!(p.client.sessions().is_empty() && p.server.sessions().is_empty());
    assert!(p.client.links().is_empty() && p.server.links().is_empty());
    // Close with live sessions and links: nothing is left either.
    let s = p.client.begin_session(SessionConfig::default()).unwrap();
    p.client.attach_sender(s, sender_cfg("q4")).unwrap();
    p.run_auto(5);
    assert_eq!(p.server.links().len(), 1);
    p.client.close(None).unwrap();
    p.settle();
    assert!(p.client.is_finished() && p.server.is_finished());
    assert!(p.client.sessions().is_empty() && p.server.sessions().is_empty());
    assert!(p.client.links().is_empty() && p.server.links().is_empty());
}

#[test]
fn detach_and_end_before_the_peer_answers() {
    // We detach (and end) before the peer's attach (begin) reply arrives: the late replies
    // must not look like new remote-initiated endpoints, nor fail the connection.
    let mut p = Pair::default_pair();
    p.client.open().unwrap();
    let s = p.client.begin_session(SessionConfig::default()).unwrap();
    let l = p.client.attach_sender(s, sender_cfg("q")).unwrap();
    p.client.detach(l, true, None).unwrap();
    let (cev, _) = p.run_auto(1);
    assert!(
        !cev.iter().any(|e| matches!(
            e,
            Event::LinkOpened {
                remote_initiated: true,
                ..
            }
        )),
        "{cev:?}"
    );
    assert!(p.client.links().is_empty(), "{:?}", p.client.links());
    assert!(p.server.links().is_empty());
    p.client.end_session(s, None).unwrap();
    let s2 = p.client.begin_session(SessionConfig::default()).unwrap();
    p.client.end_session(s2, None).unwrap();
    let (cev, _) = p.run_auto(1);
    assert!(p.client.error().is_none(), "{:?}", p.client.error());
    assert!(p.server.error().is_none(), "{:?}", p.server.error());
    assert!(
        !cev.iter().any(|e| matches!(
            e,
            Event::SessionOpened {
                remote_initiated: true,
                ..
            }
        )),
        "{cev:?}"
    );
    assert!(p.client.sessions().is_empty(), "{:?}", p.client.sessions());
    assert!(p.server.sessions().is_empty());
}

#[test]
fn peer_ends_or_detaches_what_we_never_answered() {
    // The server never accepts: the client ends the session / detaches the link first.
    let mut p = Pair::default_pair();
    p.client.open().unwrap();
    let s = p.client.begin_session(SessionConfig::default()).unwrap();
    p.step();
    let (_, sev) = p.drain();
    assert!(sev.contains(&Event::ConnectionOpened));
    p.server.open().unwrap();
    // The server has a remote-initiated session it has not begun.
    p.client.end_session(s, None).unwrap();
    let b = p.client_output();
    p.inject_server(&b).unwrap();
    let out = p.server_output();
    let ps = performatives(&decode_wire(&out));
    // A begin (answering) must precede the end; never an end on an unknown channel.
    let kinds: Vec<_> = ps
        .iter()
        .filter(|(_, p, _)| !matches!(p, Performative::Open(_)))
        .map(|(ch, p, _)| (*ch, p.name()))
        .collect();
    assert_eq!(kinds, vec![(0, "begin"), (0, "end")], "{ps:?}");
    p.inject_client(&out).unwrap();
    p.settle();
    assert!(p.client.error().is_none() && p.server.error().is_none());
    assert!(p.client.sessions().is_empty() && p.server.sessions().is_empty());

    // Same for a link the server never accepted.
    let s = p.client.begin_session(SessionConfig::default()).unwrap();
    p.step();
    let (_, sev) = p.drain();
    for e in &sev {
        if let Event::SessionOpened { session, .. } = e {
            p.server.accept_session(*session).unwrap();
        }
    }
    p.settle();
    let l = p.client.attach_receiver(s, receiver_cfg("q")).unwrap();
    p.client.detach(l, true, None).unwrap();
    let b = p.client_output();
    p.inject_server(&b).unwrap();
    let out = p.server_output();
    let ps = performatives(&decode_wire(&out));
    let kinds: Vec<_> = ps.iter().map(|(_, p, _)| p.name()).collect();
    assert_eq!(kinds, vec!["attach", "detach"], "{ps:?}");
    for (_, pf, _) in &ps {
        match pf {
            Performative::Attach(a) => assert_eq!(a.handle, 0),
            Performative::Detach(d) => assert_eq!(d.handle, 0),
            _ => {}
        }
    }
    p.inject_client(&out).unwrap();
    p.settle();
    assert!(p.client.error().is_none() && p.server.error().is_none());
    assert!(p.client.links().is_empty() && p.server.links().is_empty());
}

/// 2.7.4: the flow a sender sends carries its actual drain mode. A draining sender that has
/// nothing more to send answers with drain = true, no credit and its delivery-count advanced;
/// rhea (and Proton) read exactly that as "drained". Once answered, it stays quiet.
#[test]
fn drained_flow_says_drain() {
    let mut p = Pair::default_pair();
    let (_, rcv, srv) = p.open_receiver();
    p.client.flow(rcv, 5, true).unwrap();
    p.settle();
    p.server.send(srv, &msg(0), SendOptions::default()).unwrap();
    p.server.drained(srv).unwrap();
    let flows = |out: &[u8]| -> Vec<Flow> {
        performatives(&decode_wire(out))
            .into_iter()
            .filter_map(|(_, p, _)| match p {
                Performative::Flow(f) => Some(f),
                _ => None,
            })
            .collect()
    };
    let out = p.server_output();
    let f = flows(&out);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].drain, Some(true), "{f:?}");
    assert_eq!(f[0].link_credit, Some(0));
    assert_eq!(f[0].delivery_count, Some(5));
    p.inject_client(&out).unwrap();
    p.settle();
    assert_eq!(p.client.link_credit(rcv), Some(0));
    // Answered: another drained() sends nothing.
    p.server.drained(srv).unwrap();
    assert!(flows(&p.server_output()).is_empty());
}

#[test]
fn echo_flow_is_answered() {
    let mut p = Pair::default_pair();
    let (_, rcv, srv) = p.open_receiver();
    p.client.flow(rcv, 3, false).unwrap();
    p.settle();
    p.server.send(srv, &msg(0), SendOptions::default()).unwrap();
    p.settle();
    // Link echo to the server's sender: it answers with its link state.
    let f = Flow {
        next_incoming_id: Some(1),
        incoming_window: 100,
        next_outgoing_id: 0,
        outgoing_window: 100,
        handle: Some(0),
        delivery_count: Some(1),
        link_credit: Some(2),
        echo: Some(true),
        ..Flow::default()
    };
    p.inject_server(&amqp_frame(0, f, &[])).unwrap();
    let flows: Vec<_> = performatives(&decode_wire(&p.server_output()))
        .into_iter()
        .filter_map(|(_, p, _)| match p {
            Performative::Flow(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert_eq!(flows[0].handle, Some(0));
    assert_eq!(flows[0].delivery_count, Some(1));
    assert_eq!(flows[0].link_credit, Some(2));
    assert_eq!(flows[0].next_outgoing_id, 1);
    assert_ne!(flows[0].echo, Some(true), "no echo ping-pong");
    // Session echo (no handle): a session flow comes back.
    let f = Flow {
        next_incoming_id: Some(1),
        incoming_window: 100,
        next_outgoing_id: 0,
        outgoing_window: 100,
        echo: Some(true),
        ..Flow::default()
    };
    p.inject_server(&amqp_frame(0, f, &[])).unwrap();
    let flows: Vec<_> = performatives(&decode_wire(&p.server_output()))
        .into_iter()
        .filter_map(|(_, p, _)| match p {
            Performative::Flow(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert_eq!(flows[0].handle, None);
    // Link echo to a receiver: it answers with its credit.
    let f = Flow {
        next_incoming_id: Some(0),
        incoming_window: 100,
        next_outgoing_id: 1,
        outgoing_window: 100,
        handle: Some(0),
        delivery_count: Some(1),
        link_credit: Some(0),
        echo: Some(true),
        ..Flow::default()
    };
    p.inject_client(&amqp_frame(0, f, &[])).unwrap();
    let flows: Vec<_> = performatives(&decode_wire(&p.client_output()))
        .into_iter()
        .filter_map(|(_, p, _)| match p {
            Performative::Flow(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert_eq!(flows[0].link_credit, Some(2));
    assert_eq!(flows[0].delivery_count, Some(1));
}

#[test]
fn drain_crossing_a_credit_reduction_agrees_on_zero() {
    // The receiver asks for drain of 10, then (before the sender's answer) lowers credit to
    // 2. The sender drains (delivery-count += 10). Per 2.6.7 both must end at 0 credit.
    let mut p = Pair::default_pair();
    let (_, rcv, srv) = p.open_receiver();
    p.client.flow(rcv, 10, true).unwrap();
    p.settle();
    assert_eq!(p.server.link_credit(srv), Some(10));
    p.client.flow(rcv, 2, false).unwrap();
    let to_server = p.client_output();
    p.server.drained(srv).unwrap();
    let to_client = p.server_output();
    p.inject_server(&to_server).unwrap();
    p.inject_client(&to_client).unwrap();
    p.settle();
    assert_eq!(p.server.link_credit(srv), Some(0));
    assert_eq!(p.client.link_credit(rcv), Some(0));
    assert_eq!(
        p.server.send(srv, &msg(0), SendOptions::default()),
        Err(OpError::NoCredit)
    );
}

#[test]
fn delivery_tags_are_unique() {
    let mut p = Pair::default_pair();
    let (_, sender, _) = sender_with(&mut p, sender_cfg("q"), 1000);
    for i in 0..1000 {
        p.client
            .send(
                sender,
                &msg(i),
                SendOptions {
                    settled: i % 2 == 0,
                    ..Default::default()
                },
            )
            .unwrap();
    }
    let (_, sev) = p.settle();
    let ds = deliveries(&sev);
    assert_eq!(ds.len(), 1000);
    let tags: HashSet<_> = ds.iter().map(|d| d.tag.clone()).collect();
    assert_eq!(tags.len(), 1000);
    let numbers: HashSet<_> = ds.iter().map(|d| d.delivery.number).collect();
    assert_eq!(numbers.len(), 1000);
    // Custom tags are sent as given.
    let mut p = Pair::default_pair();
    let (_, sender, _) = sender_with(&mut p, sender_cfg("q"), 2);
    p.client
        .send(
            sender,
            &msg(0),
            SendOptions {
                tag: Some(b"my-tag"),
                ..Default::default()
            },
        )
        .unwrap();
    let (_, sev) = p.settle();
    assert_eq!(deliveries(&sev)[0].tag, Bytes::from_static(b"my-tag"));
}

#[test]
fn ten_mib_message_across_frames() {
    let mut p = Pair::default_pair();
    let (_, sender, _) = sender_with(&mut p, sender_cfg("q"), 1);
    let body: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let body = Bytes::from(body);
    p.client
        .send_bytes(sender, body.clone(), SendOptions::default())
        .unwrap();
    let (_, sev) = p.settle();
    let ds = deliveries(&sev);
    assert_eq!(ds.len(), 1);
    assert!(ds[0].payload == body, "payload intact");
    assert!(p.c2s_bytes > 10 * 1024 * 1024);
    let frames = p.c2s_bytes / (64 * 1024);
    assert!(frames >= 160, "split into max-frame-size frames");
}

#[test]
fn session_begun_and_ended_before_we_open_is_answered_on_open() {
    let mut p = Pair::default_pair();
    p.client.open().unwrap();
    let s = p.client.begin_session(SessionConfig::default()).unwrap();
    let l = p.client.attach_sender(s, sender_cfg("q")).unwrap();
    p.client.detach(l, false, None).unwrap();
    p.client.end_session(s, None).unwrap();
    let b = p.client_output();
    p.inject_server(&b).unwrap();
    // Nothing can be answered before our open.
    let header = p.server_output();
    let out = decode_wire(&header);
    assert!(performatives(&out).is_empty(), "{out:?}");
    p.inject_client(&header).unwrap();
    p.server.open().unwrap();
    let out = p.server_output();
    let kinds: Vec<_> = performatives(&decode_wire(&out))
        .iter()
        .map(|(_, p, _)| p.name())
        .collect();
    assert_eq!(kinds, vec!["open", "begin", "attach", "detach", "end"]);
    p.inject_client(&out).unwrap();
    p.settle();
    assert!(p.client.error().is_none() && p.server.error().is_none());
    assert!(p.client.sessions().is_empty() && p.server.sessions().is_empty());
    assert!(p.client.links().is_empty() && p.server.links().is_empty());
}

#[test]
fn nothing_is_sent_on_a_link_after_its_session_ended() {
    let mut p = Pair::default_pair();
    let (cs, sender, _) = sender_with(&mut p, sender_cfg("q"), 10);
    p.client.end_session(cs, None).unwrap();
    assert!(p
        .client
        .send(sender, &msg(0), SendOptions::default())
        .is_err());
    let out = p.client_output();
    assert!(transfer_frames(&out).is_empty());
    p.inject_server(&out).unwrap();
    p.settle();
    assert!(p.client.error().is_none() && p.server.error().is_none());
    assert!(p.client.sessions().is_empty() && p.server.sessions().is_empty());
}

#[test]
fn queued_frames_of_a_detached_link_are_dropped() {
    // Frames waiting for the session window must not follow the link's detach.
    let (mut p, cs, sender, _) = narrow_pair(5);
    p.client
        .send_bytes(sender, Bytes::from(vec![1u8; 5000]), SendOptions::default())
        .unwrap();
    p.client
        .send_bytes(sender, Bytes::from(vec![2u8; 5000]), SendOptions::default())
        .unwrap();
    p.client.detach(sender, true, None).unwrap();
    let mut after_detach = 0;
    let mut detached = false;
    for _ in 0..50 {
        let out = p.client_output();
        for (_, pf, _) in performatives(&decode_wire(&out)) {
            match pf {
                Performative::Detach(_) => detached = true,
                Performative::Transfer(_) if detached => after_detach += 1,
                _ => {}
            }
        }
        p.inject_server(&out).unwrap();
        let back = p.server_output();
        p.inject_client(&back).unwrap();
        p.drain();
    }
    assert!(detached);
    assert_eq!(after_detach, 0, "transfers after detach");
    assert!(p.client.error().is_none() && p.server.error().is_none());
    assert!(p.client.links().is_empty() && p.server.links().is_empty());
    assert_eq!(p.client.session_unsettled(cs), Some((0, 0)));
    // The session goes on: a new link works.
    let l2 = p.client.attach_sender(cs, sender_cfg("q2")).unwrap();
    p.run_auto(1);
    p.client
        .send_bytes(l2, Bytes::from(vec![3u8; 10]), SendOptions::default())
        .unwrap();
    let (_, sev) = p.settle();
    assert_eq!(deliveries(&sev).len(), 1);
}

#[test]
fn credit_lowered_while_transfers_are_in_flight() {
    // Transfers the sender sent under a larger grant are legitimate even after the receiver
    // lowered its credit (they crossed the flow): no transfer-limit-exceeded.
    let mut p = Pair::default_pair();
    let (_, rcv, srv) = p.open_receiver();
    p.client.flow(rcv, 10, false).unwrap();
    p.settle();
    for i in 0..5 {
        p.server.send(srv, &msg(i), SendOptions::default()).unwrap();
    }
    let transfers = p.server_output();
    p.client.flow(rcv, 2, false).unwrap();
    let lowered = p.client_output();
    p.inject_client(&transfers).unwrap();
    p.inject_server(&lowered).unwrap();
    let (cev, sev) = p.settle();
    assert_eq!(deliveries(&cev).len(), 5);
    assert!(
        !cev.iter().any(|e| matches!(e, Event::LinkError { .. })),
        "{cev:?}"
    );
    assert!(!sev.iter().any(|e| matches!(e, Event::LinkClosed { .. })));
    assert_eq!(p.client.link_credit(rcv), Some(0));
    assert_eq!(p.server.link_credit(srv), Some(0));
    // Beyond every grant is still refused.
    let (mut p, _, _) = {
        let mut p = Pair::default_pair();
        let (s, l, rl) = p.open_sender(1);
        let _ = s;
        (p, l, rl)
    };
    let t = Transfer {
        handle: 0,
        delivery_id: Some(0),
        delivery_tag: Some(Bytes::from_static(b"a")),
        message_format: Some(0),
        ..Transfer::default()
    };
    let mut bytes = amqp_frame(0, t.clone(), b"x");
    bytes.extend(amqp_frame(
        0,
        Transfer {
            delivery_id: Some(1),
            delivery_tag: Some(Bytes::from_static(b"b")),
            ..t
        },
        b"y",
    ));
    p.inject_server(&bytes).unwrap();
    let (_, sev) = p.drain();
    assert!(sev
        .iter()
        .any(|e| matches!(e, Event::LinkError { error, .. }
        if error.condition == condition::TRANSFER_LIMIT_EXCEEDED)));
}

#[test]
fn drained_flow_does_not_overtake_queued_transfers() {
    // The receiver's session takes one frame at a time, so the sender's transfers queue; its
    // drained flow (delivery-count including them) must go out after them.
    let mut p = Pair::default_pair();
    p.client.open().unwrap();
    let s = p
        .client
        .begin_session(SessionConfig {
            incoming_window: Some(1),
            ..Default::default()
        })
        .unwrap();
    let rcv = p.client.attach_receiver(s, receiver_cfg("q")).unwrap();
    let (_, sev) = p.run_auto(0);
    let srv = sev
        .iter()
        .find_map(|e| match e {
            Event::LinkOpened { link, .. } => Some(*link),
            _ => None,
        })
        .unwrap();
    p.client.flow(rcv, 5, true).unwrap();
    p.settle();
    for i in 0..3 {
        p.server.send(srv, &msg(i), SendOptions::default()).unwrap();
    }
    p.server.drained(srv).unwrap();
    let mut order = vec![];
    let mut all = vec![];
    for _ in 0..20 {
        let out = p.server_output();
        for (_, pf, _) in performatives(&decode_wire(&out)) {
            match pf {
                Performative::Transfer(_) => order.push("transfer"),
                Performative::Flow(f) if f.handle.is_some() => order.push("link-flow"),
                _ => {}
            }
        }
        p.inject_client(&out).unwrap();
        let (cev, _) = p.drain();
        all.extend(cev);
        let back = p.client_output();
        p.inject_server(&back).unwrap();
        p.drain();
    }
    assert_eq!(order, vec!["transfer", "transfer", "transfer", "link-flow"]);
    assert_eq!(deliveries(&all).len(), 3);
    assert!(all.iter().any(|e| matches!(e, Event::LinkDrained { .. })));
    assert!(!all.iter().any(|e| matches!(e, Event::LinkError { .. })));
    assert_eq!(p.client.link_credit(rcv), Some(0));
}

#[test]
fn credit_granted_and_lowered_before_the_attach_reply() {
    // The receiver grants 5 and then lowers to 0 (drain) before the sender's attach arrives;
    // a transfer the sender sent under the first grant is still legitimate.
    let mut p = Pair::default_pair();
    p.client.open().unwrap();
    let s = p.client.begin_session(SessionConfig::default()).unwrap();
    let rcv = p.client.attach_receiver(s, receiver_cfg("q")).unwrap();
    p.client.flow(rcv, 5, false).unwrap();
    let first = p.client_output();
    p.inject_server(&first).unwrap();
    let (_, sev) = p.drain();
    let mut srv = None;
    for e in &sev {
        match e {
            Event::ConnectionOpened => p.server.open().unwrap(),
            Event::SessionOpened { session, .. } => p.server.accept_session(*session).unwrap(),
            Event::LinkOpened { link, .. } => {
                p.server.accept_link(*link, LinkConfig::default()).unwrap();
                srv = Some(*link);
            }
            _ => {}
        }
    }
    let srv = srv.unwrap();
    assert_eq!(p.server.link_credit(srv), Some(5));
    p.server.send(srv, &msg(0), SendOptions::default()).unwrap();
    p.client.flow(rcv, 0, true).unwrap();
    let (cev, sev) = p.settle();
    assert_eq!(deliveries(&cev).len(), 1);
    assert!(
        !cev.iter().any(|e| matches!(e, Event::LinkError { .. })),
        "{cev:?}"
    );
    assert!(!sev.iter().any(|e| matches!(e, Event::LinkClosed { .. })));
}

#[test]
fn early_session_flow_counts_transfers_already_sent() {
    // The receiver's session window is 2. It grants credit twice before the peer's begin
    // reaches it (so its flows carry no next-incoming-id); the second flow arrives after the
    // sender has used the window. The sender must not take it as a fresh window of 2.
    let mut p = Pair::default_pair();
    p.client.open().unwrap();
    let s = p
        .client
        .begin_session(SessionConfig {
            incoming_window: Some(2),
            ..Default::default()
        })
        .unwrap();
    let rcv = p.client.attach_receiver(s, receiver_cfg("q")).unwrap();
    p.client.flow(rcv, 3, false).unwrap();
    let first = p.client_output();
    p.client.flow(rcv, 21, false).unwrap();
    let second = p.client_output();
    let f = first_flow(&second);
    assert_eq!(f.next_incoming_id, None, "written before the peer's begin");
    p.inject_server(&first).unwrap();
    let (_, sev) = p.drain();
    let mut srv = None;
    for e in &sev {
        match e {
            Event::ConnectionOpened => p.server.open().unwrap(),
            Event::SessionOpened { session, .. } => p.server.accept_session(*session).unwrap(),
            Event::LinkOpened { link, .. } => {
                p.server.accept_link(*link, LinkConfig::default()).unwrap();
                srv = Some(*link);
            }
            _ => {}
        }
    }
    let srv = srv.unwrap();
    for i in 0..3 {
        p.server.send(srv, &msg(i), SendOptions::default()).unwrap();
    }
    let sent = p.server_output();
    assert_eq!(transfer_frames(&sent).len(), 2, "the window is 2");
    // The late flow: still no room.
    p.inject_server(&second).unwrap();
    assert!(transfer_frames(&p.server_output()).is_empty());
    p.inject_client(&sent).unwrap();
    let (cev, _) = p.settle();
    assert!(
        !cev.iter().any(|e| matches!(e, Event::SessionError { .. })),
        "{cev:?}"
    );
    assert_eq!(deliveries(&cev).len(), 3);
}

fn first_flow(bytes: &[u8]) -> Flow {
    performatives(&decode_wire(bytes))
        .into_iter()
        .find_map(|(_, p, _)| match p {
            Performative::Flow(f) => Some(f),
            _ => None,
        })
        .expect("a flow")
}
