// SPDX-License-Identifier: MIT OR Apache-2.0
//! Records the nfnetlink ruleset reads under `tests/data/nft_*.bin` that
//! `nft_recorded.rs` replays without root. Run on purpose only:
//! `cargo test -p linuxfp --test nft_record -- --ignored`.

mod nft_scenarios;

use std::path::PathBuf;

use linuxfp::{inspector::nftables, netns::NetnsRef};
use linuxfp_testkit::require_root;
use nft_scenarios as scenarios;

fn save(name: &str, fw: &scenarios::Firewall) {
    let bytes = nftables::record(&NetnsRef::Named(fw.ns.name().into())).expect("record");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("nft_{name}.bin"));
    std::fs::write(&path, &bytes).expect("write");
    eprintln!("recorded {} ({} bytes)", path.display(), bytes.len());
}

#[test]
#[ignore = "regenerates tests/data/nft_*.bin; run with --ignored as root"]
fn record_nft_fixtures() {
    if !require_root("record_nft_fixtures") {
        return;
    }
    let docker = scenarios::iptables("nftdocker", scenarios::DOCKER).expect("docker");
    save("docker", &docker);
    let flannel = scenarios::iptables("nftflannel", scenarios::FLANNEL).expect("flannel");
    save("flannel", &flannel);
    let native = scenarios::nft("nftnative", scenarios::NATIVE).expect("native");
    save("native", &native);
    let mixed = scenarios::iptables("nftmixed", scenarios::MIXED).expect("mixed");
    save("mixed", &mixed);
}
