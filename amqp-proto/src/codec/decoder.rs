//! The [`Decoder`] cursor: reads primitives, compounds and descriptors from a shared input
//! buffer, checking every length against the bytes present and nesting against [`Limits`].

use super::*;

type PResult<'a, T> = IResult<&'a [u8], T, DecodeError>;

fn nom_err(e: nom::Err<DecodeError>) -> DecodeError {
    match e {
        nom::Err::Incomplete(nom::Needed::Size(n)) => DecodeError::truncated(n.get()),
        nom::Err::Incomplete(nom::Needed::Unknown) => DecodeError::truncated(1),
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
    }
}

/// A cursor over a shared input buffer. Values it returns (binary, string, symbol) are
/// zero-copy slices of the buffer it was created over.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    owner: &'a Bytes,
    rest: &'a [u8],
    depth: u32,
    limits: Limits,
}

impl<'a> Decoder<'a> {
    /// A decoder over `bytes` with default [`Limits`].
    pub fn new(bytes: &'a Bytes) -> Self {
        Self::with_limits(bytes, Limits::default())
    }

    /// A decoder over `bytes` with the given limits.
    pub fn with_limits(bytes: &'a Bytes, limits: Limits) -> Self {
        Decoder {
            owner: bytes,
            rest: bytes,
            depth: 0,
            limits,
        }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// True when every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The unconsumed bytes, as a zero-copy slice.
    pub fn rest_bytes(&self) -> Bytes {
        self.owner.slice_ref(self.rest)
    }

    /// Fails unless every byte has been consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeErrorKind::TrailingBytes(self.rest.len()).into())
        }
    }

    /// Offset of the cursor from the start of the underlying buffer.
    pub fn position(&self) -> usize {
        self.owner.len() - self.rest.len()
    }

    pub(super) fn run<T>(
        &mut self,
        p: impl FnOnce(&'a [u8]) -> PResult<'a, T>,
    ) -> Result<T, DecodeError> {
        let (rest, v) = p(self.rest).map_err(nom_err)?;
        self.rest = rest;
        Ok(v)
    }

    /// The next byte, not consumed.
    pub fn peek_u8(&self) -> Result<u8, DecodeError> {
        self.rest
            .first()
            .copied()
            .ok_or_else(|| DecodeError::truncated(1))
    }

    /// True if the next value is `null` (the constructor `0x40`).
    pub fn peek_null(&self) -> bool {
        self.rest.first() == Some(&code::NULL)
    }

    // The two most frequent reads (every constructor, every length-prefixed body) are plain
    // slice operations; nom's generic combinators cost several times more per byte here.
    #[inline]
    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                Ok(b)
            }
            None => Err(DecodeError::truncated(1)),
        }
    }

    #[inline]
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.rest.split_at_checked(n) {
            Some((head, rest)) => {
                self.rest = rest;
                Ok(head)
            }
            None => Err(DecodeError::truncated(n - self.rest.len())),
        }
    }

    pub(super) fn take_bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let s = self.take(n)?;
        Ok(self.owner.slice_ref(s))
    }

    pub(super) fn enter(&self) -> Result<u32, DecodeError> {
        let depth = self.depth + 1;
        if depth > self.limits.max_depth {
            Err(DecodeErrorKind::DepthExceeded(self.limits.max_depth).into())
        } else {
            Ok(depth)
        }
    }

    pub(super) fn sub(&self, body: &'a [u8], depth: u32) -> Decoder<'a> {
        Decoder {
            owner: self.owner,
            rest: body,
            depth,
            limits: self.limits,
        }
    }

    /// Reads a compound header (`list0`/`list8`/`list32` or `map8`/`map32`, per `code`) and
    /// returns the element count and a decoder over exactly the compound's body.
    pub(super) fn compound_body(&mut self, c: u8) -> Result<(u32, Decoder<'a>), DecodeError> {
        let (count, body) = match c {
            code::LIST0 => return Ok((0, self.sub(&[], self.depth))),
            code::LIST8 | code::MAP8 => {
                let size = self.u8()? as usize;
                let body = self.take(size)?;
                match body.split_first() {
                    Some((n, rest)) => (*n as u32, rest),
                    None => return Err(DecodeErrorKind::SizeMismatch.into()),
                }
            }
            code::LIST32 | code::MAP32 => {
                let size = self.run(be_u32)? as usize;
                let body = self.take(size)?;
                match body.split_first_chunk::<4>() {
                    Some((n, rest)) => (u32::from_be_bytes(*n), rest),
                    None => return Err(DecodeErrorKind::SizeMismatch.into()),
                }
            }
            other => return Err(DecodeError::unexpected("list or map", other)),
        };
        // Every element occupies at least one byte (its constructor).
        if count as usize > body.len() {
            return Err(DecodeErrorKind::CountExceedsSize {
                count,
                size: body.len(),
            }
            .into());
        }
        let depth = self.enter()?;
        Ok((count, self.sub(body, depth)))
    }

    /// Reads a `list` header and returns its element count and a decoder over its body.
    pub fn list(&mut self) -> Result<(u32, Decoder<'a>), DecodeError> {
        let c = self.u8()?;
        match c {
            code::LIST0 | code::LIST8 | code::LIST32 => self.compound_body(c),
            other => Err(DecodeError::unexpected("list", other)),
        }
    }

    /// Reads a `map` header and returns its element count (keys plus values) and a decoder over its body.
    pub fn map(&mut self) -> Result<(u32, Decoder<'a>), DecodeError> {
        let c = self.u8()?;
        match c {
            code::MAP8 | code::MAP32 => {
                let (n, d) = self.compound_body(c)?;
                if n % 2 != 0 {
                    return Err(DecodeErrorKind::OddMapCount(n).into());
                }
                Ok((n, d))
            }
            other => Err(DecodeError::unexpected("map", other)),
        }
    }

    /// Reads the descriptor of a described value (after its `0x00` constructor), if the next
    /// value is described. Returns `None` (consuming nothing) when it is not.
    pub fn descriptor(&mut self) -> Result<Option<Descriptor>, DecodeError> {
        if self.peek_u8()? != code::DESCRIBED {
            return Ok(None);
        }
        self.u8()?;
        self.read_descriptor().map(Some)
    }

    pub(super) fn read_descriptor(&mut self) -> Result<Descriptor, DecodeError> {
        let c = self.u8()?;
        match c {
            code::ULONG0 => Ok(Descriptor::Code(0)),
            code::SMALLULONG => Ok(Descriptor::Code(self.u8()? as u64)),
            code::ULONG => Ok(Descriptor::Code(self.run(be_u64)?)),
            code::SYM8 | code::SYM32 => Ok(Descriptor::Name(self.symbol_body(c)?)),
            _ => Err(DecodeErrorKind::InvalidDescriptor.into()),
        }
    }

    pub(super) fn var_len(&mut self, c: u8) -> Result<usize, DecodeError> {
        if c & 0xf0 == 0xa0 {
            Ok(self.u8()? as usize)
        } else {
            Ok(self.run(be_u32)? as usize)
        }
    }

    pub(super) fn symbol_body(&mut self, c: u8) -> Result<Symbol, DecodeError> {
        let n = self.var_len(c)?;
        let b = self.take_bytes(n)?;
        Symbol::try_from_bytes(b)
    }

    pub(super) fn string_body(&mut self, c: u8) -> Result<ByteString, DecodeError> {
        let n = self.var_len(c)?;
        let b = self.take_bytes(n)?;
        ByteString::try_from(b).map_err(|_| DecodeErrorKind::InvalidUtf8.into())
    }

    pub(super) fn binary_body(&mut self, c: u8) -> Result<Bytes, DecodeError> {
        let n = self.var_len(c)?;
        self.take_bytes(n)
    }

    /// Reads any value.
    pub fn value(&mut self) -> Result<Value, DecodeError> {
        let c = self.u8()?;
        if c == code::DESCRIBED {
            let depth = self.enter()?;
            let descriptor = self.read_descriptor()?;
            let saved = self.depth;
            self.depth = depth;
            let value = self.value();
            self.depth = saved;
            return Ok(Value::Described(Box::new(Described {
                descriptor,
                value: value?,
            })));
        }
        self.value_body(c)
    }

    /// Reads the body of a value whose constructor `c` has been consumed.
    pub(super) fn value_body(&mut self, c: u8) -> Result<Value, DecodeError> {
        Ok(match c {
            code::NULL => Value::Null,
            code::TRUE => Value::Bool(true),
            code::FALSE => Value::Bool(false),
            code::BOOLEAN => match self.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(DecodeError::invalid(format!("boolean byte 0x{b:02x}"))),
            },
            code::UBYTE => Value::Ubyte(self.u8()?),
            code::USHORT => Value::Ushort(self.run(be_u16)?),
            code::UINT => Value::Uint(self.run(be_u32)?),
            code::SMALLUINT => Value::Uint(self.u8()? as u32),
            code::UINT0 => Value::Uint(0),
            code::ULONG => Value::Ulong(self.run(be_u64)?),
            code::SMALLULONG => Value::Ulong(self.u8()? as u64),
            code::ULONG0 => Value::Ulong(0),
            code::BYTE => Value::Byte(self.run(be_i8)?),
            code::SHORT => Value::Short(self.run(be_i16)?),
            code::INT => Value::Int(self.run(be_i32)?),
            code::SMALLINT => Value::Int(self.run(be_i8)? as i32),
            code::LONG => Value::Long(self.run(be_i64)?),
            code::SMALLLONG => Value::Long(self.run(be_i8)? as i64),
            code::FLOAT => Value::Float(self.run(be_f32)?),
            code::DOUBLE => Value::Double(self.run(be_f64)?),
            code::DECIMAL32 => Value::Decimal32(Decimal32(self.array_n()?)),
            code::DECIMAL64 => Value::Decimal64(Decimal64(self.array_n()?)),
            code::DECIMAL128 => Value::Decimal128(Decimal128(self.array_n()?)),
            code::CHAR => {
                let u = self.run(be_u32)?;
                Value::Char(char::from_u32(u).ok_or(DecodeErrorKind::InvalidChar(u))?)
            }
            code::TIMESTAMP => Value::Timestamp(Timestamp(self.run(be_i64)?)),
            code::UUID => Value::Uuid(Uuid(self.array_n()?)),
            code::VBIN8 | code::VBIN32 => Value::Binary(self.binary_body(c)?),
            code::STR8 | code::STR32 => Value::String(self.string_body(c)?),
            code::SYM8 | code::SYM32 => Value::Symbol(self.symbol_body(c)?),
            code::LIST0 | code::LIST8 | code::LIST32 => {
                let (n, mut body) = self.compound_body(c)?;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(body.value()?);
                }
                body.finish().map_err(|_| DecodeErrorKind::SizeMismatch)?;
                Value::List(items)
            }
            code::MAP8 | code::MAP32 => {
                let (n, mut body) = self.compound_body(c)?;
                if n % 2 != 0 {
                    return Err(DecodeErrorKind::OddMapCount(n).into());
                }
                let mut entries = Vec::with_capacity(n as usize / 2);
                for _ in 0..n / 2 {
                    let k = body.value()?;
                    let v = body.value()?;
                    entries.push((k, v));
                }
                body.finish().map_err(|_| DecodeErrorKind::SizeMismatch)?;
                Value::Map(OrderedMap(entries))
            }
            code::ARRAY8 | code::ARRAY32 => Value::Array(self.array_body(c)?),
            other => return Err(DecodeErrorKind::InvalidConstructor(other).into()),
        })
    }

    pub(super) fn array_n<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Reads the size and count of an array (`c` is `array8` or `array32`) and returns the count
    /// and a decoder, one level deeper, over the rest of its body (constructor and elements).
    fn array_header(&mut self, c: u8) -> Result<(u32, Decoder<'a>), DecodeError> {
        let (size, count_width) = if c == code::ARRAY8 {
            (self.u8()? as usize, 1)
        } else {
            (self.run(be_u32)? as usize, 4)
        };
        if size < count_width {
            return Err(DecodeErrorKind::SizeMismatch.into());
        }
        let body = self.take(size)?;
        let depth = self.enter()?;
        let mut d = self.sub(body, depth);
        let count = if count_width == 1 {
            d.u8()? as u32
        } else {
            d.run(be_u32)?
        };
        Ok((count, d))
    }

    pub(super) fn array_body(&mut self, c: u8) -> Result<Array, DecodeError> {
        let (count, mut d) = self.array_header(c)?;
        let mut ctor = d.u8()?;
        let descriptor = if ctor == code::DESCRIBED {
            let desc = d.read_descriptor()?;
            ctor = d.u8()?;
            Some(Box::new(desc))
        } else {
            None
        };
        let ty = type_of_code(ctor).ok_or(DecodeErrorKind::InvalidConstructor(ctor))?;
        // Every element takes at least one byte, except with a zero-width constructor (proton
        // writes an array of nulls as `0x40` and no element bytes): those get a small fixed
        // allowance, so a hostile count still cannot make us allocate much per input byte.
        let zero_width = matches!(
            ctor,
            code::NULL | code::TRUE | code::FALSE | code::UINT0 | code::ULONG0 | code::LIST0
        );
        let max = if zero_width {
            MAX_ZERO_WIDTH_ARRAY_ELEMENTS
        } else {
            d.remaining()
        };
        if count as usize > max {
            return Err(DecodeErrorKind::CountExceedsSize {
                count,
                size: d.remaining(),
            }
            .into());
        }
        let mut elements = Vec::with_capacity(count as usize);
        for _ in 0..count {
            elements.push(d.value_body(ctor)?);
        }
        d.finish().map_err(|_| DecodeErrorKind::SizeMismatch)?;
        Ok(Array {
            descriptor,
            ty,
            elements,
        })
    }

    /// Skips one value of any type without building it.
    pub fn skip(&mut self) -> Result<(), DecodeError> {
        // Values are small relative to their frame; building and dropping keeps one code path
        // that is already bounded in depth and allocation.
        self.value().map(drop)
    }

    /// Reads the array header and constructor of an array whose elements are of primitive type
    /// `expected` (undescribed), returning its count and a decoder over the element bodies and the
    /// element constructor.
    pub(super) fn typed_array(&mut self, c: u8) -> Result<(u32, u8, Decoder<'a>), DecodeError> {
        let (count, mut d) = self.array_header(c)?;
        let ctor = d.u8()?;
        if count as usize > d.remaining() {
            return Err(DecodeErrorKind::CountExceedsSize {
                count,
                size: d.remaining(),
            }
            .into());
        }
        Ok((count, ctor, d))
    }
}
