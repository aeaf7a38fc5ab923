//! Command-line parsing: a `clap`-derived `Cli`, checked and resolved into a [`Config`].

use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};

/// How the modes go together, shown after the options in `--help`.
const AFTER_HELP: &str = "\
MODES:
    amqp-perf peer [OPTIONS]                        one process: a receiver container listening
                                                    on 127.0.0.1:0 and a sender connecting to it
    amqp-perf peer --role receiver --url URL        listen on URL's host:port (two processes)
    amqp-perf peer --role sender --url URL          connect to a listening receiver
    amqp-perf [broker] --url URL [--role ROLE]      through a broker: send to and receive from
                                                    URL's address (default address: amqp-perf)

Numbers accept `_` separators and k/m suffixes (100k, 1m). Output: human-readable lines, then
one JSON line (starting with `{`). Latency is from the sender's timestamp (an application
property `ts`, u64 ns) to on_message: against one monotonic clock in one process, against the
wall clock (SystemTime) across processes.";

/// Which path messages take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Sender connects straight to a listening receiver.
    Peer,
    /// Sender and receiver both connect to a broker.
    Broker,
}

/// Which ends this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Role {
    Both,
    Sender,
    Receiver,
}

/// Settlement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Settle {
    /// Sent unsettled; the sender waits for every outcome.
    Unsettled,
    /// Sent settled (at most once).
    Presettled,
}

/// Which API the sender uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Api {
    /// A `MessagingHandler` in a container.
    Handler,
    /// The async `Client`.
    Async,
}

impl Api {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Api::Handler => "handler",
            Api::Async => "async",
        }
    }
}

/// Which runtime each container runs on: a tokio runtime, or amqp-mio's poll loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum RuntimeKind {
    CurrentThread,
    MultiThread,
    Mio,
}

/// Everything the command line says.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) mode: Mode,
    pub(crate) role: Role,
    pub(crate) url: Option<String>,
    pub(crate) count: u64,
    pub(crate) body_size: usize,
    pub(crate) credit: u32,
    pub(crate) settle: Settle,
    pub(crate) duration_max: Duration,
    pub(crate) runtime: RuntimeKind,
    pub(crate) api: Api,
    /// Paced sending, messages per second over the run (`None`: as fast as credit allows).
    pub(crate) rate: Option<f64>,
    /// Sender connections, and sender links on each (fan-in into one receiver).
    pub(crate) connections: u32,
    pub(crate) links: u32,
    /// Unsettled messages the sender keeps in flight at most (0: no cap beyond credit).
    pub(crate) max_in_flight: u64,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Peer => "peer",
            Mode::Broker => "broker",
        }
    }
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Both => "both",
            Role::Sender => "sender",
            Role::Receiver => "receiver",
        }
    }
}

impl Settle {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Settle::Unsettled => "unsettled",
            Settle::Presettled => "presettled",
        }
    }
}

impl RuntimeKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            RuntimeKind::CurrentThread => "current-thread",
            RuntimeKind::MultiThread => "multi-thread",
            RuntimeKind::Mio => "mio",
        }
    }
}

/// Parses a count: `1000000`, `1_000_000`, `100k`, `1m`.
pub(crate) fn parse_number(s: &str) -> Result<u64, String> {
    let t: String = s.chars().filter(|c| *c != '_').collect();
    let (digits, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        _ => (&t[..], 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("not a number: {s:?}"))
}

/// The command line as typed.
#[derive(Parser, Debug)]
#[command(
    name = "amqp-perf",
    about = "end-to-end AMQP 1.0 throughput and latency (quiver-like), on the tokio adapter",
    after_help = AFTER_HELP
)]
struct Cli {
    /// peer (default without --url) or broker (default with --url)
    mode: Option<Mode>,
    /// messages to transfer (default 1000000 peer, 100000 broker)
    #[arg(long, value_name = "N", value_parser = parse_number)]
    count: Option<u64>,
    /// payload bytes per message, a `data` section
    #[arg(long, value_name = "B", default_value = "100", value_parser = parse_number)]
    body_size: u64,
    /// receiver credit window / prefetch
    #[arg(long, value_name = "W", default_value = "1000", value_parser = parse_number)]
    credit: u64,
    /// unsettled (every outcome awaited) or presettled
    #[arg(long, value_name = "MODE", value_enum, default_value_t = Settle::Unsettled)]
    settle_mode: Settle,
    /// safety bound in seconds: stop and report as timed out
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    duration_max: f64,
    /// current-thread (one tokio thread per container), multi-thread
    /// (amqp_tokio::Container::run: 2 workers per container), or mio (amqp_mio::Container:
    /// a poll loop in the container's thread; handler API only)
    #[arg(long, value_name = "RT", value_enum, default_value_t = RuntimeKind::CurrentThread)]
    runtime: RuntimeKind,
    /// sender, receiver, or both (in one process)
    #[arg(long, value_name = "ROLE", value_enum, default_value_t = Role::Both)]
    role: Role,
    /// handler (MessagingHandler containers) or async (the sender is an amqp_tokio::Client:
    /// send_nowait, --credit outcomes outstanding; the receiver stays a handler)
    #[arg(long, value_name = "API", value_enum, default_value_t = Api::Handler)]
    api: Api,
    /// amqp://host:port[/address]
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// paced sending at R messages per second over the whole run (what is due is sent at
    /// each timer tick; latency then shows the path's delay at that load, not its queueing)
    #[arg(long, value_name = "R", value_parser = parse_number)]
    rate: Option<u64>,
    /// sender connections (fan-in: all of them send to the one receiver)
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_number)]
    connections: u64,
    /// sender links on each sender connection
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_number)]
    links: u64,
    /// unsettled messages the sender keeps in flight at most, whatever credit the peer grants
    /// (0: as many as credit allows; RabbitMQ grants 65,536)
    #[arg(long, value_name = "N", default_value = "0", value_parser = parse_number)]
    max_in_flight: u64,
}

/// Parses the arguments (the program name first): the configuration, or clap's error, whose
/// `exit()` prints `--help` (status 0) or the error and usage (status 2).
pub(crate) fn parse<I, S>(args: I) -> Result<Config, clap::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    let invalid = |msg: &str| Cli::command().error(ErrorKind::ValueValidation, msg);
    let mode = match (cli.mode, &cli.url) {
        (Some(m), _) => m,
        (None, Some(_)) => Mode::Broker,
        (None, None) => Mode::Peer,
    };
    if mode == Mode::Broker && cli.url.is_none() {
        return Err(invalid("broker mode needs --url amqp://host:port/address"));
    }
    if mode == Mode::Peer && cli.role != Role::Both && cli.url.is_none() {
        return Err(invalid(
            "peer --role sender|receiver needs --url amqp://host:port",
        ));
    }
    let credit = u32::try_from(cli.credit).map_err(|_| invalid("--credit too large"))?;
    if credit == 0 {
        return Err(invalid("--credit must be at least 1"));
    }
    let body_size = usize::try_from(cli.body_size).map_err(|_| invalid("--body-size too large"))?;
    if !(cli.duration_max > 0.0 && cli.duration_max < 86_400.0) {
        return Err(invalid("--duration-max: between 0 and 86400 seconds"));
    }
    let count = cli.count.unwrap_or(match mode {
        Mode::Peer => 1_000_000,
        Mode::Broker => 100_000,
    });
    if count == 0 {
        return Err(invalid("--count must be at least 1"));
    }
    let fan = |n: u64, what: &str| {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| invalid(&format!("--{what}: between 1 and 1000")))
    };
    let connections = fan(cli.connections, "connections")?;
    let links = fan(cli.links, "links")?;
    if cli.rate == Some(0) {
        return Err(invalid("--rate must be at least 1"));
    }
    if cli.api == Api::Async && (connections, links, cli.rate) != (1, 1, None) {
        return Err(invalid(
            "--api async sends on one link, unpaced: no --connections, --links or --rate",
        ));
    }
    Ok(Config {
        mode,
        role: cli.role,
        url: cli.url,
        count,
        body_size,
        credit,
        settle: cli.settle_mode,
        duration_max: Duration::from_secs_f64(cli.duration_max),
        runtime: cli.runtime,
        api: cli.api,
        rate: cli.rate.map(|r| r as f64),
        connections,
        links,
        max_in_flight: cli.max_in_flight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, clap::Error> {
        parse(std::iter::once("amqp-perf").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let c = run(&[]).unwrap();
        assert_eq!(c.mode, Mode::Peer);
        assert_eq!(c.role, Role::Both);
        assert_eq!(c.count, 1_000_000);
        assert_eq!((c.body_size, c.credit), (100, 1000));
        assert_eq!(c.settle, Settle::Unsettled);
        let c = run(&["--url", "amqp://127.0.0.1:5672/q"]).unwrap();
        assert_eq!(c.mode, Mode::Broker);
        assert_eq!(c.count, 100_000);
    }

    #[test]
    fn flags() {
        let c = run(&[
            "peer",
            "--count=100k",
            "--body-size",
            "1_000",
            "--credit",
            "5",
            "--settle-mode",
            "presettled",
            "--duration-max",
            "2.5",
            "--runtime",
            "multi-thread",
        ])
        .unwrap();
        assert_eq!(c.count, 100_000);
        assert_eq!(c.body_size, 1000);
        assert_eq!(c.credit, 5);
        assert_eq!(c.settle, Settle::Presettled);
        assert_eq!(c.duration_max, Duration::from_millis(2500));
        assert_eq!(c.runtime, RuntimeKind::MultiThread);
        assert_eq!(run(&["--api", "async"]).unwrap().api, Api::Async);
        let c = run(&["--rate", "100k", "--connections", "4", "--links", "2"]).unwrap();
        assert_eq!((c.rate, c.connections, c.links), (Some(100_000.0), 4, 2));
        assert_eq!(run(&[]).unwrap().rate, None);
        assert_eq!(run(&[]).unwrap().max_in_flight, 0);
        assert_eq!(run(&["--max-in-flight", "2k"]).unwrap().max_in_flight, 2000);
    }

    #[test]
    fn errors() {
        assert!(run(&["broker"]).is_err());
        assert!(run(&["peer", "--role", "sender"]).is_err());
        assert!(run(&["--count", "x"]).is_err());
        assert!(run(&["--credit", "0"]).is_err());
        assert!(run(&["--bogus"]).is_err());
        assert!(run(&["--settle-mode", "sometimes"]).is_err());
        assert!(run(&["--duration-max", "0"]).is_err());
        assert!(run(&["--rate", "0"]).is_err());
        assert!(run(&["--connections", "0"]).is_err());
        assert!(run(&["--links", "1001"]).is_err());
        assert!(run(&["--api", "async", "--links", "2"]).is_err());
        assert_eq!(run(&["--help"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        assert_eq!(parse_number("2m"), Ok(2_000_000));
    }
}
