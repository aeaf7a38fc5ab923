//! The async API (`amqp_tokio::Client`) end to end over loopback TCP, against an in-test
//! handler-based relay: it forwards each message to a receiver of the same address and the
//! receiver's outcome back to the sender, so outcomes chosen by an async receiver reach the
//! async sender.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use amqp_tokio::amqp_proto::definitions::{condition, Error as AmqpError};
use amqp_tokio::amqp_proto::message::{Message, ReceivedMessage};
use amqp_tokio::amqp_proto::messaging::{DeliveryState, Source, TargetKind};
use amqp_tokio::{Client, Container};
use amqp_tokio::{ClientError as Error, Outcome, Receiver, Sender, TrySendError};
use amqp_tokio::{
    ConnectOptions, ConnectionHandle, ContainerContext, DeliveryHandle, Event, HandlerOptions,
    LinkHandle, LinkOption, LinkOptions, MessagingHandler, Tracker, TransportErrorKind, Url,
};
use tokio::sync::oneshot;

// ------------------------------------------------------------------------------------------
// The relay server (Proton handler API)
// ------------------------------------------------------------------------------------------

/// Credit the relay grants each incoming link.
const WINDOW: u32 = 500;

#[derive(Default)]
struct Queue {
    held: VecDeque<(ReceivedMessage, DeliveryHandle)>,
    consumers: Vec<LinkHandle>,
    next: usize,
}

/// Addresses: any name is a queue; `dyn-N` are dynamic ones; `refuse` refuses links;
/// `nocredit` never gets credit; `close-connection` closes the connection with an error;
/// `force` closes it with `amqp:connection:forced` (the client reconnects).
#[derive(Default)]
struct Relay {
    port: Option<oneshot::Sender<u16>>,
    queues: HashMap<String, Queue>,
    inbound: HashMap<LinkHandle, String>,
    outbound: HashMap<LinkHandle, String>,
    forwarded: HashMap<Tracker, DeliveryHandle>,
    dyn_seq: u32,
    live: HashSet<ConnectionHandle>,
    connections: Arc<AtomicUsize>,
}

impl Relay {
    fn dispatch(&mut self, addr: &str, r: &mut ContainerContext) {
        let Some(q) = self.queues.get_mut(addr) else {
            return;
        };
        while !q.held.is_empty() {
            let n = q.consumers.len();
            let mut chosen = None;
            for i in 0..n {
                let l = q.consumers[(q.next + i) % n];
                if r.credit(l) > 0 {
                    chosen = Some(l);
                    q.next = (q.next + i + 1) % n;
                    break;
                }
            }
            let Some(l) = chosen else { break };
            let Some((m, d)) = q.held.pop_front() else {
                break;
            };
            match r.send(l, &m) {
                Ok(t) => {
                    self.forwarded.insert(t, d);
                }
                Err(_) => {
                    q.held.push_front((m, d));
                    break;
                }
            }
        }
    }

    fn forget_connection(&mut self, c: ConnectionHandle) {
        self.live.remove(&c);
        self.connections.store(self.live.len(), Ordering::SeqCst);
        for q in self.queues.values_mut() {
            q.consumers.retain(|l| l.connection() != c);
            q.held.retain(|(_, d)| d.link().connection() != c);
        }
        self.inbound.retain(|l, _| l.connection() != c);
        self.outbound.retain(|l, _| l.connection() != c);
    }
}

impl MessagingHandler for Relay {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: 0,
            auto_accept: false,
            auto_settle: true,
        }
    }

    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:0").unwrap();
    }

    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().unwrap();
        let port = e.container().acceptor_port(a).unwrap();
        if let Some(tx) = self.port.take() {
            let _ = tx.send(port);
        }
    }

    fn on_connection_opened(&mut self, e: &mut Event<'_>) {
        self.live.insert(e.connection().unwrap());
        self.connections.store(self.live.len(), Ordering::SeqCst);
    }

    fn on_link_opening(&mut self, e: &mut Event<'_>) {
        let link = e.link().unwrap();
        let r = e.container_mut();
        let is_sender = r.is_sender(link);
        let (addr, dynamic) = {
            let a = r.remote_attach(link).unwrap();
            if is_sender {
                let s = a.source.as_ref();
                (
                    s.and_then(|s| s.address.as_deref()).map(str::to_owned),
                    s.and_then(|s| s.dynamic).unwrap_or(false),
                )
            } else {
                let t = match a.target.as_ref() {
                    Some(TargetKind::Target(t)) => t.address.as_deref().map(str::to_owned),
                    _ => None,
                };
                (t, false)
            }
        };
        let addr = if dynamic {
            self.dyn_seq += 1;
            let a = format!("dyn-{}", self.dyn_seq);
            r.link_config_mut(link).unwrap().source = Some(Source {
                address: Some(a.as_str().into()),
                dynamic: Some(true),
                ..Source::default()
            });
            a
        } else {
            addr.unwrap_or_default()
        };
        if addr == "refuse" {
            r.close_link(link);
            return;
        }
        if is_sender {
            self.outbound.insert(link, addr.clone());
            self.queues.entry(addr).or_default().consumers.push(link);
        } else {
            self.inbound.insert(link, addr);
        }
    }

    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        let link = e.link().unwrap();
        if let Some(addr) = self.inbound.get(&link) {
            if addr != "nocredit" {
                e.container_mut().flow(link, WINDOW).unwrap();
            }
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let link = e.link().unwrap();
        let d = e.delivery().unwrap();
        let m = e.take_message().unwrap();
        let Some(addr) = self.inbound.get(&link).cloned() else {
            return;
        };
        let conn = link.connection();
        match addr.as_str() {
            "close-connection" => {
                let err = AmqpError::new("test:closed", "closed by the relay");
                e.container_mut().close_connection(conn, Some(err));
                return;
            }
            "force" => {
                let err = AmqpError::new(condition::CONNECTION_FORCED, "reconnect, please");
                e.container_mut().close_connection(conn, Some(err));
                return;
            }
            _ => {}
        }
        self.queues
            .entry(addr.clone())
            .or_default()
            .held
            .push_back((m, d));
        let r = e.container_mut();
        if r.credit(link) <= WINDOW / 2 {
            r.flow(link, WINDOW).unwrap();
        }
        self.dispatch(&addr, r);
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        let link = e.link().unwrap();
        if let Some(addr) = self.outbound.get(&link).cloned() {
            self.dispatch(&addr, e.container_mut());
        }
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        if let Some(d) = e.tracker().and_then(|t| self.forwarded.remove(&t)) {
            let _ = e.container_mut().accept(d);
        }
    }

    fn on_rejected(&mut self, e: &mut Event<'_>) {
        if let Some(d) = e.tracker().and_then(|t| self.forwarded.remove(&t)) {
            let err = e.error().cloned();
            let _ = e.container_mut().reject(d, err);
        }
    }

    fn on_released(&mut self, e: &mut Event<'_>) {
        if let Some(d) = e.tracker().and_then(|t| self.forwarded.remove(&t)) {
            let _ = match e.remote_state() {
                Some(DeliveryState::Modified(m)) => {
                    let (f, u) = (
                        m.delivery_failed.unwrap_or(false),
                        m.undeliverable_here.unwrap_or(false),
                    );
                    e.container_mut().modify(d, f, u)
                }
                _ => e.container_mut().release(d),
            };
        }
    }

    fn on_link_closed(&mut self, e: &mut Event<'_>) {
        let link = e.link().unwrap();
        self.inbound.remove(&link);
        if let Some(addr) = self.outbound.remove(&link) {
            if let Some(q) = self.queues.get_mut(&addr) {
                q.consumers.retain(|l| *l != link);
            }
        }
    }

    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        if let Some(c) = e.connection() {
            self.forget_connection(c);
        }
    }

    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        if let Some(c) = e.connection() {
            self.forget_connection(c);
        }
    }
}

/// Starts a relay on the test's runtime; returns its URL.
async fn relay() -> String {
    relay_counting().await.0
}

/// Starts a relay; returns its URL and its count of open connections.
async fn relay_counting() -> (String, Arc<AtomicUsize>) {
    let (tx, rx) = oneshot::channel();
    let connections = Arc::new(AtomicUsize::new(0));
    let relay = Relay {
        port: Some(tx),
        connections: connections.clone(),
        ..Relay::default()
    };
    tokio::spawn(Container::with_id(relay, "relay").run_async());
    let port = rx.await.unwrap();
    (format!("amqp://127.0.0.1:{port}"), connections)
}

/// Every test is bounded.
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test timed out")
}

fn numbered(i: usize) -> Message {
    Message::new(format!("m{i}"))
}

fn number(m: &ReceivedMessage) -> usize {
    m.body_str().unwrap()[1..].parse().unwrap()
}

/// Sends `m` and receives it (accepting it) at once; returns the outcome and the body.
async fn round_trip(sender: &Sender, receiver: &mut Receiver, m: Message) -> (Outcome, String) {
    let (outcome, body) = tokio::join!(sender.send(m), async {
        let d = receiver.recv().await.expect("a delivery");
        d.accept().unwrap();
        d.message().body_str().unwrap().to_string()
    });
    (outcome.unwrap(), body)
}

/// Polls a future once and drops it.
async fn poll_once_and_drop<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    poll_fn(|cx| {
        Poll::Ready(match f.as_mut().poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

// ------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_world_send_recv_accept() {
    bounded(async {
        let url = relay().await;
        let conn = Client::open(url.as_str()).await.unwrap();
        let mut receiver = conn.open_receiver("examples").await.unwrap();
        let sender = conn.open_sender("examples").await.unwrap();
        let (outcome, delivery) = tokio::join!(sender.send(Message::new("Hello World!")), async {
            let d = receiver.recv().await.unwrap();
            assert_eq!(d.message().body_str(), Some("Hello World!"));
            d.accept().unwrap();
            assert!(matches!(d.accept(), Err(Error::AlreadySettled)));
            d
        });
        assert_eq!(outcome.unwrap(), Outcome::Accepted);
        assert!(delivery.is_settled());
        sender.close().await.unwrap();
        receiver.close().await.unwrap();
        conn.close().await.unwrap();
        assert!(conn.is_closed());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_once_sends_resolve_settled() {
    bounded(async {
        let url = relay().await;
        let conn = Client::open(url.as_str()).await.unwrap();
        let mut receiver = conn.open_receiver("presettled").await.unwrap();
        let sender = conn
            .open_sender(LinkOptions::address("presettled").with(LinkOption::AtMostOnce))
            .await
            .unwrap();
        for i in 0..3 {
            assert_eq!(sender.send(numbered(i)).await.unwrap(), Outcome::Settled);
        }
        for i in 0..3 {
            let d = receiver.recv().await.unwrap();
            assert_eq!(number(d.message()), i);
            d.accept().unwrap();
        }
        conn.close().await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_outcomes_reach_the_sender() {
    bounded(async {
        let url = relay().await;
        // Sender and receiver on different connections: both ends are the async API.
        let c1 = Client::open(url.as_str()).await.unwrap();
        let c2 = Client::open(url.as_str()).await.unwrap();
        let mut receiver = c2.open_receiver("outcomes").await.unwrap();
        let sender = c1.open_sender("outcomes").await.unwrap();
        let futures: Vec<_> = (0..4)
            .map(|i| sender.send_nowait(numbered(i)).unwrap())
            .collect();
        for i in 0..4 {
            let d = receiver.recv().await.unwrap();
            assert_eq!(number(d.message()), i);
            match i {
                0 => d.accept().unwrap(),
                1 => d
                    .reject(Some(AmqpError::new("test:bad-message", "no thanks")))
                    .unwrap(),
                2 => d.release().unwrap(),
                _ => d.modify(true, true).unwrap(),
            }
        }
        let mut outcomes = Vec::new();
        for f in futures {
            outcomes.push(f.await.unwrap());
        }
        assert_eq!(outcomes[0], Outcome::Accepted);
        match &outcomes[1] {
            Outcome::Rejected(Some(e)) => {
                assert_eq!(e.condition.as_str(), "test:bad-message");
                assert_eq!(e.description.as_deref(), Some("no thanks"));
            }
            o => panic!("expected rejected, got {o:?}"),
        }
        assert_eq!(outcomes[2], Outcome::Released);
        match &outcomes[3] {
            Outcome::Modified(m) => {
                assert_eq!(m.delivery_failed, Some(true));
                assert_eq!(m.undeliverable_here, Some(true));
            }
            o => panic!("expected modified, got {o:?}"),
        }
        c1.close().await.unwrap();
        c2.close().await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pipelined_sends_with_outcomes() {
    const N: usize = 10_000;
    bounded(async {
        let url = relay().await;
        let c1 = Client::open(url.as_str()).await.unwrap();
        let c2 = Client::open(url.as_str()).await.unwrap();
        let mut receiver = c2
            .open_receiver(LinkOptions {
                prefetch: Some(1000),
                ..LinkOptions::address("pipeline")
            })
            .await
            .unwrap();
        let sender = c1.open_sender("pipeline").await.unwrap();
        let start = Instant::now();
        let consumer = tokio::spawn(async move {
            for i in 0..N {
                let d = receiver.recv().await.unwrap();
                assert_eq!(number(d.message()), i, "in order");
                d.accept().unwrap();
            }
            receiver
        });
        let mut pending = VecDeque::new();
        let mut fulls = 0usize;
        for i in 0..N {
            let mut m = numbered(i);
            loop {
                match sender.send_nowait(m) {
                    Ok(f) => {
                        pending.push_back(f);
                        break;
                    }
                    Err(TrySendError::Full(back)) => {
                        fulls += 1;
                        m = *back;
                        sender.ready().await.unwrap();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        let queued_in = start.elapsed();
        for f in pending {
            assert_eq!(f.await.unwrap(), Outcome::Accepted);
        }
        let elapsed = start.elapsed();
        let receiver = consumer.await.unwrap();
        assert_eq!(receiver.queued(), 0);
        eprintln!(
            "{N} messages pipelined through the relay, all accepted: {elapsed:?} \
             ({:.0} msg/s; queued in {queued_in:?}, send buffer full {fulls} times)",
            N as f64 / elapsed.as_secs_f64()
        );
        c1.close().await.unwrap();
        c2.close().await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_receiver_as_reply_queue() {
    bounded(async {
        let url = relay().await;
        let conn = Client::open(url.as_str()).await.unwrap();
        let mut replies = conn.open_receiver(LinkOptions::dynamic()).await.unwrap();
        let reply_to = replies.address().expect("the relay assigns an address");
        assert!(reply_to.starts_with("dyn-"), "{reply_to}");
        // A "server" on another connection answers requests on `requests`.
        let server_conn = Client::open(url.as_str()).await.unwrap();
        let mut requests = server_conn.open_receiver("requests").await.unwrap();
        let server = tokio::spawn(async move {
            let d = requests.recv().await.unwrap();
            let to = d.message().reply_to().unwrap().to_string();
            let body = d.message().body_str().unwrap().to_uppercase();
            d.accept().unwrap();
            let out = server_conn.open_sender(to.as_str()).await.unwrap();
            let mut reply = Message::new(body);
            reply.set_correlation_id("req-1");
            assert_eq!(out.send(reply).await.unwrap(), Outcome::Accepted);
            server_conn.close().await.unwrap();
        });
        let sender = conn.open_sender("requests").await.unwrap();
        let mut req = Message::new("ping");
        req.set_reply_to(reply_to.as_str());
        assert_eq!(sender.send(req).await.unwrap(), Outcome::Accepted);
        let d = replies.recv().await.unwrap();
        assert_eq!(d.message().body_str(), Some("PING"));
        d.accept().unwrap();
        server.await.unwrap();
        conn.close().await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_recv_never_loses_a_delivery() {
    const N: usize = 2_000;
    bounded(async {
        let url = relay().await;
        let c1 = Client::open(url.as_str()).await.unwrap();
        let c2 = Client::open(url.as_str()).await.unwrap();
        let mut receiver = c2
            .open_receiver(LinkOptions {
                prefetch: Some(50),
                ..LinkOptions::address("cancel-recv")
            })
            .await
            .unwrap();
        let sender = c1.open_sender("cancel-recv").await.unwrap();
        let producer = tokio::spawn(async move {
            let mut futures = Vec::new();
            for i in 0..N {
                sender.ready().await.unwrap();
                futures.push(sender.send_nowait(numbered(i)).unwrap());
                if i % 16 == 0 {
                    // Bursts with gaps, so receives are pending (and cancelled) often.
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            }
            for f in futures {
                assert_eq!(f.await.unwrap(), Outcome::Accepted);
            }
            sender
        });
        let (mut next, mut timer_cancels, mut poll_cancels) = (0usize, 0usize, 0usize);
        while next < N {
            // Half the time: first a single poll, then the future is dropped.
            if next % 2 == 0 {
                match poll_once_and_drop(receiver.recv()).await {
                    Some(d) => {
                        let d = d.unwrap();
                        assert_eq!(number(d.message()), next);
                        d.accept().unwrap();
                        next += 1;
                        continue;
                    }
                    None => poll_cancels += 1,
                }
            }
            // Then a receive raced against a timer.
            tokio::select! {
                d = receiver.recv() => {
                    let d = d.unwrap();
                    assert_eq!(number(d.message()), next, "no delivery lost or reordered");
                    d.accept().unwrap();
                    next += 1;
                }
                _ = tokio::time::sleep(Duration::from_micros(100)) => timer_cancels += 1,
            }
        }
        producer.await.unwrap();
        eprintln!(
            "{N} deliveries, recv cancelled {timer_cancels} times by a timer and \
             {poll_cancels} times after one poll"
        );
        assert!(
            timer_cancels + poll_cancels > 0,
            "cancellation was exercised"
        );
        // Nothing extra is queued either.
        assert!(receiver.try_recv().is_none());
        c1.close().await.unwrap();
        c2.close().await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_send_futures_still_send() {
    const N: usize = 200;
    bounded(async {
        let url = relay().await;
        let conn = Client::open(url.as_str()).await.unwrap();
        let mut receiver = conn.open_receiver("cancel-send").await.unwrap();
        let sender = conn.open_sender("cancel-send").await.unwrap();
        for i in 0..N {
            if i % 2 == 0 {
                // The outcome future of a queued message, dropped at once.
                sender.ready().await.unwrap();
                drop(sender.send_nowait(numbered(i)).unwrap());
            } else {
                // `send` polled once (it queues: there is credit), then dropped.
                while sender.credit() == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                assert!(poll_once_and_drop(sender.send(numbered(i))).await.is_none());
            }
        }
        for i in 0..N {
            let d = receiver.recv().await.unwrap();
            assert_eq!(number(d.message()), i);
            d.accept().unwrap();
        }
        // The link still works, outcomes included.
        let (o, body) = round_trip(&sender, &mut receiver, numbered(N)).await;
        assert_eq!((o, body), (Outcome::Accepted, format!("m{N}")));
        conn.close().await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_resolves_in_flight_and_queued_sends() {
    bounded(async {
        let url = relay().await;
        let conn = Client::open(url.as_str()).await.unwrap();
        let mut receiver = conn.open_receiver("nobody-reads-this").await.unwrap();
        // Held by the relay (no consumer of `hold`): sent, never settled.
        let held = conn.open_sender("hold").await.unwrap();
        let in_flight: Vec<_> = (0..10)
            .map(|i| held.send_nowait(numbered(i)).unwrap())
            .collect();
        // No credit on `nocredit`: they stay queued here.
        let stuck = conn.open_sender("nocredit").await.unwrap();
        let queued: Vec<_> = (0..5)
            .map(|i| stuck.send_nowait(numbered(i)).unwrap())
            .collect();
        assert_eq!(stuck.credit(), 0);
        // `send` waits for credit; cancelled by the timeout, its message is dropped.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), stuck.send(numbered(99)))
                .await
                .is_err()
        );
        while held.queued() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        conn.close().await.unwrap();
        for f in in_flight {
            assert_eq!(f.await.unwrap(), Outcome::InDoubt);
        }
        for f in queued {
            assert!(
                matches!(f.await, Err(Error::ConnectionClosed { remote: false, .. })),
                "queued sends fail with the close"
            );
        }
        assert!(receiver.recv().await.is_none());
        assert!(matches!(
            held.send_nowait(numbered(0)),
            Err(TrySendError::Closed(_, Error::ConnectionClosed { .. }))
        ));
        assert!(matches!(
            held.send(numbered(0)).await,
            Err(Error::ConnectionClosed { .. })
        ));
        assert!(conn.open_sender("x").await.is_err());
        // Closing again is fine.
        conn.close().await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_close_and_refused_links_are_errors() {
    bounded(async {
        let url = relay().await;
        let conn = Client::open(url.as_str()).await.unwrap();
        match conn.open_sender("refuse").await {
            Err(Error::LinkClosed { remote: true, .. }) => {}
            other => panic!("expected a refused link, got {other:?}"),
        }
        match conn.open_receiver("refuse").await {
            Err(Error::LinkClosed { remote: true, .. }) => {}
            other => panic!("expected a refused link, got {other:?}"),
        }
        // The connection is still usable.
        let mut receiver = conn.open_receiver("q").await.unwrap();
        let closer = conn.open_sender("close-connection").await.unwrap();
        let outcome = closer.send(Message::new("bye")).await.unwrap();
        assert_eq!(outcome, Outcome::InDoubt);
        assert!(receiver.recv().await.is_none());
        let err = conn.error().expect("closed with an error");
        match &err {
            Error::ConnectionClosed {
                remote: true,
                error: Some(e),
            } => assert_eq!(e.condition.as_str(), "test:closed"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(receiver.error(), Some(err.clone()));
        assert_eq!(conn.close().await, Err(err));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_without_reconnect() {
    bounded(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let opts = ConnectOptions::new()
            .url(Url::parse(&format!("amqp://127.0.0.1:{port}")).unwrap())
            .reconnect(false);
        match Client::open(opts).await {
            Err(Error::Transport(reason)) => {
                assert_eq!(reason.kind(), TransportErrorKind::Refused, "{reason}");
                assert!(!reason.to_string().contains("gave up"), "{reason}");
            }
            other => panic!("expected a transport error, got {other:?}"),
        }
        assert!(matches!(
            Client::open("not a url ::").await,
            Err(Error::Messaging(_))
        ));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_credit_and_drain() {
    bounded(async {
        let url = relay().await;
        let conn = Client::open(url.as_str()).await.unwrap();
        let mut receiver = conn
            .open_receiver(LinkOptions {
                prefetch: Some(0),
                ..LinkOptions::address("credit")
            })
            .await
            .unwrap();
        let sender = conn.open_sender("credit").await.unwrap();
        let outcomes: Vec<_> = (0..5)
            .map(|i| sender.send_nowait(numbered(i)).unwrap())
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(receiver.try_recv().is_none(), "no credit, nothing arrives");
        receiver.set_credit(2);
        for i in 0..2 {
            let d = receiver.recv().await.unwrap();
            assert_eq!(number(d.message()), i);
            d.accept().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(receiver.try_recv().is_none(), "credit used up");
        // Credit 10 for the 3 held: 7 left over, which drain gives back.
        receiver.set_credit(10);
        for i in 2..5 {
            let d = receiver.recv().await.unwrap();
            assert_eq!(number(d.message()), i);
            d.accept().unwrap();
        }
        receiver.drain().await.unwrap();
        let late = sender.send_nowait(numbered(5)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(receiver.try_recv().is_none(), "drained: no credit left");
        // Back to an automatic window.
        receiver.set_prefetch(10);
        let d = receiver.recv().await.unwrap();
        assert_eq!(number(d.message()), 5);
        d.accept().unwrap();
        // Draining with no credit outstanding resolves at once.
        receiver.set_credit(0);
        receiver.drain().await.unwrap();
        for f in outcomes.into_iter().chain([late]) {
            assert_eq!(f.await.unwrap(), Outcome::Accepted);
        }
        conn.close().await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_reattaches_links() {
    bounded(async {
        let url = relay().await;
        // Reconnect is on by default (Proton's backoff: the first retry is immediate).
        let conn = Client::open(url.as_str()).await.unwrap();
        let mut receiver = conn.open_receiver("rc").await.unwrap();
        let sender = conn.open_sender("rc").await.unwrap();
        let (o, _) = round_trip(&sender, &mut receiver, Message::new("before")).await;
        assert_eq!(o, Outcome::Accepted);
        // The relay answers a message to `force` with `amqp:connection:forced`.
        let force = conn.open_sender("force").await.unwrap();
        assert_eq!(
            force.send(Message::new("reconnect")).await.unwrap(),
            Outcome::InDoubt
        );
        // Same handles, new transport: links were re-attached.
        let (o, body) = round_trip(&sender, &mut receiver, Message::new("after")).await;
        assert_eq!((o, body.as_str()), (Outcome::Accepted, "after"));
        assert!(!conn.is_closed());
        conn.close().await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_handles_closes_links_and_connection() {
    bounded(async {
        let (url, connections) = relay_counting().await;
        let conn = Client::open(url.as_str()).await.unwrap();
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        let sender = conn.open_sender("drop-q").await.unwrap();
        {
            // A receiver dropped with deliveries it never took: they are released.
            let receiver = conn.open_receiver("drop-q").await.unwrap();
            let f = sender.send_nowait(Message::new("unread")).unwrap();
            while receiver.queued() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            drop(receiver);
            assert_eq!(f.await.unwrap(), Outcome::Released);
        }
        // An open future dropped before the peer answered: the link is closed once attached.
        assert!(poll_once_and_drop(conn.open_receiver("drop-q"))
            .await
            .is_none());
        let mut receiver = conn.open_receiver("drop-q").await.unwrap();
        let (o, body) = round_trip(&sender, &mut receiver, Message::new("read")).await;
        assert_eq!((o, body.as_str()), (Outcome::Accepted, "read"));
        // A clone keeps the connection open; the last handle gone, it closes.
        let other = conn.clone();
        drop((conn, sender, receiver));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!other.is_closed());
        assert_eq!(connections.load(Ordering::SeqCst), 1);
        drop(other);
        while connections.load(Ordering::SeqCst) != 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_dropped_unsettled_are_accepted_unless_auto_accept_is_off() {
    bounded(async {
        let url = relay().await;
        let conn = Client::open(url.as_str()).await.unwrap();
        let mut receiver = conn.open_receiver("auto").await.unwrap();
        let sender = conn.open_sender("auto").await.unwrap();
        assert!(receiver.auto_accept(), "on by default, as in Proton");
        let outcome = sender.send_nowait(numbered(0)).unwrap();
        drop(receiver.recv().await.unwrap());
        assert!(outcome.await.unwrap().is_accepted());
        receiver.set_auto_accept(false);
        let outcome = sender.send_nowait(numbered(1)).unwrap();
        drop(receiver.recv().await.unwrap());
        let waited = tokio::time::timeout(Duration::from_millis(300), outcome).await;
        assert!(waited.is_err(), "left unsettled: {waited:?}");
        conn.close().await.unwrap();
    })
    .await
}
