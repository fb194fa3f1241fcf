// SPDX-License-Identifier: MIT OR Apache-2.0
//! Build-script helper shared by every crate that bundles an eBPF object:
//! compiles its `ebpf/` crate with aya-build on the stable toolchain.
//!
//! ```no_run
//! // build.rs
//! fn main() -> anyhow::Result<()> {
//!     linuxfp_build::build_ebpf("my-fpm-ebpf", &["../linuxfp-ebpf-common"])
//! }
//! ```
#![deny(missing_docs)]

use std::path::PathBuf;

use aya_build::{Package, Toolchain};

/// Builds the eBPF crate `package` in `<CARGO_MANIFEST_DIR>/ebpf` for the
/// bpf target and leaves its binary in `OUT_DIR` (for
/// `aya::include_bytes_aligned!`). `watch` are further directories, relative
/// to the manifest, whose `src/` changes must rebuild the object (shared
/// eBPF libraries). Only eBPF sources trigger a rebuild, never userspace
/// ones.
pub fn build_ebpf(package: &str, watch: &[&str]) -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let ebpf = dir.join("ebpf");
    println!("cargo:rerun-if-changed={}", ebpf.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        ebpf.join("Cargo.toml").display()
    );
    for w in watch {
        println!(
            "cargo:rerun-if-changed={}",
            dir.join(w).join("src").display()
        );
    }
    // -Z build-std=core on stable (the bpf target has no prebuilt core);
    // only this build script's children see it.
    // SAFETY: build scripts are single-threaded.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    // aya-build runs `cargo build --package <name>` in the current
    // directory; the eBPF crate is its own workspace, so run it from there.
    std::env::set_current_dir(&ebpf)?;
    aya_build::build_ebpf(
        [Package {
            name: package,
            root_dir: ebpf
                .to_str()
                .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", ebpf.display()))?,
            ..Default::default()
        }],
        Toolchain::Custom("stable"),
    )
}
