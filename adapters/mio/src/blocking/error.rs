//! The blocking API's error, [`BlockingError`].

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use amqp_adapter::amqp_engine::messaging::{MessagingError, TransportError, UrlError};
use amqp_adapter::amqp_proto::definitions::Error as AmqpError;

/// Errors of the blocking API. They say who caused them (`remote`) and carry the peer's AMQP
/// error condition when there is one.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum BlockingError {
    /// The container refused an operation (bad URL or options, message too large, …).
    Messaging(Box<MessagingError>),
    /// The transport could not be established or was lost, and no reconnect follows.
    Transport(TransportError),
    /// The connection is closed: by us (`remote: false`) or by the peer.
    ConnectionClosed {
        /// The peer closed (or refused) it.
        remote: bool,
        /// The peer's error condition.
        error: Option<AmqpError>,
    },
    /// The link is closed: by us (`remote: false`), or refused or detached by the peer.
    LinkClosed {
        /// The peer closed (or refused) it.
        remote: bool,
        /// The peer's error condition.
        error: Option<AmqpError>,
    },
    /// The delivery was already settled (accepted, rejected, released or modified).
    AlreadySettled,
    /// The operation did not complete within its timeout.
    Timeout(Duration),
    /// The poll loop failed (the operating system refused a poll instance or a wait).
    Io(Arc<io::Error>),
}

impl BlockingError {
    /// The peer's AMQP error condition, if the peer gave one.
    pub fn condition(&self) -> Option<&AmqpError> {
        match self {
            BlockingError::ConnectionClosed { error, .. }
            | BlockingError::LinkClosed { error, .. } => error.as_ref(),
            _ => None,
        }
    }

    /// True for [`BlockingError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, BlockingError::Timeout(_))
    }
}

impl fmt::Display for BlockingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = |remote: bool| if remote { "by the peer" } else { "locally" };
        match self {
            BlockingError::Messaging(e) => write!(f, "{e}"),
            BlockingError::Transport(e) => write!(f, "transport: {e}"),
            BlockingError::ConnectionClosed { remote, error } => {
                write!(f, "connection closed {}", by(*remote))?;
                condition(f, error)
            }
            BlockingError::LinkClosed { remote, error } => {
                write!(f, "link closed {}", by(*remote))?;
                condition(f, error)
            }
            BlockingError::AlreadySettled => f.write_str("the delivery is already settled"),
            BlockingError::Timeout(t) => write!(f, "timed out after {t:?}"),
            BlockingError::Io(e) => write!(f, "poll loop: {e}"),
        }
    }
}

fn condition(f: &mut fmt::Formatter<'_>, e: &Option<AmqpError>) -> fmt::Result {
    match e {
        Some(e) => match &e.description {
            Some(d) => write!(f, ": {}: {d}", e.condition),
            None => write!(f, ": {}", e.condition),
        },
        None => Ok(()),
    }
}

impl std::error::Error for BlockingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BlockingError::Messaging(e) => Some(&**e),
            BlockingError::Transport(e) => Some(e),
            BlockingError::Io(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<MessagingError> for BlockingError {
    fn from(e: MessagingError) -> Self {
        BlockingError::Messaging(Box::new(e))
    }
}

impl From<UrlError> for BlockingError {
    fn from(e: UrlError) -> Self {
        BlockingError::from(MessagingError::from(e))
    }
}

impl From<io::Error> for BlockingError {
    fn from(e: io::Error) -> Self {
        BlockingError::Io(Arc::new(e))
    }
}
