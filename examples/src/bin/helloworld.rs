//! Proton's `helloworld.py`: connect to a broker, send `Hello World!` to a queue, receive it
//! back and print it.
//!
//! ```text
//! helloworld                      # no broker needed: starts the example broker in-process
//! helloworld -a localhost:5672/examples   # use a running broker (queue "examples")
//! ```
//!
//! With no `-a`, the example broker (`amqp_examples::broker`) runs in a second container on a
//! thread, listening on a free port of 127.0.0.1, and the hello-world handler talks to it over
//! TCP: the same exchange as with an external broker, on a machine with nothing installed.

use std::sync::mpsc;
use std::time::Duration;

use amqp_engine::messaging::{ConnectOptions, Event, MessagingHandler};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::broker::{Broker, BrokerConfig};
use amqp_examples::{pyfmt, url_and_address};
use amqp_proto::message::Message;
use amqp_tokio::Container;

struct HelloWorld {
    url: amqp_engine::messaging::Url,
    address: String,
    sent: bool,
}

impl MessagingHandler for HelloWorld {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let r = e.container_mut();
        let conn = r
            .connect_with(ConnectOptions::new().url(self.url.clone()))
            .expect("connect");
        r.create_receiver(conn, self.address.as_str())
            .expect("receiver");
        r.create_sender(conn, self.address.as_str())
            .expect("sender");
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
        if let Some(c) = e.connection() {
            e.container_mut().close_connection(c, None);
        }
    }

    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        eprintln!(
            "helloworld: {} (retrying)",
            e.transport_error()
                .map_or_else(|| "transport error".to_string(), ToString::to_string)
        );
    }
}

/// Starts the example broker in-process on a free loopback port; returns the port.
fn embedded_broker() -> u16 {
    let (tx, rx) = mpsc::channel();
    let cfg = BrokerConfig {
        address: "127.0.0.1:0".into(),
        announce: false,
        ..BrokerConfig::default()
    };
    let broker = Broker::new(cfg).on_listening(move |port| {
        let _ = tx.send(port);
    });
    std::thread::spawn(move || {
        let b = Container::new(broker).run();
        if let Some(err) = b.error() {
            eprintln!("helloworld: the in-process broker failed: {err}");
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| {
            eprintln!("helloworld: the in-process broker did not start");
            std::process::exit(1)
        })
}

/// Send "Hello World!" to a queue and receive it back.
#[derive(Parser)]
#[command(name = "helloworld", help_template = HELP_TEMPLATE)]
struct Args {
    /// broker URL and queue, e.g. localhost:5672/examples; without it, the example broker is
    /// started in-process on a free 127.0.0.1 port
    #[arg(short, long, value_name = "ADDRESS")]
    address: Option<String>,
}

fn main() {
    let m = Args::parse();
    let address = match m.address {
        Some(a) => a,
        None => format!("amqp://127.0.0.1:{}/examples", embedded_broker()),
    };
    let (url, queue) = url_and_address(&address, "examples");
    Container::new(HelloWorld {
        url,
        address: queue,
        sent: false,
    })
    .run();
}
