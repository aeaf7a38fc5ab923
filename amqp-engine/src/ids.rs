//! Small `Copy` handles and the slab that owns what they point to.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::hash::Hash;

/// A session of a [`Connection`](crate::Connection).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) Key);

/// A link (sender or receiver) of a [`Connection`](crate::Connection).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub(crate) Key);

/// A delivery: a link and the session-scoped delivery number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct DeliveryId {
    /// The link the delivery travels on.
    pub link: LinkId,
    /// The delivery-id (delivery-number) on the link's session.
    pub number: u32,
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({}.{})", self.0.index, self.0.gen)
    }
}

impl fmt::Debug for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Link({}.{})", self.0.index, self.0.gen)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

/// A generational slab: stale keys never alias a newer entry.
///
/// It gives back what a burst left behind: vacant slots at the end are cut off as they
/// appear, and the vectors' capacity is shrunk once it is four times what they hold, so a
/// container that had 10,000 connections and has 10 again holds (and walks, in
/// [`keys`](Self::keys)) about as much as it did before the burst (up to its highest live
/// slot). Every operation stays O(1) amortised: a slot is cut once per push, a shrink of
/// capacity `c` follows at least `c / 4` removals, and a free-list number made stale by a cut
/// is dropped once, when popped or when such numbers fill most of the list.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    entries: Vec<(u32, Option<T>)>,
    /// Vacant slots to reuse, last freed first, each once; and numbers of slots cut off the end
    /// since (at or past `entries.len()`: `insert` drops those). A slot is pushed only when
    /// this is empty, so a number here never names a live slot.
    free: Vec<u32>,
    len: usize,
    /// The generation of a slot pushed anew: past that of every slot cut off the end, so a
    /// stale key to a cut slot does not match the slot pushed in its place.
    fresh_gen: u32,
}

/// Vectors of a [`Slab`] at or below this capacity are never shrunk (no churn of a few
/// entries reallocates).
const SLAB_KEEP: usize = 32;

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
            fresh_gen: 0,
        }
    }
}

/// Shrinks `v` to twice its length once its capacity is past four times that (and past
/// [`SLAB_KEEP`]).
fn shrink_sparse<E>(v: &mut Vec<E>) {
    if v.capacity() > SLAB_KEEP && v.len() < v.capacity() / 4 {
        v.shrink_to((v.len() * 2).max(SLAB_KEEP));
    }
}

impl<T> Slab<T> {
    pub(crate) fn insert(&mut self, v: T) -> Key {
        self.len += 1;
        while let Some(i) = self.free.pop() {
            if let Some(e) = self.entries.get_mut(i as usize) {
                if e.1.is_none() {
                    e.0 = e.0.wrapping_add(1);
                    e.1 = Some(v);
                    shrink_sparse(&mut self.free);
                    return Key { index: i, gen: e.0 };
                }
            }
        }
        self.entries.push((self.fresh_gen, Some(v)));
        Key {
            index: (self.entries.len() - 1) as u32,
            gen: self.fresh_gen,
        }
    }

    pub(crate) fn get(&self, k: Key) -> Option<&T> {
        match self.entries.get(k.index as usize) {
            Some((g, Some(v))) if *g == k.gen => Some(v),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, k: Key) -> Option<&mut T> {
        match self.entries.get_mut(k.index as usize) {
            Some((g, Some(v))) if *g == k.gen => Some(v),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, k: Key) -> Option<T> {
        match self.entries.get_mut(k.index as usize) {
            Some((g, slot @ Some(_))) if *g == k.gen => {
                self.len -= 1;
                let v = slot.take();
                if k.index as usize + 1 == self.entries.len() {
                    self.cut_vacant_tail();
                } else {
                    self.free.push(k.index);
                }
                v
            }
            _ => None,
        }
    }

    /// Cuts the vacant slots off the end (their numbers left in `free` go stale), and shrinks
    /// the vectors when they are mostly empty.
    fn cut_vacant_tail(&mut self) {
        while let Some((g, None)) = self.entries.last() {
            self.fresh_gen = self.fresh_gen.max(g.wrapping_add(1));
            self.entries.pop();
        }
        shrink_sparse(&mut self.entries);
        let n = self.entries.len();
        if self.free.len() > 2 * n {
            // More than half of it names cut slots: dropping them now costs what they did.
            self.free.retain(|&i| (i as usize) < n);
        }
        shrink_sparse(&mut self.free);
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// A snapshot of the live keys, so the caller may insert and remove while it walks them;
    /// up to [`INLINE_KEYS`] of them without allocating (the hot paths walk a container's few
    /// connections, or a connection's few links, on every read).
    pub(crate) fn keys(&self) -> Keys {
        let mut keys = Keys {
            inline: [Key { index: 0, gen: 0 }; INLINE_KEYS],
            len: 0,
            heap: Vec::new(),
            pos: 0,
        };
        let live = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (_, v))| v.is_some());
        for (i, (g, _)) in live {
            let k = Key {
                index: i as u32,
                gen: *g,
            };
            if keys.heap.is_empty() && keys.len < INLINE_KEYS {
                keys.inline[keys.len] = k;
                keys.len += 1;
            } else {
                if keys.heap.is_empty() {
                    keys.heap.reserve(self.len);
                    keys.heap.extend_from_slice(&keys.inline[..keys.len]);
                }
                keys.heap.push(k);
            }
        }
        keys
    }
}

/// How many keys a [`Keys`] snapshot holds before it moves to the heap.
pub(crate) const INLINE_KEYS: usize = 8;

/// The keys of a [`Slab`] when [`Slab::keys`] was called, in index order.
pub(crate) struct Keys {
    inline: [Key; INLINE_KEYS],
    len: usize,
    heap: Vec<Key>,
    pos: usize,
}

impl Iterator for Keys {
    type Item = Key;

    fn next(&mut self) -> Option<Key> {
        let all = if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap[..]
        };
        let k = all.get(self.pos).copied();
        self.pos += 1;
        k
    }
}

/// Keys below this live in a vector indexed by the key; larger ones in a hash map.
const DENSE_KEYS: usize = 256;

/// A map from small integer ids (channels, handles) to values, shaped like the parts of
/// `HashMap` the engine uses. Peers number channels and handles from 0, so lookups on the
/// per-frame path are an index into a short vector, with no hashing; any other key still works.
#[derive(Debug)]
pub(crate) struct IdMap<K, V> {
    dense: Vec<Option<V>>,
    sparse: HashMap<K, V>,
}

impl<K, V> Default for IdMap<K, V> {
    fn default() -> Self {
        IdMap {
            dense: Vec::new(),
            sparse: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash + Into<u32>, V> IdMap<K, V> {
    #[inline]
    fn slot(k: &K) -> Option<usize> {
        let i = (*k).into() as usize;
        (i < DENSE_KEYS).then_some(i)
    }

    #[inline]
    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        match Self::slot(k) {
            Some(i) => self.dense.get(i).and_then(Option::as_ref),
            None => self.sparse.get(k),
        }
    }

    #[inline]
    pub(crate) fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        match Self::slot(&k) {
            Some(i) => {
                if self.dense.len() <= i {
                    self.dense.resize_with(i + 1, || None);
                }
                self.dense[i].replace(v)
            }
            None => self.sparse.insert(k, v),
        }
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        match Self::slot(k) {
            Some(i) => self.dense.get_mut(i).and_then(Option::take),
            None => self.sparse.remove(k),
        }
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.dense.iter().flatten().chain(self.sparse.values())
    }

    pub(crate) fn clear(&mut self) {
        self.dense.clear();
        self.sparse.clear();
    }
}

/// Hands out the lowest free number (channels, handles) in O(log n): numbers never used yet
/// come from a counter, released ones from a min-heap, so finding one costs the same however
/// many are in use.
#[derive(Debug, Default)]
pub(crate) struct IdPool {
    /// Every number below this has been handed out (and is in use or in `free`).
    next: u32,
    free: BinaryHeap<Reverse<u32>>,
}

impl IdPool {
    /// The lowest free number, if it is at most `max`; it is then in use.
    pub(crate) fn alloc(&mut self, max: u32) -> Option<u32> {
        match self.free.peek() {
            Some(&Reverse(id)) if id <= max => {
                self.free.pop();
                Some(id)
            }
            Some(_) => None,
            None if self.next <= max => {
                let id = self.next;
                self.next = id.checked_add(1)?;
                Some(id)
            }
            None => None,
        }
    }

    /// Gives back a number from [`alloc`](Self::alloc).
    pub(crate) fn release(&mut self, id: u32) {
        if id < self.next {
            self.free.push(Reverse(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{IdMap, IdPool, Slab, INLINE_KEYS};

    #[test]
    fn slab_keys_are_a_snapshot_in_index_order_inline_or_spilled() {
        for n in [0, 3, INLINE_KEYS, INLINE_KEYS + 1, 3 * INLINE_KEYS] {
            let mut s = Slab::default();
            let all: Vec<_> = (0..n + 1).map(|i| s.insert(i)).collect();
            s.remove(all[0]);
            let mut walked = Vec::new();
            for k in s.keys() {
                // Changing the slab while walking its keys is allowed.
                s.insert(99);
                walked.push(k);
            }
            assert_eq!(walked, all[1..], "{n} keys");
        }
    }

    #[test]
    fn slab_gives_back_what_a_burst_left_behind() {
        let mut s = Slab::default();
        let keys: Vec<_> = (0..10_000).map(|i| s.insert(i)).collect();
        // The ten kept are the first ten; the rest leave in an order that empties the end last.
        for k in keys[10..]
            .iter()
            .step_by(2)
            .chain(keys[11..].iter().step_by(2))
        {
            assert!(s.remove(*k).is_some());
        }
        assert_eq!(s.len(), 10);
        assert_eq!(s.entries.len(), 10, "vacant slots cut off the end");
        assert!(s.entries.capacity() <= 64, "{}", s.entries.capacity());
        assert!(s.free.capacity() <= 64, "{}", s.free.capacity());
        assert_eq!(s.keys().collect::<Vec<_>>(), keys[..10]);
        for k in &keys[..10] {
            assert!(s.remove(*k).is_some());
        }
        assert_eq!((s.entries.len(), s.free.len()), (0, 0));
        // A few entries coming and going never reallocate.
        let cap = s.entries.capacity();
        for i in 0..100 {
            let k = s.insert(i);
            s.remove(k);
        }
        assert_eq!(s.entries.capacity(), cap);
    }

    #[test]
    fn slab_keys_to_cut_slots_stay_stale() {
        let mut s = Slab::default();
        let (a, b, c) = (s.insert('a'), s.insert('b'), s.insert('c'));
        s.remove(b);
        s.remove(c);
        // `b`'s number is left in the free list although its slot was cut: it is skipped, and
        // the slots pushed again do not answer to the old keys.
        let (d, e) = (s.insert('d'), s.insert('e'));
        assert_eq!((d.index, e.index), (1, 2));
        assert_eq!((s.get(b), s.get(c)), (None, None));
        assert_eq!(
            (s.get(a), s.get(d), s.get(e)),
            (Some(&'a'), Some(&'d'), Some(&'e'))
        );
        s.remove(d);
        let f = s.insert('f');
        assert_eq!(f.index, 1);
        assert_eq!(
            (s.get(d), s.get(f), s.get(e)),
            (None, Some(&'f'), Some(&'e'))
        );
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn id_pool_hands_out_the_lowest_free_number() {
        let mut p = IdPool::default();
        assert_eq!(
            (p.alloc(2), p.alloc(2), p.alloc(2)),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!(p.alloc(2), None, "all of 0..=2 in use");
        p.release(1);
        p.release(0);
        assert_eq!(p.alloc(0), Some(0));
        assert_eq!(p.alloc(0), None, "1 is free but above max");
        assert_eq!(p.alloc(5), Some(1));
        assert_eq!(p.alloc(5), Some(3));
        let mut full = IdPool::default();
        for i in 0..=u16::MAX as u32 {
            assert_eq!(full.alloc(u16::MAX as u32), Some(i));
        }
        assert_eq!(full.alloc(u16::MAX as u32), None);
    }

    #[test]
    fn id_map_dense_and_sparse_keys() {
        let mut m: IdMap<u32, &str> = IdMap::default();
        assert_eq!(m.insert(3, "a"), None);
        assert_eq!(m.insert(70_000, "b"), None);
        assert_eq!(m.insert(3, "c"), Some("a"));
        assert_eq!(m.get(&3), Some(&"c"));
        assert_eq!(m.get(&70_000), Some(&"b"));
        assert!(!m.contains_key(&4));
        assert!(!m.contains_key(&1_000_000));
        let mut v: Vec<_> = m.values().copied().collect();
        v.sort();
        assert_eq!(v, ["b", "c"]);
        assert_eq!(m.remove(&3), Some("c"));
        assert_eq!(m.remove(&3), None);
        assert_eq!(m.remove(&70_000), Some("b"));
        assert_eq!(m.values().count(), 0);
        let mut c: IdMap<u16, u8> = IdMap::default();
        c.insert(u16::MAX, 1);
        c.insert(0, 2);
        assert_eq!(c.get(&u16::MAX), Some(&1));
        assert_eq!(c.get(&0), Some(&2));
    }
}
