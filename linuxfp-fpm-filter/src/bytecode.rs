// SPDX-License-Identifier: MIT OR Apache-2.0
//! The filter's eBPF object, built from `ebpf/` by `build.rs`.

/// The ELF object holding `filter_tc`, aligned for aya.
pub static FILTER_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/linuxfp-fpm-filter-ebpf"));
