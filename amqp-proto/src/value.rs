//! The AMQP type system as Rust values: primitive newtypes and the generic [`Value`].

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use bytes::Bytes;
pub use bytestring::ByteString;

/// An AMQP `symbol`: an ASCII string, shared and zero-copy.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Symbol(ByteString);

impl Symbol {
    /// A symbol from a static string. The text should be ASCII (the codec checks what it decodes,
    /// not what you build; non-ASCII symbols are refused by peers).
    pub const fn from_static(s: &'static str) -> Symbol {
        Symbol(ByteString::from_static(s))
    }

    /// The symbol's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying shared string.
    pub fn as_byte_string(&self) -> &ByteString {
        &self.0
    }

    /// Builds a symbol from bytes, checking they are ASCII.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Symbol, crate::DecodeError> {
        if !bytes.is_ascii() {
            return Err(crate::DecodeErrorKind::InvalidSymbol.into());
        }
        ByteString::try_from(bytes)
            .map(Symbol)
            .map_err(|_| crate::DecodeErrorKind::InvalidSymbol.into())
    }
}

impl std::ops::Deref for Symbol {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Symbol {
    fn from(s: &str) -> Self {
        Symbol(ByteString::from(s))
    }
}

impl From<String> for Symbol {
    fn from(s: String) -> Self {
        Symbol(ByteString::from(s))
    }
}

impl From<ByteString> for Symbol {
    fn from(s: ByteString) -> Self {
        Symbol(s)
    }
}

impl PartialEq<str> for Symbol {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Symbol {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ":{:?}", self.as_str())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An AMQP `timestamp`: milliseconds since the Unix epoch (may be negative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// An AMQP `uuid`: 16 bytes in network order.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// An IEEE 754-2008 `decimal32`, kept as its 4 encoded bytes (big-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal32(pub [u8; 4]);
/// An IEEE 754-2008 `decimal64`, kept as its 8 encoded bytes (big-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal64(pub [u8; 8]);
/// An IEEE 754-2008 `decimal128`, kept as its 16 encoded bytes (big-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal128(pub [u8; 16]);

/// A descriptor of a described type: a numeric code or a symbolic name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Descriptor {
    /// A numeric descriptor (`ulong`): domain-id in the high 32 bits, descriptor-id in the low.
    Code(u64),
    /// A symbolic descriptor.
    Name(Symbol),
}

impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Descriptor::Code(c) => write!(f, "0x{:08x}:0x{:08x}", c >> 32, c & 0xffff_ffff),
            Descriptor::Name(n) => f.write_str(n),
        }
    }
}

/// A described value whose descriptor is not one this crate decodes into a typed composite.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Described {
    /// The descriptor.
    pub descriptor: Descriptor,
    /// The described value.
    pub value: Value,
}

/// The primitive type of an array's elements (every element of an AMQP array shares one type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum Type {
    Null,
    Boolean,
    Ubyte,
    Ushort,
    Uint,
    Ulong,
    Byte,
    Short,
    Int,
    Long,
    Float,
    Double,
    Decimal32,
    Decimal64,
    Decimal128,
    Char,
    Timestamp,
    Uuid,
    Binary,
    String,
    Symbol,
    List,
    Map,
    Array,
}

impl Type {
    /// The spec's name for the type (`"ubyte"`, `"symbol"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Type::Null => "null",
            Type::Boolean => "boolean",
            Type::Ubyte => "ubyte",
            Type::Ushort => "ushort",
            Type::Uint => "uint",
            Type::Ulong => "ulong",
            Type::Byte => "byte",
            Type::Short => "short",
            Type::Int => "int",
            Type::Long => "long",
            Type::Float => "float",
            Type::Double => "double",
            Type::Decimal32 => "decimal32",
            Type::Decimal64 => "decimal64",
            Type::Decimal128 => "decimal128",
            Type::Char => "char",
            Type::Timestamp => "timestamp",
            Type::Uuid => "uuid",
            Type::Binary => "binary",
            Type::String => "string",
            Type::Symbol => "symbol",
            Type::List => "list",
            Type::Map => "map",
            Type::Array => "array",
        }
    }
}

/// An AMQP array: a sequence of values of one type, optionally all described by one descriptor.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Array {
    /// The descriptor shared by every element, for arrays of a described type.
    pub descriptor: Option<Box<Descriptor>>,
    /// The element type (of the underlying value when described).
    pub ty: Type,
    /// The elements (underlying values when described). Each must be of type `ty`.
    pub elements: Vec<Value>,
}

impl Array {
    /// An array of plain values of type `ty`.
    pub fn new(ty: Type, elements: Vec<Value>) -> Array {
        Array {
            descriptor: None,
            ty,
            elements,
        }
    }
}

/// An ordered AMQP map. Order of entries is preserved as encoded; lookups are linear, which is
/// the right trade for the small maps AMQP carries (properties, annotations, filters).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderedMap<K, V>(pub Vec<(K, V)>);

impl<K, V> Default for OrderedMap<K, V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for OrderedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl<K, V> OrderedMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        OrderedMap(Vec::new())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The value for the first entry whose key equals `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: PartialEq<Q>,
        Q: ?Sized,
    {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key` to `value`, replacing an existing entry in place or appending.
    pub fn insert(&mut self, key: K, value: V) -> Option<V>
    where
        K: PartialEq,
    {
        for (k, v) in self.0.iter_mut() {
            if *k == key {
                return Some(std::mem::replace(v, value));
            }
        }
        self.0.push((key, value));
        None
    }
}

impl<K, V> FromIterator<(K, V)> for OrderedMap<K, V> {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        OrderedMap(iter.into_iter().collect())
    }
}

/// Any AMQP value.
///
/// Equality, ordering and hashing are total (floats compare by bit pattern via `total_cmp`,
/// so `NaN == NaN`), which makes `Value` usable as a map key.
#[derive(Clone, Default)]
#[allow(missing_docs)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Ubyte(u8),
    Ushort(u16),
    Uint(u32),
    Ulong(u64),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Decimal32(Decimal32),
    Decimal64(Decimal64),
    Decimal128(Decimal128),
    Char(char),
    Timestamp(Timestamp),
    Uuid(Uuid),
    Binary(Bytes),
    String(ByteString),
    Symbol(Symbol),
    List(Vec<Value>),
    Map(OrderedMap<Value, Value>),
    Array(Array),
    Described(Box<Described>),
}

impl Value {
    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Ubyte(_) => 2,
            Value::Ushort(_) => 3,
            Value::Uint(_) => 4,
            Value::Ulong(_) => 5,
            Value::Byte(_) => 6,
            Value::Short(_) => 7,
            Value::Int(_) => 8,
            Value::Long(_) => 9,
            Value::Float(_) => 10,
            Value::Double(_) => 11,
            Value::Decimal32(_) => 12,
            Value::Decimal64(_) => 13,
            Value::Decimal128(_) => 14,
            Value::Char(_) => 15,
            Value::Timestamp(_) => 16,
            Value::Uuid(_) => 17,
            Value::Binary(_) => 18,
            Value::String(_) => 19,
            Value::Symbol(_) => 20,
            Value::List(_) => 21,
            Value::Map(_) => 22,
            Value::Array(_) => 23,
            Value::Described(_) => 24,
        }
    }

    /// The type of this value (for described values, the type of the underlying value).
    pub fn ty(&self) -> Type {
        match self {
            Value::Null => Type::Null,
            Value::Bool(_) => Type::Boolean,
            Value::Ubyte(_) => Type::Ubyte,
            Value::Ushort(_) => Type::Ushort,
            Value::Uint(_) => Type::Uint,
            Value::Ulong(_) => Type::Ulong,
            Value::Byte(_) => Type::Byte,
            Value::Short(_) => Type::Short,
            Value::Int(_) => Type::Int,
            Value::Long(_) => Type::Long,
            Value::Float(_) => Type::Float,
            Value::Double(_) => Type::Double,
            Value::Decimal32(_) => Type::Decimal32,
            Value::Decimal64(_) => Type::Decimal64,
            Value::Decimal128(_) => Type::Decimal128,
            Value::Char(_) => Type::Char,
            Value::Timestamp(_) => Type::Timestamp,
            Value::Uuid(_) => Type::Uuid,
            Value::Binary(_) => Type::Binary,
            Value::String(_) => Type::String,
            Value::Symbol(_) => Type::Symbol,
            Value::List(_) => Type::List,
            Value::Map(_) => Type::Map,
            Value::Array(_) => Type::Array,
            Value::Described(d) => d.value.ty(),
        }
    }

    /// True for `Value::Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The string, if this is a `string`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A string value.
    pub fn string(s: impl Into<ByteString>) -> Value {
        Value::String(s.into())
    }

    /// A symbol value.
    pub fn symbol(s: impl Into<Symbol>) -> Value {
        Value::Symbol(s.into())
    }

    /// A binary value.
    pub fn binary(b: impl Into<Bytes>) -> Value {
        Value::Binary(b.into())
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Ubyte(a), Ubyte(b)) => a.cmp(b),
            (Ushort(a), Ushort(b)) => a.cmp(b),
            (Uint(a), Uint(b)) => a.cmp(b),
            (Ulong(a), Ulong(b)) => a.cmp(b),
            (Byte(a), Byte(b)) => a.cmp(b),
            (Short(a), Short(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Long(a), Long(b)) => a.cmp(b),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Double(a), Double(b)) => a.total_cmp(b),
            (Decimal32(a), Decimal32(b)) => a.cmp(b),
            (Decimal64(a), Decimal64(b)) => a.cmp(b),
            (Decimal128(a), Decimal128(b)) => a.cmp(b),
            (Char(a), Char(b)) => a.cmp(b),
            (Timestamp(a), Timestamp(b)) => a.cmp(b),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (Binary(a), Binary(b)) => a.cmp(b),
            (String(a), String(b)) => a.cmp(b),
            (Symbol(a), Symbol(b)) => a.cmp(b),
            (List(a), List(b)) => a.cmp(b),
            (Map(a), Map(b)) => a.cmp(b),
            (Array(a), Array(b)) => a.cmp(b),
            (Described(a), Described(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.rank());
        match self {
            Value::Null => {}
            Value::Bool(v) => v.hash(state),
            Value::Ubyte(v) => v.hash(state),
            Value::Ushort(v) => v.hash(state),
            Value::Uint(v) => v.hash(state),
            Value::Ulong(v) => v.hash(state),
            Value::Byte(v) => v.hash(state),
            Value::Short(v) => v.hash(state),
            Value::Int(v) => v.hash(state),
            Value::Long(v) => v.hash(state),
            Value::Float(v) => v.to_bits().hash(state),
            Value::Double(v) => v.to_bits().hash(state),
            Value::Decimal32(v) => v.hash(state),
            Value::Decimal64(v) => v.hash(state),
            Value::Decimal128(v) => v.hash(state),
            Value::Char(v) => v.hash(state),
            Value::Timestamp(v) => v.hash(state),
            Value::Uuid(v) => v.hash(state),
            Value::Binary(v) => v.hash(state),
            Value::String(v) => v.hash(state),
            Value::Symbol(v) => v.hash(state),
            Value::List(v) => v.hash(state),
            Value::Map(v) => v.hash(state),
            Value::Array(v) => v.hash(state),
            Value::Described(v) => v.hash(state),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Ubyte(v) => write!(f, "{v}ub"),
            Value::Ushort(v) => write!(f, "{v}us"),
            Value::Uint(v) => write!(f, "{v}u"),
            Value::Ulong(v) => write!(f, "{v}ul"),
            Value::Byte(v) => write!(f, "{v}b"),
            Value::Short(v) => write!(f, "{v}s"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Long(v) => write!(f, "{v}l"),
            Value::Float(v) => write!(f, "{v:?}f"),
            Value::Double(v) => write!(f, "{v:?}"),
            Value::Decimal32(v) => write!(f, "{v:?}"),
            Value::Decimal64(v) => write!(f, "{v:?}"),
            Value::Decimal128(v) => write!(f, "{v:?}"),
            Value::Char(v) => write!(f, "{v:?}"),
            Value::Timestamp(v) => write!(f, "{v:?}"),
            Value::Uuid(v) => write!(f, "{v}"),
            Value::Binary(v) => write!(f, "b{v:?}"),
            Value::String(v) => write!(f, "{:?}", &**v),
            Value::Symbol(v) => write!(f, "{v:?}"),
            Value::List(v) => f.debug_list().entries(v).finish(),
            Value::Map(v) => write!(f, "{v:?}"),
            Value::Array(v) => write!(f, "{v:?}"),
            Value::Described(v) => write!(f, "{}:{:?}", v.descriptor, v.value),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::$v(v.into()) }
        }
    )*};
}

value_from! {
    bool => Bool, u8 => Ubyte, u16 => Ushort, u32 => Uint, u64 => Ulong, i8 => Byte, i16 => Short,
    i32 => Int, i64 => Long, f32 => Float, f64 => Double, char => Char, Timestamp => Timestamp,
    Uuid => Uuid, Bytes => Binary, Symbol => Symbol, ByteString => String, &str => String,
    String => String, Vec<Value> => List, OrderedMap<Value, Value> => Map, Array => Array,
    Decimal32 => Decimal32, Decimal64 => Decimal64, Decimal128 => Decimal128,
}

impl From<Described> for Value {
    fn from(d: Described) -> Value {
        Value::Described(Box::new(d))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}
