//! SASL mechanism traits, errors, credential checks and the simple mechanisms
//! (`ANONYMOUS`, `PLAIN`, `EXTERNAL`).
//!
//! A mechanism only transforms bytes: the caller (the SASL frame state
//! machine) is responsible for carrying them in `sasl-init`,
//! `sasl-challenge`, `sasl-response` and `sasl-outcome` frames.
//!
//! SCRAM lives in [`super::scram`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::scram::{ScramCredentials, ScramHash};

/// Mechanism name of `ANONYMOUS` (RFC 4505).
pub const ANONYMOUS: &str = "ANONYMOUS";
/// Mechanism name of `PLAIN` (RFC 4616).
pub const PLAIN: &str = "PLAIN";
/// Mechanism name of `EXTERNAL` (RFC 4422 appendix A).
pub const EXTERNAL: &str = "EXTERNAL";
/// Mechanism name of `SCRAM-SHA-1` (RFC 5802).
pub const SCRAM_SHA_1: &str = "SCRAM-SHA-1";
/// Mechanism name of `SCRAM-SHA-256` (RFC 7677).
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// The client's order of preference among the mechanisms this crate
/// implements, strongest first. See [`choose_mechanism`] for the reasoning.
pub const MECHANISM_PREFERENCE: [&str; 5] =
    [SCRAM_SHA_256, SCRAM_SHA_1, PLAIN, EXTERNAL, ANONYMOUS];

/// Longest excerpt of peer-supplied text copied into an error message.
const MAX_PEER_TEXT_IN_ERROR: usize = 200;

/// Why a SASL exchange failed, mirroring the SASL outcome codes.
///
/// Messages never contain passwords or keys. They may contain a bounded
/// excerpt of text the peer sent (for example a SCRAM server's `e=` value).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// Authentication failed: bad credentials, unknown user, refused
    /// identity, or (client side) a server that could not prove it knows the
    /// credentials. SASL outcome code 1 (`auth`).
    Auth(String),
    /// A system error unrelated to the credentials. SASL outcome code 2 (`sys`).
    Sys(String),
    /// A permanent system error. SASL outcome code 3 (`sys-perm`).
    SysPerm(String),
    /// A transient system error. SASL outcome code 4 (`sys-temp`).
    SysTemp(String),
    /// The peer sent a malformed challenge or response, or a message in the
    /// wrong state.
    Protocol(String),
    /// No acceptable mechanism could be agreed on.
    NoMechanism(String),
}

impl SaslError {
    /// The `sasl-outcome` code a server reports for this error.
    ///
    /// `Auth` → 1, `Sys` → 2, `SysPerm` → 3, `SysTemp` → 4. `Protocol` and
    /// `NoMechanism` have no dedicated code; like Qpid Proton they are reported
    /// as 1 (`auth`), since from the peer's point of view authentication did
    /// not succeed.
    pub fn outcome_code(&self) -> u8 {
        match self {
            SaslError::Auth(_) | SaslError::Protocol(_) | SaslError::NoMechanism(_) => 1,
            SaslError::Sys(_) => 2,
            SaslError::SysPerm(_) => 3,
            SaslError::SysTemp(_) => 4,
        }
    }

    /// The human-readable message carried by the error.
    pub fn message(&self) -> &str {
        match self {
            SaslError::Auth(m)
            | SaslError::Sys(m)
            | SaslError::SysPerm(m)
            | SaslError::SysTemp(m)
            | SaslError::Protocol(m)
            | SaslError::NoMechanism(m) => m,
        }
    }
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            SaslError::Auth(_) => "SASL authentication failed",
            SaslError::Sys(_) => "SASL system error",
            SaslError::SysPerm(_) => "SASL permanent system error",
            SaslError::SysTemp(_) => "SASL temporary system error",
            SaslError::Protocol(_) => "SASL protocol error",
            SaslError::NoMechanism(_) => "no acceptable SASL mechanism",
        };
        let message = self.message();
        if message.is_empty() {
            f.write_str(kind)
        } else {
            write!(f, "{kind}: {message}")
        }
    }
}

impl std::error::Error for SaslError {}

/// Copy at most [`MAX_PEER_TEXT_IN_ERROR`] characters of peer-supplied text
/// into an owned string for an error message.
pub(crate) fn peer_text(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_PEER_TEXT_IN_ERROR).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Interpret peer bytes as UTF-8, failing with [`SaslError::Protocol`].
pub(crate) fn peer_utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, SaslError> {
    std::str::from_utf8(bytes)
        .map_err(|_| SaslError::Protocol(format!("{what} is not valid UTF-8")))
}

/// Client side of one SASL mechanism.
///
/// The SASL frame state machine calls [`initial_response`](Self::initial_response)
/// once for `sasl-init`, [`challenge`](Self::challenge) for every
/// `sasl-challenge`, and [`outcome_ok`](Self::outcome_ok) when a `sasl-outcome`
/// with code `ok` arrives.
pub trait ClientMechanism: Send {
    /// The mechanism name sent in `sasl-init`, e.g. `"SCRAM-SHA-256"`.
    fn name(&self) -> &'static str;

    /// The initial response for `sasl-init`; `None` means send no initial
    /// response.
    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, SaslError>;

    /// Answer a `sasl-challenge`, producing the `sasl-response` payload.
    fn challenge(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError>;

    /// Called on `sasl-outcome` with code `ok`, with the outcome's
    /// additional-data.
    ///
    /// Mechanisms with mutual authentication (SCRAM) verify the server here
    /// if they have not already done so during a challenge, and fail with
    /// [`SaslError::Auth`] if the server never proved itself.
    fn outcome_ok(&mut self, additional_data: Option<&[u8]>) -> Result<(), SaslError>;
}

/// Result of one server mechanism step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Send a `sasl-challenge` with these bytes and wait for a response.
    Challenge(Vec<u8>),
    /// Authentication succeeded: send `sasl-outcome` code `ok` with the given
    /// additional-data.
    Success {
        /// The authenticated identity.
        identity: String,
        /// Bytes for the outcome's additional-data field (SCRAM's server-final
        /// message), if any.
        additional_data: Option<Vec<u8>>,
    },
    /// Authentication failed: send `sasl-outcome` with
    /// [`SaslError::outcome_code`].
    Failure(SaslError),
}

/// Server side of one SASL mechanism.
pub trait ServerMechanism: Send {
    /// The mechanism name as advertised in `sasl-mechanisms`.
    fn name(&self) -> &'static str;

    /// Process `sasl-init`: its initial response (if any) and the hostname the
    /// client asked for (if any).
    fn start(&mut self, initial_response: Option<&[u8]>, hostname: Option<&str>) -> ServerStep;

    /// Process a `sasl-response` to the previous [`ServerStep::Challenge`].
    fn response(&mut self, response: &[u8]) -> ServerStep;
}

/// Credential checks a server application provides to the server mechanisms.
///
/// Every method has a conservative default, so an implementation only needs
/// to override the checks for the mechanisms it wants to support.
pub trait Authenticator: Send + Sync {
    /// `PLAIN`: check a user name (`authcid`) and password. `authzid` is the
    /// identity the client asks to act as; it may be empty (meaning "the
    /// same as `authcid`"). Return the authenticated (authorized) identity.
    ///
    /// The default rejects everything with [`SaslError::Auth`].
    fn verify_plain(
        &self,
        authzid: &str,
        authcid: &str,
        password: &str,
    ) -> Result<String, SaslError> {
        let _ = (authzid, authcid, password);
        Err(SaslError::Auth(
            "PLAIN authentication is not supported".into(),
        ))
    }

    /// SCRAM: look up the stored salted credentials of `user` for `hash`.
    /// Return `None` for an unknown user.
    ///
    /// The default knows no users.
    fn scram_credentials(&self, user: &str, hash: ScramHash) -> Option<ScramCredentials> {
        let _ = (user, hash);
        None
    }

    /// `EXTERNAL`: decide whether the identity the transport established
    /// (e.g. the subject of a verified TLS client certificate) may
    /// authenticate, given the authorization identity the client requested
    /// (`authzid`, possibly empty).
    ///
    /// The default accepts the transport identity if there is one and the
    /// client either requested no particular identity or exactly that one.
    fn verify_external(
        &self,
        transport_identity: Option<&str>,
        authzid: &str,
    ) -> Result<String, SaslError> {
        match transport_identity {
            None => Err(SaslError::Auth("no transport identity for EXTERNAL".into())),
            Some(identity) if authzid.is_empty() || authzid == identity => Ok(identity.to_owned()),
            Some(_) => Err(SaslError::Auth(
                "requested authorization identity does not match the transport identity".into(),
            )),
        }
    }

    /// Whether `ANONYMOUS` logins are accepted. The default is `false`.
    fn allow_anonymous(&self) -> bool {
        false
    }
}

/// A ready-made [`Authenticator`] over a fixed set of users.
///
/// Passwords are not kept: when a user is added, SCRAM-SHA-1 and
/// SCRAM-SHA-256 credentials are derived with the caller's salt (which should
/// be random and unique per user) and stored. `PLAIN` logins are checked by
/// re-deriving the SCRAM-SHA-256 `StoredKey` from the presented password and
/// comparing it in constant time.
///
/// An authorization identity (`authzid`) is accepted only if it is empty or
/// equal to the user name.
#[derive(Default)]
pub struct StaticUsers {
    users: HashMap<String, StaticUser>,
    allow_anonymous: bool,
}

struct StaticUser {
    sha1: ScramCredentials,
    sha256: ScramCredentials,
}

impl StaticUsers {
    /// An empty user set that refuses `ANONYMOUS`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) a user, deriving its SCRAM credentials from `password`
    /// with `salt` and `iterations` (see [`ScramCredentials::derive`]).
    pub fn add_user(
        &mut self,
        user: impl Into<String>,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) {
        let entry = StaticUser {
            sha1: ScramCredentials::derive(ScramHash::Sha1, password, salt, iterations),
            sha256: ScramCredentials::derive(ScramHash::Sha256, password, salt, iterations),
        };
        self.users.insert(user.into(), entry);
    }

    /// Builder form of [`add_user`](Self::add_user).
    #[must_use]
    pub fn with_user(
        mut self,
        user: impl Into<String>,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Self {
        self.add_user(user, password, salt, iterations);
        self
    }

    /// Set whether `ANONYMOUS` logins are accepted.
    pub fn set_allow_anonymous(&mut self, allow: bool) {
        self.allow_anonymous = allow;
    }

    /// Builder form of [`set_allow_anonymous`](Self::set_allow_anonymous).
    #[must_use]
    pub fn with_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// Whether `user` is known.
    pub fn contains_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }
}

impl fmt::Debug for StaticUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.users.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("StaticUsers")
            .field("users", &names)
            .field("allow_anonymous", &self.allow_anonymous)
            .finish()
    }
}

impl Authenticator for StaticUsers {
    fn verify_plain(
        &self,
        authzid: &str,
        authcid: &str,
        password: &str,
    ) -> Result<String, SaslError> {
        if !authzid.is_empty() && authzid != authcid {
            return Err(SaslError::Auth(
                "authorization identity not permitted".into(),
            ));
        }
        let Some(user) = self.users.get(authcid) else {
            return Err(SaslError::Auth("invalid user name or password".into()));
        };
        if user.sha256.verify_password(ScramHash::Sha256, password) {
            Ok(authcid.to_owned())
        } else {
            Err(SaslError::Auth("invalid user name or password".into()))
        }
    }

    fn scram_credentials(&self, user: &str, hash: ScramHash) -> Option<ScramCredentials> {
        let entry = self.users.get(user)?;
        Some(match hash {
            ScramHash::Sha1 => entry.sha1.clone(),
            ScramHash::Sha256 => entry.sha256.clone(),
        })
    }

    fn allow_anonymous(&self) -> bool {
        self.allow_anonymous
    }
}

/// Whether `list` contains `name`, ignoring ASCII case.
fn contains_name(list: &[&str], name: &str) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Choose the strongest mechanism a client can use.
///
/// * `offered`: the server's `sasl-server-mechanisms`.
/// * `allowed`: the mechanisms the application permits (`None` = any this
///   crate implements).
/// * `have_credentials`: a user name and password are configured.
/// * `transport_encrypted`: the connection runs over TLS.
/// * `allow_insecure`: the application opted in to `PLAIN` over an
///   unencrypted transport.
/// * `have_external_identity`: the transport established a client identity
///   (e.g. a TLS client certificate).
///
/// Mechanisms are considered in the order of [`MECHANISM_PREFERENCE`]:
///
/// 1. `SCRAM-SHA-256`, then 2. `SCRAM-SHA-1`, if credentials are set. SCRAM
///    never reveals the password (not even to the server) and authenticates
///    the server too; SHA-256 is the stronger hash.
/// 3. `PLAIN`, if credentials are set *and* the transport is encrypted or
///    `allow_insecure` is set: PLAIN sends the password itself, so it is only
///    acceptable when TLS protects it, unless the user explicitly opts in.
/// 4. `EXTERNAL`, if the transport established an identity or `allowed`
///    explicitly lists it: it relies entirely on the TLS layer's identity.
/// 5. `ANONYMOUS`, last: it authenticates nobody.
///
/// Names are compared ignoring ASCII case. Returns `None` if nothing fits.
pub fn choose_mechanism(
    offered: &[&str],
    allowed: Option<&[&str]>,
    have_credentials: bool,
    transport_encrypted: bool,
    allow_insecure: bool,
    have_external_identity: bool,
) -> Option<&'static str> {
    MECHANISM_PREFERENCE.into_iter().find(|&mech| {
        if !contains_name(offered, mech) {
            return false;
        }
        if let Some(allowed) = allowed {
            if !contains_name(allowed, mech) {
                return false;
            }
        }
        match mech {
            SCRAM_SHA_256 | SCRAM_SHA_1 => have_credentials,
            PLAIN => have_credentials && (transport_encrypted || allow_insecure),
            EXTERNAL => {
                have_external_identity || allowed.is_some_and(|a| contains_name(a, EXTERNAL))
            }
            _ => true,
        }
    })
}

// ---------------------------------------------------------------------------
// ANONYMOUS
// ---------------------------------------------------------------------------

/// Client side of `ANONYMOUS` (RFC 4505).
///
/// Sends the optional trace information (empty by default) as the initial
/// response.
#[derive(Debug, Clone, Default)]
pub struct AnonymousClient {
    trace: String,
}

impl AnonymousClient {
    /// An `ANONYMOUS` client sending an empty initial response.
    pub fn new() -> Self {
        Self::default()
    }

    /// An `ANONYMOUS` client sending `trace` (e.g. an email address or an
    /// opaque string) as its initial response.
    pub fn with_trace(trace: impl Into<String>) -> Self {
        Self {
            trace: trace.into(),
        }
    }
}

impl ClientMechanism for AnonymousClient {
    fn name(&self) -> &'static str {
        ANONYMOUS
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, SaslError> {
        Ok(Some(self.trace.as_bytes().to_vec()))
    }

    fn challenge(&mut self, _challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        Err(SaslError::Protocol(
            "unexpected challenge for ANONYMOUS".into(),
        ))
    }

    fn outcome_ok(&mut self, _additional_data: Option<&[u8]>) -> Result<(), SaslError> {
        Ok(())
    }
}

/// Server side of `ANONYMOUS` (RFC 4505).
///
/// Succeeds with identity `"anonymous"` if
/// [`Authenticator::allow_anonymous`] says so. Any trace information is
/// accepted and ignored; a missing initial response is tolerated.
pub struct AnonymousServer {
    authenticator: Arc<dyn Authenticator>,
    done: bool,
}

impl AnonymousServer {
    /// The identity reported for anonymous logins.
    pub const IDENTITY: &'static str = "anonymous";

    /// An `ANONYMOUS` server consulting `authenticator`.
    pub fn new(authenticator: Arc<dyn Authenticator>) -> Self {
        Self {
            authenticator,
            done: false,
        }
    }
}

impl fmt::Debug for AnonymousServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnonymousServer")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ServerMechanism for AnonymousServer {
    fn name(&self) -> &'static str {
        ANONYMOUS
    }

    fn start(&mut self, _initial_response: Option<&[u8]>, _hostname: Option<&str>) -> ServerStep {
        if self.done {
            return ServerStep::Failure(SaslError::Protocol(
                "ANONYMOUS exchange already finished".into(),
            ));
        }
        self.done = true;
        if self.authenticator.allow_anonymous() {
            ServerStep::Success {
                identity: Self::IDENTITY.to_owned(),
                additional_data: None,
            }
        } else {
            ServerStep::Failure(SaslError::Auth("anonymous login refused".into()))
        }
    }

    fn response(&mut self, _response: &[u8]) -> ServerStep {
        ServerStep::Failure(SaslError::Protocol(
            "unexpected response for ANONYMOUS".into(),
        ))
    }
}

// ---------------------------------------------------------------------------
// PLAIN
// ---------------------------------------------------------------------------

/// Client side of `PLAIN` (RFC 4616): sends
/// `authzid NUL authcid NUL password` as the initial response.
///
/// The password is sent in the clear: only use `PLAIN` over TLS (see
/// [`choose_mechanism`]). `Debug` output redacts the password.
#[derive(Clone)]
pub struct PlainClient {
    authzid: String,
    authcid: String,
    password: String,
}

impl PlainClient {
    /// A `PLAIN` client for user `authcid` with `password` and no
    /// authorization identity.
    pub fn new(authcid: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            authzid: String::new(),
            authcid: authcid.into(),
            password: password.into(),
        }
    }

    /// Request to act as `authzid`.
    #[must_use]
    pub fn with_authzid(mut self, authzid: impl Into<String>) -> Self {
        self.authzid = authzid.into();
        self
    }
}

impl fmt::Debug for PlainClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainClient")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl ClientMechanism for PlainClient {
    fn name(&self) -> &'static str {
        PLAIN
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, SaslError> {
        if [&self.authzid, &self.authcid, &self.password]
            .iter()
            .any(|s| s.contains('\0'))
        {
            return Err(SaslError::Sys(
                "PLAIN credentials must not contain NUL".into(),
            ));
        }
        let mut out =
            Vec::with_capacity(self.authzid.len() + self.authcid.len() + self.password.len() + 2);
        out.extend_from_slice(self.authzid.as_bytes());
        out.push(0);
        out.extend_from_slice(self.authcid.as_bytes());
        out.push(0);
        out.extend_from_slice(self.password.as_bytes());
        Ok(Some(out))
    }

    fn challenge(&mut self, _challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        Err(SaslError::Protocol("unexpected challenge for PLAIN".into()))
    }

    fn outcome_ok(&mut self, _additional_data: Option<&[u8]>) -> Result<(), SaslError> {
        Ok(())
    }
}

/// Parse a `PLAIN` message strictly: exactly two NUL separators, a non-empty
/// `authcid` and password, all UTF-8.
fn parse_plain(message: &[u8]) -> Result<(&str, &str, &str), SaslError> {
    let mut parts = message.split(|b| *b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Protocol(
            "PLAIN message must contain exactly two NUL separators".into(),
        ));
    };
    if authcid.is_empty() {
        return Err(SaslError::Protocol(
            "PLAIN authentication identity is empty".into(),
        ));
    }
    if password.is_empty() {
        return Err(SaslError::Protocol("PLAIN password is empty".into()));
    }
    Ok((
        peer_utf8(authzid, "PLAIN authorization identity")?,
        peer_utf8(authcid, "PLAIN authentication identity")?,
        peer_utf8(password, "PLAIN password")?,
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SimpleServerState {
    Initial,
    AwaitingResponse,
    Done,
}

/// Server side of `PLAIN` (RFC 4616).
///
/// Parses the message strictly and hands the credentials to
/// [`Authenticator::verify_plain`]. If the client sent no initial response,
/// an empty challenge asks for it.
pub struct PlainServer {
    authenticator: Arc<dyn Authenticator>,
    state: SimpleServerState,
}

impl PlainServer {
    /// A `PLAIN` server consulting `authenticator`.
    pub fn new(authenticator: Arc<dyn Authenticator>) -> Self {
        Self {
            authenticator,
            state: SimpleServerState::Initial,
        }
    }

    fn finish(&mut self, message: &[u8]) -> ServerStep {
        self.state = SimpleServerState::Done;
        let result = parse_plain(message).and_then(|(authzid, authcid, password)| {
            self.authenticator.verify_plain(authzid, authcid, password)
        });
        match result {
            Ok(identity) => ServerStep::Success {
                identity,
                additional_data: None,
            },
            Err(e) => ServerStep::Failure(e),
        }
    }
}

impl fmt::Debug for PlainServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainServer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ServerMechanism for PlainServer {
    fn name(&self) -> &'static str {
        PLAIN
    }

    fn start(&mut self, initial_response: Option<&[u8]>, _hostname: Option<&str>) -> ServerStep {
        if self.state != SimpleServerState::Initial {
            self.state = SimpleServerState::Done;
            return ServerStep::Failure(SaslError::Protocol(
                "PLAIN exchange already started".into(),
            ));
        }
        match initial_response {
            Some(message) => self.finish(message),
            None => {
                self.state = SimpleServerState::AwaitingResponse;
                ServerStep::Challenge(Vec::new())
            }
        }
    }

    fn response(&mut self, response: &[u8]) -> ServerStep {
        if self.state != SimpleServerState::AwaitingResponse {
            self.state = SimpleServerState::Done;
            return ServerStep::Failure(SaslError::Protocol(
                "unexpected response for PLAIN".into(),
            ));
        }
        self.finish(response)
    }
}

// ---------------------------------------------------------------------------
// EXTERNAL
// ---------------------------------------------------------------------------

/// Client side of `EXTERNAL` (RFC 4422 appendix A): sends the requested
/// authorization identity (empty by default, meaning "whatever identity the
/// transport established") as the initial response.
#[derive(Debug, Clone, Default)]
pub struct ExternalClient {
    authzid: String,
}

impl ExternalClient {
    /// An `EXTERNAL` client requesting no particular authorization identity.
    pub fn new() -> Self {
        Self::default()
    }

    /// An `EXTERNAL` client requesting to act as `authzid`.
    pub fn with_authzid(authzid: impl Into<String>) -> Self {
        Self {
            authzid: authzid.into(),
        }
    }
}

impl ClientMechanism for ExternalClient {
    fn name(&self) -> &'static str {
        EXTERNAL
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, SaslError> {
        Ok(Some(self.authzid.as_bytes().to_vec()))
    }

    fn challenge(&mut self, _challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        Err(SaslError::Protocol(
            "unexpected challenge for EXTERNAL".into(),
        ))
    }

    fn outcome_ok(&mut self, _additional_data: Option<&[u8]>) -> Result<(), SaslError> {
        Ok(())
    }
}

/// Server side of `EXTERNAL` (RFC 4422 appendix A).
///
/// Asks [`Authenticator::verify_external`] with the transport identity given
/// at construction. If the client sent no initial response, an empty
/// challenge asks for the authorization identity.
pub struct ExternalServer {
    authenticator: Arc<dyn Authenticator>,
    transport_identity: Option<String>,
    state: SimpleServerState,
}

impl ExternalServer {
    /// An `EXTERNAL` server for a connection whose transport established
    /// `transport_identity` (e.g. the TLS client certificate subject).
    pub fn new(authenticator: Arc<dyn Authenticator>, transport_identity: Option<String>) -> Self {
        Self {
            authenticator,
            transport_identity,
            state: SimpleServerState::Initial,
        }
    }

    fn finish(&mut self, message: &[u8]) -> ServerStep {
        self.state = SimpleServerState::Done;
        let result = peer_utf8(message, "EXTERNAL authorization identity").and_then(|authzid| {
            self.authenticator
                .verify_external(self.transport_identity.as_deref(), authzid)
        });
        match result {
            Ok(identity) => ServerStep::Success {
                identity,
                additional_data: None,
            },
            Err(e) => ServerStep::Failure(e),
        }
    }
}

impl fmt::Debug for ExternalServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalServer")
            .field("transport_identity", &self.transport_identity)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ServerMechanism for ExternalServer {
    fn name(&self) -> &'static str {
        EXTERNAL
    }

    fn start(&mut self, initial_response: Option<&[u8]>, _hostname: Option<&str>) -> ServerStep {
        if self.state != SimpleServerState::Initial {
            self.state = SimpleServerState::Done;
            return ServerStep::Failure(SaslError::Protocol(
                "EXTERNAL exchange already started".into(),
            ));
        }
        match initial_response {
            Some(message) => self.finish(message),
            None => {
                self.state = SimpleServerState::AwaitingResponse;
                ServerStep::Challenge(Vec::new())
            }
        }
    }

    fn response(&mut self, response: &[u8]) -> ServerStep {
        if self.state != SimpleServerState::AwaitingResponse {
            self.state = SimpleServerState::Done;
            return ServerStep::Failure(SaslError::Protocol(
                "unexpected response for EXTERNAL".into(),
            ));
        }
        self.finish(response)
    }
}

#[cfg(test)]
mod tests;
