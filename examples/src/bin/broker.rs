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
//! It prints `Listening on URL` (with the port it got) to stderr once listening, and a line
//! to stderr whenever a full queue pauses a producer or a drained one resumes it.
//!
//! Limits (all in `--help`): each queue holds at most `--max-queue-messages` messages and
//! `--max-queue-bytes` bytes, all queues together `--memory-budget` bytes; producers of a queue
//! at 80 % of a limit get no more credit until it drains below 50 %, and a message past a
//! limit is rejected with `amqp:resource-limit-exceeded`. Producers' links advertise
//! `--max-message-size`; a peer silent for `--idle-timeout` seconds is disconnected, one that
//! has not finished its handshake within `--handshake-timeout` seconds too, and connections
//! past `--max-connections` are refused.

use std::sync::Arc;
use std::time::Duration;

use amqp_engine::messaging::{ListenOptions, PemSource, TlsListen};
use amqp_engine::sasl::{
    SaslServerConfig, StaticUsers, ANONYMOUS, PLAIN, SCRAM_SHA_1, SCRAM_SHA_256,
};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::broker::{Broker, BrokerConfig, DEFAULT_IDLE_TIMEOUT};
use amqp_examples::limits::Limits;
#[cfg(feature = "gssapi")]
use amqp_tokio::gssapi::{server_mechanism, KerberosServer, GSSAPI};
use amqp_tokio::Container;

/// jemalloc, not the system's allocator: after a burst of connections has come and gone,
/// glibc's malloc keeps the broker's resident memory near its peak (the freed memory is
/// fragmented by the few long-lived allocations made during the burst), jemalloc set as in
/// [`MALLOC_CONF`] gives it back. The measurements are in `docs/ROBUSTNESS.md`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read before `main` from this symbol (NUL-terminated):
///
/// * `narenas:1` — one arena for all threads: what one thread freed is reused by all;
/// * `tcache:false` — no per-thread caches of freed blocks: they held (and pinned the pages
///   of) most of what stayed resident after churn;
/// * `dirty_decay_ms:1000`, `muzzy_decay_ms:0` — freed pages go back to the system within a
///   second (with `MADV_DONTNEED`, so they leave the resident set at once)…
/// * `background_thread:true` — …even when no thread allocates any more.
#[allow(unsafe_code)] // A symbol jemalloc reads, not code: exporting it is what is unsafe.
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: &[u8; 83] =
    b"narenas:1,tcache:false,dirty_decay_ms:1000,muzzy_decay_ms:0,background_thread:true\0";

/// Adds the Kerberos (GSSAPI) mechanism, with the keys of `keytab` or of `KRB5_KTNAME`.
#[cfg(feature = "gssapi")]
fn with_kerberos(mut sasl: SaslServerConfig, keytab: Option<&str>) -> SaslServerConfig {
    let kerberos = match keytab {
        Some(path) => KerberosServer::with_keytab(path),
        None => KerberosServer::new(),
    };
    sasl.extra_mechanisms.push(server_mechanism(kerberos));
    sasl
}

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

/// A small AMQP 1.0 message broker.
#[derive(Parser)]
#[command(name = "broker", help_template = HELP_TEMPLATE,
    after_help = "Without --user/--users/--gssapi, clients are let in with SASL ANONYMOUS (or no \
                  SASL). PLAIN sends the password in the clear: use it with TLS, or tell the client to \
                  allow insecure mechanisms.")]
struct Args {
    /// enable verbose output
    #[arg(short, long)]
    verbose: bool,
    /// address router listens on
    #[arg(short, long, value_name = "ADDRESS", default_value = "localhost:5672")]
    address: String,
    /// maximum redelivery attempts
    #[arg(short = 'l', long, value_name = "LIMIT", default_value_t = 5)]
    redelivery_limit: u32,
    /// queue for rejected and undeliverable messages (default: drop them)
    #[arg(long, value_name = "QUEUE")]
    dead_letter_queue: Option<String>,
    /// require SASL authentication (PLAIN, SCRAM-SHA-1, SCRAM-SHA-256) as this user
    #[arg(long, value_name = "USER", requires = "password")]
    user: Option<String>,
    /// the password of --user
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    /// require SASL authentication by the users in FILE (lines of user:password)
    #[arg(long, value_name = "FILE")]
    users: Option<String>,
    /// with --user, --users or --gssapi, also let ANONYMOUS clients in
    #[arg(long)]
    allow_anonymous: bool,
    /// offer Kerberos (SASL GSSAPI) with the keys of the keytab (KRB5_KTNAME or --keytab)
    #[arg(long)]
    gssapi: bool,
    /// with --gssapi, the keytab holding the amqp/HOST key
    #[arg(long, value_name = "FILE", requires = "gssapi")]
    keytab: Option<String>,
    /// TLS certificate chain (PEM); listens on amqps
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<String>,
    /// TLS private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<String>,
    /// credit granted to each producer
    #[arg(long, value_name = "CREDIT", default_value_t = 100)]
    prefetch: u32,
    /// messages one queue may hold (producers are paused at 80 %, resumed below 50 %; past
    /// it, messages are rejected with amqp:resource-limit-exceeded)
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_queue_messages)]
    max_queue_messages: u64,
    /// message bytes one queue may hold (paused at 80 %, resumed below 50 %, rejected past it)
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_queue_bytes)]
    max_queue_bytes: u64,
    /// message bytes the whole broker may hold, all queues together (paused at 80 %, resumed
    /// below 50 %, rejected past it)
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().memory_budget)]
    memory_budget: u64,
    /// largest message accepted, advertised in each producer's attach (larger ones close the
    /// link with amqp:link:message-size-exceeded)
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_message_size)]
    max_message_size: u64,
    /// disconnect a peer that sends nothing for this many seconds (half of it is advertised
    /// in open, so the peer's heartbeats arrive in time); 0 disables
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout: u64,
    /// close a client that has not completed its handshake (protocol header, SASL, open)
    /// within this many seconds, with amqp:resource-limit-exceeded; 0 disables
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    handshake_timeout: u64,
    /// refuse connections past this many open at once (amqp:resource-limit-exceeded as
    /// soon as their open arrives); 0: no limit
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_connections: usize,
}

fn main() {
    let m = Args::parse();

    let mut listen = ListenOptions {
        idle_timeout: (m.idle_timeout > 0).then(|| Duration::from_secs(m.idle_timeout)),
        handshake_timeout: (m.handshake_timeout > 0)
            .then(|| Duration::from_secs(m.handshake_timeout)),
        max_connections: (m.max_connections > 0).then_some(m.max_connections),
        ..ListenOptions::default()
    };
    let mut users = StaticUsers::new();
    let mut n_users = 0;
    // clap enforces that --user comes with --password.
    if let (Some(user), Some(password)) = (m.user.as_deref(), m.password.as_deref()) {
        users.add_user(user, password, &salt(user), ITERATIONS);
        n_users += 1;
    }
    if let Some(path) = m.users.as_deref() {
        n_users += read_users(path, &mut users);
    }
    if m.gssapi && !cfg!(feature = "gssapi") {
        eprintln!(
            "broker: --gssapi needs Kerberos support: build with \
             `cargo run -p amqp-examples --features gssapi --bin broker`"
        );
        std::process::exit(2);
    }
    if n_users > 0 || m.gssapi {
        let anonymous = m.allow_anonymous;
        users.set_allow_anonymous(anonymous);
        let mut mechs = Vec::new();
        #[cfg(feature = "gssapi")]
        if m.gssapi {
            mechs.push(GSSAPI);
        }
        if n_users > 0 {
            mechs.extend([SCRAM_SHA_256, SCRAM_SHA_1, PLAIN]);
        }
        if anonymous {
            mechs.push(ANONYMOUS);
        }
        let sasl = SaslServerConfig::new(&mechs, Arc::new(users));
        #[cfg(feature = "gssapi")]
        let sasl = if m.gssapi {
            with_kerberos(sasl, m.keytab.as_deref())
        } else {
            sasl
        };
        listen.sasl = Some(sasl);
    }

    let mut address = m.address;
    // clap enforces that --tls-cert and --tls-key go together.
    if let (Some(cert), Some(key)) = (m.tls_cert, m.tls_key) {
        listen.tls = Some(TlsListen {
            cert: Some(PemSource::File(cert)),
            key: Some(PemSource::File(key)),
            ..TlsListen::default()
        });
        if !address.contains("://") {
            address = format!("amqps://{address}");
        }
    }

    let cfg = BrokerConfig {
        address,
        verbose: m.verbose,
        redelivery_limit: m.redelivery_limit,
        dead_letter_queue: m.dead_letter_queue,
        listen,
        prefetch: m.prefetch,
        announce: true,
        limits: Limits {
            max_queue_messages: m.max_queue_messages,
            max_queue_bytes: m.max_queue_bytes,
            memory_budget: m.memory_budget,
            max_message_size: m.max_message_size,
        },
    };
    let broker = Container::new(Broker::new(cfg)).run();
    if broker.error().is_some() {
        std::process::exit(1);
    }
}
