// SPDX-License-Identifier: MIT OR Apache-2.0
//! What is configured but no fast path models: each limitation names the
//! interface and the setting, for the operator.

use super::model::*;
use crate::state::KernelState;

/// `IFF_PROMISC` in a link's flags.
const IFF_PROMISC: u32 = 0x100;

/// The limitations of a derived topology.
pub(super) fn limitations(state: &KernelState, t: &Topology) -> Vec<Limitation> {
    let mut out = Vec::new();
    let mut push = |ifindex: Option<u32>, function: NetworkFunction, reason: String| {
        out.push(Limitation {
            ifindex,
            function,
            reason,
            lifted_by: None,
        });
    };
    if let Some(router) = &t.router
        && router.ipv4
        && state
            .sysctls
            .global("net.ipv4.ip_forward_update_priority")
            .is_some_and(|v| v == 0)
    {
        // The TC fast path sets skb->priority from the TOS, as ip_forward
        // does by default; with this sysctl off, Linux leaves it alone.
        push(
            None,
            NetworkFunction::Router,
            "net.ipv4.ip_forward_update_priority=0: forwarding without setting \
             the packet priority from its TOS is not modelled"
                .into(),
        );
    }
    if let Some(router) = &t.router {
        for &ifindex in router.interfaces.keys() {
            let Some(link) = state.links.get(&ifindex) else {
                continue;
            };
            let name = &link.name;
            let v4 = |key: &str| state.ipv4_conf(ifindex, key).unwrap_or(0);
            let v4_all = |key: &str| state.sysctls.ipv4("all", key).unwrap_or(0);
            // rp_filter: the kernel applies max(all, interface).
            let rp = v4("rp_filter").max(v4_all("rp_filter"));
            if rp != 0 {
                push(
                    Some(ifindex),
                    NetworkFunction::Router,
                    format!(
                        "rp_filter={rp} on {name} (net.ipv4.conf.{name}.rp_filter={}, \
                         net.ipv4.conf.all.rp_filter={}; the kernel applies the larger): \
                         reverse-path filtering is not modelled",
                        v4("rp_filter"),
                        v4_all("rp_filter")
                    ),
                );
            }
            // These apply when set on the interface or on `all`.
            for (key, what) in [
                ("accept_local", "accepting packets with a local source"),
                ("route_localnet", "routing 127/8"),
                ("proxy_arp", "proxy ARP"),
            ] {
                let (here, all) = (v4(key), v4_all(key));
                if here != 0 || all != 0 {
                    let which = if here != 0 { name.as_str() } else { "all" };
                    push(
                        Some(ifindex),
                        NetworkFunction::Router,
                        format!(
                            "{key}=1 on {name} (net.ipv4.conf.{which}.{key}): {what} is not modelled"
                        ),
                    );
                }
            }
            if router.ipv6 {
                let here = state.ipv6_conf(ifindex, "proxy_ndp").unwrap_or(0);
                let all = state.sysctls.ipv6("all", "proxy_ndp").unwrap_or(0);
                if here != 0 || all != 0 {
                    let which = if here != 0 { name.as_str() } else { "all" };
                    push(
                        Some(ifindex),
                        NetworkFunction::Router,
                        format!(
                            "proxy_ndp=1 on {name} (net.ipv6.conf.{which}.proxy_ndp): \
                             proxy NDP is not modelled"
                        ),
                    );
                }
            }
            if let Some(vrf) = link
                .master
                .and_then(|m| state.links.get(&m))
                .filter(|m| m.kind.as_deref() == Some("vrf"))
            {
                push(
                    Some(ifindex),
                    NetworkFunction::Router,
                    format!(
                        "{name} is enslaved to VRF {}: VRF routing is not modelled",
                        vrf.name
                    ),
                );
            }
        }
    }
    for b in t.bridges.values() {
        // A promiscuous bridge device (tcpdump on it, for one) gets a copy
        // of every frame the bridge forwards: only the kernel can give it.
        let promisc = state
            .links
            .get(&b.ifindex)
            .is_some_and(|l| l.flags & IFF_PROMISC != 0);
        if promisc {
            for &port in b.ports.keys() {
                push(
                    Some(port),
                    NetworkFunction::Bridge,
                    format!(
                        "{} is promiscuous (tcpdump on it?): the kernel passes every \
                         bridged frame up to it",
                        b.name
                    ),
                );
            }
        }
    }
    if !state.legacy_tables.is_empty() {
        let tables = state.legacy_tables.join(", ");
        push(
            None,
            NetworkFunction::Router,
            format!(
                "iptables-legacy tables present ({tables}; /proc/net/ip_tables_names): \
                 their rules are invisible to LinuxFP"
            ),
        );
        if state.br_netfilter_ipv4() || state.br_netfilter_ipv6() {
            push(
                None,
                NetworkFunction::Bridge,
                format!(
                    "iptables-legacy tables present ({tables}) and br_netfilter passes \
                     bridged traffic through them (net.bridge.bridge-nf-call-iptables)"
                ),
            );
        }
    }
    for c in &t.filter.base_chains {
        if c.chain_type == "nat"
            && matches!(c.family.as_str(), "ip" | "ip6" | "inet")
            && matches!(c.hook.as_str(), "prerouting" | "postrouting")
        {
            // The router stage alone would forward a connection's first
            // packets past NAT; behind a filter stage it only sees what
            // the filter let through, which gates NAT chains.
            out.push(Limitation {
                ifindex: None,
                function: NetworkFunction::Router,
                reason: format!(
                    "NAT chain {} {} {} at {}: address translation stays on the slow path",
                    c.family, c.table, c.chain, c.hook
                ),
                lifted_by: Some(NetworkFunction::Filter),
            });
        }
    }
    out
}
