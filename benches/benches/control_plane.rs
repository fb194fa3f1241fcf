// SPDX-License-Identifier: MIT OR Apache-2.0
//! Control-plane costs (criterion): deriving the topology from a large
//! kernel state, and planning it, as the controller does on every change.

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use linuxfp::{
    compat::{self, KernelCaps, Policy},
    fpm::FpmRegistry,
    state::KernelState,
    synth, topology,
};
use linuxfp_benches::router_state;
use linuxfp_fpm_router::RouterFpm;

/// A host with `n` routed interfaces and `routes` routes spread over them.
fn state(n: u32, routes: usize) -> KernelState {
    router_state(n, routes as u32)
}

fn bench(c: &mut Criterion) {
    let mut registry = FpmRegistry::new();
    registry
        .register(Arc::new(RouterFpm::new()))
        .expect("register");
    let caps = KernelCaps::for_version("6.18.0");
    for n in [10u32, 1000] {
        let s = state(n, 100_000);
        c.bench_function(&format!("derive topology, {n} interfaces"), |b| {
            b.iter(|| topology::derive(black_box(&s)))
        });
        let t = topology::derive(&s);
        c.bench_function(&format!("decide + synthesize, {n} interfaces"), |b| {
            b.iter(|| {
                let d = compat::decide(black_box(&t), &caps, &registry, &Policy::default());
                synth::synthesize(&t, &d, &registry, Some(&s)).expect("plan")
            })
        });
        let d = compat::decide(&t, &caps, &registry, &Policy::default());
        let p = synth::synthesize(&t, &d, &registry, Some(&s)).expect("plan");
        c.bench_function(&format!("plan diff, {n} interfaces"), |b| {
            b.iter(|| black_box(&p).diff(black_box(&p)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
