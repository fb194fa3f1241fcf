// SPDX-License-Identifier: MIT OR Apache-2.0
//! Benchmark traffic: a generator for `BPF_PROG_TEST_RUN` live-frames mode
//! and a counting sink.
//!
//! `gen_tx` rewrites the frame's headers from a template on every run and
//! transmits it (`XDP_TX`) out of the interface the test run names. Live
//! frames are recycled page_pool pages that keep whatever the forwarding
//! path wrote into them (a router rewrites MACs and TTL in place), so the
//! whole header is written every time, never patched.
//!
//! `sink_count` counts and drops what arrives; attached to the receiving
//! veth it also gives that veth the NAPI context XDP redirects need.
#![no_std]
#![no_main]

use aya_ebpf::{
    Global,
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};

/// Bytes of header template to write (at most `TEMPLATE_MAX`).
const TEMPLATE_MAX: usize = 128;

/// The header bytes written at the start of every generated frame.
#[unsafe(no_mangle)]
static GEN_TEMPLATE: Global<[u64; TEMPLATE_MAX / 8]> = Global::new([0; TEMPLATE_MAX / 8]);
/// How many 8-byte words of the template to write.
#[unsafe(no_mangle)]
static GEN_WORDS: Global<u32> = Global::new(0);

/// Packets (index 0) and bytes (index 1) the sink saw.
#[map]
static SINK_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

#[xdp]
pub fn gen_tx(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    let end = ctx.data_end();
    let words = GEN_WORDS.load() as usize;
    let template = GEN_TEMPLATE.load();
    let mut i = 0;
    while i < TEMPLATE_MAX / 8 {
        if i >= words {
            break;
        }
        let at = start + i * 8;
        if at + 8 > end {
            return xdp_action::XDP_ABORTED;
        }
        // SAFETY: bounds checked against data_end just above.
        unsafe { core::ptr::write_unaligned(at as *mut u64, template[i]) };
        i += 1;
    }
    xdp_action::XDP_TX
}

#[xdp]
pub fn sink_count(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    if let Some(p) = SINK_COUNT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot from a successful lookup.
        unsafe { *p += 1 };
    }
    if let Some(b) = SINK_COUNT.get_ptr_mut(1) {
        // SAFETY: as above.
        unsafe { *b += len };
    }
    xdp_action::XDP_DROP
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
