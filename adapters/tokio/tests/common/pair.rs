//! A listener and one or more clients in one tokio container, over real loopback sockets:
//! the listener answers the links a client attaches; each client sends `count` messages on
//! "to-server" and receives `count` on "to-client", then closes. Everything each side saw is
//! recorded. Runs are bounded: a container timer stops the run at `limit`, and the calling
//! thread gives up (panics) if the container has not returned shortly after.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Duration;

use amqp_tokio::amqp_proto::message::Message;
use amqp_tokio::Container;
use amqp_tokio::{
    ConnectOptions, ConnectionHandle, Event, ListenOptions, MessagingHandler, TransportErrorKind,
    Url,
};

/// Builds a client's options, given the listener's port.
pub type MakeOptions = Box<dyn Fn(u16) -> ConnectOptions + Send>;

/// What one client saw.
#[derive(Debug, Default, Clone)]
pub struct ClientRun {
    /// `on_connection_opened` fired.
    pub opened: bool,
    /// Messages received on "to-client".
    pub received: Vec<String>,
    /// Outcomes `accepted` for what it sent.
    pub accepted: usize,
    /// `on_transport_error` texts.
    pub transport_errors: Vec<String>,
    /// `on_transport_error` kinds.
    pub transport_error_kinds: Vec<TransportErrorKind>,
    /// `on_connection_error` conditions and descriptions.
    pub connection_errors: Vec<String>,
    /// `on_disconnected` texts.
    pub disconnects: Vec<String>,
    /// `on_connection_closed` fired.
    pub closed: bool,
}

impl ClientRun {
    /// Every error text it saw, joined.
    pub fn errors(&self) -> String {
        let mut v = self.transport_errors.clone();
        v.extend(self.connection_errors.iter().cloned());
        v.join(" | ")
    }
}

/// What the run saw.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// The listener's port.
    pub port: u16,
    /// `on_acceptor_error`, if the listener failed.
    pub acceptor_error: Option<String>,
    /// One entry per client, in order.
    pub clients: Vec<ClientRun>,
    /// Server side: connections opened by clients, with the authenticated user of each.
    pub server_users: Vec<Option<String>>,
    /// Server side: messages received.
    pub server_received: Vec<String>,
    /// Server side: transport and connection errors.
    pub server_errors: Vec<String>,
    /// The run hit its time limit.
    pub timed_out: bool,
}

/// The scenario.
pub struct Pair {
    listen_url: Option<String>,
    listen: Option<ListenOptions>,
    external_port: u16,
    port_tx: Option<mpsc::Sender<u16>>,
    expect_external: usize,
    ended_external: HashSet<ConnectionHandle>,
    clients: Vec<MakeOptions>,
    count: usize,
    padding: usize,
    limit: Duration,
    current: Option<ConnectionHandle>,
    sent: usize,
    server_sent: usize,
    out: Outcome,
}

impl Pair {
    /// A listener on `listen_url` with `listen` options; clients connect one after another.
    pub fn new(listen_url: &str, listen: ListenOptions, clients: Vec<MakeOptions>) -> Pair {
        Pair {
            listen_url: Some(listen_url.to_string()),
            listen: Some(listen),
            external_port: 0,
            port_tx: None,
            expect_external: 0,
            ended_external: HashSet::new(),
            clients,
            count: 5,
            padding: 0,
            limit: Duration::from_secs(15),
            current: None,
            sent: 0,
            server_sent: 0,
            out: Outcome::default(),
        }
    }

    /// No listener: the clients connect to someone else's `port`.
    pub fn clients_only(port: u16, clients: Vec<MakeOptions>) -> Pair {
        let mut p = Pair::new("", ListenOptions::default(), clients);
        p.listen_url = None;
        p.external_port = port;
        p
    }

    /// No clients of our own: once listening, send the port to `tx`, serve, and stop after
    /// `n` connections from elsewhere have ended (closed or failed).
    pub fn serve(listen_url: &str, listen: ListenOptions, n: usize, tx: mpsc::Sender<u16>) -> Pair {
        let mut p = Pair::new(listen_url, listen, Vec::new());
        p.port_tx = Some(tx);
        p.expect_external = n;
        p
    }

    /// Pads every message body with this many bytes (checked, then cut off, on receipt).
    pub fn padding(mut self, bytes: usize) -> Pair {
        self.padding = bytes;
        self
    }

    /// Stops the run after this long.
    pub fn limit(mut self, limit: Duration) -> Pair {
        self.limit = limit;
        self
    }

    /// Messages each way per client.
    pub fn count(mut self, n: usize) -> Pair {
        self.count = n;
        self
    }

    /// Runs the container on its own thread; panics if it does not return within the limit
    /// plus a grace period.
    pub fn run(self) -> Outcome {
        let hard = self.limit + Duration::from_secs(10);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let h = Container::new(self).run();
            let _ = tx.send(h.out);
        });
        match rx.recv_timeout(hard) {
            Ok(o) => {
                if std::env::var_os("TLS_TEST_DEBUG").is_some() {
                    eprintln!("{o:#?}");
                }
                o
            }
            Err(e) => panic!("container did not finish within {hard:?}: {e}"),
        }
    }

    fn next_client(&mut self, e: &mut Event<'_>) {
        let i = self.out.clients.len();
        if i >= self.clients.len() {
            e.container_mut().stop();
            return;
        }
        self.out.clients.push(ClientRun::default());
        self.sent = 0;
        self.server_sent = 0;
        let opts = (self.clients[i])(self.out.port);
        match e.container_mut().connect_with(opts) {
            Ok(c) => {
                self.current = Some(c);
                e.container_mut().create_sender(c, "to-server").unwrap();
                e.container_mut().create_receiver(c, "to-client").unwrap();
            }
            Err(err) => {
                self.out.clients[i]
                    .transport_errors
                    .push(format!("connect_with: {err}"));
                self.next_client(e);
            }
        }
    }

    fn is_client(&self, e: &Event<'_>) -> bool {
        e.connection().is_some() && e.connection() == self.current
    }

    /// Any other connection is one the listener accepted (checked this way because a failed
    /// server connection is already forgotten by the container when its events arrive).
    fn is_server(&self, e: &Event<'_>) -> bool {
        e.connection().is_some() && !self.is_client(e)
    }

    fn client(&mut self) -> &mut ClientRun {
        self.out.clients.last_mut().expect("a client")
    }

    fn maybe_done(&mut self, e: &mut Event<'_>) {
        let n = self.count;
        let c = self.client();
        if c.accepted >= n && c.received.len() >= n {
            if let Some(conn) = self.current {
                e.container_mut().close_connection(conn, None);
            }
        }
    }
}

impl Pair {
    fn server_ended(&mut self, e: &mut Event<'_>) {
        if let Some(c) = e.connection() {
            self.ended_external.insert(c);
        }
        if self.expect_external > 0 && self.ended_external.len() >= self.expect_external {
            e.container_mut().stop();
        }
    }
}

/// Parses a URL for [`ConnectOptions::url`]; reconnect is off so a failure is final.
pub fn opts(url: &str) -> ConnectOptions {
    ConnectOptions::new()
        .url(Url::parse(url).expect("URL"))
        .reconnect(false)
}

impl MessagingHandler for Pair {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().schedule(self.limit);
        let Some(url) = self.listen_url.clone() else {
            self.out.port = self.external_port;
            self.next_client(e);
            return;
        };
        let lo = self.listen.take().unwrap_or_default();
        if let Err(err) = e.container_mut().listen_with(&url, lo) {
            self.out.acceptor_error = Some(err.to_string());
            e.container_mut().stop();
        }
    }

    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().unwrap();
        self.out.port = e.container().acceptor_port(a).unwrap();
        if let Some(tx) = self.port_tx.take() {
            let _ = tx.send(self.out.port);
            return;
        }
        self.next_client(e);
    }

    fn on_acceptor_error(&mut self, e: &mut Event<'_>) {
        self.out.acceptor_error = Some(
            e.transport_error()
                .map_or_else(|| "?".to_string(), ToString::to_string),
        );
        e.container_mut().stop();
    }

    fn on_connection_opening(&mut self, e: &mut Event<'_>) {
        if self.is_server(e) {
            let c = e.connection().unwrap();
            let user = e.container().authenticated_user(c).map(str::to_owned);
            self.out.server_users.push(user);
        }
    }

    fn on_connection_opened(&mut self, e: &mut Event<'_>) {
        if self.is_client(e) {
            self.client().opened = true;
        }
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        let server = self.is_server(e);
        let client = self.is_client(e);
        loop {
            let (n, tag) = if server {
                (&mut self.server_sent, "from server")
            } else if client {
                (&mut self.sent, "from client")
            } else {
                return;
            };
            if *n >= self.count || e.credit() == 0 {
                return;
            }
            let mut body = format!("{tag} {n}");
            if self.padding > 0 {
                body.push('|');
                body.push_str(&"x".repeat(self.padding));
            }
            let m = Message::new(body);
            *n += 1;
            e.send(&m).unwrap();
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let body = e
            .message()
            .and_then(|m| m.body_str())
            .unwrap_or("")
            .to_string();
        // Keep the "from ... n" part; a wrong padding length is recorded in its place.
        let body = match body.split_once('|') {
            Some((head, pad)) if pad.len() == self.padding && pad.bytes().all(|b| b == b'x') => {
                head.to_string()
            }
            Some((head, pad)) => format!("{head} BAD PADDING ({} bytes)", pad.len()),
            None => body,
        };
        if self.is_server(e) {
            self.out.server_received.push(body);
        } else if self.is_client(e) {
            self.client().received.push(body);
            self.maybe_done(e);
        }
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        if self.is_client(e) {
            self.client().accepted += 1;
            self.maybe_done(e);
        }
    }

    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        let text = e
            .transport_error()
            .map_or_else(|| "".to_string(), ToString::to_string);
        let kind = e.transport_error().map(|t| t.kind());
        if self.is_server(e) {
            self.out.server_errors.push(text);
        } else if self.is_client(e) {
            let c = self.client();
            c.transport_errors.push(text);
            c.transport_error_kinds.extend(kind);
        }
    }

    fn on_connection_error(&mut self, e: &mut Event<'_>) {
        let text = e.error().map(|er| format!("{:?}", er)).unwrap_or_default();
        if self.is_server(e) {
            self.out.server_errors.push(text);
        } else if self.is_client(e) {
            self.client().connection_errors.push(text);
        }
    }

    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        let text = e
            .transport_error()
            .map_or_else(|| "".to_string(), ToString::to_string);
        if self.is_client(e) {
            self.client().disconnects.push(text);
        } else {
            self.server_ended(e);
        }
    }

    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        if self.is_server(e) {
            self.server_ended(e);
        }
        if self.is_client(e) {
            self.client().closed = true;
            self.current = None;
            self.next_client(e);
        }
    }

    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.out.timed_out = true;
        e.container_mut().stop();
    }
}
