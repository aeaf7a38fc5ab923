//! The `GSSAPI` SASL mechanism (RFC 4752: Kerberos V5 through the GSS-API), client and server.
//!
//! This module holds the exchange around the GSS-API calls, not the calls themselves: the
//! context-establishment token loop, the final security-layer negotiation and the
//! authorization identity. The calls go through [`GssInitiator`] (client) and [`GssAcceptor`]
//! (server), which a crate outside the engine implements on a real GSS-API library
//! (`amqp-gssapi`, on MIT krb5); tests here use a fake context.
//!
//! The exchange (RFC 4752 §3.1):
//!
//! 1. The client's `sasl-init` carries the first `gss_init_sec_context` token for the service
//!    principal `SERVICE@HOST` (`amqp@` the connection's host or `virtual_host`, see
//!    [`GssapiClientFactory`]); challenges and responses carry further tokens until both
//!    contexts are established (Kerberos with mutual authentication: AP-REQ, AP-REP, an
//!    empty response).
//! 2. The server then sends a wrapped 4-byte message: a bit mask of the security layers it
//!    supports and the largest message it can receive. The client answers with the layer it
//!    chose, its own largest message and the authorization identity, wrapped.
//!
//! Only "no security layer" (bit `0x01`) is supported, on both sides: AMQP connections that
//! need protection use TLS. A client refuses a server that does not offer it; a server offers
//! only it, so the largest-message fields are 0 (RFC 4752 requires 0 when no layer is used).
//!
//! Where GSSAPI sits in the client's order: a [`GssapiClientFactory`] is an extra mechanism
//! (see [`SaslClientConfig::extra_mechanisms`]), and extra mechanisms are tried before the
//! built-in order of [`MECHANISM_PREFERENCE`](super::MECHANISM_PREFERENCE). So when a server
//! offers GSSAPI, the application allows it and the client holds a Kerberos ticket
//! ([`GssClientProvider::has_credentials`]), GSSAPI wins over SCRAM and PLAIN: no password
//! is used at all, the server is authenticated by the KDC, and Cyrus SASL ranks it first
//! for the same reasons. Without a ticket it is skipped and the built-in order applies.

use std::fmt;
use std::sync::Arc;

use super::machine::{ClientMechanismFactory, SaslClientConfig, ServerMechanismFactory};
use super::mechanism::{
    peer_text, peer_utf8, ClientMechanism, SaslError, ServerMechanism, ServerStep,
};

/// Mechanism name of `GSSAPI` (RFC 4752).
pub const GSSAPI: &str = "GSSAPI";

/// The service part of the client's target principal when `sasl_service` is unset, as in
/// Proton and Cyrus: `amqp@HOST`, which Kerberos maps to `amqp/HOST@REALM`.
pub const DEFAULT_SERVICE: &str = "amqp";

/// Security-layer bit "no security layer" (RFC 4752 §3.3).
const LAYER_NONE: u8 = 0x01;

/// Most context-establishment tokens accepted from a peer before giving up (Kerberos needs
/// one or two): a peer cannot keep an exchange going forever.
pub const MAX_TOKEN_ROUNDS: usize = 8;

fn too_many_rounds() -> SaslError {
    SaslError::Protocol(format!(
        "GSSAPI context not established after {MAX_TOKEN_ROUNDS} tokens"
    ))
}

/// Why a GSS-API call failed, as far as the caller can act on it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GssErrorKind {
    /// The client has no Kerberos ticket (no or empty credentials cache).
    NoCredentials,
    /// The client's ticket has expired.
    CredentialsExpired,
    /// The KDC does not know the service principal the client asked for.
    UnknownServer,
    /// The server has no usable key for its principal (missing or wrong keytab).
    AcceptorCredentials,
    /// A token was malformed, or failed its integrity check.
    BadToken,
    /// Any other GSS-API failure.
    Other,
}

impl GssErrorKind {
    /// What the cause is, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            GssErrorKind::NoCredentials => "no Kerberos ticket (run kinit, or set KRB5CCNAME)",
            GssErrorKind::CredentialsExpired => "the Kerberos ticket has expired (run kinit)",
            GssErrorKind::UnknownServer => "the KDC does not know the service principal",
            GssErrorKind::AcceptorCredentials => {
                "no key for the service principal in the keytab (KRB5_KTNAME)"
            }
            GssErrorKind::BadToken => "invalid GSSAPI token",
            GssErrorKind::Other => "GSS-API failure",
        }
    }
}

/// A failed GSS-API call: its [`GssErrorKind`] and the library's own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GssError {
    /// What went wrong.
    pub kind: GssErrorKind,
    /// The GSS-API library's text (major and minor status).
    pub detail: String,
}

impl GssError {
    /// An error of `kind` with the library's `detail`.
    pub fn new(kind: GssErrorKind, detail: impl Into<String>) -> Self {
        GssError {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for GssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            f.write_str(self.kind.describe())
        } else {
            write!(f, "{}: {}", self.kind.describe(), self.detail)
        }
    }
}

impl std::error::Error for GssError {}

impl From<GssError> for SaslError {
    /// Credential and token problems are authentication failures (they stop reconnect);
    /// anything else is a system error.
    fn from(e: GssError) -> Self {
        let msg = format!("GSSAPI: {e}");
        match e.kind {
            GssErrorKind::Other => SaslError::Sys(msg),
            _ => SaslError::Auth(msg),
        }
    }
}

/// The output of one context-establishment step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GssStep {
    /// The token to send to the peer (may be empty).
    pub token: Vec<u8>,
    /// Whether this side's context is now established.
    pub complete: bool,
}

/// The client side of one GSS-API security context (`gss_init_sec_context`, `gss_wrap`,
/// `gss_unwrap`), with mutual authentication requested.
pub trait GssInitiator: Send {
    /// One `gss_init_sec_context` call: `None` for the first, then each token from the server.
    fn step(&mut self, input: Option<&[u8]>) -> Result<GssStep, GssError>;
    /// `gss_wrap` without confidentiality (integrity only).
    fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, GssError>;
    /// `gss_unwrap`.
    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError>;
}

/// The server side of one GSS-API security context (`gss_accept_sec_context`, `gss_wrap`,
/// `gss_unwrap`, the initiator's name).
pub trait GssAcceptor: Send {
    /// One `gss_accept_sec_context` call with a token from the client.
    fn step(&mut self, input: &[u8]) -> Result<GssStep, GssError>;
    /// `gss_wrap` without confidentiality (integrity only).
    fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, GssError>;
    /// `gss_unwrap`.
    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError>;
    /// The authenticated client principal (e.g. `alice@EXAMPLE.COM`), once complete.
    fn source_name(&self) -> Result<String, GssError>;
}

/// Creates client contexts: the GSS-API library seen from the client.
pub trait GssClientProvider: Send + Sync {
    /// Whether default initiator credentials (a Kerberos ticket) are available.
    fn has_credentials(&self) -> bool;
    /// A new context towards the host-based service `target` (`service@host`).
    fn initiator(&self, target: &str) -> Result<Box<dyn GssInitiator>, GssError>;
}

/// Creates server contexts: the GSS-API library seen from the server.
pub trait GssServerProvider: Send + Sync {
    /// A new context accepting with the server's credentials (its keytab).
    fn acceptor(&self) -> Result<Box<dyn GssAcceptor>, GssError>;
}

/// Plugs the GSSAPI client into [`SaslClientConfig::extra_mechanisms`].
///
/// The target is `SERVICE@HOST`: `SERVICE` is [`SaslClientConfig::service`] or
/// [`DEFAULT_SERVICE`]; `HOST` is the hostname the connection sends in `sasl-init` (the
/// connection's `virtual_host`, else the URL's host). Kerberos does not canonicalise it when
/// `dns_canonicalize_hostname = false`, so connect with the name in the service principal
/// (`amqp/broker.example.com`), not its IP address.
#[derive(Clone)]
pub struct GssapiClientFactory {
    provider: Arc<dyn GssClientProvider>,
}

impl GssapiClientFactory {
    /// A factory creating contexts with `provider`.
    pub fn new(provider: Arc<dyn GssClientProvider>) -> Self {
        GssapiClientFactory { provider }
    }
}

impl fmt::Debug for GssapiClientFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GssapiClientFactory")
            .finish_non_exhaustive()
    }
}

impl ClientMechanismFactory for GssapiClientFactory {
    fn name(&self) -> &str {
        GSSAPI
    }

    fn usable(&self, _config: &SaslClientConfig) -> bool {
        self.provider.has_credentials()
    }

    fn create(
        &self,
        config: &SaslClientConfig,
        hostname: Option<&str>,
    ) -> Box<dyn ClientMechanism> {
        let service = config.service.as_deref().unwrap_or(DEFAULT_SERVICE);
        let context = match hostname.filter(|h| !h.is_empty()) {
            Some(host) => self.provider.initiator(&format!("{service}@{host}")),
            None => Err(GssError::new(
                GssErrorKind::UnknownServer,
                "the connection has no host name for the service principal",
            )),
        };
        Box::new(GssapiClient::new(
            context,
            config.authzid.clone().unwrap_or_default(),
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Initial,
    Token,
    SecurityLayer,
    Done,
}

/// Client side of `GSSAPI` (RFC 4752) over a [`GssInitiator`].
pub struct GssapiClient {
    context: Result<Box<dyn GssInitiator>, GssError>,
    authzid: String,
    state: ClientState,
    rounds: usize,
}

impl GssapiClient {
    /// A client over `context` (or the error creating it, reported by the first step),
    /// requesting `authzid` (empty: act as the authenticated principal).
    pub fn new(context: Result<Box<dyn GssInitiator>, GssError>, authzid: String) -> Self {
        GssapiClient {
            context,
            authzid,
            state: ClientState::Initial,
            rounds: 0,
        }
    }

    fn context(&mut self) -> Result<&mut Box<dyn GssInitiator>, SaslError> {
        self.context
            .as_mut()
            .map_err(|e| SaslError::from(e.clone()))
    }

    fn token_step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, SaslError> {
        self.rounds += 1;
        if self.rounds > MAX_TOKEN_ROUNDS {
            self.state = ClientState::Done;
            return Err(too_many_rounds());
        }
        let step = self.context()?.step(input)?;
        self.state = if step.complete {
            ClientState::SecurityLayer
        } else {
            ClientState::Token
        };
        Ok(step.token)
    }

    /// RFC 4752 §3.1, last two messages: check the server's offer, choose no layer.
    fn security_layer(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        let offer = self.context()?.unwrap(challenge)?;
        let [layers, _, _, _] = offer[..] else {
            return Err(SaslError::Protocol(format!(
                "GSSAPI security-layer offer must be 4 bytes, got {}",
                offer.len()
            )));
        };
        if layers & LAYER_NONE == 0 {
            return Err(SaslError::Auth(format!(
                "GSSAPI: the server requires a security layer (offered bit mask {layers:#04x}); \
                 only \"no security layer\" is supported (use TLS for protection)"
            )));
        }
        let mut reply = Vec::with_capacity(4 + self.authzid.len());
        reply.extend_from_slice(&[LAYER_NONE, 0, 0, 0]);
        reply.extend_from_slice(self.authzid.as_bytes());
        let wrapped = self.context()?.wrap(&reply)?;
        self.state = ClientState::Done;
        Ok(wrapped)
    }
}

impl fmt::Debug for GssapiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GssapiClient")
            .field("authzid", &self.authzid)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ClientMechanism for GssapiClient {
    fn name(&self) -> &'static str {
        GSSAPI
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, SaslError> {
        if self.state != ClientState::Initial {
            return Err(SaslError::Protocol(
                "GSSAPI exchange already started".into(),
            ));
        }
        self.token_step(None).map(Some)
    }

    fn challenge(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        match self.state {
            ClientState::Token => self.token_step(Some(challenge)),
            ClientState::SecurityLayer => self.security_layer(challenge),
            ClientState::Initial | ClientState::Done => {
                Err(SaslError::Protocol("unexpected GSSAPI challenge".into()))
            }
        }
    }

    fn outcome_ok(&mut self, _additional_data: Option<&[u8]>) -> Result<(), SaslError> {
        if self.state == ClientState::Done {
            Ok(())
        } else {
            Err(SaslError::Auth(
                "GSSAPI: the server reported success before the exchange finished, so it was \
                 not authenticated"
                    .into(),
            ))
        }
    }
}

/// Plugs the GSSAPI server into [`SaslServerConfig::extra_mechanisms`](super::SaslServerConfig::extra_mechanisms)
/// (and add [`GSSAPI`] to its offered mechanisms).
#[derive(Clone)]
pub struct GssapiServerFactory {
    provider: Arc<dyn GssServerProvider>,
}

impl GssapiServerFactory {
    /// A factory accepting with `provider`.
    pub fn new(provider: Arc<dyn GssServerProvider>) -> Self {
        GssapiServerFactory { provider }
    }
}

impl fmt::Debug for GssapiServerFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GssapiServerFactory")
            .finish_non_exhaustive()
    }
}

impl ServerMechanismFactory for GssapiServerFactory {
    fn name(&self) -> &str {
        GSSAPI
    }

    fn create(&self) -> Box<dyn ServerMechanism> {
        Box::new(GssapiServer::new(self.provider.acceptor()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Initial,
    Token,
    /// The context is complete and its last token sent; the client's (empty) answer is due.
    LastToken,
    SecurityLayer,
    Done,
}

/// Server side of `GSSAPI` (RFC 4752) over a [`GssAcceptor`].
///
/// The authenticated identity is the client's principal (`user@REALM`). A client may request
/// an authorization identity only if it names that principal, with or without the realm.
pub struct GssapiServer {
    context: Result<Box<dyn GssAcceptor>, GssError>,
    state: ServerState,
    rounds: usize,
}

impl GssapiServer {
    /// A server over `context` (or the error creating it, reported on `sasl-init`).
    pub fn new(context: Result<Box<dyn GssAcceptor>, GssError>) -> Self {
        GssapiServer {
            context,
            state: ServerState::Initial,
            rounds: 0,
        }
    }

    fn run(&mut self, f: impl FnOnce(&mut Self) -> Result<ServerStep, SaslError>) -> ServerStep {
        match f(self) {
            Ok(step) => step,
            Err(e) => {
                self.state = ServerState::Done;
                ServerStep::Failure(e)
            }
        }
    }

    fn context(&mut self) -> Result<&mut Box<dyn GssAcceptor>, SaslError> {
        self.context
            .as_mut()
            .map_err(|e| SaslError::from(e.clone()))
    }

    fn token(&mut self, token: &[u8]) -> Result<ServerStep, SaslError> {
        self.rounds += 1;
        if self.rounds > MAX_TOKEN_ROUNDS {
            return Err(too_many_rounds());
        }
        let step = self.context()?.step(token)?;
        if !step.complete {
            self.state = ServerState::Token;
            Ok(ServerStep::Challenge(step.token))
        } else if !step.token.is_empty() {
            self.state = ServerState::LastToken;
            Ok(ServerStep::Challenge(step.token))
        } else {
            self.offer_layers()
        }
    }

    fn offer_layers(&mut self) -> Result<ServerStep, SaslError> {
        let offer = self.context()?.wrap(&[LAYER_NONE, 0, 0, 0])?;
        self.state = ServerState::SecurityLayer;
        Ok(ServerStep::Challenge(offer))
    }

    fn choose_layer(&mut self, response: &[u8]) -> Result<ServerStep, SaslError> {
        self.state = ServerState::Done;
        let context = self.context()?;
        let reply = context.unwrap(response)?;
        let Some((&[layer, _, _, _], authzid)) = reply.split_first_chunk::<4>() else {
            return Err(SaslError::Protocol(format!(
                "GSSAPI security-layer reply must be at least 4 bytes, got {}",
                reply.len()
            )));
        };
        if layer != LAYER_NONE {
            return Err(SaslError::Protocol(format!(
                "GSSAPI client chose security layer {layer:#04x}, which was not offered"
            )));
        }
        let authzid = peer_utf8(authzid, "GSSAPI authorization identity")?;
        let principal = context.source_name()?;
        let primary = principal.rsplit_once('@').map_or(&*principal, |(p, _)| p);
        if !authzid.is_empty() && authzid != principal && authzid != primary {
            return Err(SaslError::Auth(format!(
                "GSSAPI: principal {} may not act as {}",
                peer_text(&principal),
                peer_text(authzid)
            )));
        }
        Ok(ServerStep::Success {
            identity: principal,
            additional_data: None,
        })
    }
}

impl fmt::Debug for GssapiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GssapiServer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ServerMechanism for GssapiServer {
    fn name(&self) -> &'static str {
        GSSAPI
    }

    fn start(&mut self, initial_response: Option<&[u8]>, _hostname: Option<&str>) -> ServerStep {
        self.run(|s| {
            if s.state != ServerState::Initial {
                return Err(SaslError::Protocol(
                    "GSSAPI exchange already started".into(),
                ));
            }
            s.context()?;
            match initial_response {
                Some(token) if !token.is_empty() => s.token(token),
                _ => {
                    s.state = ServerState::Token;
                    Ok(ServerStep::Challenge(Vec::new()))
                }
            }
        })
    }

    fn response(&mut self, response: &[u8]) -> ServerStep {
        self.run(|s| match s.state {
            ServerState::Token => s.token(response),
            ServerState::LastToken => s.offer_layers(),
            ServerState::SecurityLayer => s.choose_layer(response),
            ServerState::Initial | ServerState::Done => {
                Err(SaslError::Protocol("unexpected GSSAPI response".into()))
            }
        })
    }
}

#[cfg(test)]
mod tests;
