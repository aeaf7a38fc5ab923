//! Opening an outgoing transport: resolve, TCP connect to each address in turn, TLS, all
//! within the connection's connect timeout.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use amqp_engine::messaging::{TlsConnect, TransportError, TransportErrorKind, TransportInfo};
use futures::future::{select, Either};

use super::transport::io_error;
use crate::runtime::{BoxStream, Runtime};
use crate::tls;

/// How long a TLS handshake may take, on either side. A peer that accepts the TCP connection
/// and then says nothing would otherwise hold a client's connect (no error, no reconnect) or a
/// listener's handshake task and socket forever.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn dns_error(host: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::new(TransportErrorKind::Dns, format!("resolve {host}: {e}"))
}

/// The first address `host` resolves to; failing, a [`TransportErrorKind::Dns`] error.
pub(super) async fn resolve<R: Runtime>(
    rt: &R,
    host: &str,
    port: u16,
) -> Result<SocketAddr, TransportError> {
    let addrs = rt
        .resolve(host.to_string(), port)
        .await
        .map_err(|e| dns_error(host, e))?;
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| dns_error(host, "no address"))
}

/// [`connect`], failed with [`TransportErrorKind::Timeout`] when it takes longer than
/// `timeout` (resolving, TCP and TLS together).
pub(super) async fn connect_within<R: Runtime>(
    rt: &R,
    host: &str,
    port: u16,
    tls: Option<TlsConnect>,
    timeout: Option<Duration>,
) -> Result<(BoxStream, TransportInfo), TransportError> {
    let attempt = Box::pin(connect(rt, host, port, tls));
    let Some(limit) = timeout else {
        return attempt.await;
    };
    match select(attempt, rt.sleep_until(Instant::now() + limit)).await {
        Either::Left((r, _)) => r,
        Either::Right(_) => Err(TransportError::new(
            TransportErrorKind::Timeout,
            format!(
                "connect to {host}:{port}: no connection within {} ms",
                limit.as_millis()
            ),
        )),
    }
}

/// Resolves `host`, connects to each address in turn until one answers, then runs the TLS
/// handshake if asked.
async fn connect<R: Runtime>(
    rt: &R,
    host: &str,
    port: u16,
    tls: Option<TlsConnect>,
) -> Result<(BoxStream, TransportInfo), TransportError> {
    let addrs = rt
        .resolve(host.to_string(), port)
        .await
        .map_err(|e| dns_error(host, e))?;
    let mut last = dns_error(host, "no address");
    let mut stream = None;
    for a in addrs {
        match rt.connect(a).await {
            Ok(s) => {
                stream = Some((s, a));
                break;
            }
            Err(e) => last = io_error(&e, format_args!("connect to {a}")),
        }
    }
    let (stream, addr) = stream.ok_or(last)?;
    let tls_error = |e: &dyn std::fmt::Display| {
        TransportError::new(TransportErrorKind::Tls, format!("{addr}: {e}"))
    };
    let mut info = TransportInfo {
        encrypted: false,
        peer_identity: None,
        peer_addr: Some(addr.to_string()),
    };
    let Some(t) = tls else {
        return Ok((stream, info));
    };
    let config = tls::client_config(&t.options).map_err(|e| tls_error(&e))?;
    let name = tls::server_name(&t.server_name).map_err(|e| tls_error(&e))?;
    let connector = futures_rustls::TlsConnector::from(config);
    let handshake = async move {
        connector
            .connect(name, stream)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake failed: {e}")))
    };
    let s = handshake_within(rt, handshake)
        .await
        .map_err(|e| handshake_error(&e, addr))?;
    info.encrypted = true;
    if t.options.client_cert.is_some() {
        // We presented a certificate: SASL EXTERNAL becomes usable.
        info.peer_identity = Some("client-certificate".into());
    }
    Ok((Box::new(s), info))
}

/// A failed TLS handshake with `peer`, typed: [`TransportErrorKind::Timeout`] when it took
/// too long, else [`TransportErrorKind::Tls`].
pub(super) fn handshake_error(e: &io::Error, peer: SocketAddr) -> TransportError {
    let kind = match e.kind() {
        io::ErrorKind::TimedOut => TransportErrorKind::Timeout,
        _ => TransportErrorKind::Tls,
    };
    TransportError::new(kind, format!("{peer}: {e}"))
}

/// Runs a TLS handshake, failing it after [`TLS_HANDSHAKE_TIMEOUT`].
pub(super) async fn handshake_within<R: Runtime, T>(
    rt: &R,
    handshake: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let deadline = Instant::now() + TLS_HANDSHAKE_TIMEOUT;
    match select(Box::pin(handshake), rt.sleep_until(deadline)).await {
        Either::Left((r, _)) => r,
        Either::Right(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("TLS handshake timed out after {TLS_HANDSHAKE_TIMEOUT:?}"),
        )),
    }
}
