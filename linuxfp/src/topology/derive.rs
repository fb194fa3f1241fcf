// SPDX-License-Identifier: MIT OR Apache-2.0
//! KernelState → Topology: which network functions are configured, where,
//! and in which order.

use std::collections::{BTreeMap, BTreeSet};

use super::{limits::limitations, model::*};
use crate::state::{KernelState, Link};

/// Derives the topology. Pure.
pub fn derive(state: &KernelState) -> Topology {
    let mut t = Topology::default();
    for link in state.links.values() {
        t.interfaces.insert(link.ifindex, interface(state, link));
    }
    t.filter = Filter {
        base_chains: state.nft.base_chains(),
        legacy_tables: state.legacy_tables.clone(),
        generation: state.nft.generation,
    };
    t.bridges = bridges(state);
    t.router = router(state, &t);
    t.chains = chains(state, &t);
    t.limitations = limitations(state, &t);
    t
}

fn interface(state: &KernelState, l: &Link) -> Interface {
    Interface {
        ifindex: l.ifindex,
        name: l.name.clone(),
        kind: l.kind.clone(),
        up: l.admin_up && l.running,
        mtu: l.mtu,
        mac: l.mac,
        master: l.master,
        link: l.link.filter(|_| l.link_netnsid.is_none()),
        xdp_prog_id: l.xdp_prog_id,
        addresses: state
            .addresses_of(l.ifindex)
            .iter()
            .map(|a| a.cidr())
            .collect(),
    }
}

fn bridges(state: &KernelState) -> BTreeMap<u32, Bridge> {
    let mut out = BTreeMap::new();
    for l in state.links.values() {
        if l.kind.as_deref() != Some("bridge") {
            continue;
        }
        let attrs = l.bridge.clone().unwrap_or_default();
        let ports = state
            .bridge_ports(l.ifindex)
            .map(|p| (p.ifindex, port(state, p, attrs.vlan_filtering)))
            .collect();
        out.insert(
            l.ifindex,
            Bridge {
                ifindex: l.ifindex,
                name: l.name.clone(),
                vlan_filtering: attrs.vlan_filtering,
                stp: attrs.stp_state != 0,
                routed: !state.addresses_of(l.ifindex).is_empty(),
                ports,
            },
        );
    }
    out
}

fn port(state: &KernelState, p: &Link, vlan_filtering: bool) -> BridgePort {
    let a = p.bridge_port.clone().unwrap_or_default();
    let mut out = BridgePort {
        state: a.state,
        learning: a.learning,
        flood: a.unicast_flood,
        hairpin: a.hairpin,
        isolated: a.isolated,
        locked: a.locked,
        pvid: None,
        vlans: BTreeMap::new(),
    };
    if vlan_filtering && let Some(vlans) = state.vlans.get(&p.ifindex) {
        out.pvid = vlans.iter().find(|(_, m)| m.pvid).map(|(v, _)| *v);
        out.vlans = vlans.iter().map(|(v, m)| (*v, m.untagged)).collect();
    }
    out
}

/// Enslaved to a device that takes its frames before IP sees them.
fn enslaved_to_l2(state: &KernelState, l: &Link) -> bool {
    l.master
        .and_then(|m| state.links.get(&m))
        .is_some_and(|m| matches!(m.kind.as_deref(), Some("bridge" | "bond" | "team")))
}

fn router(state: &KernelState, t: &Topology) -> Option<Router> {
    let ipv4 = state
        .links
        .values()
        .any(|l| !l.loopback && state.ipv4_forwarding(l.ifindex));
    let ipv6 = state.ipv6_forwarding_all();
    if !ipv4 && !ipv6 {
        return None;
    }
    let routed: BTreeSet<u32> = state.all_routes().flat_map(|r| r.devices()).collect();
    let interfaces = state
        .links
        .values()
        .filter(|l| !l.loopback && !enslaved_to_l2(state, l))
        .filter(|l| t.interfaces.get(&l.ifindex).is_some_and(|i| i.up))
        .filter(|l| !state.addresses_of(l.ifindex).is_empty() || routed.contains(&l.ifindex))
        .map(|l| {
            (
                l.ifindex,
                RouterInterface {
                    ipv4_forwarding: state.ipv4_forwarding(l.ifindex),
                    ipv6_forwarding: ipv6 && state.ipv6_forwarding(l.ifindex),
                },
            )
        })
        .collect();
    Some(Router {
        ipv4,
        ipv6,
        interfaces,
    })
}

fn chains(state: &KernelState, t: &Topology) -> BTreeMap<u32, Vec<FunctionRef>> {
    let ip_filter = t
        .filter
        .base_chains
        .iter()
        .any(BaseChain::affects_forwarding);
    let bridge_filter = t.filter.base_chains.iter().any(|c| c.family == "bridge");
    // With br_netfilter, bridged IP traffic also traverses the ip/ip6/inet
    // hooks.
    let br_netfilter = state.br_netfilter_ipv4() || state.br_netfilter_ipv6();
    let mut out = BTreeMap::new();
    for &ifindex in t.interfaces.keys() {
        let master = state.links.get(&ifindex).and_then(|l| l.master);
        let mut chain = Vec::new();
        if let Some(bridge) = master.and_then(|m| t.bridges.get(&m)) {
            let routed = bridge.routed && t.router.is_some();
            if bridge_filter || (ip_filter && (br_netfilter || routed)) {
                chain.push(FunctionRef::Filter);
            }
            chain.push(FunctionRef::Bridge {
                bridge: bridge.ifindex,
            });
            if routed {
                chain.push(FunctionRef::Router);
            }
        } else if t
            .router
            .as_ref()
            .is_some_and(|r| r.interfaces.contains_key(&ifindex))
        {
            if ip_filter {
                chain.push(FunctionRef::Filter);
            }
            chain.push(FunctionRef::Router);
        }
        if !chain.is_empty() {
            out.insert(ifindex, chain);
        }
    }
    out
}
