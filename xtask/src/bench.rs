//! `cargo xtask bench [--quick]`: every benchmark of `linuxfp-benches`.
//!
//! The data-plane benches (router, bridge, filter, flannel) measure Linux
//! and LinuxFP in the same run and report min/median/max over repeats;
//! `--quick` sets `LINUXFP_BENCH_QUICK=1`, which makes them short (fewer
//! sizes and repeats), and passes `--quick` to the criterion benches.

use anyhow::{Context, Result};
use serde_json::Value;

use crate::run;

const PACKAGE: &str = "linuxfp-benches";

pub fn run(quick: bool) -> Result<()> {
    run::setup()?;
    let benches = bench_targets()?;
    if benches.is_empty() {
        println!("{PACKAGE} has no benchmarks yet: nothing to run.");
        return Ok(());
    }
    println!("benchmarks of {PACKAGE}: {}", benches.join(", "));
    if !linuxfp_testkit::is_root() {
        println!("note: not root, so benchmarks that build namespaces will skip");
    }
    let mut args = vec!["bench", "-p", PACKAGE];
    let mut cmd = if quick {
        // Every bench binary gets the flag; the data-plane ones ignore
        // their arguments and read the environment instead.
        args.extend(["--", "--quick"]);
        let mut cmd = run::cargo(&args);
        cmd.env("LINUXFP_BENCH_QUICK", "1");
        cmd
    } else {
        run::cargo(&args)
    };
    run::checked(&mut cmd)
}

/// The names of the package's `bench` targets, from `cargo metadata`.
fn bench_targets() -> Result<Vec<String>> {
    let out = run::cargo(&["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("cannot run cargo metadata")?;
    anyhow::ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata printed invalid JSON")?;
    let package = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == PACKAGE)
        .with_context(|| format!("{PACKAGE} is not a workspace member"))?;
    Ok(package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bench"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect())
}
