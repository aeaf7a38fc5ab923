//! [`ReceivedMessage`]: a received message's bytes, where its sections lie, and each section
//! decoded on first access; the scan that finds the sections; [`Rewrite`] for forwarding.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use super::{section_code, Annotations, ApplicationProperties, Body, Header, Message, MessageId};
use super::{Properties, SECTION_SYMBOLS};
use crate::codec::{self, code, Decode, Decoder, Encode};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::value::{Descriptor, Symbol, Value};

/// Index of each section kind in [`Layout::bounds`], in wire order.
const HEADER: usize = 0;
const DELIVERY_ANNOTATIONS: usize = 1;
const MESSAGE_ANNOTATIONS: usize = 2;
const PROPERTIES: usize = 3;
const APPLICATION_PROPERTIES: usize = 4;
const BODY: usize = 5;
const FOOTER: usize = 6;

/// Where each section lies: section `i` is `bounds[i]..bounds[i + 1]`, empty when absent.
/// Sections are contiguous and in wire order, so eight offsets describe all seven.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Layout {
    bounds: [usize; 8],
    /// The descriptor code of the body sections (`data`, `amqp-sequence`, `amqp-value`), or 0.
    body: u64,
}

impl Layout {
    fn span(&self, i: usize) -> Option<(usize, usize)> {
        let (start, end) = (self.bounds[i], self.bounds[i + 1]);
        (start < end).then_some((start, end))
    }
}

/// A message as it came off the wire, decoded one section at a time.
///
/// Receiving a message only *scans* it: each section's descriptor and extent are read and the
/// section order is checked, which costs a few byte reads per section and allocates nothing.
/// A section is decoded the first time one of its accessors is called, and cached. The original
/// bytes are kept, so forwarding the message unchanged writes them back as they came
/// ([`Encode`] for [`ReceivedMessage`]), and a broker that changes only the header or the
/// message annotations rewrites just those ([`ReceivedMessage::rewrite`]).
///
/// # Which errors are raised when
///
/// [`ReceivedMessage::decode`] fails (with the same [`DecodeError`] as [`Message::decode`]
/// wherever both see the same first fault) on anything that breaks the message's *structure*:
/// a section that is not a described value, a descriptor that is not a message section, a
/// section out of order, mixed or repeated body kinds, a section whose outer constructor is
/// not of its section's type (`list` for header and properties, `map` for the annotations,
/// application-properties and footer, `binary` for data, `list` for amqp-sequence, any
/// defined type for amqp-value), a declared length that runs past the input, a nested
/// descriptor that is neither a `ulong` nor a `symbol`.
///
/// Faults *inside* a section (a field of the wrong type, invalid UTF-8, a compound whose count
/// or size does not match its contents, nesting too deep) are found when that section is first
/// decoded. The convenience accessors ([`properties`](ReceivedMessage::properties),
/// [`subject`](ReceivedMessage::subject), [`body`](ReceivedMessage::body), …) then read the
/// section as absent; [`check`](ReceivedMessage::check), [`to_message`](ReceivedMessage::to_message)
/// and [`into_message`](ReceivedMessage::into_message) return the error, and it is exactly the
/// error [`Message::decode`] returns for the same bytes.
///
/// ```
/// use amqp_proto::message::{Body, Header, Message, ReceivedMessage};
/// use amqp_proto::{Encode, Value};
///
/// let sent = Message::builder()
///     .subject("greeting")
///     .body(Body::Value(Value::string("hello")))
///     .build();
/// let bytes = sent.to_bytes();
/// let received = ReceivedMessage::decode(bytes.clone()).unwrap();
/// assert_eq!(received.subject(), Some("greeting"));
/// assert_eq!(received.body_str(), Some("hello"));
/// // Forwarded unchanged: the same bytes.
/// assert_eq!(received.to_bytes(), bytes);
/// // Redelivered: only the header is rewritten.
/// let header = Header { delivery_count: Some(1), ..Header::default() };
/// let again = ReceivedMessage::decode(received.rewrite().header(&header).to_bytes()).unwrap();
/// assert_eq!(again.delivery_count(), 1);
/// assert_eq!(again.to_message().unwrap().properties, sent.properties);
/// ```
///
/// [`ReceivedMessage::default`] is a message with no sections (what a container resets a
/// recycled message slot to).
#[derive(Clone, Debug, Default)]
pub struct ReceivedMessage {
    bytes: Bytes,
    layout: Layout,
    // `None` inside a filled cell: the section is present but does not decode.
    header: OnceLock<Option<Header>>,
    delivery_annotations: OnceLock<Option<Annotations>>,
    message_annotations: OnceLock<Option<Annotations>>,
    properties: OnceLock<Option<Properties>>,
    application_properties: OnceLock<Option<ApplicationProperties>>,
    body: OnceLock<Option<Body>>,
    footer: OnceLock<Option<Annotations>>,
}

/// Two received messages are equal when their bytes are.
impl PartialEq for ReceivedMessage {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

static EMPTY_BODY: Body = Body::Empty;

impl ReceivedMessage {
    /// Scans `bytes` as a whole message: reads each section's descriptor and extent and checks
    /// their order, without decoding any section's contents.
    pub fn decode(bytes: Bytes) -> Result<ReceivedMessage, DecodeError> {
        let layout = scan(&bytes)?;
        Ok(ReceivedMessage {
            bytes,
            layout,
            header: OnceLock::new(),
            delivery_annotations: OnceLock::new(),
            message_annotations: OnceLock::new(),
            properties: OnceLock::new(),
            application_properties: OnceLock::new(),
            body: OnceLock::new(),
            footer: OnceLock::new(),
        })
    }

    /// [`decode`](Self::decode) into this message, replacing what it held (a recycled message
    /// slot is filled without moving a whole message into it); on error it is left unchanged.
    ///
    /// ```
    /// use amqp_proto::message::{Message, ReceivedMessage};
    /// use amqp_proto::Encode;
    ///
    /// let mut slot = ReceivedMessage::default();
    /// slot.decode_in_place(Message::new("hi").to_bytes().into()).unwrap();
    /// assert_eq!(slot.body_str(), Some("hi"));
    /// assert!(slot.decode_in_place(vec![0xff].into()).is_err());
    /// assert_eq!(slot.body_str(), Some("hi"));
    /// ```
    pub fn decode_in_place(&mut self, bytes: Bytes) -> Result<(), DecodeError> {
        self.layout = scan(&bytes)?;
        self.bytes = bytes;
        self.clear_cache();
        Ok(())
    }

    /// Empties this message (no sections), releasing its bytes.
    pub fn clear(&mut self) {
        self.bytes = Bytes::new();
        self.layout = Layout::default();
        self.clear_cache();
    }

    fn clear_cache(&mut self) {
        self.header.take();
        self.delivery_annotations.take();
        self.message_annotations.take();
        self.properties.take();
        self.application_properties.take();
        self.body.take();
        self.footer.take();
    }

    /// The message's bytes, exactly as received.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The message's bytes, exactly as received.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Decodes section `i` with `f` (descriptor included), caching the outcome in `cell`.
    fn lazy<'a, T>(
        &'a self,
        cell: &'a OnceLock<Option<T>>,
        i: usize,
        f: fn(&mut Decoder<'_>) -> Result<T, DecodeError>,
    ) -> Option<&'a T> {
        self.layout.span(i)?;
        cell.get_or_init(|| {
            decode_section(&self.bytes, &self.layout, i, f)
                .ok()
                .flatten()
        })
        .as_ref()
    }

    /// The header section, if present and well-formed.
    pub fn header(&self) -> Option<&Header> {
        self.lazy(&self.header, HEADER, decode_header)
    }
    /// The delivery annotations, if present and well-formed.
    pub fn delivery_annotations(&self) -> Option<&Annotations> {
        self.lazy(
            &self.delivery_annotations,
            DELIVERY_ANNOTATIONS,
            decode_annotations,
        )
    }
    /// The message annotations, if present and well-formed.
    pub fn message_annotations(&self) -> Option<&Annotations> {
        self.lazy(
            &self.message_annotations,
            MESSAGE_ANNOTATIONS,
            decode_annotations,
        )
    }
    /// The properties section, if present and well-formed.
    pub fn properties(&self) -> Option<&Properties> {
        self.lazy(&self.properties, PROPERTIES, decode_properties)
    }
    /// The application properties, if present and well-formed.
    pub fn application_properties(&self) -> Option<&ApplicationProperties> {
        self.lazy(
            &self.application_properties,
            APPLICATION_PROPERTIES,
            decode_application_properties,
        )
    }
    /// The body; [`Body::Empty`] when there is none or it is malformed.
    pub fn body(&self) -> &Body {
        self.lazy(&self.body, BODY, decode_body)
            .unwrap_or(&EMPTY_BODY)
    }
    /// The footer, if present and well-formed.
    pub fn footer(&self) -> Option<&Annotations> {
        self.lazy(&self.footer, FOOTER, decode_annotations)
    }

    /// The bytes of the body when it is exactly one `data` section, read in place without
    /// decoding anything (no allocation, no reference count touched).
    pub fn data(&self) -> Option<&[u8]> {
        if self.layout.body != super::section_code::DATA {
            return None;
        }
        let (start, end) = self.layout.span(BODY)?;
        let buf = &self.bytes[..end];
        let at = descriptor(buf, start + 1).ok()?.end;
        let (from, n) = match byte(buf, at).ok()? {
            code::VBIN8 => (at + 2, usize::from(byte(buf, at + 1).ok()?)),
            _ => (at + 5, be_u32(buf, at + 1).ok()? as usize),
        };
        // One section only: the data runs to the end of the body.
        (from.checked_add(n)? == end).then(|| &buf[from..end])
    }

    /// Decodes (and caches) every section not decoded yet; the first fault in wire order,
    /// exactly as [`Message::decode`] reports it.
    pub fn check(&self) -> Result<(), DecodeError> {
        self.check_one(&self.header, HEADER, decode_header)?;
        self.check_one(
            &self.delivery_annotations,
            DELIVERY_ANNOTATIONS,
            decode_annotations,
        )?;
        self.check_one(
            &self.message_annotations,
            MESSAGE_ANNOTATIONS,
            decode_annotations,
        )?;
        self.check_one(&self.properties, PROPERTIES, decode_properties)?;
        self.check_one(
            &self.application_properties,
            APPLICATION_PROPERTIES,
            decode_application_properties,
        )?;
        self.check_one(&self.body, BODY, decode_body)?;
        self.check_one(&self.footer, FOOTER, decode_annotations)
    }

    fn check_one<T>(
        &self,
        cell: &OnceLock<Option<T>>,
        i: usize,
        f: fn(&mut Decoder<'_>) -> Result<T, DecodeError>,
    ) -> Result<(), DecodeError> {
        if self.layout.span(i).is_none() || self.lazy(cell, i, f).is_some() {
            Ok(())
        } else {
            // Malformed: decode again for the error (only on this path).
            decode_section(&self.bytes, &self.layout, i, f).map(drop)
        }
    }

    /// Section `i` decoded (from the cache when it is there), or its error.
    fn cached<T: Clone>(
        &self,
        cell: &OnceLock<Option<T>>,
        i: usize,
        f: fn(&mut Decoder<'_>) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match cell.get() {
            Some(Some(v)) => Ok(Some(v.clone())),
            _ => decode_section(&self.bytes, &self.layout, i, f),
        }
    }

    /// The whole message decoded into an owned [`Message`]: the same result as
    /// [`Message::decode`] on [`as_bytes`](Self::as_bytes).
    pub fn to_message(&self) -> Result<Message, DecodeError> {
        // Fields are evaluated in wire order, so the first fault is the one `Message::decode`
        // meets first.
        Ok(Message {
            header: self.cached(&self.header, HEADER, decode_header)?,
            delivery_annotations: self.cached(
                &self.delivery_annotations,
                DELIVERY_ANNOTATIONS,
                decode_annotations,
            )?,
            message_annotations: self.cached(
                &self.message_annotations,
                MESSAGE_ANNOTATIONS,
                decode_annotations,
            )?,
            properties: self.cached(&self.properties, PROPERTIES, decode_properties)?,
            application_properties: self.cached(
                &self.application_properties,
                APPLICATION_PROPERTIES,
                decode_application_properties,
            )?,
            body: self
                .cached(&self.body, BODY, decode_body)?
                .unwrap_or_default(),
            footer: self.cached(&self.footer, FOOTER, decode_annotations)?,
        })
    }

    /// Like [`to_message`](Self::to_message), reusing the sections already decoded.
    pub fn into_message(self) -> Result<Message, DecodeError> {
        fn take<T>(
            m: (&Bytes, &Layout),
            cell: OnceLock<Option<T>>,
            i: usize,
            f: fn(&mut Decoder<'_>) -> Result<T, DecodeError>,
        ) -> Result<Option<T>, DecodeError> {
            match cell.into_inner() {
                Some(Some(v)) => Ok(Some(v)),
                _ => decode_section(m.0, m.1, i, f),
            }
        }
        let ReceivedMessage {
            bytes,
            layout,
            header,
            delivery_annotations,
            message_annotations,
            properties,
            application_properties,
            body,
            footer,
        } = self;
        let m = (&bytes, &layout);
        Ok(Message {
            header: take(m, header, HEADER, decode_header)?,
            delivery_annotations: take(
                m,
                delivery_annotations,
                DELIVERY_ANNOTATIONS,
                decode_annotations,
            )?,
            message_annotations: take(
                m,
                message_annotations,
                MESSAGE_ANNOTATIONS,
                decode_annotations,
            )?,
            properties: take(m, properties, PROPERTIES, decode_properties)?,
            application_properties: take(
                m,
                application_properties,
                APPLICATION_PROPERTIES,
                decode_application_properties,
            )?,
            body: take(m, body, BODY, decode_body)?.unwrap_or_default(),
            footer: take(m, footer, FOOTER, decode_annotations)?,
        })
    }

    /// Writes this message with some sections replaced and every other byte as received.
    pub fn rewrite(&self) -> Rewrite<'_> {
        Rewrite {
            message: self,
            header: None,
            message_annotations: None,
        }
    }

    /// The message id, if set.
    pub fn message_id(&self) -> Option<&MessageId> {
        self.properties()?.message_id.as_ref()
    }
    /// The correlation id, if set.
    pub fn correlation_id(&self) -> Option<&MessageId> {
        self.properties()?.correlation_id.as_ref()
    }
    /// The `to` address, if set.
    pub fn address(&self) -> Option<&str> {
        self.properties()?.to.as_deref()
    }
    /// The reply-to address, if set.
    pub fn reply_to(&self) -> Option<&str> {
        self.properties()?.reply_to.as_deref()
    }
    /// The subject, if set.
    pub fn subject(&self) -> Option<&str> {
        self.properties()?.subject.as_deref()
    }
    /// Whether the message is durable (default false).
    pub fn durable(&self) -> bool {
        self.header().and_then(|h| h.durable).unwrap_or(false)
    }
    /// Priority (default 4).
    pub fn priority(&self) -> u8 {
        self.header().and_then(|h| h.priority).unwrap_or(4)
    }
    /// Time to live in milliseconds, if set.
    pub fn ttl(&self) -> Option<u32> {
        self.header()?.ttl
    }
    /// The delivery count (default 0).
    pub fn delivery_count(&self) -> u32 {
        self.header().and_then(|h| h.delivery_count).unwrap_or(0)
    }
    /// An application property by key.
    pub fn application_property(&self, key: &str) -> Option<&Value> {
        self.application_properties()?
            .0
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v)
    }
    /// An application property by key, read straight from the section's bytes: the map is
    /// walked up to the key and only its value is decoded (strings and binaries as zero-copy
    /// slices), so a lookup allocates nothing for scalar, string and binary values.
    /// [`application_property`](Self::application_property) instead decodes and caches the
    /// whole map (cheaper for several lookups). Entries after the key are not checked; a map
    /// that is malformed before it reads as absent.
    pub fn find_application_property(&self, key: &str) -> Option<Value> {
        if let Some(cached) = self.application_properties.get() {
            return cached
                .as_ref()?
                .0
                .iter()
                .find(|(k, _)| &**k == key)
                .map(|(_, v)| v.clone());
        }
        let (start, end) = self.layout.span(APPLICATION_PROPERTIES)?;
        let section = self.bytes.slice(start..end);
        let mut d = Decoder::new(&section);
        section_code(&mut d).ok()?;
        let (n, mut body) = d.map().ok()?;
        for _ in 0..n / 2 {
            let k = ByteString::decode(&mut body).ok()?;
            if &*k == key {
                return Value::decode(&mut body).ok();
            }
            body.skip().ok()?;
        }
        None
    }
    /// A message annotation by symbol key.
    pub fn message_annotation(&self, key: &str) -> Option<&Value> {
        self.message_annotations()?
            .0
            .iter()
            .find(|(k, _)| matches!(k, Value::Symbol(s) if s.as_str() == key))
            .map(|(_, v)| v)
    }
    /// The body as a string, if it is an `amqp-value` string.
    pub fn body_str(&self) -> Option<&str> {
        match self.body() {
            Body::Value(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

impl TryFrom<Bytes> for ReceivedMessage {
    type Error = DecodeError;
    fn try_from(bytes: Bytes) -> Result<Self, DecodeError> {
        ReceivedMessage::decode(bytes)
    }
}

impl TryFrom<ReceivedMessage> for Message {
    type Error = DecodeError;
    fn try_from(m: ReceivedMessage) -> Result<Self, DecodeError> {
        m.into_message()
    }
}

/// A message made here, as a receiver would see it (a broker queueing its own messages next to
/// received ones): encoded once, every section already decoded.
impl From<Message> for ReceivedMessage {
    fn from(m: Message) -> Self {
        let lens = m.section_lens();
        let mut bytes = BytesMut::with_capacity(lens.iter().sum());
        m.encode(&mut bytes);
        let mut layout = Layout::default();
        for (i, len) in lens.iter().enumerate() {
            layout.bounds[i + 1] = layout.bounds[i] + len;
        }
        layout.body = match &m.body {
            Body::Empty => 0,
            Body::Data(_) => super::section_code::DATA,
            Body::Sequence(_) => super::section_code::AMQP_SEQUENCE,
            Body::Value(_) => super::section_code::AMQP_VALUE,
        };
        let Message {
            header,
            delivery_annotations,
            message_annotations,
            properties,
            application_properties,
            body,
            footer,
        } = m;
        ReceivedMessage {
            bytes: bytes.freeze(),
            layout,
            header: filled(header),
            delivery_annotations: filled(delivery_annotations),
            message_annotations: filled(message_annotations),
            properties: filled(properties),
            application_properties: filled(application_properties),
            body: OnceLock::from(Some(body)),
            footer: filled(footer),
        }
    }
}

/// A cache cell holding `v` when there is one.
fn filled<T>(v: Option<T>) -> OnceLock<Option<T>> {
    v.map_or_else(OnceLock::new, |v| OnceLock::from(Some(v)))
}

/// Writes the original bytes: forwarding a received message re-sends it unchanged.
impl Encode for ReceivedMessage {
    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.extend_from_slice(&self.bytes);
    }
}

/// A received message with its header and/or message annotations replaced; everything else is
/// written as received. Made by [`ReceivedMessage::rewrite`].
#[derive(Clone, Copy, Debug)]
pub struct Rewrite<'a> {
    message: &'a ReceivedMessage,
    header: Option<&'a Header>,
    message_annotations: Option<&'a Annotations>,
}

impl<'a> Rewrite<'a> {
    /// Writes this header instead of the received one (or in front, when there was none).
    pub fn header(mut self, header: &'a Header) -> Self {
        self.header = Some(header);
        self
    }
    /// Writes these message annotations instead of the received ones (or where they belong,
    /// when there were none).
    pub fn message_annotations(mut self, annotations: &'a Annotations) -> Self {
        self.message_annotations = Some(annotations);
        self
    }

    /// The received bytes of sections `from..to` (indices into the layout).
    fn original(&self, from: usize, to: usize) -> &'a [u8] {
        let b = &self.message.layout.bounds;
        &self.message.bytes[b[from]..b[to]]
    }
}

fn annotations_len(a: &Annotations) -> usize {
    codec::descriptor_code_len(super::section_code::MESSAGE_ANNOTATIONS) + a.encoded_len()
}

impl Encode for Rewrite<'_> {
    fn encoded_len(&self) -> usize {
        let header = match self.header {
            Some(h) => h.encoded_len(),
            None => self.original(HEADER, HEADER + 1).len(),
        };
        let annotations = match self.message_annotations {
            Some(a) => annotations_len(a),
            None => self.original(MESSAGE_ANNOTATIONS, PROPERTIES).len(),
        };
        header
            + self
                .original(DELIVERY_ANNOTATIONS, MESSAGE_ANNOTATIONS)
                .len()
            + annotations
            + self.original(PROPERTIES, 7).len()
    }

    fn encode(&self, buf: &mut BytesMut) {
        match self.header {
            Some(h) => h.encode(buf),
            None => buf.extend_from_slice(self.original(HEADER, HEADER + 1)),
        }
        buf.extend_from_slice(self.original(DELIVERY_ANNOTATIONS, MESSAGE_ANNOTATIONS));
        match self.message_annotations {
            Some(a) => {
                codec::put_descriptor_code(buf, super::section_code::MESSAGE_ANNOTATIONS);
                a.encode(buf);
            }
            None => buf.extend_from_slice(self.original(MESSAGE_ANNOTATIONS, PROPERTIES)),
        }
        buf.extend_from_slice(self.original(PROPERTIES, 7));
    }
}

/// Decodes section `i` of `bytes` with `f` (descriptor included); `None` when it is absent.
fn decode_section<T>(
    bytes: &Bytes,
    layout: &Layout,
    i: usize,
    f: fn(&mut Decoder<'_>) -> Result<T, DecodeError>,
) -> Result<Option<T>, DecodeError> {
    let Some((start, end)) = layout.span(i) else {
        return Ok(None);
    };
    let section = bytes.slice(start..end);
    let mut d = Decoder::new(&section);
    let value = f(&mut d)?;
    d.finish()?;
    Ok(Some(value))
}

// ---------------------------------------------------------------------------------------------
// Section decoders (descriptor included): the same calls `Message::decode` makes.
// ---------------------------------------------------------------------------------------------

fn decode_header(d: &mut Decoder<'_>) -> Result<Header, DecodeError> {
    section_code(d)?;
    Header::decode_body(d)
}

fn decode_properties(d: &mut Decoder<'_>) -> Result<Properties, DecodeError> {
    section_code(d)?;
    Properties::decode_body(d)
}

fn decode_annotations(d: &mut Decoder<'_>) -> Result<Annotations, DecodeError> {
    section_code(d)?;
    Decode::decode(d)
}

fn decode_application_properties(
    d: &mut Decoder<'_>,
) -> Result<ApplicationProperties, DecodeError> {
    section_code(d)?;
    Decode::decode(d)
}

/// One or more body sections of one kind (the scan checked kinds and counts).
fn decode_body(d: &mut Decoder<'_>) -> Result<Body, DecodeError> {
    let mut body = Body::Empty;
    while !d.is_empty() {
        match section_code(d)? {
            super::section_code::DATA => {
                let b = Bytes::decode(d)?;
                match &mut body {
                    Body::Data(parts) => parts.push(b),
                    _ => body = Body::Data(vec![b]),
                }
            }
            super::section_code::AMQP_SEQUENCE => {
                let s = codec::decode_list_of(d)?;
                match &mut body {
                    Body::Sequence(seqs) => seqs.push(s),
                    _ => body = Body::Sequence(vec![s]),
                }
            }
            _ => body = Body::Value(Value::decode(d)?),
        }
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// The scan
// ---------------------------------------------------------------------------------------------

fn byte(buf: &[u8], at: usize) -> Result<u8, DecodeError> {
    buf.get(at)
        .copied()
        .ok_or_else(|| DecodeErrorKind::Truncated { needed: 1 }.into())
}

fn be_u32(buf: &[u8], at: usize) -> Result<u32, DecodeError> {
    match buf.get(at..).and_then(|s| s.first_chunk::<4>()) {
        Some(b) => Ok(u32::from_be_bytes(*b)),
        None => Err(DecodeErrorKind::Truncated {
            needed: 4 - buf.len().saturating_sub(at).min(4),
        }
        .into()),
    }
}

/// `at + n`, or a truncation error when that runs past the input.
fn advance(buf: &[u8], at: usize, n: usize) -> Result<usize, DecodeError> {
    let end = at.saturating_add(n);
    if end > buf.len() {
        Err(DecodeErrorKind::Truncated {
            needed: end - buf.len(),
        }
        .into())
    } else {
        Ok(end)
    }
}

/// A descriptor as the scan reads it.
struct Scanned {
    /// Where the described value starts.
    end: usize,
    /// The `ulong` code, or the code of a section symbol (0 for any other symbol).
    code: u64,
    /// Where a symbolic descriptor's name lies.
    name: Option<(usize, usize)>,
}

/// Reads the descriptor starting at `at` (after the `0x00`).
fn descriptor(buf: &[u8], at: usize) -> Result<Scanned, DecodeError> {
    let c = byte(buf, at)?;
    match c {
        code::ULONG0 => Ok(Scanned {
            end: at + 1,
            code: 0,
            name: None,
        }),
        code::SMALLULONG => Ok(Scanned {
            end: at + 2,
            code: u64::from(byte(buf, at + 1)?),
            name: None,
        }),
        code::ULONG => {
            let end = advance(buf, at + 1, 8)?;
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[at + 1..end]);
            Ok(Scanned {
                end,
                code: u64::from_be_bytes(b),
                name: None,
            })
        }
        code::SYM8 | code::SYM32 => {
            let (start, n) = if c == code::SYM8 {
                (at + 2, usize::from(byte(buf, at + 1)?))
            } else {
                (at + 5, be_u32(buf, at + 1)? as usize)
            };
            let end = advance(buf, start, n)?;
            let name = &buf[start..end];
            if !name.is_ascii() {
                return Err(DecodeErrorKind::InvalidSymbol.into());
            }
            let code = SECTION_SYMBOLS
                .iter()
                .find(|(s, _)| s.as_bytes() == name)
                .map_or(0, |(_, c)| *c);
            Ok(Scanned {
                end,
                code,
                name: Some((start, end)),
            })
        }
        _ => Err(DecodeErrorKind::InvalidDescriptor.into()),
    }
}

/// The end of the value starting at `at`, read from its constructors and length prefixes
/// only (its contents are not looked at).
fn value_end(buf: &[u8], mut at: usize) -> Result<usize, DecodeError> {
    let mut c = byte(buf, at)?;
    while c == code::DESCRIBED {
        at = descriptor(buf, at + 1)?.end;
        c = byte(buf, at)?;
    }
    if codec::type_of_code(c).is_none() {
        return Err(DecodeErrorKind::InvalidConstructor(c).into());
    }
    let body = at + 1;
    match c >> 4 {
        0x4 => Ok(body),
        0x5 => advance(buf, body, 1),
        0x6 => advance(buf, body, 2),
        0x7 => advance(buf, body, 4),
        0x8 => advance(buf, body, 8),
        0x9 => advance(buf, body, 16),
        0xa | 0xc | 0xe => advance(buf, body + 1, usize::from(byte(buf, body)?)),
        _ => advance(buf, body + 4, be_u32(buf, body)? as usize),
    }
}

/// The section's own constructor check: what `Message::decode` would reject on its first byte.
fn check_constructor(section: u64, c: u8) -> Result<(), DecodeError> {
    use super::section_code as s;
    let (ok, expected) = match section {
        s::HEADER | s::PROPERTIES | s::AMQP_SEQUENCE => (
            matches!(c, code::LIST0 | code::LIST8 | code::LIST32),
            "list",
        ),
        s::DATA => (matches!(c, code::VBIN8 | code::VBIN32), "binary"),
        s::AMQP_VALUE => return Ok(()),
        _ => (matches!(c, code::MAP8 | code::MAP32), "map"),
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::unexpected(expected, c))
    }
}

/// Reads every section's descriptor and extent and checks their order.
fn scan(buf: &Bytes) -> Result<Layout, DecodeError> {
    use super::section_code as s;
    let mut layout = Layout::default();
    let mut at = 0;
    // The layout slot of the last section seen (+1), so a repeat or a step back is caught.
    let mut last = 0usize;
    while at < buf.len() {
        let first = buf[at];
        if first != code::DESCRIBED {
            return Err(DecodeError::unexpected("message section", first));
        }
        let Scanned {
            end: value,
            code: section,
            name,
        } = descriptor(buf, at + 1)?;
        if !(s::HEADER..=s::FOOTER).contains(&section) {
            let desc = match name {
                Some((a, b)) => Descriptor::Name(Symbol::try_from_bytes(buf.slice(a..b))?),
                None => Descriptor::Code(section),
            };
            return Err(DecodeErrorKind::UnexpectedDescriptor(desc.to_string()).into());
        }
        let slot = match section {
            s::HEADER => HEADER,
            s::DELIVERY_ANNOTATIONS => DELIVERY_ANNOTATIONS,
            s::MESSAGE_ANNOTATIONS => MESSAGE_ANNOTATIONS,
            s::PROPERTIES => PROPERTIES,
            s::APPLICATION_PROPERTIES => APPLICATION_PROPERTIES,
            s::FOOTER => FOOTER,
            _ => BODY,
        };
        if slot + 1 < last || (slot + 1 == last && slot != BODY) {
            return Err(DecodeError::invalid(format!(
                "message section 0x{section:x} out of order"
            )));
        }
        if slot == BODY && last == BODY + 1 {
            // Another body section: `Message::decode`'s rules and messages.
            if section == s::AMQP_VALUE {
                return Err(DecodeError::invalid("more than one amqp-value section"));
            }
            if layout.body != section {
                return Err(DecodeError::invalid("mixed body sections"));
            }
        }
        check_constructor(section, byte(buf, value)?)?;
        let end = value_end(buf, value)?;
        if slot + 1 != last {
            // First section of this slot: every slot before it, up to here, is empty.
            for b in &mut layout.bounds[last..=slot] {
                *b = at;
            }
        }
        if slot == BODY {
            layout.body = section;
        }
        layout.bounds[slot + 1] = end;
        last = slot + 1;
        at = end;
    }
    for b in &mut layout.bounds[last..] {
        *b = at;
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Encode;

    fn hex(s: &str) -> Bytes {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .into()
    }

    fn sample() -> Message {
        Message::builder()
            .message_id("m-1")
            .subject("s")
            .durable(true)
            .application_property("k", 7i64)
            .data(Bytes::from_static(b"payload"))
            .build()
    }

    #[test]
    fn structural_faults_are_refused_at_receive_with_decode_errors() {
        for bad in [
            "53 75 a0 00",                // not a described value
            "00 53 75 a0 05 00",          // data runs past the input
            "00 53 79 a0 00",             // descriptor 0x79 is no section
            "00 a3 03 61 62 63 a0 00",    // unknown symbolic descriptor
            "00 53 73 45 00 53 70 45",    // header after properties
            "00 53 70 45 00 53 70 45",    // header twice
            "00 53 75 a0 00 00 53 76 45", // data then amqp-sequence
            "00 53 77 40 00 53 77 40",    // two amqp-values
            "00 53 73 c1 01 00",          // properties not a list
            "00 53 77 00 a1 01 61 40",    // nested descriptor is a string
            "00 53 77 ff",                // undefined constructor
        ] {
            let b = hex(bad);
            let eager = Message::decode(&b).unwrap_err();
            let lazy = ReceivedMessage::decode(b).unwrap_err();
            assert_eq!(lazy, eager, "{bad}");
        }
    }

    #[test]
    fn faults_inside_a_section_are_found_on_access() {
        // Properties whose message-id is a boolean; the rest of the message is fine.
        let b = hex("00 53 73 c0 02 01 41 00 53 77 a1 02 68 69");
        let eager = Message::decode(&b).unwrap_err();
        let r = ReceivedMessage::decode(b).unwrap();
        assert_eq!(r.body_str(), Some("hi"));
        assert_eq!(r.properties(), None);
        assert_eq!(r.message_id(), None);
        assert_eq!(r.check(), Err(eager.clone()));
        assert_eq!(r.to_message(), Err(eager.clone()));
        assert_eq!(r.into_message(), Err(eager));
    }

    #[test]
    fn sections_decode_once_and_agree_with_the_owned_message() {
        let m = sample();
        let r = ReceivedMessage::decode(m.to_bytes()).unwrap();
        assert!(r.properties.get().is_none(), "nothing decoded by the scan");
        assert_eq!(r.subject(), Some("s"));
        assert!(r.properties.get().is_some(), "cached on first access");
        assert!(r.header.get().is_none(), "other sections untouched");
        assert_eq!(r.data(), Some(&b"payload"[..]));
        assert!(r.body.get().is_none(), "data() reads in place");
        assert_eq!(r.application_property("k"), Some(&Value::Long(7)));
        assert!(r.durable());
        assert_eq!(r.into_message().unwrap(), m);
    }

    #[test]
    fn forwarding_writes_the_received_bytes_and_rewrites_only_what_changed() {
        let mut m = sample();
        let bytes = m.to_bytes();
        let r = ReceivedMessage::decode(bytes.clone()).unwrap();
        assert_eq!(r.to_bytes(), bytes);
        let h = Header {
            delivery_count: Some(3),
            ..r.header().cloned().unwrap_or_default()
        };
        let mut a = Annotations::new();
        a.insert(Value::Symbol("x-opt-hop".into()), Value::Uint(1));
        let rewritten = r.rewrite().header(&h).message_annotations(&a).to_bytes();
        m.header = Some(h);
        m.message_annotations = Some(a);
        assert_eq!(rewritten, m.to_bytes());
        // The untouched tail is the received bytes.
        let tail = r.layout.bounds[PROPERTIES];
        assert!(rewritten.ends_with(&bytes[tail..]));
    }

    #[test]
    fn a_message_made_here_has_the_layout_its_scan_finds() {
        let mut full = sample();
        full.header = Some(Header::default());
        full.footer = Some(Annotations::new());
        full.message_annotations = Some(Annotations::new());
        for m in [
            sample(),
            full,
            Message::default(),
            Message::new(Body::Sequence(vec![vec![]; 2])),
        ] {
            let made = ReceivedMessage::from(m.clone());
            let scanned = ReceivedMessage::decode(m.to_bytes()).unwrap();
            assert_eq!(made.layout, scanned.layout, "{m:?}");
            assert_eq!(made.to_message().unwrap(), m);
            assert_eq!(made.body(), &m.body);
        }
    }

    #[test]
    fn an_empty_message_has_no_sections() {
        let r = ReceivedMessage::decode(Bytes::new()).unwrap();
        assert_eq!(r.body(), &Body::Empty);
        assert_eq!(r.header(), None);
        assert_eq!(r.data(), None);
        assert_eq!(r.to_message().unwrap(), Message::default());
        assert_eq!(r.rewrite().to_bytes(), Bytes::new());
    }

    #[test]
    fn one_application_property_is_found_without_decoding_the_map() {
        let m = Message::builder()
            .application_property("a", "first")
            .application_property("ts", 42u64)
            .application_property("z", Value::List(vec![Value::Null]))
            .data(Bytes::from_static(b"x"))
            .build();
        let r = ReceivedMessage::decode(m.to_bytes()).unwrap();
        assert_eq!(r.find_application_property("ts"), Some(Value::Ulong(42)));
        assert_eq!(
            r.find_application_property("a"),
            Some(Value::string("first"))
        );
        assert_eq!(r.find_application_property("missing"), None);
        // Nothing was cached: the map itself was never decoded.
        assert!(r.application_properties.get().is_none());
        // Once the map is decoded, the cached entry answers.
        assert_eq!(
            r.application_property("z"),
            Some(&Value::List(vec![Value::Null]))
        );
        assert_eq!(
            r.find_application_property("z"),
            Some(Value::List(vec![Value::Null]))
        );
        assert_eq!(
            ReceivedMessage::default().find_application_property("ts"),
            None
        );
        assert_eq!(ReceivedMessage::default().body(), &Body::Empty);
    }
}
