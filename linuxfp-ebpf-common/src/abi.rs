// SPDX-License-Identifier: MIT OR Apache-2.0
//! Constants, map names and `#[repr(C)]` types of the pipeline ABI.

/// Largest number of stages in one chain (one interface, one hook).
pub const MAX_STAGES: u32 = 8;

/// Interfaces with an index below this get their own counter slot and can
/// carry chains longer than one stage. Interfaces above it share counter
/// slot 0 and get single-stage chains only (the Compatibility Manager says
/// so when it plans).
pub const MAX_IFINDEX: u32 = 4096;

/// Counters per interface per FPM (the generic ones plus FPM punt reasons).
pub const COUNTERS_PER_IF: u32 = 32;

/// Entries in every FPM's [`STATS_MAP`].
pub const STATS_ENTRIES: u32 = MAX_IFINDEX * COUNTERS_PER_IF;

/// Entries in the chain program arrays.
pub const CHAIN_ENTRIES: u32 = MAX_IFINDEX * MAX_STAGES;

/// Program array of XDP stages, shared by all FPMs in a network namespace.
pub const CHAIN_XDP_MAP: &str = "LFP_CHAIN_XDP";
/// Program array of TC stages, shared by all FPMs in a network namespace.
pub const CHAIN_TC_MAP: &str = "LFP_CHAIN_TC";
/// Per-CPU scratch [`PacketCtx`], shared by all FPMs in a network namespace.
pub const PKT_CTX_MAP: &str = "LFP_PKT_CTX";
/// Per-CPU `u64` counters of one FPM, indexed by [`stats_index`].
pub const STATS_MAP: &str = "LFP_STATS";
/// Name of the [`StageConf`] global each stage program declares.
pub const STAGE_CONF_GLOBAL: &str = "LFP_STAGE_CONF";

/// Key in a chain program array of the stage at `position` on `ifindex`.
/// Returns `None` when the interface is outside the chainable range.
#[inline(always)]
pub const fn chain_key(ifindex: u32, position: u32) -> Option<u32> {
    if ifindex >= MAX_IFINDEX || position >= MAX_STAGES {
        None
    } else {
        Some(ifindex * MAX_STAGES + position)
    }
}

/// Index in [`STATS_MAP`] of `counter` for packets that arrived on `ifindex`.
#[inline(always)]
pub const fn stats_index(ifindex: u32, counter: u32) -> u32 {
    let slot = if ifindex < MAX_IFINDEX { ifindex } else { 0 };
    let counter = if counter < COUNTERS_PER_IF {
        counter
    } else {
        COUNTERS_PER_IF - 1
    };
    slot * COUNTERS_PER_IF + counter
}

/// Generic counters every stage keeps; FPM-specific punt reasons start at
/// [`counter::FIRST_FPM_REASON`].
pub mod counter {
    /// Finished in the fast path: forwarded, redirected or answered.
    pub const FAST: u32 = 0;
    /// Dropped in the fast path, at a point where Linux drops too.
    pub const DROP: u32 = 1;
    /// Handed to the next stage of the chain.
    pub const CONTINUE: u32 = 2;
    /// The next stage was missing or the tail call failed: sent to the kernel.
    pub const CHAIN_MISS: u32 = 3;
    /// First index an FPM may use for its own punt reasons.
    pub const FIRST_FPM_REASON: u32 = 4;
    /// Names of the generic counters, by index.
    pub const GENERIC_NAMES: [&str; 4] = ["fast", "drop", "continue", "chain_miss"];
}

/// Per-program configuration, a global constant set at load time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageConf {
    /// Position of this program in its chains (0 = attached to the interface).
    pub position: u32,
    /// Non-zero if a next stage may exist (tail call is attempted).
    pub has_next: u32,
}

/// `PacketCtx::flags`: the context was filled by an earlier stage for this packet.
pub const PKT_CTX_VALID: u32 = 1;
/// `PacketCtx::flags`: `fib_ifindex` and the MACs hold a successful FIB result.
pub const PKT_CTX_FIB_DONE: u32 = 2;

/// What one stage tells the next about the current packet. Written by the
/// first stage (which resets it), read and extended by the following ones.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketCtx {
    /// `PKT_CTX_*` flags.
    pub flags: u32,
    /// Interface the packet arrived on.
    pub ingress_ifindex: u32,
    /// EtherType of the L3 header (host order), after any VLAN tag.
    pub l3_proto: u16,
    /// Offset of the L3 header from the start of the frame.
    pub l3_offset: u16,
    /// Offset of the L4 header, 0 if unknown.
    pub l4_offset: u16,
    /// VLAN id the frame belongs to (0 = untagged / none).
    pub vlan_id: u16,
    /// Egress interface chosen by a FIB or FDB lookup, 0 if none yet.
    pub egress_ifindex: u32,
    /// Source MAC for the egress, from the lookup.
    pub smac: [u8; 6],
    /// Destination MAC for the egress, from the lookup.
    pub dmac: [u8; 6],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both types are repr(C), contain only integers and byte arrays,
    // and have no implicit padding (checked by the size asserts below).
    unsafe impl aya::Pod for super::StageConf {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::PacketCtx {}
}

const _: () = assert!(core::mem::size_of::<StageConf>() == 8);
const _: () = assert!(core::mem::size_of::<PacketCtx>() == 32);
