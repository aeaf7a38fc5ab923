#![forbid(unsafe_code)]
//! # amqp-examples — Qpid Proton's example suite in Rust
//!
//! Each binary in `src/bin/` is a Rust port of one of Proton's Python examples
//! (`python/examples/*.py`), with the same command-line flags and defaults, built on
//! [`amqp_tokio::Container`] and the [`MessagingHandler`](amqp_engine::messaging::MessagingHandler)
//! callbacks. Run any of them with `--help`.
//!
//! | Binary | What it does | Flags (defaults) |
//! |---|---|---|
//! | `helloworld` | Sends `Hello World!` to a queue and receives it. With no `-a`, starts the example broker in-process on a free loopback port first, so it works with no broker around. | `-a/--address URL` (none: in-process broker; Proton's is `localhost:5672/examples`) |
//! | `helloworld_direct` | Listens, connects to itself, sends and receives `Hello World!` with no broker. | `-a/--address` (`localhost:8888/examples`) |
//! | `simple_send` | Sends `-m` messages `{'sequence': n}` at least once: resends what was unconfirmed when the connection drops. | `-a/--address` (`localhost:5672/examples`), `-m/--messages` (100), `--durable` (durable messages and target, ours: a broker keeps them across a restart) |
//! | `simple_recv` | Receives and prints `-m` messages (0: forever), ignoring duplicates. | `-a/--address` (`localhost:5672/examples`), `-m/--messages` (100), `--durable` (a durable source, ours) |
//! | `direct_send` | Listens; sends `-m` messages to a receiver that connects. | `-a/--address` (`localhost:5672/examples`), `-m/--messages` (100) |
//! | `direct_recv` | Listens; receives `-m` messages from a sender that connects. | `-a/--address` (`localhost:5672/examples`), `-m/--messages` (100) |
//! | `client` | Sends requests (the arguments, or four lines of Jabberwocky) with a dynamic reply queue as `reply_to`; prints `request => response`. | `-a/--address` (`localhost:5672/examples`), `[REQUEST ...]` |
//! | `server` | Consumes requests from a broker queue and replies in upper case to their `reply_to`. | `-a/--address` (`localhost:5672/examples`) |
//! | `server_direct` | The same server without a broker: listens, gives each client a dynamic reply address. | `-a/--address` (`0.0.0.0:8888`) |
//! | `colour_send` | Sends `-m` messages alternately `green`/`red` (application property `colour`). | `-a/--address` (`localhost:5672/examples`), `-m/--messages` (100) |
//! | `selected_recv` | Receives only `colour = 'green'` messages (a JMS selector filter). | `-a/--address` (`localhost:5672/examples`), `-m/--messages` (0: forever) |
//! | `queue_browser` | Browses a queue (distribution mode `copy`): prints its messages, leaves them there. | `-a/--address` (`localhost:5672/examples`) |
//! | `recurring_timer` | Prints `Tick...` every period. | `-p/--period` (1.0 s), `-t/--timeout` (0: forever) |
//! | `broker` | A small broker: see [`broker`]. | `-a/--address` (`localhost:5672`), `-v/--verbose`, `-l/--redelivery-limit` (5), `--dead-letter-queue`, `--user`/`--password`, `--users FILE`, `--tls-cert`/`--tls-key`, `--prefetch` (100), `--max-queue-messages` (100000), `--max-queue-bytes` (256 MiB), `--memory-budget` (1 GiB), `--max-message-size` (32 MiB), `--idle-timeout` (60 s) |
//!
//! The library part holds what the binaries share: the [`args`] help layout,
//! clap-derived command lines, Python-style printing ([`pyfmt`]), the [`broker`] handler, its [`limits`] and its JMS [`selector`]
//! evaluator.

pub mod args;
pub mod broker;
pub mod limits;
pub mod pyfmt;
pub mod selector;

use amqp_engine::messaging::{AcceptorHandle, ContainerContext, Url};

/// Splits a Proton example address such as `localhost:5672/examples` into the URL to connect
/// to and the node address (`default_address` when the URL names none). Exits with status 2
/// on a malformed URL.
pub fn url_and_address(s: &str, default_address: &str) -> (Url, String) {
    match Url::parse(s) {
        Ok(u) => {
            let a = u.address().unwrap_or(default_address).to_string();
            (u, a)
        }
        Err(e) => {
            eprintln!("error: bad address {s:?}: {e}");
            std::process::exit(2)
        }
    }
}

/// Prints `Listening on URL` (with the port actually bound) to stderr, so scripts and tests
/// can find a listener started on port 0.
pub fn announce_listening(r: &ContainerContext, acceptor: Option<AcceptorHandle>) {
    if let Some(url) = acceptor.and_then(|a| r.acceptor_url(a)) {
        eprintln!("Listening on {url}");
    }
}
