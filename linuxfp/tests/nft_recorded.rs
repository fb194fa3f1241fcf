// SPDX-License-Identifier: MIT OR Apache-2.0
//! The nf_tables reader on rulesets recorded from real namespaces
//! (`tests/data/nft_*.bin`, made by `nft_record.rs`). No root.

use linuxfp::inspector::nftables::Ruleset;

fn recorded(name: &str) -> Ruleset {
    let path = format!("{}/tests/data/nft_{name}.bin", env!("CARGO_MANIFEST_DIR"));
    Ruleset::from_messages(&std::fs::read(&path).expect("recorded ruleset"))
}

#[test]
fn print() {
    for n in ["docker", "flannel", "native"] {
        let r = recorded(n);
        std::fs::write(
            format!("/tmp/hnft/{n}.json"),
            serde_json::to_string_pretty(&r).unwrap(),
        )
        .unwrap();
    }
}
