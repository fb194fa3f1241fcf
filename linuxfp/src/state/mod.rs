// SPDX-License-Identifier: MIT OR Apache-2.0
//! KernelState: the kernel's networking state of one namespace, folded from
//! netlink dumps and indexed for the queries the later stages make.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::topology::BaseChain;

/// One network interface as the kernel reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Interface index.
    pub ifindex: u32,
    /// Name.
    pub name: String,
    /// `IFLA_INFO_KIND` (`veth`, `bridge`, `vlan`, ...), `None` for physical.
    pub kind: Option<String>,
    /// `IFF_UP`.
    pub admin_up: bool,
    /// `IFF_RUNNING` / `IFF_LOWER_UP`: carrier.
    pub running: bool,
    /// Loopback device.
    pub loopback: bool,
    /// MTU.
    pub mtu: u32,
    /// Hardware address.
    pub mac: Option<[u8; 6]>,
    /// Master (bridge, bond, VRF).
    pub master: Option<u32>,
    /// Lower device (`IFLA_LINK`), if in this namespace.
    pub link: Option<u32>,
    /// Attached XDP program id.
    pub xdp_prog_id: Option<u32>,
    /// Addresses, `addr/prefix`.
    pub addresses: Vec<String>,
    /// `net.ipv4.conf.<if>.forwarding`.
    pub ipv4_forwarding: bool,
    /// `net.ipv6.conf.<if>.forwarding`.
    pub ipv6_forwarding: bool,
    /// Per-interface sysctls that change forwarding semantics, by name
    /// (`rp_filter`, `accept_local`, `route_localnet`, `proxy_arp`, ...).
    pub sysctls: BTreeMap<String, i64>,
}

/// The folded state of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelState {
    /// Links by ifindex.
    pub links: BTreeMap<u32, Link>,
    /// Interfaces that are the output device of at least one route, by
    /// family (`4`/`6`) → ifindexes.
    pub route_devices: BTreeMap<u8, Vec<u32>>,
    /// Number of routes in all tables, by family.
    pub route_count: BTreeMap<u8, usize>,
    /// Namespace-wide sysctls that change forwarding semantics (`all` and
    /// global ones), by full name (`net.ipv4.conf.all.rp_filter`).
    pub sysctls: BTreeMap<String, i64>,
    /// `net.ipv6.conf.all.forwarding`.
    pub ipv6_forwarding: bool,
    /// iptables-legacy tables loaded (`/proc/net/*_tables_names`).
    pub legacy_tables: Vec<String>,
    /// nf_tables base chains (nft and iptables-nft).
    pub nft_chains: Vec<BaseChain>,
    /// nf_tables generation id.
    pub nft_generation: u32,
}

impl KernelState {
    /// The link with this name.
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// A namespace-wide sysctl, 0 if unknown.
    pub fn sysctl(&self, name: &str) -> i64 {
        self.sysctls.get(name).copied().unwrap_or(0)
    }
}
