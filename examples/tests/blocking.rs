//! The blocking API (`amqp_mio::BlockingConnection`) against the example broker, itself run
//! in-process on the mio loop: outcomes, receive with timeouts, every settlement, request and
//! reply through a dynamic reply queue, several threads on one connection, failover, and a
//! refused connection with reconnect off.

use std::thread;
use std::time::{Duration, Instant};

use amqp_examples::broker::{Broker, BrokerConfig};
use amqp_mio::amqp_proto::message::Message;
use amqp_mio::{
    BlockingConnection, BlockingError, ConnectOptions, Container, Outcome, TransportErrorKind, Url,
};

/// Starts a broker on a free port in a thread of its own (it runs until the test ends).
fn broker() -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    let cfg = BrokerConfig {
        address: "127.0.0.1:0".into(),
        announce: false,
        ..BrokerConfig::default()
    };
    let broker = Broker::new(cfg).on_listening(move |port| {
        let _ = tx.send(port);
    });
    thread::spawn(move || Container::new(broker).run());
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the broker listens")
}

fn open(port: u16) -> BlockingConnection {
    BlockingConnection::open(&format!("amqp://127.0.0.1:{port}")).expect("open")
}

fn body(d: &amqp_mio::Delivery) -> String {
    d.message().body_str().unwrap_or("").to_string()
}

const WAIT: Option<Duration> = Some(Duration::from_secs(10));

#[test]
fn send_then_receive_with_outcomes_and_timeouts() {
    let conn = open(broker());
    let sender = conn.sender("q1").expect("sender");
    for i in 0..100 {
        let o = sender.send(&Message::new(format!("m{i}"))).expect("send");
        assert_eq!(o, Outcome::Accepted);
    }
    let receiver = conn.receiver("q1", 10).expect("receiver");
    for i in 0..100 {
        let d = receiver.receive(WAIT).expect("receive").expect("a message");
        assert_eq!(body(&d), format!("m{i}"));
        d.accept().expect("accept");
        assert!(matches!(d.accept(), Err(BlockingError::AlreadySettled)));
    }
    let t = Instant::now();
    let none = receiver
        .receive(Some(Duration::from_millis(200)))
        .expect("receive");
    assert!(none.is_none(), "the queue is empty");
    assert!(t.elapsed() >= Duration::from_millis(200));
    sender.close().expect("close sender");
    let clone = receiver.clone();
    receiver.close().expect("close receiver");
    let t = Instant::now();
    assert!(matches!(
        clone.receive(WAIT),
        Err(BlockingError::LinkClosed { remote: false, .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(1), "fails at once");
    conn.close().expect("close");
    conn.close().expect("closing twice is fine");
    assert!(matches!(
        conn.sender("q1"),
        Err(BlockingError::ConnectionClosed { remote: false, .. })
    ));
}

#[test]
fn release_modify_and_reject() {
    let conn = open(broker());
    let sender = conn.sender("q2").expect("sender");
    for b in ["a", "b"] {
        assert!(sender.send(&Message::new(b)).expect("send").is_accepted());
    }
    let receiver = conn.receiver("q2", 1).expect("receiver");
    let d = receiver.receive(WAIT).expect("receive").expect("a");
    assert_eq!(body(&d), "a");
    d.release().expect("release");
    // Released: redelivered, first in line again.
    let d = receiver.receive(WAIT).expect("receive").expect("a again");
    assert_eq!(body(&d), "a");
    d.modify(true, false).expect("modify");
    let d = receiver
        .receive(WAIT)
        .expect("receive")
        .expect("a, modified");
    assert_eq!(body(&d), "a");
    assert_eq!(d.message().header().and_then(|h| h.delivery_count), Some(1));
    d.reject(None).expect("reject");
    let d = receiver.receive(WAIT).expect("receive").expect("b");
    assert_eq!(body(&d), "b");
    d.accept().expect("accept");
    assert!(receiver
        .receive(Some(Duration::from_millis(100)))
        .expect("receive")
        .is_none());
    conn.close().expect("close");
}

#[test]
fn request_reply_through_a_dynamic_receiver() {
    let port = broker();
    // The service: answers each request on its reply-to address, upper-cased.
    let service = thread::spawn(move || {
        let conn = open(port);
        let requests = conn.receiver("requests", 10).expect("receiver");
        for _ in 0..3 {
            let d = requests.receive(WAIT).expect("receive").expect("a request");
            let to = d.message().reply_to().expect("reply_to").to_string();
            let reply = Message::new(body(&d).to_uppercase());
            let o = conn.sender(&to).expect("reply sender").send(&reply);
            assert!(o.expect("reply").is_accepted());
            d.accept().expect("accept");
        }
        conn.close().expect("close");
    });
    let conn = open(port);
    let replies = conn.dynamic_receiver(1).expect("dynamic receiver");
    let reply_to = replies.address().expect("an assigned address");
    let sender = conn.sender("requests").expect("sender");
    for word in ["one", "two", "three"] {
        let mut m = Message::new(word);
        m.set_reply_to(reply_to.as_str());
        assert!(sender.send(&m).expect("send").is_accepted());
        let r = replies.receive(WAIT).expect("receive").expect("a reply");
        assert_eq!(body(&r), word.to_uppercase());
        r.accept().expect("accept");
    }
    service.join().expect("service");
    conn.close().expect("close");
}

#[test]
fn several_threads_share_one_connection() {
    const PER_THREAD: usize = 300;
    let conn = open(broker());
    let receiver = conn.receiver("shared", 50).expect("receiver");
    let senders: Vec<_> = (0..3)
        .map(|t| {
            let conn = conn.clone();
            thread::spawn(move || {
                let s = conn.sender("shared").expect("sender");
                for i in 0..PER_THREAD {
                    let o = s.send(&Message::new(format!("{t}-{i}"))).expect("send");
                    assert!(o.is_accepted());
                }
            })
        })
        .collect();
    let consumer = thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < 3 * PER_THREAD {
            let d = receiver.receive(WAIT).expect("receive").expect("a message");
            got.push(body(&d));
            d.accept().expect("accept");
        }
        got
    });
    for s in senders {
        s.join().expect("sender thread");
    }
    let got = consumer.join().expect("consumer");
    for t in 0..3 {
        let mine: Vec<_> = got
            .iter()
            .filter(|b| b.starts_with(&format!("{t}-")))
            .cloned()
            .collect();
        let want: Vec<_> = (0..PER_THREAD).map(|i| format!("{t}-{i}")).collect();
        assert_eq!(mine, want, "thread {t}'s messages, in order");
    }
    conn.close().expect("close");
}

#[test]
fn send_nowait_then_receive_all() {
    let conn = open(broker());
    let sender = conn.sender("nowait").expect("sender");
    for i in 0..1000 {
        sender
            .send_nowait(&Message::new(i.to_string()))
            .expect("send_nowait");
    }
    let receiver = conn.receiver("nowait", 100).expect("receiver");
    for i in 0..1000 {
        let d = receiver.receive(WAIT).expect("receive").expect("a message");
        assert_eq!(body(&d), i.to_string());
        d.accept().expect("accept");
    }
    conn.close().expect("close");
}

#[test]
fn failover_to_the_second_url() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_port = dead.local_addr().expect("addr").port();
    drop(dead);
    let port = broker();
    let urls =
        [dead_port, port].map(|p| Url::parse(&format!("amqp://127.0.0.1:{p}")).expect("url"));
    let conn = BlockingConnection::open_with(ConnectOptions::new().urls(urls), WAIT)
        .expect("open through failover");
    let s = conn.sender("fo").expect("sender");
    assert!(s.send(&Message::new("x")).expect("send").is_accepted());
    conn.close().expect("close");
}

#[test]
fn refused_with_reconnect_off_fails_at_once() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let url = Url::parse(&format!("amqp://127.0.0.1:{port}")).expect("url");
    let t = Instant::now();
    let e = BlockingConnection::open_with(ConnectOptions::new().url(url).reconnect(false), WAIT)
        .expect_err("refused");
    assert!(t.elapsed() < Duration::from_secs(5));
    match e {
        BlockingError::Transport(t) => assert_eq!(t.kind(), TransportErrorKind::Refused),
        other => panic!("expected a refused transport, got {other:?}"),
    }
}

#[test]
fn open_times_out_while_reconnecting() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    let url = Url::parse(&format!("amqp://127.0.0.1:{port}")).expect("url");
    let e = BlockingConnection::open_with(
        ConnectOptions::new().url(url),
        Some(Duration::from_millis(500)),
    )
    .expect_err("nothing listens");
    assert!(e.is_timeout(), "{e:?}");
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<BlockingConnection>();
    check::<amqp_mio::BlockingSender>();
    check::<amqp_mio::BlockingReceiver>();
    check::<amqp_mio::Delivery>();
}
