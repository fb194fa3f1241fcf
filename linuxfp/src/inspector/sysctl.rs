// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sysctls that change forwarding semantics, and legacy iptables tables.
//! Read on a thread inside the namespace: `/proc/sys/net` follows the
//! reading thread's namespace, and `/proc/thread-self/net` (unlike
//! `/proc/self/net`, which follows the main thread) does too.

use std::path::Path;

use crate::state::KernelState;

/// Per-interface IPv4 sysctls the router must model or punt on.
pub const IPV4_IF_SYSCTLS: [&str; 5] = [
    "forwarding",
    "rp_filter",
    "accept_local",
    "route_localnet",
    "proxy_arp",
];
/// Per-interface IPv6 sysctls the router must model or punt on.
pub const IPV6_IF_SYSCTLS: [&str; 2] = ["forwarding", "proxy_ndp"];

fn read_int(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Fills forwarding flags, per-interface and namespace-wide sysctls, and
/// legacy iptables tables.
pub(crate) fn fold_into(state: &mut KernelState) {
    let v4 = Path::new("/proc/sys/net/ipv4/conf");
    let v6 = Path::new("/proc/sys/net/ipv6/conf");
    for link in state.links.values_mut() {
        for key in IPV4_IF_SYSCTLS {
            if let Some(v) = read_int(&v4.join(&link.name).join(key)) {
                link.sysctls.insert(format!("ipv4.{key}"), v);
            }
        }
        for key in IPV6_IF_SYSCTLS {
            if let Some(v) = read_int(&v6.join(&link.name).join(key)) {
                link.sysctls.insert(format!("ipv6.{key}"), v);
            }
        }
        link.ipv4_forwarding = link.sysctls.get("ipv4.forwarding") == Some(&1);
        link.ipv6_forwarding = link.sysctls.get("ipv6.forwarding") == Some(&1);
    }
    for key in IPV4_IF_SYSCTLS {
        if let Some(v) = read_int(&v4.join("all").join(key)) {
            state.sysctls.insert(format!("net.ipv4.conf.all.{key}"), v);
        }
    }
    for key in IPV6_IF_SYSCTLS {
        if let Some(v) = read_int(&v6.join("all").join(key)) {
            state.sysctls.insert(format!("net.ipv6.conf.all.{key}"), v);
        }
    }
    for name in [
        "net/ipv4/ip_forward",
        "net/netfilter/nf_conntrack_tcp_be_liberal",
        "net/bridge/bridge-nf-call-iptables",
        "net/bridge/bridge-nf-call-ip6tables",
    ] {
        if let Some(v) = read_int(&Path::new("/proc/sys").join(name)) {
            state.sysctls.insert(name.replace('/', "."), v);
        }
    }
    state.ipv6_forwarding = state.sysctl("net.ipv6.conf.all.forwarding") == 1;
    state.legacy_tables = legacy_tables();
}

/// The iptables-legacy tables loaded in the namespace.
pub fn legacy_tables() -> Vec<String> {
    let mut out = Vec::new();
    for (file, family) in [
        ("ip_tables_names", "ip"),
        ("ip6_tables_names", "ip6"),
        ("arp_tables_names", "arp"),
    ] {
        let path = Path::new("/proc/thread-self/net").join(file);
        if let Ok(text) = std::fs::read_to_string(path) {
            out.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|t| format!("{family} {t}")),
            );
        }
    }
    out
}
