//! fe2o3-peer: fe2o3-amqp as a test peer, driven by flags.
//!
//! ```text
//! fe2o3-peer send    URL ADDRESS [COUNT] [BODY_SIZE] [connection flags] [--colour]
//!                    [--sequence-body] [--reconnect SECS] [--json]
//! fe2o3-peer receive URL ADDRESS [COUNT] [BODY_SIZE] [connection flags] [--credit N]
//!                    [--dispositions reject,release,modify,accept] [--drain]
//!                    [--selector EXPR] [--grace SECS] [--json]
//! fe2o3-peer request URL ADDRESS REQUEST... [connection flags]
//! fe2o3-peer idle    URL [connection flags] --idle-timeout-ms MS [--hold SECS]
//! fe2o3-peer listen  sink|source --port PORT [--count N]
//! ```
//!
//! Connection flags: `--sasl none|anonymous|plain|scram-sha256` (the last two with `--user`
//! and `--password`),
//! `--ca FILE` (TLS with rustls for an `amqps://` URL, trusting only that CA; TLS starts at
//! once, without fe2o3's default AMQP TLS protocol header exchange),
//! `--idle-timeout-ms MS`.
//!
//! Message `i` (1-based) has message-id `i` (ulong) and an `amqp-value` body: a string of
//! BODY_SIZE bytes that starts with `i` ([`body`]), or with `--sequence-body` the map
//! `{"sequence": i}` (what our `simple_send` sends); `--colour` adds the application property
//! `colour` (`green` for odd `i`, `red` for even).
//!
//! `send` and `receive` print `<mode> <count> msgs in <secs> s: <rate> msg/s` (the line the
//! benchmark scripts read); with `--json` a JSON summary follows as the last line (what the
//! interop suite reads). Each mode exits non-zero on an error it cannot report otherwise.

mod client;
mod listen;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::{SaslProfile, SaslScramSha256};
use fe2o3_amqp::Connection;

/// Any error, as text.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(name = "fe2o3-peer", about = "fe2o3-amqp as an interop test peer")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Sends COUNT messages, awaiting each one's outcome.
    Send(client::SendArgs),
    /// Receives COUNT messages (0: until none comes for --grace seconds).
    Receive(client::ReceiveArgs),
    /// Requests through a dynamic reply queue: prints each reply.
    Request(client::RequestArgs),
    /// Opens a connection and stays idle until it ends or --hold runs out.
    Idle(client::IdleArgs),
    /// fe2o3's acceptor on 127.0.0.1:PORT.
    Listen(listen::ListenArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Sasl {
    /// No SASL layer.
    None,
    Anonymous,
    Plain,
    ScramSha256,
}

/// How to connect.
#[derive(clap::Args, Clone)]
pub(crate) struct ConnArgs {
    /// `amqp://host:port` or `amqps://host:port` (host checked against the certificate).
    pub(crate) url: String,
    #[arg(long, value_enum, default_value = "none")]
    pub(crate) sasl: Sasl,
    #[arg(long)]
    pub(crate) user: Option<String>,
    #[arg(long)]
    pub(crate) password: Option<String>,
    /// PEM file of the only CA to trust (TLS).
    #[arg(long)]
    pub(crate) ca: Option<PathBuf>,
    /// The idle timeout we announce (milliseconds).
    #[arg(long)]
    pub(crate) idle_timeout_ms: Option<u32>,
}

impl ConnArgs {
    /// Opens a connection as `container_id`.
    pub(crate) async fn open(&self, container_id: &str) -> Result<ConnectionHandle<()>, Error> {
        let mut b = Connection::builder().container_id(container_id);
        match self.sasl {
            Sasl::None => {}
            Sasl::Anonymous => b = b.sasl_profile(SaslProfile::Anonymous),
            Sasl::Plain | Sasl::ScramSha256 => {
                let (Some(u), Some(p)) = (&self.user, &self.password) else {
                    return Err("--sasl plain/scram-sha256 need --user and --password".into());
                };
                b = b.sasl_profile(match self.sasl {
                    Sasl::Plain => SaslProfile::Plain {
                        username: u.clone(),
                        password: p.clone(),
                    },
                    _ => SaslProfile::ScramSha256(SaslScramSha256::new(u, p)),
                });
            }
        }
        if let Some(ms) = self.idle_timeout_ms {
            b = b.idle_time_out(ms);
        }
        let url = self.url.as_str();
        match &self.ca {
            None => Ok(b.open(url).await?),
            // TLS at once on connect, as our listener (and rhea's and Proton's clients) do:
            // fe2o3's default for amqps first exchanges the AMQP TLS protocol header.
            Some(ca) => Ok(b
                .alt_tls_establishment(true)
                .tls_connector(tls_connector(ca)?)
                .open(url)
                .await?),
        }
    }
}

/// A rustls connector that trusts only the CA in `ca` (PEM).
fn tls_connector(ca: &PathBuf) -> Result<tokio_rustls::TlsConnector, Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let config = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The body of message `id` of `size` bytes: `id` in ten digits, a colon, then letters.
pub(crate) fn body(id: u64, size: usize) -> String {
    let mut s = format!("{id:010}:");
    while s.len() < size {
        s.push((b'a' + (s.len() % 26) as u8) as char);
    }
    s
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let code = match cli.mode {
        Mode::Send(a) => client::send(a).await,
        Mode::Receive(a) => client::receive(a).await,
        Mode::Request(a) => client::request(a).await,
        Mode::Idle(a) => client::idle(a).await,
        Mode::Listen(a) => listen::listen(a).await,
    };
    std::process::exit(code);
}
