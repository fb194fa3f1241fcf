// SPDX-License-Identifier: MIT OR Apache-2.0
//! KernelState → Topology on rtnetlink dumps recorded from real namespaces
//! (`tests/data/*.bin`). No root.

use linuxfp::{
    inspector::parse_messages,
    state::KernelState,
    topology::{FunctionRef, Topology, derive, diff},
};

fn recorded(name: &str) -> KernelState {
    let path = format!("{}/tests/data/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).expect("recorded dump");
    let mut s = KernelState::default();
    for e in parse_messages(&bytes) {
        s.apply(e);
    }
    s
}

fn ix(s: &KernelState, name: &str) -> u32 {
    s.link_by_name(name)
        .unwrap_or_else(|| panic!("no link {name}"))
        .ifindex
}

fn router_ifaces(t: &Topology) -> Vec<u32> {
    t.router
        .as_ref()
        .expect("router")
        .interfaces
        .keys()
        .copied()
        .collect()
}

#[test]
fn virtual_router() {
    let s = recorded("router");
    let t = derive(&s);
    let r = t.router.as_ref().expect("router");
    assert!(r.ipv4 && r.ipv6);
    assert_eq!(router_ifaces(&t), vec![ix(&s, "r0"), ix(&s, "r1")]);
    for i in [ix(&s, "r0"), ix(&s, "r1")] {
        assert_eq!(t.chains[&i], vec![FunctionRef::Router]);
    }
    assert_eq!(t.chains.len(), 2, "{:?}", t.chains);
    assert!(t.bridges.is_empty());
    assert!(t.limitations.is_empty(), "{:?}", t.limitations);
    let json = serde_json::to_string_pretty(&t).expect("json");
    assert_eq!(serde_json::from_str::<Topology>(&json).expect("parse"), t);
}

#[test]
fn bridge_with_svi() {
    let s = recorded("svi_bridge");
    let t = derive(&s);
    let (br, p1, p2) = (ix(&s, "br0"), ix(&s, "p1"), ix(&s, "p2"));
    let b = &t.bridges[&br];
    assert!(b.routed && !b.vlan_filtering && !b.stp);
    assert_eq!(b.ports.keys().copied().collect::<Vec<_>>(), vec![p1, p2]);
    assert!(b.ports[&p1].learning && b.ports[&p1].flood && !b.ports[&p1].hairpin);
    assert!(!b.ports[&p2].learning && b.ports[&p2].hairpin);
    assert_eq!(b.ports[&p1].state, 3, "forwarding");
    assert_eq!(router_ifaces(&t), vec![br], "only the SVI routes");
    for p in [p1, p2] {
        assert_eq!(
            t.chains[&p],
            vec![FunctionRef::Bridge { bridge: br }, FunctionRef::Router]
        );
    }
    assert_eq!(t.chains[&br], vec![FunctionRef::Router]);
}

#[test]
fn flannel_node() {
    let s = recorded("flannel");
    let t = derive(&s);
    let (eth0, fl, cni0) = (ix(&s, "eth0"), ix(&s, "flannel.1"), ix(&s, "cni0"));
    let mut expect = vec![eth0, fl, cni0];
    expect.sort();
    assert_eq!(router_ifaces(&t), expect);
    assert_eq!(t.interfaces[&fl].kind.as_deref(), Some("vxlan"));
    assert!(t.bridges[&cni0].routed);
    for pod in ["veth2", "veth3"] {
        assert_eq!(
            t.chains[&ix(&s, pod)],
            vec![FunctionRef::Bridge { bridge: cni0 }, FunctionRef::Router],
            "{pod}"
        );
    }
    assert_eq!(t.chains[&fl], vec![FunctionRef::Router]);
}

#[test]
fn several_bridges() {
    let s = recorded("bridges");
    let t = derive(&s);
    assert!(t.router.is_none());
    assert_eq!(t.bridges.len(), 3);
    for b in 0..3 {
        let br = ix(&s, &format!("br{b}"));
        assert_eq!(t.bridges[&br].stp, b == 2);
        for p in 0..2 {
            let port = ix(&s, &format!("d{b}{p}"));
            assert_eq!(t.chains[&port], vec![FunctionRef::Bridge { bridge: br }]);
            assert!(!t.chains.contains_key(&ix(&s, &format!("e{b}{p}"))));
        }
    }
}

#[test]
fn diff_between_recorded_topologies() {
    let a = derive(&recorded("router"));
    let b = derive(&recorded("svi_bridge"));
    let d = diff(&a, &b);
    assert!(d.router && d.bridges);
    assert_eq!(d.changed_bridges.len(), 1);
    assert!(diff(&b, &b).is_empty());
}
