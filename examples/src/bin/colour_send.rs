//! Proton's `colour_send.py`: send `-m` messages, alternately `green 1`, `red 2`, `green 3`,
//! …, each with the application property `colour` set to its colour (for `selected_recv`);
//! print `all messages confirmed` once the broker has accepted them all.
//!
//! ```text
//! colour_send [-a localhost:5672/examples] [-m 100]
//! ```

use std::collections::{BTreeSet, HashMap};

use amqp_engine::messaging::{Event, MessagingHandler, Tracker};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_proto::message::Message;
use amqp_tokio::Container;

struct Send {
    url: String,
    total: u64,
    sent: u64,
    confirmed: u64,
    resend: BTreeSet<u64>,
    outstanding: HashMap<Tracker, u64>,
}

fn message(n: u64) -> Message {
    // Proton counts from 0: even sends are green.
    let colour = if (n - 1) % 2 == 1 { "red" } else { "green" };
    Message::builder()
        .message_id(n)
        .application_property("colour", colour)
        .body(format!("{colour} {n}"))
        .build()
}

impl MessagingHandler for Send {
    fn on_start(&mut self, e: &mut Event<'_>) {
        if let Err(err) = e.container_mut().connect_sender(&self.url) {
            eprintln!("colour_send: {err}");
            e.container_mut().stop();
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
        }
    }

    fn on_in_doubt(&mut self, e: &mut Event<'_>) {
        if let Some(n) = e.tracker().and_then(|t| self.outstanding.remove(&t)) {
            self.resend.insert(n);
        }
    }
}

/// Send messages to the supplied address.
#[derive(Parser)]
#[command(name = "colour_send", help_template = HELP_TEMPLATE)]
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
    })
    .run();
}
