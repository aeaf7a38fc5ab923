//! [`Conns`]: a container's managed connections, with what makes each turn of the driver cost
//! only what changed: the list of connections touched since the last flush (so output and
//! engine events are collected from those, not from every connection), and the heap of their
//! engines' deadlines (so the next deadline is read, and a passed one found, without visiting
//! the others).

use crate::ids::{Key, Keys, Slab};
use std::time::Instant;

use super::deadlines::Deadlines;
use super::managed::ManagedConnection;

/// The managed connections of a container. Every mutable access lists the connection as
/// touched; [`take_touched`](Self::take_touched) hands the list to the flush, which then
/// re-registers each touched connection's engine deadline with
/// [`sync_deadline`](Self::sync_deadline). Whatever changes an engine's deadline (input,
/// output taken, a timeout handled, a close, a new or dropped engine) goes through a mutable
/// access, so no deadline is missed.
#[derive(Default)]
pub(super) struct Conns {
    slab: Slab<Box<ManagedConnection>>,
    /// Connections mutably accessed since the last [`take_touched`](Self::take_touched), each
    /// once (its `listed` flag).
    touched: Vec<Key>,
    /// The previous list's buffer, reused so that a flush allocates nothing.
    spare: Vec<Key>,
    /// Each connection's engine deadline (heartbeat, idle, handshake, close), as last synced.
    deadlines: Deadlines<Key>,
    /// Connections visited by flushes and fired deadlines: what the cost of a turn grows with
    /// ([`SansIoContainer::connections_visited`](super::SansIoContainer::connections_visited)).
    #[cfg(feature = "sim")]
    pub(super) visits: u64,
}

impl Conns {
    pub(super) fn insert(&mut self, mut c: Box<ManagedConnection>) -> Key {
        c.listed = true;
        let k = self.slab.insert(c);
        self.touched.push(k);
        k
    }

    pub(super) fn get(&self, k: Key) -> Option<&ManagedConnection> {
        self.slab.get(k).map(|c| &**c)
    }

    /// The connection, to change: listed as touched.
    pub(super) fn get_mut(&mut self, k: Key) -> Option<&mut ManagedConnection> {
        let c = self.slab.get_mut(k)?;
        if !c.listed {
            c.listed = true;
            self.touched.push(k);
        }
        Some(c)
    }

    pub(super) fn remove(&mut self, k: Key) -> Option<Box<ManagedConnection>> {
        self.deadlines.set(k, None);
        self.slab.remove(k)
    }

    pub(super) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Every connection's key (for what concerns all of them: stop, the hard stop).
    pub(super) fn keys(&self) -> Keys {
        self.slab.keys()
    }

    /// The connections touched since the last call; hand the vector back with
    /// [`give_back`](Self::give_back).
    pub(super) fn take_touched(&mut self) -> Vec<Key> {
        let mut list = std::mem::take(&mut self.spare);
        std::mem::swap(&mut list, &mut self.touched);
        for &k in &list {
            if let Some(c) = self.slab.get_mut(k) {
                c.listed = false;
            }
        }
        #[cfg(feature = "sim")]
        {
            self.visits += list.len() as u64;
        }
        list
    }

    pub(super) fn give_back(&mut self, mut list: Vec<Key>) {
        list.clear();
        self.spare = list;
    }

    /// True when connections were touched since the last [`take_touched`](Self::take_touched).
    pub(super) fn any_touched(&self) -> bool {
        !self.touched.is_empty()
    }

    /// Re-registers the connection's engine deadline (none without an engine, or once gone).
    pub(super) fn sync_deadline(&mut self, k: Key) {
        let at = self
            .slab
            .get(k)
            .and_then(|c| c.engine.as_ref())
            .and_then(|e| e.poll_timeout());
        self.deadlines.set(k, at);
    }

    /// The earliest engine deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    /// A connection whose engine deadline is at or before `now` (no longer registered: the
    /// caller handles the timeout and touches it, and the flush registers its next deadline).
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Key> {
        let k = self.deadlines.pop_due(now)?;
        #[cfg(feature = "sim")]
        {
            self.visits += 1;
        }
        Some(k)
    }
}
