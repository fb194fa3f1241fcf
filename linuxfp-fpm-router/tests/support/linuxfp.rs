// SPDX-License-Identifier: MIT OR Apache-2.0
//! Runs something with LinuxFP deployed: shared by the FPMs' differential
//! tests (the bridge's includes this file by path).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use linuxfp::{
    compat::HookPolicy,
    controller::{Controller, ControllerEvent, ControllerHandle},
    deploy::Stats,
    fpm::Fpm,
    netns::NetnsRef,
};
use linuxfp_testkit::{Netns, diff::Report};

/// Starts a controller on `ns` with `fpms` and `hook`, waits (5 s at most)
/// for its first deployment, which must accelerate every interface it
/// plans for, runs `body` and returns what it returned with the counters
/// before and after it; then shuts the controller down (everything is
/// detached when this returns).
pub async fn with_linuxfp<R>(
    ns: &Netns,
    fpms: Vec<Arc<dyn Fpm>>,
    hook: HookPolicy,
    body: impl FnOnce() -> R,
) -> (R, Stats, Stats) {
    with_controller(ns, fpms, hook, |_| body()).await
}

/// [`with_linuxfp`] with the controller's handle given to `body` (to read
/// the deployed plan).
pub async fn with_controller<R>(
    ns: &Netns,
    fpms: Vec<Arc<dyn Fpm>>,
    hook: HookPolicy,
    body: impl FnOnce(&ControllerHandle) -> R,
) -> (R, Stats, Stats) {
    let mut builder = Controller::builder()
        .netns(NetnsRef::Named(ns.name().to_string()))
        .hook_policy(hook);
    for f in fpms {
        builder = builder.fpm(f);
    }
    let (handle, run) = builder.build().expect("build").start().expect("start");
    let mut events = handle.events();
    let task = tokio::spawn(run);
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.next().await {
                Some(ControllerEvent::Deployed { failed, .. }) => {
                    assert!(failed.is_empty(), "{failed:?}");
                    return;
                }
                Some(ControllerEvent::Error { message }) => panic!("controller: {message}"),
                Some(_) => {}
                None => panic!("controller stopped"),
            }
        }
    })
    .await
    .expect("deployed in time");
    let before = handle.stats().await.expect("stats");
    let out = tokio::task::block_in_place(|| body(&handle));
    let after = handle.stats().await.expect("stats");
    handle.shutdown();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops in time")
        .expect("join")
        .expect("run");
    (out, before, after)
}

/// Prints the comparison and the counters `fpm` moved (`label` says which
/// run), and fails unless both runs sent the same frames and the fast path
/// forwarded more than `min_fast` packets.
pub fn assert_same(
    label: &str,
    report: &Report,
    fpm: &str,
    before: &Stats,
    after: &Stats,
    min_fast: u64,
) {
    let fast = after.total(fpm, "fast") - before.total(fpm, "fast");
    let totals = after.totals(fpm);
    eprintln!("{label}: {report}\nfast path: {fast} fast; counters {totals:?}");
    assert!(
        report.is_empty(),
        "{label}: LinuxFP differs from Linux:\n{report}"
    );
    assert!(fast > min_fast, "{label}: the fast path ran: {totals:?}");
}
