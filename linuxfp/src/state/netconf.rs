// SPDX-License-Identifier: MIT OR Apache-2.0
//! Per-device IP configuration the kernel announces over netlink
//! (`RTM_NEWNETCONF`): forwarding, rp_filter, proxy neighbour, ...

use serde::{Deserialize, Serialize};

use super::{Keyed, RawAttr};

/// `NETCONFA_IFINDEX_ALL`: the `all` pseudo-device.
pub const IFINDEX_ALL: i32 = -1;
/// `NETCONFA_IFINDEX_DEFAULT`: the `default` pseudo-device.
pub const IFINDEX_DEFAULT: i32 = -2;

/// The netconf of one family on one device (or `all` / `default`).
/// Notifications often carry only the attribute that changed, so the
/// values are optional and merged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Netconf {
    /// `4` or `6`.
    pub family: u8,
    /// Device, or [`IFINDEX_ALL`] / [`IFINDEX_DEFAULT`].
    pub ifindex: i32,
    /// `NETCONFA_FORWARDING`.
    pub forwarding: Option<i32>,
    /// `NETCONFA_RP_FILTER` (IPv4).
    pub rp_filter: Option<i32>,
    /// `NETCONFA_MC_FORWARDING`.
    pub mc_forwarding: Option<i32>,
    /// `NETCONFA_PROXY_NEIGH` (proxy_arp / proxy_ndp).
    pub proxy_neigh: Option<i32>,
    /// `NETCONFA_IGNORE_ROUTES_WITH_LINKDOWN`.
    pub ignore_routes_with_linkdown: Option<i32>,
    /// `NETCONFA_INPUT` (IPv4 `net.ipv4.conf.*.disable_policy`-like input
    /// switch).
    pub input: Option<i32>,
    /// `NETCONFA_BC_FORWARDING` (IPv4).
    pub bc_forwarding: Option<i32>,
    /// Attributes we do not know, raw.
    pub unknown: Vec<RawAttr>,
}

impl Netconf {
    /// Folds a (possibly partial) notification into this entry.
    pub fn merge(&mut self, n: &Netconf) {
        fn take(dst: &mut Option<i32>, src: Option<i32>) {
            if src.is_some() {
                *dst = src;
            }
        }
        take(&mut self.forwarding, n.forwarding);
        take(&mut self.rp_filter, n.rp_filter);
        take(&mut self.mc_forwarding, n.mc_forwarding);
        take(&mut self.proxy_neigh, n.proxy_neigh);
        take(
            &mut self.ignore_routes_with_linkdown,
            n.ignore_routes_with_linkdown,
        );
        take(&mut self.input, n.input);
        take(&mut self.bc_forwarding, n.bc_forwarding);
        for a in &n.unknown {
            self.unknown.retain(|o| o.kind != a.kind);
            self.unknown.push(a.clone());
        }
    }
}

impl Keyed for Netconf {
    type Key = (u8, i32);
    fn key(&self) -> (u8, i32) {
        (self.family, self.ifindex)
    }
}
