// SPDX-License-Identifier: MIT OR Apache-2.0
//! The router's eBPF object, built from `ebpf/` by `build.rs`.

/// The ELF object holding `router_xdp` and `router_tc`, aligned for aya.
pub static ROUTER_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/linuxfp-fpm-router-ebpf"));
