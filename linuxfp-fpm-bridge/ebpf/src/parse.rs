// SPDX-License-Identifier: MIT OR Apache-2.0
//! Frame parsing for both hooks into a [`Frame`]: the MACs, the outer VLAN
//! tag (inline for XDP; in skb metadata for TC, where the kernel has already
//! untagged it), the EtherType behind it, and whether it is IPv6 neighbour
//! discovery.

use aya_ebpf::programs::TcContext;
use linuxfp_ebpf_common::{
    bridge::PUNT_MALFORMED,
    ebpf::ptr_at,
    net::{ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV6, EthHdr, IPPROTO_ICMPV6, VLAN_HLEN},
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
