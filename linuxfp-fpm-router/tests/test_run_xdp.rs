// SPDX-License-Identifier: MIT OR Apache-2.0
//! `BPF_PROG_TEST_RUN` table for `router_xdp`: crafted packets in, verdict,
//! bytes and counters out. Every forward is checked byte for byte against
//! an independently computed result; every punt reason with the packet
//! unchanged and its counter moved by exactly one. Runs inside the router
//! namespace, because the FIB lookup uses the namespace of the caller.
//!
//! Root only; skips loudly otherwise.

mod common;

use aya::programs::{TestRun, TestRunOptions, Xdp};
use linuxfp_ebpf_common::router::{
    IFACE_XDP_EGRESS, PUNT_MARTIAN, PUNT_NO_NEIGH, PUNT_REDIRECT_FAILED, SRC_CHECK_FIB,
    SRC_CHECK_MAP,
};
use linuxfp_fpm_router::XDP_PROGRAM;

use common::*;

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

/// Runs `row` through `router_xdp` as if it arrived on `row.ingress`.
fn run(ebpf: &aya::Ebpf, row: &Row) -> Outcome {
    let prog: &Xdp = ebpf
        .program(XDP_PROGRAM)
        .expect("router_xdp")
        .try_into()
        .expect("XDP");
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
    // rx_queue_index, egress_ifindex.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(row.frame.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&row.ingress.to_ne_bytes());
    let mut out = vec![0u8; row.frame.len() + 256];
    let res = prog
        .test_run(TestRunOptions {
            data_in: Some(&row.frame),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            ..TestRunOptions::default()
        })
        .unwrap_or_else(|e| panic!("{}: test_run: {e}", row.name));
    out.truncate(res.data_size_out as usize);
    Outcome {
        verdict: res.return_value,
        data: out,
    }
}

/// Loads `router_xdp` with `families`, sources checked with a FIB lookup,
/// and the lab's interfaces (x1 left out of the devmap).
fn load_lab(lab: &Lab, families: u32) -> aya::Ebpf {
    load_lab_checking(lab, families, &SourceCheck::fib())
}

/// [`load_lab`] with `check` for IPv4 sources.
fn load_lab_checking(lab: &Lab, families: u32, check: &SourceCheck) -> aya::Ebpf {
    let mut ebpf = load_checking(families, check);
    fill(&mut ebpf, &ifaces(lab, IFACE_XDP_EGRESS), &xdp_ports(lab));
    load_program(&mut ebpf, XDP_PROGRAM, Xdp::load);
    ebpf
}

#[test]
fn xdp_forwards_and_punts_by_the_table() {
    with_lab("xdp_forwards_and_punts_by_the_table", "rxdp", |lab| {
        // The same table with both ways of checking sources: the FIB lookup
        // and the map the parameterizer fills for this namespace.
        let map = SourceCheck::of(lab.rtr());
        assert_eq!(map.0.mode, SRC_CHECK_MAP, "{:?}", map.0.why_fib);
        for check in [SourceCheck::fib(), map] {
            let ebpf = load_lab_checking(lab, ALL_FAMILIES, &check);
            let mut rows = forward_rows(lab);
            rows.extend(punt_rows(lab));
            // XDP cannot queue a packet while the kernel resolves its next
            // hop.
            rows.extend(punt_both(
                lab,
                "next hop without neighbour entry",
                "10.9.4.1",
                "fd09:4::1",
                PUNT_NO_NEIGH,
            ));
            // x1 claims XDP egress but is missing from the devmap (the maps
            // briefly out of step): the redirect is asked for before any
            // rewrite, so the kernel gets the frame as it arrived, not one
            // with its TTL already spent and the next hop's MAC on it.
            rows.extend(punt_both(
                lab,
                "egress missing from the devmap",
                "10.6.0.2",
                "fd06::2",
                PUNT_REDIRECT_FAILED,
            ));
            check_table(&ebpf, &rows, XDP_PASS, XDP_REDIRECT, |row| run(&ebpf, row));
        }
    });
}

#[test]
fn custom_rules_make_the_source_check_ask_the_fib() {
    with_lab(
        "custom_rules_make_the_source_check_ask_the_fib",
        "rxsrc",
        |lab| {
            let before = SourceCheck::of(lab.rtr());
            assert_eq!(before.0.mode, SRC_CHECK_MAP, "{:?}", before.0.why_fib);
            // Local routes in a table only a policy rule consults: the kernel
            // now rejects their addresses as sources, and the quick set built
            // without the rule does not hold them.
            custom_local_routes(lab);
            let after = SourceCheck::of(lab.rtr());
            assert_eq!(after.0.mode, SRC_CHECK_FIB, "{:?}", after.0.sources.len());
            let frame = udp_between(lab, "10.77.0.5", "10.2.0.2");
            let punted = Row::punt(
                "ipv4 src local by a policy rule",
                lab.r0,
                frame.clone(),
                PUNT_MARTIAN,
            );
            let ebpf = load_lab_checking(lab, ALL_FAMILIES, &after);
            check_table(&ebpf, &[punted], XDP_PASS, XDP_REDIRECT, |row| {
                run(&ebpf, row)
            });
            // The stale set would have forwarded it: the check is what punts.
            let ebpf = load_lab_checking(lab, ALL_FAMILIES, &before);
            let out = run(&ebpf, &Row::punt("stale", lab.r0, frame, PUNT_MARTIAN));
            assert_eq!(out.verdict, XDP_REDIRECT, "the stale set forwards it");
        },
    );
}

#[test]
fn xdp_punts_families_that_are_off() {
    with_lab("xdp_punts_families_that_are_off", "rxfam", |lab| {
        for (on, rows) in family_rows(lab) {
            let ebpf = load_lab(lab, on);
            check_table(&ebpf, &rows, XDP_PASS, XDP_REDIRECT, |row| run(&ebpf, row));
        }
    });
}

/// A filter stage before the router hands over its successful FIB answer
/// in `LFP_PKT_CTX`. The router takes it instead of asking again, but only
/// as a later stage, for the same ingress and packet layout, and once.
/// The handed answer carries a MAC the FIB would never give, so the frame
/// shows which answer was used.
#[test]
fn a_fib_answer_handed_over_is_used_once_and_only_for_its_packet() {
    with_lab(
        "a_fib_answer_handed_over_is_used_once_and_only_for_its_packet",
        "rxhand",
        |lab| {
            let row = Row::punt("udp to d0", lab.r0, udp4(lab, "10.2.0.2"), 0);
            for (what, position, value, want_dmac) in handoff_cases(lab) {
                let mut ebpf = load_at(ALL_FAMILIES, &SourceCheck::fib(), position);
                fill(&mut ebpf, &ifaces(lab, IFACE_XDP_EGRESS), &xdp_ports(lab));
                load_program(&mut ebpf, XDP_PROGRAM, Xdp::load);
                set_pkt_ctx(&mut ebpf, value);
                let out = run(&ebpf, &row);
                assert_eq!(out.verdict, XDP_REDIRECT, "{what}: forwarded");
                assert_eq!(out.data[..6], want_dmac, "{what}: destination MAC");
                assert_eq!(out.data[6..12], lab.r1.mac, "{what}: source MAC");
                // The entry of the CPU that ran it is emptied, used or not.
                assert_eq!(empty_pkt_ctx(&ebpf), 1, "{what}: emptied");
            }
        },
    );
}
