// SPDX-License-Identifier: MIT OR Apache-2.0
//! Frame parsing for both hooks into a [`Frame`]: the MACs, the outer VLAN
//! tag (inline for XDP; in skb metadata for TC, where the kernel has already
//! untagged it), the EtherType behind it, and whether it is IPv6 neighbour
//! discovery.

use aya_ebpf::programs::TcContext;
use linuxfp_ebpf_common::{
    bridge::PUNT_MALFORMED,
    ebpf::ptr_at,
    net::{
        ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, EthHdr, IPPROTO_HOPOPTS,
        IPPROTO_ICMPV6, IPV4_HLEN, IPV6_HLEN, VLAN_HLEN,
    },
};

use crate::decide::Frame;

/// Bytes from the L3 header needed to recognise neighbour discovery: the
/// IPv6 header and the ICMPv6 type.
const ND_PROBE: usize = 41;

/// Is this ICMPv6 router/neighbour solicitation/advertisement or redirect
/// (types 133-137), which the bridge may suppress? A frame too short to
/// tell counts as one, so it goes to the kernel.
#[inline(always)]
fn is_nd(start: usize, end: usize, l3: usize) -> bool {
    let Some(h) = ptr_at::<[u8; ND_PROBE]>(start, end, l3) else {
        return true;
    };
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { &*h };
    h[6] == IPPROTO_ICMPV6 && (133..=137).contains(&h[40])
}

/// Is the untagged frame of `len` bytes a plain IP packet, one that
/// `br_validate_ipv4` / `br_validate_ipv6` pass without a change: IPv4
/// with a 20-byte header whose checksum verifies, or IPv6 whose first
/// header is not hop-by-hop; either with an IP length that is exactly the
/// rest of the frame (nothing to trim).
#[inline(always)]
fn plain_ip(start: usize, end: usize, proto: u16, len: usize) -> bool {
    match proto {
        ETH_P_IP => {
            let Some(h) = ptr_at::<[u8; IPV4_HLEN]>(start, end, ETH_HLEN) else {
                return false;
            };
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { core::ptr::read_unaligned(h) };
            let tot_len = u16::from_be_bytes([h[2], h[3]]) as usize;
            let mut sum = 0u32;
            let mut i = 0;
            while i < IPV4_HLEN {
                sum += u16::from_be_bytes([h[i], h[i + 1]]) as u32;
                i += 2;
            }
            sum = (sum & 0xFFFF) + (sum >> 16);
            sum = (sum & 0xFFFF) + (sum >> 16);
            h[0] == 0x45 && sum == 0xFFFF && ETH_HLEN + tot_len == len
        }
        ETH_P_IPV6 => {
            let Some(h) = ptr_at::<[u8; 8]>(start, end, ETH_HLEN) else {
                return false;
            };
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { &*h };
            let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
            h[0] >> 4 == 6 && h[6] != IPPROTO_HOPOPTS && ETH_HLEN + IPV6_HLEN + payload == len
        }
        _ => false,
    }
}

/// Parses an XDP frame.
#[inline(always)]
pub fn xdp(start: usize, end: usize) -> Result<Frame, u32> {
    let eth = ptr_at::<EthHdr>(start, end, 0).ok_or(PUNT_MALFORMED)?;
    // SAFETY: bounds checked by ptr_at.
    let eth = unsafe { &*eth };
    let outer = u16::from_be(eth.proto_be);
    let (tagged, tag_proto, tag_vid, proto, l3) = if outer == ETH_P_8021Q || outer == ETH_P_8021AD
    {
        let tag = ptr_at::<[u8; 4]>(start, end, ETH_HLEN).ok_or(PUNT_MALFORMED)?;
        // SAFETY: bounds checked by ptr_at.
        let tag = unsafe { &*tag };
        let tci = u16::from_be_bytes([tag[0], tag[1]]);
        let inner = u16::from_be_bytes([tag[2], tag[3]]);
        (true, outer, tci & 0x0fff, inner, ETH_HLEN + VLAN_HLEN)
    } else {
        (false, 0, 0, outer, ETH_HLEN)
    };
    let len = (end - start) as u32 - if tagged { VLAN_HLEN as u32 } else { 0 };
    Ok(Frame {
        plain_ip: !tagged && plain_ip(start, end, proto, end - start),
        dst: eth.dst,
        src: eth.src,
        tagged,
        tag_proto,
        tag_vid,
        proto,
        nd: proto == ETH_P_IPV6 && is_nd(start, end, l3),
        len,
    })
}

/// Parses a TC frame (`skb->data` at the Ethernet header).
#[inline(always)]
pub fn tc(ctx: &TcContext) -> Result<Frame, u32> {
    // SAFETY: reading fields of the skb context.
    let (vlan_present, vlan_tci, vlan_proto_be, gso_size, gso_segs, len) = unsafe {
        let s = &*ctx.skb.skb;
        (
            s.vlan_present,
            s.vlan_tci,
            s.vlan_proto,
            s.gso_size,
            s.gso_segs,
            s.len,
        )
    };
    // The headers we read must be in the linear part.
    if ctx.data() + ETH_HLEN + ND_PROBE > ctx.data_end() {
        let _ = ctx.pull_data((ETH_HLEN + ND_PROBE) as u32);
    }
    let (start, end) = (ctx.data(), ctx.data_end());
    let eth = ptr_at::<EthHdr>(start, end, 0).ok_or(PUNT_MALFORMED)?;
    // SAFETY: bounds checked by ptr_at.
    let eth = unsafe { &*eth };
    let proto = u16::from_be(eth.proto_be);
    let gso = gso_segs > 1 || gso_size != 0;
    Ok(Frame {
        plain_ip: vlan_present == 0 && plain_ip(start, end, proto, len as usize),
        dst: eth.dst,
        src: eth.src,
        tagged: vlan_present != 0,
        tag_proto: u16::from_be(vlan_proto_be as u16),
        tag_vid: (vlan_tci & 0x0fff) as u16,
        proto,
        nd: proto == ETH_P_IPV6 && is_nd(start, end, ETH_HLEN),
        len: if gso { 0 } else { len },
    })
}
