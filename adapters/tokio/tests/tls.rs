//! TLS and SASL over real loopback sockets on the tokio adapter: amqps listeners and clients
//! with a CA generated at test time (rcgen), certificate and host-name checks, plaintext/TLS
//! mismatches, mutual TLS with SASL EXTERNAL, PLAIN over TLS, and SCRAM-SHA-256.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_adapter::TLS_HANDSHAKE_TIMEOUT;

use amqp_tokio::{ListenOptions, PemSource, TlsListen, TlsOptions, TransportErrorKind, VerifyMode};
use amqp_tokio::{SaslServerConfig, StaticUsers};
use common::pair::{opts, MakeOptions, Outcome, Pair};
use common::pki::pki;

const N: usize = 5;

fn tls_listen(cert: &str, key: &str) -> TlsListen {
    TlsListen {
        cert: Some(PemSource::Pem(cert.to_string())),
        key: Some(PemSource::Pem(key.to_string())),
        ..TlsListen::default()
    }
}

fn amqps_listener() -> ListenOptions {
    let p = pki();
    ListenOptions {
        tls: Some(tls_listen(&p.server_cert, &p.server_key)),
        ..ListenOptions::default()
    }
}

fn trusting_client(host: &str) -> MakeOptions {
    let host = host.to_string();
    Box::new(move |port| {
        opts(&format!("amqps://{host}:{port}")).tls(TlsOptions::new().ca_pem(pki().ca.clone()))
    })
}

fn users() -> Arc<StaticUsers> {
    Arc::new(
        StaticUsers::new()
            .with_user("bob", "secret", b"salt-for-bob-123", 4096)
            .with_user("carol", "hunter2", b"salt-for-carol-1", 4096),
    )
}

fn assert_flowed(o: &Outcome, client: usize) {
    let c = &o.clients[client];
    assert!(
        c.opened,
        "client {client} did not open: {} / server: {:?}",
        c.errors(),
        o.server_errors
    );
    assert_eq!(c.accepted, N, "client {client} outcomes: {o:#?}");
    assert_eq!(c.received.len(), N, "client {client} received: {o:#?}");
    assert!(c.received[0].starts_with("from server"));
    assert!(c.closed);
    assert!(
        c.errors().is_empty(),
        "client {client} errors: {}",
        c.errors()
    );
}

fn assert_refused(o: &Outcome, client: usize, needle: &[&str]) {
    let c = &o.clients[client];
    assert!(!c.opened, "client {client} should not have opened: {o:#?}");
    assert_eq!(c.accepted, 0);
    assert!(c.received.is_empty());
    assert!(c.closed, "client {client} never closed: {o:#?}");
    let errs = c.errors().to_lowercase();
    assert!(
        needle.iter().any(|n| errs.contains(&n.to_lowercase())),
        "client {client} errors {errs:?} mention none of {needle:?}"
    );
}

/// (a) amqps listener, client trusting the test CA and connecting by name: messages flow both
/// ways, and the server's certificate is also valid for 127.0.0.1 (IP SAN).
#[test]
fn a_amqps_messages_flow() {
    let o = Pair::new(
        "amqps://127.0.0.1:0",
        amqps_listener(),
        vec![trusting_client("localhost"), trusting_client("127.0.0.1")],
    )
    .count(N)
    .run();
    assert!(!o.timed_out, "{o:#?}");
    assert!(o.acceptor_error.is_none(), "{o:#?}");
    assert_flowed(&o, 0);
    assert_flowed(&o, 1);
    assert_eq!(o.server_received.len(), 2 * N);
    assert!(o.server_errors.is_empty(), "{:?}", o.server_errors);
}

/// (a) Large messages over TLS: 40 bodies of 256 KiB each way (10 MiB in all), through TLS
/// records, partial reads and writes, and the driver's back-pressure.
#[test]
fn a_amqps_large_messages() {
    let o = Pair::new(
        "amqps://127.0.0.1:0",
        amqps_listener(),
        vec![trusting_client("localhost")],
    )
    .count(40)
    .padding(256 * 1024)
    .limit(Duration::from_secs(60))
    .run();
    assert!(!o.timed_out, "{o:#?}");
    let c = &o.clients[0];
    assert!(c.opened && c.closed && c.errors().is_empty(), "{o:#?}");
    assert_eq!(c.accepted, 40);
    let expect: Vec<String> = (0..40).map(|i| format!("from server {i}")).collect();
    assert_eq!(c.received, expect);
    let expect: Vec<String> = (0..40).map(|i| format!("from client {i}")).collect();
    assert_eq!(o.server_received, expect);
}

/// (b) A client that trusts another CA, or only the system's roots, is refused with a
/// certificate error and sends nothing; the listener keeps serving (a trusting client then
/// gets through).
#[test]
fn b_unknown_ca_is_refused() {
    let other: MakeOptions = Box::new(|port| {
        opts(&format!("amqps://localhost:{port}"))
            .tls(TlsOptions::new().ca_pem(pki().other_ca.clone()))
    });
    // No CA given: the operating system's roots (rustls-native-certs), which do not hold ours.
    let system_roots: MakeOptions =
        Box::new(|port| opts(&format!("amqps://localhost:{port}")).tls(TlsOptions::new()));
    let o = Pair::new(
        "amqps://127.0.0.1:0",
        amqps_listener(),
        vec![other, system_roots, trusting_client("localhost")],
    )
    .count(N)
    .run();
    assert!(!o.timed_out, "{o:#?}");
    assert_refused(&o, 0, &["certificate"]);
    assert_refused(&o, 1, &["certificate"]);
    for c in 0..2 {
        let kinds = &o.clients[c].transport_error_kinds;
        assert!(
            kinds.iter().all(|k| *k == TransportErrorKind::Tls),
            "{kinds:?}"
        );
    }
    assert_flowed(&o, 2);
    assert_eq!(
        o.server_received.len(),
        N,
        "only the last client's messages"
    );
}

/// (c) A certificate for `localhost` only: connecting to 127.0.0.1 fails the name check, as
/// does an SNI/peer name it does not cover; `VerifyPeer` (chain only) accepts both.
#[test]
fn c_wrong_host_name() {
    let p = pki();
    let listen = ListenOptions {
        tls: Some(tls_listen(&p.localhost_cert, &p.localhost_key)),
        ..ListenOptions::default()
    };
    let by_ip = trusting_client("127.0.0.1");
    let other_sni: MakeOptions = Box::new(|port| {
        opts(&format!("amqps://localhost:{port}"))
            .sni("broker.example.com")
            .tls(TlsOptions::new().ca_pem(pki().ca.clone()))
    });
    let peer_only_ip: MakeOptions = Box::new(|port| {
        opts(&format!("amqps://127.0.0.1:{port}")).tls(
            TlsOptions::new()
                .ca_pem(pki().ca.clone())
                .verify(VerifyMode::VerifyPeer),
        )
    });
    let peer_only_sni: MakeOptions = Box::new(|port| {
        opts(&format!("amqps://localhost:{port}"))
            .sni("broker.example.com")
            .tls(
                TlsOptions::new()
                    .ca_pem(pki().ca.clone())
                    .verify(VerifyMode::VerifyPeer),
            )
    });
    // VerifyPeer still checks the chain: an unknown CA is refused.
    let peer_only_unknown_ca: MakeOptions = Box::new(|port| {
        opts(&format!("amqps://127.0.0.1:{port}")).tls(
            TlsOptions::new()
                .ca_pem(pki().other_ca.clone())
                .verify(VerifyMode::VerifyPeer),
        )
    });
    let o = Pair::new(
        "amqps://127.0.0.1:0",
        listen,
        vec![
            by_ip,
            other_sni,
            peer_only_ip,
            peer_only_sni,
            peer_only_unknown_ca,
        ],
    )
    .count(N)
    .run();
    assert!(!o.timed_out, "{o:#?}");
    assert_refused(&o, 0, &["certificate", "name"]);
    assert_refused(&o, 1, &["certificate", "name"]);
    assert_flowed(&o, 2);
    assert_flowed(&o, 3);
    assert_refused(&o, 4, &["certificate", "issuer"]);
}

/// (d) A plaintext client on a TLS port, and a TLS client on a plaintext port: both fail
/// promptly with an error, nothing hangs, and the listeners keep working.
#[test]
fn d_plaintext_and_tls_mismatch() {
    let plain: MakeOptions = Box::new(|port| opts(&format!("amqp://127.0.0.1:{port}")));
    let started = std::time::Instant::now();
    let o = Pair::new(
        "amqps://127.0.0.1:0",
        amqps_listener(),
        vec![plain, trusting_client("localhost")],
    )
    .count(N)
    .run();
    assert!(!o.timed_out, "{o:#?}");
    let c = &o.clients[0];
    assert!(!c.opened && c.closed && c.accepted == 0, "{o:#?}");
    assert!(
        !c.errors().is_empty(),
        "plaintext client saw no error: {o:#?}"
    );
    // The server never saw an AMQP connection from it, and still serves TLS clients.
    assert_flowed(&o, 1);
    assert_eq!(o.server_users.len(), 1, "{o:#?}");

    let tls_to_plain = trusting_client("localhost");
    let plain: MakeOptions = Box::new(|port| opts(&format!("amqp://127.0.0.1:{port}")));
    let o2 = Pair::new(
        "amqp://127.0.0.1:0",
        ListenOptions::default(),
        vec![tls_to_plain, plain],
    )
    .count(N)
    .run();
    assert!(!o2.timed_out, "{o2:#?}");
    let c = &o2.clients[0];
    assert!(!c.opened && c.closed && c.accepted == 0, "{o2:#?}");
    assert!(
        !c.errors().is_empty(),
        "TLS client on plain port saw no error: {o2:#?}"
    );
    assert_flowed(&o2, 1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "mismatches took {:?}",
        started.elapsed()
    );
}

fn mtls_listener(sasl: Option<SaslServerConfig>) -> ListenOptions {
    let p = pki();
    ListenOptions {
        tls: Some(TlsListen {
            client_ca: Some(PemSource::Pem(p.ca.clone())),
            require_client_cert: true,
            ..tls_listen(&p.server_cert, &p.server_key)
        }),
        sasl,
        ..ListenOptions::default()
    }
}

fn alice() -> TlsOptions {
    let p = pki();
    TlsOptions::new()
        .ca_pem(p.ca.clone())
        .client_cert_pem(p.client_cert.clone())
        .client_key_pem(p.client_key.clone())
}

/// (e) Mutual TLS: the listener requires a client certificate from the test CA and offers
/// SASL EXTERNAL; the client presents CN=alice and authenticates with EXTERNAL; the server
/// sees "alice". A client without a certificate is refused.
#[test]
fn e_mutual_tls_and_sasl_external() {
    let sasl = SaslServerConfig::new(&["EXTERNAL"], users());
    let external: MakeOptions = Box::new(|port| {
        opts(&format!("amqps://localhost:{port}"))
            .allowed_mechs("EXTERNAL")
            .tls(alice())
    });
    let no_cert = trusting_client("localhost");
    let o = Pair::new(
        "amqps://127.0.0.1:0",
        mtls_listener(Some(sasl)),
        vec![external, no_cert],
    )
    .count(N)
    .run();
    assert!(!o.timed_out, "{o:#?}");
    assert_flowed(&o, 0);
    assert_eq!(o.server_users, vec![Some("alice".to_string())]);
    let c = &o.clients[1];
    assert!(!c.opened && c.closed && c.accepted == 0, "{o:#?}");
    assert!(!c.errors().is_empty(), "{o:#?}");
}

/// (e') EXTERNAL needs a client certificate: with TLS but no client certificate requested,
/// a server offering only EXTERNAL refuses the client.
#[test]
fn e_external_without_client_certificate_fails() {
    let listen = ListenOptions {
        sasl: Some(SaslServerConfig::new(&["EXTERNAL"], users())),
        ..amqps_listener()
    };
    let external: MakeOptions = Box::new(|port| {
        opts(&format!("amqps://localhost:{port}"))
            .allowed_mechs("EXTERNAL")
            .tls(TlsOptions::new().ca_pem(pki().ca.clone()))
    });
    let o = Pair::new("amqps://127.0.0.1:0", listen, vec![external])
        .count(N)
        .run();
    assert!(!o.timed_out, "{o:#?}");
    assert_refused(&o, 0, &["mechanism", "external", "auth"]);
    assert!(o.server_users.is_empty());
}

/// (f) PLAIN over TLS with the right password works; with the wrong one the client gets an
/// authentication error; over plaintext the client refuses PLAIN when insecure mechanisms
/// are not allowed.
#[test]
fn f_plain_over_tls() {
    let listen = ListenOptions {
        sasl: Some(SaslServerConfig::new(&["PLAIN"], users())),
        ..amqps_listener()
    };
    let good: MakeOptions = Box::new(|port| {
        opts(&format!("amqps://localhost:{port}"))
            .user("bob")
            .password("secret")
            .allow_insecure_mechs(false)
            .tls(TlsOptions::new().ca_pem(pki().ca.clone()))
    });
    let bad: MakeOptions = Box::new(|port| {
        opts(&format!("amqps://localhost:{port}"))
            .user("bob")
            .password("wrong")
            .tls(TlsOptions::new().ca_pem(pki().ca.clone()))
    });
    let o = Pair::new("amqps://127.0.0.1:0", listen, vec![good, bad])
        .count(N)
        .run();
    assert!(!o.timed_out, "{o:#?}");
    assert_flowed(&o, 0);
    assert_eq!(o.server_users, vec![Some("bob".to_string())]);
    assert_refused(&o, 1, &["auth"]);
    assert_eq!(
        o.clients[1].transport_error_kinds,
        [TransportErrorKind::Authentication]
    );
    assert!(!o.server_errors.is_empty(), "server saw no auth failure");
}

#[test]
fn f_plain_over_plaintext_refused_by_client() {
    let listen = ListenOptions {
        sasl: Some(SaslServerConfig::new(&["PLAIN"], users())),
        ..ListenOptions::default()
    };
    let careful: MakeOptions = Box::new(|port| {
        opts(&format!("amqp://127.0.0.1:{port}"))
            .user("bob")
            .password("secret")
            .allow_insecure_mechs(false)
    });
    // The default (Proton's) allows PLAIN without TLS.
    let default: MakeOptions = Box::new(|port| {
        opts(&format!("amqp://127.0.0.1:{port}"))
            .user("bob")
            .password("secret")
    });
    let o = Pair::new("amqp://127.0.0.1:0", listen, vec![careful, default])
        .count(N)
        .run();
    assert!(!o.timed_out, "{o:#?}");
    assert_refused(&o, 0, &["PLAIN needs TLS"]);
    // No mechanism both sides allow: an authentication failure.
    assert_eq!(
        o.clients[0].transport_error_kinds,
        [TransportErrorKind::Authentication]
    );
    assert_flowed(&o, 1);
    assert_eq!(o.server_users, vec![Some("bob".to_string())]);
}

/// (g) SCRAM-SHA-256 between our client and server over plaintext sockets; a wrong password
/// fails.
#[test]
fn g_scram_sha_256_over_plaintext() {
    let listen = ListenOptions {
        sasl: Some(SaslServerConfig::new(&["SCRAM-SHA-256"], users())),
        ..ListenOptions::default()
    };
    let good: MakeOptions = Box::new(|port| {
        opts(&format!("amqp://127.0.0.1:{port}"))
            .user("carol")
            .password("hunter2")
            .allowed_mechs("SCRAM-SHA-256")
            .allow_insecure_mechs(false)
    });
    let bad: MakeOptions = Box::new(|port| {
        opts(&format!("amqp://127.0.0.1:{port}"))
            .user("carol")
            .password("hunter3")
            .allowed_mechs("SCRAM-SHA-256")
    });
    let o = Pair::new("amqp://127.0.0.1:0", listen, vec![good, bad])
        .count(N)
        .run();
    assert!(!o.timed_out, "{o:#?}");
    assert_flowed(&o, 0);
    assert_eq!(o.server_users, vec![Some("carol".to_string())]);
    assert_refused(&o, 1, &["auth"]);
}

/// Listener misconfiguration: an amqps listener without a certificate reports an acceptor
/// error instead of accepting connections it cannot serve.
#[test]
fn amqps_listener_without_certificate_errors() {
    let o = Pair::new("amqps://127.0.0.1:0", ListenOptions::default(), vec![]).run();
    let e = o.acceptor_error.expect("acceptor error");
    assert!(e.contains("certificate"), "{e}");
}

/// Asking for client certificates without a CA to check them against is refused (rather than
/// silently accepting clients without certificates).
#[test]
fn require_client_cert_without_client_ca_errors() {
    let p = pki();
    let listen = ListenOptions {
        tls: Some(TlsListen {
            require_client_cert: true,
            ..tls_listen(&p.server_cert, &p.server_key)
        }),
        ..ListenOptions::default()
    };
    let o = Pair::new("amqps://127.0.0.1:0", listen, vec![]).run();
    let e = o.acceptor_error.expect("acceptor error");
    assert!(e.contains("client_ca"), "{e}");
}

/// A TCP peer that accepts and then says nothing: the client's TLS handshake gives up after
/// TLS_HANDSHAKE_TIMEOUT with a transport error instead of hanging.
#[test]
fn tls_handshake_timeout_client_side() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = silent.accept();
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
        drop(conn);
    });
    let started = Instant::now();
    let o = Pair::clients_only(port, vec![trusting_client("localhost")])
        .limit(TLS_HANDSHAKE_TIMEOUT + Duration::from_secs(10))
        .run();
    let took = started.elapsed();
    let _ = done_tx.send(());
    let _ = holder.join();
    assert!(!o.timed_out, "{o:#?}");
    assert_refused(&o, 0, &["timed out"]);
    assert!(
        took >= TLS_HANDSHAKE_TIMEOUT && took < TLS_HANDSHAKE_TIMEOUT + Duration::from_secs(5),
        "{took:?}"
    );
}

/// A client that connects to an amqps listener and never starts the handshake is
/// disconnected after TLS_HANDSHAKE_TIMEOUT (while the listener is still running).
#[test]
fn tls_handshake_timeout_server_side() {
    let (tx, rx) = std::sync::mpsc::channel();
    let limit = TLS_HANDSHAKE_TIMEOUT + Duration::from_secs(4);
    let pair = Pair::serve("amqps://127.0.0.1:0", amqps_listener(), 0, tx).limit(limit);
    let server = std::thread::spawn(move || pair.run());
    let port = rx.recv_timeout(Duration::from_secs(10)).expect("port");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(limit + Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let r = std::io::Read::read(&mut s, &mut buf);
    let took = started.elapsed();
    let o = server.join().unwrap();
    assert!(matches!(r, Ok(0)) || r.is_err(), "{r:?}");
    assert!(
        took >= TLS_HANDSHAKE_TIMEOUT - Duration::from_millis(500) && took < limit,
        "server closed the silent client after {took:?} (limit {limit:?})"
    );
    assert!(o.timed_out, "the listener ran to its limit: {o:#?}");
}
