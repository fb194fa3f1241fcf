// SPDX-License-Identifier: MIT OR Apache-2.0
//! `bridge_tc`'s VLAN handling on live frames, where tags travel in skb
//! metadata (the kernel untags every received frame before TC), which a
//! `BPF_PROG_TEST_RUN` cannot express.
//!
//! This kernel cannot enable VLAN filtering on a bridge, so the program is
//! loaded by hand with maps saying "VLAN filtering" and attached to two
//! veths; frames sent into one (AF_PACKET) must leave the other tagged,
//! untagged or re-tagged as the Linux bridge would, seen by tcpdump on the
//! far side.
//!
//! Root only; skips loudly otherwise.

use std::time::Duration;

use aya::{
    Ebpf,
    maps::{Array, HashMap, PerCpuArray},
    programs::{SchedClassifier, TcAttachType, tc},
};
use linuxfp_ebpf_common::{
    abi::{self, counter},
    bridge::*,
};
use linuxfp_fpm_bridge::{TC_PROGRAM, bytecode::BRIDGE_OBJ};
use linuxfp_testkit::{Netns, ifindex, mac, require_root, up, veth};

/// Sends `frame` out of the interface `ifindex` through an AF_PACKET socket
/// (call inside the namespace).
fn send_raw(ifindex: u32, frame: &[u8]) {
    // SAFETY: plain socket(2); the descriptor is closed below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        )
    };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: an all-zero sockaddr_ll is valid; fields set below.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = ifindex as i32;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: `frame` and `addr` are valid for the lengths given.
    let rc = unsafe {
        libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    assert_eq!(rc, frame.len() as isize, "sendto: {err}");
}

fn frame(dst: [u8; 6], src: [u8; 6], tag: Option<u16>, marker: u8) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    if let Some(tci) = tag {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    // An IPv4/UDP-looking payload; tcpdump prints the marker as the ID.
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&[0x45, 0, 0, 28, 0, marker, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 8, 0, 0]);
    f.resize(64, 0);
    f
}

fn read_fast(ebpf: &Ebpf, ifindex: u32) -> u64 {
    let stats: PerCpuArray<_, u64> =
        PerCpuArray::try_from(ebpf.map(abi::STATS_MAP).expect("stats")).expect("percpu");
    stats
        .get(&abi::stats_index(ifindex, counter::FAST), 0)
        .map(|v| v.iter().sum())
        .unwrap_or(0)
}

#[test]
fn tc_pushes_pops_and_keeps_tags_like_the_linux_bridge() {
    if !require_root("tc_pushes_pops_and_keeps_tags_like_the_linux_bridge") {
        return;
    }
    let ns = Netns::new("brvl").expect("netns");
    for (p, q) in [("p1", "q1"), ("p2", "q2")] {
        veth(&ns, p, &ns, q).expect("veth");
        up(&ns, p).expect("up");
        up(&ns, q).expect("up");
    }
    let (p1, p2) = (
        ifindex(&ns, "p1").expect("p1"),
        ifindex(&ns, "p2").expect("p2"),
    );
    let q1 = ifindex(&ns, "q1").expect("q1");
    let (h1, h2) = (mac(&ns, "q1").expect("mac"), mac(&ns, "q2").expect("mac"));
    let tcpdump = ns
        .spawn(&[
            "tcpdump",
            "-i",
            "q2",
            "-e",
            "-n",
            "-l",
            "-c",
            "3",
            "udp or vlan",
        ])
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(700));

    let fast = ns
        .run_in(move || {
            let mut ebpf = Ebpf::load(BRIDGE_OBJ).expect("load");
            let flags = PORT_INGRESS | PORT_FORWARDING | PORT_LEARNING | PORT_VLAN_FILTERING;
            {
                let mut ports: Array<_, PortConf> =
                    Array::try_from(ebpf.map_mut(PORTS_MAP).expect("ports")).expect("array");
                for (p, pvid) in [(p1, 10), (p2, 0)] {
                    let conf = PortConf {
                        bridge: 1,
                        flags,
                        mtu: 1500,
                        pvid,
                        vlan_proto: 0x8100,
                    };
                    ports.set(p, conf, 0).expect("port");
                }
            }
            {
                let mut vlans: HashMap<_, VlanKey, u32> =
                    HashMap::try_from(ebpf.map_mut(VLANS_MAP).expect("vlans")).expect("hash");
                for (port, vlan, v) in [
                    (p1, 10, VLAN_MEMBER | VLAN_UNTAGGED),
                    (p1, 20, VLAN_MEMBER),
                    (p2, 10, VLAN_MEMBER),
                    (p2, 20, VLAN_MEMBER | VLAN_UNTAGGED),
                ] {
                    vlans
                        .insert(VlanKey { port, vlan, pad: 0 }, v, 0)
                        .expect("vlan");
                }
            }
            {
                let mut fdb: HashMap<_, FdbKey, FdbValue> =
                    HashMap::try_from(ebpf.map_mut(FDB_MAP).expect("fdb")).expect("hash");
                for vlan in [10, 20] {
                    for (m, port) in [(h1, p1), (h2, p2)] {
                        let key = FdbKey {
                            bridge: 1,
                            vlan,
                            mac: m,
                        };
                        let value = FdbValue {
                            port,
                            flags: 0,
                            moved_ns: 0,
                        };
                        fdb.insert(key, value, 0).expect("fdb");
                    }
                }
            }
            let _ = tc::qdisc_add_clsact("p1");
            let prog: &mut SchedClassifier = ebpf
                .program_mut(TC_PROGRAM)
                .expect("prog")
                .try_into()
                .expect("tc");
            prog.load().expect("verifier");
            prog.attach("p1", TcAttachType::Ingress).expect("attach");
            // Untagged in (PVID 10) → tagged 10 out; tagged 20 → untagged;
            // tagged 10 with priority 5 → kept, priority and all.
            send_raw(q1, &frame(h2, h1, None, 1));
            send_raw(q1, &frame(h2, h1, Some(20), 2));
            send_raw(q1, &frame(h2, h1, Some(0xa00a), 3));
            std::thread::sleep(Duration::from_millis(300));
            let fast = read_fast(&ebpf, p1);
            drop(ebpf);
            fast
        })
        .expect("run in netns");
    let out = tcpdump
        .wait(Duration::from_secs(5))
        .expect("tcpdump output");
    assert_eq!(fast, 3, "all three frames took the fast path");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("ethertype")).collect();
    assert_eq!(lines.len(), 3, "three frames on q2: {out}");
    assert!(
        lines[0].contains("vlan 10, p 0"),
        "untagged in, PVID 10 pushed: {}",
        lines[0]
    );
    assert!(
        !lines[1].contains("vlan"),
        "VLAN 20 leaves p2 untagged: {}",
        lines[1]
    );
    assert!(
        lines[2].contains("vlan 10, p 5"),
        "tag and priority kept: {}",
        lines[2]
    );
}
