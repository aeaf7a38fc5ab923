//! The small `Copy` handles of the messaging layer, and how they print (short ids: `c0`,
//! `c0/l1`, `c0/l1/d5`).

use std::fmt;

use crate::ids::{DeliveryId, Key, SessionId};

/// A logical connection: it survives reconnects.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionHandle(pub(super) Key);

/// One transport attempt of a connection; I/O results name it so stale ones are ignored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportId {
    pub(super) conn: Key,
    pub(super) gen: u32,
}

impl TransportId {
    /// The connection this transport belongs to.
    pub fn connection(&self) -> ConnectionHandle {
        ConnectionHandle(self.conn)
    }
}

/// A session of the current transport of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHandle {
    pub(super) conn: Key,
    pub(super) gen: u32,
    pub(super) session: SessionId,
}

/// A sender or receiver. Links created by the application are re-attached after a reconnect and
/// keep their handle.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkHandle {
    pub(super) conn: Key,
    pub(super) link: Key,
}

impl LinkHandle {
    /// The connection of the link.
    pub fn connection(&self) -> ConnectionHandle {
        ConnectionHandle(self.conn)
    }
}

/// A received delivery, to accept, reject, release, modify or settle.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryHandle {
    pub(super) conn: Key,
    pub(super) gen: u32,
    pub(super) link: LinkHandle,
    pub(super) id: DeliveryId,
}

impl DeliveryHandle {
    /// The receiving link.
    pub fn link(&self) -> LinkHandle {
        self.link
    }
}

/// A sent delivery (Proton's tracker): its outcome arrives in `on_accepted`, `on_rejected`,
/// `on_released`, `on_settled`, or `on_in_doubt`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tracker {
    pub(super) conn: Key,
    pub(super) gen: u32,
    pub(super) link: LinkHandle,
    pub(super) id: DeliveryId,
}

impl Tracker {
    /// The sending link.
    pub fn link(&self) -> LinkHandle {
        self.link
    }
    /// A number unique among the trackers of one transport of one connection.
    pub fn delivery_number(&self) -> u32 {
        self.id.number
    }
}

/// A scheduled task.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerHandle(pub(super) u64);

/// A listener.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AcceptorHandle(pub(super) Key);

/// A slab key, short: its index, and the slot's reuse count when the slot was reused.
fn short_key(k: Key) -> ShortKey {
    ShortKey(k)
}

/// Prints a [`Key`] short.
struct ShortKey(Key);

impl fmt::Display for ShortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.gen {
            0 => write!(f, "{}", self.0.index),
            g => write!(f, "{}'{g}", self.0.index),
        }
    }
}

/// Handles print short ids (`c0`, `c0/l1`, `c0/l1/d5`), the same for `{}` and `{:?}`.
macro_rules! short_display {
    ($t:ty, |$s:ident, $f:ident| $body:expr) => {
        impl fmt::Display for $t {
            fn fmt(&self, $f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let $s = self;
                $body
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

short_display!(ConnectionHandle, |s, f| write!(f, "c{}", short_key(s.0)));
short_display!(TransportId, |s, f| write!(
    f,
    "c{}#{}",
    short_key(s.conn),
    s.gen
));
short_display!(SessionHandle, |s, f| write!(
    f,
    "c{}/s{}",
    short_key(s.conn),
    short_key(s.session.0)
));
short_display!(LinkHandle, |s, f| write!(
    f,
    "c{}/l{}",
    short_key(s.conn),
    short_key(s.link)
));
short_display!(DeliveryHandle, |s, f| write!(
    f,
    "{}/d{}",
    s.link, s.id.number
));
short_display!(Tracker, |s, f| write!(f, "{}/t{}", s.link, s.id.number));
short_display!(TimerHandle, |s, f| write!(f, "timer{}", s.0));
short_display!(AcceptorHandle, |s, f| write!(f, "a{}", short_key(s.0)));
