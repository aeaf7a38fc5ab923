//! `SCRAM-SHA-1` (RFC 5802) and `SCRAM-SHA-256` (RFC 7677), client and server.
//!
//! Scope and choices:
//!
//! * No channel binding. The client always sends the GS2 flag `n`; the server
//!   accepts `n` and `y` (the client supports channel binding but believes the
//!   server does not, which is true since we never advertise `-PLUS`) and
//!   rejects `p=` with [`SaslError::Protocol`].
//! * User names are escaped as RFC 5802 `saslname`s (`=` → `=3D`, `,` → `=2C`)
//!   and unescaped by the server, but otherwise used as-is: SASLprep
//!   (RFC 4013) normalisation is **not** applied to user names or passwords,
//!   so both sides must agree on the exact Unicode form.
//! * Nonces are injected by the caller ([`nonce_from_bytes`] turns random
//!   bytes into one); this module has no randomness source.
//! * The server-final message (`v=...`) is put into the `sasl-outcome`
//!   additional-data by default; [`ScramServer::with_final_in_challenge`]
//!   sends it as a last `sasl-challenge` instead (as Cyrus SASL does). The
//!   client accepts either. Proton's Cyrus client checks `v=` only in a
//!   challenge: it ignores the outcome's additional-data (so it would accept
//!   a forged signature there), and needs the challenge form for mutual
//!   authentication (`adapters/tokio/tests/sasl_cyrus.rs`).
//! * Client proofs are checked in constant time; the client checks the server
//!   signature and fails with [`SaslError::Auth`] if it is wrong or missing.
//! * Passwords and keys never appear in `Debug` output.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::mechanism::{
    peer_text, peer_utf8, Authenticator, ClientMechanism, SaslError, ServerMechanism, ServerStep,
    SCRAM_SHA_1, SCRAM_SHA_256,
};

/// The largest iteration count a [`ScramClient`] accepts by default.
///
/// The server chooses the count and the client must run PBKDF2 that many
/// times, so an absurd value is a denial-of-service vector.
pub const DEFAULT_MAX_ITERATIONS: u32 = 1_000_000;

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SHA-1: `SCRAM-SHA-1` (RFC 5802).
    Sha1,
    /// SHA-256: `SCRAM-SHA-256` (RFC 7677).
    Sha256,
}

impl ScramHash {
    /// The SASL mechanism name, e.g. `"SCRAM-SHA-256"`.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            ScramHash::Sha1 => SCRAM_SHA_1,
            ScramHash::Sha256 => SCRAM_SHA_256,
        }
    }

    /// The hash for a SCRAM mechanism name (ignoring ASCII case), if it is one
    /// this crate implements.
    pub fn from_mechanism_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case(SCRAM_SHA_256) {
            Some(ScramHash::Sha256)
        } else if name.eq_ignore_ascii_case(SCRAM_SHA_1) {
            Some(ScramHash::Sha1)
        } else {
            None
        }
    }

    /// Output length of the hash in bytes (20 for SHA-1, 32 for SHA-256),
    /// which is also the length of every SCRAM key, signature and proof.
    pub fn output_len(self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
        }
    }

    /// `H(data)`.
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::digest(data).to_vec(),
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, data)`.
    fn hmac(self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, SaslError> {
        // HMAC accepts keys of any length, so these never fail in practice;
        // the error path exists only to avoid a panic.
        let err = |_| SaslError::Sys("HMAC key rejected".into());
        Ok(match self {
            ScramHash::Sha1 => {
                let mut mac = Hmac::<Sha1>::new_from_slice(key).map_err(err)?;
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(err)?;
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        })
    }

    /// `Hi(password, salt, i)`, i.e. PBKDF2 with HMAC of this hash.
    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.output_len()];
        match self {
            ScramHash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

/// `ClientKey`, `StoredKey` and `ServerKey` derived from a password.
struct Keys {
    client_key: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

fn derive_keys(
    hash: ScramHash,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<Keys, SaslError> {
    let salted_password = hash.hi(password, salt, iterations);
    let client_key = hash.hmac(&salted_password, b"Client Key")?;
    let server_key = hash.hmac(&salted_password, b"Server Key")?;
    let stored_key = hash.digest(&client_key);
    Ok(Keys {
        client_key,
        stored_key,
        server_key,
    })
}

/// Stored SCRAM credentials of one user (RFC 5802 §2.2): what a server keeps
/// instead of the password.
///
/// `Debug` output shows the salt and iteration count but not the keys.
#[derive(Clone)]
pub struct ScramCredentials {
    /// The user's salt.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count (at least 1).
    pub iterations: u32,
    /// `StoredKey = H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: Vec<u8>,
    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

impl ScramCredentials {
    /// Derive stored credentials from a password, salt and iteration count.
    ///
    /// The salt should be random and unique per user (16 bytes or more);
    /// RFC 7677 recommends at least 4096 iterations. An iteration count of 0
    /// is treated as 1. The password is used as-is (no SASLprep).
    pub fn derive(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> Self {
        let iterations = iterations.max(1);
        // `derive_keys` cannot fail with the RustCrypto HMAC; should it ever,
        // empty keys are stored, which `ScramServer` rejects as invalid
        // credentials and which match no password.
        let (stored_key, server_key) =
            match derive_keys(hash, password.as_bytes(), salt, iterations) {
                Ok(keys) => (keys.stored_key, keys.server_key),
                Err(_) => (Vec::new(), Vec::new()),
            };
        Self {
            salt: salt.to_vec(),
            iterations,
            stored_key,
            server_key,
        }
    }

    /// Whether `password` produces these credentials' `StoredKey` (compared
    /// in constant time). Costs one PBKDF2 run.
    pub fn verify_password(&self, hash: ScramHash, password: &str) -> bool {
        if !self.is_valid_for(hash) {
            return false;
        }
        match derive_keys(hash, password.as_bytes(), &self.salt, self.iterations) {
            Ok(keys) => keys.stored_key.ct_eq(&self.stored_key).into(),
            Err(_) => false,
        }
    }

    /// Whether the credentials are usable with `hash`: a positive iteration
    /// count and keys of the hash's output length.
    fn is_valid_for(&self, hash: ScramHash) -> bool {
        self.iterations >= 1
            && self.stored_key.len() == hash.output_len()
            && self.server_key.len() == hash.output_len()
    }
}

impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredentials")
            .field("salt", &BASE64.encode(&self.salt))
            .field("iterations", &self.iterations)
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .finish()
    }
}

/// Turn caller-supplied random bytes into a SCRAM nonce (their base64
/// encoding, which only uses characters valid in a nonce).
///
/// Use at least 18 bytes from a cryptographically secure source.
pub fn nonce_from_bytes(random: &[u8]) -> String {
    BASE64.encode(random)
}

// ---------------------------------------------------------------------------
// Message syntax helpers
// ---------------------------------------------------------------------------

/// Whether `nonce` is a valid RFC 5802 nonce: non-empty printable ASCII
/// without `,`.
fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Escape a user name as an RFC 5802 `saslname`.
fn escape_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Unescape an RFC 5802 `saslname`, failing on empty names, NUL, and `=`
/// not followed by `3D` or `2C`.
fn unescape_saslname(name: &str) -> Result<String, SaslError> {
    if name.is_empty() {
        return Err(SaslError::Protocol("empty SCRAM user name".into()));
    }
    if name.contains('\0') {
        return Err(SaslError::Protocol("SCRAM user name contains NUL".into()));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some((head, tail)) = rest.split_once('=') {
        out.push_str(head);
        if let Some(tail) = tail.strip_prefix("3D") {
            out.push('=');
            rest = tail;
        } else if let Some(tail) = tail.strip_prefix("2C") {
            out.push(',');
            rest = tail;
        } else {
            return Err(SaslError::Protocol(
                "invalid escape in SCRAM user name".into(),
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Split one `x=value` attribute, where `x` is a single ASCII letter.
fn attribute(part: &str) -> Result<(u8, &str), SaslError> {
    let bytes = part.as_bytes();
    match (bytes.first(), bytes.get(1)) {
        (Some(&name), Some(b'=')) if name.is_ascii_alphabetic() => part
            .get(2..)
            .map(|value| (name, value))
            .ok_or_else(|| SaslError::Protocol("malformed SCRAM attribute".into())),
        _ => Err(SaslError::Protocol("malformed SCRAM attribute".into())),
    }
}

/// The value of the next attribute, which must be named `name`.
fn expect_attribute(part: Option<&str>, name: u8) -> Result<&str, SaslError> {
    let missing = || SaslError::Protocol(format!("missing SCRAM attribute {}=", char::from(name)));
    let (found, value) = attribute(part.ok_or_else(missing)?)?;
    if found == name {
        Ok(value)
    } else {
        Err(missing())
    }
}

/// Check that the remaining attributes are well-formed optional extensions
/// (which are otherwise ignored).
fn check_extensions<'a>(parts: impl Iterator<Item = &'a str>) -> Result<(), SaslError> {
    for part in parts {
        attribute(part)?;
    }
    Ok(())
}

/// Decode a base64 attribute value, failing with [`SaslError::Protocol`].
fn decode_base64(value: &str, what: &str) -> Result<Vec<u8>, SaslError> {
    BASE64
        .decode(value)
        .map_err(|_| SaslError::Protocol(format!("invalid base64 in SCRAM {what}")))
}

/// Parse an iteration count: a positive decimal without leading zeros, at
/// most `max`.
fn parse_iterations(value: &str, max: u32) -> Result<u32, SaslError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) || value.starts_with('0') {
        return Err(SaslError::Protocol("invalid SCRAM iteration count".into()));
    }
    let too_large =
        || SaslError::Protocol(format!("SCRAM iteration count exceeds the limit of {max}"));
    let count: u32 = value.parse().map_err(|_| too_large())?;
    if count > max {
        return Err(too_large());
    }
    Ok(count)
}

/// Verify a server-final message against the expected server signature.
fn verify_server_final(message: &[u8], expected: &[u8]) -> Result<(), SaslError> {
    let text = peer_utf8(message, "SCRAM server-final message")?;
    let mut parts = text.split(',');
    let (name, value) = attribute(parts.next().unwrap_or_default())?;
    match name {
        b'e' => Err(SaslError::Auth(format!(
            "server reported error: {}",
            peer_text(value)
        ))),
        b'v' => {
            check_extensions(parts)?;
            let signature = decode_base64(value, "server signature")?;
            if bool::from(signature.ct_eq(expected)) {
                Ok(())
            } else {
                Err(SaslError::Auth("SCRAM server signature mismatch".into()))
            }
        }
        _ => Err(SaslError::Protocol(
            "SCRAM server-final message must start with v= or e=".into(),
        )),
    }
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

enum ClientState {
    Initial,
    SentFirst {
        gs2_header: String,
        client_first_bare: String,
    },
    SentFinal {
        server_signature: Vec<u8>,
    },
    Verified {
        server_signature: Vec<u8>,
    },
    Failed,
}

impl ClientState {
    fn label(&self) -> &'static str {
        match self {
            ClientState::Initial => "Initial",
            ClientState::SentFirst { .. } => "SentFirst",
            ClientState::SentFinal { .. } => "SentFinal",
            ClientState::Verified { .. } => "Verified",
            ClientState::Failed => "Failed",
        }
    }
}

/// Client side of `SCRAM-SHA-1` / `SCRAM-SHA-256`.
///
/// Sends the client-first message as the initial response, answers the
/// server-first challenge with the client-final message, and verifies the
/// server signature, whether it arrives in a challenge (answered with an
/// empty response) or in the outcome's additional-data. A successful outcome
/// without a verified server signature is an [`SaslError::Auth`] failure.
pub struct ScramClient {
    hash: ScramHash,
    user: String,
    authzid: Option<String>,
    password: String,
    client_nonce: String,
    max_iterations: u32,
    state: ClientState,
}

impl ScramClient {
    /// A SCRAM client for `user` with `password`, using `client_nonce`
    /// (printable ASCII without `,`; see [`nonce_from_bytes`]), which must be
    /// fresh and unpredictable for every exchange.
    pub fn new(
        hash: ScramHash,
        user: impl Into<String>,
        password: impl Into<String>,
        client_nonce: impl Into<String>,
    ) -> Self {
        Self {
            hash,
            user: user.into(),
            authzid: None,
            password: password.into(),
            client_nonce: client_nonce.into(),
            max_iterations: DEFAULT_MAX_ITERATIONS,
            state: ClientState::Initial,
        }
    }

    /// Request to act as `authzid` (sent as `a=` in the GS2 header).
    #[must_use]
    pub fn with_authzid(mut self, authzid: impl Into<String>) -> Self {
        self.authzid = Some(authzid.into());
        self
    }

    /// Accept server iteration counts up to `max` (default
    /// [`DEFAULT_MAX_ITERATIONS`]).
    #[must_use]
    pub fn with_max_iterations(mut self, max: u32) -> Self {
        self.max_iterations = max;
        self
    }

    /// Whether the server's signature has been verified.
    pub fn server_verified(&self) -> bool {
        matches!(self.state, ClientState::Verified { .. })
    }

    fn client_first(&mut self) -> Result<Vec<u8>, SaslError> {
        if !is_valid_nonce(&self.client_nonce) {
            return Err(SaslError::Sys("invalid SCRAM client nonce".into()));
        }
        if self.user.is_empty()
            || self.user.contains('\0')
            || self.authzid.as_deref().is_some_and(|a| a.contains('\0'))
        {
            return Err(SaslError::Sys("invalid SCRAM user name".into()));
        }
        let gs2_header = match &self.authzid {
            Some(authzid) if !authzid.is_empty() => format!("n,a={},", escape_saslname(authzid)),
            _ => "n,,".to_owned(),
        };
        let client_first_bare =
            format!("n={},r={}", escape_saslname(&self.user), self.client_nonce);
        let message = format!("{gs2_header}{client_first_bare}").into_bytes();
        self.state = ClientState::SentFirst {
            gs2_header,
            client_first_bare,
        };
        Ok(message)
    }

    /// Process server-first; returns the client-final message and the
    /// expected server signature.
    fn client_final(
        &self,
        gs2_header: &str,
        client_first_bare: &str,
        message: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), SaslError> {
        let server_first = peer_utf8(message, "SCRAM server-first message")?;
        if let Some(error) = server_first.strip_prefix("e=") {
            return Err(SaslError::Auth(format!(
                "server reported error: {}",
                peer_text(error)
            )));
        }
        let mut parts = server_first.split(',');
        let (name, nonce) = attribute(parts.next().unwrap_or_default())?;
        match name {
            b'r' => {}
            b'm' => {
                return Err(SaslError::Protocol(
                    "unsupported mandatory SCRAM extension".into(),
                ))
            }
            _ => return Err(SaslError::Protocol("missing SCRAM attribute r=".into())),
        }
        if !is_valid_nonce(nonce) {
            return Err(SaslError::Protocol("invalid SCRAM nonce".into()));
        }
        if !nonce.starts_with(self.client_nonce.as_str()) || nonce.len() <= self.client_nonce.len()
        {
            return Err(SaslError::Protocol(
                "SCRAM server nonce does not extend the client nonce".into(),
            ));
        }
        let salt = decode_base64(expect_attribute(parts.next(), b's')?, "salt")?;
        let iterations =
            parse_iterations(expect_attribute(parts.next(), b'i')?, self.max_iterations)?;
        check_extensions(parts)?;

        let keys = derive_keys(self.hash, self.password.as_bytes(), &salt, iterations)?;
        let client_final_without_proof = format!("c={},r={}", BASE64.encode(gs2_header), nonce);
        let auth_message =
            format!("{client_first_bare},{server_first},{client_final_without_proof}");
        let client_signature = self.hash.hmac(&keys.stored_key, auth_message.as_bytes())?;
        let client_proof = xor(&keys.client_key, &client_signature);
        let server_signature = self.hash.hmac(&keys.server_key, auth_message.as_bytes())?;
        let client_final = format!(
            "{client_final_without_proof},p={}",
            BASE64.encode(client_proof)
        );
        Ok((client_final.into_bytes(), server_signature))
    }
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient")
            .field("hash", &self.hash)
            .field("user", &self.user)
            .field("authzid", &self.authzid)
            .field("password", &"<redacted>")
            .field("max_iterations", &self.max_iterations)
            .field("state", &self.state.label())
            .finish_non_exhaustive()
    }
}

impl ClientMechanism for ScramClient {
    fn name(&self) -> &'static str {
        self.hash.mechanism_name()
    }

    fn initial_response(&mut self) -> Result<Option<Vec<u8>>, SaslError> {
        if !matches!(self.state, ClientState::Initial) {
            self.state = ClientState::Failed;
            return Err(SaslError::Protocol("SCRAM exchange already started".into()));
        }
        let result = self.client_first();
        if result.is_err() {
            self.state = ClientState::Failed;
        }
        result.map(Some)
    }

    fn challenge(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        match std::mem::replace(&mut self.state, ClientState::Failed) {
            // RFC 4422 §5: an empty challenge asks for the initial response
            // that was not sent with sasl-init.
            ClientState::Initial if challenge.is_empty() => {
                let result = self.client_first();
                if result.is_err() {
                    self.state = ClientState::Failed;
                }
                result
            }
            ClientState::SentFirst {
                gs2_header,
                client_first_bare,
            } => {
                let (client_final, server_signature) =
                    self.client_final(&gs2_header, &client_first_bare, challenge)?;
                self.state = ClientState::SentFinal { server_signature };
                Ok(client_final)
            }
            // Cyrus SASL style: server-final in a challenge, empty response.
            ClientState::SentFinal { server_signature } => {
                verify_server_final(challenge, &server_signature)?;
                self.state = ClientState::Verified { server_signature };
                Ok(Vec::new())
            }
            _ => Err(SaslError::Protocol("unexpected SCRAM challenge".into())),
        }
    }

    fn outcome_ok(&mut self, additional_data: Option<&[u8]>) -> Result<(), SaslError> {
        let data = additional_data.filter(|d| !d.is_empty());
        match std::mem::replace(&mut self.state, ClientState::Failed) {
            ClientState::SentFinal { server_signature } => {
                let Some(data) = data else {
                    return Err(SaslError::Auth(
                        "server did not send its SCRAM signature".into(),
                    ));
                };
                verify_server_final(data, &server_signature)?;
                self.state = ClientState::Verified { server_signature };
                Ok(())
            }
            ClientState::Verified { server_signature } => {
                // Already verified in a challenge; a repeated server-final
                // must still be correct.
                if let Some(data) = data {
                    verify_server_final(data, &server_signature)?;
                }
                self.state = ClientState::Verified { server_signature };
                Ok(())
            }
            _ => Err(SaslError::Auth(
                "server reported success before the SCRAM exchange completed".into(),
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// What the server remembers between server-first and client-final.
struct PendingFinal {
    user: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    credentials: ScramCredentials,
}

enum ServerState {
    Initial,
    AwaitingClientFirst,
    AwaitingClientFinal(PendingFinal),
    AwaitingAck { identity: String },
    Done,
}

impl ServerState {
    fn label(&self) -> &'static str {
        match self {
            ServerState::Initial => "Initial",
            ServerState::AwaitingClientFirst => "AwaitingClientFirst",
            ServerState::AwaitingClientFinal(_) => "AwaitingClientFinal",
            ServerState::AwaitingAck { .. } => "AwaitingAck",
            ServerState::Done => "Done",
        }
    }
}

/// Server side of `SCRAM-SHA-1` / `SCRAM-SHA-256`.
///
/// Looks up the user's [`ScramCredentials`] through
/// [`Authenticator::scram_credentials`], answers with the server-first
/// challenge, checks the client proof in constant time and reports the
/// server-final message (`v=...`) as the outcome's additional-data (or, with
/// [`with_final_in_challenge`](Self::with_final_in_challenge), as a last
/// challenge).
///
/// An authorization identity other than the user name is refused. An
/// unknown user fails immediately with [`SaslError::Auth`] (the same error
/// as a wrong password, but distinguishable by when it happens).
pub struct ScramServer {
    hash: ScramHash,
    authenticator: Arc<dyn Authenticator>,
    server_nonce_suffix: String,
    final_in_challenge: bool,
    state: ServerState,
}

impl ScramServer {
    /// A SCRAM server using `authenticator` for credentials and appending
    /// `server_nonce_suffix` (printable ASCII without `,`; see
    /// [`nonce_from_bytes`]), which must be fresh and unpredictable for every
    /// exchange, to the client's nonce.
    pub fn new(
        hash: ScramHash,
        authenticator: Arc<dyn Authenticator>,
        server_nonce_suffix: impl Into<String>,
    ) -> Self {
        Self {
            hash,
            authenticator,
            server_nonce_suffix: server_nonce_suffix.into(),
            final_in_challenge: false,
            state: ServerState::Initial,
        }
    }

    /// Send the server-final message as a last challenge (expecting an empty
    /// response) instead of in the outcome's additional-data.
    #[must_use]
    pub fn with_final_in_challenge(mut self, enabled: bool) -> Self {
        self.final_in_challenge = enabled;
        self
    }

    fn client_first(&mut self, message: &[u8]) -> Result<ServerStep, SaslError> {
        let text = peer_utf8(message, "SCRAM client-first message")?;
        let malformed_gs2 = || SaslError::Protocol("malformed GS2 header".into());
        let (cbind_flag, rest) = text.split_once(',').ok_or_else(malformed_gs2)?;
        match cbind_flag {
            "n" | "y" => {}
            flag if flag.starts_with("p=") => {
                return Err(SaslError::Protocol(
                    "SCRAM channel binding is not supported".into(),
                ));
            }
            _ => return Err(malformed_gs2()),
        }
        let (authzid_part, client_first_bare) = rest.split_once(',').ok_or_else(malformed_gs2)?;
        let authzid = match authzid_part {
            "" => None,
            part => Some(unescape_saslname(
                part.strip_prefix("a=").ok_or_else(malformed_gs2)?,
            )?),
        };
        let gs2_header = text
            .get(..cbind_flag.len() + authzid_part.len() + 2)
            .ok_or_else(malformed_gs2)?;

        let mut parts = client_first_bare.split(',');
        let (name, escaped_user) = attribute(parts.next().unwrap_or_default())?;
        match name {
            b'n' => {}
            b'm' => {
                return Err(SaslError::Protocol(
                    "unsupported mandatory SCRAM extension".into(),
                ))
            }
            _ => return Err(SaslError::Protocol("missing SCRAM attribute n=".into())),
        }
        let user = unescape_saslname(escaped_user)?;
        let client_nonce = expect_attribute(parts.next(), b'r')?;
        if !is_valid_nonce(client_nonce) {
            return Err(SaslError::Protocol("invalid SCRAM nonce".into()));
        }
        check_extensions(parts)?;

        if authzid.is_some_and(|a| a != user) {
            return Err(SaslError::Auth(
                "authorization identity not permitted".into(),
            ));
        }
        if !is_valid_nonce(&self.server_nonce_suffix) {
            return Err(SaslError::Sys("invalid SCRAM server nonce".into()));
        }
        let credentials = self
            .authenticator
            .scram_credentials(&user, self.hash)
            .ok_or_else(|| SaslError::Auth("invalid user name or password".into()))?;
        if !credentials.is_valid_for(self.hash) {
            return Err(SaslError::Sys(
                "stored SCRAM credentials are invalid".into(),
            ));
        }

        let nonce = format!("{client_nonce}{}", self.server_nonce_suffix);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credentials.salt),
            credentials.iterations
        );
        let challenge = server_first.clone().into_bytes();
        self.state = ServerState::AwaitingClientFinal(PendingFinal {
            user,
            gs2_header: gs2_header.to_owned(),
            client_first_bare: client_first_bare.to_owned(),
            server_first,
            nonce,
            credentials,
        });
        Ok(ServerStep::Challenge(challenge))
    }

    fn client_final(
        &mut self,
        message: &[u8],
        pending: PendingFinal,
    ) -> Result<ServerStep, SaslError> {
        let PendingFinal {
            user,
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
            credentials,
        } = pending;
        let text = peer_utf8(message, "SCRAM client-final message")?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| SaslError::Protocol("missing SCRAM attribute p=".into()))?;
        if proof.contains(',') {
            return Err(SaslError::Protocol(
                "SCRAM proof must be the last attribute".into(),
            ));
        }
        let mut parts = without_proof.split(',');
        let channel_binding =
            decode_base64(expect_attribute(parts.next(), b'c')?, "channel binding")?;
        if channel_binding != gs2_header.as_bytes() {
            return Err(SaslError::Protocol(
                "SCRAM channel binding data does not match the GS2 header".into(),
            ));
        }
        if expect_attribute(parts.next(), b'r')? != nonce {
            return Err(SaslError::Protocol("SCRAM nonce mismatch".into()));
        }
        check_extensions(parts)?;
        let proof = decode_base64(proof, "client proof")?;
        if proof.len() != self.hash.output_len() {
            return Err(SaslError::Protocol(
                "SCRAM client proof has the wrong length".into(),
            ));
        }

        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = self
            .hash
            .hmac(&credentials.stored_key, auth_message.as_bytes())?;
        let client_key = xor(&proof, &client_signature);
        let stored_key = self.hash.digest(&client_key);
        if !bool::from(stored_key.ct_eq(&credentials.stored_key)) {
            return Err(SaslError::Auth("invalid user name or password".into()));
        }
        let server_signature = self
            .hash
            .hmac(&credentials.server_key, auth_message.as_bytes())?;
        let server_final = format!("v={}", BASE64.encode(server_signature)).into_bytes();
        if self.final_in_challenge {
            self.state = ServerState::AwaitingAck { identity: user };
            Ok(ServerStep::Challenge(server_final))
        } else {
            Ok(ServerStep::Success {
                identity: user,
                additional_data: Some(server_final),
            })
        }
    }
}

impl fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramServer")
            .field("hash", &self.hash)
            .field("final_in_challenge", &self.final_in_challenge)
            .field("state", &self.state.label())
            .finish_non_exhaustive()
    }
}

fn step(result: Result<ServerStep, SaslError>) -> ServerStep {
    result.unwrap_or_else(ServerStep::Failure)
}

impl ServerMechanism for ScramServer {
    fn name(&self) -> &'static str {
        self.hash.mechanism_name()
    }

    fn start(&mut self, initial_response: Option<&[u8]>, _hostname: Option<&str>) -> ServerStep {
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::Initial => match initial_response {
                // Some stacks encode "no initial response" as an empty one.
                None | Some([]) => {
                    self.state = ServerState::AwaitingClientFirst;
                    ServerStep::Challenge(Vec::new())
                }
                Some(message) => step(self.client_first(message)),
            },
            _ => ServerStep::Failure(SaslError::Protocol("SCRAM exchange already started".into())),
        }
    }

    fn response(&mut self, response: &[u8]) -> ServerStep {
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::AwaitingClientFirst => step(self.client_first(response)),
            ServerState::AwaitingClientFinal(pending) => step(self.client_final(response, pending)),
            ServerState::AwaitingAck { identity } if response.is_empty() => ServerStep::Success {
                identity,
                additional_data: None,
            },
            ServerState::AwaitingAck { .. } => ServerStep::Failure(SaslError::Protocol(
                "expected an empty response after SCRAM server-final".into(),
            )),
            ServerState::Initial | ServerState::Done => {
                ServerStep::Failure(SaslError::Protocol("unexpected SCRAM response".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::mechanism::StaticUsers;
    use proptest::prelude::*;

    // RFC 5802 §5 (SCRAM-SHA-1).
    const RFC5802_CLIENT_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
    const RFC5802_SERVER_SUFFIX: &str = "3rfcNHYJY1ZVvWVs7j";
    const RFC5802_SALT: &str = "QSXCR+Q6sek8bf92";
    const RFC5802_CLIENT_FIRST: &str = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
    const RFC5802_SERVER_FIRST: &str =
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    const RFC5802_CLIENT_FINAL: &str =
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    const RFC5802_SERVER_FINAL: &str = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

    // RFC 7677 §3 (SCRAM-SHA-256).
    const RFC7677_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC7677_SERVER_SUFFIX: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const RFC7677_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const RFC7677_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const RFC7677_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC7677_CLIENT_FINAL: &str =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    const SALT: &[u8] = b"per-user-salt-16";
    const ITERATIONS: u32 = 16;

    struct Vector {
        hash: ScramHash,
        client_nonce: &'static str,
        server_suffix: &'static str,
        salt_b64: &'static str,
        client_first: &'static str,
        server_first: &'static str,
        client_final: &'static str,
        server_final: &'static str,
    }

    const VECTORS: [Vector; 2] = [
        Vector {
            hash: ScramHash::Sha1,
            client_nonce: RFC5802_CLIENT_NONCE,
            server_suffix: RFC5802_SERVER_SUFFIX,
            salt_b64: RFC5802_SALT,
            client_first: RFC5802_CLIENT_FIRST,
            server_first: RFC5802_SERVER_FIRST,
            client_final: RFC5802_CLIENT_FINAL,
            server_final: RFC5802_SERVER_FINAL,
        },
        Vector {
            hash: ScramHash::Sha256,
            client_nonce: RFC7677_CLIENT_NONCE,
            server_suffix: RFC7677_SERVER_SUFFIX,
            salt_b64: RFC7677_SALT,
            client_first: RFC7677_CLIENT_FIRST,
            server_first: RFC7677_SERVER_FIRST,
            client_final: RFC7677_CLIENT_FINAL,
            server_final: RFC7677_SERVER_FINAL,
        },
    ];

    fn rfc_users(v: &Vector) -> Arc<StaticUsers> {
        let salt = BASE64.decode(v.salt_b64).expect("test salt");
        Arc::new(StaticUsers::new().with_user("user", "pencil", &salt, 4096))
    }

    fn users() -> Arc<StaticUsers> {
        Arc::new(
            StaticUsers::new()
                .with_user("alice", "correct horse", SALT, ITERATIONS)
                .with_user("we=ird,name", "p=ss,word", SALT, ITERATIONS),
        )
    }

    fn client(hash: ScramHash, user: &str, password: &str) -> ScramClient {
        ScramClient::new(hash, user, password, "clientnonce123")
    }

    fn server(hash: ScramHash) -> ScramServer {
        ScramServer::new(hash, users(), "serversuffix456")
    }

    /// Drive client and server to completion.
    fn run(
        client: &mut dyn ClientMechanism,
        server: &mut dyn ServerMechanism,
    ) -> Result<String, SaslError> {
        assert_eq!(client.name(), server.name());
        let init = client.initial_response()?;
        let mut step = server.start(init.as_deref(), None);
        for _ in 0..10 {
            match step {
                ServerStep::Challenge(c) => {
                    let r = client.challenge(&c)?;
                    step = server.response(&r);
                }
                ServerStep::Success {
                    identity,
                    additional_data,
                } => {
                    client.outcome_ok(additional_data.as_deref())?;
                    return Ok(identity);
                }
                ServerStep::Failure(e) => return Err(e),
            }
        }
        panic!("exchange did not terminate");
    }

    /// A server that has processed a valid client-first for alice and now
    /// awaits client-final, plus the full nonce.
    fn server_awaiting_final(hash: ScramHash, cbind: &str) -> (ScramServer, String) {
        let mut s = server(hash);
        let first = format!("{cbind},,n=alice,r=abc");
        assert!(matches!(
            s.start(Some(first.as_bytes()), None),
            ServerStep::Challenge(_)
        ));
        (s, "abcserversuffix456".to_owned())
    }

    /// A client that has sent client-first with nonce `clientnonce123`.
    fn client_after_first(hash: ScramHash) -> ScramClient {
        let mut c = client(hash, "alice", "correct horse");
        c.initial_response().expect("client-first");
        c
    }

    fn is_protocol<T: fmt::Debug>(r: &Result<T, SaslError>) -> bool {
        matches!(r, Err(SaslError::Protocol(_)))
    }

    #[test]
    fn rfc_vectors_client() {
        for v in &VECTORS {
            let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
            assert_eq!(c.name(), v.hash.mechanism_name());
            assert_eq!(
                c.initial_response().unwrap(),
                Some(v.client_first.as_bytes().to_vec())
            );
            let client_final = c.challenge(v.server_first.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(client_final).unwrap(), v.client_final);
            assert!(!c.server_verified());
            c.outcome_ok(Some(v.server_final.as_bytes())).unwrap();
            assert!(c.server_verified());
        }
    }

    #[test]
    fn rfc_vectors_client_final_in_challenge() {
        for v in &VECTORS {
            let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
            c.initial_response().unwrap();
            c.challenge(v.server_first.as_bytes()).unwrap();
            assert_eq!(
                c.challenge(v.server_final.as_bytes()).unwrap(),
                Vec::<u8>::new()
            );
            assert!(c.server_verified());
            c.outcome_ok(None).unwrap();
            // A repeated, correct server-final is accepted too.
            c.outcome_ok(Some(v.server_final.as_bytes())).unwrap();
        }
    }

    #[test]
    fn rfc_vectors_server() {
        for v in &VECTORS {
            let mut s = ScramServer::new(v.hash, rfc_users(v), v.server_suffix);
            assert_eq!(s.name(), v.hash.mechanism_name());
            assert_eq!(
                s.start(Some(v.client_first.as_bytes()), Some("host")),
                ServerStep::Challenge(v.server_first.as_bytes().to_vec())
            );
            assert_eq!(
                s.response(v.client_final.as_bytes()),
                ServerStep::Success {
                    identity: "user".into(),
                    additional_data: Some(v.server_final.as_bytes().to_vec())
                }
            );
            assert!(matches!(
                s.response(b""),
                ServerStep::Failure(SaslError::Protocol(_))
            ));
        }
    }

    #[test]
    fn rfc_vectors_server_final_in_challenge() {
        for v in &VECTORS {
            let mut s = ScramServer::new(v.hash, rfc_users(v), v.server_suffix)
                .with_final_in_challenge(true);
            s.start(Some(v.client_first.as_bytes()), None);
            assert_eq!(
                s.response(v.client_final.as_bytes()),
                ServerStep::Challenge(v.server_final.as_bytes().to_vec())
            );
            assert_eq!(
                s.response(b""),
                ServerStep::Success {
                    identity: "user".into(),
                    additional_data: None
                }
            );
        }
    }

    #[test]
    fn rfc_vectors_client_and_server() {
        for v in &VECTORS {
            for final_in_challenge in [false, true] {
                let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
                let mut s = ScramServer::new(v.hash, rfc_users(v), v.server_suffix)
                    .with_final_in_challenge(final_in_challenge);
                assert_eq!(run(&mut c, &mut s), Ok("user".to_owned()));
                assert!(c.server_verified());
            }
        }
    }

    #[test]
    fn round_trips() {
        for hash in [ScramHash::Sha1, ScramHash::Sha256] {
            for final_in_challenge in [false, true] {
                for (user, password) in [("alice", "correct horse"), ("we=ird,name", "p=ss,word")] {
                    let mut c = ScramClient::new(hash, user, password, nonce_from_bytes(&[7; 18]));
                    let mut s = ScramServer::new(hash, users(), nonce_from_bytes(&[9; 18]))
                        .with_final_in_challenge(final_in_challenge);
                    assert_eq!(
                        run(&mut c, &mut s),
                        Ok(user.to_owned()),
                        "{hash:?} {final_in_challenge} {user}"
                    );
                }
                // With an authzid equal to the user name.
                let mut c = client(hash, "alice", "correct horse").with_authzid("alice");
                let mut s = server(hash).with_final_in_challenge(final_in_challenge);
                assert_eq!(run(&mut c, &mut s), Ok("alice".to_owned()));
            }
        }
    }

    #[test]
    fn round_trip_without_initial_response() {
        // The server asks for client-first with an empty challenge.
        for hash in [ScramHash::Sha1, ScramHash::Sha256] {
            let mut c = client(hash, "alice", "correct horse");
            let mut s = server(hash);
            let ServerStep::Challenge(empty) = s.start(None, None) else {
                panic!("expected challenge")
            };
            assert!(empty.is_empty());
            let first = c.challenge(&empty).unwrap();
            let ServerStep::Challenge(server_first) = s.response(&first) else {
                panic!("expected challenge")
            };
            let last = c.challenge(&server_first).unwrap();
            let ServerStep::Success {
                identity,
                additional_data,
            } = s.response(&last)
            else {
                panic!("expected success")
            };
            assert_eq!(identity, "alice");
            c.outcome_ok(additional_data.as_deref()).unwrap();
        }
    }

    #[test]
    fn server_accepts_y_flag() {
        let (mut s, nonce) = server_awaiting_final(ScramHash::Sha256, "y");
        // c= must be base64("y,,"); a wrong proof then fails with Auth, proving c= was accepted.
        let proof = BASE64.encode([0u8; 32]);
        let msg = format!("c={},r={nonce},p={proof}", BASE64.encode("y,,"));
        assert!(matches!(
            s.response(msg.as_bytes()),
            ServerStep::Failure(SaslError::Auth(_))
        ));
    }

    #[test]
    fn saslname_escaping() {
        assert_eq!(escape_saslname("a=b,c"), "a=3Db=2Cc");
        assert_eq!(escape_saslname("plain"), "plain");
        assert_eq!(unescape_saslname("a=3Db=2Cc").unwrap(), "a=b,c");
        assert_eq!(unescape_saslname("=3D=2C").unwrap(), "=,");
        for bad in [
            "", "a=", "a=3", "a=3d", "a=2c", "a==3D", "=", "a\0b", "a=41",
        ] {
            assert!(is_protocol(&unescape_saslname(bad)), "{bad:?}");
        }
        let mut c = ScramClient::new(ScramHash::Sha1, "we=ird,name", "pw", "n").with_authzid("x,y");
        assert_eq!(
            c.initial_response().unwrap().unwrap(),
            b"n,a=x=2Cy,n=we=3Dird=2Cname,r=n".to_vec()
        );
    }

    #[test]
    fn wrong_password() {
        for hash in [ScramHash::Sha1, ScramHash::Sha256] {
            let mut c = client(hash, "alice", "wrong horse");
            let mut s = server(hash);
            assert!(matches!(run(&mut c, &mut s), Err(SaslError::Auth(_))));
        }
    }

    #[test]
    fn unknown_user() {
        let mut c = client(ScramHash::Sha256, "mallory", "correct horse");
        let mut s = server(ScramHash::Sha256);
        assert!(matches!(run(&mut c, &mut s), Err(SaslError::Auth(_))));
    }

    #[test]
    fn foreign_authzid_refused() {
        let mut c = client(ScramHash::Sha256, "alice", "correct horse").with_authzid("root");
        let mut s = server(ScramHash::Sha256);
        assert!(matches!(run(&mut c, &mut s), Err(SaslError::Auth(_))));
    }

    #[test]
    fn malformed_client_first() {
        let cases: &[&[u8]] = &[
            b"",
            b"n",
            b"n,",
            b"n,,",
            b"garbage",
            b"\xff\xfe",
            b"p=tls-unique,,n=alice,r=abc",
            b"p=tls-server-end-point,a=alice,n=alice,r=abc",
            b"x,,n=alice,r=abc",
            b"N,,n=alice,r=abc",
            b"n,alice,n=alice,r=abc",
            b"n,a=,n=alice,r=abc",
            b"n,a=bad=escape,n=alice,r=abc",
            b"n,,r=abc",
            b"n,,n=alice",
            b"n,,n=alice,",
            b"n,,n=,r=abc",
            b"n,,n=al=ice,r=abc",
            b"n,,n=alice,r=",
            b"n,,n=alice,r=a b",
            b"n,,n=alice,r=abc\x7f",
            b"n,,n=alice,s=abc",
            b"n,,m=ext,n=alice,r=abc",
            b"n,,n=alice,r=abc,bogus",
            b"n,,n=alice,r=abc,=x",
            b"n,,alice,r=abc",
        ];
        for case in cases {
            let mut s = server(ScramHash::Sha256);
            let step = s.start(Some(case), None);
            // An empty initial response is treated as none: empty challenge.
            if case.is_empty() {
                assert_eq!(step, ServerStep::Challenge(Vec::new()));
                continue;
            }
            assert!(
                matches!(step, ServerStep::Failure(SaslError::Protocol(_))),
                "{:?} -> {step:?}",
                String::from_utf8_lossy(case)
            );
            // Once failed, nothing more is accepted.
            assert!(matches!(
                s.response(b"c=biws,r=abc,p=AAAA"),
                ServerStep::Failure(SaslError::Protocol(_))
            ));
        }
        // Extensions after r= are accepted and ignored.
        let mut s = server(ScramHash::Sha256);
        assert!(matches!(
            s.start(Some(b"n,,n=alice,r=abc,x=ext"), None),
            ServerStep::Challenge(_)
        ));
    }

    #[test]
    fn malformed_client_final() {
        let good_proof = BASE64.encode([0u8; 32]);
        let nonce = "abcserversuffix456";
        let cases = [
            String::new(),
            "garbage".to_owned(),
            format!("c=biws,r={nonce}"),                 // missing proof
            format!("r={nonce},c=biws,p={good_proof}"),  // wrong order
            format!("r={nonce},p={good_proof}"),         // missing c=
            format!("c=biws,p={good_proof}"),            // missing r=
            format!("c=biws,r=abcWRONG,p={good_proof}"), // nonce mismatch
            format!("c=biws,r=abc,p={good_proof}"),      // truncated nonce
            format!("c=eSws,r={nonce},p={good_proof}"),  // c= is "y,,", header was "n,,"
            format!("c=cD10bHMtdW5pcXVlLCw=,r={nonce},p={good_proof}"), // p=tls-unique,,
            format!("c=!!!!,r={nonce},p={good_proof}"),  // bad base64 in c=
            format!("c=biws,r={nonce},p=!!!!"),          // bad base64 in p=
            format!("c=biws,r={nonce},p=AAAA"),          // proof too short
            format!("c=biws,r={nonce},p={}", BASE64.encode([0u8; 20])), // SHA-1 sized proof
            format!("c=biws,r={nonce},p={good_proof},x=1"), // proof not last
            format!("c=biws,r={nonce},bogus,p={good_proof}"), // malformed extension
            format!("c=biws,r={nonce},p={}", &good_proof[..good_proof.len() - 1]), // truncated base64
        ];
        for case in &cases {
            let (mut s, _) = server_awaiting_final(ScramHash::Sha256, "n");
            let step = s.response(case.as_bytes());
            assert!(
                matches!(step, ServerStep::Failure(SaslError::Protocol(_))),
                "{case:?} -> {step:?}"
            );
        }
        let (mut s, _) = server_awaiting_final(ScramHash::Sha256, "n");
        assert!(matches!(
            s.response(b"\xff"),
            ServerStep::Failure(SaslError::Protocol(_))
        ));
        // Well-formed with an extension but a wrong proof: Auth.
        let (mut s, _) = server_awaiting_final(ScramHash::Sha256, "n");
        let msg = format!("c=biws,r={nonce},x=ext,p={good_proof}");
        assert!(matches!(
            s.response(msg.as_bytes()),
            ServerStep::Failure(SaslError::Auth(_))
        ));
    }

    #[test]
    fn malformed_server_first() {
        let n = "clientnonce123";
        let cases = [
            String::new(),
            "garbage".to_owned(),
            format!("r={n}xyz"),                   // truncated: missing s= and i=
            format!("r={n}xyz,s=c2FsdA=="),        // missing i=
            format!("r={n}xyz,i=4096"),            // missing s=
            format!("s=c2FsdA==,r={n}xyz,i=4096"), // wrong order
            "r=otherxyz,s=c2FsdA==,i=4096".to_owned(), // nonce mismatch
            format!("r={n},s=c2FsdA==,i=4096"),    // server added nothing
            "r=clientnonce12,s=c2FsdA==,i=4096".to_owned(), // truncated client nonce
            format!("r={n}x y,s=c2FsdA==,i=4096"), // invalid nonce character
            format!("r={n}xyz,s=!!!,i=4096"),      // bad base64
            format!("r={n}xyz,s=c2FsdA=,i=4096"),  // bad padding
            format!("r={n}xyz,s=c2FsdA==,i=0"),    // zero iterations
            format!("r={n}xyz,s=c2FsdA==,i=04096"), // leading zero
            format!("r={n}xyz,s=c2FsdA==,i=-1"),
            format!("r={n}xyz,s=c2FsdA==,i=+4096"),
            format!("r={n}xyz,s=c2FsdA==,i=4k"),
            format!("r={n}xyz,s=c2FsdA==,i="),
            format!("r={n}xyz,s=c2FsdA==,i=1000001"), // above the DoS limit
            format!("r={n}xyz,s=c2FsdA==,i=4294967295"),
            format!("r={n}xyz,s=c2FsdA==,i=99999999999999999999"), // overflows u32
            format!("m=ext,r={n}xyz,s=c2FsdA==,i=4096"),           // mandatory extension
            format!("r={n}xyz,s=c2FsdA==,i=4096,bogus"),           // malformed extension
            format!("r={n}xyz,s=c2FsdA==,i=4096,"),
        ];
        for case in &cases {
            let mut c = client_after_first(ScramHash::Sha256);
            let r = c.challenge(case.as_bytes());
            assert!(is_protocol(&r), "{case:?} -> {r:?}");
            // Once failed, the client refuses to continue or to accept success.
            assert!(is_protocol(&c.challenge(b"v=AAAA")));
            assert!(matches!(
                c.outcome_ok(Some(b"v=AAAA")),
                Err(SaslError::Auth(_))
            ));
        }
        let mut c = client_after_first(ScramHash::Sha256);
        assert!(is_protocol(&c.challenge(b"\xff\xff")));
        // Extensions after i= are accepted.
        let mut c = client_after_first(ScramHash::Sha256);
        assert!(c
            .challenge(format!("r={n}xyz,s=c2FsdA==,i=16,x=ext").as_bytes())
            .is_ok());
    }

    #[test]
    fn iteration_limit_is_configurable() {
        let v = &VECTORS[1];
        let mut c =
            ScramClient::new(v.hash, "user", "pencil", v.client_nonce).with_max_iterations(4095);
        c.initial_response().unwrap();
        assert!(is_protocol(&c.challenge(v.server_first.as_bytes())));
        let mut c =
            ScramClient::new(v.hash, "user", "pencil", v.client_nonce).with_max_iterations(4096);
        c.initial_response().unwrap();
        assert!(c.challenge(v.server_first.as_bytes()).is_ok());
    }

    #[test]
    fn bad_server_signature() {
        for v in &VECTORS {
            let wrong = format!("v={}", BASE64.encode(vec![0x55; v.hash.output_len()]));
            let short = "v=AAAA".to_owned();
            for bad in [wrong, short] {
                // In the outcome.
                let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
                c.initial_response().unwrap();
                c.challenge(v.server_first.as_bytes()).unwrap();
                assert!(
                    matches!(c.outcome_ok(Some(bad.as_bytes())), Err(SaslError::Auth(_))),
                    "{bad}"
                );
                assert!(!c.server_verified());
                // In a challenge.
                let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
                c.initial_response().unwrap();
                c.challenge(v.server_first.as_bytes()).unwrap();
                assert!(
                    matches!(c.challenge(bad.as_bytes()), Err(SaslError::Auth(_))),
                    "{bad}"
                );
                assert!(matches!(c.outcome_ok(None), Err(SaslError::Auth(_))));
            }
            // The signature of the other RFC vector (right length for neither or wrong key).
            let mut c = ScramClient::new(v.hash, "user", "wrong", v.client_nonce);
            c.initial_response().unwrap();
            c.challenge(v.server_first.as_bytes()).unwrap();
            assert!(matches!(
                c.outcome_ok(Some(v.server_final.as_bytes())),
                Err(SaslError::Auth(_))
            ));
        }
    }

    #[test]
    fn malformed_server_final() {
        let v = &VECTORS[1];
        for bad in [
            "",
            "garbage",
            "x=abc",
            "v=!!!",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
            "\u{0}",
        ] {
            let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
            c.initial_response().unwrap();
            c.challenge(v.server_first.as_bytes()).unwrap();
            let r = c.challenge(bad.as_bytes());
            assert!(is_protocol(&r), "{bad:?} -> {r:?}");
        }
        // A correct signature followed by a malformed extension.
        let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
        c.initial_response().unwrap();
        c.challenge(v.server_first.as_bytes()).unwrap();
        assert!(is_protocol(&c.outcome_ok(Some(
            format!("{},junk", v.server_final).as_bytes()
        ))));
    }

    #[test]
    fn server_error_attribute() {
        let v = &VECTORS[0];
        // e= as the server-final message, in the outcome or a challenge.
        let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
        c.initial_response().unwrap();
        c.challenge(v.server_first.as_bytes()).unwrap();
        let err = c.outcome_ok(Some(b"e=invalid-proof")).unwrap_err();
        assert_eq!(
            err,
            SaslError::Auth("server reported error: invalid-proof".into())
        );

        let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
        c.initial_response().unwrap();
        c.challenge(v.server_first.as_bytes()).unwrap();
        assert!(matches!(
            c.challenge(b"e=other-error"),
            Err(SaslError::Auth(_))
        ));

        // e= instead of server-first.
        let mut c = client_after_first(ScramHash::Sha1);
        assert!(matches!(
            c.challenge(b"e=unknown-user"),
            Err(SaslError::Auth(_))
        ));

        // Long error values are truncated in the message.
        let mut c = client_after_first(ScramHash::Sha1);
        let long = format!("e={}", "x".repeat(10_000));
        let err = c.challenge(long.as_bytes()).unwrap_err();
        assert!(err.message().len() < 400);
    }

    #[test]
    fn client_state_errors() {
        // Success before anything happened.
        let mut c = client(ScramHash::Sha256, "alice", "correct horse");
        assert!(matches!(c.outcome_ok(None), Err(SaslError::Auth(_))));
        // Success after client-first only.
        let mut c = client_after_first(ScramHash::Sha256);
        assert!(matches!(
            c.outcome_ok(Some(b"v=AAAA")),
            Err(SaslError::Auth(_))
        ));
        // Success without the server signature.
        let v = &VECTORS[1];
        let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
        c.initial_response().unwrap();
        c.challenge(v.server_first.as_bytes()).unwrap();
        assert!(matches!(c.outcome_ok(Some(b"")), Err(SaslError::Auth(_))));
        // Non-empty challenge before client-first; second initial response;
        // challenge after verification.
        let mut c = client(ScramHash::Sha256, "alice", "correct horse");
        assert!(is_protocol(&c.challenge(b"r=x")));
        let mut c = client_after_first(ScramHash::Sha256);
        assert!(is_protocol(&c.initial_response()));
        let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
        c.initial_response().unwrap();
        c.challenge(v.server_first.as_bytes()).unwrap();
        c.challenge(v.server_final.as_bytes()).unwrap();
        assert!(is_protocol(&c.challenge(v.server_final.as_bytes())));
    }

    #[test]
    fn client_config_errors() {
        for nonce in ["", "has,comma", "has space", "é"] {
            let mut c = ScramClient::new(ScramHash::Sha256, "alice", "pw", nonce);
            assert!(
                matches!(c.initial_response(), Err(SaslError::Sys(_))),
                "{nonce:?}"
            );
        }
        let mut c = ScramClient::new(ScramHash::Sha256, "", "pw", "n");
        assert!(matches!(c.initial_response(), Err(SaslError::Sys(_))));
        let mut c = ScramClient::new(ScramHash::Sha256, "a\0b", "pw", "n");
        assert!(matches!(c.initial_response(), Err(SaslError::Sys(_))));
    }

    #[test]
    fn server_state_and_config_errors() {
        let mut s = server(ScramHash::Sha256);
        assert!(matches!(
            s.response(b"n,,n=alice,r=abc"),
            ServerStep::Failure(SaslError::Protocol(_))
        ));
        let mut s = server(ScramHash::Sha256);
        assert!(matches!(
            s.start(Some(b"n,,n=alice,r=abc"), None),
            ServerStep::Challenge(_)
        ));
        assert!(matches!(
            s.start(Some(b"n,,n=alice,r=abc"), None),
            ServerStep::Failure(SaslError::Protocol(_))
        ));

        // Final-in-challenge: the acknowledgement must be empty.
        let v = &VECTORS[1];
        let mut s =
            ScramServer::new(v.hash, rfc_users(v), v.server_suffix).with_final_in_challenge(true);
        s.start(Some(v.client_first.as_bytes()), None);
        assert!(matches!(
            s.response(v.client_final.as_bytes()),
            ServerStep::Challenge(_)
        ));
        assert!(matches!(
            s.response(b"x"),
            ServerStep::Failure(SaslError::Protocol(_))
        ));

        // Invalid server nonce suffix.
        for suffix in ["", "a,b", "a b"] {
            let mut s = ScramServer::new(ScramHash::Sha256, users(), suffix);
            assert!(matches!(
                s.start(Some(b"n,,n=alice,r=abc"), None),
                ServerStep::Failure(SaslError::Sys(_))
            ));
        }

        // Invalid stored credentials.
        struct Broken;
        impl Authenticator for Broken {
            fn scram_credentials(&self, user: &str, hash: ScramHash) -> Option<ScramCredentials> {
                let mut c = ScramCredentials::derive(hash, "pw", b"salt", 1);
                match user {
                    "zero" => c.iterations = 0,
                    "short" => c.stored_key.truncate(3),
                    _ => c.server_key.clear(),
                }
                Some(c)
            }
        }
        for user in ["zero", "short", "other"] {
            let mut s = ScramServer::new(ScramHash::Sha1, Arc::new(Broken), "sfx");
            let msg = format!("n,,n={user},r=abc");
            assert!(
                matches!(
                    s.start(Some(msg.as_bytes()), None),
                    ServerStep::Failure(SaslError::Sys(_))
                ),
                "{user}"
            );
        }

        // The default Authenticator knows no SCRAM users.
        struct Nobody;
        impl Authenticator for Nobody {}
        let mut s = ScramServer::new(ScramHash::Sha256, Arc::new(Nobody), "sfx");
        assert!(matches!(
            s.start(Some(b"n,,n=alice,r=abc"), None),
            ServerStep::Failure(SaslError::Auth(_))
        ));
    }

    #[test]
    fn credentials() {
        let v = &VECTORS[0];
        let salt = BASE64.decode(v.salt_b64).unwrap();
        let creds = ScramCredentials::derive(ScramHash::Sha1, "pencil", &salt, 4096);
        assert_eq!(creds.iterations, 4096);
        assert_eq!(creds.stored_key.len(), 20);
        assert_eq!(creds.server_key.len(), 20);
        assert!(creds.verify_password(ScramHash::Sha1, "pencil"));
        assert!(!creds.verify_password(ScramHash::Sha1, "pencil2"));
        assert!(!creds.verify_password(ScramHash::Sha256, "pencil"));
        assert_eq!(
            ScramCredentials::derive(ScramHash::Sha256, "x", b"s", 0).iterations,
            1
        );
    }

    #[test]
    fn hash_names() {
        assert_eq!(
            ScramHash::from_mechanism_name("SCRAM-SHA-256"),
            Some(ScramHash::Sha256)
        );
        assert_eq!(
            ScramHash::from_mechanism_name("scram-sha-1"),
            Some(ScramHash::Sha1)
        );
        assert_eq!(ScramHash::from_mechanism_name("SCRAM-SHA-256-PLUS"), None);
        assert_eq!(ScramHash::Sha1.mechanism_name(), SCRAM_SHA_1);
        assert_eq!(ScramHash::Sha256.output_len(), 32);
        assert_eq!(nonce_from_bytes(&[0xfb; 3]), "+/v7");
    }

    #[test]
    fn debug_redaction() {
        let password = "pencil-SECRET-42";
        let mut c = ScramClient::new(ScramHash::Sha256, "alice", password, "nonce");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(password), "{dbg}");
        assert!(dbg.contains("alice"));
        c.initial_response().unwrap();
        c.challenge(b"r=noncexyz,s=c2FsdA==,i=1").unwrap();
        assert!(!format!("{c:?}").contains(password));

        let creds = ScramCredentials::derive(ScramHash::Sha256, password, b"salt", 2);
        let dbg = format!("{creds:?}");
        assert!(!dbg.contains(password));
        for key in [&creds.stored_key, &creds.server_key] {
            assert!(!dbg.contains(&BASE64.encode(key)), "{dbg}");
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            assert!(!dbg.contains(&hex));
            assert!(!dbg.contains(&format!("{key:?}")));
        }

        let users = StaticUsers::new().with_user("alice", password, b"salt", 2);
        assert!(!format!("{users:?}").contains(password));
        let s = ScramServer::new(ScramHash::Sha256, Arc::new(users), "sfx");
        assert!(!format!("{s:?}").contains(password));
    }

    #[test]
    fn mechanisms_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<ScramClient>();
        assert_send::<ScramServer>();
    }

    proptest! {
        #[test]
        fn server_never_panics_on_client_first(msg in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut s = server(ScramHash::Sha256);
            let _ = s.start(Some(&msg), None);
            let _ = s.response(&msg);
        }

        #[test]
        fn server_never_panics_on_client_final(suffix in "[ -~]{0,80}") {
            let (mut s, nonce) = server_awaiting_final(ScramHash::Sha1, "n");
            let msg = format!("c=biws,r={nonce}{suffix}");
            let _ = s.response(msg.as_bytes());
            let (mut s, _) = server_awaiting_final(ScramHash::Sha1, "n");
            let _ = s.response(suffix.as_bytes());
        }

        #[test]
        fn client_never_panics_on_server_messages(suffix in "[ -~]{0,60}", raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut c = client_after_first(ScramHash::Sha256);
            let _ = c.challenge(format!("r=clientnonce123{suffix}").as_bytes());
            let mut c = client_after_first(ScramHash::Sha256);
            let _ = c.challenge(&raw);
            let _ = c.outcome_ok(Some(&raw));
        }

        #[test]
        fn saslname_round_trips(name in "\\PC{1,20}") {
            prop_assume!(!name.contains('\0'));
            prop_assert_eq!(unescape_saslname(&escape_saslname(&name)).unwrap(), name);
        }
    }
}
