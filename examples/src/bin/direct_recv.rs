//! Proton's `direct_recv.py`: no broker. Listen on the address and print the bodies of the
//! `-m` messages (0: forever) a sender that connects sends (for example `simple_send` pointed
//! at this address), then exit.
//!
//! ```text
//! direct_recv [-a localhost:5672/examples] [-m 100]
//! ```

use std::collections::HashSet;

use amqp_engine::messaging::{AcceptorHandle, Event, MessagingHandler};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::{announce_listening, pyfmt};
use amqp_proto::message::MessageId;
use amqp_tokio::Container;

struct Recv {
    url: String,
    expected: u64,
    received: u64,
    seen: HashSet<MessageId>,
    acceptor: Option<AcceptorHandle>,
}

impl MessagingHandler for Recv {
    fn on_start(&mut self, e: &mut Event<'_>) {
        match e.container_mut().listen(&self.url) {
            Ok(a) => self.acceptor = Some(a),
            Err(err) => {
                eprintln!("direct_recv: {err}");
                e.container_mut().stop();
            }
        }
    }

    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        announce_listening(e.container_mut(), self.acceptor);
    }

    fn on_acceptor_error(&mut self, e: &mut Event<'_>) {
        eprintln!(
            "direct_recv: {}",
            e.transport_error()
                .map_or_else(|| "cannot listen".to_string(), ToString::to_string)
        );
        e.container_mut().stop();
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let Some(m) = e.message() else { return };
        if let Some(id) = m.message_id() {
            if !self.seen.insert(id.clone()) {
                // A duplicate, resent by an at-least-once sender.
                return;
            }
        }
        if self.expected == 0 || self.received < self.expected {
            println!("{}", pyfmt::body_str(m.body()));
            self.received += 1;
            if self.received == self.expected {
                if let Some(l) = e.receiver() {
                    e.container_mut().close_link(l);
                }
                if let Some(c) = e.connection() {
                    e.container_mut().close_connection(c, None);
                }
                if let Some(a) = self.acceptor.take() {
                    e.container_mut().close_acceptor(a);
                }
            }
        }
    }
}

#[derive(Parser)]
#[command(name = "direct_recv", help_template = HELP_TEMPLATE)]
struct Args {
    /// address from which messages are received
    #[arg(
        short,
        long,
        value_name = "ADDRESS",
        default_value = "localhost:5672/examples"
    )]
    address: String,
    /// number of messages to receive; 0 receives indefinitely
    #[arg(short, long, value_name = "MESSAGES", default_value_t = 100)]
    messages: u64,
}

fn main() {
    let m = Args::parse();
    Container::new(Recv {
        url: m.address,
        expected: m.messages,
        received: 0,
        seen: HashSet::new(),
        acceptor: None,
    })
    .run();
}
