//! The fuzz target bodies on a small seed corpus, so CI runs them without a fuzzer.

use std::time::Instant;

use amqp_engine::fuzzing::*;
use amqp_proto::frame::encode_frame;
use amqp_proto::performatives::{Attach, Begin, Flow, Open, Performative, Transfer};
use bytes::BytesMut;

fn frames(ps: Vec<(u16, Performative, Vec<u8>)>) -> Vec<u8> {
    let mut b = BytesMut::new();
    for (ch, p, payload) in ps {
        encode_frame(&mut b, ch, &p, &payload);
    }
    b.to_vec()
}

fn session_traffic() -> Vec<u8> {
    frames(vec![
        (
            0,
            Open {
                container_id: "peer".into(),
                ..Open::default()
            }
            .into(),
            vec![],
        ),
        (
            0,
            Begin {
                next_outgoing_id: 0,
                incoming_window: 100,
                outgoing_window: 100,
                ..Begin::default()
            }
            .into(),
            vec![],
        ),
        (
            0,
            Attach {
                name: "l".into(),
                handle: 0,
                role: amqp_proto::definitions::Role::Sender,
                initial_delivery_count: Some(0),
                ..Attach::default()
            }
            .into(),
            vec![],
        ),
        (
            0,
            Transfer {
                handle: 0,
                delivery_id: Some(0),
                delivery_tag: Some(bytes::Bytes::from_static(b"t")),
                message_format: Some(0),
                more: Some(true),
                ..Transfer::default()
            }
            .into(),
            vec![1; 100],
        ),
        (
            0,
            Transfer {
                handle: 0,
                ..Transfer::default()
            }
            .into(),
            vec![2; 100],
        ),
        (
            0,
            Flow {
                incoming_window: 10,
                handle: Some(0),
                echo: Some(true),
                ..Flow::default()
            }
            .into(),
            vec![],
        ),
    ])
}

fn corpus() -> Vec<Vec<u8>> {
    let traffic = session_traffic();
    let mut v = vec![
        vec![],
        vec![0],
        vec![0xff; 64],
        b"\x00GET / HTTP/1.1\r\n\r\n".to_vec(),
        [&[0u8][..], &traffic].concat(),
        [&[3u8][..], &traffic].concat(),
        [&[1u8][..], &traffic[..traffic.len() / 2]].concat(),
    ];
    // Truncations and single-byte corruptions of the valid traffic.
    for cut in (0..traffic.len()).step_by(7) {
        v.push([&[0u8][..], &traffic[..cut]].concat());
        let mut t = traffic.clone();
        t[cut] ^= 0x55;
        v.push([&[5u8][..], &t].concat());
    }
    v
}

#[test]
fn server_input_corpus() {
    let now = Instant::now();
    for input in corpus() {
        fuzz_server_input(&input, now);
    }
}

#[test]
fn client_input_corpus() {
    let now = Instant::now();
    for input in corpus() {
        fuzz_client_input(&input, now);
        // Odd first byte: a valid header in front.
        let mut odd = input.clone();
        if let Some(b) = odd.first_mut() {
            *b |= 1;
        }
        fuzz_client_input(&odd, now);
    }
}

#[test]
fn sasl_server_input_corpus() {
    let now = Instant::now();
    let init = |mech: &str, resp: &[u8]| {
        let mut b = BytesMut::new();
        amqp_proto::frame::encode_sasl_frame(
            &mut b,
            &amqp_proto::sasl::SaslFrame::SaslInit(amqp_proto::sasl::SaslInit {
                mechanism: mech.into(),
                initial_response: Some(bytes::Bytes::copy_from_slice(resp)),
                hostname: None,
            }),
        );
        b.to_vec()
    };
    let mut inputs = corpus();
    for (mech, resp) in [
        ("PLAIN", &b"\0user\0password"[..]),
        ("PLAIN", b"\0user\0wrong"),
        ("ANONYMOUS", b""),
        ("EXTERNAL", b""),
        ("SCRAM-SHA-256", b"n,,n=user,r=abcdefghijklmnop"),
        ("SCRAM-SHA-1", b"garbage"),
        ("NOPE", b""),
    ] {
        let f = init(mech, resp);
        inputs.push([&[0u8][..], &f].concat());
        inputs.push(
            [
                &[3u8][..],
                &f,
                &b"AMQP\x00\x01\x00\x00"[..],
                &session_traffic(),
            ]
            .concat(),
        );
    }
    for input in inputs {
        fuzz_sasl_server_input(&input, now);
    }
}

#[test]
fn pair_ops_corpus() {
    let now = Instant::now();
    // A few hand-made scripts, then pseudo-random ones.
    // Op bytes are `code << 1 | side` (0 client, 1 server); see amqp_engine::fuzzing.
    let open_and_send: Vec<u8> = vec![
        0, // no automatic answers
        0, 0, 1, 0, 0, 1, // max-frame-size 512 and window 2, both sides
        0, 26, 0, // client open, shuttle
        1, 26, 0, // server open
        2, 0, 26, 0, // client begins a session
        5, 0, 26, 0, // server accepts it
        6, 0, 2, 0, 1, 26, 0, // client attaches a sender (unsettled)
        9, 0, 1, 26, 0, // server accepts the link
        11, 0, 10, 1, 26, 0, // server grants 10 credit
        12, 0, 0, 100, 1, 1, 26, 0, // client sends 100 bytes
        15, 0, 1, 1, 26, 0, // server accepts and settles
        22, 0, 1, 26, 0, // client closes (0 % 64 == 0: really)
    ];
    let report = fuzz_pair_ops(&open_and_send, now);
    assert_eq!(report.deliveries, 1, "{report:?}");
    assert_eq!(report.dispositions, 1, "{report:?}");
    let mut x: u64 = 0x1234_5678_9abc_def0;
    let mut total = PairOpsReport::default();
    for _ in 0..200 {
        let len = (x % 1000) as usize;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push((x >> 24) as u8);
        }
        let r = fuzz_pair_ops(&v, now);
        total.deliveries += r.deliveries;
        total.dispositions += r.dispositions;
    }
    // The random scripts get deep enough to move messages and outcomes.
    assert!(total.deliveries > 20, "{total:?}");
    assert!(total.dispositions > 5, "{total:?}");
}

/// Inputs that once made a fuzz target fail, kept so the fix stays fixed.
#[test]
fn fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("pair_ops") {
            let _ = amqp_engine::fuzzing::fuzz_pair_ops(&data, std::time::Instant::now());
        } else if name.starts_with("messaging") {
            let _ = amqp_engine::fuzzing::fuzz_messaging(&data, std::time::Instant::now());
        }
        n += 1;
    }
    assert!(n > 0);
}

/// A hand-made messaging script, then pseudo-random ones: the scripts must get deep enough to
/// open connections, move messages, report outcomes and see transports cut.
#[test]
fn messaging_corpus() {
    let now = Instant::now();
    // Op bytes are `node << 5 | code`; see amqp_engine::fuzzing::fuzz_messaging.
    let wait = |ms: u8| [0x1f, ms];
    let mut script: Vec<u8> = vec![
        7, 3, // world seed, latency
        0b11, 10, 0b11, 10, 0b11, 10,   // every node: auto-accept, auto-settle, prefetch 10
        0x00, // node 0 listens
        0x21, 0, 0, 3, 0, // node 1 connects to node 0 (failover to itself), reconnect on
    ];
    script.extend(wait(50));
    script.extend([0x23, 1, 0]); // node 1: sender to q1 on its connection
    script.extend(wait(50));
    for _ in 0..5 {
        script.extend([0x25, 0, 0]); // node 1 sends a small message on its first link
    }
    script.extend(wait(100));
    script.push(0x31); // node 1: cut a random transport
    script.extend(wait(250));
    script.extend([0x25, 0, 0]);
    script.extend(wait(250));
    let r = fuzz_messaging(&script, now);
    assert!(r.opened >= 2, "{r:?}");
    assert_eq!(r.sent, 6, "{r:?}");
    assert_eq!(r.received, 6, "{r:?}");
    assert_eq!(r.outcomes, 6, "{r:?}");
    assert!(r.disconnects >= 2, "{r:?}");

    // Node 0 stops reading while node 1 sends it large messages, then reads again.
    let mut script: Vec<u8> = vec![7, 3, 0b11, 10, 0b11, 10, 0b11, 10, 0x21, 0, 0, 3, 0];
    script.extend(wait(50));
    script.extend([0x23, 1, 0]);
    script.extend(wait(50));
    script.push(0x16); // node 0 stalls
    for _ in 0..8 {
        script.extend([0x25, 255, 0]); // 16 KiB messages
    }
    script.extend(wait(250));
    script.push(0x16); // node 0 reads again
    script.extend(wait(250));
    let r = fuzz_messaging(&script, now);
    assert_eq!((r.sent, r.received, r.outcomes), (8, 8, 8), "{r:?}");

    // The fuzz target's checked-in seeds (these scripts among them).
    let seeds =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/seed_messaging_ops");
    let mut n = 0;
    for entry in std::fs::read_dir(seeds).unwrap() {
        fuzz_messaging(&std::fs::read(entry.unwrap().path()).unwrap(), now);
        n += 1;
    }
    assert!(n >= 3);

    let mut x: u64 = 0x0bad_cafe_f00d_d00d;
    let mut total = MessagingReport::default();
    for _ in 0..150 {
        let len = 16 + (x % 600) as usize;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push((x >> 24) as u8);
        }
        let r = fuzz_messaging(&v, now);
        total.sent += r.sent;
        total.received += r.received;
        total.outcomes += r.outcomes;
        total.opened += r.opened;
        total.disconnects += r.disconnects;
    }
    assert!(total.opened > 20, "{total:?}");
    assert!(total.received > 0, "{total:?}");
    assert!(total.disconnects > 10, "{total:?}");
}
