//! The counting global allocator (every allocation of the process goes through it: one
//! relaxed atomic add per call) and the steady-state window it is read over.

use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The process's allocation counters when a message count was reached.
#[derive(Clone, Copy, Debug)]
struct Mark {
    messages: u64,
    /// Allocations plus reallocations.
    allocations: u64,
    bytes: u64,
}

fn mark(messages: u64) -> Mark {
    let s = GLOBAL.stats();
    Mark {
        messages,
        allocations: (s.allocations + s.reallocations) as u64,
        bytes: (s.bytes_allocated as u64).saturating_add(s.bytes_reallocated.max(0) as u64),
    }
}

/// Allocations over the steady state of a run: from the message at 10 % of the count to the
/// one at 90 % (connection set-up, warm-up of buffers and the final reports are outside).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AllocWindow {
    start: Option<Mark>,
    end: Option<Mark>,
}

/// Allocations and bytes per message over a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PerMessage {
    pub(crate) allocations: f64,
    pub(crate) bytes: f64,
    pub(crate) messages: u64,
}

impl AllocWindow {
    /// Called with each new message count (`n` of `count`): marks the window's ends.
    pub(crate) fn observe(&mut self, n: u64, count: u64) {
        if count < 10 {
            return;
        }
        if n == count / 10 {
            self.start = Some(mark(n));
        } else if n == count - count / 10 {
            self.end = Some(mark(n));
        }
    }

    /// Per message over the window, once both ends are marked.
    pub(crate) fn per_message(&self) -> Option<PerMessage> {
        let (s, e) = (self.start?, self.end?);
        let n = e.messages.checked_sub(s.messages).filter(|&n| n > 0)?;
        Some(PerMessage {
            allocations: e.allocations.saturating_sub(s.allocations) as f64 / n as f64,
            bytes: e.bytes.saturating_sub(s.bytes) as f64 / n as f64,
            messages: n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_what_is_allocated_between_its_ends() {
        let mut w = AllocWindow::default();
        w.observe(10, 100);
        let kept: Vec<Vec<u8>> = (0..80).map(|_| vec![0u8; 1000]).collect();
        assert!(w.per_message().is_none());
        w.observe(90, 100);
        let p = w.per_message().unwrap();
        assert_eq!(p.messages, 80);
        // Other tests of this binary may allocate on their threads meanwhile: at least ours.
        assert!(p.allocations >= 1.0, "{p:?}");
        assert!(p.bytes >= 1000.0, "{p:?}");
        drop(kept);
        let mut tiny = AllocWindow::default();
        tiny.observe(0, 5);
        assert!(tiny.per_message().is_none());
    }
}
