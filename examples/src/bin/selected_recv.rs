//! Proton's `selected_recv.py`: receive only the messages whose application property
//! `colour` is `green`, with a JMS selector filter (`Selector("colour = 'green'")`) on the
//! receiver's source; the broker leaves the others on the queue. Prints the bodies of `-m`
//! messages (0: forever).
//!
//! ```text
//! selected_recv [-a localhost:5672/examples] [-m 0]
//! ```

use amqp_engine::messaging::{ConnectOptions, Event, LinkOption, LinkOptions, MessagingHandler};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::{pyfmt, url_and_address};
use amqp_tokio::Container;

struct Recv {
    url: amqp_engine::messaging::Url,
    address: String,
    expected: u64,
    received: u64,
}

impl MessagingHandler for Recv {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let r = e.container_mut();
        let conn = r
            .connect_with(ConnectOptions::new().url(self.url.clone()))
            .expect("connect");
        let opts = LinkOptions::address(self.address.clone())
            .with(LinkOption::Selector("colour = 'green'".into()));
        r.create_receiver(conn, opts).expect("receiver");
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        if let Some(m) = e.message() {
            println!("{}", pyfmt::body_str(m.body()));
        }
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

    fn on_link_error(&mut self, e: &mut Event<'_>) {
        if let Some(err) = e.error() {
            eprintln!("selected_recv: {err}");
        }
    }
}

#[derive(Parser)]
#[command(name = "selected_recv", help_template = HELP_TEMPLATE)]
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
    #[arg(short, long, value_name = "MESSAGES", default_value_t = 0)]
    messages: u64,
}

fn main() {
    let m = Args::parse();
    let (url, address) = url_and_address(&m.address, "examples");
    Container::new(Recv {
        url,
        address,
        expected: m.messages,
        received: 0,
    })
    .run();
}
