#![forbid(unsafe_code)]
// Errors carry the AMQP error (condition, description, info) by value; they are built on cold
// paths only, so boxing them would cost an allocation for no gain.
#![allow(clippy::result_large_err)]
//! # amqp-engine — a sans-IO AMQP 1.0 engine
//!
//! A [`Connection`] is a pure state machine for one transport: bytes and time go in, bytes,
//! [`Event`]s and deadlines come out. It owns the protocol-header exchange, the SASL layer
//! (client or server), and the AMQP connection with its sessions, links and deliveries. It
//! never touches a socket, a clock, a thread or a runtime, so it runs anywhere and replays
//! deterministically: the same bytes at the same times give the same output.
//!
//! ## The drive loop
//!
//! ```text
//! loop {
//!     // 1. feed what the transport read (or append to conn.input_buffer() and call handle_read)
//!     conn.handle_input(&bytes_read, now)?;
//!     // 2. act on what happened
//!     while let Some(event) = conn.poll_event() { /* ... call conn.send / flow / disposition ... */ }
//!     // 3. write everything queued, as one coalesced buffer
//!     conn.poll_transmit(&mut out); transport.write_all(&out);
//!     // 4. sleep until the transport is readable or conn.poll_timeout(); on timeout:
//!     conn.handle_timeout(now);
//! }
//! ```
//!
//! **The drain rule:** after any call that changes state (`handle_*` or an operation such as
//! `send`), drain [`Connection::poll_event`] and [`Connection::poll_transmit`], then re-arm the
//! timer from [`Connection::poll_timeout`]. When [`Event::Finished`] arrives, flush once more and
//! close the transport.
//!
//! ## Map of the engine
//!
//! Bytes flow in from the transport through [`Connection::handle_read`], are split into
//! frames and dispatched by phase and performative; each handler updates one sub-state and
//! queues [`Event`]s. Operations called by the application (`send`, `flow`, `disposition`, …)
//! update the same sub-states and write frames, or mark them to be written coalesced at the
//! next [`Connection::poll_transmit`]. Nothing calls back into the application.
//!
//! ```text
//! transport bytes ──► handle_read ──► handshake.rs ──► input.rs ──► session.rs / link.rs /
//!                     (mod.rs)        headers, SASL    frames,      transfer.rs / unsettled.rs
//!                                                      open, close        │
//!                                                                         ▼
//! application ◄── poll_event ◄───────────────────────────────────── events queue
//! application ──► send / flow / disposition / attach … ──► sub-states ──► output.rs
//! transport   ◄── poll_transmit ◄── frames written + deferred flows, dispositions, detaches
//! ```
//!
//! | file | holds |
//! | --- | --- |
//! | `connection/mod.rs` | [`Connection`]: the drive API (input, output, events, timers) and accessors |
//! | `connection/handshake.rs` | one state per handshake phase: protocol headers, the SASL exchange |
//! | `connection/input.rs` | AMQP frames read (a fast path for transfer, flow, disposition) and dispatched; `open`, `close` |
//! | `connection/session.rs` | sessions: channels, transfer windows, `begin`/`end` |
//! | `connection/link.rs` | links: handles, credit, delivery-count, drain; `attach`/`detach`/`flow` |
//! | `connection/transfer.rs` | deliveries sent (framing, window blocking, abort) and received (reassembly, limits) |
//! | `connection/unsettled.rs` | the unsettled ring per session and direction, disposition coalescing |
//! | `connection/output.rs` | frames out, deferred frames flushed, failing and finishing |
//! | `connection/sequence.rs` | serial-number arithmetic (RFC 1982) |
//! | `ids.rs` | [`SessionId`], [`LinkId`], [`DeliveryId`]; the generational slab, id maps and pools |
//! | [`config`], [`event`], [`error`] | what goes in, what comes out, what goes wrong |
//! | [`sasl`] | SASL mechanisms and the client and server machines the handshake drives |
//! | [`messaging`] | Proton's messaging model on top of connections (container, handlers, URLs, reconnect) |
//!
//! The codec (types, frames, the per-message transfer fast path) is the `amqp-proto` crate.
//!
//! ```
//! use std::time::Instant;
//! use amqp_engine::{Connection, ConnectionConfig, Side, Event, LinkConfig, SessionConfig, SendOptions};
//! use amqp_proto::message::Message;
//! use bytes::BytesMut;
//!
//! let now = Instant::now();
//! let mut client = Connection::new(Side::Client, ConnectionConfig::new("client"), now);
//! let mut server = Connection::new(Side::Server, ConnectionConfig::new("server"), now);
//! client.open().unwrap();
//! let session = client.begin_session(SessionConfig::default()).unwrap();
//! let sender = client.attach_sender(session, LinkConfig { name: "s".into(), ..Default::default() }).unwrap();
//!
//! // Shuttle bytes both ways; the server accepts whatever the client opens and grants credit.
//! let mut received = Vec::new();
//! for _ in 0..6 {
//!     let mut buf = BytesMut::new();
//!     client.poll_transmit(&mut buf);
//!     server.handle_input(&buf, now).unwrap();
//!     while let Some(ev) = server.poll_event() {
//!         match ev {
//!             Event::ConnectionOpened => server.open().unwrap(),
//!             Event::SessionOpened { session, remote_initiated: true } => server.accept_session(session).unwrap(),
//!             Event::LinkOpened { link, remote_initiated: true } => {
//!                 server.accept_link(link, LinkConfig::default()).unwrap();
//!                 server.flow(link, 10, false).unwrap();
//!             }
//!             Event::Delivery(d) => {
//!                 received.push(Message::decode(&d.payload).unwrap());
//!                 server.disposition(d.delivery, Some(amqp_proto::messaging::DeliveryState::accepted()), true).unwrap();
//!             }
//!             _ => {}
//!         }
//!     }
//!     let mut buf = BytesMut::new();
//!     server.poll_transmit(&mut buf);
//!     client.handle_input(&buf, now).unwrap();
//!     while let Some(ev) = client.poll_event() {
//!         if let Event::LinkFlow { link, credit, .. } = ev {
//!             if credit > 0 && received.is_empty() {
//!                 client.send(link, &Message::new("hello"), SendOptions::default()).unwrap();
//!             }
//!         }
//!     }
//! }
//! assert_eq!(received[0].body_str(), Some("hello"));
//! # let _ = sender;
//! ```

pub mod config;
pub mod connection;
pub mod error;
pub mod event;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod ids;
pub mod messaging;
mod rng;
pub mod sasl;

pub use config::{ConnectionConfig, SaslMode, Side};
pub use connection::{Connection, EndpointState, LinkConfig, SendOptions, SessionConfig};
pub use error::{ConnectionError, ErrorKind, OpError, Origin};
pub use event::{Event, IncomingDelivery};
pub use ids::{DeliveryId, LinkId, SessionId};
