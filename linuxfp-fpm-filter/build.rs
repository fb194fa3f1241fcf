// SPDX-License-Identifier: MIT OR Apache-2.0
//! Builds the bundled eBPF object (see `linuxfp-build`).

fn main() -> anyhow::Result<()> {
    linuxfp_build::build_ebpf("linuxfp-fpm-filter-ebpf", &["../linuxfp-ebpf-common"])
}
