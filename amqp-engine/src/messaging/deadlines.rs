//! [`Deadlines`]: one deadline per key (a connection's heartbeat, idle, handshake or close
//! deadline) in a binary heap, so that the earliest is read in O(1) and setting, clearing or
//! firing one costs O(log n) however many keys have a deadline. Times are any ordered value
//! (`Instant` in the container).
//!
//! A changed or cleared deadline is not searched for in the heap: its entry stays there,
//! stale, and is recognised by its sequence number when it reaches the top (lazy
//! invalidation). Stale entries are dropped from the top after every change, so the top is
//! always live, and the heap is rebuilt from the live deadlines when stale entries outnumber
//! them (plus a small slack), so its size stays within a constant factor of the live count.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// Stale entries tolerated beyond the live ones before the heap is rebuilt.
const REBUILD_SLACK: usize = 64;

/// The deadlines of a set of keys, earliest first.
#[derive(Debug)]
pub(super) struct Deadlines<K, T = Instant> {
    /// `(deadline, sequence, key)`: an entry is live while `current[key]` holds its sequence.
    heap: BinaryHeap<Reverse<(T, u64, K)>>,
    /// Each key's live deadline and the sequence number of its heap entry.
    current: HashMap<K, (T, u64)>,
    seq: u64,
}

impl<K, T> Default for Deadlines<K, T> {
    fn default() -> Self {
        Deadlines {
            heap: BinaryHeap::new(),
            current: HashMap::new(),
            seq: 0,
        }
    }
}

impl<K: Copy + Eq + Hash + Ord, T: Copy + Ord> Deadlines<K, T> {
    /// Sets (`Some`) or clears (`None`) the deadline of `key`; setting the deadline it already
    /// has costs one lookup.
    pub(super) fn set(&mut self, key: K, at: Option<T>) {
        match at {
            None => {
                if self.current.remove(&key).is_none() {
                    return;
                }
            }
            Some(at) => {
                if self.current.get(&key).is_some_and(|&(t, _)| t == at) {
                    return;
                }
                self.seq += 1;
                self.current.insert(key, (at, self.seq));
                self.heap.push(Reverse((at, self.seq, key)));
            }
        }
        self.settle();
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<T> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Removes and returns a key whose deadline is at or before `now`, earliest first.
    pub(super) fn pop_due(&mut self, now: T) -> Option<K> {
        let &Reverse((at, _, key)) = self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.current.remove(&key);
        self.settle();
        Some(key)
    }

    /// How many keys have a deadline.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.current.len()
    }

    /// How many entries the heap holds, stale ones included.
    #[cfg(test)]
    pub(super) fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Drops stale entries from the top, and rebuilds the heap from the live deadlines when
    /// it holds more than twice as many entries as there are live ones (plus the slack).
    fn settle(&mut self) {
        while let Some(Reverse((_, seq, key))) = self.heap.peek() {
            if self.current.get(key).is_some_and(|&(_, s)| s == *seq) {
                break;
            }
            self.heap.pop();
        }
        if self.heap.len() > 2 * self.current.len() + REBUILD_SLACK {
            if self.current.capacity() > 4 * self.current.len() + REBUILD_SLACK {
                self.current.shrink_to_fit();
            }
            // In place: the heap keeps its storage (no allocation per rebuild on a busy
            // connection whose deadline moves with every frame).
            let current = &self.current;
            self.heap
                .retain(|Reverse((_, seq, key))| current.get(key).is_some_and(|&(_, s)| s == *seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times are plain numbers here (milliseconds, say): the heap only compares them.
    fn ms(base: u64, n: u64) -> u64 {
        base + n
    }

    #[test]
    fn the_earliest_live_deadline_is_next_and_fires_first() {
        let t = 0u64;
        let mut d = Deadlines::default();
        assert_eq!(d.next(), None);
        d.set(1u32, Some(ms(t, 30)));
        d.set(2, Some(ms(t, 10)));
        d.set(3, Some(ms(t, 20)));
        assert_eq!(d.next(), Some(ms(t, 10)));
        assert_eq!(d.pop_due(ms(t, 9)), None, "nothing is due yet");
        assert_eq!(d.pop_due(ms(t, 25)), Some(2));
        assert_eq!(d.pop_due(ms(t, 25)), Some(3));
        assert_eq!(d.pop_due(ms(t, 25)), None);
        assert_eq!(d.next(), Some(ms(t, 30)));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn a_moved_or_cleared_deadline_never_fires_at_its_old_time() {
        let t = 0u64;
        let mut d = Deadlines::default();
        d.set(1u32, Some(ms(t, 10)));
        d.set(2, Some(ms(t, 20)));
        d.set(1, Some(ms(t, 50)));
        assert_eq!(d.next(), Some(ms(t, 20)), "key 1's old entry is stale");
        d.set(2, None);
        assert_eq!(d.next(), Some(ms(t, 50)));
        assert_eq!(d.pop_due(ms(t, 40)), None);
        // Moved back to an earlier time, then to where it was: one live entry, fired once.
        d.set(1, Some(ms(t, 5)));
        d.set(1, Some(ms(t, 50)));
        assert_eq!(d.pop_due(ms(t, 60)), Some(1));
        assert_eq!(d.pop_due(ms(t, 60)), None);
        assert_eq!(d.next(), None);
    }

    #[test]
    fn setting_the_same_deadline_adds_nothing() {
        let t = 0u64;
        let mut d = Deadlines::default();
        for _ in 0..1000 {
            d.set(7u32, Some(ms(t, 10)));
        }
        assert_eq!(d.heap_len(), 1);
    }

    #[test]
    fn stale_entries_stay_within_a_constant_factor_of_the_live_ones() {
        let t = 0u64;
        let mut d = Deadlines::default();
        for k in 0..1000u32 {
            d.set(k, Some(ms(t, 1_000_000)));
        }
        // Every key's deadline moves later again and again (a heartbeat after each frame):
        // the old entries are buried, never at the top, so only rebuilding removes them.
        for round in 1..=50u64 {
            for k in 0..1000u32 {
                d.set(k, Some(ms(t, 1_000_000 + round * 1000 + u64::from(k))));
                assert!(d.heap_len() <= 2 * d.len() + REBUILD_SLACK);
            }
        }
        assert_eq!(d.len(), 1000);
        // Still exact after the rebuilds: keys fire in deadline order, each once.
        let end = ms(t, 2_000_000);
        let fired: Vec<u32> = std::iter::from_fn(|| d.pop_due(end)).collect();
        assert_eq!(fired, (0..1000).collect::<Vec<_>>());
        // Clearing everything leaves an empty heap.
        for k in 0..1000u32 {
            d.set(k, Some(ms(t, 5)));
        }
        for k in 0..1000u32 {
            d.set(k, None);
        }
        assert_eq!((d.next(), d.heap_len()), (None, 0));
    }
}
