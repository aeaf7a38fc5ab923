//! Proton's messaging model, the plain-data parts: connection URLs, reconnect and failover
//! policies, connect options and Proton's `connect.json` configuration file.
//!
//! Everything here is pure: no I/O, no clock reads. Whoever drives the engine reads files,
//! environment variables and clocks, and hands the values in.
//!
//! ```
//! use amqp_engine::messaging::{ConnectOptions, Failover, ResolvedTargets, Url};
//! use std::time::Duration;
//!
//! let opts = ConnectOptions::new()
//!     .urls(vec![Url::parse("amqp://a.example")?, Url::parse("amqp://b.example")?])
//!     .user("alice")
//!     .password("secret");
//! let ResolvedTargets::Urls(urls) = opts.validate()? else { unreachable!() };
//! let mut failover = Failover::new(urls, opts.reconnect);
//! // Proton: the first delay (0 s) is used for every URL, then 0.1 s for every URL, ...
//! assert_eq!(failover.next_attempt(), Some((0, Duration::ZERO)));
//! assert_eq!(failover.next_attempt(), Some((1, Duration::ZERO)));
//! assert_eq!(failover.next_attempt(), Some((0, Duration::from_millis(100))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod options;
pub mod reconnect;
pub mod url;

pub use options::{
    connect_config_search_paths, parse_connect_config, strip_json_comments, ConnectConfig,
    ConnectOptions, OptionsError, PemSource, ResolvedTargets, SaslConfig, TlsOptions, VerifyMode,
};
pub use reconnect::{Backoff, Failover, Reconnect, ReconnectLimits, ReconnectPolicy};
pub use url::{fuzz_url, Scheme, Url, UrlError};
pub mod container;
mod defaults;
mod engine_events;
mod error;
pub mod handler;
mod handles;
mod io;
mod lifecycle;
mod link_options;
mod managed;
mod reactor;

pub use container::{
    uuid_from_bytes, AcceptorHandle, ConnectionHandle, ContainerContext, DeliveryHandle, IoRequest,
    LinkHandle, LinkOption, LinkOptions, ListenOptions, SansIoContainer, SessionHandle,
    TimerHandle, TlsConnect, TlsListen, Tracker, TransportId, TransportInfo,
};
pub use error::{MessagingError, TransportError, TransportErrorKind};
pub use handler::{Event, EventType, HandlerOptions, MessagingHandler};
#[cfg(feature = "sim")]
pub mod sim;
