//! What the container asks its driver to do ([`IoRequest`]) and what the driver tells it about
//! transports and listeners.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

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
        /// Give up (answering with a [`TransportErrorKind::Timeout`](super::TransportErrorKind::Timeout)
        /// connect failure) when the transport is not up within this time: resolving,
        /// connecting and the TLS handshake together. `None`: no limit.
        timeout: Option<Duration>,
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
        /// [`ListenOptions::max_connections`]: the driver counts each connection it accepts
        /// from accept until its socket is gone, and closes a connection past the limit at
        /// once, before any TLS, SASL or AMQP work (and without calling `handle_accepted`).
        max_connections: Option<usize>,
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
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// The SASL server layer; `None` accepts clients with or without SASL (ANONYMOUS).
    pub sasl: Option<SaslServerConfig>,
    /// Server-side TLS (required for `amqps://` URLs).
    pub tls: Option<TlsListen>,
    /// Idle timeout we advertise to clients.
    pub idle_timeout: Option<Duration>,
    /// Largest frame we accept.
    pub max_frame_size: Option<u32>,
    /// The most connections of this listener open at once, counted from accept until the
    /// socket is gone. The adapters' drivers close a connection past the limit as soon as it
    /// is accepted, before any TLS, SASL or AMQP work, so a flood costs no handshakes; a
    /// driver that hands over every socket still gets the container's own check, which
    /// answers the `open` of a connection past the limit with an
    /// `amqp:resource-limit-exceeded` close (its handler never sees it). `None` (the
    /// default): no limit.
    pub max_connections: Option<usize>,
    /// How long a client has to complete its handshake (protocol header, SASL, `open`)
    /// before it is closed with `amqp:resource-limit-exceeded`. Default 10 s; `None`
    /// disables it.
    pub handshake_timeout: Option<Duration>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            sasl: None,
            tls: None,
            idle_timeout: None,
            max_frame_size: None,
            max_connections: None,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }
}

/// The default of [`ListenOptions::handshake_timeout`], as the engine's.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener: the URL it was asked to bind (with the port it bound, once listening), its
/// options, and how many of its connections are open.
pub(super) struct Acceptor {
    pub(super) url: Url,
    pub(super) options: ListenOptions,
    pub(super) open: Arc<AtomicUsize>,
}

impl Acceptor {
    pub(super) fn new(url: Url, options: ListenOptions) -> Self {
        Acceptor {
            url,
            options,
            open: Arc::default(),
        }
    }

    /// Counts a connection it accepted, until the [`Admission`] is dropped with the
    /// connection's record.
    pub(super) fn admit(&self) -> Admission {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        Admission {
            open: self.open.clone(),
            over_limit: self.options.max_connections.is_some_and(|max| open > max),
        }
    }
}

/// An accepted connection's place in its listener's count of open connections.
pub(super) struct Admission {
    open: Arc<AtomicUsize>,
    /// It came past [`ListenOptions::max_connections`]: refused once its `open` arrives.
    pub(super) over_limit: bool,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
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
    /// Bytes arrived on a transport, in a buffer the core may keep: the way a driver hands
    /// over reads without a copy. A driver that reads into one buffer and splits each read
    /// off it (`BytesMut::split_to`) lets a core that appends with `BytesMut::unsplit` join
    /// a partial frame with the rest of it in place, and the frames it decodes share that
    /// memory. The default copies, through [`handle_read`](Self::handle_read).
    fn handle_read_owned(&mut self, t: TransportId, data: BytesMut, now: Instant) {
        self.handle_read(t, &data, now);
    }
    /// A connection a listener accepted failed before it became a transport (its TLS
    /// handshake failed or timed out). The default ignores it; the container reports it to
    /// the handler's `on_transport_error`.
    fn handle_accept_failed(
        &mut self,
        _acceptor: AcceptorHandle,
        _error: TransportError,
        _now: Instant,
    ) {
    }
    /// `bytes` more of what the core asked to write on `t` reached the transport (the
    /// socket, or the TLS layer over it). A driver that reports writes calls this with 0 as
    /// soon as the transport is up (connected or accepted), then as it writes, at least once
    /// per 64 KiB; the core then knows how much output a transport holds and can stop
    /// producing for a peer that does not read (the container:
    /// [`ContainerContext::is_output_blocked`](super::ContainerContext::is_output_blocked)).
    /// The default does nothing.
    fn handle_written(&mut self, _t: TransportId, _bytes: usize, _now: Instant) {}
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

/// A driver that borrows its core drives it through this.
impl<T: IoCore + ?Sized> IoCore for &mut T {
    fn start(&mut self, now: Instant) {
        (**self).start(now);
    }
    fn poll_io(&mut self) -> Option<IoRequest> {
        (**self).poll_io()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        (**self).poll_timeout()
    }
    fn is_done(&self) -> bool {
        (**self).is_done()
    }
    fn handle_timeout(&mut self, now: Instant) {
        (**self).handle_timeout(now);
    }
    fn is_transport_live(&self, t: TransportId) -> bool {
        (**self).is_transport_live(t)
    }
    fn handle_connected(&mut self, t: TransportId, info: TransportInfo, now: Instant) {
        (**self).handle_connected(t, info, now);
    }
    fn handle_connect_failed(&mut self, t: TransportId, reason: TransportError, now: Instant) {
        (**self).handle_connect_failed(t, reason, now);
    }
    fn handle_read(&mut self, t: TransportId, data: &[u8], now: Instant) {
        (**self).handle_read(t, data, now);
    }
    fn handle_read_owned(&mut self, t: TransportId, data: BytesMut, now: Instant) {
        (**self).handle_read_owned(t, data, now);
    }
    fn handle_written(&mut self, t: TransportId, bytes: usize, now: Instant) {
        (**self).handle_written(t, bytes, now);
    }
    fn handle_accept_failed(
        &mut self,
        acceptor: AcceptorHandle,
        error: TransportError,
        now: Instant,
    ) {
        (**self).handle_accept_failed(acceptor, error, now);
    }
    fn handle_disconnected(
        &mut self,
        t: TransportId,
        reason: Option<TransportError>,
        now: Instant,
    ) {
        (**self).handle_disconnected(t, reason, now);
    }
    fn handle_listening(
        &mut self,
        acceptor: AcceptorHandle,
        result: Result<u16, TransportError>,
        now: Instant,
    ) {
        (**self).handle_listening(acceptor, result, now);
    }
    fn handle_accepted(
        &mut self,
        acceptor: AcceptorHandle,
        info: TransportInfo,
        now: Instant,
    ) -> Option<TransportId> {
        (**self).handle_accepted(acceptor, info, now)
    }
}
