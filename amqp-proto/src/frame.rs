//! Framing (`transport.xml` §2.2–2.3): protocol headers, the 8-byte frame header, AMQP and SASL
//! frame bodies, empty (heartbeat) frames, and a streaming decoder that tells "need more bytes"
//! apart from "invalid".
//!
//! ```
//! use amqp_proto::frame::{encode_frame, FrameDecoder, FrameBody, Decoded};
//! use amqp_proto::performatives::{Performative, Open};
//! use bytes::BytesMut;
//!
//! let open = Performative::from(Open { container_id: "c1".into(), ..Open::default() });
//! let mut wire = BytesMut::new();
//! encode_frame(&mut wire, 0, &open, &[]);
//! let mut dec = FrameDecoder::new(64 * 1024);
//! match dec.decode(&mut wire).unwrap() {
//!     Decoded::Frame(f) => assert!(matches!(f.body, FrameBody::Amqp { .. })),
//!     Decoded::NeedMore(_) => unreachable!(),
//! }
//! ```

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::complete::tag;
use nom::number::complete::be_u8;
use nom::{IResult, Parser};

use crate::codec::{Decode, Decoder, Encode, Limits};
use crate::error::DecodeError;
use crate::performatives::Performative;
use crate::sasl::SaslFrame;

pub mod transfer;

/// Size of the fixed frame header.
pub const FRAME_HEADER_SIZE: usize = 8;
/// The smallest max-frame-size a peer may negotiate (`MIN-MAX-FRAME-SIZE`).
pub const MIN_MAX_FRAME_SIZE: u32 = 512;
/// Frame type code of AMQP frames.
pub const FRAME_TYPE_AMQP: u8 = 0x00;
/// Frame type code of SASL frames.
pub const FRAME_TYPE_SASL: u8 = 0x01;

/// The protocol id in a protocol header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolId {
    /// Plain AMQP (`AMQP 0 1 0 0`).
    Amqp,
    /// TLS negotiation (`AMQP 2 1 0 0`).
    Tls,
    /// SASL negotiation (`AMQP 3 1 0 0`).
    Sasl,
}

impl ProtocolId {
    fn code(self) -> u8 {
        match self {
            ProtocolId::Amqp => 0,
            ProtocolId::Tls => 2,
            ProtocolId::Sasl => 3,
        }
    }
}

/// An 8-byte protocol header: `"AMQP" id major minor revision`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProtocolHeader {
    /// Protocol id.
    pub id: ProtocolId,
    /// Major version (1).
    pub major: u8,
    /// Minor version (0).
    pub minor: u8,
    /// Revision (0).
    pub revision: u8,
}

impl ProtocolHeader {
    /// Size of a protocol header.
    pub const SIZE: usize = 8;

    /// The AMQP 1.0.0 header for a protocol id.
    pub const fn new(id: ProtocolId) -> Self {
        ProtocolHeader {
            id,
            major: 1,
            minor: 0,
            revision: 0,
        }
    }

    /// `AMQP 0 1 0 0`.
    pub const AMQP: ProtocolHeader = ProtocolHeader::new(ProtocolId::Amqp);
    /// `AMQP 3 1 0 0`.
    pub const SASL: ProtocolHeader = ProtocolHeader::new(ProtocolId::Sasl);
    /// `AMQP 2 1 0 0`.
    pub const TLS: ProtocolHeader = ProtocolHeader::new(ProtocolId::Tls);

    /// The 8 bytes of this header.
    pub fn to_bytes(self) -> [u8; 8] {
        [
            b'A',
            b'M',
            b'Q',
            b'P',
            self.id.code(),
            self.major,
            self.minor,
            self.revision,
        ]
    }

    /// Parses a protocol header from the start of `buf`.
    ///
    /// Returns `Ok(None)` if fewer than 8 bytes are present and they are a valid prefix.
    /// Returns the raw bytes as an error if they are not an AMQP protocol header (for example an
    /// HTTP request or a peer speaking AMQP 0-9-1), so the caller can report what it got.
    pub fn parse(buf: &[u8]) -> Result<Option<ProtocolHeader>, HeaderError> {
        let n = buf.len().min(8);
        if buf[..n.min(4)] != b"AMQP"[..n.min(4)] {
            return Err(HeaderError::NotAmqp(Self::raw(buf)));
        }
        if buf.len() < 8 {
            return Ok(None);
        }
        #[allow(clippy::type_complexity)]
        fn p(i: &[u8]) -> IResult<&[u8], (&[u8], u8, u8, u8, u8), DecodeError> {
            (tag(&b"AMQP"[..]), be_u8, be_u8, be_u8, be_u8).parse(i)
        }
        let (_, (_, id, major, minor, revision)) =
            p(buf).map_err(|_| HeaderError::NotAmqp(Self::raw(buf)))?;
        let id = match id {
            0 => ProtocolId::Amqp,
            2 => ProtocolId::Tls,
            3 => ProtocolId::Sasl,
            _ => return Err(HeaderError::Unsupported(Self::raw(buf))),
        };
        let h = ProtocolHeader {
            id,
            major,
            minor,
            revision,
        };
        if (major, minor, revision) != (1, 0, 0) {
            return Err(HeaderError::Unsupported(Self::raw(buf)));
        }
        Ok(Some(h))
    }

    fn raw(buf: &[u8]) -> [u8; 8] {
        let mut r = [0u8; 8];
        let n = buf.len().min(8);
        r[..n].copy_from_slice(&buf[..n]);
        r
    }
}

impl fmt::Display for ProtocolHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AMQP {} {}.{}.{}",
            self.id.code(),
            self.major,
            self.minor,
            self.revision
        )
    }
}

/// A bad protocol header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The bytes do not start with `AMQP`.
    NotAmqp([u8; 8]),
    /// `AMQP` with an unknown protocol id or a version other than 1.0.0.
    Unsupported([u8; 8]),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::NotAmqp(b) => write!(f, "not an AMQP protocol header: {b:02x?}"),
            HeaderError::Unsupported(b) => {
                write!(f, "unsupported AMQP protocol header: {b:02x?}")
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// The 8-byte frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Total frame size, header included.
    pub size: u32,
    /// Data offset in 4-byte words (at least 2).
    pub doff: u8,
    /// Frame type (0 AMQP, 1 SASL).
    pub frame_type: u8,
    /// Channel (AMQP) or ignored (SASL).
    pub channel: u16,
}

impl FrameHeader {
    /// Parses the header from the first 8 bytes of `buf`.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<FrameHeader, DecodeError> {
        // Fixed layout, parsed on every frame: plain array reads.
        let Some(&[s0, s1, s2, s3, doff, frame_type, c0, c1]) = buf.first_chunk::<8>() else {
            return Err(DecodeError::truncated(FRAME_HEADER_SIZE - buf.len()));
        };
        Ok(FrameHeader {
            size: u32::from_be_bytes([s0, s1, s2, s3]),
            doff,
            frame_type,
            channel: u16::from_be_bytes([c0, c1]),
        })
    }
}

/// The body of a frame.
// Not boxed: a frame is decoded and matched on at once, and boxing would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum FrameBody {
    /// An empty frame (a heartbeat).
    Empty,
    /// An AMQP performative and, for transfers, its payload (a zero-copy slice of the input).
    Amqp {
        /// The performative.
        performative: Performative,
        /// Bytes after the performative.
        payload: Bytes,
    },
    /// A SASL frame.
    Sasl(SaslFrame),
}

/// A decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// The channel.
    pub channel: u16,
    /// The body.
    pub body: FrameBody,
}

/// Why a frame could not be decoded.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum FrameError {
    /// The frame header is malformed (size below 8, doff below 2 or beyond the frame, unknown
    /// type): the byte stream cannot be framed any more (`amqp:connection:framing-error`).
    Framing(String),
    /// The frame is larger than the negotiated max-frame-size.
    TooLarge {
        /// Declared size.
        size: u32,
        /// Limit.
        max: u32,
    },
    /// The frame body could not be decoded (`amqp:decode-error`).
    Decode(DecodeError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Framing(s) => write!(f, "framing error: {s}"),
            FrameError::TooLarge { size, max } => {
                write!(f, "frame of {size} bytes exceeds max-frame-size {max}")
            }
            FrameError::Decode(e) => write!(f, "frame body: {e}"),
        }
    }
}

impl std::error::Error for FrameError {
    /// The decoding error of an undecodable frame body.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Decode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<DecodeError> for FrameError {
    fn from(e: DecodeError) -> Self {
        FrameError::Decode(e)
    }
}

/// The outcome of one decoding attempt on a streaming buffer.
#[derive(Debug)]
pub enum Decoded<T> {
    /// A complete item was decoded and removed from the buffer.
    Frame(T),
    /// At least this many more bytes are needed.
    NeedMore(usize),
}

/// A streaming frame decoder with a size limit.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_frame_size: u32,
    limits: Limits,
}

impl FrameDecoder {
    /// A decoder accepting frames up to `max_frame_size` bytes.
    pub fn new(max_frame_size: u32) -> Self {
        FrameDecoder {
            max_frame_size,
            limits: Limits::default(),
        }
    }

    /// Sets the value-decoding limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Changes the accepted maximum frame size.
    pub fn set_max_frame_size(&mut self, max: u32) {
        self.max_frame_size = max;
    }

    /// The accepted maximum frame size.
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Checks the header at the start of `buf`: how large the whole frame is, or how many more
    /// bytes are needed to know. Nothing is consumed.
    pub fn frame_size(&self, buf: &[u8]) -> Result<Decoded<usize>, FrameError> {
        if buf.len() < FRAME_HEADER_SIZE {
            return Ok(Decoded::NeedMore(FRAME_HEADER_SIZE - buf.len()));
        }
        let h = FrameHeader::parse(buf)?;
        check_header(&h)?;
        if h.size > self.max_frame_size {
            return Err(FrameError::TooLarge {
                size: h.size,
                max: self.max_frame_size,
            });
        }
        let size = h.size as usize;
        if buf.len() < size {
            return Ok(Decoded::NeedMore(size - buf.len()));
        }
        Ok(Decoded::Frame(size))
    }

    /// Decodes one frame from the front of `buf`, removing its bytes. The payload of a transfer
    /// is a zero-copy slice of `buf`'s storage.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded<Frame>, FrameError> {
        match self.frame_size(buf)? {
            Decoded::NeedMore(n) => Ok(Decoded::NeedMore(n)),
            Decoded::Frame(size) => {
                let bytes = buf.split_to(size).freeze();
                self.decode_frame(&bytes).map(Decoded::Frame)
            }
        }
    }

    /// Decodes exactly one whole frame (header included) held in `bytes`. The header is checked
    /// as [`FrameDecoder::decode`] checks it (size, data offset, frame type); the size must equal
    /// `bytes.len()`. The max-frame-size is the streaming decoder's concern and is not applied.
    pub fn decode_frame(&self, bytes: &Bytes) -> Result<Frame, FrameError> {
        let h = FrameHeader::parse(bytes)?;
        check_header(&h)?;
        if h.size as usize != bytes.len() {
            return Err(FrameError::Framing(format!(
                "frame size {} but {} bytes given",
                h.size,
                bytes.len()
            )));
        }
        let body = bytes.slice((h.doff as usize * 4).min(bytes.len())..);
        decode_body(h, &body, self.limits)
    }
}

/// Checks what makes a frame header unusable whatever the limits: a size below 8, a data offset
/// below 2 or beyond the frame, an unknown frame type.
fn check_header(h: &FrameHeader) -> Result<(), FrameError> {
    if (h.size as usize) < FRAME_HEADER_SIZE {
        return Err(FrameError::Framing(format!(
            "frame size {} below 8",
            h.size
        )));
    }
    if h.doff < 2 || (h.doff as usize) * 4 > h.size as usize {
        return Err(FrameError::Framing(format!(
            "data offset {} invalid for frame of {} bytes",
            h.doff, h.size
        )));
    }
    if h.frame_type != FRAME_TYPE_AMQP && h.frame_type != FRAME_TYPE_SASL {
        return Err(FrameError::Framing(format!(
            "unknown frame type 0x{:02x}",
            h.frame_type
        )));
    }
    Ok(())
}

fn decode_body(h: FrameHeader, body: &Bytes, limits: Limits) -> Result<Frame, FrameError> {
    if body.is_empty() {
        return Ok(Frame {
            channel: h.channel,
            body: FrameBody::Empty,
        });
    }
    let mut d = Decoder::with_limits(body, limits);
    let body = if h.frame_type == FRAME_TYPE_SASL {
        let f = SaslFrame::decode(&mut d)?;
        d.finish()?;
        FrameBody::Sasl(f)
    } else {
        let performative = Performative::decode(&mut d)?;
        FrameBody::Amqp {
            performative,
            payload: d.rest_bytes(),
        }
    };
    Ok(Frame {
        channel: h.channel,
        body,
    })
}

/// Size of a frame carrying `body` (if any) and `payload`.
pub fn frame_len(body: Option<&dyn EncodeDyn>, payload: usize) -> usize {
    FRAME_HEADER_SIZE + body.map_or(0, |b| b.dyn_encoded_len()) + payload
}

/// Object-safe view of [`Encode`], used for frame sizing.
pub trait EncodeDyn {
    /// See [`Encode::encoded_len`].
    fn dyn_encoded_len(&self) -> usize;
}

impl<T: Encode> EncodeDyn for T {
    fn dyn_encoded_len(&self) -> usize {
        self.encoded_len()
    }
}

/// Appends one AMQP frame: header, performative, payload. Sizes are computed first, so the
/// frame is written in one pass with no back-patching.
pub fn encode_frame(buf: &mut BytesMut, channel: u16, performative: &Performative, payload: &[u8]) {
    let size = FRAME_HEADER_SIZE + performative.encoded_len() + payload.len();
    buf.reserve(size);
    put_frame_header(buf, size as u32, FRAME_TYPE_AMQP, channel);
    performative.encode(buf);
    buf.put_slice(payload);
}

/// Appends one SASL frame.
pub fn encode_sasl_frame(buf: &mut BytesMut, frame: &SaslFrame) {
    let size = FRAME_HEADER_SIZE + frame.encoded_len();
    buf.reserve(size);
    put_frame_header(buf, size as u32, FRAME_TYPE_SASL, 0);
    frame.encode(buf);
}

/// Appends an empty AMQP frame (a heartbeat).
pub fn encode_empty_frame(buf: &mut BytesMut) {
    put_frame_header(buf, FRAME_HEADER_SIZE as u32, FRAME_TYPE_AMQP, 0);
}

/// Writes a frame header with doff 2.
#[inline]
pub fn put_frame_header(buf: &mut BytesMut, size: u32, frame_type: u8, channel: u16) {
    buf.put_u32(size);
    buf.put_u8(2);
    buf.put_u8(frame_type);
    buf.put_u16(channel);
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn frame_error_source_is_the_decode_error() {
        let bytes = Bytes::from_static(&[0x71]);
        let decode = Performative::from_bytes(&bytes).unwrap_err();
        let e = FrameError::from(decode.clone());
        assert_eq!(e.source().map(|s| s.to_string()), Some(decode.to_string()));
        assert!(FrameError::Framing("x".into()).source().is_none());
    }
}
