// SPDX-License-Identifier: MIT OR Apache-2.0
//! KernelState → Topology on hand-built states (the recorded-netlink
//! tests are in `linuxfp/tests/topology_recorded.rs`).

use std::net::IpAddr;

use super::*;
use crate::{
    inspector::nftables::Ruleset,
    state::{Address, KernelState, Link, NetEvent, Netconf, Route, Sysctls},
};

/// Builds a state by folding events, as the inspector does.
struct Host(KernelState);

impl Host {
    fn new() -> Self {
        let mut h = Host(KernelState::default());
        h.link(1, "lo", None, &["127.0.0.1/8"]);
        if let Some(lo) = h.0.links.get_mut(&1) {
            lo.loopback = true;
        }
        h
    }

    fn link(&mut self, ifindex: u32, name: &str, kind: Option<&str>, addrs: &[&str]) -> &mut Link {
        self.0.apply(NetEvent::NewLink(Link {
            ifindex,
            name: name.into(),
            kind: kind.map(String::from),
            admin_up: true,
            running: true,
            mtu: 1500,
            mac: Some([2, 0, 0, 0, 0, ifindex as u8]),
            ..Default::default()
        }));
        for a in addrs {
            let (ip, len) = a.split_once('/').expect("cidr");
            self.0.apply(NetEvent::NewAddress(Address {
                ifindex,
                address: ip.parse().expect("ip"),
                prefix_len: len.parse().expect("len"),
                peer: None,
                broadcast: None,
                label: None,
                scope: 0,
                flags: 0,
                unknown: vec![],
            }));
        }
        self.0.links.get_mut(&ifindex).expect("link")
    }

    fn port(&mut self, ifindex: u32, name: &str, bridge: u32) {
        self.link(ifindex, name, Some("veth"), &[]).master = Some(bridge);
    }

    /// `sysctl -w net.ipv4.conf.all.forwarding=<on>` and
    /// `net.ipv6.conf.all.forwarding=<on>`, as netconf reports them.
    fn forwarding(&mut self, on: bool) {
        let ifindexes: Vec<i32> = self.0.links.keys().map(|i| *i as i32).collect();
        for family in [4, 6] {
            for i in ifindexes.iter().copied().chain([-1, -2]) {
                self.0.apply(NetEvent::NewNetconf(Netconf {
                    family,
                    ifindex: i,
                    forwarding: Some(on as i32),
                    ..Default::default()
                }));
            }
        }
    }

    fn sysctl4(&mut self, dir: &str, key: &str, v: i64) {
        let mut s: Sysctls = self.0.sysctls.clone();
        s.ipv4_conf
            .entry(dir.into())
            .or_default()
            .insert(key.into(), v);
        self.0.apply(NetEvent::Sysctls(s));
    }

    fn derive(&self) -> Topology {
        derive(&self.0)
    }
}

/// The seed paper's virtual router.
fn virtual_router() -> Host {
    let mut h = Host::new();
    h.link(2, "r0", Some("veth"), &["10.1.0.1/24", "fd01::1/64"]);
    h.link(3, "r1", Some("veth"), &["10.2.0.1/24", "fd02::1/64"]);
    h.forwarding(true);
    h
}

fn chain(family: &str, table: &str, name: &str, hook: &str, kind: &str, rules: u32) -> BaseChain {
    BaseChain {
        family: family.into(),
        table: table.into(),
        chain: name.into(),
        hook: hook.into(),
        priority: 0,
        chain_type: kind.into(),
        policy: "accept".into(),
        rules,
    }
}

#[test]
fn virtual_router_has_a_router_on_both_interfaces() {
    let t = virtual_router().derive();
    let r = t.router.as_ref().expect("router");
    assert!(r.ipv4 && r.ipv6);
    assert_eq!(r.interfaces.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    assert!(r.interfaces[&2].ipv4_forwarding && r.interfaces[&2].ipv6_forwarding);
    assert_eq!(t.chains[&2], vec![FunctionRef::Router]);
    assert!(!t.chains.contains_key(&1), "loopback is not a router port");
    assert!(t.limitations.is_empty(), "{:?}", t.limitations);
    assert_eq!(
        t.interfaces[&2].addresses,
        vec!["10.1.0.1/24", "fd01::1/64"]
    );
    // Serialisable, and back.
    let json = serde_json::to_string(&t).expect("json");
    assert_eq!(serde_json::from_str::<Topology>(&json).expect("parse"), t);
}

#[test]
fn forwarding_off_means_no_router() {
    let mut h = virtual_router();
    h.forwarding(false);
    let t = h.derive();
    assert!(t.router.is_none());
    assert!(t.chains.is_empty());
}

#[test]
fn ipv6_forwarding_alone_makes_a_router() {
    let mut h = virtual_router();
    h.forwarding(false);
    h.0.apply(NetEvent::NewNetconf(Netconf {
        family: 6,
        ifindex: -1,
        forwarding: Some(1),
        ..Default::default()
    }));
    let r = h.derive().router.expect("router");
    assert!(!r.ipv4 && r.ipv6);
}

#[test]
fn down_interfaces_and_interfaces_without_addresses_or_routes_are_not_routed() {
    let mut h = virtual_router();
    h.link(4, "idle", Some("dummy"), &[]);
    h.link(5, "down", Some("veth"), &["10.5.0.1/24"]).admin_up = false;
    h.link(6, "via", Some("veth"), &[]);
    h.0.apply(NetEvent::NewRoute(Route {
        table: 254,
        dst: "10.6.0.0".parse::<IpAddr>().expect("ip"),
        dst_len: 16,
        src: None,
        src_len: 0,
        tos: 0,
        priority: 0,
        protocol: 4,
        scope: 0,
        kind: 1,
        flags: 0,
        oif: Some(6),
        iif: None,
        gateway: None,
        prefsrc: None,
        nexthops: vec![],
        nh_id: None,
        mtu: None,
        unknown: vec![],
    }));
    let r = h.derive().router.expect("router");
    assert_eq!(
        r.interfaces.keys().copied().collect::<Vec<_>>(),
        vec![2, 3, 6]
    );
}

#[test]
fn bridge_with_svi_continues_to_the_router() {
    let mut h = Host::new();
    h.link(2, "up0", Some("veth"), &["10.9.0.1/24"]);
    h.link(3, "br0", Some("bridge"), &["10.3.0.1/24"]);
    h.port(4, "p1", 3);
    h.port(5, "p2", 3);
    h.forwarding(true);
    let t = h.derive();
    let b = &t.bridges[&3];
    assert!(b.routed);
    assert_eq!(b.ports.keys().copied().collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(b.ports[&4].state, 3, "kernel defaults when not reported");
    assert_eq!(
        t.chains[&4],
        vec![FunctionRef::Bridge { bridge: 3 }, FunctionRef::Router]
    );
    let r = t.router.as_ref().expect("router");
    assert!(
        r.interfaces.contains_key(&3),
        "the SVI is a router interface"
    );
    assert!(!r.interfaces.contains_key(&4), "ports are not");
}

#[test]
fn bridge_vlans_apply_only_with_vlan_filtering() {
    let mut h = Host::new();
    h.link(3, "br0", Some("bridge"), &[]);
    h.port(4, "p1", 3);
    h.0.apply(NetEvent::BridgeLink {
        ifindex: 4,
        port: None,
        vlans: Some(
            [
                (
                    1,
                    crate::state::VlanMembership {
                        pvid: false,
                        untagged: false,
                    },
                ),
                (
                    10,
                    crate::state::VlanMembership {
                        pvid: true,
                        untagged: true,
                    },
                ),
            ]
            .into(),
        ),
    });
    let p = &h.derive().bridges[&3].ports[&4];
    assert_eq!((p.pvid, p.vlans.len()), (None, 0));
    h.0.links.get_mut(&3).expect("br").bridge = Some(crate::state::BridgeAttrs {
        vlan_filtering: true,
        ..Default::default()
    });
    let t = h.derive();
    let p = &t.bridges[&3].ports[&4];
    assert!(t.bridges[&3].vlan_filtering);
    assert_eq!(p.pvid, Some(10));
    assert_eq!(p.vlans, [(1, false), (10, true)].into());
}

#[test]
fn several_bridges_are_kept_apart() {
    let mut h = Host::new();
    h.link(2, "bra", Some("bridge"), &[]);
    h.link(3, "brb", Some("bridge"), &[]);
    h.port(4, "a1", 2);
    h.port(5, "b1", 3);
    let t = h.derive();
    assert!(t.router.is_none());
    assert_eq!(t.bridges.len(), 2);
    assert_eq!(t.chains[&4], vec![FunctionRef::Bridge { bridge: 2 }]);
    assert_eq!(t.chains[&5], vec![FunctionRef::Bridge { bridge: 3 }]);
}

#[test]
fn forwarding_without_priority_update_is_a_router_limitation() {
    let mut h = Host::new();
    h.link(2, "r0", Some("veth"), &["10.1.0.1/24"]);
    h.forwarding(true);
    let t = h.derive();
    assert!(t.router.is_some());
    assert!(t.limitations.is_empty(), "{:?}", t.limitations);
    let mut s = h.0.sysctls.clone();
    s.global
        .insert("net.ipv4.ip_forward_update_priority".into(), 0);
    h.0.apply(NetEvent::Sysctls(s));
    let t = h.derive();
    assert!(
        t.limitations
            .iter()
            .any(|l| l.function == NetworkFunction::Router
                && l.reason.contains("ip_forward_update_priority=0")),
        "{:?}",
        t.limitations
    );
}

#[test]
fn a_promiscuous_bridge_leaves_its_ports_to_the_kernel() {
    let mut h = Host::new();
    h.link(2, "br0", Some("bridge"), &[]);
    h.port(3, "p1", 2);
    h.port(4, "p2", 2);
    assert!(h.derive().limitations.is_empty());
    h.0.links.get_mut(&2).expect("br0").flags |= 0x100;
    let t = h.derive();
    let ports: Vec<Option<u32>> = t
        .limitations
        .iter()
        .filter(|l| l.function == NetworkFunction::Bridge)
        .map(|l| l.ifindex)
        .collect();
    assert_eq!(ports, vec![Some(3), Some(4)]);
    assert!(t.limitations[0].reason.contains("br0 is promiscuous"));
}

#[test]
fn flannel_node_puts_the_filter_first_and_reports_nat() {
    let mut h = Host::new();
    h.link(2, "eth0", Some("veth"), &["192.168.1.10/24"]);
    h.link(3, "flannel.1", Some("vxlan"), &["10.244.0.0/32"]);
    h.link(4, "cni0", Some("bridge"), &["10.244.0.1/24"]);
    h.port(6, "veth1", 4);
    h.forwarding(true);
    h.0.apply(NetEvent::Ruleset(Ruleset {
        base_chains: vec![
            chain("ip", "filter", "FORWARD", "forward", "filter", 2),
            chain("ip", "nat", "POSTROUTING", "postrouting", "nat", 1),
        ],
        generation: 7,
        ..Default::default()
    }));
    let t = h.derive();
    assert_eq!(t.filter.generation, 7);
    assert_eq!(t.chains[&2], vec![FunctionRef::Filter, FunctionRef::Router]);
    assert_eq!(t.chains[&3], vec![FunctionRef::Filter, FunctionRef::Router]);
    assert_eq!(
        t.chains[&6],
        vec![
            FunctionRef::Filter,
            FunctionRef::Bridge { bridge: 4 },
            FunctionRef::Router
        ]
    );
    assert!(
        t.limitations
            .iter()
            .any(|l| l.reason.contains("NAT chain ip nat POSTROUTING"))
    );
}

#[test]
fn ip_chains_reach_bridged_traffic_only_through_br_netfilter() {
    let mut h = Host::new();
    h.link(2, "br0", Some("bridge"), &[]);
    h.port(3, "p1", 2);
    h.0.apply(NetEvent::Ruleset(Ruleset {
        base_chains: vec![chain("ip", "filter", "FORWARD", "forward", "filter", 1)],
        generation: 1,
        ..Default::default()
    }));
    assert_eq!(
        h.derive().chains[&3],
        vec![FunctionRef::Bridge { bridge: 2 }]
    );
    let mut s = h.0.sysctls.clone();
    s.global
        .insert("net.bridge.bridge-nf-call-iptables".into(), 1);
    h.0.apply(NetEvent::Sysctls(s));
    assert_eq!(
        h.derive().chains[&3],
        vec![FunctionRef::Filter, FunctionRef::Bridge { bridge: 2 }]
    );
    // A bridge-family chain always applies to bridged traffic.
    let mut h2 = Host::new();
    h2.link(2, "br0", Some("bridge"), &[]);
    h2.port(3, "p1", 2);
    h2.0.apply(NetEvent::Ruleset(Ruleset {
        base_chains: vec![chain("bridge", "f", "fwd", "forward", "filter", 0)],
        generation: 1,
        ..Default::default()
    }));
    assert_eq!(h2.derive().chains[&3][0], FunctionRef::Filter);
}

#[test]
fn unmodelled_sysctls_and_legacy_tables_are_limitations() {
    let mut h = virtual_router();
    h.sysctl4("r0", "rp_filter", 1);
    h.sysctl4("all", "proxy_arp", 1);
    h.sysctl4("r1", "route_localnet", 1);
    h.0.apply(NetEvent::LegacyTables(vec!["ip filter".into()]));
    let t = h.derive();
    let reasons: Vec<(Option<u32>, &str)> = t
        .limitations
        .iter()
        .map(|l| (l.ifindex, l.reason.as_str()))
        .collect();
    let has = |i: Option<u32>, s: &str| reasons.iter().any(|(x, r)| *x == i && r.contains(s));
    assert!(has(Some(2), "rp_filter=1 on r0"), "{reasons:?}");
    assert!(!has(Some(3), "rp_filter"), "{reasons:?}");
    assert!(has(Some(2), "net.ipv4.conf.all.proxy_arp"), "{reasons:?}");
    assert!(has(Some(3), "proxy_arp=1 on r1"), "{reasons:?}");
    assert!(
        has(Some(3), "net.ipv4.conf.r1.route_localnet"),
        "{reasons:?}"
    );
    assert!(has(None, "iptables-legacy"), "{reasons:?}");
}

#[test]
fn rp_filter_on_all_applies_to_every_interface() {
    let mut h = virtual_router();
    h.sysctl4("all", "rp_filter", 2);
    let t = h.derive();
    assert_eq!(
        t.limitations
            .iter()
            .filter(|l| l.reason.starts_with("rp_filter=2"))
            .count(),
        2
    );
}

#[test]
fn vrf_ports_are_limited_and_foreign_xdp_is_recorded() {
    let mut h = virtual_router();
    h.link(9, "vrf-blue", Some("vrf"), &[]);
    h.0.links.get_mut(&3).expect("r1").master = Some(9);
    h.0.links.get_mut(&2).expect("r0").xdp_prog_id = Some(42);
    let t = h.derive();
    assert!(
        t.limitations
            .iter()
            .any(|l| l.ifindex == Some(3) && l.reason.contains("VRF vrf-blue")),
        "{:?}",
        t.limitations
    );
    assert_eq!(t.interfaces[&2].xdp_prog_id, Some(42));
}

#[test]
fn diff_names_what_changed() {
    let a = virtual_router().derive();
    let mut h = virtual_router();
    h.link(7, "r2", Some("veth"), &["10.7.0.1/24"]);
    h.0.apply(NetEvent::DelLink { ifindex: 3 });
    h.forwarding(true);
    let b = h.derive();
    let d = diff(&a, &b);
    assert_eq!(d.added, [7].into());
    assert_eq!(d.removed, [3].into());
    assert_eq!(d.rechained, [3, 7].into());
    assert!(d.router && !d.bridges && d.changed_bridges.is_empty());
    assert!(diff(&a, &a).is_empty());
    let json = serde_json::to_string(&d).expect("json");
    assert_eq!(
        serde_json::from_str::<TopologyDiff>(&json).expect("parse"),
        d
    );
}
