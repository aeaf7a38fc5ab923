//! `simple_send` on the blocking API (`amqp_mio::BlockingConnection`, Proton's
//! `BlockingConnection`), with no async runtime: send `-m` messages (`{'sequence': n}`,
//! message-id `n`), each blocking until the broker settles it, and print
//! `all messages confirmed`. A message released, or whose outcome was lost with the
//! connection (reconnect brings it back), is sent again: at least once.
//!
//! ```text
//! blocking_send [-a localhost:5672/examples] [-m 100]
//! ```

use std::process::ExitCode;

use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_mio::amqp_proto::message::Message;
use amqp_mio::amqp_proto::value::OrderedMap;
use amqp_mio::amqp_proto::Value;
use amqp_mio::{BlockingConnection, BlockingError, ConnectOptions, Outcome, Url, DEFAULT_TIMEOUT};

/// Send messages to the supplied address, one at a time, each waiting for its outcome.
#[derive(Parser)]
#[command(name = "blocking_send", help_template = HELP_TEMPLATE)]
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

fn message(n: u64) -> Message {
    let mut body = OrderedMap::new();
    body.insert(Value::string("sequence"), Value::Long(n as i64));
    Message::builder()
        .message_id(n)
        .body(Value::Map(body))
        .build()
}

fn run(a: &Args) -> Result<(), BlockingError> {
    let url = Url::parse(&a.address)?;
    let address = url.address().unwrap_or("examples").to_string();
    let conn =
        BlockingConnection::open_with(ConnectOptions::new().url(url), Some(DEFAULT_TIMEOUT))?;
    let sender = conn.sender(&address)?;
    for n in 1..=a.messages {
        loop {
            match sender.send(&message(n))? {
                Outcome::Accepted => break,
                Outcome::Released | Outcome::Modified(_) | Outcome::InDoubt => continue,
                other => {
                    eprintln!("blocking_send: message {n}: {other:?}");
                    break;
                }
            }
        }
    }
    println!("all messages confirmed");
    conn.close()
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blocking_send: {e}");
            ExitCode::FAILURE
        }
    }
}
