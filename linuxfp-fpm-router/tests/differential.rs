// SPDX-License-Identifier: MIT OR Apache-2.0
//! The differential test of the router (issue 9): the router corpus (normal
//! traffic, edge cases, seeded fuzz) through the virtual router, once with
//! Linux alone and once with the controller deploying the router FPM; what
//! leaves `r0` and `r1` (captured at `s0` and `d0`: forwarded frames, ICMP
//! errors, replies) must be the same, and the fast path must have run.
//!
//! TC is the hook the Compatibility Manager picks on veth; XDP runs too,
//! with GRO on the receiving peers (an XDP redirect into a veth needs NAPI
//! there), the same in both runs.
//!
//! Root only; skips loudly otherwise.

mod support {
    pub mod linuxfp;
}

use std::sync::Arc;

use linuxfp::{compat::HookPolicy, deploy::Stats, fpm::Fpm};
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{
    attached_programs,
    diff::{self, Corpus, Normaliser, Options, Run, bed},
    require_root,
};
use support::linuxfp::{assert_same, with_linuxfp};

/// Mutated packets in the corpus, and the seed they come from.
const FUZZ: usize = 800;
const SEED: u64 = 0x5EED_0009;

fn corpus() -> Corpus {
    diff::corpus::router(&bed::ROUTER, FUZZ, SEED)
}

/// What a variant adds to the testbed's router before the run.
type Setup = fn(&linuxfp_testkit::Netns);

/// Nothing: the testbed as it is.
fn as_built(_: &linuxfp_testkit::Netns) {}

/// A policy rule (so the kernel checks sources through the FIB) and a
/// table it consults that makes the corpus's
/// [`diff::corpus::POLICY_LOCAL_SRC4`] local: packets from there are
/// martians now.
fn policy_rule(rtr: &linuxfp_testkit::Netns) {
    rtr.sh("ip rule add pref 100 lookup 100 && ip route add local 10.77.0.0/16 dev lo table 100")
        .expect("policy rule");
}

/// The corpus through Linux alone.
fn linux(tag: &str, napi: bool, setup: Setup, corpus: &Corpus) -> Run {
    let vr = bed::router(tag, napi).expect("testbed");
    setup(&vr.rtr);
    diff::run(&bed::router_wires(&vr), corpus, &Options::default()).expect("run with Linux alone")
}

/// The corpus through LinuxFP's router on `hook`; the run and the router
/// counters before and after it.
async fn linuxfp(
    tag: &str,
    hook: HookPolicy,
    setup: Setup,
    corpus: &Corpus,
) -> (Run, Stats, Stats) {
    let vr = bed::router(tag, hook == HookPolicy::Xdp).expect("testbed");
    setup(&vr.rtr);
    let fpms: Vec<Arc<dyn Fpm>> = vec![Arc::new(RouterFpm::new())];
    let (out, before, after) = with_linuxfp(&vr.rtr, fpms, hook, || {
        for ifname in ["r0", "r1"] {
            let att = attached_programs(&vr.rtr, ifname).expect("query");
            let on_hook = if hook == HookPolicy::Xdp {
                &att.xdp
            } else {
                &att.tc_ingress
            };
            assert!(!on_hook.is_empty(), "{ifname}: {att:?}");
        }
        diff::run(&bed::router_wires(&vr), corpus, &Options::default())
    })
    .await;
    (out.expect("run with LinuxFP"), before, after)
}

async fn differential(hook: HookPolicy, tag: &str, setup: Setup) {
    let started = std::time::Instant::now();
    let corpus = corpus();
    let napi = hook == HookPolicy::Xdp;
    let base = tokio::task::block_in_place(|| linux(&format!("{tag}l"), napi, setup, &corpus));
    let (fast, before, after) = linuxfp(&format!("{tag}f"), hook, setup, &corpus).await;
    assert!(base.total() > corpus.len() / 4, "Linux sent out too little");
    let l = bed::ROUTER;
    let norm = Normaliser {
        own_ipv4: vec![l.r0_4, l.r1_4],
    };
    let report = diff::compare(&base, &fast, &corpus, &norm);
    let label = format!("{hook:?} (test took {:?})", started.elapsed());
    assert_same(&label, &report, "router", &before, &after, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc_router_sends_out_what_linux_sends() {
    if require_root("tc_router_sends_out_what_linux_sends") {
        differential(HookPolicy::Auto, "dft", as_built).await;
    }
}

/// With a policy rule the kernel's source check is a FIB lookup, and a
/// source can be local through a table only that rule reads: the fast
/// path must follow (its quick check, a set of sources, would miss it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc_router_with_a_policy_rule_sends_out_what_linux_sends() {
    if require_root("tc_router_with_a_policy_rule_sends_out_what_linux_sends") {
        differential(HookPolicy::Auto, "dfp", policy_rule).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdp_router_sends_out_what_linux_sends() {
    if require_root("xdp_router_sends_out_what_linux_sends") {
        differential(HookPolicy::Xdp, "dfx", as_built).await;
    }
}
