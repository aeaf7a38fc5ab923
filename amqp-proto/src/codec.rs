//! The primitive codec: the [`Encode`] and [`Decode`] traits, the [`Decoder`] cursor, the
//! decoding [`Limits`], and the encoding and decoding of every primitive type and of [`Value`]
//! (format codes and the sizing and writing helpers the composites use are crate-internal).
//!
//! Encoding always picks the smallest encoding the spec allows for a value (`uint0`,
//! `smalluint`, `str8`, `list0`, `list8`, …), so the encoded size is known before writing and a
//! frame is written in one pass. Decoding accepts every encoding of the expected type.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use nom::number::complete::{
    be_f32, be_f64, be_i16, be_i32, be_i64, be_i8, be_u16, be_u32, be_u64,
};
use nom::IResult;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::value::*;

/// Format codes of the AMQP type system (`types.xml`).
#[allow(missing_docs)]
pub(crate) mod code {
    pub(crate) const DESCRIBED: u8 = 0x00;
    pub(crate) const NULL: u8 = 0x40;
    pub(crate) const BOOLEAN: u8 = 0x56;
    pub(crate) const TRUE: u8 = 0x41;
    pub(crate) const FALSE: u8 = 0x42;
    pub(crate) const UBYTE: u8 = 0x50;
    pub(crate) const USHORT: u8 = 0x60;
    pub(crate) const UINT: u8 = 0x70;
    pub(crate) const SMALLUINT: u8 = 0x52;
    pub(crate) const UINT0: u8 = 0x43;
    pub(crate) const ULONG: u8 = 0x80;
    pub(crate) const SMALLULONG: u8 = 0x53;
    pub(crate) const ULONG0: u8 = 0x44;
    pub(crate) const BYTE: u8 = 0x51;
    pub(crate) const SHORT: u8 = 0x61;
    pub(crate) const INT: u8 = 0x71;
    pub(crate) const SMALLINT: u8 = 0x54;
    pub(crate) const LONG: u8 = 0x81;
    pub(crate) const SMALLLONG: u8 = 0x55;
    pub(crate) const FLOAT: u8 = 0x72;
    pub(crate) const DOUBLE: u8 = 0x82;
    pub(crate) const DECIMAL32: u8 = 0x74;
    pub(crate) const DECIMAL64: u8 = 0x84;
    pub(crate) const DECIMAL128: u8 = 0x94;
    pub(crate) const CHAR: u8 = 0x73;
    pub(crate) const TIMESTAMP: u8 = 0x83;
    pub(crate) const UUID: u8 = 0x98;
    pub(crate) const VBIN8: u8 = 0xa0;
    pub(crate) const VBIN32: u8 = 0xb0;
    pub(crate) const STR8: u8 = 0xa1;
    pub(crate) const STR32: u8 = 0xb1;
    pub(crate) const SYM8: u8 = 0xa3;
    pub(crate) const SYM32: u8 = 0xb3;
    pub(crate) const LIST0: u8 = 0x45;
    pub(crate) const LIST8: u8 = 0xc0;
    pub(crate) const LIST32: u8 = 0xd0;
    pub(crate) const MAP8: u8 = 0xc1;
    pub(crate) const MAP32: u8 = 0xd1;
    pub(crate) const ARRAY8: u8 = 0xe0;
    pub(crate) const ARRAY32: u8 = 0xf0;
}

/// Limits applied while decoding untrusted input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists, maps, arrays and described values accepted.
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 64 }
    }
}

/// Something that can be written in AMQP encoding.
pub trait Encode {
    /// Exact number of bytes [`Encode::encode`] will write.
    fn encoded_len(&self) -> usize;
    /// Appends the encoding to `buf`.
    fn encode(&self, buf: &mut BytesMut);

    /// Encodes into a new buffer of exactly the right size.
    fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// Something that can be read from AMQP encoding.
pub trait Decode: Sized {
    /// Reads one value (constructor included) from the decoder.
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError>;

    /// Decodes a value that must span the whole of `bytes`, with default limits.
    fn from_bytes(bytes: &Bytes) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        let v = Self::decode(&mut d)?;
        d.finish()?;
        Ok(v)
    }
}

mod decoder;

pub use decoder::Decoder;

/// Most elements a decoded array with a zero-width element constructor (`null`, `true`,
/// `false`, `uint0`, `ulong0`, `list0`) may have. Such elements take no bytes, so their count
/// cannot be checked against the input; this bound keeps what a hostile input can make the
/// decoder allocate within a few values per input byte. (The encoder writes arrays of nulls
/// this way, so an array of more nulls than this does not decode.)
pub const MAX_ZERO_WIDTH_ARRAY_ELEMENTS: usize = 16;

/// The logical type of a primitive format code.
pub(crate) fn type_of_code(c: u8) -> Option<Type> {
    Some(match c {
        code::NULL => Type::Null,
        code::BOOLEAN | code::TRUE | code::FALSE => Type::Boolean,
        code::UBYTE => Type::Ubyte,
        code::USHORT => Type::Ushort,
        code::UINT | code::SMALLUINT | code::UINT0 => Type::Uint,
        code::ULONG | code::SMALLULONG | code::ULONG0 => Type::Ulong,
        code::BYTE => Type::Byte,
        code::SHORT => Type::Short,
        code::INT | code::SMALLINT => Type::Int,
        code::LONG | code::SMALLLONG => Type::Long,
        code::FLOAT => Type::Float,
        code::DOUBLE => Type::Double,
        code::DECIMAL32 => Type::Decimal32,
        code::DECIMAL64 => Type::Decimal64,
        code::DECIMAL128 => Type::Decimal128,
        code::CHAR => Type::Char,
        code::TIMESTAMP => Type::Timestamp,
        code::UUID => Type::Uuid,
        code::VBIN8 | code::VBIN32 => Type::Binary,
        code::STR8 | code::STR32 => Type::String,
        code::SYM8 | code::SYM32 => Type::Symbol,
        code::LIST0 | code::LIST8 | code::LIST32 => Type::List,
        code::MAP8 | code::MAP32 => Type::Map,
        code::ARRAY8 | code::ARRAY32 => Type::Array,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------------------------

/// Size of a variable-width value (binary, string, symbol) of `n` bytes, constructor included.
#[inline]
pub(crate) fn var_len(n: usize) -> usize {
    if n <= 255 {
        2 + n
    } else {
        5 + n
    }
}

/// Writes a variable-width value with the 8- or 32-bit code as its length requires.
#[inline]
pub(crate) fn put_var(buf: &mut BytesMut, code8: u8, code32: u8, data: &[u8]) {
    if data.len() <= 255 {
        buf.put_u8(code8);
        buf.put_u8(data.len() as u8);
    } else {
        buf.put_u8(code32);
        buf.put_u32(data.len() as u32);
    }
    buf.put_slice(data);
}

/// Size of a list or map whose `count` elements take `body` bytes, constructor included.
#[inline]
pub(crate) fn compound_len(count: usize, body: usize) -> usize {
    if count == 0 {
        1
    } else if body < 255 && count <= 255 {
        3 + body
    } else {
        9 + body
    }
}

/// Writes a list header for `count` elements taking `body` bytes (`list0`/`list8`/`list32`).
#[inline]
pub(crate) fn put_list_header(buf: &mut BytesMut, count: usize, body: usize) {
    if count == 0 {
        buf.put_u8(code::LIST0);
    } else if body < 255 && count <= 255 {
        buf.put_u8(code::LIST8);
        buf.put_u8((body + 1) as u8);
        buf.put_u8(count as u8);
    } else {
        buf.put_u8(code::LIST32);
        buf.put_u32((body + 4) as u32);
        buf.put_u32(count as u32);
    }
}

/// Size of a map with `count` elements (keys plus values) taking `body` bytes.
#[inline]
pub(crate) fn map_len(count: usize, body: usize) -> usize {
    if body < 255 && count <= 255 {
        3 + body
    } else {
        9 + body
    }
}

/// Writes a map header for `count` elements (keys plus values) taking `body` bytes.
#[inline]
pub(crate) fn put_map_header(buf: &mut BytesMut, count: usize, body: usize) {
    if body < 255 && count <= 255 {
        buf.put_u8(code::MAP8);
        buf.put_u8((body + 1) as u8);
        buf.put_u8(count as u8);
    } else {
        buf.put_u8(code::MAP32);
        buf.put_u32((body + 4) as u32);
        buf.put_u32(count as u32);
    }
}

/// Size of an array whose element area (constructor plus elements) takes `body` bytes.
#[inline]
fn array_len(count: usize, body: usize) -> usize {
    if body < 255 && count <= 255 {
        3 + body
    } else {
        9 + body
    }
}

#[inline]
fn put_array_header(buf: &mut BytesMut, count: usize, body: usize) {
    if body < 255 && count <= 255 {
        buf.put_u8(code::ARRAY8);
        buf.put_u8((body + 1) as u8);
        buf.put_u8(count as u8);
    } else {
        buf.put_u8(code::ARRAY32);
        buf.put_u32((body + 4) as u32);
        buf.put_u32(count as u32);
    }
}

/// Size of a `ulong` descriptor `0x00 <ulong>`.
#[inline]
pub(crate) fn descriptor_code_len(c: u64) -> usize {
    1 + ulong_len(c)
}

/// Size of a `uint` in its smallest encoding (`uint0`, `smalluint` or `uint`).
#[inline]
pub(crate) fn uint_len(v: u32) -> usize {
    match v {
        0 => 1,
        1..=255 => 2,
        _ => 5,
    }
}

/// Size of a `ulong` in its smallest encoding (`ulong0`, `smallulong` or `ulong`).
#[inline]
pub(crate) fn ulong_len(v: u64) -> usize {
    match v {
        0 => 1,
        1..=255 => 2,
        _ => 9,
    }
}

#[inline]
fn bool_len(_: bool) -> usize {
    1
}

#[inline]
fn put_bool(buf: &mut BytesMut, v: bool) {
    buf.put_u8(if v { code::TRUE } else { code::FALSE });
}

/// Writes a `ulong` descriptor `0x00 <ulong>`.
#[inline]
pub(crate) fn put_descriptor_code(buf: &mut BytesMut, c: u64) {
    buf.put_u8(code::DESCRIBED);
    put_ulong(buf, c);
}

#[inline]
fn put_ulong(buf: &mut BytesMut, v: u64) {
    if v == 0 {
        buf.put_u8(code::ULONG0);
    } else if v <= 255 {
        buf.put_u8(code::SMALLULONG);
        buf.put_u8(v as u8);
    } else {
        buf.put_u8(code::ULONG);
        buf.put_u64(v);
    }
}

#[inline]
fn put_uint(buf: &mut BytesMut, v: u32) {
    if v == 0 {
        buf.put_u8(code::UINT0);
    } else if v <= 255 {
        buf.put_u8(code::SMALLUINT);
        buf.put_u8(v as u8);
    } else {
        buf.put_u8(code::UINT);
        buf.put_u32(v);
    }
}

impl Descriptor {
    fn encoded_len(&self) -> usize {
        match self {
            Descriptor::Code(c) => descriptor_code_len(*c),
            Descriptor::Name(n) => 1 + var_len(n.len()),
        }
    }

    fn encode(&self, buf: &mut BytesMut) {
        match self {
            Descriptor::Code(c) => put_descriptor_code(buf, *c),
            Descriptor::Name(n) => {
                buf.put_u8(code::DESCRIBED);
                put_var(buf, code::SYM8, code::SYM32, n.as_bytes());
            }
        }
    }
}

/// The constructor an array uses for its elements: the smallest encoding that fits every element.
fn array_ctor(ty: Type, elements: &[Value]) -> u8 {
    fn fits<F: Fn(&Value) -> bool>(els: &[Value], f: F) -> bool {
        els.iter().all(f)
    }
    match ty {
        Type::Null => code::NULL,
        Type::Boolean => code::BOOLEAN,
        Type::Ubyte => code::UBYTE,
        Type::Ushort => code::USHORT,
        Type::Uint => {
            if fits(elements, |v| matches!(v, Value::Uint(x) if *x <= 255)) {
                code::SMALLUINT
            } else {
                code::UINT
            }
        }
        Type::Ulong => {
            if fits(elements, |v| matches!(v, Value::Ulong(x) if *x <= 255)) {
                code::SMALLULONG
            } else {
                code::ULONG
            }
        }
        Type::Byte => code::BYTE,
        Type::Short => code::SHORT,
        Type::Int => {
            if fits(
                elements,
                |v| matches!(v, Value::Int(x) if i8::try_from(*x).is_ok()),
            ) {
                code::SMALLINT
            } else {
                code::INT
            }
        }
        Type::Long => {
            if fits(
                elements,
                |v| matches!(v, Value::Long(x) if i8::try_from(*x).is_ok()),
            ) {
                code::SMALLLONG
            } else {
                code::LONG
            }
        }
        Type::Float => code::FLOAT,
        Type::Double => code::DOUBLE,
        Type::Decimal32 => code::DECIMAL32,
        Type::Decimal64 => code::DECIMAL64,
        Type::Decimal128 => code::DECIMAL128,
        Type::Char => code::CHAR,
        Type::Timestamp => code::TIMESTAMP,
        Type::Uuid => code::UUID,
        Type::Binary | Type::String | Type::Symbol => {
            let small = fits(elements, |v| match v {
                Value::Binary(b) => b.len() <= 255,
                Value::String(s) => s.len() <= 255,
                Value::Symbol(s) => s.len() <= 255,
                _ => true,
            });
            match (ty, small) {
                (Type::Binary, true) => code::VBIN8,
                (Type::Binary, false) => code::VBIN32,
                (Type::String, true) => code::STR8,
                (Type::String, false) => code::STR32,
                (_, true) => code::SYM8,
                (_, false) => code::SYM32,
            }
        }
        Type::List | Type::Map | Type::Array => {
            let small = fits(elements, |v| {
                let (count, body) = compound_parts(v);
                body < 255 && count <= 255
            });
            match (ty, small) {
                (Type::List, true) => code::LIST8,
                (Type::List, false) => code::LIST32,
                (Type::Map, true) => code::MAP8,
                (Type::Map, false) => code::MAP32,
                (_, true) => code::ARRAY8,
                (_, false) => code::ARRAY32,
            }
        }
    }
}

/// Element count and body size (bytes after the count) of a compound or array value.
fn compound_parts(v: &Value) -> (usize, usize) {
    match v {
        Value::List(items) => (items.len(), items.iter().map(Encode::encoded_len).sum()),
        Value::Map(m) => (
            m.0.len() * 2,
            m.0.iter()
                .map(|(k, v)| k.encoded_len() + v.encoded_len())
                .sum(),
        ),
        Value::Array(a) => (a.elements.len(), array_area_len(a)),
        _ => (0, 0),
    }
}

/// Size of an array's constructor plus element bodies.
fn array_area_len(a: &Array) -> usize {
    let ctor = array_ctor(a.ty, &a.elements);
    let desc = a.descriptor.as_ref().map_or(0, |d| d.encoded_len());
    desc + 1 + a.elements.iter().map(|e| body_len(e, ctor)).sum::<usize>()
}

/// Size of a value's body when encoded with constructor `ctor` (constructor excluded).
fn body_len(v: &Value, ctor: u8) -> usize {
    match ctor {
        code::NULL | code::TRUE | code::FALSE | code::UINT0 | code::ULONG0 | code::LIST0 => 0,
        code::BOOLEAN
        | code::UBYTE
        | code::BYTE
        | code::SMALLUINT
        | code::SMALLULONG
        | code::SMALLINT
        | code::SMALLLONG => 1,
        code::USHORT | code::SHORT => 2,
        code::UINT | code::INT | code::FLOAT | code::DECIMAL32 | code::CHAR => 4,
        code::ULONG | code::LONG | code::DOUBLE | code::DECIMAL64 | code::TIMESTAMP => 8,
        code::DECIMAL128 | code::UUID => 16,
        code::VBIN8 | code::STR8 | code::SYM8 => 1 + var_data(v).len(),
        code::VBIN32 | code::STR32 | code::SYM32 => 4 + var_data(v).len(),
        code::LIST8 | code::MAP8 | code::ARRAY8 => 2 + compound_parts(v).1,
        code::LIST32 | code::MAP32 | code::ARRAY32 => 8 + compound_parts(v).1,
        _ => 0,
    }
}

fn var_data(v: &Value) -> &[u8] {
    match v {
        Value::Binary(b) => b,
        Value::String(s) => s.as_bytes(),
        Value::Symbol(s) => s.as_bytes(),
        _ => &[],
    }
}

/// Writes a value's body with constructor `ctor` (constructor not written). Used for array
/// elements; a value of a type not matching `ctor` is written as zeros of the right width so
/// the size computed beforehand stays exact.
fn put_body(buf: &mut BytesMut, v: &Value, ctor: u8) {
    match (ctor, v) {
        (code::BOOLEAN, Value::Bool(b)) => buf.put_u8(*b as u8),
        (code::UBYTE, Value::Ubyte(x)) => buf.put_u8(*x),
        (code::USHORT, Value::Ushort(x)) => buf.put_u16(*x),
        (code::SMALLUINT, Value::Uint(x)) => buf.put_u8(*x as u8),
        (code::UINT, Value::Uint(x)) => buf.put_u32(*x),
        (code::SMALLULONG, Value::Ulong(x)) => buf.put_u8(*x as u8),
        (code::ULONG, Value::Ulong(x)) => buf.put_u64(*x),
        (code::BYTE, Value::Byte(x)) => buf.put_i8(*x),
        (code::SHORT, Value::Short(x)) => buf.put_i16(*x),
        (code::SMALLINT, Value::Int(x)) => buf.put_i8(*x as i8),
        (code::INT, Value::Int(x)) => buf.put_i32(*x),
        (code::SMALLLONG, Value::Long(x)) => buf.put_i8(*x as i8),
        (code::LONG, Value::Long(x)) => buf.put_i64(*x),
        (code::FLOAT, Value::Float(x)) => buf.put_f32(*x),
        (code::DOUBLE, Value::Double(x)) => buf.put_f64(*x),
        (code::DECIMAL32, Value::Decimal32(x)) => buf.put_slice(&x.0),
        (code::DECIMAL64, Value::Decimal64(x)) => buf.put_slice(&x.0),
        (code::DECIMAL128, Value::Decimal128(x)) => buf.put_slice(&x.0),
        (code::CHAR, Value::Char(x)) => buf.put_u32(*x as u32),
        (code::TIMESTAMP, Value::Timestamp(x)) => buf.put_i64(x.0),
        (code::UUID, Value::Uuid(x)) => buf.put_slice(&x.0),
        (code::VBIN8 | code::STR8 | code::SYM8, v) => {
            let d = var_data(v);
            buf.put_u8(d.len() as u8);
            buf.put_slice(d);
        }
        (code::VBIN32 | code::STR32 | code::SYM32, v) => {
            let d = var_data(v);
            buf.put_u32(d.len() as u32);
            buf.put_slice(d);
        }
        (code::LIST8 | code::LIST32, Value::List(items)) => {
            let body: usize = items.iter().map(Encode::encoded_len).sum();
            if ctor == code::LIST8 {
                buf.put_u8((body + 1) as u8);
                buf.put_u8(items.len() as u8);
            } else {
                buf.put_u32((body + 4) as u32);
                buf.put_u32(items.len() as u32);
            }
            for i in items {
                i.encode(buf);
            }
        }
        (code::MAP8 | code::MAP32, Value::Map(m)) => {
            let (count, body) = compound_parts(v);
            if ctor == code::MAP8 {
                buf.put_u8((body + 1) as u8);
                buf.put_u8(count as u8);
            } else {
                buf.put_u32((body + 4) as u32);
                buf.put_u32(count as u32);
            }
            for (k, v) in &m.0 {
                k.encode(buf);
                v.encode(buf);
            }
        }
        (code::ARRAY8 | code::ARRAY32, Value::Array(a)) => {
            let body = array_area_len(a);
            if ctor == code::ARRAY8 {
                buf.put_u8((body + 1) as u8);
                buf.put_u8(a.elements.len() as u8);
            } else {
                buf.put_u32((body + 4) as u32);
                buf.put_u32(a.elements.len() as u32);
            }
            put_array_area(buf, a);
        }
        (c, v) => buf.put_bytes(0, body_len(v, c)),
    }
}

fn put_array_area(buf: &mut BytesMut, a: &Array) {
    let ctor = array_ctor(a.ty, &a.elements);
    if let Some(d) = &a.descriptor {
        d.encode(buf);
    }
    buf.put_u8(ctor);
    for e in &a.elements {
        put_body(buf, e, ctor);
    }
}

impl Encode for Value {
    fn encoded_len(&self) -> usize {
        match self {
            Value::Null | Value::Bool(_) => 1,
            Value::Ubyte(_) | Value::Byte(_) => 2,
            Value::Ushort(_) | Value::Short(_) => 3,
            Value::Uint(v) => uint_len(*v),
            Value::Ulong(v) => ulong_len(*v),
            Value::Int(v) => {
                if i8::try_from(*v).is_ok() {
                    2
                } else {
                    5
                }
            }
            Value::Long(v) => {
                if i8::try_from(*v).is_ok() {
                    2
                } else {
                    9
                }
            }
            Value::Float(_) | Value::Decimal32(_) | Value::Char(_) => 5,
            Value::Double(_) | Value::Decimal64(_) | Value::Timestamp(_) => 9,
            Value::Decimal128(_) | Value::Uuid(_) => 17,
            Value::Binary(b) => var_len(b.len()),
            Value::String(s) => var_len(s.len()),
            Value::Symbol(s) => var_len(s.len()),
            Value::List(_) | Value::Map(_) => {
                let (count, body) = compound_parts(self);
                if matches!(self, Value::List(_)) {
                    compound_len(count, body)
                } else {
                    map_len(count, body)
                }
            }
            Value::Array(a) => array_len(a.elements.len(), array_area_len(a)),
            Value::Described(d) => d.descriptor.encoded_len() + d.value.encoded_len(),
        }
    }

    fn encode(&self, buf: &mut BytesMut) {
        match self {
            Value::Null => buf.put_u8(code::NULL),
            Value::Bool(true) => buf.put_u8(code::TRUE),
            Value::Bool(false) => buf.put_u8(code::FALSE),
            Value::Ubyte(v) => {
                buf.put_u8(code::UBYTE);
                buf.put_u8(*v);
            }
            Value::Ushort(v) => {
                buf.put_u8(code::USHORT);
                buf.put_u16(*v);
            }
            Value::Uint(v) => put_uint(buf, *v),
            Value::Ulong(v) => put_ulong(buf, *v),
            Value::Byte(v) => {
                buf.put_u8(code::BYTE);
                buf.put_i8(*v);
            }
            Value::Short(v) => {
                buf.put_u8(code::SHORT);
                buf.put_i16(*v);
            }
            Value::Int(v) => {
                if let Ok(small) = i8::try_from(*v) {
                    buf.put_u8(code::SMALLINT);
                    buf.put_i8(small);
                } else {
                    buf.put_u8(code::INT);
                    buf.put_i32(*v);
                }
            }
            Value::Long(v) => {
                if let Ok(small) = i8::try_from(*v) {
                    buf.put_u8(code::SMALLLONG);
                    buf.put_i8(small);
                } else {
                    buf.put_u8(code::LONG);
                    buf.put_i64(*v);
                }
            }
            Value::Float(v) => {
                buf.put_u8(code::FLOAT);
                buf.put_f32(*v);
            }
            Value::Double(v) => {
                buf.put_u8(code::DOUBLE);
                buf.put_f64(*v);
            }
            Value::Decimal32(v) => {
                buf.put_u8(code::DECIMAL32);
                buf.put_slice(&v.0);
            }
            Value::Decimal64(v) => {
                buf.put_u8(code::DECIMAL64);
                buf.put_slice(&v.0);
            }
            Value::Decimal128(v) => {
                buf.put_u8(code::DECIMAL128);
                buf.put_slice(&v.0);
            }
            Value::Char(c) => {
                buf.put_u8(code::CHAR);
                buf.put_u32(*c as u32);
            }
            Value::Timestamp(t) => {
                buf.put_u8(code::TIMESTAMP);
                buf.put_i64(t.0);
            }
            Value::Uuid(u) => {
                buf.put_u8(code::UUID);
                buf.put_slice(&u.0);
            }
            Value::Binary(b) => put_var(buf, code::VBIN8, code::VBIN32, b),
            Value::String(s) => put_var(buf, code::STR8, code::STR32, s.as_bytes()),
            Value::Symbol(s) => put_var(buf, code::SYM8, code::SYM32, s.as_bytes()),
            Value::List(items) => {
                let body: usize = items.iter().map(Encode::encoded_len).sum();
                put_list_header(buf, items.len(), body);
                for i in items {
                    i.encode(buf);
                }
            }
            Value::Map(m) => {
                let (count, body) = compound_parts(self);
                put_map_header(buf, count, body);
                for (k, v) in &m.0 {
                    k.encode(buf);
                    v.encode(buf);
                }
            }
            Value::Array(a) => {
                put_array_header(buf, a.elements.len(), array_area_len(a));
                put_array_area(buf, a);
            }
            Value::Described(d) => {
                d.descriptor.encode(buf);
                d.value.encode(buf);
            }
        }
    }
}

impl Decode for Value {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.value()
    }
}

// ---------------------------------------------------------------------------------------------
// Typed primitives: Encode/Decode for Rust types, accepting every encoding of the AMQP type.
// ---------------------------------------------------------------------------------------------

macro_rules! fixed_primitive {
    // Encoded through `Value` (rarely used in performatives).
    ($t:ty, $name:literal, $variant:ident, [$($code:path => $read:expr),+ $(,)?]) => {
        impl Encode for $t {
            #[inline]
            fn encoded_len(&self) -> usize {
                Value::$variant((*self).into()).encoded_len()
            }
            #[inline]
            fn encode(&self, buf: &mut BytesMut) {
                Value::$variant((*self).into()).encode(buf)
            }
        }
        fixed_primitive!(@decode $t, $name, [$($code => $read),+]);
    };
    // Encoded directly (hot in performatives: no `Value` is built, and the small functions
    // inline across crates).
    ($t:ty, $name:literal, len = $len:path, put = $put:path, [$($code:path => $read:expr),+ $(,)?]) => {
        impl Encode for $t {
            #[inline]
            fn encoded_len(&self) -> usize {
                $len(*self)
            }
            #[inline]
            fn encode(&self, buf: &mut BytesMut) {
                $put(buf, *self)
            }
        }
        fixed_primitive!(@decode $t, $name, [$($code => $read),+]);
    };
    (@decode $t:ty, $name:literal, [$($code:path => $read:expr),+]) => {
        impl Decode for $t {
            #[inline]
            fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
                let c = d.u8()?;
                #[allow(clippy::redundant_closure_call)]
                match c {
                    $($code => ($read)(d),)+
                    other => Err(DecodeError::unexpected($name, other)),
                }
            }
        }
    };
}

fixed_primitive!(bool, "boolean", len = bool_len, put = put_bool, [
    code::TRUE => |_: &mut Decoder<'_>| Ok(true),
    code::FALSE => |_: &mut Decoder<'_>| Ok(false),
    code::BOOLEAN => |d: &mut Decoder<'_>| match d.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(DecodeError::invalid(format!("boolean byte 0x{b:02x}"))),
    },
]);
fixed_primitive!(u8, "ubyte", Ubyte, [code::UBYTE => |d: &mut Decoder<'_>| d.u8()]);
fixed_primitive!(u16, "ushort", Ushort, [code::USHORT => |d: &mut Decoder<'_>| d.run(be_u16)]);
fixed_primitive!(u32, "uint", len = uint_len, put = put_uint, [
    code::UINT0 => |_: &mut Decoder<'_>| Ok(0),
    code::SMALLUINT => |d: &mut Decoder<'_>| d.u8().map(u32::from),
    code::UINT => |d: &mut Decoder<'_>| d.run(be_u32),
]);
fixed_primitive!(u64, "ulong", len = ulong_len, put = put_ulong, [
    code::ULONG0 => |_: &mut Decoder<'_>| Ok(0),
    code::SMALLULONG => |d: &mut Decoder<'_>| d.u8().map(u64::from),
    code::ULONG => |d: &mut Decoder<'_>| d.run(be_u64),
]);
fixed_primitive!(i8, "byte", Byte, [code::BYTE => |d: &mut Decoder<'_>| d.run(be_i8)]);
fixed_primitive!(i16, "short", Short, [code::SHORT => |d: &mut Decoder<'_>| d.run(be_i16)]);
fixed_primitive!(i32, "int", Int, [
    code::SMALLINT => |d: &mut Decoder<'_>| d.run(be_i8).map(i32::from),
    code::INT => |d: &mut Decoder<'_>| d.run(be_i32),
]);
fixed_primitive!(i64, "long", Long, [
    code::SMALLLONG => |d: &mut Decoder<'_>| d.run(be_i8).map(i64::from),
    code::LONG => |d: &mut Decoder<'_>| d.run(be_i64),
]);
fixed_primitive!(f32, "float", Float, [code::FLOAT => |d: &mut Decoder<'_>| d.run(be_f32)]);
fixed_primitive!(f64, "double", Double, [code::DOUBLE => |d: &mut Decoder<'_>| d.run(be_f64)]);
fixed_primitive!(Timestamp, "timestamp", Timestamp, [
    code::TIMESTAMP => |d: &mut Decoder<'_>| d.run(be_i64).map(Timestamp),
]);
fixed_primitive!(Uuid, "uuid", Uuid, [code::UUID => |d: &mut Decoder<'_>| d.array_n().map(Uuid)]);
fixed_primitive!(char, "char", Char, [code::CHAR => |d: &mut Decoder<'_>| {
    let u = d.run(be_u32)?;
    char::from_u32(u).ok_or_else(|| DecodeErrorKind::InvalidChar(u).into())
}]);

impl Encode for Symbol {
    #[inline]
    fn encoded_len(&self) -> usize {
        var_len(self.len())
    }
    #[inline]
    fn encode(&self, buf: &mut BytesMut) {
        put_var(buf, code::SYM8, code::SYM32, self.as_bytes())
    }
}

impl Decode for Symbol {
    #[inline]
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        match d.u8()? {
            c @ (code::SYM8 | code::SYM32) => d.symbol_body(c),
            other => Err(DecodeError::unexpected("symbol", other)),
        }
    }
}

impl Encode for ByteString {
    #[inline]
    fn encoded_len(&self) -> usize {
        var_len(self.len())
    }
    #[inline]
    fn encode(&self, buf: &mut BytesMut) {
        put_var(buf, code::STR8, code::STR32, self.as_bytes())
    }
}

impl Decode for ByteString {
    #[inline]
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        match d.u8()? {
            c @ (code::STR8 | code::STR32) => d.string_body(c),
            other => Err(DecodeError::unexpected("string", other)),
        }
    }
}

impl Encode for Bytes {
    #[inline]
    fn encoded_len(&self) -> usize {
        var_len(self.len())
    }
    #[inline]
    fn encode(&self, buf: &mut BytesMut) {
        put_var(buf, code::VBIN8, code::VBIN32, self)
    }
}

impl Decode for Bytes {
    #[inline]
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        match d.u8()? {
            c @ (code::VBIN8 | code::VBIN32) => d.binary_body(c),
            other => Err(DecodeError::unexpected("binary", other)),
        }
    }
}

impl<T: Encode> Encode for Option<T> {
    #[inline]
    fn encoded_len(&self) -> usize {
        self.as_ref().map_or(1, Encode::encoded_len)
    }
    #[inline]
    fn encode(&self, buf: &mut BytesMut) {
        match self {
            Some(v) => v.encode(buf),
            None => buf.put_u8(code::NULL),
        }
    }
}

impl<T: Decode> Decode for Option<T> {
    #[inline]
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        if d.peek_null() {
            d.u8()?;
            Ok(None)
        } else {
            T::decode(d).map(Some)
        }
    }
}

/// A "multiple" field of symbols (capabilities, locales, outcomes): encoded as an array,
/// decoded from either an array or a single symbol, as the spec allows.
impl Encode for Vec<Symbol> {
    fn encoded_len(&self) -> usize {
        let small = self.iter().all(|s| s.len() <= 255);
        let per = if small { 1 } else { 4 };
        let body = 1 + self.iter().map(|s| per + s.len()).sum::<usize>();
        array_len(self.len(), body)
    }

    fn encode(&self, buf: &mut BytesMut) {
        let small = self.iter().all(|s| s.len() <= 255);
        let per = if small { 1 } else { 4 };
        let body = 1 + self.iter().map(|s| per + s.len()).sum::<usize>();
        put_array_header(buf, self.len(), body);
        buf.put_u8(if small { code::SYM8 } else { code::SYM32 });
        for s in self {
            if small {
                buf.put_u8(s.len() as u8);
            } else {
                buf.put_u32(s.len() as u32);
            }
            buf.put_slice(s.as_bytes());
        }
    }
}

impl Decode for Vec<Symbol> {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        match d.peek_u8()? {
            c @ (code::ARRAY8 | code::ARRAY32) => {
                d.u8()?;
                let (count, ctor, mut body) = d.typed_array(c)?;
                if !matches!(ctor, code::SYM8 | code::SYM32) {
                    return Err(DecodeError::unexpected("symbol array", ctor));
                }
                let mut out = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    out.push(body.symbol_body(ctor)?);
                }
                body.finish().map_err(|_| DecodeErrorKind::SizeMismatch)?;
                Ok(out)
            }
            _ => Ok(vec![Symbol::decode(d)?]),
        }
    }
}

impl<K: Encode, V: Encode> Encode for OrderedMap<K, V> {
    fn encoded_len(&self) -> usize {
        let body: usize = self
            .0
            .iter()
            .map(|(k, v)| k.encoded_len() + v.encoded_len())
            .sum();
        map_len(self.0.len() * 2, body)
    }

    fn encode(&self, buf: &mut BytesMut) {
        let body: usize = self
            .0
            .iter()
            .map(|(k, v)| k.encoded_len() + v.encoded_len())
            .sum();
        put_map_header(buf, self.0.len() * 2, body);
        for (k, v) in &self.0 {
            k.encode(buf);
            v.encode(buf);
        }
    }
}

impl<K: Decode, V: Decode> Decode for OrderedMap<K, V> {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let (n, mut body) = d.map()?;
        let mut entries = Vec::with_capacity(n as usize / 2);
        for _ in 0..n / 2 {
            let k = K::decode(&mut body)?;
            let v = V::decode(&mut body)?;
            entries.push((k, v));
        }
        body.finish().map_err(|_| DecodeErrorKind::SizeMismatch)?;
        Ok(OrderedMap(entries))
    }
}

/// Decodes an AMQP list of values of one Rust type (used for `amqp-sequence` sections).
pub fn decode_list_of<T: Decode>(d: &mut Decoder<'_>) -> Result<Vec<T>, DecodeError> {
    let (n, mut body) = d.list()?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        out.push(T::decode(&mut body)?);
    }
    body.finish().map_err(|_| DecodeErrorKind::SizeMismatch)?;
    Ok(out)
}
