// SPDX-License-Identifier: MIT OR Apache-2.0
//! IPv4 and IPv6 interface addresses.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::RawAttr;

/// One interface address (`RTM_NEWADDR`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Interface index.
    pub ifindex: u32,
    /// The interface's own address (`IFA_LOCAL` for IPv4, `IFA_ADDRESS`
    /// for IPv6).
    pub address: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// The peer on point-to-point links (`IFA_ADDRESS` when it differs
    /// from `IFA_LOCAL`).
    pub peer: Option<IpAddr>,
    /// IPv4 broadcast address.
    pub broadcast: Option<IpAddr>,
    /// Label (`eth0:1`).
    pub label: Option<String>,
    /// Scope (`RT_SCOPE_*`).
    pub scope: u8,
    /// `IFA_F_*` flags (from `IFA_FLAGS` when present, else the header).
    pub flags: u32,
    /// Attributes netlink-packet-route does not type, raw.
    pub unknown: Vec<RawAttr>,
}

impl Address {
    /// `addr/prefix`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.address, self.prefix_len)
    }

    /// What identifies the address on its interface.
    pub fn key(&self) -> (IpAddr, u8) {
        (self.address, self.prefix_len)
    }
}
