//! [`SequenceNo`]: the 32-bit serial numbers of the protocol (transfer-ids, delivery-ids,
//! delivery-counts), which wrap around and compare with RFC 1982 serial arithmetic.

use std::cmp::Ordering;

/// A serial number (RFC 1982, `SERIAL_BITS = 32`): adding wraps around, and `a < b` when `b`
/// is less than 2^31 ahead of `a`. Two numbers exactly 2^31 apart are not ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct SequenceNo(u32);

impl SequenceNo {
    /// The number as on the wire.
    pub(super) fn get(self) -> u32 {
        self.0
    }

    /// `self + n`, wrapping.
    pub(super) fn add(self, n: u32) -> SequenceNo {
        SequenceNo(self.0.wrapping_add(n))
    }

    /// Moves to the next number; returns the one before.
    pub(super) fn incr(&mut self) -> SequenceNo {
        let old = *self;
        self.0 = self.0.wrapping_add(1);
        old
    }

    /// `self - base`, wrapping: how far `self` is from `base` counting forwards.
    pub(super) fn offset_from(self, base: SequenceNo) -> u32 {
        self.0.wrapping_sub(base.0)
    }

    /// How far `self` is ahead of `earlier`, or 0 if it is not ahead.
    pub(super) fn since(self, earlier: SequenceNo) -> u32 {
        let d = self.offset_from(earlier);
        if (d as i32) < 0 {
            0
        } else {
            d
        }
    }

    /// `self + n` with `n` capped below 2^31, so the result stays comparable with `self`.
    pub(super) fn add_comparable(self, n: u32) -> SequenceNo {
        self.add(n.min(i32::MAX as u32))
    }
}

impl From<u32> for SequenceNo {
    fn from(v: u32) -> Self {
        SequenceNo(v)
    }
}

impl PartialOrd for SequenceNo {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let d = self.0.wrapping_sub(other.0) as i32;
        match d {
            0 => Some(Ordering::Equal),
            i32::MIN => None,
            d if d > 0 => Some(Ordering::Greater),
            _ => Some(Ordering::Less),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SequenceNo;

    fn s(v: u32) -> SequenceNo {
        SequenceNo::from(v)
    }

    #[test]
    fn compares_as_rfc_1982_serial_numbers() {
        assert!(s(1) > s(0));
        assert!(s(0) > s(u32::MAX), "wrap-around: 0 follows 2^32-1");
        assert!(s(5) < s(5u32.wrapping_add(i32::MAX as u32)));
        assert!(s(5) > s(5u32.wrapping_sub(i32::MAX as u32)));
        assert_eq!(s(0).partial_cmp(&s(1 << 31)), None, "2^31 apart: undefined");
        assert_eq!(s(7), s(7));
    }

    #[test]
    fn arithmetic_wraps() {
        let mut a = s(u32::MAX);
        assert_eq!(a.incr(), s(u32::MAX));
        assert_eq!(a, s(0));
        assert_eq!(s(u32::MAX - 1).add(3), s(1));
        assert_eq!(s(1).since(s(u32::MAX)), 2);
        assert_eq!(s(1).offset_from(s(2)), u32::MAX);
        assert_eq!(
            s(u32::MAX).since(s(1)),
            0,
            "behind is 0, never a huge count"
        );
        assert_eq!(s(10).add_comparable(u32::MAX), s(10).add(i32::MAX as u32));
        assert!(s(10).add_comparable(u32::MAX) > s(10));
    }
}
