//! Command-line parsing (no dependencies).

use std::time::Duration;

pub(crate) const USAGE: &str = "\
amqp-perf: end-to-end AMQP 1.0 throughput and latency (quiver-like), on the tokio adapter

USAGE:
    amqp-perf peer [OPTIONS]                        one process: a receiver container listening
                                                    on 127.0.0.1:0 and a sender connecting to it
    amqp-perf peer --role receiver --url URL        listen on URL's host:port (two processes)
    amqp-perf peer --role sender --url URL          connect to a listening receiver
    amqp-perf [broker] --url URL [--role ROLE]      through a broker: send to and receive from
                                                    URL's address (default address: amqp-perf)

OPTIONS:
    --count N              messages to transfer (default 1000000 peer, 100000 broker)
    --body-size B          payload bytes per message, a `data` section (default 100)
    --credit W             receiver credit window / prefetch (default 1000)
    --settle-mode MODE     unsettled (default; every outcome awaited) or presettled
    --duration-max S       safety bound in seconds: stop and report as timed out (default 60)
    --runtime RT           current-thread (default: one tokio thread per container) or
                           multi-thread (amqp_tokio::Container::run: 2 workers per container)
    --role ROLE            sender, receiver, or both (default both, in one process)
    --api API              handler (default: MessagingHandler containers) or async (the
                           sender is an amqp_tokio::Client: send_nowait, --credit outcomes
                           outstanding; the receiver stays a handler)
    --url URL              amqp://host:port[/address]
    -h, --help             this text

Numbers accept `_` separators and k/m suffixes (100k, 1m). Output: human-readable lines, then
one JSON line (starting with `{`). Latency is from the sender's timestamp (an application
property `ts`, u64 ns) to on_message: against one monotonic clock in one process, against the
wall clock (SystemTime) across processes.";

/// Which path messages take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Sender connects straight to a listening receiver.
    Peer,
    /// Sender and receiver both connect to a broker.
    Broker,
}

/// Which ends this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Both,
    Sender,
    Receiver,
}

/// Settlement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settle {
    /// Sent unsettled; the sender waits for every outcome.
    Unsettled,
    /// Sent settled (at most once).
    Presettled,
}

/// Which API the sender uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// Which tokio runtime each container runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RuntimeKind {
    CurrentThread,
    MultiThread,
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

/// What the command line asked for.
#[derive(Debug)]
pub(crate) enum Parsed {
    Run(Config),
    Help,
}

/// Parses the arguments (without the program name).
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut mode = None;
    let mut role = Role::Both;
    let mut url = None;
    let mut count = None;
    let mut body_size = 100usize;
    let mut credit = 1000u32;
    let mut settle = Settle::Unsettled;
    let mut duration_max = Duration::from_secs(60);
    let mut runtime = RuntimeKind::CurrentThread;
    let mut api = Api::Handler;

    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "peer" if mode.is_none() => mode = Some(Mode::Peer),
            "broker" if mode.is_none() => mode = Some(Mode::Broker),
            "--role" => {
                role = match value("--role")?.as_str() {
                    "sender" => Role::Sender,
                    "receiver" => Role::Receiver,
                    "both" => Role::Both,
                    r => return Err(format!("--role: sender, receiver or both, not {r:?}")),
                }
            }
            "--url" => url = Some(value("--url")?),
            "--count" => count = Some(parse_number(&value("--count")?)?),
            "--body-size" => {
                body_size = usize::try_from(parse_number(&value("--body-size")?)?)
                    .map_err(|_| "--body-size too large".to_string())?
            }
            "--credit" => {
                credit = u32::try_from(parse_number(&value("--credit")?)?)
                    .map_err(|_| "--credit too large".to_string())?
            }
            "--settle-mode" => {
                settle = match value("--settle-mode")?.as_str() {
                    "unsettled" => Settle::Unsettled,
                    "presettled" => Settle::Presettled,
                    s => return Err(format!("--settle-mode: unsettled or presettled, not {s:?}")),
                }
            }
            "--duration-max" => {
                let v = value("--duration-max")?;
                let secs: f64 = v
                    .parse()
                    .map_err(|_| format!("--duration-max: not a number of seconds: {v:?}"))?;
                if !(secs > 0.0 && secs < 86_400.0) {
                    return Err("--duration-max: between 0 and 86400 seconds".into());
                }
                duration_max = Duration::from_secs_f64(secs);
            }
            "--runtime" => {
                runtime = match value("--runtime")?.as_str() {
                    "current-thread" => RuntimeKind::CurrentThread,
                    "multi-thread" => RuntimeKind::MultiThread,
                    r => {
                        return Err(format!(
                            "--runtime: current-thread or multi-thread, not {r:?}"
                        ))
                    }
                }
            }
            "--api" => {
                api = match value("--api")?.as_str() {
                    "handler" => Api::Handler,
                    "async" => Api::Async,
                    a => return Err(format!("--api: handler or async, not {a:?}")),
                }
            }
            other => return Err(format!("unexpected argument {other:?} (see --help)")),
        }
    }
    let mode = match (mode, &url) {
        (Some(m), _) => m,
        (None, Some(_)) => Mode::Broker,
        (None, None) => Mode::Peer,
    };
    if mode == Mode::Broker && url.is_none() {
        return Err("broker mode needs --url amqp://host:port/address".into());
    }
    if mode == Mode::Peer && role != Role::Both && url.is_none() {
        return Err("peer --role sender|receiver needs --url amqp://host:port".into());
    }
    if credit == 0 {
        return Err("--credit must be at least 1".into());
    }
    let count = count.unwrap_or(match mode {
        Mode::Peer => 1_000_000,
        Mode::Broker => 100_000,
    });
    if count == 0 {
        return Err("--count must be at least 1".into());
    }
    Ok(Parsed::Run(Config {
        mode,
        role,
        url,
        count,
        body_size,
        credit,
        settle,
        duration_max,
        runtime,
        api,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(c) => Ok(c),
            Parsed::Help => Err("help".into()),
        }
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
    }

    #[test]
    fn errors() {
        assert!(run(&["broker"]).is_err());
        assert!(run(&["peer", "--role", "sender"]).is_err());
        assert!(run(&["--count", "x"]).is_err());
        assert!(run(&["--credit", "0"]).is_err());
        assert!(run(&["--bogus"]).is_err());
        assert_eq!(run(&["--help"]).unwrap_err(), "help");
        assert_eq!(parse_number("2m"), Ok(2_000_000));
    }
}
