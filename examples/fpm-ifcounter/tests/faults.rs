// SPDX-License-Identifier: MIT OR Apache-2.0
//! A program the verifier refuses, in the middle of a plan (issue 9): a
//! third-party FPM whose object loads but whose programs the verifier
//! rejects is chained on one interface of the virtual router while the
//! other keeps a good chain. The refused interface must be left to Linux
//! whole (nothing attached: not half a chain, not its previous chain with
//! out-of-date parameters), the error must name the FPM and carry the
//! verifier's words, the other interface must stay accelerated, and the
//! next good plan must deploy again.
//!
//! Root only; skips loudly otherwise.

use std::sync::Arc;

use linuxfp::{
    compat::{HookPolicy, KernelCaps, Policy},
    controller::plan_once,
    deploy::worker::DeployWorker,
    fpm::{Fpm, FpmConfig, FpmDeclaration, FpmError, FpmRegistry, ParamInput},
    netns::NetnsRef,
    synth::FastPathPlan,
};
use linuxfp_fpm_ifcounter::{IfCounterFpm, NAME};
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{VirtualRouter, attached_programs, require_root};

/// The refused FPM's name.
const BROKEN: &str = "broken";

/// The interface counter under another name, with every program's first
/// instruction replaced by `exit`: the object parses and its maps are
/// created, and the verifier refuses the programs (the rest of each is
/// unreachable).
struct Broken {
    declaration: FpmDeclaration,
    object: &'static [u8],
    inner: IfCounterFpm,
}

impl Broken {
    fn new() -> Self {
        let inner = IfCounterFpm::new();
        let mut declaration = inner.declaration().clone();
        declaration.name = BROKEN;
        let object = Box::leak(refused_by_the_verifier(inner.bytecode()).into_boxed_slice());
        Broken {
            declaration,
            object,
            inner,
        }
    }
}

impl Fpm for Broken {
    fn declaration(&self) -> &FpmDeclaration {
        &self.declaration
    }
    fn bytecode(&self) -> &'static [u8] {
        self.object
    }
    fn parameterize(&self, input: &ParamInput<'_>) -> Result<FpmConfig, FpmError> {
        self.inner.parameterize(input)
    }
}

/// `obj` (an ELF64 little-endian eBPF object) with the first instruction
/// of each program section (`xdp`, `classifier`) replaced by `exit`.
fn refused_by_the_verifier(obj: &[u8]) -> Vec<u8> {
    const EXIT: [u8; 8] = [0x95, 0, 0, 0, 0, 0, 0, 0];
    let u16_at = |o: usize| u16::from_le_bytes([obj[o], obj[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(obj[o..o + 4].try_into().expect("4 bytes")) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(obj[o..o + 8].try_into().expect("8 bytes")) as usize;
    assert_eq!(&obj[..4], b"\x7fELF", "an ELF object");
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3A), u16_at(0x3C), u16_at(0x3E));
    let section = |i: usize| shoff + i * shentsize;
    let names = u64_at(section(shstrndx) + 0x18);
    let mut out = obj.to_vec();
    let mut patched = 0;
    for i in 0..shnum {
        let sh = section(i);
        let name_at = names + u32_at(sh);
        let end = obj[name_at..]
            .iter()
            .position(|b| *b == 0)
            .expect("NUL-terminated");
        let name = &obj[name_at..name_at + end];
        if name == b"xdp" || name == b"classifier" {
            let offset = u64_at(sh + 0x18);
            out[offset..offset + 8].copy_from_slice(&EXIT);
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "the XDP and the TC program sections");
    out
}

/// `plan` with `r1`'s first stage (the interface counter) replaced by the
/// refused FPM.
fn with_refused_stage(plan: &FastPathPlan, r1: u32) -> FastPathPlan {
    let mut bad = plan.clone();
    let chain = bad.interfaces.get_mut(&r1).expect("r1 planned");
    assert_eq!(chain.stages[0], NAME);
    chain.stages[0] = BROKEN.to_string();
    let config = bad.fpms.get(NAME).cloned().unwrap_or_default();
    bad.fpms.insert(BROKEN.to_string(), config);
    bad
}

#[test]
fn a_stage_the_verifier_refuses_leaves_its_interface_to_linux() {
    if !require_root("a_stage_the_verifier_refuses_leaves_its_interface_to_linux") {
        return;
    }
    let tb = VirtualRouter::new("vfy").expect("testbed");
    let (r0, r1) = (tb.rtr_src_if.ifindex, tb.rtr_dst_if.ifindex);
    let mut planning = FpmRegistry::new();
    planning
        .register(Arc::new(IfCounterFpm::new()))
        .expect("ifcounter");
    planning
        .register(Arc::new(RouterFpm::new()))
        .expect("router");
    let netns = NetnsRef::Named(tb.rtr.name().to_string());
    let policy = Policy {
        hook: HookPolicy::Tc,
        ..Default::default()
    };
    let good = plan_once(&netns, &planning, &policy, &KernelCaps::probe())
        .expect("plan")
        .plan;
    let mut deploying = planning.clone();
    deploying.register(Arc::new(Broken::new())).expect("broken");
    let netns_pins = netns.pin_name();
    let worker = DeployWorker::spawn(netns, deploying).expect("worker");
    let apply = |plan: &FastPathPlan| futures::executor::block_on(worker.apply(plan.clone()));
    let tc_programs = |ifname: &str| {
        attached_programs(&tb.rtr, ifname)
            .expect("query")
            .tc_ingress
            .len()
    };

    let report = apply(&good).expect("apply the good plan");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(tb.ping(false, 5).expect("ping"), "through both chains");

    // The refused stage, on r1 only.
    let report = apply(&with_refused_stage(&good, r1)).expect("apply: a per-interface failure");
    let error = report.failed.get(&r1).expect("r1 failed");
    eprintln!("r1: {error}");
    assert!(
        error.contains("loading FPM `broken`")
            && error.contains("Verifier output: unreachable insn"),
        "the error names the FPM and has the verifier's words: {error}"
    );
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert!(report.detached.contains(&r1), "{report:?}");
    let deployed = futures::executor::block_on(worker.deployed()).expect("deployed");
    assert!(!deployed.interfaces.contains_key(&r1), "{deployed:?}");
    assert_eq!(
        deployed.slow_path.get(&r1).map(|s| s.reasons.clone()),
        Some(vec![error.clone()])
    );
    assert_eq!(deployed.interfaces.get(&r0), good.interfaces.get(&r0));
    assert_eq!(tc_programs("r1"), 0, "nothing of the chain stays on r1");
    let pins = linuxfp::deploy::PinLayout::new(&netns_pins).root;
    assert!(
        !pins.join(BROKEN).exists(),
        "the refused FPM's maps are not left pinned"
    );
    assert_eq!(tc_programs("r0"), 1, "r0 keeps its chain");
    let before = futures::executor::block_on(worker.stats()).expect("stats");
    assert!(tb.ping(false, 20).expect("ping"), "Linux forwards on r1");
    let after = futures::executor::block_on(worker.stats()).expect("stats");
    let fast = |s: &linuxfp::deploy::Stats, i| s.get("router", i, "fast");
    assert!(fast(&after, r0) - fast(&before, r0) >= 18, "{after:?}");
    assert_eq!(fast(&after, r1), 0, "nothing fast on r1: {after:?}");

    // The next good plan deploys again.
    let report = apply(&good).expect("apply the good plan again");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.attached.contains(&r1), "{report:?}");
    assert_eq!(tc_programs("r1"), 1);
    let before = futures::executor::block_on(worker.stats()).expect("stats");
    assert!(tb.ping(false, 20).expect("ping"), "through both chains");
    let after = futures::executor::block_on(worker.stats()).expect("stats");
    assert!(fast(&after, r1) - fast(&before, r1) >= 18, "{after:?}");
    worker.shutdown();
}
