// SPDX-License-Identifier: MIT OR Apache-2.0
//! Security (issue 9): everything LinuxFP leaves outside its process while
//! it runs (the pinned maps under bpffs, their directories, the lock and
//! the status file under `/run/linuxfp`) is root's and root-only, for
//! every FPM: the router and the filter on the virtual router, the bridge
//! on a switch. Checked by mode and owner, and by trying to read each as
//! an unprivileged user (`setpriv` to `nobody`).
//!
//! Root only; skips loudly otherwise.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use linuxfp::{
    controller::{Controller, ControllerHandle},
    deploy::PinLayout,
    fpm::Fpm,
    netns::NetnsRef,
};
use linuxfp_fpm_bridge::BridgeFpm;
use linuxfp_fpm_filter::FilterFpm;
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{Netns, Switch, VirtualRouter, require_root};

/// Every file and directory under `dir`, `dir` included.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Starts a controller on `ns` with `fpms` and waits until it has planned
/// `interfaces` interfaces.
async fn start(ns: &Netns, fpms: Vec<Arc<dyn Fpm>>, interfaces: usize) -> ControllerHandle {
    let mut builder = Controller::builder().netns(NetnsRef::Named(ns.name().to_string()));
    for fpm in fpms {
        builder = builder.fpm(fpm);
    }
    let (handle, run) = builder.build().expect("build").start().expect("start");
    tokio::spawn(run);
    let t = Instant::now();
    while handle.plan().interfaces.len() < interfaces {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{}: deployed",
            ns.name()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle
}

/// Fails unless `path` is root's and nobody else may touch it, and an
/// unprivileged user cannot read it (or list it, for a directory).
fn assert_root_only(path: &Path) {
    let md = std::fs::metadata(path).expect("metadata");
    let mode = md.mode() & 0o7777;
    assert_eq!(
        (md.uid(), md.gid()),
        (0, 0),
        "{} is owned by {}:{}",
        path.display(),
        md.uid(),
        md.gid()
    );
    assert_eq!(
        mode & 0o077,
        0,
        "{} is open to others: mode {mode:o}",
        path.display()
    );
    let test = if md.is_dir() { "-x" } else { "-r" };
    let nobody = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "test"])
        .arg(test)
        .arg(path)
        .status()
        .expect("setpriv");
    assert!(
        !nobody.success(),
        "{}: an unprivileged user passes `test {test}`",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_maps_and_state_files_are_root_only() {
    if !require_root("pins_maps_and_state_files_are_root_only") {
        return;
    }
    let tb = VirtualRouter::new("sec").expect("testbed");
    tb.rtr
        .sh("nft add table inet t && nft 'add chain inet t f { type filter hook forward priority 0 ; policy accept ; }' && nft add rule inet t f udp dport 9 drop")
        .expect("nft");
    let sw = Switch::new("sec", 2).expect("switch");
    let router: Vec<Arc<dyn Fpm>> = vec![Arc::new(RouterFpm::new()), Arc::new(FilterFpm::new())];
    let rh = start(&tb.rtr, router, 2).await;
    let bh = start(&sw.sw, vec![Arc::new(BridgeFpm::new())], 2).await;
    assert!(tb.ping(false, 3).expect("ping"), "traffic flows");

    let mut checked = Vec::new();
    for ns in [&tb.rtr, &sw.sw] {
        let layout = PinLayout::new(&NetnsRef::Named(ns.name().to_string()).pin_name());
        let parent = layout.root.parent().expect("pin root has a parent");
        checked.push(parent.to_path_buf());
        walk(&layout.root, &mut checked);
        checked.push(layout.lock.clone());
        checked.push(layout.status.clone());
        if let Some(run) = layout.lock.parent() {
            checked.push(run.to_path_buf());
        }
    }
    checked.sort();
    checked.dedup();
    for must in [
        "LFP_CHAIN_TC",
        "LFP_PKT_CTX",
        "router/LFP_STATS",
        "filter/FILTER_RULES",
        "filter/FILTER_SETS",
        "bridge/BRIDGE_FDB",
        "bridge/LFP_STATS",
    ] {
        assert!(
            checked.iter().any(|p| p.ends_with(must)),
            "{must} pinned: {checked:?}"
        );
    }
    for path in &checked {
        assert_root_only(path);
    }
    eprintln!("{} paths root-only", checked.len());
    for h in [rh, bh] {
        h.shutdown();
    }
}
