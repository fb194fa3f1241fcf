// SPDX-License-Identifier: MIT OR Apache-2.0
//! Control-plane costs (criterion): deriving the topology from a large
//! kernel state, and planning it, as the controller does on every change.

use std::{collections::BTreeMap, hint::black_box, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use linuxfp::{
    compat::{self, KernelCaps, Policy},
    fpm::FpmRegistry,
    state::{KernelState, Link},
    synth, topology,
};
use linuxfp_fpm_router::RouterFpm;

/// A host with `n` routed interfaces and `routes` routes spread over them.
fn state(n: u32, routes: usize) -> KernelState {
    let mut s = KernelState {
        ipv6_forwarding: true,
        ..Default::default()
    };
    for i in 2..n + 2 {
        s.links.insert(
            i,
            Link {
                ifindex: i,
                name: format!("veth{i}"),
                kind: Some("veth".into()),
                admin_up: true,
                running: true,
                mtu: 1500,
                mac: Some([2, 0, 0, 0, (i >> 8) as u8, i as u8]),
                addresses: vec![format!("10.{}.{}.1/24", i >> 8, i & 0xff)],
                ipv4_forwarding: true,
                ipv6_forwarding: true,
                sysctls: BTreeMap::new(),
                ..Default::default()
            },
        );
    }
    s.route_count.insert(4, routes);
    s.route_devices.insert(4, (2..n + 2).collect());
    s
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
