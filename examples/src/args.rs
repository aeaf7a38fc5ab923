//! Command-line parsing for the examples: each binary derives a [`clap::Parser`] with Proton's
//! flag names and defaults (`-a/--address`, `-m/--messages`, …) and lays its `--help` out as
//! Python's `optparse` does, usage line first ([`HELP_TEMPLATE`]). A bad command line exits
//! with status 2, as `optparse` does.
//!
//! ```
//! use amqp_examples::args::{Parser, HELP_TEMPLATE};
//!
//! /// Send messages to the supplied address.
//! #[derive(Parser)]
//! #[command(name = "simple_send", help_template = HELP_TEMPLATE)]
//! struct Args {
//!     /// address to which messages are sent
//!     #[arg(short, long, value_name = "ADDRESS", default_value = "localhost:5672/examples")]
//!     address: String,
//!     /// number of messages to send
//!     #[arg(short, long, value_name = "MESSAGES", default_value_t = 100)]
//!     messages: u64,
//! }
//!
//! let m = Args::try_parse_from(["simple_send", "-m", "5"]).unwrap();
//! assert_eq!(m.address, "localhost:5672/examples");
//! assert_eq!(m.messages, 5);
//! let m = Args::try_parse_from(["simple_send", "-aX", "--messages=7"]).unwrap();
//! assert_eq!((m.address.as_str(), m.messages), ("X", 7));
//! assert!(Args::try_parse_from(["simple_send", "--nope"]).is_err());
//! ```

pub use clap::Parser;

/// The `--help` layout of every example: the usage line, the description, the options (each
/// with its default), then any closing text.
pub const HELP_TEMPLATE: &str = "{usage-heading} {usage}\n{about-section}\n{all-args}{after-help}";
