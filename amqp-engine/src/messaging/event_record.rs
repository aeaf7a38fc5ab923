//! [`EventRecord`]: an event's context as it is queued and handed to the handler, small so
//! that moving it (into the queue, out of it, into the [`Event`](super::Event)) is cheap.

use amqp_proto::definitions::Error;
use amqp_proto::message::ReceivedMessage;
use amqp_proto::messaging::{Accepted, DeliveryState};

use super::error::TransportError;
use super::handler::EventContext;
use super::handles::{
    AcceptorHandle, ConnectionHandle, DeliveryHandle, LinkHandle, SessionHandle, TimerHandle,
    Tracker,
};

/// What `remote_state` points at for an `accepted` outcome (the one common state, kept out of
/// the box).
static ACCEPTED: DeliveryState = DeliveryState::Accepted(Accepted {});

/// The queued form of an [`EventContext`]: the connection, the link, the one other object the
/// event concerns and the message box inline, the rare parts (errors, a remote state other
/// than `accepted`) in one box that most events do not have. An `accepted` outcome, the state
/// of nearly every disposition, is a flag.
#[derive(Clone, Debug, Default)]
pub(crate) struct EventRecord {
    pub(crate) connection: Option<ConnectionHandle>,
    pub(crate) link: Option<LinkHandle>,
    subject: Subject,
    pub(crate) message: Option<Box<ReceivedMessage>>,
    accepted: bool,
    details: Option<Box<EventDetails>>,
}

/// The object an event concerns besides its connection and link: no event concerns two of
/// these (a session event has no delivery, a timer or an acceptor has no connection).
#[derive(Clone, Debug, Default)]
enum Subject {
    #[default]
    None,
    Session(SessionHandle),
    Delivery(DeliveryHandle),
    Tracker(Tracker),
    Timer(TimerHandle),
    Acceptor(AcceptorHandle),
}

/// The parts of an event that only errors and unusual outcomes have.
#[derive(Clone, Debug, Default)]
struct EventDetails {
    error: Option<Error>,
    state: Option<DeliveryState>,
    transport_error: Option<TransportError>,
}

impl EventRecord {
    /// A message arrived (`on_message`): built in place, not through an [`EventContext`].
    pub(crate) fn received(
        delivery: DeliveryHandle,
        message: Box<ReceivedMessage>,
        state: Option<DeliveryState>,
    ) -> Self {
        let mut r = EventRecord {
            connection: Some(ConnectionHandle(delivery.conn)),
            link: Some(delivery.link),
            subject: Subject::Delivery(delivery),
            message: Some(message),
            ..EventRecord::default()
        };
        r.set_state(state);
        r
    }

    /// The peer updated a sent delivery (`on_accepted`, `on_settled`, …).
    pub(crate) fn sent(tracker: Tracker, state: Option<DeliveryState>) -> Self {
        let mut r = EventRecord {
            connection: Some(ConnectionHandle(tracker.conn)),
            link: Some(tracker.link),
            subject: Subject::Tracker(tracker),
            ..EventRecord::default()
        };
        r.set_state(state);
        r
    }

    /// Sets the error condition.
    pub(crate) fn set_error(&mut self, error: Option<Error>) {
        if error.is_some() || self.details.is_some() {
            self.details.get_or_insert_with(Box::default).error = error;
        }
    }

    /// Sets the remote delivery state: a flag for `accepted`, boxed for the others.
    fn set_state(&mut self, state: Option<DeliveryState>) {
        self.accepted = matches!(state, Some(DeliveryState::Accepted(_)));
        let other = state.filter(|_| !self.accepted);
        if other.is_some() || self.details.is_some() {
            self.details.get_or_insert_with(Box::default).state = other;
        }
    }

    /// The session.
    pub(crate) fn session(&self) -> Option<SessionHandle> {
        match self.subject {
            Subject::Session(s) => Some(s),
            _ => None,
        }
    }

    /// The received delivery.
    pub(crate) fn delivery(&self) -> Option<DeliveryHandle> {
        match self.subject {
            Subject::Delivery(d) => Some(d),
            _ => None,
        }
    }

    /// The sent delivery.
    pub(crate) fn tracker(&self) -> Option<Tracker> {
        match self.subject {
            Subject::Tracker(t) => Some(t),
            _ => None,
        }
    }

    /// The timer.
    pub(crate) fn timer(&self) -> Option<TimerHandle> {
        match self.subject {
            Subject::Timer(t) => Some(t),
            _ => None,
        }
    }

    /// The listener.
    pub(crate) fn acceptor(&self) -> Option<AcceptorHandle> {
        match self.subject {
            Subject::Acceptor(a) => Some(a),
            _ => None,
        }
    }

    /// The error condition.
    pub(crate) fn error(&self) -> Option<&Error> {
        self.details.as_ref()?.error.as_ref()
    }

    /// The remote delivery state.
    pub(crate) fn state(&self) -> Option<&DeliveryState> {
        if self.accepted {
            return Some(&ACCEPTED);
        }
        self.details.as_ref()?.state.as_ref()
    }

    /// The transport failure.
    pub(crate) fn transport_error(&self) -> Option<&TransportError> {
        self.details.as_ref()?.transport_error.as_ref()
    }
}

impl From<EventContext> for EventRecord {
    fn from(c: EventContext) -> Self {
        let subject = match (c.delivery, c.tracker, c.session, c.timer, c.acceptor) {
            (Some(d), ..) => Subject::Delivery(d),
            (_, Some(t), ..) => Subject::Tracker(t),
            (_, _, Some(s), ..) => Subject::Session(s),
            (.., Some(t), _) => Subject::Timer(t),
            (.., Some(a)) => Subject::Acceptor(a),
            _ => Subject::None,
        };
        let mut r = EventRecord {
            connection: c.connection,
            link: c.link,
            subject,
            message: c.message,
            accepted: false,
            details: c.transport_error.map(|e| {
                Box::new(EventDetails {
                    transport_error: Some(e),
                    ..EventDetails::default()
                })
            }),
        };
        r.set_error(c.error);
        r.set_state(c.state);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_proto::messaging::Released;

    #[test]
    fn a_record_is_a_fraction_of_the_context_it_queues() {
        let record = std::mem::size_of::<EventRecord>();
        let context = std::mem::size_of::<EventContext>();
        assert!(record <= 112, "EventRecord is {record} bytes");
        assert!(record * 4 <= context, "{record} vs {context} bytes");
    }

    #[test]
    fn the_rare_parts_survive_the_record() {
        let accepted = EventRecord::from(EventContext {
            state: Some(DeliveryState::accepted()),
            ..EventContext::default()
        });
        assert!(matches!(accepted.state(), Some(DeliveryState::Accepted(_))));
        assert!(accepted.details.is_none(), "accepted needs no box");

        let released = EventRecord::from(EventContext {
            state: Some(DeliveryState::Released(Released {})),
            error: Some(Error::condition("amqp:internal-error")),
            transport_error: Some(TransportError::new(
                super::super::TransportErrorKind::Io,
                "gone",
            )),
            ..EventContext::default()
        });
        assert!(matches!(released.state(), Some(DeliveryState::Released(_))));
        assert_eq!(
            released.error().map(|e| e.condition.as_str()),
            Some("amqp:internal-error")
        );
        assert_eq!(
            released.transport_error().map(|e| e.message()),
            Some("gone")
        );

        let plain = EventRecord::from(EventContext::default());
        assert!(plain.state().is_none() && plain.error().is_none());
        assert!(plain.transport_error().is_none());
    }
}
