// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Flannel-like two-node cluster carries pod-to-pod traffic, within a
//! node and between nodes, over VXLAN and over host-gw, with Linux alone
//! and with LinuxFP (router, bridge and filter FPMs, one controller per
//! node) running: ping and TCP get through in both cases, and LinuxFP's
//! stages saw the traffic (their counters moved). With flanneld's
//! `--ip-masq` rules the ruleset has a nat chain, so conntrack tracks every
//! flow and only flows in the filter's conntrack mirror go fast: TCP only
//! with `nf_conntrack_tcp_be_liberal=1` (kube-proxy's `tcpBeLiberal`),
//! then within a node the bridge forwards and between nodes the router;
//! without ip-masq the router's fast path forwards.
//!
//! Root only; skips loudly otherwise.

use std::sync::Arc;

use linuxfp::fpm::Fpm;
use linuxfp_benches::controllers::{Controllers, Counters};
use linuxfp_fpm_bridge::BridgeFpm;
use linuxfp_fpm_filter::FilterFpm;
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{Backend, FlannelCluster, Iperf3, require_root};

/// Node 1's first pod, its second, and node 2's first.
const A: (usize, usize) = (0, 0);
const B: (usize, usize) = (0, 1);
const C: (usize, usize) = (1, 0);

/// Pings and a short TCP transfer, intra-node (A → B) and inter-node
/// (A → C, and back).
fn reachable(c: &FlannelCluster, what: &str) {
    let tcp = Iperf3 {
        seconds: 1,
        ..Default::default()
    };
    for (from, to, path) in [(A, B, "intra"), (A, C, "inter"), (C, A, "inter, back")] {
        let p = c.ping(from, to, 5).expect("ping");
        assert!(
            p.all_answered(),
            "{what}, {}: ping {path}: {p:?}",
            c.backend.name()
        );
        let t = c.iperf3(from, to, &tcp).unwrap_or_else(|e| {
            panic!("{what}, {}: TCP {path}: {e}", c.backend.name());
        });
        assert!(
            t.bytes > 0,
            "{what}, {}: TCP {path} moved nothing",
            c.backend.name()
        );
        eprintln!(
            "{what}, {}, {path}: {:.1} Gbit/s",
            c.backend.name(),
            t.gbps()
        );
    }
}

fn fpms() -> Vec<Arc<dyn Fpm>> {
    vec![
        Arc::new(RouterFpm::new()),
        Arc::new(BridgeFpm::new()),
        Arc::new(FilterFpm::new()),
    ]
}

/// The fast-path packets of `fpm` in `seen`.
fn fast(seen: &Counters, fpm: &str) -> u64 {
    seen.fpms
        .get(fpm)
        .and_then(|r| r.get("fast"))
        .copied()
        .unwrap_or(0)
}

fn check(backend: Backend, ip_masq: bool, tcp_be_liberal: bool, tag: &str) {
    let c = FlannelCluster::with_ip_masq(tag, backend, 2, ip_masq).expect("cluster");
    if tcp_be_liberal {
        c.set_tcp_be_liberal(true).expect("tcp_be_liberal");
    }
    reachable(&c, "Linux alone");

    let ctl = Controllers::start(
        &[
            ("node1", c.nodes[0].ns.name()),
            ("node2", c.nodes[1].ns.name()),
        ],
        &fpms(),
    )
    .expect("controllers");
    let choices = ctl.hook_choices();
    for h in &choices {
        eprintln!(
            "{} {}: {} {:?} — {}",
            h.node,
            h.interface,
            h.hook,
            h.stages,
            h.reasons.join("; ")
        );
    }
    // Every pod-facing port and the wire carry a chain, on TC (veths).
    for node in ["node1", "node2"] {
        for iface in ["eth0", "veth1", "veth2"] {
            let h = choices
                .iter()
                .find(|h| h.node == node && h.interface == iface)
                .unwrap_or_else(|| panic!("{node} {iface}: no decision in {choices:?}"));
            assert_eq!(h.hook, "tc", "{node} {iface}: {h:?}");
        }
    }
    let before = ctl.counters().expect("counters");
    reachable(&c, "LinuxFP");
    let seen = ctl.counters().expect("counters").since(&before);
    eprintln!(
        "{}: fast-path share {:.1}%, top punts {:?}",
        backend.name(),
        seen.fast_share() * 100.0,
        seen.top_punts(4)
    );
    let counted: u64 = seen.fpms.values().flat_map(|s| s.values()).sum();
    assert!(counted > 1000, "LinuxFP's stages saw the traffic: {seen:?}");
    if !ip_masq || tcp_be_liberal {
        // The filter evaluates Flannel's FORWARD rules (and, with
        // ip-masq, knows the mirrored flows ESTABLISHED): the router
        // forwards between nodes in the fast path.
        assert!(
            fast(&seen, "router") > 1000,
            "the router forwarded: {seen:?}"
        );
    }
    if tcp_be_liberal {
        // Within the node: bridged through the firewall as br_netfilter
        // shows it, and forwarded by the bridge stage.
        assert!(
            fast(&seen, "bridge") > 1000,
            "the bridge forwarded: {seen:?}"
        );
    }
    ctl.stop().expect("stop");
    // Linux alone again, once everything is detached.
    reachable(&c, "Linux alone, after LinuxFP");
}

#[test]
fn vxlan_pods_reach_each_other_with_and_without_linuxfp() {
    if !require_root("vxlan_pods_reach_each_other_with_and_without_linuxfp") {
        return;
    }
    check(Backend::Vxlan, true, false, "flvx");
}

#[test]
fn host_gw_pods_reach_each_other_with_and_without_linuxfp() {
    if !require_root("host_gw_pods_reach_each_other_with_and_without_linuxfp") {
        return;
    }
    check(Backend::HostGw, true, false, "flhg");
}

/// Without flanneld's `--ip-masq` rules the ruleset has no nat chain, so
/// the router runs in the fast path too, and forwards.
#[test]
fn pods_reach_each_other_without_ip_masq_with_the_router_in_the_fast_path() {
    if !require_root("pods_reach_each_other_without_ip_masq_with_the_router_in_the_fast_path") {
        return;
    }
    check(Backend::Vxlan, false, false, "flvxn");
    check(Backend::HostGw, false, false, "flhgn");
}

/// With ip-masq and kube-proxy's `tcpBeLiberal`, TCP flows reach the
/// conntrack mirror: pods within a node are bridged in the fast path
/// (through the firewall, under br_netfilter), pods on different nodes
/// routed.
#[test]
fn with_tcp_be_liberal_pod_traffic_takes_the_fast_path() {
    if !require_root("with_tcp_be_liberal_pod_traffic_takes_the_fast_path") {
        return;
    }
    check(Backend::Vxlan, true, true, "flvxl");
}
