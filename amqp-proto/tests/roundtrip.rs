//! Property tests: every value and composite survives encode → decode unchanged, with an exactly
//! precomputed size and a canonical encoding that is a fixed point; truncated encodings are
//! refused; and no input, however broken, makes a decoder panic.
//!
//! Case counts are modest so the whole suite runs in seconds; raise them with `PROPTEST_CASES`.

use std::fmt::Debug;

use amqp_proto::codec::MAX_ZERO_WIDTH_ARRAY_ELEMENTS;
use amqp_proto::definitions::*;
use amqp_proto::frame::*;
use amqp_proto::message::*;
use amqp_proto::messaging::*;
use amqp_proto::performatives::*;
use amqp_proto::sasl::*;
use amqp_proto::transaction::*;
use amqp_proto::*;
use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option::of as opt;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Primitive strategies
// ---------------------------------------------------------------------------------------------

fn text(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

fn bstr() -> impl Strategy<Value = ByteString> {
    text(12).prop_map(ByteString::from)
}

fn symbol() -> impl Strategy<Value = Symbol> {
    vec(0x20u8..0x7f, 0..16).prop_map(|b| Symbol::from(String::from_utf8(b).expect("ascii")))
}

/// A multiple-symbol field; now and then with a symbol over 255 bytes (`sym32` elements).
fn symbols() -> impl Strategy<Value = Vec<Symbol>> {
    vec(
        prop_oneof![
            9 => symbol(),
            1 => "[a-z]{256,260}".prop_map(Symbol::from),
        ],
        0..3,
    )
}

fn binary(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Binary, string and symbol payloads longer than 255 bytes (the 32-bit encodings).
fn big_var() -> impl Strategy<Value = Value> {
    prop_oneof![
        vec(any::<u8>(), 256..300).prop_map(|b| Value::Binary(b.into())),
        "[a-zé]{256,280}".prop_map(Value::string),
        "[a-z]{256,280}".prop_map(Value::symbol),
    ]
}

fn descriptor() -> impl Strategy<Value = Descriptor> {
    prop_oneof![
        any::<u64>().prop_map(Descriptor::Code),
        (0u64..256).prop_map(Descriptor::Code),
        symbol().prop_map(Descriptor::Name),
    ]
}

/// A value of a primitive (non-compound) type.
fn scalar_of(ty: Type) -> BoxedStrategy<Value> {
    match ty {
        Type::Null => Just(Value::Null).boxed(),
        Type::Boolean => any::<bool>().prop_map(Value::Bool).boxed(),
        Type::Ubyte => any::<u8>().prop_map(Value::Ubyte).boxed(),
        Type::Ushort => any::<u16>().prop_map(Value::Ushort).boxed(),
        Type::Uint => prop_oneof![any::<u32>(), 0u32..300]
            .prop_map(Value::Uint)
            .boxed(),
        Type::Ulong => prop_oneof![any::<u64>(), 0u64..300]
            .prop_map(Value::Ulong)
            .boxed(),
        Type::Byte => any::<i8>().prop_map(Value::Byte).boxed(),
        Type::Short => any::<i16>().prop_map(Value::Short).boxed(),
        Type::Int => prop_oneof![any::<i32>(), -200i32..200]
            .prop_map(Value::Int)
            .boxed(),
        Type::Long => prop_oneof![any::<i64>(), -200i64..200]
            .prop_map(Value::Long)
            .boxed(),
        Type::Float => any::<u32>()
            .prop_map(|b| Value::Float(f32::from_bits(b)))
            .boxed(),
        Type::Double => any::<u64>()
            .prop_map(|b| Value::Double(f64::from_bits(b)))
            .boxed(),
        Type::Decimal32 => any::<[u8; 4]>()
            .prop_map(|b| Value::Decimal32(Decimal32(b)))
            .boxed(),
        Type::Decimal64 => any::<[u8; 8]>()
            .prop_map(|b| Value::Decimal64(Decimal64(b)))
            .boxed(),
        Type::Decimal128 => any::<[u8; 16]>()
            .prop_map(|b| Value::Decimal128(Decimal128(b)))
            .boxed(),
        Type::Char => any::<char>().prop_map(Value::Char).boxed(),
        Type::Timestamp => any::<i64>()
            .prop_map(|t| Value::Timestamp(Timestamp(t)))
            .boxed(),
        Type::Uuid => any::<[u8; 16]>().prop_map(|b| Value::Uuid(Uuid(b))).boxed(),
        Type::Binary => binary(24).prop_map(Value::Binary).boxed(),
        Type::String => text(12).prop_map(Value::string).boxed(),
        Type::Symbol => symbol().prop_map(Value::Symbol).boxed(),
        Type::List | Type::Map | Type::Array => panic!("not a scalar type: {ty:?}"),
    }
}

const SCALAR_TYPES: [Type; 21] = [
    Type::Null,
    Type::Boolean,
    Type::Ubyte,
    Type::Ushort,
    Type::Uint,
    Type::Ulong,
    Type::Byte,
    Type::Short,
    Type::Int,
    Type::Long,
    Type::Float,
    Type::Double,
    Type::Decimal32,
    Type::Decimal64,
    Type::Decimal128,
    Type::Char,
    Type::Timestamp,
    Type::Uuid,
    Type::Binary,
    Type::String,
    Type::Symbol,
];

fn scalar() -> impl Strategy<Value = Value> {
    prop::sample::select(&SCALAR_TYPES[..]).prop_flat_map(scalar_of)
}

/// An array of a scalar type, every element consistent, optionally described.
fn scalar_array() -> impl Strategy<Value = Array> {
    (prop::sample::select(&SCALAR_TYPES[..]), opt(descriptor())).prop_flat_map(|(ty, d)| {
        // Elements of zero-width constructors (null) are bounded on decode.
        let max = if ty == Type::Null {
            MAX_ZERO_WIDTH_ARRAY_ELEMENTS + 1
        } else {
            6
        };
        vec(scalar_of(ty), 0..max).prop_map(move |elements| Array {
            descriptor: d.clone().map(Box::new),
            ty,
            elements,
        })
    })
}

/// Leaves: scalars, arrays of scalars, and the occasional large value that needs the 32-bit
/// encodings (a 256+ byte payload, a 256+ element list or array).
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => scalar(),
        3 => scalar_array().prop_map(Value::Array),
        1 => big_var(),
        1 => vec(Just(Value::Null), 256..260).prop_map(Value::List),
        1 => vec(any::<u8>().prop_map(Value::Ubyte), 256..260)
            .prop_map(|e| Value::Array(Array::new(Type::Ubyte, e))),
        1 => vec(any::<u32>().prop_map(Value::Uint), 64..80)
            .prop_map(|e| Value::Array(Array::new(Type::Uint, e))),
    ]
}

/// An array whose elements are compound values (lists, maps or arrays).
fn compound_array(inner: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    let lists =
        vec(vec(inner.clone(), 0..4).prop_map(Value::List), 0..4).prop_map(|e| (Type::List, e));
    let maps = vec(
        vec((inner.clone(), inner), 0..3).prop_map(|m| Value::Map(OrderedMap(m))),
        0..4,
    )
    .prop_map(|e| (Type::Map, e));
    let arrays = vec(scalar_array().prop_map(Value::Array), 0..4).prop_map(|e| (Type::Array, e));
    (prop_oneof![lists, maps, arrays], opt(descriptor())).prop_map(|((ty, elements), d)| {
        Value::Array(Array {
            descriptor: d.map(Box::new),
            ty,
            elements,
        })
    })
}

/// Any value: every variant, nested lists, maps, arrays and described values.
fn value() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::List),
                vec((inner.clone(), inner.clone()), 0..4).prop_map(|m| Value::Map(OrderedMap(m))),
                (descriptor(), inner.clone()).prop_map(|(descriptor, value)| {
                    Value::Described(Box::new(Described { descriptor, value }))
                }),
                compound_array(inner.boxed()),
            ]
        })
        .boxed()
}

/// Small values for maps inside composites.
fn small_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => scalar(),
        1 => vec(scalar(), 0..3).prop_map(Value::List),
        1 => scalar_array().prop_map(Value::Array),
    ]
}

fn fields() -> BoxedStrategy<Fields> {
    vec((symbol(), small_value()), 0..3)
        .prop_map(OrderedMap)
        .boxed()
}

fn value_map() -> BoxedStrategy<OrderedMap<Value, Value>> {
    vec((small_value(), small_value()), 0..3)
        .prop_map(OrderedMap)
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Composite strategies
// ---------------------------------------------------------------------------------------------

fn error() -> BoxedStrategy<Error> {
    (symbol(), opt(bstr()), opt(fields()))
        .prop_map(|(condition, description, info)| Error {
            condition,
            description,
            info,
        })
        .boxed()
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Sender), Just(Role::Receiver)]
}

fn snd_settle_mode() -> impl Strategy<Value = SenderSettleMode> {
    prop_oneof![
        Just(SenderSettleMode::Unsettled),
        Just(SenderSettleMode::Settled),
        Just(SenderSettleMode::Mixed)
    ]
}

fn rcv_settle_mode() -> impl Strategy<Value = ReceiverSettleMode> {
    prop_oneof![
        Just(ReceiverSettleMode::First),
        Just(ReceiverSettleMode::Second)
    ]
}

fn open() -> BoxedStrategy<Open> {
    (
        bstr(),
        opt(bstr()),
        opt(any::<u32>()),
        opt(any::<u16>()),
        opt(any::<u32>()),
        opt(symbols()),
        opt(symbols()),
        opt(symbols()),
        opt(symbols()),
        opt(fields()),
    )
        .prop_map(|(c, h, mfs, cm, ito, ol, il, oc, dc, p)| Open {
            container_id: c,
            hostname: h,
            max_frame_size: mfs,
            channel_max: cm,
            idle_time_out: ito,
            outgoing_locales: ol,
            incoming_locales: il,
            offered_capabilities: oc,
            desired_capabilities: dc,
            properties: p,
        })
        .boxed()
}

fn begin() -> BoxedStrategy<Begin> {
    (
        opt(any::<u16>()),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        opt(any::<u32>()),
        opt(symbols()),
        opt(symbols()),
        opt(fields()),
    )
        .prop_map(|(rc, noi, iw, ow, hm, oc, dc, p)| Begin {
            remote_channel: rc,
            next_outgoing_id: noi,
            incoming_window: iw,
            outgoing_window: ow,
            handle_max: hm,
            offered_capabilities: oc,
            desired_capabilities: dc,
            properties: p,
        })
        .boxed()
}

fn outcome() -> BoxedStrategy<Outcome> {
    prop_oneof![
        Just(Outcome::Accepted(Accepted {})),
        opt(error()).prop_map(|error| Outcome::Rejected(Rejected { error })),
        Just(Outcome::Released(Released {})),
        (opt(any::<bool>()), opt(any::<bool>()), opt(fields())).prop_map(|(df, uh, ma)| {
            Outcome::Modified(Modified {
                delivery_failed: df,
                undeliverable_here: uh,
                message_annotations: ma,
            })
        }),
        binary(8).prop_map(|txn_id| Outcome::Declared(Declared { txn_id })),
    ]
    .boxed()
}

fn delivery_state() -> BoxedStrategy<DeliveryState> {
    prop_oneof![
        (any::<u32>(), any::<u64>()).prop_map(|(n, o)| DeliveryState::Received(Received {
            section_number: n,
            section_offset: o
        })),
        outcome().prop_map(DeliveryState::from),
        (binary(8), opt(outcome())).prop_map(|(txn_id, outcome)| {
            DeliveryState::TransactionalState(TransactionalState { txn_id, outcome })
        }),
    ]
    .boxed()
}

fn durability() -> impl Strategy<Value = TerminusDurability> {
    prop_oneof![
        Just(TerminusDurability::None),
        Just(TerminusDurability::Configuration),
        Just(TerminusDurability::UnsettledState)
    ]
}

fn expiry() -> impl Strategy<Value = TerminusExpiryPolicy> {
    prop_oneof![
        Just(TerminusExpiryPolicy::LinkDetach),
        Just(TerminusExpiryPolicy::SessionEnd),
        Just(TerminusExpiryPolicy::ConnectionClose),
        Just(TerminusExpiryPolicy::Never)
    ]
}

fn lifetime_policy() -> impl Strategy<Value = LifetimePolicy> {
    prop_oneof![
        Just(LifetimePolicy::DeleteOnClose(DeleteOnClose {})),
        Just(LifetimePolicy::DeleteOnNoLinks(DeleteOnNoLinks {})),
        Just(LifetimePolicy::DeleteOnNoMessages(DeleteOnNoMessages {})),
        Just(LifetimePolicy::DeleteOnNoLinksOrMessages(
            DeleteOnNoLinksOrMessages {}
        )),
    ]
}

/// A filter set: filters are usually described values (or null).
fn filter_set() -> BoxedStrategy<FilterSet> {
    vec(
        (
            symbol(),
            prop_oneof![
                Just(Value::Null),
                (descriptor(), small_value()).prop_map(|(descriptor, value)| {
                    Value::Described(Box::new(Described { descriptor, value }))
                })
            ],
        ),
        0..3,
    )
    .prop_map(OrderedMap)
    .boxed()
}

/// Node properties, with a lifetime policy as dynamic nodes carry.
fn node_properties() -> BoxedStrategy<Fields> {
    (fields(), opt(lifetime_policy()))
        .prop_map(|(mut f, lp)| {
            if let Some(lp) = lp {
                let v = Value::from_bytes(&lp.to_bytes()).expect("lifetime policy as a value");
                f.insert(Symbol::from("lifetime-policy"), v);
            }
            f
        })
        .boxed()
}

fn source() -> BoxedStrategy<Source> {
    (
        (
            opt(bstr()),
            opt(durability()),
            opt(expiry()),
            opt(any::<u32>()),
            opt(any::<bool>()),
            opt(node_properties()),
        ),
        (
            opt(prop_oneof![
                Just(distribution_mode::MOVE),
                Just(distribution_mode::COPY),
                symbol()
            ]),
            opt(filter_set()),
            opt(outcome()),
            opt(symbols()),
            opt(symbols()),
        ),
    )
        .prop_map(|((a, d, e, t, dy, dnp), (dm, f, dout, o, c))| Source {
            address: a,
            durable: d,
            expiry_policy: e,
            timeout: t,
            dynamic: dy,
            dynamic_node_properties: dnp,
            distribution_mode: dm,
            filter: f,
            default_outcome: dout,
            outcomes: o,
            capabilities: c,
        })
        .boxed()
}

fn target() -> BoxedStrategy<Target> {
    (
        opt(bstr()),
        opt(durability()),
        opt(expiry()),
        opt(any::<u32>()),
        opt(any::<bool>()),
        opt(node_properties()),
        opt(symbols()),
    )
        .prop_map(|(a, d, e, t, dy, dnp, c)| Target {
            address: a,
            durable: d,
            expiry_policy: e,
            timeout: t,
            dynamic: dy,
            dynamic_node_properties: dnp,
            capabilities: c,
        })
        .boxed()
}

fn coordinator() -> impl Strategy<Value = Coordinator> {
    opt(vec(
        prop_oneof![
            Just(txn_capability::LOCAL_TRANSACTIONS),
            Just(txn_capability::DISTRIBUTED_TRANSACTIONS),
            Just(txn_capability::PROMOTABLE_TRANSACTIONS),
            Just(txn_capability::MULTI_TXNS_PER_SSN),
            Just(txn_capability::MULTI_SSNS_PER_TXN),
        ],
        0..3,
    ))
    .prop_map(|capabilities| Coordinator { capabilities })
}

fn target_kind() -> BoxedStrategy<TargetKind> {
    prop_oneof![
        target().prop_map(TargetKind::Target),
        coordinator().prop_map(TargetKind::Coordinator),
    ]
    .boxed()
}

fn attach() -> BoxedStrategy<Attach> {
    (
        (
            bstr(),
            any::<u32>(),
            role(),
            opt(snd_settle_mode()),
            opt(rcv_settle_mode()),
            opt(source()),
            opt(target_kind()),
        ),
        (
            opt(value_map()),
            opt(any::<bool>()),
            opt(any::<u32>()),
            opt(any::<u64>()),
            opt(symbols()),
            opt(symbols()),
            opt(fields()),
        ),
    )
        .prop_map(
            |((n, h, r, ssm, rsm, s, t), (u, iu, idc, mms, oc, dc, p))| Attach {
                name: n,
                handle: h,
                role: r,
                snd_settle_mode: ssm,
                rcv_settle_mode: rsm,
                source: s,
                target: t,
                unsettled: u,
                incomplete_unsettled: iu,
                initial_delivery_count: idc,
                max_message_size: mms,
                offered_capabilities: oc,
                desired_capabilities: dc,
                properties: p,
            },
        )
        .boxed()
}

fn flow() -> BoxedStrategy<Flow> {
    (
        (opt(any::<u32>()), any::<u32>(), any::<u32>(), any::<u32>()),
        (
            opt(any::<u32>()),
            opt(any::<u32>()),
            opt(any::<u32>()),
            opt(any::<u32>()),
            opt(any::<bool>()),
            opt(any::<bool>()),
            opt(fields()),
        ),
    )
        .prop_map(|((nii, iw, noi, ow), (h, dc, lc, av, dr, ec, p))| Flow {
            next_incoming_id: nii,
            incoming_window: iw,
            next_outgoing_id: noi,
            outgoing_window: ow,
            handle: h,
            delivery_count: dc,
            link_credit: lc,
            available: av,
            drain: dr,
            echo: ec,
            properties: p,
        })
        .boxed()
}

fn transfer() -> BoxedStrategy<Transfer> {
    (
        (
            any::<u32>(),
            opt(any::<u32>()),
            opt(binary(32)),
            opt(any::<u32>()),
            opt(any::<bool>()),
            opt(any::<bool>()),
        ),
        (
            opt(rcv_settle_mode()),
            opt(delivery_state()),
            opt(any::<bool>()),
            opt(any::<bool>()),
            opt(any::<bool>()),
        ),
    )
        .prop_map(|((h, di, dt, mf, s, m), (rsm, st, r, a, b))| Transfer {
            handle: h,
            delivery_id: di,
            delivery_tag: dt,
            message_format: mf,
            settled: s,
            more: m,
            rcv_settle_mode: rsm,
            state: st,
            resume: r,
            aborted: a,
            batchable: b,
        })
        .boxed()
}

fn disposition() -> BoxedStrategy<Disposition> {
    (
        role(),
        any::<u32>(),
        opt(any::<u32>()),
        opt(any::<bool>()),
        opt(delivery_state()),
        opt(any::<bool>()),
    )
        .prop_map(
            |(role, first, last, settled, state, batchable)| Disposition {
                role,
                first,
                last,
                settled,
                state,
                batchable,
            },
        )
        .boxed()
}

fn detach() -> BoxedStrategy<Detach> {
    (any::<u32>(), opt(any::<bool>()), opt(error()))
        .prop_map(|(handle, closed, error)| Detach {
            handle,
            closed,
            error,
        })
        .boxed()
}

fn performative() -> BoxedStrategy<Performative> {
    prop_oneof![
        open().prop_map(Performative::from),
        begin().prop_map(Performative::from),
        attach().prop_map(Performative::from),
        flow().prop_map(Performative::Flow),
        transfer().prop_map(Performative::Transfer),
        disposition().prop_map(Performative::Disposition),
        detach().prop_map(Performative::Detach),
        opt(error()).prop_map(|error| Performative::End(End { error })),
        opt(error()).prop_map(|error| Performative::Close(Close { error })),
    ]
    .boxed()
}

fn sasl_frame() -> BoxedStrategy<SaslFrame> {
    prop_oneof![
        symbols().prop_map(|m| SaslFrame::SaslMechanisms(SaslMechanisms {
            sasl_server_mechanisms: m
        })),
        (symbol(), opt(binary(40)), opt(bstr())).prop_map(|(mechanism, ir, hostname)| {
            SaslFrame::SaslInit(SaslInit {
                mechanism,
                initial_response: ir,
                hostname,
            })
        }),
        binary(40).prop_map(|challenge| SaslFrame::SaslChallenge(SaslChallenge { challenge })),
        binary(40).prop_map(|response| SaslFrame::SaslResponse(SaslResponse { response })),
        (
            prop_oneof![
                Just(SaslCode::Ok),
                Just(SaslCode::Auth),
                Just(SaslCode::Sys),
                Just(SaslCode::SysPerm),
                Just(SaslCode::SysTemp)
            ],
            opt(binary(40))
        )
            .prop_map(
                |(code, additional_data)| SaslFrame::SaslOutcome(SaslOutcome {
                    code,
                    additional_data
                })
            ),
    ]
    .boxed()
}

fn declare() -> impl Strategy<Value = Declare> {
    // A `Some(Value::Null)` global-id is written as null and reads back as `None`: generate
    // only non-null ids.
    opt(scalar().prop_filter("non-null global id", |v| !v.is_null()))
        .prop_map(|global_id| Declare { global_id })
}

fn discharge() -> impl Strategy<Value = Discharge> {
    (binary(8), opt(any::<bool>())).prop_map(|(txn_id, fail)| Discharge { txn_id, fail })
}

fn header() -> BoxedStrategy<Header> {
    (
        opt(any::<bool>()),
        opt(any::<u8>()),
        opt(any::<u32>()),
        opt(any::<bool>()),
        opt(any::<u32>()),
    )
        .prop_map(
            |(durable, priority, ttl, first_acquirer, delivery_count)| Header {
                durable,
                priority,
                ttl,
                first_acquirer,
                delivery_count,
            },
        )
        .boxed()
}

fn message_id() -> impl Strategy<Value = MessageId> {
    prop_oneof![
        any::<u64>().prop_map(MessageId::Ulong),
        any::<[u8; 16]>().prop_map(|b| MessageId::Uuid(Uuid(b))),
        binary(16).prop_map(MessageId::Binary),
        bstr().prop_map(MessageId::String),
    ]
}

fn properties() -> BoxedStrategy<Properties> {
    (
        (
            opt(message_id()),
            opt(binary(8)),
            opt(bstr()),
            opt(prop_oneof![
                bstr(),
                "[a-z]{250,300}".prop_map(ByteString::from)
            ]),
            opt(bstr()),
            opt(message_id()),
            opt(symbol()),
        ),
        (
            opt(symbol()),
            opt(any::<i64>().prop_map(Timestamp)),
            opt(any::<i64>().prop_map(Timestamp)),
            opt(bstr()),
            opt(any::<u32>()),
            opt(bstr()),
        ),
    )
        .prop_map(
            |((mi, ui, to, su, rt, ci, ct), (ce, aet, cr, gi, gs, rtgi))| Properties {
                message_id: mi,
                user_id: ui,
                to,
                subject: su,
                reply_to: rt,
                correlation_id: ci,
                content_type: ct,
                content_encoding: ce,
                absolute_expiry_time: aet,
                creation_time: cr,
                group_id: gi,
                group_sequence: gs,
                reply_to_group_id: rtgi,
            },
        )
        .boxed()
}

fn body() -> BoxedStrategy<Body> {
    // An empty `Data(vec![])` or `Sequence(vec![])` has no sections, so reads back as `Empty`:
    // generate at least one section.
    prop_oneof![
        Just(Body::Empty),
        vec(binary(300), 1..3).prop_map(Body::Data),
        vec(vec(value(), 0..3), 1..3).prop_map(Body::Sequence),
        value().prop_map(Body::Value),
    ]
    .boxed()
}

fn message() -> BoxedStrategy<Message> {
    (
        opt(header()),
        opt(value_map()),
        opt(value_map()),
        opt(properties()),
        opt(vec((bstr(), small_value()), 0..3).prop_map(OrderedMap)),
        body(),
        opt(value_map()),
    )
        .prop_map(|(h, da, ma, p, ap, body, f)| Message {
            header: h,
            delivery_annotations: da,
            message_annotations: ma,
            properties: p,
            application_properties: ap,
            body,
            footer: f,
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------

/// Cut points to try on an encoding of `len` bytes: all of them for short encodings, a spread
/// for long ones.
fn cuts(len: usize) -> Vec<usize> {
    if len <= 96 {
        (0..len).collect()
    } else {
        let mut c: Vec<usize> = (0..32).chain(len - 32..len).collect();
        c.extend((32..len - 32).step_by(len / 32));
        c
    }
}

/// encode → decode is the identity, `encoded_len` is exact, our encoding is a fixed point, and
/// every strict prefix of the encoding is refused.
fn check<T: Encode + Decode + PartialEq + Debug>(v: &T) -> Result<(), TestCaseError> {
    let bytes = v.to_bytes();
    prop_assert_eq!(bytes.len(), v.encoded_len(), "encoded_len is exact");
    // Encoding appends to what is already in the buffer.
    let mut buf = BytesMut::from(&b"xyz"[..]);
    v.encode(&mut buf);
    prop_assert_eq!(&buf[..3], b"xyz");
    prop_assert_eq!(&buf[3..], &bytes[..]);
    let back = T::from_bytes(&bytes)
        .map_err(|e| TestCaseError::fail(format!("decode failed: {e}; {v:?}")))?;
    prop_assert_eq!(&back, v);
    prop_assert_eq!(
        back.to_bytes(),
        bytes.clone(),
        "canonical encoding is a fixed point"
    );
    for n in cuts(bytes.len()) {
        prop_assert!(
            T::from_bytes(&bytes.slice(..n)).is_err(),
            "prefix of {} of {} bytes decoded",
            n,
            bytes.len()
        );
    }
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn value_roundtrip(v in value()) {
        check(&v)?;
        // The generic decoder agrees with itself when driven through a `Decoder`.
        let bytes = v.to_bytes();
        let mut d = Decoder::new(&bytes);
        prop_assert_eq!(Value::decode(&mut d).unwrap(), v);
        prop_assert!(d.is_empty());
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn open_roundtrip(v in open()) { check(&v)?; }
    #[test]
    fn begin_roundtrip(v in begin()) { check(&v)?; }
    #[test]
    fn attach_roundtrip(v in attach()) { check(&v)?; }
    #[test]
    fn flow_roundtrip(v in flow()) { check(&v)?; }
    #[test]
    fn transfer_roundtrip(v in transfer()) { check(&v)?; }
    #[test]
    fn disposition_roundtrip(v in disposition()) { check(&v)?; }
    #[test]
    fn detach_roundtrip(v in detach()) { check(&v)?; }
    #[test]
    fn end_close_roundtrip(e in opt(error())) {
        check(&End { error: e.clone() })?;
        check(&Close { error: e })?;
    }
    #[test]
    fn performative_roundtrip(v in performative()) { check(&v)?; }
    #[test]
    fn error_roundtrip(v in error()) { check(&v)?; }
    #[test]
    fn delivery_state_roundtrip(v in delivery_state()) { check(&v)?; }
    #[test]
    fn outcome_roundtrip(v in outcome()) { check(&v)?; }
    #[test]
    fn source_roundtrip(v in source()) { check(&v)?; }
    #[test]
    fn target_kind_roundtrip(v in target_kind()) { check(&v)?; }
    #[test]
    fn lifetime_policy_roundtrip(v in lifetime_policy()) { check(&v)?; }
    #[test]
    fn sasl_roundtrip(v in sasl_frame()) { check(&v)?; }
    #[test]
    fn transaction_roundtrip(
        declare in declare(),
        discharge in discharge(),
        declared in binary(16).prop_map(|txn_id| Declared { txn_id }),
        ts in (binary(16), opt(outcome()))
            .prop_map(|(txn_id, outcome)| TransactionalState { txn_id, outcome }),
        coord in coordinator(),
    ) {
        check(&declare)?;
        check(&discharge)?;
        check(&declared)?;
        check(&ts)?;
        check(&coord)?;
    }
    #[test]
    fn header_properties_roundtrip(h in header(), p in properties()) {
        check(&h)?;
        check(&p)?;
        check(&Section::Header(h))?;
        check(&Section::Properties(p))?;
    }
}

/// A [`ReceivedMessage`] agrees with [`Message::decode`] on `bytes`: the scan refuses only
/// what does not decode; once it accepts, every accessor reads what the eager decode has
/// (a malformed section reads as absent), `to_message`/`into_message`/`check` give exactly the
/// eager result, and re-encoding writes the original bytes.
fn received_agrees(bytes: &Bytes) -> Result<(), TestCaseError> {
    let eager = Message::decode(bytes);
    let r = match ReceivedMessage::decode(bytes.clone()) {
        Ok(r) => r,
        Err(e) => {
            prop_assert!(eager.is_err(), "scan refused a decodable message: {}", e);
            return Ok(());
        }
    };
    prop_assert_eq!(r.encoded_len(), bytes.len());
    prop_assert_eq!(&r.to_bytes(), bytes);
    // Accessors first, in an order unlike the wire's, so decoding is driven from the cache.
    let body = r.body().clone();
    let props = r.properties().cloned();
    if let Ok(m) = &eager {
        prop_assert_eq!(&body, &m.body);
        prop_assert_eq!(r.footer(), m.footer.as_ref());
        prop_assert_eq!(props.as_ref(), m.properties.as_ref());
        prop_assert_eq!(r.header(), m.header.as_ref());
        prop_assert_eq!(r.delivery_annotations(), m.delivery_annotations.as_ref());
        prop_assert_eq!(r.message_annotations(), m.message_annotations.as_ref());
        prop_assert_eq!(
            r.application_properties(),
            m.application_properties.as_ref()
        );
        prop_assert_eq!(r.message_id(), m.message_id());
        prop_assert_eq!(r.correlation_id(), m.correlation_id());
        prop_assert_eq!(r.subject(), m.subject());
        prop_assert_eq!(r.reply_to(), m.reply_to());
        prop_assert_eq!(r.address(), m.address());
        prop_assert_eq!(r.durable(), m.durable());
        prop_assert_eq!(r.priority(), m.priority());
        prop_assert_eq!(r.ttl(), m.ttl());
        prop_assert_eq!(r.delivery_count(), m.delivery_count());
        prop_assert_eq!(r.body_str(), m.body_str());
        let data = match &m.body {
            Body::Data(parts) if parts.len() == 1 => Some(&parts[0][..]),
            _ => None,
        };
        prop_assert_eq!(r.data(), data);
    }
    prop_assert_eq!(r.check().err(), eager.clone().err());
    prop_assert_eq!(&r.to_message(), &eager);
    prop_assert_eq!(r.into_message(), eager);
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    /// Messages: encode → decode, exact size, fixed point. A cut at a section boundary leaves a
    /// valid message of the sections before it; any other cut is refused.
    #[test]
    fn message_roundtrip(m in message()) {
        let bytes = m.to_bytes();
        prop_assert_eq!(bytes.len(), m.encoded_len());
        let back = Message::decode(&bytes)
            .map_err(|e| TestCaseError::fail(format!("decode failed: {e}")))?;
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.to_bytes(), bytes.clone());
        received_agrees(&bytes)?;
        // The sections, one by one, make the same bytes.
        let mut by_section = BytesMut::new();
        for s in m.sections() {
            s.encode(&mut by_section);
        }
        prop_assert_eq!(&by_section[..], &bytes[..]);
        let mut boundaries = vec![0];
        let mut d = Decoder::new(&bytes);
        while !d.is_empty() {
            Section::decode(&mut d).unwrap();
            boundaries.push(d.position());
        }
        for n in cuts(bytes.len()) {
            let r = Message::decode(&bytes.slice(..n));
            received_agrees(&bytes.slice(..n))?;
            if boundaries.contains(&n) {
                prop_assert!(r.is_ok(), "cut at section boundary {}: {:?}", n, r);
            } else {
                prop_assert!(r.is_err(), "cut at {} of {} decoded", n, bytes.len());
            }
        }
    }

    /// A received message with its header and/or message annotations rewritten is the same
    /// message with those sections replaced; every other section's bytes are as received.
    #[test]
    fn received_message_rewrite(m in message(), h in opt(header()), ma in opt(value_map())) {
        let r = ReceivedMessage::decode(m.to_bytes())
            .map_err(|e| TestCaseError::fail(format!("scan failed: {e}")))?;
        let mut w = r.rewrite();
        let mut want = m.clone();
        if let Some(h) = &h {
            w = w.header(h);
            want.header = Some(h.clone());
        }
        if let Some(a) = &ma {
            w = w.message_annotations(a);
            want.message_annotations = Some(a.clone());
        }
        let bytes = w.to_bytes();
        prop_assert_eq!(bytes.len(), w.encoded_len());
        prop_assert_eq!(&bytes, &want.to_bytes());
        let again = ReceivedMessage::decode(bytes)
            .map_err(|e| TestCaseError::fail(format!("rewritten scan failed: {e}")))?;
        prop_assert_eq!(again.to_message(), Ok(want));
    }

    /// Frames: encode → decode, and every truncation asks for exactly the missing bytes.
    #[test]
    fn frame_roundtrip(
        channel in any::<u16>(),
        p in performative(),
        payload in binary(64),
        sasl in sasl_frame(),
    ) {
        let mut wire = BytesMut::new();
        encode_frame(&mut wire, channel, &p, &payload);
        let frame_len = wire.len();
        encode_sasl_frame(&mut wire, &sasl);
        encode_empty_frame(&mut wire);
        let all = wire.clone().freeze();
        let mut dec = FrameDecoder::new(u32::MAX);
        let Decoded::Frame(f) = dec.decode(&mut wire).unwrap() else {
            return Err(TestCaseError::fail("need more"));
        };
        prop_assert_eq!(f.channel, channel);
        prop_assert_eq!(f.body, FrameBody::Amqp { performative: p, payload: payload.clone() });
        let Decoded::Frame(f) = dec.decode(&mut wire).unwrap() else {
            return Err(TestCaseError::fail("need more"));
        };
        prop_assert_eq!(f.body, FrameBody::Sasl(sasl));
        let Decoded::Frame(f) = dec.decode(&mut wire).unwrap() else {
            return Err(TestCaseError::fail("need more"));
        };
        prop_assert_eq!(f.body, FrameBody::Empty);
        prop_assert!(wire.is_empty());
        for n in cuts(frame_len) {
            let mut part = BytesMut::from(&all[..n]);
            let want = if n < FRAME_HEADER_SIZE { FRAME_HEADER_SIZE - n } else { frame_len - n };
            match dec.decode(&mut part) {
                Ok(Decoded::NeedMore(k)) => prop_assert_eq!(k, want),
                other => return Err(TestCaseError::fail(format!("cut {n}: {other:?}"))),
            }
            prop_assert_eq!(part.len(), n, "nothing consumed");
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary bytes never make a decoder panic.
    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..200)) {
        let b = Bytes::from(data.clone());
        let _ = Value::from_bytes(&b);
        let _ = Message::decode(&b);
        received_agrees(&b)?;
        let _ = Performative::from_bytes(&b);
        let _ = SaslFrame::from_bytes(&b);
        let _ = DeliveryState::from_bytes(&b);
        let _ = ProtocolHeader::parse(&data);
        let mut buf = BytesMut::from(&data[..]);
        let mut dec = FrameDecoder::new(1 << 16);
        while let Ok(Decoded::Frame(_)) = dec.decode(&mut buf) {}
    }

    /// Well-formed frame headers around arbitrary bodies never make the frame decoder panic.
    #[test]
    fn arbitrary_frame_bodies_never_panic(
        body in vec(any::<u8>(), 0..200),
        doff in 0u8..6,
        ty in 0u8..3,
        channel in any::<u16>(),
    ) {
        let mut buf = BytesMut::new();
        put_frame_header(&mut buf, (8 + body.len()) as u32, ty, channel);
        buf[4] = doff;
        buf.extend_from_slice(&body);
        let mut dec = FrameDecoder::new(1 << 16);
        let _ = dec.decode(&mut buf);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Valid encodings with a few bytes overwritten never make a decoder panic (this reaches
    /// much deeper into the decoders than random bytes do).
    #[test]
    fn mutated_encodings_never_panic(
        v in value(),
        m in message(),
        p in performative(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        for bytes in [v.to_bytes(), m.to_bytes(), p.to_bytes()] {
            if bytes.is_empty() {
                continue;
            }
            let mut b = bytes.to_vec();
            for (i, x) in &edits {
                let i = i.index(b.len());
                b[i] = *x;
            }
            let b = Bytes::from(b);
            let _ = Value::from_bytes(&b);
            let _ = Message::decode(&b);
            received_agrees(&b)?;
            let _ = Performative::from_bytes(&b);
            let mut framed = BytesMut::new();
            put_frame_header(&mut framed, (8 + b.len()) as u32, 0, 0);
            framed.extend_from_slice(&b);
            let _ = FrameDecoder::new(u32::MAX).decode(&mut framed);
        }
    }
}
