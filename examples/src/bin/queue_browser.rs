//! Proton's `queue_browser.py`: look at the messages on a queue without consuming them. The
//! receiver asks for distribution mode `copy` (`Copy()` in Proton); the broker sends copies
//! and keeps the messages. Prints each message (as Python's `print(message)` would) and exits
//! when the queue has nothing more to show: credit is granted in batches with `drain`, and a
//! batch that comes back short (`on_drained`) means the end.
//!
//! ```text
//! queue_browser [-a localhost:5672/examples]
//! ```

use amqp_engine::messaging::{
    ConnectOptions, Event, LinkHandle, LinkOption, LinkOptions, MessagingHandler,
};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::{pyfmt, url_and_address};
use amqp_tokio::Container;

/// Credit per drain round.
const BATCH: u32 = 100;

struct Browser {
    url: amqp_engine::messaging::Url,
    address: String,
    receiver: Option<LinkHandle>,
    in_batch: u32,
}

impl Browser {
    fn next_batch(&mut self, e: &mut Event<'_>) {
        let Some(l) = self.receiver else { return };
        self.in_batch = 0;
        let r = e.container_mut();
        let _ = r.flow(l, BATCH);
        let _ = r.drain(l);
    }
}

impl MessagingHandler for Browser {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let r = e.container_mut();
        let conn = r
            .connect_with(ConnectOptions::new().url(self.url.clone()))
            .expect("connect");
        let mut opts = LinkOptions::address(self.address.clone()).with(LinkOption::Copy);
        opts.prefetch = Some(0);
        self.receiver = r.create_receiver(conn, opts).ok();
    }

    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        if e.link().is_some() && e.link() == self.receiver {
            self.next_batch(e);
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        if let Some(m) = e.message() {
            println!("{}", pyfmt::message_repr(m));
        }
        self.in_batch += 1;
    }

    fn on_drained(&mut self, e: &mut Event<'_>) {
        if self.in_batch == BATCH {
            // There may be more.
            self.next_batch(e);
        } else if let Some(c) = e.connection() {
            e.container_mut().close_connection(c, None);
        }
    }
}

/// Print the messages on a queue, leaving them there.
#[derive(Parser)]
#[command(name = "queue_browser", help_template = HELP_TEMPLATE)]
struct Args {
    /// address of the queue to browse
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
    Container::new(Browser {
        url,
        address,
        receiver: None,
        in_batch: 0,
    })
    .run();
}
