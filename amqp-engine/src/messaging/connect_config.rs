//! Proton's `connect.json` configuration file: where to look for it
//! ([`connect_config_search_paths`]), its comment stripping ([`strip_json_comments`]), and its
//! parsing into a [`ConnectConfig`] that fills [`ConnectOptions`] in.

use core::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::options::{ConnectOptions, OptionsError, PemSource, TlsOptions, VerifyMode};
use super::url::{parse_port, Scheme, Url};

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
