// SPDX-License-Identifier: MIT OR Apache-2.0
//! Crafted frames for the BPF_PROG_TEST_RUN tables, and the bytes a
//! correct forward turns them into (computed independently of the
//! program: full checksum recomputation, not an incremental update).

pub use linuxfp_testkit::diff::frame::{
    ETH_P_8021AD, ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, ICMP, ICMPV6, Ipv4 as V4,
    Ipv6 as V6, TCP, UDP, checksum as inet_checksum, ether as frame,
};

/// An IPv4 header from `src` to `dst` (the kit's builder, which the
/// differential harness uses too).
pub fn hdr4(proto: u8, src: &str, dst: &str) -> V4 {
    V4::new(
        proto,
        src.parse().expect("IPv4 address"),
        dst.parse().expect("IPv4 address"),
    )
}

/// An IPv6 header from `src` to `dst`, with traffic class 0x28 and a flow
/// label, so both reach the FIB.
pub fn hdr6(nexthdr: u8, src: &str, dst: &str) -> V6 {
    let mut h = V6::new(
        nexthdr,
        src.parse().expect("IPv6 address"),
        dst.parse().expect("IPv6 address"),
    );
    h.class = 0x28;
    h.flow = 0x01234;
    h
}

/// A UDP header with `len` payload bytes (checksum left zero: the router
/// never looks at it).
pub fn udp(sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + len);
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend((0..len).map(|i| i as u8));
    u
}

/// A TCP ACK segment without options, with `len` payload bytes.
pub fn tcp(sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + len);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&[0x50, 0x10, 0xFF, 0xFF, 0, 0, 0, 0]);
    t.extend((0..len).map(|i| i as u8));
    t
}

/// An ICMP (or ICMPv6, `ty` 128) echo request.
pub fn echo(ty: u8) -> Vec<u8> {
    let mut e = vec![ty, 0, 0, 0, 0x12, 0x34, 0, 1];
    e.extend_from_slice(b"linuxfp!");
    let check = inet_checksum(&e);
    e[2..4].copy_from_slice(&check.to_be_bytes());
    e
}

/// What a router makes of `frame` when it forwards it to `dmac` from
/// `smac`: new MACs (unless `None`, as for `bpf_redirect_neigh`, whose
/// neighbour layer writes them later), TTL or hop limit one less, and for
/// IPv4 a header checksum recomputed from scratch.
pub fn forwarded(frame: &[u8], macs: Option<([u8; 6], [u8; 6])>) -> Vec<u8> {
    let mut f = frame.to_vec();
    if let Some((dmac, smac)) = macs {
        f[0..6].copy_from_slice(&dmac);
        f[6..12].copy_from_slice(&smac);
    }
    match u16::from_be_bytes([f[12], f[13]]) {
        ETH_P_IP => {
            let hlen = usize::from(f[14] & 0x0F) * 4;
            f[14 + 8] -= 1;
            f[24..26].copy_from_slice(&[0, 0]);
            let check = inet_checksum(&f[14..14 + hlen]);
            f[24..26].copy_from_slice(&check.to_be_bytes());
        }
        ETH_P_IPV6 => f[14 + 7] -= 1,
        other => panic!("not an IP frame: {other:#x}"),
    }
    f
}
