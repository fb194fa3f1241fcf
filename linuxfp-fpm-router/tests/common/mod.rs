// SPDX-License-Identifier: MIT OR Apache-2.0
//! Shared by the router's BPF_PROG_TEST_RUN tables: a router namespace
//! with one interface or route per punt reason, the object loaded with its
//! maps filled, the punt rows both hooks share, and the table checker.

#![allow(dead_code)]

pub mod packet;

use std::collections::BTreeMap;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, DevMapHash, PerCpuArray, PerCpuValues},
    programs::{Program, ProgramError},
};
use linuxfp_ebpf_common::{
    abi::{
        COUNTERS_PER_IF, PKT_CTX_FIB_DONE, PKT_CTX_MAP, PKT_CTX_VALID, PacketCtx,
        STAGE_CONF_GLOBAL, STATS_MAP, StageConf, counter, stats_index,
    },
    router::{
        self, CONF_GLOBAL, FAMILY_IPV4, FAMILY_IPV6, IFACES_MAP, RouterConf, RouterIface,
        SRC_CHECK_FIB, SRC4_MAP, XDP_PORTS_MAP,
    },
};
use linuxfp_fpm_router::bytecode::ROUTER_OBJ;
use linuxfp_testkit::{
    Netns, VirtualRouter, addr, ifindex, mac, neighbour, route, sysctl, up, veth,
};

use packet::*;

/// A MAC that belongs to no interface of the testbed.
pub const STRANGER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

/// One interface of the router namespace.
#[derive(Clone, Copy, Debug)]
pub struct Port {
    pub ifindex: u32,
    pub mac: [u8; 6],
}

/// The router namespace of the testbed (`src — r0 [rtr] r1 — dst`, Linux
/// forwarding on, permanent neighbours for every next hop), plus what the
/// punt rows need:
/// - `r1` has MTU 1280 (frag needed);
/// - `r2` (10.5.0.1/24, fd05::1/64) has forwarding off, `r2p` is its peer
///   in the same namespace and no router interface at all;
/// - `x0` (10.3.0.1/24, fd03::1/64, next hop .2 / ::2 known) is not a
///   router interface: routes through it are egress-refused;
/// - `x1` (10.6.0.1/24, fd06::1/64, next hop known) is a router interface
///   missing from the XDP devmap (redirect failed);
/// - `x2` (10.7.0.1/24, fd07::1/64, next hop known) is a router interface
///   without `IFACE_EGRESS`, as the parameterizer writes one that was down
///   when it last planned; it is in the XDP devmap;
/// - reject routes 10.9.{1,2,3}.0/24 and fd09:{1,2,3}::/64 (blackhole,
///   unreachable, prohibit); 10.9.4.0/24 / fd09:4::/64 via a next hop with
///   no neighbour entry; 10.9.5.0/24 / fd09:5::/64 back out of r0;
/// - 10.9.6.0/24 via d0 on a route whose MTU is locked at 1000, below
///   r1's 1280 (`ip_forward` honours the route's MTU).
pub struct Lab {
    pub tb: VirtualRouter,
    pub r0: Port,
    pub r1: Port,
    pub r2: Port,
    pub r2p: Port,
    pub x0: Port,
    pub x1: Port,
    pub x2: Port,
    /// The source host's MAC (s0).
    pub src_mac: [u8; 6],
    /// The destination host's MAC (d0), the neighbour of 10.2.0.2 / fd02::2.
    pub dst_mac: [u8; 6],
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let tb = VirtualRouter::new(tag).expect("virtual router testbed");
        tb.set_static_neighbours().expect("static neighbours");
        let rtr = &tb.rtr;
        let sh = |cmd: &str| {
            rtr.sh(cmd)
                .unwrap_or_else(|e| panic!("{cmd} in {}: {e}", rtr.name()))
        };
        for (a, b, v4, v6) in [
            ("r2", "r2p", "10.5.0.1/24", "fd05::1/64"),
            ("x0", "x0p", "10.3.0.1/24", "fd03::1/64"),
            ("x1", "x1p", "10.6.0.1/24", "fd06::1/64"),
            ("x2", "x2p", "10.7.0.1/24", "fd07::1/64"),
        ] {
            veth(rtr, a, rtr, b).expect("veth in the router namespace");
            addr(rtr, a, v4).expect("address");
            addr(rtr, a, v6).expect("address");
            up(rtr, a).expect("up");
            up(rtr, b).expect("up");
        }
        sysctl(rtr, "net.ipv4.conf.r2.forwarding", "0").expect("sysctl");
        sysctl(rtr, "net.ipv6.conf.r2.forwarding", "0").expect("sysctl");
        sh("ip link set r1 mtu 1280");
        let port = |name: &str| Port {
            ifindex: ifindex(rtr, name).expect("ifindex"),
            mac: mac(rtr, name).expect("mac"),
        };
        let (x0, x1, x2) = (port("x0"), port("x1"), port("x2"));
        let (x0p, x1p, x2p) = (port("x0p"), port("x1p"), port("x2p"));
        for (dev, ip, peer) in [
            ("x0", "10.3.0.2", x0p.mac),
            ("x0", "fd03::2", x0p.mac),
            ("x1", "10.6.0.2", x1p.mac),
            ("x1", "fd06::2", x1p.mac),
            ("x2", "10.7.0.2", x2p.mac),
            ("x2", "fd07::2", x2p.mac),
            ("r0", "10.1.0.5", STRANGER_MAC),
            ("r0", "fd01::5", STRANGER_MAC),
        ] {
            neighbour(rtr, dev, ip, peer).expect("neighbour");
        }
        for spec in [
            "blackhole 10.9.1.0/24",
            "unreachable 10.9.2.0/24",
            "prohibit 10.9.3.0/24",
            "10.9.4.0/24 via 10.2.0.9",
            "10.9.5.0/24 via 10.1.0.5",
            "10.9.6.0/24 via 10.2.0.2 mtu lock 1000",
            "blackhole fd09:1::/64",
            "unreachable fd09:2::/64",
            "prohibit fd09:3::/64",
            "fd09:4::/64 via fd02::9",
            "fd09:5::/64 via fd01::5",
        ] {
            route(rtr, spec).unwrap_or_else(|e| panic!("route {spec}: {e}"));
        }
        Lab {
            r0: Port {
                ifindex: tb.rtr_src_if.ifindex,
                mac: tb.rtr_src_if.mac,
            },
            r1: Port {
                ifindex: tb.rtr_dst_if.ifindex,
                mac: tb.rtr_dst_if.mac,
            },
            r2: port("r2"),
            r2p: port("r2p"),
            x0,
            x1,
            x2,
            src_mac: tb.src_if.mac,
            dst_mac: tb.dst_if.mac,
            tb,
        }
    }

    /// The router namespace.
    pub fn rtr(&self) -> &Netns {
        &self.tb.rtr
    }
}

/// Loads the router object with `families` forwarded, sources checked
/// with a FIB lookup, and the router as the first stage of its chains.
pub fn load(families: u32) -> Ebpf {
    load_checking(families, &SourceCheck::fib())
}

/// How a table run checks IPv4 sources, and the set it fills in
/// `ROUTER_SRC4` (from the parameterizer, for the namespace's state).
#[derive(Debug, Clone)]
pub struct SourceCheck(pub linuxfp_fpm_router::source_check::SourceCheck);

impl SourceCheck {
    /// The second FIB lookup.
    pub fn fib() -> Self {
        SourceCheck(linuxfp_fpm_router::source_check::SourceCheck {
            mode: SRC_CHECK_FIB,
            sources: Default::default(),
            why_fib: Some("chosen by the test".into()),
        })
    }

    /// What the parameterizer chooses for `ns` as it is now.
    pub fn of(ns: &Netns) -> Self {
        let state = linuxfp::inspector::dump(&linuxfp::netns::NetnsRef::Named(ns.name().into()))
            .expect("dump the router namespace");
        SourceCheck(linuxfp_fpm_router::source_check::source_check(Some(&state)))
    }
}

/// Loads the router object as [`load`], with `check` for IPv4 sources.
pub fn load_checking(families: u32, check: &SourceCheck) -> Ebpf {
    load_at(families, check, 0)
}

/// Loads the router object as [`load_checking`], as stage `position` of its
/// chains (a stage after position 0 may take what an earlier one left in
/// `LFP_PKT_CTX`).
pub fn load_at(families: u32, check: &SourceCheck, position: u32) -> Ebpf {
    let mut ebpf = EbpfLoader::new()
        .override_global(
            CONF_GLOBAL,
            &RouterConf {
                families,
                ipv4_route_mtu: 0,
                src_check: check.0.mode,
            },
            true,
        )
        .override_global(
            STAGE_CONF_GLOBAL,
            &StageConf {
                position,
                has_next: 0,
            },
            true,
        )
        .load(ROUTER_OBJ)
        .expect("load the router object");
    let mut map: aya::maps::HashMap<_, u32, u8> =
        aya::maps::HashMap::try_from(ebpf.map_mut(SRC4_MAP).expect(SRC4_MAP)).expect("hash");
    for a in &check.0.sources {
        map.insert(u32::from_ne_bytes(*a), 1, 0)
            .expect("insert source");
    }
    ebpf
}

/// Loads program `name` (of type `P`, e.g. `Xdp`) from `ebpf` into the
/// kernel with `load` (e.g. `Xdp::load`); panics with the verifier's error.
pub fn load_program<P>(ebpf: &mut Ebpf, name: &str, load: fn(&mut P) -> Result<(), ProgramError>)
where
    for<'a> &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    let prog: &mut P = ebpf
        .program_mut(name)
        .unwrap_or_else(|| panic!("{name} in the object"))
        .try_into()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    load(prog).unwrap_or_else(|e| panic!("{name} passes the verifier: {e}"));
}

/// Both families.
pub const ALL_FAMILIES: u32 = FAMILY_IPV4 | FAMILY_IPV6;

/// Writes `ifaces` into `ROUTER_IFACES` (an array indexed by ifindex) and
/// `ports` into the devmap.
pub fn fill(ebpf: &mut Ebpf, ifaces: &[(Port, u16)], ports: &[Port]) {
    let mut map: Array<_, RouterIface> =
        Array::try_from(ebpf.map_mut(IFACES_MAP).expect(IFACES_MAP)).expect("array");
    for (port, flags) in ifaces {
        let value = RouterIface {
            mac: port.mac,
            flags: *flags,
        };
        map.set(port.ifindex, value, 0).expect("set iface");
    }
    let mut devmap =
        DevMapHash::try_from(ebpf.map_mut(XDP_PORTS_MAP).expect(XDP_PORTS_MAP)).expect("devmap");
    for port in ports {
        devmap
            .insert(port.ifindex, port.ifindex, None, 0)
            .expect("insert port");
    }
}

/// This FPM's counters for packets that arrived on `ifindex`, summed over
/// CPUs.
pub fn counters(ebpf: &Ebpf, ifindex: u32) -> Vec<u64> {
    let stats: PerCpuArray<_, u64> =
        PerCpuArray::try_from(ebpf.map(STATS_MAP).expect(STATS_MAP)).expect("per-CPU array");
    (0..COUNTERS_PER_IF)
        .map(|c| {
            stats
                .get(&stats_index(ifindex, c), 0)
                .expect("read counter")
                .iter()
                .sum()
        })
        .collect()
}

/// The name of counter `c` (generic or router punt reason).
pub fn counter_name(c: u32) -> String {
    if c < counter::FIRST_FPM_REASON {
        counter::GENERIC_NAMES[c as usize].to_string()
    } else {
        router::PUNT_NAMES
            .get((c - counter::FIRST_FPM_REASON) as usize)
            .map_or_else(|| format!("#{c}"), |n| n.to_string())
    }
}

/// What a row must do.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Redirected, the frame becoming these bytes; FAST counted.
    Forward(Vec<u8>),
    /// Given to the kernel unmodified; this reason counted.
    Punt(u32),
}

/// One packet of a table.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub ingress: u32,
    pub frame: Vec<u8>,
    /// TC only: the skb's `gso_size` (0: not GSO).
    pub gso_size: u32,
    pub expect: Expect,
}

impl Row {
    pub fn punt(name: &str, ingress: Port, frame: Vec<u8>, reason: u32) -> Row {
        Row {
            name: name.to_string(),
            ingress: ingress.ifindex,
            frame,
            gso_size: 0,
            expect: Expect::Punt(reason),
        }
    }

    pub fn forward(name: &str, ingress: Port, frame: Vec<u8>, out: Vec<u8>) -> Row {
        Row {
            name: name.to_string(),
            ingress: ingress.ifindex,
            frame,
            gso_size: 0,
            expect: Expect::Forward(out),
        }
    }
}

/// What a test run returned: the verdict and the packet after the program.
pub struct Outcome {
    pub verdict: u32,
    pub data: Vec<u8>,
}

/// Runs every row through `run`, checking verdict, bytes and counters
/// (exactly one counter of the ingress moves, by exactly one). Reports
/// every failing row at once.
pub fn check_table(
    ebpf: &Ebpf,
    rows: &[Row],
    pass: u32,
    redirect: u32,
    run: impl Fn(&Row) -> Outcome,
) {
    let mut failures = Vec::new();
    for row in rows {
        let before = counters(ebpf, row.ingress);
        let out = run(row);
        let after = counters(ebpf, row.ingress);
        let moved: BTreeMap<String, u64> = before
            .iter()
            .zip(&after)
            .enumerate()
            .filter(|(_, (b, a))| a != b)
            .map(|(c, (b, a))| (counter_name(c as u32), a - b))
            .collect();
        let (verdict, bytes, counter) = match &row.expect {
            Expect::Forward(bytes) => (redirect, bytes, counter::FAST),
            Expect::Punt(reason) => (pass, &row.frame, *reason),
        };
        let want_moved = BTreeMap::from([(counter_name(counter), 1)]);
        let mut wrong = Vec::new();
        if out.verdict != verdict {
            wrong.push(format!("verdict {} (want {verdict})", out.verdict));
        }
        if &out.data != bytes {
            wrong.push(first_difference(&out.data, bytes));
        }
        if moved != want_moved {
            wrong.push(format!("counters moved {moved:?} (want {want_moved:?})"));
        }
        if !wrong.is_empty() {
            failures.push(format!("  {}: {}", row.name, wrong.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// Where `got` first differs from `want`, with the 64 bytes from there.
fn first_difference(got: &[u8], want: &[u8]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    let hex = |b: &[u8]| -> String {
        b.iter()
            .skip(at)
            .take(64)
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    format!(
        "bytes differ from offset {at} (lengths {} and {}):\n      got  {}\n      want {}",
        got.len(),
        want.len(),
        hex(got),
        hex(want)
    )
}

/// A frame from the source host to the router's r0.
pub fn to_r0(lab: &Lab, ethertype: u16, l3: &[u8]) -> Vec<u8> {
    frame(lab.r0.mac, lab.src_mac, ethertype, l3)
}

/// UDP from `src` to `dst` through r0, IPv6 if the addresses are.
pub fn udp_between(lab: &Lab, src: &str, dst: &str) -> Vec<u8> {
    let payload = udp(1234, 5678, 18);
    if src.contains(':') {
        to_r0(lab, ETH_P_IPV6, &hdr6(UDP, src, dst).packet(&payload))
    } else {
        to_r0(lab, ETH_P_IP, &hdr4(UDP, src, dst).packet(&payload))
    }
}

/// IPv4 UDP from 10.1.0.2 to `dst` through r0.
pub fn udp4(lab: &Lab, dst: &str) -> Vec<u8> {
    udp_between(lab, "10.1.0.2", dst)
}

/// IPv6 UDP from fd01::2 to `dst` through r0.
pub fn udp6(lab: &Lab, dst: &str) -> Vec<u8> {
    udp_between(lab, "fd01::2", dst)
}

/// UDP from the source host to `dst4` and to `dst6`, named
/// `"ipv4 {what}"` and `"ipv6 {what}"`.
pub fn both_families(lab: &Lab, what: &str, dst4: &str, dst6: &str) -> [(String, Vec<u8>); 2] {
    [
        (format!("ipv4 {what}"), udp4(lab, dst4)),
        (format!("ipv6 {what}"), udp6(lab, dst6)),
    ]
}

/// [`both_families`] as rows arriving on r0, punted for `reason`.
pub fn punt_both(lab: &Lab, what: &str, dst4: &str, dst6: &str, reason: u32) -> [Row; 2] {
    both_families(lab, what, dst4, dst6).map(|(name, f)| Row::punt(&name, lab.r0, f, reason))
}

/// For each family alone (`FAMILY_IPV4`, `FAMILY_IPV6`): the rows a
/// program loaded with only that family must pass, the other family
/// punted as `family_off`.
pub fn family_rows(lab: &Lab) -> [(u32, [Row; 2]); 2] {
    use router::PUNT_FAMILY_OFF;
    let to_dst = Some((lab.dst_mac, lab.r1.mac));
    let (v4, v6) = (udp4(lab, "10.2.0.2"), udp6(lab, "fd02::2"));
    let rows = |off: &[u8], on: &[u8]| {
        [
            Row::punt("family off", lab.r0, off.to_vec(), PUNT_FAMILY_OFF),
            Row::forward(
                "the other family",
                lab.r0,
                on.to_vec(),
                forwarded(on, to_dst),
            ),
        ]
    };
    [(FAMILY_IPV4, rows(&v6, &v4)), (FAMILY_IPV6, rows(&v4, &v6))]
}

/// Runs `body` in the router namespace of a fresh [`Lab`] tagged `tag`;
/// skips loudly unless root. The namespaces go when the lab is dropped.
pub fn with_lab(test: &str, tag: &str, body: impl FnOnce(&Lab) + Send) {
    if !linuxfp_testkit::require_root(test) {
        return;
    }
    let lab = Lab::new(tag);
    lab.rtr()
        .run_in(|| body(&lab))
        .expect("run in the router namespace");
}

/// The rows both hooks forward byte for byte: src → dst over r0 → r1 and
/// the reverse direction, each protocol.
pub fn forward_rows(lab: &Lab) -> Vec<Row> {
    let to_dst = Some((lab.dst_mac, lab.r1.mac));
    let h4 = |proto: u8, edit: fn(&mut V4)| {
        let mut h = hdr4(proto, "10.1.0.2", "10.2.0.2");
        edit(&mut h);
        h
    };
    let v4 = [
        ("ipv4 udp", h4(UDP, |_| {}), udp(1234, 5678, 18)),
        (
            "ipv4 tcp, tos lowdelay",
            h4(TCP, |h| h.tos = 0x10),
            tcp(40000, 80, 100),
        ),
        ("ipv4 icmp echo", h4(ICMP, |_| {}), echo(8)),
        (
            "ipv4 don't-fragment (not a fragment)",
            h4(UDP, |h| h.frag = 0x4000),
            udp(1, 2, 10),
        ),
        (
            "ipv4 ttl 2 (still forwarded)",
            h4(UDP, |h| h.ttl = 2),
            udp(1, 2, 0),
        ),
    ]
    .map(|(name, h, l4)| (name, to_r0(lab, ETH_P_IP, &h.packet(&l4))));
    let v6 = [
        ("ipv6 udp", UDP, udp(1234, 5678, 18)),
        ("ipv6 tcp", TCP, tcp(40000, 443, 64)),
        ("ipv6 icmpv6 echo", ICMPV6, echo(128)),
    ]
    .map(|(name, proto, l4)| {
        let l3 = hdr6(proto, "fd01::2", "fd02::2").packet(&l4);
        (name, to_r0(lab, ETH_P_IPV6, &l3))
    });
    let mut rows: Vec<Row> = v4
        .into_iter()
        .chain(v6)
        .map(|(name, f)| {
            let out = forwarded(&f, to_dst);
            Row::forward(name, lab.r0, f, out)
        })
        .collect();
    let back = frame(
        lab.r1.mac,
        lab.dst_mac,
        ETH_P_IP,
        &hdr4(UDP, "10.2.0.2", "10.1.0.2").packet(&udp(5678, 1234, 30)),
    );
    let out = forwarded(&back, Some((lab.src_mac, lab.r0.mac)));
    rows.push(Row::forward(
        "ipv4 udp, reverse direction",
        lab.r1,
        back,
        out,
    ));
    rows
}

/// A punt row made by editing a header: name, edit, reason.
type HeaderEdit<H> = (&'static str, fn(&mut H), u32);

/// The punt rows both hooks share (same reason for XDP and TC).
pub fn punt_rows(lab: &Lab) -> Vec<Row> {
    use router::*;
    let r0 = lab.r0;
    let mut rows = Vec::new();
    let mut punt = |name: &str, f: Vec<u8>, reason: u32| rows.push(Row::punt(name, r0, f, reason));
    let v4 = |f: &dyn Fn(&mut V4)| {
        let mut h = hdr4(UDP, "10.1.0.2", "10.2.0.2");
        f(&mut h);
        to_r0(lab, ETH_P_IP, &h.packet(&udp(1234, 5678, 18)))
    };
    let v6 = |f: &dyn Fn(&mut V6)| {
        let mut h = hdr6(UDP, "fd01::2", "fd02::2");
        f(&mut h);
        to_r0(lab, ETH_P_IPV6, &h.packet(&udp(1234, 5678, 18)))
    };

    // L2.
    let arp = {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend_from_slice(&lab.src_mac);
        a.extend_from_slice(&[10, 1, 0, 2, 0, 0, 0, 0, 0, 0, 10, 1, 0, 1]);
        a
    };
    punt("arp", to_r0(lab, ETH_P_ARP, &arp), PUNT_NOT_IP);
    let inner = hdr4(UDP, "10.1.0.2", "10.2.0.2").packet(&udp(1, 2, 4));
    for (name, tpid) in [("802.1q tag", ETH_P_8021Q), ("802.1ad tag", ETH_P_8021AD)] {
        let mut tagged = vec![0x00, 0x05];
        tagged.extend_from_slice(&ETH_P_IP.to_be_bytes());
        tagged.extend_from_slice(&inner);
        punt(name, to_r0(lab, tpid, &tagged), PUNT_VLAN);
    }
    let ip = hdr4(UDP, "10.1.0.2", "10.2.0.2").packet(&udp(1, 2, 4));
    punt(
        "broadcast mac",
        frame([0xFF; 6], lab.src_mac, ETH_P_IP, &ip),
        PUNT_L2_MULTICAST,
    );
    punt(
        "multicast mac",
        frame([0x01, 0x00, 0x5E, 0, 0, 1], lab.src_mac, ETH_P_IP, &ip),
        PUNT_L2_MULTICAST,
    );
    punt(
        "other host's mac",
        frame(STRANGER_MAC, lab.src_mac, ETH_P_IP, &ip),
        PUNT_OTHER_HOST,
    );

    // IPv4 header.
    let v4_edits: [HeaderEdit<V4>; 10] = [
        (
            "ipv4 options",
            |h| h.options = vec![1, 1, 1, 0],
            PUNT_IP_OPTIONS,
        ),
        ("ipv4 ttl 1", |h| h.ttl = 1, PUNT_TTL),
        ("ipv4 ttl 0", |h| h.ttl = 0, PUNT_TTL),
        ("ipv4 more fragments", |h| h.frag = 0x2000, PUNT_FRAGMENT),
        ("ipv4 fragment offset", |h| h.frag = 100, PUNT_FRAGMENT),
        ("ipv4 ihl 4", |h| h.version_ihl = Some(0x44), PUNT_MALFORMED),
        (
            "ipv4 version 5",
            |h| h.version_ihl = Some(0x55),
            PUNT_MALFORMED,
        ),
        ("ipv4 bad checksum", |h| h.check_delta = 1, PUNT_MALFORMED),
        (
            "ipv4 total length past the frame",
            |h| h.tot_len = Some(200),
            PUNT_MALFORMED,
        ),
        (
            "ipv4 total length below the header",
            |h| h.tot_len = Some(16),
            PUNT_MALFORMED,
        ),
    ];
    for (name, edit, reason) in v4_edits {
        punt(name, v4(&edit), reason);
    }
    // ip_rcv / ipv6_rcv trim frames longer than the IP length (Ethernet
    // padding, trailing bytes): found by the differential harness.
    punt(
        "ipv4 frame longer than the total length",
        edited(udp4(lab, "10.2.0.2"), |f| f.extend_from_slice(&[0x5A; 16])),
        PUNT_TRAILER,
    );
    punt(
        "ipv6 frame longer than the payload length",
        edited(udp6(lab, "fd02::2"), |f| f.extend_from_slice(&[0; 6])),
        PUNT_TRAILER,
    );
    punt(
        "ipv4 truncated header",
        edited(udp4(lab, "10.2.0.2"), |f| f.truncate(14 + 12)),
        PUNT_MALFORMED,
    );
    punt(
        "ipv4 truncated tcp header",
        to_r0(
            lab,
            ETH_P_IP,
            &hdr4(TCP, "10.1.0.2", "10.2.0.2").packet(&tcp(1, 2, 0)[..12]),
        ),
        PUNT_MALFORMED,
    );

    // IPv6 header.
    let v6_edits: [HeaderEdit<V6>; 5] = [
        ("ipv6 hop limit 1", |h| h.hop_limit = 1, PUNT_TTL),
        ("ipv6 hop limit 0", |h| h.hop_limit = 0, PUNT_TTL),
        ("ipv6 hop-by-hop", |h| h.nexthdr = 0, PUNT_IPV6_HOPOPTS),
        ("ipv6 fragment header", |h| h.nexthdr = 44, PUNT_FRAGMENT),
        (
            "ipv6 payload length past the frame",
            |h| h.payload_len = Some(500),
            PUNT_MALFORMED,
        ),
    ];
    for (name, edit, reason) in v6_edits {
        punt(name, v6(&edit), reason);
    }
    punt(
        "ipv6 truncated header",
        edited(udp6(lab, "fd02::2"), |f| f.truncate(14 + 30)),
        PUNT_MALFORMED,
    );
    punt(
        "ipv6 version 4",
        edited(udp6(lab, "fd02::2"), |f| f[14] = 0x42),
        PUNT_MALFORMED,
    );
    for (name, src, dst) in [
        ("ipv4 src 127/8", "127.0.0.1", "10.2.0.2"),
        ("ipv4 src 0/8", "0.0.0.0", "10.2.0.2"),
        ("ipv4 src multicast", "224.0.0.9", "10.2.0.2"),
        ("ipv4 src class e", "240.0.0.1", "10.2.0.2"),
        // fib_validate_source: a local address as source is martian (found
        // by the differential harness).
        ("ipv4 src the ingress's own address", "10.1.0.1", "10.2.0.2"),
        // A subnet broadcast: the kernel's full check rejects it (a
        // broadcast route), its quick check does not; either way, the
        // kernel's to decide.
        ("ipv4 src a subnet broadcast", "10.1.0.255", "10.2.0.2"),
        (
            "ipv4 src another interface's address",
            "10.2.0.1",
            "10.2.0.2",
        ),
        ("ipv4 dst 127/8", "10.1.0.2", "127.0.0.1"),
        ("ipv4 dst 0/8", "10.1.0.2", "0.1.2.3"),
        ("ipv4 dst multicast", "10.1.0.2", "239.1.1.1"),
        ("ipv4 dst limited broadcast", "10.1.0.2", "255.255.255.255"),
        ("ipv6 src link-local", "fe80::1", "fd02::2"),
        ("ipv6 src loopback", "::1", "fd02::2"),
        ("ipv6 src unspecified", "::", "fd02::2"),
        ("ipv6 src multicast", "ff05::1", "fd02::2"),
        ("ipv6 src v4-mapped", "::ffff:10.1.0.2", "fd02::2"),
        ("ipv6 dst link-local", "fd01::2", "fe80::2"),
        ("ipv6 dst multicast", "fd01::2", "ff0e::1"),
        ("ipv6 dst loopback", "fd01::2", "::1"),
    ] {
        punt(name, udp_between(lab, src, dst), PUNT_MARTIAN);
    }

    // An attached interface the parameterizer did not mark as an egress
    // (down when it last planned): on XDP too, being in the devmap is not
    // enough.
    for (name, f) in both_families(lab, "egress without IFACE_EGRESS", "10.7.0.2", "fd07::2") {
        punt(&name, f, PUNT_EGRESS);
    }

    // FIB answers, both families.
    for (dst, name, reason) in [
        ("10.1.0.1", "local (own address)", PUNT_LOCAL),
        ("10.2.0.1", "local (other interface's address)", PUNT_LOCAL),
        ("fd02::1", "local (own address)", PUNT_LOCAL),
        ("10.9.1.1", "blackhole route", PUNT_ROUTE_REJECT),
        ("10.9.2.1", "unreachable route", PUNT_ROUTE_REJECT),
        ("10.9.3.1", "prohibit route", PUNT_ROUTE_REJECT),
        ("fd09:1::1", "blackhole route", PUNT_ROUTE_REJECT),
        ("fd09:2::1", "unreachable route", PUNT_ROUTE_REJECT),
        ("fd09:3::1", "prohibit route", PUNT_ROUTE_REJECT),
        ("10.9.5.1", "back out of the ingress", PUNT_SAME_IF),
        ("fd09:5::1", "back out of the ingress", PUNT_SAME_IF),
        ("10.3.0.2", "egress not a router interface", PUNT_EGRESS),
        ("fd03::2", "egress not a router interface", PUNT_EGRESS),
    ] {
        let (f, fam) = if dst.contains(':') {
            (udp6(lab, dst), "ipv6")
        } else {
            (udp4(lab, dst), "ipv4")
        };
        punt(&format!("{fam} {name}"), f, reason);
    }
    let big4 = to_r0(
        lab,
        ETH_P_IP,
        &hdr4(UDP, "10.1.0.2", "10.2.0.2").packet(&udp(1, 2, 1400 - 28)),
    );
    punt("ipv4 1400 B over a 1280 MTU", big4, PUNT_FRAG_NEEDED);
    let big6 = to_r0(
        lab,
        ETH_P_IPV6,
        &hdr6(UDP, "fd01::2", "fd02::2").packet(&udp(1, 2, 1400 - 48)),
    );
    punt("ipv6 1400 B over a 1280 MTU", big6, PUNT_FRAG_NEEDED);
    let mut df = hdr4(UDP, "10.1.0.2", "10.9.6.2");
    df.frag = 0x4000;
    punt(
        "ipv4 1100 B DF over a route's locked 1000 MTU",
        to_r0(lab, ETH_P_IP, &df.packet(&udp(1, 2, 1100 - 28))),
        PUNT_FRAG_NEEDED,
    );

    // Forwarding off on the ingress (r2), and an ingress that is no router
    // interface (r2p).
    for (port, name) in [
        (lab.r2, "forwarding off"),
        (lab.r2p, "not a router interface"),
    ] {
        for v6 in [false, true] {
            let l3 = if v6 {
                hdr6(UDP, "fd05::2", "fd02::2").packet(&udp(1, 2, 8))
            } else {
                hdr4(UDP, "10.5.0.2", "10.2.0.2").packet(&udp(1, 2, 8))
            };
            let ty = if v6 { ETH_P_IPV6 } else { ETH_P_IP };
            rows.push(Row::punt(
                &format!("{} ingress {name}", if v6 { "ipv6" } else { "ipv4" }),
                port,
                frame(port.mac, [0x02, 0, 0, 0, 0, 0x55], ty, &l3),
                PUNT_FWD_DISABLED,
            ));
        }
    }
    rows
}

/// `frame` after `edit`.
fn edited(mut frame: Vec<u8>, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    edit(&mut frame);
    frame
}

/// The router's interfaces as the parameterizer would write them for
/// `hook_flags` (`IFACE_XDP_EGRESS` for XDP): r0, r1, r2, x1 (left out of
/// the devmap by [`xdp_ports`]) and x2 (attached but not up, so not an
/// egress).
pub fn ifaces(lab: &Lab, hook_flags: u16) -> Vec<(Port, u16)> {
    use router::{IFACE_EGRESS, IFACE_INGRESS};
    let all = IFACE_INGRESS | IFACE_EGRESS | hook_flags;
    vec![
        (lab.r0, all),
        (lab.r1, all),
        (lab.r2, all),
        (lab.x1, IFACE_EGRESS | hook_flags),
        (lab.x2, IFACE_INGRESS | hook_flags),
    ]
}

/// The XDP devmap: every XDP router interface but x1.
pub fn xdp_ports(lab: &Lab) -> Vec<Port> {
    vec![lab.r0, lab.r1, lab.r2, lab.x2]
}

/// Adds a policy rule consulting table 100, which makes 10.77.0.0/16 local:
/// the kernel now rejects those sources (`fib_validate_source`'s full
/// check), through a table the default rules never read.
pub fn custom_local_routes(lab: &Lab) {
    lab.rtr()
        .sh("ip rule add pref 100 lookup 100 && ip route add local 10.77.0.0/16 dev lo table 100")
        .expect("add the policy rule and the local route");
}

/// Writes `value` into every CPU's `LFP_PKT_CTX` entry.
pub fn set_pkt_ctx(ebpf: &mut aya::Ebpf, value: PacketCtx) {
    let mut map: PerCpuArray<_, PacketCtx> =
        PerCpuArray::try_from(ebpf.map_mut(PKT_CTX_MAP).expect(PKT_CTX_MAP)).expect("per-CPU");
    let cpus = aya::util::nr_cpus().expect("CPUs");
    let values = PerCpuValues::try_from(vec![value; cpus]).expect("values");
    map.set(0, values, 0).expect("set LFP_PKT_CTX");
}

/// How many CPUs' `LFP_PKT_CTX` entries are empty.
pub fn empty_pkt_ctx(ebpf: &aya::Ebpf) -> usize {
    let map: PerCpuArray<_, PacketCtx> =
        PerCpuArray::try_from(ebpf.map(PKT_CTX_MAP).expect(PKT_CTX_MAP)).expect("per-CPU");
    map.get(&0, 0)
        .expect("get LFP_PKT_CTX")
        .iter()
        .filter(|c| c.flags == 0)
        .count()
}

/// What a filter stage may leave in `LFP_PKT_CTX` for a UDP packet from
/// s0 to d0 arriving on r0, as the router at stage `position` finds it,
/// and the destination MAC the forwarded frame must carry: the handed
/// answer's (a MAC the FIB never gives) only when the router may take it.
pub fn handoff_cases(lab: &Lab) -> Vec<(&'static str, u32, PacketCtx, [u8; 6])> {
    let handed = PacketCtx {
        flags: PKT_CTX_VALID | PKT_CTX_FIB_DONE,
        ingress_ifindex: lab.r0.ifindex,
        l3_proto: 0x0800,
        l3_offset: 14,
        l4_offset: 34,
        vlan_id: 0,
        egress_ifindex: lab.r1.ifindex,
        smac: lab.r1.mac,
        dmac: STRANGER_MAC,
    };
    vec![
        ("as stage 1, for this packet", 1, handed, STRANGER_MAC),
        (
            "for another ingress",
            1,
            PacketCtx {
                ingress_ifindex: lab.x0.ifindex,
                ..handed
            },
            lab.dst_mac,
        ),
        (
            "for another layout",
            1,
            PacketCtx {
                l4_offset: 38,
                ..handed
            },
            lab.dst_mac,
        ),
        (
            "without FIB_DONE",
            1,
            PacketCtx {
                flags: PKT_CTX_VALID,
                ..handed
            },
            lab.dst_mac,
        ),
        (
            "as stage 0 (left by an earlier packet)",
            0,
            handed,
            lab.dst_mac,
        ),
    ]
}
