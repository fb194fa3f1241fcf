// SPDX-License-Identifier: MIT OR Apache-2.0
//! `RTM_NEWNEIGH` / `RTM_DELNEIGH`: ARP / NDP entries, and bridge FDB
//! entries (`AF_BRIDGE`).

use std::net::IpAddr;

use netlink_packet_route::{
    AddressFamily,
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage},
};

use super::raw;
use crate::state::{FdbEntry, Neighbour, NetEvent};

fn ip(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v4) => Some((*v4).into()),
        NeighbourAddress::Inet6(v6) => Some((*v6).into()),
        // In AF_BRIDGE messages (VXLAN FDB remotes) the crate cannot know
        // the address family; the length tells.
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

/// `NTF_SELF`.
const NTF_SELF: u8 = 0x02;
/// `NUD_PERMANENT`.
const NUD_PERMANENT: u16 = 0x80;

/// An entry of a device's own unicast/multicast address list, which the
/// kernel's FDB dump lists as `self permanent` (`ndo_dflt_fdb_dump`): a
/// receive filter, not a forwarding entry, and not announced when it
/// changes (IGMP/MLD joins), so keeping it would make dumps and events
/// disagree. VXLAN `self` entries always carry a remote (`NDA_DST`) and
/// are kept.
fn is_address_list_entry(f: &FdbEntry) -> bool {
    f.flags & NTF_SELF != 0
        && f.master.is_none()
        && f.dst.is_none()
        && f.vlan.is_none()
        && f.state == NUD_PERMANENT
}

/// `NUD_NOARP`.
const NUD_NOARP: u16 = 0x40;

/// The kernel's own entries for multicast and broadcast destinations
/// (`ff02::2 lladdr 33:33:00:00:00:02 NOARP`): created silently by the
/// neighbour constructors when the host sends there, never announced, and
/// irrelevant to forwarding (multicast is never on a fast path).
fn is_multicast_mapping(n: &Neighbour) -> bool {
    let group = match n.address {
        IpAddr::V4(a) => a.is_multicast() || a.is_broadcast(),
        IpAddr::V6(a) => a.is_multicast(),
    };
    group && n.state == NUD_NOARP
}

pub(super) fn decode(n: &NeighbourMessage, new: bool) -> Option<NetEvent> {
    let h = &n.header;
    match h.family {
        AddressFamily::Bridge => {
            let mut f = FdbEntry {
                ifindex: h.ifindex,
                master: None,
                mac: [0; 6],
                vlan: None,
                state: u16::from(h.state),
                flags: h.flags.bits(),
                dst: None,
                vni: None,
                unknown: Vec::new(),
            };
            let mut mac = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::LinkLayerAddress(m) => mac = m.as_slice().try_into().ok(),
                    NeighbourAttribute::Vlan(v) => f.vlan = Some(*v),
                    NeighbourAttribute::Controller(m) => f.master = Some(*m),
                    NeighbourAttribute::Destination(d) => f.dst = ip(d),
                    NeighbourAttribute::Vni(v) => f.vni = Some(*v),
                    NeighbourAttribute::Other(nla) => f.unknown.push(raw(nla)),
                    _ => {}
                }
            }
            let Some(mac) = mac else {
                tracing::warn!(
                    ifindex = h.ifindex,
                    "FDB entry without a MAC address; skipped"
                );
                return None;
            };
            f.mac = mac;
            if is_address_list_entry(&f) {
                return None;
            }
            Some(if new {
                NetEvent::NewFdb(f)
            } else {
                NetEvent::DelFdb(f)
            })
        }
        AddressFamily::Inet | AddressFamily::Inet6 => {
            let mut address = None;
            let mut out = Neighbour {
                ifindex: h.ifindex,
                address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                lladdr: None,
                state: u16::from(h.state),
                flags: h.flags.bits(),
                unknown: Vec::new(),
            };
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::Destination(d) => address = ip(d),
                    NeighbourAttribute::LinkLayerAddress(m) => out.lladdr = Some(m.clone()),
                    NeighbourAttribute::Other(nla) => out.unknown.push(raw(nla)),
                    _ => {}
                }
            }
            let Some(address) = address else {
                tracing::warn!(ifindex = h.ifindex, "neighbour without an address; skipped");
                return None;
            };
            out.address = address;
            if is_multicast_mapping(&out) {
                return None;
            }
            Some(if new {
                NetEvent::NewNeighbour(out)
            } else {
                NetEvent::DelNeighbour(out)
            })
        }
        _ => None,
    }
}
