//! Our types against the machine-readable AMQP 1.0 specification.
//!
//! Reads `/usr/share/amqp/specs/1-0/{transport,messaging,security,transactions}.bare.xml` (Debian
//! package `amqp-specs`) and checks, for every composite type, that we have a Rust type with the
//! same descriptor code, symbolic descriptor and field names in order, that its mandatory fields
//! are enforced by the decoder, and that every restricted type with choices (roles, settle modes,
//! SASL codes, terminus policies, distribution modes, transaction capabilities and the error
//! conditions) matches our enum values or constants. The test fails when the spec has a composite
//! or a choice we lack.
//!
//! Without the spec files the test fails, unless `AMQP_SPECS_OPTIONAL=1` is set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use amqp_proto::definitions::{
    condition, Error, ReceiverSettleMode, Role, SaslCode, SenderSettleMode,
};
use amqp_proto::frame::{ProtocolHeader, MIN_MAX_FRAME_SIZE};
use amqp_proto::message::{section_code, Header, Message, Properties};
use amqp_proto::messaging::*;
use amqp_proto::performatives::*;
use amqp_proto::sasl::*;
use amqp_proto::transaction::*;
use amqp_proto::*;
use bytes::{Bytes, BytesMut};

const SPEC_DIR: &str = "/usr/share/amqp/specs/1-0";
const SPEC_FILES: [&str; 4] = ["transport", "messaging", "security", "transactions"];

// ---------------------------------------------------------------------------------------------
// The spec, parsed
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct SpecField {
    name: String,
    ty: String,
    requires: Option<String>,
    mandatory: bool,
    multiple: bool,
}

#[derive(Debug, Clone)]
struct SpecType {
    file: &'static str,
    name: String,
    class: String,
    source: String,
    descriptor: Option<(String, u64)>,
    fields: Vec<SpecField>,
    choices: Vec<(String, String)>,
}

struct Spec {
    types: Vec<SpecType>,
    definitions: BTreeMap<String, String>,
}

fn parse_code(s: &str) -> u64 {
    let (hi, lo) = s.split_once(':').expect("descriptor code domain:id");
    let parse = |x: &str| u64::from_str_radix(x.trim_start_matches("0x"), 16).expect("hex");
    (parse(hi) << 32) | parse(lo)
}

/// Loads the spec, or `None` when it is absent and `AMQP_SPECS_OPTIONAL=1`.
fn load_spec() -> Option<Spec> {
    if !Path::new(SPEC_DIR).is_dir() {
        if std::env::var("AMQP_SPECS_OPTIONAL").as_deref() == Ok("1") {
            eprintln!("spec_xml: {SPEC_DIR} missing; skipped because AMQP_SPECS_OPTIONAL=1");
            return None;
        }
        panic!(
            "the AMQP 1.0 spec XML is missing from {SPEC_DIR}: run `apt-get install amqp-specs` \
             (or set AMQP_SPECS_OPTIONAL=1 to skip these checks)"
        );
    }
    let mut types = Vec::new();
    let mut definitions = BTreeMap::new();
    for file in SPEC_FILES {
        let path = format!("{SPEC_DIR}/{file}.bare.xml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("cannot read {path}: {e} (reinstall with `apt-get install amqp-specs`)")
        });
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let doc = roxmltree::Document::parse_with_options(&text, opts)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        for n in doc.descendants().filter(|n| n.tag_name().name() == "type") {
            let attr = |a: &str| n.attribute(a).map(str::to_string);
            let children = |tag: &'static str| {
                n.children()
                    .filter(move |c| c.is_element() && c.tag_name().name() == tag)
            };
            let descriptor = children("descriptor").next().map(|d| {
                (
                    d.attribute("name").expect("descriptor name").to_string(),
                    parse_code(d.attribute("code").expect("descriptor code")),
                )
            });
            let fields = children("field")
                .map(|f| SpecField {
                    name: f.attribute("name").expect("field name").to_string(),
                    ty: f.attribute("type").expect("field type").to_string(),
                    requires: f.attribute("requires").map(str::to_string),
                    mandatory: f.attribute("mandatory") == Some("true"),
                    multiple: f.attribute("multiple") == Some("true"),
                })
                .collect();
            let choices = children("choice")
                .map(|c| {
                    (
                        c.attribute("name").expect("choice name").to_string(),
                        c.attribute("value").expect("choice value").to_string(),
                    )
                })
                .collect();
            types.push(SpecType {
                file,
                name: attr("name").expect("type name"),
                class: attr("class").expect("type class"),
                source: attr("source").unwrap_or_default(),
                descriptor,
                fields,
                choices,
            });
        }
        for d in doc
            .descendants()
            .filter(|n| n.tag_name().name() == "definition")
        {
            definitions.insert(
                d.attribute("name").expect("definition name").to_string(),
                d.attribute("value").expect("definition value").to_string(),
            );
        }
    }
    assert!(
        types.len() > 50,
        "suspiciously few types parsed ({})",
        types.len()
    );
    Some(Spec { types, definitions })
}

// ---------------------------------------------------------------------------------------------
// Our composites
// ---------------------------------------------------------------------------------------------

struct Ours {
    name: &'static str,
    symbol: &'static str,
    code: u64,
    fields: &'static [&'static str],
    decode: fn(&Bytes) -> Result<(), DecodeError>,
}

macro_rules! ours {
    ($($t:ty),* $(,)?) => {
        vec![$(Ours {
            name: <$t>::NAME,
            symbol: <$t>::SYMBOL,
            code: <$t>::CODE,
            fields: <$t>::FIELDS,
            decode: |b| <$t as Decode>::from_bytes(b).map(drop),
        }),*]
    };
}

/// Every composite type of the spec, as ours.
fn our_composites() -> Vec<Ours> {
    ours![
        // transport
        Open,
        Begin,
        Attach,
        Flow,
        Transfer,
        Disposition,
        Detach,
        End,
        Close,
        Error,
        // messaging
        Header,
        Properties,
        Received,
        Accepted,
        Rejected,
        Released,
        Modified,
        Source,
        Target,
        DeleteOnClose,
        DeleteOnNoLinks,
        DeleteOnNoMessages,
        DeleteOnNoLinksOrMessages,
        // security
        SaslMechanisms,
        SaslInit,
        SaslChallenge,
        SaslResponse,
        SaslOutcome,
        // transactions
        Coordinator,
        Declare,
        Discharge,
        Declared,
        TransactionalState,
    ]
}

#[test]
fn composites_match_the_spec() {
    let Some(spec) = load_spec() else { return };
    let ours: BTreeMap<&str, Ours> = our_composites().into_iter().map(|o| (o.name, o)).collect();
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for t in spec.types.iter().filter(|t| t.class == "composite") {
        let Some(o) = ours.get(t.name.as_str()) else {
            failures.push(format!(
                "{}.xml composite `{}` has no Rust type",
                t.file, t.name
            ));
            continue;
        };
        seen.insert(o.name);
        let (sym, code) = t.descriptor.clone().expect("composites are described");
        if o.code != code {
            failures.push(format!("{}: CODE 0x{:x}, spec 0x{code:x}", t.name, o.code));
        }
        if o.symbol != sym {
            failures.push(format!("{}: SYMBOL {:?}, spec {sym:?}", t.name, o.symbol));
        }
        let spec_fields: Vec<&str> = t.fields.iter().map(|f| f.name.as_str()).collect();
        if o.fields != spec_fields.as_slice() {
            failures.push(format!(
                "{}: FIELDS {:?}, spec {spec_fields:?}",
                t.name, o.fields
            ));
        }
    }
    for name in ours.keys() {
        if !seen.contains(name) {
            failures.push(format!("our composite `{name}` is not in the spec"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        seen.len(),
        33,
        "composites in transport, messaging, security, transactions"
    );
}

// ---------------------------------------------------------------------------------------------
// Mandatory fields
// ---------------------------------------------------------------------------------------------

fn described(code: u64, list: Value) -> Value {
    Value::Described(Box::new(Described {
        descriptor: Descriptor::Code(code),
        value: list,
    }))
}

/// A valid sample value for a field of the spec type `ty`.
fn sample(f: &SpecField) -> Value {
    let sym = |s: &str| Value::Symbol(s.into());
    let one = match (f.ty.as_str(), f.requires.as_deref()) {
        ("string", _) => Value::string("x"),
        (
            "uint" | "handle" | "seconds" | "milliseconds" | "sequence-no" | "delivery-number"
            | "transfer-number" | "message-format",
            _,
        ) => Value::Uint(7),
        ("ushort", _) => Value::Ushort(7),
        ("ubyte", _) => Value::Ubyte(7),
        ("ulong", _) => Value::Ulong(7),
        ("boolean" | "role", _) => Value::Bool(true),
        ("timestamp", _) => Value::Timestamp(Timestamp(7)),
        ("binary" | "delivery-tag", _) => Value::binary(Bytes::from_static(b"b")),
        ("symbol", Some("error-condition")) => Value::Symbol(condition::INTERNAL_ERROR),
        ("symbol", Some("distribution-mode")) => Value::Symbol(distribution_mode::MOVE),
        ("symbol", Some("txn-capability")) => Value::Symbol(txn_capability::LOCAL_TRANSACTIONS),
        ("symbol" | "ietf-language-tag", None) => sym("x"),
        ("fields" | "node-properties" | "filter-set" | "map", _) => {
            Value::Map([(sym("k"), Value::Int(1))].into_iter().collect())
        }
        ("sender-settle-mode" | "receiver-settle-mode" | "sasl-code", _) => Value::Ubyte(1),
        ("terminus-durability", _) => Value::Uint(1),
        ("terminus-expiry-policy", _) => sym("never"),
        ("error", _) => described(
            Error::CODE,
            Value::List(vec![Value::Symbol(condition::INTERNAL_ERROR)]),
        ),
        ("*", Some("address")) => Value::string("queue"),
        ("*", Some("source")) => described(Source::CODE, Value::List(vec![])),
        ("*", Some("target")) => described(Target::CODE, Value::List(vec![])),
        ("*", Some("delivery-state" | "outcome")) => described(Accepted::CODE, Value::List(vec![])),
        ("*", Some("message-id")) => Value::Ulong(7),
        ("*", Some("txn-id" | "global-tx-id")) => Value::binary(Bytes::from_static(b"t")),
        (ty, req) => panic!(
            "no sample for field {} of type {ty} requires {req:?}",
            f.name
        ),
    };
    if f.multiple {
        Value::Array(Array::new(one.ty(), vec![one]))
    } else {
        one
    }
}

fn encode_composite(code: u64, fields: Vec<Value>) -> Bytes {
    described(code, Value::List(fields)).to_bytes()
}

#[test]
fn mandatory_fields_are_enforced() {
    let Some(spec) = load_spec() else { return };
    let ours: BTreeMap<&str, Ours> = our_composites().into_iter().map(|o| (o.name, o)).collect();
    let mut failures = Vec::new();
    let mut checked = 0;
    for t in spec.types.iter().filter(|t| t.class == "composite") {
        let Some(o) = ours.get(t.name.as_str()) else {
            continue; // reported by composites_match_the_spec
        };
        let full: Vec<Value> = t.fields.iter().map(sample).collect();
        let check_ok = |what: &str, fields: Vec<Value>, failures: &mut Vec<String>| {
            if let Err(e) = (o.decode)(&encode_composite(o.code, fields)) {
                failures.push(format!("{}: {what} should decode: {e}", t.name));
            }
        };
        let check_missing =
            |what: &str, fields: Vec<Value>, field: &str, failures: &mut Vec<String>| match (o
                .decode)(
                &encode_composite(o.code, fields),
            ) {
                Err(e)
                    if e.kind() == &DecodeErrorKind::MissingField
                        && e.composite() == Some(o.name)
                        && e.field() == Some(field) => {}
                other => failures.push(format!(
                    "{}: {what}: expected MissingField naming {field}, got {other:?}",
                    t.name
                )),
            };
        // Every field present.
        check_ok("all fields set", full.clone(), &mut failures);
        // The empty list: fails naming the first mandatory field, or decodes.
        match t.fields.iter().find(|f| f.mandatory) {
            Some(first) => check_missing("empty list", vec![], &first.name, &mut failures),
            None => check_ok("empty list", vec![], &mut failures),
        }
        for (i, f) in t.fields.iter().enumerate() {
            let mut nulled = full.clone();
            nulled[i] = Value::Null;
            let cut = full[..i].to_vec();
            if f.mandatory {
                check_missing(&format!("{} null", f.name), nulled, &f.name, &mut failures);
                check_missing(
                    &format!("list ending before {}", f.name),
                    cut,
                    &f.name,
                    &mut failures,
                );
            } else {
                check_ok(&format!("{} null", f.name), nulled, &mut failures);
                if t.fields[i..].iter().all(|f| !f.mandatory) {
                    check_ok(
                        &format!("list ending before {}", f.name),
                        cut,
                        &mut failures,
                    );
                }
            }
        }
        // Extra trailing fields (from a later version of the spec) are ignored.
        let mut longer = full.clone();
        longer.push(Value::string("future"));
        check_ok("one extra field", longer, &mut failures);
        // The symbolic descriptor is accepted too.
        let mut sym_form = BytesMut::new();
        Value::Described(Box::new(Described {
            descriptor: Descriptor::Name(o.symbol.into()),
            value: Value::List(full.clone()),
        }))
        .encode(&mut sym_form);
        if let Err(e) = (o.decode)(&sym_form.freeze()) {
            failures.push(format!("{}: symbolic descriptor refused: {e}", t.name));
        }
        // Someone else's descriptor is refused.
        if (o.decode)(&encode_composite(0xdead_beef, full)).is_ok() {
            failures.push(format!("{}: accepted a foreign descriptor", t.name));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, 33);
}

// ---------------------------------------------------------------------------------------------
// Restricted types with choices
// ---------------------------------------------------------------------------------------------

/// (spec choice name, our value rendered as the spec renders it) for every restricted type
/// with choices that we model.
fn our_choices(ty: &str) -> Option<Vec<(&'static str, String)>> {
    fn e<T: ToString>(v: &[(&'static str, T)]) -> Vec<(&'static str, String)> {
        v.iter().map(|(n, x)| (*n, x.to_string())).collect()
    }
    Some(match ty {
        "role" => e(&[
            ("sender", Role::Sender.value()),
            ("receiver", Role::Receiver.value()),
        ]),
        "sender-settle-mode" => e(&[
            ("unsettled", SenderSettleMode::Unsettled.value()),
            ("settled", SenderSettleMode::Settled.value()),
            ("mixed", SenderSettleMode::Mixed.value()),
        ]),
        "receiver-settle-mode" => e(&[
            ("first", ReceiverSettleMode::First.value()),
            ("second", ReceiverSettleMode::Second.value()),
        ]),
        "sasl-code" => e(&[
            ("ok", SaslCode::Ok.value()),
            ("auth", SaslCode::Auth.value()),
            ("sys", SaslCode::Sys.value()),
            ("sys-perm", SaslCode::SysPerm.value()),
            ("sys-temp", SaslCode::SysTemp.value()),
        ]),
        "terminus-durability" => e(&[
            ("none", TerminusDurability::None.value()),
            ("configuration", TerminusDurability::Configuration.value()),
            (
                "unsettled-state",
                TerminusDurability::UnsettledState.value(),
            ),
        ]),
        "terminus-expiry-policy" => e(&[
            ("link-detach", TerminusExpiryPolicy::LinkDetach.value()),
            ("session-end", TerminusExpiryPolicy::SessionEnd.value()),
            (
                "connection-close",
                TerminusExpiryPolicy::ConnectionClose.value(),
            ),
            ("never", TerminusExpiryPolicy::Never.value()),
        ]),
        "std-dist-mode" => e(&[
            ("move", distribution_mode::MOVE),
            ("copy", distribution_mode::COPY),
        ]),
        "txn-capability" => e(&[
            ("local-transactions", txn_capability::LOCAL_TRANSACTIONS),
            (
                "distributed-transactions",
                txn_capability::DISTRIBUTED_TRANSACTIONS,
            ),
            (
                "promotable-transactions",
                txn_capability::PROMOTABLE_TRANSACTIONS,
            ),
            ("multi-txns-per-ssn", txn_capability::MULTI_TXNS_PER_SSN),
            ("multi-ssns-per-txn", txn_capability::MULTI_SSNS_PER_TXN),
        ]),
        "amqp-error" => e(&[
            ("internal-error", condition::INTERNAL_ERROR),
            ("not-found", condition::NOT_FOUND),
            ("unauthorized-access", condition::UNAUTHORIZED_ACCESS),
            ("decode-error", condition::DECODE_ERROR),
            (
                "resource-limit-exceeded",
                condition::RESOURCE_LIMIT_EXCEEDED,
            ),
            ("not-allowed", condition::NOT_ALLOWED),
            ("invalid-field", condition::INVALID_FIELD),
            ("not-implemented", condition::NOT_IMPLEMENTED),
            ("resource-locked", condition::RESOURCE_LOCKED),
            ("precondition-failed", condition::PRECONDITION_FAILED),
            ("resource-deleted", condition::RESOURCE_DELETED),
            ("illegal-state", condition::ILLEGAL_STATE),
            ("frame-size-too-small", condition::FRAME_SIZE_TOO_SMALL),
        ]),
        "connection-error" => e(&[
            ("connection-forced", condition::CONNECTION_FORCED),
            ("framing-error", condition::FRAMING_ERROR),
            ("redirect", condition::CONNECTION_REDIRECT),
        ]),
        "session-error" => e(&[
            ("window-violation", condition::WINDOW_VIOLATION),
            ("errant-link", condition::ERRANT_LINK),
            ("handle-in-use", condition::HANDLE_IN_USE),
            ("unattached-handle", condition::UNATTACHED_HANDLE),
        ]),
        "link-error" => e(&[
            ("detach-forced", condition::DETACH_FORCED),
            (
                "transfer-limit-exceeded",
                condition::TRANSFER_LIMIT_EXCEEDED,
            ),
            ("message-size-exceeded", condition::MESSAGE_SIZE_EXCEEDED),
            ("redirect", condition::LINK_REDIRECT),
            ("stolen", condition::STOLEN),
        ]),
        "transaction-error" => e(&[
            ("unknown-id", condition::TRANSACTION_UNKNOWN_ID),
            ("transaction-rollback", condition::TRANSACTION_ROLLBACK),
            ("transaction-timeout", condition::TRANSACTION_TIMEOUT),
        ]),
        _ => return None,
    })
}

#[test]
fn restricted_choices_match_the_spec() {
    let Some(spec) = load_spec() else { return };
    let mut failures = Vec::new();
    let mut checked = BTreeSet::new();
    for t in spec
        .types
        .iter()
        .filter(|t| t.class == "restricted" && !t.choices.is_empty())
    {
        let Some(ours) = our_choices(&t.name) else {
            failures.push(format!(
                "{}.xml restricted type `{}` has choices we do not model",
                t.file, t.name
            ));
            continue;
        };
        checked.insert(t.name.clone());
        let spec_choices: Vec<(&str, &str)> = t
            .choices
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let ours: Vec<(&str, &str)> = ours.iter().map(|(n, v)| (*n, v.as_str())).collect();
        if spec_choices != ours {
            failures.push(format!(
                "{}: ours {ours:?}\n   spec {spec_choices:?}",
                t.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        checked.len(),
        13,
        "restricted types with choices: {checked:?}"
    );
    // Every condition constant is distinct (so none was mapped twice above).
    let all: BTreeSet<String> = [
        "amqp-error",
        "connection-error",
        "session-error",
        "link-error",
        "transaction-error",
    ]
    .iter()
    .flat_map(|t| our_choices(t).expect("modelled"))
    .map(|(_, v)| v)
    .collect();
    assert_eq!(all.len(), 13 + 3 + 4 + 5 + 3);
}

/// Our restricted enums decode exactly the spec's choices and refuse other values.
#[test]
fn restricted_enums_refuse_values_outside_their_choices() {
    fn refuses<T: Decode + std::fmt::Debug>(v: Value) {
        let r = T::from_bytes(&v.to_bytes());
        assert!(
            matches!(
                r.as_ref().map_err(|e| e.kind()),
                Err(DecodeErrorKind::InvalidValue(_))
            ),
            "{v:?}: {r:?}"
        );
    }
    refuses::<SenderSettleMode>(Value::Ubyte(3));
    refuses::<ReceiverSettleMode>(Value::Ubyte(2));
    refuses::<SaslCode>(Value::Ubyte(5));
    refuses::<TerminusDurability>(Value::Uint(3));
    refuses::<TerminusExpiryPolicy>(Value::symbol("sometimes"));
    for v in [false, true] {
        let r = Role::from_bytes(&Value::Bool(v).to_bytes()).unwrap();
        assert_eq!(r.value(), v);
    }
    // A wrong type is refused as such.
    assert!(matches!(
        SenderSettleMode::from_bytes(&Value::Uint(1).to_bytes())
            .unwrap_err()
            .kind(),
        DecodeErrorKind::UnexpectedType { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Message sections and definitions
// ---------------------------------------------------------------------------------------------

#[test]
fn section_descriptors_match_the_spec() {
    let Some(spec) = load_spec() else { return };
    let ours: BTreeMap<&str, u64> = [
        ("header", section_code::HEADER),
        ("delivery-annotations", section_code::DELIVERY_ANNOTATIONS),
        ("message-annotations", section_code::MESSAGE_ANNOTATIONS),
        ("properties", section_code::PROPERTIES),
        (
            "application-properties",
            section_code::APPLICATION_PROPERTIES,
        ),
        ("data", section_code::DATA),
        ("amqp-sequence", section_code::AMQP_SEQUENCE),
        ("amqp-value", section_code::AMQP_VALUE),
        ("footer", section_code::FOOTER),
    ]
    .into_iter()
    .collect();
    assert_eq!(Header::CODE, section_code::HEADER);
    assert_eq!(Properties::CODE, section_code::PROPERTIES);
    let sections: Vec<&SpecType> = spec
        .types
        .iter()
        .filter(|t| t.descriptor.is_some() && t.class == "restricted")
        .collect();
    let mut seen = BTreeSet::new();
    for t in &sections {
        let (sym, code) = t.descriptor.clone().expect("described");
        let ours = ours.get(t.name.as_str()).unwrap_or_else(|| {
            panic!(
                "described restricted type {} is not a section we know",
                t.name
            )
        });
        assert_eq!(*ours, code, "{}", t.name);
        seen.insert(t.name.as_str());
        // A section with the symbolic descriptor decodes as the numeric one.
        let body = match t.source.as_str() {
            "annotations" | "map" => Value::Map(OrderedMap::new()),
            "binary" => Value::binary(Bytes::new()),
            "list" => Value::List(vec![]),
            "*" => Value::Null,
            other => panic!("section source {other}"),
        };
        let encode = |d: Descriptor| {
            Value::Described(Box::new(Described {
                descriptor: d,
                value: body.clone(),
            }))
            .to_bytes()
        };
        let by_name = Message::decode(&encode(Descriptor::Name(sym.as_str().into())))
            .unwrap_or_else(|e| panic!("{} by symbol: {e}", t.name));
        let by_code = Message::decode(&encode(Descriptor::Code(code))).unwrap();
        assert_eq!(by_name, by_code, "{}", t.name);
        assert_ne!(by_code, Message::default(), "{}: section recorded", t.name);
    }
    assert_eq!(seen.len(), 7, "restricted sections: {seen:?}");
    for composite in ["header", "properties"] {
        let t = spec
            .types
            .iter()
            .find(|t| t.name == composite)
            .expect("in spec");
        assert_eq!(
            t.descriptor.as_ref().map(|d| d.1),
            ours.get(composite).copied()
        );
    }
}

#[test]
fn definitions_match_the_spec() {
    let Some(spec) = load_spec() else { return };
    let def = |n: &str| -> u32 {
        spec.definitions
            .get(n)
            .unwrap_or_else(|| panic!("definition {n}"))
            .parse()
            .expect("numeric definition")
    };
    assert_eq!(def("MIN-MAX-FRAME-SIZE"), MIN_MAX_FRAME_SIZE);
    for (h, prefix) in [
        (ProtocolHeader::AMQP, ""),
        (ProtocolHeader::SASL, "SASL-"),
        (ProtocolHeader::TLS, "TLS-"),
    ] {
        assert_eq!(u32::from(h.major), def(&format!("{prefix}MAJOR")));
        assert_eq!(u32::from(h.minor), def(&format!("{prefix}MINOR")));
        assert_eq!(u32::from(h.revision), def(&format!("{prefix}REVISION")));
    }
    assert_eq!(def("MESSAGE-FORMAT"), 0);
}
