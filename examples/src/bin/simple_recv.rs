//! Proton's `simple_recv.py`: receive `-m` messages from a queue (0: forever) and print
//! their bodies, ignoring duplicates (by message-id) that an at-least-once sender may resend.
//!
//! ```text
//! simple_recv [-a localhost:5672/examples] [-m 100] [--durable]
//! ```

use std::collections::HashSet;

use amqp_engine::messaging::{Event, MessagingHandler};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::pyfmt;
use amqp_proto::message::MessageId;
use amqp_proto::messaging::TerminusDurability;
use amqp_tokio::Container;

struct Recv {
    url: String,
    expected: u64,
    /// Receive from a durable source (see simple_send --durable).
    durable: bool,
    received: u64,
    dedup_ids: HashSet<MessageId>,
}

impl MessagingHandler for Recv {
    fn on_start(&mut self, e: &mut Event<'_>) {
        match e.container_mut().connect_receiver(&self.url) {
            Ok(link) if self.durable => {
                // A durable source: the same queue simple_send --durable declares.
                let source = e
                    .container_mut()
                    .link_config_mut(link)
                    .and_then(|c| c.source.as_mut());
                if let Some(s) = source {
                    s.durable = Some(TerminusDurability::Configuration);
                }
            }
            Ok(_) => {}
            Err(err) => {
                eprintln!("simple_recv: {err}");
                e.container_mut().stop();
            }
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
                    e.container_mut().close_link(l);
                }
                if let Some(c) = e.connection() {
                    e.container_mut().close_connection(c, None);
                }
            }
        }
    }
}

#[derive(Parser)]
#[command(name = "simple_recv", help_template = HELP_TEMPLATE)]
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
    /// receive from a durable source, the queue simple_send --durable declares (not in
    /// Proton's simple_recv.py)
    #[arg(long)]
    durable: bool,
}

fn main() {
    let m = Args::parse();
    Container::new(Recv {
        url: m.address,
        expected: m.messages,
        durable: m.durable,
        received: 0,
        dedup_ids: HashSet::new(),
    })
    .run();
}
