// SPDX-License-Identifier: MIT OR Apache-2.0
//! ABI of the bridge FPM: its punt reasons, maps and map value types.
//!
//! The bridge stage runs on bridge ports. It forwards known unicast frames
//! port to port exactly as the Linux bridge would (`br_handle_frame` →
//! `br_forward`), using a mirror of the kernel's FDB and VLAN tables, and
//! hands everything else to the kernel bridge under a named reason.

use crate::abi::counter::FIRST_FPM_REASON;

/// The ingress interface is not a port this stage serves.
pub const PUNT_NOT_PORT: u32 = FIRST_FPM_REASON;
/// The ingress port is not in forwarding state (disabled, listening,
/// learning, blocking): the kernel learns or drops.
pub const PUNT_PORT_STATE: u32 = FIRST_FPM_REASON + 1;
/// The ingress port is locked (802.1X / MAB).
pub const PUNT_LOCKED: u32 = FIRST_FPM_REASON + 2;
/// Link-local destination (01:80:c2:00:00:0X: STP, LACP, 802.1X, LLDP).
pub const PUNT_LINK_LOCAL: u32 = FIRST_FPM_REASON + 3;
/// Broadcast or multicast destination: the kernel floods or snoops.
pub const PUNT_MULTICAST: u32 = FIRST_FPM_REASON + 4;
/// The source MAC is not a valid unicast address: the kernel drops.
pub const PUNT_BAD_SRC: u32 = FIRST_FPM_REASON + 5;
/// The source MAC is unknown, or known on another port or VLAN: the kernel
/// must learn (or move) it.
pub const PUNT_LEARN: u32 = FIRST_FPM_REASON + 6;
/// The destination MAC is not in the FDB: the kernel floods.
pub const PUNT_UNKNOWN_DST: u32 = FIRST_FPM_REASON + 7;
/// The destination is the bridge itself (a local FDB entry): the kernel
/// passes the frame up to the bridge device (and its router stage).
pub const PUNT_LOCAL: u32 = FIRST_FPM_REASON + 8;
/// VLAN filtering: the frame's VLAN is not allowed on the ingress port, or
/// an untagged frame arrived on a port without a PVID.
pub const PUNT_VLAN_INGRESS: u32 = FIRST_FPM_REASON + 9;
/// VLAN filtering: the VLAN is not allowed on the egress port.
pub const PUNT_VLAN_EGRESS: u32 = FIRST_FPM_REASON + 10;
/// A VLAN tag the fast path does not model (other protocol than the
/// bridge's, priority-tagged, stacked, or a tag where none is expected).
pub const PUNT_VLAN_OTHER: u32 = FIRST_FPM_REASON + 11;
/// The destination is on the ingress port (without hairpin): the kernel
/// drops.
pub const PUNT_SAME_PORT: u32 = FIRST_FPM_REASON + 12;
/// The egress port may not be used by the fast path: not forwarding, down,
/// isolated from the ingress, not XDP-capable, or another bridge's.
pub const PUNT_EGRESS: u32 = FIRST_FPM_REASON + 13;
/// ARP, RARP or IPv6 neighbour discovery: the bridge may suppress or proxy
/// them.
pub const PUNT_NEIGH: u32 = FIRST_FPM_REASON + 14;
/// Frame longer than the egress MTU allows: the kernel drops it.
pub const PUNT_TOO_BIG: u32 = FIRST_FPM_REASON + 15;
/// Truncated frame.
pub const PUNT_MALFORMED: u32 = FIRST_FPM_REASON + 16;
/// Adding or removing a VLAN tag failed.
pub const PUNT_TAG_FAILED: u32 = FIRST_FPM_REASON + 17;
/// The redirect helper refused the frame.
pub const PUNT_REDIRECT_FAILED: u32 = FIRST_FPM_REASON + 18;
/// The destination was just seen arriving on another port: the kernel is
/// moving its FDB entry and the mirror has not caught up yet.
pub const PUNT_MOVING: u32 = FIRST_FPM_REASON + 19;
/// `br_netfilter` passes bridged IP traffic of this family through the IP
/// hooks, and first validates the header (`br_validate_ipv4` / `_ipv6`):
/// it drops bad headers, trims trailing bytes and parses IPv4 options and
/// IPv6 hop-by-hop options. A frame that is not a plain, valid IP packet
/// filling the frame (or is VLAN-tagged) goes to the kernel.
pub const PUNT_BR_NETFILTER: u32 = FIRST_FPM_REASON + 20;

/// Names of the bridge's punt reasons, indexed from `FIRST_FPM_REASON`.
pub const PUNT_NAMES: [&str; 21] = [
    "not_port",
    "port_state",
    "locked",
    "link_local",
    "multicast",
    "bad_src",
    "learn",
    "unknown_dst",
    "local",
    "vlan_ingress",
    "vlan_egress",
    "vlan_other",
    "same_port",
    "egress",
    "neigh",
    "too_big",
    "malformed",
    "tag_failed",
    "redirect_failed",
    "moving",
    "br_netfilter",
];

/// Map: the bridge ports (`Array<PortConf>` indexed by ifindex, below
/// [`crate::abi::MAX_IFINDEX`]; an all-zero entry is not a port).
pub const PORTS_MAP: &str = "BRIDGE_PORTS";
/// Map: the FDB mirror (`HashMap<FdbKey, FdbValue>`).
pub const FDB_MAP: &str = "BRIDGE_FDB";
/// Map: VLAN membership of ports, for bridges with VLAN filtering
/// (`HashMap<VlanKey, u32>`, value `VLAN_*` bits).
pub const VLANS_MAP: &str = "BRIDGE_VLANS";
/// Map: source MACs seen on the fast path (`LruHashMap<FdbKey, Seen>`), so
/// the controller can refresh the kernel's entries that are in use.
pub const SEEN_MAP: &str = "BRIDGE_SEEN";
/// Map: the ports XDP may redirect to (`DevMapHash`, key and value:
/// ifindex).
pub const XDP_PORTS_MAP: &str = "BRIDGE_XDP_PORTS";

/// Capacity of [`FDB_MAP`] and [`SEEN_MAP`].
pub const MAX_FDB: u32 = 65536;
/// Capacity of [`VLANS_MAP`].
pub const MAX_VLANS: u32 = 65536;
/// Capacity of [`XDP_PORTS_MAP`].
pub const MAX_PORTS: u32 = 1024;

/// `PortConf::flags`: the bridge stage runs on this port's ingress.
pub const PORT_INGRESS: u32 = 1;
/// `PortConf::flags`: STP state is forwarding (and the port is up), so
/// frames may arrive here and leave here.
pub const PORT_FORWARDING: u32 = 2;
/// `PortConf::flags`: learning is on: an unknown source must go to the
/// kernel.
pub const PORT_LEARNING: u32 = 4;
/// `PortConf::flags`: hairpin mode: frames may leave by the port they came in.
pub const PORT_HAIRPIN: u32 = 8;
/// `PortConf::flags`: isolated: frames between two isolated ports are
/// dropped by the kernel.
pub const PORT_ISOLATED: u32 = 16;
/// `PortConf::flags`: locked (802.1X / MAB): everything goes to the kernel.
pub const PORT_LOCKED: u32 = 32;
/// `PortConf::flags`: the port's bridge filters VLANs.
pub const PORT_VLAN_FILTERING: u32 = 64;
/// `PortConf::flags`: the port is in [`XDP_PORTS_MAP`].
pub const PORT_XDP_EGRESS: u32 = 128;
/// `PortConf::flags`: `br_netfilter` validates bridged IPv4 headers here
/// (`net.bridge.bridge-nf-call-iptables`).
pub const PORT_BR_NF_IPV4: u32 = 256;
/// `PortConf::flags`: likewise for IPv6 (`bridge-nf-call-ip6tables`).
pub const PORT_BR_NF_IPV6: u32 = 512;

/// Value of [`PORTS_MAP`]: one bridge port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortConf {
    /// The bridge the port belongs to (its ifindex).
    pub bridge: u32,
    /// `PORT_*` bits.
    pub flags: u32,
    /// The port's MTU: longer frames are dropped by the kernel.
    pub mtu: u32,
    /// Port VLAN id for untagged frames (VLAN filtering), 0 if none.
    pub pvid: u16,
    /// The bridge's VLAN protocol (`0x8100` or `0x88a8`), host order.
    pub vlan_proto: u16,
}

/// Key of [`FDB_MAP`] and [`SEEN_MAP`]: a MAC in a VLAN of a bridge.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdbKey {
    /// The bridge's ifindex.
    pub bridge: u32,
    /// The VLAN (0 without VLAN filtering, as the kernel keys it).
    pub vlan: u16,
    /// The MAC address.
    pub mac: [u8; 6],
}

/// `FdbValue::flags`: the entry is local (the bridge's or a port's own
/// address): frames to it go up to the bridge device.
pub const FDB_LOCAL: u32 = 1;

/// `FdbValue::flags`: the entry is sticky (`NTF_STICKY`): the kernel never
/// moves it to another port.
pub const FDB_STICKY: u32 = 2;
/// `FdbValue::flags`, set by the fast path only: a frame from this MAC
/// arrived on another port at `moved_ns` and went to the kernel, which will
/// move the entry. Until the mirror is rewritten with the new port (which
/// clears the bit) or [`MOVE_GRACE_NS`] passes, frames to this MAC go to
/// the kernel, so none is sent to the old port after Linux moved it.
pub const FDB_MOVING: u32 = 4;

/// How long a [`FDB_MOVING`] mark holds (long enough for the kernel's event
/// to reach the mirror; if the kernel did not move the entry after all,
/// the mirror is trusted again after it).
pub const MOVE_GRACE_NS: u64 = 2_000_000_000;

/// Value of [`FDB_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdbValue {
    /// The port the MAC is behind.
    pub port: u32,
    /// `FDB_*` bits.
    pub flags: u32,
    /// See [`FDB_MOVING`]; zero when written by the controller.
    pub moved_ns: u64,
}

/// Key of [`VLANS_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlanKey {
    /// The port.
    pub port: u32,
    /// The VLAN id.
    pub vlan: u16,
    /// Zero.
    pub pad: u16,
}

/// [`VLANS_MAP`] value bit: the VLAN is allowed on the port.
pub const VLAN_MEMBER: u32 = 1;
/// [`VLANS_MAP`] value bit: frames of this VLAN leave the port untagged.
pub const VLAN_UNTAGGED: u32 = 2;

/// Value of [`SEEN_MAP`]: when a known source was last forwarded in the
/// fast path, and from which port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The ingress port.
    pub port: u32,
    /// Zero.
    pub pad: u32,
    /// `bpf_ktime_get_coarse_ns()` (CLOCK_MONOTONIC) of the last frame,
    /// updated at most every [`SEEN_GRANULARITY_NS`].
    pub last_ns: u64,
}

/// How stale a [`Seen`] timestamp may get before the fast path rewrites it
/// (keeps the cache line mostly read-only under load).
pub const SEEN_GRANULARITY_NS: u64 = 250_000_000;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), integers only, no padding (size asserts below).
    unsafe impl aya::Pod for super::PortConf {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FdbKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FdbValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::VlanKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Seen {}
}

const _: () = assert!(core::mem::size_of::<PortConf>() == 16);
const _: () = assert!(core::mem::size_of::<FdbKey>() == 12);
const _: () = assert!(core::mem::size_of::<FdbValue>() == 16);
const _: () = assert!(core::mem::size_of::<VlanKey>() == 8);
const _: () = assert!(core::mem::size_of::<Seen>() == 16);
