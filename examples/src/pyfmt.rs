//! Printing AMQP values and messages the way Proton's Python examples print them
//! (`print(message.body)` gives `{'sequence': 1}`; `print(message)` gives
//! `Message(priority=4, id=1, body={'sequence': 1})`), so the Rust examples' output matches.

use std::fmt::Write as _;

use amqp_proto::message::{Body, MessageId, ReceivedMessage};
use amqp_proto::Value;

/// Python's `str(value)`: strings as they are, everything else as [`repr`].
pub fn str(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Symbol(s) => s.as_str().to_string(),
        other => repr(other),
    }
}

/// Python's `str(body)` for a message body (`print(event.message.body)`).
pub fn body_str(b: &Body) -> String {
    match b {
        Body::Value(v) => str(v),
        other => body_repr(other),
    }
}

/// Python's `repr(body)`.
pub fn body_repr(b: &Body) -> String {
    match b {
        Body::Empty => "None".into(),
        Body::Value(v) => repr(v),
        Body::Data(parts) => {
            let all: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            bytes_repr(&all)
        }
        Body::Sequence(seqs) => {
            let all: Vec<Value> = seqs.iter().flatten().cloned().collect();
            list_repr(&all)
        }
    }
}

fn list_repr(items: &[Value]) -> String {
    let inner: Vec<String> = items.iter().map(repr).collect();
    format!("[{}]", inner.join(", "))
}

/// Python's `repr(value)` of the value python-qpid-proton would decode.
pub fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Ubyte(n) => n.to_string(),
        Value::Ushort(n) => n.to_string(),
        Value::Uint(n) => n.to_string(),
        Value::Ulong(n) => n.to_string(),
        Value::Byte(n) => n.to_string(),
        Value::Short(n) => n.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Long(n) => n.to_string(),
        Value::Float(f) => float_repr(f64::from(*f)),
        Value::Double(f) => float_repr(*f),
        Value::Char(c) => string_repr(&c.to_string()),
        Value::Timestamp(t) => format!("timestamp({})", t.0),
        Value::Uuid(u) => format!("UUID('{u}')"),
        Value::Binary(b) => bytes_repr(b),
        Value::String(s) => string_repr(s),
        Value::Symbol(s) => format!("symbol({})", string_repr(s.as_str())),
        Value::List(items) => list_repr(items),
        Value::Array(a) => format!("{a:?}"),
        Value::Map(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", repr(k), repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Described(d) => format!("Described({:?}, {})", d.descriptor, repr(&d.value)),
        other => format!("{other:?}"),
    }
}

fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let s = format!("{f}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Python's `repr(str)`: single quotes unless the text contains one and no double quote.
pub fn string_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// Python's `repr(bytes)`.
pub fn bytes_repr(b: &[u8]) -> String {
    let q = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(b.len() + 3);
    out.push('b');
    out.push(q as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(q as char);
    out
}

/// Python's `repr` of a message or correlation id.
pub fn id_repr(id: &MessageId) -> String {
    match id {
        MessageId::Ulong(n) => n.to_string(),
        MessageId::String(s) => string_repr(s),
        MessageId::Uuid(u) => format!("UUID('{u}')"),
        MessageId::Binary(b) => bytes_repr(b),
    }
}

/// Python's `repr(message)`: `Message(field=value, ...)` for the fields that are set, in
/// python-qpid-proton's order.
pub fn message_repr(m: &ReceivedMessage) -> String {
    let mut f: Vec<String> = Vec::new();
    let p = m.properties();
    let h = m.header();
    if let Some(a) = m.address() {
        f.push(format!("address={}", string_repr(a)));
    }
    if let Some(a) = m.reply_to() {
        f.push(format!("reply_to={}", string_repr(a)));
    }
    if m.durable() {
        f.push("durable=True".into());
    }
    if let Some(ttl) = m.ttl().filter(|&t| t > 0) {
        f.push(format!("ttl={}", float_repr(f64::from(ttl) / 1000.0)));
    }
    if m.priority() != 0 {
        f.push(format!("priority={}", m.priority()));
    }
    if h.and_then(|h| h.first_acquirer).unwrap_or(false) {
        f.push("first_acquirer=True".into());
    }
    if m.delivery_count() > 0 {
        f.push(format!("delivery_count={}", m.delivery_count()));
    }
    if let Some(id) = m.message_id() {
        f.push(format!("id={}", id_repr(id)));
    }
    if let Some(id) = m.correlation_id() {
        f.push(format!("correlation_id={}", id_repr(id)));
    }
    if let Some(u) = p.and_then(|p| p.user_id.as_ref()).filter(|u| !u.is_empty()) {
        f.push(format!("user_id={}", bytes_repr(u)));
    }
    if let Some(g) = p.and_then(|p| p.group_id.as_ref()) {
        f.push(format!("group_id={}", string_repr(g)));
    }
    if let Some(g) = p.and_then(|p| p.group_sequence).filter(|&g| g != 0) {
        f.push(format!("group_sequence={g}"));
    }
    if let Some(g) = p.and_then(|p| p.reply_to_group_id.as_ref()) {
        f.push(format!("reply_to_group_id={}", string_repr(g)));
    }
    let map = |pairs: Vec<(String, String)>| {
        let inner: Vec<String> = pairs
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!("{{{}}}", inner.join(", "))
    };
    if let Some(a) = m.delivery_annotations().filter(|a| !a.is_empty()) {
        f.push(format!(
            "instructions={}",
            map(a.iter().map(|(k, v)| (repr(k), repr(v))).collect())
        ));
    }
    if let Some(a) = m.message_annotations().filter(|a| !a.is_empty()) {
        f.push(format!(
            "annotations={}",
            map(a.iter().map(|(k, v)| (repr(k), repr(v))).collect())
        ));
    }
    if let Some(a) = m.application_properties().filter(|a| !a.is_empty()) {
        f.push(format!(
            "properties={}",
            map(a.iter().map(|(k, v)| (string_repr(k), repr(v))).collect())
        ));
    }
    if !matches!(m.body(), Body::Empty | Body::Value(Value::Null)) {
        f.push(format!("body={}", body_repr(m.body())));
    }
    format!("Message({})", f.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_proto::message::Message;
    use amqp_proto::value::OrderedMap;

    #[test]
    fn python_like() {
        let mut map = OrderedMap::new();
        map.insert(Value::string("sequence"), Value::Long(1));
        let body = Value::Map(map);
        assert_eq!(str(&body), "{'sequence': 1}");
        assert_eq!(str(&Value::string("Hello World!")), "Hello World!");
        assert_eq!(repr(&Value::string("it's")), "\"it's\"");
        assert_eq!(repr(&Value::Double(1.0)), "1.0");
        let m = Message::builder().message_id(1u64).body(body).build();
        assert_eq!(
            message_repr(&m.into()),
            "Message(priority=4, id=1, body={'sequence': 1})"
        );
    }
}
