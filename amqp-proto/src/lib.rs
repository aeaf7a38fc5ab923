#![forbid(unsafe_code)]
//! # amqp-proto — the AMQP 1.0 type system and codec
//!
//! Stateless and I/O-free: values, composites, message sections and frames, encoded into
//! [`bytes::BytesMut`] and decoded (with [`nom`]) from [`bytes::Bytes`] so that binary, string
//! and symbol payloads are zero-copy slices of the input.
//!
//! * [`value`] — primitive newtypes and the generic [`Value`] (totally ordered; usable as a map key).
//! * [`codec`] — the [`Encode`]/[`Decode`] traits, the [`Decoder`] cursor and [`Limits`]; format codes and
//!   encoding helpers stay inside the crate.
//! * [`definitions`], [`performatives`], [`messaging`], [`transaction`], [`sasl`] — every composite
//!   of the spec, with the standard error conditions in [`definitions::condition`].
//! * [`message`] — the [`Message`](message::Message) users build, and its sections.
//! * [`frame`] — protocol headers, frame headers, the streaming [`FrameDecoder`](frame::FrameDecoder), and
//!   [`frame::transfer`], the per-message fast path (transfer headers written and read directly).
//!
//! Every decoder treats its input as hostile: lengths are checked against the bytes present
//! before anything is allocated, nesting is bounded by [`Limits::max_depth`], and every failure
//! is a [`DecodeError`] naming the composite and field involved. Nothing panics.
//!
//! ```
//! use amqp_proto::{Decode, Encode, Value, OrderedMap, Symbol};
//! use bytes::Bytes;
//!
//! let v = Value::List(vec![Value::Uint(7), Value::string("seven"), Value::Symbol(Symbol::from("x"))]);
//! let bytes: Bytes = v.to_bytes();
//! assert_eq!(Value::from_bytes(&bytes).unwrap(), v);
//! ```

pub mod codec;
pub mod composite;
pub mod definitions;
pub mod error;
pub mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod message;
pub mod messaging;
pub mod performatives;
pub mod sasl;
pub mod transaction;
pub mod value;

pub use codec::{Decode, Decoder, Encode, Limits};
pub use error::{DecodeError, DecodeErrorKind};
pub use value::*;
