//! Proton's `server.py`: the service side of request/response through a broker. Consumes
//! requests from the queue in the address, and answers each with its body in upper case,
//! sent on one *anonymous* sender (no target address) to the request's `reply_to`, with its
//! `correlation_id`. Runs until interrupted.
//!
//! ```text
//! server [-a localhost:5672/examples]
//! ```

use std::collections::VecDeque;

use amqp_engine::messaging::{ConnectOptions, Event, LinkHandle, LinkOptions, MessagingHandler};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::{pyfmt, url_and_address};
use amqp_proto::message::{Body, Message};
use amqp_proto::Value;
use amqp_tokio::Container;

struct Server {
    url: amqp_engine::messaging::Url,
    address: String,
    sender: Option<LinkHandle>,
    /// Replies waiting for credit.
    backlog: VecDeque<Message>,
}

/// The request's body in upper case (other bodies are echoed unchanged).
fn upper(body: &Body) -> Body {
    match body {
        Body::Value(Value::String(s)) => Body::Value(Value::string(s.to_uppercase())),
        other => other.clone(),
    }
}

impl Server {
    fn flush(&mut self, e: &mut Event<'_>) {
        let Some(s) = self.sender else { return };
        let r = e.container_mut();
        while r.credit(s) > 0 {
            let Some(m) = self.backlog.pop_front() else {
                break;
            };
            if r.send(s, &m).is_err() {
                self.backlog.push_front(m);
                break;
            }
        }
    }
}

impl MessagingHandler for Server {
    fn on_start(&mut self, e: &mut Event<'_>) {
        println!("Listening on {}", self.url);
        let r = e.container_mut();
        let conn = r
            .connect_with(ConnectOptions::new().url(self.url.clone()))
            .expect("connect");
        r.create_receiver(conn, self.address.as_str())
            .expect("receiver");
        self.sender = r.create_sender(conn, LinkOptions::default()).ok();
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let Some(req) = e.message() else { return };
        println!("Received {}", pyfmt::message_repr(req));
        let mut reply = Message::new(upper(req.body()));
        if let Some(to) = req.reply_to() {
            reply.set_address(to);
        }
        if let Some(id) = req.correlation_id() {
            reply.set_correlation_id(id.clone());
        }
        self.backlog.push_back(reply);
        self.flush(e);
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        self.flush(e);
    }
}

#[derive(Parser)]
#[command(name = "server", help_template = HELP_TEMPLATE)]
struct Args {
    /// address from which messages are received
    #[arg(
        short,
        long,
        value_name = "ADDRESS",
        default_value = "localhost:5672/examples"
    )]
    address: String,
}

fn main() {
    let m = Args::parse();
    let (url, address) = url_and_address(&m.address, "examples");
    Container::new(Server {
        url,
        address,
        sender: None,
        backlog: VecDeque::new(),
    })
    .run();
}
