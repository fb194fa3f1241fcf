// SPDX-License-Identifier: MIT OR Apache-2.0
//! Header parsing: Ethernet, IPv4, IPv6 and the L4 fields the rules read,
//! each bounds checked once. The same ideas as the router's parser, kept
//! standalone so the filter works in front of any stage.

use linuxfp_ebpf_common::{
    ebpf::ptr_at,
    filter::*,
    net::{
        ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, IP_MF, IP_OFFSET, IPPROTO_ICMP, IPPROTO_ICMPV6,
        IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, IPV6_HLEN, Ipv4Hdr, Ipv6Hdr,
    },
};

/// What the filter knows about a packet.
pub struct Packet {
    pub v6: bool,
    /// L4 protocol (also in the key).
    pub l4proto: u8,
    /// TCP or UDP: `key.sport`/`key.dport` are ports.
    pub ports: bool,
    pub ttl: u8,
    pub tos: u8,
    pub flowinfo_be: u32,
    /// IPv4 total length / IPv6 payload length + 40.
    pub l3_len: u16,
    pub l3_offset: u32,
    pub l4_offset: u32,
    /// TCP header length (0 for other protocols).
    pub l4_hdr_len: u32,
    /// The UDP header's length field (0 for other protocols).
    pub udp_len: u16,
}

/// Fills the L4 fields of `key`; returns (ports?, TCP header length, UDP
/// length field).
#[inline(always)]
fn l4(start: usize, end: usize, off: usize, key: &mut FlowKey) -> Result<(bool, u32, u16), u32> {
    match key.l4proto {
        IPPROTO_TCP => {
            let h = ptr_at::<[u8; 20]>(start, end, off).ok_or(PUNT_MALFORMED)?;
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { &*h };
            let doff = ((h[12] >> 4) as u32) * 4;
            if doff < 20 {
                return Err(PUNT_MALFORMED);
            }
            key.sport = u16::from_be_bytes([h[0], h[1]]);
            key.dport = u16::from_be_bytes([h[2], h[3]]);
            key.tcp_flags = h[13];
            Ok((true, doff, 0))
        }
        IPPROTO_UDP => {
            let h = ptr_at::<[u8; 8]>(start, end, off).ok_or(PUNT_MALFORMED)?;
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { &*h };
            key.sport = u16::from_be_bytes([h[0], h[1]]);
            key.dport = u16::from_be_bytes([h[2], h[3]]);
            Ok((true, 0, u16::from_be_bytes([h[4], h[5]])))
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let h = ptr_at::<[u8; 4]>(start, end, off).ok_or(PUNT_MALFORMED)?;
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { &*h };
            key.sport = u16::from(h[0]);
            key.dport = u16::from(h[1]);
            Ok((false, 0, 0))
        }
        _ => Ok((false, 0, 0)),
    }
}

/// Parses the packet. `pkt_len` is `skb->len` (a GSO packet's payload lies
/// beyond the linear part direct access sees).
/// The fields the rules read go into `key` (generation and interfaces are
/// the caller's).
#[inline(always)]
pub fn parse(start: usize, end: usize, pkt_len: usize, key: &mut FlowKey) -> Result<Packet, u32> {
    let eth = ptr_at::<EthHdr>(start, end, 0).ok_or(PUNT_MALFORMED)?;
    // SAFETY: bounds checked by ptr_at.
    let eth = unsafe { &*eth };
    match u16::from_be(eth.proto_be) {
        ETH_P_IP => parse_v4(start, end, pkt_len, key),
        ETH_P_IPV6 => parse_v6(start, end, pkt_len, key),
        _ => Err(PUNT_NOT_IP),
    }
}

#[inline(always)]
fn parse_v4(start: usize, end: usize, pkt_len: usize, key: &mut FlowKey) -> Result<Packet, u32> {
    let ip = ptr_at::<Ipv4Hdr>(start, end, ETH_HLEN).ok_or(PUNT_MALFORMED)?;
    // SAFETY: bounds checked by ptr_at.
    let ip = unsafe { &*ip };
    if ip.version_ihl >> 4 != 4 {
        return Err(PUNT_MALFORMED);
    }
    let ihl = (ip.version_ihl & 0x0F) as usize;
    let tot_len = u16::from_be(ip.tot_len_be);
    if ihl < 5 || (tot_len as usize) < ihl * 4 || ETH_HLEN + tot_len as usize > pkt_len {
        return Err(PUNT_MALFORMED);
    }
    if ihl != 5 {
        return Err(PUNT_IP_OPTIONS);
    }
    if u16::from_be(ip.frag_off_be) & (IP_MF | IP_OFFSET) != 0 {
        return Err(PUNT_FRAGMENT);
    }
    *key = FlowKey {
        l3: 4,
        l4proto: ip.protocol,
        ..Default::default()
    };
    key.saddr[..4].copy_from_slice(&ip.saddr_be.to_ne_bytes());
    key.daddr[..4].copy_from_slice(&ip.daddr_be.to_ne_bytes());
    let l4_off = ETH_HLEN + IPV4_HLEN;
    let (ports, l4_hdr_len, udp_len) = l4(start, end, l4_off, key)?;
    Ok(Packet {
        v6: false,
        l4proto: ip.protocol,
        ports,
        ttl: ip.ttl,
        tos: ip.tos,
        flowinfo_be: 0,
        l3_len: tot_len,
        l3_offset: ETH_HLEN as u32,
        l4_offset: l4_off as u32,
        l4_hdr_len,
        udp_len,
    })
}

/// IPv6 extension headers: the transport header is elsewhere.
#[inline(always)]
fn ipv6_ext(nexthdr: u8) -> bool {
    matches!(nexthdr, 0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254)
}

#[inline(always)]
fn parse_v6(start: usize, end: usize, pkt_len: usize, key: &mut FlowKey) -> Result<Packet, u32> {
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
    if ip.nexthdr == 44 {
        return Err(PUNT_FRAGMENT);
    }
    if ipv6_ext(ip.nexthdr) {
        return Err(PUNT_IP_OPTIONS);
    }
    *key = FlowKey {
        l3: 6,
        l4proto: ip.nexthdr,
        saddr: ip.saddr,
        daddr: ip.daddr,
        ..Default::default()
    };
    let l4_off = ETH_HLEN + IPV6_HLEN;
    let (ports, l4_hdr_len, udp_len) = l4(start, end, l4_off, key)?;
    Ok(Packet {
        v6: true,
        l4proto: ip.nexthdr,
        ports,
        ttl: ip.hop_limit,
        tos: 0,
        flowinfo_be: ip.vtc_flow_be & 0x0FFF_FFFFu32.to_be(),
        l3_len: (payload + IPV6_HLEN) as u16,
        l3_offset: ETH_HLEN as u32,
        l4_offset: l4_off as u32,
        l4_hdr_len,
        udp_len,
    })
}
