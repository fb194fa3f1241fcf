// SPDX-License-Identifier: MIT OR Apache-2.0
//! `RTM_NEWADDR` / `RTM_DELADDR`.

use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use super::raw;
use crate::state::Address;

pub(super) fn decode(a: &AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut out = Address {
        ifindex: a.header.index,
        address: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        prefix_len: a.header.prefix_len,
        peer: None,
        broadcast: None,
        label: None,
        scope: u8::from(a.header.scope),
        flags: u32::from(a.header.flags.bits()),
        unknown: Vec::new(),
    };
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Broadcast(ip) => out.broadcast = Some((*ip).into()),
            AddressAttribute::Label(l) => out.label = Some(l.clone()),
            AddressAttribute::Flags(f) => out.flags = f.bits(),
            AddressAttribute::Other(nla) => out.unknown.push(raw(nla)),
            _ => {}
        }
    }
    // For IPv4, IFA_LOCAL is the interface's own address and IFA_ADDRESS
    // the peer on point-to-point links; IPv6 only has IFA_ADDRESS.
    match (local, address) {
        (Some(l), Some(a)) => {
            out.address = l;
            out.peer = (l != a).then_some(a);
        }
        (Some(x), None) | (None, Some(x)) => out.address = x,
        (None, None) => {
            tracing::warn!(
                ifindex = a.header.index,
                "address message without an address; skipped"
            );
            return None;
        }
    }
    Some(out)
}
