// SPDX-License-Identifier: MIT OR Apache-2.0
//! `BPF_PROG_TEST_RUN` table for `router_xdp`: crafted packets in, verdict,
//! bytes and counters out. Runs inside the virtual router's namespace,
//! because the FIB lookup uses the namespace of the caller.

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::{
    EbpfLoader,
    maps::{Array, DevMapHash, PerCpuArray},
    programs::{TestRun, TestRunOptions, Xdp},
};
use linuxfp_ebpf_common::{
    abi::{self, counter},
    router::{self, IFACE_EGRESS, IFACE_INGRESS, IFACE_XDP_EGRESS, RouterConf, RouterIface},
};
use linuxfp_fpm_router::{XDP_PROGRAM, bytecode::ROUTER_OBJ};
use linuxfp_testkit::{VirtualRouter, require_root};

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

struct Case {
    name: &'static str,
    frame: Vec<u8>,
    verdict: u32,
    counter: u32,
}

fn csum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn eth(dst: [u8; 6], src: [u8; 6], proto: u16) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&proto.to_be_bytes());
    f
}

/// An IPv4/UDP frame; `tweak` edits the IP header before the checksum.
fn v4(dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, tweak: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = eth(dst_mac, [2, 0, 0, 0, 0, 9], 0x0800);
    let mut ip = vec![0x45, 0, 0, 28 + 18, 0, 1, 0, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    tweak(&mut ip);
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 26, 0, 0]);
    f.resize(f.len() + 18, 0x5a);
    f
}

fn v6(dst_mac: [u8; 6], src: Ipv6Addr, dst: Ipv6Addr, nexthdr: u8, hop: u8) -> Vec<u8> {
    let mut f = eth(dst_mac, [2, 0, 0, 0, 0, 9], 0x86DD);
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 16, nexthdr, hop]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 16, 0, 0]);
    f.resize(f.len() + 8, 0x5a);
    f
}

#[test]
fn router_xdp_table() {
    if !require_root("router_xdp_table") {
        return;
    }
    let tb = VirtualRouter::new("trx").expect("testbed");
    tb.set_static_neighbours().expect("neighbours");
    tb.rtr
        .exec(&["ip", "route", "add", "blackhole", "10.66.0.0/16"])
        .expect("blackhole");
    tb.rtr
        .exec(&["ip", "route", "add", "unreachable", "10.67.0.0/16"])
        .expect("unreachable");
    tb.rtr
        .exec(&["ip", "route", "add", "10.77.0.0/16", "via", "10.2.0.9"])
        .expect("route via an unresolved next hop");
    let (r0, r1, d0) = (
        tb.rtr_src_if.clone(),
        tb.rtr_dst_if.clone(),
        tb.dst_if.clone(),
    );
    let mac = r0.mac;
    let (src4, dst4) = (tb.src_if.ipv4, d0.ipv4);
    let (src6, dst6) = (tb.src_if.ipv6, d0.ipv6);
    let ok4 = v4(mac, src4, dst4, |_| {});
    let ok6 = v6(mac, src6, dst6, 17, 64);
    let cases = vec![
        Case {
            name: "ipv4 forwarded",
            frame: ok4.clone(),
            verdict: XDP_REDIRECT,
            counter: counter::FAST,
        },
        Case {
            name: "ipv6 forwarded",
            frame: ok6.clone(),
            verdict: XDP_REDIRECT,
            counter: counter::FAST,
        },
        Case {
            name: "arp",
            frame: {
                let mut f = eth(mac, [2, 0, 0, 0, 0, 9], 0x0806);
                f.resize(60, 0);
                f
            },
            verdict: XDP_PASS,
            counter: router::PUNT_NOT_IP,
        },
        Case {
            name: "vlan tag",
            frame: {
                let mut f = eth(mac, [2, 0, 0, 0, 0, 9], 0x8100);
                f.extend_from_slice(&[0, 5, 8, 0]);
                f.extend_from_slice(&ok4[14..]);
                f
            },
            verdict: XDP_PASS,
            counter: router::PUNT_VLAN,
        },
        Case {
            name: "ttl 1",
            frame: v4(mac, src4, dst4, |ip| ip[8] = 1),
            verdict: XDP_PASS,
            counter: router::PUNT_TTL,
        },
        Case {
            name: "ttl 0",
            frame: v4(mac, src4, dst4, |ip| ip[8] = 0),
            verdict: XDP_PASS,
            counter: router::PUNT_TTL,
        },
        Case {
            name: "hop limit 1",
            frame: v6(mac, src6, dst6, 17, 1),
            verdict: XDP_PASS,
            counter: router::PUNT_TTL,
        },
        Case {
            name: "ip options",
            frame: v4(mac, src4, dst4, |ip| {
                ip[0] = 0x46;
                ip.splice(20..20, [1, 1, 1, 0]);
                ip[3] += 4;
            }),
            verdict: XDP_PASS,
            counter: router::PUNT_IP_OPTIONS,
        },
        Case {
            name: "fragment MF",
            frame: v4(mac, src4, dst4, |ip| ip[6] = 0x20),
            verdict: XDP_PASS,
            counter: router::PUNT_FRAGMENT,
        },
        Case {
            name: "fragment offset",
            frame: v4(mac, src4, dst4, |ip| ip[7] = 0x10),
            verdict: XDP_PASS,
            counter: router::PUNT_FRAGMENT,
        },
        Case {
            name: "ipv6 fragment header",
            frame: v6(mac, src6, dst6, 44, 64),
            verdict: XDP_PASS,
            counter: router::PUNT_FRAGMENT,
        },
        Case {
            name: "ipv6 hop-by-hop",
            frame: v6(mac, src6, dst6, 0, 64),
            verdict: XDP_PASS,
            counter: router::PUNT_IPV6_HOPOPTS,
        },
        Case {
            name: "loopback source",
            frame: v4(mac, Ipv4Addr::LOCALHOST, dst4, |_| {}),
            verdict: XDP_PASS,
            counter: router::PUNT_MARTIAN,
        },
        Case {
            name: "multicast destination",
            frame: v4(mac, src4, Ipv4Addr::new(239, 1, 1, 1), |_| {}),
            verdict: XDP_PASS,
            counter: router::PUNT_MARTIAN,
        },
        Case {
            name: "ipv6 link-local source",
            frame: v6(mac, "fe80::1".parse().expect("addr"), dst6, 17, 64),
            verdict: XDP_PASS,
            counter: router::PUNT_MARTIAN,
        },
        Case {
            name: "broadcast mac",
            frame: v4([0xff; 6], src4, dst4, |_| {}),
            verdict: XDP_PASS,
            counter: router::PUNT_L2_MULTICAST,
        },
        Case {
            name: "other host mac",
            frame: v4([2, 9, 9, 9, 9, 9], src4, dst4, |_| {}),
            verdict: XDP_PASS,
            counter: router::PUNT_OTHER_HOST,
        },
        Case {
            name: "local destination",
            frame: v4(mac, src4, r1.ipv4, |_| {}),
            verdict: XDP_PASS,
            counter: router::PUNT_LOCAL,
        },
        Case {
            name: "blackhole route",
            frame: v4(mac, src4, Ipv4Addr::new(10, 66, 0, 1), |_| {}),
            verdict: XDP_PASS,
            counter: router::PUNT_ROUTE_REJECT,
        },
        Case {
            name: "same interface",
            frame: v4(mac, src4, Ipv4Addr::new(10, 1, 0, 7), |_| {}),
            verdict: XDP_PASS,
            counter: router::PUNT_SAME_IF,
        },
        Case {
            name: "no neighbour",
            frame: v4(mac, src4, Ipv4Addr::new(10, 77, 0, 1), |_| {}),
            verdict: XDP_PASS,
            counter: router::PUNT_NO_NEIGH,
        },
        Case {
            name: "unreachable route",
            frame: v4(mac, src4, Ipv4Addr::new(10, 67, 0, 1), |_| {}),
            verdict: XDP_PASS,
            counter: router::PUNT_ROUTE_REJECT,
        },
        Case {
            name: "bad checksum",
            frame: {
                let mut f = ok4.clone();
                f[24] ^= 0xff;
                f
            },
            verdict: XDP_PASS,
            counter: router::PUNT_MALFORMED,
        },
        Case {
            name: "truncated ipv4",
            frame: ok4[..30].to_vec(),
            verdict: XDP_PASS,
            counter: router::PUNT_MALFORMED,
        },
        Case {
            name: "total length beyond frame",
            frame: v4(mac, src4, dst4, |ip| ip[3] = 200),
            verdict: XDP_PASS,
            counter: router::PUNT_MALFORMED,
        },
        Case {
            name: "bad ihl",
            frame: v4(mac, src4, dst4, |ip| ip[0] = 0x44),
            verdict: XDP_PASS,
            counter: router::PUNT_MALFORMED,
        },
    ];
    let ingress = r0.ifindex;
    let egress = r1.ifindex;
    let results = tb
        .rtr
        .run_in(move || {
            let conf = RouterConf {
                families: router::FAMILY_IPV4 | router::FAMILY_IPV6,
                reserved: 0,
            };
            let mut ebpf = EbpfLoader::new()
                .override_global(router::CONF_GLOBAL, &conf, true)
                .load(ROUTER_OBJ)
                .expect("load object");
            let mut ifaces: Array<_, RouterIface> =
                Array::try_from(ebpf.map_mut(router::IFACES_MAP).expect("map")).expect("array");
            for (i, m) in [(ingress, r0.mac), (egress, r1.mac)] {
                let v = RouterIface {
                    mac: m,
                    flags: IFACE_INGRESS | IFACE_EGRESS | IFACE_XDP_EGRESS,
                };
                ifaces.set(i, v, 0).expect("iface");
            }
            let mut ports = DevMapHash::try_from(ebpf.map_mut(router::XDP_PORTS_MAP).expect("map"))
                .expect("devmap");
            for i in [ingress, egress] {
                ports.insert(i, i, None, 0).expect("port");
            }
            let prog: &mut Xdp = ebpf
                .program_mut(XDP_PROGRAM)
                .expect("prog")
                .try_into()
                .expect("xdp");
            prog.load().expect("verifier");
            let mut ctx = [0u8; 24];
            let mut out = Vec::new();
            for case in &cases {
                ctx[4..8].copy_from_slice(&(case.frame.len() as u32).to_ne_bytes());
                ctx[12..16].copy_from_slice(&ingress.to_ne_bytes());
                let mut data_out = vec![0u8; case.frame.len() + 256];
                let before = read_counter(&ebpf, ingress, case.counter);
                let prog: &mut Xdp = ebpf
                    .program_mut(XDP_PROGRAM)
                    .expect("prog")
                    .try_into()
                    .expect("xdp");
                let r = prog
                    .test_run(TestRunOptions {
                        data_in: Some(&case.frame),
                        data_out: Some(&mut data_out),
                        ctx_in: Some(&ctx),
                        ..TestRunOptions::new()
                    })
                    .expect("test run");
                data_out.truncate(r.data_size_out as usize);
                let after = read_counter(&ebpf, ingress, case.counter);
                out.push((
                    case.name,
                    case.frame.clone(),
                    case.verdict,
                    r.return_value,
                    data_out,
                    after - before,
                ));
            }
            out
        })
        .expect("netns");
    for (name, frame_in, want, got, out, counted) in results {
        assert_eq!(got, want, "{name}: verdict");
        assert_eq!(counted, 1, "{name}: its counter moved by exactly one");
        if want == XDP_PASS {
            assert_eq!(out, frame_in, "{name}: a punted packet is untouched");
            continue;
        }
        // Forwarded: MACs from the neighbour entry and the egress, TTL or
        // hop limit one less, IPv4 checksum still valid, rest unchanged.
        assert_eq!(&out[0..6], &d0.mac, "{name}: destination MAC");
        assert_eq!(&out[6..12], &r1.mac, "{name}: source MAC");
        if name.starts_with("ipv4") {
            assert_eq!(out[22], frame_in[22] - 1, "{name}: TTL");
            assert_eq!(csum(&out[14..34]), 0, "{name}: header checksum");
            assert_eq!(&out[23..24], &frame_in[23..24]);
            assert_eq!(&out[26..], &frame_in[26..], "{name}: rest unchanged");
        } else {
            assert_eq!(out[21], frame_in[21] - 1, "{name}: hop limit");
            assert_eq!(&out[22..], &frame_in[22..], "{name}: rest unchanged");
        }
    }
}

fn read_counter(ebpf: &aya::Ebpf, ifindex: u32, counter: u32) -> u64 {
    let stats: PerCpuArray<_, u64> =
        PerCpuArray::try_from(ebpf.map(abi::STATS_MAP).expect("stats")).expect("percpu");
    stats
        .get(&abi::stats_index(ifindex, counter), 0)
        .map(|v| v.iter().sum())
        .unwrap_or(0)
}
