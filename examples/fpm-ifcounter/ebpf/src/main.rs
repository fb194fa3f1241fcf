// SPDX-License-Identifier: MIT OR Apache-2.0
//! A third-party prelude stage: counts packets and bytes per ingress
//! interface, then hands the packet to the next stage of the chain.
//! Written only against LinuxFP's public ABI (`linuxfp-ebpf-common`).
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{TC_ACT_OK, xdp_action},
    macros::{classifier, map, xdp},
    maps::PerCpuArray,
    programs::{TcContext, XdpContext},
};
use linuxfp_ebpf_common::{
    abi::{counter, MAX_IFINDEX},
    declare_abi_maps,
    ebpf::{count, next_stage},
};

declare_abi_maps!();

/// Bytes received per ingress ifindex (below `MAX_IFINDEX`).
#[map]
static IFCOUNTER_BYTES: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_IFINDEX, 0);

#[inline(always)]
fn add_bytes(ifindex: u32, len: u64) {
    if ifindex < MAX_IFINDEX
        && let Some(slot) = IFCOUNTER_BYTES.get_ptr_mut(ifindex)
    {
        // SAFETY: per-CPU slot from a successful lookup, touched only here.
        unsafe { *slot += len };
    }
}

#[xdp]
pub fn ifcounter_xdp(ctx: XdpContext) -> u32 {
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    add_bytes(ifindex, (ctx.data_end() - ctx.data()) as u64);
    count(&LFP_STATS, ifindex, counter::CONTINUE);
    next_stage(&LFP_CHAIN_XDP, &ctx, ifindex, LFP_STAGE_CONF.load().position);
    // No next stage: the kernel takes the packet.
    count(&LFP_STATS, ifindex, counter::CHAIN_MISS);
    xdp_action::XDP_PASS
}

#[classifier]
pub fn ifcounter_tc(ctx: TcContext) -> i32 {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    add_bytes(ifindex, ctx.len() as u64);
    count(&LFP_STATS, ifindex, counter::CONTINUE);
    next_stage(&LFP_CHAIN_TC, &ctx, ifindex, LFP_STAGE_CONF.load().position);
    count(&LFP_STATS, ifindex, counter::CHAIN_MISS);
    TC_ACT_OK
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
