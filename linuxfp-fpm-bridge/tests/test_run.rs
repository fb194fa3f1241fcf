// SPDX-License-Identifier: MIT OR Apache-2.0
//! `BPF_PROG_TEST_RUN` tables for `bridge_xdp` and `bridge_tc`: crafted
//! frames in; verdict, bytes and the counter of the expected reason out.
//!
//! The programs run against maps filled by hand, inside a namespace holding
//! a real bridge with four ports (the test-run context needs real ingress
//! devices). VLAN filtering cases run in XDP only: this kernel has no
//! 802.1Q, and a TC test run cannot carry a hardware-accelerated tag.
//!
//! Root only; skips loudly otherwise.

use aya::{
    Ebpf,
    maps::{Array, DevMapHash, HashMap, MapData, PerCpuArray},
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use linuxfp_ebpf_common::{
    abi::{self, counter},
    bridge::*,
};
use linuxfp_fpm_bridge::{TC_PROGRAM, XDP_PROGRAM, bytecode::BRIDGE_OBJ};
use linuxfp_testkit::{Netns, bridge, enslave, ifindex, require_root, up, veth};

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;
const TC_ACT_OK: u32 = 0;
const TC_ACT_REDIRECT: u32 = 7;

const BR_MAC: [u8; 6] = [2, 0xb0, 0, 0, 0, 1];
const H1: [u8; 6] = [2, 0xaa, 0, 0, 0, 1];
const H2: [u8; 6] = [2, 0xaa, 0, 0, 0, 2];
const H3: [u8; 6] = [2, 0xaa, 0, 0, 0, 3];
const H4: [u8; 6] = [2, 0xaa, 0, 0, 0, 4];
/// Known on p1 too (the destination is on the ingress port).
const H1B: [u8; 6] = [2, 0xaa, 0, 0, 0, 0x1b];
/// Known on p2 but sending from p1 (it moved).
const MOVED: [u8; 6] = [2, 0xaa, 0, 0, 0, 0x22];
/// On p2 in the mirror; announces itself on p1 with a broadcast.
const MOVED_BCAST: [u8; 6] = [2, 0xaa, 0, 0, 0, 0x23];
const UNKNOWN: [u8; 6] = [2, 0xaa, 0, 0, 0, 0x99];

/// How the forwarded frame must look.
#[derive(Clone, Copy, Debug)]
enum Out {
    /// Forwarded unchanged.
    Same,
    /// Forwarded with the outer tag removed.
    Strip,
    /// Forwarded with this tag added.
    Push(u16),
    /// Punted under this reason, unchanged.
    Punt(u32),
}

struct Case {
    name: &'static str,
    frame: Vec<u8>,
    /// Ingress port index (0..4 → p1..p4).
    port: usize,
    out: Out,
    /// Replaces the ingress port's flags for this case only.
    flags: Option<u32>,
    /// Replaces the ingress port's PVID for this case only.
    pvid: Option<u16>,
}

fn case(name: &'static str, frame: Vec<u8>, out: Out) -> Case {
    Case {
        name,
        frame,
        port: 0,
        out,
        flags: None,
        pvid: None,
    }
}

/// An Ethernet frame `dst` ← `src` with optional tags (proto, tci) and an
/// IPv4/UDP-looking payload, `len` bytes in all (before tags).
fn frame(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)], proto: u16, len: usize) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    for (p, tci) in tags {
        f.extend_from_slice(&p.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&proto.to_be_bytes());
    let body = len.saturating_sub(14);
    f.extend((0..body).map(|i| (i * 7) as u8));
    f
}

fn udp(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    frame(dst, src, &[], 0x0800, 64)
}

/// An IPv6 frame whose next header is ICMPv6 of `icmp_type`.
fn icmp6(dst: [u8; 6], icmp_type: u8) -> Vec<u8> {
    let mut f = frame(dst, H1, &[], 0x86DD, 14);
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 24, 58, 255]);
    f.extend_from_slice(&[0xfe; 32]);
    f.push(icmp_type);
    f.resize(14 + 40 + 24, 0);
    f
}

fn expected(frame: &[u8], out: Out) -> Vec<u8> {
    match out {
        Out::Same | Out::Punt(_) => frame.to_vec(),
        Out::Strip => [&frame[..12], &frame[16..]].concat(),
        Out::Push(vid) => {
            let mut f = frame[..12].to_vec();
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
            f.extend_from_slice(&frame[12..]);
            f
        }
    }
}

/// The namespace: br0 with ports p1..p4 (peers q1..q4 in the same
/// namespace, only there so the ports are real devices).
struct Bed {
    ns: Netns,
    br: u32,
    ports: [u32; 4],
}

fn bed(tag: &str) -> Bed {
    let ns = Netns::new(tag).expect("netns");
    bridge(&ns, "br0").expect("br0");
    let mut ports = [0; 4];
    for (i, p) in ports.iter_mut().enumerate() {
        let (pn, qn) = (format!("p{}", i + 1), format!("q{}", i + 1));
        veth(&ns, &pn, &ns, &qn).expect("veth");
        enslave(&ns, &pn, "br0").expect("enslave");
        up(&ns, &pn).expect("up");
        up(&ns, &qn).expect("up");
        *p = ifindex(&ns, &pn).expect("ifindex");
    }
    let br = ifindex(&ns, "br0").expect("br0 ifindex");
    Bed { ns, br, ports }
}

const BASE: u32 = PORT_INGRESS | PORT_FORWARDING | PORT_LEARNING | PORT_XDP_EGRESS;

/// Fills the maps: p1, p2 ordinary; p3 isolated (as p1 is, in `isolated`
/// setups); p4 blocking. `vlan_filtering` adds the VLAN setup.
fn fill(ebpf: &mut Ebpf, b: &Bed, vlan_filtering: bool) {
    let vf = if vlan_filtering {
        PORT_VLAN_FILTERING
    } else {
        0
    };
    let [p1, p2, p3, p4] = b.ports;
    let mut ports: Array<_, PortConf> =
        Array::try_from(ebpf.map_mut(PORTS_MAP).expect("ports")).expect("array");
    for (p, flags, pvid) in [
        (p1, BASE | PORT_ISOLATED, 10),
        (p2, BASE, 0),
        (p3, BASE | PORT_ISOLATED, 0),
        (p4, BASE & !PORT_FORWARDING, 0),
    ] {
        let conf = PortConf {
            bridge: b.br,
            flags: flags | vf,
            mtu: 1500,
            pvid: if vlan_filtering { pvid } else { 0 },
            vlan_proto: 0x8100,
        };
        ports.set(p, conf, 0).expect("port");
    }
    let mut devmap =
        DevMapHash::try_from(ebpf.map_mut(XDP_PORTS_MAP).expect("devmap")).expect("devmap");
    for p in b.ports {
        devmap.insert(p, p, None, 0).expect("devmap entry");
    }
    let mut fdb: HashMap<_, FdbKey, FdbValue> =
        HashMap::try_from(ebpf.map_mut(FDB_MAP).expect("fdb")).expect("hash");
    let vids: &[u16] = if vlan_filtering { &[10, 20] } else { &[0] };
    for &vlan in vids {
        for (mac, port, flags) in [
            (H1, p1, 0),
            (H1B, p1, 0),
            (H2, p2, 0),
            (MOVED, p2, 0),
            (MOVED_BCAST, p2, 0),
            (H3, p3, 0),
            (H4, p4, 0),
            (BR_MAC, b.br, FDB_LOCAL),
        ] {
            let key = FdbKey {
                bridge: b.br,
                vlan,
                mac,
            };
            fdb.insert(
                key,
                FdbValue {
                    port,
                    flags,
                    moved_ns: 0,
                },
                0,
            )
            .expect("fdb");
        }
    }
    if vlan_filtering {
        let mut vlans: HashMap<_, VlanKey, u32> =
            HashMap::try_from(ebpf.map_mut(VLANS_MAP).expect("vlans")).expect("hash");
        for (port, vlan, v) in [
            (p1, 10, VLAN_MEMBER | VLAN_UNTAGGED),
            (p1, 20, VLAN_MEMBER),
            (p2, 10, VLAN_MEMBER),
            (p2, 20, VLAN_MEMBER | VLAN_UNTAGGED),
            (p3, 30, VLAN_MEMBER),
        ] {
            let key = VlanKey { port, vlan, pad: 0 };
            vlans.insert(key, v, 0).expect("vlan");
        }
    }
}

fn read_counter(ebpf: &Ebpf, ifindex: u32, counter: u32) -> u64 {
    let stats: PerCpuArray<_, u64> =
        PerCpuArray::try_from(ebpf.map(abi::STATS_MAP).expect("stats")).expect("percpu");
    stats
        .get(&abi::stats_index(ifindex, counter), 0)
        .map(|v| v.iter().sum())
        .unwrap_or(0)
}

fn set_port(ebpf: &mut Ebpf, ifindex: u32, edit: impl Fn(&mut PortConf)) {
    let mut ports: Array<_, PortConf> =
        Array::try_from(ebpf.map_mut(PORTS_MAP).expect("ports")).expect("array");
    let mut conf = ports.get(&ifindex, 0).expect("port conf");
    edit(&mut conf);
    ports.set(ifindex, conf, 0).expect("port");
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hook {
    Xdp,
    Tc,
}

/// Runs one frame; returns (verdict, bytes out).
fn run_once(ebpf: &mut Ebpf, hook: Hook, ingress: u32, data: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; data.len() + 256];
    let r = match hook {
        Hook::Xdp => {
            let mut ctx = [0u8; 24];
            ctx[4..8].copy_from_slice(&(data.len() as u32).to_ne_bytes());
            ctx[12..16].copy_from_slice(&ingress.to_ne_bytes());
            let prog: &mut Xdp = ebpf
                .program_mut(XDP_PROGRAM)
                .expect("prog")
                .try_into()
                .expect("xdp");
            prog.test_run(TestRunOptions {
                data_in: Some(data),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                ..TestRunOptions::new()
            })
        }
        Hook::Tc => {
            // struct __sk_buff: ifindex at 40, ingress_ifindex at 36.
            let mut ctx = [0u8; 192];
            ctx[36..40].copy_from_slice(&ingress.to_ne_bytes());
            ctx[40..44].copy_from_slice(&ingress.to_ne_bytes());
            let prog: &mut SchedClassifier = ebpf
                .program_mut(TC_PROGRAM)
                .expect("prog")
                .try_into()
                .expect("tc");
            prog.test_run(TestRunOptions {
                data_in: Some(data),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                ..TestRunOptions::new()
            })
        }
    }
    .expect("test run");
    out.truncate(r.data_size_out as usize);
    (r.return_value, out)
}

fn load(hook: Hook) -> Ebpf {
    let mut ebpf = Ebpf::load(BRIDGE_OBJ).expect("load object");
    match hook {
        Hook::Xdp => {
            let p: &mut Xdp = ebpf
                .program_mut(XDP_PROGRAM)
                .expect("xdp prog")
                .try_into()
                .expect("xdp");
            p.load().expect("bridge_xdp passes the verifier");
        }
        Hook::Tc => {
            let p: &mut SchedClassifier = ebpf
                .program_mut(TC_PROGRAM)
                .expect("tc prog")
                .try_into()
                .expect("tc");
            p.load().expect("bridge_tc passes the verifier");
        }
    }
    ebpf
}

/// Runs `cases` through `hook` and returns the failures, one line each.
fn run_table(b: &Bed, hook: Hook, vlan_filtering: bool, cases: &[Case]) -> Vec<String> {
    let mut ebpf = load(hook);
    fill(&mut ebpf, b, vlan_filtering);
    let mut failures = Vec::new();
    for c in cases {
        let ingress = b.ports[c.port];
        let saved = {
            let ports: Array<_, PortConf> =
                Array::try_from(ebpf.map(PORTS_MAP).expect("ports")).expect("array");
            ports.get(&ingress, 0).expect("conf")
        };
        if c.flags.is_some() || c.pvid.is_some() {
            set_port(&mut ebpf, ingress, |p| {
                if let Some(f) = c.flags {
                    p.flags = f | (p.flags & PORT_VLAN_FILTERING);
                }
                if let Some(v) = c.pvid {
                    p.pvid = v;
                }
            });
        }
        let counter = match c.out {
            Out::Punt(r) => r,
            _ => counter::FAST,
        };
        let before = read_counter(&ebpf, ingress, counter);
        let (verdict, out) = run_once(&mut ebpf, hook, ingress, &c.frame);
        let after = read_counter(&ebpf, ingress, counter);
        set_port(&mut ebpf, ingress, |p| *p = saved);

        let want_verdict = match (hook, c.out) {
            (Hook::Xdp, Out::Punt(_)) => XDP_PASS,
            (Hook::Xdp, _) => XDP_REDIRECT,
            (Hook::Tc, Out::Punt(_)) => TC_ACT_OK,
            (Hook::Tc, _) => TC_ACT_REDIRECT,
        };
        let want = expected(&c.frame, c.out);
        let mut why = Vec::new();
        if verdict != want_verdict {
            why.push(format!("verdict {verdict}, want {want_verdict}"));
        }
        if after != before + 1 {
            why.push(format!(
                "counter {counter} moved by {}",
                after as i64 - before as i64
            ));
        }
        if out != want {
            why.push(format!("bytes differ: got {out:02x?}\n want {want:02x?}"));
        }
        if !why.is_empty() {
            failures.push(format!("{hook:?} {}: {}", c.name, why.join("; ")));
        }
    }
    failures
}

fn plain_cases() -> Vec<Case> {
    let big_ok = frame(H2, H1, &[], 0x0800, 1518);
    let too_big = frame(H2, H1, &[], 0x0800, 1519);
    let mut unknown_src_no_learning = case(
        "unknown source on a port without learning",
        udp(H2, UNKNOWN),
        Out::Same,
    );
    unknown_src_no_learning.flags = Some(BASE & !PORT_LEARNING | PORT_ISOLATED);
    let mut locked = case("locked port", udp(H2, H1), Out::Punt(PUNT_LOCKED));
    locked.flags = Some(BASE | PORT_LOCKED);
    let mut learning_state = case(
        "port in learning state",
        udp(H2, H1),
        Out::Punt(PUNT_PORT_STATE),
    );
    learning_state.flags = Some(PORT_INGRESS | PORT_LEARNING);
    let mut hairpin = case("hairpin back out of p1", udp(H1B, H1), Out::Same);
    hairpin.flags = Some(BASE | PORT_HAIRPIN);
    let mut not_port = case("p3 runs no stage", udp(H2, H3), Out::Punt(PUNT_NOT_PORT));
    not_port.port = 2;
    not_port.flags = Some(PORT_FORWARDING | PORT_LEARNING);
    let mut moving_back = case(
        "to a source that just moved",
        udp(MOVED, H2),
        Out::Punt(PUNT_MOVING),
    );
    moving_back.port = 1;
    // From p3, which may send to p2: without the mark this would go to p2.
    let mut moving_after_broadcast = case(
        "to a source that moved with a broadcast",
        udp(MOVED_BCAST, H3),
        Out::Punt(PUNT_MOVING),
    );
    moving_after_broadcast.port = 2;
    let mut from_p2 = case("p2 to p1 (isolation needs both)", udp(H1, H2), Out::Same);
    from_p2.port = 1;
    vec![
        case("known unicast p1 to p2", udp(H2, H1), Out::Same),
        case("ipv6 unicast", frame(H2, H1, &[], 0x86DD, 100), Out::Same),
        case(
            "tagged frame without vlan filtering passes as is",
            frame(H2, H1, &[(0x8100, 7)], 0x0800, 64),
            Out::Same,
        ),
        case("largest frame the egress takes", big_ok, Out::Same),
        // An XDP redirect sends the tag inline, and the egress driver takes
        // at most MTU + 18 bytes in all (found by the differential harness).
        case(
            "tagged frame over mtu + 18 in all",
            frame(H2, H1, &[(0x8100, 7)], 0x0800, 1518),
            Out::Punt(PUNT_TOO_BIG),
        ),
        case(
            "one byte over the egress mtu",
            too_big,
            Out::Punt(PUNT_TOO_BIG),
        ),
        case(
            "unknown destination",
            udp(UNKNOWN, H1),
            Out::Punt(PUNT_UNKNOWN_DST),
        ),
        case("broadcast", udp([0xff; 6], H1), Out::Punt(PUNT_MULTICAST)),
        case(
            "ipv4 multicast",
            udp([1, 0, 0x5e, 0, 0, 1], H1),
            Out::Punt(PUNT_MULTICAST),
        ),
        case(
            "stp bpdu",
            udp([1, 0x80, 0xc2, 0, 0, 0], H1),
            Out::Punt(PUNT_LINK_LOCAL),
        ),
        case(
            "lldp",
            udp([1, 0x80, 0xc2, 0, 0, 0x0e], H1),
            Out::Punt(PUNT_LINK_LOCAL),
        ),
        case("unknown source", udp(H2, UNKNOWN), Out::Punt(PUNT_LEARN)),
        case(
            "source moved from p2",
            udp(H2, MOVED),
            Out::Punt(PUNT_LEARN),
        ),
        // The kernel is moving MOVED to p1 now: nothing goes to p2 for it
        // until the mirror says where it is (the case right after this).
        moving_back,
        // A move announced by a broadcast (a gratuitous ARP, say) is learnt
        // by the kernel too (found by the differential harness).
        case(
            "broadcast from a source known on p2",
            udp([0xff; 6], MOVED_BCAST),
            Out::Punt(PUNT_MULTICAST),
        ),
        moving_after_broadcast,
        case(
            "multicast source",
            udp(H2, [3, 0, 0, 0, 0, 1]),
            Out::Punt(PUNT_BAD_SRC),
        ),
        case("zero source", udp(H2, [0; 6]), Out::Punt(PUNT_BAD_SRC)),
        case(
            "to the bridge itself",
            udp(BR_MAC, H1),
            Out::Punt(PUNT_LOCAL),
        ),
        case(
            "destination on the ingress port",
            udp(H1B, H1),
            Out::Punt(PUNT_SAME_PORT),
        ),
        case("both ports isolated", udp(H3, H1), Out::Punt(PUNT_EGRESS)),
        case("egress port blocking", udp(H4, H1), Out::Punt(PUNT_EGRESS)),
        case(
            "unicast arp",
            frame(H2, H1, &[], 0x0806, 60),
            Out::Punt(PUNT_NEIGH),
        ),
        case(
            "ipv6 neighbour solicitation",
            icmp6(H2, 135),
            Out::Punt(PUNT_NEIGH),
        ),
        case("ipv6 echo request", icmp6(H2, 128), Out::Same),
        unknown_src_no_learning,
        locked,
        learning_state,
        hairpin,
        not_port,
        from_p2,
    ]
}

fn vlan_cases() -> Vec<Case> {
    let mut no_pvid = case(
        "untagged on a port without pvid",
        udp(H2, H1),
        Out::Punt(PUNT_VLAN_INGRESS),
    );
    no_pvid.pvid = Some(0);
    let mut not_on_egress = case(
        "vlan 10 not on the egress port p3",
        frame(H3, H2, &[(0x8100, 10)], 0x0800, 64),
        Out::Punt(PUNT_VLAN_EGRESS),
    );
    not_on_egress.port = 1;
    vec![
        not_on_egress,
        // A TC test run refuses so short an IPv6 frame.
        case(
            "ipv6 too short to tell",
            frame(H2, H1, &[], 0x86DD, 40),
            Out::Punt(PUNT_NEIGH),
        ),
        case(
            "vlan tag cut short",
            frame(H2, H1, &[], 0x8100, 16),
            Out::Punt(PUNT_MALFORMED),
        ),
        case(
            "untagged in (pvid 10), tagged out on p2",
            udp(H2, H1),
            Out::Push(10),
        ),
        case(
            "tagged 20 in, untagged out on p2",
            frame(H2, H1, &[(0x8100, 20)], 0x0800, 64),
            Out::Strip,
        ),
        case(
            "tagged 10 in, tagged out (priority bits kept)",
            frame(H2, H1, &[(0x8100, 0xa00a)], 0x0800, 64),
            Out::Same,
        ),
        case(
            "vlan 30 not on p1",
            frame(H2, H1, &[(0x8100, 30)], 0x0800, 64),
            Out::Punt(PUNT_VLAN_INGRESS),
        ),
        case(
            "priority tag",
            frame(H2, H1, &[(0x8100, 0x2000)], 0x0800, 64),
            Out::Punt(PUNT_VLAN_OTHER),
        ),
        case(
            "802.1ad tag on an 802.1Q bridge",
            frame(H2, H1, &[(0x88a8, 20)], 0x0800, 64),
            Out::Punt(PUNT_VLAN_OTHER),
        ),
        case(
            "stacked tags",
            frame(H2, H1, &[(0x8100, 20), (0x8100, 5)], 0x0800, 64),
            Out::Punt(PUNT_VLAN_OTHER),
        ),
        case(
            "unknown destination in vlan 20",
            frame(UNKNOWN, H1, &[(0x8100, 20)], 0x0800, 64),
            Out::Punt(PUNT_UNKNOWN_DST),
        ),
        no_pvid,
    ]
}

/// With br_netfilter on (found by the differential harness): only plain,
/// valid IP packets that fill their frame are forwarded; the rest of that
/// family goes to the kernel, which validates, trims or drops.
fn br_netfilter_cases() -> Vec<Case> {
    use linuxfp_testkit::diff::frame::{
        ETH_P_IP, ETH_P_IPV6, HOPOPTS, Ipv4, Ipv6, UDP, ether, ext6, tagged, udp as segment,
    };
    let (a4, b4) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
    let (a6, b6) = (
        std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
        std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
    );
    let ip4 = |h: &Ipv4| h.packet(&segment(h.src.into(), h.dst.into(), 1, 2, &[7; 30]));
    let plain4 = ip4(&Ipv4::new(UDP, a4, b4));
    let mut options = Ipv4::new(UDP, a4, b4);
    options.options = vec![1, 1, 1, 0];
    let mut bad_sum = Ipv4::new(UDP, a4, b4);
    bad_sum.check_delta = 1;
    let plain6 = Ipv6::new(UDP, a6, b6).packet(&segment(a6.into(), b6.into(), 1, 2, &[7; 30]));
    let mut hbh = ext6(UDP, &[1, 2, 0, 0]);
    hbh.extend(segment(a6.into(), b6.into(), 1, 2, &[7; 30]));
    let hbh = Ipv6::new(HOPOPTS, a6, b6).packet(&hbh);
    let trailer = |mut f: Vec<u8>| {
        f.extend_from_slice(&[0; 6]);
        f
    };
    let both = BASE | PORT_BR_NF_IPV4 | PORT_BR_NF_IPV6;
    let punt = Out::Punt(PUNT_BR_NETFILTER);
    let row = |name, frame, out, flags| {
        let mut c = case(name, frame, out);
        c.flags = Some(flags);
        c
    };
    let v4 = |ip: &[u8]| ether(H2, H1, ETH_P_IP, ip);
    let v6 = |ip: &[u8]| ether(H2, H1, ETH_P_IPV6, ip);
    vec![
        row("br_nf: valid ipv4", v4(&plain4), Out::Same, both),
        row(
            "br_nf: ipv4 trailing bytes",
            trailer(v4(&plain4)),
            punt,
            both,
        ),
        row("br_nf: ipv4 options", v4(&ip4(&options)), punt, both),
        row("br_nf: ipv4 bad checksum", v4(&ip4(&bad_sum)), punt, both),
        row("br_nf: ipv4 garbage", udp(H2, H1), punt, both),
        row(
            "br_nf: tagged ipv4",
            tagged(H2, H1, &[(0x8100, 7)], ETH_P_IP, &plain4),
            punt,
            both,
        ),
        row("br_nf: valid ipv6", v6(&plain6), Out::Same, both),
        row(
            "br_nf: ipv6 trailing bytes",
            trailer(v6(&plain6)),
            punt,
            both,
        ),
        row("br_nf: ipv6 hop-by-hop", v6(&hbh), punt, both),
        row(
            "br_nf for ipv4 only: ipv6 garbage forwarded",
            frame(H2, H1, &[], 0x86DD, 100),
            Out::Same,
            BASE | PORT_BR_NF_IPV4,
        ),
    ]
}

#[test]
fn bridge_test_run_tables() {
    if !require_root("bridge_test_run_tables") {
        return;
    }
    let b = bed("brtr");
    let failures =
        b.ns.run_in(|| {
            let mut f = run_table(&b, Hook::Xdp, false, &plain_cases());
            f.extend(run_table(&b, Hook::Tc, false, &plain_cases()));
            f.extend(run_table(&b, Hook::Xdp, false, &br_netfilter_cases()));
            f.extend(run_table(&b, Hook::Tc, false, &br_netfilter_cases()));
            f.extend(run_table(&b, Hook::Xdp, true, &vlan_cases()));
            f
        })
        .expect("run in netns");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn forwarded_sources_are_recorded_for_the_refresher() {
    if !require_root("forwarded_sources_are_recorded_for_the_refresher") {
        return;
    }
    let b = bed("brseen");
    b.ns.run_in(|| {
        for hook in [Hook::Xdp, Hook::Tc] {
            let mut ebpf = load(hook);
            fill(&mut ebpf, &b, false);
            let (v, _) = run_once(&mut ebpf, hook, b.ports[0], &udp(H2, H1));
            assert!(
                v == XDP_REDIRECT || v == TC_ACT_REDIRECT,
                "{hook:?} forwarded"
            );
            // A punted frame records nothing.
            run_once(&mut ebpf, hook, b.ports[0], &udp(UNKNOWN, H1B));
            let seen: HashMap<&MapData, FdbKey, Seen> =
                HashMap::try_from(ebpf.map(SEEN_MAP).expect("seen")).expect("lru");
            let entries: Vec<(FdbKey, Seen)> = seen.iter().map(|r| r.expect("entry")).collect();
            assert_eq!(entries.len(), 1, "{hook:?}: only the forwarded source");
            let (k, s) = entries[0];
            assert_eq!((k.bridge, k.vlan, k.mac), (b.br, 0, H1));
            assert_eq!(s.port, b.ports[0]);
            assert!(s.last_ns > 0);
        }
    })
    .expect("run in netns");
}
