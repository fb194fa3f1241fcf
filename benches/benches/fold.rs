// SPDX-License-Identifier: MIT OR Apache-2.0
//! The inspector's cost on a big FIB (criterion): decoding and folding a
//! 100k-route rtnetlink dump into a `KernelState`, snapshotting it (what
//! every debounced update costs), and deriving the topology from it.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use linuxfp::{inspector::parse_messages, topology};
use linuxfp_benches::{route_dump, router_state};

const ROUTES: u32 = 100_000;
const IFACES: u32 = 16;

fn bench(c: &mut Criterion) {
    let dump = route_dump(ROUTES, 2, IFACES);
    let base = router_state(IFACES, 0);
    let mut g = c.benchmark_group("fold");
    g.sample_size(10);
    g.bench_function("parse 100k-route dump", |b| {
        b.iter(|| parse_messages(black_box(&dump)).len())
    });
    g.bench_function("parse + fold 100k-route dump", |b| {
        b.iter_batched(
            || base.clone(),
            |mut s| {
                for e in parse_messages(&dump) {
                    s.apply(e);
                }
                s
            },
            BatchSize::LargeInput,
        )
    });
    let full = router_state(IFACES, ROUTES);
    assert_eq!(full.route_count(4), ROUTES as usize);
    g.bench_function("snapshot (clone) 100k-route state", |b| {
        b.iter(|| black_box(&full).clone())
    });
    g.bench_function("derive topology, 100k routes", |b| {
        b.iter(|| topology::derive(black_box(&full)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
