//! SASL interop with Qpid Proton built against Cyrus SASL (python-qpid-proton compiled from
//! source by `scripts/proton-cyrus.sh`), over plain loopback TCP, both directions:
//!
//! * (a) our client → a Proton listener whose SASL server is Cyrus (a `proton-server.conf` in a
//!   temporary directory named by `PN_SASL_CONFIG_PATH`, users in a sasldb made with
//!   `saslpasswd2`): SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN succeed; a wrong password is refused
//!   with an authentication error.
//! * (b) a Proton client whose SASL client is Cyrus → our listener offering SCRAM-SHA-256 and
//!   SCRAM-SHA-1 over a [`StaticUsers`] database, with SCRAM's server-final message sent either
//!   in the outcome (our default) or in a last challenge (Cyrus's own way); a wrong password is
//!   refused.
//! * (b) an impostor listener that holds the user's `StoredKey` but not the `ServerKey`
//!   (passes the client-proof check, forges the server signature `v=`): the Cyrus client
//!   must refuse it when `v=` comes in a challenge.
//! * (c) every successful authentication is followed by an exchange of messages both ways.
//!
//! What Cyrus does that these tests pin down:
//! * Its SCRAM server sends the server-final `v=...` in a `sasl-challenge` and waits for an
//!   empty `sasl-response` before the outcome (our client answers that already).
//! * A bare user name is looked up in Cyrus's default realm, the host's canonical name; that is
//!   also where `saslpasswd2` without `-u` puts the user, so the two always agree (with
//!   `-u $(hostname)` they may not). `user@realm` names the realm itself, and Proton then
//!   reports `user@realm` as the authenticated user; a bare name is reported bare.
//! * Proton's Cyrus client checks the server signature only when it comes in a challenge; it
//!   ignores the outcome's additional-data (so a forged `v=` there goes unnoticed).
//!
//! The Cyrus-enabled python is `$PROTON_CYRUS_PYTHON`, else the venv `scripts/proton-cyrus.sh`
//! builds by default. If neither works (or `saslpasswd2` is missing), the tests fail unless
//! `INTEROP_OPTIONAL=1`. Every run is bounded (our container's limit, the peer's `--timeout`,
//! a kill by PID). Each scenario prints one `sasl-cyrus ...` result line on stderr.

mod common;
#[path = "../../../examples/tests/common/matrix.rs"]
mod matrix;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use amqp_tokio::ListenOptions;
use amqp_tokio::{Authenticator, SaslServerConfig, ScramCredentials, ScramHash, StaticUsers};
use common::pair::{opts, MakeOptions, Outcome, Pair};
use common::proton::ProtonPeer;
use serde_json::Value as Json;

const N: usize = 3;
const PEER_LIMIT: Duration = Duration::from_secs(30);
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/proton_sasl_peer.py"
);
const USER: &str = "user";
const PASSWORD: &str = "secret-pw";
/// A name SCRAM must escape (`=` → `=3D`, `,` → `=2C` in `n=`).
const ODD_USER: &str = "od=d,user";

/// Prints a scenario's result line to stderr, past the test harness's output capture (so it
/// shows in every run's log, passing or not).
macro_rules! report {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{line}");
    }};
}

fn s(v: &str) -> String {
    v.to_string()
}

/// The Cyrus-enabled python, or why there is none.
fn find_cyrus_python() -> Result<String, String> {
    let py = common::cyrus::cyrus_python()?;
    let saslpasswd2 = Command::new("saslpasswd2")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !saslpasswd2 {
        return Err("saslpasswd2 not found (apt-get install sasl2-bin)".into());
    }
    Ok(py)
}

/// The Cyrus-enabled python; `None` (skip) only with `INTEROP_OPTIONAL=1`, else panics.
fn require_cyrus(scenario: &str) -> Option<String> {
    static PY: OnceLock<Result<String, String>> = OnceLock::new();
    match PY.get_or_init(find_cyrus_python) {
        Ok(py) => Some(py.clone()),
        Err(why) if std::env::var("INTEROP_OPTIONAL").as_deref() == Ok("1") => {
            report!("sasl-cyrus {scenario}: SKIPPED ({why}); INTEROP_OPTIONAL=1");
            None
        }
        Err(why) => panic!(
            "sasl-cyrus {scenario}: no Cyrus-enabled proton: {why}. Build it with \
             scripts/proton-cyrus.sh and set PROTON_CYRUS_PYTHON to the path it prints \
             (or set INTEROP_OPTIONAL=1 to skip)"
        ),
    }
}

/// A temporary Cyrus configuration directory for a Proton listener: `proton-server.conf`
/// and a sasldb holding [`USER`] and [`ODD_USER`] (both with [`PASSWORD`]). Removed on drop.
struct CyrusDir {
    dir: PathBuf,
    /// The realm saslpasswd2 stored the user under (Cyrus's default: the host's name).
    realm: String,
}

impl CyrusDir {
    fn new(tag: &str) -> CyrusDir {
        let dir =
            std::env::temp_dir().join(format!("amqp-sasl-cyrus-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let db = dir.join("users.sasldb");
        std::fs::write(
            dir.join("proton-server.conf"),
            format!(
                "mech_list: SCRAM-SHA-256 SCRAM-SHA-1 PLAIN ANONYMOUS\n\
                 sasldb_path: {}\n\
                 pwcheck_method: auxprop\n\
                 auxprop_plugin: sasldb\n",
                db.display()
            ),
        )
        .expect("proton-server.conf");
        for user in [USER, ODD_USER] {
            // No `-u REALM`: saslpasswd2 then stores the user under the realm Cyrus's server
            // itself defaults to (the host's canonical name), whatever that is on this machine.
            let mut child = Command::new("saslpasswd2")
                .args(["-c", "-p", "-a", "proton-server", "-f"])
                .arg(&db)
                .arg(user)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("saslpasswd2");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(PASSWORD.as_bytes())
                .unwrap();
            let out = child.wait_with_output().expect("saslpasswd2");
            assert!(
                out.status.success(),
                "saslpasswd2: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let list = Command::new("sasldblistusers2")
            .arg("-f")
            .arg(&db)
            .output()
            .expect("sasldblistusers2");
        let list = String::from_utf8_lossy(&list.stdout);
        // "user@realm: userPassword"
        let realm = list
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{USER}@")))
            .and_then(|r| r.split(':').next())
            .unwrap_or_else(|| panic!("user not in sasldb: {list:?}"))
            .to_string();
        CyrusDir { dir, realm }
    }

    fn path(&self) -> String {
        self.dir.display().to_string()
    }
}

impl Drop for CyrusDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// (a) our client → Proton listener with Cyrus
// ---------------------------------------------------------------------------------------------

/// Starts a Cyrus-configured Proton listener offering `mechs`, runs one client of ours with
/// `client` options against it; returns what both saw.
fn us_to_cyrus_listener(
    py: &str,
    dir: &CyrusDir,
    mechs: &str,
    client: MakeOptions,
) -> (Outcome, Json) {
    let args = vec![
        s("--listen"),
        s("0"),
        s("--mechs"),
        s(mechs),
        s("--count"),
        N.to_string(),
        s("--timeout"),
        s("20"),
    ];
    let path = dir.path();
    let mut peer = ProtonPeer::spawn_with(py, SCRIPT, &args, &[("PN_SASL_CONFIG_PATH", &path)]);
    let port = peer
        .wait_ready(Duration::from_secs(15))
        .expect("proton listener");
    let ours = Pair::clients_only(port, vec![client])
        .count(N)
        .limit(Duration::from_secs(15))
        .run();
    let j = peer.finish(PEER_LIMIT).expect("proton summary");
    (ours, j)
}

fn client(user: String, password: &'static str, mechs: &'static str) -> MakeOptions {
    Box::new(move |port| {
        opts(&format!("amqp://127.0.0.1:{port}"))
            .user(user.clone())
            .password(password)
            .allowed_mechs(mechs)
            .allow_insecure_mechs(mechs == "PLAIN")
    })
}

/// Our client authenticated with `mech` and exchanged N messages each way.
fn assert_authenticated_exchange(scenario: &str, mech: &str, ours: &Outcome, j: &Json) {
    assert!(!ours.timed_out, "{scenario}: {ours:#?}");
    let c = &ours.clients[0];
    assert!(c.opened, "{scenario}: {ours:#?}\n{j}");
    assert!(c.errors().is_empty(), "{scenario}: {ours:#?}");
    assert_eq!(c.accepted, N, "{scenario}: {ours:#?}");
    assert_eq!(c.received.len(), N, "{scenario}: {ours:#?}");
    assert_eq!(c.received[0], "from proton 0", "{scenario}");
    assert!(c.closed, "{scenario}: {ours:#?}");
    assert_eq!(j["sasl_outcome"], 0, "{scenario}: {j}");
    assert_eq!(j["sasl_mech"], mech, "{scenario}: {j}");
    assert_eq!(j["opened"], true, "{scenario}: {j}");
    assert!(j["transport_error"].is_null(), "{scenario}: {j}");
    assert_eq!(j["received"].as_array().map(Vec::len), Some(N), "{j}");
    assert_eq!(j["received"][0], "from client 0", "{scenario}: {j}");
    assert_eq!(j["accepted"], N, "{scenario}: {j}");
}

/// Returns whether it ran (false: skipped, Cyrus missing with `INTEROP_OPTIONAL=1`).
fn run_a_success(scenario: &str, mech: &'static str, user: impl Fn(&CyrusDir) -> String) -> bool {
    let Some(py) = require_cyrus(scenario) else {
        return false;
    };
    let dir = CyrusDir::new(scenario);
    let user = user(&dir);
    let (ours, j) = us_to_cyrus_listener(
        &py,
        &dir,
        "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN ANONYMOUS",
        client(user.clone(), PASSWORD, mech),
    );
    assert_authenticated_exchange(scenario, mech, &ours, &j);
    report!(
        "sasl-cyrus {scenario}: ok: our client as {user:?} -> proton/cyrus listener, {mech}, \
         proton's user {}, {N} messages each way",
        j["sasl_user"]
    );
    true
}

fn run_a_wrong_password(scenario: &str, mech: &'static str) {
    let Some(py) = require_cyrus(scenario) else {
        return;
    };
    let dir = CyrusDir::new(scenario);
    let (ours, j) = us_to_cyrus_listener(
        &py,
        &dir,
        "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN ANONYMOUS",
        client(s(USER), "wrong-pw", mech),
    );
    assert!(!ours.timed_out, "{scenario}: {ours:#?}");
    let c = &ours.clients[0];
    assert!(!c.opened, "{scenario}: {ours:#?}");
    let errors = c.errors();
    assert!(
        errors.contains("unauthorized-access") && errors.contains("Auth"),
        "{scenario}: {ours:#?}"
    );
    assert_eq!(j["opened"], false, "{scenario}: {j}");
    assert_eq!(j["sasl_outcome"], 1, "{scenario}: {j}"); // PN_SASL_AUTH
    report!("sasl-cyrus {scenario}: ok: refused ({mech}, wrong password): {errors}");
}

#[test]
fn a_our_client_scram_sha256_to_cyrus() {
    run_a_success("a_scram_sha256", "SCRAM-SHA-256", |_| s(USER));
}

#[test]
fn a_our_client_scram_sha1_to_cyrus() {
    run_a_success("a_scram_sha1", "SCRAM-SHA-1", |_| s(USER));
}

#[test]
fn a_our_client_plain_to_cyrus() {
    let cell = matrix::Cell::start(
        "cyrus-proton",
        "sasl-plain",
        "sasl_cyrus a_our_client_plain_to_cyrus",
    );
    if run_a_success("a_plain", "PLAIN", |_| s(USER)) {
        cell.pass(
            2 * N as u64,
            "our client authenticates with PLAIN to a Proton listener whose SASL server is \
             Cyrus (sasldb user); Proton reports mech PLAIN, outcome ok; N messages each way, \
             all accepted (a wrong password: a_our_client_plain_wrong_password)",
        );
    } else {
        cell.skipped();
    }
}

#[test]
fn a_our_client_anonymous_to_cyrus() {
    let cell = matrix::Cell::start(
        "cyrus-proton",
        "sasl-anonymous",
        "sasl_cyrus a_our_client_anonymous_to_cyrus",
    );
    if run_a_success("a_anonymous", "ANONYMOUS", |_| s(USER)) {
        cell.pass(
            2 * N as u64,
            "our client chooses ANONYMOUS from the Cyrus server's list; Proton reports mech \
             ANONYMOUS, outcome ok; N messages each way, all accepted",
        );
    } else {
        cell.skipped();
    }
}

/// A user name SCRAM has to escape: we send `n=od=3Dd=2Cuser`, Cyrus unescapes it.
#[test]
fn a_our_client_scram_sha256_escaped_user_to_cyrus() {
    run_a_success("a_scram_sha256_escaped_user", "SCRAM-SHA-256", |_| {
        s(ODD_USER)
    });
}

/// The name with the realm Cyrus keeps it under (`user@host`) is the same user to Cyrus.
#[test]
fn a_our_client_scram_sha256_user_at_realm_to_cyrus() {
    run_a_success("a_scram_sha256_user_at_realm", "SCRAM-SHA-256", |d| {
        format!("{USER}@{}", d.realm)
    });
}

#[test]
fn a_our_client_scram_sha256_wrong_password() {
    run_a_wrong_password("a_scram_sha256_wrong_password", "SCRAM-SHA-256");
}

#[test]
fn a_our_client_scram_sha1_wrong_password() {
    run_a_wrong_password("a_scram_sha1_wrong_password", "SCRAM-SHA-1");
}

#[test]
fn a_our_client_plain_wrong_password() {
    run_a_wrong_password("a_plain_wrong_password", "PLAIN");
}

// ---------------------------------------------------------------------------------------------
// (b) Proton client with Cyrus → our listener
// ---------------------------------------------------------------------------------------------

fn our_sasl(final_in_challenge: bool) -> SaslServerConfig {
    let users = StaticUsers::new()
        .with_user(USER, PASSWORD, b"salt-for-user-0123", 4096)
        .with_user(ODD_USER, PASSWORD, b"salt-for-odd-user", 4096);
    let mut c = SaslServerConfig::new(&["SCRAM-SHA-256", "SCRAM-SHA-1"], Arc::new(users));
    c.scram_final_in_challenge = final_in_challenge;
    c
}

/// Runs our listener (own container) for one Proton client; returns what each saw.
fn cyrus_client_to_us(
    py: &str,
    sasl: SaslServerConfig,
    mech: &str,
    user: &str,
    password: &str,
) -> (Outcome, Result<Json, String>) {
    let (tx, rx) = mpsc::channel();
    let listen = ListenOptions {
        sasl: Some(sasl),
        ..ListenOptions::default()
    };
    let pair = Pair::serve("amqp://127.0.0.1:0", listen, 1, tx)
        .count(N)
        .limit(Duration::from_secs(15));
    let server = std::thread::spawn(move || pair.run());
    let port = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("our listener's port");
    let args = vec![
        s("--connect"),
        format!("amqp://127.0.0.1:{port}"),
        s("--mechs"),
        s(mech),
        s("--user"),
        s(user),
        s("--password"),
        s(password),
        s("--count"),
        N.to_string(),
        s("--timeout"),
        s("15"),
    ];
    let peer = ProtonPeer::spawn_with(py, SCRIPT, &args, &[]);
    let summary = peer.finish(PEER_LIMIT);
    let ours = server.join().expect("our container");
    (ours, summary)
}

/// Returns whether it ran (false: skipped, Cyrus missing with `INTEROP_OPTIONAL=1`).
fn run_b_success(scenario: &str, mech: &str, user: &str, final_in_challenge: bool) -> bool {
    let Some(py) = require_cyrus(scenario) else {
        return false;
    };
    let (ours, j) = cyrus_client_to_us(&py, our_sasl(final_in_challenge), mech, user, PASSWORD);
    let j = j.unwrap();
    assert_eq!(j["opened"], true, "{scenario}: {j}\n{ours:#?}");
    assert_eq!(j["closed"], true, "{scenario}: {j}");
    assert_eq!(j["timed_out"], false, "{scenario}: {j}");
    assert!(j["transport_error"].is_null(), "{scenario}: {j}");
    assert_eq!(j["sasl_mech"], mech, "{scenario}: {j}");
    assert_eq!(j["sasl_outcome"], 0, "{scenario}: {j}");
    assert_eq!(j["received"].as_array().map(Vec::len), Some(N), "{j}");
    assert_eq!(j["received"][0], "from server 0", "{scenario}: {j}");
    assert_eq!(j["accepted"], N, "{scenario}: {j}");
    assert!(!ours.timed_out, "{scenario}: {ours:#?}");
    assert_eq!(ours.server_users, vec![Some(s(user))], "{scenario}");
    assert_eq!(ours.server_received.len(), N, "{scenario}: {ours:#?}");
    assert!(ours.server_received[0].starts_with("from proton"));
    assert!(ours.server_errors.is_empty(), "{scenario}: {ours:#?}");
    report!(
        "sasl-cyrus {scenario}: ok: proton/cyrus client -> our listener, {mech} \
         (server-final in {}), we saw user {:?}, {N} messages each way",
        if final_in_challenge {
            "a challenge"
        } else {
            "the outcome"
        },
        ours.server_users[0]
    );
    true
}

fn run_b_wrong_password(scenario: &str, mech: &str) {
    let Some(py) = require_cyrus(scenario) else {
        return;
    };
    let (ours, j) = cyrus_client_to_us(&py, our_sasl(false), mech, USER, "wrong-pw");
    let j = j.unwrap();
    assert_eq!(j["opened"], false, "{scenario}: {j}");
    assert_eq!(j["sasl_outcome"], 1, "{scenario}: {j}"); // PN_SASL_AUTH
    assert!(
        j["transport_error"]["condition"]
            .as_str()
            .is_some_and(|c| c.contains("unauthorized")),
        "{scenario}: {j}"
    );
    assert!(!ours.timed_out, "{scenario}: {ours:#?}");
    assert!(ours.server_users.is_empty(), "{scenario}: {ours:#?}");
    assert!(!ours.server_errors.is_empty(), "{scenario}: {ours:#?}");
    report!(
        "sasl-cyrus {scenario}: ok: refused ({mech}, wrong password); proton: {}; we: {}",
        j["transport_error"],
        ours.server_errors.join(" | ")
    );
}

#[test]
fn b_cyrus_client_scram_sha256_to_us() {
    let cell = matrix::Cell::start(
        "cyrus-proton",
        "peer-as-client",
        "sasl_cyrus b_cyrus_client_scram_sha256_to_us",
    );
    if run_b_success("b_scram_sha256", "SCRAM-SHA-256", USER, false) {
        cell.pass(
            2 * N as u64,
            "a Proton client whose SASL client is Cyrus authenticates to our listener with \
             SCRAM-SHA-256; we see the user, Proton sees outcome ok; N messages each way, all \
             accepted",
        );
    } else {
        cell.skipped();
    }
}

#[test]
fn b_cyrus_client_scram_sha1_to_us() {
    run_b_success("b_scram_sha1", "SCRAM-SHA-1", USER, false);
}

#[test]
fn b_cyrus_client_scram_sha256_final_in_challenge() {
    run_b_success(
        "b_scram_sha256_final_in_challenge",
        "SCRAM-SHA-256",
        USER,
        true,
    );
}

#[test]
fn b_cyrus_client_scram_sha1_final_in_challenge() {
    run_b_success("b_scram_sha1_final_in_challenge", "SCRAM-SHA-1", USER, true);
}

/// Cyrus escapes the odd name (`n=od=3Dd=2Cuser`); we unescape it and find the user.
#[test]
fn b_cyrus_client_scram_sha256_escaped_user() {
    run_b_success(
        "b_scram_sha256_escaped_user",
        "SCRAM-SHA-256",
        ODD_USER,
        false,
    );
}

#[test]
fn b_cyrus_client_scram_sha256_wrong_password() {
    run_b_wrong_password("b_scram_sha256_wrong_password", "SCRAM-SHA-256");
}

#[test]
fn b_cyrus_client_scram_sha1_wrong_password() {
    run_b_wrong_password("b_scram_sha1_wrong_password", "SCRAM-SHA-1");
}

/// Knows [`USER`]'s real `StoredKey` (so the client's proof checks out) but not the
/// `ServerKey`: its server signature `v=` is forged.
struct Impostor;

impl Authenticator for Impostor {
    fn scram_credentials(&self, user: &str, hash: ScramHash) -> Option<ScramCredentials> {
        (user == USER).then(|| {
            let mut c = ScramCredentials::derive(hash, PASSWORD, b"salt-for-user-0123", 4096);
            c.server_key = vec![0x5a; c.server_key.len()];
            c
        })
    }
}

/// Mutual authentication: the Cyrus client checks the server signature. Sent in a challenge
/// (where Cyrus's SCRAM plugin sees it), a forged `v=` makes the client give up; sent in the
/// outcome's additional-data, Proton does not hand it to Cyrus (Proton's Cyrus
/// `process_outcome` is empty), so it goes unchecked — this run records which happened.
#[test]
fn b_cyrus_client_refuses_forged_server_signature() {
    let scenario = "b_scram_sha256_forged_server_signature";
    let Some(py) = require_cyrus(scenario) else {
        return;
    };
    let mut seen = Vec::new();
    for final_in_challenge in [true, false] {
        let mut sasl = SaslServerConfig::new(&["SCRAM-SHA-256"], Arc::new(Impostor));
        sasl.scram_final_in_challenge = final_in_challenge;
        let (ours, j) = cyrus_client_to_us(&py, sasl, "SCRAM-SHA-256", USER, PASSWORD);
        let j = j.unwrap();
        assert!(!ours.timed_out, "{scenario}: {ours:#?}");
        let place = if final_in_challenge {
            "challenge"
        } else {
            "outcome"
        };
        if final_in_challenge {
            assert_eq!(j["opened"], false, "{scenario}: {j}\n{ours:#?}");
            assert_ne!(j["sasl_outcome"], 0, "{scenario}: {j}");
            assert!(ours.server_received.is_empty(), "{scenario}: {ours:#?}");
        }
        seen.push(format!(
            "v= in the {place}: proton {} ({})",
            if j["opened"] == true {
                "ACCEPTED the forged signature"
            } else {
                "refused"
            },
            j["transport_error"]
        ));
    }
    report!("sasl-cyrus {scenario}: ok: {}", seen.join("; "));
}
