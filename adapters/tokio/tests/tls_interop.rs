//! TLS interop between the tokio adapter and python-qpid-proton (an implementation we did not
//! write, on OpenSSL), over loopback sockets: proton clients against our amqps listener, and
//! our client against proton's amqps listener. Certificates are generated at test time and
//! written to a temporary directory for proton.
//!
//! Every run is bounded (our container's limit, the peer's `--timeout`, a kill by PID). If
//! `python3 -c 'import proton'` fails, the tests fail unless `INTEROP_OPTIONAL=1`.

mod common;

use std::sync::{mpsc, Arc};
use std::time::Duration;

use amqp_tokio::{ListenOptions, PemSource, TlsListen, TlsOptions};
use amqp_tokio::{SaslServerConfig, StaticUsers};
use common::pair::{opts, MakeOptions, Outcome, Pair};
use common::pki::{pki, PemDir};
use common::proton::{require_proton, ProtonPeer};
use serde_json::Value as Json;

const N: usize = 5;
const PEER_LIMIT: Duration = Duration::from_secs(30);

fn amqps_listen(sasl: Option<SaslServerConfig>, mtls: bool) -> ListenOptions {
    let p = pki();
    ListenOptions {
        tls: Some(TlsListen {
            cert: Some(PemSource::Pem(p.server_cert.clone())),
            key: Some(PemSource::Pem(p.server_key.clone())),
            client_ca: mtls.then(|| PemSource::Pem(p.ca.clone())),
            require_client_cert: mtls,
        }),
        sasl,
        ..ListenOptions::default()
    }
}

/// Runs our listener (in its own container) for one proton client; returns what each saw.
fn proton_client_to_us(
    listen_url: &str,
    listen: ListenOptions,
    limit: Duration,
    args: impl FnOnce(u16) -> Vec<String>,
) -> (Outcome, Result<Json, String>) {
    let (tx, rx) = mpsc::channel();
    let pair = Pair::serve(listen_url, listen, 1, tx).count(N).limit(limit);
    let server = std::thread::spawn(move || pair.run());
    let port = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("our listener's port");
    let peer = ProtonPeer::spawn(&args(port));
    let summary = peer.finish(PEER_LIMIT);
    let ours = server.join().expect("our container");
    (ours, summary)
}

fn s(v: &str) -> String {
    v.to_string()
}

fn assert_proton_exchanged(j: &Json) {
    assert_eq!(j["opened"], true, "{j}");
    // Our listener answered proton's close before the socket went away.
    assert_eq!(j["closed"], true, "{j}");
    assert_eq!(j["timed_out"], false, "{j}");
    assert!(j["transport_error"].is_null(), "{j}");
    assert_eq!(j["received"].as_array().map(Vec::len), Some(N), "{j}");
    assert_eq!(j["received"][0], "from server 0", "{j}");
    assert_eq!(j["accepted"], N, "{j}");
}

fn assert_we_served(o: &Outcome) {
    assert!(!o.timed_out, "{o:#?}");
    assert_eq!(o.server_received.len(), N, "{o:#?}");
    assert!(o.server_received[0].starts_with("from proton"), "{o:#?}");
    assert!(o.server_errors.is_empty(), "{o:#?}");
}

/// (h) proton client, TLS with VERIFY_PEER_NAME against our CA → our amqps listener.
#[test]
fn h_proton_client_to_our_amqps_listener() {
    if !require_proton("h_proton_client_to_our_amqps_listener") {
        return;
    }
    let dir = PemDir::new("h");
    let (ours, peer) = proton_client_to_us(
        "amqps://127.0.0.1:0",
        amqps_listen(None, false),
        Duration::from_secs(20),
        |port| {
            vec![
                s("--connect"),
                format!("amqps://localhost:{port}"),
                s("--ca"),
                dir.path("ca.pem"),
                s("--verify"),
                s("name"),
                s("--count"),
                N.to_string(),
            ]
        },
    );
    let j = peer.unwrap();
    assert_proton_exchanged(&j);
    assert!(
        j["ssl"]["protocol"]
            .as_str()
            .unwrap_or("")
            .starts_with("TLS"),
        "{j}"
    );
    assert_we_served(&ours);
    assert_eq!(ours.server_users, vec![Some(s("anonymous"))]);
}

/// (h) the same without TLS, to a plain listener.
#[test]
fn h_proton_client_to_our_plain_listener() {
    if !require_proton("h_proton_client_to_our_plain_listener") {
        return;
    }
    let (ours, peer) = proton_client_to_us(
        "amqp://127.0.0.1:0",
        ListenOptions::default(),
        Duration::from_secs(20),
        |port| {
            vec![
                s("--connect"),
                format!("amqp://127.0.0.1:{port}"),
                s("--count"),
                N.to_string(),
            ]
        },
    );
    let j = peer.unwrap();
    assert_proton_exchanged(&j);
    assert!(j["ssl"].is_null(), "{j}");
    assert_we_served(&ours);
}

/// (h) proton client with a client certificate, SASL EXTERNAL → our mutual-TLS listener
/// offering EXTERNAL: we see "alice".
#[test]
fn h_proton_client_mutual_tls_external() {
    if !require_proton("h_proton_client_mutual_tls_external") {
        return;
    }
    let dir = PemDir::new("h-mtls");
    let sasl = SaslServerConfig::new(&["EXTERNAL"], Arc::new(StaticUsers::new()));
    let (ours, peer) = proton_client_to_us(
        "amqps://127.0.0.1:0",
        amqps_listen(Some(sasl), true),
        Duration::from_secs(20),
        |port| {
            vec![
                s("--connect"),
                format!("amqps://localhost:{port}"),
                s("--ca"),
                dir.path("ca.pem"),
                s("--cert"),
                dir.path("client.pem"),
                s("--key"),
                dir.path("client.key"),
                s("--mechs"),
                s("EXTERNAL"),
                s("--count"),
                N.to_string(),
            ]
        },
    );
    let j = peer.unwrap();
    assert_proton_exchanged(&j);
    assert_eq!(j["sasl_mech"], "EXTERNAL", "{j}");
    assert_we_served(&ours);
    assert_eq!(ours.server_users, vec![Some(s("alice"))]);
}

/// (h) proton client, PLAIN over TLS → our listener with a user database; and a wrong
/// password is refused.
#[test]
fn h_proton_client_plain_over_tls() {
    if !require_proton("h_proton_client_plain_over_tls") {
        return;
    }
    let dir = PemDir::new("h-plain");
    let users =
        || Arc::new(StaticUsers::new().with_user("bob", "secret", b"salt-for-bob-123", 4096));
    let args = |password: &'static str| {
        let ca = dir.path("ca.pem");
        move |port: u16| {
            vec![
                s("--connect"),
                format!("amqps://localhost:{port}"),
                s("--ca"),
                ca,
                s("--mechs"),
                s("PLAIN"),
                s("--user"),
                s("bob"),
                s("--password"),
                s(password),
                s("--count"),
                N.to_string(),
            ]
        }
    };
    let (ours, peer) = proton_client_to_us(
        "amqps://127.0.0.1:0",
        amqps_listen(Some(SaslServerConfig::new(&["PLAIN"], users())), false),
        Duration::from_secs(20),
        args("secret"),
    );
    let j = peer.unwrap();
    assert_proton_exchanged(&j);
    assert_eq!(j["sasl_mech"], "PLAIN", "{j}");
    assert_we_served(&ours);
    assert_eq!(ours.server_users, vec![Some(s("bob"))]);

    let (ours, peer) = proton_client_to_us(
        "amqps://127.0.0.1:0",
        amqps_listen(Some(SaslServerConfig::new(&["PLAIN"], users())), false),
        Duration::from_secs(20),
        args("wrong"),
    );
    let j = peer.unwrap();
    assert_eq!(j["opened"], false, "{j}");
    assert!(
        j["transport_error"]["condition"]
            .as_str()
            .is_some_and(|c| c.contains("unauthorized")),
        "{j}"
    );
    assert!(!ours.timed_out, "{ours:#?}");
    assert!(ours.server_users.is_empty());
    assert!(!ours.server_errors.is_empty(), "{ours:#?}");
}

/// (h) proton client that does not trust our certificate: OpenSSL refuses it; our listener
/// is unharmed (the run ends at its short limit, having accepted no connection).
#[test]
fn h_proton_client_unknown_ca() {
    if !require_proton("h_proton_client_unknown_ca") {
        return;
    }
    let dir = PemDir::new("h-ca");
    let (ours, peer) = proton_client_to_us(
        "amqps://127.0.0.1:0",
        amqps_listen(None, false),
        Duration::from_secs(3),
        |port| {
            vec![
                s("--connect"),
                format!("amqps://localhost:{port}"),
                s("--ca"),
                dir.path("other-ca.pem"),
                s("--count"),
                N.to_string(),
            ]
        },
    );
    let j = peer.unwrap();
    assert_eq!(j["opened"], false, "{j}");
    let desc = j["transport_error"]["description"]
        .as_str()
        .unwrap_or("")
        .to_lowercase();
    assert!(desc.contains("certificate"), "{j}");
    assert!(ours.server_users.is_empty(), "{ours:#?}");
    assert!(ours.server_received.is_empty());
}

/// Starts a proton listener and runs our clients against it.
fn us_to_proton_listener(args: &[String], clients: Vec<MakeOptions>) -> (Outcome, Json) {
    let mut peer = ProtonPeer::spawn(args);
    let port = peer
        .wait_ready(Duration::from_secs(15))
        .expect("proton listener");
    let ours = Pair::clients_only(port, clients)
        .count(N)
        .limit(Duration::from_secs(20))
        .run();
    let j = peer.finish(PEER_LIMIT).expect("proton summary");
    (ours, j)
}

fn assert_we_exchanged(o: &Outcome) {
    assert!(!o.timed_out, "{o:#?}");
    let c = &o.clients[0];
    assert!(c.opened, "{o:#?}");
    assert_eq!(c.accepted, N, "{o:#?}");
    assert_eq!(c.received.len(), N, "{o:#?}");
    assert_eq!(c.received[0], "from proton 0");
    assert!(c.closed && c.errors().is_empty(), "{o:#?}");
}

fn assert_proton_listener_clean(j: &Json) {
    assert_eq!(j["opened"], true, "{j}");
    assert_eq!(j["closed"], true, "{j}");
    assert!(j["transport_error"].is_null(), "{j}");
    assert_eq!(j["accepted"], N, "{j}");
}

/// (i) our client, TLS with the test CA → proton's amqps listener.
#[test]
fn i_our_client_to_proton_amqps_listener() {
    if !require_proton("i_our_client_to_proton_amqps_listener") {
        return;
    }
    let dir = PemDir::new("i");
    let args = vec![
        s("--listen"),
        s("0"),
        s("--cert"),
        dir.path("server.pem"),
        s("--key"),
        dir.path("server.key"),
        s("--count"),
        N.to_string(),
    ];
    let client: MakeOptions = Box::new(|port| {
        opts(&format!("amqps://localhost:{port}")).tls(TlsOptions::new().ca_pem(pki().ca.clone()))
    });
    let (ours, j) = us_to_proton_listener(&args, vec![client]);
    assert_we_exchanged(&ours);
    assert_proton_listener_clean(&j);
    assert_eq!(j["opened"], true, "{j}");
    assert_eq!(j["received"].as_array().map(Vec::len), Some(N), "{j}");
    assert_eq!(j["received"][0], "from client 0", "{j}");
    assert!(
        j["ssl"]["protocol"]
            .as_str()
            .unwrap_or("")
            .starts_with("TLS"),
        "{j}"
    );
}

/// (i) our client presenting CN=alice → proton listener that verifies client certificates;
/// proton offers EXTERNAL and authenticates us by the certificate.
#[test]
fn i_our_client_mutual_tls_external_to_proton() {
    if !require_proton("i_our_client_mutual_tls_external_to_proton") {
        return;
    }
    let dir = PemDir::new("i-mtls");
    let args = vec![
        s("--listen"),
        s("0"),
        s("--cert"),
        dir.path("server.pem"),
        s("--key"),
        dir.path("server.key"),
        s("--ca"),
        dir.path("ca.pem"),
        s("--require-client-cert"),
        s("--count"),
        N.to_string(),
    ];
    let client: MakeOptions = Box::new(|port| {
        let p = pki();
        opts(&format!("amqps://localhost:{port}"))
            .allowed_mechs("EXTERNAL")
            .tls(
                TlsOptions::new()
                    .ca_pem(p.ca.clone())
                    .client_cert_pem(p.client_cert.clone())
                    .client_key_pem(p.client_key.clone()),
            )
    });
    let (ours, j) = us_to_proton_listener(&args, vec![client]);
    assert_we_exchanged(&ours);
    assert_proton_listener_clean(&j);
    assert_eq!(j["sasl_mech"], "EXTERNAL", "{j}");
    assert!(
        j["sasl_user"].as_str().unwrap_or("").contains("alice"),
        "{j}"
    );
    assert!(
        j["ssl"]["remote_subject"]
            .as_str()
            .unwrap_or("")
            .contains("CN=alice"),
        "{j}"
    );
}

/// (i) proton serving a certificate for `localhost` only: our client connecting to
/// 127.0.0.1 refuses it (name check), with a certificate error.
#[test]
fn i_our_client_refuses_proton_cert_for_other_name() {
    if !require_proton("i_our_client_refuses_proton_cert_for_other_name") {
        return;
    }
    let dir = PemDir::new("i-name");
    let args = vec![
        s("--listen"),
        s("0"),
        s("--cert"),
        dir.path("localhost.pem"),
        s("--key"),
        dir.path("localhost.key"),
        s("--timeout"),
        s("10"),
    ];
    let client: MakeOptions = Box::new(|port| {
        opts(&format!("amqps://127.0.0.1:{port}")).tls(TlsOptions::new().ca_pem(pki().ca.clone()))
    });
    let (ours, j) = us_to_proton_listener(&args, vec![client]);
    let c = &ours.clients[0];
    assert!(!c.opened && c.closed, "{ours:#?}");
    assert!(c.errors().contains("certificate"), "{ours:#?}");
    assert_eq!(j["opened"], false, "{j}");
}
