// SPDX-License-Identifier: MIT OR Apache-2.0
//! The differential harness's control experiment: Linux against Linux.
//! Two fresh builds of each testbed, the same corpus through both, must
//! compare equal after normalisation, or the harness would report
//! differences LinuxFP did not cause.
//!
//! Root only; skips loudly otherwise.

use linuxfp_testkit::{
    diff::{self, Normaliser, Options, bed},
    require_root,
};

#[test]
fn linux_against_linux_router() {
    if !require_root("linux_against_linux_router") {
        return;
    }
    let corpus = diff::corpus::router(&bed::ROUTER, 300, 42);
    let run = |tag: &str| {
        let vr = bed::router(tag, false).expect("testbed");
        let wires = bed::router_wires(&vr);
        diff::run(&wires, &corpus, &Options::default()).expect("run")
    };
    let (a, b) = (run("lla"), run("llb"));
    let norm = Normaliser {
        own_ipv4: vec![bed::ROUTER.r0_4, bed::ROUTER.r1_4],
    };
    let report = diff::compare(&a, &b, &corpus, &norm);
    eprintln!("{report}");
    assert!(report.is_empty(), "{report}");
    assert!(a.total() > 100, "the corpus made the router send: {report}");
}

#[test]
fn linux_against_linux_bridge() {
    if !require_root("linux_against_linux_bridge") {
        return;
    }
    let corpus = diff::corpus::bridge(&bed::SWITCH, 300, 42);
    let run = |tag: &str| {
        let s = bed::switch(tag, false).expect("testbed");
        let wires = bed::switch_wires(&s);
        diff::run(&wires, &corpus, &Options::default()).expect("run")
    };
    let (a, b) = (run("lba"), run("lbb"));
    let report = diff::compare(&a, &b, &corpus, &Normaliser::default());
    eprintln!("{report}");
    assert!(report.is_empty(), "{report}");
    assert!(a.total() > 100, "the corpus made the bridge send: {report}");
}
