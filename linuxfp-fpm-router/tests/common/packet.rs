// SPDX-License-Identifier: MIT OR Apache-2.0
//! Crafted frames for the BPF_PROG_TEST_RUN tables, and the bytes a
//! correct forward turns them into (computed independently of the
//! program: full checksum recomputation, not an incremental update).

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;

/// An Ethernet frame around `payload`.
pub fn frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The one's complement sum of `bytes` as 16-bit big-endian words, folded
/// and inverted: the Internet checksum.
pub fn inet_checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (with `options`, if any) and payload.
#[derive(Clone)]
pub struct V4 {
    pub tos: u8,
    pub ttl: u8,
    /// Flags and fragment offset, host order.
    pub frag: u16,
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub options: Vec<u8>,
    /// Overrides the version/IHL byte.
    pub version_ihl: Option<u8>,
    /// Overrides the total length.
    pub tot_len: Option<u16>,
    /// Adds this to the correct checksum (non-zero: a bad checksum).
    pub check_delta: u16,
}

impl V4 {
    pub fn new(proto: u8, src: &str, dst: &str) -> Self {
        V4 {
            tos: 0,
            ttl: 64,
            frag: 0,
            proto,
            src: src.parse().expect("IPv4 address"),
            dst: dst.parse().expect("IPv4 address"),
            options: Vec::new(),
            version_ihl: None,
            tot_len: None,
            check_delta: 0,
        }
    }

    pub fn bytes(&self, payload: &[u8]) -> Vec<u8> {
        let hlen = 20 + self.options.len();
        let tot = self.tot_len.unwrap_or((hlen + payload.len()) as u16);
        let mut h = vec![
            self.version_ihl.unwrap_or(0x40 | (hlen / 4) as u8),
            self.tos,
        ];
        h.extend_from_slice(&tot.to_be_bytes());
        h.extend_from_slice(&0x1234u16.to_be_bytes());
        h.extend_from_slice(&self.frag.to_be_bytes());
        h.extend_from_slice(&[self.ttl, self.proto, 0, 0]);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(&self.options);
        let check = inet_checksum(&h).wrapping_add(self.check_delta);
        h[10..12].copy_from_slice(&check.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

/// A fixed IPv6 header and payload.
#[derive(Clone)]
pub struct V6 {
    pub hop_limit: u8,
    pub nexthdr: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// Overrides the payload length.
    pub payload_len: Option<u16>,
}

impl V6 {
    pub fn new(nexthdr: u8, src: &str, dst: &str) -> Self {
        V6 {
            hop_limit: 64,
            nexthdr,
            src: src.parse().expect("IPv6 address"),
            dst: dst.parse().expect("IPv6 address"),
            payload_len: None,
        }
    }

    pub fn bytes(&self, payload: &[u8]) -> Vec<u8> {
        // Traffic class 0x28 and a flow label, so both reach the FIB.
        let mut h = 0x6280_1234u32.to_be_bytes().to_vec();
        let plen = self.payload_len.unwrap_or(payload.len() as u16);
        h.extend_from_slice(&plen.to_be_bytes());
        h.extend_from_slice(&[self.nexthdr, self.hop_limit]);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(payload);
        h
    }
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
