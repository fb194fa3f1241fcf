// SPDX-License-Identifier: MIT OR Apache-2.0
//! KernelState → Topology: which network functions are configured, where,
//! in which order, and what no fast path models.

use std::collections::BTreeMap;

use super::model::*;
use crate::state::{KernelState, Link};

/// Derives the topology. Pure.
pub fn derive(state: &KernelState) -> Topology {
    let mut t = Topology::default();
    for link in state.links.values() {
        t.interfaces.insert(link.ifindex, interface(link));
    }
    t.filter = Filter {
        base_chains: state.nft_chains.clone(),
        legacy_tables: state.legacy_tables.clone(),
        generation: state.nft_generation,
    };
    t.bridges = bridges(state);
    t.router = router(state);
    chains(state, &mut t);
    limitations(state, &mut t);
    t
}

fn interface(l: &Link) -> Interface {
    Interface {
        ifindex: l.ifindex,
        name: l.name.clone(),
        kind: l.kind.clone(),
        up: l.admin_up && l.running,
        mtu: l.mtu,
        mac: l.mac,
        master: l.master,
        link: l.link,
        xdp_prog_id: l.xdp_prog_id,
        addresses: l.addresses.clone(),
    }
}

fn bridges(state: &KernelState) -> BTreeMap<u32, Bridge> {
    let mut out = BTreeMap::new();
    for l in state.links.values() {
        if l.kind.as_deref() != Some("bridge") {
            continue;
        }
        let ports = state
            .links
            .values()
            .filter(|p| p.master == Some(l.ifindex))
            .map(|p| {
                (
                    p.ifindex,
                    BridgePort {
                        state: 3,
                        learning: true,
                        flood: true,
                        ..Default::default()
                    },
                )
            })
            .collect();
        out.insert(
            l.ifindex,
            Bridge {
                ifindex: l.ifindex,
                name: l.name.clone(),
                routed: !l.addresses.is_empty(),
                ports,
                ..Default::default()
            },
        );
    }
    out
}

fn enslaved_to_l2(state: &KernelState, l: &Link) -> bool {
    l.master
        .and_then(|m| state.links.get(&m))
        .is_some_and(|m| matches!(m.kind.as_deref(), Some("bridge" | "bond" | "team")))
}

fn router(state: &KernelState) -> Option<Router> {
    let ipv4 = state.links.values().any(|l| l.ipv4_forwarding);
    let ipv6 = state.ipv6_forwarding;
    if !ipv4 && !ipv6 {
        return None;
    }
    let routed_via = |ifindex: u32| state.route_devices.values().any(|v| v.contains(&ifindex));
    let interfaces = state
        .links
        .values()
        .filter(|l| !l.loopback && !enslaved_to_l2(state, l))
        .filter(|l| !l.addresses.is_empty() || routed_via(l.ifindex))
        .map(|l| {
            (
                l.ifindex,
                RouterInterface {
                    ipv4_forwarding: l.ipv4_forwarding,
                    ipv6_forwarding: ipv6,
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

fn chains(state: &KernelState, t: &mut Topology) {
    let filter_forward = state.nft_chains.iter().any(BaseChain::affects_forwarding);
    let filter_bridge = state
        .nft_chains
        .iter()
        .any(|c| c.family == "bridge" && (c.rules > 0 || c.policy != "accept"));
    let ifaces: Vec<u32> = t.interfaces.keys().copied().collect();
    for ifindex in ifaces {
        let Some(link) = state.links.get(&ifindex) else {
            continue;
        };
        let mut chain = Vec::new();
        if let Some(bridge) = link.master.and_then(|m| t.bridges.get(&m)) {
            if filter_bridge || filter_forward {
                chain.push(FunctionRef::Filter);
            }
            chain.push(FunctionRef::Bridge {
                bridge: bridge.ifindex,
            });
            if bridge.routed && t.router.is_some() {
                chain.push(FunctionRef::Router);
            }
        } else if t
            .router
            .as_ref()
            .is_some_and(|r| r.interfaces.contains_key(&ifindex))
        {
            if filter_forward {
                chain.push(FunctionRef::Filter);
            }
            chain.push(FunctionRef::Router);
        }
        if !chain.is_empty() {
            t.chains.insert(ifindex, chain);
        }
    }
}

fn limitations(state: &KernelState, t: &mut Topology) {
    let mut push = |ifindex: Option<u32>, function: NetworkFunction, reason: String| {
        t.limitations.push(Limitation {
            ifindex,
            function,
            reason,
        });
    };
    let all = |k: &str| state.sysctl(&format!("net.ipv4.conf.all.{k}"));
    for l in state.links.values() {
        let get = |k: &str| l.sysctls.get(k).copied().unwrap_or(0);
        // The kernel applies max(all, interface) for rp_filter.
        let rp = get("ipv4.rp_filter").max(all("rp_filter"));
        if rp != 0 {
            push(
                Some(l.ifindex),
                NetworkFunction::Router,
                format!(
                    "rp_filter={rp} on {} (reverse-path check not modelled)",
                    l.name
                ),
            );
        }
        for (key, what) in [
            ("accept_local", "accept_local=1"),
            ("route_localnet", "route_localnet=1"),
            ("proxy_arp", "proxy_arp=1"),
        ] {
            if get(&format!("ipv4.{key}")) != 0 || all(key) != 0 {
                push(
                    Some(l.ifindex),
                    NetworkFunction::Router,
                    format!("{what} on {} (not modelled)", l.name),
                );
            }
        }
        if get("ipv6.proxy_ndp") != 0 || state.sysctl("net.ipv6.conf.all.proxy_ndp") != 0 {
            push(
                Some(l.ifindex),
                NetworkFunction::Router,
                format!("proxy_ndp=1 on {} (not modelled)", l.name),
            );
        }
        if l.master
            .and_then(|m| state.links.get(&m))
            .is_some_and(|m| m.kind.as_deref() == Some("vrf"))
        {
            push(
                Some(l.ifindex),
                NetworkFunction::Router,
                format!("{} is in a VRF (not modelled yet)", l.name),
            );
        }
    }
    if !state.legacy_tables.is_empty() {
        let tables = state.legacy_tables.join(", ");
        for f in [NetworkFunction::Router, NetworkFunction::Bridge] {
            push(
                None,
                f,
                format!(
                    "iptables-legacy tables loaded ({tables}): their rules are opaque to LinuxFP"
                ),
            );
        }
    }
    for c in &state.nft_chains {
        if c.chain_type == "nat" && matches!(c.family.as_str(), "ip" | "ip6" | "inet") {
            push(
                None,
                NetworkFunction::Router,
                format!(
                    "NAT chain {} {} {} at {}: NAT stays on the slow path",
                    c.family, c.table, c.chain, c.hook
                ),
            );
        }
    }
}
