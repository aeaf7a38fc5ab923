//! The async API (`Client`) on every runtime, against a container peer on loopback:
//! pipelined sends with outcomes and a receive, a reconnect after the peer drops the
//! connection (links re-attached, sends resolved accepted or in doubt), and a refused
//! connection without reconnect reported by kind.

use super::*;

use amqp_adapter::{BlockOn, Client, ClientError, Outcome, Runtime};

/// Accepts what it receives; sends `to_send` numbered messages on each link it sends on;
/// with `kill_after`, drops the first connection (amqp:connection:forced) after that many
/// messages, keeping its listener; stops after `closes` connections have closed.
struct Peer {
    port_tx: Option<mpsc::Sender<u16>>,
    to_send: usize,
    sent: usize,
    kill_after: Option<usize>,
    received: Arc<AtomicUsize>,
    closes: usize,
}

impl Peer {
    fn new(port_tx: mpsc::Sender<u16>, to_send: usize, kill_after: Option<usize>) -> Self {
        Peer {
            port_tx: Some(port_tx),
            to_send,
            sent: 0,
            kill_after,
            received: Arc::default(),
            closes: if kill_after.is_some() { 2 } else { 1 },
        }
    }
}

impl MessagingHandler for Peer {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:0").expect("listen");
        e.container_mut().schedule(SAFETY);
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().unwrap();
        let port = e.container().acceptor_port(a).unwrap();
        if let Some(tx) = self.port_tx.take() {
            let _ = tx.send(port);
        }
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        while self.sent < self.to_send && e.credit() > 0 {
            e.send(&Message::new(self.sent.to_string())).unwrap();
            self.sent += 1;
        }
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        let n = self.received.fetch_add(1, Ordering::Relaxed) + 1;
        if self.kill_after == Some(n) {
            let c = e.connection().unwrap();
            let err = Error::new(condition::CONNECTION_FORCED, "dropping you");
            e.container_mut().close_connection(c, Some(err));
        }
    }
    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        self.closes -= 1;
        if self.closes == 0 {
            e.container_mut().stop();
        }
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        e.container_mut().stop();
    }
}

/// Runs a peer on its own thread; returns its URL, its thread and its received counter.
fn peer<R: Runtime + BlockOn + Default>(
    to_send: usize,
    kill_after: Option<usize>,
) -> (String, thread::JoinHandle<Peer>, Arc<AtomicUsize>) {
    let (tx, rx) = mpsc::channel();
    let p = Peer::new(tx, to_send, kill_after);
    let received = p.received.clone();
    let h = thread::spawn(move || amqp_adapter::Container::<Peer, R>::with_id(p, "peer").run());
    let port = rx.recv_timeout(SAFETY).expect("the peer listens");
    (format!("amqp://127.0.0.1:{port}"), h, received)
}

/// Runs `f` on runtime `R` in its own thread, failing the test after `SAFETY`.
fn run_async<R, F>(f: F)
where
    R: Runtime + BlockOn + Default,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let h = thread::spawn(move || R::default().block_on(f));
    join_within(h, SAFETY, "the async client");
}

pub(crate) fn round_trip<R: Runtime + BlockOn + Default>() {
    let (url, h, received) = peer::<R>(10, None);
    run_async::<R, _>(async move {
        let conn = Client::<R>::open(url.as_str()).await.expect("open");
        let sender = conn.open_sender("q").await.expect("sender");
        let outcomes: Vec<_> = (0..500)
            .map(|i| {
                sender
                    .send_nowait(Message::new(i.to_string()))
                    .expect("room")
            })
            .collect();
        for o in outcomes {
            assert_eq!(o.await, Ok(Outcome::Accepted));
        }
        let mut receiver = conn.open_receiver("q").await.expect("receiver");
        for i in 0..10 {
            let d = receiver.recv().await.expect("a delivery");
            assert_eq!(d.message().body_str(), Some(i.to_string().as_str()));
            d.accept().expect("accept");
        }
        conn.close().await.expect("clean close");
    });
    join_within(h, SAFETY, "the peer");
    assert_eq!(received.load(Ordering::Relaxed), 500);
}

pub(crate) fn reconnect<R: Runtime + BlockOn + Default>() {
    let (url, h, received) = peer::<R>(0, Some(50));
    run_async::<R, _>(async move {
        let conn = Client::<R>::open(url.as_str()).await.expect("open");
        let sender = conn.open_sender("q").await.expect("sender");
        let (mut accepted, mut in_doubt) = (0, 0);
        for i in 0..200 {
            match sender.send(Message::new(i.to_string())).await {
                Ok(Outcome::Accepted) => accepted += 1,
                Ok(Outcome::InDoubt) => in_doubt += 1,
                other => panic!("message {i}: {other:?}"),
            }
        }
        assert!(accepted >= 199, "{accepted} accepted, {in_doubt} in doubt");
        assert!(!conn.is_closed());
        conn.close().await.expect("clean close");
    });
    join_within(h, SAFETY, "the peer");
    assert!(received.load(Ordering::Relaxed) >= 199);
}

pub(crate) fn refused<R: Runtime + BlockOn + Default>() {
    let url = format!("amqp://127.0.0.1:{}", closed_port());
    run_async::<R, _>(async move {
        let opts = ConnectOptions::new().url(url.as_str()).reconnect(false);
        match Client::<R>::open(opts).await {
            Err(ClientError::Transport(t)) => assert_eq!(t.kind(), TransportErrorKind::Refused),
            other => panic!("expected a refused transport, got {other:?}"),
        }
    });
}
