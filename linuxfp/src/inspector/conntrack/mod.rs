// SPDX-License-Identifier: MIT OR Apache-2.0
//! The kernel's connection tracking table of a namespace, read over
//! ctnetlink (`NFNL_SUBSYS_CTNETLINK` on a `NETLINK_NETFILTER` socket):
//! a full dump (`IPCTNL_MSG_CT_GET` with `NLM_F_DUMP`), the change events
//! (groups `NFNLGRP_CONNTRACK_NEW`, `_UPDATE`, `_DESTROY`), and the one
//! write LinuxFP needs: setting an entry's timeout (`IPCTNL_MSG_CT_NEW`
//! without `NLM_F_CREATE`), as the kernel refreshes it when it sees a
//! packet of the flow.
//!
//! Decoding is pure ([`decode_message`]) and strict: a malformed entry is
//! a [`DecodeError`](crate::inspector::nftables::DecodeError) naming the attribute, which the socket reader counts
//! and skips ([`CtSocket::dump`], [`CtSocket::events`]); never a panic.
//!
//! Minimum kernel version: 6.1 (every attribute read here is much older;
//! tested on 6.18).

mod decode;
mod socket;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use self::{
    decode::{decode_message, encode_tuple},
    socket::{CtBatch, CtSocket},
};

/// `IPS_EXPECTED`: the connection was expected by a helper (RELATED).
pub const IPS_EXPECTED: u32 = 1 << 0;
/// `IPS_SEEN_REPLY`: packets were seen in both directions.
pub const IPS_SEEN_REPLY: u32 = 1 << 1;
/// `IPS_ASSURED`: the kernel considers the connection established for
/// good (TCP handshake done, UDP stream seen).
pub const IPS_ASSURED: u32 = 1 << 2;
/// `IPS_CONFIRMED`: the entry is in the table.
pub const IPS_CONFIRMED: u32 = 1 << 3;
/// `IPS_SRC_NAT`: source NAT applies.
pub const IPS_SRC_NAT: u32 = 1 << 4;
/// `IPS_DST_NAT`: destination NAT applies.
pub const IPS_DST_NAT: u32 = 1 << 5;
/// `IPS_SEQ_ADJUST`: TCP sequence numbers are rewritten (helpers).
pub const IPS_SEQ_ADJUST: u32 = 1 << 6;
/// `IPS_DYING`: the entry is being removed.
pub const IPS_DYING: u32 = 1 << 9;
/// `IPS_FIXED_TIMEOUT`: the timeout is not refreshed by packets.
pub const IPS_FIXED_TIMEOUT: u32 = 1 << 10;
/// `IPS_TEMPLATE`: a template, not a connection.
pub const IPS_TEMPLATE: u32 = 1 << 11;
/// `IPS_UNTRACKED`: notrack.
pub const IPS_UNTRACKED: u32 = 1 << 12;
/// `IPS_OFFLOAD`: handled by a flowtable.
pub const IPS_OFFLOAD: u32 = 1 << 14;
/// `IPS_HW_OFFLOAD`: handled by a hardware flowtable.
pub const IPS_HW_OFFLOAD: u32 = 1 << 15;

/// `TCP_CONNTRACK_ESTABLISHED`.
pub const TCP_CONNTRACK_ESTABLISHED: u8 = 3;
/// `IP_CT_TCP_FLAG_BE_LIBERAL`: window tracking is off for this direction.
pub const IP_CT_TCP_FLAG_BE_LIBERAL: u8 = 0x08;

/// `IPPROTO_TCP`.
pub const PROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const PROTO_UDP: u8 = 17;

/// One direction of a connection: addresses, L4 protocol and ports (ICMP
/// id/type/code are not kept: ICMP entries only need to be told apart
/// from TCP and UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CtTuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// L4 protocol number.
    pub proto: u8,
    /// Source port (TCP, UDP, SCTP, DCCP, UDP-Lite), else 0.
    pub sport: u16,
    /// Destination port, else 0.
    pub dport: u16,
}

impl CtTuple {
    /// The same flow seen from the other side.
    pub fn inverted(&self) -> CtTuple {
        CtTuple {
            src: self.dst,
            dst: self.src,
            proto: self.proto,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

/// TCP protocol state of an entry (`CTA_PROTOINFO_TCP`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TcpInfo {
    /// `TCP_CONNTRACK_*` state.
    pub state: u8,
    /// `IP_CT_TCP_FLAG_*` of the original direction.
    pub flags_orig: u8,
    /// `IP_CT_TCP_FLAG_*` of the reply direction.
    pub flags_reply: u8,
}

impl TcpInfo {
    /// Window tracking is off for both directions
    /// ([`IP_CT_TCP_FLAG_BE_LIBERAL`] on each).
    pub fn liberal(&self) -> bool {
        self.flags_orig & self.flags_reply & IP_CT_TCP_FLAG_BE_LIBERAL != 0
    }
}

/// One conntrack entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CtEntry {
    /// The original direction.
    pub orig: CtTuple,
    /// The reply direction (differs from `orig.inverted()` under NAT).
    pub reply: CtTuple,
    /// `IPS_*` bits.
    pub status: u32,
    /// Seconds left (0 when absent: dying entries have none).
    pub timeout: u32,
    /// `ct mark`.
    pub mark: u32,
    /// Conntrack zone of the entry (0 default); a zone on either tuple
    /// counts too.
    pub zone: u16,
    /// The entry's id (`CTA_ID`), 0 when absent.
    pub id: u32,
    /// TCP state, for TCP entries.
    pub tcp: Option<TcpInfo>,
    /// A helper is attached (`CTA_HELP`).
    pub helper: bool,
    /// NAT attributes present (`CTA_NAT_SRC`/`CTA_NAT_DST`) or sequence
    /// adjustment: the kernel rewrites packets of this flow.
    pub rewrites: bool,
}

/// What a ctnetlink message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtEvent {
    /// An entry, new or changed (dump replies, `NEW` and `UPDATE` events).
    Upsert(CtEntry),
    /// An entry removed (`DESTROY` events).
    Destroy(CtEntry),
}

/// Multicast groups of conntrack changes: `NFNLGRP_CONNTRACK_NEW`,
/// `_UPDATE`, `_DESTROY`.
pub const CT_GROUPS: [u32; 3] = [1, 2, 3];
