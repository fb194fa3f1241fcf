// SPDX-License-Identifier: MIT OR Apache-2.0
//! The controller with the router and filter FPMs on the virtual router:
//! shared by the filter's namespace tests.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use linuxfp::{
    compat::HookPolicy,
    controller::{Controller, ControllerError, ControllerHandle},
    netns::NetnsRef,
};
use linuxfp_fpm_filter::FilterFpm;
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::VirtualRouter;

/// A testbed with static neighbours, ready for `hook`: XDP redirects into
/// a veth need NAPI on the receiving peer, and frames leave XDP without
/// the skb's partial-checksum state, so for XDP both ends get GRO and fill
/// their checksums themselves.
pub fn testbed(tag: &str, hook: HookPolicy) -> VirtualRouter {
    let tb = VirtualRouter::new(tag).expect("testbed");
    tb.set_static_neighbours().expect("neighbours");
    if hook == HookPolicy::Xdp {
        for (ns, dev) in [(&tb.src, "s0"), (&tb.dst, "d0")] {
            ns.exec(&["ethtool", "-K", dev, "gro", "on", "tx", "off"])
                .expect("gro on, tx checksum off");
        }
    }
    tb
}

/// The controller's run task.
pub type Task = tokio::task::JoinHandle<Result<(), ControllerError>>;

/// Polls the deployed plan until `done` holds; panics after `within`.
pub async fn until(
    handle: &ControllerHandle,
    within: Duration,
    what: &str,
    done: impl Fn(&ControllerHandle) -> bool,
) {
    let deadline = Instant::now() + within;
    while !done(handle) {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts the controller with the router FPM and `filter` on the
/// testbed's router and waits until both run on r0 and r1 (filter first).
pub async fn start(
    tb: &VirtualRouter,
    hook: HookPolicy,
    filter: Arc<FilterFpm>,
) -> (ControllerHandle, Task) {
    let (handle, run) = Controller::builder()
        .netns(NetnsRef::Named(tb.rtr.name().to_string()))
        .fpm(Arc::new(RouterFpm::new()))
        .fpm(filter)
        .hook_policy(hook)
        .build()
        .expect("build")
        .start()
        .expect("start");
    let task = tokio::spawn(run);
    let (r0, r1) = (tb.rtr_src_if.ifindex, tb.rtr_dst_if.ifindex);
    until(
        &handle,
        Duration::from_secs(3),
        "filter and router deployed",
        |h| {
            let plan = h.plan();
            [r0, r1].iter().all(|i| {
                plan.interfaces
                    .get(i)
                    .is_some_and(|p| p.stages == ["filter", "router"])
            })
        },
    )
    .await;
    (handle, task)
}

/// Shuts the controller down and waits for it.
pub async fn stop(handle: &ControllerHandle, task: Task) {
    handle.shutdown();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops in time")
        .expect("join")
        .expect("run");
}
