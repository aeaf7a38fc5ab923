//! Senders, receivers and received deliveries of a
//! [`BlockingConnection`](super::BlockingConnection).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use amqp_adapter::amqp_engine::messaging::{DeliveryHandle, LinkHandle, MessagingError, Tracker};
use amqp_adapter::amqp_proto::definitions::Error as AmqpError;
use amqp_adapter::amqp_proto::message::ReceivedMessage;
use amqp_adapter::amqp_proto::Encode;

use super::{BlockingConnection, BlockingError, Inner, Outcome, Shared};

/// Proton's `BlockingSender`: [`send`](Self::send) blocks until the peer settles the message.
/// `Send`; clones share the link.
#[derive(Clone, Debug)]
pub struct BlockingSender {
    conn: BlockingConnection,
    link: LinkHandle,
}

impl BlockingSender {
    pub(super) fn new(conn: BlockingConnection, link: LinkHandle) -> Self {
        BlockingSender { conn, link }
    }

    /// Sends a message and blocks until its outcome arrives, for at most the connection's
    /// [`timeout`](BlockingConnection::timeout) (waiting for credit included).
    pub fn send<M: Encode + ?Sized>(&self, message: &M) -> Result<Outcome, BlockingError> {
        self.send_timeout(message, self.conn.timeout())
    }

    /// [`send`](Self::send) with its own timeout (`None`: no limit).
    pub fn send_timeout<M: Encode + ?Sized>(
        &self,
        message: &M,
        timeout: Option<Duration>,
    ) -> Result<Outcome, BlockingError> {
        let start = Instant::now();
        let tracker = self.put(message, timeout, true)?;
        let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
        let link = self.link;
        let r = self.conn.shared().wait(left, |g| {
            let h = g.handler();
            if let Some(o) = h.outcomes.remove(&tracker) {
                return Some(Ok(o));
            }
            if h.links.get(&link).is_none_or(|l| l.closed.is_some()) {
                h.wanted.remove(&tracker);
                return Some(Ok(Outcome::InDoubt));
            }
            None
        });
        if r.is_err() {
            let mut g = self.conn.shared().lock();
            let h = g.handler();
            h.wanted.remove(&tracker);
            h.outcomes.remove(&tracker);
        }
        r
    }

    /// Sends a message without waiting for its outcome (waiting only for credit, up to the
    /// connection's timeout), and lets it go out at once. Its outcome is not kept: use
    /// [`send`](Self::send) when you need it.
    pub fn send_nowait<M: Encode + ?Sized>(&self, message: &M) -> Result<Tracker, BlockingError> {
        let t = self.put(message, self.conn.timeout(), false)?;
        let mut g = self.conn.shared().lock();
        Shared::flush(&mut g)?;
        Ok(t)
    }

    /// Waits for credit, then hands the message to the container.
    fn put<M: Encode + ?Sized>(
        &self,
        message: &M,
        timeout: Option<Duration>,
        want_outcome: bool,
    ) -> Result<Tracker, BlockingError> {
        let link = self.link;
        self.conn.shared().wait(timeout, |g| {
            if let Some(e) = link_closed(g, link) {
                return Some(Err(e));
            }
            if g.core.context().credit(link) == 0 {
                return None;
            }
            match g.core.context_mut().send(link, message) {
                Ok(t) => {
                    if want_outcome {
                        g.handler().wanted.insert(t);
                    }
                    Some(Ok(t))
                }
                // Not attached on the current transport (reconnecting): wait.
                Err(MessagingError::NotReady(_)) => None,
                Err(e) => Some(Err(e.into())),
            }
        })
    }

    /// The link's credit: messages that can be sent without waiting.
    pub fn credit(&self) -> u32 {
        self.conn.shared().lock().core.context().credit(self.link)
    }

    /// Closes the sender and blocks until the peer detaches it (or the timeout passes).
    pub fn close(self) -> Result<(), BlockingError> {
        close_link(&self.conn, self.link)
    }
}

/// Proton's `BlockingReceiver`: [`receive`](Self::receive) blocks until a message arrives.
/// `Send`; clones share the link and its queue.
#[derive(Clone, Debug)]
pub struct BlockingReceiver {
    conn: BlockingConnection,
    link: LinkHandle,
}

impl BlockingReceiver {
    pub(super) fn new(conn: BlockingConnection, link: LinkHandle) -> Self {
        BlockingReceiver { conn, link }
    }

    /// The next message, waiting at most `timeout` (`None`: until one arrives or the link
    /// closes); `Ok(None)` when the timeout passed first. Settle it with
    /// [`Delivery::accept`] (or reject, release, modify).
    pub fn receive(&self, timeout: Option<Duration>) -> Result<Option<Delivery>, BlockingError> {
        let link = self.link;
        let r = self.conn.shared().wait(timeout, |g| {
            let Some((handle, message)) = g
                .handler()
                .links
                .get_mut(&link)
                .and_then(|l| l.queue.pop_front())
            else {
                return link_closed(g, link).map(Err);
            };
            // Keep the window open, in batches kind to the peer: grant again (up to the
            // window less what waits here) once credit and waiting messages together fill
            // at most half of it, not one flow per message taken.
            let h = g.handler();
            let capacity = h.links.get(&link).map_or(0, |l| l.capacity);
            let want = h.wanted_credit(link).unwrap_or(0);
            let waiting = capacity - want;
            let credit = g.core.context().credit(link);
            if credit + waiting <= capacity / 2 && want > credit {
                // Refused only when the link is gone, which the next call reports.
                let _ = g.core.context_mut().flow(link, want);
            }
            Some(Ok(Delivery {
                conn: self.conn.clone(),
                handle,
                message,
                settled: AtomicBool::new(false),
            }))
        });
        match r {
            Ok(d) => Ok(Some(d)),
            Err(BlockingError::Timeout(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The address of the node the receiver reads from; for a
    /// [dynamic receiver](BlockingConnection::dynamic_receiver), the one the peer assigned.
    pub fn address(&self) -> Option<String> {
        self.conn
            .shared()
            .lock()
            .core
            .context()
            .remote_address(self.link)
    }

    /// Closes the receiver and blocks until the peer detaches it (or the timeout passes).
    pub fn close(self) -> Result<(), BlockingError> {
        close_link(&self.conn, self.link)
    }
}

/// A received message, to settle with [`accept`](Self::accept), [`reject`](Self::reject),
/// [`release`](Self::release) or [`modify`](Self::modify). `Send`: it may be settled on
/// another thread.
#[derive(Debug)]
pub struct Delivery {
    conn: BlockingConnection,
    handle: DeliveryHandle,
    message: ReceivedMessage,
    settled: AtomicBool,
}

impl Delivery {
    /// The message.
    pub fn message(&self) -> &ReceivedMessage {
        &self.message
    }

    /// The message, taking it out of the delivery (settle first).
    pub fn into_message(self) -> ReceivedMessage {
        self.message
    }

    /// Accepts and settles it.
    pub fn accept(&self) -> Result<(), BlockingError> {
        self.settle(Settle::Accept)
    }

    /// Rejects and settles it, with an optional reason.
    pub fn reject(&self, error: Option<AmqpError>) -> Result<(), BlockingError> {
        self.settle(Settle::Reject(error))
    }

    /// Releases and settles it: it may be redelivered to anyone.
    pub fn release(&self) -> Result<(), BlockingError> {
        self.settle(Settle::Release)
    }

    /// Modifies and settles it (Proton's `release(delivered=True)` is `modify(true, false)`).
    pub fn modify(
        &self,
        delivery_failed: bool,
        undeliverable_here: bool,
    ) -> Result<(), BlockingError> {
        self.settle(Settle::Modify {
            delivery_failed,
            undeliverable_here,
        })
    }

    /// True once settled here.
    pub fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    fn settle(&self, how: Settle) -> Result<(), BlockingError> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return Err(BlockingError::AlreadySettled);
        }
        let mut g = self.conn.shared().lock();
        if g.finished {
            return Err(g.handler().closed_error());
        }
        let c = g.core.context_mut();
        let d = self.handle;
        match how {
            Settle::Accept => c.accept(d),
            Settle::Reject(error) => c.reject(d, error),
            Settle::Release => c.release(d),
            Settle::Modify {
                delivery_failed,
                undeliverable_here,
            } => c.modify(d, delivery_failed, undeliverable_here),
        }?;
        Shared::flush(&mut g)
    }
}

/// How a [`Delivery`] is settled.
enum Settle {
    Accept,
    Reject(Option<AmqpError>),
    Release,
    Modify {
        delivery_failed: bool,
        undeliverable_here: bool,
    },
}

/// Why `link` cannot be used, if it cannot: closed (by either side), or its connection is.
fn link_closed(g: &mut Inner, link: LinkHandle) -> Option<BlockingError> {
    let h = g.handler();
    match h.links.get(&link) {
        Some(l) => l.closed.clone(),
        None if h.closed.is_some() => Some(h.closed_error()),
        // Closed here, and forgotten.
        None => Some(BlockingError::LinkClosed {
            remote: false,
            error: None,
        }),
    }
}

fn close_link(conn: &BlockingConnection, link: LinkHandle) -> Result<(), BlockingError> {
    {
        let mut g = conn.shared().lock();
        let Some(l) = g.handler().links.get_mut(&link) else {
            return Ok(());
        };
        if l.closed.is_some() {
            g.handler().links.remove(&link);
            return Ok(());
        }
        l.close_requested = true;
        g.core.context_mut().close_link(link);
    }
    let r = conn.shared().wait(conn.timeout(), |g| {
        let h = g.handler();
        let l = h.links.get(&link)?;
        match &l.closed {
            Some(BlockingError::LinkClosed { remote: false, .. }) => Some(Ok(())),
            Some(e) => Some(Err(e.clone())),
            None => None,
        }
    });
    conn.shared().lock().handler().links.remove(&link);
    r
}
