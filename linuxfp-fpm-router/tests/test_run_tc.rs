// SPDX-License-Identifier: MIT OR Apache-2.0
//! `router_tc` through `BPF_PROG_TEST_RUN`, inside the router namespace:
//! the XDP table (every forward byte for byte, every punt reason with the
//! packet unchanged and its counter moved by exactly one) plus what only TC
//! does: unresolved next hops handed to the neighbour layer with
//! `bpf_redirect_neigh`, GSO skbs checked per segment against the route's
//! MTU, `skb->priority` set as `ip_forward` sets it, and a CHECKSUM_COMPLETE
//! `skb->csum` kept true. Then attached to real veths for an IPv4 route
//! with an IPv6 gateway whose neighbour is unresolved.
//!
//! Root only; skips loudly otherwise.

mod common;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use aya::programs::{SchedClassifier, TcAttachType, TestRun, TestRunOptions};
use linuxfp_ebpf_common::{
    abi::counter,
    router::{
        IFACE_EGRESS, IFACE_INGRESS, PUNT_FRAG_NEEDED, PUNT_MARTIAN, SRC_CHECK_FIB, SRC_CHECK_MAP,
    },
};
use linuxfp_fpm_router::TC_PROGRAM;
use linuxfp_testkit::{VirtualRouter, addr, ping, require_root, route};

use common::{packet::*, *};

const TC_ACT_OK: u32 = 0;
const TC_ACT_REDIRECT: u32 = 7;

/// `struct __sk_buff` (192 bytes) and the offsets of the fields a test may
/// set (include/uapi/linux/bpf.h); every other byte must stay zero.
const SKB_SIZE: usize = 192;
const SKB_PRIORITY: usize = 32;
const SKB_INGRESS_IFINDEX: usize = 36;
const SKB_IFINDEX: usize = 40;
const SKB_GSO_SEGS: usize = 164;
const SKB_GSO_SIZE: usize = 176;

fn prog(ebpf: &aya::Ebpf) -> &SchedClassifier {
    ebpf.program(TC_PROGRAM)
        .expect("router_tc")
        .try_into()
        .expect("classifier")
}

/// The `__sk_buff` of a packet arriving on `ingress` (the device the test
/// skb is given, so `eth_type_trans` sets `pkt_type` against its MAC).
fn skb_ctx(ingress: u32, gso_size: u32, priority: u32) -> Vec<u8> {
    let mut ctx = vec![0u8; SKB_SIZE];
    ctx[SKB_PRIORITY..SKB_PRIORITY + 4].copy_from_slice(&priority.to_ne_bytes());
    ctx[SKB_INGRESS_IFINDEX..SKB_INGRESS_IFINDEX + 4].copy_from_slice(&ingress.to_ne_bytes());
    ctx[SKB_IFINDEX..SKB_IFINDEX + 4].copy_from_slice(&ingress.to_ne_bytes());
    if gso_size != 0 {
        ctx[SKB_GSO_SEGS..SKB_GSO_SEGS + 4].copy_from_slice(&2u32.to_ne_bytes());
        ctx[SKB_GSO_SIZE..SKB_GSO_SIZE + 4].copy_from_slice(&gso_size.to_ne_bytes());
    }
    ctx
}

/// Runs `row` as an skb that arrived on `row.ingress` with priority
/// `priority`; returns the outcome and the priority the program left.
fn run_with_priority(ebpf: &aya::Ebpf, row: &Row, priority: u32) -> (Outcome, u32) {
    let ctx = skb_ctx(row.ingress, row.gso_size, priority);
    let mut ctx_out = vec![0u8; SKB_SIZE];
    let mut out = vec![0u8; row.frame.len() + 256];
    let res = prog(ebpf)
        .test_run(TestRunOptions {
            data_in: Some(&row.frame),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            ctx_out: Some(&mut ctx_out),
            ..TestRunOptions::default()
        })
        .unwrap_or_else(|e| panic!("{}: test_run: {e}", row.name));
    out.truncate(res.data_size_out as usize);
    let prio = u32::from_ne_bytes(
        ctx_out[SKB_PRIORITY..SKB_PRIORITY + 4]
            .try_into()
            .expect("4 bytes"),
    );
    let outcome = Outcome {
        verdict: res.return_value,
        data: out,
    };
    (outcome, prio)
}

fn run(ebpf: &aya::Ebpf, row: &Row) -> Outcome {
    run_with_priority(ebpf, row, 0).0
}

/// Loads `router_tc` with `families`, sources checked with a FIB lookup,
/// and the lab's interfaces (TC has no devmap).
fn load_lab(lab: &Lab, families: u32) -> aya::Ebpf {
    load_lab_checking(lab, families, &SourceCheck::fib())
}

/// [`load_lab`] with `check` for IPv4 sources.
fn load_lab_checking(lab: &Lab, families: u32, check: &SourceCheck) -> aya::Ebpf {
    let mut ebpf = load_checking(families, check);
    fill(&mut ebpf, &ifaces(lab, 0), &[]);
    load_program(&mut ebpf, TC_PROGRAM, SchedClassifier::load);
    ebpf
}

/// What only TC forwards or refuses: unresolved next hops (TTL
/// decremented, MACs left to the neighbour layer) and GSO skbs, whose
/// segments must fit the route's MTU.
fn tc_rows(lab: &Lab) -> Vec<Row> {
    // The frames XDP punts as no_neigh, forwarded with the MACs as they
    // came: the neighbour layer writes them once it has resolved the hop.
    let mut rows: Vec<Row> = both_families(
        lab,
        "next hop without neighbour entry",
        "10.9.4.1",
        "fd09:4::1",
    )
    .into_iter()
    .map(|(name, f)| {
        let out = forwarded(&f, None);
        Row::forward(&name, lab.r0, f, out)
    })
    .collect();
    let to_dst = Some((lab.dst_mac, lab.r1.mac));
    // A 1400-byte GRO super-packet over r1's 1280 MTU: fine if each
    // segment fits (40 + 1000), refused if not (40 + 1300).
    let tcp4 = to_r0(
        lab,
        ETH_P_IP,
        &hdr4(TCP, "10.1.0.2", "10.2.0.2").packet(&tcp(40000, 80, 1400 - 40)),
    );
    let tcp6 = to_r0(
        lab,
        ETH_P_IPV6,
        &hdr6(TCP, "fd01::2", "fd02::2").packet(&tcp(40000, 80, 1400 - 60)),
    );
    for (fam, f) in [("ipv4", tcp4), ("ipv6", tcp6)] {
        let out = forwarded(&f, to_dst);
        rows.push(Row {
            gso_size: 1000,
            ..Row::forward(
                &format!("{fam} tcp gso, segments fit"),
                lab.r0,
                f.clone(),
                out,
            )
        });
        rows.push(Row {
            gso_size: 1300,
            ..Row::punt(
                &format!("{fam} tcp gso, segments over the mtu"),
                lab.r0,
                f,
                PUNT_FRAG_NEEDED,
            )
        });
    }
    // Segments of 1040 fit r1 (1280) but not the route's locked MTU
    // (1000): ip_forward checks the route's, and so does the FIB helper
    // when it is given the segment length.
    let mut df = hdr4(TCP, "10.1.0.2", "10.9.6.2");
    df.frag = 0x4000;
    rows.push(Row {
        gso_size: 1000,
        ..Row::punt(
            "ipv4 tcp gso, segments over the route's locked mtu",
            lab.r0,
            to_r0(lab, ETH_P_IP, &df.packet(&tcp(40000, 80, 1400 - 40))),
            PUNT_FRAG_NEEDED,
        )
    });
    // __sk_buff has no gso_type: a UDP GSO skb may be UFO or a UDP tunnel
    // whose segments carry more headers than 20 + 8 + gso_size.
    rows.push(Row {
        gso_size: 500,
        ..Row::punt(
            "ipv4 udp gso (segment size not derivable)",
            lab.r0,
            udp4(lab, "10.2.0.2"),
            PUNT_FRAG_NEEDED,
        )
    });
    rows
}

#[test]
fn tc_forwards_and_punts_by_the_table() {
    with_lab("tc_forwards_and_punts_by_the_table", "rtc", |lab| {
        // Both ways of checking sources, as in the XDP table.
        let map = SourceCheck::of(lab.rtr());
        assert_eq!(map.0.mode, SRC_CHECK_MAP, "{:?}", map.0.why_fib);
        for check in [SourceCheck::fib(), map] {
            let ebpf = load_lab_checking(lab, ALL_FAMILIES, &check);
            let mut rows = forward_rows(lab);
            // The skb test run itself refuses frames too short for the IP
            // header their EtherType announces (EINVAL): XDP's table has
            // them.
            rows.extend(
                punt_rows(lab)
                    .into_iter()
                    .filter(|r| !r.name.contains("truncated header")),
            );
            rows.extend(tc_rows(lab));
            check_table(&ebpf, &rows, TC_ACT_OK, TC_ACT_REDIRECT, |row| {
                run(&ebpf, row)
            });
        }
    });
}

#[test]
fn tc_custom_rules_make_the_source_check_ask_the_fib() {
    with_lab(
        "tc_custom_rules_make_the_source_check_ask_the_fib",
        "rtcsrc",
        |lab| {
            custom_local_routes(lab);
            let check = SourceCheck::of(lab.rtr());
            assert_eq!(check.0.mode, SRC_CHECK_FIB);
            let frame = udp_between(lab, "10.77.0.5", "10.2.0.2");
            let row = Row::punt(
                "ipv4 src local by a policy rule",
                lab.r0,
                frame,
                PUNT_MARTIAN,
            );
            let ebpf = load_lab_checking(lab, ALL_FAMILIES, &check);
            check_table(&ebpf, &[row], TC_ACT_OK, TC_ACT_REDIRECT, |row| {
                run(&ebpf, row)
            });
        },
    );
}

#[test]
fn tc_punts_families_that_are_off() {
    with_lab("tc_punts_families_that_are_off", "rtcfam", |lab| {
        for (on, rows) in family_rows(lab) {
            let ebpf = load_lab(lab, on);
            check_table(&ebpf, &rows, TC_ACT_OK, TC_ACT_REDIRECT, |row| {
                run(&ebpf, row)
            });
        }
    });
}

/// `ip_forward` sets `skb->priority = rt_tos2priority(tos)` (with the
/// default `net.ipv4.ip_forward_update_priority=1`); `ip6_forward` leaves
/// it; a punted packet reaches the kernel with the priority it came with.
#[test]
fn tc_sets_priority_like_ip_forward() {
    with_lab("tc_sets_priority_like_ip_forward", "rtcprio", |lab| {
        let ebpf = load_lab(lab, ALL_FAMILIES);
        let to_dst = Some((lab.dst_mac, lab.r1.mac));
        // rt_tos2priority: TOS 0x10 (low delay) → interactive (6),
        // 0x08 (throughput) → bulk (2), 0x18 → interactive bulk (4),
        // 0x04 (reliability) and the ECN bits → best effort (0).
        let mut cases: Vec<(Row, u32)> = [
            (0x10u8, 6u32),
            (0x08, 2),
            (0x18, 4),
            (0x04, 0),
            (0x03, 0),
            (0xB8, 4),
        ]
        .into_iter()
        .map(|(tos, prio)| {
            let mut h = hdr4(UDP, "10.1.0.2", "10.2.0.2");
            h.tos = tos;
            let f = to_r0(lab, ETH_P_IP, &h.packet(&udp(1, 2, 10)));
            let out = forwarded(&f, to_dst);
            (
                Row::forward(&format!("ipv4 tos {tos:#04x}"), lab.r0, f, out),
                prio,
            )
        })
        .collect();
        let v6 = udp6(lab, "fd02::2");
        let v6_out = forwarded(&v6, to_dst);
        cases.push((Row::forward("ipv6", lab.r0, v6, v6_out), 5));
        let mut ttl1 = hdr4(UDP, "10.1.0.2", "10.2.0.2");
        ttl1.tos = 0x10;
        ttl1.ttl = 1;
        let f = to_r0(lab, ETH_P_IP, &ttl1.packet(&udp(1, 2, 10)));
        cases.push((Row::punt("ipv4 tos 0x10, ttl 1 (punted)", lab.r0, f, 0), 5));
        for (row, want) in cases {
            let (out, prio) = run_with_priority(&ebpf, &row, 5);
            let (verdict, bytes) = match &row.expect {
                Expect::Forward(b) => (TC_ACT_REDIRECT, b),
                Expect::Punt(_) => (TC_ACT_OK, &row.frame),
            };
            assert_eq!(out.verdict, verdict, "{}", row.name);
            assert_eq!(&out.data, bytes, "{}", row.name);
            assert_eq!(prio, want, "{}: skb->priority", row.name);
        }
    });
}

/// `BPF_F_TEST_SKB_CHECKSUM_COMPLETE`: the kernel gives the test skb a
/// CHECKSUM_COMPLETE `skb->csum` over the bytes from the network header on
/// and, after the run, fails with `EBADMSG` if the program left it
/// inconsistent with the bytes (kernel 6.11+).
const BPF_F_TEST_SKB_CHECKSUM_COMPLETE: u32 = 1 << 2;

/// Every forward, as a CHECKSUM_COMPLETE skb: the bytes as in the table,
/// and `skb->csum` still the sum of them (else a veth peer that delivers
/// the packet locally sees a mismatch and reports "hw csum failure").
#[test]
fn tc_keeps_checksum_complete_true() {
    with_lab("tc_keeps_checksum_complete_true", "rtccsum", |lab| {
        let ebpf = load_lab(lab, ALL_FAMILIES);
        let fd = prog(&ebpf).fd().expect("program fd");
        let mut rows = forward_rows(lab);
        rows.extend(tc_rows(lab));
        let mut checked = 0;
        for row in &rows {
            let Expect::Forward(want) = &row.expect else {
                continue;
            };
            let ctx = skb_ctx(row.ingress, row.gso_size, 0);
            let (verdict, out) = raw_test_run(
                fd.as_fd(),
                &row.frame,
                &ctx,
                BPF_F_TEST_SKB_CHECKSUM_COMPLETE,
            )
            .unwrap_or_else(|e| panic!("{}: test run with CHECKSUM_COMPLETE: {e}", row.name));
            assert_eq!(verdict, TC_ACT_REDIRECT, "{}", row.name);
            assert_eq!(&out, want, "{}", row.name);
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} forwarded rows");
    });
}

/// `BPF_PROG_TEST_RUN` with `flags`, which aya's `TestRunOptions` does not
/// expose. Returns the program's return value and the packet after the
/// run.
fn raw_test_run(
    prog_fd: BorrowedFd<'_>,
    data: &[u8],
    ctx: &[u8],
    flags: u32,
) -> std::io::Result<(u32, Vec<u8>)> {
    // union bpf_attr, the `test` member (include/uapi/linux/bpf.h).
    #[repr(C)]
    #[derive(Default)]
    struct TestAttr {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        pad: u32,
    }
    const BPF_PROG_TEST_RUN: libc::c_long = 10;
    let mut data_out = vec![0u8; data.len() + 256];
    let mut attr = TestAttr {
        prog_fd: prog_fd.as_raw_fd() as u32,
        data_size_in: data.len() as u32,
        data_size_out: data_out.len() as u32,
        data_in: data.as_ptr() as u64,
        data_out: data_out.as_mut_ptr() as u64,
        repeat: 1,
        ctx_size_in: ctx.len() as u32,
        ctx_in: ctx.as_ptr() as u64,
        flags,
        ..TestAttr::default()
    };
    // SAFETY: `attr` is a valid `test` member of union bpf_attr whose
    // pointers refer to live buffers of the sizes given; the kernel writes
    // only into `attr` and `data_out`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    data_out.truncate(attr.data_size_out as usize);
    Ok((attr.retval, data_out))
}

/// An IPv4 route whose gateway is an IPv6 address (RFC 5549), its
/// neighbour not yet resolved: the FIB helper answers NO_NEIGH with the
/// gateway in the IPv6 destination and `family` AF_INET6, so the program
/// must ask `bpf_redirect_neigh` for an IPv6 next hop. Pings get through
/// exactly as with Linux alone, and every request took the fast path.
#[test]
fn tc_resolves_an_ipv6_gateway_for_an_ipv4_route() {
    if !require_root("tc_resolves_an_ipv6_gateway_for_an_ipv4_route") {
        return;
    }
    let tb = VirtualRouter::new("rtcgw6").expect("testbed");
    addr(&tb.dst, "d0", "10.8.0.2/32").expect("address behind the gateway");
    route(&tb.rtr, "10.8.0.0/24 via inet6 fd02::2 dev r1").expect("route via inet6");
    let (r0, r1) = (&tb.rtr_src_if, &tb.rtr_dst_if);
    let flush = || {
        tb.rtr
            .exec(&["ip", "neigh", "flush", "all"])
            .expect("flush neighbours");
    };
    let gateway_known = || {
        let out = tb
            .rtr
            .exec(&["ip", "-6", "neigh", "show", "fd02::2", "dev", "r1"])
            .expect("ip neigh show");
        out.contains("lladdr")
    };
    // Linux alone.
    flush();
    let alone = ping(&tb.src, "10.8.0.2", 3).expect("ping without the fast path");
    assert_eq!(alone.received, 3, "Linux alone: {alone:?}");
    tb.rtr
        .run_in(|| {
            let mut ebpf = load(ALL_FAMILIES);
            let all = IFACE_INGRESS | IFACE_EGRESS;
            let ports = [r0, r1].map(|e| Port {
                ifindex: e.ifindex,
                mac: e.mac,
            });
            fill(&mut ebpf, &[(ports[0], all), (ports[1], all)], &[]);
            load_program(&mut ebpf, TC_PROGRAM, SchedClassifier::load);
            let prog: &mut SchedClassifier = ebpf
                .program_mut(TC_PROGRAM)
                .expect("router_tc")
                .try_into()
                .expect("classifier");
            for name in [r0.name, r1.name] {
                prog.attach(name, TcAttachType::Ingress)
                    .unwrap_or_else(|e| panic!("attach to {name}: {e}"));
            }
            flush();
            assert!(!gateway_known(), "the gateway's neighbour was flushed");
            let before = counters(&ebpf, r0.ifindex);
            let stats = ping(&tb.src, "10.8.0.2", 5).expect("ping through router_tc");
            let after = counters(&ebpf, r0.ifindex);
            assert_eq!(stats.received, 5, "with router_tc: {stats:?}");
            let fast = after[counter::FAST as usize] - before[counter::FAST as usize];
            assert_eq!(
                fast, 5,
                "every echo request took the fast path; r0 counters {before:?} -> {after:?}"
            );
            assert!(
                gateway_known(),
                "the neighbour layer resolved the IPv6 gateway"
            );
        })
        .expect("run in the router namespace");
}

/// As `a_fib_answer_handed_over_is_used_once_and_only_for_its_packet` for
/// XDP: a filter stage's FIB answer in `LFP_PKT_CTX` is taken only as a
/// later stage, for the same ingress and layout, and once.
#[test]
fn tc_takes_a_handed_fib_answer_once_and_only_for_its_packet() {
    with_lab(
        "tc_takes_a_handed_fib_answer_once_and_only_for_its_packet",
        "rthand",
        |lab| {
            let row = Row::punt("udp to d0", lab.r0, udp4(lab, "10.2.0.2"), 0);
            for (what, position, value, want_dmac) in handoff_cases(lab) {
                let mut ebpf = load_at(ALL_FAMILIES, &SourceCheck::fib(), position);
                fill(&mut ebpf, &ifaces(lab, 0), &[]);
                load_program(&mut ebpf, TC_PROGRAM, SchedClassifier::load);
                set_pkt_ctx(&mut ebpf, value);
                let out = run(&ebpf, &row);
                assert_eq!(out.verdict, TC_ACT_REDIRECT, "{what}: forwarded");
                assert_eq!(out.data[..6], want_dmac, "{what}: destination MAC");
                assert_eq!(out.data[6..12], lab.r1.mac, "{what}: source MAC");
                assert_eq!(empty_pkt_ctx(&ebpf), 1, "{what}: emptied");
            }
        },
    );
}
