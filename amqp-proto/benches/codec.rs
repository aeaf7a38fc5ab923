//! Codec benchmarks: a transfer frame carrying a message with a 100-byte and a 1 MiB `data` body,
//! encoded and decoded, next to a plain `memcpy` of the same number of bytes.
//!
//! ```sh
//! cargo bench -p amqp-proto --bench codec -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Results and how to read them: `amqp-proto/BENCHMARKS.md`.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;

use amqp_proto::frame::transfer::TransferFields;
use amqp_proto::frame::{
    encode_frame, put_frame_header, FrameBody, FrameDecoder, FRAME_HEADER_SIZE, FRAME_TYPE_AMQP,
};
use amqp_proto::message::{Message, ReceivedMessage};
use amqp_proto::performatives::{Performative, Transfer};
use amqp_proto::Encode;
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// message-id, to, subject, two application properties and a `data` body of `body_len` bytes.
fn message(body_len: usize) -> Message {
    Message::builder()
        .message_id("msg-0001")
        .to("queue/orders")
        .subject("order.created")
        .application_property("tenant", "acme")
        .application_property("seq", 42i64)
        .data(Bytes::from(
            (0..body_len).map(|i| i as u8).collect::<Vec<u8>>(),
        ))
        .build()
}

fn transfer() -> Performative {
    Performative::Transfer(Transfer {
        handle: 0,
        delivery_id: Some(1),
        delivery_tag: Some(Bytes::from_static(&[0, 0, 0, 1])),
        message_format: Some(0),
        settled: Some(false),
        ..Transfer::default()
    })
}

/// Writes the frame header, the performative and the message straight into `buf`, sizes
/// computed first: one pass, no intermediate payload buffer.
fn encode_transfer_with_message(buf: &mut BytesMut, perf: &Performative, msg: &Message) {
    let size = FRAME_HEADER_SIZE + perf.encoded_len() + msg.encoded_len();
    buf.reserve(size);
    put_frame_header(buf, size as u32, FRAME_TYPE_AMQP, 0);
    perf.encode(buf);
    msg.encode(buf);
}

fn bench_size(c: &mut Criterion, label: &str, body_len: usize) {
    let msg = message(body_len);
    let perf = transfer();
    let payload = msg.to_bytes();
    let mut wire = BytesMut::new();
    encode_frame(&mut wire, 0, &perf, &payload);
    let wire = wire.freeze();
    let frame_len = wire.len();

    // Sanity: every path below produces / accepts the same bytes.
    let mut check = BytesMut::new();
    encode_transfer_with_message(&mut check, &perf, &msg);
    assert_eq!(check, wire);
    let dec = FrameDecoder::new(4 << 20);
    match dec.decode_frame(&wire).unwrap().body {
        FrameBody::Amqp { payload, .. } => {
            assert_eq!(Message::decode(&payload).unwrap(), msg);
            let received = ReceivedMessage::decode(payload).unwrap();
            assert_eq!(received.to_message().unwrap(), msg);
        }
        other => panic!("{other:?}"),
    }

    let mut g = c.benchmark_group(format!("transfer_{label}"));
    g.throughput(Throughput::Bytes(frame_len as u64));

    let mut buf = BytesMut::with_capacity(frame_len);
    g.bench_function("encode_frame_preencoded_payload", |b| {
        b.iter(|| {
            buf.clear();
            encode_frame(&mut buf, 0, black_box(&perf), black_box(&payload));
            black_box(buf.len());
        })
    });
    g.bench_function("encode_message_and_frame", |b| {
        b.iter(|| {
            buf.clear();
            encode_transfer_with_message(&mut buf, black_box(&perf), black_box(&msg));
            black_box(buf.len());
        })
    });
    let mut scratch = BytesMut::with_capacity(frame_len);
    g.bench_function("encode_message_then_encode_frame", |b| {
        b.iter(|| {
            scratch.clear();
            black_box(&msg).encode(&mut scratch);
            buf.clear();
            encode_frame(&mut buf, 0, black_box(&perf), &scratch);
            black_box(buf.len());
        })
    });
    g.bench_function("decode_frame_only", |b| {
        b.iter(|| black_box(dec.decode_frame(black_box(&wire)).unwrap()))
    });
    g.bench_function("decode_frame_and_message", |b| {
        b.iter(|| {
            let f = dec.decode_frame(black_box(&wire)).unwrap();
            match f.body {
                FrameBody::Amqp { payload, .. } => black_box(Message::decode(&payload).unwrap()),
                _ => unreachable!(),
            }
        })
    });
    // What a receiver does now: the frame, then a scan of the message's sections (each decoded
    // later, on first access).
    g.bench_function("decode_frame_and_received_message", |b| {
        b.iter(|| {
            let f = dec.decode_frame(black_box(&wire)).unwrap();
            match f.body {
                FrameBody::Amqp { payload, .. } => {
                    black_box(ReceivedMessage::decode(payload).unwrap())
                }
                _ => unreachable!(),
            }
        })
    });
    // The engine's receive path: the transfer's common shape read by the fast path (the frame
    // header is 8 bytes, the descriptor 3), then the message scanned.
    let transfer_at = FRAME_HEADER_SIZE + 3;
    assert!(TransferFields::decode_common(&wire, transfer_at).is_some());
    g.bench_function("decode_transfer_fast_path_and_received_message", |b| {
        b.iter(|| {
            let wire = black_box(&wire);
            let (fields, at) = TransferFields::decode_common(wire, transfer_at).unwrap();
            black_box(fields);
            black_box(ReceivedMessage::decode(wire.slice(at..)).unwrap())
        })
    });
    // The same, then reading what a typical receiver reads: the body and one property.
    g.bench_function("decode_frame_and_received_message_read_body", |b| {
        b.iter(|| {
            let f = dec.decode_frame(black_box(&wire)).unwrap();
            match f.body {
                FrameBody::Amqp { payload, .. } => {
                    let m = ReceivedMessage::decode(payload).unwrap();
                    black_box(m.data().map(<[u8]>::len));
                    black_box(m.application_property("seq").cloned());
                }
                _ => unreachable!(),
            }
        })
    });
    let mut stream = BytesMut::with_capacity(frame_len);
    let mut sdec = FrameDecoder::new(4 << 20);
    g.bench_function("stream_copy_in_decode_frame_and_message", |b| {
        b.iter(|| {
            stream.extend_from_slice(black_box(&wire));
            match sdec.decode(&mut stream).unwrap() {
                amqp_proto::frame::Decoded::Frame(f) => match f.body {
                    FrameBody::Amqp { payload, .. } => {
                        black_box(Message::decode(&payload).unwrap())
                    }
                    _ => unreachable!(),
                },
                amqp_proto::frame::Decoded::NeedMore(_) => unreachable!(),
            }
        })
    });
    let mut dst = vec![0u8; frame_len];
    g.bench_function("memcpy_baseline", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&wire[..]));
            black_box(&dst);
        })
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    bench_size(c, "100B", 100);
    bench_size(c, "1MiB", 1 << 20);
}

criterion_group!(benches, codec);
criterion_main!(benches);
