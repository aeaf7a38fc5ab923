//! Proton's `simple_send.py`: send `-m` messages (`{'sequence': n}`, message-id `n`) to a
//! queue, at least once, and print `all messages confirmed` when the broker has accepted them
//! all.
//!
//! At-least-once: a message counts as sent only once accepted. If the connection drops, the
//! container reconnects and re-attaches the sender; every message whose outcome was lost
//! (`on_in_doubt`, one event per unsettled message, after `on_disconnected`) is sent again
//! before new ones. This is Proton's `on_disconnected: self.sent = self.confirmed`, made exact
//! per message. Receivers drop duplicates by message-id (see `simple_recv`).
//!
//! ```text
//! simple_send [-a localhost:5672/examples] [-m 100] [--durable]
//! ```

use std::collections::{BTreeSet, HashMap};

use amqp_engine::messaging::{Event, MessagingHandler, Tracker};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_proto::message::Message;
use amqp_proto::messaging::{TargetKind, TerminusDurability};
use amqp_proto::value::OrderedMap;
use amqp_proto::Value;
use amqp_tokio::Container;

struct Send {
    url: String,
    total: u64,
    /// Durable messages and target (a broker then keeps them across its restart).
    durable: bool,
    /// The highest sequence number sent so far.
    sent: u64,
    confirmed: u64,
    /// Messages to send again (their outcome was lost or they were released).
    resend: BTreeSet<u64>,
    /// Sent, outcome not yet known.
    outstanding: HashMap<Tracker, u64>,
}

fn message(n: u64, durable: bool) -> Message {
    let mut body = OrderedMap::new();
    body.insert(Value::string("sequence"), Value::Long(n as i64));
    Message::builder()
        .message_id(n)
        .durable(durable)
        .body(Value::Map(body))
        .build()
}

impl MessagingHandler for Send {
    fn on_start(&mut self, e: &mut Event<'_>) {
        match e.container_mut().connect_sender(&self.url) {
            Ok(link) if self.durable => {
                // A durable target: a broker then keeps the queue itself across a restart.
                let target = e
                    .container_mut()
                    .link_config_mut(link)
                    .and_then(|c| c.target.as_mut());
                if let Some(TargetKind::Target(t)) = target {
                    t.durable = Some(TerminusDurability::Configuration);
                }
            }
            Ok(_) => {}
            Err(err) => {
                eprintln!("simple_send: {err}");
                e.container_mut().stop();
            }
        }
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
            match e.send(&message(n, self.durable)) {
                Ok(t) => {
                    self.outstanding.insert(t, n);
                }
                Err(err) => {
                    eprintln!("simple_send: {err}");
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
        }
    }

    fn on_rejected(&mut self, e: &mut Event<'_>) {
        // Not Proton's behaviour (it waits forever): report, and count it as done.
        if let Some(n) = e.tracker().and_then(|t| self.outstanding.remove(&t)) {
            let why = e.error().map(|x| x.to_string()).unwrap_or_default();
            eprintln!("simple_send: message {n} rejected {why}");
            self.confirmed += 1;
            if self.confirmed == self.total {
                if let Some(c) = e.connection() {
                    e.container_mut().close_connection(c, None);
                }
            }
        }
    }

    fn on_released(&mut self, e: &mut Event<'_>) {
        if let Some(n) = e.tracker().and_then(|t| self.outstanding.remove(&t)) {
            self.resend.insert(n);
        }
    }

    fn on_in_doubt(&mut self, e: &mut Event<'_>) {
        if let Some(n) = e.tracker().and_then(|t| self.outstanding.remove(&t)) {
            self.resend.insert(n);
        }
    }

    fn on_disconnected(&mut self, _e: &mut Event<'_>) {
        // Proton: `self.sent = self.confirmed`. Here each unconfirmed message comes back
        // through `on_in_doubt`, which queues exactly those for resending.
    }
}

/// Send messages to the supplied address.
#[derive(Parser)]
#[command(name = "simple_send", help_template = HELP_TEMPLATE)]
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
    /// durable messages to a durable target, so that a broker keeps them across its restart
    /// (not in Proton's simple_send.py)
    #[arg(long)]
    durable: bool,
}

fn main() {
    let m = Args::parse();
    Container::new(Send {
        url: m.address,
        total: m.messages,
        durable: m.durable,
        sent: 0,
        confirmed: 0,
        resend: BTreeSet::new(),
        outstanding: HashMap::new(),
    })
    .run();
}
