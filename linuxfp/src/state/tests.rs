// SPDX-License-Identifier: MIT OR Apache-2.0
use std::net::IpAddr;

use super::*;

fn route(table: u32, dst: &str, len: u8, oif: u32) -> Route {
    Route {
        table,
        dst: dst.parse::<IpAddr>().expect("ip"),
        dst_len: len,
        src: None,
        src_len: 0,
        tos: 0,
        priority: 0,
        protocol: 4,
        scope: 0,
        kind: route_kind::UNICAST,
        flags: 0,
        oif: Some(oif),
        iif: None,
        gateway: None,
        prefsrc: None,
        nexthops: vec![],
        nh_id: None,
        mtu: None,
        unknown: vec![],
    }
}

fn link(ifindex: u32, name: &str) -> Link {
    Link {
        ifindex,
        name: name.into(),
        ..Default::default()
    }
}

#[test]
fn routes_are_replaced_by_key_and_deleted() {
    let mut s = KernelState::default();
    s.apply(NetEvent::NewRoute(route(254, "10.0.0.0", 8, 2)));
    s.apply(NetEvent::NewRoute(route(254, "10.0.0.0", 8, 3)));
    s.apply(NetEvent::NewRoute(route(100, "10.0.0.0", 8, 3)));
    s.apply(NetEvent::NewRoute(route(254, "fd00::", 8, 3)));
    assert_eq!(s.route_count(4), 2);
    assert_eq!(s.route_count(6), 1);
    assert_eq!(s.table(254).next().and_then(|r| r.oif), Some(3));
    s.apply(NetEvent::DelRoute(route(100, "10.0.0.0", 8, 3)));
    assert!(!s.routes.contains_key(&100), "empty tables go");
}

#[test]
fn deleting_a_link_removes_what_hangs_off_it() {
    let mut s = KernelState::default();
    s.apply(NetEvent::NewLink(link(2, "a")));
    s.apply(NetEvent::NewLink(link(3, "b")));
    s.apply(NetEvent::NewRoute(route(254, "10.0.0.0", 8, 2)));
    s.apply(NetEvent::NewRoute(route(254, "10.1.0.0", 16, 3)));
    s.apply(NetEvent::NewNetconf(Netconf {
        family: 4,
        ifindex: 2,
        forwarding: Some(1),
        ..Default::default()
    }));
    assert!(s.ipv4_forwarding(2));
    s.apply(NetEvent::DelLink { ifindex: 2 });
    assert!(s.link_by_name("a").is_none());
    assert!(s.link_by_name("b").is_some());
    assert_eq!(s.route_count(4), 1);
    assert!(s.netconf(4, 2).is_none());
}

#[test]
fn renames_keep_the_name_index_right() {
    let mut s = KernelState::default();
    s.apply(NetEvent::NewLink(link(2, "old")));
    s.apply(NetEvent::NewLink(link(2, "new")));
    assert!(s.link_by_name("old").is_none());
    assert_eq!(s.link_by_name("new").map(|l| l.ifindex), Some(2));
}

#[test]
fn partial_netconf_notifications_merge() {
    let mut s = KernelState::default();
    s.apply(NetEvent::NewNetconf(Netconf {
        family: 4,
        ifindex: IFINDEX_ALL,
        forwarding: Some(0),
        rp_filter: Some(2),
        ..Default::default()
    }));
    s.apply(NetEvent::NewNetconf(Netconf {
        family: 4,
        ifindex: IFINDEX_ALL,
        forwarding: Some(1),
        ..Default::default()
    }));
    let n = s.netconf(4, IFINDEX_ALL).expect("all");
    assert_eq!((n.forwarding, n.rp_filter), (Some(1), Some(2)));
}

#[test]
fn forwarding_falls_back_to_sysctls_without_netconf() {
    let mut s = KernelState::default();
    s.apply(NetEvent::NewLink(link(2, "a")));
    let mut sys = Sysctls::default();
    sys.ipv4_conf
        .entry("a".into())
        .or_default()
        .insert("forwarding".into(), 1);
    sys.ipv6_conf
        .entry("all".into())
        .or_default()
        .insert("forwarding".into(), 1);
    s.apply(NetEvent::Sysctls(sys));
    assert!(s.ipv4_forwarding(2));
    assert!(s.ipv6_forwarding_all());
}

#[test]
fn state_round_trips_through_json() {
    let mut s = KernelState::default();
    s.apply(NetEvent::NewLink(link(2, "a")));
    s.apply(NetEvent::NewRoute(route(254, "10.0.0.0", 8, 2)));
    s.apply(NetEvent::NewFdb(FdbEntry {
        ifindex: 2,
        master: Some(5),
        mac: [2, 0, 0, 0, 0, 1],
        vlan: Some(10),
        state: 0x80,
        flags: 2,
        dst: None,
        vni: None,
        unknown: vec![],
    }));
    let json = serde_json::to_string(&s).expect("json");
    assert_eq!(
        serde_json::from_str::<KernelState>(&json).expect("parse"),
        s
    );
}

#[test]
fn a_moved_fdb_entry_leaves_its_old_port() {
    let mut s = KernelState::default();
    for (i, name) in [(5, "br0"), (2, "p1"), (3, "p2")] {
        let mut l = link(i, name);
        if i != 5 {
            l.master = Some(5);
        }
        s.apply(NetEvent::NewLink(l));
    }
    let at = |ifindex: u32, vlan: Option<u16>| FdbEntry {
        ifindex,
        master: Some(5),
        mac: [2, 0, 0, 0, 0, 1],
        vlan,
        state: 2,
        flags: 0,
        dst: None,
        vni: None,
        unknown: vec![],
    };
    s.apply(NetEvent::NewFdb(at(3, None)));
    s.apply(NetEvent::NewFdb(at(3, Some(10))));
    // The kernel moves the MAC (VLAN 0) to p1 and notifies p1 only.
    s.apply(NetEvent::NewFdb(at(2, None)));
    let ports: Vec<(u32, Option<u16>)> = s.fdb_of_bridge(5).map(|e| (e.ifindex, e.vlan)).collect();
    assert_eq!(
        ports,
        [(2, None), (3, Some(10))],
        "one entry per MAC and VLAN"
    );
}
