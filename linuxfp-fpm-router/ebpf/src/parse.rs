// SPDX-License-Identifier: MIT OR Apache-2.0
//! Header parsing: Ethernet, IPv4, IPv6 and the L4 ports, each bounds
//! checked once. Anything the router must not forward becomes a punt reason.

use linuxfp_ebpf_common::{
    ebpf::ptr_at,
    net::{
        ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, EthHdr, IPPROTO_FRAGMENT,
        IPPROTO_HOPOPTS, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, IPV6_HLEN, IP_MF, IP_OFFSET,
        Ipv4Hdr, Ipv6Hdr,
    },
    router::*,
};

/// What the router needs to know about a packet.
pub struct Packet {
    pub v6: bool,
    pub l3_offset: u32,
    pub l4_offset: u32,
    /// L4 header length for TCP/UDP (0 for other protocols).
    pub l4_hdr_len: u32,
    /// IPv4 total length / IPv6 payload length + 40.
    pub l3_len: u16,
    pub l4_proto: u8,
    pub tos: u8,
    pub flowinfo_be: u32,
    pub sport_be: u16,
    pub dport_be: u16,
    pub src4_be: u32,
    pub dst4_be: u32,
    pub src6: [u32; 4],
    pub dst6: [u32; 4],
}

#[inline(always)]
fn l4_ports(start: usize, end: usize, off: usize, proto: u8) -> Result<(u16, u16, u32), u32> {
    match proto {
        IPPROTO_TCP => {
            let h = ptr_at::<[u8; 20]>(start, end, off).ok_or(PUNT_MALFORMED)?;
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { &*h };
            let doff = ((h[12] >> 4) as u32) * 4;
            if doff < 20 {
                return Err(PUNT_MALFORMED);
            }
            Ok((
                u16::from_ne_bytes([h[0], h[1]]),
                u16::from_ne_bytes([h[2], h[3]]),
                doff,
            ))
        }
        IPPROTO_UDP => {
            let h = ptr_at::<[u8; 8]>(start, end, off).ok_or(PUNT_MALFORMED)?;
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { &*h };
            Ok((
                u16::from_ne_bytes([h[0], h[1]]),
                u16::from_ne_bytes([h[2], h[3]]),
                8,
            ))
        }
        _ => Ok((0, 0, 0)),
    }
}

/// How a hook tells that a unicast frame is addressed to this host.
pub enum Host<'a> {
    /// XDP: the destination MAC must be the ingress interface's own.
    Mac(&'a [u8; 6]),
    /// TC: the kernel already classified the frame (`skb->pkt_type`).
    PktType(u32),
}

/// `skb->pkt_type` of a frame addressed to this host.
const PACKET_HOST: u32 = 0;

/// Parses the packet. `pkt_len` is the whole packet's length:
/// `data_end - data` for XDP, but `skb->len` for TC, where a GSO packet's
/// payload lies beyond the linear part that direct access sees.
///
/// Group-addressed frames are punted before the host check on both hooks,
/// so a broadcast counts as `l2_multicast` on XDP and TC alike (for TC its
/// `pkt_type` is `PACKET_BROADCAST`, not `PACKET_OTHERHOST`).
#[inline(always)]
pub fn parse(
    start: usize,
    end: usize,
    pkt_len: usize,
    host: Host<'_>,
    families: u32,
) -> Result<Packet, u32> {
    let eth = ptr_at::<EthHdr>(start, end, 0).ok_or(PUNT_MALFORMED)?;
    // SAFETY: bounds checked by ptr_at.
    let eth = unsafe { &*eth };
    if eth.dst[0] & 1 != 0 {
        return Err(PUNT_L2_MULTICAST);
    }
    let for_us = match host {
        Host::Mac(mac) => eth.dst == *mac,
        Host::PktType(pkt_type) => pkt_type == PACKET_HOST,
    };
    if !for_us {
        return Err(PUNT_OTHER_HOST);
    }
    let proto = u16::from_be(eth.proto_be);
    match proto {
        ETH_P_IP => {
            if families & FAMILY_IPV4 == 0 {
                return Err(PUNT_FAMILY_OFF);
            }
            parse_v4(start, end, pkt_len)
        }
        ETH_P_IPV6 => {
            if families & FAMILY_IPV6 == 0 {
                return Err(PUNT_FAMILY_OFF);
            }
            parse_v6(start, end, pkt_len)
        }
        ETH_P_8021Q | ETH_P_8021AD => Err(PUNT_VLAN),
        _ => Err(PUNT_NOT_IP),
    }
}

#[inline(always)]
fn ipv4_martian(a_be: u32) -> bool {
    let a = u32::from_be(a_be);
    let first = a >> 24;
    // 0/8, 127/8, 224/4 multicast, 240/4 class E incl. 255.255.255.255.
    first == 0 || first == 127 || first >= 224
}

#[inline(always)]
fn parse_v4(start: usize, end: usize, pkt_len: usize) -> Result<Packet, u32> {
    let ip = ptr_at::<Ipv4Hdr>(start, end, ETH_HLEN).ok_or(PUNT_MALFORMED)?;
    // SAFETY: bounds checked by ptr_at.
    let ip = unsafe { &*ip };
    if ip.version_ihl >> 4 != 4 {
        return Err(PUNT_MALFORMED);
    }
    let ihl = (ip.version_ihl & 0x0F) as usize;
    if ihl < 5 {
        return Err(PUNT_MALFORMED);
    }
    let tot_len = u16::from_be(ip.tot_len_be);
    if (tot_len as usize) < ihl * 4 || ETH_HLEN + tot_len as usize > pkt_len {
        return Err(PUNT_MALFORMED);
    }
    // ip_rcv trims the frame to tot_len; forwarding it whole would send
    // the trailing bytes on.
    if ETH_HLEN + (tot_len as usize) < pkt_len {
        return Err(PUNT_TRAILER);
    }
    if ihl != 5 {
        return Err(PUNT_IP_OPTIONS);
    }
    // ip_rcv drops headers whose checksum does not verify: leave those to it.
    if !ipv4_checksum_ok(start, end)? {
        return Err(PUNT_MALFORMED);
    }
    let frag = u16::from_be(ip.frag_off_be);
    if frag & (IP_MF | IP_OFFSET) != 0 {
        return Err(PUNT_FRAGMENT);
    }
    if ipv4_martian(ip.saddr_be) || ipv4_martian(ip.daddr_be) {
        return Err(PUNT_MARTIAN);
    }
    if ip.ttl <= 1 {
        return Err(PUNT_TTL);
    }
    let l4 = ETH_HLEN + IPV4_HLEN;
    let (sport_be, dport_be, l4_hdr_len) = l4_ports(start, end, l4, ip.protocol)?;
    Ok(Packet {
        v6: false,
        l3_offset: ETH_HLEN as u32,
        l4_offset: l4 as u32,
        l4_hdr_len,
        l3_len: tot_len,
        l4_proto: ip.protocol,
        tos: ip.tos,
        flowinfo_be: 0,
        sport_be,
        dport_be,
        src4_be: ip.saddr_be,
        dst4_be: ip.daddr_be,
        src6: [0; 4],
        dst6: [0; 4],
    })
}

#[inline(always)]
fn ipv4_checksum_ok(start: usize, end: usize) -> Result<bool, u32> {
    let words = ptr_at::<[u16; 10]>(start, end, ETH_HLEN).ok_or(PUNT_MALFORMED)?;
    // SAFETY: bounds checked by ptr_at.
    let words = unsafe { core::ptr::read_unaligned(words) };
    let mut sum = 0u32;
    for w in words {
        sum += w as u32;
    }
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    Ok(sum == 0xFFFF)
}

#[inline(always)]
fn ipv6_unforwardable(a: &[u8; 16]) -> bool {
    let multicast = a[0] == 0xFF;
    let link_local = a[0] == 0xFE && (a[1] & 0xC0) == 0x80;
    let zero_prefix = a[..10].iter().all(|b| *b == 0);
    // ::, ::1 and ::ffff:0:0/96 (IPv4-mapped) all start with 80 zero bits.
    let unspec_loop_mapped = zero_prefix && (a[10..12] == [0, 0] || a[10..12] == [0xFF, 0xFF]);
    multicast || link_local || unspec_loop_mapped
}

#[inline(always)]
fn parse_v6(start: usize, end: usize, pkt_len: usize) -> Result<Packet, u32> {
    let ip = ptr_at::<Ipv6Hdr>(start, end, ETH_HLEN).ok_or(PUNT_MALFORMED)?;
    // SAFETY: bounds checked by ptr_at.
    let ip = unsafe { &*ip };
    let vtc = u32::from_be(ip.vtc_flow_be);
    if vtc >> 28 != 6 {
        return Err(PUNT_MALFORMED);
    }
    let payload = u16::from_be(ip.payload_len_be) as usize;
    if ETH_HLEN + IPV6_HLEN + payload > pkt_len {
        return Err(PUNT_MALFORMED);
    }
    // As ipv6_rcv trims to the payload length.
    if ETH_HLEN + IPV6_HLEN + payload < pkt_len {
        return Err(PUNT_TRAILER);
    }
    match ip.nexthdr {
        IPPROTO_HOPOPTS => return Err(PUNT_IPV6_HOPOPTS),
        IPPROTO_FRAGMENT => return Err(PUNT_FRAGMENT),
        _ => {}
    }
    if ipv6_unforwardable(&ip.saddr) || ipv6_unforwardable(&ip.daddr) {
        return Err(PUNT_MARTIAN);
    }
    if ip.hop_limit <= 1 {
        return Err(PUNT_TTL);
    }
    let l4 = ETH_HLEN + IPV6_HLEN;
    let (sport_be, dport_be, l4_hdr_len) = l4_ports(start, end, l4, ip.nexthdr)?;
    let words = |a: &[u8; 16]| {
        let mut w = [0u32; 4];
        let mut i = 0;
        while i < 4 {
            w[i] = u32::from_ne_bytes([a[i * 4], a[i * 4 + 1], a[i * 4 + 2], a[i * 4 + 3]]);
            i += 1;
        }
        w
    };
    Ok(Packet {
        v6: true,
        l3_offset: ETH_HLEN as u32,
        l4_offset: l4 as u32,
        l4_hdr_len,
        l3_len: (payload + IPV6_HLEN) as u16,
        l4_proto: ip.nexthdr,
        tos: 0,
        // The flow label and traffic class, as the kernel hashes them.
        flowinfo_be: ip.vtc_flow_be & 0x0FFF_FFFFu32.to_be(),
        sport_be,
        dport_be,
        src4_be: 0,
        dst4_be: 0,
        src6: words(&ip.saddr),
        dst6: words(&ip.daddr),
    })
}
