//! The messaging layer's errors: [`MessagingError`] for the container's operations, and
//! [`TransportError`] for a failed transport, with a [`TransportErrorKind`] that tells a refused
//! connection from a DNS, TLS, authentication, timeout or protocol failure.

use std::fmt;

use super::options::OptionsError;
use super::url::UrlError;
use crate::error::{ConnectionError, ErrorKind};

/// What kind of failure ended (or prevented) a transport.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// The peer refused the TCP connection (nothing listens there).
    Refused,
    /// The host name could not be resolved.
    Dns,
    /// The TLS handshake or configuration failed (bad certificate, wrong name, bad PEM).
    Tls,
    /// SASL authentication failed, or no mechanism both sides allow could be agreed on.
    Authentication,
    /// A connect, or the peer's idle timeout, expired.
    Timeout,
    /// The peer broke the AMQP protocol (bad header, framing, decoding, a rule).
    Protocol,
    /// The address to listen on is in use.
    AddressInUse,
    /// Any other I/O failure (reset, broken pipe, unreachable network).
    Io,
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportErrorKind::Refused => "connection refused",
            TransportErrorKind::Dns => "name resolution failed",
            TransportErrorKind::Tls => "TLS failure",
            TransportErrorKind::Authentication => "authentication failed",
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::Protocol => "protocol error",
            TransportErrorKind::AddressInUse => "address in use",
            TransportErrorKind::Io => "I/O error",
        })
    }
}

/// A transport failure: its kind, and a description for people.
///
/// ```
/// use amqp_engine::messaging::{TransportError, TransportErrorKind};
///
/// let e = TransportError::new(TransportErrorKind::Refused, "connect to 127.0.0.1:1: refused");
/// assert_eq!(e.kind(), TransportErrorKind::Refused);
/// assert_eq!(e.to_string(), "connection refused: connect to 127.0.0.1:1: refused");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    kind: TransportErrorKind,
    message: String,
}

impl TransportError {
    /// A transport error of `kind`, described by `message`.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> TransportError {
        TransportError {
            kind,
            message: message.into(),
        }
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// The description, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for TransportError {}

impl From<&ConnectionError> for TransportError {
    /// The engine's fatal error, classified: SASL failures are authentication errors, an
    /// expired idle timeout a timeout, everything else a protocol error.
    fn from(e: &ConnectionError) -> TransportError {
        let kind = match e.kind {
            ErrorKind::Sasl(_) => TransportErrorKind::Authentication,
            ErrorKind::IdleTimeout => TransportErrorKind::Timeout,
            ErrorKind::TransportEnded => TransportErrorKind::Io,
            _ => TransportErrorKind::Protocol,
        };
        TransportError::new(kind, e.to_string())
    }
}

/// Errors of the container's operations.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum MessagingError {
    /// A bad URL.
    Url(UrlError),
    /// Bad connect options (e.g. `url` and `urls` together).
    Options(OptionsError),
    /// The object is gone or the event has none.
    NoSuchObject(&'static str),
    /// The link is not attached on the current transport, or has no credit.
    NotReady(&'static str),
    /// The link was closed (by the application or the peer): nothing more can be sent or
    /// granted on it.
    LinkClosed,
    /// The engine refused the operation.
    Engine(crate::error::OpError),
    /// The container is stopping.
    Stopped,
}

impl fmt::Display for MessagingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessagingError::Url(e) => write!(f, "bad URL: {e}"),
            MessagingError::Options(e) => write!(f, "bad connect options: {e}"),
            MessagingError::NoSuchObject(s) => write!(f, "no such object: {s}"),
            MessagingError::NotReady(s) => write!(f, "not ready: {s}"),
            MessagingError::LinkClosed => f.write_str("the link is closed"),
            MessagingError::Engine(e) => write!(f, "{e}"),
            MessagingError::Stopped => f.write_str("container stopped"),
        }
    }
}

impl std::error::Error for MessagingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MessagingError::Url(e) => Some(e),
            MessagingError::Options(e) => Some(e),
            MessagingError::Engine(e) => Some(e),
            _ => None,
        }
    }
}

impl From<UrlError> for MessagingError {
    fn from(e: UrlError) -> Self {
        MessagingError::Url(e)
    }
}
impl From<OptionsError> for MessagingError {
    fn from(e: OptionsError) -> Self {
        MessagingError::Options(e)
    }
}
impl From<crate::error::OpError> for MessagingError {
    fn from(e: crate::error::OpError) -> Self {
        MessagingError::Engine(e)
    }
}
