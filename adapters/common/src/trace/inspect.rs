//! AMQP values written in Proton's `pn_inspect` notation, the one its `PN_TRACE_FRM` lines
//! use: described lists of the spec's composite types as `@name(code) [field=value, …]`
//! (null fields left out), symbols as `:name`, binaries as `b"…"`, arrays as
//! `@PN_TYPE[…]`, maps as `{key=value, …}`.

use std::fmt::Write;

use amqp_proto::value::{Array, Described, Descriptor, Type, Value};

/// What replaces a credential in a trace.
pub(super) const REDACTED: &str = "<redacted>";

/// The spec's composite types: descriptor code, name, field names in order.
const COMPOSITES: &[(u64, &str, &[&str])] = &[
    (
        0x10,
        "open",
        &[
            "container-id",
            "hostname",
            "max-frame-size",
            "channel-max",
            "idle-time-out",
            "outgoing-locales",
            "incoming-locales",
            "offered-capabilities",
            "desired-capabilities",
            "properties",
        ],
    ),
    (
        0x11,
        "begin",
        &[
            "remote-channel",
            "next-outgoing-id",
            "incoming-window",
            "outgoing-window",
            "handle-max",
            "offered-capabilities",
            "desired-capabilities",
            "properties",
        ],
    ),
    (
        0x12,
        "attach",
        &[
            "name",
            "handle",
            "role",
            "snd-settle-mode",
            "rcv-settle-mode",
            "source",
            "target",
            "unsettled",
            "incomplete-unsettled",
            "initial-delivery-count",
            "max-message-size",
            "offered-capabilities",
            "desired-capabilities",
            "properties",
        ],
    ),
    (
        0x13,
        "flow",
        &[
            "next-incoming-id",
            "incoming-window",
            "next-outgoing-id",
            "outgoing-window",
            "handle",
            "delivery-count",
            "link-credit",
            "available",
            "drain",
            "echo",
            "properties",
        ],
    ),
    (
        0x14,
        "transfer",
        &[
            "handle",
            "delivery-id",
            "delivery-tag",
            "message-format",
            "settled",
            "more",
            "rcv-settle-mode",
            "state",
            "resume",
            "aborted",
            "batchable",
        ],
    ),
    (
        0x15,
        "disposition",
        &["role", "first", "last", "settled", "state", "batchable"],
    ),
    (0x16, "detach", &["handle", "closed", "error"]),
    (0x17, "end", &["error"]),
    (0x18, "close", &["error"]),
    (0x1d, "error", &["condition", "description", "info"]),
    (0x23, "received", &["section-number", "section-offset"]),
    (0x24, "accepted", &[]),
    (0x25, "rejected", &["error"]),
    (0x26, "released", &[]),
    (
        0x27,
        "modified",
        &[
            "delivery-failed",
            "undeliverable-here",
            "message-annotations",
        ],
    ),
    (
        0x28,
        "source",
        &[
            "address",
            "durable",
            "expiry-policy",
            "timeout",
            "dynamic",
            "dynamic-node-properties",
            "distribution-mode",
            "filter",
            "default-outcome",
            "outcomes",
            "capabilities",
        ],
    ),
    (
        0x29,
        "target",
        &[
            "address",
            "durable",
            "expiry-policy",
            "timeout",
            "dynamic",
            "dynamic-node-properties",
            "capabilities",
        ],
    ),
    (0x2b, "delete-on-close", &[]),
    (0x2c, "delete-on-no-links", &[]),
    (0x2d, "delete-on-no-messages", &[]),
    (0x2e, "delete-on-no-links-or-messages", &[]),
    (0x30, "coordinator", &["capabilities"]),
    (0x31, "declare", &["global-id"]),
    (0x32, "discharge", &["txn-id", "fail"]),
    (0x33, "declared", &["txn-id"]),
    (0x34, "transactional-state", &["txn-id", "outcome"]),
    (0x40, "sasl-mechanisms", &["sasl-server-mechanisms"]),
    (
        0x41,
        "sasl-init",
        &["mechanism", "initial-response", "hostname"],
    ),
    (0x42, "sasl-challenge", &["challenge"]),
    (0x43, "sasl-response", &["response"]),
    (0x44, "sasl-outcome", &["code", "additional-data"]),
];

/// Fields that can carry a password or a proof of one: a SASL client's initial response
/// (PLAIN's is `\0user\0password`) and its later responses.
fn is_credential(code: u64, field: &str) -> bool {
    matches!(
        (code, field),
        (0x41, "initial-response") | (0x43, "response")
    )
}

/// `v` in Proton's notation.
pub(super) fn inspect(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => write!(out, "{b}").unwrap_or(()),
        Value::Ubyte(n) => write!(out, "{n}").unwrap_or(()),
        Value::Ushort(n) => write!(out, "{n}").unwrap_or(()),
        Value::Uint(n) => write!(out, "{n}").unwrap_or(()),
        Value::Ulong(n) => write!(out, "{n}").unwrap_or(()),
        Value::Byte(n) => write!(out, "{n}").unwrap_or(()),
        Value::Short(n) => write!(out, "{n}").unwrap_or(()),
        Value::Int(n) => write!(out, "{n}").unwrap_or(()),
        Value::Long(n) => write!(out, "{n}").unwrap_or(()),
        Value::Float(n) => write!(out, "{n}").unwrap_or(()),
        Value::Double(n) => write!(out, "{n}").unwrap_or(()),
        Value::Decimal32(d) => write_hex(out, "D32", &d.0),
        Value::Decimal64(d) => write_hex(out, "D64", &d.0),
        Value::Decimal128(d) => write_hex(out, "D128", &d.0),
        Value::Char(c) => write!(out, "U+{:04X}", u32::from(*c)).unwrap_or(()),
        Value::Timestamp(t) => write!(out, "{}", t.0).unwrap_or(()),
        Value::Uuid(u) => {
            let b = &u.0;
            let hex = |r: std::ops::Range<usize>| {
                b[r].iter().map(|x| format!("{x:02x}")).collect::<String>()
            };
            write!(
                out,
                "UUID({}-{}-{}-{}-{})",
                hex(0..4),
                hex(4..6),
                hex(6..8),
                hex(8..10),
                hex(10..16)
            )
            .unwrap_or(());
        }
        Value::Binary(b) => {
            out.push('b');
            write_quoted(out, b);
        }
        Value::String(s) => write_quoted(out, s.as_bytes()),
        Value::Symbol(s) => write_symbol(out, s.as_str()),
        Value::List(items) => {
            out.push('[');
            write_joined(out, items.iter(), write_value);
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            write_joined(out, m.iter(), |out, (k, v)| {
                write_value(out, k);
                out.push('=');
                write_value(out, v);
            });
            out.push('}');
        }
        Value::Array(a) => write_array(out, a),
        Value::Described(d) => write_described(out, d),
    }
}

fn write_joined<T>(
    out: &mut String,
    items: impl Iterator<Item = T>,
    mut f: impl FnMut(&mut String, T),
) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        f(out, item);
    }
}

fn write_hex(out: &mut String, tag: &str, bytes: &[u8]) {
    out.push_str(tag);
    out.push('(');
    for b in bytes {
        write!(out, "{b:02x}").unwrap_or(());
    }
    out.push(')');
}

/// `"…"` with printable ASCII as is and everything else as `\xNN`.
pub(super) fn write_quoted(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => write!(out, "\\x{b:02x}").unwrap_or(()),
        }
    }
    out.push('"');
}

fn write_symbol(out: &mut String, s: &str) {
    out.push(':');
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'$'))
    {
        out.push_str(s);
    } else {
        write_quoted(out, s.as_bytes());
    }
}

fn type_name(t: Type) -> String {
    let n = match t {
        Type::Boolean => "bool",
        Type::Binary => "binary",
        other => other.name(),
    };
    format!("PN_{}", n.to_ascii_uppercase())
}

fn write_array(out: &mut String, a: &Array) {
    out.push('@');
    match a.descriptor.as_deref() {
        Some(d) => {
            write_descriptor(out, d);
            out.push(' ');
        }
        None => out.push_str(&type_name(a.ty)),
    }
    out.push('[');
    write_joined(out, a.elements.iter(), write_value);
    out.push(']');
}

fn write_descriptor(out: &mut String, d: &Descriptor) {
    match d {
        Descriptor::Code(c) => match composite(*c) {
            Some((name, _)) => write!(out, "{name}({c})").unwrap_or(()),
            None => write!(out, "{c:#x}").unwrap_or(()),
        },
        Descriptor::Name(s) => write_symbol(out, s.as_str()),
    }
}

fn composite(code: u64) -> Option<(&'static str, &'static [&'static str])> {
    COMPOSITES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, name, fields)| (*name, *fields))
}

fn write_described(out: &mut String, d: &Described) {
    out.push('@');
    write_descriptor(out, &d.descriptor);
    out.push(' ');
    let known = match &d.descriptor {
        Descriptor::Code(c) => composite(*c).map(|(_, fields)| (*c, fields)),
        Descriptor::Name(_) => None,
    };
    match (known, &d.value) {
        (Some((code, fields)), Value::List(items)) => {
            out.push('[');
            let present = items
                .iter()
                .enumerate()
                .filter(|(_, v)| !matches!(v, Value::Null));
            write_joined(out, present, |out, (i, v)| match fields.get(i) {
                Some(name) => {
                    out.push_str(name);
                    out.push('=');
                    if is_credential(code, name) {
                        out.push_str(REDACTED);
                    } else {
                        write_value(out, v);
                    }
                }
                None => write_value(out, v),
            });
            out.push(']');
        }
        (_, v) => write_value(out, v),
    }
}
