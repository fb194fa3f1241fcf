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
//!
//! `bare_redirect` is the ceiling a forwarder is measured against: it
//! writes fixed MACs and redirects every frame through a devmap to one
//! interface, with no parsing, lookup or check at all.
#![no_std]
#![no_main]

use aya_ebpf::{
    Global,
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{DevMap, PerCpuArray},
    programs::XdpContext,
};

/// Bytes of header template to write (at most `TEMPLATE_MAX`).
const TEMPLATE_MAX: usize = 128;

/// The header bytes written at the start of every generated frame. A plain
/// static read word by word with volatile loads (so the loader's value is
/// used, not the compile-time zeroes): loading the whole array at once
/// would need a memcpy, which BPF does not have.
#[unsafe(no_mangle)]
static GEN_TEMPLATE: [u64; TEMPLATE_MAX / 8] = [0; TEMPLATE_MAX / 8];
/// How many 8-byte words of the template to write.
#[unsafe(no_mangle)]
static GEN_WORDS: Global<u32> = Global::new(0);

/// Pacing: at most one frame per this many ns (0: as fast as possible).
/// Frames over the budget are dropped before transmission, so one long
/// test run (cheap per frame) gives a steady offered load; many short runs
/// would not (each run sets up its page pool, tens of ms).
#[unsafe(no_mangle)]
static GEN_INTERVAL_NS: Global<u64> = Global::new(0);

/// Per-CPU time at which the next paced frame may leave.
#[map]
static GEN_NEXT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// New flows: frame `n` (per CPU) carries the UDP ports (source and
/// destination read as one big-endian 32-bit number)
/// `GEN_PORTS_BASE + n % GEN_FLOWS` and a zero UDP checksum (none, valid
/// for IPv4 only), so up to `GEN_FLOWS` frames in a row are each a flow
/// of its own (0: the template's ports, one flow).
#[unsafe(no_mangle)]
static GEN_FLOWS: Global<u32> = Global::new(0);
/// Offset of the UDP header the flows are varied in.
#[unsafe(no_mangle)]
static GEN_UDP_OFFSET: Global<u32> = Global::new(0);
/// The ports of the first flow.
#[unsafe(no_mangle)]
static GEN_PORTS_BASE: Global<u32> = Global::new(0);

/// Per-CPU count of the frames sent with varied source ports.
#[map]
static GEN_SEQ: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Offset at which the generator stamps `bpf_ktime_get_ns()` (0: no stamp).
#[unsafe(no_mangle)]
static GEN_TS_OFFSET: Global<u32> = Global::new(0);
/// Offset at which the sink reads the stamp (0: no latency measurement).
#[unsafe(no_mangle)]
static SINK_TS_OFFSET: Global<u32> = Global::new(0);

/// Packets (index 0), bytes (1), latency samples (2), their sum in ns (3)
/// and the sum of their squares in ns² (4) the sink saw.
#[map]
static SINK_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(5, 0);

/// Width of one latency histogram bucket, in ns.
const BUCKET_NS: u64 = 250;
/// Latency histogram buckets; the last one collects everything slower.
const BUCKETS: u32 = 4096;

/// Latency histogram: bucket i counts one-way latencies in
/// [i * BUCKET_NS, (i + 1) * BUCKET_NS).
#[map]
static SINK_LATENCY: PerCpuArray<u64> = PerCpuArray::with_max_entries(BUCKETS, 0);

/// The MACs `bare_redirect` writes: destination then source, in the first
/// 12 bytes (the rest is unused).
#[unsafe(no_mangle)]
static BARE_MACS: [u64; 2] = [0; 2];

/// `bare_redirect`'s egress: slot 0.
#[map]
static BARE_PORTS: DevMap = DevMap::with_max_entries(1, 0);

#[inline(always)]
fn add(map: &PerCpuArray<u64>, index: u32, value: u64) {
    if let Some(p) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU slot from a successful lookup, only this CPU.
        unsafe { *p += value };
    }
}

#[xdp]
pub fn gen_tx(ctx: XdpContext) -> u32 {
    let interval = GEN_INTERVAL_NS.load();
    if interval != 0
        && let Some(next) = GEN_NEXT.get_ptr_mut(0)
    {
        // SAFETY: ktime has no preconditions; `next` is this CPU's slot.
        unsafe {
            let now = aya_ebpf::helpers::bpf_ktime_get_ns();
            if now < *next {
                return xdp_action::XDP_DROP;
            }
            // Frames leave in batches of up to 64 per run, so allow that
            // much catch-up (the average stays at the offered rate); after
            // a longer stall, restart the schedule instead of bursting.
            *next = if *next + 64 * interval < now {
                now + interval
            } else {
                *next + interval
            };
        }
    }
    let start = ctx.data();
    let end = ctx.data_end();
    let words = GEN_WORDS.load() as usize;
    for (i, word) in GEN_TEMPLATE.iter().enumerate() {
        if i >= words {
            break;
        }
        let at = start + i * 8;
        if at + 8 > end {
            return xdp_action::XDP_ABORTED;
        }
        // SAFETY: `word` is a valid static; the packet bytes were bounds
        // checked against data_end just above.
        unsafe {
            let w = core::ptr::read_volatile(word);
            core::ptr::write_unaligned(at as *mut u64, w);
        }
    }
    let flows = GEN_FLOWS.load();
    if flows != 0 {
        let off = GEN_UDP_OFFSET.load() as usize;
        if off > TEMPLATE_MAX || start + off + 8 > end {
            return xdp_action::XDP_ABORTED;
        }
        let n = match GEN_SEQ.get_ptr_mut(0) {
            // SAFETY: this CPU's slot from a successful lookup.
            Some(p) => unsafe {
                let n = *p;
                *p = n.wrapping_add(1);
                n
            },
            None => 0,
        };
        let ports = GEN_PORTS_BASE.load().wrapping_add(n % flows);
        // SAFETY: the 8-byte UDP header was bounds checked above.
        unsafe {
            core::ptr::write_unaligned((start + off) as *mut u32, ports.to_be());
            core::ptr::write_unaligned((start + off + 6) as *mut u16, 0);
        }
    }
    let ts_off = GEN_TS_OFFSET.load() as usize;
    if ts_off != 0 {
        let at = start + ts_off;
        if at + 8 > end {
            return xdp_action::XDP_ABORTED;
        }
        // SAFETY: bounds checked above; bpf_ktime_get_ns has no preconditions.
        unsafe {
            let now = aya_ebpf::helpers::bpf_ktime_get_ns();
            core::ptr::write_unaligned(at as *mut u64, now);
        }
    }
    xdp_action::XDP_TX
}

#[xdp]
pub fn sink_count(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    let end = ctx.data_end();
    add(&SINK_COUNT, 0, 1);
    add(&SINK_COUNT, 1, (end - start) as u64);
    let ts_off = SINK_TS_OFFSET.load() as usize;
    let sent = if ts_off != 0 && start + ts_off + 8 <= end {
        // SAFETY: bounds checked just above.
        unsafe { core::ptr::read_unaligned((start + ts_off) as *const u64) }
    } else {
        0
    };
    // Frames the generator did not stamp (throughput runs) cost no clock
    // read: on a VM that read is a good part of a forwarded packet's cost,
    // and it would weigh on every mode measured.
    if sent != 0 {
        // SAFETY: ktime has no preconditions.
        let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
        if now >= sent {
            let d = now - sent;
            let bucket = (d / BUCKET_NS).min(BUCKETS as u64 - 1) as u32;
            add(&SINK_LATENCY, bucket, 1);
            add(&SINK_COUNT, 2, 1);
            add(&SINK_COUNT, 3, d);
            // Latencies are far below 2^32 ns (4 s); clamp so the square fits
            // in 64 bits without the 128-bit multiply BPF lacks.
            let c = d.min(u32::MAX as u64);
            add(&SINK_COUNT, 4, c.wrapping_mul(c));
        }
    }
    xdp_action::XDP_DROP
}

#[xdp]
pub fn bare_redirect(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + 16 > ctx.data_end() {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: 16 bytes bounds checked above; the statics are read with
    // volatile loads so the loader's values are used.
    unsafe {
        let dst_src = core::ptr::read_volatile(&BARE_MACS[0]);
        let rest = core::ptr::read_volatile(&BARE_MACS[1]);
        core::ptr::write_unaligned(start as *mut u64, dst_src);
        // Bytes 8..12 (the end of the source MAC) from the second word,
        // keeping the EtherType that follows.
        core::ptr::write_unaligned((start + 8) as *mut u32, rest as u32);
    }
    BARE_PORTS
        .redirect(0, 0)
        .unwrap_or(xdp_action::XDP_ABORTED)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
