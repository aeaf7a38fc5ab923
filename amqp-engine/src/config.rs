//! Connection configuration: plain data, with Proton-like defaults.

use std::time::Duration;

use amqp_proto::definitions::Fields;
use amqp_proto::{Limits, Symbol};

use crate::sasl::{SaslClientConfig, SaslServerConfig};

/// Which side of the transport this connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// We opened the transport (we send the first protocol header).
    Client,
    /// We accepted the transport.
    Server,
}

/// The SASL layer's role on this connection.
#[derive(Clone, Debug, Default)]
pub enum SaslMode {
    /// No SASL layer: the AMQP header is sent directly (`sasl_enabled = false`).
    #[default]
    Disabled,
    /// Authenticate to the peer.
    Client(SaslClientConfig),
    /// Authenticate peers.
    Server(SaslServerConfig),
}

/// Settings for one [`Connection`](crate::Connection).
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Our container id, sent in `open`.
    pub container_id: String,
    /// The `hostname` sent in `open` (virtual host) and `sasl-init`.
    pub hostname: Option<String>,
    /// Largest frame we accept (advertised in `open`). Default 64 KiB.
    pub max_frame_size: u32,
    /// Highest channel number we accept. Default 32767.
    pub channel_max: u16,
    /// Close the connection if nothing arrives for this long. Half of it is advertised as
    /// `idle-time-out` in `open` (as the spec recommends and Proton does), so the peer's
    /// heartbeats arrive well within it. Default: none.
    pub idle_timeout: Option<Duration>,
    /// The peer must complete the handshake (protocol header, SASL and its `open`) within
    /// this time of [`Connection::new`](crate::Connection::new), or the connection fails with
    /// [`ErrorKind::HandshakeTimeout`](crate::ErrorKind::HandshakeTimeout): closed with
    /// `amqp:resource-limit-exceeded` once AMQP frames can flow, else finished without a
    /// frame (the transport is to be closed). Default 10 s; `None` waits for ever.
    pub handshake_timeout: Option<Duration>,
    /// After we send `close`, how long the peer has to answer with its own before the
    /// connection is finished anyway ([`Event::Finished`](crate::Event::Finished)). Default
    /// 5 s; `None` waits for ever.
    pub close_timeout: Option<Duration>,
    /// Largest incoming message reassembled from several transfer frames. Default 100 MiB.
    pub max_message_size: u64,
    /// A session's incoming window, in transfer frames. Default 2048.
    pub incoming_window: u32,
    /// Highest link handle we accept on a session. Default 1023.
    pub handle_max: u32,
    /// Connection properties sent in `open`.
    pub properties: Option<Fields>,
    /// Offered capabilities sent in `open`.
    pub offered_capabilities: Vec<Symbol>,
    /// Desired capabilities sent in `open`.
    pub desired_capabilities: Vec<Symbol>,
    /// The SASL layer.
    pub sasl: SaslMode,
    /// Whether the transport is encrypted (TLS): PLAIN is refused on plaintext unless allowed.
    pub transport_encrypted: bool,
    /// The identity the transport established: a verified client certificate's subject on the
    /// server side; on the client side, any value means "we present a client certificate",
    /// which makes SASL EXTERNAL usable.
    pub transport_identity: Option<String>,
    /// Decoding limits for incoming frames.
    pub limits: Limits,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            container_id: String::new(),
            hostname: None,
            max_frame_size: 64 * 1024,
            channel_max: 32767,
            idle_timeout: None,
            handshake_timeout: Some(Duration::from_secs(10)),
            close_timeout: Some(Duration::from_secs(5)),
            max_message_size: 100 * 1024 * 1024,
            incoming_window: 2048,
            handle_max: 1023,
            properties: None,
            offered_capabilities: Vec::new(),
            desired_capabilities: Vec::new(),
            sasl: SaslMode::Disabled,
            transport_encrypted: false,
            transport_identity: None,
            limits: Limits::default(),
        }
    }
}

impl ConnectionConfig {
    /// A configuration with this container id and defaults for the rest.
    pub fn new(container_id: impl Into<String>) -> Self {
        ConnectionConfig {
            container_id: container_id.into(),
            ..Default::default()
        }
    }
}
