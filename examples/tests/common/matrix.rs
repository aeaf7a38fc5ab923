//! The interop matrix: peer × scenario → PASS / FAIL / n/a, with message counts, times and
//! what each cell's test compares.
//!
//! Any interop test, in any test binary of the workspace, records its cell with
//! [`Cell::start`] … [`Cell::pass`] (a cell dropped without `pass`, say by a failed assertion,
//! records FAIL). Each record is one small file under `target/interop-matrix/`, so tests that
//! run in parallel threads or in other processes never write the same file; after every record
//! the whole table is rendered again into `target/interop-matrix.md`, so the file is complete
//! as soon as the last interop test is done. Cells a peer cannot do are listed in
//! [`NOT_APPLICABLE`] with the reason; a cell with neither a record nor a reason shows
//! "not run".

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The peers (columns), in table order.
pub(crate) const PEERS: [&str; 6] = [
    "python-proton",
    "proton-c",
    "rabbitmq",
    "rhea",
    "cyrus-proton",
    "fe2o3",
];

/// The scenarios (rows): key and heading.
pub(crate) const SCENARIOS: [(&str, &str); 12] = [
    ("sasl-anonymous", "SASL ANONYMOUS"),
    ("sasl-plain", "SASL PLAIN"),
    ("tls", "TLS"),
    ("10k-in-order", "≥ 10k messages in order"),
    ("1mib-message", "≥ 1 MiB message"),
    ("outcomes", "reject / release / modify"),
    ("drain", "drain"),
    ("idle-timeout", "heartbeats / idle timeout"),
    ("dynamic-reply-to", "dynamic receiver / reply-to"),
    ("selector", "selector"),
    ("reconnect", "reconnect after restart / cut"),
    ("peer-as-client", "peer as a client of our listener"),
];

/// Cells a peer cannot do: (peer, scenario, why).
pub(crate) const NOT_APPLICABLE: &[(&str, &str, &str)] = &[
    (
        "proton-c",
        "sasl-plain",
        "Debian's Proton C examples configure no SASL users: they speak only ANONYMOUS \
         (PLAIN against a Proton C-engine server is the cyrus-proton column)",
    ),
    (
        "proton-c",
        "outcomes",
        "the examples only accept (receive) and count accepted (send); no example settles \
         with reject, release or modify",
    ),
    (
        "proton-c",
        "drain",
        "the examples never answer a drain (no pn_link_drained call in any of them): a \
         drain on their sender stays open by design of the examples",
    ),
    (
        "proton-c",
        "selector",
        "neither the examples' broker nor their receive knows filters",
    ),
    (
        "proton-c",
        "dynamic-reply-to",
        "the examples' broker refuses dynamic nodes and no C example asks for one",
    ),
    (
        "rabbitmq",
        "dynamic-reply-to",
        "RabbitMQ 3.10's AMQP 1.0 plugin has no dynamic nodes",
    ),
    (
        "rabbitmq",
        "selector",
        "RabbitMQ 3.10's AMQP 1.0 plugin has no selector filters",
    ),
    (
        "rabbitmq",
        "drain",
        "RabbitMQ 3.10 never completes a drain: asked for 10 with drain on a queue of 3 it \
         sends 2 and answers with a flow that keeps its credit (rhea rejects that flow as a \
         protocol error); the suite checks that we stay sane and lose nothing \
         (`interop_suite rabbitmq drain-not-completed`)",
    ),
    (
        "rabbitmq",
        "peer-as-client",
        "a broker: it never connects out over AMQP 1.0 (its shovel could, but that is \
         RabbitMQ's plumbing, not a client library)",
    ),
    (
        "cyrus-proton",
        "tls",
        "the same Proton engine and OpenSSL layer as python-proton (that column); Cyrus \
         changes only SASL",
    ),
    (
        "cyrus-proton",
        "10k-in-order",
        "the same Proton engine as python-proton; Cyrus changes only SASL",
    ),
    (
        "cyrus-proton",
        "1mib-message",
        "the same Proton engine as python-proton; Cyrus changes only SASL",
    ),
    (
        "cyrus-proton",
        "outcomes",
        "the same Proton engine as python-proton; Cyrus changes only SASL",
    ),
    (
        "cyrus-proton",
        "drain",
        "the same Proton engine as python-proton; Cyrus changes only SASL",
    ),
    (
        "cyrus-proton",
        "idle-timeout",
        "the same Proton engine as python-proton; Cyrus changes only SASL",
    ),
    (
        "cyrus-proton",
        "dynamic-reply-to",
        "the same Proton engine as python-proton; Cyrus changes only SASL",
    ),
    (
        "cyrus-proton",
        "selector",
        "the same Proton engine as python-proton; Cyrus changes only SASL",
    ),
    (
        "cyrus-proton",
        "reconnect",
        "the same Proton engine as python-proton; Cyrus changes only SASL",
    ),
];

/// One test's record of one cell; records FAIL when dropped without [`Cell::pass`].
pub(crate) struct Cell {
    peer: &'static str,
    scenario: &'static str,
    test: String,
    started: Instant,
    done: bool,
}

impl Cell {
    /// Starts timing `test`'s check of (`peer`, `scenario`).
    pub(crate) fn start(peer: &'static str, scenario: &'static str, test: &str) -> Cell {
        assert!(PEERS.contains(&peer), "unknown peer {peer}");
        assert!(
            SCENARIOS.iter().any(|(k, _)| *k == scenario),
            "unknown scenario {scenario}"
        );
        Cell {
            peer,
            scenario,
            test: test.to_string(),
            started: Instant::now(),
            done: false,
        }
    }

    /// Records PASS: `messages` moved, and what was asserted.
    pub(crate) fn pass(mut self, messages: u64, asserted: &str) {
        self.done = true;
        self.write("PASS", messages, asserted);
    }

    /// The test did not run (its peer is missing and `INTEROP_OPTIONAL=1`): records nothing.
    pub(crate) fn skipped(mut self) {
        self.done = true;
    }

    fn write(&self, status: &str, messages: u64, notes: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        let when = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let clean = |s: &str| s.replace(['\t', '\n', '|'], " ");
        let line = format!(
            "{}\t{}\t{}\t{status}\t{messages}\t{secs:.2}\t{when}\t{}\n",
            self.peer,
            self.scenario,
            clean(&self.test),
            clean(notes)
        );
        let dir = records_dir();
        let _ = std::fs::create_dir_all(&dir);
        let file: String = format!("{}.{}.{}", self.peer, self.scenario, self.test)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let _ = std::fs::write(dir.join(file + ".tsv"), line);
        let _ = write_table();
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        if !self.done {
            self.write("FAIL", 0, "the test failed before its assertions held");
        }
    }
}

/// The workspace's `target/` (or `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").exists() {
        if !dir.pop() {
            return PathBuf::from("target");
        }
    }
    dir.join("target")
}

fn records_dir() -> PathBuf {
    target_dir().join("interop-matrix")
}

/// Where the rendered table goes.
pub(crate) fn table_path() -> PathBuf {
    target_dir().join("interop-matrix.md")
}

struct Record {
    peer: String,
    scenario: String,
    test: String,
    status: String,
    messages: u64,
    secs: f64,
    when: u64,
    notes: String,
}

fn read_records() -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(records_dir()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let f: Vec<&str> = text.trim_end().splitn(8, '\t').collect();
        if let [peer, scenario, test, status, messages, secs, when, notes] = f[..] {
            out.push(Record {
                peer: peer.into(),
                scenario: scenario.into(),
                test: test.into(),
                status: status.into(),
                messages: messages.parse().unwrap_or(0),
                secs: secs.parse().unwrap_or(0.0),
                when: when.parse().unwrap_or(0),
                notes: notes.into(),
            });
        }
    }
    out.sort_by(|a, b| (&a.peer, &a.scenario, &a.test).cmp(&(&b.peer, &b.scenario, &b.test)));
    out
}

/// Records older than this (seconds) are shown as stale: they come from an earlier run.
const STALE_AFTER: u64 = 6 * 3600;

/// Renders the table from every record and [`NOT_APPLICABLE`].
pub(crate) fn render() -> String {
    let records = read_records();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut s = String::new();
    let _ = writeln!(s, "| scenario | {} |", PEERS.join(" | "));
    let _ = writeln!(s, "|---|{}", "---|".repeat(PEERS.len()));
    let (mut pass, mut fail, mut na, mut missing) = (0, 0, 0, 0);
    for (key, heading) in SCENARIOS {
        let _ = write!(s, "| {heading} |");
        for peer in PEERS {
            let rs: Vec<&Record> = records
                .iter()
                .filter(|r| r.peer == peer && r.scenario == key)
                .collect();
            let cell = if rs.is_empty() {
                if NOT_APPLICABLE
                    .iter()
                    .any(|(p, sc, _)| *p == peer && *sc == key)
                {
                    na += 1;
                    "n/a".to_string()
                } else {
                    missing += 1;
                    "not run".to_string()
                }
            } else {
                let failed = rs.iter().any(|r| r.status != "PASS");
                let stale = rs.iter().any(|r| now.saturating_sub(r.when) > STALE_AFTER);
                let msgs: u64 = rs.iter().map(|r| r.messages).sum();
                let secs: f64 = rs.iter().map(|r| r.secs).sum();
                if failed {
                    fail += 1;
                } else {
                    pass += 1;
                }
                format!(
                    "{}{} ({msgs} msg, {secs:.1} s)",
                    if failed { "**FAIL**" } else { "PASS" },
                    if stale { " (stale)" } else { "" }
                )
            };
            let _ = write!(s, " {cell} |");
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "\n{pass} PASS, {fail} FAIL, {na} n/a, {missing} not run \
         (of {} cells).\n",
        SCENARIOS.len() * PEERS.len()
    );
    s.push_str("### What each cell asserts\n\n");
    for r in &records {
        let heading = SCENARIOS
            .iter()
            .find(|(k, _)| *k == r.scenario)
            .map_or(r.scenario.as_str(), |(_, h)| h);
        let _ = writeln!(
            s,
            "- **{} × {heading}** — {} `{}`: {}",
            r.peer, r.status, r.test, r.notes
        );
    }
    s.push_str("\n### Not applicable\n\n");
    for (peer, key, why) in NOT_APPLICABLE {
        let heading = SCENARIOS
            .iter()
            .find(|(k, _)| k == key)
            .map_or(*key, |(_, h)| h);
        let _ = writeln!(s, "- **{peer} × {heading}**: {why}.");
    }
    s
}

static WRITE: Mutex<()> = Mutex::new(());

/// Renders the table into [`table_path`]; returns it.
pub(crate) fn write_table() -> String {
    let _g = WRITE.lock().unwrap_or_else(|e| e.into_inner());
    let table = render();
    let path = table_path();
    let tmp = path.with_extension(format!("md.{}", std::process::id()));
    if std::fs::write(&tmp, &table).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
    table
}
