//! The handler behind a [`BlockingConnection`](super::BlockingConnection): it records what the
//! container reports (connection and link states, received messages, outcomes) for the
//! blocking calls to wait on.

use std::collections::{HashMap, HashSet, VecDeque};

use amqp_adapter::amqp_engine::messaging::{
    DeliveryHandle, Event, HandlerOptions, LinkHandle, MessagingHandler, Tracker, TransportError,
};
use amqp_adapter::amqp_proto::definitions::Error as AmqpError;
use amqp_adapter::amqp_proto::message::ReceivedMessage;

use super::{BlockingError, Outcome};

/// One link's state.
#[derive(Default)]
pub(crate) struct LinkState {
    pub(crate) opened: bool,
    /// Set once the link is closed: why.
    pub(crate) closed: Option<BlockingError>,
    /// We asked to close it.
    pub(crate) close_requested: bool,
    /// The peer's error condition, from `on_link_error`.
    pub(crate) peer_error: Option<AmqpError>,
    /// Receivers: the window (credit plus messages waiting here), and the waiting messages.
    pub(crate) capacity: u32,
    pub(crate) queue: VecDeque<(DeliveryHandle, ReceivedMessage)>,
}

/// What the handler records.
#[derive(Default)]
pub(crate) struct BlockingHandler {
    pub(crate) opened: bool,
    /// Set once the connection is closed for good: why.
    pub(crate) closed: Option<BlockingError>,
    pub(crate) close_requested: bool,
    peer_error: Option<AmqpError>,
    transport_error: Option<TransportError>,
    pub(crate) links: HashMap<LinkHandle, LinkState>,
    /// Trackers a `send` waits on, and the outcomes that arrived for them.
    pub(crate) wanted: HashSet<Tracker>,
    pub(crate) outcomes: HashMap<Tracker, Outcome>,
}

impl BlockingHandler {
    /// Why operations fail now that the connection is closed.
    pub(crate) fn closed_error(&self) -> BlockingError {
        self.closed
            .clone()
            .unwrap_or(BlockingError::ConnectionClosed {
                remote: false,
                error: None,
            })
    }

    /// The credit a receiver should have now: its window less the messages waiting here.
    pub(crate) fn wanted_credit(&self, link: LinkHandle) -> Option<u32> {
        let l = self.links.get(&link)?;
        Some(l.capacity.saturating_sub(l.queue.len() as u32))
    }

    fn outcome(&mut self, e: &Event<'_>, outcome: Outcome) {
        if let Some(t) = e.tracker() {
            if self.wanted.contains(&t) {
                self.outcomes.entry(t).or_insert(outcome);
            }
        }
    }
}

impl MessagingHandler for BlockingHandler {
    fn options(&self) -> HandlerOptions {
        // Receivers get credit from `receiver(address, credit)`, and the application settles
        // what it receives.
        HandlerOptions {
            prefetch: 0,
            auto_accept: false,
            auto_settle: true,
        }
    }
    fn on_connection_opened(&mut self, _: &mut Event<'_>) {
        self.opened = true;
    }
    fn on_connection_error(&mut self, e: &mut Event<'_>) {
        self.peer_error = e.error().cloned();
    }
    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        self.transport_error = e.transport_error().cloned();
    }
    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        let reason = match (
            e.transport_error().cloned(),
            self.peer_error.take(),
            self.transport_error.take(),
        ) {
            // Reconnect gave up (or was off): the last transport failure.
            (Some(t), _, _) => BlockingError::Transport(t),
            (None, Some(error), _) => BlockingError::ConnectionClosed {
                remote: true,
                error: Some(error),
            },
            (None, None, _) if self.close_requested => BlockingError::ConnectionClosed {
                remote: false,
                error: None,
            },
            (None, None, Some(t)) => BlockingError::Transport(t),
            (None, None, None) => BlockingError::ConnectionClosed {
                remote: true,
                error: None,
            },
        };
        for l in self.links.values_mut() {
            l.closed.get_or_insert_with(|| reason.clone());
        }
        for t in self.wanted.drain() {
            self.outcomes.entry(t).or_insert(Outcome::InDoubt);
        }
        self.closed = Some(reason);
    }
    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        let Some(link) = e.link() else { return };
        if let Some(l) = self.links.get_mut(&link) {
            l.opened = true;
        }
        if e.receiver().is_some() {
            if let Some(credit) = self.wanted_credit(link) {
                // Refused only when the link is already gone, which its close reports.
                let _ = e.container_mut().flow(link, credit);
            }
        }
    }
    fn on_link_error(&mut self, e: &mut Event<'_>) {
        if let Some(l) = e.link().and_then(|k| self.links.get_mut(&k)) {
            l.peer_error = e.error().cloned();
        }
    }
    fn on_link_closed(&mut self, e: &mut Event<'_>) {
        if let Some(l) = e.link().and_then(|k| self.links.get_mut(&k)) {
            let remote = !l.close_requested || l.peer_error.is_some();
            let error = l.peer_error.take();
            l.closed
                .get_or_insert(BlockingError::LinkClosed { remote, error });
        }
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        let (Some(link), Some(d)) = (e.link(), e.delivery()) else {
            return;
        };
        let Some(m) = e.take_message() else { return };
        if let Some(l) = self.links.get_mut(&link) {
            l.queue.push_back((d, m));
        }
    }
    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.outcome(e, Outcome::Accepted);
    }
    fn on_rejected(&mut self, e: &mut Event<'_>) {
        let o = Outcome::from_state(e.remote_state());
        self.outcome(e, o);
    }
    fn on_released(&mut self, e: &mut Event<'_>) {
        let o = Outcome::from_state(e.remote_state());
        self.outcome(e, o);
    }
    fn on_settled(&mut self, e: &mut Event<'_>) {
        let o = Outcome::from_state(e.remote_state());
        self.outcome(e, o);
    }
    fn on_in_doubt(&mut self, e: &mut Event<'_>) {
        self.outcome(e, Outcome::InDoubt);
    }
}
