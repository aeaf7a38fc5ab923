//! The connection state machine: one [`Connection`] per transport, holding the protocol
//! handshake, the AMQP connection and its sessions, links and deliveries.
//!
//! This file holds the [`Connection`] type, its drive API (bytes, time and events in and out)
//! and its read-only accessors. Each sub-state has a file of its own:
//!
//! | file | holds |
//! | --- | --- |
//! | `handshake.rs` | protocol headers and the SASL exchange, up to the first AMQP frame |
//! | `input.rs` | AMQP frames read and dispatched; the peer's `open` and `close` |
//! | `session.rs` | `Session`: channels, transfer windows, `begin`/`end` |
//! | `link.rs` | `Link`: handles, credit, delivery-count, drain, `attach`/`detach`/`flow` |
//! | `transfer.rs` | deliveries: sending (framing, session-window blocking, abort) and receiving |
//! | `unsettled.rs` | unsettled deliveries (the ring per session) and disposition coalescing |
//! | `sequence.rs` | `SequenceNo`: serial-number arithmetic (RFC 1982) |
//! | `output.rs` | frames written, deferred frames flushed, `open`/`close`, failing and finishing |
//!
//! See the [crate documentation](crate) for the drive loop and the map of the whole engine.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use amqp_proto::codec::{self, Encode};
use amqp_proto::definitions::{condition, Error, ReceiverSettleMode, Role, SenderSettleMode};
use amqp_proto::frame::{
    self, Decoded, FrameBody, FrameDecoder, FrameError, ProtocolHeader, ProtocolId,
    FRAME_HEADER_SIZE, MIN_MAX_FRAME_SIZE,
};
use amqp_proto::messaging::{DeliveryState, Source, TargetKind};
use amqp_proto::performatives::*;
use amqp_proto::Symbol;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::config::{ConnectionConfig, SaslMode, Side};
use crate::error::{framing, ConnectionError, ErrorKind, OpError, Origin};
use crate::event::{Event, IncomingDelivery};
use crate::ids::{DeliveryId, IdMap, IdPool, LinkId, SessionId, Slab};
use crate::sasl::machine::{ClientStep, SaslClient, SaslServer, ServerAction};

mod handshake;
mod input;
mod link;
mod output;
mod sequence;
mod session;
mod transfer;
mod unsettled;

use handshake::Handshake;
use link::Link;
use sequence::SequenceNo;
use session::Session;
use transfer::{BlockedTransfer, Partial};
use unsettled::{InEntry, OutEntry, PendingDisposition, Ring};

/// Settings for a new session.
#[derive(Clone, Debug, Default)]
pub struct SessionConfig {
    /// Incoming window in frames (default: the connection's `incoming_window`).
    pub incoming_window: Option<u32>,
    /// Session properties.
    pub properties: Option<amqp_proto::definitions::Fields>,
}

/// Settings for a new link, or for answering a peer's attach.
#[derive(Clone, Debug, Default)]
pub struct LinkConfig {
    /// The link name (unique per direction between two containers).
    pub name: String,
    /// The source terminus.
    pub source: Option<Source>,
    /// The target terminus.
    pub target: Option<TargetKind>,
    /// Sender settle mode (default mixed).
    pub snd_settle_mode: Option<SenderSettleMode>,
    /// Receiver settle mode (default first).
    pub rcv_settle_mode: Option<ReceiverSettleMode>,
    /// Largest message this end accepts (receivers) — advertised in attach.
    pub max_message_size: Option<u64>,
    /// Link properties.
    pub properties: Option<amqp_proto::definitions::Fields>,
    /// Offered capabilities.
    pub offered_capabilities: Option<Vec<Symbol>>,
    /// Desired capabilities.
    pub desired_capabilities: Option<Vec<Symbol>>,
}

/// Per-send options.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendOptions<'a> {
    /// Send pre-settled (at most once); no outcome will be reported.
    pub settled: bool,
    /// Delivery tag; by default an 8-byte counter unique on the link.
    pub tag: Option<&'a [u8]>,
    /// Message format (default 0).
    pub message_format: u32,
}

/// The state of one end of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointState {
    /// Not yet opened/begun/attached.
    Uninit,
    /// Opened.
    Active,
    /// Closed/ended/detached.
    Closed,
}

/// The largest joining buffer a connection keeps between frames cut across two reads.
const JOINED_KEPT: usize = 64 * 1024;

/// The least the output buffer grows by when it is full: small enough that an idle connection's
/// first frames cost little, large enough that a busy one lasts many flushes on one allocation.
const OUT_STEP: usize = 16 * 1024;

/// A sans-IO AMQP 1.0 connection.
pub struct Connection {
    side: Side,
    config: ConnectionConfig,
    handshake: Handshake,
    input: BytesMut,
    /// Where a frame cut between two read buffers is joined (kept: its memory is reused).
    joined: BytesMut,
    out: BytesMut,
    /// Payload bytes of the transfer frames waiting for a peer's session window, all sessions.
    blocked_bytes: usize,
    /// AMQP frames written before the AMQP header could be sent (pipelining through SASL).
    pending_amqp: BytesMut,
    decoder: FrameDecoder,
    /// The identity the peer authenticated as (server), or `""` once SASL succeeded (client).
    identity: Option<String>,
    local: EndpointState,
    remote: EndpointState,
    remote_open: Option<Box<Open>>,
    remote_max_frame: u32,
    remote_channel_max: u16,
    remote_idle: Option<Duration>,
    sessions: Slab<Session>,
    local_channels: IdMap<u16, SessionId>,
    /// Our channels: the lowest free one for each begin.
    channels: IdPool,
    remote_channels: IdMap<u16, SessionId>,
    links: Slab<Link>,
    events: VecDeque<Event>,
    dirty_links: Vec<LinkId>,
    dirty_sessions: Vec<SessionId>,
    /// Links the peer detached that we answer at the next transmit (`closed` flag), after the
    /// dispositions and flows the application produced for what arrived before the detach.
    detach_replies: Vec<(LinkId, bool)>,
    error: Option<ConnectionError>,
    finished: bool,
    now: Instant,
    /// When the connection was created: the handshake deadline counts from here.
    started: Instant,
    /// When we wrote `close`: the close deadline counts from here.
    close_sent: Option<Instant>,
    last_recv: Instant,
    last_send: Instant,
    close_error: Option<Error>,
    lost_unsettled: Vec<DeliveryId>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("container_id", &self.config.container_id)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("sessions", &self.sessions.len())
            .field("links", &self.links.len())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A new connection for one transport. A client writes its protocol header at once; call
    /// [`open`](Self::open) to send `open` (it is pipelined behind SASL if need be).
    pub fn new(side: Side, config: ConnectionConfig, now: Instant) -> Connection {
        let decoder = FrameDecoder::new(config.max_frame_size.max(MIN_MAX_FRAME_SIZE))
            .with_limits(config.limits);
        let mut c = Connection {
            side,
            handshake: Handshake::new(side, &config),
            input: BytesMut::with_capacity(64 * 1024),
            joined: BytesMut::new(),
            // Grown on demand: an idle connection holds no output buffer of a busy one's size.
            // Grown on demand (see `amqp_out`): an idle connection holds no output buffer.
            out: BytesMut::new(),
            blocked_bytes: 0,
            pending_amqp: BytesMut::new(),
            decoder,
            identity: None,
            local: EndpointState::Uninit,
            remote: EndpointState::Uninit,
            remote_open: None,
            remote_max_frame: MIN_MAX_FRAME_SIZE,
            remote_channel_max: 0,
            remote_idle: None,
            sessions: Slab::default(),
            local_channels: IdMap::default(),
            channels: IdPool::default(),
            remote_channels: IdMap::default(),
            links: Slab::default(),
            events: VecDeque::new(),
            dirty_links: Vec::new(),
            detach_replies: Vec::new(),
            dirty_sessions: Vec::new(),
            error: None,
            finished: false,
            now,
            started: now,
            close_sent: None,
            last_recv: now,
            last_send: now,
            close_error: None,
            lost_unsettled: Vec::new(),
            config,
        };
        if let Some(h) = c.handshake.first_header() {
            c.out.put_slice(&h.to_bytes());
        }
        c
    }

    /// Which side of the transport we are.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The configuration.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// The peer's `open`, once it has arrived.
    pub fn remote_open(&self) -> Option<&Open> {
        self.remote_open.as_deref()
    }

    /// The peer's container id, once its `open` has arrived.
    pub fn remote_container_id(&self) -> Option<&str> {
        self.remote_open.as_ref().map(|o| &*o.container_id)
    }

    /// On a server, the identity the peer authenticated as (`"anonymous"` for ANONYMOUS).
    pub fn authenticated_identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// Local and remote state of the connection.
    pub fn state(&self) -> (EndpointState, EndpointState) {
        (self.local, self.remote)
    }

    /// The sticky fatal error, if the connection has failed.
    pub fn error(&self) -> Option<&ConnectionError> {
        self.error.as_ref()
    }

    /// True once nothing more will be read or written.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The largest frame we may send (the peer's max-frame-size, and 512 before its open).
    pub fn max_frame_size_out(&self) -> u32 {
        self.remote_max_frame
    }

    /// The channel number we use for a session (once we have begun it).
    pub fn session_channel(&self, s: SessionId) -> Option<u16> {
        self.sessions.get(s.0).map(|s| s.channel)
    }

    /// Local and remote state of a session.
    pub fn session_state(&self, s: SessionId) -> Option<(EndpointState, EndpointState)> {
        self.sessions.get(s.0).map(|s| (s.local, s.remote))
    }

    /// Local and remote state of a link.
    pub fn link_state(&self, l: LinkId) -> Option<(EndpointState, EndpointState)> {
        self.links.get(l.0).map(|l| (l.local, l.remote))
    }

    /// The session a link belongs to.
    pub fn link_session(&self, l: LinkId) -> Option<SessionId> {
        self.links.get(l.0).map(|l| l.session)
    }

    /// The link's name.
    pub fn link_name(&self, l: LinkId) -> Option<&str> {
        self.links.get(l.0).map(|l| &*l.name)
    }

    /// The link's role (ours).
    pub fn link_role(&self, l: LinkId) -> Option<Role> {
        self.links.get(l.0).map(|l| l.role)
    }

    /// The peer's `attach` for a link, once it has arrived.
    pub fn link_remote_attach(&self, l: LinkId) -> Option<&Attach> {
        self.links.get(l.0).and_then(|l| l.remote_attach.as_deref())
    }

    /// The link's local configuration (as attached or accepted).
    pub fn link_config(&self, l: LinkId) -> Option<&LinkConfig> {
        self.links.get(l.0).map(|l| &l.config)
    }

    /// A link's current credit: for senders, how many deliveries may be sent now; for
    /// receivers, how many we have granted and not yet received.
    pub fn link_credit(&self, l: LinkId) -> Option<u32> {
        self.links.get(l.0).map(|l| l.credit)
    }

    /// The number of unsettled deliveries on a session, ours (sent) and theirs (received).
    pub fn session_unsettled(&self, s: SessionId) -> Option<(usize, usize)> {
        self.sessions
            .get(s.0)
            .map(|s| (s.out_unsettled.len(), s.in_unsettled.len()))
    }

    /// Deliveries we sent that the peer has not settled, oldest first (the in-doubt set if the
    /// transport is lost now), including those of sessions that ended before the peer settled
    /// them.
    pub fn unsettled_sent(&self) -> Vec<DeliveryId> {
        // Those of sessions already ended (and of every session once the connection is
        // finished) are kept in `lost_unsettled`.
        let mut out = self.lost_unsettled.clone();
        if self.finished {
            return out;
        }
        for k in self.sessions.keys() {
            if let Some(s) = self.sessions.get(k) {
                out.extend(s.out_unsettled.iter().map(|(number, e)| DeliveryId {
                    link: e.link,
                    number,
                }));
            }
        }
        out
    }

    /// Takes the deliveries we sent on `lid` that the peer never settled, oldest first: a
    /// link that is over (detached, or gone with its session) can no longer learn their
    /// outcome, so they are in doubt now. Once taken they are no longer tracked here (nor
    /// returned by [`unsettled_sent`](Self::unsettled_sent)).
    pub fn take_unsettled_sent(&mut self, lid: LinkId) -> Vec<DeliveryId> {
        let mut out = Vec::new();
        self.lost_unsettled.retain(|d| {
            let ours = d.link == lid;
            if ours {
                out.push(*d);
            }
            !ours
        });
        let sid = self.links.get(lid.0).map(|l| l.session);
        if let Some(s) = sid.and_then(|sid| self.sessions.get_mut(sid.0)) {
            out.extend(
                s.out_unsettled
                    .iter()
                    .filter(|(_, e)| e.link == lid)
                    .map(|(number, _)| DeliveryId { link: lid, number }),
            );
            s.out_unsettled.retain(|e| e.link != lid);
        }
        out
    }

    /// The sessions currently known.
    pub fn sessions(&self) -> Vec<SessionId> {
        self.sessions.keys().map(SessionId).collect()
    }

    /// The links currently known.
    pub fn links(&self) -> Vec<LinkId> {
        self.links.keys().map(LinkId).collect()
    }

    /// The buffer to read transport bytes into directly (zero-copy input); call
    /// [`handle_read`](Self::handle_read) after appending to it.
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Feeds bytes read from the transport.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) -> Result<(), ConnectionError> {
        self.input.extend_from_slice(data);
        self.handle_read(now)
    }

    /// Feeds bytes read from the transport, taking the buffer: no copy when nothing is
    /// pending, or when `data` continues the buffer the pending bytes were split from (a
    /// reader that splits each read off one buffer); frames then share the reader's memory,
    /// and once every byte is consumed the connection holds none of it. When `data` starts a
    /// new buffer, only the bytes that complete the pending frame are copied; the rest is
    /// read in place.
    pub fn handle_input_owned(
        &mut self,
        mut data: BytesMut,
        now: Instant,
    ) -> Result<(), ConnectionError> {
        let continues = self.input.as_ptr().wrapping_add(self.input.len()) == data.as_ptr();
        if !self.input.is_empty() && !continues {
            if let Some(missing) = self.pending_frame_missing() {
                // Copying all of `data` after the pending bytes would keep every later read
                // copied too: complete the one frame, then take `data` over as it is.
                let head = data.split_to(missing.min(data.len()));
                let mut joined = std::mem::take(&mut self.joined);
                joined.clear();
                joined.extend_from_slice(&self.input);
                joined.extend_from_slice(&head);
                drop(head);
                self.input = joined;
                let r = self.handle_read(now);
                if self.input.is_empty() && self.input.capacity() <= JOINED_KEPT {
                    // What is left of the joining buffer: its memory, for the next cut frame.
                    self.joined = std::mem::take(&mut self.input);
                }
                r?;
            }
        }
        self.input.unsplit(data);
        let r = self.handle_read(now);
        if self.input.is_empty() {
            // An empty view still holds the reader's buffer it was split from: let it go, so
            // an idle connection keeps no read memory.
            self.input = BytesMut::new();
        }
        r
    }

    /// How many bytes the partial AMQP frame in `input` lacks, when its size is known (the
    /// connection is past its headers and the frame's size field has arrived).
    fn pending_frame_missing(&self) -> Option<usize> {
        if !matches!(self.handshake, Handshake::Amqp) {
            return None;
        }
        let size = self.input.get(..4)?;
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
        size.checked_sub(self.input.len()).filter(|&n| n > 0)
    }

    /// Processes bytes appended to [`input_buffer`](Self::input_buffer).
    pub fn handle_read(&mut self, now: Instant) -> Result<(), ConnectionError> {
        self.now = now;
        if !self.input.is_empty() {
            self.last_recv = now;
        }
        if let Some(e) = &self.error {
            self.input.clear();
            return Err(e.clone());
        }
        loop {
            let r = match self.handshake {
                Handshake::Done => {
                    self.input.clear();
                    Ok(false)
                }
                Handshake::Header { .. } | Handshake::SaslHeader(_) | Handshake::AmqpHeader => {
                    self.read_header()
                }
                Handshake::SaslClient(_) | Handshake::SaslServer(_) => self.read_sasl(),
                Handshake::Amqp => self.read_amqp(),
            };
            match r {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    self.fail(e.clone());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The transport ended (EOF or error). Anything not closed cleanly becomes an error.
    pub fn handle_transport_closed(&mut self, now: Instant) {
        self.now = now;
        if self.finished {
            return;
        }
        if self.error.is_none()
            && !(self.local == EndpointState::Closed && self.remote == EndpointState::Closed)
        {
            let e = ConnectionError {
                kind: ErrorKind::TransportEnded,
                origin: Origin::Remote,
                error: Error::new(
                    condition::CONNECTION_FORCED,
                    "transport closed before the connection was closed",
                ),
            };
            self.error = Some(e.clone());
            self.events.push_back(Event::Error(e));
        }
        self.finish();
    }

    /// Appends everything waiting to be written (many frames coalesced) to `buf`; returns how
    /// many bytes were added.
    pub fn poll_transmit(&mut self, buf: &mut BytesMut) -> usize {
        self.flush_deferred();
        let n = self.out.len();
        if n > 0 {
            self.last_send = self.now;
            if buf.is_empty() {
                std::mem::swap(buf, &mut self.out);
            } else {
                buf.extend_from_slice(&self.out);
                self.out.clear();
            }
        }
        n
    }

    /// Everything waiting to be written, as one buffer (empty if nothing).
    pub fn poll_transmit_bytes(&mut self) -> Bytes {
        self.flush_deferred();
        if !self.out.is_empty() {
            self.last_send = self.now;
        }
        self.out.split().freeze()
    }

    /// How many bytes are waiting to be written: encoded for
    /// [`poll_transmit`](Self::poll_transmit), plus the payloads of transfer frames held back
    /// by a peer's closed session window.
    pub fn pending_transmit_len(&self) -> usize {
        self.out.len().saturating_add(self.blocked_bytes)
    }

    /// True if [`poll_transmit`](Self::poll_transmit) has bytes to give.
    pub fn has_transmit(&self) -> bool {
        !self.out.is_empty()
            || !self.dirty_links.is_empty()
            || !self.dirty_sessions.is_empty()
            || !self.detach_replies.is_empty()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished || self.error.is_some() {
            return None;
        }
        let idle = self.config.idle_timeout.map(|idle| self.last_recv + idle);
        let heartbeat = self
            .remote_idle
            .filter(|_| self.handshake.amqp_header_sent(self.side))
            .map(|remote| self.last_send + remote / 2);
        [
            idle,
            heartbeat,
            self.handshake_deadline(),
            self.close_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When the peer's handshake must be complete, while its `open` has not arrived.
    fn handshake_deadline(&self) -> Option<Instant> {
        let limit = self.config.handshake_timeout?;
        (self.remote == EndpointState::Uninit).then_some(self.started + limit)
    }

    /// When we stop waiting for the peer's `close`, once we sent ours.
    fn close_deadline(&self) -> Option<Instant> {
        Some(self.close_sent? + self.config.close_timeout?)
    }

    /// Call when the deadline from [`poll_timeout`](Self::poll_timeout) passes: sends a
    /// heartbeat if one is due, or fails the connection if the peer has gone quiet.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.finished || self.error.is_some() {
            return;
        }
        if self.handshake_deadline().is_some_and(|d| now >= d) {
            let limit = self.config.handshake_timeout.unwrap_or_default();
            let e = ConnectionError::local(
                ErrorKind::HandshakeTimeout,
                condition::RESOURCE_LIMIT_EXCEEDED,
                format!(
                    "the peer did not complete the handshake (protocol header, SASL, open) \
                     within {} ms",
                    limit.as_millis()
                ),
            );
            self.fail(e);
            return;
        }
        if self.close_deadline().is_some_and(|d| now >= d) {
            // The peer never answered our close: the connection is over all the same.
            self.finish();
            return;
        }
        if let Some(idle) = self.config.idle_timeout {
            if now >= self.last_recv + idle {
                let e = ConnectionError::local(
                    ErrorKind::IdleTimeout,
                    condition::RESOURCE_LIMIT_EXCEEDED,
                    format!(
                        "local-idle-timeout expired: nothing received for {} ms",
                        idle.as_millis()
                    ),
                );
                self.fail(e);
                return;
            }
        }
        if let Some(remote) = self.remote_idle {
            if self.handshake.amqp_header_sent(self.side)
                && now >= self.last_send + remote / 2
                && self.out.is_empty()
            {
                frame::encode_empty_frame(&mut self.out);
                self.last_send = now;
            }
        }
    }

    fn check_usable(&self) -> Result<(), OpError> {
        if let Some(e) = &self.error {
            return Err(OpError::Closed(Some(e.clone())));
        }
        if self.finished || self.local == EndpointState::Closed {
            return Err(OpError::Closed(None));
        }
        Ok(())
    }
}

fn no_session(name: &str, channel: u16) -> ConnectionError {
    not_allowed(format!("{name} on channel {channel} with no session"))
}

fn decode_error(e: amqp_proto::DecodeError) -> ConnectionError {
    ConnectionError::local(ErrorKind::Decode, condition::DECODE_ERROR, e.to_string())
}

fn frame_error(e: FrameError) -> ConnectionError {
    match e {
        FrameError::Decode(e) => decode_error(e),
        FrameError::TooLarge { size, max } => framing(format!(
            "frame of {size} bytes exceeds our max-frame-size {max}"
        )),
        e => framing(e.to_string()),
    }
}

fn not_allowed(desc: impl Into<String>) -> ConnectionError {
    ConnectionError::local(ErrorKind::Protocol, condition::NOT_ALLOWED, desc)
}

fn sasl_error(e: crate::sasl::SaslError) -> ConnectionError {
    let cond = match &e {
        // No common mechanism is an authentication failure too, as in Proton.
        crate::sasl::SaslError::Auth(_) | crate::sasl::SaslError::NoMechanism(_) => {
            condition::UNAUTHORIZED_ACCESS
        }
        _ => condition::INTERNAL_ERROR,
    };
    let desc = e.to_string();
    ConnectionError {
        kind: ErrorKind::Sasl(e),
        origin: Origin::Local,
        error: Error::new(cond, desc),
    }
}
