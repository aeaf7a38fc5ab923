//! Output back-pressure per connection: the bytes a connection has produced that have not yet
//! reached its transport (encoded in the engine or held there behind the peer's session
//! window, or handed to the driver and not reported written), and whether they are above the high-water mark. An application that feeds many
//! receivers (a broker) stops sending to a connection whose output is blocked and resumes on
//! the `on_sendable` that follows when it drains, so a peer that grants credit and never reads
//! costs at most about [`OUTPUT_HIGH_WATER`] bytes.

use super::handler::EventType;
use super::handles::{ConnectionHandle, LinkHandle, TransportId};
use super::reactor::ContainerContext;
use amqp_proto::definitions::Role;

use crate::ids::Key;

/// A connection with more unsent bytes than this is blocked
/// ([`ContainerContext::is_output_blocked`]).
pub const OUTPUT_HIGH_WATER: usize = 1024 * 1024;
/// A blocked connection is unblocked (and its senders with credit get `on_sendable`) once its
/// unsent bytes fall to this.
pub const OUTPUT_LOW_WATER: usize = 256 * 1024;

/// The driver-side count of one transport.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    /// The transport generation the count is for.
    gen: u32,
    /// The driver reports what it writes on this transport.
    tracked: bool,
    /// Bytes handed to the driver and not yet reported written.
    unwritten: usize,
    /// Went above the high-water mark and has not yet drained to the low one.
    blocked: bool,
}

impl Backlog {
    /// The count for transport generation `gen` (a new transport starts from zero).
    fn current(&mut self, gen: u32) -> &mut Backlog {
        if self.gen != gen {
            *self = Backlog {
                gen,
                ..Backlog::default()
            };
        }
        self
    }

    fn unwritten(&self, gen: u32) -> usize {
        if self.gen == gen && self.tracked {
            self.unwritten
        } else {
            0
        }
    }
}

impl ContainerContext {
    /// Bytes the connection has produced that have not reached its transport yet: encoded
    /// and not yet handed to the driver (or held behind the peer's session window), plus (when the driver reports writes, as the
    /// adapters do) handed to the driver and not yet written to the socket.
    pub fn unsent_bytes(&self, conn: ConnectionHandle) -> usize {
        let Some(c) = self.conns.get(conn.0) else {
            return 0;
        };
        let encoded = c.engine.as_ref().map_or(0, |e| e.pending_transmit_len());
        encoded.saturating_add(c.backlog.unwritten(c.gen))
    }

    /// True while the connection's unsent output is above [`OUTPUT_HIGH_WATER`], and after
    /// that until it drains to [`OUTPUT_LOW_WATER`]: sending more to it only grows memory.
    /// When it drains, every sender of the connection that has credit gets `on_sendable`.
    pub fn is_output_blocked(&self, conn: ConnectionHandle) -> bool {
        let blocked = self
            .conns
            .get(conn.0)
            .is_some_and(|c| c.backlog.gen == c.gen && c.backlog.blocked);
        blocked || self.unsent_bytes(conn) > OUTPUT_HIGH_WATER
    }

    /// `n` bytes of connection `ck`'s output were handed to the driver.
    pub(super) fn output_handed(&mut self, ck: Key, n: usize) {
        let Some(c) = self.conns.get_mut(ck) else {
            return;
        };
        // What is left in the engine: frames held back by the peer's session window.
        let held = c.engine.as_ref().map_or(0, |e| e.pending_transmit_len());
        let b = c.backlog.current(c.gen);
        if b.tracked {
            b.unwritten = b.unwritten.saturating_add(n);
            b.blocked |= b.unwritten.saturating_add(held) > OUTPUT_HIGH_WATER;
        }
    }

    /// The driver wrote `n` bytes of transport `t`'s output. Returns true when that unblocked
    /// the connection (events were queued).
    pub(super) fn output_written(&mut self, t: TransportId, n: usize) -> bool {
        if !self.valid(t) {
            return false;
        }
        let Some(c) = self.conns.get_mut(t.conn) else {
            return false;
        };
        let encoded = c.engine.as_ref().map_or(0, |e| e.pending_transmit_len());
        let b = c.backlog.current(t.gen);
        b.tracked = true;
        b.unwritten = b.unwritten.saturating_sub(n);
        if !b.blocked || b.unwritten.saturating_add(encoded) > OUTPUT_LOW_WATER {
            return false;
        }
        b.blocked = false;
        let sendable: Vec<LinkHandle> = c
            .links
            .keys()
            .filter(|&k| {
                c.links.get(k).is_some_and(|l| {
                    l.role == Role::Sender
                        && l.engine.is_some_and(|lid| {
                            c.engine
                                .as_ref()
                                .and_then(|e| e.link_credit(lid))
                                .is_some_and(|credit| credit > 0)
                        })
                })
            })
            .map(|link| LinkHandle { conn: t.conn, link })
            .collect();
        for lh in sendable {
            let mut ctx = self.ctx_conn(t.conn);
            ctx.link = Some(lh);
            self.push(EventType::Sendable, ctx);
        }
        true
    }
}
