// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bridge FPM's fast path: `bridge_xdp` and `bridge_tc`, attached to
//! bridge ports.
//!
//! Known unicast between ports in forwarding state goes straight to the
//! egress port, with the VLAN handling the kernel bridge would apply;
//! everything else (flooding, learning, local delivery, control frames,
//! anything the mirrored state cannot decide) goes to the kernel bridge
//! under a counted reason.
#![no_std]
#![no_main]

mod decide;
mod parse;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_REDIRECT, xdp_action},
    helpers::{bpf_redirect, bpf_skb_vlan_pop, bpf_skb_vlan_push, bpf_xdp_adjust_head},
    macros::{classifier, map, xdp},
    maps::{Array, DevMapHash, HashMap, LruHashMap},
    programs::{TcContext, XdpContext},
};
use linuxfp_ebpf_common::{
    abi::{MAX_IFINDEX, counter},
    bridge::*,
    declare_abi_maps,
    ebpf::{count, ptr_at, reset_pkt_ctx},
};

use crate::decide::{Tag, decide};

declare_abi_maps!();

#[map]
static BRIDGE_PORTS: Array<PortConf> = Array::with_max_entries(MAX_IFINDEX, 0);

#[map]
static BRIDGE_FDB: HashMap<FdbKey, FdbValue> = HashMap::with_max_entries(MAX_FDB, 0);

#[map]
static BRIDGE_VLANS: HashMap<VlanKey, u32> = HashMap::with_max_entries(MAX_VLANS, 0);

#[map]
static BRIDGE_SEEN: LruHashMap<FdbKey, Seen> = LruHashMap::with_max_entries(MAX_FDB, 0);

#[map]
static BRIDGE_XDP_PORTS: DevMapHash = DevMapHash::with_max_entries(MAX_PORTS, 0);

#[xdp]
pub fn bridge_xdp(ctx: XdpContext) -> u32 {
    if LFP_STAGE_CONF.load().position == 0 {
        reset_pkt_ctx(&LFP_PKT_CTX);
    }
    // SAFETY: reading the context's ingress ifindex.
    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
    match xdp_bridge(&ctx, ingress) {
        Ok(v) => {
            count(&LFP_STATS, ingress, counter::FAST);
            v
        }
        Err(reason) => {
            count(&LFP_STATS, ingress, reason);
            xdp_action::XDP_PASS
        }
    }
}

#[inline(always)]
fn xdp_bridge(ctx: &XdpContext, ingress: u32) -> Result<u32, u32> {
    let frame = parse::xdp(ctx.data(), ctx.data_end())?;
    let fwd = decide(ingress, &frame)?;
    let eport = BRIDGE_PORTS.get(fwd.egress).ok_or(PUNT_EGRESS)?;
    if eport.flags & PORT_XDP_EGRESS == 0 {
        return Err(PUNT_EGRESS);
    }
    // An XDP redirect transmits the frame as it is, tags inline, and a
    // driver drops a frame longer than MTU + 18 silently (veth_xdp_xmit:
    // mtu + ETH_HLEN + VLAN_HLEN). The kernel's path carries the outer tag
    // in metadata and forwards up to MTU + 18 without it (what `decide`
    // checked), so a tagged frame at that limit must take it.
    let len = (ctx.data_end() - ctx.data()) as u32;
    let out_len = match fwd.tag {
        Tag::Keep => len,
        Tag::Strip => len - 4,
        Tag::Push(_) => len + 4,
    };
    if out_len > eport.mtu + 18 {
        return Err(PUNT_TOO_BIG);
    }
    // The devmap lookup happens here; the frame is only changed once the
    // redirect is certain, so a punt always hands over the original frame.
    let action = BRIDGE_XDP_PORTS
        .redirect(fwd.egress, 0)
        .map_err(|_| PUNT_REDIRECT_FAILED)?;
    match fwd.tag {
        Tag::Keep => {}
        Tag::Strip => xdp_strip_tag(ctx)?,
        Tag::Push(vid) => xdp_push_tag(ctx, fwd.vlan_proto_be, vid)?,
    }
    Ok(action)
}

/// Removes the 4-byte tag after the MACs.
#[inline(always)]
fn xdp_strip_tag(ctx: &XdpContext) -> Result<(), u32> {
    let macs = ptr_at::<[u8; 12]>(ctx.data(), ctx.data_end(), 0).ok_or(PUNT_MALFORMED)?;
    // SAFETY: bounds checked by ptr_at.
    let macs = unsafe { core::ptr::read_unaligned(macs) };
    // SAFETY: shrinking the head of our own frame; checked below.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, 4) } != 0 {
        return Err(PUNT_TAG_FAILED);
    }
    let dst = ptr_at::<[u8; 12]>(ctx.data(), ctx.data_end(), 0).ok_or(PUNT_TAG_FAILED)?;
    // SAFETY: bounds checked by ptr_at.
    unsafe { core::ptr::write_unaligned(dst, macs) };
    Ok(())
}

/// Inserts a tag (`proto_be`, `vid`, priority 0) after the MACs.
#[inline(always)]
fn xdp_push_tag(ctx: &XdpContext, proto_be: u16, vid: u16) -> Result<(), u32> {
    // SAFETY: growing the head of our own frame; checked below.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -4) } != 0 {
        return Err(PUNT_TAG_FAILED);
    }
    let hdr = ptr_at::<[u8; 16]>(ctx.data(), ctx.data_end(), 0).ok_or(PUNT_TAG_FAILED)?;
    // SAFETY: bounds checked by ptr_at; the MACs are read before written.
    unsafe {
        let mut h = core::ptr::read_unaligned(hdr);
        h.copy_within(4..16, 0);
        h[12..14].copy_from_slice(&proto_be.to_ne_bytes());
        h[14..16].copy_from_slice(&vid.to_be_bytes());
        core::ptr::write_unaligned(hdr, h);
    }
    Ok(())
}

#[classifier]
pub fn bridge_tc(ctx: TcContext) -> i32 {
    if LFP_STAGE_CONF.load().position == 0 {
        reset_pkt_ctx(&LFP_PKT_CTX);
    }
    // SAFETY: reading a field of the skb context.
    let ingress = unsafe { (*ctx.skb.skb).ifindex };
    match tc_bridge(&ctx, ingress) {
        Ok(v) => {
            count(&LFP_STATS, ingress, counter::FAST);
            v
        }
        Err(reason) => {
            count(&LFP_STATS, ingress, reason);
            TC_ACT_OK
        }
    }
}

#[inline(always)]
fn tc_bridge(ctx: &TcContext, ingress: u32) -> Result<i32, u32> {
    let frame = parse::tc(ctx)?;
    let fwd = decide(ingress, &frame)?;
    // SAFETY: the skb is the program's own; the helpers check their
    // arguments and leave the skb unchanged on failure.
    unsafe {
        match fwd.tag {
            Tag::Keep => {}
            Tag::Strip => {
                if bpf_skb_vlan_pop(ctx.skb.skb) != 0 {
                    return Err(PUNT_TAG_FAILED);
                }
            }
            Tag::Push(vid) => {
                if bpf_skb_vlan_push(ctx.skb.skb, fwd.vlan_proto_be, vid) != 0 {
                    return Err(PUNT_TAG_FAILED);
                }
            }
        }
        if bpf_redirect(fwd.egress, 0) as i32 != TC_ACT_REDIRECT {
            return Err(PUNT_REDIRECT_FAILED);
        }
    }
    Ok(TC_ACT_REDIRECT)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
