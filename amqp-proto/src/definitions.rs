//! Transport definitions (`transport.xml` §2.8): roles, settle modes, the `error` type and the
//! standard error conditions.

use bytestring::ByteString;

use crate::value::{OrderedMap, Symbol, Value};
use crate::{composite, restricted};

/// `fields`: a map from symbols to values.
pub type Fields = OrderedMap<Symbol, Value>;
/// `handle`: the link handle within a session.
pub type Handle = u32;
/// `sequence-no`: a serial number (RFC 1982 arithmetic, 32 bits).
pub type SequenceNo = u32;
/// `delivery-number`.
pub type DeliveryNumber = u32;
/// `transfer-number`.
pub type TransferNumber = u32;
/// `milliseconds`.
pub type Milliseconds = u32;
/// `seconds`.
pub type Seconds = u32;
/// `message-format`.
pub type MessageFormat = u32;
/// `delivery-tag`: up to 32 bytes of binary.
pub type DeliveryTag = bytes::Bytes;

restricted! {
    /// `role`: which end of a link this is.
    pub enum Role: bool, "role" {
        /// The sending end (`false`).
        Sender = false,
        /// The receiving end (`true`).
        Receiver = true,
    }
}

restricted! {
    /// `sender-settle-mode`.
    pub enum SenderSettleMode: u8, "sender-settle-mode" {
        /// Deliveries are sent unsettled.
        Unsettled = 0,
        /// Deliveries are sent settled (at most once).
        Settled = 1,
        /// Either, per delivery (the default).
        Mixed = 2,
    }
}

restricted! {
    /// `receiver-settle-mode`.
    pub enum ReceiverSettleMode: u8, "receiver-settle-mode" {
        /// The receiver settles first (the default).
        First = 0,
        /// The receiver settles only after the sender has settled.
        Second = 1,
    }
}

restricted! {
    /// `sasl-code`: the outcome of a SASL exchange.
    pub enum SaslCode: u8, "sasl-code" {
        /// Authentication succeeded.
        Ok = 0,
        /// Failed: bad credentials.
        Auth = 1,
        /// Failed: system error.
        Sys = 2,
        /// Failed: permanent system error.
        SysPerm = 3,
        /// Failed: transient system error.
        SysTemp = 4,
    }
}

composite! {
    /// `error`: details of an error, carried by close, end, detach and rejected.
    pub struct Error("error", "amqp:error:list", 0x1d) {
        /// The error condition (see [`condition`]).
        pub condition: Symbol => "condition",
        /// Human-readable description.
        pub description: Option<ByteString> => "description",
        /// Further information.
        pub info: Option<Fields> => "info",
    }
}

impl Error {
    /// An error with a condition and a description.
    pub fn new(condition: impl Into<Symbol>, description: impl Into<ByteString>) -> Error {
        Error {
            condition: condition.into(),
            description: Some(description.into()),
            info: None,
        }
    }

    /// An error with only a condition.
    pub fn condition(condition: impl Into<Symbol>) -> Error {
        Error {
            condition: condition.into(),
            description: None,
            info: None,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.condition)?;
        if let Some(d) = &self.description {
            write!(f, ": {}", &**d)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// The standard error conditions as symbol constants.
pub mod condition {
    use crate::value::Symbol;

    /// An internal error occurred.
    pub const INTERNAL_ERROR: Symbol = Symbol::from_static("amqp:internal-error");
    /// A peer attempted to work with a remote entity that does not exist.
    pub const NOT_FOUND: Symbol = Symbol::from_static("amqp:not-found");
    /// A peer attempted to work with a remote entity to which it has no access.
    pub const UNAUTHORIZED_ACCESS: Symbol = Symbol::from_static("amqp:unauthorized-access");
    /// Data could not be decoded.
    pub const DECODE_ERROR: Symbol = Symbol::from_static("amqp:decode-error");
    /// A peer exceeded its resource allocation.
    pub const RESOURCE_LIMIT_EXCEEDED: Symbol = Symbol::from_static("amqp:resource-limit-exceeded");
    /// The peer tried to use a frame in a manner that is inconsistent with the spec.
    pub const NOT_ALLOWED: Symbol = Symbol::from_static("amqp:not-allowed");
    /// An invalid field was passed in a frame body.
    pub const INVALID_FIELD: Symbol = Symbol::from_static("amqp:invalid-field");
    /// The peer tried to use functionality that is not implemented.
    pub const NOT_IMPLEMENTED: Symbol = Symbol::from_static("amqp:not-implemented");
    /// The client attempted to work with a server entity to which it has no access because another client is working with it.
    pub const RESOURCE_LOCKED: Symbol = Symbol::from_static("amqp:resource-locked");
    /// The client made a request that was not allowed because some precondition failed.
    pub const PRECONDITION_FAILED: Symbol = Symbol::from_static("amqp:precondition-failed");
    /// A server entity the client is working with has been deleted.
    pub const RESOURCE_DELETED: Symbol = Symbol::from_static("amqp:resource-deleted");
    /// The peer sent a frame that is not permitted in the current state.
    pub const ILLEGAL_STATE: Symbol = Symbol::from_static("amqp:illegal-state");
    /// The peer cannot send a frame because the smallest encoding of the performative with the currently valid values would be too large.
    pub const FRAME_SIZE_TOO_SMALL: Symbol = Symbol::from_static("amqp:frame-size-too-small");
    /// An operator intervened to close the connection.
    pub const CONNECTION_FORCED: Symbol = Symbol::from_static("amqp:connection:forced");
    /// A valid frame header cannot be formed from the incoming byte stream.
    pub const FRAMING_ERROR: Symbol = Symbol::from_static("amqp:connection:framing-error");
    /// The container is no longer available on the current connection.
    pub const CONNECTION_REDIRECT: Symbol = Symbol::from_static("amqp:connection:redirect");
    /// The peer violated incoming window for the session.
    pub const WINDOW_VIOLATION: Symbol = Symbol::from_static("amqp:session:window-violation");
    /// Input was received for a link that was detached with an error.
    pub const ERRANT_LINK: Symbol = Symbol::from_static("amqp:session:errant-link");
    /// An attach was received using a handle that is already in use for an attached link.
    pub const HANDLE_IN_USE: Symbol = Symbol::from_static("amqp:session:handle-in-use");
    /// A frame (other than attach) was received referencing a handle which is not currently in use of an attached link.
    pub const UNATTACHED_HANDLE: Symbol = Symbol::from_static("amqp:session:unattached-handle");
    /// An operator intervened to detach for some reason.
    pub const DETACH_FORCED: Symbol = Symbol::from_static("amqp:link:detach-forced");
    /// The peer sent more message transfers than currently allowed on the link.
    pub const TRANSFER_LIMIT_EXCEEDED: Symbol =
        Symbol::from_static("amqp:link:transfer-limit-exceeded");
    /// The peer sent a larger message than is supported on the link.
    pub const MESSAGE_SIZE_EXCEEDED: Symbol =
        Symbol::from_static("amqp:link:message-size-exceeded");
    /// The address provided cannot be resolved to a terminus at the current container.
    pub const LINK_REDIRECT: Symbol = Symbol::from_static("amqp:link:redirect");
    /// The link has been attached elsewhere, causing the existing attachment to be forcibly closed.
    pub const STOLEN: Symbol = Symbol::from_static("amqp:link:stolen");
    /// The specified txn-id does not exist.
    pub const TRANSACTION_UNKNOWN_ID: Symbol = Symbol::from_static("amqp:transaction:unknown-id");
    /// The transaction was rolled back for a reason other than a discharge.
    pub const TRANSACTION_ROLLBACK: Symbol = Symbol::from_static("amqp:transaction:rollback");
    /// The time allowed for the transaction has expired.
    pub const TRANSACTION_TIMEOUT: Symbol = Symbol::from_static("amqp:transaction:timeout");
}
