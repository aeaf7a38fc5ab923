//! The example broker's resource limits: how much a queue and the whole broker may hold, and
//! the arithmetic of its producer flow control.
//!
//! Every limit is a hard limit: a message that would take its queue (or the broker's memory
//! budget) past one is rejected with `amqp:resource-limit-exceeded`. Long before that,
//! producers stop getting credit: once a queue holds [`HIGH_WATER_PERCENT`] of a limit (or the
//! broker [`HIGH_WATER_PERCENT`] of its budget) its producers' credit is not topped up, and it
//! is granted again only when everything is back below [`LOW_WATER_PERCENT`]. A producer
//! that respects credit is therefore throttled, never rejected.
//!
//! A message counts as *held* from the moment it is queued until it is gone for good
//! (accepted, settled, dropped or dead-lettered): messages out with consumers still count.
//!
//! ```
//! use amqp_examples::limits::{Held, Limits};
//!
//! let l = Limits { max_queue_messages: 10, ..Limits::default() };
//! let queue = Held { messages: 8, bytes: 800 };
//! assert!(l.queue_high(queue));                        // 80 %: producers paused
//! assert!(!l.queue_low(queue));
//! assert!(l.queue_low(Held { messages: 4, bytes: 400 })); // below 50 %: resumed
//! assert!(l.admits(Held { messages: 9, bytes: 900 }, 900, 100).is_ok());
//! assert!(l.admits(Held { messages: 10, bytes: 1000 }, 1000, 100).is_err());
//! ```

use std::collections::HashMap;

/// Producers stop getting credit once a queue (or the budget) is this full, in percent.
pub const HIGH_WATER_PERCENT: u64 = 80;
/// Paused producers get credit again once everything is below this, in percent.
pub const LOW_WATER_PERCENT: u64 = 50;

/// What the broker may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Messages one queue may hold. Default 100,000.
    pub max_queue_messages: u64,
    /// Message bytes one queue may hold. Default 256 MiB.
    pub max_queue_bytes: u64,
    /// Message bytes the whole broker may hold, all queues together. Default 1 GiB.
    pub memory_budget: u64,
    /// The largest message a producer may send, advertised in the attach of every producer's
    /// link (larger ones close the link with `amqp:link:message-size-exceeded`). Default
    /// 32 MiB: a 1 GiB budget holds 32 of them at once.
    pub max_message_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_queue_messages: 100_000,
            max_queue_bytes: 256 * 1024 * 1024,
            memory_budget: 1024 * 1024 * 1024,
            max_message_size: 32 * 1024 * 1024,
        }
    }
}

/// What a queue (or the broker) holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Messages.
    pub messages: u64,
    /// Their encoded size, in bytes.
    pub bytes: u64,
}

impl Held {
    /// Counts a message in.
    pub fn add(&mut self, bytes: u64) {
        self.messages += 1;
        self.bytes += bytes;
    }

    /// Counts a message out.
    pub fn remove(&mut self, bytes: u64) {
        self.messages = self.messages.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

fn at_least(value: u64, limit: u64, percent: u64) -> bool {
    u128::from(value) * 100 >= u128::from(limit) * u128::from(percent)
}

/// Why a message was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl Limits {
    /// Whether a queue holding `q` is full enough to pause its producers.
    pub fn queue_high(&self, q: Held) -> bool {
        at_least(q.messages, self.max_queue_messages, HIGH_WATER_PERCENT)
            || at_least(q.bytes, self.max_queue_bytes, HIGH_WATER_PERCENT)
    }

    /// Whether a queue holding `q` has drained enough to resume its producers.
    pub fn queue_low(&self, q: Held) -> bool {
        !at_least(q.messages, self.max_queue_messages, LOW_WATER_PERCENT)
            && !at_least(q.bytes, self.max_queue_bytes, LOW_WATER_PERCENT)
    }

    /// Whether the broker, holding `total` bytes, is full enough to pause every producer.
    pub fn budget_high(&self, total: u64) -> bool {
        at_least(total, self.memory_budget, HIGH_WATER_PERCENT)
    }

    /// Whether the broker, holding `total` bytes, has drained enough to resume producers.
    pub fn budget_low(&self, total: u64) -> bool {
        !at_least(total, self.memory_budget, LOW_WATER_PERCENT)
    }

    /// Whether a message of `size` bytes may join a queue holding `q` while the broker holds
    /// `total` bytes; why not if not.
    pub fn admits(&self, q: Held, total: u64, size: u64) -> Result<(), Refused> {
        if q.messages >= self.max_queue_messages {
            return Err(Refused(format!(
                "the queue holds its maximum of {} messages",
                self.max_queue_messages
            )));
        }
        if q.bytes.saturating_add(size) > self.max_queue_bytes {
            return Err(Refused(format!(
                "the queue would exceed its maximum of {} bytes",
                self.max_queue_bytes
            )));
        }
        if total.saturating_add(size) > self.memory_budget {
            return Err(Refused(format!(
                "the broker's memory budget of {} bytes is used up",
                self.memory_budget
            )));
        }
        Ok(())
    }
}

/// What every queue, and the broker as a whole, holds.
#[derive(Debug, Default)]
pub struct Holdings {
    queues: HashMap<String, Held>,
    total: Held,
}

impl Holdings {
    /// What a queue holds.
    pub fn queue(&self, name: &str) -> Held {
        self.queues.get(name).copied().unwrap_or_default()
    }

    /// What the broker holds, all queues together.
    pub fn total(&self) -> Held {
        self.total
    }

    /// Counts a message of `bytes` in, on queue `name`.
    pub fn add(&mut self, name: &str, bytes: u64) {
        match self.queues.get_mut(name) {
            Some(h) => h.add(bytes),
            None => self.queues.entry(name.to_string()).or_default().add(bytes),
        }
        self.total.add(bytes);
    }

    /// Counts a message of `bytes` out, from queue `name`.
    pub fn remove(&mut self, name: &str, bytes: u64) {
        if let Some(h) = self.queues.get_mut(name) {
            h.remove(bytes);
            if h.messages == 0 {
                self.queues.remove(name);
            }
        }
        self.total.remove(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_have_hysteresis() {
        let l = Limits {
            max_queue_messages: 100,
            max_queue_bytes: 1000,
            memory_budget: 10_000,
            max_message_size: 100,
        };
        let q = |messages, bytes| Held { messages, bytes };
        assert!(!l.queue_high(q(79, 0)));
        assert!(l.queue_high(q(80, 0)));
        assert!(l.queue_high(q(0, 800)));
        assert!(!l.queue_low(q(50, 0)));
        assert!(!l.queue_low(q(0, 500)));
        assert!(l.queue_low(q(49, 499)));
        assert!(l.budget_high(8000) && !l.budget_high(7999));
        assert!(l.budget_low(4999) && !l.budget_low(5000));
    }

    #[test]
    fn admission_is_a_hard_limit() {
        let l = Limits {
            max_queue_messages: 100,
            max_queue_bytes: 1000,
            memory_budget: 2000,
            max_message_size: 100,
        };
        let q = |messages, bytes| Held { messages, bytes };
        assert!(l.admits(q(99, 900), 900, 100).is_ok());
        assert!(l.admits(q(100, 0), 0, 1).is_err());
        assert!(l.admits(q(0, 901), 901, 100).is_err());
        let e = l.admits(q(0, 0), 1950, 100).unwrap_err();
        assert!(e.to_string().contains("budget"), "{e}");
        let mut h = Held::default();
        h.add(10);
        h.remove(10);
        h.remove(10);
        assert_eq!(h, Held::default());
        let mut all = Holdings::default();
        all.add("a", 5);
        all.add("b", 7);
        all.remove("a", 5);
        assert_eq!(all.queue("a"), Held::default());
        assert_eq!(
            all.queue("b"),
            Held {
                messages: 1,
                bytes: 7
            }
        );
        assert_eq!(
            all.total(),
            Held {
                messages: 1,
                bytes: 7
            }
        );
    }
}
