//! Errors: who caused them and which AMQP condition they carry.

use std::fmt;

use amqp_proto::definitions::{condition, Error};
use amqp_proto::Symbol;

use crate::sasl::SaslError;

/// Which side caused an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// We detected a violation by the peer (or our own limit was hit) and closed.
    Local,
    /// The peer closed with this error.
    Remote,
}

/// The broad class of a connection failure.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum ErrorKind {
    /// The peer's protocol header was wrong or unsupported.
    ProtocolHeader,
    /// The byte stream could not be framed.
    Framing,
    /// A frame body could not be decoded.
    Decode,
    /// The peer broke a protocol rule.
    Protocol,
    /// Our idle timeout expired.
    IdleTimeout,
    /// The peer did not complete the handshake (header, SASL, `open`) within the configured
    /// [`handshake_timeout`](crate::ConnectionConfig::handshake_timeout).
    HandshakeTimeout,
    /// SASL authentication failed or could not be negotiated.
    Sasl(SaslError),
    /// The peer closed the connection with an error.
    RemoteClose,
    /// The application closed the connection with an error.
    LocalClose,
    /// The transport ended before the connection closed.
    TransportEnded,
}

/// A fatal connection error. Once a connection has failed, the error is sticky: every later
/// operation reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// Who caused it.
    pub origin: Origin,
    /// The AMQP error (condition and description) sent or received.
    pub error: Error,
}

impl ConnectionError {
    pub(crate) fn local(kind: ErrorKind, cond: Symbol, description: impl Into<String>) -> Self {
        let d: String = description.into();
        ConnectionError {
            kind,
            origin: Origin::Local,
            error: Error::new(cond, d),
        }
    }

    /// The AMQP condition.
    pub fn condition(&self) -> &Symbol {
        &self.error.condition
    }

    /// True if authentication failed.
    pub fn is_auth_failure(&self) -> bool {
        matches!(&self.kind, ErrorKind::Sasl(SaslError::Auth(_)))
    }
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.origin {
            Origin::Local => "local",
            Origin::Remote => "remote",
        };
        write!(f, "{who} connection error: {}", self.error)
    }
}

impl std::error::Error for ConnectionError {
    /// The SASL error a failed authentication carries.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Sasl(e) => Some(e),
            _ => None,
        }
    }
}

/// Why an operation on a connection was refused.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum OpError {
    /// The connection has failed or is closed.
    Closed(Option<ConnectionError>),
    /// The session or link handle is stale or unknown.
    UnknownHandle,
    /// The endpoint is not in a state that allows this.
    IllegalState(&'static str),
    /// A sender has no credit.
    NoCredit,
    /// No free channel (channel-max reached).
    NoChannel,
    /// No free handle (handle-max reached).
    NoHandle,
    /// The message exceeds the link's max-message-size.
    MessageTooLarge {
        /// Size of the message.
        size: usize,
        /// The limit.
        max: u64,
    },
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::Closed(Some(e)) => write!(f, "connection closed: {e}"),
            OpError::Closed(None) => f.write_str("connection closed"),
            OpError::UnknownHandle => f.write_str("unknown session, link or delivery"),
            OpError::IllegalState(s) => write!(f, "illegal state: {s}"),
            OpError::NoCredit => f.write_str("no link credit"),
            OpError::NoChannel => f.write_str("no free channel"),
            OpError::NoHandle => f.write_str("no free link handle"),
            OpError::MessageTooLarge { size, max } => {
                write!(f, "message of {size} bytes exceeds max-message-size {max}")
            }
        }
    }
}

impl std::error::Error for OpError {
    /// The connection's error, for an operation refused because the connection failed.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpError::Closed(Some(e)) => Some(e),
            _ => None,
        }
    }
}

pub(crate) fn framing(desc: impl Into<String>) -> ConnectionError {
    ConnectionError::local(ErrorKind::Framing, condition::FRAMING_ERROR, desc)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::sasl::SaslError;

    #[test]
    fn errors_that_wrap_one_return_it_from_source() {
        let sasl = SaslError::Auth("bad password".into());
        let e = ConnectionError::local(
            ErrorKind::Sasl(sasl.clone()),
            amqp_proto::definitions::condition::UNAUTHORIZED_ACCESS,
            "auth",
        );
        assert_eq!(e.source().map(|s| s.to_string()), Some(sasl.to_string()));
        let op = OpError::Closed(Some(e.clone()));
        assert_eq!(op.source().map(|s| s.to_string()), Some(e.to_string()));
        assert!(OpError::Closed(None).source().is_none());
        assert!(OpError::NoCredit.source().is_none());
        let plain = ConnectionError::local(
            ErrorKind::IdleTimeout,
            amqp_proto::definitions::condition::RESOURCE_LIMIT_EXCEEDED,
            "idle",
        );
        assert!(plain.source().is_none());
    }
}
