// SPDX-License-Identifier: MIT OR Apache-2.0
//! Wire constants and header layouts the stages parse (network byte order on
//! the wire; the constants here are host order unless named `_BE`).

/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86DD;
/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of an 802.1Q VLAN tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// EtherType of an 802.1ad (QinQ) service tag.
pub const ETH_P_8021AD: u16 = 0x88A8;

/// Length of an Ethernet header without tags.
pub const ETH_HLEN: usize = 14;
/// Length of one VLAN tag.
pub const VLAN_HLEN: usize = 4;
/// Length of an IPv4 header without options.
pub const IPV4_HLEN: usize = 20;
/// Length of the fixed IPv6 header.
pub const IPV6_HLEN: usize = 40;

/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// IPv6 next header: hop-by-hop options.
pub const IPPROTO_HOPOPTS: u8 = 0;
/// IPv6 next header: fragment header.
pub const IPPROTO_FRAGMENT: u8 = 44;

/// IPv4 flags/fragment-offset field: more-fragments bit (host order).
pub const IP_MF: u16 = 0x2000;
/// IPv4 flags/fragment-offset field: offset mask (host order).
pub const IP_OFFSET: u16 = 0x1FFF;

/// Ethernet header.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EthHdr {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// EtherType, network order.
    pub proto_be: u16,
}

/// IPv4 header without options.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Hdr {
    /// Version (high nibble) and header length in 32-bit words (low nibble).
    pub version_ihl: u8,
    /// DSCP and ECN.
    pub tos: u8,
    /// Total length, network order.
    pub tot_len_be: u16,
    /// Identification, network order.
    pub id_be: u16,
    /// Flags and fragment offset, network order.
    pub frag_off_be: u16,
    /// Time to live.
    pub ttl: u8,
    /// L4 protocol.
    pub protocol: u8,
    /// Header checksum, network order.
    pub check_be: u16,
    /// Source address, network order.
    pub saddr_be: u32,
    /// Destination address, network order.
    pub daddr_be: u32,
}

/// Fixed IPv6 header.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Hdr {
    /// Version, traffic class and flow label, network order.
    pub vtc_flow_be: u32,
    /// Payload length, network order.
    pub payload_len_be: u16,
    /// Next header.
    pub nexthdr: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
}

/// The first four bytes of TCP and UDP: the ports.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct L4Ports {
    /// Source port, network order.
    pub sport_be: u16,
    /// Destination port, network order.
    pub dport_be: u16,
}

/// Decrements an IPv4 TTL in place and patches the header checksum
/// incrementally, exactly as the kernel's `ip_decrease_ttl` does (RFC 1624).
#[inline(always)]
pub fn ipv4_decrease_ttl(hdr: &mut Ipv4Hdr) {
    // The TTL is the high byte of the 16-bit word it shares with the
    // protocol, so decrementing it lowers that word by 0x0100 and raises the
    // one's complement checksum by the same amount.
    let mut check = u16::from_be(hdr.check_be) as u32;
    check += 0x0100;
    let check = (check + (check >= 0xFFFF) as u32) as u16;
    hdr.check_be = check.to_be();
    hdr.ttl -= 1;
}
