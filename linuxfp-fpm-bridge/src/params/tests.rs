// SPDX-License-Identifier: MIT OR Apache-2.0
//! The parameterizer on hand-built topologies.

use linuxfp::{
    compat::{Decisions, InterfaceDecision},
    state::{BridgeAttrs, Link},
    topology::{BridgePort, Interface},
};

use super::*;

const BR: u32 = 2;

/// br0 (2) with ports p1 (3), p2 (4), p3 (5, down); VLAN filtering on.
fn host() -> (Topology, KernelState) {
    let mut t = Topology::default();
    let mut s = KernelState::default();
    for (i, name, up) in [
        (2, "br0", true),
        (3, "p1", true),
        (4, "p2", true),
        (5, "p3", false),
    ] {
        t.interfaces.insert(
            i,
            Interface {
                ifindex: i,
                name: name.into(),
                kind: Some(if i == BR { "bridge" } else { "veth" }.into()),
                up,
                mtu: 1500,
                mac: Some([2, 0, 0, 0, 0, i as u8]),
                ..Default::default()
            },
        );
    }
    s.links.insert(
        BR,
        Link {
            ifindex: BR,
            name: "br0".into(),
            kind: Some("bridge".into()),
            bridge: Some(BridgeAttrs {
                vlan_filtering: true,
                vlan_protocol: 0x8100,
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    let port = |pvid: Option<u16>, vlans: &[(u16, bool)]| BridgePort {
        state: 3,
        learning: true,
        flood: true,
        pvid,
        vlans: vlans.iter().copied().collect(),
        ..Default::default()
    };
    t.bridges.insert(
        BR,
        Bridge {
            ifindex: BR,
            name: "br0".into(),
            vlan_filtering: true,
            ports: [
                (3, port(Some(10), &[(10, true)])),
                (4, port(None, &[(10, false), (20, false)])),
                (
                    5,
                    BridgePort {
                        isolated: true,
                        hairpin: true,
                        ..port(Some(10), &[(10, true)])
                    },
                ),
            ]
            .into(),
            ..Default::default()
        },
    );
    (t, s)
}

fn fdb(ifindex: u32, master: Option<u32>, mac: u8, vlan: Option<u16>, state: u16) -> FdbEntry {
    FdbEntry {
        ifindex,
        master,
        mac: [2, 0, 0, 0, 1, mac],
        vlan,
        state,
        flags: 0,
        dst: None,
        vni: None,
        unknown: vec![],
    }
}

fn decide(hooks: &[(u32, Hook)]) -> Decisions {
    Decisions {
        interfaces: hooks
            .iter()
            .map(|(i, h)| {
                (
                    *i,
                    InterfaceDecision {
                        name: format!("if{i}"),
                        hook: Some(*h),
                        stages: vec!["bridge".into()],
                        reasons: vec![],
                    },
                )
            })
            .collect(),
    }
}

fn config(t: &Topology, s: &KernelState, hooks: &[(u32, Hook)]) -> FpmConfig {
    let d = decide(hooks);
    bridge_config(
        "bridge",
        &ParamInput {
            topology: t,
            decisions: &d,
            state: Some(s),
        },
    )
}

fn port_conf(cfg: &FpmConfig, ifindex: u32) -> Option<PortConf> {
    let v = cfg.maps[PORTS_MAP].get(&HexBytes::new(&ifindex.to_ne_bytes()))?;
    let u32_at = |o: usize| u32::from_ne_bytes([v[o], v[o + 1], v[o + 2], v[o + 3]]);
    Some(PortConf {
        bridge: u32_at(0),
        flags: u32_at(4),
        mtu: u32_at(8),
        pvid: u16::from_ne_bytes([v[12], v[13]]),
        vlan_proto: u16::from_ne_bytes([v[14], v[15]]),
    })
}

#[test]
fn ports_carry_state_flags_and_vlans() {
    let (t, s) = host();
    let cfg = config(&t, &s, &[(3, Hook::Tc), (4, Hook::Tc)]);
    let p1 = port_conf(&cfg, 3).expect("p1");
    assert_eq!(
        p1,
        PortConf {
            bridge: BR,
            flags: PORT_INGRESS | PORT_FORWARDING | PORT_LEARNING | PORT_VLAN_FILTERING,
            mtu: 1500,
            pvid: 10,
            vlan_proto: 0x8100,
        }
    );
    // p3 is not attached and down: known as a port (for its isolation) but
    // neither ingress nor forwarding.
    let p3 = port_conf(&cfg, 5).expect("p3");
    assert_eq!(p3.flags & (PORT_INGRESS | PORT_FORWARDING), 0);
    assert_ne!(p3.flags & PORT_ISOLATED, 0);
    assert_ne!(p3.flags & PORT_HAIRPIN, 0);
    let vlan = |port: u32, vlan: u16| {
        cfg.maps[VLANS_MAP]
            .get(&HexBytes::of(&VlanKey { port, vlan, pad: 0 }))
            .map(|v| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
    };
    assert_eq!(vlan(3, 10), Some(VLAN_MEMBER | VLAN_UNTAGGED));
    assert_eq!(vlan(4, 20), Some(VLAN_MEMBER));
    assert_eq!(vlan(3, 20), None);
    assert!(cfg.maps[XDP_PORTS_MAP].is_empty());
}

#[test]
fn fdb_mirror_marks_local_entries_and_skips_others() {
    let (t, mut s) = host();
    for e in [
        fdb(3, Some(BR), 1, Some(10), 0x02), // learnt on p1
        fdb(3, Some(BR), 2, Some(10), 0x80), // p1's own: local
        fdb(BR, None, 3, Some(10), 0x80),    // bridge's own
        fdb(4, Some(BR), 4, Some(20), 0x40), // static on p2
        fdb(9, Some(7), 5, None, 0x02),      // another bridge's
    ] {
        s.fdb.insert((e.ifindex, e.mac, e.vlan, e.dst), e);
    }
    let mut mcast = fdb(3, Some(BR), 6, None, 0x02);
    mcast.mac[0] = 0x33;
    s.fdb.insert((3, mcast.mac, None, None), mcast);
    let cfg = config(&t, &s, &[(3, Hook::Tc)]);
    let get = |mac: u8, vlan: u16| {
        let key = FdbKey {
            bridge: BR,
            vlan,
            mac: [2, 0, 0, 0, 1, mac],
        };
        cfg.maps[FDB_MAP].get(&HexBytes::of(&key)).cloned()
    };
    assert_eq!(
        get(1, 10),
        Some(HexBytes::of(&FdbValue {
            port: 3,
            flags: 0,
            moved_ns: 0
        }))
    );
    assert_eq!(
        get(2, 10),
        Some(HexBytes::of(&FdbValue {
            port: 3,
            flags: FDB_LOCAL,
            moved_ns: 0,
        }))
    );
    assert_eq!(
        get(3, 10),
        Some(HexBytes::of(&FdbValue {
            port: BR,
            flags: FDB_LOCAL,
            moved_ns: 0,
        }))
    );
    assert_eq!(
        get(4, 20),
        Some(HexBytes::of(&FdbValue {
            port: 4,
            flags: 0,
            moved_ns: 0
        }))
    );
    assert_eq!(
        cfg.maps[FDB_MAP].len(),
        4,
        "other bridge and multicast left out"
    );
}

#[test]
fn xdp_ports_fill_the_devmap_and_unattached_bridges_are_absent() {
    let (t, s) = host();
    let cfg = config(&t, &s, &[(3, Hook::Xdp)]);
    assert_ne!(port_conf(&cfg, 3).expect("p1").flags & PORT_XDP_EGRESS, 0);
    assert_eq!(port_conf(&cfg, 4).expect("p2").flags & PORT_XDP_EGRESS, 0);
    assert_eq!(cfg.maps[XDP_PORTS_MAP].len(), 1);
    // No accelerated port: nothing of this bridge is written.
    let cfg = config(&t, &s, &[]);
    assert!(cfg.maps[PORTS_MAP].is_empty());
    assert!(cfg.maps[FDB_MAP].is_empty());
}

#[test]
fn without_vlan_filtering_there_is_no_pvid_and_no_vlan_table() {
    let (mut t, s) = host();
    t.bridges.get_mut(&BR).expect("br0").vlan_filtering = false;
    let cfg = config(&t, &s, &[(3, Hook::Tc)]);
    let p1 = port_conf(&cfg, 3).expect("p1");
    assert_eq!((p1.pvid, p1.flags & PORT_VLAN_FILTERING), (0, 0));
    assert!(cfg.maps[VLANS_MAP].is_empty());
}

#[test]
fn br_netfilter_is_marked_per_family() {
    let (t, mut s) = host();
    let flags = |s: &KernelState| {
        let cfg = config(&t, s, &[(3, Hook::Tc)]);
        port_conf(&cfg, 3).expect("p1").flags & (PORT_BR_NF_IPV4 | PORT_BR_NF_IPV6)
    };
    assert_eq!(flags(&s), 0, "br_netfilter not loaded");
    s.sysctls
        .global
        .insert("net.bridge.bridge-nf-call-iptables".into(), 1);
    s.sysctls
        .global
        .insert("net.bridge.bridge-nf-call-ip6tables".into(), 0);
    assert_eq!(flags(&s), PORT_BR_NF_IPV4);
    s.sysctls
        .global
        .insert("net.bridge.bridge-nf-call-ip6tables".into(), 1);
    assert_eq!(flags(&s), PORT_BR_NF_IPV4 | PORT_BR_NF_IPV6);

    // Both sysctls off: the bridge's own nf_call_ip(6)tables options still
    // send its traffic through the hooks (`br_nf_pre_routing`).
    for k in ["iptables", "ip6tables"] {
        s.sysctls
            .global
            .insert(format!("net.bridge.bridge-nf-call-{k}"), 0);
    }
    assert_eq!(flags(&s), 0);
    let set = |s: &mut KernelState, v4: bool, v6: bool| {
        let b = s.links.get_mut(&BR).and_then(|l| l.bridge.as_mut());
        let b = b.expect("the bridge's attributes");
        (b.nf_call_iptables, b.nf_call_ip6tables) = (v4, v6);
    };
    set(&mut s, false, true);
    assert_eq!(flags(&s), PORT_BR_NF_IPV6);
    set(&mut s, true, true);
    assert_eq!(flags(&s), PORT_BR_NF_IPV4 | PORT_BR_NF_IPV6);
    // Without br_netfilter loaded (no sysctls) the options do nothing.
    s.sysctls.global.clear();
    assert_eq!(flags(&s), 0);
}

#[test]
fn an_fdb_larger_than_the_map_is_capped_and_the_rest_punts() {
    let (t, mut s) = host();
    let total = MAX_FDB as usize + 1000;
    for i in 0..total as u32 {
        let mut e = fdb(3, Some(BR), 0, Some(10), 0x02);
        e.mac = [2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 7];
        s.fdb.insert((e.ifindex, e.mac, e.vlan, e.dst), e);
    }
    let cfg = config(&t, &s, &[(3, Hook::Tc)]);
    let mirror = &cfg.maps[FDB_MAP];
    // At most half the map: the deployer writes the new mirror before it
    // removes the old one, so both always fit.
    assert_eq!(mirror.len(), FDB_MIRROR_CAP);
    assert!(2 * mirror.len() <= MAX_FDB as usize);
    // Every mirrored entry is the kernel's (same port); the rest are absent,
    // which the fast path treats as unknown: punted to the kernel.
    for v in mirror.values() {
        assert_eq!(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]), 3);
    }
    // The same FDB always gives the same mirror (no churn at the boundary).
    let again = config(&t, &s, &[(3, Hook::Tc)]);
    assert_eq!(&again.maps[FDB_MAP], mirror);
}
