//! What the container asks its driver to do ([`IoRequest`]) and what the driver tells it about
//! transports and listeners.

use std::time::Duration;

use bytes::Bytes;

use super::handles::{AcceptorHandle, TransportId};
use super::options::TlsOptions;
use super::url::Url;
use crate::sasl::SaslServerConfig;

/// What the driver must do.
#[non_exhaustive]
#[derive(Debug)]
pub enum IoRequest {
    /// Open a transport to `host:port` (trying every address it resolves to), with TLS if
    /// `tls` is set; answer with [`SansIoContainer::handle_connected`](super::SansIoContainer::handle_connected) or
    /// [`SansIoContainer::handle_connect_failed`](super::SansIoContainer::handle_connect_failed).
    Connect {
        /// The transport.
        transport: TransportId,
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
        /// TLS settings, for `amqps`.
        tls: Option<TlsConnect>,
    },
    /// Write these bytes, in order.
    Write {
        /// The transport.
        transport: TransportId,
        /// The bytes.
        data: Bytes,
    },
    /// Close the transport once earlier writes are flushed. No answer is needed.
    Close {
        /// The transport.
        transport: TransportId,
    },
    /// Listen on `host:port` (port 0: any); answer with [`SansIoContainer::handle_listening`](super::SansIoContainer::handle_listening), then
    /// [`SansIoContainer::handle_accepted`](super::SansIoContainer::handle_accepted) for each connection.
    Listen {
        /// The listener.
        acceptor: AcceptorHandle,
        /// Host or address to bind (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
        /// Server-side TLS, for `amqps`.
        tls: Option<TlsListen>,
    },
    /// Stop listening.
    StopListening {
        /// The listener.
        acceptor: AcceptorHandle,
    },
}

/// TLS for an outgoing transport.
#[derive(Clone, Debug)]
pub struct TlsConnect {
    /// Name to verify the server certificate against and send as SNI.
    pub server_name: String,
    /// CA, client certificate and verification settings.
    pub options: TlsOptions,
}

/// TLS for a listener.
#[derive(Clone, Debug, Default)]
pub struct TlsListen {
    /// The server certificate chain (PEM).
    pub cert: Option<super::options::PemSource>,
    /// The server private key (PEM).
    pub key: Option<super::options::PemSource>,
    /// Verify client certificates against this CA (PEM); clients must present one if
    /// `require_client_cert`.
    pub client_ca: Option<super::options::PemSource>,
    /// Require a client certificate.
    pub require_client_cert: bool,
}

/// What the driver learned about a transport when it came up.
#[derive(Clone, Debug, Default)]
pub struct TransportInfo {
    /// TLS is on.
    pub encrypted: bool,
    /// The verified peer identity from TLS (client certificate subject), if any; on the client
    /// side, set it to anything when presenting a client certificate (enables SASL EXTERNAL).
    pub peer_identity: Option<String>,
    /// The peer's address, for diagnostics.
    pub peer_addr: Option<String>,
}

/// Options for [`ContainerContext::listen_with`](super::ContainerContext::listen_with).
#[derive(Clone, Debug, Default)]
pub struct ListenOptions {
    /// The SASL server layer; `None` accepts clients with or without SASL (ANONYMOUS).
    pub sasl: Option<SaslServerConfig>,
    /// Server-side TLS (required for `amqps://` URLs).
    pub tls: Option<TlsListen>,
    /// Idle timeout we advertise to clients.
    pub idle_timeout: Option<Duration>,
    /// Largest frame we accept.
    pub max_frame_size: Option<u32>,
}

/// A listener: the URL it was asked to bind (with the port it bound, once listening) and its
/// options.
pub(super) struct Acceptor {
    pub(super) url: Url,
    pub(super) options: ListenOptions,
}
