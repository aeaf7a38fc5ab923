//! Unsettled deliveries: the [`Ring`] each session keeps per direction (indexed by
//! delivery-id), dispositions queued and coalesced into ranged frames, and the peer's
//! dispositions applied.

use super::*;

/// A delivery we sent that the peer has not settled.
#[derive(Debug)]
pub(super) struct OutEntry {
    pub(super) link: LinkId,
}

/// A delivery we received and have not settled.
#[derive(Debug)]
pub(super) struct InEntry {
    pub(super) link: LinkId,
    /// Receiver settle mode second: the application settled, awaiting the sender's settlement.
    pub(super) settle_pending: bool,
}

/// A ring of unsettled deliveries indexed by delivery-id (ids are allocated sequentially).
#[derive(Debug)]
pub(super) struct Ring<T> {
    base: u32,
    items: VecDeque<Option<T>>,
}

impl<T> Ring<T> {
    pub(super) fn new() -> Self {
        Ring {
            base: 0,
            items: VecDeque::new(),
        }
    }

    pub(super) fn index(&self, id: u32) -> Option<usize> {
        let off = id.wrapping_sub(self.base) as usize;
        (off < self.items.len()).then_some(off)
    }

    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        let i = self.index(id)?;
        self.items.get_mut(i)?.as_mut()
    }

    /// Inserts `v` for `id`; ids must be increasing. Returns false if `id` is unusable.
    pub(super) fn insert(&mut self, id: u32, v: T) -> bool {
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

    pub(super) fn remove(&mut self, id: u32) -> Option<T> {
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
    pub(super) fn remove_span(&mut self, lo: u32, n: u32) {
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
    pub(super) fn span_in(&self, first: u32, last: u32) -> (u32, u32) {
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

    pub(super) fn retain(&mut self, mut f: impl FnMut(&T) -> bool) {
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

    /// The stored entries with their ids, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        let base = self.base;
        self.items
            .iter()
            .enumerate()
            .filter_map(move |(i, e)| Some((base.wrapping_add(i as u32), e.as_ref()?)))
    }

    pub(super) fn len(&self) -> usize {
        self.items.iter().filter(|e| e.is_some()).count()
    }
}

/// A disposition (a range of delivery-ids) waiting for the next transmit.
#[derive(Debug)]
pub(super) struct PendingDisposition {
    pub(super) role: Role,
    pub(super) first: u32,
    pub(super) last: u32,
    pub(super) settled: bool,
    pub(super) state: Option<DeliveryState>,
}

impl Connection {
    /// Writes queued dispositions, consecutive ids with the same role, settled flag and state
    /// merged into one ranged frame.
    pub(super) fn write_dispositions(&mut self, ch: u16, disps: &[PendingDisposition]) {
        let mut i = 0;
        while i < disps.len() {
            let d = &disps[i];
            let mut last = d.last;
            let mut j = i + 1;
            while j < disps.len()
                && disps[j].role == d.role
                && disps[j].first == last.wrapping_add(1)
                && disps[j].settled == d.settled
                && same_state(&disps[j].state, &d.state)
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
    }

    pub(super) fn on_disposition(
        &mut self,
        sid: SessionId,
        d: Disposition,
    ) -> Result<(), ConnectionError> {
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

#[cfg(test)]
mod ring_tests {
    use super::Ring;

    /// What `span_in` must cover: the stored ids `id` with `id - first <= last - first`.
    pub(super) fn brute(r: &Ring<()>, first: u32, last: u32) -> Vec<u32> {
        let span = last.wrapping_sub(first);
        (0..r.items.len() as u32)
            .map(|i| r.base.wrapping_add(i))
            .filter(|id| r.items[id.wrapping_sub(r.base) as usize].is_some())
            .filter(|id| id.wrapping_sub(first) <= span)
            .collect()
    }

    #[test]
    pub(super) fn span_in_matches_a_scan() {
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
    pub(super) fn remove_span_matches_removing_one_by_one() {
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
mod state_tests {
    use super::{clone_state, same_state};
    use amqp_proto::definitions::{condition, Error};
    use amqp_proto::messaging::{DeliveryState, Modified, Rejected};

    #[test]
    pub(super) fn fast_state_helpers_agree_with_derived_ones() {
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
