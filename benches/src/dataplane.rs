// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the data-plane benches share: the modes they compare, deploying
//! LinuxFP into a testbed namespace, and the fast path's share of a run.

use std::sync::Arc;

use linuxfp::{
    compat::{HookPolicy, KernelCaps, Policy},
    controller::plan_once,
    deploy::worker::DeployWorker,
    fpm::{Fpm, FpmRegistry, Hook},
    netns::NetnsRef,
};
use serde::Serialize;

/// What carries the traffic in one measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Linux alone.
    Linux,
    /// LinuxFP, XDP on every accelerated interface.
    LinuxfpXdp,
    /// LinuxFP, TC on every accelerated interface.
    LinuxfpTc,
}

impl Mode {
    /// Every mode, Linux first (the baseline of the ratios).
    pub const ALL: [Mode; 3] = [Mode::Linux, Mode::LinuxfpXdp, Mode::LinuxfpTc];

    /// Column label.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Linux => "Linux",
            Mode::LinuxfpXdp => "LinuxFP XDP",
            Mode::LinuxfpTc => "LinuxFP TC",
        }
    }

    /// The hook LinuxFP is forced to, `None` for Linux alone.
    pub fn hook(self) -> Option<Hook> {
        match self {
            Mode::Linux => None,
            Mode::LinuxfpXdp => Some(Hook::Xdp),
            Mode::LinuxfpTc => Some(Hook::Tc),
        }
    }
}

/// Plans the namespace `netns` once with `fpms` on `hook` and deploys it.
/// Panics (a bench cannot go on) unless exactly `interfaces` interfaces
/// are planned and every one deployed.
pub fn deploy(netns: &str, fpms: Vec<Arc<dyn Fpm>>, hook: Hook, interfaces: usize) -> DeployWorker {
    let netns = NetnsRef::Named(netns.to_string());
    let mut registry = FpmRegistry::new();
    for f in fpms {
        registry.register(f).expect("register FPM");
    }
    let policy = Policy {
        hook: match hook {
            Hook::Xdp => HookPolicy::Xdp,
            Hook::Tc => HookPolicy::Tc,
        },
        ..Default::default()
    };
    let snap = plan_once(&netns, &registry, &policy, &KernelCaps::probe()).expect("plan");
    assert_eq!(
        snap.plan.interfaces.len(),
        interfaces,
        "interfaces planned: {:?}; left to the kernel: {:?}",
        snap.plan.interfaces,
        snap.plan.slow_path
    );
    let worker = DeployWorker::spawn(netns, registry).expect("deploy worker");
    let report = futures::executor::block_on(worker.apply(snap.plan)).expect("deploy");
    assert!(report.failed.is_empty(), "deploy: {:?}", report.failed);
    worker
}

/// The share of `fpm`'s counted packets that ended in one of `counters`
/// (e.g. `fast`), 0 if it counted none.
pub fn share(worker: &DeployWorker, fpm: &str, counters: &[&str]) -> f64 {
    let stats = futures::executor::block_on(worker.stats()).expect("stats");
    let totals = stats.totals(fpm);
    let chosen: u64 = counters
        .iter()
        .map(|k| totals.get(*k).copied().unwrap_or(0))
        .sum();
    let all: u64 = totals.values().sum();
    if all == 0 {
        0.0
    } else {
        chosen as f64 / all as f64
    }
}
