//! Connect options and Proton's `connect.json` configuration file.

use core::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::reconnect::{Reconnect, ReconnectLimits};
use super::url::{parse_port, Scheme, Url, UrlError};

/// The smallest max-frame-size AMQP 1.0 allows (`MIN-MAX-FRAME-SIZE`).
pub const MIN_MAX_FRAME_SIZE: u32 = 512;

/// Where a certificate, CA bundle or key comes from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PemSource {
    /// A path to a PEM file (what Proton's `connect.json` names).
    File(String),
    /// PEM text held in memory.
    Pem(String),
}

impl fmt::Debug for PemSource {
    /// Paths are shown; in-memory PEM text (which may be a private key) is not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File(path) => f.debug_tuple("File").field(path).finish(),
            PemSource::Pem(pem) => write!(f, "Pem(<{} bytes>)", pem.len()),
        }
    }
}

/// How a TLS client checks the server (Proton's `SSLDomain` peer-authentication modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VerifyMode {
    /// Require a certificate chain to a trusted CA and a host name matching the SNI / virtual
    /// host / URL host (Proton's client default, `VERIFY_PEER_NAME`).
    #[default]
    VerifyPeerName,
    /// Require a certificate chain to a trusted CA, without checking the name (`VERIFY_PEER`).
    VerifyPeer,
    /// No verification at all (`ANONYMOUS_PEER`; `"verify": false` in `connect.json`).
    AnonymousPeer,
}

/// TLS settings as data; an adapter turns them into its TLS library's configuration.
///
/// ```
/// use amqp_engine::messaging::{TlsOptions, VerifyMode};
///
/// let tls = TlsOptions::new()
///     .ca_file("/etc/pki/ca.pem")
///     .client_cert_file("client.pem")
///     .client_key_pem("-----BEGIN PRIVATE KEY-----\n...")
///     .verify(VerifyMode::VerifyPeer);
/// assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TlsOptions {
    /// Trusted CA certificates; `None` means the platform's roots.
    pub ca: Option<PemSource>,
    /// Client certificate (chain) for mutual TLS.
    pub client_cert: Option<PemSource>,
    /// Private key of the client certificate.
    pub client_key: Option<PemSource>,
    /// How the server is checked.
    pub verify: VerifyMode,
}

impl TlsOptions {
    /// Defaults: platform roots, no client certificate, [`VerifyMode::VerifyPeerName`].
    pub fn new() -> TlsOptions {
        TlsOptions::default()
    }

    /// Trusts the CA certificates in this PEM file.
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<String>) -> TlsOptions {
        self.ca = Some(PemSource::File(path.into()));
        self
    }

    /// Trusts the CA certificates in this PEM text.
    #[must_use]
    pub fn ca_pem(mut self, pem: impl Into<String>) -> TlsOptions {
        self.ca = Some(PemSource::Pem(pem.into()));
        self
    }

    /// Presents the client certificate in this PEM file.
    #[must_use]
    pub fn client_cert_file(mut self, path: impl Into<String>) -> TlsOptions {
        self.client_cert = Some(PemSource::File(path.into()));
        self
    }

    /// Presents the client certificate in this PEM text.
    #[must_use]
    pub fn client_cert_pem(mut self, pem: impl Into<String>) -> TlsOptions {
        self.client_cert = Some(PemSource::Pem(pem.into()));
        self
    }

    /// Uses the client private key in this PEM file.
    #[must_use]
    pub fn client_key_file(mut self, path: impl Into<String>) -> TlsOptions {
        self.client_key = Some(PemSource::File(path.into()));
        self
    }

    /// Uses the client private key in this PEM text (never shown by `Debug`).
    #[must_use]
    pub fn client_key_pem(mut self, pem: impl Into<String>) -> TlsOptions {
        self.client_key = Some(PemSource::Pem(pem.into()));
        self
    }

    /// Sets how the server is checked.
    #[must_use]
    pub fn verify(mut self, mode: VerifyMode) -> TlsOptions {
        self.verify = mode;
        self
    }
}

/// Why options or a configuration file were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsError {
    /// Both `url` and `urls` were given (Proton: "it is an error to use the url and urls
    /// options at the same time").
    UrlAndUrls,
    /// `max_frame_size` is below AMQP's minimum of 512.
    MaxFrameSizeTooSmall(u32),
    /// The configuration file is not valid JSON (after comments are removed).
    InvalidJson {
        /// 1-based line of the error (0 when at the end of input).
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser said.
        message: String,
    },
    /// The configuration file's top level is not a JSON object.
    ConfigNotObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A configuration key holds a value of the wrong JSON type.
    ConfigType {
        /// The key, dotted for nested ones (`sasl.mechanisms`).
        key: &'static str,
        /// The JSON type(s) allowed.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A configuration key has the right type but an unusable value.
    InvalidConfigValue {
        /// The key, dotted for nested ones.
        key: &'static str,
        /// Why the value is refused.
        reason: String,
    },
    /// A `tls` object is given while the scheme is not `amqps` (an error by Proton's
    /// connect-config documentation and its C++ binding).
    TlsWithoutAmqps,
    /// The URL given to [`ConnectOptions::url`] does not parse.
    Url(UrlError),
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::UrlAndUrls => {
                f.write_str("the url and urls options cannot be used together")
            }
            OptionsError::MaxFrameSizeTooSmall(n) => {
                write!(
                    f,
                    "max_frame_size {n} is below the AMQP minimum of {MIN_MAX_FRAME_SIZE}"
                )
            }
            OptionsError::InvalidJson {
                line,
                column,
                message,
            } => write!(
                f,
                "connection configuration: invalid JSON at line {line} column {column}: {message}"
            ),
            OptionsError::ConfigNotObject { found } => write!(
                f,
                "connection configuration: expected a JSON object, found {found}"
            ),
            OptionsError::ConfigType {
                key,
                expected,
                found,
            } => write!(
                f,
                "connection configuration: '{key}' expected {expected}, found {found}"
            ),
            OptionsError::InvalidConfigValue { key, reason } => {
                write!(f, "connection configuration: invalid '{key}': {reason}")
            }
            OptionsError::TlsWithoutAmqps => f.write_str(
                "connection configuration: 'tls' object not allowed unless scheme is \"amqps\"",
            ),
            OptionsError::Url(e) => write!(f, "bad URL: {e}"),
        }
    }
}

impl std::error::Error for OptionsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OptionsError::Url(e) => Some(e),
            _ => None,
        }
    }
}

/// Where a connection goes, as resolved by [`ConnectOptions::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedTargets {
    /// Connect to these URLs, in failover order (one element for the `url` option). Never
    /// empty.
    Urls(Vec<Url>),
    /// Neither `url` nor `urls` was given: read Proton's configuration file (see
    /// [`connect_config_search_paths`], [`parse_connect_config`]; use
    /// [`ConnectConfig::default()`] when no file exists), [`apply`](ConnectConfig::apply) it,
    /// and validate again.
    UseConfig,
}

/// Options for one outgoing connection: Proton's `Container.connect()` keyword arguments.
///
/// Build it with [`ConnectOptions::new`] and the builder methods (named like the fields), or
/// set the public fields directly. Defaults are Proton Python's: reconnect on with
/// [`Backoff`](super::Backoff), SASL enabled, insecure mechanisms allowed (Python's
/// `Container.allow_insecure_mechs = True`), everything else unset.
///
/// Per attempt, Proton takes the user and password from the URL first and from these options
/// second, the AMQP `hostname` from `virtual_host` or else the URL host, and the TLS SNI name
/// from `sni`, else `virtual_host`, else the URL host: see the `effective_*` methods.
///
/// `Debug` never shows the password. Not `Clone`, because a custom reconnect policy is a boxed
/// trait object.
///
/// ```
/// use amqp_engine::messaging::{ConnectOptions, Reconnect};
/// use std::time::Duration;
///
/// let opts = ConnectOptions::new()
///     .url("amqps://broker.example")
///     .reconnect(false)
///     .user("alice")
///     .password("secret")
///     .allowed_mechs("SCRAM-SHA-256 PLAIN")
///     .heartbeat(Duration::from_secs(60));
/// assert_eq!(opts.allowed_mechs_list(), Some(vec!["SCRAM-SHA-256", "PLAIN"]));
/// assert!(matches!(opts.reconnect, Reconnect::Disabled));
/// assert!(!format!("{opts:?}").contains("secret"));
/// # Ok::<(), amqp_engine::messaging::UrlError>(())
/// ```
///
/// [`ConnectOptions`] holds what Proton's `Container.connect(url, urls=…, reconnect=…, user=…,
/// …)` takes, as plain data. [`ConnectOptions::validate`] resolves the targets: one URL, a
/// failover list, or, when neither is given, "read the configuration file", as Proton does.
///
/// The configuration file is never read here: the driver finds it with
/// [`connect_config_search_paths`], reads it, and hands the text to [`parse_connect_config`];
/// [`ConnectConfig::apply`] then fills the options in.
///
/// ```
/// use amqp_engine::messaging::{
///     connect_config_search_paths, parse_connect_config, ConnectConfig, ConnectOptions,
///     ResolvedTargets,
/// };
///
/// let mut opts = ConnectOptions::new().heartbeat(std::time::Duration::from_secs(30));
/// if let ResolvedTargets::UseConfig = opts.validate()? {
///     // The driver looks at these paths in order and reads the first file that exists.
///     let paths = connect_config_search_paths(None, Some("/home/alice"));
///     assert_eq!(paths[0], "./connect.json");
///     let text = r#"{ "scheme": "amqp", "host": "broker", // comments are allowed
///                     "user": "alice", "password": "secret" }"#;
///     let config = parse_connect_config(text)?; // or ConnectConfig::default() if no file
///     config.apply(&mut opts);
/// }
/// let ResolvedTargets::Urls(urls) = opts.validate()? else { unreachable!() };
/// assert_eq!(urls[0].to_string(), "amqp://broker:5672");
/// assert_eq!(opts.user.as_deref(), Some("alice"));
/// # Ok::<(), amqp_engine::messaging::OptionsError>(())
/// ```
#[non_exhaustive]
pub struct ConnectOptions {
    /// The URL to connect to. Exclusive with `urls`.
    pub url: Option<Url>,
    /// Why the text given to [`url`](Self::url) is not a URL; reported by
    /// [`validate`](Self::validate).
    url_error: Option<UrlError>,
    /// Failover URLs, tried in order. Exclusive with `url`.
    pub urls: Vec<Url>,
    /// Reconnect policy; on by default.
    pub reconnect: Reconnect,
    /// Limits on each reconnect process (not in Proton; none by default).
    pub reconnect_limits: ReconnectLimits,
    /// User to authenticate as, when the URL has none.
    pub user: Option<String>,
    /// Password, when the URL has none. Never shown by `Debug`.
    pub password: Option<String>,
    /// Space-separated SASL mechanism names allowed; `None` lets the library choose.
    pub allowed_mechs: Option<String>,
    /// Whether mechanisms that send clear-text passwords (PLAIN) may be used without TLS.
    /// Default `true`, as in Proton Python.
    pub allow_insecure_mechs: bool,
    /// Whether a SASL layer is used. Default `true`.
    pub sasl_enabled: bool,
    /// AMQP `open.hostname` to send; the URL host when unset.
    pub virtual_host: Option<String>,
    /// Service name of host-based SASL mechanisms (Proton's and Cyrus's `sasl_service`):
    /// GSSAPI authenticates to `SERVICE@HOST`, HOST being `virtual_host` or the URL host.
    /// `amqp` when unset.
    pub sasl_service: Option<String>,
    /// TLS server name indication; `virtual_host`, else the URL host, when unset.
    pub sni: Option<String>,
    /// Idle timeout to offer (Proton's `heartbeat`); `None` or zero means none.
    pub heartbeat: Option<Duration>,
    /// Largest frame to accept; at least 512.
    pub max_frame_size: Option<u32>,
    /// AMQP container id for this connection; the container's own when unset.
    pub container_id: Option<String>,
    /// Capabilities offered to the peer (symbols).
    pub offered_capabilities: Vec<String>,
    /// Capabilities desired from the peer (symbols).
    pub desired_capabilities: Vec<String>,
    /// Connection properties (symbol keys, string values).
    pub properties: Vec<(String, String)>,
    /// TLS settings for `amqps` URLs; `None` means [`TlsOptions::default()`].
    pub tls: Option<TlsOptions>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            url: None,
            url_error: None,
            urls: Vec::new(),
            reconnect: Reconnect::Default,
            reconnect_limits: ReconnectLimits::default(),
            user: None,
            password: None,
            allowed_mechs: None,
            allow_insecure_mechs: true,
            sasl_enabled: true,
            virtual_host: None,
            sasl_service: None,
            sni: None,
            heartbeat: None,
            max_frame_size: None,
            container_id: None,
            offered_capabilities: Vec::new(),
            desired_capabilities: Vec::new(),
            properties: Vec::new(),
            tls: None,
        }
    }
}

impl ConnectOptions {
    /// Proton's defaults (same as [`ConnectOptions::default`]).
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// Sets the URL to connect to.
    #[must_use]
    pub fn url<U>(mut self, url: U) -> ConnectOptions
    where
        U: TryInto<Url>,
        U::Error: Into<UrlError>,
    {
        match url.try_into() {
            Ok(url) => self.url = Some(url),
            Err(e) => self.url_error = Some(e.into()),
        }
        self
    }

    /// Sets the failover URLs.
    #[must_use]
    pub fn urls(mut self, urls: impl IntoIterator<Item = Url>) -> ConnectOptions {
        self.urls = urls.into_iter().collect();
        self
    }

    /// Sets the reconnect policy: `false`, `true`, a [`Backoff`](super::Backoff), any
    /// [`ReconnectPolicy`](super::ReconnectPolicy) of the user's, or a [`Reconnect`].
    #[must_use]
    pub fn reconnect(mut self, reconnect: impl Into<Reconnect>) -> ConnectOptions {
        self.reconnect = reconnect.into();
        self
    }

    /// Sets limits on each reconnect process.
    #[must_use]
    pub fn reconnect_limits(mut self, limits: ReconnectLimits) -> ConnectOptions {
        self.reconnect_limits = limits;
        self
    }

    /// Sets the user.
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> ConnectOptions {
        self.user = Some(user.into());
        self
    }

    /// Sets the password.
    #[must_use]
    pub fn password(mut self, password: impl Into<String>) -> ConnectOptions {
        self.password = Some(password.into());
        self
    }

    /// Sets the allowed SASL mechanisms (space separated, e.g. `"SCRAM-SHA-256 PLAIN"`).
    #[must_use]
    pub fn allowed_mechs(mut self, mechs: impl Into<String>) -> ConnectOptions {
        self.allowed_mechs = Some(mechs.into());
        self
    }

    /// Sets whether clear-text password mechanisms may be used without TLS.
    #[must_use]
    pub fn allow_insecure_mechs(mut self, allow: bool) -> ConnectOptions {
        self.allow_insecure_mechs = allow;
        self
    }

    /// Sets whether a SASL layer is used.
    #[must_use]
    pub fn sasl_enabled(mut self, enabled: bool) -> ConnectOptions {
        self.sasl_enabled = enabled;
        self
    }

    /// Sets the AMQP virtual host (`open.hostname`).
    #[must_use]
    pub fn virtual_host(mut self, host: impl Into<String>) -> ConnectOptions {
        self.virtual_host = Some(host.into());
        self
    }

    /// Sets the SASL service name (GSSAPI's `SERVICE@HOST`; `amqp` by default).
    #[must_use]
    pub fn sasl_service(mut self, service: impl Into<String>) -> ConnectOptions {
        self.sasl_service = Some(service.into());
        self
    }

    /// Sets the TLS SNI host name.
    #[must_use]
    pub fn sni(mut self, host: impl Into<String>) -> ConnectOptions {
        self.sni = Some(host.into());
        self
    }

    /// Sets the heartbeat (idle timeout offered to the peer).
    #[must_use]
    pub fn heartbeat(mut self, heartbeat: Duration) -> ConnectOptions {
        self.heartbeat = Some(heartbeat);
        self
    }

    /// Sets the largest frame to accept.
    #[must_use]
    pub fn max_frame_size(mut self, size: u32) -> ConnectOptions {
        self.max_frame_size = Some(size);
        self
    }

    /// Sets the AMQP container id for this connection.
    #[must_use]
    pub fn container_id(mut self, id: impl Into<String>) -> ConnectOptions {
        self.container_id = Some(id.into());
        self
    }

    /// Sets the capabilities offered to the peer.
    #[must_use]
    pub fn offered_capabilities<S: Into<String>>(
        mut self,
        caps: impl IntoIterator<Item = S>,
    ) -> ConnectOptions {
        self.offered_capabilities = caps.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the capabilities desired from the peer.
    #[must_use]
    pub fn desired_capabilities<S: Into<String>>(
        mut self,
        caps: impl IntoIterator<Item = S>,
    ) -> ConnectOptions {
        self.desired_capabilities = caps.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a connection property.
    #[must_use]
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> ConnectOptions {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Sets the TLS settings.
    #[must_use]
    pub fn tls(mut self, tls: TlsOptions) -> ConnectOptions {
        self.tls = Some(tls);
        self
    }

    /// Checks the options and says where to connect.
    ///
    /// * `url` and a non-empty `urls` together: [`OptionsError::UrlAndUrls`].
    /// * `max_frame_size` below 512: [`OptionsError::MaxFrameSizeTooSmall`].
    /// * `url` or `urls`: [`ResolvedTargets::Urls`].
    /// * neither: [`ResolvedTargets::UseConfig`], Proton's "no URL given, read `connect.json`".
    ///
    /// ```
    /// use amqp_engine::messaging::{ConnectOptions, OptionsError, ResolvedTargets, Url};
    ///
    /// let a = Url::parse("amqp://a")?;
    /// let both = ConnectOptions::new().url(a.clone()).urls([a.clone()]);
    /// assert_eq!(both.validate(), Err(OptionsError::UrlAndUrls));
    /// assert_eq!(ConnectOptions::new().validate(), Ok(ResolvedTargets::UseConfig));
    /// assert_eq!(ConnectOptions::new().url(a.clone()).validate(), Ok(ResolvedTargets::Urls(vec![a])));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn validate(&self) -> Result<ResolvedTargets, OptionsError> {
        if let Some(e) = &self.url_error {
            return Err(OptionsError::Url(e.clone()));
        }
        if self.url.is_some() && !self.urls.is_empty() {
            return Err(OptionsError::UrlAndUrls);
        }
        if let Some(size) = self.max_frame_size {
            if size < MIN_MAX_FRAME_SIZE {
                return Err(OptionsError::MaxFrameSizeTooSmall(size));
            }
        }
        Ok(match &self.url {
            Some(url) => ResolvedTargets::Urls(vec![url.clone()]),
            None if self.urls.is_empty() => ResolvedTargets::UseConfig,
            None => ResolvedTargets::Urls(self.urls.clone()),
        })
    }

    /// The allowed mechanism names, split on whitespace; `None` when unset or blank.
    pub fn allowed_mechs_list(&self) -> Option<Vec<&str>> {
        let names: Vec<&str> = self.allowed_mechs.as_deref()?.split_whitespace().collect();
        if names.is_empty() {
            None
        } else {
            Some(names)
        }
    }

    /// The user for an attempt on `url`: the URL's, else the option (Proton's `_connect`).
    pub fn effective_user<'a>(&'a self, url: &'a Url) -> Option<&'a str> {
        url.user().or(non_empty(&self.user))
    }

    /// The password for an attempt on `url`: the URL's, else the option.
    pub fn effective_password<'a>(&'a self, url: &'a Url) -> Option<&'a str> {
        url.password().or(non_empty(&self.password))
    }

    /// The AMQP `open.hostname` for an attempt on `url`: `virtual_host` when non-empty, else
    /// the URL host.
    pub fn effective_virtual_host<'a>(&'a self, url: &'a Url) -> &'a str {
        non_empty(&self.virtual_host).unwrap_or(url.host())
    }

    /// The TLS SNI / peer name for an attempt on `url`: `sni`, else `virtual_host`, else the
    /// URL host (Proton: `ssl_sni or virtual_host or url.host`).
    pub fn effective_sni<'a>(&'a self, url: &'a Url) -> &'a str {
        non_empty(&self.sni)
            .or(non_empty(&self.virtual_host))
            .unwrap_or(url.host())
    }

    /// The idle timeout to offer: `heartbeat` unless unset or zero (Proton: `if heartbeat:`).
    pub fn effective_heartbeat(&self) -> Option<Duration> {
        self.heartbeat.filter(|d| !d.is_zero())
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("url", &self.url)
            .field("urls", &self.urls)
            .field("reconnect", &self.reconnect)
            .field("reconnect_limits", &self.reconnect_limits)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("allowed_mechs", &self.allowed_mechs)
            .field("allow_insecure_mechs", &self.allow_insecure_mechs)
            .field("sasl_enabled", &self.sasl_enabled)
            .field("virtual_host", &self.virtual_host)
            .field("sasl_service", &self.sasl_service)
            .field("sni", &self.sni)
            .field("heartbeat", &self.heartbeat)
            .field("max_frame_size", &self.max_frame_size)
            .field("container_id", &self.container_id)
            .field("offered_capabilities", &self.offered_capabilities)
            .field("desired_capabilities", &self.desired_capabilities)
            .field("properties", &self.properties)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The `sasl` object of `connect.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// `sasl.enable` (Proton's documentation and C++) or `sasl.enabled` (Proton Python);
    /// default `true`.
    pub enabled: bool,
    /// `sasl.mechanisms`: a space-separated string or an array of names, stored joined by
    /// spaces; `None` when absent or empty.
    pub mechanisms: Option<String>,
    /// `sasl.allow_insecure` (read by Proton C++); `None` when absent.
    pub allow_insecure: Option<bool>,
}

impl Default for SaslConfig {
    fn default() -> SaslConfig {
        SaslConfig {
            enabled: true,
            mechanisms: None,
            allow_insecure: None,
        }
    }
}

/// Proton's `connect.json`, parsed. See [`parse_connect_config`] for the schema.
///
/// [`ConnectConfig::default()`] is what Proton uses when no file exists (an empty object):
/// `amqps://localhost:5671`, SASL enabled, TLS verifying the peer name.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectConfig {
    /// Scheme, host and port (no credentials, no address).
    pub url: Url,
    /// `user`; `None` when absent or empty.
    pub user: Option<String>,
    /// `password`; `None` when absent or empty. Never shown by `Debug`.
    pub password: Option<String>,
    /// The `sasl` object.
    pub sasl: SaslConfig,
    /// TLS settings: `Some` exactly when the scheme is `amqps` (from the `tls` object, or
    /// defaults when it is absent).
    pub tls: Option<TlsOptions>,
}

impl Default for ConnectConfig {
    fn default() -> ConnectConfig {
        ConnectConfig {
            url: Url::localhost(Scheme::Amqps),
            user: None,
            password: None,
            sasl: SaslConfig::default(),
            tls: Some(TlsOptions::default()),
        }
    }
}

impl fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("sasl", &self.sasl)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ConnectConfig {
    /// The URL to connect to: `scheme://host:port`, without credentials.
    pub fn to_url(&self) -> Url {
        self.url.clone()
    }

    /// The URL to connect to, consuming the configuration.
    pub fn into_url(self) -> Url {
        self.url
    }

    /// Fills `options` in as Proton's `connect()` does when it falls back to the file. The
    /// configuration overrides what the options say:
    ///
    /// * `url` becomes the configured URL (and `urls` is cleared);
    /// * `user` is replaced when the file has a non-empty user, and `password` is replaced
    ///   when it also has a non-empty password (Proton ignores a password without a user);
    /// * `sasl_enabled` is always set (`true` when the file does not say), as Proton does;
    /// * `allowed_mechs` is replaced when the file names mechanisms;
    /// * `allow_insecure_mechs` is replaced when the file has `sasl.allow_insecure`;
    /// * `tls` is replaced by the file's TLS settings when the scheme is `amqps` (Proton
    ///   builds a fresh `SSLDomain` from the file then).
    ///
    /// ```
    /// use amqp_engine::messaging::{parse_connect_config, ConnectOptions, VerifyMode};
    ///
    /// let config = parse_connect_config(r#"{"user": "bob", "tls": {"verify": false}}"#)?;
    /// let mut opts = ConnectOptions::new().user("alice").sasl_enabled(false);
    /// config.apply(&mut opts);
    /// assert_eq!(opts.url.as_ref().map(|u| u.to_string()).as_deref(), Some("amqps://localhost:5671"));
    /// assert_eq!(opts.user.as_deref(), Some("bob"));
    /// assert!(opts.sasl_enabled);
    /// assert_eq!(opts.tls.map(|t| t.verify), Some(VerifyMode::AnonymousPeer));
    /// # Ok::<(), amqp_engine::messaging::OptionsError>(())
    /// ```
    pub fn apply(self, options: &mut ConnectOptions) {
        let is_tls = self.url.is_tls();
        options.url = Some(self.url);
        options.urls.clear();
        if let Some(user) = self.user {
            options.user = Some(user);
            if let Some(password) = self.password {
                options.password = Some(password);
            }
        }
        options.sasl_enabled = self.sasl.enabled;
        if let Some(mechs) = self.sasl.mechanisms {
            options.allowed_mechs = Some(mechs);
        }
        if let Some(allow) = self.sasl.allow_insecure {
            options.allow_insecure_mechs = allow;
        }
        if is_tls {
            options.tls = self.tls;
        }
    }
}

/// The files Proton looks at for `connect.json`, in order; the first that exists is used.
///
/// The caller passes the environment: `env_messaging_connect_file` is the value of
/// `MESSAGING_CONNECT_FILE`, `home` the value of `HOME`. As in Proton, when
/// `MESSAGING_CONNECT_FILE` is set (and non-empty) it is the **only** candidate: Proton does not
/// fall back to the other locations when that file is missing. Otherwise the candidates are
/// `./connect.json`, `$HOME/.config/messaging/connect.json` (when `home` is known and
/// non-empty) and `/etc/messaging/connect.json`. When no candidate exists, Proton behaves as
/// for an empty object: use [`ConnectConfig::default()`].
///
/// ```
/// use amqp_engine::messaging::connect_config_search_paths;
///
/// assert_eq!(
///     connect_config_search_paths(None, Some("/home/alice")),
///     ["./connect.json", "/home/alice/.config/messaging/connect.json", "/etc/messaging/connect.json"],
/// );
/// assert_eq!(connect_config_search_paths(Some("/tmp/c.json"), Some("/home/alice")), ["/tmp/c.json"]);
/// ```
pub fn connect_config_search_paths(
    env_messaging_connect_file: Option<&str>,
    home: Option<&str>,
) -> Vec<String> {
    if let Some(file) = env_messaging_connect_file.filter(|f| !f.is_empty()) {
        return vec![file.to_owned()];
    }
    let mut paths = vec!["./connect.json".to_owned()];
    if let Some(home) = home.filter(|h| !h.is_empty()) {
        paths.push(format!(
            "{}/.config/messaging/connect.json",
            home.trim_end_matches('/')
        ));
    }
    paths.push("/etc/messaging/connect.json".to_owned());
    paths
}

/// Removes `//` line comments and `/* */` block comments outside strings, each replaced by one
/// space, as Proton Python's `_strip_json_comments` does. String literals (in double or single
/// quotes, with backslash escapes) are kept verbatim; an unterminated block comment is kept as
/// text (so the JSON parser reports it).
///
/// ```
/// use amqp_engine::messaging::strip_json_comments;
///
/// assert_eq!(strip_json_comments("{\"a\": \"//x\"} // c"), "{\"a\": \"//x\"}  ");
/// assert_eq!(strip_json_comments("[1,/* two */2]"), "[1, 2]");
/// ```
pub fn strip_json_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            out.push(' ');
            rest = &rest[end..];
        } else if rest.starts_with("/*") {
            if let Some(end) = rest[2..].find("*/") {
                out.push(' ');
                rest = &rest[2 + end + 2..];
            } else {
                out.push('/');
                rest = &rest[1..];
            }
        } else if c == '"' || c == '\'' {
            let len = string_literal_len(rest, c);
            out.push_str(&rest[..len]);
            rest = &rest[len..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Length in bytes of the string literal opening `text` with `quote`, or of `text` when it is
/// unterminated.
fn string_literal_len(text: &str, quote: char) -> usize {
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == quote {
            return i + c.len_utf8();
        }
    }
    text.len()
}

/// The JSON type name of a value, for [`OptionsError::ConfigType`].
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong_type(key: &'static str, expected: &'static str, v: &Value) -> OptionsError {
    OptionsError::ConfigType {
        key,
        expected,
        found: type_name(v),
    }
}

/// A key's value as the schema wants it (`Ok`), or whatever JSON stood there instead, kept to
/// name its type in the error. JSON `null` becomes `None` through the surrounding `Option`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Typed<T> {
    Ok(T),
    Wrong(Value),
}

impl<T> Typed<T> {
    fn check(
        v: Option<Typed<T>>,
        key: &'static str,
        expected: &'static str,
    ) -> Result<Option<T>, OptionsError> {
        match v {
            None => Ok(None),
            Some(Typed::Ok(t)) => Ok(Some(t)),
            Some(Typed::Wrong(v)) => Err(wrong_type(key, expected, &v)),
        }
    }
}

/// The top level of `connect.json`: an object, or anything else (an error naming its type).
#[derive(Deserialize)]
#[serde(untagged)]
enum ConfigRoot {
    Object(Box<ConfigFile>),
    Other(Value),
}

/// `connect.json`'s keys (unknown keys are ignored).
#[derive(Deserialize)]
struct ConfigFile {
    scheme: Option<Typed<String>>,
    host: Option<Typed<String>>,
    port: Option<ConfigPort>,
    user: Option<Typed<String>>,
    password: Option<Typed<String>>,
    sasl: Option<Typed<SaslFile>>,
    tls: Option<Typed<TlsFile>>,
}

/// `"port"`: a number or a string (digits, `"amqp"`, `"amqps"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum ConfigPort {
    Number(serde_json::Number),
    Text(String),
    Wrong(Value),
}

/// The `"sasl"` object.
#[derive(Deserialize)]
struct SaslFile {
    enable: Option<Typed<bool>>,
    enabled: Option<Typed<bool>>,
    mechanisms: Option<Mechanisms>,
    allow_insecure: Option<Typed<bool>>,
}

/// `"sasl.mechanisms"`: `"A B"` or `["A", "B"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Mechanisms {
    Text(String),
    List(Vec<Typed<String>>),
    Wrong(Value),
}

/// The `"tls"` object.
#[derive(Deserialize)]
struct TlsFile {
    ca: Option<Typed<String>>,
    cert: Option<Typed<String>>,
    key: Option<Typed<String>>,
    verify: Option<Typed<bool>>,
}

fn owned_non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

fn non_empty_string(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Parses Proton's `connect.json` text (handed in by the caller; comments allowed).
///
/// Schema (all keys optional, unknown keys ignored, `null` means absent):
///
/// ```text
/// {
///   "scheme": "amqps",    // "amqp" or "amqps"; default "amqps"
///   "host": "localhost",  // name, IPv4, or IPv6 (with or without brackets); default "localhost"
///   "port": "amqps",      // number, or string: digits, "amqp" or "amqps"; default: the scheme's
///   "user": null,         // string
///   "password": null,     // string; used only together with "user"
///   "sasl": {
///     "enable": true,           // boolean ("enabled" is accepted too, as Proton Python reads)
///     "mechanisms": null,       // "A B" or ["A", "B"]
///     "allow_insecure": false   // boolean
///   },
///   "tls": {                    // only allowed when scheme is "amqps"
///     "ca": null,               // path of trusted CA certificates
///     "cert": null,             // path of the client certificate
///     "key": null,              // path of the client private key
///     "verify": true            // false: no peer verification (ANONYMOUS_PEER)
///   }
/// }
/// ```
///
/// Sources checked: Proton's "Connection Configuration" document (`connect-config.md`),
/// Python's `Container.connect()`/`_get_default_config()`/`_strip_json_comments()`
/// (`proton/_reactor.py`) and C++'s `connect_config.cpp`. Where they differ, this follows the
/// document and C++ for key names and type errors (`sasl.enable`, `tls` only with `amqps`,
/// `mechanisms` as string or array), and accepts Python's `sasl.enabled` as well (a conflicting
/// pair is an error).
///
/// ```
/// use amqp_engine::messaging::{parse_connect_config, OptionsError, Scheme};
///
/// let config = parse_connect_config(r#"{ "scheme": "amqp", "host": "::1", "port": 5673 }"#)?;
/// assert_eq!(config.url.scheme(), Scheme::Amqp);
/// assert_eq!(config.url.host_port(), "[::1]:5673");
/// assert!(config.tls.is_none());
///
/// assert!(matches!(parse_connect_config("{"), Err(OptionsError::InvalidJson { .. })));
/// assert_eq!(
///     parse_connect_config(r#"{ "scheme": "amqp", "tls": {} }"#),
///     Err(OptionsError::TlsWithoutAmqps),
/// );
/// # Ok::<(), OptionsError>(())
/// ```
pub fn parse_connect_config(json: &str) -> Result<ConnectConfig, OptionsError> {
    let stripped = strip_json_comments(json);
    let root: ConfigRoot =
        serde_json::from_str(&stripped).map_err(|e| OptionsError::InvalidJson {
            line: e.line(),
            column: e.column(),
            message: json_error_message(&e),
        })?;
    let root = match root {
        ConfigRoot::Object(file) => file,
        ConfigRoot::Other(v) => {
            return Err(OptionsError::ConfigNotObject {
                found: type_name(&v),
            })
        }
    };

    let scheme = match Typed::check(root.scheme, "scheme", "string")?.as_deref() {
        None => Scheme::Amqps,
        Some("amqp") => Scheme::Amqp,
        Some("amqps") => Scheme::Amqps,
        Some(_) => {
            return Err(OptionsError::InvalidConfigValue {
                key: "scheme",
                reason: "must be \"amqp\" or \"amqps\"".to_owned(),
            })
        }
    };

    let port = match root.port {
        None => None,
        Some(ConfigPort::Text(s)) => {
            Some(
                parse_port(&s).map_err(|e| OptionsError::InvalidConfigValue {
                    key: "port",
                    reason: e.to_string(),
                })?,
            )
        }
        Some(ConfigPort::Number(n)) => {
            let port = n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| OptionsError::InvalidConfigValue {
                    key: "port",
                    reason: "must be an integer in 0..=65535".to_owned(),
                })?;
            Some(port)
        }
        Some(ConfigPort::Wrong(v)) => return Err(wrong_type("port", "string or number", &v)),
    };

    let host = Typed::check(root.host, "host", "string")?;
    let url = Url::new(scheme, host.as_deref().unwrap_or(""), port).map_err(|e| {
        OptionsError::InvalidConfigValue {
            key: "host",
            reason: e.to_string(),
        }
    })?;

    let user = non_empty_string(Typed::check(root.user, "user", "string")?);
    let password = non_empty_string(Typed::check(root.password, "password", "string")?);

    let mut sasl = SaslConfig::default();
    if let Some(obj) = Typed::check(root.sasl, "sasl", "object")? {
        let enable = Typed::check(obj.enable, "sasl.enable", "boolean")?;
        let enabled = Typed::check(obj.enabled, "sasl.enabled", "boolean")?;
        sasl.enabled = match (enable, enabled) {
            (Some(a), Some(b)) if a != b => {
                return Err(OptionsError::InvalidConfigValue {
                    key: "sasl.enable",
                    reason: "conflicts with 'sasl.enabled'".to_owned(),
                })
            }
            (a, b) => a.or(b).unwrap_or(true),
        };
        sasl.mechanisms = match obj.mechanisms {
            None => None,
            Some(Mechanisms::Text(s)) => owned_non_empty(Some(s.trim())),
            Some(Mechanisms::List(items)) => {
                let mut names = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Typed::Ok(s) => names.push(s),
                        Typed::Wrong(v) => {
                            return Err(wrong_type("sasl.mechanisms", "array of strings", &v))
                        }
                    }
                }
                owned_non_empty(Some(names.join(" ").trim()))
            }
            Some(Mechanisms::Wrong(v)) => {
                return Err(wrong_type("sasl.mechanisms", "string or array", &v))
            }
        };
        sasl.allow_insecure = Typed::check(obj.allow_insecure, "sasl.allow_insecure", "boolean")?;
    }

    let tls_obj = Typed::check(root.tls, "tls", "object")?;
    let tls = if scheme.is_tls() {
        let mut tls = TlsOptions::default();
        if let Some(obj) = tls_obj {
            tls.ca =
                non_empty_string(Typed::check(obj.ca, "tls.ca", "string")?).map(PemSource::File);
            tls.client_cert = non_empty_string(Typed::check(obj.cert, "tls.cert", "string")?)
                .map(PemSource::File);
            tls.client_key =
                non_empty_string(Typed::check(obj.key, "tls.key", "string")?).map(PemSource::File);
            if Typed::check(obj.verify, "tls.verify", "boolean")? == Some(false) {
                tls.verify = VerifyMode::AnonymousPeer;
            }
        }
        Some(tls)
    } else if tls_obj.is_some() {
        return Err(OptionsError::TlsWithoutAmqps);
    } else {
        None
    };

    Ok(ConnectConfig {
        url,
        user,
        password,
        sasl,
        tls,
    })
}

/// serde_json's message without its trailing " at line L column C" (kept separately).
fn json_error_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn config(json: &str) -> ConnectConfig {
        match parse_connect_config(json) {
            Ok(c) => c,
            Err(e) => panic!("{json} should parse: {e}"),
        }
    }

    fn config_err(json: &str) -> OptionsError {
        match parse_connect_config(json) {
            Ok(c) => panic!("{json} should fail, got {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn defaults_match_proton() {
        let o = ConnectOptions::default();
        assert!(o.url.is_none() && o.urls.is_empty());
        assert!(matches!(o.reconnect, Reconnect::Default));
        assert_eq!(o.reconnect_limits, ReconnectLimits::default());
        assert!(o.sasl_enabled);
        assert!(o.allow_insecure_mechs);
        assert!(o.user.is_none() && o.password.is_none() && o.allowed_mechs.is_none());
        assert!(o.virtual_host.is_none() && o.sni.is_none() && o.container_id.is_none());
        assert!(o.heartbeat.is_none() && o.max_frame_size.is_none() && o.tls.is_none());
        assert!(o.offered_capabilities.is_empty() && o.desired_capabilities.is_empty());
        assert!(o.properties.is_empty());
        assert_eq!(TlsOptions::default().verify, VerifyMode::VerifyPeerName);
    }

    #[test]
    fn builders_set_fields() {
        let o = ConnectOptions::new()
            .urls([url("amqp://a"), url("amqp://b")])
            .reconnect(false)
            .reconnect_limits(ReconnectLimits::none().with_max_attempts(4))
            .user("u")
            .password("p")
            .allowed_mechs("PLAIN")
            .allow_insecure_mechs(false)
            .sasl_enabled(false)
            .virtual_host("vh")
            .sni("sni.example")
            .heartbeat(Duration::from_secs(5))
            .max_frame_size(4096)
            .container_id("job-processor-3")
            .offered_capabilities(["ANONYMOUS-RELAY"])
            .desired_capabilities(vec![String::from("DELAYED_DELIVERY")])
            .property("product", "amqp-rs")
            .property("version", "0")
            .tls(TlsOptions::new().verify(VerifyMode::VerifyPeer));
        assert_eq!(o.urls.len(), 2);
        assert!(!o.reconnect.is_enabled());
        assert_eq!(o.reconnect_limits.max_attempts, Some(4));
        assert_eq!(o.user.as_deref(), Some("u"));
        assert_eq!(o.password.as_deref(), Some("p"));
        assert_eq!(o.allowed_mechs.as_deref(), Some("PLAIN"));
        assert!(!o.allow_insecure_mechs && !o.sasl_enabled);
        assert_eq!(o.virtual_host.as_deref(), Some("vh"));
        assert_eq!(o.sni.as_deref(), Some("sni.example"));
        assert_eq!(o.heartbeat, Some(Duration::from_secs(5)));
        assert_eq!(o.max_frame_size, Some(4096));
        assert_eq!(o.container_id.as_deref(), Some("job-processor-3"));
        assert_eq!(o.offered_capabilities, ["ANONYMOUS-RELAY"]);
        assert_eq!(o.desired_capabilities, ["DELAYED_DELIVERY"]);
        assert_eq!(o.properties.len(), 2);
        assert_eq!(
            o.tls.as_ref().map(|t| t.verify),
            Some(VerifyMode::VerifyPeer)
        );
        assert!(matches!(
            ConnectOptions::new()
                .reconnect(crate::messaging::Backoff::new())
                .reconnect,
            Reconnect::Custom(_)
        ));
    }

    #[test]
    fn validate_targets() {
        let a = url("amqp://a");
        let b = url("amqp://b");
        assert_eq!(
            ConnectOptions::new().validate(),
            Ok(ResolvedTargets::UseConfig)
        );
        assert_eq!(
            ConnectOptions::new().url(a.clone()).validate(),
            Ok(ResolvedTargets::Urls(vec![a.clone()]))
        );
        assert_eq!(
            ConnectOptions::new()
                .urls([a.clone(), b.clone()])
                .validate(),
            Ok(ResolvedTargets::Urls(vec![a.clone(), b.clone()]))
        );
        assert_eq!(
            ConnectOptions::new()
                .url(a.clone())
                .urls([b.clone()])
                .validate(),
            Err(OptionsError::UrlAndUrls)
        );
        // An empty urls list is the same as none.
        assert_eq!(
            ConnectOptions::new().url(a.clone()).urls([]).validate(),
            Ok(ResolvedTargets::Urls(vec![a.clone()]))
        );
        assert_eq!(
            ConnectOptions::new()
                .url(a.clone())
                .max_frame_size(511)
                .validate(),
            Err(OptionsError::MaxFrameSizeTooSmall(511))
        );
        assert!(ConnectOptions::new()
            .url(a)
            .max_frame_size(512)
            .validate()
            .is_ok());
    }

    #[test]
    fn effective_values_follow_proton_connect() {
        let plain = url("amqp://broker.example");
        let with_creds = url("amqp://urluser:urlpw@broker.example");
        let o = ConnectOptions::new().user("optuser").password("optpw");
        assert_eq!(o.effective_user(&plain), Some("optuser"));
        assert_eq!(o.effective_password(&plain), Some("optpw"));
        assert_eq!(o.effective_user(&with_creds), Some("urluser"));
        assert_eq!(o.effective_password(&with_creds), Some("urlpw"));
        assert_eq!(ConnectOptions::new().effective_user(&plain), None);

        assert_eq!(o.effective_virtual_host(&plain), "broker.example");
        assert_eq!(o.effective_sni(&plain), "broker.example");
        let o = o.virtual_host("vhost");
        assert_eq!(o.effective_virtual_host(&plain), "vhost");
        assert_eq!(o.effective_sni(&plain), "vhost");
        let o = o.sni("sni");
        assert_eq!(o.effective_sni(&plain), "sni");
        assert_eq!(o.effective_virtual_host(&plain), "vhost");
        // Empty strings count as unset, as Proton's truthiness does.
        let o = ConnectOptions::new().virtual_host("").sni("");
        assert_eq!(o.effective_virtual_host(&plain), "broker.example");
        assert_eq!(o.effective_sni(&plain), "broker.example");

        assert_eq!(ConnectOptions::new().effective_heartbeat(), None);
        let zero = ConnectOptions::new().heartbeat(Duration::ZERO);
        assert_eq!(zero.effective_heartbeat(), None);
        let hb = ConnectOptions::new().heartbeat(Duration::from_secs(1));
        assert_eq!(hb.effective_heartbeat(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn allowed_mechs_parsing() {
        let o = ConnectOptions::new().allowed_mechs("  SCRAM-SHA-256\tPLAIN  ANONYMOUS ");
        assert_eq!(
            o.allowed_mechs_list(),
            Some(vec!["SCRAM-SHA-256", "PLAIN", "ANONYMOUS"])
        );
        assert_eq!(
            ConnectOptions::new()
                .allowed_mechs("   ")
                .allowed_mechs_list(),
            None
        );
        assert_eq!(ConnectOptions::new().allowed_mechs_list(), None);
    }

    #[test]
    fn debug_redacts_secrets() {
        let o = ConnectOptions::new()
            .url(url("amqp://u:urlsecret1@h"))
            .password("optsecret2")
            .tls(TlsOptions::new().client_key_pem("-----BEGIN PRIVATE KEY-----keysecret3"));
        let s = format!("{o:?} {o:#?}");
        for secret in ["urlsecret1", "optsecret2", "keysecret3", "PRIVATE KEY"] {
            assert!(!s.contains(secret), "{secret} in {s}");
        }
        assert!(s.contains("***"));
        let c = config(r#"{"user": "u", "password": "cfgsecret4"}"#);
        let s = format!("{c:?}");
        assert!(!s.contains("cfgsecret4") && s.contains("***"), "{s}");
        assert_eq!(
            format!("{:?}", PemSource::File("a.pem".into())),
            "File(\"a.pem\")"
        );
        assert_eq!(
            format!("{:?}", PemSource::Pem("abc".into())),
            "Pem(<3 bytes>)"
        );
    }

    #[test]
    fn tls_builders() {
        let t = TlsOptions::new()
            .ca_pem("CA")
            .client_cert_pem("CERT")
            .client_key_file("key.pem");
        assert_eq!(t.ca, Some(PemSource::Pem("CA".into())));
        assert_eq!(t.client_cert, Some(PemSource::Pem("CERT".into())));
        assert_eq!(t.client_key, Some(PemSource::File("key.pem".into())));
        let t = t
            .ca_file("ca.pem")
            .client_cert_file("c.pem")
            .client_key_pem("K");
        assert_eq!(t.ca, Some(PemSource::File("ca.pem".into())));
        assert_eq!(t.client_cert, Some(PemSource::File("c.pem".into())));
        assert_eq!(t.client_key, Some(PemSource::Pem("K".into())));
    }

    #[test]
    fn config_empty_object_is_proton_default() {
        let c = config("{}");
        assert_eq!(c, ConnectConfig::default());
        assert_eq!(c.to_url().to_string(), "amqps://localhost:5671");
        assert_eq!(c.sasl, SaslConfig::default());
        assert!(c.sasl.enabled);
        assert_eq!(c.tls, Some(TlsOptions::default()));
        assert!(c.user.is_none() && c.password.is_none());
        // Whitespace and comments only around the object.
        assert_eq!(
            config(" // nothing\n { /* at all */ } \n"),
            ConnectConfig::default()
        );
    }

    #[test]
    fn config_full_document() {
        let text = r#"
        // Proton's documented schema, every key given.
        {
          "scheme": "amqps",   // [string] "amqp" (no TLS) or "amqps"
          "host": "broker.example", /* DNS or IP address */
          "port": "amqps",
          "user": "alice",
          "password": "secret",
          "sasl": {
            "enable": true,
            "mechanisms": ["SCRAM-SHA-256", "PLAIN"],
            "allow_insecure": false
          },
          "tls": {
            "cert": "/etc/pki/client.pem",
            "key": "/etc/pki/client.key",
            "ca": "/etc/pki/ca.pem",
            "verify": true
          },
          "unknown": {"ignored": [1, 2, 3]}
        }"#;
        let c = config(text);
        assert_eq!(c.url.to_string(), "amqps://broker.example:5671");
        assert_eq!(c.user.as_deref(), Some("alice"));
        assert_eq!(c.password.as_deref(), Some("secret"));
        assert_eq!(
            c.sasl,
            SaslConfig {
                enabled: true,
                mechanisms: Some("SCRAM-SHA-256 PLAIN".into()),
                allow_insecure: Some(false),
            }
        );
        assert_eq!(
            c.tls,
            Some(TlsOptions {
                ca: Some(PemSource::File("/etc/pki/ca.pem".into())),
                client_cert: Some(PemSource::File("/etc/pki/client.pem".into())),
                client_key: Some(PemSource::File("/etc/pki/client.key".into())),
                verify: VerifyMode::VerifyPeerName,
            })
        );
        assert_eq!(c.clone().into_url(), c.to_url());
    }

    #[test]
    fn config_scheme_host_port() {
        let c = config(r#"{"scheme": "amqp"}"#);
        assert_eq!(c.url.host_port(), "localhost:5672");
        assert!(c.tls.is_none());
        assert_eq!(config(r#"{"port": 1234}"#).url.port(), 1234);
        assert_eq!(config(r#"{"port": "1234"}"#).url.port(), 1234);
        assert_eq!(config(r#"{"port": "amqp"}"#).url.port(), 5672);
        assert_eq!(
            config(r#"{"scheme": "amqp", "port": "amqps"}"#).url.port(),
            5671
        );
        assert_eq!(config(r#"{"port": 0}"#).url.port(), 0);
        assert_eq!(config(r#"{"host": "[::1]"}"#).url.host_port(), "[::1]:5671");
        assert_eq!(config(r#"{"host": "::1"}"#).url.host(), "::1");
        assert_eq!(config(r#"{"host": ""}"#).url.host(), "localhost");
        assert_eq!(config(r#"{"host": "Broker"}"#).url.host(), "broker");
        // Nulls are absent values.
        let c = config(
            r#"{"scheme": null, "host": null, "port": null, "user": null,
                           "password": null, "sasl": null, "tls": null}"#,
        );
        assert_eq!(c, ConnectConfig::default());
    }

    #[test]
    fn config_bad_values() {
        let value_err = |json: &str, key: &str| match config_err(json) {
            OptionsError::InvalidConfigValue { key: k, reason } => {
                assert_eq!(k, key, "{json}");
                assert!(!reason.is_empty());
            }
            other => panic!("{json}: unexpected {other:?}"),
        };
        value_err(r#"{"scheme": "http"}"#, "scheme");
        value_err(r#"{"scheme": "AMQP"}"#, "scheme");
        value_err(r#"{"port": 65536}"#, "port");
        value_err(r#"{"port": -1}"#, "port");
        value_err(r#"{"port": 56.5}"#, "port");
        value_err(r#"{"port": "http"}"#, "port");
        value_err(r#"{"port": "99999"}"#, "port");
        value_err(r#"{"host": "a b"}"#, "host");
        value_err(r#"{"host": "[::1"}"#, "host");
        value_err(r#"{"host": "::g"}"#, "host");
        value_err(
            r#"{"sasl": {"enable": true, "enabled": false}}"#,
            "sasl.enable",
        );

        let type_err = |json: &str, key: &str, expected: &str, found: &str| match config_err(json) {
            OptionsError::ConfigType {
                key: k,
                expected: e,
                found: f,
            } => assert_eq!((k, e, f), (key, expected, found), "{json}"),
            other => panic!("{json}: unexpected {other:?}"),
        };
        type_err(r#"{"scheme": 1}"#, "scheme", "string", "number");
        type_err(r#"{"host": []}"#, "host", "string", "array");
        type_err(r#"{"port": true}"#, "port", "string or number", "boolean");
        type_err(r#"{"user": 7}"#, "user", "string", "number");
        type_err(r#"{"password": {}}"#, "password", "string", "object");
        type_err(r#"{"sasl": true}"#, "sasl", "object", "boolean");
        type_err(
            r#"{"sasl": {"enable": "yes"}}"#,
            "sasl.enable",
            "boolean",
            "string",
        );
        type_err(
            r#"{"sasl": {"enabled": 1}}"#,
            "sasl.enabled",
            "boolean",
            "number",
        );
        type_err(
            r#"{"sasl": {"mechanisms": 1}}"#,
            "sasl.mechanisms",
            "string or array",
            "number",
        );
        type_err(
            r#"{"sasl": {"mechanisms": ["PLAIN", 1]}}"#,
            "sasl.mechanisms",
            "array of strings",
            "number",
        );
        type_err(
            r#"{"sasl": {"allow_insecure": "no"}}"#,
            "sasl.allow_insecure",
            "boolean",
            "string",
        );
        type_err(r#"{"tls": "yes"}"#, "tls", "object", "string");
        type_err(r#"{"tls": {"ca": 1}}"#, "tls.ca", "string", "number");
        type_err(
            r#"{"tls": {"cert": false}}"#,
            "tls.cert",
            "string",
            "boolean",
        );
        type_err(r#"{"tls": {"key": []}}"#, "tls.key", "string", "array");
        type_err(
            r#"{"tls": {"verify": "false"}}"#,
            "tls.verify",
            "boolean",
            "string",
        );
    }

    #[test]
    fn config_malformed_json() {
        for bad in [
            "",
            "{",
            "{\"a\":}",
            "{'scheme': 'amqp'}",
            "{} {}",
            "/* open",
            "nul",
            "{\"a\" 1}",
        ] {
            match config_err(bad) {
                OptionsError::InvalidJson { message, .. } => assert!(!message.is_empty(), "{bad}"),
                other => panic!("{bad:?}: unexpected {other:?}"),
            }
        }
        match config_err("{\n  \"host\": \"h\",\n  oops\n}") {
            OptionsError::InvalidJson { line, column, .. } => assert_eq!((line, column), (3, 3)),
            other => panic!("unexpected {other:?}"),
        }
        for (bad, found) in [
            ("[]", "array"),
            ("42", "number"),
            ("\"x\"", "string"),
            ("null", "null"),
            ("true", "boolean"),
        ] {
            assert_eq!(
                config_err(bad),
                OptionsError::ConfigNotObject { found },
                "{bad}"
            );
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            config_err(&deep),
            OptionsError::InvalidJson { .. }
        ));
    }

    #[test]
    fn config_sasl_variants() {
        assert!(!config(r#"{"sasl": {"enable": false}}"#).sasl.enabled);
        assert!(!config(r#"{"sasl": {"enabled": false}}"#).sasl.enabled);
        assert!(
            !config(r#"{"sasl": {"enable": false, "enabled": false}}"#)
                .sasl
                .enabled
        );
        assert!(config(r#"{"sasl": {}}"#).sasl.enabled);
        assert_eq!(
            config(r#"{"sasl": {"mechanisms": " PLAIN  ANONYMOUS "}}"#)
                .sasl
                .mechanisms
                .as_deref(),
            Some("PLAIN  ANONYMOUS")
        );
        assert_eq!(
            config(r#"{"sasl": {"mechanisms": ""}}"#).sasl.mechanisms,
            None
        );
        assert_eq!(
            config(r#"{"sasl": {"mechanisms": []}}"#).sasl.mechanisms,
            None
        );
        assert_eq!(
            config(r#"{"sasl": {"allow_insecure": true}}"#)
                .sasl
                .allow_insecure,
            Some(true)
        );
    }

    #[test]
    fn config_tls_variants() {
        assert_eq!(
            config_err(r#"{"scheme": "amqp", "tls": {}}"#),
            OptionsError::TlsWithoutAmqps
        );
        assert_eq!(
            config_err(r#"{"scheme": "amqp", "tls": {"verify": false}}"#),
            OptionsError::TlsWithoutAmqps
        );
        assert!(config(r#"{"scheme": "amqp", "tls": null}"#).tls.is_none());
        let t = config(r#"{"tls": {"verify": false}}"#).tls.unwrap();
        assert_eq!(t.verify, VerifyMode::AnonymousPeer);
        let t = config(r#"{"tls": {"verify": true, "ca": ""}}"#)
            .tls
            .unwrap();
        assert_eq!(t, TlsOptions::default());
        let t = config(r#"{"tls": {"cert": "c.pem"}}"#).tls.unwrap();
        assert_eq!(t.client_cert, Some(PemSource::File("c.pem".into())));
        assert_eq!(t.client_key, None);
    }

    #[test]
    fn config_comments() {
        assert_eq!(strip_json_comments("a // b\nc"), "a  \nc");
        assert_eq!(strip_json_comments("a /* b\n b */c"), "a  c");
        assert_eq!(
            strip_json_comments("\"//not\" '/*not*/'"),
            "\"//not\" '/*not*/'"
        );
        assert_eq!(
            strip_json_comments(r#""esc\"//still string" // c"#),
            r#""esc\"//still string"  "#
        );
        assert_eq!(strip_json_comments("a /* open"), "a /* open");
        assert_eq!(strip_json_comments("\"open // x"), "\"open // x");
        assert_eq!(strip_json_comments("é//ü\né"), "é \né");
        assert_eq!(strip_json_comments("/**/"), " ");
        assert_eq!(strip_json_comments("//"), " ");
        let c = config(
            r#"{ "user": "a//b /* c */", // trailing
                 /* block */ "password": "p" }"#,
        );
        assert_eq!(c.user.as_deref(), Some("a//b /* c */"));
        assert_eq!(c.password.as_deref(), Some("p"));
    }

    #[test]
    fn config_apply_overrides_like_proton() {
        let mut o = ConnectOptions::new()
            .user("opt-user")
            .password("opt-pw")
            .sasl_enabled(false)
            .allowed_mechs("PLAIN")
            .heartbeat(Duration::from_secs(3))
            .tls(TlsOptions::new().ca_file("mine.pem"));
        assert_eq!(o.validate(), Ok(ResolvedTargets::UseConfig));
        config(
            r#"{"host": "broker", "user": "cfg-user", "password": "cfg-pw",
                "sasl": {"mechanisms": "SCRAM-SHA-256", "allow_insecure": false},
                "tls": {"ca": "ca.pem"}}"#,
        )
        .apply(&mut o);
        assert_eq!(
            o.validate(),
            Ok(ResolvedTargets::Urls(vec![url("amqps://broker:5671")]))
        );
        assert_eq!(o.user.as_deref(), Some("cfg-user"));
        assert_eq!(o.password.as_deref(), Some("cfg-pw"));
        assert!(
            o.sasl_enabled,
            "absent sasl.enable means true, as in Proton"
        );
        assert_eq!(o.allowed_mechs.as_deref(), Some("SCRAM-SHA-256"));
        assert!(!o.allow_insecure_mechs);
        assert_eq!(o.heartbeat, Some(Duration::from_secs(3)), "untouched");
        assert_eq!(
            o.tls.as_ref().and_then(|t| t.ca.clone()),
            Some(PemSource::File("ca.pem".into()))
        );

        // Nothing in the file: options keep their user, password, mechanisms, insecure flag.
        let mut o = ConnectOptions::new()
            .user("u")
            .password("p")
            .allowed_mechs("PLAIN")
            .allow_insecure_mechs(false)
            .tls(TlsOptions::new().ca_file("mine.pem"));
        config(r#"{"scheme": "amqp", "password": "ignored-without-user"}"#).apply(&mut o);
        assert_eq!(
            o.url.as_ref().map(Url::to_string).as_deref(),
            Some("amqp://localhost:5672")
        );
        assert_eq!(
            (o.user.as_deref(), o.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(o.allowed_mechs.as_deref(), Some("PLAIN"));
        assert!(!o.allow_insecure_mechs);
        assert_eq!(
            o.tls.and_then(|t| t.ca),
            Some(PemSource::File("mine.pem".into()))
        );

        // A user without password keeps the options' password.
        let mut o = ConnectOptions::new().password("p").urls([url("amqp://x")]);
        config(r#"{"user": "cfg"}"#).apply(&mut o);
        assert_eq!(
            (o.user.as_deref(), o.password.as_deref()),
            (Some("cfg"), Some("p"))
        );
        assert!(o.urls.is_empty());
        assert!(matches!(o.validate(), Ok(ResolvedTargets::Urls(_))));
    }

    #[test]
    fn search_paths() {
        assert_eq!(
            connect_config_search_paths(None, Some("/home/alice")),
            [
                "./connect.json",
                "/home/alice/.config/messaging/connect.json",
                "/etc/messaging/connect.json"
            ]
        );
        assert_eq!(
            connect_config_search_paths(None, Some("/home/bob/")),
            [
                "./connect.json",
                "/home/bob/.config/messaging/connect.json",
                "/etc/messaging/connect.json"
            ]
        );
        assert_eq!(
            connect_config_search_paths(None, Some("/")),
            [
                "./connect.json",
                "/.config/messaging/connect.json",
                "/etc/messaging/connect.json"
            ]
        );
        assert_eq!(
            connect_config_search_paths(None, None),
            ["./connect.json", "/etc/messaging/connect.json"]
        );
        assert_eq!(
            connect_config_search_paths(Some(""), Some("")),
            ["./connect.json", "/etc/messaging/connect.json"]
        );
        assert_eq!(
            connect_config_search_paths(Some("/x/c.json"), None),
            ["/x/c.json"]
        );
    }

    #[test]
    fn errors_display() {
        let all = [
            OptionsError::UrlAndUrls,
            OptionsError::MaxFrameSizeTooSmall(1),
            OptionsError::InvalidJson {
                line: 1,
                column: 2,
                message: "m".into(),
            },
            OptionsError::ConfigNotObject { found: "array" },
            OptionsError::ConfigType {
                key: "k",
                expected: "string",
                found: "number",
            },
            OptionsError::InvalidConfigValue {
                key: "k",
                reason: "r".into(),
            },
            OptionsError::TlsWithoutAmqps,
        ];
        for e in all {
            assert!(!e.to_string().is_empty());
        }
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn config_parser_never_panics(s in ".{0,80}") {
                let _ = parse_connect_config(&s);
                let _ = strip_json_comments(&s);
            }

            #[test]
            fn jsonish_never_panics(s in "[{}\\[\\]\":,/* \\n\\\\a-z0-9'.-]{0,80}") {
                let _ = parse_connect_config(&s);
            }

            #[test]
            fn structured_configs_never_panic(
                scheme in prop_oneof![Just("\"amqp\"".to_owned()), Just("\"amqps\"".to_owned()), Just("1".to_owned()), Just("null".to_owned()), ".{0,6}"],
                host in prop_oneof![Just("\"h\"".to_owned()), Just("\"::1\"".to_owned()), Just("[]".to_owned()), ".{0,8}"],
                port in prop_oneof![Just("5672".to_owned()), Just("\"amqps\"".to_owned()), Just("-3".to_owned()), Just("1e9".to_owned()), ".{0,6}"],
                tls in prop_oneof![Just("{}".to_owned()), Just("{\"verify\": false}".to_owned()), Just("null".to_owned()), Just("3".to_owned())],
            ) {
                let json = format!("{{\"scheme\": {scheme}, \"host\": {host}, \"port\": {port}, \"tls\": {tls}}}");
                let _ = parse_connect_config(&json);
            }

            #[test]
            fn stripping_without_comments_is_identity(s in "[^/]{0,60}") {
                prop_assert_eq!(strip_json_comments(&s), s);
            }
        }
    }
}
