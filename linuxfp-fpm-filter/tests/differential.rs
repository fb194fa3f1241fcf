// SPDX-License-Identifier: MIT OR Apache-2.0
//! The filter's differential test against the kernel's own verdicts
//! (issues 7 and 9): a ruleset loaded into the virtual router (Docker's,
//! a kube-proxy's, Flannel's, random ones up to 10k rules), and a corpus
//! drawn from that ruleset (its addresses and ports, near misses, random
//! ports; `linuxfp_testkit::diff::rule_corpus`) sent through it once with
//! Linux alone and once with the controller deploying the router and
//! filter FPMs. What leaves `r0` and `r1` (captured at `s0` and `d0`:
//! accepted packets, ICMP errors and resets from REJECT rules) must be the
//! same: the fast path's verdict equals netfilter's for every packet, or
//! it punted the packet to netfilter.
//!
//! The filter's counters say how much the fast path decided: rulesets
//! the fast path can decide (Flannel's filter table, random rulesets) must
//! have a substantial share of probes both accepted and dropped there;
//! for the others (NAT on the path, conntrack state on every path) the
//! share is printed and agreement is what is tested.
//!
//! TC is the hook the Compatibility Manager picks on veth. Root only;
//! skips loudly otherwise.

// Shared with the router's and the bridge's differential tests; this one
// reads the plan, so it uses only `with_controller`.
#[allow(dead_code)]
#[path = "../../linuxfp-fpm-router/tests/support/linuxfp.rs"]
mod linuxfp_run;

use std::{sync::Arc, time::Instant};

use linuxfp::{compat::HookPolicy, fpm::Fpm};
use linuxfp_fpm_filter::FilterFpm;
use linuxfp_fpm_router::RouterFpm;
use linuxfp_run::with_controller;
use linuxfp_testkit::{
    VirtualRouter,
    diff::{
        self, Normaliser, Options,
        bed::{self, ROUTER},
        rule_corpus::{RuleCorpus, Vocabulary, route_corpus, rule_corpus},
        rulesets::{self, RuleSet},
    },
    require_root,
};

/// What the filter stage did with the probes of one run.
#[derive(Debug)]
struct Share {
    probes: usize,
    accepted: u64,
    dropped: u64,
    punted: u64,
}

impl Share {
    /// The fraction of probes the fast path decided.
    fn decided(&self) -> f64 {
        (self.accepted + self.dropped) as f64 / self.probes as f64
    }

    /// Fails unless the fast path both accepted and dropped, and decided
    /// at least `min` of the probes.
    fn assert_substantial(&self, name: &str, min: f64) {
        assert!(
            self.accepted > 0 && self.dropped > 0 && self.decided() >= min,
            "{name}: the fast path decided too little to prove anything: {self:?}"
        );
    }
}

/// The router testbed with `ruleset` loaded and routes for `rc` (GRO on
/// the peers for XDP, in both runs).
fn testbed(tag: &str, hook: HookPolicy, ruleset: &RuleSet, rc: &RuleCorpus) -> VirtualRouter {
    let vr = bed::router(tag, hook == HookPolicy::Xdp).expect("testbed");
    route_corpus(&vr, &ROUTER, &rc.left).expect("routes");
    ruleset.load(&vr.rtr).expect("ruleset");
    vr
}

/// Runs `ruleset` with `packets` probes from `seed` through Linux alone
/// and through LinuxFP on TC; fails on any difference; returns what the
/// filter stage decided.
async fn differential(tag: &str, ruleset: &RuleSet, packets: usize, seed: u64) -> Share {
    differential_on(HookPolicy::Auto, tag, ruleset, packets, seed).await
}

/// [`differential`] with LinuxFP on `hook`.
async fn differential_on(
    hook: HookPolicy,
    tag: &str,
    ruleset: &RuleSet,
    packets: usize,
    seed: u64,
) -> Share {
    let started = Instant::now();
    let vocab = Vocabulary::scan(&ruleset.text);
    let rc = rule_corpus(&ROUTER, &vocab, packets, seed);
    let opts = Options::default();
    let base = tokio::task::block_in_place(|| {
        let vr = testbed(&format!("{tag}l"), hook, ruleset, &rc);
        diff::run(&bed::router_wires(&vr), &rc.corpus, &opts).expect("run with Linux alone")
    });
    let vr = tokio::task::block_in_place(|| testbed(&format!("{tag}f"), hook, ruleset, &rc));
    let fpms: Vec<Arc<dyn Fpm>> = vec![Arc::new(RouterFpm::new()), Arc::new(FilterFpm::new())];
    let ((fast, plan), before, after) = with_controller(&vr.rtr, fpms, hook, |handle| {
        let plan = handle.plan();
        let run = diff::run(&bed::router_wires(&vr), &rc.corpus, &opts);
        (run.expect("run with LinuxFP"), plan)
    })
    .await;
    let norm = Normaliser {
        own_ipv4: vec![ROUTER.r0_4, ROUTER.r1_4],
    };
    let report = diff::compare(&base, &fast, &rc.corpus, &norm);
    let counter = |name: &str| after.total("filter", name) - before.total("filter", name);
    // A packet the filter accepts with no stage after it (the router not
    // deployed) goes to the kernel: `chain_miss`, not a fast-path verdict.
    let chain_miss = counter("chain_miss");
    let (accepted, dropped) = (counter("continue") - chain_miss, counter("drop"));
    let seen: u64 = after.totals("filter").values().sum::<u64>()
        - before.totals("filter").values().sum::<u64>()
        - chain_miss;
    let share = Share {
        probes: rc.corpus.len(),
        accepted,
        dropped,
        punted: seen - accepted - dropped,
    };
    let stages: Vec<String> = plan
        .interfaces
        .values()
        .map(|p| p.stages.join("+"))
        .collect();
    let slow: Vec<String> = plan.slow_path.values().map(|s| format!("{s:?}")).collect();
    eprintln!(
        "{} on {hook:?} ({} rules; {} addresses and {} ports drawn; test took {:?}): {report}\n\
         stages {stages:?}, slow path {slow:?}\n\
         filter: {accepted} accepted and {dropped} dropped in the fast path, {} punted, of {} \
         probes ({:.0} % decided); counters {:?}",
        ruleset.name,
        ruleset.rules,
        rc.addresses,
        rc.ports,
        started.elapsed(),
        share.punted,
        share.probes,
        100.0 * share.decided(),
        after.totals("filter"),
    );
    // A sanity check of the testbed (routes, the ruleset's policy): a
    // random ruleset with policy drop lets only a tenth or so through.
    assert!(
        base.total() > rc.corpus.len() / 20,
        "{}: Linux sent out too little",
        ruleset.name
    );
    assert!(
        report.is_empty(),
        "{}: the fast path's verdicts differ from the kernel's:\n{report}",
        ruleset.name
    );
    share
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_rules_agree_with_the_kernel() {
    if !require_root("docker_rules_agree_with_the_kernel") {
        return;
    }
    // Docker's rules use conntrack (and NAT), so the kernel tracks every
    // IPv4 packet: each probe, a new flow, goes to it at the conntrack
    // gate. IPv6 has no rules: those probes pass in the fast path. Nothing
    // is dropped there.
    let full = differential("fdk", &rulesets::docker(), 300, 0xD0C).await;
    assert_eq!(full.dropped, 0, "{full:?}");
    // The filter table alone: the same for IPv4 (its conntrack match is
    // enough), IPv6 passes.
    let filter = differential("fdf", &rulesets::docker().without_nat(), 300, 0xD0C).await;
    assert!(filter.accepted > 30, "{filter:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_proxy_rules_agree_with_the_kernel() {
    if require_root("kube_proxy_rules_agree_with_the_kernel") {
        // NAT on the path, and `ct state` on every path of the filter
        // table: the kernel decides; the test is that LinuxFP stays out of
        // its way (REJECTs, DNAT to endpoints, masquerading).
        differential("fkp", &rulesets::kube_proxy(200), 400, 0x4B8).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flannel_rules_agree_with_the_kernel() {
    if !require_root("flannel_rules_agree_with_the_kernel") {
        return;
    }
    differential("ffl", &rulesets::flannel(), 300, 0xF1A).await;
    let filter = differential("fff", &rulesets::flannel().without_nat(), 300, 0xF1A).await;
    filter.assert_substantial("flannel (filter table)", 0.5);
    let xdp = differential_on(
        HookPolicy::Xdp,
        "ffx",
        &rulesets::flannel().without_nat(),
        300,
        0xF1B,
    )
    .await;
    xdp.assert_substantial("flannel (filter table) on XDP", 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_rulesets_agree_with_the_kernel() {
    if !require_root("random_rulesets_agree_with_the_kernel") {
        return;
    }
    for (i, (rules, seed)) in [(60, 0xA1), (1000, 0xA2)].into_iter().enumerate() {
        let rs = rulesets::random(rules, seed);
        let share = differential(&format!("fr{i}"), &rs, 400, seed).await;
        share.assert_substantial(&rs.name, 0.3);
    }
    // The same verdicts from the XDP program.
    let rs = rulesets::random(1000, 0xA3);
    let share = differential_on(HookPolicy::Xdp, "frx", &rs, 400, 0xA3).await;
    share.assert_substantial(&rs.name, 0.3);
    // With `ct state` rules the kernel tracks every connection: every
    // probe (a new flow) is its own, and the verdicts still agree.
    let rs = rulesets::random_with_conntrack(1000, 0xA4);
    let share = differential("frc", &rs, 400, 0xA4).await;
    assert_eq!(share.accepted + share.dropped, 0, "{share:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_10k_ruleset_agrees_with_the_kernel() {
    if require_root("a_random_10k_ruleset_agrees_with_the_kernel") {
        let rs = rulesets::random(10_000, 0xA10);
        let share = differential("frk", &rs, 600, 0xA10).await;
        share.assert_substantial(&rs.name, 0.3);
    }
}

/// The test can fail: the same corpus through Linux alone twice, with
/// Flannel's filter table and with the same table under policy accept,
/// must differ by the packets the policy dropped (a fast path that
/// accepted them would be caught the same way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_more_permissive_verdict_is_caught() {
    if !require_root("a_more_permissive_verdict_is_caught") {
        return;
    }
    let strict = rulesets::flannel().without_nat();
    let mut lax = strict.clone();
    lax.text = lax.text.replace(":FORWARD DROP", ":FORWARD ACCEPT");
    assert_ne!(lax.text, strict.text);
    let rc = rule_corpus(&ROUTER, &Vocabulary::scan(&strict.text), 300, 0xF1A);
    let runs: Vec<_> = [("fcs", &strict), ("fcl", &lax)]
        .into_iter()
        .map(|(tag, rs)| {
            tokio::task::block_in_place(|| {
                let vr = testbed(tag, HookPolicy::Auto, rs, &rc);
                diff::run(&bed::router_wires(&vr), &rc.corpus, &Options::default())
                    .expect("run with Linux alone")
            })
        })
        .collect();
    let norm = Normaliser {
        own_ipv4: vec![ROUTER.r0_4, ROUTER.r1_4],
    };
    let report = diff::compare(&runs[0], &runs[1], &rc.corpus, &norm);
    let extra: usize = report.diffs.iter().map(|d| d.fast_only.len()).sum();
    let missing: usize = report.diffs.iter().map(|d| d.linux_only.len()).sum();
    eprintln!("policy drop against policy accept: {extra} more frames, {missing} fewer");
    assert!(
        extra > 50 && missing == 0,
        "the comparison sees what a more permissive filter lets through:\n{report}"
    );
}
