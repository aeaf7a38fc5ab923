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
mod tests;
