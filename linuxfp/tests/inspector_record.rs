// SPDX-License-Identifier: MIT OR Apache-2.0
//! Records the rtnetlink dumps under `tests/data/` that the unit tests
//! (`inspector_recorded.rs`) replay without root. Run on purpose only:
//! `cargo test -p linuxfp --test inspector_record -- --ignored`.

mod inspector_scenarios;

use std::path::PathBuf;

use inspector_scenarios as scenarios;
use linuxfp::{inspector::Inspector, netns::NetnsRef};
use linuxfp_testkit::require_root;

fn save(name: &str, netns: &str) {
    let bytes = Inspector::new(NetnsRef::Named(netns.into()))
        .record()
        .expect("record");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.bin"));
    std::fs::write(&path, &bytes).expect("write");
    eprintln!("recorded {} ({} bytes)", path.display(), bytes.len());
}

#[test]
#[ignore = "regenerates tests/data; run with --ignored as root"]
fn record_fixtures() {
    if !require_root("record_fixtures") {
        return;
    }
    let vr = scenarios::router("rec").expect("router");
    save("router", vr.rtr.name());
    let sb = scenarios::svi_bridge("rec").expect("svi bridge");
    save("svi_bridge", sb.ns.name());
    let fl = scenarios::flannel_node("rec").expect("flannel");
    save("flannel", fl.node.name());
    let brs = scenarios::bridges("rec").expect("bridges");
    save("bridges", brs.name());
}
