//! Messages (`messaging.xml` §3.2): the sections, the [`Message`] a user builds and sends, and
//! the [`ReceivedMessage`] a receiver gets (its bytes, each section decoded on first access).
//!
//! ```
//! use amqp_proto::message::{Message, Body};
//! use amqp_proto::{Encode, Value};
//!
//! let msg = Message::builder()
//!     .message_id("order-17")
//!     .subject("new-order")
//!     .application_property("priority", 3)
//!     .durable(true)
//!     .body(Body::Value(Value::string("hello")))
//!     .build();
//! let bytes = msg.to_bytes();
//! let back = Message::decode(&bytes).unwrap();
//! assert_eq!(back, msg);
//! ```

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use crate::codec::{self, Decode, Decoder, Encode};
use crate::composite;
use crate::definitions::{Milliseconds, SequenceNo};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::value::{Descriptor, OrderedMap, Symbol, Timestamp, Uuid, Value};

mod received;
pub use received::{ReceivedMessage, Rewrite};

composite! {
    /// `header`: transport headers for a message.
    pub struct Header("header", "amqp:header:list", 0x70) {
        /// Specify durability requirements.
        pub durable: Option<bool> => "durable",
        /// Relative message priority (default 4).
        pub priority: Option<u8> => "priority",
        /// Time to live in ms.
        pub ttl: Option<Milliseconds> => "ttl",
        /// The message has not been acquired by any other link before.
        pub first_acquirer: Option<bool> => "first-acquirer",
        /// The number of prior unsuccessful delivery attempts.
        pub delivery_count: Option<u32> => "delivery-count",
    }
}

/// A `message-id` (or correlation id): ulong, uuid, binary or string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageId {
    /// `message-id-ulong`.
    Ulong(u64),
    /// `message-id-uuid`.
    Uuid(Uuid),
    /// `message-id-binary`.
    Binary(Bytes),
    /// `message-id-string`.
    String(ByteString),
}

impl From<&str> for MessageId {
    fn from(s: &str) -> Self {
        MessageId::String(s.into())
    }
}
impl From<String> for MessageId {
    fn from(s: String) -> Self {
        MessageId::String(s.into())
    }
}
impl From<u64> for MessageId {
    fn from(v: u64) -> Self {
        MessageId::Ulong(v)
    }
}
impl From<Uuid> for MessageId {
    fn from(v: Uuid) -> Self {
        MessageId::Uuid(v)
    }
}
impl From<Bytes> for MessageId {
    fn from(v: Bytes) -> Self {
        MessageId::Binary(v)
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageId::Ulong(v) => write!(f, "{v}"),
            MessageId::Uuid(v) => write!(f, "{v}"),
            MessageId::Binary(v) => write!(f, "{v:?}"),
            MessageId::String(v) => f.write_str(v),
        }
    }
}

impl Encode for MessageId {
    fn encoded_len(&self) -> usize {
        match self {
            MessageId::Ulong(v) => v.encoded_len(),
            MessageId::Uuid(v) => v.encoded_len(),
            MessageId::Binary(v) => v.encoded_len(),
            MessageId::String(v) => v.encoded_len(),
        }
    }
    fn encode(&self, buf: &mut BytesMut) {
        match self {
            MessageId::Ulong(v) => v.encode(buf),
            MessageId::Uuid(v) => v.encode(buf),
            MessageId::Binary(v) => v.encode(buf),
            MessageId::String(v) => v.encode(buf),
        }
    }
}

impl Decode for MessageId {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        match d.peek_u8()? {
            codec::code::ULONG | codec::code::SMALLULONG | codec::code::ULONG0 => {
                u64::decode(d).map(MessageId::Ulong)
            }
            codec::code::UUID => Uuid::decode(d).map(MessageId::Uuid),
            codec::code::VBIN8 | codec::code::VBIN32 => Bytes::decode(d).map(MessageId::Binary),
            codec::code::STR8 | codec::code::STR32 => ByteString::decode(d).map(MessageId::String),
            other => Err(DecodeError::unexpected("message-id", other)),
        }
    }
}
crate::mandatory_field!(MessageId);

composite! {
    /// `properties`: immutable properties of the message.
    pub struct Properties("properties", "amqp:properties:list", 0x73) {
        /// Application message identifier.
        pub message_id: Option<MessageId> => "message-id",
        /// Creating user id.
        pub user_id: Option<Bytes> => "user-id",
        /// The address of the node the message is destined for.
        pub to: Option<ByteString> => "to",
        /// The subject of the message.
        pub subject: Option<ByteString> => "subject",
        /// The node to send replies to.
        pub reply_to: Option<ByteString> => "reply-to",
        /// Application correlation identifier.
        pub correlation_id: Option<MessageId> => "correlation-id",
        /// MIME content type.
        pub content_type: Option<Symbol> => "content-type",
        /// MIME content encoding.
        pub content_encoding: Option<Symbol> => "content-encoding",
        /// The time when this message is considered expired.
        pub absolute_expiry_time: Option<Timestamp> => "absolute-expiry-time",
        /// The time when this message was created.
        pub creation_time: Option<Timestamp> => "creation-time",
        /// The group this message belongs to.
        pub group_id: Option<ByteString> => "group-id",
        /// The relative position of this message within its group.
        pub group_sequence: Option<SequenceNo> => "group-sequence",
        /// The group the reply message belongs to.
        pub reply_to_group_id: Option<ByteString> => "reply-to-group-id",
    }
}

/// `annotations`: a map keyed by symbols (or, reserved, ulongs).
pub type Annotations = OrderedMap<Value, Value>;
/// `application-properties`: a map from strings to simple values.
pub type ApplicationProperties = OrderedMap<ByteString, Value>;

/// Descriptor codes of the message sections.
pub mod section_code {
    /// `header`.
    pub const HEADER: u64 = 0x70;
    /// `delivery-annotations`.
    pub const DELIVERY_ANNOTATIONS: u64 = 0x71;
    /// `message-annotations`.
    pub const MESSAGE_ANNOTATIONS: u64 = 0x72;
    /// `properties`.
    pub const PROPERTIES: u64 = 0x73;
    /// `application-properties`.
    pub const APPLICATION_PROPERTIES: u64 = 0x74;
    /// `data`.
    pub const DATA: u64 = 0x75;
    /// `amqp-sequence`.
    pub const AMQP_SEQUENCE: u64 = 0x76;
    /// `amqp-value`.
    pub const AMQP_VALUE: u64 = 0x77;
    /// `footer`.
    pub const FOOTER: u64 = 0x78;
}

const SECTION_SYMBOLS: [(&str, u64); 9] = [
    ("amqp:header:list", section_code::HEADER),
    (
        "amqp:delivery-annotations:map",
        section_code::DELIVERY_ANNOTATIONS,
    ),
    (
        "amqp:message-annotations:map",
        section_code::MESSAGE_ANNOTATIONS,
    ),
    ("amqp:properties:list", section_code::PROPERTIES),
    (
        "amqp:application-properties:map",
        section_code::APPLICATION_PROPERTIES,
    ),
    ("amqp:data:binary", section_code::DATA),
    ("amqp:amqp-sequence:list", section_code::AMQP_SEQUENCE),
    ("amqp:amqp-value:*", section_code::AMQP_VALUE),
    ("amqp:footer:map", section_code::FOOTER),
];

/// One message section, as it appears on the wire.
// Not boxed: sections are short-lived, and boxing would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Section {
    /// `header`.
    Header(Header),
    /// `delivery-annotations`.
    DeliveryAnnotations(Annotations),
    /// `message-annotations`.
    MessageAnnotations(Annotations),
    /// `properties`.
    Properties(Properties),
    /// `application-properties`.
    ApplicationProperties(ApplicationProperties),
    /// `data`.
    Data(Bytes),
    /// `amqp-sequence`.
    AmqpSequence(Vec<Value>),
    /// `amqp-value`.
    AmqpValue(Value),
    /// `footer`.
    Footer(Annotations),
}

impl Section {
    /// The descriptor code of this section.
    pub fn code(&self) -> u64 {
        match self {
            Section::Header(_) => section_code::HEADER,
            Section::DeliveryAnnotations(_) => section_code::DELIVERY_ANNOTATIONS,
            Section::MessageAnnotations(_) => section_code::MESSAGE_ANNOTATIONS,
            Section::Properties(_) => section_code::PROPERTIES,
            Section::ApplicationProperties(_) => section_code::APPLICATION_PROPERTIES,
            Section::Data(_) => section_code::DATA,
            Section::AmqpSequence(_) => section_code::AMQP_SEQUENCE,
            Section::AmqpValue(_) => section_code::AMQP_VALUE,
            Section::Footer(_) => section_code::FOOTER,
        }
    }
}

fn list_len(items: &[Value]) -> usize {
    let body: usize = items.iter().map(Encode::encoded_len).sum();
    codec::compound_len(items.len(), body)
}

fn put_list(items: &[Value], buf: &mut BytesMut) {
    let body: usize = items.iter().map(Encode::encoded_len).sum();
    codec::put_list_header(buf, items.len(), body);
    for i in items {
        i.encode(buf);
    }
}

impl Encode for Section {
    fn encoded_len(&self) -> usize {
        let d = codec::descriptor_code_len(self.code());
        match self {
            Section::Header(h) => h.encoded_len(),
            Section::Properties(p) => p.encoded_len(),
            Section::DeliveryAnnotations(a)
            | Section::MessageAnnotations(a)
            | Section::Footer(a) => d + a.encoded_len(),
            Section::ApplicationProperties(a) => d + a.encoded_len(),
            Section::Data(b) => d + b.encoded_len(),
            Section::AmqpSequence(s) => d + list_len(s),
            Section::AmqpValue(v) => d + v.encoded_len(),
        }
    }

    fn encode(&self, buf: &mut BytesMut) {
        match self {
            Section::Header(h) => return h.encode(buf),
            Section::Properties(p) => return p.encode(buf),
            _ => {}
        }
        codec::put_descriptor_code(buf, self.code());
        match self {
            Section::DeliveryAnnotations(a)
            | Section::MessageAnnotations(a)
            | Section::Footer(a) => a.encode(buf),
            Section::ApplicationProperties(a) => a.encode(buf),
            Section::Data(b) => b.encode(buf),
            Section::AmqpSequence(s) => put_list(s, buf),
            Section::AmqpValue(v) => v.encode(buf),
            Section::Header(_) | Section::Properties(_) => {}
        }
    }
}

/// Reads a section's descriptor and returns its numeric code.
fn section_code(d: &mut Decoder<'_>) -> Result<u64, DecodeError> {
    let first = d.peek_u8()?;
    let desc = d
        .descriptor()?
        .ok_or_else(|| DecodeError::unexpected("message section", first))?;
    let code = match &desc {
        Descriptor::Code(c) => *c,
        Descriptor::Name(n) => SECTION_SYMBOLS
            .iter()
            .find(|(s, _)| *s == n.as_str())
            .map(|(_, c)| *c)
            .ok_or_else(|| DecodeErrorKind::UnexpectedDescriptor(desc.to_string()))?,
    };
    if (section_code::HEADER..=section_code::FOOTER).contains(&code) {
        Ok(code)
    } else {
        Err(DecodeErrorKind::UnexpectedDescriptor(desc.to_string()).into())
    }
}

impl Decode for Section {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let code = section_code(d)?;
        Ok(match code {
            section_code::HEADER => Section::Header(Header::decode_body(d)?),
            section_code::DELIVERY_ANNOTATIONS => Section::DeliveryAnnotations(Decode::decode(d)?),
            section_code::MESSAGE_ANNOTATIONS => Section::MessageAnnotations(Decode::decode(d)?),
            section_code::PROPERTIES => Section::Properties(Properties::decode_body(d)?),
            section_code::APPLICATION_PROPERTIES => {
                Section::ApplicationProperties(Decode::decode(d)?)
            }
            section_code::DATA => Section::Data(Bytes::decode(d)?),
            section_code::AMQP_SEQUENCE => Section::AmqpSequence(codec::decode_list_of(d)?),
            section_code::AMQP_VALUE => Section::AmqpValue(Value::decode(d)?),
            section_code::FOOTER => Section::Footer(Decode::decode(d)?),
            _ => {
                return Err(DecodeErrorKind::UnexpectedDescriptor(
                    Descriptor::Code(code).to_string(),
                )
                .into())
            }
        })
    }
}

/// A message body: one or more `data` sections, one or more `amqp-sequence` sections, or a
/// single `amqp-value`.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Body {
    /// No body section at all (the spec requires one; Proton sends `amqp-value null` instead).
    #[default]
    Empty,
    /// One or more `data` sections of opaque bytes.
    Data(Vec<Bytes>),
    /// One or more `amqp-sequence` sections.
    Sequence(Vec<Vec<Value>>),
    /// A single `amqp-value` section.
    Value(Value),
}

impl Body {
    /// A body of a single `data` section.
    pub fn data(bytes: impl Into<Bytes>) -> Body {
        Body::Data(vec![bytes.into()])
    }

    fn encoded_len(&self) -> usize {
        let d = codec::descriptor_code_len(section_code::DATA);
        match self {
            Body::Empty => 0,
            Body::Data(parts) => parts.iter().map(|p| d + p.encoded_len()).sum(),
            Body::Sequence(seqs) => seqs.iter().map(|s| d + list_len(s)).sum(),
            Body::Value(v) => d + v.encoded_len(),
        }
    }

    fn encode(&self, buf: &mut BytesMut) {
        match self {
            Body::Empty => {}
            Body::Data(parts) => {
                for p in parts {
                    codec::put_descriptor_code(buf, section_code::DATA);
                    p.encode(buf);
                }
            }
            Body::Sequence(seqs) => {
                for s in seqs {
                    codec::put_descriptor_code(buf, section_code::AMQP_SEQUENCE);
                    put_list(s, buf);
                }
            }
            Body::Value(v) => {
                codec::put_descriptor_code(buf, section_code::AMQP_VALUE);
                v.encode(buf);
            }
        }
    }
}

impl<T: Into<Value>> From<T> for Body {
    fn from(v: T) -> Self {
        Body::Value(v.into())
    }
}

/// An AMQP message: every section of the bare and annotated message.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Message {
    /// Transport headers.
    pub header: Option<Header>,
    /// Delivery annotations (for the next hop only).
    pub delivery_annotations: Option<Annotations>,
    /// Message annotations.
    pub message_annotations: Option<Annotations>,
    /// Immutable properties.
    pub properties: Option<Properties>,
    /// Application properties.
    pub application_properties: Option<ApplicationProperties>,
    /// The body.
    pub body: Body,
    /// Footer annotations.
    pub footer: Option<Annotations>,
}

impl Message {
    /// A message with this body and nothing else.
    pub fn new(body: impl Into<Body>) -> Message {
        Message {
            body: body.into(),
            ..Message::default()
        }
    }

    /// A builder.
    pub fn builder() -> MessageBuilder {
        MessageBuilder::default()
    }

    /// Decodes a whole message from the payload of a delivery.
    ///
    /// Sections must come in the spec's order; body sections of different kinds may not mix.
    pub fn decode(bytes: &Bytes) -> Result<Message, DecodeError> {
        Self::decode_with(&mut Decoder::new(bytes))
    }

    /// Decodes a whole message, consuming every byte of the decoder.
    pub fn decode_with(d: &mut Decoder<'_>) -> Result<Message, DecodeError> {
        // Sections are decoded straight into their field: going through `Section` moved every
        // section (`Properties` is ~380 bytes) twice more, a sixth of a small message's decode.
        let mut m = Message::default();
        let mut last_rank = 0u8;
        while !d.is_empty() {
            let code = section_code(d)?;
            let rank = match code {
                section_code::HEADER => 1,
                section_code::DELIVERY_ANNOTATIONS => 2,
                section_code::MESSAGE_ANNOTATIONS => 3,
                section_code::PROPERTIES => 4,
                section_code::APPLICATION_PROPERTIES => 5,
                section_code::FOOTER => 7,
                _ => 6, // data, amqp-sequence, amqp-value
            };
            if rank < last_rank || (rank == last_rank && rank != 6) {
                return Err(DecodeError::invalid(format!(
                    "message section 0x{code:x} out of order"
                )));
            }
            last_rank = rank;
            match code {
                section_code::HEADER => m.header = Some(Header::decode_body(d)?),
                section_code::DELIVERY_ANNOTATIONS => {
                    m.delivery_annotations = Some(Decode::decode(d)?)
                }
                section_code::MESSAGE_ANNOTATIONS => {
                    m.message_annotations = Some(Decode::decode(d)?)
                }
                section_code::PROPERTIES => m.properties = Some(Properties::decode_body(d)?),
                section_code::APPLICATION_PROPERTIES => {
                    m.application_properties = Some(Decode::decode(d)?)
                }
                section_code::FOOTER => m.footer = Some(Decode::decode(d)?),
                section_code::DATA => {
                    let b = Bytes::decode(d)?;
                    match &mut m.body {
                        Body::Empty => m.body = Body::Data(vec![b]),
                        Body::Data(parts) => parts.push(b),
                        _ => return Err(DecodeError::invalid("mixed body sections")),
                    }
                }
                section_code::AMQP_SEQUENCE => {
                    let s = codec::decode_list_of(d)?;
                    match &mut m.body {
                        Body::Empty => m.body = Body::Sequence(vec![s]),
                        Body::Sequence(seqs) => seqs.push(s),
                        _ => return Err(DecodeError::invalid("mixed body sections")),
                    }
                }
                _ => {
                    let v = Value::decode(d)?;
                    match &m.body {
                        Body::Empty => m.body = Body::Value(v),
                        _ => return Err(DecodeError::invalid("more than one amqp-value section")),
                    }
                }
            }
        }
        Ok(m)
    }

    /// The sections of this message in wire order.
    pub fn sections(&self) -> Vec<Section> {
        let mut out = Vec::new();
        if let Some(h) = &self.header {
            out.push(Section::Header(h.clone()));
        }
        if let Some(a) = &self.delivery_annotations {
            out.push(Section::DeliveryAnnotations(a.clone()));
        }
        if let Some(a) = &self.message_annotations {
            out.push(Section::MessageAnnotations(a.clone()));
        }
        if let Some(p) = &self.properties {
            out.push(Section::Properties(p.clone()));
        }
        if let Some(a) = &self.application_properties {
            out.push(Section::ApplicationProperties(a.clone()));
        }
        match &self.body {
            Body::Empty => {}
            Body::Data(parts) => out.extend(parts.iter().cloned().map(Section::Data)),
            Body::Sequence(seqs) => out.extend(seqs.iter().cloned().map(Section::AmqpSequence)),
            Body::Value(v) => out.push(Section::AmqpValue(v.clone())),
        }
        if let Some(a) = &self.footer {
            out.push(Section::Footer(a.clone()));
        }
        out
    }

    fn properties_mut(&mut self) -> &mut Properties {
        self.properties.get_or_insert_with(Properties::default)
    }

    fn header_mut(&mut self) -> &mut Header {
        self.header.get_or_insert_with(Header::default)
    }

    /// The message id, if set.
    pub fn message_id(&self) -> Option<&MessageId> {
        self.properties.as_ref()?.message_id.as_ref()
    }
    /// Sets the message id.
    pub fn set_message_id(&mut self, id: impl Into<MessageId>) {
        self.properties_mut().message_id = Some(id.into());
    }
    /// The correlation id, if set.
    pub fn correlation_id(&self) -> Option<&MessageId> {
        self.properties.as_ref()?.correlation_id.as_ref()
    }
    /// Sets the correlation id.
    pub fn set_correlation_id(&mut self, id: impl Into<MessageId>) {
        self.properties_mut().correlation_id = Some(id.into());
    }
    /// The `to` address, if set.
    pub fn address(&self) -> Option<&str> {
        self.properties.as_ref()?.to.as_deref()
    }
    /// Sets the `to` address.
    pub fn set_address(&mut self, to: impl Into<ByteString>) {
        self.properties_mut().to = Some(to.into());
    }
    /// The reply-to address, if set.
    pub fn reply_to(&self) -> Option<&str> {
        self.properties.as_ref()?.reply_to.as_deref()
    }
    /// Sets the reply-to address.
    pub fn set_reply_to(&mut self, to: impl Into<ByteString>) {
        self.properties_mut().reply_to = Some(to.into());
    }
    /// The subject, if set.
    pub fn subject(&self) -> Option<&str> {
        self.properties.as_ref()?.subject.as_deref()
    }
    /// Sets the subject.
    pub fn set_subject(&mut self, s: impl Into<ByteString>) {
        self.properties_mut().subject = Some(s.into());
    }
    /// Whether the message is durable (default false).
    pub fn durable(&self) -> bool {
        self.header
            .as_ref()
            .and_then(|h| h.durable)
            .unwrap_or(false)
    }
    /// Sets durability.
    pub fn set_durable(&mut self, durable: bool) {
        self.header_mut().durable = Some(durable);
    }
    /// Priority (default 4).
    pub fn priority(&self) -> u8 {
        self.header.as_ref().and_then(|h| h.priority).unwrap_or(4)
    }
    /// Sets the priority.
    pub fn set_priority(&mut self, p: u8) {
        self.header_mut().priority = Some(p);
    }
    /// Time to live in milliseconds, if set.
    pub fn ttl(&self) -> Option<u32> {
        self.header.as_ref()?.ttl
    }
    /// Sets the time to live in milliseconds.
    pub fn set_ttl(&mut self, ms: u32) {
        self.header_mut().ttl = Some(ms);
    }
    /// The delivery count (default 0).
    pub fn delivery_count(&self) -> u32 {
        self.header
            .as_ref()
            .and_then(|h| h.delivery_count)
            .unwrap_or(0)
    }
    /// An application property by key.
    pub fn application_property(&self, key: &str) -> Option<&Value> {
        self.application_properties
            .as_ref()?
            .0
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v)
    }
    /// Sets an application property.
    pub fn set_application_property(
        &mut self,
        key: impl Into<ByteString>,
        value: impl Into<Value>,
    ) {
        self.application_properties
            .get_or_insert_with(OrderedMap::new)
            .insert(key.into(), value.into());
    }
    /// A message annotation by symbol key.
    pub fn message_annotation(&self, key: &str) -> Option<&Value> {
        self.message_annotations
            .as_ref()?
            .0
            .iter()
            .find(|(k, _)| matches!(k, Value::Symbol(s) if s.as_str() == key))
            .map(|(_, v)| v)
    }
    /// Sets a message annotation with a symbol key.
    pub fn set_message_annotation(&mut self, key: impl Into<Symbol>, value: impl Into<Value>) {
        self.message_annotations
            .get_or_insert_with(OrderedMap::new)
            .insert(Value::Symbol(key.into()), value.into());
    }
    /// The body as a string, if it is an `amqp-value` string.
    pub fn body_str(&self) -> Option<&str> {
        match &self.body {
            Body::Value(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

impl Message {
    /// The encoded length of each section kind in wire order (header, delivery-annotations,
    /// message-annotations, properties, application-properties, body, footer); 0 when absent.
    fn section_lens(&self) -> [usize; 7] {
        let d = codec::descriptor_code_len(section_code::DATA);
        let map = |a: &Option<Annotations>| a.as_ref().map_or(0, |a| d + a.encoded_len());
        [
            self.header.as_ref().map_or(0, Encode::encoded_len),
            map(&self.delivery_annotations),
            map(&self.message_annotations),
            self.properties.as_ref().map_or(0, Encode::encoded_len),
            self.application_properties
                .as_ref()
                .map_or(0, |a| d + a.encoded_len()),
            self.body.encoded_len(),
            map(&self.footer),
        ]
    }
}

impl Encode for Message {
    fn encoded_len(&self) -> usize {
        self.section_lens().iter().sum()
    }

    fn encode(&self, buf: &mut BytesMut) {
        if let Some(h) = &self.header {
            h.encode(buf);
        }
        if let Some(a) = &self.delivery_annotations {
            codec::put_descriptor_code(buf, section_code::DELIVERY_ANNOTATIONS);
            a.encode(buf);
        }
        if let Some(a) = &self.message_annotations {
            codec::put_descriptor_code(buf, section_code::MESSAGE_ANNOTATIONS);
            a.encode(buf);
        }
        if let Some(p) = &self.properties {
            p.encode(buf);
        }
        if let Some(a) = &self.application_properties {
            codec::put_descriptor_code(buf, section_code::APPLICATION_PROPERTIES);
            a.encode(buf);
        }
        self.body.encode(buf);
        if let Some(a) = &self.footer {
            codec::put_descriptor_code(buf, section_code::FOOTER);
            a.encode(buf);
        }
    }
}

/// Builds a [`Message`] field by field.
#[derive(Debug, Default, Clone)]
pub struct MessageBuilder {
    msg: Message,
}

impl MessageBuilder {
    /// Sets the body.
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        self.msg.body = body.into();
        self
    }
    /// Sets a single `data` section body.
    pub fn data(mut self, bytes: impl Into<Bytes>) -> Self {
        self.msg.body = Body::data(bytes);
        self
    }
    /// Sets the message id.
    pub fn message_id(mut self, id: impl Into<MessageId>) -> Self {
        self.msg.set_message_id(id);
        self
    }
    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<MessageId>) -> Self {
        self.msg.set_correlation_id(id);
        self
    }
    /// Sets the `to` address.
    pub fn to(mut self, to: impl Into<ByteString>) -> Self {
        self.msg.set_address(to);
        self
    }
    /// Sets the reply-to address.
    pub fn reply_to(mut self, to: impl Into<ByteString>) -> Self {
        self.msg.set_reply_to(to);
        self
    }
    /// Sets the subject.
    pub fn subject(mut self, s: impl Into<ByteString>) -> Self {
        self.msg.set_subject(s);
        self
    }
    /// Sets the user id.
    pub fn user_id(mut self, id: impl Into<Bytes>) -> Self {
        self.msg.properties_mut().user_id = Some(id.into());
        self
    }
    /// Sets the content type.
    pub fn content_type(mut self, t: impl Into<Symbol>) -> Self {
        self.msg.properties_mut().content_type = Some(t.into());
        self
    }
    /// Sets the content encoding.
    pub fn content_encoding(mut self, t: impl Into<Symbol>) -> Self {
        self.msg.properties_mut().content_encoding = Some(t.into());
        self
    }
    /// Sets the absolute expiry time.
    pub fn absolute_expiry_time(mut self, t: Timestamp) -> Self {
        self.msg.properties_mut().absolute_expiry_time = Some(t);
        self
    }
    /// Sets the creation time.
    pub fn creation_time(mut self, t: Timestamp) -> Self {
        self.msg.properties_mut().creation_time = Some(t);
        self
    }
    /// Sets the group id.
    pub fn group_id(mut self, g: impl Into<ByteString>) -> Self {
        self.msg.properties_mut().group_id = Some(g.into());
        self
    }
    /// Sets the group sequence.
    pub fn group_sequence(mut self, s: u32) -> Self {
        self.msg.properties_mut().group_sequence = Some(s);
        self
    }
    /// Sets the reply-to group id.
    pub fn reply_to_group_id(mut self, g: impl Into<ByteString>) -> Self {
        self.msg.properties_mut().reply_to_group_id = Some(g.into());
        self
    }
    /// Sets durability.
    pub fn durable(mut self, d: bool) -> Self {
        self.msg.set_durable(d);
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, p: u8) -> Self {
        self.msg.set_priority(p);
        self
    }
    /// Sets the time to live (ms).
    pub fn ttl(mut self, ms: u32) -> Self {
        self.msg.set_ttl(ms);
        self
    }
    /// Sets first-acquirer.
    pub fn first_acquirer(mut self, f: bool) -> Self {
        self.msg.header_mut().first_acquirer = Some(f);
        self
    }
    /// Sets the delivery count.
    pub fn delivery_count(mut self, c: u32) -> Self {
        self.msg.header_mut().delivery_count = Some(c);
        self
    }
    /// Adds an application property.
    pub fn application_property(mut self, k: impl Into<ByteString>, v: impl Into<Value>) -> Self {
        self.msg.set_application_property(k, v);
        self
    }
    /// Adds a message annotation.
    pub fn message_annotation(mut self, k: impl Into<Symbol>, v: impl Into<Value>) -> Self {
        self.msg.set_message_annotation(k, v);
        self
    }
    /// Adds a delivery annotation.
    pub fn delivery_annotation(mut self, k: impl Into<Symbol>, v: impl Into<Value>) -> Self {
        self.msg
            .delivery_annotations
            .get_or_insert_with(OrderedMap::new)
            .insert(Value::Symbol(k.into()), v.into());
        self
    }
    /// Adds a footer entry.
    pub fn footer(mut self, k: impl Into<Symbol>, v: impl Into<Value>) -> Self {
        self.msg
            .footer
            .get_or_insert_with(OrderedMap::new)
            .insert(Value::Symbol(k.into()), v.into());
        self
    }
    /// The message.
    pub fn build(self) -> Message {
        self.msg
    }
}

/// Writes a message directly into `buf` (no intermediate buffer).
pub fn encode_message(msg: &Message, buf: &mut BytesMut) {
    buf.reserve(msg.encoded_len());
    msg.encode(buf);
}
