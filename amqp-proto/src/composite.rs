//! Machinery for described list composites: the [`Field`] trait and the `composite!` macro
//! that generates a struct, its encoder (trailing nulls elided, smallest list encoding) and its
//! decoder (short lists and nulls accepted, extra trailing fields skipped, mandatory fields checked).

use bytes::BytesMut;

use crate::codec::{Decode, Decoder, Encode};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::value::Descriptor;

/// A type usable as a field of a composite.
pub trait Field: Encode + Decode {
    /// The value for a field that is null or absent; an error for mandatory fields.
    fn absent() -> Result<Self, DecodeError>;
    /// Whether this value is encoded as null (and so may be elided at the end of a list).
    fn is_absent(&self) -> bool;

    /// Reads a field: null becomes [`Field::absent`].
    #[inline]
    fn decode_field(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        if d.peek_null() {
            d.skip()?;
            Self::absent()
        } else {
            Self::decode(d)
        }
    }
}

impl<T: Encode + Decode> Field for Option<T> {
    #[inline]
    fn absent() -> Result<Self, DecodeError> {
        Ok(None)
    }
    #[inline]
    fn is_absent(&self) -> bool {
        self.is_none()
    }
}

/// Implements [`Field`] for types that are mandatory when used bare.
#[macro_export]
#[doc(hidden)]
macro_rules! mandatory_field {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::composite::Field for $t {
            #[inline]
            fn absent() -> Result<Self, $crate::DecodeError> {
                Err($crate::DecodeErrorKind::MissingField.into())
            }
            #[inline]
            fn is_absent(&self) -> bool {
                false
            }
        }
    )*};
}

mandatory_field!(
    bool,
    u8,
    u16,
    u32,
    u64,
    i8,
    i16,
    i32,
    i64,
    f32,
    f64,
    char,
    bytes::Bytes,
    bytestring::ByteString,
    crate::value::Symbol,
    crate::value::Timestamp,
    crate::value::Uuid,
    crate::value::Value,
    Vec<crate::value::Symbol>,
);

/// Checks that the next value is described by `code`/`name`, consuming the descriptor.
pub fn expect_descriptor(
    d: &mut Decoder<'_>,
    code: u64,
    name: &'static str,
) -> Result<(), DecodeError> {
    let first = d.peek_u8()?;
    match d.descriptor()? {
        Some(Descriptor::Code(c)) if c == code => Ok(()),
        Some(Descriptor::Name(n)) if n.as_str() == name => Ok(()),
        Some(other) => Err(DecodeErrorKind::UnexpectedDescriptor(other.to_string()).into()),
        None => Err(DecodeError::unexpected(name, first)),
    }
}

/// Size of an encoded field within a list when it is among the first `count` fields.
#[inline]
#[doc(hidden)]
pub fn field_len<F: Field>(f: &F) -> usize {
    if f.is_absent() {
        1
    } else {
        f.encoded_len()
    }
}

#[inline]
#[doc(hidden)]
pub fn put_field<F: Field>(f: &F, buf: &mut BytesMut) {
    if f.is_absent() {
        bytes::BufMut::put_u8(buf, crate::codec::code::NULL);
    } else {
        f.encode(buf)
    }
}

/// Defines a described-list composite type.
///
/// Fields of type `Option<T>` are optional (null when `None`); other fields are mandatory.
#[macro_export]
#[doc(hidden)]
macro_rules! composite {
    (
        $(#[$meta:meta])*
        pub struct $name:ident ($short:literal, $sym:literal, $code:literal) {
            $( $(#[$fmeta:meta])* pub $field:ident : $fty:ty => $fname:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $fty, )*
        }

        impl $name {
            /// The numeric descriptor of this type.
            pub const CODE: u64 = $code;
            /// The symbolic descriptor of this type.
            pub const SYMBOL: &'static str = $sym;
            /// The spec's name of this type.
            pub const NAME: &'static str = $short;
            /// The spec's names of the fields, in order.
            pub const FIELDS: &'static [&'static str] = &[$($fname),*];

            #[inline]
            #[allow(unused_assignments)]
            fn list_parts(&self) -> (usize, usize) {
                #[allow(unused_mut)]
                let mut count = 0usize;
                #[allow(unused_mut)]
                let mut body = 0usize;
                #[allow(unused_mut, unused_variables)]
                let mut pending = 0usize;
                #[allow(unused_mut, unused_variables)]
                let mut i = 0usize;
                $(
                    i += 1;
                    if $crate::composite::Field::is_absent(&self.$field) {
                        pending += 1;
                    } else {
                        body += pending + $crate::Encode::encoded_len(&self.$field);
                        pending = 0;
                        count = i;
                    }
                )*
                (count, body)
            }

            /// Decodes the list body (after the descriptor).
            pub fn decode_body(d: &mut $crate::Decoder<'_>) -> Result<Self, $crate::DecodeError> {
                #[allow(unused_mut)]
                let (mut remaining, mut body) = d.list()?;
                $(
                    let $field: $fty = if remaining > 0 {
                        remaining -= 1;
                        <$fty as $crate::composite::Field>::decode_field(&mut body)
                    } else {
                        <$fty as $crate::composite::Field>::absent()
                    }
                    .map_err(|e| e.in_field($short, $fname))?;
                )*
                while remaining > 0 {
                    body.skip()?;
                    remaining -= 1;
                }
                body.finish().map_err(|_| $crate::DecodeError::new($crate::DecodeErrorKind::SizeMismatch))?;
                Ok($name { $($field),* })
            }
        }

        impl $crate::Encode for $name {
            #[inline]
            fn encoded_len(&self) -> usize {
                let (count, body) = self.list_parts();
                $crate::codec::descriptor_code_len($code) + $crate::codec::compound_len(count, body)
            }

            #[inline]
            #[allow(unused_assignments)]
            fn encode(&self, buf: &mut bytes::BytesMut) {
                let (count, body) = self.list_parts();
                $crate::codec::put_descriptor_code(buf, $code);
                $crate::codec::put_list_header(buf, count, body);
                #[allow(unused_variables, unused_mut)]
                let mut i = 0usize;
                $(
                    if i < count {
                        $crate::composite::put_field(&self.$field, buf);
                    }
                    i += 1;
                )*
            }
        }

        impl $crate::Decode for $name {
            #[inline]
            fn decode(d: &mut $crate::Decoder<'_>) -> Result<Self, $crate::DecodeError> {
                $crate::composite::expect_descriptor(d, $code, $sym)?;
                Self::decode_body(d)
            }
        }

        $crate::mandatory_field!($name);
    };
}

/// Defines a restricted type over a primitive with a closed set of choices.
#[macro_export]
#[doc(hidden)]
macro_rules! restricted {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $src:ty, $tyname:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $val:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// The underlying primitive value.
            pub fn value(self) -> $src {
                match self { $( $name::$variant => $val, )* }
            }

            /// The choice for a primitive value, if it is one of the defined choices.
            pub fn from_value(v: $src) -> Option<Self> {
                $( if v == $val { return Some($name::$variant); } )*
                None
            }
        }

        impl $crate::Encode for $name {
            #[inline]
            fn encoded_len(&self) -> usize { $crate::Encode::encoded_len(&self.value()) }
            #[inline]
            fn encode(&self, buf: &mut bytes::BytesMut) { $crate::Encode::encode(&self.value(), buf) }
        }

        impl $crate::Decode for $name {
            #[inline]
            fn decode(d: &mut $crate::Decoder<'_>) -> Result<Self, $crate::DecodeError> {
                let v = <$src as $crate::Decode>::decode(d)?;
                #[allow(clippy::clone_on_copy)]
                match $name::from_value(v.clone()) {
                    Some(x) => Ok(x),
                    None => Err($crate::DecodeError::new($crate::DecodeErrorKind::InvalidValue(
                        format!("{:?} is not a valid {}", v, $tyname)))),
                }
            }
        }

        $crate::mandatory_field!($name);
    };
}
