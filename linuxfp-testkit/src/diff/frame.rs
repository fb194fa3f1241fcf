//! Building frames byte by byte: Ethernet with VLAN tags, IPv4 (options,
//! any length, any checksum), IPv6 with extension headers, UDP, TCP and
//! ICMP with correct checksums unless told otherwise; and the payload tag
//! that names a corpus packet in whatever comes out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// EtherType IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType IPv6.
pub const ETH_P_IPV6: u16 = 0x86DD;
/// EtherType ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType 802.1Q (C-tag).
pub const ETH_P_8021Q: u16 = 0x8100;
/// EtherType 802.1ad (S-tag).
pub const ETH_P_8021AD: u16 = 0x88A8;
/// EtherType reserved for local experiments (IEEE 802 local 1).
pub const ETH_P_EXPERIMENTAL: u16 = 0x88B5;

/// IP protocol ICMP.
pub const ICMP: u8 = 1;
/// IP protocol TCP.
pub const TCP: u8 = 6;
/// IP protocol UDP.
pub const UDP: u8 = 17;
/// IPv6 next header: hop-by-hop options.
pub const HOPOPTS: u8 = 0;
/// IPv6 next header: routing header.
pub const ROUTING: u8 = 43;
/// IPv6 next header: fragment header.
pub const FRAGMENT: u8 = 44;
/// IPv6 next header: ICMPv6.
pub const ICMPV6: u8 = 58;
/// IPv6 next header: no next header.
pub const NONE: u8 = 59;
/// IPv6 next header: destination options.
pub const DSTOPTS: u8 = 60;

/// TCP flag SYN.
pub const SYN: u8 = 0x02;
/// TCP flag ACK.
pub const ACK: u8 = 0x10;
/// TCP flag PSH.
pub const PSH: u8 = 0x08;

/// First bytes of every corpus tag.
pub const TAG_MAGIC: [u8; 4] = *b"LFPD";
/// Length of a corpus tag.
pub const TAG_LEN: usize = 8;

/// The tag of corpus packet `id`: [`TAG_MAGIC`] and `id` (big-endian).
pub fn tag(id: u32) -> [u8; TAG_LEN] {
    let mut t = [0u8; TAG_LEN];
    t[..4].copy_from_slice(&TAG_MAGIC);
    t[4..].copy_from_slice(&id.to_be_bytes());
    t
}

/// The first corpus tag found anywhere in `bytes` (a forwarded packet
/// carries it in its payload, an ICMP error in the packet it quotes).
pub fn find_tag(bytes: &[u8]) -> Option<u32> {
    bytes
        .windows(TAG_LEN)
        .find_map(|w| (w[..4] == TAG_MAGIC).then(|| u32::from_be_bytes([w[4], w[5], w[6], w[7]])))
}

/// An Ethernet frame.
pub fn ether(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    tagged(dst, src, &[], ethertype, payload)
}

/// An Ethernet frame with VLAN tags `(tpid, tci)`, outermost first.
pub fn tagged(
    dst: [u8; 6],
    src: [u8; 6],
    tags: &[(u16, u16)],
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The one's complement sum of `bytes` added to `sum`, folded, not inverted.
fn sum16(bytes: &[u8], mut sum: u32) -> u32 {
    for c in bytes.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum
}

/// The Internet checksum of `bytes`.
pub fn checksum(bytes: &[u8]) -> u16 {
    !(sum16(bytes, 0) as u16)
}

/// The sum of the pseudo-header of `src` → `dst` for `proto` and `len`.
fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let mut p = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (s, d) => {
            p.extend_from_slice(&v6_octets(s));
            p.extend_from_slice(&v6_octets(d));
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
        }
    }
    sum16(&p, 0)
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// Fills in the checksum at `at` of an L4 segment between `src` and `dst`.
fn with_l4_checksum(mut seg: Vec<u8>, at: usize, src: IpAddr, dst: IpAddr, proto: u8) -> Vec<u8> {
    let sum = sum16(&seg, pseudo(src, dst, proto, seg.len()));
    let mut c = !(sum as u16);
    if c == 0 && proto == UDP {
        c = 0xFFFF;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    seg
}

/// A UDP datagram from `src` to `dst`, checksum filled in.
pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    with_l4_checksum(s, 6, src, dst, UDP)
}

/// A TCP segment (no options) from `src` to `dst`, checksum filled in.
pub fn tcp(
    src: IpAddr,
    dst: IpAddr,
    (sport, dport): (u16, u16),
    flags: u8,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut s = Vec::with_capacity(20 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    let ack: u32 = if flags & ACK != 0 { 0x0100_0000 } else { 0 };
    s.extend_from_slice(&ack.to_be_bytes());
    s.extend_from_slice(&[5 << 4, flags]);
    s.extend_from_slice(&8192u16.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]);
    s.extend_from_slice(payload);
    with_l4_checksum(s, 16, src, dst, TCP)
}

/// An ICMP (IPv4) message: type, code, the 4 bytes after the checksum
/// (identifier and sequence of an echo), and the data.
pub fn icmp4(ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut s = vec![ty, code, 0, 0];
    s.extend_from_slice(&rest);
    s.extend_from_slice(data);
    let c = checksum(&s);
    s[2..4].copy_from_slice(&c.to_be_bytes());
    s
}

/// An ICMPv6 message from `src` to `dst`, checksum filled in.
pub fn icmp6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ty: u8,
    code: u8,
    rest: [u8; 4],
    data: &[u8],
) -> Vec<u8> {
    let mut s = vec![ty, code, 0, 0];
    s.extend_from_slice(&rest);
    s.extend_from_slice(data);
    with_l4_checksum(s, 2, src.into(), dst.into(), ICMPV6)
}

/// An IPv4 header to put in front of a payload. Defaults: TTL 64, no
/// options, no fragment bits, correct lengths and checksum.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    /// Type of service.
    pub tos: u8,
    /// Identification.
    pub id: u16,
    /// Flags and fragment offset (`0x4000`: DF, `0x2000`: MF).
    pub frag: u16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol.
    pub proto: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Options (padded with zeros to a multiple of 4).
    pub options: Vec<u8>,
    /// Overrides the version/IHL byte.
    pub version_ihl: Option<u8>,
    /// Overrides the total length.
    pub tot_len: Option<u16>,
    /// Added to the correct checksum (non-zero: a wrong checksum).
    pub check_delta: u16,
}

impl Ipv4 {
    /// A header for `proto` from `src` to `dst`.
    pub fn new(proto: u8, src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Self {
            tos: 0,
            id: 0x4C46,
            frag: 0,
            ttl: 64,
            proto,
            src,
            dst,
            options: Vec::new(),
            version_ihl: None,
            tot_len: None,
            check_delta: 0,
        }
    }

    /// The header followed by `payload`.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut opts = self.options.clone();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        let hlen = 20 + opts.len();
        let mut p = Vec::with_capacity(hlen + payload.len());
        p.push(self.version_ihl.unwrap_or(0x40 | (hlen / 4) as u8));
        p.push(self.tos);
        let tot = self.tot_len.unwrap_or((hlen + payload.len()) as u16);
        p.extend_from_slice(&tot.to_be_bytes());
        p.extend_from_slice(&self.id.to_be_bytes());
        p.extend_from_slice(&self.frag.to_be_bytes());
        p.extend_from_slice(&[self.ttl, self.proto, 0, 0]);
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        p.extend_from_slice(&opts);
        let c = checksum(&p).wrapping_add(self.check_delta);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }
}

/// An IPv6 header to put in front of extension headers and a payload.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    /// Traffic class.
    pub class: u8,
    /// Flow label (20 bits).
    pub flow: u32,
    /// Next header.
    pub nexthdr: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Overrides the payload length.
    pub payload_len: Option<u16>,
}

impl Ipv6 {
    /// A header for `nexthdr` from `src` to `dst`, hop limit 64.
    pub fn new(nexthdr: u8, src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        Self {
            class: 0,
            flow: 0,
            nexthdr,
            hop_limit: 64,
            src,
            dst,
            payload_len: None,
        }
    }

    /// The header followed by `payload`.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(40 + payload.len());
        let vtf = (6u32 << 28) | (u32::from(self.class) << 20) | (self.flow & 0xF_FFFF);
        p.extend_from_slice(&vtf.to_be_bytes());
        let len = self.payload_len.unwrap_or(payload.len() as u16);
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[self.nexthdr, self.hop_limit]);
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        p.extend_from_slice(payload);
        p
    }
}

/// An IPv6 options-style extension header (hop-by-hop, destination
/// options, routing): `next`, then `body` padded with PadN to a multiple
/// of 8 bytes.
pub fn ext6(next: u8, body: &[u8]) -> Vec<u8> {
    let mut h = vec![next, 0];
    h.extend_from_slice(body);
    let pad = (8 - h.len() % 8) % 8;
    match pad {
        0 => {}
        1 => h.push(0),
        n => {
            h.push(1);
            h.push((n - 2) as u8);
            h.extend(std::iter::repeat_n(0, n - 2));
        }
    }
    h[1] = (h.len() / 8 - 1) as u8;
    h
}

/// An IPv6 fragment header: `next`, offset in 8-byte units, more
/// fragments, identification.
pub fn frag6(next: u8, offset: u16, more: bool, id: u32) -> Vec<u8> {
    let mut h = vec![next, 0];
    h.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h
}

/// An ARP request or reply for IPv4 over Ethernet.
pub fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    a
}

/// The IPv6 solicited-node multicast address of `a`.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xFF02,
        0,
        0,
        0,
        0,
        1,
        0xFF00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The multicast MAC of an IPv6 multicast address.
pub fn multicast_mac6(a: Ipv6Addr) -> [u8; 6] {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// A neighbour solicitation from `src` (MAC `sha`) for `target`, to its
/// solicited-node address, in an IPv6 packet (hop limit 255).
pub fn neighbour_solicitation(src: Ipv6Addr, sha: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
    let dst = solicited_node(target);
    let mut body = target.octets().to_vec();
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&sha);
    let mut h = Ipv6::new(ICMPV6, src, dst);
    h.hop_limit = 255;
    h.packet(&icmp6(src, dst, 135, 0, [0; 4], &body))
}

/// A small deterministic pseudo-random generator (SplitMix64) for the
/// fuzzed part of a corpus: the same seed gives the same corpus.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 if `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// One element of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        let src: Ipv4Addr = "10.1.0.2".parse().expect("addr");
        let dst: Ipv4Addr = "10.2.0.2".parse().expect("addr");
        let ip = Ipv4::new(UDP, src, dst).packet(&udp(src.into(), dst.into(), 1, 2, b"abc"));
        assert_eq!(checksum(&ip[..20]), 0);
        let seg = &ip[20..];
        assert_eq!(
            !(sum16(seg, pseudo(src.into(), dst.into(), UDP, seg.len())) as u16),
            0
        );
        let mut bad = Ipv4::new(UDP, src, dst);
        bad.check_delta = 1;
        assert_ne!(checksum(&bad.packet(&[])[..20]), 0);
    }

    #[test]
    fn tags_are_found_anywhere() {
        let mut f = vec![0u8; 30];
        f.extend_from_slice(&tag(77));
        f.extend_from_slice(&tag(78));
        assert_eq!(find_tag(&f), Some(77));
        assert_eq!(find_tag(&f[..37]), None);
    }

    #[test]
    fn extension_headers_are_multiples_of_8() {
        for body in 0..20 {
            let h = ext6(UDP, &vec![1u8; body]);
            assert_eq!(h.len() % 8, 0, "{body}");
            assert_eq!(usize::from(h[1]) * 8 + 8, h.len());
        }
        assert_eq!(frag6(UDP, 1, true, 7), [UDP, 0, 0, 9, 0, 0, 0, 7]);
    }

    #[test]
    fn the_generator_is_deterministic() {
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert!((0..1000).all(|_| a.below(7) < 7));
    }

    #[test]
    fn solicited_node_addresses() {
        let a: Ipv6Addr = "fd01::1:2345".parse().expect("addr");
        assert_eq!(solicited_node(a).to_string(), "ff02::1:ff01:2345");
        assert_eq!(
            multicast_mac6(solicited_node(a)),
            [0x33, 0x33, 0xff, 0x01, 0x23, 0x45]
        );
    }
}
