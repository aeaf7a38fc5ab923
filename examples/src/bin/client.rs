//! Proton's `client.py`: request/response through a broker. Creates a receiver with a
//! *dynamic* source (the broker makes a temporary reply queue and tells us its address), then
//! sends each request to the service queue with that address as `reply_to`, one at a time,
//! printing `request => response`. Pair it with `server` (through the broker) or
//! `server_direct` (no broker).
//!
//! ```text
//! client [-a localhost:5672/examples] [REQUEST ...]
//! ```

use std::collections::VecDeque;

use amqp_engine::messaging::{Event, LinkHandle, LinkOptions, MessagingHandler};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::pyfmt;
use amqp_proto::message::Message;
use amqp_tokio::Container;

const REQUESTS: [&str; 4] = [
    "Twas brillig, and the slithy toves",
    "Did gire and gymble in the wabe.",
    "All mimsy were the borogroves,",
    "And the mome raths outgrabe.",
];

struct Client {
    url: String,
    requests: VecDeque<String>,
    sender: Option<LinkHandle>,
    receiver: Option<LinkHandle>,
    reply_to: Option<String>,
    /// The head request is waiting to be sent (for the reply address, or for credit).
    pending: bool,
}

impl Client {
    fn next_request(&mut self, e: &mut Event<'_>) {
        let (Some(sender), Some(reply_to), Some(body)) = (
            self.sender,
            self.reply_to.clone(),
            self.requests.front().cloned(),
        ) else {
            return;
        };
        let r = e.container_mut();
        if !self.pending || r.credit(sender) == 0 {
            return;
        }
        let req = Message::builder().reply_to(reply_to).body(body).build();
        if r.send(sender, &req).is_ok() {
            self.pending = false;
        }
    }
}

impl MessagingHandler for Client {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let r = e.container_mut();
        let sender = match r.connect_sender(&self.url) {
            Ok(s) => s,
            Err(err) => {
                eprintln!("client: {err}");
                r.stop();
                return;
            }
        };
        self.sender = Some(sender);
        self.receiver = r
            .create_receiver(sender.connection(), LinkOptions::dynamic())
            .ok();
    }

    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        if e.link().is_some() && e.link() == self.receiver {
            self.reply_to = self.receiver.and_then(|l| e.container().remote_address(l));
            self.next_request(e);
        }
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        self.next_request(e);
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let body = e
            .message()
            .map(|m| pyfmt::body_str(m.body()))
            .unwrap_or_default();
        let req = self.requests.pop_front().unwrap_or_default();
        println!("{req} => {body}");
        if self.requests.is_empty() {
            if let Some(c) = e.connection() {
                e.container_mut().close_connection(c, None);
            }
        } else {
            self.pending = true;
            self.next_request(e);
        }
    }
}

/// Send requests to the supplied address and print responses.
#[derive(Parser)]
#[command(name = "client", help_template = HELP_TEMPLATE)]
struct Args {
    /// address to which messages are sent
    #[arg(
        short,
        long,
        value_name = "ADDRESS",
        default_value = "localhost:5672/examples"
    )]
    address: String,
    /// the requests to send (default: four lines of Jabberwocky)
    #[arg(value_name = "REQUEST")]
    requests: Vec<String>,
}

fn main() {
    let m = Args::parse();
    let requests: VecDeque<String> = if m.requests.is_empty() {
        REQUESTS.iter().map(|s| s.to_string()).collect()
    } else {
        m.requests.into()
    };
    Container::new(Client {
        url: m.address,
        pending: !requests.is_empty(),
        requests,
        sender: None,
        receiver: None,
        reply_to: None,
    })
    .run();
}
