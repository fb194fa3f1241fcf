// SPDX-License-Identifier: MIT OR Apache-2.0
//! Control-plane costs (criterion): deriving the topology from a large
//! kernel state, and planning it, as the controller does on every change;
//! compiling a firewall ruleset of 10 to 10k rules, laying it out and
//! making the map contents of a new generation, as the filter FPM does on
//! every ruleset change.

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use linuxfp::{
    compat::{self, KernelCaps, Policy},
    fpm::FpmRegistry,
    inspector::nftables::{Hook, Ruleset},
    state::KernelState,
    synth, topology,
};
use linuxfp_benches::router_state;
use linuxfp_fpm_filter::{
    compile::{Interfaces, compile},
    params::{Generations, layout},
};
use linuxfp_fpm_router::RouterFpm;

/// A host with `n` routed interfaces and `routes` routes spread over them.
fn state(n: u32, routes: usize) -> KernelState {
    router_state(n, routes as u32)
}

/// The recorded native nftables ruleset with its forward chain's rules
/// repeated to `n` rules (new handles; same matches and verdicts).
fn ruleset(n: usize) -> Ruleset {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../linuxfp/tests/data/nft_native.bin"
    );
    let mut rs = Ruleset::from_messages(&std::fs::read(path).expect("recorded ruleset"));
    let Some(fwd) = rs
        .chains
        .iter()
        .find(|c| c.base.as_ref().is_some_and(|b| b.hook == Hook::Forward))
        .cloned()
    else {
        return rs;
    };
    let in_fwd = |r: &linuxfp::inspector::nftables::Rule| {
        r.family == fwd.family && r.table == fwd.table && r.chain == fwd.name
    };
    let templates: Vec<_> = rs.rules.iter().filter(|r| in_fwd(r)).cloned().collect();
    rs.rules.retain(|r| !in_fwd(r));
    let first = rs.rules.iter().map(|r| r.handle).max().unwrap_or(0) + 1;
    for i in 0..n {
        if let Some(t) = templates.get(i % templates.len().max(1)) {
            let mut r = t.clone();
            r.handle = first + i as u64;
            rs.rules.push(r);
        }
    }
    rs
}

fn bench(c: &mut Criterion) {
    let ifaces = Interfaces::new([("eth0".to_string(), 2), ("eth1".to_string(), 3)]);
    for n in [10usize, 1000, 10_000] {
        let rs = ruleset(n);
        c.bench_function(&format!("compile a ruleset, {n} forward rules"), |b| {
            b.iter(|| compile(black_box(&rs), &ifaces))
        });
        let compiled = compile(&rs, &ifaces);
        c.bench_function(&format!("lay out a ruleset, {n} forward rules"), |b| {
            b.iter(|| layout(black_box(&compiled)).expect("layout"))
        });
        // A rule appended and removed in turn: every call is a new
        // generation, whose map contents hold it and the one before.
        let one_more = compile(&ruleset(n + 1), &ifaces);
        let layouts = [
            layout(&compiled).expect("layout"),
            layout(&one_more).expect("layout"),
        ];
        let generations = Generations::default();
        let mut turn = 0;
        c.bench_function(
            &format!("map contents of a new generation, {n} forward rules"),
            |b| {
                b.iter(|| {
                    turn += 1;
                    generations.config(layouts[turn % 2].clone())
                })
            },
        );
    }

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
