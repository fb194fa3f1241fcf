//! A packet corpus made to exercise a firewall ruleset on the router
//! testbed ([`super::bed::ROUTER`]): addresses and ports are drawn from
//! the ruleset's own text ([`Vocabulary`]), with near misses around them
//! (the address just outside a prefix, the port just past a range) and
//! random ports, so both the rules' matches and their misses are sent.
//!
//! Every probe is a distinct flow (unique source port or ICMP identifier,
//! a ruleset's source ports used at most once), so connection tracking in
//! the kernel sees each probe as a new connection in both runs, and NAT
//! never has to pick a port for a clash.
//!
//! Where the probes go: the router routes every destination out of `r1`
//! by default (towards `d0`), and the destinations drawn for probes from
//! `d0` out of `r0` with host routes via the stranger on the `src` link
//! (whose neighbour entry is permanent): so every probe is forwarded once,
//! never back out of the interface it came in by (a redirect, which Linux
//! rate-limits by time), and every ICMP error the kernel sends goes to a
//! next hop with a permanent neighbour entry. Addresses that would need
//! neighbour discovery (the testbed's subnets beyond its hosts) or that
//! are not unicast are left out.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use super::{
    Corpus,
    bed::RouterLayout,
    frame::{self, ETH_P_IP, ETH_P_IPV6, ICMP, ICMPV6, Ipv4, Ipv6, Rng, TCP, UDP},
    rulesets::scratch_file,
};
use crate::{error::Result, router::VirtualRouter};

/// The addresses and ports a ruleset's text names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vocabulary {
    /// IPv4 prefixes (addresses as /32).
    pub v4: BTreeSet<(Ipv4Addr, u8)>,
    /// IPv6 prefixes (addresses as /128).
    pub v6: BTreeSet<(Ipv6Addr, u8)>,
    /// Ports, with the ones just past every single port and range.
    pub ports: BTreeSet<u16>,
}

/// Words after which port numbers follow (nft and iptables).
const PORT_WORDS: [&str; 6] = [
    "dport", "sport", "--dport", "--sport", "--dports", "--sports",
];

impl Vocabulary {
    /// Scans a ruleset's text (iptables-save or nft syntax) for addresses,
    /// prefixes and ports.
    pub fn scan(text: &str) -> Self {
        let mut v = Vocabulary::default();
        for line in text.lines() {
            let mut ports_follow = false;
            let tokens = line
                .split(|c: char| c.is_whitespace() || "{},;\"()".contains(c))
                .filter(|t| !t.is_empty());
            for tok in tokens {
                if PORT_WORDS.contains(&tok) {
                    ports_follow = true;
                } else if v.address(tok) {
                    ports_follow = false;
                } else if ports_follow && v.port_range(tok) {
                } else if tok != "!=" && tok != "!" {
                    ports_follow = false;
                }
            }
        }
        v
    }

    /// Takes `tok` if it is an address, a prefix, an IPv4 range
    /// (`a-b`) or an `address:port` (a DNAT target).
    fn address(&mut self, tok: &str) -> bool {
        let (addr, len) = tok.split_once('/').unwrap_or((tok, ""));
        if let Ok(a) = addr.parse::<Ipv4Addr>() {
            self.v4.insert((a, len.parse().unwrap_or(32).min(32)));
            return true;
        }
        if let Ok(a) = addr.parse::<Ipv6Addr>() {
            self.v6.insert((a, len.parse().unwrap_or(128).min(128)));
            return true;
        }
        if let Some((a, b)) = tok.split_once('-')
            && let (Ok(a), Ok(b)) = (a.parse::<Ipv4Addr>(), b.parse::<Ipv4Addr>())
        {
            self.v4.insert((a, 32));
            self.v4.insert((b, 32));
            return true;
        }
        if let Some((a, p)) = tok.rsplit_once(':')
            && let (Ok(a), Ok(p)) = (a.parse::<Ipv4Addr>(), p.parse::<u16>())
        {
            self.v4.insert((a, 32));
            self.ports.insert(p);
            return true;
        }
        false
    }

    /// Takes `tok` if it is a port (`p`) or a port range (`a-b`, `a:b`),
    /// with its neighbours just outside.
    fn port_range(&mut self, tok: &str) -> bool {
        let (lo, hi) = match tok.split_once(['-', ':']) {
            Some((a, b)) => (a.parse::<u16>(), b.parse::<u16>()),
            None => (tok.parse::<u16>(), tok.parse::<u16>()),
        };
        let (Ok(lo), Ok(hi)) = (lo, hi) else {
            return false;
        };
        for p in [lo.saturating_sub(1), lo, hi, hi.saturating_add(1)] {
            if p != 0 {
                self.ports.insert(p);
            }
        }
        true
    }

    /// Addresses to send to and from: per prefix, its first and last
    /// host, one inside at random, and the addresses just before and after
    /// it; only those the testbed can route without neighbour discovery
    /// ([`usable`]).
    pub fn addresses(&self, l: &RouterLayout, rng: &mut Rng) -> Vec<IpAddr> {
        let mut out = BTreeSet::new();
        let random = |rng: &mut Rng| u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64());
        for &(a, len) in &self.v4 {
            let r = random(rng);
            for x in around(u128::from(u32::from(a)), len, 32, r) {
                out.insert(IpAddr::V4(Ipv4Addr::from(x as u32)));
            }
        }
        for &(a, len) in &self.v6 {
            let r = random(rng);
            for x in around(u128::from(a), len, 128, r) {
                out.insert(IpAddr::V6(Ipv6Addr::from(x)));
            }
        }
        out.into_iter().filter(|a| usable(l, *a)).collect()
    }
}

/// The addresses around prefix `a`/`len` of a `width`-bit family: its
/// first and last host, one inside drawn from `random`, `a` itself, and
/// the addresses just before and after it (wrapping within the family).
fn around(a: u128, len: u8, width: u32, random: u128) -> [u128; 6] {
    let all = u128::MAX >> (128 - width);
    let mask = all
        & all
            .checked_shl(width - u32::from(len).min(width))
            .unwrap_or(0);
    let net = a & mask;
    let last = net | (all & !mask);
    let inside = net | (random & all & !mask);
    [
        net.wrapping_add(1),
        last.wrapping_sub(1),
        inside,
        a,
        net.wrapping_sub(1),
        last.wrapping_add(1),
    ]
    .map(|x| x & all)
}

/// Whether the router testbed can send to and from `a` with no neighbour
/// discovery and no local delivery: a unicast address outside its two
/// subnets, or one of its two hosts.
pub fn usable(l: &RouterLayout, a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            if a == l.src4 || a == l.dst4 {
                return true;
            }
            let o = a.octets();
            let subnet = |h: Ipv4Addr| h.octets()[..3] == o[..3];
            !(subnet(l.src4)
                || subnet(l.dst4)
                || o[0] == 0
                || o[0] == 127
                || o[0] >= 224
                || a.is_link_local())
        }
        IpAddr::V6(a) => {
            if a == l.src6 || a == l.dst6 {
                return true;
            }
            let s = a.segments();
            let subnet = |h: Ipv6Addr| h.segments()[..4] == s[..4];
            !(subnet(l.src6)
                || subnet(l.dst6)
                || s[0] & 0xffc0 == 0xfe80
                || s[0] & 0xff00 == 0xff00
                || s[0] & 0xff00 == 0)
        }
    }
}

/// A ruleset's packet corpus and the routes it needs.
#[derive(Debug, Clone)]
pub struct RuleCorpus {
    /// The probes (no warm-up).
    pub corpus: Corpus,
    /// Destinations of probes from `d0`, to be routed out of `r0`
    /// ([`route_corpus`]).
    pub left: Vec<IpAddr>,
    /// Addresses drawn from the ruleset (after [`usable`]).
    pub addresses: usize,
    /// Ports drawn from it.
    pub ports: usize,
}

/// Whether `a` is routed out of `r0` (towards `s0`): a third of the
/// drawn addresses, fixed by the address and the seed so both runs agree.
fn is_left(l: &RouterLayout, a: IpAddr, seed: u64) -> bool {
    if a == IpAddr::V4(l.src4) || a == IpAddr::V6(l.src6) {
        return true;
    }
    if a == IpAddr::V4(l.dst4) || a == IpAddr::V6(l.dst6) {
        return false;
    }
    let bits = match a {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let x = u128::from(a);
            (x as u64) ^ ((x >> 64) as u64)
        }
    };
    Rng::new(bits ^ seed).next_u64().is_multiple_of(3)
}

/// `n` probes for the ruleset whose words are `vocab`, from `seed`.
pub fn rule_corpus(l: &RouterLayout, vocab: &Vocabulary, n: usize, seed: u64) -> RuleCorpus {
    let mut rng = Rng::new(seed);
    let mut addrs = vocab.addresses(l, &mut rng);
    addrs.extend([
        IpAddr::V4(l.src4),
        IpAddr::V4(l.dst4),
        IpAddr::V6(l.src6),
        IpAddr::V6(l.dst6),
    ]);
    addrs.sort_unstable();
    addrs.dedup();
    let (left, right): (Vec<IpAddr>, Vec<IpAddr>) =
        addrs.iter().partition(|a| is_left(l, **a, seed));
    let ports: Vec<u16> = vocab.ports.iter().copied().collect();
    let mut unused_sports: BTreeSet<(u8, u16)> = BTreeSet::new();
    for p in &ports {
        unused_sports.insert((TCP, *p));
        unused_sports.insert((UDP, *p));
    }
    let mut corpus = Corpus::default();
    let mut routed_left = BTreeSet::new();
    for i in 0..n {
        let from_src = rng.chance(1, 2);
        let v6 = rng.chance(1, 3);
        let family = |a: &&IpAddr| a.is_ipv6() == v6;
        let dsts: Vec<&IpAddr> = if from_src { &right } else { &left }
            .iter()
            .filter(family)
            .collect();
        let dst = **rng.pick(&dsts);
        let own = match (from_src, v6) {
            (true, false) => IpAddr::V4(l.src4),
            (true, true) => IpAddr::V6(l.src6),
            (false, false) => IpAddr::V4(l.dst4),
            (false, true) => IpAddr::V6(l.dst6),
        };
        let srcs: Vec<&IpAddr> = addrs.iter().filter(family).filter(|a| **a != dst).collect();
        let src = if rng.chance(1, 2) || srcs.is_empty() {
            own
        } else {
            **rng.pick(&srcs)
        };
        if !from_src {
            routed_left.insert(dst);
        }
        let proto = match rng.below(20) {
            0..=8 => TCP,
            9..=16 => UDP,
            _ if v6 => ICMPV6,
            _ => ICMP,
        };
        let dport = if !ports.is_empty() && rng.chance(7, 10) {
            *rng.pick(&ports)
        } else {
            1 + rng.below(65535) as u16
        };
        // A source port never used before, so every probe is a new flow.
        let fresh = 10_000 + i as u16;
        let sport = if rng.chance(1, 5) {
            let want = *rng.pick(&ports.clone().into_iter().chain([fresh]).collect::<Vec<_>>());
            if unused_sports.remove(&(proto, want)) {
                want
            } else {
                fresh
            }
        } else {
            fresh
        };
        let flags = if rng.chance(4, 5) {
            frame::SYN
        } else {
            frame::ACK | frame::PSH
        };
        let (wire, router_mac, host_mac) = if from_src {
            ("s0", l.r0_mac, l.src_mac)
        } else {
            ("d0", l.r1_mac, l.dst_mac)
        };
        let pname = match proto {
            TCP => "tcp",
            UDP => "udp",
            _ => "icmp",
        };
        let name = format!("{pname} {src}:{sport} > {dst}:{dport} (seed {seed:#x})");
        corpus.add(wire, name, |tag| {
            let mut data = tag.to_vec();
            data.extend_from_slice(b"lfp-rule");
            let l4 = match proto {
                TCP => frame::tcp(src, dst, (sport, dport), flags, 1, &data),
                UDP => frame::udp(src, dst, sport, dport, &data),
                _ => {
                    let rest = [(i >> 8) as u8, i as u8, 0, 1];
                    match (src, dst) {
                        (IpAddr::V6(s), IpAddr::V6(d)) => frame::icmp6(s, d, 128, 0, rest, &data),
                        _ => frame::icmp4(8, 0, rest, &data),
                    }
                }
            };
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => frame::ether(
                    router_mac,
                    host_mac,
                    ETH_P_IP,
                    &Ipv4::new(proto, s, d).packet(&l4),
                ),
                (IpAddr::V6(s), IpAddr::V6(d)) => frame::ether(
                    router_mac,
                    host_mac,
                    ETH_P_IPV6,
                    &Ipv6::new(proto, s, d).packet(&l4),
                ),
                _ => Vec::new(),
            }
        });
    }
    routed_left.remove(&IpAddr::V4(l.src4));
    routed_left.remove(&IpAddr::V6(l.src6));
    RuleCorpus {
        corpus,
        left: routed_left.into_iter().collect(),
        addresses: addrs.len(),
        ports: ports.len(),
    }
}

/// Routes the router testbed for a [`RuleCorpus`]: everything out of
/// `r1` via `d0` by default, the corpus's `left` destinations out of `r0`
/// via the stranger.
pub fn route_corpus(vr: &VirtualRouter, l: &RouterLayout, left: &[IpAddr]) -> Result<()> {
    let mut batch = format!(
        "route add 0.0.0.0/0 via {}\nroute add ::/0 via {}\n",
        l.dst4, l.dst6
    );
    for a in left {
        match a {
            IpAddr::V4(a) => batch.push_str(&format!("route add {a}/32 via {}\n", l.stranger4)),
            IpAddr::V6(a) => batch.push_str(&format!("route add {a}/128 via {}\n", l.stranger6)),
        }
    }
    let path = scratch_file(&vr.rtr, &batch)?;
    let out = vr.rtr.exec(&["ip", "-batch", &path.to_string_lossy()]);
    // Best effort: scratch data in the temporary directory.
    let _ = std::fs::remove_file(&path);
    out.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{bed::ROUTER, rulesets};

    #[test]
    fn addresses_around_a_prefix() {
        let a = u128::from(u32::from(Ipv4Addr::new(10, 244, 3, 7)));
        let got = around(a, 16, 32, 0x0102).map(|x| Ipv4Addr::from(x as u32).to_string());
        assert_eq!(
            got,
            [
                "10.244.0.1",
                "10.244.255.254",
                "10.244.1.2",
                "10.244.3.7",
                "10.243.255.255",
                "10.245.0.0"
            ]
        );
        let host = around(a, 32, 32, 5).map(|x| x as u32);
        assert_eq!(host[2], a as u32, "a /32 has one address inside");
        assert_eq!(
            around(0, 0, 32, 9)[4],
            u128::from(u32::MAX),
            "wraps in 32 bits"
        );
    }

    #[test]
    fn words_are_found_in_both_syntaxes() {
        let v = Vocabulary::scan(
            "-A X -s 10.244.0.0/16 -p tcp -m multiport --dports 22,443,8000:8080 -j DNAT --to-destination 10.244.2.3:8080\n\
             ip6 saddr fd10:100::/32 tcp dport { 53, 100-200 } ip daddr != 172.17.0.2 drop",
        );
        assert!(v.v4.contains(&("10.244.0.0".parse().expect("a"), 16)));
        assert!(v.v4.contains(&("10.244.2.3".parse().expect("a"), 32)));
        assert!(v.v4.contains(&("172.17.0.2".parse().expect("a"), 32)));
        assert!(v.v6.contains(&("fd10:100::".parse().expect("a"), 32)));
        for p in [
            21, 22, 23, 443, 7999, 8000, 8080, 8081, 53, 99, 100, 200, 201,
        ] {
            assert!(v.ports.contains(&p), "{p}: {:?}", v.ports);
        }
        assert!(!v.ports.contains(&16), "a prefix length is no port");
    }

    #[test]
    fn corpora_are_deterministic_and_every_address_is_routable() {
        let rs = rulesets::random(500, 3);
        let v = Vocabulary::scan(&rs.text);
        let a = rule_corpus(&ROUTER, &v, 300, 1);
        let b = rule_corpus(&ROUTER, &v, 300, 1);
        assert_eq!(a.corpus.probes, b.corpus.probes);
        assert_eq!(a.corpus.len(), 300);
        assert!(
            a.addresses > 100 && a.ports > 50,
            "{} {}",
            a.addresses,
            a.ports
        );
        for p in a.corpus.all() {
            assert_eq!(frame::find_tag(&p.frame), Some(p.id), "{}", p.name);
        }
        assert!(a.left.iter().all(|x| usable(&ROUTER, *x)));
        assert!(!usable(&ROUTER, "10.1.0.7".parse().expect("a")));
        assert!(!usable(&ROUTER, "fe80::1".parse().expect("a")));
        assert!(usable(&ROUTER, "10.244.0.1".parse().expect("a")));
    }
}
