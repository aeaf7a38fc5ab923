//! The per-message fast path of the codec: transfer frame headers written straight into the
//! output, and the common shape of an incoming transfer read without the generic decoder.
//!
//! Both are exact shortcuts of the general code: [`TransferHead::write_frame_header`] writes the
//! bytes [`Transfer::encode`](crate::Encode::encode) would (behind an 8-byte frame header), and
//! [`TransferFields::decode_common`] accepts a subset of what
//! [`Transfer::decode_body`](crate::performatives::Transfer::decode_body) accepts and returns
//! the same fields for it; anything else returns `None` so the caller falls back to the general
//! decoder, which reports errors.
//!
//! ```
//! use amqp_proto::frame::transfer::{TransferFields, TransferHead};
//! use bytes::{Bytes, BytesMut};
//!
//! let head = TransferHead {
//!     handle: 1,
//!     delivery_id: Some(7),
//!     delivery_tag: Some(b"t1"),
//!     message_format: 0,
//!     settled: false,
//!     more: false,
//! };
//! let layout = head.layout();
//! let payload = b"message bytes";
//! let mut out = BytesMut::new();
//! head.write_frame_header(&mut out, &layout, 0, payload.len());
//! out.extend_from_slice(payload);
//! assert_eq!(out.len(), layout.frame_len(payload.len()));
//!
//! let frame = Bytes::from(out);
//! // The performative's list starts after the 8-byte frame header and 3-byte descriptor.
//! let (fields, payload_at) = TransferFields::decode_common(&frame, 11).unwrap();
//! assert_eq!((fields.handle, fields.delivery_id), (1, Some(7)));
//! assert_eq!(&frame[payload_at..], payload);
//! ```

use bytes::{Bytes, BytesMut};

use crate::codec::{self, code, Encode};
use crate::messaging::DeliveryState;
use crate::performatives::Transfer;

use super::{FRAME_HEADER_SIZE, FRAME_TYPE_AMQP};

/// The descriptor code of `transfer`.
const TRANSFER_CODE: u64 = 0x14;

/// The fields of an outgoing transfer that the fast path encodes (the others are absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferHead<'a> {
    /// The link handle.
    pub handle: u32,
    /// The delivery-id (first frame of a delivery only).
    pub delivery_id: Option<u32>,
    /// The delivery tag (first frame of a delivery only).
    pub delivery_tag: Option<&'a [u8]>,
    /// The message format; encoded when non-zero or on a first frame.
    pub message_format: u32,
    /// Sent pre-settled.
    pub settled: bool,
    /// More frames of this delivery follow.
    pub more: bool,
}

/// The sizes of an encoded [`TransferHead`], computed once by [`TransferHead::layout`] and
/// used both to size the frame and to write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferLayout {
    /// Fields written (trailing absent fields are left out).
    count: usize,
    /// Bytes of the encoded fields.
    body: usize,
    /// Bytes of the performative: descriptor, list header and fields.
    performative: usize,
}

impl TransferLayout {
    /// The bytes of the performative (descriptor and field list).
    #[inline]
    pub fn performative_len(&self) -> usize {
        self.performative
    }

    /// The size of a whole frame carrying `payload` bytes after the performative.
    #[inline]
    pub fn frame_len(&self, payload: usize) -> usize {
        FRAME_HEADER_SIZE + self.performative + payload
    }
}

impl TransferHead<'_> {
    #[inline]
    fn format_present(&self) -> bool {
        self.delivery_id.is_some() || self.message_format != 0
    }

    /// Sizes the encoding of these fields.
    #[inline]
    pub fn layout(&self) -> TransferLayout {
        let lens = [
            self.handle.encoded_len(),
            self.delivery_id.map_or(1, |v| v.encoded_len()),
            self.delivery_tag.map_or(1, |t| codec::var_len(t.len())),
            if self.format_present() {
                self.message_format.encoded_len()
            } else {
                1
            },
            1,
            1,
        ];
        let count = if self.more {
            6
        } else if self.settled {
            5
        } else if self.delivery_id.is_some() || self.delivery_tag.is_some() {
            4
        } else {
            1
        };
        let body: usize = lens[..count].iter().sum();
        TransferLayout {
            count,
            body,
            performative: codec::descriptor_code_len(TRANSFER_CODE)
                + codec::compound_len(count, body),
        }
    }

    /// Appends the frame header and the transfer performative of a frame on `channel` whose
    /// payload (`payload` bytes, appended by the caller) follows. `layout` is this head's
    /// [`layout`](Self::layout).
    #[inline]
    pub fn write_frame_header(
        &self,
        buf: &mut BytesMut,
        layout: &TransferLayout,
        channel: u16,
        payload: usize,
    ) {
        let size = layout.frame_len(payload);
        let hlen = FRAME_HEADER_SIZE + layout.performative;
        if hlen <= 64 {
            // The usual case (tags up to ~30 bytes): built on the stack, appended in one copy.
            let mut stack = [0u8; 64];
            let mut w = SliceWriter {
                buf: &mut stack,
                pos: 0,
            };
            w.transfer(self, layout, size, channel);
            debug_assert_eq!(w.pos, hlen);
            buf.extend_from_slice(&stack[..hlen]);
        } else {
            let start = buf.len();
            buf.resize(start + hlen, 0);
            let mut w = SliceWriter {
                buf: &mut buf[start..],
                pos: 0,
            };
            w.transfer(self, layout, size, channel);
            debug_assert_eq!(w.pos, hlen);
        }
    }
}

/// The fields of an incoming transfer a link acts on (its `state` travels separately): a
/// fifth of the size of [`Transfer`], so it is built and moved faster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TransferFields {
    /// The link handle.
    pub handle: u32,
    /// The delivery-id.
    pub delivery_id: Option<u32>,
    /// The delivery tag.
    pub delivery_tag: Option<Bytes>,
    /// The message format.
    pub message_format: Option<u32>,
    /// Sent pre-settled.
    pub settled: Option<bool>,
    /// More frames of this delivery follow.
    pub more: Option<bool>,
    /// The delivery is aborted.
    pub aborted: Option<bool>,
}

impl TransferFields {
    /// Splits a decoded [`Transfer`] into its fields and its delivery state.
    #[inline]
    pub fn from_transfer(t: Transfer) -> (TransferFields, Option<DeliveryState>) {
        let fields = TransferFields {
            handle: t.handle,
            delivery_id: t.delivery_id,
            delivery_tag: t.delivery_tag,
            message_format: t.message_format,
            settled: t.settled,
            more: t.more,
            aborted: t.aborted,
        };
        (fields, t.state)
    }

    /// Decodes a transfer's field list (at `start` in `frame`, after the descriptor) and
    /// returns it with where the payload starts, when it has the common shape: a `list8` of
    /// at most six fields (handle, delivery-id, delivery-tag, message-format, settled, more),
    /// each null or in its smallest encodings. Anything else (other encodings, later fields, a
    /// missing handle, malformed bytes) returns `None`: decode it with the general decoder,
    /// which accepts every encoding and reports errors. The tag is a slice of `frame`.
    #[inline]
    pub fn decode_common(frame: &Bytes, start: usize) -> Option<(TransferFields, usize)> {
        let body = frame.get(start..)?;
        let [code::LIST8, size, count, ..] = *body else {
            return None;
        };
        let end = start + 2 + size as usize;
        if !(1..=6).contains(&count) || end > frame.len() {
            return None;
        }
        let mut r = SliceReader {
            buf: &frame[..end],
            pos: start + 3,
        };
        let mut t = TransferFields {
            handle: r.uint()??,
            ..TransferFields::default()
        };
        if count > 1 {
            t.delivery_id = r.uint()?;
        }
        if count > 2 {
            t.delivery_tag = match r.u8()? {
                code::NULL => None,
                code::VBIN8 => {
                    let n = r.u8()? as usize;
                    let tag_at = r.pos;
                    r.pos += n;
                    if r.pos > end {
                        return None;
                    }
                    Some(frame.slice(tag_at..r.pos))
                }
                _ => return None,
            };
        }
        if count > 3 {
            t.message_format = r.uint()?;
        }
        if count > 4 {
            t.settled = r.bool()?;
        }
        if count > 5 {
            t.more = r.bool()?;
        }
        (r.pos == end).then_some((t, end))
    }
}

/// Reads the primitive encodings [`TransferFields::decode_common`] accepts; `None` for any other.
struct SliceReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl SliceReader<'_> {
    #[inline(always)]
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// A `uint` (uint0, smalluint or uint), or null.
    #[inline(always)]
    fn uint(&mut self) -> Option<Option<u32>> {
        Some(match self.u8()? {
            code::NULL => None,
            code::UINT0 => Some(0),
            code::SMALLUINT => Some(self.u8()? as u32),
            code::UINT => {
                let b = self.buf.get(self.pos..self.pos + 4)?;
                self.pos += 4;
                Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            _ => return None,
        })
    }

    /// A `boolean` (true or false), or null.
    #[inline(always)]
    fn bool(&mut self) -> Option<Option<bool>> {
        Some(match self.u8()? {
            code::NULL => None,
            code::TRUE => Some(true),
            code::FALSE => Some(false),
            _ => return None,
        })
    }
}

/// Writes into a slice sized beforehand (bounds-checked, no capacity checks per byte).
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl SliceWriter<'_> {
    #[inline]
    fn u8(&mut self, b: u8) {
        self.buf[self.pos] = b;
        self.pos += 1;
    }

    #[inline]
    fn put(&mut self, s: &[u8]) {
        self.buf[self.pos..self.pos + s.len()].copy_from_slice(s);
        self.pos += s.len();
    }

    /// A `uint` in its smallest encoding (as `u32::encode`).
    #[inline]
    fn uint(&mut self, v: u32) {
        match v {
            0 => self.u8(code::UINT0),
            1..=255 => self.put(&[code::SMALLUINT, v as u8]),
            _ => {
                self.u8(code::UINT);
                self.put(&v.to_be_bytes());
            }
        }
    }

    /// A `boolean` in its one-byte encoding.
    #[inline]
    fn bool(&mut self, v: bool) {
        self.u8(if v { code::TRUE } else { code::FALSE });
    }

    /// The frame header and transfer performative of [`TransferHead::write_frame_header`].
    #[inline(always)]
    fn transfer(&mut self, t: &TransferHead<'_>, l: &TransferLayout, size: usize, ch: u16) {
        self.put(&(size as u32).to_be_bytes());
        self.put(&[2, FRAME_TYPE_AMQP]);
        self.put(&ch.to_be_bytes());
        self.put(&[code::DESCRIBED, code::SMALLULONG, TRANSFER_CODE as u8]);
        if l.body < 255 && l.count <= 255 {
            self.put(&[code::LIST8, (l.body + 1) as u8, l.count as u8]);
        } else {
            self.u8(code::LIST32);
            self.put(&((l.body + 4) as u32).to_be_bytes());
            self.put(&(l.count as u32).to_be_bytes());
        }
        self.uint(t.handle);
        if l.count > 1 {
            match t.delivery_id {
                Some(id) => self.uint(id),
                None => self.u8(code::NULL),
            }
        }
        if l.count > 2 {
            match t.delivery_tag {
                Some(tag) if tag.len() <= 255 => {
                    self.put(&[code::VBIN8, tag.len() as u8]);
                    self.put(tag);
                }
                Some(tag) => {
                    self.u8(code::VBIN32);
                    self.put(&(tag.len() as u32).to_be_bytes());
                    self.put(tag);
                }
                None => self.u8(code::NULL),
            }
        }
        if l.count > 3 {
            if t.format_present() {
                self.uint(t.message_format);
            } else {
                self.u8(code::NULL);
            }
        }
        if l.count > 4 {
            self.bool(t.settled);
        }
        if l.count > 5 {
            self.bool(t.more);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Decoder;
    use crate::frame::put_frame_header;

    /// `write_frame_header` writes the same bytes as encoding the `Transfer` generically.
    #[test]
    fn frame_header_matches_generic_encoding() {
        let big_tag = vec![7u8; 300];
        let tags: [Option<&[u8]>; 4] = [None, Some(b""), Some(b"tag1"), Some(&big_tag)];
        for handle in [0u32, 1, 255, 256, u32::MAX] {
            for delivery_id in [None, Some(0u32), Some(200), Some(70_000)] {
                // First frames carry an id and a tag, continuation frames neither.
                for delivery_tag in tags
                    .into_iter()
                    .filter(|t| t.is_some() == delivery_id.is_some())
                {
                    for message_format in [0u32, 5, 1 << 20] {
                        for (settled, more) in [(false, false), (true, false), (false, true)] {
                            let head = TransferHead {
                                handle,
                                delivery_id,
                                delivery_tag,
                                message_format,
                                settled,
                                more,
                            };
                            let layout = head.layout();
                            let count = layout.count;
                            let mut fast = BytesMut::new();
                            head.write_frame_header(&mut fast, &layout, 9, 3);
                            let t = Transfer {
                                handle,
                                delivery_id: delivery_id.filter(|_| count > 1),
                                delivery_tag: delivery_tag
                                    .filter(|_| count > 2)
                                    .map(Bytes::copy_from_slice),
                                message_format: (count > 3
                                    && (delivery_id.is_some() || message_format != 0))
                                    .then_some(message_format),
                                settled: (count > 4).then_some(settled),
                                more: (count > 5).then_some(more),
                                ..Transfer::default()
                            };
                            let mut generic = BytesMut::new();
                            let size = layout.frame_len(3) as u32;
                            put_frame_header(&mut generic, size, FRAME_TYPE_AMQP, 9);
                            t.encode(&mut generic);
                            assert_eq!(fast, generic, "{t:?}");
                            assert_eq!(fast.len(), layout.frame_len(0));
                        }
                    }
                }
            }
        }
    }

    fn generic(body: &Bytes) -> (TransferFields, Bytes) {
        let mut d = Decoder::new(body);
        let (t, state) = TransferFields::from_transfer(Transfer::decode_body(&mut d).unwrap());
        assert_eq!(state, None);
        (t, d.rest_bytes())
    }

    /// Encodes `t` as a frame body after the descriptor, followed by a payload.
    fn body_of(t: &Transfer) -> Bytes {
        let mut b = BytesMut::new();
        t.encode(&mut b);
        b.extend_from_slice(b"payload");
        Bytes::from(b).slice(3..)
    }

    #[test]
    fn common_shape_decodes_like_the_generic_decoder() {
        let mut cases = Vec::new();
        for handle in [0u32, 9, 300] {
            for id in [None, Some(0u32), Some(7), Some(1 << 30)] {
                for tag in [None, Some(Bytes::new()), Some(Bytes::from_static(b"abc"))] {
                    for flag in [None, Some(false), Some(true)] {
                        cases.push(Transfer {
                            handle,
                            delivery_id: id,
                            delivery_tag: tag.clone(),
                            message_format: id.map(|_| 0),
                            settled: flag,
                            more: flag.map(|f| !f),
                            ..Transfer::default()
                        });
                    }
                }
            }
        }
        for t in &cases {
            let body = body_of(t);
            let (fast, end) = TransferFields::decode_common(&body, 0).expect("common shape");
            let fast = (fast, body.slice(end..));
            assert_eq!(fast, generic(&body), "{t:?}");
            assert_eq!(&fast.1[..], b"payload");
            // At an offset in a frame, as the engine calls it.
            let mut framed = BytesMut::from(&b"\x00\x00\x00\x00\x02\x00\x00\x00\x00\x53\x14"[..]);
            framed.extend_from_slice(&body);
            let framed = framed.freeze();
            assert_eq!(
                TransferFields::decode_common(&framed, 11),
                Some((fast.0, framed.len() - 7))
            );
        }
    }

    #[test]
    fn other_shapes_fall_back() {
        let unusual = [
            Transfer {
                handle: 1,
                state: Some(DeliveryState::accepted()),
                ..Transfer::default()
            },
            Transfer {
                handle: 1,
                aborted: Some(true),
                ..Transfer::default()
            },
            Transfer {
                handle: 1,
                delivery_tag: Some(Bytes::from(vec![1u8; 300])),
                ..Transfer::default()
            },
        ];
        for t in &unusual {
            assert!(
                TransferFields::decode_common(&body_of(t), 0).is_none(),
                "{t:?}"
            );
        }
        // Truncated or inconsistent lists, a null handle, a boolean in its long form.
        for raw in [
            &[0xc0u8, 0x05, 0x02, 0x43][..],
            &[0xc0, 0x02, 0x01, 0x40],
            &[0xc0, 0x04, 0x02, 0x43, 0xa0, 0x09],
            &[0xc0, 0x04, 0x02, 0x43, 0x43, 0x43],
            &[0xc0, 0x07, 0x05, 0x43, 0x43, 0x40, 0x43, 0x56, 0x01],
            &[0x45],
            &[],
        ] {
            assert!(
                TransferFields::decode_common(&Bytes::copy_from_slice(raw), 0).is_none(),
                "{raw:?}"
            );
        }
    }
}
