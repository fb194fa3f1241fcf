// SPDX-License-Identifier: MIT OR Apache-2.0
//! Root tests of the virtual-router testbed: Linux forwards IPv4 and IPv6
//! across it, stops when forwarding is off, carries iperf3, and the kit
//! reads counters and attached programs from inside the namespaces.

use std::time::Duration;

use linuxfp_testkit::{
    Iperf3, VirtualRouter, attached_programs, format_mac, ifindex, link_stats, list_namespaces,
    mac, require_root, wait_listening,
};

#[test]
fn virtual_router_forwards_ipv4_and_ipv6() {
    if !require_root("virtual_router_forwards_ipv4_and_ipv6") {
        return;
    }
    let vr = VirtualRouter::new("fwd").expect("testbed");
    assert_eq!(vr.src_if.name, "s0");
    assert_eq!(vr.src_if.ifindex, ifindex(&vr.src, "s0").expect("ifindex"));
    assert_eq!(vr.rtr_dst_if.mac, mac(&vr.rtr, "r1").expect("mac"));

    let before = link_stats(&vr.dst, "d0").expect("stats");
    assert!(vr.ping(false, 5).expect("ping v4"), "IPv4 through rtr");
    assert!(vr.ping(true, 5).expect("ping v6"), "IPv6 through rtr");
    let after = link_stats(&vr.dst, "d0").expect("stats");
    // Ten echo requests arrived on d0 (plus neighbour discovery).
    assert!(
        after.rx_packets >= before.rx_packets + 10,
        "{before:?} -> {after:?}"
    );
    let forwarded = link_stats(&vr.rtr, "r1").expect("stats");
    assert!(forwarded.tx_packets >= 10, "{forwarded:?}");

    // The check can fail: without forwarding nothing gets through.
    vr.set_forwarding(false).expect("forwarding off");
    let stats = vr.ping_stats(false, 2).expect("ping v4");
    assert_eq!((stats.transmitted, stats.received), (2, 0));
    assert!(!vr.ping(true, 2).expect("ping v6"));
    vr.set_forwarding(true).expect("forwarding on");
    assert!(vr.ping(false, 2).expect("ping v4"));
}

#[test]
fn static_neighbours_are_permanent() {
    if !require_root("static_neighbours_are_permanent") {
        return;
    }
    let vr = VirtualRouter::new("nei").expect("testbed");
    vr.set_static_neighbours().expect("neighbours");
    let shown = vr
        .rtr
        .exec(&["ip", "neigh", "show", "dev", "r1"])
        .expect("neigh");
    let dst_mac = format_mac(vr.dst_if.mac);
    for ip in ["10.2.0.2", "fd02::2"] {
        let line = shown
            .lines()
            .find(|l| l.starts_with(&format!("{ip} ")))
            .expect(ip);
        assert!(
            line.contains(&dst_mac) && line.contains("PERMANENT"),
            "{line}"
        );
    }
    assert!(vr.ping(false, 3).expect("ping v4"));
    assert!(vr.ping(true, 3).expect("ping v6"));
}

#[test]
fn iperf3_measures_tcp_across_the_router() {
    if !require_root("iperf3_measures_tcp_across_the_router") {
        return;
    }
    let vr = VirtualRouter::new("ipf").expect("testbed");
    let run = Iperf3 {
        seconds: 1,
        ..Iperf3::default()
    };
    let tcp = vr.iperf3(false, &run).expect("iperf3 v4");
    assert!(tcp.bytes > 0 && tcp.bits_per_second > 1e6, "{tcp:?}");
    assert!(tcp.seconds > 0.5 && tcp.seconds < 2.0, "{tcp:?}");
    let udp = vr
        .iperf3(
            true,
            &Iperf3 {
                seconds: 1,
                udp_bitrate: Some(10_000_000),
                ..Iperf3::default()
            },
        )
        .expect("iperf3 v6 udp");
    assert!(udp.lost_percent.is_some(), "{udp:?}");
    assert!(udp.bytes > 0, "{udp:?}");
    // Nothing is left listening or running.
    assert!(vr.dst.pids().expect("pids").is_empty());

    // Without a route back nothing connects, and the error says so.
    vr.set_forwarding(false).expect("forwarding off");
    let err = vr
        .iperf3(false, &run)
        .expect_err("no forwarding, no connection");
    assert!(err.to_string().contains("iperf3"), "{err}");
    assert!(
        vr.dst.pids().expect("pids").is_empty(),
        "server stopped after a failed run"
    );
}

#[test]
fn fresh_interfaces_have_no_programs_attached() {
    if !require_root("fresh_interfaces_have_no_programs_attached") {
        return;
    }
    let vr = VirtualRouter::new("prg").expect("testbed");
    for ifname in ["r0", "r1"] {
        let attached = attached_programs(&vr.rtr, ifname).expect("query");
        assert!(attached.is_empty(), "{ifname}: {attached:?}");
    }
    let err = attached_programs(&vr.rtr, "nope0").expect_err("no such interface");
    assert!(err.to_string().contains(vr.rtr.name()), "{err}");
}

#[test]
fn testbed_is_removed_on_drop() {
    if !require_root("testbed_is_removed_on_drop") {
        return;
    }
    let vr = VirtualRouter::new("drp").expect("testbed");
    let names = [vr.src.name(), vr.rtr.name(), vr.dst.name()].map(str::to_string);
    let listed = list_namespaces().expect("list");
    assert!(names.iter().all(|n| listed.contains(n)));
    let server = vr.dst.spawn(&["iperf3", "-s"]).expect("server");
    let pid = server.pid();
    wait_listening(&vr.dst, 5201, Duration::from_secs(5)).expect("server listens");
    std::mem::forget(server); // left running: the namespace guard must kill it
    drop(vr);
    let listed = list_namespaces().expect("list");
    assert!(names.iter().all(|n| !listed.contains(n)), "{listed:?}");
    std::thread::sleep(Duration::from_millis(100));
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z"),
        "iperf3 {pid} still runs: {state}"
    );
}
