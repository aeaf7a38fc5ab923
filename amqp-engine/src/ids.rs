//! Small `Copy` handles and the slab that owns what they point to.

use std::fmt;

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
#[derive(Debug)]
pub(crate) struct Slab<T> {
    entries: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub(crate) fn insert(&mut self, v: T) -> Key {
        self.len += 1;
        if let Some(i) = self.free.pop() {
            let e = &mut self.entries[i as usize];
            e.0 = e.0.wrapping_add(1);
            e.1 = Some(v);
            Key { index: i, gen: e.0 }
        } else {
            self.entries.push((0, Some(v)));
            Key {
                index: (self.entries.len() - 1) as u32,
                gen: 0,
            }
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
                self.free.push(k.index);
                self.len -= 1;
                slot.take()
            }
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn keys(&self) -> Vec<Key> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, (_, v))| v.is_some())
            .map(|(i, (g, _))| Key {
                index: i as u32,
                gen: *g,
            })
            .collect()
    }
}
