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
    /// Connections visited by flushes and fired deadlines: the cost the tests measure.
    #[cfg(test)]
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
        #[cfg(test)]
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
        #[cfg(test)]
        {
            self.visits += 1;
        }
        Some(k)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::messaging::{
        AcceptorHandle, IoCore, IoRequest, ListenOptions, MessagingHandler, SansIoContainer,
        TransportId, TransportInfo,
    };

    struct Quiet;
    impl MessagingHandler for Quiet {}

    /// A container listening, with `first` accepted at `t0` and `n` more a second later,
    /// none of which sends anything: each has only its handshake deadline (10 s).
    fn idle_server(n: usize, t0: Instant) -> (SansIoContainer<Quiet>, TransportId) {
        let mut c = SansIoContainer::with_id(Quiet, "server", t0);
        c.start(t0);
        let a = c
            .context_mut()
            .listen_with("127.0.0.1:0", ListenOptions::default())
            .expect("listen");
        while c.poll_io().is_some() {}
        c.handle_listening(a, Ok(5672), t0);
        let first = accept(&mut c, a, t0);
        for _ in 0..n {
            accept(&mut c, a, t0 + Duration::from_secs(1));
        }
        while c.poll_io().is_some() {}
        (c, first)
    }

    fn accept(c: &mut SansIoContainer<Quiet>, a: AcceptorHandle, now: Instant) -> TransportId {
        c.handle_accepted(a, TransportInfo::default(), now)
            .expect("accepted")
    }

    /// Connections visited by `f`.
    fn visits(c: &mut SansIoContainer<Quiet>, f: impl FnOnce(&mut SansIoContainer<Quiet>)) -> u64 {
        let before = c.context().conns.visits;
        f(c);
        c.context().conns.visits - before
    }

    #[test]
    fn one_passed_deadline_visits_the_same_connections_with_10_or_10000_open() {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        for n in [10, 10_000] {
            let (mut c, first) = idle_server(n, t0);
            let deadline = t0 + Duration::from_secs(10);
            assert_eq!(
                c.poll_timeout(),
                Some(deadline),
                "the first one's handshake deadline"
            );
            let cost = visits(&mut c, |c| {
                c.handle_timeout(deadline);
                assert_eq!(c.poll_timeout(), Some(deadline + Duration::from_secs(1)));
            });
            let closed: Vec<TransportId> = std::iter::from_fn(|| c.poll_io())
                .filter_map(|r| match r {
                    IoRequest::Close { transport } => Some(transport),
                    _ => None,
                })
                .collect();
            assert_eq!(
                closed,
                vec![first],
                "only the connection whose deadline passed"
            );
            assert_eq!(c.context().conns.len(), n);
            seen.push(cost);
        }
        assert!(
            seen[0] <= 4,
            "a handful of visits, not one per connection: {seen:?}"
        );
        assert_eq!(
            seen[0], seen[1],
            "the cost does not grow with connections: {seen:?}"
        );
    }

    #[test]
    fn bytes_on_one_connection_visit_the_same_connections_with_10_or_10000_open() {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        for n in [10, 10_000] {
            let (mut c, first) = idle_server(n, t0);
            let cost = visits(&mut c, |c| {
                c.handle_read(first, b"AMQP\x00\x01\x00\x00", t0 + Duration::from_secs(2));
                while c.poll_io().is_some() {}
                assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(10)));
            });
            seen.push(cost);
        }
        assert!(seen[0] <= 4, "{seen:?}");
        assert_eq!(seen[0], seen[1], "{seen:?}");
    }
}
