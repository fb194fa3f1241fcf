//! `cargo xtask demo`: installs what is missing, then runs the demo binary
//! (`examples/demo`, package `linuxfp-demo`). The binary holds the story;
//! it lives outside xtask because it links the eBPF objects, which can only
//! be built after the set-up.

use anyhow::{Result, bail};

use crate::run;

pub fn run() -> Result<()> {
    if !linuxfp_testkit::is_root() {
        bail!("the demo creates network namespaces: run it as root");
    }
    run::setup()?;
    run::checked(&mut run::cargo(&[
        "run",
        "--release",
        "--quiet",
        "--package",
        "linuxfp-demo",
    ]))
}
