// SPDX-License-Identifier: MIT OR Apache-2.0
//! Faults on the bridge: a port deleted while the bridge stage is attached
//! to it ends with the port out of the plan, no error, and the other ports
//! forwarding in the fast path.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use linuxfp::{
    controller::{Controller, ControllerEvent, ControllerHandle},
    netns::NetnsRef,
};
use linuxfp_fpm_bridge::BridgeFpm;
use linuxfp_testkit::{Switch, attached_programs, require_root};

fn bridge_fast(stats: &linuxfp::deploy::Stats) -> u64 {
    stats.total("bridge", "fast")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_port_leaves_the_plan_quietly() {
    if !require_root("a_deleted_port_leaves_the_plan_quietly") {
        return;
    }
    let s = Switch::new("fbd", 3).expect("switch");
    s.set_static_neighbours().expect("neighbours");
    let (handle, run) = Controller::builder()
        .netns(NetnsRef::Named(s.sw.name().to_string()))
        .fpm(Arc::new(BridgeFpm::new()))
        .build()
        .expect("build")
        .start()
        .expect("start");
    let mut events = handle.events();
    let task = tokio::spawn(async move {
        let _ = run.await;
    });
    let ports: Vec<u32> = s.hosts.iter().map(|h| h.port_ifindex).collect();
    let mut seen = Vec::new();
    let wait = |h: &ControllerHandle, n: usize| {
        let plan = h.plan();
        plan.interfaces.len() == n
    };
    let start = Instant::now();
    while !wait(&handle, 3) {
        assert!(start.elapsed() < Duration::from_secs(5), "3 ports planned");
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(20), events.next()).await {
            seen.push(e);
        }
    }
    // Learn the MACs, then check the fast path.
    for (a, b) in [(0, 1), (1, 0), (0, 2), (2, 0)] {
        assert!(s.ping(a, b, false, 2).expect("ping").all_answered());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!attached_programs(&s.sw, "p3").expect("query").is_empty());

    s.sw.exec(&["ip", "link", "del", "p3"])
        .expect("delete p3 under its program");
    let t = Instant::now();
    let p3_gone = |h: &ControllerHandle| wait(h, 2) && !h.plan().interfaces.contains_key(&ports[2]);
    while !p3_gone(&handle) {
        assert!(t.elapsed() < Duration::from_secs(3), "p3 leaves the plan");
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(20), events.next()).await {
            seen.push(e);
        }
    }
    eprintln!(
        "deleted port left the plan {:?} after the delete",
        t.elapsed()
    );
    // No error then, nor in the second after (no retry storm).
    let quiet = Instant::now();
    let mut after = Vec::new();
    while quiet.elapsed() < Duration::from_secs(1) {
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await {
            after.push(e);
        }
    }
    for e in seen.iter().chain(&after) {
        match e {
            ControllerEvent::Error { message } => panic!("controller error: {message}"),
            ControllerEvent::Deployed { failed, .. } => {
                assert!(failed.is_empty(), "{failed:?}")
            }
            ControllerEvent::TopologyChanged { .. } => {}
        }
    }
    assert!(after.len() < 10, "a few events, not a storm: {after:?}");
    // The deleted port's FDB entries left the mirror with it.
    let plan = handle.plan();
    let mirror = &plan.fpms["bridge"].maps[linuxfp_ebpf_common::bridge::FDB_MAP];
    for v in mirror.values() {
        let port = u32::from_ne_bytes([v.0[0], v.0[1], v.0[2], v.0[3]]);
        assert_ne!(port, ports[2], "no mirror entry at the deleted port");
    }
    // The remaining ports forward in the fast path.
    let before = bridge_fast(&handle.stats().await.expect("stats"));
    assert!(s.ping(0, 1, false, 20).expect("ping").all_answered());
    let fast = bridge_fast(&handle.stats().await.expect("stats")) - before;
    assert!(fast >= 30, "only {fast} of 40 frames fast after the delete");
    handle.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}
