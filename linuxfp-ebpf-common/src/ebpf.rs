// SPDX-License-Identifier: MIT OR Apache-2.0
//! Helpers for stage programs (bpf target only, feature `ebpf`).
//!
//! A stage program declares the ABI maps with [`declare_abi_maps!`] and then
//! uses [`count`], [`next_stage_xdp`] / [`next_stage_tc`] and [`ptr_at`].

use aya_ebpf::maps::{PerCpuArray, ProgramArray};

use crate::abi::{chain_key, stats_index};

/// Declares the maps every stage program shares through the ABI:
/// `LFP_CHAIN_XDP`, `LFP_CHAIN_TC` (program arrays), `LFP_PKT_CTX` (per-CPU
/// scratch) and `LFP_STATS` (this FPM's counters), plus the
/// `LFP_STAGE_CONF` global. The deployer pins the first three per network
/// namespace and `LFP_STATS` per FPM, so all programs see the same maps.
#[macro_export]
macro_rules! declare_abi_maps {
    () => {
        #[aya_ebpf::macros::map]
        static LFP_CHAIN_XDP: aya_ebpf::maps::ProgramArray =
            aya_ebpf::maps::ProgramArray::with_max_entries($crate::abi::CHAIN_ENTRIES, 0);
        #[aya_ebpf::macros::map]
        static LFP_CHAIN_TC: aya_ebpf::maps::ProgramArray =
            aya_ebpf::maps::ProgramArray::with_max_entries($crate::abi::CHAIN_ENTRIES, 0);
        #[aya_ebpf::macros::map]
        static LFP_PKT_CTX: aya_ebpf::maps::PerCpuArray<$crate::abi::PacketCtx> =
            aya_ebpf::maps::PerCpuArray::with_max_entries(1, 0);
        #[aya_ebpf::macros::map]
        static LFP_STATS: aya_ebpf::maps::PerCpuArray<u64> =
            aya_ebpf::maps::PerCpuArray::with_max_entries($crate::abi::STATS_ENTRIES, 0);
        #[unsafe(no_mangle)]
        static LFP_STAGE_CONF: aya_ebpf::Global<$crate::abi::StageConf> =
            aya_ebpf::Global::new($crate::abi::StageConf {
                position: 0,
                has_next: 0,
            });
    };
}

/// Adds one to `counter` for packets that arrived on `ifindex`.
#[inline(always)]
pub fn count(stats: &PerCpuArray<u64>, ifindex: u32, counter: u32) {
    if let Some(slot) = stats.get_ptr_mut(stats_index(ifindex, counter)) {
        // SAFETY: the pointer comes from a successful per-CPU map lookup and
        // is only touched by this CPU while this program runs.
        unsafe { *slot += 1 };
    }
}

/// Tail-calls the stage after `position` on `ifindex`. Returns only if
/// there is no such stage or the call failed; the caller then punts.
#[inline(always)]
pub fn next_stage<C: aya_ebpf::EbpfContext>(
    chain: &ProgramArray,
    ctx: &C,
    ifindex: u32,
    position: u32,
) {
    if let Some(key) = chain_key(ifindex, position + 1) {
        // SAFETY: `ctx` is the program's own context; a failed tail call
        // simply returns here.
        unsafe { chain.tail_call(ctx, key) };
    }
}

/// Returns a pointer to a `T` at `offset` bytes into the packet, or `None`
/// if it would extend past `end`. The one bounds check the verifier needs.
#[inline(always)]
pub fn ptr_at<T>(start: usize, end: usize, offset: usize) -> Option<*mut T> {
    let size = core::mem::size_of::<T>();
    if start + offset + size > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// How many bytes of an untagged frame of `len` bytes a stage reads at TC,
/// given what of it is linear (`start..end`): Ethernet, the IP header as
/// long as it says (IPv4's IHL; IPv6's fixed header; 60 bytes if that byte
/// is not linear yet) and 20 bytes of L4 header, at most the frame.
///
/// A stage pulls only that much (`bpf_skb_pull_data`). Pulling more than
/// the linear part of a locally sent TCP segment (its headers: 66 bytes
/// with timestamps) moves payload out of the page frags, and the skb is a
/// clone the sender's TCP keeps: the kernel then reallocates and copies
/// its head, for every GSO packet of the flow.
#[inline(always)]
pub fn headers_wanted(start: usize, end: usize, len: usize) -> usize {
    const L4: usize = 20;
    let l3 = match ptr_at::<u8>(start, end, 14) {
        // SAFETY: bounds checked by ptr_at.
        Some(b) => match unsafe { *b } >> 4 {
            4 => usize::from(unsafe { *b } & 0x0f) * 4,
            6 => 40,
            _ => 60,
        },
        None => 60,
    };
    core::cmp::min(14 + l3 + L4, len)
}

/// Zeroes a `bpf_fib_lookup` parameter block in place and returns it.
///
/// `core::mem::zeroed()` compiles, on the bpf target, to a call to the
/// `memset` of compiler-builtins: a byte loop that a profile of the router
/// showed costing as much as the rest of the stage. Sixteen volatile 4-byte
/// stores cannot be turned back into that call.
#[inline(always)]
pub fn zeroed_fib_params(
    slot: &mut core::mem::MaybeUninit<aya_ebpf::bindings::bpf_fib_lookup>,
) -> &mut aya_ebpf::bindings::bpf_fib_lookup {
    const WORDS: usize = core::mem::size_of::<aya_ebpf::bindings::bpf_fib_lookup>() / 4;
    let words = slot.as_mut_ptr().cast::<u32>();
    let mut i = 0;
    while i < WORDS {
        // SAFETY: `i` < WORDS keeps every store inside `slot`, which is
        // 4-byte aligned (the struct's alignment).
        unsafe { words.add(i).write_volatile(0) };
        i += 1;
    }
    // SAFETY: every byte was just written, and all-zero is a valid value
    // of this plain C struct.
    unsafe { slot.assume_init_mut() }
}

/// Where a FIB answer handed from one stage to the next applies: the
/// interface the lookup was made for and the packet's layout. The stage
/// that takes the answer must find the same, or it looks up itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FibFor {
    /// The ifindex passed to `bpf_fib_lookup` as the ingress.
    pub ingress: u32,
    /// `ETH_P_IP` or `ETH_P_IPV6`.
    pub l3_proto: u16,
    /// Offset of the IP header in the frame.
    pub l3_offset: u16,
    /// Offset of the L4 header in the frame.
    pub l4_offset: u16,
}

/// Forgets whatever an earlier packet left in the per-CPU [`PacketCtx`].
/// Every stage at position 0 calls it first: a stage only ever reads what
/// an earlier stage wrote for the same packet.
///
/// [`PacketCtx`]: crate::abi::PacketCtx
#[inline(always)]
pub fn reset_pkt_ctx(map: &PerCpuArray<crate::abi::PacketCtx>) {
    if let Some(c) = map.get_ptr_mut(0) {
        // SAFETY: this CPU's entry of a successful lookup; tail calls run
        // on this CPU without preemption.
        unsafe { (*c).flags = 0 };
    }
}

/// Hands the next stage a successful `bpf_fib_lookup` answer (`egress`,
/// MACs) for this packet, made with exactly the parameters the router
/// stage passes for it (ingress, addresses, TOS or flow label, protocol,
/// ports, the length checked against the MTU), so that it need not ask
/// again.
#[inline(always)]
pub fn hand_fib_result(
    map: &PerCpuArray<crate::abi::PacketCtx>,
    at: FibFor,
    egress: u32,
    smac: [u8; 6],
    dmac: [u8; 6],
) {
    if let Some(c) = map.get_ptr_mut(0) {
        // SAFETY: as in `reset_pkt_ctx`.
        let c = unsafe { &mut *c };
        c.flags = crate::abi::PKT_CTX_VALID | crate::abi::PKT_CTX_FIB_DONE;
        c.ingress_ifindex = at.ingress;
        c.l3_proto = at.l3_proto;
        c.l3_offset = at.l3_offset;
        c.l4_offset = at.l4_offset;
        c.egress_ifindex = egress;
        c.smac = smac;
        c.dmac = dmac;
    }
}

/// Takes the FIB answer an earlier stage handed over for this packet, if
/// there is one and it was made for `at`; the entry is emptied either way,
/// so an answer is used at most once.
#[inline(always)]
pub fn take_fib_result(
    map: &PerCpuArray<crate::abi::PacketCtx>,
    at: FibFor,
) -> Option<(u32, [u8; 6], [u8; 6])> {
    const WANT: u32 = crate::abi::PKT_CTX_VALID | crate::abi::PKT_CTX_FIB_DONE;
    let c = map.get_ptr_mut(0)?;
    // SAFETY: as in `reset_pkt_ctx`.
    let c = unsafe { &mut *c };
    let ok = c.flags & WANT == WANT
        && c.ingress_ifindex == at.ingress
        && c.l3_proto == at.l3_proto
        && c.l3_offset == at.l3_offset
        && c.l4_offset == at.l4_offset
        && c.egress_ifindex != 0;
    c.flags = 0;
    ok.then_some((c.egress_ifindex, c.smac, c.dmac))
}
