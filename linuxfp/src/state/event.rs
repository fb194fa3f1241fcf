// SPDX-License-Identifier: MIT OR Apache-2.0
//! One change of the kernel's state, as decoded from netlink (or read from
//! `/proc`), ready to fold with [`super::KernelState::apply`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    Address, BridgePortAttrs, FdbEntry, Link, Neighbour, Netconf, Route, Rule, Sysctls,
    VlanMembership,
};
use crate::inspector::nftables::Ruleset;

/// A fine-grained change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NetEvent {
    /// A link appeared or changed (`RTM_NEWLINK`, `AF_UNSPEC`): replaces it.
    NewLink(Link),
    /// A link went away (`RTM_DELLINK`): it and everything on it
    /// (addresses, routes through it, neighbours, FDB, VLANs, netconf).
    DelLink {
        /// The ifindex.
        ifindex: u32,
    },
    /// The bridge view of a link (`RTM_NEWLINK`, `AF_BRIDGE`): port
    /// attributes and VLAN membership of a port, or the bridge's own VLANs.
    BridgeLink {
        /// The port's (or bridge's) ifindex.
        ifindex: u32,
        /// Port attributes (`IFLA_PROTINFO`), if carried.
        port: Option<BridgePortAttrs>,
        /// VLAN membership (`IFLA_AF_SPEC`), if carried.
        vlans: Option<BTreeMap<u16, VlanMembership>>,
    },
    /// The link left its bridge (`RTM_DELLINK`, `AF_BRIDGE`): its VLANs go.
    DelBridgeLink {
        /// The port's ifindex.
        ifindex: u32,
    },
    /// An address was added or changed.
    NewAddress(Address),
    /// An address was removed.
    DelAddress(Address),
    /// A route was added or replaced.
    NewRoute(Route),
    /// A route was removed.
    DelRoute(Route),
    /// A rule was added.
    NewRule(Rule),
    /// A rule was removed.
    DelRule(Rule),
    /// An ARP/NDP entry was added or changed.
    NewNeighbour(Neighbour),
    /// An ARP/NDP entry was removed.
    DelNeighbour(Neighbour),
    /// An FDB entry was added or changed.
    NewFdb(FdbEntry),
    /// An FDB entry was removed.
    DelFdb(FdbEntry),
    /// Netconf values changed (merged into the entry).
    NewNetconf(Netconf),
    /// A netconf entry went (its device was removed).
    DelNetconf(Netconf),
    /// The sysctls were re-read: replaces them.
    Sysctls(Sysctls),
    /// The iptables-legacy tables were re-read: replaces them.
    LegacyTables(Vec<String>),
    /// The nf_tables ruleset was re-read: replaces it.
    Ruleset(Ruleset),
}
