//! [`Receiver`](super::Receiver) and [`Delivery`](super::Delivery).

use super::*;

// ------------------------------------------------------------------------------------------
// Receiver and Delivery
// ------------------------------------------------------------------------------------------

/// A receiving link. Also a [`Stream`](futures::Stream) of [`Delivery`].
///
/// The guide's simple receive: `recv` each delivery and settle it (a delivery dropped
/// unsettled is accepted, as Proton's `auto_accept`; see [`Receiver::set_auto_accept`]).
///
/// ```
/// use amqp_tokio::Client;
///
/// # use amqp_tokio::{Container, Event, MessagingHandler};
/// # /// An in-process peer on a free loopback port: accepts what it receives, and sends
/// # /// "Hello World!" once on each link it sends on.
/// # #[derive(Default)]
/// # struct Peer { port: Option<tokio::sync::oneshot::Sender<u16>>, sent: bool }
/// # impl MessagingHandler for Peer {
/// #     fn on_start(&mut self, e: &mut Event<'_>) { e.container_mut().listen("127.0.0.1:0").unwrap(); }
/// #     fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
/// #         let acceptor = e.acceptor().unwrap();
/// #         let port = e.container().acceptor_port(acceptor).unwrap();
/// #         let _ = self.port.take().unwrap().send(port);
/// #     }
/// #     fn on_sendable(&mut self, e: &mut Event<'_>) {
/// #         if !self.sent {
/// #             self.sent = true;
/// #             e.send(&amqp_tokio::amqp_proto::message::Message::new("Hello World!")).unwrap();
/// #         }
/// #     }
/// # }
/// # async fn peer() -> String {
/// #     let (tx, rx) = tokio::sync::oneshot::channel();
/// #     let peer = Peer { port: Some(tx), ..Peer::default() };
/// #     tokio::spawn(Container::with_id(peer, "peer").run_async());
/// #     format!("amqp://127.0.0.1:{}", rx.await.unwrap())
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), amqp_tokio::ClientError> {
/// # let url = peer().await;
/// let conn = Client::open(url.as_str()).await?;
/// let mut receiver = conn.open_receiver("examples").await?;
/// let delivery = receiver.recv().await.expect("a message");
/// println!("{}", delivery.message().body_str().unwrap_or(""));
/// delivery.accept()?;
/// conn.close().await
/// # }
/// ```
pub struct Receiver {
    pub(super) link: LinkRef,
    pub(super) auto_accept: bool,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("id", &self.link.id)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// The next delivery; `None` once the link or connection is closed and every delivery
    /// that arrived before has been returned.
    ///
    /// Cancel-safe: a delivery is only taken off the queue by the poll that returns it, so
    /// dropping the future (in `select!`, a timeout) never loses one.
    pub async fn recv(&mut self) -> Option<Delivery> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next delivery if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.take(None).ok().flatten()
    }

    /// Polls for the next delivery (see [`recv`](Self::recv)).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        match self.take(Some(cx)) {
            Ok(d) => Poll::Ready(d),
            Err(()) => Poll::Pending,
        }
    }

    /// `Ok(Some)`: a delivery; `Ok(None)`: closed; `Err`: nothing yet.
    pub(super) fn take(&mut self, cx: Option<&mut Context<'_>>) -> Result<Option<Delivery>, ()> {
        let lh = self.link.id;
        let taken = self.link.shared().update(|st| {
            let open = st.phase != ConnPhase::Closed;
            let State { core, links, .. } = st;
            let Some(l) = links.get_mut(&lh) else {
                return (Ok(None), false);
            };
            if let Some(i) = l.incoming.pop_front() {
                // Consumed enough to top the window up: grant the credit now.
                let flowed = open && l.phase == Phase::Open && top_up(core, lh, l);
                return (Ok(Some(i)), flowed);
            }
            if l.phase == Phase::Closed || !open {
                return (Ok(None), false);
            }
            if let Some(cx) = cx {
                set_waker(&mut l.recv_waker, cx.waker());
            }
            (Err(()), false)
        })?;
        Ok(taken.map(|i| Delivery {
            message: i.message,
            settlement: Settlement {
                handle: i.handle,
                conn: self.link.conn.clone(),
                settled: AtomicBool::new(false),
                auto_accept: self.auto_accept,
            },
        }))
    }

    /// Whether deliveries dropped unsettled are accepted (on by default, as Proton's
    /// `auto_accept`); off, a delivery dropped unsettled stays unsettled at the peer until
    /// the link or connection closes. Applies to deliveries `recv` returns from now on.
    pub fn set_auto_accept(&mut self, on: bool) {
        self.auto_accept = on;
    }

    /// Whether deliveries dropped unsettled are accepted (see
    /// [`set_auto_accept`](Self::set_auto_accept)).
    pub fn auto_accept(&self) -> bool {
        self.auto_accept
    }

    /// Deliveries queued and not yet returned by `recv`.
    pub fn queued(&self) -> usize {
        let st = self.link.shared().lock();
        st.links.get(&self.link.id).map_or(0, |l| l.incoming.len())
    }

    /// Switches to manual credit and sets the link credit to `credit` (replacing what is
    /// left): the peer may send that many more messages. No automatic top-up follows.
    pub fn set_credit(&self, credit: u32) {
        self.set_window(|l| {
            l.prefetch = 0;
            l.manual_credit = Some(credit);
        });
    }

    /// Switches to an automatic credit window of `prefetch` deliveries (`0`: manual credit,
    /// none granted).
    pub fn set_prefetch(&self, prefetch: u32) {
        self.set_window(|l| {
            l.prefetch = prefetch;
            l.manual_credit = None;
        });
    }

    pub(super) fn set_window(&self, f: impl FnOnce(&mut LinkState)) {
        let lh = self.link.id;
        self.link.shared().update(|st| {
            let State { core, links, .. } = st;
            let Some(l) = links.get_mut(&lh) else {
                return ((), false);
            };
            f(l);
            ((), top_up(core, lh, l))
        });
    }

    /// Asks the peer to use up or give up the credit, switching to manual credit; resolves
    /// once it has (messages it sent meanwhile are queued for `recv`). Resolves at once if
    /// there is no credit.
    ///
    /// Cancel safety: the drain still completes if the future is dropped.
    pub async fn drain(&mut self) -> Result<(), ClientError> {
        let lh = self.link.id;
        let shared = self.link.shared();
        let ticket = shared.update(|st| {
            if let Some(e) = st.conn_error() {
                return (Err(e), false);
            }
            let State { core, links, .. } = st;
            let Some(l) = links.get_mut(&lh) else {
                let e = ClientError::closed_here();
                return (Err(e), false);
            };
            if let Some(e) = l.closed_error() {
                return (Err(e), false);
            }
            l.prefetch = 0;
            l.drains_requested += 1;
            if let Some(n) = l.manual_credit.take() {
                // Not attached: nothing to drain (below).
                let _ = core.flow(lh, n);
            }
            // Nothing to drain (or not attached): done at once; the peer would not answer.
            if core.credit(lh) == 0 || core.drain(lh).is_err() {
                l.drains_done = l.drains_requested;
            }
            (Ok(l.drains_requested), true)
        })?;
        poll_fn(|cx| {
            let mut st = shared.lock();
            let conn_err = st.conn_error();
            let Some(l) = st.links.get_mut(&lh) else {
                return Poll::Ready(Err(ClientError::closed_here()));
            };
            if l.drains_done >= ticket {
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = l.closed_error().or(conn_err) {
                return Poll::Ready(Err(e));
            }
            l.waiters.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// The source address the peer attached with: for a dynamic receiver
    /// (`LinkOptions::dynamic()`), the address the peer created (a reply-to address).
    pub fn address(&self) -> Option<String> {
        self.link.address()
    }

    /// Why the link closed, once it has.
    pub fn error(&self) -> Option<ClientError> {
        self.link.error()
    }

    /// Closes the link and waits for the peer's detach. Deliveries queued and never returned
    /// by `recv` are released first (the peer may redeliver them); those returned and not
    /// settled are left to the peer's policy. Cancel safety: the link is closed even if the
    /// future is dropped.
    pub async fn close(self) -> Result<(), ClientError> {
        self.link.close().await
    }
}

impl futures::Stream for Receiver {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.get_mut().poll_recv(cx)
    }
}

/// A received message, to settle with [`accept`](Self::accept), [`reject`](Self::reject),
/// [`release`](Self::release) or [`modify`](Self::modify).
///
/// Settling is synchronous: it hands the disposition to the engine (which batches
/// dispositions into ranges) and wakes the driver to write it; it never waits; it fails only if the delivery is already
/// settled or the connection is closed. A delivery dropped unsettled is accepted, as Proton's
/// `auto_accept` does after `on_message`, unless its receiver's
/// [`set_auto_accept(false)`](Receiver::set_auto_accept) turned that off;
/// [`into_message`](Self::into_message) leaves it unsettled.
pub struct Delivery {
    pub(super) message: ReceivedMessage,
    pub(super) settlement: Settlement,
}

/// The settling half of a [`Delivery`]: accepts on drop when still unsettled and asked to.
pub(super) struct Settlement {
    pub(super) handle: DeliveryHandle,
    pub(super) conn: Arc<ClientRef>,
    pub(super) settled: AtomicBool,
    pub(super) auto_accept: bool,
}

impl Settlement {
    pub(super) fn dispose(&self, state: DeliveryState) -> Result<(), ClientError> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return Err(ClientError::AlreadySettled);
        }
        self.conn.shared.update(|st| {
            if let Some(e) = st.conn_error() {
                return (Err(e), false);
            }
            // A delivery of an earlier transport can no longer be settled (the peer
            // redelivers it): the core refuses it, and there is nothing else to do.
            let _ = st.core.dispose(self.handle, Some(state));
            (Ok(()), true)
        })
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        if self.auto_accept && !self.settled.load(Ordering::Acquire) {
            // A closed connection has nothing left to accept: the error is moot.
            let _ = self.dispose(DeliveryState::accepted());
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("handle", &self.settlement.handle)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// The message; its sections decode on first access.
    pub fn message(&self) -> &ReceivedMessage {
        &self.message
    }

    /// The message, leaving the delivery unsettled (unless settled before), whatever the
    /// receiver's auto-accept setting. To change it before forwarding it, take an owned copy
    /// with [`ReceivedMessage::into_message`].
    pub fn into_message(mut self) -> ReceivedMessage {
        self.settlement.auto_accept = false;
        self.message
    }

    pub(super) fn dispose(&self, state: DeliveryState) -> Result<(), ClientError> {
        self.settlement.dispose(state)
    }

    /// Accepts and settles it.
    pub fn accept(&self) -> Result<(), ClientError> {
        self.dispose(DeliveryState::accepted())
    }

    /// Rejects and settles it (invalid; not to be redelivered), with an optional reason.
    pub fn reject(&self, error: Option<AmqpError>) -> Result<(), ClientError> {
        self.dispose(DeliveryState::Rejected(Rejected { error }))
    }

    /// Releases and settles it (not processed; may be redelivered to anyone).
    pub fn release(&self) -> Result<(), ClientError> {
        self.dispose(DeliveryState::released())
    }

    /// Modifies and settles it: `delivery_failed` counts a failed attempt,
    /// `undeliverable_here` asks not to redeliver it on this link.
    pub fn modify(
        &self,
        delivery_failed: bool,
        undeliverable_here: bool,
    ) -> Result<(), ClientError> {
        self.dispose(DeliveryState::Modified(Modified {
            delivery_failed: Some(delivery_failed),
            undeliverable_here: Some(undeliverable_here),
            message_annotations: None,
        }))
    }

    /// True once settled through this handle.
    pub fn is_settled(&self) -> bool {
        self.settlement.settled.load(Ordering::Acquire)
    }
}
