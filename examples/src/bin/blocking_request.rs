//! Proton's `sync_client.py`: request and reply on the blocking API
//! (`amqp_mio::BlockingConnection`), with no async runtime. A dynamic receiver gets a
//! temporary reply queue from the broker; each request carries its address in `reply_to`,
//! is sent (blocking until accepted), and its response received, printing
//! `request => response`. Pair it with `server` through the broker.
//!
//! ```text
//! blocking_request [-a localhost:5672/examples] [REQUEST ...]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::pyfmt;
use amqp_mio::amqp_proto::message::Message;
use amqp_mio::{BlockingConnection, BlockingError, ConnectOptions, Url, DEFAULT_TIMEOUT};

const REQUESTS: [&str; 4] = [
    "Twas brillig, and the slithy toves",
    "Did gire and gymble in the wabe.",
    "All mimsy were the borogroves,",
    "And the mome raths outgrabe.",
];

/// How long to wait for each response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Send requests to the supplied address and print responses, one at a time.
#[derive(Parser)]
#[command(name = "blocking_request", help_template = HELP_TEMPLATE)]
struct Args {
    /// address to which requests are sent
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

fn run(a: &Args) -> Result<(), BlockingError> {
    let url = Url::parse(&a.address)?;
    let address = url.address().unwrap_or("examples").to_string();
    let conn =
        BlockingConnection::open_with(ConnectOptions::new().url(url), Some(DEFAULT_TIMEOUT))?;
    let sender = conn.sender(&address)?;
    let replies = conn.dynamic_receiver(1)?;
    let reply_to = replies.address().unwrap_or_default();
    let requests: Vec<String> = if a.requests.is_empty() {
        REQUESTS.iter().map(|s| s.to_string()).collect()
    } else {
        a.requests.clone()
    };
    for request in requests {
        let mut m = Message::new(request.as_str());
        m.set_reply_to(reply_to.as_str());
        sender.send(&m)?;
        let Some(response) = replies.receive(Some(RESPONSE_TIMEOUT))? else {
            return Err(BlockingError::Timeout(RESPONSE_TIMEOUT));
        };
        println!(
            "{request} => {}",
            pyfmt::body_str(response.message().body())
        );
        response.accept()?;
    }
    conn.close()
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blocking_request: {e}");
            ExitCode::FAILURE
        }
    }
}
