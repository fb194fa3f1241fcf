// SPDX-License-Identifier: MIT OR Apache-2.0
//! The decoder and the fold on rtnetlink dumps recorded from real
//! namespaces (`tests/data/*.bin`, made by `inspector_record.rs`). No root.

use std::net::IpAddr;

use linuxfp::{
    inspector::{NetEvent, parse_messages},
    state::{IFINDEX_ALL, KernelState},
};

/// Folds a recorded dump.
pub fn recorded(name: &str) -> KernelState {
    let path = format!("{}/tests/data/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).expect("recorded dump");
    let mut s = KernelState::default();
    for e in parse_messages(&bytes) {
        s.apply(e);
    }
    s
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("IP address")
}

fn ifindex(s: &KernelState, name: &str) -> u32 {
    s.link_by_name(name)
        .unwrap_or_else(|| panic!("no link {name}"))
        .ifindex
}

#[test]
fn router_dump_has_links_addresses_routes_and_forwarding() {
    let s = recorded("router");
    let r0 = ifindex(&s, "r0");
    let r1 = ifindex(&s, "r1");
    let l = &s.links[&r0];
    assert_eq!(l.kind.as_deref(), Some("veth"));
    assert!(l.admin_up && l.running && l.mac.is_some() && l.mtu == 1500);
    assert!(
        l.link_netnsid.is_some(),
        "the veth peer is in another namespace"
    );
    let addrs: Vec<String> = s.addresses_of(r0).iter().map(|a| a.cidr()).collect();
    assert!(addrs.contains(&"10.1.0.1/24".to_string()), "{addrs:?}");
    assert!(addrs.contains(&"fd01::1/64".to_string()), "{addrs:?}");
    // Connected routes in main, local routes in local, both families.
    let main: Vec<_> = s.table(254).collect();
    assert!(
        main.iter()
            .any(|r| r.dst == ip("10.2.0.0") && r.dst_len == 24 && r.oif == Some(r1))
    );
    assert!(s.table(255).any(|r| r.dst == ip("10.1.0.1")));
    assert!(s.route_count(6) > 0);
    // Default rules: local, main, default for both families.
    assert_eq!(s.rules.iter().filter(|r| r.family == 4).count(), 3);
    // Forwarding from netconf: ip_forward=1 and ipv6 all.forwarding=1.
    assert!(s.ipv4_forwarding(r0) && s.ipv4_forwarding(r1));
    assert!(s.ipv6_forwarding_all());
    assert!(s.netconf(4, IFINDEX_ALL).is_some());
}

#[test]
fn bridge_dump_has_ports_attributes_and_fdb() {
    let s = recorded("svi_bridge");
    let br = ifindex(&s, "br0");
    let p1 = ifindex(&s, "p1");
    let p2 = ifindex(&s, "p2");
    assert_eq!(s.links[&br].kind.as_deref(), Some("bridge"));
    assert!(s.links[&br].bridge.is_some());
    let ports: Vec<u32> = s.bridge_ports(br).map(|l| l.ifindex).collect();
    assert_eq!(ports, vec![p1, p2]);
    let a1 = s.links[&p1].bridge_port.clone().expect("p1 port attrs");
    let a2 = s.links[&p2].bridge_port.clone().expect("p2 port attrs");
    assert!(a1.learning && !a1.hairpin);
    assert!(!a2.learning && a2.hairpin);
    assert_eq!(s.links[&p1].port_kind.as_deref(), Some("bridge"));
    // The static entry, and the ports' own addresses.
    let mac = [2, 0, 0, 0, 0, 0xaa];
    let e = s
        .fdb
        .values()
        .find(|f| f.mac == mac)
        .expect("static FDB entry");
    assert_eq!((e.ifindex, e.master), (p1, Some(br)));
    assert!(s.fdb_of_bridge(br).count() >= 3);
}

#[test]
fn flannel_dump_has_vxlan_routes_neighbours_and_fdb() {
    let s = recorded("flannel");
    let fl = ifindex(&s, "flannel.1");
    let eth0 = ifindex(&s, "eth0");
    let vx = s.links[&fl].vxlan.clone().expect("vxlan attrs");
    assert_eq!(vx.vni, Some(1));
    assert_eq!(vx.port, Some(8472));
    assert_eq!(vx.link, Some(eth0));
    assert_eq!(vx.local, Some(ip("192.168.50.10")));
    let onlink = s
        .table(254)
        .find(|r| r.dst == ip("10.244.1.0"))
        .expect("pod subnet route");
    assert_eq!(onlink.oif, Some(fl));
    assert_eq!(onlink.gateway, Some(ip("10.244.1.0")));
    assert!(
        s.neighbours
            .values()
            .any(|n| n.ifindex == fl && n.lladdr.as_deref() == Some(&[2, 0, 0, 0, 1, 0][..]))
    );
    let fdb: Vec<_> = s.fdb.values().filter(|f| f.ifindex == fl).collect();
    assert!(
        fdb.iter().any(|f| f.dst == Some(ip("192.168.50.11"))),
        "{fdb:?}"
    );
    let cni0 = ifindex(&s, "cni0");
    assert_eq!(s.bridge_ports(cni0).count(), 2);
}

#[test]
fn several_bridges_dump() {
    let s = recorded("bridges");
    for b in 0..3 {
        let br = ifindex(&s, &format!("br{b}"));
        assert_eq!(s.bridge_ports(br).count(), 2, "br{b}");
        let stp = s.links[&br].bridge.as_ref().expect("attrs").stp_state;
        assert_eq!(stp != 0, b == 2, "br{b} stp_state {stp}");
    }
}

#[test]
fn every_prefix_of_a_recorded_dump_parses_without_panicking() {
    let path = format!("{}/tests/data/router.bin", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(path).expect("recorded dump");
    let full = parse_messages(&bytes).len();
    assert!(full > 20, "{full} events");
    // Truncated buffers and flipped bytes are logged and skipped.
    for cut in (0..bytes.len()).step_by(97) {
        let _ = parse_messages(&bytes[..cut]);
    }
    let mut damaged = bytes.clone();
    for i in (20..damaged.len()).step_by(53) {
        damaged[i] ^= 0x5a;
    }
    let _: Vec<NetEvent> = parse_messages(&damaged);
}

#[test]
fn folding_events_twice_is_idempotent() {
    let path = format!("{}/tests/data/flannel.bin", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(path).expect("recorded dump");
    let once = recorded("flannel");
    let mut twice = once.clone();
    for e in parse_messages(&bytes) {
        twice.apply(e);
    }
    assert_eq!(once, twice);
}
