//! [`Sender`](super::Sender) and its [`SendFuture`](super::SendFuture).

use super::*;

// ------------------------------------------------------------------------------------------
// Sender
// ------------------------------------------------------------------------------------------

/// A sending link. Methods take `&self`: share it (`Arc<Sender>`) to send from several tasks.
///
/// Dropping it closes the link (after messages that already have credit are sent); messages
/// still waiting for credit then fail with [`ClientError::LinkClosed`], and sent messages whose
/// outcome had not arrived resolve to [`Outcome::InDoubt`].
///
/// The guide's simple send, pipelined: queue many messages without waiting, then collect
/// the outcomes.
///
/// ```
/// use amqp_tokio::{Client, Outcome};
/// use amqp_tokio::amqp_proto::message::Message;
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
/// let sender = conn.open_sender("examples").await?;
/// let outcomes: Vec<_> = (0..5)
///     .map(|i| sender.send_nowait(Message::new(format!("message {i}"))).expect("room"))
///     .collect();
/// for outcome in outcomes {
///     assert_eq!(outcome.await?, Outcome::Accepted);
/// }
/// conn.close().await
/// # }
/// ```
pub struct Sender {
    pub(super) link: LinkRef,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("id", &self.link.id)
            .finish_non_exhaustive()
    }
}

pub(super) enum Room {
    Credit,
    Buffer,
}

impl Sender {
    pub(super) fn poll_room(
        &self,
        cx: &mut Context<'_>,
        room: Room,
    ) -> Poll<Result<(), ClientError>> {
        let mut st = self.link.shared().lock();
        if let Some(e) = st.conn_error() {
            return Poll::Ready(Err(e));
        }
        let credit = st.core.credit(self.link.id);
        let Some(l) = st.links.get_mut(&self.link.id) else {
            return Poll::Ready(Err(ClientError::closed_here()));
        };
        if let Some(e) = l.closed_error() {
            return Poll::Ready(Err(e));
        }
        let ok = match room {
            Room::Credit => l.has_credit_room(credit),
            Room::Buffer => l.has_buffer_room(credit),
        };
        if ok {
            return Poll::Ready(Ok(()));
        }
        l.waiters.register(cx.waker());
        Poll::Pending
    }

    /// Sends a message that has room (straight to the core when the link has credit and
    /// nothing waits before it; queued for credit otherwise); returns its outcome future.
    pub(super) fn enqueue(&self, msg: Message, room: Room) -> Result<SendFuture, TrySendError> {
        let lh = self.link.id;
        let ticket = self.link.shared().update(|st| {
            if let Some(e) = st.conn_error() {
                return (Err(TrySendError::Closed(Box::new(msg), e)), false);
            }
            let credit = st.core.credit(lh);
            let Some(l) = st.links.get_mut(&lh) else {
                let e = ClientError::closed_here();
                return (Err(TrySendError::Closed(Box::new(msg), e)), false);
            };
            if let Some(e) = l.closed_error() {
                return (Err(TrySendError::Closed(Box::new(msg), e)), false);
            }
            let ok = match room {
                Room::Credit => l.has_credit_room(credit),
                Room::Buffer => l.has_buffer_room(credit),
            };
            if !ok {
                return (Err(TrySendError::Full(Box::new(msg))), false);
            }
            let (direct, presettled) = (l.unsent.is_empty() && credit > 0, l.presettled);
            if !direct {
                let ticket = st.ticket(Slot::Pending(None));
                if let Some(l) = st.links.get_mut(&lh) {
                    l.unsent.push_back((msg, ticket));
                }
                return (Ok(ticket), false);
            }
            let r = st.core.send(lh, &msg);
            let ticket = st.ticket(Slot::Pending(None));
            st.sent(ticket, presettled, r);
            (Ok(ticket), true)
        })?;
        Ok(SendFuture {
            conn: self.link.conn.clone(),
            ticket,
            done: false,
        })
    }

    /// Sends a message and waits for its outcome.
    ///
    /// Waits first while the link has no credit for it (so memory is bounded by the peer's
    /// credit), then queues it and waits for the peer's disposition.
    ///
    /// Cancel safety: dropped while waiting for credit, the message is dropped and not sent;
    /// dropped once queued, the message is still sent (the outcome is discarded).
    pub async fn send(&self, message: Message) -> Result<Outcome, ClientError> {
        let mut message = message;
        loop {
            poll_fn(|cx| self.poll_room(cx, Room::Credit)).await?;
            match self.enqueue(message, Room::Credit) {
                Ok(f) => return f.await,
                Err(TrySendError::Closed(_, e)) => return Err(e),
                // Another task took the room in between: wait again.
                Err(TrySendError::Full(m)) => message = *m,
            }
        }
    }

    /// Queues a message without waiting and returns a future of its outcome, so many sends
    /// can be in flight (pipelining): `let f = sender.send_nowait(msg)?; … f.await`.
    ///
    /// The message is queued if fewer than `credit + send_buffer` messages wait to go out
    /// (see [`set_send_buffer`](Self::set_send_buffer)); those without credit yet go out, in
    /// order, as the peer grants it — the returned future covers that wait too. Otherwise
    /// the message comes back in [`TrySendError::Full`]: wait with [`ready`](Self::ready)
    /// and retry. A closed link or connection gives [`TrySendError::Closed`].
    ///
    /// Dropping the returned [`SendFuture`] does not cancel the send.
    pub fn send_nowait(&self, message: Message) -> Result<SendFuture, TrySendError> {
        self.enqueue(message, Room::Buffer)
    }

    /// Waits until [`send_nowait`](Self::send_nowait) would queue a message (or the link
    /// closes: the error). Cancel-safe.
    pub async fn ready(&self) -> Result<(), ClientError> {
        poll_fn(|cx| self.poll_room(cx, Room::Buffer)).await
    }

    /// Credit not yet used by queued messages.
    pub fn credit(&self) -> u32 {
        let st = self.link.shared().lock();
        let credit = st.core.credit(self.link.id);
        st.links.get(&self.link.id).map_or(0, |l| {
            credit.saturating_sub(l.unsent.len().min(u32::MAX as usize) as u32)
        })
    }

    /// Messages queued and not yet handed to the engine (waiting for credit).
    pub fn queued(&self) -> usize {
        let st = self.link.shared().lock();
        st.links.get(&self.link.id).map_or(0, |l| l.unsent.len())
    }

    /// How many messages [`send_nowait`](Self::send_nowait) may queue beyond the credit
    /// (default [`DEFAULT_SEND_BUFFER`]; `0`: only as many as the credit covers).
    pub fn set_send_buffer(&self, messages: usize) {
        let mut st = self.link.shared().lock();
        let credit = st.core.credit(self.link.id);
        if let Some(l) = st.links.get_mut(&self.link.id) {
            l.send_buffer = messages;
            if l.has_buffer_room(credit) {
                l.waiters.wake_all();
            }
        }
    }

    /// The target address the peer attached with (for a dynamic target, the one it assigned).
    pub fn address(&self) -> Option<String> {
        self.link.address()
    }

    /// Why the link closed, once it has.
    pub fn error(&self) -> Option<ClientError> {
        self.link.error()
    }

    /// Closes the link and waits for the peer's detach. Messages still queued for credit
    /// fail with [`ClientError::LinkClosed`]; sent ones without an outcome resolve to
    /// [`Outcome::InDoubt`]. Cancel safety: the link is closed even if the future is dropped.
    pub async fn close(self) -> Result<(), ClientError> {
        self.link.close().await
    }
}

/// The outcome of a message queued by [`Sender::send_nowait`] or [`Sender::send`].
///
/// Dropping it does not cancel the send: the message still goes out and its outcome is
/// discarded.
#[must_use = "the outcome is discarded (the message is sent anyway)"]
pub struct SendFuture {
    pub(super) conn: Arc<ClientRef>,
    pub(super) ticket: u64,
    pub(super) done: bool,
}

impl fmt::Debug for SendFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFuture")
            .field("ticket", &self.ticket)
            .field("done", &self.done)
            .finish()
    }
}

impl Future for SendFuture {
    type Output = Result<Outcome, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(ClientError::AlreadySettled));
        }
        let mut st = this.conn.shared.lock();
        match st.outcomes.get_mut(&this.ticket) {
            Some(Slot::Pending(w)) => {
                set_waker(w, cx.waker());
                Poll::Pending
            }
            Some(Slot::Done(_)) => {
                this.done = true;
                match st.outcomes.remove(&this.ticket) {
                    Some(Slot::Done(r)) => Poll::Ready(r),
                    _ => Poll::Ready(Ok(Outcome::InDoubt)),
                }
            }
            _ => {
                this.done = true;
                Poll::Ready(Ok(Outcome::InDoubt))
            }
        }
    }
}

impl Drop for SendFuture {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.conn.shared.lock();
        match st.outcomes.get_mut(&self.ticket) {
            Some(s @ Slot::Pending(_)) => *s = Slot::Detached,
            Some(Slot::Done(_)) => {
                st.outcomes.remove(&self.ticket);
            }
            _ => {}
        }
    }
}
