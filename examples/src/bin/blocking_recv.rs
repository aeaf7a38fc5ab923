//! `simple_recv` on the blocking API (`amqp_mio::BlockingConnection`), with no async runtime:
//! receive `-m` messages (0: until interrupted) with a window of 10, print each body as
//! Proton's `simple_recv.py` does, and accept it. Duplicates (a message-id seen before, resent
//! after a lost outcome) are accepted and reported, not printed again.
//!
//! ```text
//! blocking_recv [-a localhost:5672/examples] [-m 100]
//! ```

use std::collections::HashSet;
use std::process::ExitCode;

use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::pyfmt;
use amqp_mio::{BlockingConnection, BlockingError, ConnectOptions, Url, DEFAULT_TIMEOUT};

/// Receive messages from the supplied address, one blocking call at a time.
#[derive(Parser)]
#[command(name = "blocking_recv", help_template = HELP_TEMPLATE)]
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

fn run(a: &Args) -> Result<(), BlockingError> {
    let url = Url::parse(&a.address)?;
    let address = url.address().unwrap_or("examples").to_string();
    let conn =
        BlockingConnection::open_with(ConnectOptions::new().url(url), Some(DEFAULT_TIMEOUT))?;
    let receiver = conn.receiver(&address, 10)?;
    let mut seen = HashSet::new();
    let mut received = 0;
    while a.messages == 0 || received < a.messages {
        let Some(d) = receiver.receive(None)? else {
            continue;
        };
        let m = d.message();
        let fresh = m
            .message_id()
            .map(|id| seen.insert(pyfmt::id_repr(id)))
            .unwrap_or(true);
        if fresh {
            println!("{}", pyfmt::body_str(m.body()));
            received += 1;
        } else if let Some(id) = m.message_id() {
            println!("duplicate message ignored {}", pyfmt::id_repr(id));
        }
        d.accept()?;
    }
    conn.close()
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blocking_recv: {e}");
            ExitCode::FAILURE
        }
    }
}
