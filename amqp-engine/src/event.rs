//! Events: what happened on a connection, drained with [`Connection::poll_event`](crate::Connection::poll_event).

use amqp_proto::definitions::Error;
use amqp_proto::messaging::DeliveryState;
use bytes::Bytes;

use crate::error::ConnectionError;
use crate::ids::{DeliveryId, LinkId, SessionId};

/// A complete incoming delivery (all its transfer frames).
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingDelivery {
    /// The receiving link.
    pub link: LinkId,
    /// The delivery's id, for dispositions.
    pub delivery: DeliveryId,
    /// The delivery tag.
    pub tag: Bytes,
    /// The message format (0 for a standard AMQP message).
    pub message_format: u32,
    /// Whether the sender settled it (at most once: no disposition is needed).
    pub settled: bool,
    /// The sender's delivery state, if it sent one.
    pub state: Option<DeliveryState>,
    /// The encoded message: a zero-copy slice of the input when it came in one frame.
    pub payload: Bytes,
}

/// Something that happened on a connection.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// SASL finished successfully. On a server, `identity` is who the peer authenticated as.
    Authenticated {
        /// The mechanism used.
        mechanism: Option<String>,
        /// The authenticated identity (server side).
        identity: Option<String>,
    },
    /// The peer's `open` arrived; see [`Connection::remote_open`](crate::Connection::remote_open).
    ConnectionOpened,
    /// The peer's `close` arrived (a reply is sent automatically if we had not closed).
    ConnectionClosed {
        /// The peer's error, if any.
        error: Option<Error>,
    },
    /// The peer's `begin` arrived. If `remote_initiated`, answer with
    /// [`Connection::accept_session`](crate::Connection::accept_session).
    SessionOpened {
        /// The session.
        session: SessionId,
        /// The peer began it (rather than answering our begin).
        remote_initiated: bool,
    },
    /// The session ended (the peer's `end` arrived, or both sides have ended).
    SessionEnded {
        /// The session.
        session: SessionId,
        /// The error the session ended with, if any.
        error: Option<Error>,
    },
    /// The peer's `attach` arrived. If `remote_initiated`, answer with
    /// [`Connection::accept_link`](crate::Connection::accept_link) or
    /// [`Connection::refuse_link`](crate::Connection::refuse_link).
    LinkOpened {
        /// The link.
        link: LinkId,
        /// The peer attached it first.
        remote_initiated: bool,
    },
    /// The peer detached the link (a reply is sent automatically if we had not), or ended its
    /// session (`session_ended`: no detach is exchanged, the link is gone with the session).
    LinkClosed {
        /// The link.
        link: LinkId,
        /// Closed (rather than merely detached).
        closed: bool,
        /// The error, if any (when `session_ended`, the session's).
        error: Option<Error>,
        /// The link went with its session, which the peer ended.
        session_ended: bool,
    },
    /// A sender's credit or drain state changed: send while `credit > 0`; if `drain`, call
    /// [`Connection::drained`](crate::Connection::drained) when nothing more is to be sent.
    LinkFlow {
        /// The sending link.
        link: LinkId,
        /// Credit now available.
        credit: u32,
        /// The receiver asks us to use or give up all credit.
        drain: bool,
    },
    /// A receiver's drain completed: the sender has used or given up all credit.
    LinkDrained {
        /// The receiving link.
        link: LinkId,
    },
    /// A message arrived.
    Delivery(IncomingDelivery),
    /// The peer changed the state of, or settled, a delivery.
    Disposition {
        /// The delivery.
        delivery: DeliveryId,
        /// The new state.
        state: Option<DeliveryState>,
        /// Whether the peer settled it.
        settled: bool,
    },
    /// A multi-frame delivery was aborted by the sender.
    Aborted {
        /// The delivery.
        delivery: DeliveryId,
    },
    /// A link was detached by us because the peer broke a link rule (e.g. transfer beyond credit).
    LinkError {
        /// The link.
        link: LinkId,
        /// The error sent.
        error: Error,
    },
    /// A session was ended by us because the peer broke a session rule (e.g. window violation).
    SessionError {
        /// The session.
        session: SessionId,
        /// The error sent.
        error: Error,
    },
    /// The connection failed; the error is also returned by later calls. A `close` carrying it
    /// has been queued for the peer when that is possible.
    Error(ConnectionError),
    /// Nothing more will be read or written: flush [`poll_transmit`](crate::Connection::poll_transmit)
    /// once more, then close the transport.
    Finished,
}
