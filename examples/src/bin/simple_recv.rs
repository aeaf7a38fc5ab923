//! Proton's `simple_recv.py`: receive `-m` messages from a queue (0: forever) and print
//! their bodies, ignoring duplicates (by message-id) that an at-least-once sender may resend.
//!
//! ```text
//! simple_recv [-a localhost:5672/examples] [-m 100]
//! ```

use std::collections::HashSet;

use amqp_engine::messaging::{Event, MessagingHandler};
use amqp_examples::args::Parser;
use amqp_examples::pyfmt;
use amqp_proto::message::MessageId;
use amqp_tokio::Container;

struct Recv {
    url: String,
    expected: u64,
    received: u64,
    dedup_ids: HashSet<MessageId>,
}

impl MessagingHandler for Recv {
    fn on_start(&mut self, e: &mut Event<'_>) {
        if let Err(err) = e.container().create_receiver_url(&self.url) {
            eprintln!("simple_recv: {err}");
            e.container().stop();
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let Some(m) = e.message() else { return };
        if let Some(id) = m.message_id() {
            if !self.dedup_ids.insert(id.clone()) {
                println!("duplicate message ignored {}", pyfmt::id_repr(id));
                return;
            }
        }
        if self.expected == 0 || self.received < self.expected {
            println!("{}", pyfmt::body_str(m.body()));
            self.received += 1;
            if self.received == self.expected {
                if let Some(l) = e.receiver() {
                    e.container().close_link(l);
                }
                if let Some(c) = e.connection() {
                    e.container().close_connection(c, None);
                }
            }
        }
    }
}

fn main() {
    let m = Parser::new("simple_recv", "")
        .opt(
            'a',
            "address",
            "ADDRESS",
            "localhost:5672/examples",
            "address from which messages are received",
        )
        .opt(
            'm',
            "messages",
            "MESSAGES",
            "100",
            "number of messages to receive; 0 receives indefinitely",
        )
        .parse();
    Container::new(Recv {
        url: m.get("address").to_string(),
        expected: m.get_parsed("messages"),
        received: 0,
        dedup_ids: HashSet::new(),
    })
    .run();
}
