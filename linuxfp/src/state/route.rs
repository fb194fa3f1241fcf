// SPDX-License-Identifier: MIT OR Apache-2.0
//! Routes of every table, and routing-policy rules.

use std::{collections::BTreeMap, net::IpAddr};

use serde::{Deserialize, Serialize};

use super::{Keyed, RawAttr};

/// `RTN_*` route types the later stages care about.
pub mod kind {
    /// A gateway or direct route.
    pub const UNICAST: u8 = 1;
    /// A local address.
    pub const LOCAL: u8 = 2;
    /// A broadcast address.
    pub const BROADCAST: u8 = 3;
    /// Drop silently.
    pub const BLACKHOLE: u8 = 6;
    /// Drop with ICMP unreachable.
    pub const UNREACHABLE: u8 = 7;
    /// Drop with ICMP prohibited.
    pub const PROHIBIT: u8 = 8;
}

/// One route (`RTM_NEWROUTE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Routing table (`RTA_TABLE`, or the header's for old kernels).
    pub table: u32,
    /// Destination (the unspecified address for a default route).
    pub dst: IpAddr,
    /// Destination prefix length.
    pub dst_len: u8,
    /// Source prefix (IPv6 source-specific routes).
    pub src: Option<IpAddr>,
    /// Source prefix length.
    pub src_len: u8,
    /// TOS selector.
    pub tos: u8,
    /// Metric (`RTA_PRIORITY`).
    pub priority: u32,
    /// Origin (`RTPROT_*`: kernel, boot, static, ...).
    pub protocol: u8,
    /// Scope (`RT_SCOPE_*`).
    pub scope: u8,
    /// Type (`RTN_*`, see [`kind`]).
    pub kind: u8,
    /// `RTM_F_*` / `RTNH_F_*` flags, without `RTNH_F_DEAD` and
    /// `RTNH_F_LINKDOWN` (derived from the link state, never announced).
    pub flags: u32,
    /// Output interface.
    pub oif: Option<u32>,
    /// Input interface (for input-specific routes).
    pub iif: Option<u32>,
    /// Gateway.
    pub gateway: Option<IpAddr>,
    /// Preferred source address.
    pub prefsrc: Option<IpAddr>,
    /// Multipath next hops (empty for single-path routes).
    pub nexthops: Vec<NextHop>,
    /// Nexthop object id (`RTA_NH_ID`), when the route uses one.
    pub nh_id: Option<u32>,
    /// Route MTU metric, if set.
    pub mtu: Option<u32>,
    /// Attributes netlink-packet-route does not type, raw.
    pub unknown: Vec<RawAttr>,
}

/// One next hop of a multipath route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextHop {
    /// Output interface.
    pub oif: u32,
    /// Gateway.
    pub gateway: Option<IpAddr>,
    /// Weight (`rtnh_hops + 1`).
    pub weight: u16,
    /// `RTNH_F_*` flags.
    pub flags: u32,
}

/// What identifies a route within the kernel's FIB.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    /// Destination.
    pub dst: IpAddr,
    /// Destination prefix length.
    pub dst_len: u8,
    /// Source prefix.
    pub src: Option<IpAddr>,
    /// Source prefix length.
    pub src_len: u8,
    /// TOS.
    pub tos: u8,
    /// Metric.
    pub priority: u32,
}

impl Keyed for Route {
    type Key = RouteKey;
    fn key(&self) -> RouteKey {
        RouteKey {
            dst: self.dst,
            dst_len: self.dst_len,
            src: self.src,
            src_len: self.src_len,
            tos: self.tos,
            priority: self.priority,
        }
    }
}

impl Route {
    /// IPv4 (`4`) or IPv6 (`6`).
    pub fn family(&self) -> u8 {
        if self.dst.is_ipv4() { 4 } else { 6 }
    }

    /// True if the route sends traffic out of `ifindex` (directly or as
    /// one of its next hops).
    pub fn uses_device(&self, ifindex: u32) -> bool {
        self.oif == Some(ifindex) || self.nexthops.iter().any(|n| n.oif == ifindex)
    }

    /// The output interfaces of the route.
    pub fn devices(&self) -> impl Iterator<Item = u32> + '_ {
        self.oif
            .into_iter()
            .chain(self.nexthops.iter().map(|n| n.oif))
    }
}

/// One routing table's routes, by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RouteTable {
    /// The routes.
    #[serde(with = "super::keyed")]
    pub routes: BTreeMap<RouteKey, Route>,
}

/// One routing-policy rule (`RTM_NEWRULE`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rule {
    /// `4` or `6`.
    pub family: u8,
    /// Priority (`FRA_PRIORITY`).
    pub priority: u32,
    /// Table looked up (`FRA_TABLE`, or the header's).
    pub table: u32,
    /// `FR_ACT_*` action (1 = to table, 2 = goto, 6 = blackhole, ...).
    pub action: u8,
    /// Source selector.
    pub src: Option<IpAddr>,
    /// Source prefix length.
    pub src_len: u8,
    /// Destination selector.
    pub dst: Option<IpAddr>,
    /// Destination prefix length.
    pub dst_len: u8,
    /// TOS selector.
    pub tos: u8,
    /// Input interface selector.
    pub iifname: Option<String>,
    /// Output interface selector.
    pub oifname: Option<String>,
    /// Firewall mark selector.
    pub fwmark: Option<u32>,
    /// Firewall mark mask.
    pub fwmask: Option<u32>,
    /// Goto target priority.
    pub goto: Option<u32>,
    /// `FRA_L3MDEV` (VRF rule).
    pub l3mdev: bool,
    /// `FRA_SUPPRESS_PREFIXLEN`.
    pub suppress_prefixlen: Option<u32>,
    /// `FIB_RULE_*` flags (`not`, ...).
    pub flags: u32,
    /// Attributes netlink-packet-route does not type, and typed selectors
    /// we do not model (ports, uid range, ip proto), raw.
    pub unknown: Vec<RawAttr>,
}
