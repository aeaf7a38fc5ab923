//! One managed connection: the engine `Connection` of the current transport, the reconnect and
//! failover state, the link records re-attached after a reconnect, and the in-doubt
//! bookkeeping.

use std::collections::HashMap;
use std::time::Instant;

use amqp_proto::definitions::{Error, Role};

use super::error::TransportError;
use super::handles::*;
use super::options::ConnectOptions;
use super::reconnect::Failover;
use crate::connection::{Connection, LinkConfig};
use crate::ids::{Key, LinkId, SessionId, Slab};

pub(super) struct Outgoing {
    pub(super) options: ConnectOptions,
    pub(super) failover: Failover,
    pub(super) url_index: usize,
    pub(super) process_started: Option<Instant>,
}

pub(super) struct LinkRec {
    pub(super) role: Role,
    pub(super) config: LinkConfig,
    pub(super) engine: Option<LinkId>,
    pub(super) app_closed: bool,
    /// The handler closed it (not the peer): messages still queued for it are released.
    pub(super) handler_closed: bool,
    pub(super) prefetch: u32,
    /// Created by the application: re-attached after reconnect.
    pub(super) persistent: bool,
    /// The error to close (or, for a link the peer is attaching, refuse) the link with.
    pub(super) close_error: Option<Error>,
}

pub(super) struct Conn {
    pub(super) gen: u32,
    pub(super) engine: Option<Connection>,
    pub(super) acceptor: Option<AcceptorHandle>,
    pub(super) outgoing: Option<Outgoing>,
    pub(super) session: Option<SessionId>,
    pub(super) links: Slab<LinkRec>,
    pub(super) by_engine: HashMap<LinkId, Key>,
    pub(super) app_closed: bool,
    pub(super) dirty: bool,
    pub(super) reconnect_timer: Option<TimerHandle>,
    pub(super) auth_failed: bool,
    pub(super) close_sent: bool,
    /// Why the last transport ended: reported when reconnecting gives up.
    pub(super) last_error: Option<TransportError>,
}
