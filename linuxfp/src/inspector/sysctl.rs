// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sysctls that change forwarding semantics, and iptables-legacy tables,
//! read on a thread inside the namespace: `/proc/sys/net` follows the
//! reading thread's namespace, and `/proc/thread-self/net` does too
//! (unlike `/proc/self/net`, which follows the main thread).
//!
//! Most of these emit no netlink event when written (`accept_local`,
//! `route_localnet`, ...), so the inspector re-reads them on link and
//! netconf events, on resync, and periodically.

use std::{collections::BTreeMap, path::Path};

use crate::state::{KernelState, Sysctls};

/// Per-interface IPv4 sysctls (`net.ipv4.conf.<if>.<key>`) that change how
/// the kernel forwards.
pub const IPV4_CONF: [&str; 9] = [
    "forwarding",
    "rp_filter",
    "accept_local",
    "route_localnet",
    "proxy_arp",
    "proxy_arp_pvlan",
    "send_redirects",
    "accept_source_route",
    "bc_forwarding",
];

/// Per-interface IPv6 sysctls (`net.ipv6.conf.<if>.<key>`).
pub const IPV6_CONF: [&str; 4] = [
    "forwarding",
    "proxy_ndp",
    "accept_source_route",
    "disable_ipv6",
];

/// Namespace-wide sysctls, dotted. The `net.bridge.*` ones exist only
/// while `br_netfilter` is loaded.
pub const GLOBAL: [&str; 9] = [
    "net.ipv4.ip_forward",
    "net.ipv4.ip_forward_use_pmtu",
    "net.ipv4.ip_forward_update_priority",
    "net.ipv4.fib_multipath_hash_policy",
    "net.ipv6.fib_multipath_hash_policy",
    "net.netfilter.nf_conntrack_tcp_be_liberal",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.bridge.bridge-nf-call-arptables",
];

fn read_int(path: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    match text.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!(path = %path.display(), "sysctl is not an integer; ignored");
            None
        }
    }
}

fn conf(dir: &Path, keys: &[&str]) -> BTreeMap<String, i64> {
    keys.iter()
        .filter_map(|k| Some((k.to_string(), read_int(&dir.join(k))?)))
        .collect()
}

/// Reads the sysctls for `all`, `default` and every link of `state`.
pub fn read(state: &KernelState) -> Sysctls {
    let v4 = Path::new("/proc/sys/net/ipv4/conf");
    let v6 = Path::new("/proc/sys/net/ipv6/conf");
    let mut s = Sysctls::default();
    let dirs = ["all", "default"]
        .into_iter()
        .chain(state.links.values().map(|l| l.name.as_str()));
    for dir in dirs {
        // A name with a '/' cannot be a conf directory; skip it rather
        // than read elsewhere.
        if dir.is_empty() || dir.contains('/') {
            continue;
        }
        let c4 = conf(&v4.join(dir), &IPV4_CONF);
        if !c4.is_empty() {
            s.ipv4_conf.insert(dir.to_string(), c4);
        }
        let c6 = conf(&v6.join(dir), &IPV6_CONF);
        if !c6.is_empty() {
            s.ipv6_conf.insert(dir.to_string(), c6);
        }
    }
    for name in GLOBAL {
        if let Some(v) = read_int(&Path::new("/proc/sys").join(name.replace('.', "/"))) {
            s.global.insert(name.to_string(), v);
        }
    }
    s
}

/// The iptables-legacy tables present in the namespace (`ip filter`,
/// `ip6 nat`, ...): non-empty means rules LinuxFP cannot see may apply.
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
    out.sort();
    out
}
