//! Quick throughput run of an in-memory client/server engine pair (no sockets): 100-byte
//! `data` bodies, credit window 1000 topped up at half, unsettled (accepted + settled, every
//! outcome seen by the sender) and pre-settled, encoded by `send` or pre-encoded (`send_bytes`).
//!
//! ```text
//! cargo run --release -p amqp-engine --example pair_throughput -- [COUNT] [SCENARIO...]
//! ```
//!
//! `COUNT` defaults to 1,000,000; scenarios are `unsettled/message`, `unsettled/bytes`,
//! `presettled/message`, `presettled/bytes` (bytes copied between the engines as a socket
//! would), and `unsettled/message/direct`, `unsettled/bytes/direct` (each engine transmits
//! straight into the other's input buffer); give full names or words (`unsettled`, `direct`);
//! default: all. Prints messages/s, body MB/s, wire MB/s and the heap allocations of the run
//! (allocations plus reallocations, counted by a wrapping global allocator) in total and per
//! message.

use std::alloc::System;
use std::time::Instant;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[path = "../benches/common/mod.rs"]
mod common;
use common::{Mode, Pair, PayloadKind, Wire};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const WINDOW: u32 = 1000;

fn main() {
    let mut count: u64 = 1_000_000;
    let mut wanted: Vec<String> = Vec::new();
    for a in std::env::args().skip(1) {
        match a.replace('_', "").parse() {
            Ok(n) => count = n,
            Err(_) => wanted.push(a),
        }
    }
    let all = [
        (
            "unsettled/message",
            Mode::Unsettled,
            PayloadKind::Message,
            Wire::Copy,
        ),
        (
            "unsettled/bytes",
            Mode::Unsettled,
            PayloadKind::Bytes,
            Wire::Copy,
        ),
        (
            "presettled/message",
            Mode::Presettled,
            PayloadKind::Message,
            Wire::Copy,
        ),
        (
            "presettled/bytes",
            Mode::Presettled,
            PayloadKind::Bytes,
            Wire::Copy,
        ),
        (
            "unsettled/message/direct",
            Mode::Unsettled,
            PayloadKind::Message,
            Wire::Direct,
        ),
        (
            "unsettled/bytes/direct",
            Mode::Unsettled,
            PayloadKind::Bytes,
            Wire::Direct,
        ),
    ];
    println!(
        "{:<26} {:>10} {:>12} {:>10} {:>10} {:>8} {:>11}",
        "scenario", "messages", "msg/s", "body MB/s", "wire MB/s", "allocs", "allocs/msg"
    );
    for (name, mode, kind, wire) in all {
        // A scenario runs if named exactly, or if a word of its name is given ("unsettled").
        let selected = wanted.is_empty()
            || wanted
                .iter()
                .any(|w| w == name || name.split('/').any(|part| part == w));
        if !selected {
            continue;
        }
        let mut pair = Pair::new(mode, kind, WINDOW).with_wire(wire);
        let region = Region::new(GLOBAL);
        let start = Instant::now();
        let t = pair.run(count);
        let secs = start.elapsed().as_secs_f64();
        let allocs = region.change().allocations + region.change().reallocations;
        assert_eq!(t.received, count);
        if mode == Mode::Unsettled {
            assert_eq!(t.outcomes, count);
        }
        println!(
            "{:<26} {:>10} {:>12.0} {:>10.1} {:>10.1} {:>8} {:>11.4}",
            name,
            count,
            count as f64 / secs,
            t.body_bytes as f64 / secs / 1e6,
            (t.c2s_bytes + t.s2c_bytes) as f64 / secs / 1e6,
            allocs,
            allocs as f64 / count as f64,
        );
    }
}
