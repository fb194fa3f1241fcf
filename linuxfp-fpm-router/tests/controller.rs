// SPDX-License-Identifier: MIT OR Apache-2.0
//! The composed controller (inspector → topology → compat → synth →
//! deployer) on the virtual router: it deploys within a second of start,
//! follows plain `ip` commands, and detaches everything on shutdown.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use linuxfp::{
    controller::{Controller, ControllerEvent},
    netns::NetnsRef,
    synth::PlanDiff,
};
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{Netns, VirtualRouter, addr, attached_programs, require_root, up, veth};

async fn next_deploy(
    events: &mut (impl futures::Stream<Item = ControllerEvent> + Unpin),
    within: Duration,
) -> ControllerEvent {
    tokio::time::timeout(within, async {
        loop {
            match events.next().await {
                Some(ev @ ControllerEvent::Deployed { .. }) => return ev,
                Some(ControllerEvent::Error { message }) => panic!("controller error: {message}"),
                Some(_) => {}
                None => panic!("controller stopped"),
            }
        }
    })
    .await
    .expect("a deployment in time")
}

/// The next deployment whose plan change passes `wanted`, skipping others.
async fn next_deploy_that(
    events: &mut (impl futures::Stream<Item = ControllerEvent> + Unpin),
    within: Duration,
    wanted: impl Fn(&PlanDiff) -> bool,
) -> ControllerEvent {
    tokio::time::timeout(within, async {
        loop {
            let ev = next_deploy(events, within).await;
            if let ControllerEvent::Deployed { diff, .. } = &ev
                && wanted(diff)
            {
                return ev;
            }
        }
    })
    .await
    .expect("the deployment in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_deploys_follows_ip_commands_and_cleans_up() {
    if !require_root("controller_deploys_follows_ip_commands_and_cleans_up") {
        return;
    }
    let tb = VirtualRouter::new("ctl").expect("testbed");
    let started = std::time::Instant::now();
    let (handle, run) = Controller::builder()
        .netns(NetnsRef::Named(tb.rtr.name().to_string()))
        .fpm(Arc::new(RouterFpm::new()))
        .build()
        .expect("build")
        .start()
        .expect("start");
    let mut events = handle.events();
    let task = tokio::spawn(run);

    // Deployed within 1 s of start, on both router interfaces.
    let ev = next_deploy(&mut events, Duration::from_secs(1)).await;
    let first = started.elapsed();
    eprintln!("first deployment {first:?} after start");
    let ControllerEvent::Deployed { attached, .. } = ev else {
        unreachable!()
    };
    assert_eq!(
        attached,
        [tb.rtr_src_if.ifindex, tb.rtr_dst_if.ifindex].into()
    );
    for ifname in ["r0", "r1"] {
        let att = attached_programs(&tb.rtr, ifname).expect("query");
        assert_eq!(att.tc_ingress.len(), 1, "{ifname}: {att:?}");
    }
    assert!(
        tb.ping(false, 20).expect("ping"),
        "forwarding through LinuxFP"
    );
    let stats = handle.stats().await.expect("stats");
    assert!(stats.total("router", "fast") >= 30, "{stats:?}");

    // A new interface with an address joins the router.
    let extra = Netns::new("ctlx").expect("netns");
    veth(&tb.rtr, "r2", &extra, "x0").expect("veth");
    addr(&tb.rtr, "r2", "10.3.0.1/24").expect("addr");
    up(&tb.rtr, "r2").expect("up");
    addr(&extra, "x0", "10.3.0.2/24").expect("addr");
    up(&extra, "x0").expect("up");
    let t = std::time::Instant::now();
    // The address alone may come first, as a map-only update (the router's
    // own addresses are its martian sources): wait for the attach.
    let ControllerEvent::Deployed { attached, .. } =
        next_deploy_that(&mut events, Duration::from_secs(3), |d| {
            !d.attach.is_empty()
        })
        .await
    else {
        unreachable!()
    };
    eprintln!(
        "new interface accelerated {:?} after its address",
        t.elapsed()
    );
    assert_eq!(attached.len(), 1, "{attached:?}");

    // Taking it down takes it out again.
    tb.rtr
        .exec(&["ip", "link", "set", "r2", "down"])
        .expect("link down");
    let ControllerEvent::Deployed { detached, .. } =
        next_deploy_that(&mut events, Duration::from_secs(3), |d| {
            !d.detach.is_empty()
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(detached.len(), 1, "{detached:?}");
    assert!(
        attached_programs(&tb.rtr, "r2").expect("query").is_empty(),
        "detached from r2"
    );

    // Shutdown detaches everything.
    handle.shutdown();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops in time")
        .expect("join")
        .expect("run");
    for ifname in ["r0", "r1"] {
        assert!(
            attached_programs(&tb.rtr, ifname)
                .expect("query")
                .is_empty()
        );
    }
    assert!(
        tb.ping(false, 3).expect("ping"),
        "Linux carries the traffic"
    );
}
