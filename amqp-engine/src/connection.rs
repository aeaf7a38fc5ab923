//! The connection state machine: protocol headers, SASL, open/close, sessions, links,
//! transfers, flow control, dispositions, heartbeats and idle timeout.
//!
//! See the [crate documentation](crate) for the drive loop.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use amqp_proto::codec::{self, Encode};
use amqp_proto::definitions::{condition, Error, ReceiverSettleMode, Role, SenderSettleMode};
use amqp_proto::frame::{
    self, Decoded, FrameBody, FrameDecoder, FrameError, ProtocolHeader, ProtocolId,
    FRAME_HEADER_SIZE, MIN_MAX_FRAME_SIZE,
};
use amqp_proto::messaging::{DeliveryState, Source, TargetKind};
use amqp_proto::performatives::*;
use amqp_proto::{Symbol, Value};
use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::config::{ConnectionConfig, SaslMode, Side};
use crate::error::{framing, ConnectionError, ErrorKind, OpError, Origin};
use crate::event::{Event, IncomingDelivery};
use crate::ids::{DeliveryId, IdMap, Key, LinkId, SessionId, Slab};
use crate::sasl::machine::{ClientStep, SaslClient, SaslServer, ServerAction};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A protocol header (any, for a server; this one, for a client).
    Header(Option<ProtocolId>),
    Sasl,
    Amqp,
    Nothing,
}

#[derive(Debug)]
struct OutEntry {
    link: LinkId,
}

#[derive(Debug)]
struct InEntry {
    link: LinkId,
    /// Receiver settle mode second: the application settled, awaiting the sender's settlement.
    settle_pending: bool,
}

/// A ring of unsettled deliveries indexed by delivery-id (ids are allocated sequentially).
#[derive(Debug)]
struct Ring<T> {
    base: u32,
    items: VecDeque<Option<T>>,
}

impl<T> Ring<T> {
    fn new() -> Self {
        Ring {
            base: 0,
            items: VecDeque::new(),
        }
    }

    fn index(&self, id: u32) -> Option<usize> {
        let off = id.wrapping_sub(self.base) as usize;
        (off < self.items.len()).then_some(off)
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        let i = self.index(id)?;
        self.items.get_mut(i)?.as_mut()
    }

    /// Inserts `v` for `id`; ids must be increasing. Returns false if `id` is unusable.
    fn insert(&mut self, id: u32, v: T) -> bool {
        if self.items.is_empty() {
            self.base = id;
        }
        let off = id.wrapping_sub(self.base) as usize;
        if off < self.items.len() || off > self.items.len() + 65536 {
            return false;
        }
        while self.items.len() < off {
            self.items.push_back(None);
        }
        self.items.push_back(Some(v));
        true
    }

    fn remove(&mut self, id: u32) -> Option<T> {
        let i = self.index(id)?;
        let v = self.items.get_mut(i)?.take();
        while matches!(self.items.front(), Some(None)) {
            self.items.pop_front();
            self.base = self.base.wrapping_add(1);
        }
        v
    }

    /// Removes every entry of a span returned by [`span_in`](Self::span_in). A span at the
    /// front (the usual case: outcomes arrive in order) is dropped in one operation.
    fn remove_span(&mut self, lo: u32, n: u32) {
        let Some(start) = self.index(lo) else {
            return;
        };
        let end = (start + n as usize).min(self.items.len());
        if start == 0 {
            self.items.drain(..end);
            self.base = self.base.wrapping_add(end as u32);
            while matches!(self.items.front(), Some(None)) {
                self.items.pop_front();
                self.base = self.base.wrapping_add(1);
            }
        } else {
            // The front entry is present (removal trims empty ones), so nothing to trim.
            self.items.range_mut(start..end).for_each(|e| *e = None);
        }
    }

    /// The part of `first..=last` (serial-number order) that the ring spans, as its first id
    /// and a count; entries in it may be empty. Bounded by what is stored, not by the range,
    /// and computed without visiting the entries. Ids stay valid while entries are removed.
    fn span_in(&self, first: u32, last: u32) -> (u32, u32) {
        let len = self.items.len() as u32;
        let span = last.wrapping_sub(first);
        let lo = if first.wrapping_sub(self.base) < len {
            first
        } else if len > 0 && self.base.wrapping_sub(first) <= span {
            self.base
        } else {
            return (first, 0);
        };
        // lo is in the range, so last - lo cannot wrap; nor can the ring's rest past lo.
        let in_range = last.wrapping_sub(lo) as u64 + 1;
        let in_ring = len - lo.wrapping_sub(self.base);
        (lo, in_range.min(in_ring as u64) as u32)
    }

    fn retain(&mut self, mut f: impl FnMut(&T) -> bool) {
        for e in self.items.iter_mut() {
            if let Some(v) = e {
                if !f(v) {
                    *e = None;
                }
            }
        }
        while matches!(self.items.front(), Some(None)) {
            self.items.pop_front();
            self.base = self.base.wrapping_add(1);
        }
    }

    fn len(&self) -> usize {
        self.items.iter().filter(|e| e.is_some()).count()
    }
}

#[derive(Debug)]
struct PendingDisposition {
    role: Role,
    first: u32,
    last: u32,
    settled: bool,
    state: Option<DeliveryState>,
}

#[derive(Debug)]
struct BlockedTransfer {
    header: TransferHeader,
    payload: Bytes,
}

#[derive(Debug)]
struct Session {
    channel: u16,
    remote_channel: Option<u16>,
    local: EndpointState,
    remote: EndpointState,
    next_outgoing_id: u32,
    remote_incoming_window: u32,
    next_incoming_id: u32,
    incoming_window: u32,
    incoming_window_max: u32,
    remote_outgoing_window: u32,
    remote_handle_max: u32,
    local_handles: IdMap<u32, LinkId>,
    remote_handles: IdMap<u32, LinkId>,
    next_delivery_id: u32,
    out_unsettled: Ring<OutEntry>,
    in_unsettled: Ring<InEntry>,
    dispositions: Vec<PendingDisposition>,
    flow_dirty: bool,
    blocked: VecDeque<BlockedTransfer>,
    error: Option<Error>,
    properties: Option<amqp_proto::definitions::Fields>,
}

#[derive(Debug)]
struct Partial {
    number: u32,
    tag: Bytes,
    format: u32,
    settled: bool,
    state: Option<DeliveryState>,
    first: Option<Bytes>,
    buf: BytesMut,
    aborted: bool,
}

#[derive(Debug)]
struct Link {
    session: SessionId,
    name: bytestring::ByteString,
    role: Role,
    handle: u32,
    remote_handle: Option<u32>,
    local: EndpointState,
    remote: EndpointState,
    config: LinkConfig,
    remote_attach: Option<Box<Attach>>,
    delivery_count: u32,
    credit: u32,
    available: u32,
    /// Receiver: the drain mode we ask for. Sender: the receiver's, which is our actual drain
    /// mode and goes in every flow we send (2.7.4: "when the flow state is sent from the
    /// sender to the receiver, this field contains the actual drain mode of the sender").
    drain: bool,
    /// Sender: a drain request not yet answered by [`Connection::drained`].
    drain_pending: bool,
    flow_dirty: bool,
    next_tag: u64,
    partial: Option<Partial>,
    /// An aborted or refused delivery still receiving frames we discard.
    discarding: bool,
    max_message_size: u64,
    /// The peer's detach had `closed` set (mirrored when we answer it late).
    remote_closed: bool,
    /// Receiver: the furthest delivery-count any flow of ours allowed. A sender acting on an
    /// older, larger grant may legitimately send up to it after we lowered credit.
    credit_end: u32,
}

/// Encoded fields of a transfer frame header, kept for frames blocked on the session window.
#[derive(Debug, Clone)]
struct TransferHeader {
    handle: u32,
    /// The delivery this frame belongs to (on the wire only in its first frame).
    number: u32,
    delivery_id: Option<u32>,
    tag: Option<Bytes>,
    format: u32,
    settled: bool,
    more: bool,
    aborted: bool,
}

/// A sans-IO AMQP 1.0 connection.
pub struct Connection {
    side: Side,
    config: ConnectionConfig,
    expect: Expect,
    input: BytesMut,
    out: BytesMut,
    /// AMQP frames written before the AMQP header could be sent (pipelining through SASL).
    pending_amqp: BytesMut,
    amqp_header_sent: bool,
    decoder: FrameDecoder,
    sasl_client: Option<SaslClient>,
    sasl_server: Option<SaslServer>,
    authenticated: Option<String>,
    local: EndpointState,
    remote: EndpointState,
    remote_open: Option<Box<Open>>,
    remote_max_frame: u32,
    remote_channel_max: u16,
    remote_idle: Option<Duration>,
    sessions: Slab<Session>,
    local_channels: IdMap<u16, SessionId>,
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

/// The delivery-count up to which `credit` from `delivery_count` allows transfers (credit
/// beyond 2^31 is capped so serial-number comparisons stay meaningful).
fn credit_end(delivery_count: u32, credit: u32) -> u32 {
    delivery_count.wrapping_add(credit.min(i32::MAX as u32))
}

/// Delivery tags: 8-byte counters on the stack, written straight into the frame.
fn tag_bytes(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Size of the transfer performative (descriptor + list) for these fields.
fn transfer_len(
    h: u32,
    id: Option<u32>,
    tag: Option<&[u8]>,
    fmt: u32,
    settled: bool,
    more: bool,
) -> (usize, usize, usize) {
    // Fields: handle, delivery-id, delivery-tag, message-format, settled, more.
    let lens = [
        h.encoded_len(),
        id.map_or(1, |v| v.encoded_len()),
        tag.map_or(1, |t| codec::var_len(t.len())),
        if id.is_some() || fmt != 0 {
            fmt.encoded_len()
        } else {
            1
        },
        1,
        1,
    ];
    let count = if more {
        6
    } else if settled {
        5
    } else if id.is_some() || tag.is_some() {
        4
    } else {
        1
    };
    let body: usize = lens[..count].iter().sum();
    (
        codec::descriptor_code_len(0x14) + codec::compound_len(count, body),
        count,
        body,
    )
}

/// Writes a whole transfer frame header (frame header, descriptor, list header and fields, as
/// sized by [`transfer_len`]) for a frame of `size` bytes on channel `ch`. The bytes are
/// written by index into a slice grown once, rather than byte by byte through `BufMut`.
#[allow(clippy::too_many_arguments)]
fn put_transfer(
    buf: &mut BytesMut,
    size: usize,
    ch: u16,
    h: u32,
    id: Option<u32>,
    tag: Option<&[u8]>,
    fmt: u32,
    settled: bool,
    more: bool,
    count: usize,
    body: usize,
) {
    let hlen =
        FRAME_HEADER_SIZE + codec::descriptor_code_len(0x14) + codec::compound_len(count, body);
    if hlen <= 64 {
        // The usual case (tags up to ~30 bytes): built on the stack, appended in one copy.
        let mut stack = [0u8; 64];
        let mut w = SliceWriter {
            buf: &mut stack,
            pos: 0,
        };
        w.transfer(size, ch, h, id, tag, fmt, settled, more, count, body);
        debug_assert_eq!(w.pos, hlen);
        buf.extend_from_slice(&stack[..hlen]);
    } else {
        let start = buf.len();
        buf.resize(start + hlen, 0);
        let mut w = SliceWriter {
            buf: &mut buf[start..],
            pos: 0,
        };
        w.transfer(size, ch, h, id, tag, fmt, settled, more, count, body);
        debug_assert_eq!(w.pos, hlen);
    }
}

impl SliceWriter<'_> {
    /// The transfer frame header of [`put_transfer`].
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn transfer(
        &mut self,
        size: usize,
        ch: u16,
        h: u32,
        id: Option<u32>,
        tag: Option<&[u8]>,
        fmt: u32,
        settled: bool,
        more: bool,
        count: usize,
        body: usize,
    ) {
        use codec::code;
        self.put(&(size as u32).to_be_bytes());
        self.put(&[2, frame::FRAME_TYPE_AMQP]);
        self.put(&ch.to_be_bytes());
        self.put(&[code::DESCRIBED, code::SMALLULONG, 0x14]);
        if body < 255 && count <= 255 {
            self.put(&[code::LIST8, (body + 1) as u8, count as u8]);
        } else {
            self.u8(code::LIST32);
            self.put(&((body + 4) as u32).to_be_bytes());
            self.put(&(count as u32).to_be_bytes());
        }
        self.uint(h);
        if count > 1 {
            match id {
                Some(id) => self.uint(id),
                None => self.u8(code::NULL),
            }
        }
        if count > 2 {
            match tag {
                Some(t) if t.len() <= 255 => {
                    self.put(&[code::VBIN8, t.len() as u8]);
                    self.put(t);
                }
                Some(t) => {
                    self.u8(code::VBIN32);
                    self.put(&(t.len() as u32).to_be_bytes());
                    self.put(t);
                }
                None => self.u8(code::NULL),
            }
        }
        if count > 3 {
            if id.is_some() || fmt != 0 {
                self.uint(fmt);
            } else {
                self.u8(code::NULL);
            }
        }
        if count > 4 {
            self.u8(if settled { code::TRUE } else { code::FALSE });
        }
        if count > 5 {
            self.u8(if more { code::TRUE } else { code::FALSE });
        }
    }
}

/// The fields of an incoming transfer the engine acts on (its `state` travels separately):
/// a fifth of the size of [`Transfer`], which is moved less and built faster.
#[derive(Debug, PartialEq)]
struct TransferIn {
    handle: u32,
    delivery_id: Option<u32>,
    delivery_tag: Option<Bytes>,
    message_format: Option<u32>,
    settled: Option<bool>,
    more: Option<bool>,
    aborted: Option<bool>,
}

impl TransferIn {
    fn from_transfer(t: Transfer) -> (TransferIn, Option<DeliveryState>) {
        let fields = TransferIn {
            handle: t.handle,
            delivery_id: t.delivery_id,
            delivery_tag: t.delivery_tag,
            message_format: t.message_format,
            settled: t.settled,
            more: t.more,
            aborted: t.aborted,
        };
        (fields, t.state)
    }
}

/// Decodes a transfer's field list (at `start` in the frame, after the descriptor), returning
/// it and where the payload starts, when it has the
/// common shape: a `list8` of at most six fields - handle, delivery-id, delivery-tag,
/// message-format, settled, more - each null or in one of the encodings below. Anything else
/// (other encodings, later fields, a missing handle, malformed bytes) returns `None` and goes
/// through the generic decoder, which accepts every encoding and reports errors.
fn decode_transfer_common(frame: &Bytes, start: usize) -> Option<(TransferIn, usize)> {
    use codec::code;
    let body = frame.get(start..)?;
    let [code::LIST8, size, count, ..] = *body else {
        return None;
    };
    let end = start + 2 + size as usize;
    if !(1..=6).contains(&count) || end > frame.len() {
        return None;
    }
    let mut r = SliceReader {
        buf: &frame[..end],
        pos: start + 3,
    };
    let mut t = TransferIn {
        handle: r.uint()??,
        delivery_id: None,
        delivery_tag: None,
        message_format: None,
        settled: None,
        more: None,
        aborted: None,
    };
    if count > 1 {
        t.delivery_id = r.uint()?;
    }
    if count > 2 {
        t.delivery_tag = match r.u8()? {
            code::NULL => None,
            code::VBIN8 => {
                let n = r.u8()? as usize;
                let tag_at = r.pos;
                r.pos += n;
                if r.pos > end {
                    return None;
                }
                Some(frame.slice(tag_at..r.pos))
            }
            _ => return None,
        };
    }
    if count > 3 {
        t.message_format = r.uint()?;
    }
    if count > 4 {
        t.settled = r.bool()?;
    }
    if count > 5 {
        t.more = r.bool()?;
    }
    (r.pos == end).then_some((t, end))
}

/// Reads the primitive encodings [`decode_transfer_common`] accepts; `None` for any other.
struct SliceReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl SliceReader<'_> {
    #[inline]
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// A `uint` (uint0, smalluint or uint), or null.
    #[inline]
    fn uint(&mut self) -> Option<Option<u32>> {
        use codec::code;
        Some(match self.u8()? {
            code::NULL => None,
            code::UINT0 => Some(0),
            code::SMALLUINT => Some(self.u8()? as u32),
            code::UINT => {
                let b = self.buf.get(self.pos..self.pos + 4)?;
                self.pos += 4;
                Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            _ => return None,
        })
    }

    /// A `boolean` (true or false), or null.
    #[inline]
    fn bool(&mut self) -> Option<Option<bool>> {
        use codec::code;
        Some(match self.u8()? {
            code::NULL => None,
            code::TRUE => Some(true),
            code::FALSE => Some(false),
            _ => return None,
        })
    }
}

/// Writes into a slice of known size (bounds-checked, no capacity checks per byte).
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl SliceWriter<'_> {
    #[inline]
    fn u8(&mut self, b: u8) {
        self.buf[self.pos] = b;
        self.pos += 1;
    }

    #[inline]
    fn put(&mut self, s: &[u8]) {
        self.buf[self.pos..self.pos + s.len()].copy_from_slice(s);
        self.pos += s.len();
    }

    /// A `uint` in its smallest encoding (as `u32::encode`).
    #[inline]
    fn uint(&mut self, v: u32) {
        match v {
            0 => self.u8(codec::code::UINT0),
            1..=255 => self.put(&[codec::code::SMALLUINT, v as u8]),
            _ => {
                self.u8(codec::code::UINT);
                self.put(&v.to_be_bytes());
            }
        }
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
            expect: Expect::Header(None),
            input: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::with_capacity(64 * 1024),
            pending_amqp: BytesMut::new(),
            amqp_header_sent: false,
            decoder,
            sasl_client: None,
            sasl_server: None,
            authenticated: None,
            local: EndpointState::Uninit,
            remote: EndpointState::Uninit,
            remote_open: None,
            remote_max_frame: MIN_MAX_FRAME_SIZE,
            remote_channel_max: 0,
            remote_idle: None,
            sessions: Slab::default(),
            local_channels: IdMap::default(),
            remote_channels: IdMap::default(),
            links: Slab::default(),
            events: VecDeque::new(),
            dirty_links: Vec::new(),
            detach_replies: Vec::new(),
            dirty_sessions: Vec::new(),
            error: None,
            finished: false,
            now,
            last_recv: now,
            last_send: now,
            close_error: None,
            lost_unsettled: Vec::new(),
            config,
        };
        match (side, &c.config.sasl) {
            (Side::Client, SaslMode::Client(cfg)) => {
                c.sasl_client = Some(SaslClient::new(
                    cfg.clone(),
                    c.config.transport_encrypted,
                    c.config.transport_identity.is_some(),
                    c.config.hostname.clone(),
                ));
                c.out.put_slice(&ProtocolHeader::SASL.to_bytes());
                c.expect = Expect::Header(Some(ProtocolId::Sasl));
            }
            (Side::Client, _) => {
                c.out.put_slice(&ProtocolHeader::AMQP.to_bytes());
                c.amqp_header_sent = true;
                c.expect = Expect::Header(Some(ProtocolId::Amqp));
            }
            (Side::Server, SaslMode::Server(cfg)) => {
                c.sasl_server = Some(SaslServer::new(
                    cfg.clone(),
                    c.config.transport_identity.clone(),
                ));
            }
            (Side::Server, _) => {}
        }
        c
    }

    // ------------------------------------------------------------------------------------
    // Accessors
    // ------------------------------------------------------------------------------------

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
        self.authenticated.as_deref()
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
    /// transport is lost now).
    pub fn unsettled_sent(&self) -> Vec<DeliveryId> {
        if self.finished {
            return self.lost_unsettled.clone();
        }
        let mut out = Vec::new();
        for k in self.sessions.keys() {
            if let Some(s) = self.sessions.get(k) {
                for (i, e) in s.out_unsettled.items.iter().enumerate() {
                    if let Some(e) = e {
                        out.push(DeliveryId {
                            link: e.link,
                            number: s.out_unsettled.base.wrapping_add(i as u32),
                        });
                    }
                }
            }
        }
        out
    }

    /// The sessions currently known.
    pub fn sessions(&self) -> Vec<SessionId> {
        self.sessions.keys().into_iter().map(SessionId).collect()
    }

    /// The links currently known.
    pub fn links(&self) -> Vec<LinkId> {
        self.links.keys().into_iter().map(LinkId).collect()
    }

    // ------------------------------------------------------------------------------------
    // Driving
    // ------------------------------------------------------------------------------------

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
            let r = match self.expect {
                Expect::Nothing => {
                    self.input.clear();
                    Ok(false)
                }
                Expect::Header(want) => self.read_header(want),
                Expect::Sasl => self.read_sasl(),
                Expect::Amqp => self.read_amqp(),
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
        let mut t: Option<Instant> = None;
        if let Some(idle) = self.config.idle_timeout {
            t = Some(self.last_recv + idle);
        }
        if let Some(remote) = self.remote_idle {
            if self.amqp_header_sent {
                let hb = self.last_send + remote / 2;
                t = Some(t.map_or(hb, |x| x.min(hb)));
            }
        }
        t
    }

    /// Call when the deadline from [`poll_timeout`](Self::poll_timeout) passes: sends a
    /// heartbeat if one is due, or fails the connection if the peer has gone quiet.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.finished || self.error.is_some() {
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
            if self.amqp_header_sent && now >= self.last_send + remote / 2 && self.out.is_empty() {
                frame::encode_empty_frame(&mut self.out);
                self.last_send = now;
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // Input
    // ------------------------------------------------------------------------------------

    fn read_header(&mut self, want: Option<ProtocolId>) -> Result<bool, ConnectionError> {
        let h = match ProtocolHeader::parse(&self.input) {
            Ok(None) => return Ok(false),
            Ok(Some(h)) => h,
            Err(e) => {
                // Tell the peer what we speak, then give up.
                if self.side == Side::Server {
                    let ours = if self.sasl_server.is_some() {
                        ProtocolHeader::SASL
                    } else {
                        ProtocolHeader::AMQP
                    };
                    self.out.put_slice(&ours.to_bytes());
                }
                return Err(ConnectionError::local(
                    ErrorKind::ProtocolHeader,
                    condition::NOT_ALLOWED,
                    e.to_string(),
                ));
            }
        };
        let _ = self.input.split_to(ProtocolHeader::SIZE);
        match self.side {
            Side::Client => {
                if Some(h.id) != want {
                    return Err(ConnectionError::local(
                        ErrorKind::ProtocolHeader,
                        condition::NOT_ALLOWED,
                        format!(
                            "expected {} header, peer sent {h}",
                            match want {
                                Some(ProtocolId::Sasl) => "SASL",
                                _ => "AMQP",
                            }
                        ),
                    ));
                }
                self.expect = if h.id == ProtocolId::Sasl {
                    Expect::Sasl
                } else {
                    Expect::Amqp
                };
            }
            Side::Server => match h.id {
                ProtocolId::Sasl if self.sasl_server.is_some() && self.authenticated.is_none() => {
                    self.out.put_slice(&ProtocolHeader::SASL.to_bytes());
                    let mechs = self.sasl_server.as_ref().map(SaslServer::mechanisms_frame);
                    if let Some(m) = mechs {
                        frame::encode_sasl_frame(&mut self.out, &m);
                    }
                    self.expect = Expect::Sasl;
                }
                ProtocolId::Amqp
                    if self.sasl_server.is_none()
                        || self.authenticated.is_some()
                        || matches!(&self.config.sasl, SaslMode::Server(s) if s.allow_skip_sasl) =>
                {
                    if self.authenticated.is_none() && self.sasl_server.is_some() {
                        self.authenticated = Some("anonymous".into());
                    }
                    self.send_amqp_header();
                    self.expect = Expect::Amqp;
                }
                _ => {
                    let ours = if self.sasl_server.is_some() && self.authenticated.is_none() {
                        ProtocolHeader::SASL
                    } else {
                        ProtocolHeader::AMQP
                    };
                    self.out.put_slice(&ours.to_bytes());
                    return Err(ConnectionError::local(
                        ErrorKind::ProtocolHeader,
                        condition::NOT_ALLOWED,
                        format!("peer sent {h} header; this server requires {ours}"),
                    ));
                }
            },
        }
        Ok(true)
    }

    fn next_frame(&mut self) -> Result<Option<frame::Frame>, ConnectionError> {
        match self.decoder.decode(&mut self.input) {
            Ok(Decoded::Frame(f)) => Ok(Some(f)),
            Ok(Decoded::NeedMore(_)) => Ok(None),
            Err(e) => Err(frame_error(e)),
        }
    }

    fn read_sasl(&mut self) -> Result<bool, ConnectionError> {
        let Some(f) = self.next_frame()? else {
            return Ok(false);
        };
        let sf = match f.body {
            FrameBody::Sasl(s) => s,
            FrameBody::Empty => return Ok(true),
            FrameBody::Amqp { performative, .. } => {
                return Err(framing(format!(
                    "{} frame during SASL negotiation",
                    performative.name()
                )))
            }
        };
        if let Some(client) = self.sasl_client.as_mut() {
            match client.handle(sf) {
                Ok(ClientStep::Send(f)) => frame::encode_sasl_frame(&mut self.out, &f),
                Ok(ClientStep::Done) => {
                    let mech = client.mechanism().map(str::to_owned);
                    self.events.push_back(Event::Authenticated {
                        mechanism: mech,
                        identity: None,
                    });
                    self.authenticated = Some(String::new());
                    self.send_amqp_header();
                    self.expect = Expect::Header(Some(ProtocolId::Amqp));
                }
                Err(e) => return Err(sasl_error(e)),
            }
        } else if let Some(server) = self.sasl_server.as_mut() {
            match server.handle(sf) {
                ServerAction::Send(f) => frame::encode_sasl_frame(&mut self.out, &f),
                ServerAction::Success(f, identity) => {
                    frame::encode_sasl_frame(&mut self.out, &f);
                    let mech = server.mechanism().map(str::to_owned);
                    self.events.push_back(Event::Authenticated {
                        mechanism: mech,
                        identity: Some(identity.clone()),
                    });
                    self.authenticated = Some(identity);
                    self.expect = Expect::Header(Some(ProtocolId::Amqp));
                }
                ServerAction::Failure(f, e) => {
                    frame::encode_sasl_frame(&mut self.out, &f);
                    // The outcome tells the peer; no AMQP close can follow a failed SASL exchange.
                    let err = sasl_error(e);
                    self.error = Some(err.clone());
                    self.events.push_back(Event::Error(err.clone()));
                    self.finish();
                    return Err(err);
                }
            }
        } else {
            return Err(framing("SASL frame without a SASL layer"));
        }
        Ok(true)
    }

    fn read_amqp(&mut self) -> Result<bool, ConnectionError> {
        let size = match self.decoder.frame_size(&self.input) {
            Ok(Decoded::Frame(size)) => size,
            Ok(Decoded::NeedMore(_)) => return Ok(false),
            Err(e) => return Err(frame_error(e)),
        };
        let bytes = self.input.split_to(size).freeze();
        // Fast path for the per-message performatives (transfer, disposition, flow): decoded
        // straight into their struct and handled, without building a `Frame` and a
        // `Performative` (hundreds of bytes, moved several times per frame).
        if bytes[5] == frame::FRAME_TYPE_AMQP {
            let doff = bytes[4] as usize * 4;
            if let [0x00, 0x53, code @ 0x13..=0x15, ..] = bytes[doff..] {
                let channel = u16::from_be_bytes([bytes[6], bytes[7]]);
                // The performative's list starts after the 3-byte descriptor.
                let start = doff + 3;
                let body = || bytes.slice(start..);
                let limits = self.config.limits;
                let name = match code {
                    0x13 => Flow::NAME,
                    0x14 => Transfer::NAME,
                    _ => Disposition::NAME,
                };
                match code {
                    0x13 => {
                        let body = body();
                        let mut d = codec::Decoder::with_limits(&body, limits);
                        let f = Flow::decode_body(&mut d).map_err(decode_error)?;
                        if let Some(sid) = self.session_for(channel, name)? {
                            self.on_flow(sid, f)?;
                        }
                    }
                    0x14 => {
                        let (t, state, payload) = match decode_transfer_common(&bytes, start) {
                            Some((t, end)) => {
                                // The payload is the rest of the frame: reuse its reference.
                                let mut payload = bytes;
                                payload.advance(end);
                                (t, None, payload)
                            }
                            None => {
                                let body = body();
                                let mut d = codec::Decoder::with_limits(&body, limits);
                                let t = Transfer::decode_body(&mut d).map_err(decode_error)?;
                                let (t, state) = TransferIn::from_transfer(t);
                                (t, state, d.rest_bytes())
                            }
                        };
                        if let Some(sid) = self.session_for(channel, name)? {
                            self.on_transfer(sid, t, state, payload)?;
                        }
                    }
                    _ => {
                        let body = body();
                        let mut d = codec::Decoder::with_limits(&body, limits);
                        let disp = Disposition::decode_body(&mut d).map_err(decode_error)?;
                        if let Some(sid) = self.session_for(channel, name)? {
                            self.on_disposition(sid, disp)?;
                        }
                    }
                }
                return Ok(self.expect == Expect::Amqp);
            }
        }
        let f = self.decoder.decode_frame(&bytes).map_err(frame_error)?;
        match f.body {
            FrameBody::Empty => Ok(true),
            FrameBody::Sasl(s) => Err(framing(format!(
                "SASL {} frame after SASL completed",
                s.name()
            ))),
            FrameBody::Amqp {
                performative,
                payload,
            } => {
                self.handle_performative(f.channel, performative, payload)?;
                Ok(self.expect == Expect::Amqp)
            }
        }
    }

    fn handle_performative(
        &mut self,
        channel: u16,
        p: Performative,
        payload: Bytes,
    ) -> Result<(), ConnectionError> {
        if self.remote == EndpointState::Uninit && !matches!(p, Performative::Open(_)) {
            return Err(not_allowed(format!("{} before open", p.name())));
        }
        if self.remote == EndpointState::Closed {
            return Err(not_allowed(format!("{} after close", p.name())));
        }
        match p {
            Performative::Open(o) => self.on_open(o),
            Performative::Close(c) => self.on_close(c),
            Performative::Begin(b) => self.on_begin(channel, b),
            other => {
                let Some(&sid) = self.remote_channels.get(&channel) else {
                    return Err(no_session(other.name(), channel));
                };
                // After we sent end, the peer's frames in flight are discarded until its end.
                let ending = self
                    .sessions
                    .get(sid.0)
                    .is_some_and(|s| s.local == EndpointState::Closed);
                if ending && !matches!(other, Performative::End(_)) {
                    return Ok(());
                }
                match other {
                    Performative::End(e) => self.on_end(sid, e),
                    Performative::Attach(a) => self.on_attach(sid, a),
                    Performative::Flow(f) => self.on_flow(sid, f),
                    Performative::Transfer(t) => {
                        let (t, state) = TransferIn::from_transfer(t);
                        self.on_transfer(sid, t, state, payload)
                    }
                    Performative::Disposition(d) => self.on_disposition(sid, d),
                    Performative::Detach(d) => self.on_detach(sid, d),
                    _ => Ok(()),
                }
            }
        }
    }

    /// The checks of [`handle_performative`](Self::handle_performative) for a session-level
    /// performative other than `begin` or `end`, and its session; `None` when the frame is to be
    /// discarded (we ended the session and await the peer's end).
    #[inline]
    fn session_for(
        &self,
        channel: u16,
        name: &'static str,
    ) -> Result<Option<SessionId>, ConnectionError> {
        if self.remote == EndpointState::Uninit {
            return Err(not_allowed(format!("{name} before open")));
        }
        if self.remote == EndpointState::Closed {
            return Err(not_allowed(format!("{name} after close")));
        }
        match self.remote_channels.get(&channel) {
            Some(&sid) => Ok(self
                .sessions
                .get(sid.0)
                .is_some_and(|s| s.local != EndpointState::Closed)
                .then_some(sid)),
            None => Err(no_session(name, channel)),
        }
    }

    fn on_open(&mut self, o: Open) -> Result<(), ConnectionError> {
        if self.remote != EndpointState::Uninit {
            return Err(not_allowed("second open"));
        }
        self.remote = EndpointState::Active;
        let mfs = o.max_frame_size();
        if mfs < MIN_MAX_FRAME_SIZE {
            return Err(ConnectionError::local(
                ErrorKind::Protocol,
                condition::INVALID_FIELD,
                format!("max-frame-size {mfs} below the minimum 512"),
            ));
        }
        self.remote_max_frame = mfs;
        self.remote_channel_max = o.channel_max();
        self.remote_idle = o
            .idle_time_out
            .filter(|&ms| ms > 0)
            .map(|ms| Duration::from_millis(ms as u64));
        self.remote_open = Some(Box::new(o));
        self.events.push_back(Event::ConnectionOpened);
        Ok(())
    }

    fn on_close(&mut self, c: Close) -> Result<(), ConnectionError> {
        self.remote = EndpointState::Closed;
        let err = c.error.clone();
        self.events
            .push_back(Event::ConnectionClosed { error: c.error });
        if let Some(e) = err {
            let ce = ConnectionError {
                kind: ErrorKind::RemoteClose,
                origin: Origin::Remote,
                error: e,
            };
            if self.error.is_none() {
                self.error = Some(ce);
            }
        }
        if self.local != EndpointState::Closed {
            if self.local == EndpointState::Uninit {
                // A close must follow an open of ours (2.4.5).
                self.write_open();
            }
            self.write_close(None);
        }
        self.finish();
        Ok(())
    }

    fn on_begin(&mut self, channel: u16, b: Begin) -> Result<(), ConnectionError> {
        if channel > self.config.channel_max {
            return Err(not_allowed(format!(
                "channel {channel} exceeds channel-max {}",
                self.config.channel_max
            )));
        }
        if self.remote_channels.contains_key(&channel) {
            return Err(not_allowed(format!(
                "begin on channel {channel} already in use"
            )));
        }
        let (sid, remote_initiated) = match b.remote_channel {
            Some(ours) => {
                let Some(&sid) = self.local_channels.get(&ours) else {
                    return Err(not_allowed(format!("begin answers unknown channel {ours}")));
                };
                match self.sessions.get(sid.0) {
                    Some(s) if s.remote == EndpointState::Uninit && s.remote_channel.is_none() => {}
                    _ => return Err(not_allowed(format!("begin answers channel {ours} twice"))),
                }
                (sid, false)
            }
            None => {
                let s = self.new_session(None, SessionConfig::default());
                (SessionId(self.sessions.insert(s)), true)
            }
        };
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return Ok(());
        };
        s.remote = EndpointState::Active;
        s.remote_channel = Some(channel);
        s.next_incoming_id = b.next_outgoing_id;
        s.remote_incoming_window = b.incoming_window;
        s.remote_outgoing_window = b.outgoing_window;
        s.remote_handle_max = b.handle_max();
        self.remote_channels.insert(channel, sid);
        self.events.push_back(Event::SessionOpened {
            session: sid,
            remote_initiated,
        });
        Ok(())
    }

    fn on_end(&mut self, sid: SessionId, e: End) -> Result<(), ConnectionError> {
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return Ok(());
        };
        s.remote = EndpointState::Closed;
        if let Some(ch) = s.remote_channel {
            self.remote_channels.remove(&ch);
        }
        let local = s.local;
        self.events.push_back(Event::SessionEnded {
            session: sid,
            error: e.error,
        });
        match local {
            EndpointState::Active => self.write_end(sid, None),
            // Never begun: answer with begin + end now, or when we open.
            EndpointState::Uninit if self.local == EndpointState::Active => {
                let _ = self.answer_session(sid);
            }
            _ => {}
        }
        self.maybe_free_session(sid);
        Ok(())
    }

    fn session_error(
        &mut self,
        sid: SessionId,
        cond: Symbol,
        desc: String,
    ) -> Result<(), ConnectionError> {
        let err = Error::new(cond, desc);
        self.events.push_back(Event::SessionError {
            session: sid,
            error: err.clone(),
        });
        let local_open = self
            .sessions
            .get(sid.0)
            .is_some_and(|s| s.local != EndpointState::Closed);
        if local_open {
            self.write_end(sid, Some(err));
        }
        Ok(())
    }

    fn link_error(&mut self, lid: LinkId, cond: Symbol, desc: String) {
        let err = Error::new(cond, desc);
        self.events.push_back(Event::LinkError {
            link: lid,
            error: err.clone(),
        });
        if self
            .links
            .get(lid.0)
            .is_some_and(|l| l.local != EndpointState::Closed)
        {
            self.write_detach(lid, true, Some(err));
        }
        if let Some(l) = self.links.get_mut(lid.0) {
            l.partial = None;
            l.discarding = true;
        }
    }

    fn on_attach(&mut self, sid: SessionId, a: Attach) -> Result<(), ConnectionError> {
        let Some(s) = self.sessions.get(sid.0) else {
            return Ok(());
        };
        if s.local == EndpointState::Closed {
            return Ok(());
        }
        if a.handle > self.config.handle_max {
            return self.session_error(
                sid,
                condition::NOT_ALLOWED,
                format!(
                    "handle {} exceeds handle-max {}",
                    a.handle, self.config.handle_max
                ),
            );
        }
        if s.remote_handles.contains_key(&a.handle) {
            return self.session_error(
                sid,
                condition::HANDLE_IN_USE,
                format!("handle {} already attached", a.handle),
            );
        }
        // Our role is the opposite of theirs; find a link of ours with that name awaiting an attach.
        let our_role = match a.role {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        };
        let existing = s.local_handles.values().copied().find(|l| {
            self.links.get(l.0).is_some_and(|l| {
                l.name == a.name && l.role == our_role && l.remote == EndpointState::Uninit
            })
        });
        let (lid, remote_initiated) = match existing {
            Some(l) => (l, false),
            None => {
                let link = Link {
                    session: sid,
                    name: a.name.clone(),
                    role: our_role,
                    handle: u32::MAX,
                    remote_handle: None,
                    local: EndpointState::Uninit,
                    remote: EndpointState::Uninit,
                    config: LinkConfig {
                        name: a.name.to_string(),
                        ..LinkConfig::default()
                    },
                    remote_attach: None,
                    delivery_count: 0,
                    credit: 0,
                    available: 0,
                    drain: false,
                    drain_pending: false,
                    flow_dirty: false,
                    next_tag: 0,
                    partial: None,
                    discarding: false,
                    max_message_size: self.config.max_message_size,
                    remote_closed: false,
                    credit_end: 0,
                };
                (LinkId(self.links.insert(link)), true)
            }
        };
        let handle = a.handle;
        let Some(l) = self.links.get_mut(lid.0) else {
            return Ok(());
        };
        l.remote = EndpointState::Active;
        l.remote_handle = Some(handle);
        if our_role == Role::Receiver {
            // The sender's initial delivery-count is our starting point: grants made before
            // its attach arrived move with it.
            let initial = a.initial_delivery_count.unwrap_or(0);
            let shift = initial.wrapping_sub(l.delivery_count);
            l.delivery_count = initial;
            l.credit_end = l.credit_end.wrapping_add(shift);
        }
        l.remote_attach = Some(Box::new(a));
        if let Some(s) = self.sessions.get_mut(sid.0) {
            s.remote_handles.insert(handle, lid);
        }
        self.events.push_back(Event::LinkOpened {
            link: lid,
            remote_initiated,
        });
        Ok(())
    }

    fn on_detach(&mut self, sid: SessionId, d: Detach) -> Result<(), ConnectionError> {
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return Ok(());
        };
        let Some(lid) = s.remote_handles.remove(&d.handle) else {
            return self.session_error(
                sid,
                condition::UNATTACHED_HANDLE,
                format!("detach of unattached handle {}", d.handle),
            );
        };
        let closed = d.closed.unwrap_or(false);
        let Some(l) = self.links.get_mut(lid.0) else {
            return Ok(());
        };
        l.remote = EndpointState::Closed;
        l.remote_handle = None;
        l.remote_closed = closed;
        let local = l.local;
        self.events.push_back(Event::LinkClosed {
            link: lid,
            closed,
            error: d.error,
        });
        let session_active = self
            .sessions
            .get(sid.0)
            .is_some_and(|s| s.local == EndpointState::Active);
        match local {
            // Answered at the next transmit, not now: the application may still settle
            // deliveries that arrived before the detach (a sender that sends and detaches at
            // once, as Proton's helloworld does, then waits for the outcome). Proton writes
            // those dispositions before the detach too.
            EndpointState::Active => self.detach_replies.push((lid, closed)),
            // Never attached: answer with attach (no terminus) + detach now, or when the
            // session is begun.
            EndpointState::Uninit if session_active => {
                if let Some(l) = self.links.get_mut(lid.0) {
                    l.config.source = None;
                    l.config.target = None;
                }
                let _ = self.answer_link(lid);
            }
            _ => {}
        }
        self.maybe_free_link(lid);
        Ok(())
    }

    fn on_flow(&mut self, sid: SessionId, f: Flow) -> Result<(), ConnectionError> {
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return Ok(());
        };
        // Session flow state (2.5.6): the peer's incoming window as seen from our
        // next-outgoing-id. Without next-incoming-id (sent before our begin reached the
        // peer) it counts from our initial next-outgoing-id, 0. Transfers of ours the peer
        // had not seen when it wrote this use the window up (never below zero).
        let nid = f.next_incoming_id.unwrap_or(0);
        let in_flight = s.next_outgoing_id.wrapping_sub(nid);
        let in_flight = if (in_flight as i32) < 0 { 0 } else { in_flight };
        s.remote_incoming_window = f.incoming_window.saturating_sub(in_flight);
        s.remote_outgoing_window = f.outgoing_window;
        let echo = f.echo.unwrap_or(false);
        let Some(handle) = f.handle else {
            if echo {
                s.flow_dirty = true;
                self.dirty_sessions.push(sid);
            }
            self.unblock_session(sid);
            return Ok(());
        };
        let Some(&lid) = s.remote_handles.get(&handle) else {
            return self.session_error(
                sid,
                condition::UNATTACHED_HANDLE,
                format!("flow for unattached handle {handle}"),
            );
        };
        let Some(l) = self.links.get_mut(lid.0) else {
            return Ok(());
        };
        match l.role {
            Role::Sender => {
                let remote_dc = f.delivery_count.unwrap_or(l.delivery_count);
                let credit = f.link_credit.unwrap_or(0);
                // 2.6.7: credit = delivery-count(rcv) + link-credit(rcv) - delivery-count(snd),
                // in serial arithmetic. What we sent that the receiver had not yet seen uses
                // up its grant; below zero (it lowered credit under what was in flight) is 0.
                let in_flight = l.delivery_count.wrapping_sub(remote_dc);
                let in_flight = if (in_flight as i32) < 0 { 0 } else { in_flight };
                l.credit = credit.saturating_sub(in_flight);
                l.drain = f.drain.unwrap_or(false);
                l.drain_pending = l.drain;
                self.events.push_back(Event::LinkFlow {
                    link: lid,
                    credit: l.credit,
                    drain: l.drain,
                });
                if echo {
                    l.flow_dirty = true;
                    self.dirty_links.push(lid);
                }
            }
            Role::Receiver => {
                if let Some(dc) = f.delivery_count {
                    // The sender advanced its delivery-count (drain): that much credit is used
                    // up (never below zero, never backwards in serial arithmetic).
                    let advanced = dc.wrapping_sub(l.delivery_count);
                    if (advanced as i32) >= 0 {
                        l.delivery_count = dc;
                        l.credit = l.credit.saturating_sub(advanced);
                    }
                }
                l.available = f.available.unwrap_or(l.available);
                if l.drain && l.credit == 0 {
                    l.drain = false;
                    self.events.push_back(Event::LinkDrained { link: lid });
                }
                if echo {
                    l.flow_dirty = true;
                    self.dirty_links.push(lid);
                }
            }
        }
        self.unblock_session(sid);
        Ok(())
    }

    fn on_transfer(
        &mut self,
        sid: SessionId,
        t: TransferIn,
        state: Option<DeliveryState>,
        payload: Bytes,
    ) -> Result<(), ConnectionError> {
        let max_msg = self.config.max_message_size;
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return Ok(());
        };
        if s.local == EndpointState::Closed {
            return Ok(());
        }
        // Session window.
        if s.incoming_window == 0 {
            return self.session_error(
                sid,
                condition::WINDOW_VIOLATION,
                "transfer beyond the session incoming-window".into(),
            );
        }
        s.incoming_window -= 1;
        s.next_incoming_id = s.next_incoming_id.wrapping_add(1);
        if s.incoming_window <= s.incoming_window_max / 2 && !s.flow_dirty {
            s.flow_dirty = true;
            self.dirty_sessions.push(sid);
        }
        let Some(&lid) = s.remote_handles.get(&t.handle) else {
            return self.session_error(
                sid,
                condition::UNATTACHED_HANDLE,
                format!("transfer on unattached handle {}", t.handle),
            );
        };
        let Some(l) = self.links.get_mut(lid.0) else {
            return Ok(());
        };
        if l.role != Role::Receiver {
            return self.session_error(
                sid,
                condition::NOT_ALLOWED,
                "transfer on a link where we are the sender".into(),
            );
        }
        if l.local == EndpointState::Closed {
            return Ok(());
        }
        let more = t.more.unwrap_or(false);
        let aborted = t.aborted.unwrap_or(false);
        if l.partial.is_none() {
            if l.discarding {
                if !more {
                    l.discarding = false;
                }
                return Ok(());
            }
            let Some(number) = t.delivery_id else {
                return self.session_error(
                    sid,
                    condition::NOT_ALLOWED,
                    "first transfer of a delivery without delivery-id".into(),
                );
            };
            // Beyond every grant we made (not merely beyond the credit we have now: transfers
            // sent under a grant we since lowered are legitimate).
            if (l.credit_end.wrapping_sub(l.delivery_count) as i32) <= 0 {
                self.link_error(
                    lid,
                    condition::TRANSFER_LIMIT_EXCEEDED,
                    "transfer without link credit".into(),
                );
                return Ok(());
            }
            l.credit = l.credit.saturating_sub(1);
            l.delivery_count = l.delivery_count.wrapping_add(1);
            if aborted {
                // Aborted in its first frame: nothing to deliver, but it used its credit.
                self.events.push_back(Event::Aborted {
                    delivery: DeliveryId { link: lid, number },
                });
                return Ok(());
            }
            if !more {
                // A whole delivery in one frame (the common case): deliver it directly.
                return self.deliver(
                    sid,
                    lid,
                    number,
                    t.delivery_tag.unwrap_or_default(),
                    t.message_format.unwrap_or(0),
                    t.settled.unwrap_or(false),
                    state,
                    payload,
                );
            }
            let partial = Partial {
                number,
                tag: t.delivery_tag.unwrap_or_default(),
                format: t.message_format.unwrap_or(0),
                settled: t.settled.unwrap_or(false),
                state,
                first: Some(payload),
                buf: BytesMut::new(),
                aborted: false,
            };
            l.partial = Some(partial);
        } else if let Some(p) = l.partial.as_mut() {
            if t.settled == Some(true) {
                p.settled = true;
            }
            if aborted {
                p.aborted = true;
            } else {
                if let Some(first) = p.first.take() {
                    p.buf.reserve(first.len() + payload.len());
                    p.buf.extend_from_slice(&first);
                }
                let limit = l.max_message_size.min(max_msg);
                if (p.buf.len() + payload.len()) as u64 > limit {
                    let n = p.buf.len() + payload.len();
                    self.link_error(
                        lid,
                        condition::MESSAGE_SIZE_EXCEEDED,
                        format!("message of at least {n} bytes exceeds max-message-size {limit}"),
                    );
                    if more {
                        if let Some(l) = self.links.get_mut(lid.0) {
                            l.discarding = true;
                        }
                    }
                    return Ok(());
                }
                p.buf.extend_from_slice(&payload);
            }
        }
        if more && !aborted {
            // A first frame that is itself over the limit.
            if let Some(p) = l.partial.as_ref() {
                let size = p.first.as_ref().map_or(p.buf.len(), Bytes::len) as u64;
                let limit = l.max_message_size.min(max_msg);
                if size > limit {
                    self.link_error(
                        lid,
                        condition::MESSAGE_SIZE_EXCEEDED,
                        format!("message exceeds max-message-size {limit}"),
                    );
                    if let Some(l) = self.links.get_mut(lid.0) {
                        l.discarding = true;
                    }
                }
            }
            return Ok(());
        }
        let Some(p) = l.partial.take() else {
            return Ok(());
        };
        let delivery = DeliveryId {
            link: lid,
            number: p.number,
        };
        if p.aborted {
            self.events.push_back(Event::Aborted { delivery });
            return Ok(());
        }
        let payload = match p.first {
            Some(b) => b,
            None => p.buf.freeze(),
        };
        self.deliver(
            sid, lid, p.number, p.tag, p.format, p.settled, p.state, payload,
        )
    }

    /// Delivers a complete incoming message: checks its size, records it as unsettled unless
    /// the sender settled it, and queues the [`Event::Delivery`].
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        sid: SessionId,
        lid: LinkId,
        number: u32,
        tag: Bytes,
        format: u32,
        settled: bool,
        state: Option<DeliveryState>,
        payload: Bytes,
    ) -> Result<(), ConnectionError> {
        let max_msg = self.config.max_message_size;
        let Some(l) = self.links.get(lid.0) else {
            return Ok(());
        };
        if payload.len() as u64 > l.max_message_size.min(max_msg) {
            let limit = l.max_message_size.min(max_msg);
            self.link_error(
                lid,
                condition::MESSAGE_SIZE_EXCEEDED,
                format!(
                    "message of {} bytes exceeds max-message-size {limit}",
                    payload.len()
                ),
            );
            return Ok(());
        }
        if !settled {
            let s = self
                .sessions
                .get_mut(sid.0)
                .ok_or_else(|| framing("session vanished"))?;
            if !s.in_unsettled.insert(
                number,
                InEntry {
                    link: lid,
                    settle_pending: false,
                },
            ) {
                return self.session_error(
                    sid,
                    condition::NOT_ALLOWED,
                    format!("delivery-id {number} out of sequence"),
                );
            }
        }
        self.events.push_back(Event::Delivery(IncomingDelivery {
            link: lid,
            delivery: DeliveryId { link: lid, number },
            tag,
            message_format: format,
            settled,
            state,
            payload,
        }));
        Ok(())
    }

    fn on_disposition(&mut self, sid: SessionId, d: Disposition) -> Result<(), ConnectionError> {
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return Ok(());
        };
        let last = d.last.unwrap_or(d.first);
        let settled = d.settled.unwrap_or(false);
        match d.role {
            // From the receiver: about deliveries we sent.
            Role::Receiver => {
                let (lo, n) = s.out_unsettled.span_in(d.first, last);
                for id in (0..n).map(|k| lo.wrapping_add(k)) {
                    let link = match s.out_unsettled.get_mut(id) {
                        Some(e) => e.link,
                        None => continue,
                    };
                    self.events.push_back(Event::Disposition {
                        delivery: DeliveryId { link, number: id },
                        state: clone_state(&d.state),
                        settled,
                    });
                }
                if settled {
                    s.out_unsettled.remove_span(lo, n);
                }
            }
            // From the sender: about deliveries we received.
            Role::Sender => {
                let (lo, n) = s.in_unsettled.span_in(d.first, last);
                for id in (0..n).map(|k| lo.wrapping_add(k)) {
                    let (link, pending) = match s.in_unsettled.get_mut(id) {
                        Some(e) => (e.link, e.settle_pending),
                        None => continue,
                    };
                    if settled {
                        s.in_unsettled.remove(id);
                        if pending {
                            // Receiver settle mode second: the sender settled after our outcome;
                            // now we settle too.
                            s.dispositions.push(PendingDisposition {
                                role: Role::Receiver,
                                first: id,
                                last: id,
                                settled: true,
                                state: None,
                            });
                            if !s.flow_dirty {
                                self.dirty_sessions.push(sid);
                            }
                        }
                    }
                    self.events.push_back(Event::Disposition {
                        delivery: DeliveryId { link, number: id },
                        state: d.state.clone(),
                        settled,
                    });
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------
    // Output helpers
    // ------------------------------------------------------------------------------------

    fn send_amqp_header(&mut self) {
        if self.amqp_header_sent {
            return;
        }
        self.out.put_slice(&ProtocolHeader::AMQP.to_bytes());
        self.amqp_header_sent = true;
        if !self.pending_amqp.is_empty() {
            let p = self.pending_amqp.split();
            self.out.extend_from_slice(&p);
        }
    }

    fn amqp_out(&mut self) -> &mut BytesMut {
        if self.amqp_header_sent {
            &mut self.out
        } else {
            &mut self.pending_amqp
        }
    }

    fn write<P: Encode>(&mut self, channel: u16, body: &P) {
        let size = FRAME_HEADER_SIZE + body.encoded_len();
        let out = self.amqp_out();
        out.reserve(size);
        frame::put_frame_header(out, size as u32, frame::FRAME_TYPE_AMQP, channel);
        body.encode(out);
    }

    fn write_close(&mut self, error: Option<Error>) {
        self.flush_deferred();
        self.local = EndpointState::Closed;
        self.write(0, &Close { error });
    }

    fn write_end(&mut self, sid: SessionId, error: Option<Error>) {
        self.flush_deferred();
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return;
        };
        if s.local == EndpointState::Closed {
            return;
        }
        s.local = EndpointState::Closed;
        let ch = s.channel;
        s.error = error.clone();
        self.write(ch, &End { error });
        self.maybe_free_session(sid);
    }

    fn write_detach(&mut self, lid: LinkId, closed: bool, error: Option<Error>) {
        self.flush_deferred();
        let Some(l) = self.links.get_mut(lid.0) else {
            return;
        };
        if l.local == EndpointState::Closed {
            return;
        }
        l.local = EndpointState::Closed;
        let handle = l.handle;
        let sid = l.session;
        let Some(s) = self.sessions.get_mut(sid.0) else {
            return;
        };
        // Frames still waiting for the session window must not follow the detach.
        s.blocked.retain(|b| b.header.handle != handle);
        let ch = s.channel;
        if s.local == EndpointState::Active {
            self.write(
                ch,
                &Detach {
                    handle,
                    closed: Some(closed),
                    error,
                },
            );
        }
        self.maybe_free_link(lid);
    }

    fn maybe_free_link(&mut self, lid: LinkId) {
        let Some(l) = self.links.get(lid.0) else {
            return;
        };
        // Both ends detached: a link we detached first stays until the peer's detach, so
        // its late attach reply is not taken for a new link and its handle is not reused.
        if l.local == EndpointState::Closed && l.remote == EndpointState::Closed {
            let (sid, handle) = (l.session, l.handle);
            if let Some(s) = self.sessions.get_mut(sid.0) {
                s.local_handles.remove(&handle);
                // Deliveries of a gone link cannot be settled any more.
                s.in_unsettled.retain(|e| e.link != lid);
                s.out_unsettled.retain(|e| e.link != lid);
            }
            self.links.remove(lid.0);
        }
    }

    fn maybe_free_session(&mut self, sid: SessionId) {
        let Some(s) = self.sessions.get(sid.0) else {
            return;
        };
        // Both ends ended: a session we ended first stays until the peer's end (its begin
        // reply may still be on the way).
        if s.local == EndpointState::Closed && s.remote == EndpointState::Closed {
            let ch = s.channel;
            let links: Vec<LinkId> = s
                .local_handles
                .values()
                .chain(s.remote_handles.values())
                .copied()
                .collect();
            if let Some(rc) = s.remote_channel {
                if self.remote_channels.get(&rc) == Some(&sid) {
                    self.remote_channels.remove(&rc);
                }
            }
            self.local_channels.remove(&ch);
            for l in links {
                self.links.remove(l.0);
            }
            // Remote-initiated links never answered are not in local_handles; sweep them.
            for k in self.links.keys() {
                if self.links.get(k).is_some_and(|l| l.session == sid) {
                    self.links.remove(k);
                }
            }
            self.sessions.remove(sid.0);
        }
    }

    fn flow_for(&self, s: &Session) -> Flow {
        Flow {
            next_incoming_id: s.remote_channel.map(|_| s.next_incoming_id),
            incoming_window: s.incoming_window,
            next_outgoing_id: s.next_outgoing_id,
            outgoing_window: u32::MAX,
            ..Flow::default()
        }
    }

    /// Writes the deferred, coalesced frames: session and link flows, and dispositions merged
    /// into ranges.
    fn flush_deferred(&mut self) {
        if self.dirty_sessions.is_empty()
            && self.dirty_links.is_empty()
            && self.detach_replies.is_empty()
        {
            return;
        }
        // The taken vectors are handed back empty afterwards, so their allocations are reused.
        let mut sessions = std::mem::take(&mut self.dirty_sessions);
        for sid in sessions.drain(..) {
            let Some(s) = self.sessions.get_mut(sid.0) else {
                continue;
            };
            if s.local != EndpointState::Active {
                s.dispositions.clear();
                s.flow_dirty = false;
                continue;
            }
            let ch = s.channel;
            let mut disps = std::mem::take(&mut s.dispositions);
            let flow = if s.flow_dirty {
                s.flow_dirty = false;
                s.incoming_window = s.incoming_window_max;
                Some(())
            } else {
                None
            };
            // Coalesce consecutive ids with the same settled flag and state into ranges.
            let mut i = 0;
            while i < disps.len() {
                let d = &disps[i];
                let mut last = d.last;
                let mut j = i + 1;
                while j < disps.len()
                    && disps[j].role == d.role
                    && disps[j].first == last.wrapping_add(1)
                    && disps[j].settled == d.settled
                    && disps[j].state == d.state
                {
                    last = disps[j].last;
                    j += 1;
                }
                let frame = Disposition {
                    role: d.role,
                    first: d.first,
                    last: (last != d.first).then_some(last),
                    settled: Some(d.settled),
                    state: d.state.clone(),
                    batchable: None,
                };
                self.write(ch, &frame);
                i = j;
            }
            disps.clear();
            if let Some(s) = self.sessions.get_mut(sid.0) {
                if s.dispositions.is_empty() {
                    s.dispositions = disps;
                }
            }
            if flow.is_some() {
                if let Some(s) = self.sessions.get(sid.0) {
                    let f = self.flow_for(s);
                    self.write(ch, &f);
                }
            }
        }
        if self.dirty_sessions.is_empty() {
            self.dirty_sessions = sessions;
        }
        let mut links = std::mem::take(&mut self.dirty_links);
        for lid in links.drain(..) {
            let Some(l) = self.links.get_mut(lid.0) else {
                continue;
            };
            if !l.flow_dirty || l.local != EndpointState::Active {
                l.flow_dirty = false;
                continue;
            }
            let (handle, dc, credit, drain, avail, sid) = (
                l.handle,
                l.delivery_count,
                l.credit,
                l.drain,
                l.available,
                l.session,
            );
            let Some(s) = self.sessions.get(sid.0) else {
                l.flow_dirty = false;
                continue;
            };
            if l.role == Role::Sender && s.blocked.iter().any(|b| b.header.handle == handle) {
                // Our delivery-count counts transfers still waiting for the session window:
                // the flow must not overtake them (unblock_session sends it after them).
                continue;
            }
            l.flow_dirty = false;
            if s.local != EndpointState::Active {
                continue;
            }
            let ch = s.channel;
            let mut f = self.flow_for(s);
            f.handle = Some(handle);
            f.delivery_count = Some(dc);
            f.link_credit = Some(credit);
            f.drain = Some(drain);
            if avail > 0 {
                f.available = Some(avail);
            }
            self.write(ch, &f);
        }
        if self.dirty_links.is_empty() {
            self.dirty_links = links;
        }
        for (lid, closed) in std::mem::take(&mut self.detach_replies) {
            // (Skipped inside if the application detached the link itself meanwhile.)
            self.write_detach(lid, closed, None);
            self.maybe_free_link(lid);
        }
    }

    fn finish(&mut self) {
        if !self.finished {
            // What we sent and the peer never settled stays known after the sessions are gone:
            // the messaging layer reports it as in doubt.
            self.lost_unsettled = self.unsettled_sent();
            self.finished = true;
            self.expect = Expect::Nothing;
            self.events.push_back(Event::Finished);
            // Closing the connection ends every session and detaches every link: forget them
            // (ids stay stale, never reused, as the slabs bump generations).
            for k in self.links.keys() {
                self.links.remove(k);
            }
            for k in self.sessions.keys() {
                self.sessions.remove(k);
            }
            self.local_channels.clear();
            self.remote_channels.clear();
            self.dirty_links.clear();
            self.dirty_sessions.clear();
        }
    }

    /// Fails the connection: records the sticky error, tells the peer (open first if we never
    /// sent one), and finishes.
    fn fail(&mut self, e: ConnectionError) {
        if self.error.is_some() || self.finished {
            return;
        }
        self.error = Some(e.clone());
        self.events.push_back(Event::Error(e.clone()));
        // A header mismatch means the peer does not speak our protocol: no frames follow.
        let can_close = self.amqp_header_sent
            && e.kind != ErrorKind::ProtocolHeader
            && matches!(self.expect, Expect::Amqp | Expect::Header(_))
            && self.local != EndpointState::Closed
            && self.sasl_ok();
        if can_close && self.expect != Expect::Sasl {
            if self.local == EndpointState::Uninit {
                self.write_open();
            }
            self.write_close(Some(e.error.clone()));
        }
        self.finish();
    }

    fn sasl_ok(&self) -> bool {
        (self.sasl_client.is_none() && self.sasl_server.is_none()) || self.authenticated.is_some()
    }

    fn write_open(&mut self) {
        self.local = EndpointState::Active;
        let c = &self.config;
        let open = Open {
            container_id: c.container_id.as_str().into(),
            hostname: c.hostname.as_deref().map(Into::into),
            max_frame_size: Some(c.max_frame_size.max(MIN_MAX_FRAME_SIZE)),
            channel_max: Some(c.channel_max),
            // Advertise half our threshold, as the spec recommends (§2.4.5) and Proton does: a
            // peer may send its heartbeat a little late and must not be timed out for it.
            idle_time_out: c
                .idle_timeout
                .map(|d| (d.as_millis() / 2).clamp(1, u32::MAX as u128) as u32),
            outgoing_locales: None,
            incoming_locales: None,
            offered_capabilities: (!c.offered_capabilities.is_empty())
                .then(|| c.offered_capabilities.clone()),
            desired_capabilities: (!c.desired_capabilities.is_empty())
                .then(|| c.desired_capabilities.clone()),
            properties: c.properties.clone(),
        };
        self.write(0, &open);
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

    // ------------------------------------------------------------------------------------
    // Operations
    // ------------------------------------------------------------------------------------

    /// Sends `open`. On a client it may be called at once: it is held until SASL completes and
    /// sessions and links created meanwhile follow it (pipelined open).
    pub fn open(&mut self) -> Result<(), OpError> {
        self.check_usable()?;
        if self.local != EndpointState::Uninit {
            return Err(OpError::IllegalState("already open"));
        }
        self.write_open();
        self.answer_ended_sessions();
        Ok(())
    }

    /// Sessions the peer began and ended before we opened: answer them (begin + end).
    fn answer_ended_sessions(&mut self) {
        for k in self.sessions.keys() {
            if self.sessions.get(k).is_some_and(|s| {
                s.local == EndpointState::Uninit && s.remote == EndpointState::Closed
            }) {
                let _ = self.answer_session(SessionId(k));
            }
        }
    }

    /// Begins a session the peer began; if the peer has already ended it, ends it too, and
    /// answers the links the peer attached and detached meanwhile.
    fn answer_session(&mut self, sid: SessionId) -> Result<(), OpError> {
        if let Err(e) = self.write_begin(sid) {
            if let Some(s) = self.sessions.get_mut(sid.0) {
                if s.remote == EndpointState::Closed {
                    // No channel free: nothing can be sent; forget it.
                    s.local = EndpointState::Closed;
                }
            }
            self.maybe_free_session(sid);
            return Err(e);
        }
        for k in self.links.keys() {
            if self.links.get(k).is_some_and(|l| {
                l.session == sid
                    && l.local == EndpointState::Uninit
                    && l.remote == EndpointState::Closed
            }) {
                if let Some(l) = self.links.get_mut(k) {
                    l.config.source = None;
                    l.config.target = None;
                }
                let _ = self.answer_link(LinkId(k));
            }
        }
        if self
            .sessions
            .get(sid.0)
            .is_some_and(|s| s.remote == EndpointState::Closed)
        {
            self.write_end(sid, None);
        }
        Ok(())
    }

    /// Attaches a link the peer attached; if the peer has already detached it, detaches too.
    fn answer_link(&mut self, lid: LinkId) -> Result<(), OpError> {
        if let Err(e) = self.write_attach(lid) {
            if let Some(l) = self.links.get_mut(lid.0) {
                if l.remote == EndpointState::Closed {
                    // Nothing can be sent; forget it.
                    l.local = EndpointState::Closed;
                }
            }
            self.maybe_free_link(lid);
            return Err(e);
        }
        if let Some(l) = self.links.get(lid.0) {
            if l.remote == EndpointState::Closed {
                let closed = l.remote_closed;
                self.write_detach(lid, closed, None);
            }
        }
        Ok(())
    }

    /// Closes the connection, with an optional error. The peer's close completes it
    /// ([`Event::Finished`]).
    pub fn close(&mut self, error: Option<Error>) -> Result<(), OpError> {
        if self.finished {
            return Err(OpError::Closed(self.error.clone()));
        }
        if self.local == EndpointState::Closed {
            return Ok(());
        }
        if self.local == EndpointState::Uninit {
            self.write_open();
        }
        self.close_error = error.clone();
        self.write_close(error);
        if self.remote == EndpointState::Closed {
            self.finish();
        }
        Ok(())
    }

    fn new_session(&self, channel: Option<u16>, cfg: SessionConfig) -> Session {
        let window = cfg
            .incoming_window
            .unwrap_or(self.config.incoming_window)
            .max(1);
        Session {
            channel: channel.unwrap_or(u16::MAX),
            remote_channel: None,
            local: EndpointState::Uninit,
            remote: EndpointState::Uninit,
            next_outgoing_id: 0,
            remote_incoming_window: 0,
            next_incoming_id: 0,
            incoming_window: window,
            incoming_window_max: window,
            remote_outgoing_window: 0,
            remote_handle_max: u32::MAX,
            local_handles: IdMap::default(),
            remote_handles: IdMap::default(),
            next_delivery_id: 0,
            out_unsettled: Ring::new(),
            in_unsettled: Ring::new(),
            dispositions: Vec::new(),
            flow_dirty: false,
            blocked: VecDeque::new(),
            error: None,
            properties: cfg.properties,
        }
    }

    fn alloc_channel(&self) -> Option<u16> {
        let max = if self.remote == EndpointState::Active {
            self.remote_channel_max.min(self.config.channel_max)
        } else {
            self.config.channel_max
        };
        (0..=max).find(|c| !self.local_channels.contains_key(c))
    }

    fn write_begin(&mut self, sid: SessionId) -> Result<(), OpError> {
        let ch = self.alloc_channel().ok_or(OpError::NoChannel)?;
        let handle_max = self.config.handle_max;
        let s = self.sessions.get_mut(sid.0).ok_or(OpError::UnknownHandle)?;
        s.channel = ch;
        s.local = EndpointState::Active;
        let begin = Begin {
            remote_channel: s.remote_channel,
            next_outgoing_id: s.next_outgoing_id,
            incoming_window: s.incoming_window,
            outgoing_window: u32::MAX,
            handle_max: Some(handle_max),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: s.properties.clone(),
        };
        self.local_channels.insert(ch, sid);
        self.write(ch, &begin);
        Ok(())
    }

    /// Begins a new session.
    pub fn begin_session(&mut self, cfg: SessionConfig) -> Result<SessionId, OpError> {
        self.check_usable()?;
        if self.local == EndpointState::Uninit {
            return Err(OpError::IllegalState("open the connection first"));
        }
        let s = self.new_session(None, cfg);
        let sid = SessionId(self.sessions.insert(s));
        if let Err(e) = self.write_begin(sid) {
            self.sessions.remove(sid.0);
            return Err(e);
        }
        Ok(sid)
    }

    /// Answers a session the peer began ([`Event::SessionOpened`] with `remote_initiated`).
    pub fn accept_session(&mut self, sid: SessionId) -> Result<(), OpError> {
        self.check_usable()?;
        let s = self.sessions.get(sid.0).ok_or(OpError::UnknownHandle)?;
        if s.local != EndpointState::Uninit {
            return Err(OpError::IllegalState("session already begun"));
        }
        if self.local == EndpointState::Uninit {
            self.write_open();
            self.answer_ended_sessions();
            if self
                .sessions
                .get(sid.0)
                .is_none_or(|s| s.local != EndpointState::Uninit)
            {
                // It was one of those the peer had already ended: answered.
                return Ok(());
            }
        }
        self.answer_session(sid)
    }

    /// Ends a session, with an optional error.
    pub fn end_session(&mut self, sid: SessionId, error: Option<Error>) -> Result<(), OpError> {
        self.check_usable()?;
        let s = self.sessions.get(sid.0).ok_or(OpError::UnknownHandle)?;
        if s.local != EndpointState::Active {
            return Err(OpError::IllegalState("session not active"));
        }
        self.write_end(sid, error);
        Ok(())
    }

    fn write_attach(&mut self, lid: LinkId) -> Result<(), OpError> {
        let l = self.links.get(lid.0).ok_or(OpError::UnknownHandle)?;
        let sid = l.session;
        let s = self.sessions.get(sid.0).ok_or(OpError::UnknownHandle)?;
        if s.local != EndpointState::Active {
            return Err(OpError::IllegalState("session not active"));
        }
        let max = self.config.handle_max.min(s.remote_handle_max);
        let handle = (0..=max)
            .find(|h| !s.local_handles.contains_key(h))
            .ok_or(OpError::NoHandle)?;
        let ch = s.channel;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        l.handle = handle;
        l.local = EndpointState::Active;
        let c = &l.config;
        let attach = Attach {
            name: l.name.clone(),
            handle,
            role: l.role,
            snd_settle_mode: c.snd_settle_mode,
            rcv_settle_mode: c.rcv_settle_mode,
            source: c.source.clone(),
            target: c.target.clone(),
            unsettled: None,
            incomplete_unsettled: None,
            initial_delivery_count: (l.role == Role::Sender).then_some(l.delivery_count),
            max_message_size: c.max_message_size,
            offered_capabilities: c.offered_capabilities.clone(),
            desired_capabilities: c.desired_capabilities.clone(),
            properties: c.properties.clone(),
        };
        if let Some(m) = c.max_message_size {
            l.max_message_size = m;
        }
        if let Some(s) = self.sessions.get_mut(sid.0) {
            s.local_handles.insert(handle, lid);
        }
        self.write(ch, &attach);
        Ok(())
    }

    fn attach(
        &mut self,
        sid: SessionId,
        role: Role,
        config: LinkConfig,
    ) -> Result<LinkId, OpError> {
        self.check_usable()?;
        if self.sessions.get(sid.0).is_none() {
            return Err(OpError::UnknownHandle);
        }
        // Link names are unique per direction between two containers: a second link of the
        // same name and role would make the peer's attach ambiguous.
        let in_use = self.links.keys().into_iter().any(|k| {
            self.links
                .get(k)
                .is_some_and(|l| l.role == role && *l.name == *config.name)
        });
        if in_use {
            return Err(OpError::IllegalState(
                "a link with this name and role already exists on the connection",
            ));
        }
        let link = Link {
            session: sid,
            name: config.name.as_str().into(),
            role,
            handle: u32::MAX,
            remote_handle: None,
            local: EndpointState::Uninit,
            remote: EndpointState::Uninit,
            config,
            remote_attach: None,
            delivery_count: 0,
            credit: 0,
            available: 0,
            drain: false,
            drain_pending: false,
            flow_dirty: false,
            next_tag: 0,
            partial: None,
            discarding: false,
            max_message_size: self.config.max_message_size,
            remote_closed: false,
            credit_end: 0,
        };
        let lid = LinkId(self.links.insert(link));
        if let Err(e) = self.write_attach(lid) {
            self.links.remove(lid.0);
            return Err(e);
        }
        Ok(lid)
    }

    /// Attaches a sending link.
    pub fn attach_sender(&mut self, sid: SessionId, config: LinkConfig) -> Result<LinkId, OpError> {
        self.attach(sid, Role::Sender, config)
    }

    /// Attaches a receiving link. Grant credit with [`flow`](Self::flow) to receive.
    pub fn attach_receiver(
        &mut self,
        sid: SessionId,
        config: LinkConfig,
    ) -> Result<LinkId, OpError> {
        self.attach(sid, Role::Receiver, config)
    }

    /// Answers a link the peer attached ([`Event::LinkOpened`] with `remote_initiated`). The
    /// name is taken from the peer's attach; terminus fields default to the peer's.
    pub fn accept_link(&mut self, lid: LinkId, mut config: LinkConfig) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.local != EndpointState::Uninit {
            return Err(OpError::IllegalState("link already attached"));
        }
        config.name = l.name.to_string();
        if let Some(ra) = &l.remote_attach {
            if config.source.is_none() {
                config.source = ra.source.clone();
            }
            if config.target.is_none() {
                config.target = ra.target.clone();
            }
            if config.snd_settle_mode.is_none() {
                config.snd_settle_mode = ra.snd_settle_mode;
            }
            if config.rcv_settle_mode.is_none() {
                config.rcv_settle_mode = ra.rcv_settle_mode;
            }
        }
        l.config = config;
        self.answer_link(lid)
    }

    /// Refuses a link the peer attached: attaches with no terminus, then detaches (closed) with
    /// `error`, as the spec prescribes.
    pub fn refuse_link(&mut self, lid: LinkId, error: Error) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.local != EndpointState::Uninit {
            return Err(OpError::IllegalState("link already attached"));
        }
        l.config.source = None;
        l.config.target = None;
        self.write_attach(lid)?;
        self.write_detach(lid, true, Some(error));
        Ok(())
    }

    /// Detaches (`closed = false`) or closes (`closed = true`) a link.
    pub fn detach(
        &mut self,
        lid: LinkId,
        closed: bool,
        error: Option<Error>,
    ) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.local != EndpointState::Active {
            return Err(OpError::IllegalState("link not attached"));
        }
        self.write_detach(lid, closed, error);
        Ok(())
    }

    /// Grants a receiver `credit` (replacing the current credit) and optionally asks the sender
    /// to drain. Flow frames are coalesced: several calls before the next transmit send one.
    pub fn flow(&mut self, lid: LinkId, credit: u32, drain: bool) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.role != Role::Receiver {
            return Err(OpError::IllegalState(
                "flow is for receivers; senders use drained()",
            ));
        }
        if l.local != EndpointState::Active {
            return Err(OpError::IllegalState("link not attached"));
        }
        l.credit = credit;
        l.drain = drain;
        // Accept transfers up to everything granted so far, read additively: some senders
        // (RabbitMQ 3.10's AMQP 1.0 plugin) add a new grant to credit still in flight instead
        // of replacing it. Memory stays bounded by the credit we granted.
        let replaced = credit_end(l.delivery_count, credit);
        let added = if (l.credit_end.wrapping_sub(l.delivery_count) as i32) > 0 {
            credit_end(l.credit_end, credit)
        } else {
            replaced
        };
        for end in [replaced, added] {
            if (end.wrapping_sub(l.credit_end) as i32) > 0 {
                l.credit_end = end;
            }
        }
        if !l.flow_dirty {
            l.flow_dirty = true;
            self.dirty_links.push(lid);
        }
        Ok(())
    }

    /// Tells a draining receiver we have nothing more to send: the rest of the credit is used up.
    pub fn drained(&mut self, lid: LinkId) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.role != Role::Sender {
            return Err(OpError::IllegalState("drained is for senders"));
        }
        if l.drain_pending {
            l.delivery_count = l.delivery_count.wrapping_add(l.credit);
            l.credit = 0;
            // The flow says drain = true (our drain mode, until the receiver changes it):
            // receivers such as rhea take a flow with drain set and no credit as "drained".
            l.drain_pending = false;
            if !l.flow_dirty {
                l.flow_dirty = true;
                self.dirty_links.push(lid);
            }
        }
        Ok(())
    }

    /// Tells the receiver how many messages we could send (`available`).
    pub fn set_available(&mut self, lid: LinkId, available: u32) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        l.available = available;
        if !l.flow_dirty {
            l.flow_dirty = true;
            self.dirty_links.push(lid);
        }
        Ok(())
    }

    /// Sends a message on a sender: `payload` is encoded once, straight into the output buffer
    /// (split into several transfer frames if larger than the peer's max-frame-size).
    pub fn send<P: Encode + ?Sized>(
        &mut self,
        lid: LinkId,
        payload: &P,
        opts: SendOptions<'_>,
    ) -> Result<DeliveryId, OpError> {
        self.send_inner(
            lid,
            payload.encoded_len(),
            opts,
            &mut |buf: &mut BytesMut| payload.encode(buf),
            None,
        )
    }

    /// Sends an already-encoded message (for example one a broker received), without re-encoding.
    pub fn send_bytes(
        &mut self,
        lid: LinkId,
        payload: Bytes,
        opts: SendOptions<'_>,
    ) -> Result<DeliveryId, OpError> {
        self.send_inner(
            lid,
            payload.len(),
            opts,
            &mut |buf: &mut BytesMut| buf.put_slice(&payload),
            Some(&payload),
        )
    }

    fn send_inner(
        &mut self,
        lid: LinkId,
        len: usize,
        opts: SendOptions<'_>,
        write: &mut dyn FnMut(&mut BytesMut),
        owned: Option<&Bytes>,
    ) -> Result<DeliveryId, OpError> {
        self.check_usable()?;
        let sid = self.links.get(lid.0).ok_or(OpError::UnknownHandle)?.session;
        if self
            .sessions
            .get(sid.0)
            .is_none_or(|s| s.local != EndpointState::Active)
        {
            // Ending a session detaches its links: nothing may follow the end.
            return Err(OpError::IllegalState("session not active"));
        }
        let l = self.links.get_mut(lid.0).ok_or(OpError::UnknownHandle)?;
        if l.role != Role::Sender {
            return Err(OpError::IllegalState("send on a receiver"));
        }
        if l.local != EndpointState::Active || l.remote != EndpointState::Active {
            return Err(OpError::IllegalState("link not attached"));
        }
        if l.credit == 0 {
            return Err(OpError::NoCredit);
        }
        if let Some(max) = l
            .remote_attach
            .as_ref()
            .and_then(|a| a.max_message_size)
            .filter(|&m| m > 0)
        {
            if len as u64 > max {
                return Err(OpError::MessageTooLarge { size: len, max });
            }
        }
        let settled = opts.settled || l.config.snd_settle_mode == Some(SenderSettleMode::Settled);
        l.credit -= 1;
        l.delivery_count = l.delivery_count.wrapping_add(1);
        let tag_store = tag_bytes(l.next_tag);
        l.next_tag = l.next_tag.wrapping_add(1);
        let tag: &[u8] = opts.tag.unwrap_or(&tag_store);
        let handle = l.handle;
        let sid = l.session;
        let max_frame = self.remote_max_frame as usize;
        let s = self.sessions.get_mut(sid.0).ok_or(OpError::UnknownHandle)?;
        let number = s.next_delivery_id;
        s.next_delivery_id = s.next_delivery_id.wrapping_add(1);
        let ch = s.channel;
        if !settled {
            s.out_unsettled.insert(number, OutEntry { link: lid });
        }
        let (hlen, count, body) = transfer_len(
            handle,
            Some(number),
            Some(tag),
            opts.message_format,
            settled,
            false,
        );
        let fits = FRAME_HEADER_SIZE + hlen + len <= max_frame;
        if fits && s.blocked.is_empty() && s.remote_incoming_window > 0 {
            // Fast path: one frame, encoded in place.
            s.remote_incoming_window -= 1;
            s.next_outgoing_id = s.next_outgoing_id.wrapping_add(1);
            let size = FRAME_HEADER_SIZE + hlen + len;
            let out = if self.amqp_header_sent {
                &mut self.out
            } else {
                &mut self.pending_amqp
            };
            out.reserve(size);
            put_transfer(
                out,
                size,
                ch,
                handle,
                Some(number),
                Some(tag),
                opts.message_format,
                settled,
                false,
                count,
                body,
            );
            let before = out.len();
            write(out);
            debug_assert_eq!(out.len() - before, len);
            return Ok(DeliveryId { link: lid, number });
        }
        // Slow path: encode once, then split into frames (queued if the window is closed).
        let payload = match owned {
            Some(b) => b.clone(),
            None => {
                let mut b = BytesMut::with_capacity(len);
                write(&mut b);
                b.freeze()
            }
        };
        let tag = Bytes::copy_from_slice(tag);
        let mut offset = 0;
        let mut first = true;
        loop {
            let (hl, _, _) = if first {
                transfer_len(
                    handle,
                    Some(number),
                    Some(&tag),
                    opts.message_format,
                    settled,
                    true,
                )
            } else {
                transfer_len(handle, None, None, 0, settled, true)
            };
            let room = max_frame.saturating_sub(FRAME_HEADER_SIZE + hl).max(1);
            let end = (offset + room).min(payload.len());
            let more = end < payload.len();
            let header = TransferHeader {
                handle,
                number,
                delivery_id: first.then_some(number),
                tag: first.then(|| tag.clone()),
                format: opts.message_format,
                settled,
                more,
                aborted: false,
            };
            let s = self.sessions.get_mut(sid.0).ok_or(OpError::UnknownHandle)?;
            s.blocked.push_back(BlockedTransfer {
                header,
                payload: payload.slice(offset..end),
            });
            offset = end;
            first = false;
            if !more {
                break;
            }
        }
        self.unblock_session(sid);
        Ok(DeliveryId { link: lid, number })
    }

    /// Writes frames that were waiting for the peer's session incoming window, then lets out
    /// link flows that were held back behind them.
    fn unblock_session(&mut self, sid: SessionId) {
        self.write_blocked(sid);
        let Some(s) = self.sessions.get(sid.0) else {
            return;
        };
        for &lid in s.local_handles.values() {
            if let Some(l) = self.links.get(lid.0) {
                if l.flow_dirty
                    && l.role == Role::Sender
                    && !s.blocked.iter().any(|b| b.header.handle == l.handle)
                {
                    self.dirty_links.push(lid);
                }
            }
        }
    }

    fn write_blocked(&mut self, sid: SessionId) {
        loop {
            let Some(s) = self.sessions.get_mut(sid.0) else {
                return;
            };
            if s.remote_incoming_window == 0 || s.local != EndpointState::Active {
                return;
            }
            let Some(b) = s.blocked.pop_front() else {
                return;
            };
            s.remote_incoming_window -= 1;
            s.next_outgoing_id = s.next_outgoing_id.wrapping_add(1);
            let ch = s.channel;
            let h = &b.header;
            if h.aborted {
                let t = Transfer {
                    handle: h.handle,
                    delivery_id: h.delivery_id,
                    delivery_tag: h.tag.clone(),
                    message_format: h.delivery_id.map(|_| h.format),
                    settled: Some(true),
                    aborted: Some(true),
                    ..Transfer::default()
                };
                self.write(ch, &t);
                continue;
            }
            let (hlen, count, body) = transfer_len(
                h.handle,
                h.delivery_id,
                h.tag.as_deref(),
                h.format,
                h.settled,
                h.more,
            );
            let size = FRAME_HEADER_SIZE + hlen + b.payload.len();
            let out = if self.amqp_header_sent {
                &mut self.out
            } else {
                &mut self.pending_amqp
            };
            out.reserve(size);
            put_transfer(
                out,
                size,
                ch,
                h.handle,
                h.delivery_id,
                h.tag.as_deref(),
                h.format,
                h.settled,
                h.more,
                count,
                body,
            );
            out.put_slice(&b.payload);
        }
    }

    /// Aborts a delivery whose frames are still waiting for the session window. Returns false if
    /// it has already been written completely.
    pub fn abort(&mut self, delivery: DeliveryId) -> Result<bool, OpError> {
        self.check_usable()?;
        let l = self
            .links
            .get(delivery.link.0)
            .ok_or(OpError::UnknownHandle)?;
        let sid = l.session;
        let handle = l.handle;
        let s = self.sessions.get_mut(sid.0).ok_or(OpError::UnknownHandle)?;
        // Frames of a delivery are contiguous in the queue (a delivery is queued whole).
        let first = s.blocked.iter().position(|b| {
            b.header.handle == handle && b.header.number == delivery.number && !b.header.aborted
        });
        let Some(start) = first else { return Ok(false) };
        let mut end = start;
        while end + 1 < s.blocked.len()
            && s.blocked[end + 1].header.handle == handle
            && s.blocked[end + 1].header.number == delivery.number
        {
            end += 1;
        }
        let head = s.blocked[start].header.clone();
        s.blocked.drain(start..=end);
        // One aborted transfer replaces what was left: a continuation if its first frames are
        // on the wire, else a first frame (delivery-id and tag), so delivery-ids stay
        // sequential and the receiver counts the credit it used.
        let header = TransferHeader {
            settled: true,
            more: false,
            aborted: true,
            ..head
        };
        s.blocked.insert(
            start,
            BlockedTransfer {
                header,
                payload: Bytes::new(),
            },
        );
        s.out_unsettled.remove(delivery.number);
        self.unblock_session(sid);
        Ok(true)
    }

    /// Updates the state of a received delivery and/or settles it. Dispositions are coalesced
    /// into ranges when transmitted.
    pub fn disposition(
        &mut self,
        delivery: DeliveryId,
        state: Option<DeliveryState>,
        settled: bool,
    ) -> Result<(), OpError> {
        self.check_usable()?;
        let l = self
            .links
            .get(delivery.link.0)
            .ok_or(OpError::UnknownHandle)?;
        let role = l.role;
        let second = l.config.rcv_settle_mode == Some(ReceiverSettleMode::Second)
            || l.remote_attach.as_ref().and_then(|a| a.rcv_settle_mode)
                == Some(ReceiverSettleMode::Second);
        let sid = l.session;
        let s = self.sessions.get_mut(sid.0).ok_or(OpError::UnknownHandle)?;
        if s.local != EndpointState::Active {
            return Err(OpError::IllegalState("session not active"));
        }
        let mut settled_now = settled;
        match role {
            Role::Receiver => {
                let Some(e) = s.in_unsettled.get_mut(delivery.number) else {
                    return Err(OpError::UnknownHandle);
                };
                if settled && second {
                    // Mode second: send the outcome unsettled; settle when the sender does.
                    e.settle_pending = true;
                    settled_now = false;
                } else if settled {
                    s.in_unsettled.remove(delivery.number);
                }
            }
            Role::Sender => {
                if s.out_unsettled.get_mut(delivery.number).is_none() {
                    return Err(OpError::UnknownHandle);
                }
                if settled {
                    s.out_unsettled.remove(delivery.number);
                }
            }
        }
        // Our role in the disposition is our role on the link. A disposition that continues
        // the previous one's range with the same settled flag and state extends it (the
        // common case: every delivery accepted in order), so nothing is stored per delivery.
        if let Some(p) = s.dispositions.last_mut() {
            if p.role == role
                && p.settled == settled_now
                && p.last.wrapping_add(1) == delivery.number
                && same_state(&p.state, &state)
            {
                p.last = delivery.number;
                return Ok(());
            }
        }
        s.dispositions.push(PendingDisposition {
            role,
            first: delivery.number,
            last: delivery.number,
            settled: settled_now,
            state,
        });
        if s.dispositions.len() == 1 && !s.flow_dirty {
            self.dirty_sessions.push(sid);
        }
        Ok(())
    }

    /// Settles a delivery without changing its state.
    pub fn settle(&mut self, delivery: DeliveryId) -> Result<(), OpError> {
        self.check_usable()?;
        // A sender settling after the receiver settled needs no frame.
        let l = self
            .links
            .get(delivery.link.0)
            .ok_or(OpError::UnknownHandle)?;
        let sid = l.session;
        let is_sender = l.role == Role::Sender;
        if is_sender {
            let s = self.sessions.get_mut(sid.0).ok_or(OpError::UnknownHandle)?;
            if s.out_unsettled.get_mut(delivery.number).is_none() {
                return Ok(());
            }
        }
        self.disposition(delivery, None, true)
    }
}

/// `a == b`, answered without the derived comparison for the outcomes that carry no fields
/// (compared once per disposition when coalescing).
#[inline]
fn same_state(a: &Option<DeliveryState>, b: &Option<DeliveryState>) -> bool {
    match (a, b) {
        (None, None)
        | (Some(DeliveryState::Accepted(_)), Some(DeliveryState::Accepted(_)))
        | (Some(DeliveryState::Released(_)), Some(DeliveryState::Released(_))) => true,
        _ => a == b,
    }
}

/// `s.clone()`, without the derived clone for the outcomes that carry no fields (cloned once
/// per delivery of a disposition range, into its event).
#[inline]
fn clone_state(s: &Option<DeliveryState>) -> Option<DeliveryState> {
    match s {
        None => None,
        Some(DeliveryState::Accepted(_)) => Some(DeliveryState::accepted()),
        Some(DeliveryState::Released(_)) => Some(DeliveryState::released()),
        other => other.clone(),
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

#[allow(dead_code)]
fn _unused(_: Key, _: Value) {}

#[cfg(test)]
mod ring_tests {
    use super::Ring;

    /// What `span_in` must cover: the stored ids `id` with `id - first <= last - first`.
    fn brute(r: &Ring<()>, first: u32, last: u32) -> Vec<u32> {
        let span = last.wrapping_sub(first);
        (0..r.items.len() as u32)
            .map(|i| r.base.wrapping_add(i))
            .filter(|id| r.items[id.wrapping_sub(r.base) as usize].is_some())
            .filter(|id| id.wrapping_sub(first) <= span)
            .collect()
    }

    #[test]
    fn span_in_matches_a_scan() {
        for base in [0u32, 7, u32::MAX - 3] {
            let mut r = Ring::new();
            for k in 0..8u32 {
                if k != 2 {
                    assert!(r.insert(base.wrapping_add(k), ()));
                }
            }
            for a in -3i64..12 {
                for b in a..12 {
                    let first = base.wrapping_add(a as u32);
                    let last = base.wrapping_add(b as u32);
                    let (lo, n) = r.span_in(first, last);
                    let got: Vec<u32> = (0..n)
                        .map(|k| lo.wrapping_add(k))
                        .filter(|&id| r.index(id).is_some_and(|i| r.items[i].is_some()))
                        .collect();
                    assert_eq!(got, brute(&r, first, last), "base {base} {a}..={b}");
                }
            }
        }
        let empty: Ring<()> = Ring::new();
        assert_eq!(empty.span_in(0, u32::MAX).1, 0);
    }

    #[test]
    fn remove_span_matches_removing_one_by_one() {
        for base in [0u32, u32::MAX - 3] {
            for a in -2i64..10 {
                for b in a..10 {
                    let mut bulk = Ring::new();
                    let mut single = Ring::new();
                    for k in [0u32, 1, 3, 4, 5, 7] {
                        bulk.insert(base.wrapping_add(k), k);
                        single.insert(base.wrapping_add(k), k);
                    }
                    let (first, last) = (base.wrapping_add(a as u32), base.wrapping_add(b as u32));
                    let (lo, n) = bulk.span_in(first, last);
                    bulk.remove_span(lo, n);
                    for id in (0..n).map(|k| lo.wrapping_add(k)) {
                        single.remove(id);
                    }
                    assert_eq!(bulk.base, single.base, "{a}..={b}");
                    assert_eq!(bulk.items, single.items, "{a}..={b}");
                }
            }
        }
    }
}

#[cfg(test)]
mod transfer_header_tests {
    use super::*;

    /// `put_transfer` writes the same bytes as encoding the `Transfer` performative generically.
    #[test]
    fn put_transfer_matches_generic_encoding() {
        let big_tag = vec![7u8; 300];
        let tags: [Option<&[u8]>; 4] = [None, Some(b""), Some(b"tag1"), Some(&big_tag)];
        for h in [0u32, 1, 255, 256, u32::MAX] {
            for id in [None, Some(0u32), Some(200), Some(70_000)] {
                // First frames carry an id and a tag, continuation frames neither.
                for tag in tags.into_iter().filter(|t| t.is_some() == id.is_some()) {
                    for fmt in [0u32, 5, 1 << 20] {
                        for (settled, more) in [(false, false), (true, false), (false, true)] {
                            let (hlen, count, body) = transfer_len(h, id, tag, fmt, settled, more);
                            let size = FRAME_HEADER_SIZE + hlen + 3;
                            let mut fast = BytesMut::new();
                            put_transfer(
                                &mut fast, size, 9, h, id, tag, fmt, settled, more, count, body,
                            );
                            let t = Transfer {
                                handle: h,
                                delivery_id: id.filter(|_| count > 1),
                                delivery_tag: tag.filter(|_| count > 2).map(Bytes::copy_from_slice),
                                message_format: (count > 3 && (id.is_some() || fmt != 0))
                                    .then_some(fmt),
                                settled: (count > 4).then_some(settled),
                                more: (count > 5).then_some(more),
                                ..Transfer::default()
                            };
                            let mut generic = BytesMut::new();
                            frame::put_frame_header(
                                &mut generic,
                                size as u32,
                                frame::FRAME_TYPE_AMQP,
                                9,
                            );
                            t.encode(&mut generic);
                            assert_eq!(fast, generic, "{t:?}");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod transfer_decode_tests {
    use super::*;
    use amqp_proto::messaging::DeliveryState;

    fn generic(body: &Bytes) -> (TransferIn, Bytes) {
        let mut d = codec::Decoder::new(body);
        let (t, state) = TransferIn::from_transfer(Transfer::decode_body(&mut d).unwrap());
        assert_eq!(state, None);
        (t, d.rest_bytes())
    }

    /// Encodes `t` as a frame body after the descriptor, followed by a payload.
    fn body_of(t: &Transfer) -> Bytes {
        let mut b = BytesMut::new();
        t.encode(&mut b);
        b.extend_from_slice(b"payload");
        Bytes::from(b).slice(3..)
    }

    #[test]
    fn common_shape_decodes_like_the_generic_decoder() {
        let mut cases = Vec::new();
        for handle in [0u32, 9, 300] {
            for id in [None, Some(0u32), Some(7), Some(1 << 30)] {
                for tag in [None, Some(Bytes::new()), Some(Bytes::from_static(b"abc"))] {
                    for flag in [None, Some(false), Some(true)] {
                        cases.push(Transfer {
                            handle,
                            delivery_id: id,
                            delivery_tag: tag.clone(),
                            message_format: id.map(|_| 0),
                            settled: flag,
                            more: flag.map(|f| !f),
                            ..Transfer::default()
                        });
                    }
                }
            }
        }
        for t in &cases {
            let body = body_of(t);
            let (fast, end) = decode_transfer_common(&body, 0).expect("common shape");
            let fast = (fast, body.slice(end..));
            assert_eq!(fast, generic(&body), "{t:?}");
            assert_eq!(&fast.1[..], b"payload");
            // At an offset in a frame, as the engine calls it.
            let mut framed = BytesMut::from(&b"\x00\x00\x00\x00\x02\x00\x00\x00\x00\x53\x14"[..]);
            framed.extend_from_slice(&body);
            let framed = framed.freeze();
            assert_eq!(
                decode_transfer_common(&framed, 11),
                Some((fast.0, framed.len() - 7))
            );
        }
    }

    #[test]
    fn other_shapes_fall_back() {
        let unusual = [
            Transfer {
                handle: 1,
                state: Some(DeliveryState::accepted()),
                ..Transfer::default()
            },
            Transfer {
                handle: 1,
                aborted: Some(true),
                ..Transfer::default()
            },
            Transfer {
                handle: 1,
                delivery_tag: Some(Bytes::from(vec![1u8; 300])),
                ..Transfer::default()
            },
        ];
        for t in &unusual {
            assert!(decode_transfer_common(&body_of(t), 0).is_none(), "{t:?}");
        }
        // Truncated or inconsistent lists, a null handle, a boolean in its long form.
        for raw in [
            &[0xc0u8, 0x05, 0x02, 0x43][..],
            &[0xc0, 0x02, 0x01, 0x40],
            &[0xc0, 0x04, 0x02, 0x43, 0xa0, 0x09],
            &[0xc0, 0x04, 0x02, 0x43, 0x43, 0x43],
            &[0xc0, 0x07, 0x05, 0x43, 0x43, 0x40, 0x43, 0x56, 0x01],
            &[0x45],
            &[],
        ] {
            assert!(
                decode_transfer_common(&Bytes::copy_from_slice(raw), 0).is_none(),
                "{raw:?}"
            );
        }
    }
}

#[cfg(test)]
mod state_tests {
    use super::{clone_state, same_state};
    use amqp_proto::definitions::{condition, Error};
    use amqp_proto::messaging::{DeliveryState, Modified, Rejected};

    #[test]
    fn fast_state_helpers_agree_with_derived_ones() {
        let states = [
            None,
            Some(DeliveryState::accepted()),
            Some(DeliveryState::released()),
            Some(DeliveryState::Rejected(Rejected { error: None })),
            Some(DeliveryState::Rejected(Rejected {
                error: Some(Error::new(condition::NOT_ALLOWED, "no")),
            })),
            Some(DeliveryState::Modified(Modified {
                delivery_failed: Some(true),
                ..Modified::default()
            })),
        ];
        for a in &states {
            assert_eq!(&clone_state(a), a);
            for b in &states {
                assert_eq!(same_state(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }
}
