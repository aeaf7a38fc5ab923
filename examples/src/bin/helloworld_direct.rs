//! Proton's `helloworld_direct.py`: no broker at all. The program listens, connects to
//! itself, sends `Hello World!` and prints it as its own listener receives it.
//!
//! ```text
//! helloworld_direct                           # localhost:8888/examples
//! helloworld_direct -a 127.0.0.1:0/examples   # any free port
//! ```

use amqp_engine::messaging::{
    AcceptorHandle, ConnectOptions, Event, LinkOptions, MessagingHandler, Url,
};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::{announce_listening, pyfmt, url_and_address};
use amqp_proto::message::Message;
use amqp_tokio::Container;

struct HelloWorld {
    url: Url,
    address: String,
    acceptor: Option<AcceptorHandle>,
    sent: bool,
}

impl MessagingHandler for HelloWorld {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let listen = format!("{}:{}", self.url.host(), self.url.port());
        match e.container_mut().listen(&listen) {
            Ok(a) => self.acceptor = Some(a),
            Err(err) => {
                eprintln!("helloworld_direct: cannot listen on {listen}: {err}");
                e.container_mut().stop();
            }
        }
    }

    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        // Connect once the listener is bound (to the port it got, if it asked for port 0).
        let r = e.container_mut();
        announce_listening(r, self.acceptor);
        let port = self
            .acceptor
            .and_then(|a| r.acceptor_port(a))
            .unwrap_or(self.url.port());
        let url = self.url.clone().with_port(port);
        let conn = r
            .connect_with(ConnectOptions::new().url(url))
            .expect("connect");
        r.create_sender(conn, LinkOptions::address(self.address.clone()))
            .expect("sender");
    }

    fn on_acceptor_error(&mut self, e: &mut Event<'_>) {
        eprintln!(
            "helloworld_direct: {}",
            e.transport_error()
                .map_or_else(|| "cannot listen".to_string(), ToString::to_string)
        );
        e.container_mut().stop();
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        if self.sent {
            return;
        }
        self.sent = true;
        e.send(&Message::new("Hello World!")).expect("send");
        if let Some(s) = e.sender() {
            e.container_mut().close_link(s);
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        if let Some(m) = e.message() {
            println!("{}", pyfmt::body_str(m.body()));
        }
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        if let Some(c) = e.connection() {
            e.container_mut().close_connection(c, None);
        }
    }

    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        if let Some(a) = self.acceptor.take() {
            e.container_mut().close_acceptor(a);
        }
    }
}

/// Send "Hello World!" to ourselves, with no broker.
#[derive(Parser)]
#[command(name = "helloworld_direct", help_template = HELP_TEMPLATE)]
struct Args {
    /// address to listen on and send to
    #[arg(
        short,
        long,
        value_name = "ADDRESS",
        default_value = "localhost:8888/examples"
    )]
    address: String,
}

fn main() {
    let m = Args::parse();
    let (url, address) = url_and_address(&m.address, "examples");
    Container::new(HelloWorld {
        url,
        address,
        acceptor: None,
        sent: false,
    })
    .run();
}
