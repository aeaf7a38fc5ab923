//! Smoke tests: a few hand-checked encodings and round trips through the main entry points.

use amqp_proto::frame::*;
use amqp_proto::message::*;
use amqp_proto::messaging::*;
use amqp_proto::performatives::*;
use amqp_proto::*;
use bytes::{Bytes, BytesMut};

#[test]
fn open_roundtrip_and_trailing_nulls() {
    let open = Open {
        container_id: "c".into(),
        hostname: None,
        max_frame_size: Some(65536),
        ..Open::default()
    };
    let b = open.to_bytes();
    // 00 53 10 c0 size count ; container-id str8 "c"; null hostname; max-frame-size uint
    assert_eq!(&b[..3], &[0x00, 0x53, 0x10]);
    assert_eq!(b[3], 0xc0);
    assert_eq!(b[5], 3, "three fields, trailing nulls elided");
    assert_eq!(Open::from_bytes(&b).unwrap(), open);
}

#[test]
fn transfer_frame_roundtrip_zero_copy() {
    let msg = Message::builder()
        .message_id(42u64)
        .subject("s")
        .application_property("k", 1i32)
        .data(Bytes::from(vec![7u8; 100]))
        .build();
    let payload = msg.to_bytes();
    let t = Performative::Transfer(Transfer {
        handle: 0,
        delivery_id: Some(1),
        delivery_tag: Some(Bytes::from_static(b"t1")),
        message_format: Some(0),
        ..Transfer::default()
    });
    let mut wire = BytesMut::new();
    encode_frame(&mut wire, 3, &t, &payload);
    let mut dec = FrameDecoder::new(1 << 20);
    let f = match dec.decode(&mut wire).unwrap() {
        Decoded::Frame(f) => f,
        Decoded::NeedMore(_) => panic!(),
    };
    assert_eq!(f.channel, 3);
    match f.body {
        FrameBody::Amqp {
            performative,
            payload: p,
        } => {
            assert_eq!(performative, t);
            let m = Message::decode(&p).unwrap();
            assert_eq!(m, msg);
        }
        _ => panic!(),
    }
}

#[test]
fn delivery_state_union() {
    let s = DeliveryState::Rejected(Rejected {
        error: Some(definitions::Error::new(
            definitions::condition::DECODE_ERROR,
            "bad",
        )),
    });
    let b = s.to_bytes();
    assert_eq!(DeliveryState::from_bytes(&b).unwrap(), s);
}

#[test]
fn bad_inputs_are_errors() {
    for bad in [
        &[0xd0u8, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1][..],
        &[0xa1, 5, b'a'],
        &[0xf0, 0, 0, 0, 10, 0xff, 0xff, 0xff, 0xff, 0x40, 0],
        &[0x00, 0x00],
        &[0xff],
    ] {
        let b = Bytes::copy_from_slice(bad);
        assert!(Value::from_bytes(&b).is_err(), "{bad:?}");
    }
    // Depth bomb.
    let mut deep = vec![];
    for _ in 0..1000 {
        deep.extend_from_slice(&[0x00, 0x53, 0x01]);
    }
    deep.push(0x40);
    let b = Bytes::from(deep);
    assert!(matches!(
        Value::from_bytes(&b).unwrap_err().kind(),
        DecodeErrorKind::DepthExceeded(_)
    ));
}

#[test]
fn missing_mandatory_field_named() {
    // attach with only a name
    let b = Bytes::from_static(&[0x00, 0x53, 0x12, 0xc0, 0x04, 0x01, 0xa1, 0x01, b'n']);
    let e = Attach::from_bytes(&b).unwrap_err();
    assert_eq!(e.composite(), Some("attach"));
    assert_eq!(e.field(), Some("handle"));
    assert_eq!(e.kind(), &DecodeErrorKind::MissingField);
}
