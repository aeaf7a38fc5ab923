//! Proton's `direct_send.py`: no broker. Listen on the address and send `-m` messages
//! (`{'sequence': n}`) to the receiver that connects (for example `simple_recv` pointed at
//! this address); print `all messages confirmed` and exit once all are accepted.
//!
//! ```text
//! direct_send [-a localhost:5672/examples] [-m 100]
//! ```

use std::collections::{BTreeSet, HashMap};

use amqp_engine::messaging::{AcceptorHandle, Event, MessagingHandler, Tracker};
use amqp_examples::announce_listening;
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_proto::message::Message;
use amqp_proto::value::OrderedMap;
use amqp_proto::Value;
use amqp_tokio::Container;

struct Send {
    url: String,
    total: u64,
    sent: u64,
    confirmed: u64,
    resend: BTreeSet<u64>,
    outstanding: HashMap<Tracker, u64>,
    acceptor: Option<AcceptorHandle>,
}

fn message(n: u64) -> Message {
    let mut body = OrderedMap::new();
    body.insert(Value::string("sequence"), Value::Long(n as i64));
    Message::builder()
        .message_id(n)
        .body(Value::Map(body))
        .build()
}

impl MessagingHandler for Send {
    fn on_start(&mut self, e: &mut Event<'_>) {
        match e.container_mut().listen(&self.url) {
            Ok(a) => self.acceptor = Some(a),
            Err(err) => {
                eprintln!("direct_send: {err}");
                e.container_mut().stop();
            }
        }
    }

    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        announce_listening(e.container_mut(), self.acceptor);
    }

    fn on_acceptor_error(&mut self, e: &mut Event<'_>) {
        eprintln!(
            "direct_send: {}",
            e.transport_error()
                .map_or_else(|| "cannot listen".to_string(), ToString::to_string)
        );
        e.container_mut().stop();
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        while e.credit() > 0 {
            let n = match self.resend.pop_first() {
                Some(n) => n,
                None if self.sent < self.total => {
                    self.sent += 1;
                    self.sent
                }
                None => break,
            };
            match e.send(&message(n)) {
                Ok(t) => {
                    self.outstanding.insert(t, n);
                }
                Err(_) => {
                    self.resend.insert(n);
                    break;
                }
            }
        }
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        if e.tracker()
            .and_then(|t| self.outstanding.remove(&t))
            .is_none()
        {
            return;
        }
        self.confirmed += 1;
        if self.confirmed == self.total {
            println!("all messages confirmed");
            if let Some(c) = e.connection() {
                e.container_mut().close_connection(c, None);
            }
            if let Some(a) = self.acceptor.take() {
                e.container_mut().close_acceptor(a);
            }
        }
    }

    fn on_released(&mut self, e: &mut Event<'_>) {
        if let Some(n) = e.tracker().and_then(|t| self.outstanding.remove(&t)) {
            self.resend.insert(n);
        }
    }

    fn on_in_doubt(&mut self, e: &mut Event<'_>) {
        // The receiver went away before settling: send these again to the next one.
        if let Some(n) = e.tracker().and_then(|t| self.outstanding.remove(&t)) {
            self.resend.insert(n);
        }
    }
}

/// Send messages to the supplied address.
#[derive(Parser)]
#[command(name = "direct_send", help_template = HELP_TEMPLATE)]
struct Args {
    /// address to which messages are sent
    #[arg(
        short,
        long,
        value_name = "ADDRESS",
        default_value = "localhost:5672/examples"
    )]
    address: String,
    /// number of messages to send
    #[arg(short, long, value_name = "MESSAGES", default_value_t = 100)]
    messages: u64,
}

fn main() {
    let m = Args::parse();
    Container::new(Send {
        url: m.address,
        total: m.messages,
        sent: 0,
        confirmed: 0,
        resend: BTreeSet::new(),
        outstanding: HashMap::new(),
        acceptor: None,
    })
    .run();
}
