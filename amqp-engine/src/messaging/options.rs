//! Connect options: [`ConnectOptions`] (Proton's `Container.connect()` keyword arguments),
//! their TLS part, and their errors. Proton's `connect.json` file is parsed in
//! [`connect_config`](super::connect_config).

use core::fmt;
use std::time::Duration;

use super::reconnect::{Reconnect, ReconnectLimits};
use super::url::{Url, UrlError};

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
    /// [`connect_config_search_paths`](super::connect_config_search_paths), [`parse_connect_config`](super::parse_connect_config); use
    /// [`ConnectConfig::default()`](super::ConnectConfig::default) when no file exists), [`apply`](super::ConnectConfig::apply) it,
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
/// [`connect_config_search_paths`](super::connect_config_search_paths), reads it, and hands the text to [`parse_connect_config`](super::parse_connect_config);
/// [`ConnectConfig::apply`](super::ConnectConfig::apply) then fills the options in.
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
    /// How long one connect attempt may take (resolving, TCP and TLS) before it fails with
    /// [`TransportErrorKind::Timeout`](super::TransportErrorKind::Timeout), a failed attempt
    /// like any other for reconnect. Default 30 s; `None`: no limit.
    pub connect_timeout: Option<Duration>,
}

/// The default of [`ConnectOptions::connect_timeout`].
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
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

    /// Sets the failover URLs (`Url`s or strings, as [`url`](Self::url)); an unparsable one
    /// is reported when the options are used, as for `url`.
    #[must_use]
    pub fn urls<U>(mut self, urls: impl IntoIterator<Item = U>) -> ConnectOptions
    where
        U: TryInto<Url>,
        U::Error: Into<UrlError>,
    {
        self.urls.clear();
        for url in urls {
            match url.try_into() {
                Ok(url) => self.urls.push(url),
                Err(e) => self.url_error = Some(e.into()),
            }
        }
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

    /// Sets how long one connect attempt may take; `None`: no limit.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> ConnectOptions {
        self.connect_timeout = timeout.into();
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
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests;
