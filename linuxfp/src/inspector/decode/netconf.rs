// SPDX-License-Identifier: MIT OR Apache-2.0
//! `RTM_NEWNETCONF` / `RTM_DELNETCONF`, which netlink-packet-route does not
//! decode: `struct netconfmsg { u8 ncm_family; }` (padded to 4) then
//! `NETCONFA_*` attributes.

use super::{RawAttr, attrs};
use crate::state::Netconf;

const NETCONFA_IFINDEX: u16 = 1;
const NETCONFA_FORWARDING: u16 = 2;
const NETCONFA_RP_FILTER: u16 = 3;
const NETCONFA_MC_FORWARDING: u16 = 4;
const NETCONFA_PROXY_NEIGH: u16 = 5;
const NETCONFA_IGNORE_ROUTES_WITH_LINKDOWN: u16 = 6;
const NETCONFA_INPUT: u16 = 7;
const NETCONFA_BC_FORWARDING: u16 = 8;

/// Why a netconf message was rejected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NetconfError {
    #[error("netconf message shorter than its header")]
    Short,
    #[error("netconf family {0} is neither AF_INET nor AF_INET6")]
    Family(u8),
    #[error("netconf message without NETCONFA_IFINDEX")]
    NoIfindex,
    #[error("netconf attribute {0} is not 4 bytes")]
    BadValue(u16),
}

pub(crate) fn decode(payload: &[u8]) -> Result<Netconf, NetconfError> {
    let family = match *payload.first().ok_or(NetconfError::Short)? {
        f if f == libc::AF_INET as u8 => 4,
        f if f == libc::AF_INET6 as u8 => 6,
        f => return Err(NetconfError::Family(f)),
    };
    let mut n = Netconf {
        family,
        ..Default::default()
    };
    let mut ifindex = None;
    for (kind, value) in attrs(payload.get(4..).unwrap_or(&[])) {
        let int = || {
            value
                .try_into()
                .map(i32::from_ne_bytes)
                .map_err(|_| NetconfError::BadValue(kind))
        };
        match kind {
            NETCONFA_IFINDEX => ifindex = Some(int()?),
            NETCONFA_FORWARDING => n.forwarding = Some(int()?),
            NETCONFA_RP_FILTER => n.rp_filter = Some(int()?),
            NETCONFA_MC_FORWARDING => n.mc_forwarding = Some(int()?),
            NETCONFA_PROXY_NEIGH => n.proxy_neigh = Some(int()?),
            NETCONFA_IGNORE_ROUTES_WITH_LINKDOWN => n.ignore_routes_with_linkdown = Some(int()?),
            NETCONFA_INPUT => n.input = Some(int()?),
            NETCONFA_BC_FORWARDING => n.bc_forwarding = Some(int()?),
            _ => n.unknown.push(RawAttr {
                kind,
                value: value.to_vec(),
            }),
        }
    }
    n.ifindex = ifindex.ok_or(NetconfError::NoIfindex)?;
    Ok(n)
}
