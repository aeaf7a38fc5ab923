//! Decoding errors: what went wrong, and where.

use std::fmt;

/// What was wrong with the input.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ended before the value did; `needed` more bytes were expected.
    Truncated {
        /// How many more bytes the value claimed to need (at least).
        needed: usize,
    },
    /// A format code that the AMQP type system does not define.
    InvalidConstructor(u8),
    /// A well-formed value of a type this position does not allow.
    UnexpectedType {
        /// What was expected here.
        expected: &'static str,
        /// The format code found.
        found: u8,
    },
    /// A string that is not valid UTF-8.
    InvalidUtf8,
    /// A symbol that is not ASCII.
    InvalidSymbol,
    /// A `char` that is not a Unicode scalar value.
    InvalidChar(u32),
    /// A compound or array claims more elements than its bytes can hold.
    CountExceedsSize {
        /// Claimed element count.
        count: u32,
        /// Bytes available for the elements.
        size: usize,
    },
    /// A compound's declared size is inconsistent with its contents.
    SizeMismatch,
    /// A map with an odd number of elements.
    OddMapCount(u32),
    /// Nesting deeper than the configured limit.
    DepthExceeded(u32),
    /// A mandatory field was null or absent.
    MissingField,
    /// A descriptor that is neither a `ulong` nor a `symbol`.
    InvalidDescriptor,
    /// A described type with a descriptor not valid at this position.
    UnexpectedDescriptor(String),
    /// A value outside the range its restricted type allows.
    InvalidValue(String),
    /// A value larger than the configured limit.
    TooLarge {
        /// Size found.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Bytes left over after a value that should have consumed its whole input.
    TrailingBytes(usize),
}

/// A decoding failure: the kind of problem and, when known, the composite field it was found in.
///
/// Every malformed input produces one of these; decoding never panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    composite: Option<&'static str>,
    field: Option<&'static str>,
}

impl DecodeError {
    /// A new error of the given kind, with no location yet.
    pub fn new(kind: DecodeErrorKind) -> Self {
        DecodeError {
            kind,
            composite: None,
            field: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// The composite type (e.g. `"open"`) being decoded, if known.
    pub fn composite(&self) -> Option<&'static str> {
        self.composite
    }

    /// The field (e.g. `"container-id"`) being decoded, if known.
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }

    /// Records the innermost composite field the error happened in (outer calls do not overwrite it).
    pub fn in_field(mut self, composite: &'static str, field: &'static str) -> Self {
        if self.composite.is_none() {
            self.composite = Some(composite);
            self.field = Some(field);
        }
        self
    }

    pub(crate) fn truncated(needed: usize) -> Self {
        Self::new(DecodeErrorKind::Truncated { needed })
    }

    pub(crate) fn unexpected(expected: &'static str, found: u8) -> Self {
        Self::new(DecodeErrorKind::UnexpectedType { expected, found })
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        Self::new(DecodeErrorKind::InvalidValue(what.into()))
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::Truncated { needed } => {
                write!(f, "input truncated: {needed} more byte(s) needed")
            }
            DecodeErrorKind::InvalidConstructor(c) => write!(f, "invalid format code 0x{c:02x}"),
            DecodeErrorKind::UnexpectedType { expected, found } => {
                write!(f, "expected {expected}, found format code 0x{found:02x}")
            }
            DecodeErrorKind::InvalidUtf8 => f.write_str("string is not valid UTF-8"),
            DecodeErrorKind::InvalidSymbol => f.write_str("symbol is not ASCII"),
            DecodeErrorKind::InvalidChar(c) => write!(f, "0x{c:x} is not a Unicode scalar value"),
            DecodeErrorKind::CountExceedsSize { count, size } => {
                write!(
                    f,
                    "element count {count} exceeds the {size} byte(s) available"
                )
            }
            DecodeErrorKind::SizeMismatch => {
                f.write_str("compound size does not match its contents")
            }
            DecodeErrorKind::OddMapCount(n) => write!(f, "map has an odd element count {n}"),
            DecodeErrorKind::DepthExceeded(d) => write!(f, "nesting deeper than {d}"),
            DecodeErrorKind::MissingField => f.write_str("mandatory field is missing"),
            DecodeErrorKind::InvalidDescriptor => {
                f.write_str("descriptor is neither a ulong nor a symbol")
            }
            DecodeErrorKind::UnexpectedDescriptor(d) => write!(f, "unexpected descriptor {d}"),
            DecodeErrorKind::InvalidValue(v) => write!(f, "invalid value: {v}"),
            DecodeErrorKind::TooLarge { size, max } => {
                write!(f, "size {size} exceeds the limit {max}")
            }
            DecodeErrorKind::TrailingBytes(n) => write!(f, "{n} unexpected trailing byte(s)"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.composite, self.field) {
            (Some(c), Some(field)) => write!(f, "{c}.{field}: {}", self.kind),
            _ => fmt::Display::fmt(&self.kind, f),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<DecodeErrorKind> for DecodeError {
    fn from(kind: DecodeErrorKind) -> Self {
        DecodeError::new(kind)
    }
}

/// nom's error plumbing: a parse failure inside nom becomes a truncation or invalid-input error.
impl<I> nom::error::ParseError<I> for DecodeError {
    fn from_error_kind(_input: I, kind: nom::error::ErrorKind) -> Self {
        match kind {
            nom::error::ErrorKind::Eof => DecodeError::truncated(1),
            other => DecodeError::invalid(format!("parse error ({other:?})")),
        }
    }

    fn append(_input: I, _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}
