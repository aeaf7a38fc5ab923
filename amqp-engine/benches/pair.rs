//! Throughput of an in-memory client/server engine pair: 100-byte `data` bodies, unsettled
//! (accepted and settled by the receiver, every outcome seen by the sender) and pre-settled,
//! with the message encoded by `send` or pre-encoded and sent with `send_bytes`; bytes are
//! copied between the engines with `handle_input`, as from a socket (the example
//! `pair_throughput` also has `direct` variants that transmit into the peer's input buffer).
//!
//! Each iteration moves a batch of [`BATCH`] messages through an already attached link, so
//! criterion's element throughput is messages per second; the `pair_bytes` group reports the
//! same runs as body bytes per second.

// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod common;
use common::{Mode, Pair, PayloadKind, Wire, BODY_SIZE};

/// Messages per measured iteration.
const BATCH: u64 = 10_000;
/// Link credit window (topped up when half is used).
const WINDOW: u32 = 1000;

fn scenarios() -> [(&'static str, Mode, PayloadKind, Wire); 4] {
    use {Mode::*, PayloadKind::*};
    [
        ("unsettled/message", Unsettled, Message, Wire::Copy),
        ("unsettled/bytes", Unsettled, Bytes, Wire::Copy),
        ("presettled/message", Presettled, Message, Wire::Copy),
        ("presettled/bytes", Presettled, Bytes, Wire::Copy),
    ]
}

fn bench_pair(c: &mut Criterion) {
    let mut g = c.benchmark_group("pair");
    g.throughput(Throughput::Elements(BATCH));
    for (name, mode, kind, wire) in scenarios() {
        let mut pair = Pair::new(mode, kind, WINDOW).with_wire(wire);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| pair.run(BATCH))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("pair_bytes");
    g.throughput(Throughput::Bytes(BATCH * BODY_SIZE as u64));
    for (name, mode, kind, wire) in scenarios() {
        if kind != PayloadKind::Message || wire != Wire::Copy {
            continue;
        }
        let mut pair = Pair::new(mode, kind, WINDOW);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| pair.run(BATCH))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4));
    targets = bench_pair
}
criterion_main!(benches);
