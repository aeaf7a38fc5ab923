//! The decoder's defences and the framing layer's edge cases: size and count claims that the
//! input cannot back, nesting limits, frame header errors, partial input, protocol headers.

use amqp_proto::codec::{decode_list_of, MAX_ZERO_WIDTH_ARRAY_ELEMENTS};
use amqp_proto::definitions::Fields;
use amqp_proto::frame::*;
use amqp_proto::message::Message;
use amqp_proto::performatives::{Close, Open, Performative};
use amqp_proto::sasl::{SaslFrame, SaslMechanisms};
use amqp_proto::*;
use bytes::{Bytes, BytesMut};

fn b(hex: &str) -> Bytes {
    let hex: String = hex.split_whitespace().collect();
    Bytes::from(
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect::<Vec<u8>>(),
    )
}

fn kind<T: std::fmt::Debug>(r: Result<T, DecodeError>) -> DecodeErrorKind {
    r.expect_err("must fail").kind().clone()
}

// ---------------------------------------------------------------------------------------------
// Counts and sizes the input cannot back
// ---------------------------------------------------------------------------------------------

// Each of these claims ~4 billion elements in about ten bytes. Had the decoder reserved room for
// the claimed count (40+ bytes per `Value`), the allocation would abort the test process.

#[test]
fn huge_list_count_is_refused_before_allocating() {
    assert_eq!(
        kind(Value::from_bytes(&b("d0 00000006 ffffffff 40 40"))),
        DecodeErrorKind::CountExceedsSize {
            count: u32::MAX,
            size: 2
        }
    );
    assert_eq!(
        kind(Value::from_bytes(&b("c0 03 ff 40 40"))),
        DecodeErrorKind::CountExceedsSize {
            count: 255,
            size: 2
        }
    );
}

#[test]
fn huge_map_count_is_refused_before_allocating() {
    assert_eq!(
        kind(Value::from_bytes(&b("d1 00000006 fffffffe 40 40"))),
        DecodeErrorKind::CountExceedsSize {
            count: u32::MAX - 1,
            size: 2
        }
    );
    // Typed maps (fields, annotations) too.
    assert!(matches!(
        kind(Fields::from_bytes(&b("d1 00000006 fffffffe 40 40"))),
        DecodeErrorKind::CountExceedsSize { .. }
    ));
}

#[test]
fn huge_array_count_is_refused_before_allocating() {
    assert_eq!(
        kind(Value::from_bytes(&b("f0 00000007 ffffffff 54 01 02"))),
        DecodeErrorKind::CountExceedsSize {
            count: u32::MAX,
            size: 2
        }
    );
    assert!(matches!(
        kind(Value::from_bytes(&b("e0 04 ff 71 00 00"))),
        DecodeErrorKind::CountExceedsSize { count: 255, .. }
    ));
    // Described array.
    assert!(matches!(
        kind(Value::from_bytes(&b(
            "f0 0000000a ffffffff 00 53 07 54 01 02"
        ))),
        DecodeErrorKind::CountExceedsSize { .. }
    ));
    // Symbol arrays decoded as `Vec<Symbol>` (capabilities, mechanisms).
    assert!(matches!(
        kind(Vec::<Symbol>::from_bytes(&b(
            "f0 00000007 ffffffff a3 01 61"
        ))),
        DecodeErrorKind::CountExceedsSize { .. }
    ));
}

/// Elements of a zero-width constructor take no bytes; their count is bounded separately.
#[test]
fn zero_width_array_elements_are_bounded() {
    for ctor in ["40", "41", "42", "43", "44", "45"] {
        let huge = b(&format!("f0 00000005 ffffffff {ctor}"));
        assert_eq!(
            kind(Value::from_bytes(&huge)),
            DecodeErrorKind::CountExceedsSize {
                count: u32::MAX,
                size: 0
            },
            "ctor {ctor}"
        );
        let max = b(&format!(
            "e0 02 {:02x} {ctor}",
            MAX_ZERO_WIDTH_ARRAY_ELEMENTS
        ));
        let Value::Array(a) = Value::from_bytes(&max).unwrap() else {
            panic!("array")
        };
        assert_eq!(a.elements.len(), MAX_ZERO_WIDTH_ARRAY_ELEMENTS);
        let over = b(&format!(
            "e0 02 {:02x} {ctor}",
            MAX_ZERO_WIDTH_ARRAY_ELEMENTS + 1
        ));
        assert!(Value::from_bytes(&over).is_err());
    }
    // Bytes after zero-width elements are not elements.
    assert!(Value::from_bytes(&b("e0 03 02 40 40")).is_err());
}

#[test]
fn huge_sizes_are_truncation_errors() {
    for hex in [
        "d0 ffffffff 00000001 40",
        "d1 ffffffff 00000002 40 40",
        "f0 ffffffff 00000001 54 01",
        "b0 ffffffff 00",
        "b1 ffffffff 61",
        "b3 ffffffff 61",
        "a1 ff 61",
        "c0 ff 01 40",
    ] {
        assert!(
            matches!(
                kind(Value::from_bytes(&b(hex))),
                DecodeErrorKind::Truncated { .. }
            ),
            "{hex}"
        );
    }
    // A size too small to hold the count.
    assert_eq!(
        kind(Value::from_bytes(&b("d0 00000002 0000"))),
        DecodeErrorKind::SizeMismatch
    );
    assert_eq!(
        kind(Value::from_bytes(&b("f0 00000003 000000"))),
        DecodeErrorKind::SizeMismatch
    );
}

#[test]
fn huge_counts_in_composites_and_sections() {
    // An open whose field list claims 4 billion fields.
    assert!(matches!(
        kind(Open::from_bytes(&b(
            "00 53 10 d0 00000007 ffffffff a1 01 63"
        ))),
        DecodeErrorKind::CountExceedsSize { .. }
    ));
    // A sasl-mechanisms whose array claims 4 billion mechanisms.
    assert!(SaslFrame::from_bytes(&b("00 53 40 c0 0c 01 f0 00000006 ffffffff a3 00")).is_err());
    // An amqp-sequence section claiming 4 billion items.
    assert!(matches!(
        kind(Message::decode(&b("00 53 76 d0 00000005 ffffffff 40"))),
        DecodeErrorKind::CountExceedsSize { .. }
    ));
    let seq = b("d0 00000005 ffffffff 40");
    assert!(decode_list_of::<Value>(&mut Decoder::new(&seq)).is_err());
    // Application properties claiming 4 billion entries.
    assert!(Message::decode(&b("00 53 74 d1 00000007 fffffffe a1 00 40")).is_err());
}

// ---------------------------------------------------------------------------------------------
// Nesting
// ---------------------------------------------------------------------------------------------

/// `depth` nested lists around a null.
fn nested_lists(depth: usize) -> Bytes {
    let mut v = Value::Null;
    for _ in 0..depth {
        v = Value::List(vec![v]);
    }
    v.to_bytes()
}

#[test]
fn default_depth_limit() {
    let max = Limits::default().max_depth as usize;
    assert_eq!(max, 64);
    assert!(Value::from_bytes(&nested_lists(max)).is_ok());
    assert_eq!(
        kind(Value::from_bytes(&nested_lists(max + 1))),
        DecodeErrorKind::DepthExceeded(64)
    );
    // Maps, arrays and described values count too.
    let mut v = Value::Null;
    for i in 0..=max {
        v = match i % 4 {
            0 => Value::Map([(Value::Null, v)].into_iter().collect()),
            1 => Value::Described(Box::new(Described {
                descriptor: Descriptor::Code(1),
                value: v,
            })),
            2 => Value::List(vec![v]),
            _ => Value::Array(Array::new(Type::List, vec![Value::List(vec![v])])),
        };
    }
    assert!(matches!(
        kind(Value::from_bytes(&v.to_bytes())),
        DecodeErrorKind::DepthExceeded(_)
    ));
}

#[test]
fn custom_depth_limit() {
    // Written to keep compiling if `Limits` grows more fields.
    #[allow(clippy::needless_update)]
    let limits = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let decode = |bytes: &Bytes| {
        let mut d = Decoder::with_limits(bytes, limits);
        Value::decode(&mut d)
    };
    assert!(decode(&nested_lists(3)).is_ok());
    assert_eq!(
        kind(decode(&nested_lists(4))),
        DecodeErrorKind::DepthExceeded(3)
    );
    // Described values are a level too. (An empty `list0` is not: it cannot hold anything.)
    let described = Value::Described(Box::new(Described {
        descriptor: Descriptor::Code(9),
        value: Value::List(vec![Value::List(vec![Value::List(vec![Value::Null])])]),
    }));
    assert!(decode(&b("c0 08 01 c0 05 01 c0 02 01 45")).is_ok());
    assert_eq!(
        kind(decode(&described.to_bytes())),
        DecodeErrorKind::DepthExceeded(3)
    );

    // The frame decoder applies its limits to frame bodies: open (1) → properties map (2)
    // → list (3) → list (4).
    let mut properties = Fields::new();
    properties.insert(
        Symbol::from("k"),
        Value::List(vec![Value::List(vec![Value::Null])]),
    );
    let open = Performative::from(Open {
        container_id: "c".into(),
        properties: Some(properties),
        ..Open::default()
    });
    let mut wire = BytesMut::new();
    encode_frame(&mut wire, 0, &open, &[]);
    let mut lenient = wire.clone();
    let mut dec = FrameDecoder::new(1 << 16).with_limits(limits);
    match dec.decode(&mut wire) {
        Err(FrameError::Decode(e)) => assert_eq!(e.kind(), &DecodeErrorKind::DepthExceeded(3)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        FrameDecoder::new(1 << 16).decode(&mut lenient),
        Ok(Decoded::Frame(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

fn framing(r: Result<Decoded<Frame>, FrameError>) -> String {
    match r {
        Err(FrameError::Framing(s)) => s,
        other => panic!("expected a framing error, got {other:?}"),
    }
}

#[test]
fn frame_header_errors() {
    let dec = || FrameDecoder::new(1 << 16);
    // size < 8
    for size in 0..8u32 {
        let mut w = BytesMut::from(&b(&format!("{size:08x} 02 00 0000"))[..]);
        assert!(framing(dec().decode(&mut w)).contains("below 8"), "{size}");
    }
    // doff < 2
    for doff in 0..2 {
        let mut w = BytesMut::from(&b(&format!("0000000c {doff:02x} 00 0000 00534545"))[..]);
        assert!(framing(dec().decode(&mut w)).contains("data offset"));
    }
    // doff * 4 > size
    let mut w = BytesMut::from(&b("0000000c 04 00 0000 00534545")[..]);
    assert!(framing(dec().decode(&mut w)).contains("data offset"));
    // unknown frame type
    for ty in [2u8, 3, 0x7f, 0xff] {
        let mut w = BytesMut::from(&b(&format!("00000008 02 {ty:02x} 0000"))[..]);
        assert!(framing(dec().decode(&mut w)).contains("frame type"), "{ty}");
    }
    // size > max-frame-size, reported from the header alone
    let mut w = BytesMut::from(&b("00000201 02 00 0000")[..]);
    match FrameDecoder::new(512).decode(&mut w) {
        Err(FrameError::TooLarge { size, max }) => assert_eq!((size, max), (513, 512)),
        other => panic!("{other:?}"),
    }
    let mut w = BytesMut::from(&b("00000200 02 00 0000")[..]);
    assert!(matches!(
        FrameDecoder::new(512).decode(&mut w),
        Ok(Decoded::NeedMore(504))
    ));
    // Nothing is consumed by a failed decode.
    let mut w = BytesMut::from(&b("00000007 02 00 0000")[..]);
    let _ = dec().decode(&mut w);
    assert_eq!(w.len(), 8);
}

#[test]
fn decode_frame_checks_the_header_too() {
    let dec = FrameDecoder::new(1 << 16);
    let one = |hex: &str| dec.decode_frame(&b(hex));
    for hex in [
        "0000000c 01 00 0000 00531845", // doff 1
        "0000000c 04 00 0000 00531845", // doff beyond the frame
        "0000000c 02 07 0000 00531845", // unknown type
        "00000004 02 00 0000",          // size below 8 (and not the bytes given)
        "00000010 02 00 0000 00531845", // size is not the bytes given
    ] {
        assert!(
            matches!(one(hex), Err(FrameError::Framing(_))),
            "{hex}: {:?}",
            one(hex)
        );
    }
    assert!(matches!(one("00000007 02 00"), Err(FrameError::Decode(_))));
    let f = one("0000000c 02 00 0003 00531845").unwrap();
    assert_eq!(f.channel, 3);
    assert!(matches!(
        f.body,
        FrameBody::Amqp {
            performative: Performative::Close(_),
            ..
        }
    ));
}

#[test]
fn need_more_reports_exactly_what_is_missing() {
    let close = Performative::Close(Close { error: None });
    let mut wire = BytesMut::new();
    encode_frame(&mut wire, 1, &close, b"payload");
    let full = wire.freeze();
    assert_eq!(full.len(), 8 + 4 + 7);
    let mut dec = FrameDecoder::new(1 << 16);
    for n in 0..full.len() {
        let mut part = BytesMut::from(&full[..n]);
        let want = if n < 8 { 8 - n } else { full.len() - n };
        match dec.decode(&mut part) {
            Ok(Decoded::NeedMore(k)) => assert_eq!(k, want, "after {n} bytes"),
            other => panic!("after {n} bytes: {other:?}"),
        }
        assert_eq!(part.len(), n);
        match dec.frame_size(&full[..n]) {
            Ok(Decoded::NeedMore(k)) => assert_eq!(k, want),
            other => panic!("{other:?}"),
        }
    }
    // Two frames back to back, the second partial: the first decodes, then NeedMore.
    let mut two = BytesMut::from(&full[..]);
    two.extend_from_slice(&full[..10]);
    assert!(matches!(dec.decode(&mut two), Ok(Decoded::Frame(_))));
    assert!(matches!(
        dec.decode(&mut two),
        Ok(Decoded::NeedMore(k)) if k == full.len() - 10
    ));
    assert_eq!(two.len(), 10);
}

#[test]
fn empty_frames_are_heartbeats() {
    let mut w = BytesMut::new();
    encode_empty_frame(&mut w);
    assert_eq!(&w[..], &b("00000008 02 00 0000")[..]);
    let mut dec = FrameDecoder::new(512);
    let Decoded::Frame(f) = dec.decode(&mut w).unwrap() else {
        panic!("frame")
    };
    assert_eq!(
        f,
        Frame {
            channel: 0,
            body: FrameBody::Empty
        }
    );
    // On another channel, and with an extended header but no body.
    let mut w = BytesMut::from(&b("00000008 02 00 0007  0000000c 03 00 0000 aabbccdd")[..]);
    for channel in [7, 0] {
        let Decoded::Frame(f) = dec.decode(&mut w).unwrap() else {
            panic!("frame")
        };
        assert_eq!(f.channel, channel);
        assert_eq!(f.body, FrameBody::Empty);
    }
    assert!(w.is_empty());
}

#[test]
fn extended_headers_are_skipped() {
    // doff 3: four bytes of extended header, then a close.
    let mut w = BytesMut::from(&b("00000010 03 00 0002 deadbeef 00531845")[..]);
    let Decoded::Frame(f) = FrameDecoder::new(512).decode(&mut w).unwrap() else {
        panic!("frame")
    };
    assert_eq!(f.channel, 2);
    assert_eq!(
        f.body,
        FrameBody::Amqp {
            performative: Performative::Close(Close { error: None }),
            payload: Bytes::new()
        }
    );
    // doff 5 on a SASL frame: twelve bytes of extended header, then sasl-mechanisms [PLAIN].
    let mut w = BytesMut::from(
        &b("00000024 05 01 0000 000000000000000000000000 00 53 40 c0 0b 01 e0 08 01 a3 05 504c41494e")[..],
    );
    let Decoded::Frame(f) = FrameDecoder::new(512).decode(&mut w).unwrap() else {
        panic!("frame")
    };
    assert_eq!(
        f.body,
        FrameBody::Sasl(SaslFrame::SaslMechanisms(SaslMechanisms {
            sasl_server_mechanisms: vec![Symbol::from("PLAIN")]
        }))
    );
}

#[test]
fn frame_bodies() {
    let mut dec = FrameDecoder::new(512);
    // A transfer payload is everything after the performative.
    let mut w = BytesMut::from(&b("00000010 02 00 0000 00531845 01020304")[..]);
    let Decoded::Frame(f) = dec.decode(&mut w).unwrap() else {
        panic!("frame")
    };
    assert!(matches!(f.body, FrameBody::Amqp { payload, .. } if payload[..] == [1, 2, 3, 4]));
    // A SASL frame has nothing after its body.
    let mut w = BytesMut::from(&b("00000012 02 01 0000 0053 44 c0 03 01 50 00 0000")[..]);
    assert!(matches!(
        dec.decode(&mut w),
        Err(FrameError::Decode(e)) if matches!(e.kind(), DecodeErrorKind::TrailingBytes(2))
    ));
    // A body that is not a performative.
    let mut w = BytesMut::from(&b("0000000c 02 00 0000 00537745")[..]);
    assert!(matches!(
        dec.decode(&mut w),
        Err(FrameError::Decode(e))
            if matches!(e.kind(), DecodeErrorKind::UnexpectedDescriptor(_))
    ));
    // A SASL body in an AMQP frame.
    let mut w = BytesMut::from(&b("0000000c 02 00 0000 00534245")[..]);
    assert!(matches!(dec.decode(&mut w), Err(FrameError::Decode(_))));
}

// ---------------------------------------------------------------------------------------------
// Protocol headers
// ---------------------------------------------------------------------------------------------

#[test]
fn protocol_headers() {
    for (h, bytes) in [
        (ProtocolHeader::AMQP, *b"AMQP\x00\x01\x00\x00"),
        (ProtocolHeader::TLS, *b"AMQP\x02\x01\x00\x00"),
        (ProtocolHeader::SASL, *b"AMQP\x03\x01\x00\x00"),
    ] {
        assert_eq!(h.to_bytes(), bytes);
        assert_eq!(ProtocolHeader::parse(&bytes), Ok(Some(h)));
        // Trailing bytes (the first frame) are not the header's concern.
        let mut more = bytes.to_vec();
        more.extend_from_slice(&[0, 0, 0, 8]);
        assert_eq!(ProtocolHeader::parse(&more), Ok(Some(h)));
        // Every strict prefix asks for more.
        for n in 0..8 {
            assert_eq!(ProtocolHeader::parse(&bytes[..n]), Ok(None), "{n}");
        }
    }
    assert_eq!(ProtocolHeader::AMQP.to_string(), "AMQP 0 1.0.0");
}

#[test]
fn protocol_header_rejections() {
    // Not AMQP at all: HTTP, TLS ClientHello, garbage, lower case. Detected from the first byte
    // that differs, without waiting for eight.
    for bad in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"GET /",
        b"G",
        b"\x16\x03\x01\x02\x00\x01\x00\x01",
        b"amqp\x00\x01\x00\x00",
        b"AMQX",
        b"AMQ\x00",
    ] {
        assert!(
            matches!(ProtocolHeader::parse(bad), Err(HeaderError::NotAmqp(_))),
            "{bad:?}"
        );
    }
    // AMQP, but not a protocol and version we speak.
    for bad in [
        b"AMQP\x00\x00\x09\x01", // AMQP 0-9-1
        b"AMQP\x01\x01\x00\x00", // protocol id 1
        b"AMQP\x04\x01\x00\x00", // protocol id 4
        b"AMQP\x00\x01\x00\x01", // 1.0.1
        b"AMQP\x00\x01\x01\x00", // 1.1.0
        b"AMQP\x00\x02\x00\x00", // 2.0.0
        b"AMQP\x03\x00\x00\x00", // SASL 0.0.0
    ] {
        match ProtocolHeader::parse(bad) {
            Err(HeaderError::Unsupported(raw)) => assert_eq!(&raw, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // The error shows what was received.
    let e = ProtocolHeader::parse(b"AMQP\x00\x00\x09\x01").unwrap_err();
    assert!(
        e.to_string().contains("41, 4d, 51, 50, 00, 00, 09, 01"),
        "{e}"
    );
}
