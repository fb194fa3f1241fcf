// SPDX-License-Identifier: MIT OR Apache-2.0
use super::*;
use crate::state::{KernelState, Link};

fn link(ifindex: u32, name: &str, kind: Option<&str>, addrs: &[&str]) -> Link {
    Link {
        ifindex,
        name: name.into(),
        kind: kind.map(String::from),
        admin_up: true,
        running: true,
        mtu: 1500,
        mac: Some([2, 0, 0, 0, 0, ifindex as u8]),
        addresses: addrs.iter().map(|s| s.to_string()).collect(),
        ipv4_forwarding: true,
        ..Default::default()
    }
}

fn state(links: Vec<Link>) -> KernelState {
    let mut s = KernelState {
        ipv6_forwarding: true,
        ..Default::default()
    };
    let mut lo = link(1, "lo", None, &["127.0.0.1/8"]);
    lo.loopback = true;
    s.links.insert(1, lo);
    for l in links {
        s.links.insert(l.ifindex, l);
    }
    s
}

/// The seed paper's virtual router.
fn virtual_router() -> KernelState {
    state(vec![
        link(2, "r0", Some("veth"), &["10.1.0.1/24", "fd01::1/64"]),
        link(3, "r1", Some("veth"), &["10.2.0.1/24", "fd02::1/64"]),
    ])
}

#[test]
fn virtual_router_has_a_router_on_both_interfaces() {
    let t = derive(&virtual_router());
    let r = t.router.as_ref().expect("router");
    assert!(r.ipv4 && r.ipv6);
    assert_eq!(r.interfaces.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(t.chains[&2], vec![FunctionRef::Router]);
    assert!(!t.chains.contains_key(&1), "loopback is not a router port");
    assert!(t.limitations.is_empty());
    // Serialisable, and back.
    let json = serde_json::to_string(&t).expect("json");
    assert_eq!(serde_json::from_str::<Topology>(&json).expect("parse"), t);
}

#[test]
fn forwarding_off_means_no_router() {
    let mut s = virtual_router();
    s.ipv6_forwarding = false;
    for l in s.links.values_mut() {
        l.ipv4_forwarding = false;
    }
    let t = derive(&s);
    assert!(t.router.is_none());
    assert!(t.chains.is_empty());
}

#[test]
fn bridge_with_svi_continues_to_the_router() {
    let mut p1 = link(4, "p1", Some("veth"), &[]);
    p1.master = Some(3);
    let mut p2 = link(5, "p2", Some("veth"), &[]);
    p2.master = Some(3);
    let s = state(vec![
        link(2, "up0", Some("veth"), &["10.9.0.1/24"]),
        link(3, "br0", Some("bridge"), &["10.3.0.1/24"]),
        p1,
        p2,
    ]);
    let t = derive(&s);
    let b = &t.bridges[&3];
    assert!(b.routed);
    assert_eq!(b.ports.keys().copied().collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(
        t.chains[&4],
        vec![FunctionRef::Bridge { bridge: 3 }, FunctionRef::Router]
    );
    // The bridge device is itself a router interface (the SVI).
    assert!(
        t.router
            .as_ref()
            .expect("router")
            .interfaces
            .contains_key(&3)
    );
    assert!(
        !t.router
            .as_ref()
            .expect("router")
            .interfaces
            .contains_key(&4)
    );
}

#[test]
fn several_bridges_are_kept_apart() {
    let mut a = link(4, "a1", Some("veth"), &[]);
    a.master = Some(2);
    let mut b = link(5, "b1", Some("veth"), &[]);
    b.master = Some(3);
    let mut s = state(vec![
        link(2, "bra", Some("bridge"), &[]),
        link(3, "brb", Some("bridge"), &[]),
        a,
        b,
    ]);
    for l in s.links.values_mut() {
        l.ipv4_forwarding = false;
    }
    s.ipv6_forwarding = false;
    let t = derive(&s);
    assert_eq!(t.bridges.len(), 2);
    assert_eq!(t.chains[&4], vec![FunctionRef::Bridge { bridge: 2 }]);
    assert_eq!(t.chains[&5], vec![FunctionRef::Bridge { bridge: 3 }]);
}

#[test]
fn flannel_node_puts_the_filter_first_and_reports_nat() {
    let mut pod = link(6, "veth1", Some("veth"), &[]);
    pod.master = Some(4);
    let mut s = state(vec![
        link(2, "eth0", Some("veth"), &["192.168.1.10/24"]),
        link(3, "flannel.1", Some("vxlan"), &["10.244.0.0/32"]),
        link(4, "cni0", Some("bridge"), &["10.244.0.1/24"]),
        pod,
    ]);
    s.nft_chains = vec![
        BaseChain {
            family: "ip".into(),
            table: "filter".into(),
            chain: "FORWARD".into(),
            hook: "forward".into(),
            priority: 0,
            chain_type: "filter".into(),
            policy: "accept".into(),
            rules: 2,
        },
        BaseChain {
            family: "ip".into(),
            table: "nat".into(),
            chain: "POSTROUTING".into(),
            hook: "postrouting".into(),
            priority: 100,
            chain_type: "nat".into(),
            policy: "accept".into(),
            rules: 1,
        },
    ];
    let t = derive(&s);
    assert_eq!(t.chains[&2], vec![FunctionRef::Filter, FunctionRef::Router]);
    assert_eq!(
        t.chains[&6],
        vec![
            FunctionRef::Filter,
            FunctionRef::Bridge { bridge: 4 },
            FunctionRef::Router
        ]
    );
    assert!(t.limitations.iter().any(|l| l.reason.contains("NAT")));
}

#[test]
fn unmodelled_sysctls_and_legacy_tables_are_limitations() {
    let mut s = virtual_router();
    if let Some(l) = s.links.get_mut(&2) {
        l.sysctls.insert("ipv4.rp_filter".into(), 1);
    }
    s.sysctls.insert("net.ipv4.conf.all.proxy_arp".into(), 1);
    s.legacy_tables = vec!["ip filter".into()];
    let t = derive(&s);
    let reasons: Vec<&str> = t.limitations.iter().map(|l| l.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("rp_filter=1 on r0")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("proxy_arp=1 on r1")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("iptables-legacy")),
        "{reasons:?}"
    );
}

#[test]
fn diff_names_what_changed() {
    let a = derive(&virtual_router());
    let mut s = virtual_router();
    s.links
        .insert(7, link(7, "r2", Some("veth"), &["10.7.0.1/24"]));
    s.links.remove(&3);
    let b = derive(&s);
    let d = diff(&a, &b);
    assert_eq!(d.added, [7].into());
    assert_eq!(d.removed, [3].into());
    assert_eq!(d.rechained, [3, 7].into());
    assert!(d.router);
    assert!(diff(&a, &a).is_empty());
}
