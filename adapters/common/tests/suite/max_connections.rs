//! A listener's `max_connections` on each runtime: with a limit of [`LIMIT`], that many raw
//! sockets are served (each gets the protocol header back), the [`EXTRA`] sockets past it are
//! closed at once without a byte (no TLS, SASL or AMQP work is spent on them), the served ones
//! stay open, and once one of them closes a new connection is served again.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use amqp_adapter::amqp_engine::messaging::{Event, ListenOptions};

use super::{join_within, MessagingHandler, RunContainer, SAFETY};

/// The listener's `max_connections`.
const LIMIT: usize = 3;
/// Connections tried past it.
const EXTRA: usize = 5;
const AMQP_HEADER: &[u8; 8] = b"AMQP\x00\x01\x00\x00";

struct Limited {
    port: mpsc::Sender<u16>,
    done: Arc<AtomicBool>,
    started: Option<Instant>,
}

impl MessagingHandler for Limited {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let opts = ListenOptions {
            max_connections: Some(LIMIT),
            ..ListenOptions::default()
        };
        e.container_mut()
            .listen_with("127.0.0.1:0", opts)
            .expect("listen");
        self.started = Some(e.container().now());
        e.container_mut().schedule(Duration::from_millis(20));
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().expect("acceptor");
        let port = e.container().acceptor_port(a).expect("port");
        let _ = self.port.send(port);
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        let expired = self
            .started
            .is_some_and(|s| e.container().now() >= s + SAFETY);
        if self.done.load(Ordering::Acquire) || expired {
            e.container_mut().stop();
        } else {
            e.container_mut().schedule(Duration::from_millis(20));
        }
    }
}

/// What the server did with a connection that sent the protocol header.
#[derive(Debug, PartialEq)]
enum Answer {
    /// It answered with its own header: the connection is being served.
    Header,
    /// It closed the connection without sending anything.
    Closed,
}

fn try_header(addr: SocketAddr) -> (TcpStream, Answer) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("read timeout");
    if s.write_all(AMQP_HEADER).is_err() {
        return (s, Answer::Closed);
    }
    let mut got = [0u8; 8];
    let answer = match s.read(&mut got) {
        Ok(0) => Answer::Closed,
        Ok(n) => {
            s.read_exact(&mut got[n..]).expect("the rest of the header");
            assert_eq!(&got, AMQP_HEADER, "the server's protocol header");
            Answer::Header
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ) =>
        {
            Answer::Closed
        }
        Err(e) => panic!("neither answered nor closed within 3 s: {e}"),
    };
    (s, answer)
}

pub(crate) fn refused_at_accept<R: RunContainer>() {
    let (tx, rx) = mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    let h = Limited {
        port: tx,
        done: done.clone(),
        started: None,
    };
    let t = thread::spawn(move || R::run(h, "max-connections"));
    let port = rx.recv_timeout(Duration::from_secs(10)).expect("listening");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let mut served: Vec<TcpStream> = (0..LIMIT)
        .map(|i| {
            let (s, answer) = try_header(addr);
            assert_eq!(answer, Answer::Header, "connection {i}, within the limit");
            s
        })
        .collect();
    for i in 0..EXTRA {
        let start = Instant::now();
        let (_s, answer) = try_header(addr);
        assert_eq!(answer, Answer::Closed, "connection {i} past the limit");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "closed promptly: {:?}",
            start.elapsed()
        );
    }
    // The served ones are still open (nothing more to read, no end of stream).
    for s in &mut served {
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            other => panic!("a served connection was disturbed: {other:?}"),
        }
    }
    // One leaves: its place is free once the server has seen it go.
    drop(served.pop());
    let until = Instant::now() + Duration::from_secs(5);
    let mut tries = 0;
    let again = loop {
        tries += 1;
        match try_header(addr) {
            (s, Answer::Header) => break s,
            (_, Answer::Closed) => {
                assert!(
                    Instant::now() < until,
                    "no place came free after {tries} tries"
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
    };
    drop((served, again));
    done.store(true, Ordering::Release);
    join_within(t, Duration::from_secs(10), "the container");
    eprintln!(
        "max_connections {LIMIT}: {EXTRA} refused at accept; served again after {tries} tries"
    );
}
