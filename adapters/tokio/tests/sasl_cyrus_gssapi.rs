//! GSSAPI (Kerberos) interop with Qpid Proton built against Cyrus SASL and its GSSAPI plugin
//! (`scripts/proton-cyrus.sh`, Debian `libsasl2-modules-gssapi-mit`), on a throwaway MIT realm
//! (`scripts/krb5-realm.sh`), both directions:
//!
//! * our client → a Proton listener whose Cyrus server offers only GSSAPI
//!   (`proton-server.conf` with `mech_list: GSSAPI`, the realm's keytab in `KRB5_KTNAME`);
//! * a Proton client (Cyrus, alice's ticket in `KRB5CCNAME`) → our listener offering GSSAPI;
//! * each followed by messages both ways, and refusals with their error text: our client to
//!   Cyrus without a ticket, a Cyrus client to our listener holding the wrong keytab.
//!
//! Both sides authenticate to `amqp/localhost`: the connections go to 127.0.0.1 with the host
//! name `localhost` (`virtual_host`). Like `sasl_cyrus.rs`, a missing Cyrus-enabled Proton
//! fails the tests unless `INTEROP_OPTIONAL=1`; a realm that cannot be set up skips them
//! loudly outside CI.

mod common;
#[path = "../../gssapi/tests/realm/mod.rs"]
mod realm;

use std::io::Write;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use amqp_adapter::gssapi::GSSAPI;
use amqp_adapter::gssapi::{server_mechanism, KerberosServer};
use amqp_tokio::{ListenOptions, SaslServerConfig, StaticUsers};
use common::pair::{opts, Outcome, Pair};
use common::proton::ProtonPeer;
use realm::Realm;
use serde_json::Value as Json;

const N: usize = 3;
const PEER_LIMIT: Duration = Duration::from_secs(30);
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/proton_sasl_peer.py"
);

macro_rules! report {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{line}");
    }};
}

/// The Cyrus-enabled python with the GSSAPI plugin; `None` (skip) only with
/// `INTEROP_OPTIONAL=1`, else panics.
fn require_cyrus(scenario: &str) -> Option<String> {
    let py = common::cyrus::cyrus_python();
    let plugin = [
        "/usr/lib/x86_64-linux-gnu/sasl2",
        "/usr/lib/sasl2",
        "/usr/lib/aarch64-linux-gnu/sasl2",
    ]
    .iter()
    .any(|d| std::path::Path::new(d).join("libgssapiv2.so").exists());
    let why = match (py, plugin) {
        (Ok(py), true) => return Some(py),
        (Err(why), _) => format!("{why} (scripts/proton-cyrus.sh)"),
        (Ok(_), false) => {
            "no Cyrus GSSAPI plugin (apt-get install libsasl2-modules-gssapi-mit)".to_string()
        }
    };
    if std::env::var("INTEROP_OPTIONAL").as_deref() == Ok("1") {
        report!("sasl-cyrus-gssapi {scenario}: SKIPPED ({why}); INTEROP_OPTIONAL=1");
        return None;
    }
    panic!("sasl-cyrus-gssapi {scenario}: {why} (or set INTEROP_OPTIONAL=1 to skip)");
}

fn s(v: &str) -> String {
    v.to_string()
}

/// A Cyrus configuration directory offering only GSSAPI; the keytab comes from the realm's
/// `KRB5_KTNAME` in the environment.
fn cyrus_conf(realm: &Realm) -> String {
    let dir = realm.dir.join("cyrus");
    std::fs::create_dir_all(&dir).expect("cyrus dir");
    std::fs::write(dir.join("proton-server.conf"), "mech_list: GSSAPI\n").expect("conf");
    dir.display().to_string()
}

/// Our client (GSSAPI only) → Proton/Cyrus listener; what both saw.
fn us_to_cyrus(py: &str, realm: &Realm) -> (Outcome, Json) {
    let args = vec![
        s("--listen"),
        s("0"),
        s("--mechs"),
        s(GSSAPI),
        s("--count"),
        N.to_string(),
        s("--timeout"),
        s("20"),
    ];
    let conf = cyrus_conf(realm);
    let mut peer = ProtonPeer::spawn_with(py, SCRIPT, &args, &[("PN_SASL_CONFIG_PATH", &conf)]);
    let port = peer
        .wait_ready(Duration::from_secs(15))
        .expect("proton listener");
    let client = Box::new(|port| {
        opts(&format!("amqp://127.0.0.1:{port}"))
            .virtual_host("localhost")
            .allowed_mechs(GSSAPI)
    });
    let ours = Pair::clients_only(port, vec![client])
        .count(N)
        .limit(Duration::from_secs(15))
        .run();
    let j = peer.finish(PEER_LIMIT).expect("proton summary");
    (ours, j)
}

/// A Proton/Cyrus client (GSSAPI, alice's ticket) → our listener; what both saw.
fn cyrus_to_us(py: &str) -> (Outcome, Json) {
    let mut sasl = SaslServerConfig::new(&[GSSAPI], Arc::new(StaticUsers::new()));
    sasl.extra_mechanisms
        .push(server_mechanism(KerberosServer::new()));
    let listen = ListenOptions {
        sasl: Some(sasl),
        ..ListenOptions::default()
    };
    let (tx, rx) = mpsc::channel();
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
        s("--virtual-host"),
        s("localhost"),
        s("--mechs"),
        s(GSSAPI),
        s("--count"),
        N.to_string(),
        s("--timeout"),
        s("15"),
    ];
    let peer = ProtonPeer::spawn_with(py, SCRIPT, &args, &[]);
    let j = peer.finish(PEER_LIMIT).expect("proton summary");
    let ours = server.join().expect("our container");
    (ours, j)
}

#[test]
fn our_client_to_cyrus_listener() {
    let Some(py) = require_cyrus("us_to_cyrus") else {
        return;
    };
    let Some(realm) = Realm::start() else { return };
    let (ours, j) = us_to_cyrus(&py, &realm);
    assert!(!ours.timed_out, "{ours:#?}\n{j}");
    let c = &ours.clients[0];
    assert!(c.opened, "{ours:#?}\n{j}");
    assert!(c.errors().is_empty(), "{ours:#?}");
    assert_eq!(c.accepted, N, "{ours:#?}");
    assert_eq!(c.received.len(), N, "{ours:#?}");
    assert_eq!(j["sasl_outcome"], 0, "{j}");
    assert_eq!(j["sasl_mech"], GSSAPI, "{j}");
    // Cyrus drops the realm when it is the default one; we keep the whole principal.
    assert_eq!(j["sasl_user"], "alice", "{j}");
    assert_eq!(j["received"].as_array().map(Vec::len), Some(N), "{j}");
    assert_eq!(j["accepted"], N, "{j}");
    report!(
        "sasl-cyrus-gssapi us_to_cyrus: ok: our client -> proton/cyrus listener, GSSAPI, \
         proton's user {}, {N} messages each way",
        j["sasl_user"]
    );
}

#[test]
fn cyrus_client_to_our_listener() {
    let Some(py) = require_cyrus("cyrus_to_us") else {
        return;
    };
    let Some(_realm) = Realm::start() else { return };
    let (ours, j) = cyrus_to_us(&py);
    assert_eq!(j["opened"], true, "{j}\n{ours:#?}");
    assert_eq!(j["sasl_mech"], GSSAPI, "{j}");
    assert_eq!(j["sasl_outcome"], 0, "{j}");
    assert_eq!(j["received"].as_array().map(Vec::len), Some(N), "{j}");
    assert_eq!(j["accepted"], N, "{j}");
    assert!(!ours.timed_out, "{ours:#?}");
    assert_eq!(ours.server_users, vec![Some(s("alice@AMQP.TEST"))]);
    assert_eq!(ours.server_received.len(), N, "{ours:#?}");
    assert!(ours.server_errors.is_empty(), "{ours:#?}");
    report!(
        "sasl-cyrus-gssapi cyrus_to_us: ok: proton/cyrus client -> our listener, GSSAPI, \
         we saw {:?}, {N} messages each way",
        ours.server_users[0]
    );
}

#[test]
fn our_client_without_a_ticket_to_cyrus_is_refused_locally() {
    let Some(py) = require_cyrus("us_to_cyrus_no_ticket") else {
        return;
    };
    let Some(realm) = Realm::start() else { return };
    realm.use_ccache("missing.ccache");
    let (ours, j) = us_to_cyrus(&py, &realm);
    let c = &ours.clients[0];
    assert!(!c.opened, "{ours:#?}");
    let errors = c.errors();
    assert!(
        errors.contains("GSSAPI: no Kerberos ticket (run kinit")
            && errors.contains("unauthorized-access"),
        "{errors}"
    );
    assert_eq!(j["opened"], false, "{j}");
    report!("sasl-cyrus-gssapi us_to_cyrus_no_ticket: ok: refused: {errors}");
}

#[test]
fn cyrus_client_to_our_listener_with_the_wrong_keytab_is_refused() {
    let Some(py) = require_cyrus("cyrus_to_us_wrong_keytab") else {
        return;
    };
    let Some(realm) = Realm::start() else { return };
    realm.use_keytab("wrong.keytab");
    let (ours, j) = cyrus_to_us(&py);
    assert_eq!(j["opened"], false, "{j}");
    assert_eq!(j["sasl_outcome"], 1, "{j}"); // PN_SASL_AUTH
    assert!(ours.server_users.is_empty(), "{ours:#?}");
    let errors = ours.server_errors.join(" | ");
    assert!(
        errors.contains("GSSAPI: no key for the service principal in the keytab"),
        "{errors}"
    );
    report!("sasl-cyrus-gssapi cyrus_to_us_wrong_keytab: ok: refused; we: {errors}");
}
