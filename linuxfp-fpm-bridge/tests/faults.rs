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

/// Starts a controller with the bridge FPM on the switch: its handle, its
/// events from the start, and its task.
fn start(
    s: &Switch,
) -> (
    ControllerHandle,
    impl futures::Stream<Item = ControllerEvent> + Unpin + use<>,
    tokio::task::JoinHandle<()>,
) {
    let (handle, run) = Controller::builder()
        .netns(NetnsRef::Named(s.sw.name().to_string()))
        .fpm(Arc::new(BridgeFpm::new()))
        .build()
        .expect("build")
        .start()
        .expect("start");
    let events = handle.events();
    let task = tokio::spawn(async move {
        let _ = run.await;
    });
    (handle, events, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_port_leaves_the_plan_quietly() {
    if !require_root("a_deleted_port_leaves_the_plan_quietly") {
        return;
    }
    let s = Switch::new("fbd", 3).expect("switch");
    s.set_static_neighbours().expect("neighbours");
    let (handle, mut events, task) = start(&s);
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
        let port = u32::from_ne_bytes([v[0], v[1], v[2], v[3]]);
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

/// Fault 6: a kernel FDB larger than the fast path's map (`MAX_FDB` + 100
/// static entries): the deployment succeeds with the mirror capped at
/// `FDB_MIRROR_CAP`, nothing fails, and the hosts still reach each other
/// (fast if their MACs are mirrored, through the kernel if not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fdb_larger_than_the_map_deploys_capped_and_forwards() {
    if !require_root("an_fdb_larger_than_the_map_deploys_capped_and_forwards") {
        return;
    }
    use linuxfp_ebpf_common::bridge::{FDB_MAP, MAX_FDB};
    let s = Switch::new("fbf", 3).expect("switch");
    s.set_static_neighbours().expect("neighbours");
    let entries = MAX_FDB + 100;
    let path = std::env::temp_dir().join(format!("{}-fdb.batch", s.sw.name()));
    let text: String = (0..entries)
        .map(|i| {
            format!(
                "fdb add 02:bb:00:{:02x}:{:02x}:{:02x} dev p3 master static\n",
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            )
        })
        .collect();
    std::fs::write(&path, text).expect("batch file");
    let t = Instant::now();
    s.sw.exec_timeout(
        &["bridge", "-batch", &path.to_string_lossy()],
        Duration::from_secs(120),
    )
    .expect("bridge -batch");
    let _ = std::fs::remove_file(&path);
    eprintln!("{entries} static FDB entries added in {:?}", t.elapsed());

    let (handle, mut events, task) = start(&s);
    let t = Instant::now();
    let deployed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.next().await {
                Some(ControllerEvent::Deployed { failed, .. }) => return failed,
                Some(ControllerEvent::Error { message }) => panic!("controller error: {message}"),
                Some(_) => {}
                None => panic!("controller stopped"),
            }
        }
    })
    .await
    .expect("a deployment in time");
    eprintln!("deployed a capped mirror in {:?}", t.elapsed());
    assert!(deployed.is_empty(), "no interface failed: {deployed:?}");
    let plan = handle.plan();
    assert_eq!(plan.interfaces.len(), 3, "{:?}", plan.slow_path);
    assert_eq!(
        plan.fpms["bridge"].maps[FDB_MAP].len(),
        linuxfp_fpm_bridge::params::FDB_MIRROR_CAP
    );
    for (a, b) in [(0, 1), (1, 0), (0, 2), (2, 1)] {
        assert!(
            s.ping(a, b, false, 5).expect("ping").all_answered(),
            "h{} -> h{}",
            a + 1,
            b + 1
        );
    }
    handle.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}
