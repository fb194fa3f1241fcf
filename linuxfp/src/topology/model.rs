// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Topology: which network functions the host has configured, on which
//! interfaces, in which order. This is the paper's JSON graph.
//!
//! # Stability
//!
//! The JSON shape (serde, field names in `snake_case`, enums tagged with
//! `"kind"`) is part of the public API: fields may be added, never renamed
//! or removed within a major version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything the later pipeline stages need to know about the host's
/// network functions. Built from a `KernelState` by the topology manager,
/// or supplied directly by an orchestrator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The interfaces of the namespace, by ifindex.
    pub interfaces: BTreeMap<u32, Interface>,
    /// The IP router, if forwarding is on for IPv4 or IPv6.
    pub router: Option<Router>,
    /// The Linux bridges, by bridge ifindex.
    pub bridges: BTreeMap<u32, Bridge>,
    /// The firewall as far as it concerns forwarded and bridged traffic.
    pub filter: Filter,
    /// Per interface, the network functions a packet arriving there meets,
    /// in processing order.
    pub chains: BTreeMap<u32, Vec<FunctionRef>>,
    /// Things configured on the host that no fast path models, with where
    /// they apply. The Compatibility Manager keeps the affected traffic on
    /// the slow path.
    pub limitations: Vec<Limitation>,
}

/// One network interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Kernel interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// Link kind (`IFLA_INFO_KIND`), `None` for physical devices.
    pub kind: Option<String>,
    /// Administratively and operationally up (`IFF_UP` and `IFF_RUNNING`).
    pub up: bool,
    /// MTU in bytes.
    pub mtu: u32,
    /// Hardware address, if any.
    pub mac: Option<[u8; 6]>,
    /// Master device (bridge, bond, VRF), if any.
    pub master: Option<u32>,
    /// Lower device (for VLAN and macvlan devices), if any.
    pub link: Option<u32>,
    /// Id of the XDP program attached to the interface, if any (ours or not).
    pub xdp_prog_id: Option<u32>,
    /// The interface's IPv4 and IPv6 addresses, as `addr/prefix` strings.
    pub addresses: Vec<String>,
}

/// The IP router function.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Router {
    /// IPv4 forwarding is on for at least one interface.
    pub ipv4: bool,
    /// IPv6 forwarding is on (globally: `net.ipv6.conf.all.forwarding`).
    pub ipv6: bool,
    /// The interfaces taking part in routing: up, with an address or a
    /// route through them, not enslaved to a bridge or bond.
    pub interfaces: BTreeMap<u32, RouterInterface>,
}

/// An interface of the router.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterInterface {
    /// IPv4 forwarding on this interface (`net.ipv4.conf.<if>.forwarding`).
    pub ipv4_forwarding: bool,
    /// IPv6 forwarding on this interface (`net.ipv6.conf.<if>.forwarding`).
    pub ipv6_forwarding: bool,
}

/// A Linux bridge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bridge {
    /// The bridge device's ifindex.
    pub ifindex: u32,
    /// The bridge device's name.
    pub name: String,
    /// `vlan_filtering` is on.
    pub vlan_filtering: bool,
    /// STP is enabled (`stp_state` non-zero).
    pub stp: bool,
    /// The bridge device has IP addresses: frames to its MAC continue to the
    /// router.
    pub routed: bool,
    /// The ports, by ifindex.
    pub ports: BTreeMap<u32, BridgePort>,
}

/// A bridge port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgePort {
    /// STP port state (`BR_STATE_*`: 0 disabled, 1 listening, 2 learning,
    /// 3 forwarding, 4 blocking).
    pub state: u8,
    /// Learning on.
    pub learning: bool,
    /// Unknown-unicast flooding on.
    pub flood: bool,
    /// Hairpin mode on.
    pub hairpin: bool,
    /// Port isolation on.
    pub isolated: bool,
    /// Port locked (802.1X / MAB).
    pub locked: bool,
    /// Port VLAN id for untagged frames, if VLAN filtering applies.
    pub pvid: Option<u16>,
    /// VLANs allowed on the port, with whether they leave untagged.
    pub vlans: BTreeMap<u16, bool>,
}

/// The firewall, summarised for the stages that must respect it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// nf_tables base chains (nft and iptables-nft), in hook and priority order.
    pub base_chains: Vec<BaseChain>,
    /// iptables-legacy tables are loaded (opaque to us).
    pub legacy_tables: Vec<String>,
    /// Generation id of the nf_tables ruleset that was read.
    pub generation: u32,
}

/// One nf_tables base chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseChain {
    /// Family: `ip`, `ip6`, `inet`, `bridge`, `netdev`, `arp`.
    pub family: String,
    /// Table name.
    pub table: String,
    /// Chain name.
    pub chain: String,
    /// Hook: `prerouting`, `input`, `forward`, `output`, `postrouting`, `ingress`, `egress`.
    pub hook: String,
    /// Priority.
    pub priority: i32,
    /// Chain type: `filter`, `nat`, `route`.
    pub chain_type: String,
    /// Policy: `accept` or `drop`.
    pub policy: String,
    /// Number of rules directly in the chain.
    pub rules: u32,
}

impl BaseChain {
    /// True if this chain can change the fate of forwarded (routed)
    /// traffic: a non-empty chain or a drop policy on prerouting, forward or
    /// postrouting of an IP family, or any NAT chain there.
    pub fn affects_forwarding(&self) -> bool {
        let ip_family = matches!(self.family.as_str(), "ip" | "ip6" | "inet");
        let hook = matches!(self.hook.as_str(), "prerouting" | "forward" | "postrouting");
        ip_family && hook && (self.rules > 0 || self.policy != "accept" || self.chain_type == "nat")
    }
}

/// A reference to a network function, as it appears in a chain.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FunctionRef {
    /// The firewall's base chains at the ingress hooks.
    Filter,
    /// The bridge with this ifindex.
    Bridge {
        /// The bridge device's ifindex.
        bridge: u32,
    },
    /// The IP router.
    Router,
}

impl FunctionRef {
    /// The name of the network function kind, as FPMs declare it.
    pub fn function(&self) -> NetworkFunction {
        match self {
            FunctionRef::Filter => NetworkFunction::Filter,
            FunctionRef::Bridge { .. } => NetworkFunction::Bridge,
            FunctionRef::Router => NetworkFunction::Router,
        }
    }
}

/// The kinds of network function LinuxFP knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkFunction {
    /// IP forwarding.
    Router,
    /// Linux bridge forwarding.
    Bridge,
    /// Packet filtering.
    Filter,
}

impl std::fmt::Display for NetworkFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetworkFunction::Router => "router",
            NetworkFunction::Bridge => "bridge",
            NetworkFunction::Filter => "filter",
        })
    }
}

/// Something configured that no fast path models.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limitation {
    /// The interface it applies to, or `None` for the whole namespace.
    pub ifindex: Option<u32>,
    /// The network function whose acceleration it prevents.
    pub function: NetworkFunction,
    /// Why, for a person: e.g. "rp_filter=1 on eth0 (reverse-path check not modelled)".
    pub reason: String,
    /// A function whose stage, earlier in the same chain, takes care of
    /// what this limitation is about, so the limitation does not apply
    /// there: NAT chains are part of the nf_tables path a filter stage
    /// evaluates (it hands the packets they would see to the kernel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_by: Option<NetworkFunction>,
}
