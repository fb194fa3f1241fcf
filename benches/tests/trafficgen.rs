// SPDX-License-Identifier: MIT OR Apache-2.0
//! The traffic generator's new-flow mode (`Generator::new_flows`), which
//! the filter benchmark's new-flow table relies on: frames sent through
//! Linux's forwarding on the virtual router arrive with successive ports
//! (source and destination as one 32-bit number), wrapping after the
//! number of flows asked for, with no UDP checksum. Root only; skips
//! loudly otherwise.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use linuxfp_testkit::{VirtualRouter, diff::Capture, require_root};
use linuxfp_trafficgen::{Generator, frame};

#[test]
fn new_flows_frames_carry_successive_ports() {
    if !require_root("new_flows_frames_carry_successive_ports") {
        return;
    }
    let tb = VirtualRouter::new("tgflows").expect("testbed");
    tb.set_static_neighbours().expect("neighbours");
    // Frames a veth transmits from XDP reach a peer with NAPI only.
    tb.rtr
        .exec(&["ethtool", "-K", tb.rtr_src_if.name, "gro", "on"])
        .expect("gro on");
    let capture = tb
        .dst
        .run_in(|| Capture::open(&tb.dst, tb.dst_if.name))
        .expect("netns")
        .expect("capture");
    let (sport, dport) = (1000u16, 65534u16);
    let f = frame::udp4(
        tb.rtr_src_if.mac,
        tb.src_if.mac,
        tb.src_if.ipv4,
        tb.dst_if.ipv4,
        sport,
        dport,
        64,
    );
    let (flows, frames) = (100u32, 250u32);
    let ifindex = tb.src_if.ifindex;
    tb.src
        .run_in(move || {
            let mut g = Generator::new_flows(&f, flows).expect("generator");
            g.send(ifindex, frames).expect("send");
        })
        .expect("netns");
    let deadline = Instant::now() + Duration::from_secs(5);
    let (got, _) = capture
        .drain(Duration::from_millis(500), deadline, 10_000)
        .expect("drain");
    let base = u32::from(sport) << 16 | u32::from(dport);
    let mut seen = BTreeSet::new();
    for f in got
        .iter()
        .filter(|f| f.len() >= 42 && f[12..14] == [8, 0] && f[23] == 17)
    {
        let ports = u32::from_be_bytes([f[34], f[35], f[36], f[37]]);
        assert!(
            ports.wrapping_sub(base) < flows,
            "ports {ports:#x} outside the {flows} flows from {base:#x}"
        );
        assert_eq!(f[40..42], [0, 0], "no UDP checksum");
        seen.insert(ports);
    }
    // Every flow arrived; the destination port wrapped into the source
    // port's (65534, 65535, then 0 with source port 1001).
    assert_eq!(seen.len(), flows as usize, "{} frames captured", got.len());
    assert!(seen.contains(&(1001 << 16)));
}
