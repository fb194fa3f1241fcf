// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bridge FPM deployed by the controller on a namespace switch: the
//! same reachability as Linux alone, steady unicast on the fast path, hosts
//! that move, blocked ports, FDB ageing that stays the kernel's, and a
//! bridge with an address routing through the router stage.
//!
//! Root only; skips loudly otherwise. This kernel has neither 802.1Q nor
//! bridge VLAN filtering, so VLAN handling is covered by the test-run
//! tables only.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use linuxfp::fpm::HexBytes;
use linuxfp::{
    controller::{ControllerEvent, ControllerHandle},
    deploy::{PinLayout, Stats, StatusFile},
    fpm::Fpm,
    netns::NetnsRef,
};
use linuxfp_ebpf_common::bridge::{FDB_MAP, FdbKey};
use linuxfp_fpm_bridge::BridgeFpm;
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{
    Netns, Switch, addr, attached_programs, format_mac, require_root, route, sysctl, up, veth,
};

/// Starts the controller on the switch namespace with `fpms`, and waits for
/// its first deployment.
async fn start(
    sw: &Netns,
    fpms: Vec<Arc<dyn Fpm>>,
) -> (ControllerHandle, tokio::task::JoinHandle<()>) {
    let mut builder =
        linuxfp::controller::Controller::builder().netns(NetnsRef::Named(sw.name().to_string()));
    for f in fpms {
        builder = builder.fpm(f);
    }
    let (handle, run) = builder.build().expect("build").start().expect("start");
    let mut events = handle.events();
    let task = tokio::spawn(async move {
        let _ = run.await;
    });
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.next().await {
                Some(ControllerEvent::Deployed { .. }) => return,
                Some(ControllerEvent::Error { message }) => panic!("controller: {message}"),
                Some(_) => {}
                None => panic!("controller stopped"),
            }
        }
    })
    .await
    .expect("deployed in time");
    (handle, task)
}

async fn stop(handle: ControllerHandle, task: tokio::task::JoinHandle<()>) {
    handle.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

/// All bridge counters on `ports`: (fast, everything else).
fn fast_and_rest(stats: &Stats, ports: &[u32]) -> (u64, u64) {
    let mut fast = 0;
    let mut rest = 0;
    for p in ports {
        if let Some(set) = stats.fpms.get("bridge").and_then(|m| m.get(p)) {
            for (name, v) in set {
                if name == "fast" {
                    fast += v;
                } else {
                    rest += v;
                }
            }
        }
    }
    (fast, rest)
}

fn all_pairs_reachable(s: &Switch) -> Vec<String> {
    let mut failed = Vec::new();
    for from in 0..s.hosts.len() {
        for to in 0..s.hosts.len() {
            for v6 in [false, true] {
                if from != to && !s.ping(from, to, v6, 3).expect("ping").all_answered() {
                    failed.push(format!("h{} -> h{} (v6: {v6})", from + 1, to + 1));
                }
            }
        }
    }
    failed
}

/// A quick burst of pings (root may go below 0.2 s).
fn burst(s: &Switch, from: usize, to: usize, count: u32) -> bool {
    let dst = s.hosts[to].ipv4.to_string();
    let out = s.hosts[from]
        .ns
        .exec_timeout(
            &[
                "ping",
                "-n",
                "-q",
                "-c",
                &count.to_string(),
                "-i",
                "0.005",
                "-W",
                "1",
                &dst,
            ],
            Duration::from_secs(30),
        )
        .unwrap_or_default();
    out.contains(&format!("{count} received"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_forwards_in_the_fast_path_like_linux() {
    if !require_root("bridge_forwards_in_the_fast_path_like_linux") {
        return;
    }
    let s = Switch::new("brf", 3).expect("switch");
    let linux = all_pairs_reachable(&s);
    assert!(linux.is_empty(), "Linux alone: {linux:?}");

    let (handle, task) = start(&s.sw, vec![Arc::new(BridgeFpm::new())]).await;
    for h in &s.hosts {
        let att = attached_programs(&s.sw, &h.port).expect("query");
        assert_eq!(att.tc_ingress.len(), 1, "{}: {att:?}", h.port);
    }
    assert!(
        attached_programs(&s.sw, "br0").expect("query").is_empty(),
        "nothing on the bridge device itself without a router"
    );
    let with = all_pairs_reachable(&s);
    assert_eq!(with, linux, "reachability differs from Linux alone");

    // An FDB change alone (no topology change) reaches the mirror.
    s.sw.exec(&[
        "bridge",
        "fdb",
        "replace",
        "02:fd:00:00:00:01",
        "dev",
        "p2",
        "master",
        "static",
    ])
    .expect("fdb add");
    let key = HexBytes::of(&FdbKey {
        bridge: s.bridge_ifindex,
        vlan: 0,
        mac: [2, 0xfd, 0, 0, 0, 1],
    });
    let t0 = std::time::Instant::now();
    let mirrored = loop {
        let plan = handle.plan();
        let has = plan
            .fpms
            .get("bridge")
            .and_then(|c| c.maps.get(FDB_MAP))
            .is_some_and(|m| m.contains_key(&key));
        if has || t0.elapsed() > Duration::from_secs(2) {
            break has;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        mirrored,
        "a static FDB entry reaches the fast path's mirror"
    );
    eprintln!("fdb entry mirrored after {:?}", t0.elapsed());

    // The status file names the deployed chains and the FPMs' globals, but
    // not their map contents (the pinned maps hold those).
    let layout = PinLayout::new(&NetnsRef::Named(s.sw.name().to_string()).pin_name());
    let status = StatusFile::read(&layout.status).expect("status file");
    let plan = handle.plan();
    assert_eq!(status.plan.interfaces, plan.interfaces);
    let bridge = status
        .plan
        .fpms
        .get("bridge")
        .expect("bridge in the status");
    assert_eq!(
        Some(&bridge.globals),
        plan.fpms.get("bridge").map(|c| &c.globals)
    );
    assert!(
        bridge.maps.is_empty(),
        "map contents in the status: {bridge:?}"
    );

    // Steady state: neighbours known, FDB learnt and mirrored.
    s.set_static_neighbours().expect("neighbours");
    assert!(burst(&s, 0, 1, 5), "warm-up");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ports = [s.hosts[0].port_ifindex, s.hosts[1].port_ifindex];
    let before = fast_and_rest(&handle.stats().await.expect("stats"), &ports);
    assert!(burst(&s, 0, 1, 1000), "1000 pings h1 -> h2 all answered");
    let after = fast_and_rest(&handle.stats().await.expect("stats"), &ports);
    let (fast, rest) = (after.0 - before.0, after.1 - before.1);
    eprintln!("steady: {fast} fast, {rest} to the kernel");
    assert!(
        fast >= 2000,
        "requests and replies on the fast path: {fast}"
    );
    assert!(
        fast * 100 >= (fast + rest) * 99,
        "at least 99% fast: {fast} fast, {rest} punted"
    );

    // TCP (GSO super-frames) crosses the fast path too.
    let iperf = linuxfp_testkit::Iperf3 {
        seconds: 1,
        ..Default::default()
    };
    let tcp = iperf
        .run(&s.hosts[1].ns, &s.hosts[1].ipv4.to_string(), &s.hosts[0].ns)
        .expect("iperf3 through the bridge");
    eprintln!("tcp through the fast path: {:.1} Gbit/s", tcp.gbps());
    assert!(tcp.gbps() > 0.1, "{tcp:?}");

    stop(handle, task).await;
    for h in &s.hosts {
        assert!(attached_programs(&s.sw, &h.port).expect("query").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_hosts_and_blocked_ports_behave_as_in_linux() {
    if !require_root("moved_hosts_and_blocked_ports_behave_as_in_linux") {
        return;
    }
    let s = Switch::new("brm", 4).expect("switch");
    let (handle, task) = start(&s.sw, vec![Arc::new(BridgeFpm::new())]).await;
    assert!(s.ping(0, 1, false, 3).expect("ping").all_answered());

    // h2's MAC and address move to h4 (port p4) while p2 stays up: the
    // kernel learns the move from h4's first frame, the mirror follows.
    let old = format_mac(s.hosts[1].mac);
    let h2 = &s.hosts[1].ns;
    h2.exec(&["ip", "addr", "del", "10.50.0.2/24", "dev", "e0"])
        .expect("del");
    h2.exec(&["ip", "link", "set", "e0", "address", "02:00:00:00:77:77"])
        .expect("new mac");
    // A live MAC change: p4 stays up and keeps its stage, so the fast path
    // sees h4's first (broadcast) frame and holds traffic to the MAC back
    // for the kernel until the mirror has the move.
    let h4 = &s.hosts[3].ns;
    h4.exec(&["ip", "link", "set", "e0", "address", &old])
        .expect("old mac");
    addr(h4, "e0", "10.50.0.2/24").expect("address");
    let moved = s.ping(3, 0, false, 3).expect("ping");
    if !moved.all_answered() {
        let fdb = s.sw.exec(&["bridge", "fdb", "show", "br", "br0"]);
        let st = handle.stats().await;
        let linux = s.ping(3, 0, false, 3);
        panic!(
            "the moved host reaches h1: {moved:?}\nfdb: {fdb:?}\nstats: {st:?}\nagain: {linux:?}"
        );
    }
    let fdb = s.learnt_macs().expect("fdb");
    assert!(
        fdb.contains(&(old.clone(), "p4".to_string())),
        "the kernel moved {old} to p4: {fdb:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p1 = s.hosts[0].port_ifindex;
    let before = handle
        .stats()
        .await
        .expect("stats")
        .get("bridge", p1, "fast");
    assert!(burst(&s, 0, 1, 50), "h1 reaches 10.50.0.2 at its new port");
    let after = handle
        .stats()
        .await
        .expect("stats")
        .get("bridge", p1, "fast");
    assert!(
        after >= before + 50,
        "on the fast path: {before} -> {after}"
    );

    // STP: a port re-enabled under kernel STP listens, then learns, for a
    // forward delay each, and forwards nothing meanwhile — as in Linux.
    assert!(s.ping(0, 2, false, 2).expect("ping").all_answered());
    s.sw.exec(&[
        "ip",
        "link",
        "set",
        "br0",
        "type",
        "bridge",
        "forward_delay",
        "200",
        "stp_state",
        "1",
    ])
    .expect("kernel STP");
    s.sw.exec(&["ip", "link", "set", "p3", "down"])
        .expect("p3 down");
    s.sw.exec(&["ip", "link", "set", "p3", "up"])
        .expect("p3 up");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state =
        s.sw.exec(&["bridge", "link", "show", "dev", "p3"])
            .expect("state");
    assert!(
        state.contains("listening") || state.contains("learning"),
        "p3 not forwarding yet: {state}"
    );
    let blocked = s.ping(0, 2, false, 3).expect("ping");
    assert_eq!(blocked.received, 0, "p3 listening/learning: {blocked:?}");
    // Forwarding after two forward delays (4 s); allow for slack.
    let mut back = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if s.ping(0, 2, false, 1).expect("ping").all_answered() {
            back = true;
            break;
        }
    }
    assert!(back, "p3 forwarding again");
    stop(handle, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_entries_stay_and_idle_ones_age_out() {
    if !require_root("active_entries_stay_and_idle_ones_age_out") {
        return;
    }
    let s = Switch::new("bra", 3).expect("switch");
    // Ageing 3 s: without refreshes, fast-path traffic would let h1 and h2
    // age out several times below.
    s.sw.exec(&[
        "ip",
        "link",
        "set",
        "br0",
        "type",
        "bridge",
        "ageing_time",
        "300",
    ])
    .expect("ageing");
    s.set_static_neighbours().expect("neighbours");
    let bridge = Arc::new(BridgeFpm::new());
    let (handle, task) = start(&s.sw, vec![bridge.clone()]).await;
    assert!(
        s.ping(2, 0, false, 1).expect("ping").all_answered(),
        "h3 learnt"
    );
    assert!(burst(&s, 0, 1, 5), "h1 and h2 learnt");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ports = [s.hosts[0].port_ifindex, s.hosts[1].port_ifindex];
    let unknown = |st: &Stats| -> u64 {
        ports
            .iter()
            .map(|p| st.get("bridge", *p, "unknown_dst"))
            .sum()
    };
    let fast = |st: &Stats| -> u64 { ports.iter().map(|p| st.get("bridge", *p, "fast")).sum() };
    let st0 = handle.stats().await.expect("stats");
    // 10 s of traffic between h1 and h2 only, in slices, checking the FDB.
    let (h1, h2) = (format_mac(s.hosts[0].mac), format_mac(s.hosts[1].mac));
    let h3 = format_mac(s.hosts[2].mac);
    let mut h3_gone = false;
    for _ in 0..10 {
        assert!(burst(&s, 0, 1, 50), "pings answered");
        tokio::time::sleep(Duration::from_millis(700)).await;
        let fdb = s.learnt_macs().expect("fdb");
        assert!(
            fdb.contains(&(h1.clone(), "p1".into())) && fdb.contains(&(h2.clone(), "p2".into())),
            "active entries present: {fdb:?}"
        );
        h3_gone |= !fdb.iter().any(|(m, _)| *m == h3);
    }
    let st1 = handle.stats().await.expect("stats");
    assert!(h3_gone, "the idle h3 aged out");
    assert_eq!(unknown(&st1), unknown(&st0), "never flooded: no entry aged");
    assert!(
        fast(&st1) - fast(&st0) >= 1000,
        "the traffic was fast-pathed"
    );
    let r = bridge.refresh_stats();
    eprintln!("refresher: {r:?}");
    assert!(
        r.refreshed >= 10,
        "the kernel entries were refreshed: {r:?}"
    );
    stop(handle, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_with_an_address_routes_through_the_router_stage() {
    if !require_root("a_bridge_with_an_address_routes_through_the_router_stage") {
        return;
    }
    let s = Switch::new("brr", 2).expect("switch");
    addr(&s.sw, "br0", "10.50.0.254/24").expect("svi");
    let far = Netns::new("brrfar").expect("netns");
    veth(&s.sw, "r9", &far, "x0").expect("veth");
    addr(&s.sw, "r9", "10.60.0.1/24").expect("addr");
    addr(&far, "x0", "10.60.0.2/24").expect("addr");
    up(&s.sw, "r9").expect("up");
    up(&far, "x0").expect("up");
    sysctl(&s.sw, "net.ipv4.ip_forward", "1").expect("forwarding");
    route(&far, "default via 10.60.0.1").expect("route");
    for h in &s.hosts {
        route(&h.ns, "default via 10.50.0.254").expect("route");
    }
    let linux = s.hosts[0]
        .ns
        .exec(&["ping", "-n", "-q", "-c", "3", "-i", "0.05", "10.60.0.2"]);
    assert!(linux.is_ok(), "Linux alone routes: {linux:?}");

    let (handle, task) = start(
        &s.sw,
        vec![Arc::new(BridgeFpm::new()), Arc::new(RouterFpm::new())],
    )
    .await;
    let att = attached_programs(&s.sw, "br0").expect("query");
    assert_eq!(att.tc_ingress.len(), 1, "router stage on br0: {att:?}");
    for _ in 0..2 {
        let out = s.hosts[0]
            .ns
            .exec(&["ping", "-n", "-q", "-c", "20", "-i", "0.01", "10.60.0.2"])
            .expect("h1 -> far through br0 and the router");
        assert!(out.contains("20 received"), "{out}");
        let out = far
            .exec(&["ping", "-n", "-q", "-c", "20", "-i", "0.01", "10.50.0.1"])
            .expect("far -> h1 through the router and br0");
        assert!(out.contains("20 received"), "{out}");
    }
    let st = handle.stats().await.expect("stats");
    let br0 = s.bridge_ifindex;
    let p1 = s.hosts[0].port_ifindex;
    eprintln!("{st:?}");
    assert!(
        st.get("bridge", p1, "local") >= 20,
        "frames for br0 go up through the kernel bridge"
    );
    assert!(
        st.get("router", br0, "fast") >= 20,
        "and are routed by the router stage on br0"
    );
    stop(handle, task).await;
}
