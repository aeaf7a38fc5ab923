//! Bodies of the fuzz targets, callable from tests so CI exercises them on a seed corpus
//! without a nightly toolchain. Each must never panic, whatever the input.

use bytes::{Bytes, BytesMut};

use crate::codec::{Decode, Decoder, Encode};
use crate::frame::{Decoded, FrameDecoder};
use crate::message::{Message, ReceivedMessage};
use crate::value::Value;

/// Decodes frames from arbitrary bytes until the input is used up or invalid; every frame that
/// decodes must re-encode to bytes that decode to the same frame.
pub fn fuzz_frame_decode(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let mut dec = FrameDecoder::new(1 << 20);
    while let Ok(Decoded::Frame(frame)) = dec.decode(&mut buf) {
        if let crate::frame::FrameBody::Amqp {
            performative,
            payload,
        } = &frame.body
        {
            let mut out = BytesMut::new();
            crate::frame::encode_frame(&mut out, frame.channel, performative, payload);
            let again = dec
                .decode_frame(&out.freeze())
                .expect("re-encoded frame decodes");
            assert_eq!(again, frame, "frame round trip");
        }
    }
}

/// Decodes a message from arbitrary bytes, eagerly and lazily; a message that decodes must
/// round-trip, the lazy [`ReceivedMessage`] must agree with the eager decode through every
/// accessor, and forwarding it must write the input back unchanged.
pub fn fuzz_message_decode(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let eager = Message::decode(&bytes);
    if let Ok(m) = &eager {
        let enc = m.to_bytes();
        assert_eq!(
            enc.len(),
            m.encoded_len(),
            "message size precomputed exactly"
        );
        let back = Message::decode(&enc).expect("re-encoded message decodes");
        assert_eq!(&back, m, "message round trip");
    }
    match ReceivedMessage::decode(bytes.clone()) {
        Err(_) => assert!(eager.is_err(), "scan refused a decodable message"),
        Ok(r) => {
            // Every accessor, in an order unlike the wire's; none may panic.
            let _ = (
                r.body_str(),
                r.data(),
                r.footer(),
                r.subject(),
                r.reply_to(),
            );
            let _ = (r.message_id(), r.correlation_id(), r.address());
            let _ = (r.durable(), r.priority(), r.ttl(), r.delivery_count());
            let _ = (r.application_property("k"), r.message_annotation("x"));
            let _ = (r.delivery_annotations(), r.header(), r.properties());
            if let Ok(m) = &eager {
                assert_eq!(r.body(), &m.body, "lazy body");
                assert_eq!(r.properties(), m.properties.as_ref(), "lazy properties");
            }
            assert_eq!(r.to_bytes(), bytes, "forwarded unchanged");
            let rewritten = r.rewrite().header(&Default::default()).to_bytes();
            let again = ReceivedMessage::decode(rewritten).expect("rewritten message scans");
            assert_eq!(again.header(), Some(&Default::default()), "header replaced");
            assert_eq!(r.into_message(), eager, "lazy and eager decode agree");
        }
    }
}

/// Decodes one value from arbitrary bytes; a value that decodes must round-trip through our
/// canonical encoding, with an exactly precomputed size.
pub fn fuzz_value_decode(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let mut d = Decoder::new(&bytes);
    if let Ok(v) = Value::decode(&mut d) {
        let enc = v.to_bytes();
        assert_eq!(enc.len(), v.encoded_len(), "value size precomputed exactly");
        let back = Value::from_bytes(&enc).expect("re-encoded value decodes");
        assert_eq!(back, v, "value round trip");
        // Canonical encodings are a fixed point.
        assert_eq!(back.to_bytes(), enc, "canonical encoding is stable");
    }
}

/// Builds a value from arbitrary bytes (structure-aware), encodes it, and checks it decodes back.
pub fn fuzz_roundtrip(data: &[u8]) {
    let mut src = data;
    let v = value_from_bytes(&mut src, 0);
    let enc = v.to_bytes();
    assert_eq!(enc.len(), v.encoded_len(), "value size precomputed exactly");
    let back = Value::from_bytes(&enc).expect("encoded value decodes");
    assert_eq!(back, v, "round trip");
}

fn take<'a>(src: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(src.len());
    let (a, b) = src.split_at(n);
    *src = b;
    a
}

fn byte(src: &mut &[u8]) -> u8 {
    take(src, 1).first().copied().unwrap_or(0)
}

fn num<const N: usize>(src: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let s = take(src, N);
    out[..s.len()].copy_from_slice(s);
    out
}

/// A structure-aware generator: arbitrary bytes to an arbitrary (valid) value.
pub fn value_from_bytes(src: &mut &[u8], depth: u32) -> Value {
    use crate::value::*;
    let tag = byte(src) % if depth > 6 { 21 } else { 25 };
    match tag {
        0 => Value::Null,
        1 => Value::Bool(byte(src) & 1 == 1),
        2 => Value::Ubyte(byte(src)),
        3 => Value::Ushort(u16::from_be_bytes(num(src))),
        4 => Value::Uint(u32::from_be_bytes(num(src)) >> (byte(src) % 32)),
        5 => Value::Ulong(u64::from_be_bytes(num(src)) >> (byte(src) % 64)),
        6 => Value::Byte(byte(src) as i8),
        7 => Value::Short(i16::from_be_bytes(num(src))),
        8 => Value::Int(i32::from_be_bytes(num(src)) >> (byte(src) % 32)),
        9 => Value::Long(i64::from_be_bytes(num(src)) >> (byte(src) % 64)),
        10 => Value::Float(f32::from_bits(u32::from_be_bytes(num(src)))),
        11 => Value::Double(f64::from_bits(u64::from_be_bytes(num(src)))),
        12 => Value::Decimal32(Decimal32(num(src))),
        13 => Value::Decimal64(Decimal64(num(src))),
        14 => Value::Decimal128(Decimal128(num(src))),
        15 => Value::Char(char::from_u32(u32::from_be_bytes(num(src)) % 0x11_0000).unwrap_or('?')),
        16 => Value::Timestamp(Timestamp(i64::from_be_bytes(num(src)))),
        17 => Value::Uuid(Uuid(num(src))),
        18 => {
            let n = byte(src) as usize * (1 + (byte(src) as usize % 3));
            Value::Binary(Bytes::copy_from_slice(take(src, n)))
        }
        19 => {
            let n = byte(src) as usize;
            Value::String(String::from_utf8_lossy(take(src, n)).into_owned().into())
        }
        20 => {
            let n = byte(src) as usize;
            let s: String = take(src, n).iter().map(|b| (b % 95 + 32) as char).collect();
            Value::Symbol(s.into())
        }
        21 => {
            let n = byte(src) % 8;
            Value::List((0..n).map(|_| value_from_bytes(src, depth + 1)).collect())
        }
        22 => {
            let n = byte(src) % 6;
            Value::Map(
                (0..n)
                    .map(|_| {
                        (
                            value_from_bytes(src, depth + 1),
                            value_from_bytes(src, depth + 1),
                        )
                    })
                    .collect(),
            )
        }
        23 => {
            let proto = value_from_bytes(src, depth + 1);
            let n = byte(src) % 5;
            let mut elements = vec![];
            for _ in 0..n {
                let e = value_from_bytes(src, depth + 1);
                if std::mem::discriminant(&e) == std::mem::discriminant(&proto)
                    && !matches!(e, Value::Described(_))
                {
                    elements.push(e);
                }
            }
            match proto {
                Value::Described(_) => Value::Array(Array::new(Type::Null, vec![])),
                p => {
                    let ty = p.ty();
                    let mut els = vec![p];
                    els.extend(elements);
                    Value::Array(Array::new(ty, els))
                }
            }
        }
        _ => {
            let descriptor = if byte(src) & 1 == 0 {
                Descriptor::Code(u64::from_be_bytes(num(src)))
            } else {
                let n = byte(src) as usize % 40;
                Descriptor::Name(
                    take(src, n)
                        .iter()
                        .map(|b| (b % 95 + 32) as char)
                        .collect::<String>()
                        .into(),
                )
            };
            Value::Described(Box::new(Described {
                descriptor,
                value: value_from_bytes(src, depth + 1),
            }))
        }
    }
}
