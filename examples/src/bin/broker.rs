//! Proton's `broker.py`, grown up a little: a small message broker with queues created on
//! demand, competing consumers with credit-respecting round-robin, redelivery of what a
//! consumer leaves unsettled (with a redelivery limit), temporary queues for dynamic
//! receivers, browsing (`copy`), JMS selectors, SASL (ANONYMOUS, or PLAIN and SCRAM with
//! users, and Kerberos with GSSAPI) and TLS. See the `amqp_examples::broker` module for the details and
//! `amqp_examples::selector` for the selector syntax.
//!
//! ```text
//! broker [-a localhost:5672] [-v] [-l 5]
//! broker -a 0.0.0.0:5672 --user alice --password secret         # SASL PLAIN / SCRAM
//! broker --users users.txt                                        # lines of user:password
//! broker -a amqps://0.0.0.0:5671 --tls-cert cert.pem --tls-key key.pem
//! broker -a broker.example.com:5672 --gssapi --keytab amqp.keytab  # Kerberos: amqp/HOST key
//! ```
//!
//! It prints `Listening on URL` (with the port it got) to stderr once listening.

use std::sync::Arc;

use amqp_engine::messaging::{ListenOptions, PemSource, TlsListen};
use amqp_engine::sasl::{
    SaslServerConfig, StaticUsers, ANONYMOUS, GSSAPI, PLAIN, SCRAM_SHA_1, SCRAM_SHA_256,
};
use amqp_examples::args::Parser;
use amqp_examples::broker::{Broker, BrokerConfig};
use amqp_tokio::gssapi::{server_mechanism, KerberosServer};
use amqp_tokio::Container;

/// SCRAM iterations for the users' derived credentials.
const ITERATIONS: u32 = 4096;

fn salt(user: &str) -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(user.as_bytes());
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

fn read_users(path: &str, users: &mut StaticUsers) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        eprintln!("broker: cannot read users file {path}: {e}");
        std::process::exit(2)
    });
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, password)) = line.split_once(':') else {
            eprintln!("broker: {path}:{}: expected user:password", i + 1);
            std::process::exit(2)
        };
        users.add_user(user, password, &salt(user), ITERATIONS);
        n += 1;
    }
    n
}

fn main() {
    let m = Parser::new("broker", "A small AMQP 1.0 message broker.")
        .flag('v', "verbose", "enable verbose output")
        .opt(
            'a',
            "address",
            "ADDRESS",
            "localhost:5672",
            "address router listens on",
        )
        .opt(
            'l',
            "redelivery-limit",
            "LIMIT",
            "5",
            "maximum redelivery attempts",
        )
        .opt(
            '\0',
            "dead-letter-queue",
            "QUEUE",
            "",
            "queue for rejected and undeliverable messages (default: drop them)",
        )
        .opt(
            '\0',
            "user",
            "USER",
            "",
            "require SASL authentication (PLAIN, SCRAM-SHA-1, SCRAM-SHA-256) as this user",
        )
        .opt('\0', "password", "PASSWORD", "", "the password of --user")
        .opt(
            '\0',
            "users",
            "FILE",
            "",
            "require SASL authentication by the users in FILE (lines of user:password)",
        )
        .flag(
            '\0',
            "allow-anonymous",
            "with --user, --users or --gssapi, also let ANONYMOUS clients in",
        )
        .opt(
            '\0',
            "tls-cert",
            "FILE",
            "",
            "TLS certificate chain (PEM); listens on amqps",
        )
        .opt('\0', "tls-key", "FILE", "", "TLS private key (PEM)")
        .flag(
            '\0',
            "gssapi",
            "offer Kerberos (SASL GSSAPI) with the keys of the keytab (KRB5_KTNAME or --keytab)",
        )
        .opt(
            '\0',
            "keytab",
            "FILE",
            "",
            "with --gssapi, the keytab holding the amqp/HOST key",
        )
        .opt(
            '\0',
            "prefetch",
            "CREDIT",
            "100",
            "credit granted to each producer",
        )
        .epilog(
            "Without --user/--users/--gssapi, clients are let in with SASL ANONYMOUS (or no SASL). \
             PLAIN sends the password in the clear: use it with TLS, or tell the client to \
             allow insecure mechanisms.",
        )
        .parse();

    let mut listen = ListenOptions::default();
    let mut users = StaticUsers::new();
    let mut n_users = 0;
    if let Some(user) = m.get_opt("user") {
        let Some(password) = m.get_opt("password") else {
            eprintln!("broker: --user needs --password");
            std::process::exit(2)
        };
        users.add_user(user, password, &salt(user), ITERATIONS);
        n_users += 1;
    }
    if let Some(path) = m.get_opt("users") {
        n_users += read_users(path, &mut users);
    }
    let gssapi = m.flag("gssapi");
    if m.get_opt("keytab").is_some() && !gssapi {
        eprintln!("broker: --keytab needs --gssapi");
        std::process::exit(2)
    }
    if n_users > 0 || gssapi {
        let anonymous = m.flag("allow-anonymous");
        users.set_allow_anonymous(anonymous);
        let mut mechs = Vec::new();
        if gssapi {
            mechs.push(GSSAPI);
        }
        if n_users > 0 {
            mechs.extend([SCRAM_SHA_256, SCRAM_SHA_1, PLAIN]);
        }
        if anonymous {
            mechs.push(ANONYMOUS);
        }
        let mut sasl = SaslServerConfig::new(&mechs, Arc::new(users));
        if gssapi {
            let kerberos = match m.get_opt("keytab") {
                Some(path) => KerberosServer::with_keytab(path),
                None => KerberosServer::new(),
            };
            sasl.extra_mechanisms.push(server_mechanism(kerberos));
        }
        listen.sasl = Some(sasl);
    }

    let mut address = m.get("address").to_string();
    match (m.get_opt("tls-cert"), m.get_opt("tls-key")) {
        (Some(cert), Some(key)) => {
            listen.tls = Some(TlsListen {
                cert: Some(PemSource::File(cert.to_string())),
                key: Some(PemSource::File(key.to_string())),
                ..TlsListen::default()
            });
            if !address.contains("://") {
                address = format!("amqps://{address}");
            }
        }
        (None, None) => {}
        _ => {
            eprintln!("broker: --tls-cert and --tls-key go together");
            std::process::exit(2)
        }
    }

    let cfg = BrokerConfig {
        address,
        verbose: m.flag("verbose"),
        redelivery_limit: m.get_parsed("redelivery-limit"),
        dead_letter_queue: m.get_opt("dead-letter-queue").map(str::to_string),
        listen,
        prefetch: m.get_parsed("prefetch"),
        announce: true,
    };
    let broker = Container::new(Broker::new(cfg)).run();
    if broker.error().is_some() {
        std::process::exit(1);
    }
}
