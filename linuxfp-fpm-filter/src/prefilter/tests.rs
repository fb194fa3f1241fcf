// SPDX-License-Identifier: MIT OR Apache-2.0
use linuxfp_ebpf_common::filter::{ACT_ACCEPT, ACT_END_BASE, FilterRule, field, m};
use linuxfp_testkit::diff::frame::Rng;

use super::*;

fn pad(b: &[u8]) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..b.len()].copy_from_slice(b);
    v
}

fn mask(bits: u32) -> [u8; 16] {
    (if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    })
    .to_be_bytes()
}

/// A rule with an address prefix on `f` (`field::SADDR`/`DADDR`).
fn addr(f: u8, a: &[u8], bits: u32, negate: bool) -> FilterRule {
    let bit = if f == field::SADDR {
        m::SADDR
    } else {
        m::DADDR
    };
    let mut r = FilterRule {
        matches: bit,
        negate: if negate { bit } else { 0 },
        action: ACT_ACCEPT,
        ..FilterRule::default()
    };
    if f == field::SADDR {
        (r.saddr, r.smask) = (pad(a), mask(bits));
    } else {
        (r.daddr, r.dmask) = (pad(a), mask(bits));
    }
    r
}

fn dport(lo: u16, hi: u16, negate: bool) -> FilterRule {
    FilterRule {
        matches: m::DPORT,
        negate: if negate { m::DPORT } else { 0 },
        dport: [lo, hi],
        action: ACT_ACCEPT,
        ..FilterRule::default()
    }
}

fn proto(p: u8, negate: bool) -> FilterRule {
    FilterRule {
        matches: m::L4PROTO,
        negate: if negate { m::L4PROTO } else { 0 },
        l4proto: p,
        action: ACT_ACCEPT,
        ..FilterRule::default()
    }
}

fn end() -> FilterRule {
    FilterRule {
        action: ACT_END_BASE,
        ..FilterRule::default()
    }
}

fn v4(a: [u8; 4]) -> u128 {
    u128::from_be_bytes(pad(&a))
}

/// The indexes of the rules whose candidate bit is set, below `n`.
fn set_bits(bits: &[u64], n: usize) -> Vec<usize> {
    (0..n)
        .filter(|i| bits[i / 64] >> (i % 64) & 1 == 1)
        .collect()
}

#[test]
fn overlapping_ipv4_prefixes_and_negation() {
    let rules = [
        addr(field::DADDR, &[10, 0, 0, 0], 8, false),
        addr(field::DADDR, &[10, 1, 0, 0], 16, false),
        addr(field::DADDR, &[10, 1, 2, 0], 24, true),
        proto(6, false),
        end(),
    ];
    let p = build(&rules);
    assert_eq!(p.chunks, 1);
    assert!(p.dropped.is_empty(), "{:?}", p.dropped);
    assert_eq!(
        p.field_bits(),
        1 << field::DADDR | 1 << field::L4PROTO,
        "only fields some rule constrains"
    );
    let c = |a: [u8; 4]| set_bits(&p.candidates(&[(field::DADDR, v4(a))]), rules.len());
    assert_eq!(c([10, 1, 2, 3]), [0, 1, 3, 4]);
    assert_eq!(c([10, 1, 9, 9]), [0, 1, 2, 3, 4]);
    assert_eq!(c([10, 2, 0, 1]), [0, 2, 3, 4]);
    assert_eq!(c([11, 0, 0, 1]), [2, 3, 4]);
    assert_eq!(c([9, 255, 255, 255]), [2, 3, 4]);
    // Intervals: <10/8, 10/8 below 10.1/16, 10.1/16 below 10.1.2/24,
    // 10.1.2/24, the rest of 10.1/16, the rest of 10/8, >10/8: four
    // distinct vectors.
    let daddr = p
        .fields
        .iter()
        .find(|f| f.field == field::DADDR)
        .expect("daddr");
    assert_eq!(daddr.classes, 4);
    // Padding past the last rule stays set.
    assert_eq!(
        p.candidates(&[(field::DADDR, v4([11, 0, 0, 1]))])[0] >> 5,
        u64::MAX >> 5
    );
}

#[test]
fn ipv6_prefixes() {
    let a = |s: &str| s.parse::<std::net::Ipv6Addr>().expect("v6").octets();
    let rules = [
        addr(field::SADDR, &a("fd10:100::"), 32, false),
        addr(field::SADDR, &a("fd10:100:1::5"), 128, false),
        addr(field::SADDR, &a("fd10:100:1::"), 48, true),
        end(),
    ];
    let p = build(&rules);
    let c = |s: &str| {
        set_bits(
            &p.candidates(&[(field::SADDR, u128::from_be_bytes(a(s)))]),
            rules.len(),
        )
    };
    assert_eq!(c("fd10:100:1::5"), [0, 1, 3]);
    assert_eq!(c("fd10:100:1::6"), [0, 3]);
    assert_eq!(c("fd10:100:2::1"), [0, 2, 3]);
    assert_eq!(c("fd10:101::1"), [2, 3]);
    assert_eq!(c("::"), [2, 3]);
    assert_eq!(c("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), [2, 3]);
}

#[test]
fn port_ranges_and_negated_ports_stay_candidates() {
    let rules = [
        dport(80, 80, false),
        dport(1000, 2000, false),
        dport(443, 443, true),
        dport(1500, 1500, false),
        dport(0, 65535, false),
        dport(9, 3, false),
        end(),
    ];
    let p = build(&rules);
    let c = |port: u16| set_bits(&p.candidates(&[(field::DPORT, port.into())]), rules.len());
    assert_eq!(c(80), [0, 2, 4, 5, 6]);
    assert_eq!(c(1000), [1, 2, 4, 5, 6]);
    assert_eq!(c(1500), [1, 2, 3, 4, 5, 6]);
    assert_eq!(c(2000), [1, 2, 4, 5, 6]);
    assert_eq!(c(2001), [2, 4, 5, 6]);
    // A negated port range matches packets without ports whatever the
    // port field holds: never excluded. An empty range: never used.
    assert_eq!(c(443), [2, 4, 5, 6]);
    assert_eq!(c(0), [2, 4, 5, 6]);
    assert_eq!(c(65535), [2, 4, 5, 6]);
}

#[test]
fn protocol_classes_with_negation() {
    let rules = [proto(6, false), proto(17, true), proto(1, false), end()];
    let p = build(&rules);
    let c = |v: u8| set_bits(&p.candidates(&[(field::L4PROTO, v.into())]), rules.len());
    assert_eq!(c(6), [0, 1, 3]);
    assert_eq!(c(17), [3]);
    assert_eq!(c(1), [1, 2, 3]);
    assert_eq!(c(47), [1, 3]);
}

#[test]
fn prefix_cover_is_exact() {
    assert_eq!(cover(0, 65535, 16), [(0, 0)]);
    assert_eq!(cover(80, 80, 16), [(80, 16)]);
    assert_eq!(cover(1000, 1023, 16), [(1000, 13), (1008, 12)]);
    assert_eq!(cover(0, u128::MAX, 128), [(0, 0)]);
    assert_eq!(cover(1 << 127, u128::MAX, 128), [(1 << 127, 1)]);
    // Every value of a random range is covered once, none outside.
    for (lo, hi) in [(3u128, 1000u128), (1, 65534), (4097, 4097)] {
        let ps = cover(lo, hi, 16);
        for v in 0..65536u128 {
            let n = ps
                .iter()
                .filter(|(p, bits)| (p ^ v) >> (16 - bits) == 0)
                .count();
            assert_eq!(n, usize::from((lo..=hi).contains(&v)), "{v} in {lo}..={hi}");
        }
    }
}

/// The field predicates of `r` the prefilter reads, as the stage's
/// `matches` evaluates them.
fn fields_hold(r: &FilterRule, iif: u32, proto: u8, s: u128, d: u128, sp: u16, dp: u16) -> bool {
    let ports = proto == 6 || proto == 17;
    let under = |a: u128, want: &[u8; 16], msk: &[u8; 16]| {
        a & u128::from_be_bytes(*msk) == u128::from_be_bytes(*want)
    };
    let test = |bit: u32, ok: bool| r.matches & bit == 0 || ok != (r.negate & bit != 0);
    test(m::IIF, iif == r.iif)
        && test(m::L4PROTO, proto == r.l4proto)
        && test(m::SADDR, under(s, &r.saddr, &r.smask))
        && test(m::DADDR, under(d, &r.daddr, &r.dmask))
        && test(m::SPORT, ports && (r.sport[0]..=r.sport[1]).contains(&sp))
        && test(m::DPORT, ports && (r.dport[0]..=r.dport[1]).contains(&dp))
}

/// Random rules over every classified field, random packets drawn near
/// them: a clear bit always means the rule's predicates fail (sound), and
/// the prefilter clears most bits of rules that fail (useful).
#[test]
fn random_rules_clear_bits_only_of_rules_that_cannot_match() {
    let mut rng = Rng::new(0x5eed_cafe);
    let mut rules = Vec::new();
    for _ in 0..1500 {
        let mut r = FilterRule {
            action: ACT_ACCEPT,
            ..FilterRule::default()
        };
        let neg = |rng: &mut Rng, bit: u32| if rng.below(6) == 0 { bit } else { 0 };
        if rng.below(2) == 0 {
            let bits = [8u32, 16, 24, 32][rng.below(4)];
            let a = [
                10,
                rng.below(4) as u8,
                rng.below(4) as u8,
                rng.below(8) as u8,
            ];
            let (bit, want, msk) = if rng.below(2) == 0 {
                (m::SADDR, &mut r.saddr, &mut r.smask)
            } else {
                (m::DADDR, &mut r.daddr, &mut r.dmask)
            };
            *msk = mask(bits);
            *want = (u128::from_be_bytes(pad(&a)) & u128::from_be_bytes(*msk)).to_be_bytes();
            r.matches |= bit;
            r.negate |= neg(&mut rng, bit);
        }
        if rng.below(2) == 0 {
            r.matches |= m::L4PROTO;
            r.l4proto = [1, 6, 17][rng.below(3)];
            r.negate |= neg(&mut rng, m::L4PROTO);
        }
        if rng.below(2) == 0 {
            let lo = rng.below(100) as u16;
            let hi = lo + rng.below(3) as u16;
            let bit = if rng.below(2) == 0 {
                m::DPORT
            } else {
                m::SPORT
            };
            if bit == m::DPORT {
                r.dport = [lo, hi];
            } else {
                r.sport = [lo, hi];
            }
            r.matches |= bit;
            r.negate |= neg(&mut rng, bit);
        }
        if rng.below(4) == 0 {
            r.matches |= m::IIF;
            r.iif = 2 + rng.below(3) as u32;
            r.negate |= neg(&mut rng, m::IIF);
        }
        rules.push(r);
    }
    rules.push(end());
    let p = build(&rules);
    assert!(p.dropped.is_empty(), "{:?}", p.dropped);
    assert_eq!(p.chunks, 3);
    let (mut cleared, mut failing) = (0usize, 0usize);
    for _ in 0..300 {
        let a = |rng: &mut Rng| {
            v4([
                10,
                rng.below(5) as u8,
                rng.below(5) as u8,
                rng.below(9) as u8,
            ])
        };
        let (s, d) = (a(&mut rng), a(&mut rng));
        let proto = [1u8, 6, 17, 47][rng.below(4)];
        let (sp, dp) = (rng.below(105) as u16, rng.below(105) as u16);
        let iif = 1 + rng.below(4) as u32;
        let bits = p.candidates(&[
            (field::IIF, iif.into()),
            (field::SADDR, s),
            (field::DADDR, d),
            (field::L4PROTO, proto.into()),
            (field::SPORT, sp.into()),
            (field::DPORT, dp.into()),
        ]);
        for (i, r) in rules.iter().enumerate() {
            let holds = fields_hold(r, iif, proto, s, d, sp, dp);
            let candidate = bits[i / 64] >> (i % 64) & 1 == 1;
            assert!(candidate || !holds, "rule {i} {r:?} cleared but matches");
            failing += usize::from(!holds);
            cleared += usize::from(!candidate);
        }
    }
    // Only a failing port predicate of a packet without ports, and
    // negated ports, are left as candidates: most failures are cleared.
    assert!(cleared * 10 >= failing * 8, "{cleared} of {failing}");
}

#[test]
fn a_field_over_the_budget_is_left_out() {
    // One port per rule: more classes than a small budget has rows for.
    let n = 300usize;
    let mut rules: Vec<FilterRule> = (0..n).map(|i| dport(i as u16, i as u16, false)).collect();
    rules.push(proto(6, false));
    rules.push(end());
    let small = Budget {
        rows: 100,
        chunks: 100,
        prefixes: 100,
    };
    let p = build_within(&rules, small);
    assert_eq!(p.dropped, [(field::DPORT, n + 1)]);
    // The protocol still narrows.
    assert_eq!(p.field_bits(), 1 << field::L4PROTO);
    let bits = p.candidates(&[(field::L4PROTO, 17), (field::DPORT, 5)]);
    assert_eq!(
        set_bits(&bits, rules.len()),
        (0..n).chain([n + 1]).collect::<Vec<_>>()
    );
    // With the maps' budget, both fields.
    let p = build(&rules);
    assert!(p.dropped.is_empty());
    let bits = p.candidates(&[(field::L4PROTO, 17), (field::DPORT, 5)]);
    assert_eq!(set_bits(&bits, rules.len()), [5, n + 1]);
}

/// Port classes are exact: for every port, the candidates are exactly
/// the rules whose range holds it, and every negated one (a negated port
/// range is not narrowed). Many overlapping, nested and adjacent ranges,
/// some sharing bounds, and ranges reaching 0 and 65535, against a
/// brute-force walk of every rule.
#[test]
fn port_classes_are_exact_for_every_port() {
    let mut rng = Rng::new(0x0bad_5eed);
    let mut rules: Vec<FilterRule> = (0..400)
        .map(|_| {
            let lo = match rng.below(10) {
                0 => 0,
                1 => 65_000 + rng.below(536) as u16,
                _ => rng.below(3000) as u16,
            };
            let hi = match rng.below(4) {
                0 => lo,
                1 => 65535,
                _ => lo.saturating_add(rng.below(200) as u16),
            };
            dport(lo, hi, rng.below(5) == 0)
        })
        .collect();
    rules.push(end());
    let p = build(&rules);
    assert!(p.dropped.is_empty(), "{:?}", p.dropped);
    for port in (0..=3300u32).chain(64_990..=65535) {
        let want: Vec<usize> = (0..rules.len() - 1)
            .filter(|i| {
                let r = &rules[*i];
                r.negate & m::DPORT != 0 || (r.dport[0]..=r.dport[1]).contains(&(port as u16))
            })
            .chain([rules.len() - 1])
            .collect();
        let bits = p.candidates(&[(field::DPORT, u128::from(port))]);
        assert_eq!(set_bits(&bits, rules.len()), want, "port {port}");
    }
}
