// SPDX-License-Identifier: MIT OR Apache-2.0
//! ABI of the router FPM: its punt reasons and map value types.

use crate::abi::counter::FIRST_FPM_REASON;

/// Not IPv4 or IPv6 (ARP, LLDP, ...): the kernel handles it.
pub const PUNT_NOT_IP: u32 = FIRST_FPM_REASON;
/// VLAN-tagged frame: the kernel's VLAN device receives it.
pub const PUNT_VLAN: u32 = FIRST_FPM_REASON + 1;
/// IPv4 header with options.
pub const PUNT_IP_OPTIONS: u32 = FIRST_FPM_REASON + 2;
/// TTL or hop limit would expire: the kernel sends ICMP time exceeded.
pub const PUNT_TTL: u32 = FIRST_FPM_REASON + 3;
/// IPv4 fragment or IPv6 fragment header.
pub const PUNT_FRAGMENT: u32 = FIRST_FPM_REASON + 4;
/// Martian or non-forwardable address (loopback, multicast, link-local,
/// zero network, limited broadcast): the kernel decides, usually drops.
pub const PUNT_MARTIAN: u32 = FIRST_FPM_REASON + 5;
/// Broadcast or multicast destination MAC.
pub const PUNT_L2_MULTICAST: u32 = FIRST_FPM_REASON + 6;
/// Destination MAC is not the ingress interface's own (PACKET_OTHERHOST).
pub const PUNT_OTHER_HOST: u32 = FIRST_FPM_REASON + 7;
/// FIB says local delivery (or otherwise not forwarded).
pub const PUNT_LOCAL: u32 = FIRST_FPM_REASON + 8;
/// Forwarding disabled on the ingress interface or globally.
pub const PUNT_FWD_DISABLED: u32 = FIRST_FPM_REASON + 9;
/// Blackhole, unreachable or prohibit route: the kernel drops or answers.
pub const PUNT_ROUTE_REJECT: u32 = FIRST_FPM_REASON + 10;
/// No neighbour entry for the next hop: the kernel resolves it.
pub const PUNT_NO_NEIGH: u32 = FIRST_FPM_REASON + 11;
/// Packet larger than the egress MTU: the kernel fragments or answers.
pub const PUNT_FRAG_NEEDED: u32 = FIRST_FPM_REASON + 12;
/// Any other FIB result (no route, lightweight tunnel, no source address).
pub const PUNT_FIB_OTHER: u32 = FIRST_FPM_REASON + 13;
/// The egress interface is not one the fast path may transmit on.
pub const PUNT_EGRESS: u32 = FIRST_FPM_REASON + 14;
/// Egress equals ingress: the kernel may send an ICMP redirect.
pub const PUNT_SAME_IF: u32 = FIRST_FPM_REASON + 15;
/// Truncated or malformed header: the kernel counts and drops it.
pub const PUNT_MALFORMED: u32 = FIRST_FPM_REASON + 16;
/// IPv6 hop-by-hop options header.
pub const PUNT_IPV6_HOPOPTS: u32 = FIRST_FPM_REASON + 17;
/// The family (IPv4 or IPv6) is not accelerated by the current plan.
pub const PUNT_FAMILY_OFF: u32 = FIRST_FPM_REASON + 18;
/// The redirect helper refused the packet.
pub const PUNT_REDIRECT_FAILED: u32 = FIRST_FPM_REASON + 19;
/// The frame is longer than the IP packet it carries (Ethernet padding or
/// trailing bytes): `ip_rcv` / `ipv6_rcv` trim it to the IP length before
/// forwarding, which the fast path leaves to the kernel.
pub const PUNT_TRAILER: u32 = FIRST_FPM_REASON + 20;

/// IPv4 packet longer than the smallest route MTU metric configured: the
/// kernel applies route MTUs when forwarding that `bpf_fib_lookup` ignores
/// unless they are locked, so such packets go to the kernel.
pub const PUNT_ROUTE_MTU: u32 = FIRST_FPM_REASON + 21;

/// Names of the router's punt reasons, indexed from `FIRST_FPM_REASON`.
pub const PUNT_NAMES: [&str; 22] = [
    "not_ip",
    "vlan",
    "ip_options",
    "ttl",
    "fragment",
    "martian",
    "l2_multicast",
    "other_host",
    "local",
    "fwd_disabled",
    "route_reject",
    "no_neigh",
    "frag_needed",
    "fib_other",
    "egress",
    "same_if",
    "malformed",
    "ipv6_hopopts",
    "family_off",
    "redirect_failed",
    "trailer",
    "route_mtu",
];

/// Map: the router's egress interfaces for XDP redirects (`DevMapHash`,
/// key and value: ifindex).
pub const XDP_PORTS_MAP: &str = "ROUTER_XDP_PORTS";
/// Map: the router's interfaces (`Array<RouterIface>` indexed by ifindex,
/// below [`crate::abi::MAX_IFINDEX`]; an all-zero entry is not a router
/// interface), read on ingress (own MAC) and on egress (may the fast path
/// transmit there). An array, not a hash: two lookups per packet.
pub const IFACES_MAP: &str = "ROUTER_IFACES";
/// Capacity of [`IFACES_MAP`] and [`XDP_PORTS_MAP`].
pub const MAX_IFACES: u32 = 1024;

/// Router configuration global name ([`RouterConf`]).
pub const CONF_GLOBAL: &str = "ROUTER_CONF";

/// `RouterConf::families` bit: forward IPv4 in the fast path.
pub const FAMILY_IPV4: u32 = 1;
/// `RouterConf::families` bit: forward IPv6 in the fast path.
pub const FAMILY_IPV6: u32 = 2;

/// Load-time configuration of the router programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterConf {
    /// `FAMILY_*` bits.
    pub families: u32,
    /// The smallest MTU metric of any IPv4 route, 0 if none has one. IPv4
    /// packets (GSO: segments) longer than this go to the kernel:
    /// `ip_forward` honours a route's MTU, locked or not, while
    /// `bpf_fib_lookup` checks only locked ones.
    pub ipv4_route_mtu: u32,
    /// How the source of a forwarded IPv4 packet is checked
    /// (`SRC_CHECK_*`): what `fib_validate_source` rejects as a martian
    /// source must go to the kernel.
    pub src_check: u32,
}

/// `RouterConf::src_check`: ask the FIB about the source (a second
/// `bpf_fib_lookup`): exact whatever the rules and tables. The default,
/// and what the parameterizer falls back to.
pub const SRC_CHECK_FIB: u32 = 0;
/// `RouterConf::src_check`: one lookup in [`SRC4_MAP`], which holds every
/// source the kernel could call a martian. Chosen by the parameterizer
/// when that set is small and exact: only the default policy rules, and
/// every non-unicast route of the tables they consult a host route.
pub const SRC_CHECK_MAP: u32 = 1;

/// Map: IPv4 sources (`HashMap<u32, u8>`, address in network byte order)
/// whose packets the kernel may drop as martian sources: the host's own
/// addresses and the host routes of type local, broadcast, anycast,
/// multicast or nat. Read only under [`SRC_CHECK_MAP`].
pub const SRC4_MAP: &str = "ROUTER_SRC4";
/// Capacity of [`SRC4_MAP`]; a larger set makes the parameterizer fall
/// back to [`SRC_CHECK_FIB`].
pub const MAX_SRC4: u32 = 4096;

/// `RouterIface::flags`: packets may be forwarded out of this interface.
pub const IFACE_EGRESS: u16 = 1;
/// `RouterIface::flags`: packets arriving here may be forwarded.
pub const IFACE_INGRESS: u16 = 2;
/// `RouterIface::flags`: the interface is in [`XDP_PORTS_MAP`], so the XDP
/// program may redirect to it (checked before any rewrite, so a redirect
/// never fails after the TTL was decremented).
pub const IFACE_XDP_EGRESS: u16 = 4;

/// Value of [`IFACES_MAP`]: one interface of the router.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterIface {
    /// The interface's own MAC: unicast frames to any other MAC are
    /// `PACKET_OTHERHOST` for the kernel and are not forwarded.
    pub mac: [u8; 6],
    /// `IFACE_*` bits.
    pub flags: u16,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), three u32 fields, no padding.
    unsafe impl aya::Pod for super::RouterConf {}
    // SAFETY: repr(C), 6 bytes + u16 = 8 bytes, no padding.
    unsafe impl aya::Pod for super::RouterIface {}
}

const _: () = assert!(core::mem::size_of::<RouterIface>() == 8);
const _: () = assert!(core::mem::size_of::<RouterConf>() == 12);
