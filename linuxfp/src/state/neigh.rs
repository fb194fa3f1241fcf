// SPDX-License-Identifier: MIT OR Apache-2.0
//! Neighbours (ARP / NDP) and bridge FDB entries.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Keyed, RawAttr};

/// One ARP or NDP entry (`RTM_NEWNEIGH`, `AF_INET`/`AF_INET6`).
///
/// The kernel's silent `NOARP` entries for multicast and broadcast
/// destinations are not kept: they are never announced and never used for
/// forwarding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbour {
    /// Interface index.
    pub ifindex: u32,
    /// The neighbour's IP address.
    pub address: IpAddr,
    /// Its link-layer address, if resolved.
    pub lladdr: Option<Vec<u8>>,
    /// `NUD_*` state bits.
    pub state: u16,
    /// `NTF_*` flags (router, proxy, ...).
    pub flags: u8,
    /// Attributes netlink-packet-route does not type, raw.
    pub unknown: Vec<RawAttr>,
}

impl Keyed for Neighbour {
    type Key = (u32, IpAddr);
    fn key(&self) -> (u32, IpAddr) {
        (self.ifindex, self.address)
    }
}

/// One bridge forwarding-database entry (`RTM_NEWNEIGH`, `AF_BRIDGE`).
///
/// Entries of a device's own address lists (`<mac> dev X self permanent`
/// in `bridge fdb show`, without master or remote) are receive filters,
/// not forwarding entries, and are not kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FdbEntry {
    /// The port (or the bridge itself, or a VXLAN device).
    pub ifindex: u32,
    /// The bridge the entry belongs to (`NDA_MASTER`), if any.
    pub master: Option<u32>,
    /// The MAC address.
    pub mac: [u8; 6],
    /// The VLAN (`NDA_VLAN`).
    pub vlan: Option<u16>,
    /// `NUD_*` state: `NUD_PERMANENT` (0x80) for local/static entries,
    /// `NUD_NOARP` (0x40) for static, `NUD_REACHABLE`/`NUD_STALE` learnt.
    pub state: u16,
    /// `NTF_*` flags (`self` 0x02, `master` 0x04, `extern_learn` 0x10, ...).
    pub flags: u8,
    /// Remote VTEP (VXLAN FDB, `NDA_DST`).
    pub dst: Option<IpAddr>,
    /// VNI (VXLAN FDB).
    pub vni: Option<u32>,
    /// Attributes netlink-packet-route does not type, raw.
    pub unknown: Vec<RawAttr>,
}

/// What identifies an FDB entry.
pub type FdbKey = (u32, [u8; 6], Option<u16>, Option<IpAddr>);

impl Keyed for FdbEntry {
    type Key = FdbKey;
    fn key(&self) -> FdbKey {
        (self.ifindex, self.mac, self.vlan, self.dst)
    }
}
