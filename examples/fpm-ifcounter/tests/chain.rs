// SPDX-License-Identifier: MIT OR Apache-2.0
//! A third-party prelude chained in front of the router through the
//! pipeline ABI (tail calls through the shared program array): both stages
//! see every forwarded packet, on both hooks.

use std::sync::Arc;

use linuxfp::{
    compat::{HookPolicy, KernelCaps, Policy},
    controller::plan_once,
    deploy::worker::DeployWorker,
    fpm::FpmRegistry,
    netns::NetnsRef,
};
use linuxfp_fpm_ifcounter::{IfCounterFpm, NAME};
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{VirtualRouter, require_root};

fn chained(hook: HookPolicy, tag: &str) {
    let tb = VirtualRouter::new(tag).expect("testbed");
    if hook == HookPolicy::Xdp {
        tb.gro_on_hosts().expect("gro");
    }
    let mut registry = FpmRegistry::new();
    registry
        .register(Arc::new(IfCounterFpm::new()))
        .expect("ifcounter");
    registry
        .register(Arc::new(RouterFpm::new()))
        .expect("router");
    let netns = NetnsRef::Named(tb.rtr.name().to_string());
    let policy = Policy {
        hook,
        ..Default::default()
    };
    let snap = plan_once(&netns, &registry, &policy, &KernelCaps::probe()).expect("plan");
    for p in snap.plan.interfaces.values() {
        assert_eq!(p.stages, vec![NAME.to_string(), "router".to_string()]);
    }
    let worker = DeployWorker::spawn(netns, registry).expect("worker");
    let report = futures::executor::block_on(worker.apply(snap.plan)).expect("apply");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(
        tb.ping(false, 5).expect("warm-up"),
        "ping through the chain"
    );
    let before = futures::executor::block_on(worker.stats()).expect("stats");
    assert!(tb.ping(false, 100).expect("ping"), "ping through the chain");
    let after = futures::executor::block_on(worker.stats()).expect("stats");
    let delta = |fpm: &str, c: &str| after.total(fpm, c) - before.total(fpm, c);
    // Requests and replies: 200 forwarded packets, each seen by both stages.
    assert!(delta(NAME, "continue") >= 200, "{after:?}");
    assert_eq!(
        delta(NAME, "chain_miss"),
        0,
        "the router stage was always there"
    );
    assert!(delta("router", "fast") >= 198, "{after:?}");
    worker.shutdown();
}

#[test]
fn prelude_chains_to_the_router_on_tc() {
    if require_root("prelude_chains_to_the_router_on_tc") {
        chained(HookPolicy::Tc, "ct");
    }
}

#[test]
fn prelude_chains_to_the_router_on_xdp() {
    if require_root("prelude_chains_to_the_router_on_xdp") {
        chained(HookPolicy::Xdp, "cx");
    }
}
