//! What the container asks its driver to do ([`IoRequest`]) and what the driver tells it about
//! transports and listeners.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::error::TransportError;
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

/// The I/O side of a sans-IO core, as a driver sees it: the requests it must carry out and
/// the calls through which it reports what sockets, listeners and the clock did.
///
/// [`SansIoContainer`](super::SansIoContainer) implements it; a driver written against this
/// trait (the async adapters' driver, a `mio` loop, a test's simulated network) runs any
/// core that does. Time is always an argument: a core never reads a clock.
pub trait IoCore {
    /// Installs the function that wakes this core's driver from another thread (called by
    /// [`Injector::inject`](super::Injector::inject)); the driver calls it once, before
    /// [`start`](Self::start). A core without injectors ignores it.
    fn set_waker(&mut self, _wake: super::WakeFn) {}
    /// Starts the core (the container calls `on_start`).
    fn start(&mut self, now: Instant);
    /// The next I/O request, if any.
    fn poll_io(&mut self) -> Option<IoRequest>;
    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    fn poll_timeout(&self) -> Option<Instant>;
    /// True when the core has nothing left to do: the driver's loop ends.
    fn is_done(&self) -> bool;
    /// Time passed.
    fn handle_timeout(&mut self, now: Instant);
    /// True while `t` is still wanted. A connect that completes for a transport that is no
    /// longer wanted must be closed by the driver.
    fn is_transport_live(&self, t: TransportId) -> bool;
    /// A transport came up.
    fn handle_connected(&mut self, t: TransportId, info: TransportInfo, now: Instant);
    /// A connect attempt failed.
    fn handle_connect_failed(&mut self, t: TransportId, reason: TransportError, now: Instant);
    /// Bytes arrived on a transport.
    fn handle_read(&mut self, t: TransportId, data: &[u8], now: Instant);
    /// The transport closed (EOF, or an error).
    fn handle_disconnected(&mut self, t: TransportId, reason: Option<TransportError>, now: Instant);
    /// A listener is bound (`Ok(port)`) or failed.
    fn handle_listening(
        &mut self,
        acceptor: AcceptorHandle,
        result: Result<u16, TransportError>,
        now: Instant,
    );
    /// A listener accepted a transport: returns its id for later calls, or `None` when the
    /// core refuses it (the driver drops the socket).
    fn handle_accepted(
        &mut self,
        acceptor: AcceptorHandle,
        info: TransportInfo,
        now: Instant,
    ) -> Option<TransportId>;
}
