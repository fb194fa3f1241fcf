// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bridge's eBPF object, built from `ebpf/` by `build.rs`.

/// The ELF object holding `bridge_xdp` and `bridge_tc`, aligned for aya.
pub static BRIDGE_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/linuxfp-fpm-bridge-ebpf"));
