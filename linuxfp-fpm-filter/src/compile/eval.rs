// SPDX-License-Identifier: MIT OR Apache-2.0
//! A reference evaluator of compiled [`Program`]s, straight from the IR
//! (not from the map layout): what the fast path must decide for a packet.
//! Tests run it next to the eBPF stage on the same packets.

use super::ir::{Action, Field, IrChain, Match, Pred, Program, PuntWhy};

/// The packet fields a program reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// Input ifindex.
    pub iif: u32,
    /// Output ifindex.
    pub oif: u32,
    /// L4 protocol.
    pub l4proto: u8,
    /// Source address (4 or 16 bytes, network order).
    pub saddr: Vec<u8>,
    /// Destination address.
    pub daddr: Vec<u8>,
    /// TCP/UDP source port; ICMP type.
    pub sport: u16,
    /// TCP/UDP destination port; ICMP code.
    pub dport: u16,
    /// TCP flags.
    pub tcp_flags: u8,
}

/// What the path decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every base chain accepted.
    Continue,
    /// Dropped.
    Drop,
    /// A punt rule matched.
    Punt(PuntWhy),
    /// Jumps nested deeper than the kernel allows.
    TooDeep,
}

/// The kernel's `NFT_JUMP_STACK_SIZE`.
const MAX_DEPTH: usize = 16;

fn prefix_match(value: &[u8], want: &[u8], bits: u32) -> bool {
    let mut left = bits;
    for (v, w) in value.iter().zip(want) {
        if left == 0 {
            return true;
        }
        let mask = if left >= 8 {
            0xff
        } else {
            0xffu8 << (8 - left)
        };
        if v & mask != w & mask {
            return false;
        }
        left = left.saturating_sub(8);
    }
    left == 0
}

fn field_bytes(field: Field, f: &Fields) -> Vec<u8> {
    match field {
        Field::Iif => f.iif.to_ne_bytes().to_vec(),
        Field::Oif => f.oif.to_ne_bytes().to_vec(),
        Field::Saddr => f.saddr.clone(),
        Field::Daddr => f.daddr.clone(),
        Field::L4Proto => vec![f.l4proto],
        Field::Sport => f.sport.to_be_bytes().to_vec(),
        Field::Dport => f.dport.to_be_bytes().to_vec(),
    }
}

/// The packet's conntrack class as the fast path knows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CtClass {
    /// Not in the conntrack mirror: rules reading ct punt.
    #[default]
    Unknown,
    /// A mirrored flow: ESTABLISHED, in this direction (0 original,
    /// 1 reply).
    Established(u8),
}

fn holds(p: &Program, m: &Match, f: &Fields, ct: CtClass) -> bool {
    let ports = f.l4proto == 6 || f.l4proto == 17;
    let icmp = f.l4proto == 1 || f.l4proto == 58;
    let ok = match &m.pred {
        Pred::Iif(i) => f.iif == *i,
        Pred::Oif(i) => f.oif == *i,
        Pred::Saddr(px) => prefix_match(&f.saddr, &px.addr, px.len),
        Pred::Daddr(px) => prefix_match(&f.daddr, &px.addr, px.len),
        Pred::L4Proto(v) => f.l4proto == *v,
        Pred::Sport(lo, hi) => ports && (*lo..=*hi).contains(&f.sport),
        Pred::Dport(lo, hi) => ports && (*lo..=*hi).contains(&f.dport),
        Pred::IcmpType(lo, hi) => icmp && (*lo..=*hi).contains(&(f.sport as u8)),
        Pred::IcmpCode(lo, hi) => icmp && (*lo..=*hi).contains(&(f.dport as u8)),
        Pred::TcpFlags { mask, cmp } => f.l4proto == 6 && f.tcp_flags & mask == *cmp,
        Pred::InSet { field, set } => {
            let v = field_bytes(*field, f);
            p.sets
                .get(*set)
                .is_some_and(|s| s.elements.iter().any(|(e, b)| prefix_match(&v, e, *b)))
        }
        Pred::CtState(bits) => {
            ct != CtClass::Unknown && bits & linuxfp_ebpf_common::filter::CT_STATE_ESTABLISHED != 0
        }
        Pred::CtDirection(d) => ct == CtClass::Established(*d),
    };
    ok != m.negate
}

fn policy(c: &IrChain) -> Option<Outcome> {
    match &c.base {
        Some(b) if !b.accept => Some(Outcome::Drop),
        _ => None,
    }
}

/// Evaluates the program for one packet whose flow is not in the
/// conntrack mirror.
pub fn evaluate(p: &Program, f: &Fields) -> Outcome {
    evaluate_ct(p, f, CtClass::Unknown)
}

/// Evaluates the program for one packet of conntrack class `ct`.
pub fn evaluate_ct(p: &Program, f: &Fields, ct: CtClass) -> Outcome {
    for (b, base) in p.chains.iter().enumerate() {
        if base.base.is_none() {
            continue;
        }
        // Returns Some(outcome) if the path ends here, None on accept.
        let mut stack: Vec<(usize, usize)> = Vec::new();
        let (mut chain, mut idx) = (b, 0usize);
        let end = loop {
            let Some(c) = p.chains.get(chain) else {
                break Some(Outcome::TooDeep);
            };
            let Some(r) = c.rules.get(idx) else {
                // End of a chain: return, or the base chain's policy.
                match stack.pop() {
                    Some((c2, i2)) => {
                        (chain, idx) = (c2, i2);
                        continue;
                    }
                    None => break policy(base),
                }
            };
            let reads_ct = r.matches.iter().any(|m| m.pred.reads_ct());
            if reads_ct && ct == CtClass::Unknown {
                // Only the kernel knows: punt if the rest of the rule holds.
                let rest = r.matches.iter().filter(|m| !m.pred.reads_ct());
                if rest.clone().all(|m| holds(p, m, f, ct)) {
                    break Some(Outcome::Punt(match &r.action {
                        Action::Punt(w) => w.clone(),
                        _ => PuntWhy::Conntrack,
                    }));
                }
                idx += 1;
                continue;
            }
            if !r.matches.iter().all(|m| holds(p, m, f, ct)) {
                idx += 1;
                continue;
            }
            match &r.action {
                Action::Continue => idx += 1,
                Action::Accept => break None,
                Action::Drop => break Some(Outcome::Drop),
                Action::Punt(w) => break Some(Outcome::Punt(w.clone())),
                Action::Jump(t) => {
                    if stack.len() >= MAX_DEPTH {
                        break Some(Outcome::TooDeep);
                    }
                    stack.push((chain, idx + 1));
                    (chain, idx) = (*t, 0);
                }
                Action::Goto(t) => (chain, idx) = (*t, 0),
                Action::Return => match stack.pop() {
                    Some((c2, i2)) => (chain, idx) = (c2, i2),
                    None => break policy(base),
                },
            }
        };
        if let Some(o) = end {
            return o;
        }
    }
    Outcome::Continue
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{IrBase, IrRule, IrSet, L3, Prefix};

    fn base(accept: bool, rules: Vec<IrRule>) -> IrChain {
        IrChain {
            name: "b".into(),
            base: Some(IrBase {
                hook: "forward".into(),
                priority: 0,
                accept,
            }),
            rules,
        }
    }

    fn rule(matches: Vec<Match>, action: Action) -> IrRule {
        IrRule {
            handle: 0,
            matches,
            action,
        }
    }

    fn yes(pred: Pred) -> Match {
        Match {
            pred,
            negate: false,
        }
    }

    #[test]
    fn chains_policies_and_sets() {
        let p = Program {
            l3: L3::V4,
            chains: vec![
                base(
                    true,
                    vec![
                        rule(vec![yes(Pred::Dport(53, 53))], Action::Jump(2)),
                        rule(
                            vec![yes(Pred::InSet {
                                field: Field::Saddr,
                                set: 0,
                            })],
                            Action::Drop,
                        ),
                    ],
                ),
                base(
                    false,
                    vec![rule(vec![yes(Pred::L4Proto(17))], Action::Accept)],
                ),
                IrChain {
                    name: "r".into(),
                    base: None,
                    rules: vec![rule(
                        vec![yes(Pred::Saddr(Prefix {
                            addr: vec![10, 0, 0, 0],
                            len: 8,
                        }))],
                        Action::Punt(PuntWhy::Reject),
                    )],
                },
            ],
            sets: vec![IrSet {
                name: "s".into(),
                field: Field::Saddr,
                elements: vec![(vec![192, 168, 0, 0], 16)],
            }],
        };
        let f = |l4proto, saddr: [u8; 4], dport| Fields {
            l4proto,
            saddr: saddr.to_vec(),
            daddr: vec![1, 1, 1, 1],
            dport,
            ..Default::default()
        };
        assert_eq!(evaluate(&p, &f(17, [1, 2, 3, 4], 80)), Outcome::Continue);
        assert_eq!(evaluate(&p, &f(6, [1, 2, 3, 4], 80)), Outcome::Drop);
        assert_eq!(
            evaluate(&p, &f(17, [10, 2, 3, 4], 53)),
            Outcome::Punt(PuntWhy::Reject)
        );
        // Jump and return, then the set.
        assert_eq!(evaluate(&p, &f(17, [192, 168, 1, 1], 53)), Outcome::Drop);
    }
}
