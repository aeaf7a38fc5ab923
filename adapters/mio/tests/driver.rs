//! The mio driver's own limits over real loopback sockets: the connect timeout (resolving,
//! connecting and the TLS handshake together), and a listener's failed TLS handshake
//! reaching the handler as a transport error.

use std::time::{Duration, Instant};

use amqp_mio::{
    ConnectOptions, Container, Event, ListenOptions, MessagingHandler, PemSource, TlsListen,
    TransportErrorKind,
};

/// Records transport errors (kind, whether they name a listener) and when the first came;
/// stops on the first, or after 10 s.
struct Watch {
    start: Box<dyn FnMut(&mut Event<'_>)>,
    port: Option<std::sync::mpsc::Sender<u16>>,
    errors: Vec<(TransportErrorKind, bool)>,
    began: Instant,
    took: Option<Duration>,
}

impl Watch {
    fn new(start: impl FnMut(&mut Event<'_>) + 'static) -> Self {
        Watch {
            start: Box::new(start),
            port: None,
            errors: Vec::new(),
            began: Instant::now(),
            took: None,
        }
    }
}

impl MessagingHandler for Watch {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().schedule(Duration::from_secs(10));
        self.began = Instant::now();
        (self.start)(e);
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().expect("acceptor");
        let port = e.container().acceptor_port(a).expect("port");
        if let Some(tx) = self.port.take() {
            tx.send(port).expect("send the port");
        }
    }
    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        let kind = e.transport_error().map(|t| t.kind());
        self.errors
            .push((kind.expect("a transport error"), e.acceptor().is_some()));
        self.took.get_or_insert(self.began.elapsed());
        e.container_mut().stop();
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        e.container_mut().stop();
    }
}

#[test]
fn a_connect_that_takes_too_long_fails_with_a_timeout() {
    // Accepts, then never answers the TLS handshake.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let holder = std::thread::spawn(move || {
        let conn = silent.accept();
        std::thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    let w = Container::new(Watch::new(move |e| {
        let opts = ConnectOptions::new()
            .url(format!("amqps://127.0.0.1:{port}").as_str())
            .reconnect(false)
            .connect_timeout(Duration::from_millis(300));
        e.container_mut().connect_with(opts).expect("connect");
    }))
    .run();
    holder.join().expect("holder");
    assert_eq!(w.errors, [(TransportErrorKind::Timeout, false)]);
    let took = w.took.expect("an error");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn a_failed_tls_handshake_on_a_listener_reaches_the_handler() {
    let server = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("a self-signed certificate");
    let listen = ListenOptions {
        tls: Some(TlsListen {
            cert: Some(PemSource::Pem(server.cert.pem())),
            key: Some(PemSource::Pem(server.key_pair.serialize_pem())),
            ..TlsListen::default()
        }),
        ..ListenOptions::default()
    };
    let (tx, rx) = std::sync::mpsc::channel::<u16>();
    // Speaks plain AMQP to the amqps listener.
    let client = std::thread::spawn(move || {
        let port = rx.recv_timeout(Duration::from_secs(10)).expect("port");
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        std::io::Write::write_all(&mut s, b"AMQP\x00\x01\x00\x00").expect("write");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut b = [0u8; 64];
        let _ = std::io::Read::read(&mut s, &mut b);
    });
    let mut w = Watch::new(move |e| {
        e.container_mut()
            .listen_with("amqps://127.0.0.1:0", listen.clone())
            .expect("listen");
    });
    w.port = Some(tx);
    let w = Container::new(w).run();
    client.join().expect("client");
    assert_eq!(w.errors, [(TransportErrorKind::Tls, true)]);
}
