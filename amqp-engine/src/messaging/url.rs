//! Connection URLs in Qpid Proton's syntax.

use core::fmt;
use core::str::FromStr;

/// Port used by the `amqp` scheme when the URL names none.
pub const AMQP_PORT: u16 = 5672;
/// Port used by the `amqps` scheme when the URL names none.
pub const AMQPS_PORT: u16 = 5671;

/// Host used for an empty host when connecting (Proton C/C++ and `connect.json` default).
pub const DEFAULT_CONNECT_HOST: &str = "localhost";
/// Host used for an empty host when listening (Python `proton.Url.defaults()`): all IPv4
/// interfaces. Use `[::0]` for all IPv6 interfaces.
pub const DEFAULT_LISTEN_HOST: &str = "0.0.0.0";

/// The transport named by a URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// `amqp`: AMQP over plain TCP, default port 5672.
    #[default]
    Amqp,
    /// `amqps`: AMQP over TLS, default port 5671.
    Amqps,
}

impl Scheme {
    /// The scheme as written in a URL: `"amqp"` or `"amqps"`.
    ///
    /// ```
    /// # use amqp_engine::messaging::Scheme;
    /// assert_eq!(Scheme::Amqps.as_str(), "amqps");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Amqp => "amqp",
            Scheme::Amqps => "amqps",
        }
    }

    /// The port used when a URL with this scheme names none: 5672 or 5671.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Amqp => AMQP_PORT,
            Scheme::Amqps => AMQPS_PORT,
        }
    }

    /// Whether the scheme asks for TLS (`amqps`).
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Amqps)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = UrlError;

    /// Parses `amqp` or `amqps`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("amqp") {
            Ok(Scheme::Amqp)
        } else if s.eq_ignore_ascii_case("amqps") {
            Ok(Scheme::Amqps)
        } else if looks_like_scheme(s) {
            Err(UrlError::UnknownScheme(s.to_owned()))
        } else {
            Err(UrlError::InvalidScheme)
        }
    }
}

/// Why a URL was refused.
///
/// No variant quotes parts of the input that could hold a user name or password: only a
/// syntactically valid scheme name is echoed back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The input was empty. (Use `amqp://` for all defaults.)
    Empty,
    /// The scheme is well formed but is neither `amqp` nor `amqps`.
    UnknownScheme(String),
    /// The text before `://` is not a scheme name at all.
    InvalidScheme,
    /// The port is neither a number nor one of the service names `amqp`, `amqps`.
    InvalidPort,
    /// The port is a number above 65535.
    PortOutOfRange,
    /// A `[` opening an IPv6 address has no matching `]`.
    UnterminatedIpv6,
    /// The text between `[` and `]` is not an IPv6 address.
    InvalidIpv6,
    /// Something other than `:port` follows the `]` of an IPv6 address.
    JunkAfterIpv6,
    /// The host has a colon but no brackets; IPv6 addresses must be written `[addr]`.
    UnbracketedIpv6,
    /// The host holds a character that cannot appear in a host name (space, control character,
    /// `[`, `]`, `@`, `/`, `?`, `#`, `\`, `%`).
    InvalidHost,
    /// A `%` escape in the user or password is not `%` followed by two hex digits, or the
    /// decoded bytes are not UTF-8.
    InvalidPercentEncoding {
        /// `"user"` or `"password"`.
        component: &'static str,
    },
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Empty => f.write_str("empty URL (use \"amqp://\" for the defaults)"),
            UrlError::UnknownScheme(s) => {
                write!(
                    f,
                    "unknown URL scheme {s:?}: expected \"amqp\" or \"amqps\""
                )
            }
            UrlError::InvalidScheme => f.write_str("malformed URL scheme before \"://\""),
            UrlError::InvalidPort => f.write_str(
                "invalid port: expected a number or one of the service names \"amqp\", \"amqps\"",
            ),
            UrlError::PortOutOfRange => f.write_str("port out of range: must be 0..=65535"),
            UrlError::UnterminatedIpv6 => f.write_str("IPv6 address has '[' but no closing ']'"),
            UrlError::InvalidIpv6 => f.write_str("text between '[' and ']' is not an IPv6 address"),
            UrlError::JunkAfterIpv6 => {
                f.write_str("unexpected text after ']': only \":port\" may follow an IPv6 address")
            }
            UrlError::UnbracketedIpv6 => {
                f.write_str("host contains ':'; write IPv6 addresses in brackets, e.g. [::1]:5672")
            }
            UrlError::InvalidHost => f.write_str("host contains a character not allowed in a host"),
            UrlError::InvalidPercentEncoding { component } => {
                write!(f, "bad percent-encoding in the URL {component}")
            }
        }
    }
}

impl std::error::Error for UrlError {}

/// A parsed connection URL: scheme, optional credentials, host, port and optional address.
///
/// Defaults are filled in at parse time, so [`host`](Url::host) and [`port`](Url::port) are
/// always set. See the grammar above for the grammar.
///
/// ```
/// use amqp_engine::messaging::{Scheme, Url};
///
/// let url = Url::parse("amqps://user:p%40ss@Host:5671/a/b")?;
/// assert_eq!(url.scheme(), Scheme::Amqps);
/// assert_eq!(url.user(), Some("user"));
/// assert_eq!(url.password(), Some("p@ss"));
/// assert_eq!(url.host(), "host");
/// assert_eq!(url.port(), 5671);
/// assert_eq!(url.address(), Some("a/b"));
/// // The password is never printed.
/// assert_eq!(url.to_string(), "amqps://user:***@host:5671/a/b");
///
/// let v6 = Url::parse("[::1]")?;
/// assert_eq!((v6.host(), v6.port()), ("::1", 5672));
/// assert_eq!(v6.host_port(), "[::1]:5672");
/// # Ok::<(), amqp_engine::messaging::UrlError>(())
/// ```
///
/// ```text
/// [scheme://][user[:password]@]host[:port][/address]
/// ```
///
/// * `scheme` is `amqp` (plain TCP) or `amqps` (TLS), case-insensitive; it is optional and
///   defaults to `amqp`. A scheme is recognised, as in Proton C, only when `://` appears before
///   the first `/`. A leading `//` without a scheme (`//host:port`) is accepted, as Python's
///   `proton.Url` does.
/// * `user` and `password` are percent-decoded (`p%40ss` is `p@ss`); the authority ends at the
///   first `/` and the credentials at its **last** `@`, so an unescaped `@` in a password still
///   works, but a `/` in a password must be written `%2F`. An empty user or password counts as
///   absent (Proton only uses them when they are non-empty).
/// * `host` is a name, an IPv4 address or an IPv6 address in brackets (`[::1]`, `[::0]`,
///   `[fe80::1%eth0]`). It is lower-cased (as Python's `proton.Url` does). An empty host means
///   Proton's default: `localhost` for [`Url::parse`] (connecting; Proton C/C++ and the
///   `connect.json` default) and `0.0.0.0` for [`Url::parse_listen`] (listening; what Python's
///   `proton.Url.defaults()` fills in).
/// * `port` is a number (`0`..=`65535`) or the service name `amqp` (5672) or `amqps` (5671). When
///   it is absent or empty the scheme's port is used: 5672 for `amqp`, 5671 for `amqps`.
/// * `address` (Proton calls it the *path*) is everything after the first `/` that follows the
///   authority, kept verbatim (not percent-decoded, `?` and `#` included, as in Proton C). An
///   empty address counts as absent.
///
/// Differences from Proton, all on purpose: an empty input is an error ([`UrlError::Empty`];
/// Proton's `connect()` treats an empty URL as "no URL, read `connect.json`", which
/// [`ConnectOptions`](super::ConnectOptions) expresses with `url: None`); schemes other than
/// `amqp`/`amqps` are refused (Proton Python resolves any service name); an unbracketed IPv6
/// address, bad percent escapes and garbage after `]` are refused instead of being guessed at.
///
/// The password is never shown: [`Display`](fmt::Display) prints it as `***` and
/// [`Debug`](fmt::Debug) redacts it. Error values never quote the parts of the input that might
/// hold credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Url {
    scheme: Scheme,
    user: Option<String>,
    password: Option<String>,
    /// Lower-cased, without IPv6 brackets.
    host: String,
    port: u16,
    address: Option<String>,
}

impl Url {
    /// Parses a URL to connect to; an empty host means `localhost`.
    ///
    /// ```
    /// # use amqp_engine::messaging::Url;
    /// let url = Url::parse("amqp://")?;
    /// assert_eq!(url.host_port(), "localhost:5672");
    /// let url = Url::parse("example.com:amqps")?;
    /// assert_eq!(url.host_port(), "example.com:5671");
    /// assert!(Url::parse("http://example.com").is_err());
    /// # Ok::<(), amqp_engine::messaging::UrlError>(())
    /// ```
    pub fn parse(input: &str) -> Result<Url, UrlError> {
        parse_url(input, DEFAULT_CONNECT_HOST)
    }

    /// Parses a URL to listen on; an empty host means `0.0.0.0` (all IPv4 interfaces), as in
    /// Python's `proton.Url`. Use `[::0]` for all IPv6 interfaces.
    ///
    /// ```
    /// # use amqp_engine::messaging::Url;
    /// assert_eq!(Url::parse_listen(":5672")?.host(), "0.0.0.0");
    /// assert_eq!(Url::parse_listen("[::0]")?.host_port(), "[::]:5672");
    /// # Ok::<(), amqp_engine::messaging::UrlError>(())
    /// ```
    pub fn parse_listen(input: &str) -> Result<Url, UrlError> {
        parse_url(input, DEFAULT_LISTEN_HOST)
    }

    /// Builds a URL from parts. `host` may be a name, an IPv4 address, or an IPv6 address with
    /// or without brackets; an empty host means `localhost`. `port: None` means the scheme's
    /// default port.
    ///
    /// ```
    /// # use amqp_engine::messaging::{Scheme, Url};
    /// let url = Url::new(Scheme::Amqps, "::1", None)?;
    /// assert_eq!(url.to_string(), "amqps://[::1]:5671");
    /// # Ok::<(), amqp_engine::messaging::UrlError>(())
    /// ```
    pub fn new(scheme: Scheme, host: &str, port: Option<u16>) -> Result<Url, UrlError> {
        let host = if host.is_empty() {
            DEFAULT_CONNECT_HOST.to_owned()
        } else if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(UrlError::UnterminatedIpv6)?;
            validate_ipv6(inner)?;
            canonical_host(inner)
        } else if host.contains(':') {
            validate_ipv6(host)?;
            canonical_host(host)
        } else {
            validate_reg_host(host)?;
            host.to_ascii_lowercase()
        };
        Ok(Url {
            scheme,
            user: None,
            password: None,
            host,
            port: port.unwrap_or(scheme.default_port()),
            address: None,
        })
    }

    /// `scheme://localhost:<default port>`: what parsing `amqp://` or `amqps://` gives.
    ///
    /// ```
    /// # use amqp_engine::messaging::{Scheme, Url};
    /// assert_eq!(Url::localhost(Scheme::Amqps), Url::parse("amqps://")?);
    /// # Ok::<(), amqp_engine::messaging::UrlError>(())
    /// ```
    pub fn localhost(scheme: Scheme) -> Url {
        Url {
            scheme,
            user: None,
            password: None,
            host: DEFAULT_CONNECT_HOST.to_owned(),
            port: scheme.default_port(),
            address: None,
        }
    }

    /// Returns the URL with this user name (an empty one removes it).
    #[must_use]
    pub fn with_user(mut self, user: impl Into<String>) -> Url {
        self.user = non_empty(user.into());
        self
    }

    /// Returns the URL with this password (an empty one removes it).
    #[must_use]
    pub fn with_password(mut self, password: impl Into<String>) -> Url {
        self.password = non_empty(password.into());
        self
    }

    /// Returns the URL with this address (Proton's *path*; an empty one removes it).
    #[must_use]
    pub fn with_address(mut self, address: impl Into<String>) -> Url {
        self.address = non_empty(address.into());
        self
    }

    /// Returns the URL with this port.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Url {
        self.port = port;
        self
    }

    /// Returns the URL without user name and password.
    #[must_use]
    pub fn without_credentials(mut self) -> Url {
        self.user = None;
        self.password = None;
        self
    }

    /// The scheme (`amqp` when the URL had none).
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Whether the scheme asks for TLS (`amqps`).
    pub fn is_tls(&self) -> bool {
        self.scheme.is_tls()
    }

    /// The percent-decoded user name, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The percent-decoded password, if any. Handle with care: nothing else in this type
    /// prints it.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The host, lower-cased, IPv6 addresses without brackets (`::1`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the host is an IPv6 address (it is printed in brackets).
    pub fn is_ipv6(&self) -> bool {
        self.host.contains(':')
    }

    /// The port (the scheme's default when the URL had none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address (Proton's *path*) without its leading `/`, if any: the node to attach to
    /// when a link is created from a URL.
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// `host:port` for a socket connect or listen, IPv6 hosts in brackets (`[::1]:5672`).
    pub fn host_port(&self) -> String {
        if self.is_ipv6() {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Url {
    /// `scheme://[user[:***]@]host:port[/address]`, user percent-encoded, password masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if self.user.is_some() || self.password.is_some() {
            if let Some(user) = &self.user {
                write_percent_encoded(f, user)?;
            }
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host_port())?;
        if let Some(address) = &self.address {
            write!(f, "/{address}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Url")
            .field("scheme", &self.scheme)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("address", &self.address)
            .finish()
    }
}

impl FromStr for Url {
    type Err = UrlError;

    /// Same as [`Url::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Url::parse(s)
    }
}

impl From<core::convert::Infallible> for UrlError {
    fn from(never: core::convert::Infallible) -> UrlError {
        match never {}
    }
}

impl TryFrom<&String> for Url {
    type Error = UrlError;
    fn try_from(s: &String) -> Result<Url, UrlError> {
        Url::parse(s)
    }
}

impl TryFrom<&str> for Url {
    type Error = UrlError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Url::parse(s)
    }
}

impl TryFrom<String> for Url {
    type Error = UrlError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Url::parse(&s)
    }
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// RFC 3986 scheme syntax: `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`, bounded in length so
/// an error never echoes a long piece of input.
fn looks_like_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && s.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn parse_url(input: &str, default_host: &str) -> Result<Url, UrlError> {
    if input.is_empty() {
        return Err(UrlError::Empty);
    }

    // Scheme: only when "://" comes before the first '/' (Proton C's rule).
    let (scheme, rest) = match input.find("://") {
        Some(i) if !input[..i].contains('/') => (input[..i].parse::<Scheme>()?, &input[i + 3..]),
        // Python's proton.Url accepts a network-path reference "//host:port".
        _ => (Scheme::Amqp, input.strip_prefix("//").unwrap_or(input)),
    };

    // Authority up to the first '/', the address after it.
    let (authority, address) = match rest.find('/') {
        Some(i) => (&rest[..i], non_empty(rest[i + 1..].to_owned())),
        None => (rest, None),
    };

    // Credentials end at the last '@' of the authority.
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, password) = match info.find(':') {
                Some(i) => (&info[..i], Some(&info[i + 1..])),
                None => (info, None),
            };
            let user = non_empty(percent_decode(user, "user")?);
            let password = match password {
                Some(p) => non_empty(percent_decode(p, "password")?),
                None => None,
            };
            (user, password)
        }
    };

    let (host, port) = split_host_port(hostport)?;
    let host = if host.is_empty() {
        default_host.to_owned()
    } else {
        canonical_host(host)
    };
    let port = match port {
        None | Some("") => scheme.default_port(),
        Some(p) => parse_port(p)?,
    };

    Ok(Url {
        scheme,
        user,
        password,
        host,
        port,
        address,
    })
}

/// Splits `host[:port]` / `[v6][:port]`, validating the host. The host is returned without
/// brackets and may be empty.
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), UrlError> {
    if let Some(after_open) = hostport.strip_prefix('[') {
        let close = after_open.find(']').ok_or(UrlError::UnterminatedIpv6)?;
        let host = &after_open[..close];
        validate_ipv6(host)?;
        let after = &after_open[close + 1..];
        if after.is_empty() {
            Ok((host, None))
        } else if let Some(port) = after.strip_prefix(':') {
            Ok((host, Some(port)))
        } else {
            Err(UrlError::JunkAfterIpv6)
        }
    } else {
        let (host, port) = match hostport.find(':') {
            Some(i) => (&hostport[..i], Some(&hostport[i + 1..])),
            None => (hostport, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(UrlError::UnbracketedIpv6);
        }
        if !host.is_empty() {
            validate_reg_host(host)?;
        }
        Ok((host, port))
    }
}

/// A host name or IPv4 address (anything without the characters that delimit URL parts).
/// The host lower-cased; an IPv6 address in its canonical text (`::0` → `::`,
/// `0:0::1` → `::1`), so it prints as a socket address does. A zone (`%eth0`) is kept as given.
fn canonical_host(host: &str) -> String {
    match host.parse::<core::net::Ipv6Addr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

fn validate_reg_host(host: &str) -> Result<(), UrlError> {
    if host.contains(':') {
        return Err(UrlError::UnbracketedIpv6);
    }
    let bad = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '[' | ']' | '@' | '/' | '?' | '#' | '\\' | '%')
    };
    if host.is_empty() || host.chars().any(bad) {
        Err(UrlError::InvalidHost)
    } else {
        Ok(())
    }
}

/// An IPv6 address, optionally with a zone (`fe80::1%eth0`, or RFC 6874's `%25eth0`).
fn validate_ipv6(text: &str) -> Result<(), UrlError> {
    let (addr, zone) = match text.find('%') {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    if addr.parse::<core::net::Ipv6Addr>().is_err() {
        return Err(UrlError::InvalidIpv6);
    }
    if let Some(zone) = zone {
        let ok = !zone.is_empty()
            && zone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'));
        if !ok {
            return Err(UrlError::InvalidIpv6);
        }
    }
    Ok(())
}

pub(crate) fn parse_port(text: &str) -> Result<u16, UrlError> {
    if text.eq_ignore_ascii_case("amqp") {
        return Ok(AMQP_PORT);
    }
    if text.eq_ignore_ascii_case("amqps") {
        return Ok(AMQPS_PORT);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::InvalidPort);
    }
    let digits = text.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    if digits.len() > 5 {
        return Err(UrlError::PortOutOfRange);
    }
    digits
        .parse::<u32>()
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(UrlError::PortOutOfRange)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(text: &str, component: &'static str) -> Result<String, UrlError> {
    if !text.contains('%') {
        return Ok(text.to_owned());
    }
    let err = UrlError::InvalidPercentEncoding { component };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                _ => return Err(err),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| err)
}

/// Writes `text` with everything but RFC 3986 unreserved characters percent-encoded.
fn write_percent_encoded(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            write!(f, "{}", b as char)?;
        } else {
            write!(f, "%{b:02X}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::fuzz_url;

    fn url(s: &str) -> Url {
        match Url::parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    type Parts<'a> = (
        Scheme,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        u16,
        Option<&'a str>,
    );

    fn parts(u: &Url) -> Parts<'_> {
        (
            u.scheme(),
            u.user(),
            u.password(),
            u.host(),
            u.port(),
            u.address(),
        )
    }

    #[test]
    fn seed_forms() {
        use Scheme::*;
        let cases: &[(&str, Parts<'_>)] = &[
            (
                "amqp://example.com",
                (Amqp, None, None, "example.com", 5672, None),
            ),
            (
                "amqps://example.com",
                (Amqps, None, None, "example.com", 5671, None),
            ),
            (
                "amqp://127.0.0.1:5672",
                (Amqp, None, None, "127.0.0.1", 5672, None),
            ),
            ("amqps://[::1]:5671", (Amqps, None, None, "::1", 5671, None)),
            (
                "amqp://alice:secret@example.com",
                (
                    Amqp,
                    Some("alice"),
                    Some("secret"),
                    "example.com",
                    5672,
                    None,
                ),
            ),
            ("example.com", (Amqp, None, None, "example.com", 5672, None)),
            ("amqp://", (Amqp, None, None, "localhost", 5672, None)),
            ("0.0.0.0", (Amqp, None, None, "0.0.0.0", 5672, None)),
            ("[::0]", (Amqp, None, None, "::", 5672, None)),
            (
                "amqp://example.com/queue1",
                (Amqp, None, None, "example.com", 5672, Some("queue1")),
            ),
            (
                "amqps://user:p%40ss@host:5671/a/b",
                (Amqps, Some("user"), Some("p@ss"), "host", 5671, Some("a/b")),
            ),
        ];
        for (input, expected) in cases {
            let u = url(input);
            assert_eq!(&parts(&u), expected, "{input}");
        }
    }

    #[test]
    fn display_normal_form() {
        assert_eq!(url("example.com").to_string(), "amqp://example.com:5672");
        assert_eq!(url("amqp://").to_string(), "amqp://localhost:5672");
        assert_eq!(url("amqps://[::1]").to_string(), "amqps://[::1]:5671");
        assert_eq!(url("amqp://h/q").to_string(), "amqp://h:5672/q");
        assert_eq!(url("amqp://a%20b@h").to_string(), "amqp://a%20b@h:5672");
        assert_eq!(url("amqp://a@h").to_string(), "amqp://a@h:5672");
        assert_eq!(url("amqp://:pw@h").to_string(), "amqp://:***@h:5672");
    }

    #[test]
    fn host_port_for_sockets() {
        assert_eq!(url("amqps://[::1]:5671").host_port(), "[::1]:5671");
        assert_eq!(url("[::0]").host_port(), "[::]:5672");
        assert_eq!(url("[0:0::1]:1").to_string(), "amqp://[::1]:1");
        assert_eq!(url("amqp://127.0.0.1:1234").host_port(), "127.0.0.1:1234");
        assert_eq!(url("amqp://").host_port(), "localhost:5672");
        assert!(url("[::1]").is_ipv6());
        assert!(!url("h").is_ipv6());
    }

    #[test]
    fn listen_defaults() {
        let u = Url::parse_listen("amqp://").unwrap();
        assert_eq!(u.host_port(), "0.0.0.0:5672");
        let u = Url::parse_listen(":5673").unwrap();
        assert_eq!(u.host_port(), "0.0.0.0:5673");
        let u = Url::parse_listen("0.0.0.0").unwrap();
        assert_eq!(u.host_port(), "0.0.0.0:5672");
        let u = Url::parse_listen("[::0]:5671").unwrap();
        assert_eq!(u.host_port(), "[::]:5671");
        let u = Url::parse_listen("amqps://").unwrap();
        assert_eq!(u.host_port(), "0.0.0.0:5671");
    }

    #[test]
    fn ports() {
        assert_eq!(url("h:amqp").port(), 5672);
        assert_eq!(url("amqp://h:amqps").port(), 5671);
        assert_eq!(url("h:AMQPS").port(), 5671);
        assert_eq!(url("h:0").port(), 0);
        assert_eq!(url("h:00000000005672").port(), 5672);
        assert_eq!(url("h:65535").port(), 65535);
        assert_eq!(url("h:").port(), 5672);
        assert_eq!(url("amqps://h:").port(), 5671);
        assert_eq!(url("[::1]:").port(), 5672);
        assert_eq!(Url::parse("h:65536"), Err(UrlError::PortOutOfRange));
        assert_eq!(
            Url::parse("h:99999999999999999999"),
            Err(UrlError::PortOutOfRange)
        );
        assert_eq!(Url::parse("h:http"), Err(UrlError::InvalidPort));
        assert_eq!(Url::parse("h:+5672"), Err(UrlError::InvalidPort));
        assert_eq!(Url::parse("h:-1"), Err(UrlError::InvalidPort));
        assert_eq!(Url::parse("h: 5672"), Err(UrlError::InvalidPort));
        assert_eq!(Url::parse("[::1]:x"), Err(UrlError::InvalidPort));
    }

    #[test]
    fn schemes() {
        assert_eq!(url("AMQPS://h").scheme(), Scheme::Amqps);
        assert_eq!(url("Amqp://h").scheme(), Scheme::Amqp);
        assert!(url("amqps://h").is_tls());
        assert_eq!(
            Url::parse("http://h"),
            Err(UrlError::UnknownScheme("http".into()))
        );
        assert_eq!(Url::parse("://h"), Err(UrlError::InvalidScheme));
        assert_eq!(Url::parse("u:pw@h://x"), Err(UrlError::InvalidScheme));
        // "://" after the first '/' is part of the address, not a scheme.
        let u = url("h/x://y");
        assert_eq!(
            (u.scheme(), u.host(), u.address()),
            (Scheme::Amqp, "h", Some("x://y"))
        );
        // No "://": "amqp:" is a host followed by an empty port.
        assert_eq!(url("amqp:").host(), "amqp");
        assert_eq!("amqps".parse::<Scheme>(), Ok(Scheme::Amqps));
        assert_eq!(Scheme::Amqp.to_string(), "amqp");
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(url("[2001:DB8::1]:5673").host(), "2001:db8::1");
        assert_eq!(url("amqp://[fe80::1%eth0]:5672").host(), "fe80::1%eth0");
        assert_eq!(url("[::ffff:1.2.3.4]").host(), "::ffff:1.2.3.4");
        assert_eq!(url("amqp://u:p@[::1]:1/q").address(), Some("q"));
        assert_eq!(Url::parse("[::1"), Err(UrlError::UnterminatedIpv6));
        assert_eq!(
            Url::parse("amqp://[::1:5672"),
            Err(UrlError::UnterminatedIpv6)
        );
        assert_eq!(Url::parse("[::1]x"), Err(UrlError::JunkAfterIpv6));
        assert_eq!(Url::parse("[::1]]"), Err(UrlError::JunkAfterIpv6));
        assert_eq!(Url::parse("[::1]:5672:1"), Err(UrlError::InvalidPort));
        assert_eq!(Url::parse("[]"), Err(UrlError::InvalidIpv6));
        assert_eq!(Url::parse("[example.com]"), Err(UrlError::InvalidIpv6));
        assert_eq!(Url::parse("[fe80::1%]"), Err(UrlError::InvalidIpv6));
        assert_eq!(Url::parse("::1"), Err(UrlError::UnbracketedIpv6));
        assert_eq!(
            Url::parse("amqp://::1:5672"),
            Err(UrlError::UnbracketedIpv6)
        );
        assert_eq!(Url::parse("h:1:2"), Err(UrlError::UnbracketedIpv6));
    }

    #[test]
    fn hosts() {
        assert_eq!(url("Example.COM").host(), "example.com");
        assert_eq!(url("//host:1").host_port(), "host:1");
        assert_eq!(url("amqp://@").host(), "localhost");
        assert_eq!(url(":5673").host_port(), "localhost:5673");
        assert_eq!(url("/queue").address(), Some("queue"));
        assert_eq!(url("/queue").host(), "localhost");
        for bad in [
            "a b", "a]b", "a[b", "h\\x", "h%20", "h#x", "h?x", "h\n", "\t",
        ] {
            assert_eq!(Url::parse(bad), Err(UrlError::InvalidHost), "{bad:?}");
        }
        assert_eq!(Url::parse(""), Err(UrlError::Empty));
    }

    #[test]
    fn credentials() {
        let u = url("amqp://alice@h");
        assert_eq!((u.user(), u.password()), (Some("alice"), None));
        let u = url("amqp://alice:@h");
        assert_eq!((u.user(), u.password()), (Some("alice"), None));
        let u = url("amqp://:pw@h");
        assert_eq!((u.user(), u.password()), (None, Some("pw")));
        let u = url("amqp://a:b:c@h");
        assert_eq!((u.user(), u.password()), (Some("a"), Some("b:c")));
        // The last '@' ends the credentials.
        let u = url("amqp://a:p@ss@h:1");
        assert_eq!(
            (u.user(), u.password(), u.host()),
            (Some("a"), Some("p@ss"), "h")
        );
        let u = url("amqp://%E2%82%AC:%2F%3a@h");
        assert_eq!((u.user(), u.password()), (Some("€"), Some("/:")));
        let u = url("amqp://Alice@h");
        assert_eq!(u.user(), Some("Alice"), "user is not lower-cased");
        for (bad, component) in [
            ("amqp://a%@h", "user"),
            ("amqp://a%4@h", "user"),
            ("amqp://a%zz@h", "user"),
            ("amqp://a:%g0@h", "password"),
            ("amqp://a:%ff@h", "password"),
        ] {
            assert_eq!(
                Url::parse(bad),
                Err(UrlError::InvalidPercentEncoding { component }),
                "{bad}"
            );
        }
    }

    #[test]
    fn address_is_verbatim() {
        assert_eq!(url("amqp://h/").address(), None);
        assert_eq!(url("amqp://h//x").address(), Some("/x"));
        assert_eq!(url("amqp://h/a%20b?c#d").address(), Some("a%20b?c#d"));
        assert_eq!(url("amqp://h:1/a@b:c").host_port(), "h:1");
    }

    #[test]
    fn password_never_shown() {
        let secret = "s3cr3t-P4ssw0rd";
        let u = url(&format!("amqps://alice:{secret}@example.com:5671/q"));
        assert_eq!(u.password(), Some(secret));
        let shown = u.to_string();
        let debug = format!("{u:?}");
        let pretty = format!("{u:#?}");
        for out in [&shown, &debug, &pretty] {
            assert!(!out.contains(secret), "{out}");
            assert!(out.contains("***"), "{out}");
        }
        assert_eq!(shown, "amqps://alice:***@example.com:5671/q");
        // Error messages never carry credentials either.
        let err = Url::parse(&format!("amqp://alice:{secret}/x@h")).unwrap_err();
        assert!(!err.to_string().contains("P4ss"));
        assert!(!format!("{err:?}").contains("P4ss"));
    }

    #[test]
    fn builders() {
        let u = Url::new(Scheme::Amqp, "", None).unwrap();
        assert_eq!(u.host_port(), "localhost:5672");
        let u = Url::new(Scheme::Amqps, "[::1]", Some(1)).unwrap();
        assert_eq!(u.host_port(), "[::1]:1");
        let u = Url::new(Scheme::Amqp, "Host", None)
            .unwrap()
            .with_user("u")
            .with_password("p")
            .with_address("q")
            .with_port(7);
        assert_eq!(
            parts(&u),
            (Scheme::Amqp, Some("u"), Some("p"), "host", 7, Some("q"))
        );
        assert_eq!(
            u.clone().without_credentials().to_string(),
            "amqp://host:7/q"
        );
        assert_eq!(u.with_user("").with_password("").user(), None);
        assert_eq!(
            Url::new(Scheme::Amqp, "a b", None),
            Err(UrlError::InvalidHost)
        );
        assert_eq!(
            Url::new(Scheme::Amqp, "::g", None),
            Err(UrlError::InvalidIpv6)
        );
        assert_eq!(
            Url::new(Scheme::Amqp, "[::1", None),
            Err(UrlError::UnterminatedIpv6)
        );
        let parsed: Url = "amqp://h".parse().unwrap();
        assert_eq!(Url::try_from("amqp://h").unwrap(), parsed);
        assert_eq!(Url::try_from(String::from("amqp://h")).unwrap(), parsed);
    }

    #[test]
    fn errors_display() {
        let all = [
            UrlError::Empty,
            UrlError::UnknownScheme("x".into()),
            UrlError::InvalidScheme,
            UrlError::InvalidPort,
            UrlError::PortOutOfRange,
            UrlError::UnterminatedIpv6,
            UrlError::InvalidIpv6,
            UrlError::JunkAfterIpv6,
            UrlError::UnbracketedIpv6,
            UrlError::InvalidHost,
            UrlError::InvalidPercentEncoding { component: "user" },
        ];
        for e in all {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn fuzz_url_on_samples() {
        for s in [
            "amqps://user:p%40ss@host:5671/a/b",
            "amqp://a:p@ss@h:1",
            "[fe80::1%eth0]:1/x",
            "//h",
            "amqp://%00@h",
            "amqp://h/a b",
            "amqp://:verylongpassword@h",
            "",
            "\u{0}",
        ] {
            fuzz_url(s.as_bytes());
        }
        fuzz_url(&[0xff, 0xfe]);
    }

    #[test]
    fn deterministic_garbage_never_panics() {
        // A tiny deterministic generator over URL-ish characters.
        let alphabet: Vec<char> = "amqps:/@[]%0123456789abcdefABCDEF.:?#\\ \u{e9}xyz-_~"
            .chars()
            .collect();
        let mut rng = crate::rng::Rng::new(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 24) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            fuzz_url(s.as_bytes());
        }
    }

    mod prop {
        use super::super::*;
        use crate::fuzzing::fuzz_url;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in ".{0,64}") {
                let _ = Url::parse(&s);
                let _ = Url::parse_listen(&s);
            }

            #[test]
            fn fuzz_invariants_hold(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
                fuzz_url(&bytes);
            }

            #[test]
            fn urlish_strings_hold_invariants(s in "(amqps?://)?([a-z%:@]{0,8}@)?(\\[[0-9a-f:%]{0,10}\\]|[a-z0-9.]{0,10})(:[0-9a-z]{0,6})?(/.{0,8})?") {
                fuzz_url(s.as_bytes());
            }

            #[test]
            fn built_urls_round_trip(
                tls in any::<bool>(),
                user in proptest::option::of(".{1,12}"),
                password in proptest::option::of(".{1,12}"),
                host in "[a-z][a-z0-9.-]{0,20}",
                port in any::<u16>(),
                address in proptest::option::of("[^\\s]{1,16}"),
            ) {
                let scheme = if tls { Scheme::Amqps } else { Scheme::Amqp };
                let mut u = Url::new(scheme, &host, Some(port)).unwrap();
                if let Some(user) = &user { u = u.with_user(user.clone()); }
                if let Some(address) = &address { u = u.with_address(address.clone()); }
                let shown_without = u.to_string();
                prop_assert_eq!(Url::parse(&shown_without).unwrap(), u.clone());
                if let Some(password) = &password { u = u.with_password(password.clone()); }
                fuzz_url(u.to_string().as_bytes());
            }
        }
    }
}
