//! The testbeds of the differential tests, prepared so that two runs can
//! only differ by what the device under test does:
//! - every MAC is fixed (veths get random ones), so frames are comparable
//!   byte for byte across two builds of the topology;
//! - the hosts around the device are silent (nftables drops their IP input
//!   and output, `arp_ignore` 8): they only receive, so everything
//!   captured was sent by the device;
//! - the device sends no router solicitations (IPv6 off on the bridge and
//!   its ports; the router forwards, so it never solicits), and its ICMP
//!   rate limits are off (`icmp_ratemask` 0, `net.ipv6.icmp.ratemask`
//!   empty): every error Linux would send is sent, whatever the timing;
//! - every next hop and every address an ICMP error goes to has a
//!   permanent neighbour entry: no ARP or neighbour discovery, whose
//!   retransmissions depend on time.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Injector, Wire, frame};
use crate::{
    error::Result,
    links::{addr, format_mac, neighbour, route, sysctl, up, veth, wait_up},
    netns::Netns,
    router::VirtualRouter,
    switch::Switch,
};

/// The addresses of the router testbed (the [`VirtualRouter`] with fixed
/// MACs, MTU 2000 on the `src` link and 1400 on the `dst` link, and routes
/// that make the router generate every kind of ICMP error).
#[derive(Debug, Clone, Copy)]
pub struct RouterLayout {
    /// `s0`.
    pub src_mac: [u8; 6],
    /// `r0`.
    pub r0_mac: [u8; 6],
    /// `r1`.
    pub r1_mac: [u8; 6],
    /// `d0`.
    pub dst_mac: [u8; 6],
    /// A host on the `src` link that does not exist, with a permanent
    /// neighbour entry (the next hop of [`RouterLayout::same_if4`]).
    pub stranger_mac: [u8; 6],
    /// `s0`'s IPv4 address.
    pub src4: Ipv4Addr,
    /// `r0`'s.
    pub r0_4: Ipv4Addr,
    /// `r1`'s.
    pub r1_4: Ipv4Addr,
    /// `d0`'s.
    pub dst4: Ipv4Addr,
    /// The stranger's.
    pub stranger4: Ipv4Addr,
    /// `s0`'s IPv6 address.
    pub src6: Ipv6Addr,
    /// `r0`'s.
    pub r0_6: Ipv6Addr,
    /// `r1`'s.
    pub r1_6: Ipv6Addr,
    /// `d0`'s.
    pub dst6: Ipv6Addr,
    /// The stranger's.
    pub stranger6: Ipv6Addr,
    /// A link-local source on the `src` link (with a neighbour entry).
    pub link_local6: Ipv6Addr,
    /// In a blackhole route (IPv4, IPv6).
    pub blackhole: (Ipv4Addr, Ipv6Addr),
    /// In an unreachable route.
    pub unreachable: (Ipv4Addr, Ipv6Addr),
    /// In a prohibit route.
    pub prohibit: (Ipv4Addr, Ipv6Addr),
    /// Routed back out of `r0`, via the stranger (a redirect).
    pub same_if: (Ipv4Addr, Ipv6Addr),
    /// MTU of `s0` and `r0`.
    pub src_mtu: usize,
    /// MTU of `r1` and `d0`.
    pub dst_mtu: usize,
}

const fn v6(a: u16, b: u16, h: u16) -> Ipv6Addr {
    Ipv6Addr::new(a, b, 0, 0, 0, 0, 0, h)
}

/// The router testbed's layout.
pub const ROUTER: RouterLayout = RouterLayout {
    src_mac: [0x02, 0, 0, 0x01, 0, 0x02],
    r0_mac: [0x02, 0, 0, 0x01, 0, 0x01],
    r1_mac: [0x02, 0, 0, 0x02, 0, 0x01],
    dst_mac: [0x02, 0, 0, 0x02, 0, 0x02],
    stranger_mac: [0x02, 0, 0, 0x01, 0, 0x99],
    src4: Ipv4Addr::new(10, 1, 0, 2),
    r0_4: Ipv4Addr::new(10, 1, 0, 1),
    r1_4: Ipv4Addr::new(10, 2, 0, 1),
    dst4: Ipv4Addr::new(10, 2, 0, 2),
    stranger4: Ipv4Addr::new(10, 1, 0, 5),
    src6: v6(0xfd01, 0, 2),
    r0_6: v6(0xfd01, 0, 1),
    r1_6: v6(0xfd02, 0, 1),
    dst6: v6(0xfd02, 0, 2),
    stranger6: v6(0xfd01, 0, 5),
    link_local6: v6(0xfe80, 0, 0x77),
    blackhole: (Ipv4Addr::new(10, 9, 1, 1), v6(0xfd09, 1, 1)),
    unreachable: (Ipv4Addr::new(10, 9, 2, 1), v6(0xfd09, 2, 1)),
    prohibit: (Ipv4Addr::new(10, 9, 3, 1), v6(0xfd09, 3, 1)),
    same_if: (Ipv4Addr::new(10, 9, 5, 1), v6(0xfd09, 5, 1)),
    src_mtu: 2000,
    dst_mtu: 1400,
};

/// The /24 around `a`.
fn net24(a: Ipv4Addr) -> String {
    let [x, y, z, _] = a.octets();
    format!("{x}.{y}.{z}.0/24")
}

/// The /64 around `a`.
fn net64(a: Ipv6Addr) -> String {
    let s = a.segments();
    format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
}

/// Sets an interface's MAC address (veths and bridges take it while up),
/// and derives its IPv6 link-local address from it again (the kernel keeps
/// the one derived from the old MAC), so ICMPv6 the device sends from it
/// is the same in every build of the testbed.
pub fn set_mac(ns: &Netns, ifname: &str, mac: [u8; 6]) -> Result<()> {
    ns.exec(&[
        "ip",
        "link",
        "set",
        "dev",
        ifname,
        "address",
        &format_mac(mac),
    ])?;
    let out = ns.exec(&[
        "ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link",
    ])?;
    let old: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet6").nth(1))
        .collect();
    if old.is_empty() {
        return Ok(());
    }
    for a in old {
        ns.exec(&["ip", "-6", "addr", "del", a, "dev", ifname])?;
    }
    let ll = format!("{}/64", link_local(mac));
    ns.exec(&["ip", "-6", "addr", "add", &ll, "dev", ifname, "nodad"])?;
    Ok(())
}

/// The EUI-64 link-local address of `mac`.
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let w = |a: u8, b: u8| u16::from_be_bytes([a, b]);
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        w(mac[0] ^ 2, mac[1]),
        w(mac[2], 0xff),
        w(0xfe, mac[3]),
        w(mac[4], mac[5]),
    )
}

/// Sets an interface's MTU.
pub fn set_mtu(ns: &Netns, ifname: &str, mtu: usize) -> Result<()> {
    ns.exec(&["ip", "link", "set", "dev", ifname, "mtu", &mtu.to_string()])?;
    Ok(())
}

/// Makes a host namespace receive-only: its IP stack drops everything in
/// and out (nftables), and it answers no ARP request.
pub fn silence(ns: &Netns) -> Result<()> {
    for cmd in [
        "add table inet lfpdiff",
        "add chain inet lfpdiff in { type filter hook input priority 0 ; policy drop ; }",
        "add chain inet lfpdiff out { type filter hook output priority 0 ; policy drop ; }",
    ] {
        ns.exec(&["nft", cmd])?;
    }
    sysctl(ns, "net.ipv4.conf.all.arp_ignore", "8")
}

/// Turns the ICMP rate limits of `ns` off, so the errors Linux sends do not
/// depend on timing.
pub fn unlimited_icmp(ns: &Netns) -> Result<()> {
    sysctl(ns, "net.ipv4.icmp_ratemask", "0")?;
    sysctl(ns, "net.ipv6.icmp.ratemask", "")
}

/// The routes of a router layout that make the router generate every kind
/// of ICMP error (blackhole, unreachable, prohibit, back out of the
/// ingress interface), and no rate limit on those errors.
fn special_routes(rtr: &Netns, l: &RouterLayout) -> Result<()> {
    for (kind, (a4, a6)) in [
        ("blackhole", l.blackhole),
        ("unreachable", l.unreachable),
        ("prohibit", l.prohibit),
    ] {
        route(rtr, &format!("{kind} {}", net24(a4)))?;
        route(rtr, &format!("{kind} {}", net64(a6)))?;
    }
    route(rtr, &format!("{} via {}", net24(l.same_if.0), l.stranger4))?;
    route(rtr, &format!("{} via {}", net64(l.same_if.1), l.stranger6))?;
    unlimited_icmp(rtr)
}

/// Builds the router testbed ([`ROUTER`]). With `napi_peers`, GRO is on
/// at `s0` and `d0`, which gives them the NAPI an XDP redirect into a veth
/// needs (both runs must use the same setting).
pub fn router(tag: &str, napi_peers: bool) -> Result<VirtualRouter> {
    let l = ROUTER;
    let mut vr = VirtualRouter::new(tag)?;
    silence(&vr.src)?;
    silence(&vr.dst)?;
    for (ns, ifname, mac, mtu) in [
        (&vr.src, "s0", l.src_mac, l.src_mtu),
        (&vr.rtr, "r0", l.r0_mac, l.src_mtu),
        (&vr.rtr, "r1", l.r1_mac, l.dst_mtu),
        (&vr.dst, "d0", l.dst_mac, l.dst_mtu),
    ] {
        set_mac(ns, ifname, mac)?;
        set_mtu(ns, ifname, mtu)?;
    }
    vr.src_if.mac = l.src_mac;
    vr.rtr_src_if.mac = l.r0_mac;
    vr.rtr_dst_if.mac = l.r1_mac;
    vr.dst_if.mac = l.dst_mac;
    vr.set_static_neighbours()?;
    let rtr = &vr.rtr;
    for (dev, ip, mac) in [
        ("r0", l.stranger4.to_string(), l.stranger_mac),
        ("r0", l.stranger6.to_string(), l.stranger_mac),
        ("r0", l.link_local6.to_string(), l.stranger_mac),
    ] {
        neighbour(rtr, dev, &ip, mac)?;
    }
    special_routes(rtr, &l)?;
    if napi_peers {
        vr.gro_on_hosts()?;
    }
    for (ns, ifname) in [(&vr.src, "s0"), (&vr.dst, "d0")] {
        wait_up(ns, ifname, std::time::Duration::from_secs(5))?;
    }
    Ok(vr)
}

/// The addresses of the bridge testbed: a [`Switch`] with three hosts,
/// fixed MACs, `h1`'s link at MTU 2000 and the others at 1500.
#[derive(Debug, Clone, Copy)]
pub struct SwitchLayout {
    /// `e0` of `h1`, `h2`, `h3`.
    pub host_macs: [[u8; 6]; 3],
    /// `p1`, `p2`, `p3`.
    pub port_macs: [[u8; 6]; 3],
    /// `br0`.
    pub bridge_mac: [u8; 6],
    /// MTU of `h1`'s link.
    pub h1_mtu: usize,
    /// MTU of the other links.
    pub mtu: usize,
}

/// The bridge testbed's layout.
pub const SWITCH: SwitchLayout = SwitchLayout {
    host_macs: [
        [0x02, 0, 0, 0x50, 0, 0x01],
        [0x02, 0, 0, 0x50, 0, 0x02],
        [0x02, 0, 0, 0x50, 0, 0x03],
    ],
    port_macs: [
        [0x02, 0, 0, 0x5F, 0, 0x01],
        [0x02, 0, 0, 0x5F, 0, 0x02],
        [0x02, 0, 0, 0x5F, 0, 0x03],
    ],
    bridge_mac: [0x02, 0, 0, 0x5F, 0, 0],
    h1_mtu: 2000,
    mtu: 1500,
};

/// The unicast MAC nobody has, that hosts announce themselves to.
pub const ANNOUNCE_TO: [u8; 6] = [0x02, 0, 0, 0x5E, 0xEE, 0xEE];

/// Builds the bridge testbed ([`SWITCH`]); every host has sent one frame,
/// so the bridge knows where they are. With `napi_peers`, GRO is on at the
/// hosts' interfaces (the NAPI an XDP redirect into a veth needs).
pub fn switch(tag: &str, napi_peers: bool) -> Result<Switch> {
    let l = SWITCH;
    let mut s = Switch::new(tag, 3)?;
    // No IPv6 on the bridge and its ports: no router solicitations or
    // listener reports on timers.
    for dev in ["br0", "p1", "p2", "p3"] {
        sysctl(&s.sw, &format!("net.ipv6.conf.{dev}.disable_ipv6"), "1")?;
    }
    set_mac(&s.sw, "br0", l.bridge_mac)?;
    for (i, h) in s.hosts.iter_mut().enumerate() {
        // Silent first, so the new link-local address is not announced.
        silence(&h.ns)?;
        set_mac(&s.sw, &h.port, l.port_macs[i])?;
        set_mac(&h.ns, "e0", l.host_macs[i])?;
        h.mac = l.host_macs[i];
        let mtu = if i == 0 { l.h1_mtu } else { l.mtu };
        set_mtu(&s.sw, &h.port, mtu)?;
        set_mtu(&h.ns, "e0", mtu)?;
    }
    // Entries the kernel learnt from the old random MACs stay until they
    // age out; no probe is addressed to them.
    for h in &s.hosts {
        if napi_peers {
            h.ns.exec(&["ethtool", "-K", "e0", "gro", "on"])?;
        }
        wait_up(&h.ns, "e0", std::time::Duration::from_secs(5))?;
    }
    // Each host announces itself, so the bridge has learnt every host before
    // a controller starts (its first dump then mirrors them; FDB entries
    // learnt later reach the mirror only with the next topology change).
    for h in &s.hosts {
        let hello = frame::ether(ANNOUNCE_TO, h.mac, frame::ETH_P_EXPERIMENTAL, b"hello");
        Injector::open(&h.ns, "e0")?.send(&hello)?;
    }
    Ok(s)
}

/// The router testbed's receiving interfaces: `s0` and `d0` (what leaves
/// `r0` and `r1`), labelled with their names; the router corpus injects on
/// them too.
pub fn router_wires(vr: &VirtualRouter) -> [Wire<'_>; 2] {
    [
        Wire {
            label: "s0",
            ns: &vr.src,
            ifname: "s0",
        },
        Wire {
            label: "d0",
            ns: &vr.dst,
            ifname: "d0",
        },
    ]
}

/// The bridge testbed's hosts' interfaces (what leaves each port),
/// labelled `h1`, `h2`, `h3`.
pub fn switch_wires(s: &Switch) -> Vec<Wire<'_>> {
    const LABELS: [&str; 3] = ["h1", "h2", "h3"];
    LABELS
        .iter()
        .zip(&s.hosts)
        .map(|(label, h)| Wire {
            label,
            ns: &h.ns,
            ifname: "e0",
        })
        .collect()
}

/// The layout of the bridge-then-router testbed ([`bridged_router`]): the
/// router's `src` side is the bridge testbed's `br0` (its MAC, an address
/// in the hosts' subnet) with `h1` as the source host, and its `dst` side
/// a routed link `r9` to a namespace `far` (`x0`). The stranger sits
/// behind the bridge (frames to it are flooded to every host).
pub const BRIDGED_ROUTER: RouterLayout = RouterLayout {
    src_mac: SWITCH.host_macs[0],
    r0_mac: SWITCH.bridge_mac,
    r1_mac: [0x02, 0, 0, 0x60, 0, 0x01],
    dst_mac: [0x02, 0, 0, 0x60, 0, 0x02],
    stranger_mac: [0x02, 0, 0, 0x50, 0, 0x99],
    src4: Ipv4Addr::new(10, 50, 0, 1),
    r0_4: Ipv4Addr::new(10, 50, 0, 254),
    r1_4: Ipv4Addr::new(10, 60, 0, 1),
    dst4: Ipv4Addr::new(10, 60, 0, 2),
    stranger4: Ipv4Addr::new(10, 50, 0, 5),
    src6: v6(0xfd50, 0, 1),
    r0_6: v6(0xfd50, 0, 0xfe),
    r1_6: v6(0xfd60, 0, 1),
    dst6: v6(0xfd60, 0, 2),
    stranger6: v6(0xfd50, 0, 5),
    link_local6: ROUTER.link_local6,
    blackhole: ROUTER.blackhole,
    unreachable: ROUTER.unreachable,
    prohibit: ROUTER.prohibit,
    same_if: ROUTER.same_if,
    src_mtu: SWITCH.h1_mtu,
    dst_mtu: 1400,
};

/// A bridge that routes: the bridge testbed ([`switch`]) whose `br0` has
/// addresses and forwards to a routed link `r9` – `x0` (namespace `far`).
#[derive(Debug)]
pub struct BridgedRouter {
    /// The bridge testbed; `sw` is the router too.
    pub switch: Switch,
    /// The host behind the routed link.
    pub far: Netns,
}

/// Builds the bridge-then-router testbed ([`BRIDGED_ROUTER`]), prepared
/// like the others: fixed MACs, silent hosts, permanent neighbour entries
/// for every address an error goes to, ICMP rate limits off. IPv6 is on
/// `br0` (no DAD; its ports stay without).
pub fn bridged_router(tag: &str) -> Result<BridgedRouter> {
    let l = BRIDGED_ROUTER;
    let switch = switch(tag, false)?;
    let sw = &switch.sw;
    let far = Netns::new(&format!("{tag}far"))?;
    silence(&far)?;
    veth(sw, "r9", &far, "x0")?;
    for (ns, ifname) in [(sw, "br0"), (sw, "r9"), (&far, "x0")] {
        sysctl(ns, &format!("net.ipv6.conf.{ifname}.accept_dad"), "0")?;
        sysctl(ns, &format!("net.ipv6.conf.{ifname}.disable_ipv6"), "0")?;
    }
    for (ns, ifname, mac, a4, a6) in [
        (sw, "br0", l.r0_mac, l.r0_4, l.r0_6),
        (sw, "r9", l.r1_mac, l.r1_4, l.r1_6),
        (&far, "x0", l.dst_mac, l.dst4, l.dst6),
    ] {
        up(ns, ifname)?;
        set_mac(ns, ifname, mac)?;
        addr(ns, ifname, &format!("{a4}/24"))?;
        ns.exec(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{a6}/64"),
            "dev",
            ifname,
            "nodad",
        ])?;
    }
    for (ns, ifname) in [(sw, "r9"), (&far, "x0")] {
        set_mtu(ns, ifname, l.dst_mtu)?;
    }
    sysctl(sw, "net.ipv4.ip_forward", "1")?;
    sysctl(sw, "net.ipv6.conf.all.forwarding", "1")?;
    for (dev, ip, mac) in [
        ("br0", l.src4.to_string(), l.src_mac),
        ("br0", l.src6.to_string(), l.src_mac),
        ("br0", l.stranger4.to_string(), l.stranger_mac),
        ("br0", l.stranger6.to_string(), l.stranger_mac),
        ("br0", l.link_local6.to_string(), l.stranger_mac),
        ("r9", l.dst4.to_string(), l.dst_mac),
        ("r9", l.dst6.to_string(), l.dst_mac),
    ] {
        neighbour(sw, dev, &ip, mac)?;
    }
    special_routes(sw, &l)?;
    wait_up(&far, "x0", std::time::Duration::from_secs(5))?;
    Ok(BridgedRouter { switch, far })
}

/// The bridge-then-router testbed's receiving interfaces, labelled for
/// the router corpus: `s0` (`h1`), `d0` (`far`), and `h2`, `h3`.
pub fn bridged_router_wires(b: &BridgedRouter) -> Vec<Wire<'_>> {
    let h = &b.switch.hosts;
    vec![
        Wire {
            label: "s0",
            ns: &h[0].ns,
            ifname: "e0",
        },
        Wire {
            label: "h2",
            ns: &h[1].ns,
            ifname: "e0",
        },
        Wire {
            label: "h3",
            ns: &h[2].ns,
            ifname: "e0",
        },
        Wire {
            label: "d0",
            ns: &b.far,
            ifname: "x0",
        },
    ]
}
