// SPDX-License-Identifier: MIT OR Apache-2.0
//! The traffic generator's new-flow mode (`Generator::new_flows`), which
//! the filter benchmark's new-flow table relies on: frames sent through
//! Linux's forwarding on the virtual router arrive with successive ports
//! (source and destination as one 32-bit number), wrapping after the
//! number of flows asked for, with no UDP checksum. Root only; skips
//! loudly otherwise. Also the sink's latency samples (stamped frames only).

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use linuxfp_testkit::{VirtualRouter, diff::Capture, require_root};
use linuxfp_trafficgen::{Generator, Sink, frame};

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

/// The sink measures latency on stamped frames only: frames without a
/// send stamp (a throughput run's) are counted, but take no sample and no
/// clock read, so the harness costs every measured mode less.
#[test]
fn the_sink_samples_latency_of_stamped_frames_only() {
    if !require_root("the_sink_samples_latency_of_stamped_frames_only") {
        return;
    }
    let tb = VirtualRouter::new("tgstamp").expect("testbed");
    tb.set_static_neighbours().expect("neighbours");
    tb.rtr
        .exec(&["ethtool", "-K", tb.rtr_src_if.name, "gro", "on"])
        .expect("gro on");
    let stamp_at = frame::UDP4_HEADERS.div_ceil(8) * 8;
    let d0 = tb.dst_if.ifindex;
    let sink = tb
        .dst
        .run_in(move || Sink::attach_with_latency(d0, stamp_at))
        .expect("netns")
        .expect("sink");
    let f = frame::udp4(
        tb.rtr_src_if.mac,
        tb.src_if.mac,
        tb.src_if.ipv4,
        tb.dst_if.ipv4,
        1000,
        2000,
        64,
    );
    let ifindex = tb.src_if.ifindex;
    let send = |stamp: usize| {
        let f = f.clone();
        tb.src
            .run_in(move || {
                let mut g =
                    Generator::with_timestamp(&f, frame::UDP4_HEADERS, stamp).expect("generator");
                g.send(ifindex, 200).expect("send");
            })
            .expect("netns");
        std::thread::sleep(Duration::from_millis(200));
        (
            sink.counts().expect("counts").0,
            sink.latency().expect("latency").samples,
        )
    };
    let (p0, s0) = (0, 0);
    let (p1, s1) = send(0);
    assert!(p1 - p0 >= 190, "unstamped frames counted: {}", p1 - p0);
    assert_eq!(s1, s0, "no latency sample for an unstamped frame");
    let (p2, s2) = send(stamp_at);
    assert!(p2 - p1 >= 190, "stamped frames counted: {}", p2 - p1);
    assert_eq!(s2 - s1, p2 - p1, "one sample per stamped frame");
}
