//! A tiny command-line parser in the style of Python's `optparse`, which Proton's examples use:
//! `-a ADDRESS`, `-aADDRESS`, `--address ADDRESS`, `--address=ADDRESS`, boolean flags, `-h` /
//! `--help`, and positional arguments.
//!
//! ```
//! use amqp_examples::args::Parser;
//!
//! let m = Parser::new("simple_send", "Send messages to the supplied address.")
//!     .opt('a', "address", "ADDRESS", "localhost:5672/examples", "address to which messages are sent")
//!     .opt('m', "messages", "MESSAGES", "100", "number of messages to send")
//!     .parse_from(["-m", "5"])
//!     .unwrap();
//! assert_eq!(m.get("address"), "localhost:5672/examples");
//! assert_eq!(m.get_parsed::<u64>("messages"), 5);
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::str::FromStr;

struct Spec {
    short: Option<char>,
    long: &'static str,
    metavar: Option<&'static str>,
    default: Option<String>,
    help: &'static str,
}

/// Declares the options of a program, then parses its arguments.
pub struct Parser {
    prog: &'static str,
    about: &'static str,
    usage_args: &'static str,
    epilog: Option<String>,
    specs: Vec<Spec>,
}

/// The parsed arguments.
#[derive(Debug, Clone)]
pub struct Matches {
    values: HashMap<&'static str, Option<String>>,
    flags: HashMap<&'static str, bool>,
    positionals: Vec<String>,
}

/// Why parsing stopped: a user error, or `--help` (the help text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// `-h`/`--help`: the text to print.
    Help(String),
    /// A bad command line: the message to print.
    Usage(String),
}

impl Parser {
    /// A parser for program `prog`, described by `about` (may be empty).
    pub fn new(prog: &'static str, about: &'static str) -> Parser {
        Parser {
            prog,
            about,
            usage_args: "",
            epilog: None,
            specs: Vec::new(),
        }
    }

    /// Names the positional arguments in the usage line (e.g. `"[REQUEST ...]"`).
    pub fn positionals(mut self, usage: &'static str) -> Parser {
        self.usage_args = usage;
        self
    }

    /// Text printed after the options in `--help`.
    pub fn epilog(mut self, text: impl Into<String>) -> Parser {
        self.epilog = Some(text.into());
        self
    }

    /// An option taking a value, with a default (`""` for none).
    pub fn opt(
        mut self,
        short: char,
        long: &'static str,
        metavar: &'static str,
        default: &str,
        help: &'static str,
    ) -> Parser {
        self.specs.push(Spec {
            short: (short != '\0').then_some(short),
            long,
            metavar: Some(metavar),
            default: (!default.is_empty()).then(|| default.to_string()),
            help,
        });
        self
    }

    /// A boolean flag (false unless given).
    pub fn flag(mut self, short: char, long: &'static str, help: &'static str) -> Parser {
        self.specs.push(Spec {
            short: (short != '\0').then_some(short),
            long,
            metavar: None,
            default: None,
            help,
        });
        self
    }

    /// The `--help` text.
    pub fn help(&self) -> String {
        let mut s = String::new();
        let _ = write!(s, "Usage: {} [options]", self.prog);
        if !self.usage_args.is_empty() {
            let _ = write!(s, " {}", self.usage_args);
        }
        s.push('\n');
        if !self.about.is_empty() {
            let _ = write!(s, "\n{}\n", self.about);
        }
        s.push_str("\nOptions:\n");
        let mut rows = vec![(
            "-h, --help".to_string(),
            "show this help message and exit".to_string(),
        )];
        for sp in &self.specs {
            let names = match (sp.short, sp.metavar) {
                (Some(c), Some(m)) => format!("-{c} {m}, --{}={m}", sp.long),
                (None, Some(m)) => format!("--{}={m}", sp.long),
                (Some(c), None) => format!("-{c}, --{}", sp.long),
                (None, None) => format!("--{}", sp.long),
            };
            let help = match &sp.default {
                Some(d) => format!("{} (default {d})", sp.help),
                None => sp.help.to_string(),
            };
            rows.push((names, help));
        }
        for (names, help) in rows {
            if names.len() <= 20 {
                let _ = writeln!(s, "  {names:<22}{help}");
            } else {
                let _ = writeln!(s, "  {names}\n  {:<22}{help}", "");
            }
        }
        if let Some(e) = &self.epilog {
            let _ = write!(s, "\n{e}\n");
        }
        s
    }

    fn find_long(&self, name: &str) -> Option<&Spec> {
        self.specs.iter().find(|s| s.long == name)
    }

    fn find_short(&self, c: char) -> Option<&Spec> {
        self.specs.iter().find(|s| s.short == Some(c))
    }

    /// Parses `args` (without the program name).
    pub fn parse_from<I, S>(&self, args: I) -> Result<Matches, ParseError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut m = Matches {
            values: self
                .specs
                .iter()
                .filter(|s| s.metavar.is_some())
                .map(|s| (s.long, s.default.clone()))
                .collect(),
            flags: self
                .specs
                .iter()
                .filter(|s| s.metavar.is_none())
                .map(|s| (s.long, false))
                .collect(),
            positionals: Vec::new(),
        };
        let usage = |msg: String| ParseError::Usage(format!("{}: error: {msg}", self.prog));
        let mut it = args.into_iter().map(Into::into);
        let mut only_positional = false;
        while let Some(arg) = it.next() {
            if only_positional || arg == "-" || !arg.starts_with('-') {
                m.positionals.push(arg);
                continue;
            }
            if arg == "--" {
                only_positional = true;
                continue;
            }
            if arg == "-h" || arg == "--help" {
                return Err(ParseError::Help(self.help()));
            }
            let (spec, inline) = if let Some(long) = arg.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let spec = self
                    .find_long(name)
                    .ok_or_else(|| usage(format!("no such option: --{name}")))?;
                (spec, inline)
            } else {
                let mut chars = arg[1..].chars();
                let c = chars.next().unwrap_or('-');
                let rest: String = chars.collect();
                let spec = self
                    .find_short(c)
                    .ok_or_else(|| usage(format!("no such option: -{c}")))?;
                if spec.metavar.is_none() && !rest.is_empty() {
                    return Err(usage(format!("-{c} takes no value")));
                }
                (spec, (!rest.is_empty()).then_some(rest))
            };
            match spec.metavar {
                None => {
                    if inline.is_some() {
                        return Err(usage(format!("--{} takes no value", spec.long)));
                    }
                    m.flags.insert(spec.long, true);
                }
                Some(_) => {
                    let v = match inline {
                        Some(v) => v,
                        None => it
                            .next()
                            .ok_or_else(|| usage(format!("--{} requires a value", spec.long)))?,
                    };
                    m.values.insert(spec.long, Some(v));
                }
            }
        }
        Ok(m)
    }

    /// Parses the process arguments; prints help or the error and exits as optparse does
    /// (status 0 for `--help`, 2 for a bad command line).
    pub fn parse(&self) -> Matches {
        match self.parse_from(std::env::args().skip(1)) {
            Ok(m) => m,
            Err(ParseError::Help(h)) => {
                print!("{h}");
                std::process::exit(0)
            }
            Err(ParseError::Usage(e)) => {
                eprintln!("Usage: {} [options] {}", self.prog, self.usage_args);
                eprintln!("{e}");
                std::process::exit(2)
            }
        }
    }
}

impl Matches {
    /// The value of an option (its default if not given; `""` if neither).
    pub fn get(&self, long: &str) -> &str {
        self.values
            .get(long)
            .and_then(|v| v.as_deref())
            .unwrap_or("")
    }

    /// The value of an option, if it was given or has a default.
    pub fn get_opt(&self, long: &str) -> Option<&str> {
        self.values.get(long).and_then(|v| v.as_deref())
    }

    /// The value of an option parsed as `T`; exits with status 2 if it does not parse.
    pub fn get_parsed<T: FromStr>(&self, long: &str) -> T {
        let v = self.get(long);
        v.parse().unwrap_or_else(|_| {
            eprintln!("error: option --{long}: invalid value: '{v}'");
            std::process::exit(2)
        })
    }

    /// Whether a flag was given.
    pub fn flag(&self, long: &str) -> bool {
        self.flags.get(long).copied().unwrap_or(false)
    }

    /// The positional arguments.
    pub fn positionals(&self) -> &[String] {
        &self.positionals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Parser {
        Parser::new("t", "about")
            .opt('a', "address", "ADDRESS", "localhost:5672", "where")
            .opt('m', "messages", "N", "100", "how many")
            .flag('v', "verbose", "talk")
    }

    #[test]
    fn forms() {
        let m = p()
            .parse_from(["-aX", "--messages=7", "-v", "pos", "--", "-m"])
            .unwrap();
        assert_eq!(m.get("address"), "X");
        assert_eq!(m.get_parsed::<u32>("messages"), 7);
        assert!(m.flag("verbose"));
        assert_eq!(m.positionals(), ["pos", "-m"]);
        let m = p().parse_from(["--address", "Y", "-m", "3"]).unwrap();
        assert_eq!(m.get("address"), "Y");
        assert!(!m.flag("verbose"));
    }

    #[test]
    fn errors_and_help() {
        assert!(matches!(
            p().parse_from(["--nope"]),
            Err(ParseError::Usage(_))
        ));
        assert!(matches!(p().parse_from(["-a"]), Err(ParseError::Usage(_))));
        match p().parse_from(["--help"]) {
            Err(ParseError::Help(h)) => {
                assert!(h.contains("-a ADDRESS, --address=ADDRESS"));
                assert!(h.contains("(default localhost:5672)"));
            }
            other => panic!("{other:?}"),
        }
    }
}
