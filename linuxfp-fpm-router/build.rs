// SPDX-License-Identifier: MIT OR Apache-2.0
//! Builds the eBPF object with aya-build on the stable toolchain.

use std::path::PathBuf;

use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let ebpf = dir.join("ebpf");
    let common = dir.join("../linuxfp-ebpf-common");
    // Only eBPF sources trigger a rebuild of the object, never userspace ones.
    println!("cargo:rerun-if-changed={}", ebpf.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        ebpf.join("Cargo.toml").display()
    );
    println!("cargo:rerun-if-changed={}", common.join("src").display());
    // -Z build-std=core on stable; only this build script's children see it.
    // SAFETY: build scripts are single-threaded.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    // aya-build runs `cargo build --package <name>` in the current directory;
    // the eBPF crate is its own workspace, so run it from there.
    std::env::set_current_dir(&ebpf)?;
    aya_build::build_ebpf(
        [Package {
            name: "linuxfp-fpm-router-ebpf",
            root_dir: ebpf
                .to_str()
                .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path"))?,
            ..Default::default()
        }],
        Toolchain::Custom("stable"),
    )
}
