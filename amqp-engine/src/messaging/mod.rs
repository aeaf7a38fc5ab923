//! Proton's messaging model, sans-IO: the [`MessagingHandler`] callbacks and the [`Event`] they
//! receive; [`ContainerContext`], where Proton's container methods live (`connect`, `listen`,
//! `create_sender`, `send`, `schedule`, …); [`SansIoContainer`], the state machine an adapter
//! drives (one managed connection per logical connection: its transport, reconnect and
//! failover state, link records re-attached after a reconnect, in-doubt deliveries);
//! [`ClientCore`], its sibling under the async API: the same managed connections driven by
//! direct calls (send, settle, credit, close) that reports [`ClientEvent`]s instead of
//! calling a handler; [`IoCore`], the driver's view of either;
//! connection [`Url`]s, [`ConnectOptions`] and Proton's `connect.json`, reconnect policies
//! ([`Backoff`], any [`ReconnectPolicy`]) and [`Failover`]; typed errors
//! ([`MessagingError`], [`TransportError`]); [`Injector`], which hands application events to a
//! running container from other threads. With the `sim` feature, `messaging::sim` runs containers
//! on a simulated network.
//!
//! Everything here is pure: no I/O, no clock reads. Whoever drives the engine reads files,
//! environment variables and clocks, and hands the values in. Every type has one path:
//! `amqp_engine::messaging::Name`.
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

mod backlog;
mod client_core;
mod connect_config;
mod conns;
mod container;
mod deadlines;
mod defaults;
mod drive;
mod engine_events;
mod error;
mod event_record;
mod handler;
mod handles;
mod inject;
mod io;
mod lifecycle;
mod link_options;
mod managed;
mod options;
mod reactor;
mod reconnect;
#[cfg(feature = "sim")]
pub mod sim;
mod url;

pub use backlog::{OUTPUT_HIGH_WATER, OUTPUT_LOW_WATER};
pub use client_core::{ClientCore, ClientEvent};
pub use connect_config::{
    connect_config_search_paths, parse_connect_config, strip_json_comments, ConnectConfig,
    SaslConfig,
};
pub use container::SansIoContainer;
pub use error::{MessagingError, TransportError, TransportErrorKind};
pub use handler::{Event, EventType, HandlerOptions, MessagingHandler};
pub use handles::{
    AcceptorHandle, ConnectionHandle, DeliveryHandle, LinkHandle, SessionHandle, TimerHandle,
    Tracker, TransportId,
};
pub use inject::{InjectError, Injector, Payload, WakeFn};
pub use io::{IoCore, IoRequest, ListenOptions, TlsConnect, TlsListen, TransportInfo};
pub use link_options::{LinkOption, LinkOptions, SELECTOR_FILTER_CODE};
pub use options::{
    ConnectOptions, OptionsError, PemSource, ResolvedTargets, TlsOptions, VerifyMode,
    MIN_MAX_FRAME_SIZE,
};
pub use reactor::{uuid_from_bytes, ContainerContext};
pub use reconnect::{Backoff, Failover, Reconnect, ReconnectLimits, ReconnectPolicy};
pub use url::{
    Scheme, Url, UrlError, AMQPS_PORT, AMQP_PORT, DEFAULT_CONNECT_HOST, DEFAULT_LISTEN_HOST,
};
