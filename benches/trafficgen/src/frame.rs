// SPDX-License-Identifier: MIT OR Apache-2.0
//! Building test frames with correct checksums.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ethernet + IPv4 + UDP header length.
pub const UDP4_HEADERS: usize = 14 + 20 + 8;
/// Ethernet + IPv6 + UDP header length.
pub const UDP6_HEADERS: usize = 14 + 40 + 8;

/// One's-complement sum of 16-bit words, folded.
pub fn csum_fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sum of the big-endian 16-bit words of `data` (odd length padded).
pub fn csum_add(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn eth(dst: [u8; 6], src: [u8; 6], proto: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&proto.to_be_bytes());
    f
}

/// A UDP/IPv4 frame of `frame_len` bytes in all (at least 60), TTL 64. The
/// payload is zeroes: a sink measuring latency takes a zero stamp slot as
/// "not stamped" and reads no clock for it.
pub fn udp4(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    frame_len: usize,
) -> Vec<u8> {
    let frame_len = frame_len.max(60);
    let ip_len = (frame_len - 14) as u16;
    let udp_len = ip_len - 20;
    let mut f = eth(dst_mac, src_mac, 0x0800);
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = csum_fold(csum_add(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.resize(udp_len as usize, 0);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    let c = csum_fold(csum_add(&pseudo) + csum_add(&udp));
    udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

/// A UDP/IPv6 frame of `frame_len` bytes in all (at least 62), hop limit 64,
/// payload zeroes (see [`udp4`]).
pub fn udp6(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    frame_len: usize,
) -> Vec<u8> {
    let frame_len = frame_len.max(UDP6_HEADERS);
    let payload_len = (frame_len - 14 - 40) as u16;
    let mut f = eth(dst_mac, src_mac, 0x86DD);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&payload_len.to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&payload_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.resize(payload_len as usize, 0);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&u32::from(payload_len).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 17]);
    let c = csum_fold(csum_add(&pseudo) + csum_add(&udp));
    udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let f = udp4(
            [1; 6],
            [2; 6],
            Ipv4Addr::new(10, 1, 0, 2),
            Ipv4Addr::new(10, 2, 0, 2),
            9,
            9,
            64,
        );
        assert_eq!(f.len(), 64);
        // A correct header sums to 0xffff, i.e. folds to 0.
        assert_eq!(csum_fold(csum_add(&f[14..34])), 0);
    }

    #[test]
    fn udp6_has_requested_size() {
        let f = udp6(
            [1; 6],
            [2; 6],
            "fd01::2".parse().expect("addr"),
            "fd02::2".parse().expect("addr"),
            9,
            9,
            100,
        );
        assert_eq!(f.len(), 100);
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 100 - 54);
    }
}
