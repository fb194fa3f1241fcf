// SPDX-License-Identifier: MIT OR Apache-2.0
//! One nf_tables rule → one [`IrRule`], expression by expression.
//!
//! The translation follows the kernel's VM: loads put a known field in a
//! register, `bitwise` masks it, `cmp`/`range`/`lookup` turn it into a
//! predicate, `immediate` to register 0 gives the verdict. At the first
//! expression that is not understood, has side effects or reads hidden
//! state, translation stops and the rule becomes a punt on the predicates
//! collected so far: every later expression could only narrow the match,
//! so that is a superset of the packets the rule really matches (sound),
//! and packets outside it are classified exactly.
//!
//! `counter` is skipped: the kernel's rule counters do not see packets the
//! fast path decides; the FPM's own counters (by verdict and punt reason)
//! are the record of those.

use std::collections::BTreeMap;

use linuxfp::inspector::nftables::{
    BitwiseOp, CmpOp, CtKey, Data, Expr, MetaKey, PayloadBase, RegOp, Rule, Ruleset, Set, Verdict,
    xt::{XtMatchInfo, XtTargetInfo},
};

use super::{
    Interfaces,
    ir::{Action, Field, IrRule, IrSet, L3, Match, Pred, Prefix, PuntWhy},
};

/// Largest number of prefixes one set may expand to.
pub const MAX_SET_ELEMENTS: usize = 16384;

/// Where a rule sits, as its translation needs it.
pub(crate) struct RuleCtx<'a> {
    pub ruleset: &'a Ruleset,
    pub ifaces: &'a Interfaces,
    pub l3: L3,
    /// The chain may run at prerouting, where the output interface is not
    /// known yet.
    pub prerouting: bool,
    /// Chain index by name, in the rule's table.
    pub chain_index: &'a dyn Fn(&str) -> Option<usize>,
}

/// What a register holds.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reg {
    /// A known field (or a run of adjacent fields, for merged loads).
    Fields(Vec<Part>),
    /// A compile-time constant (`meta nfproto`, `meta protocol`).
    Const(Vec<u8>),
    /// A field, masked.
    Masked(Part, Vec<u8>),
}

/// One field of a load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Iif,
    Oif,
    IifName,
    OifName,
    /// The first `n` bytes of the source address (iptables-nft loads only
    /// the bytes a prefix covers).
    Saddr(u8),
    /// The first `n` bytes of the destination address.
    Daddr(u8),
    L4Proto,
    Sport,
    Dport,
    IcmpType,
    IcmpCode,
    TcpFlags,
    /// `ct state` (a 32-bit host-order bit field).
    CtState,
    /// `ct direction` (1 byte).
    CtDir,
}

impl Part {
    fn len(self, l3: L3) -> usize {
        match self {
            Part::Iif | Part::Oif => 4,
            Part::IifName | Part::OifName => 16,
            Part::Saddr(n) | Part::Daddr(n) => {
                let _ = l3;
                n as usize
            }
            Part::L4Proto | Part::IcmpType | Part::IcmpCode | Part::TcpFlags | Part::CtDir => 1,
            Part::Sport | Part::Dport => 2,
            Part::CtState => 4,
        }
    }
}

/// Register number → byte offset in the register file (16-byte registers
/// 1–4 overlay the 4-byte registers 8–23).
fn reg_offset(reg: u32) -> Option<u32> {
    match reg {
        1..=4 => Some((reg - 1) * 16),
        8..=23 => Some((reg - 8) * 4),
        _ => None,
    }
}

enum Step {
    /// Keep going.
    Next,
    /// The rule can never match this family's packets.
    Never,
    /// Stop: the rule punts on what was collected.
    Punt(PuntWhy),
    /// The verdict.
    Verdict(Action),
}

struct Builder<'a, 'c> {
    cx: &'a RuleCtx<'c>,
    regs: BTreeMap<u32, (u32, Reg)>,
    matches: Vec<Match>,
    sets: &'a mut Vec<IrSet>,
    handle: u64,
    family: linuxfp::inspector::nftables::Family,
    table: String,
}

fn unsupported(what: impl Into<String>) -> Step {
    Step::Punt(PuntWhy::Unsupported(what.into()))
}

fn stateful(what: impl Into<String>) -> Step {
    Step::Punt(PuntWhy::Stateful(what.into()))
}

/// Translates one rule. `None` if it can never match on this path.
pub(crate) fn compile_rule(cx: &RuleCtx<'_>, rule: &Rule, sets: &mut Vec<IrSet>) -> Option<IrRule> {
    let mut b = Builder {
        cx,
        regs: BTreeMap::new(),
        matches: Vec::new(),
        sets,
        handle: rule.handle,
        family: rule.family,
        table: rule.table.clone(),
    };
    let action = match rule.expressions() {
        None => Action::Punt(PuntWhy::Unsupported("undecoded rule".into())),
        Some(exprs) => {
            let mut action = Action::Continue;
            for e in exprs {
                match b.expr(e) {
                    Step::Next => {}
                    Step::Never => return None,
                    Step::Punt(why) => {
                        action = Action::Punt(why);
                        break;
                    }
                    Step::Verdict(a) => {
                        action = a;
                        break;
                    }
                }
            }
            action
        }
    };
    Some(IrRule {
        handle: rule.handle,
        matches: b.matches,
        action,
    })
}

impl Builder<'_, '_> {
    fn load(&mut self, dreg: u32, len: u32, r: Reg) -> Step {
        let Some(off) = reg_offset(dreg) else {
            return unsupported(format!("register {dreg}"));
        };
        // Drop everything this load overwrites.
        self.regs
            .retain(|&o, (l, _)| o + *l <= off || off + len.max(1) <= o);
        self.regs.insert(off, (len, r));
        Step::Next
    }

    fn reg(&self, sreg: u32) -> Option<Reg> {
        let off = reg_offset(sreg)?;
        self.regs.get(&off).map(|(_, r)| r.clone())
    }

    fn l4proto(&self) -> Option<u8> {
        self.matches.iter().find_map(|m| match m.pred {
            Pred::L4Proto(p) if !m.negate => Some(p),
            _ => None,
        })
    }

    fn has(&self, f: impl Fn(&Pred) -> bool) -> bool {
        self.matches.iter().any(|m| f(&m.pred))
    }

    fn set_lookups(&self) -> usize {
        self.matches
            .iter()
            .filter(|m| matches!(m.pred, Pred::InSet { .. }))
            .count()
    }

    /// Adds a predicate if the lowered rule has room for it (one of each
    /// kind, two set lookups); otherwise the rule punts here.
    fn add(&mut self, pred: Pred, negate: bool) -> Step {
        // `th dport 6000-6010` is `>= 6000` then `<= 6010`: intersect.
        if !negate {
            for m in self.matches.iter_mut().filter(|m| !m.negate) {
                let merged = match (&m.pred, &pred) {
                    (Pred::Sport(a, b), Pred::Sport(c, d)) => {
                        Some(((*a).max(*c), (*b).min(*d), true))
                    }
                    (Pred::Dport(a, b), Pred::Dport(c, d)) => {
                        Some(((*a).max(*c), (*b).min(*d), false))
                    }
                    (Pred::L4Proto(a), Pred::L4Proto(b)) => {
                        return if a == b { Step::Next } else { Step::Never };
                    }
                    _ => None,
                };
                if let Some((lo, hi, src)) = merged {
                    if lo > hi {
                        return Step::Never;
                    }
                    m.pred = if src {
                        Pred::Sport(lo, hi)
                    } else {
                        Pred::Dport(lo, hi)
                    };
                    return Step::Next;
                }
            }
        }
        let kind = std::mem::discriminant(&pred);
        let full = match pred {
            Pred::InSet { .. } => self.set_lookups() >= 2,
            _ => self.has(|p| std::mem::discriminant(p) == kind),
        };
        if full {
            return unsupported("second predicate on one field");
        }
        self.matches.push(Match { pred, negate });
        Step::Next
    }

    fn expr(&mut self, e: &Expr) -> Step {
        let l3 = self.cx.l3;
        match e {
            Expr::Counter => Step::Next,
            Expr::Meta(m) => match m.op {
                RegOp::Set { .. } => stateful(format!("meta {:?} set", m.key)),
                RegOp::Load { dreg } => {
                    let r = match m.key {
                        MetaKey::NfProto => Reg::Const(vec![l3.nfproto()]),
                        MetaKey::Protocol => Reg::Const(l3.ethertype().to_vec()),
                        MetaKey::L4Proto => Reg::Fields(vec![Part::L4Proto]),
                        MetaKey::Iif => Reg::Fields(vec![Part::Iif]),
                        MetaKey::Oif => Reg::Fields(vec![Part::Oif]),
                        MetaKey::IifName => Reg::Fields(vec![Part::IifName]),
                        MetaKey::OifName => Reg::Fields(vec![Part::OifName]),
                        k => return unsupported(format!("meta {k:?}")),
                    };
                    let len = match &r {
                        Reg::Const(c) => c.len() as u32,
                        Reg::Fields(p) => p.iter().map(|p| p.len(l3) as u32).sum(),
                        Reg::Masked(..) => 0,
                    };
                    self.load(dreg, len, r)
                }
            },
            Expr::Payload(p) => match p.op {
                RegOp::Set { .. } => stateful("payload set"),
                RegOp::Load { dreg } => match self.payload_fields(p.base, p.offset, p.len) {
                    Ok(parts) => self.load(dreg, p.len, Reg::Fields(parts)),
                    Err(s) => s,
                },
            },
            Expr::Bitwise(bw) => {
                let BitwiseOp::MaskXor { mask, xor } = &bw.op else {
                    return unsupported("bitwise shift/boolean");
                };
                if xor.iter().any(|b| *b != 0) {
                    return unsupported("bitwise xor");
                }
                match self.reg(bw.sreg) {
                    Some(Reg::Fields(parts)) if parts.len() == 1 => {
                        self.load(bw.dreg, bw.len, Reg::Masked(parts[0], mask.clone()))
                    }
                    _ => unsupported("bitwise on an unknown register"),
                }
            }
            Expr::Cmp(c) => match self.reg(c.sreg) {
                None => unsupported("cmp on an unknown register"),
                Some(r) => self.cmp(r, c.op, &c.data),
            },
            Expr::Range(r) => match self.reg(r.sreg) {
                Some(Reg::Fields(parts)) if parts.len() == 1 => {
                    let (Some(lo), Some(hi)) = (be16(&r.from), be16(&r.to)) else {
                        return unsupported("range width");
                    };
                    match parts[0] {
                        Part::Sport => self.add(Pred::Sport(lo, hi), r.negated),
                        Part::Dport => self.add(Pred::Dport(lo, hi), r.negated),
                        p => unsupported(format!("range on {p:?}")),
                    }
                }
                _ => unsupported("range on an unknown register"),
            },
            Expr::Lookup(l) => self.lookup(l),
            Expr::Immediate(i) => match (&i.data, i.dreg) {
                (Data::Verdict(v), 0) => self.verdict(v),
                // A constant for a later statement (mark set, NAT address):
                // the statement decides.
                (Data::Value(v), dreg) => self.load(dreg, v.len() as u32, Reg::Const(v.clone())),
                (Data::Verdict(_), _) => unsupported("verdict into a data register"),
            },
            Expr::Ct(c) => match (c.op, c.key, c.dir) {
                (RegOp::Set { .. }, k, _) => stateful(format!("ct {k:?} set")),
                // The two keys the conntrack mirror answers (see the FPM
                // docs); every other one only the kernel knows.
                (RegOp::Load { dreg }, CtKey::State, None) => {
                    self.load(dreg, 4, Reg::Fields(vec![Part::CtState]))
                }
                (RegOp::Load { dreg }, CtKey::Direction, None) => {
                    self.load(dreg, 1, Reg::Fields(vec![Part::CtDir]))
                }
                (RegOp::Load { .. }, _, _) => Step::Punt(PuntWhy::Conntrack),
            },
            Expr::Log(_) => stateful("log"),
            Expr::Limit(_) => stateful("limit"),
            Expr::Notrack => stateful("notrack"),
            Expr::Nat(_) | Expr::Masq(_) | Expr::Redir(_) => Step::Punt(PuntWhy::Nat),
            Expr::Reject(_) => Step::Punt(PuntWhy::Reject),
            Expr::Fib(_) => unsupported("fib"),
            Expr::Match(m) => self.xt_match(&m.name, m.decoded.as_ref()),
            Expr::Target(t) => match (&t.decoded, t.name.as_str()) {
                (Some(XtTargetInfo::Reject { .. }), _) | (None, "REJECT") => {
                    Step::Punt(PuntWhy::Reject)
                }
                (Some(XtTargetInfo::Log { .. }), _) | (None, "LOG" | "NFLOG") => stateful("LOG"),
                (None, "MASQUERADE" | "SNAT" | "DNAT" | "REDIRECT" | "NETMAP") => {
                    Step::Punt(PuntWhy::Nat)
                }
                (_, name) => stateful(format!("target {name}")),
            },
            Expr::Unknown { name, .. } => match name.as_str() {
                "quota" | "connlimit" | "dynset" | "numgen" | "objref" | "last" | "synproxy"
                | "tproxy" | "queue" | "dup" | "fwd" => stateful(name.clone()),
                _ => unsupported(name.clone()),
            },
        }
    }

    /// The fields a payload load reads.
    fn payload_fields(&self, base: PayloadBase, offset: u32, len: u32) -> Result<Vec<Part>, Step> {
        let l3 = self.cx.l3;
        let fields: &[(u32, Part)] = match base {
            PayloadBase::Network => match l3 {
                L3::V4 => &[
                    (9, Part::L4Proto),
                    (12, Part::Saddr(4)),
                    (16, Part::Daddr(4)),
                ],
                // The fast path punts extension headers, so nexthdr is the
                // L4 protocol.
                L3::V6 => &[
                    (6, Part::L4Proto),
                    (8, Part::Saddr(16)),
                    (24, Part::Daddr(16)),
                ],
            },
            PayloadBase::Transport => {
                // Transport fields mean what the L4 protocol says: the rule
                // must have pinned it before.
                match self.l4proto() {
                    Some(6) => &[(0, Part::Sport), (2, Part::Dport), (13, Part::TcpFlags)],
                    Some(17) => &[(0, Part::Sport), (2, Part::Dport)],
                    Some(p) if p == l3.icmp() => &[(0, Part::IcmpType), (1, Part::IcmpCode)],
                    _ => return Err(unsupported("transport header without a known protocol")),
                }
            }
            b => return Err(unsupported(format!("payload base {b:?}"))),
        };
        let mut parts = Vec::new();
        let mut at = offset;
        let end = offset + len;
        while at < end {
            let Some((_, p)) = fields.iter().find(|(o, _)| *o == at) else {
                return Err(unsupported(format!("payload {base:?} +{offset} len {len}")));
            };
            // An address load may stop short of the whole address.
            let p = match *p {
                Part::Saddr(n) if end - at < u32::from(n) => Part::Saddr((end - at) as u8),
                Part::Daddr(n) if end - at < u32::from(n) => Part::Daddr((end - at) as u8),
                p => p,
            };
            parts.push(p);
            at += p.len(l3) as u32;
        }
        if at != end {
            return Err(unsupported(format!("payload {base:?} +{offset} len {len}")));
        }
        Ok(parts)
    }

    fn cmp(&mut self, r: Reg, op: CmpOp, data: &[u8]) -> Step {
        let l3 = self.cx.l3;
        match r {
            Reg::Const(c) => {
                let eq = c.as_slice() == data;
                match op {
                    CmpOp::Eq if eq => Step::Next,
                    CmpOp::Neq if !eq => Step::Next,
                    CmpOp::Eq | CmpOp::Neq => Step::Never,
                    _ => unsupported("ordered cmp on a constant"),
                }
            }
            Reg::Masked(part, mask) => {
                let negate = match op {
                    CmpOp::Eq => false,
                    CmpOp::Neq => true,
                    _ => return unsupported("ordered cmp on a masked field"),
                };
                match part {
                    Part::Saddr(n) | Part::Daddr(n) => {
                        let Some(len) = prefix_len(&mask) else {
                            return unsupported("non-prefix address mask");
                        };
                        if data.len() != n as usize || mask.len() != n as usize {
                            return unsupported("address width");
                        }
                        let mut addr: Vec<u8> =
                            data.iter().zip(&mask).map(|(d, m)| d & m).collect();
                        if addr != data {
                            // Bits outside the mask never compare equal.
                            return if negate { Step::Next } else { Step::Never };
                        }
                        if len == 0 {
                            return if negate { Step::Never } else { Step::Next };
                        }
                        addr.resize(l3.addr_len(), 0);
                        self.add(addr_pred(part, Prefix { addr, len }), negate)
                    }
                    Part::TcpFlags if mask.len() == 1 && data.len() == 1 => self.add(
                        Pred::TcpFlags {
                            mask: mask[0],
                            cmp: data[0] & mask[0],
                        },
                        negate,
                    ),
                    Part::CtState => match <[u8; 4]>::try_from(mask.as_slice()) {
                        Ok(m) => self.ct_state(u32::from_ne_bytes(m), op, data),
                        Err(_) => unsupported("ct state mask width"),
                    },
                    Part::IifName | Part::OifName => unsupported("masked interface name"),
                    p => unsupported(format!("masked {p:?}")),
                }
            }
            Reg::Fields(parts) => {
                if parts.len() > 1 {
                    if op != CmpOp::Eq {
                        return unsupported("cmp != on merged fields");
                    }
                    let mut at = 0;
                    for p in parts {
                        let n = p.len(l3);
                        let Some(chunk) = data.get(at..at + n) else {
                            return unsupported("merged cmp width");
                        };
                        if let s @ (Step::Punt(_) | Step::Never) = self.cmp_one(p, CmpOp::Eq, chunk)
                        {
                            return s;
                        }
                        at += n;
                    }
                    return Step::Next;
                }
                self.cmp_one(parts[0], op, data)
            }
        }
    }

    fn cmp_one(&mut self, part: Part, op: CmpOp, data: &[u8]) -> Step {
        let l3 = self.cx.l3;
        // Ports: ordered comparisons are ranges.
        if matches!(part, Part::Sport | Part::Dport) {
            let Some(v) = be16(data) else {
                return unsupported("port width");
            };
            let (lo, hi, negate) = match op {
                CmpOp::Eq => (v, v, false),
                CmpOp::Neq => (v, v, true),
                CmpOp::Lt if v == 0 => return Step::Never,
                CmpOp::Lt => (0, v - 1, false),
                CmpOp::Lte => (0, v, false),
                CmpOp::Gt if v == u16::MAX => return Step::Never,
                CmpOp::Gt => (v + 1, u16::MAX, false),
                CmpOp::Gte => (v, u16::MAX, false),
            };
            let pred = if part == Part::Sport {
                Pred::Sport(lo, hi)
            } else {
                Pred::Dport(lo, hi)
            };
            return self.add(pred, negate);
        }
        let negate = match op {
            CmpOp::Eq => false,
            CmpOp::Neq => true,
            _ => return unsupported(format!("ordered cmp on {part:?}")),
        };
        match part {
            Part::CtState => self.ct_state(u32::MAX, op, data),
            Part::CtDir => match data {
                [d @ (0 | 1)] => self.add(Pred::CtDirection(*d), negate),
                // No packet has another direction.
                [_] => {
                    if negate {
                        Step::Next
                    } else {
                        Step::Never
                    }
                }
                _ => unsupported("ct direction width"),
            },
            Part::L4Proto | Part::IcmpType | Part::IcmpCode | Part::TcpFlags => {
                let [v] = data else {
                    return unsupported("1-byte field width");
                };
                let pred = match part {
                    Part::L4Proto => Pred::L4Proto(*v),
                    Part::IcmpType => Pred::IcmpType(*v, *v),
                    Part::IcmpCode => Pred::IcmpCode(*v, *v),
                    _ => Pred::TcpFlags {
                        mask: 0xff,
                        cmp: *v,
                    },
                };
                self.add(pred, negate)
            }
            Part::Saddr(n) | Part::Daddr(n) => {
                if data.len() != n as usize || data.len() > l3.addr_len() {
                    return unsupported("address width");
                }
                let mut addr = data.to_vec();
                addr.resize(l3.addr_len(), 0);
                let len = 8 * data.len() as u32;
                self.add(addr_pred(part, Prefix { addr, len }), negate)
            }
            Part::Iif | Part::Oif => {
                let Ok(b) = <[u8; 4]>::try_from(data) else {
                    return unsupported("ifindex width");
                };
                self.iface(part == Part::Oif, vec![u32::from_ne_bytes(b)], negate)
            }
            Part::IifName | Part::OifName => {
                let idx = self.cx.ifaces.matching(data);
                self.iface(part == Part::OifName, idx, negate)
            }
            // Ports were handled above.
            Part::Sport | Part::Dport => unsupported("port"),
        }
    }

    /// An interface predicate on a set of ifindexes (names resolved).
    fn iface(&mut self, out: bool, idx: Vec<u32>, negate: bool) -> Step {
        if out && self.cx.prerouting {
            return unsupported("output interface at prerouting");
        }
        match idx.as_slice() {
            [] => {
                if negate {
                    Step::Next
                } else {
                    Step::Never
                }
            }
            [one] => self.add(
                if out {
                    Pred::Oif(*one)
                } else {
                    Pred::Iif(*one)
                },
                negate,
            ),
            many => {
                let field = if out { Field::Oif } else { Field::Iif };
                let set = self.new_set(
                    format!("rule {} interfaces", self.handle),
                    field,
                    many.iter()
                        .map(|i| (i.to_ne_bytes().to_vec(), 32))
                        .collect(),
                );
                self.add(Pred::InSet { field, set }, negate)
            }
        }
    }

    fn new_set(&mut self, name: String, field: Field, elements: Vec<(Vec<u8>, u32)>) -> usize {
        self.sets.push(IrSet {
            name,
            field,
            elements,
        });
        self.sets.len() - 1
    }

    fn lookup(&mut self, l: &linuxfp::inspector::nftables::Lookup) -> Step {
        if l.dreg.is_some() {
            return unsupported("map lookup");
        }
        let Some(Reg::Fields(parts)) = self.reg(l.sreg) else {
            return unsupported("lookup on an unknown register");
        };
        let [part] = parts.as_slice() else {
            return unsupported("concatenated lookup");
        };
        let field = match part {
            Part::Saddr(n) if *n as usize == self.cx.l3.addr_len() => Field::Saddr,
            Part::Daddr(n) if *n as usize == self.cx.l3.addr_len() => Field::Daddr,
            Part::L4Proto => Field::L4Proto,
            Part::Sport => Field::Sport,
            Part::Dport => Field::Dport,
            Part::Iif => Field::Iif,
            Part::Oif => Field::Oif,
            p => return unsupported(format!("lookup on {p:?}")),
        };
        if field == Field::Oif && self.cx.prerouting {
            return unsupported("output interface at prerouting");
        }
        let Some(set) = self.cx.ruleset.set(self.family, &self.table, &l.set) else {
            return unsupported(format!("set {} not found", l.set));
        };
        match set_elements(set, field, self.cx.l3) {
            Ok(elements) => {
                let name = format!("{} {} {}", set.family, set.table, set.name);
                let id = self.new_set(name, field, elements);
                self.add(Pred::InSet { field, set: id }, l.inverted())
            }
            Err(s) => s,
        }
    }

    fn verdict(&mut self, v: &Verdict) -> Step {
        let chain = |name: &str| (self.cx.chain_index)(name);
        Step::Verdict(match v {
            Verdict::Accept => Action::Accept,
            Verdict::Drop => Action::Drop,
            Verdict::Return => Action::Return,
            Verdict::Continue | Verdict::Break => Action::Continue,
            Verdict::Jump { chain: c } => match chain(c) {
                Some(i) => Action::Jump(i),
                None => return unsupported(format!("jump to unknown chain {c}")),
            },
            Verdict::Goto { chain: c } => match chain(c) {
                Some(i) => Action::Goto(i),
                None => return unsupported(format!("goto unknown chain {c}")),
            },
            Verdict::Queue { .. } => return stateful("queue"),
            other => return unsupported(format!("verdict {other:?}")),
        })
    }

    /// `(ct state & mask) op data`. A connection has exactly one state
    /// bit, so this is a test of that bit against a set, or a constant.
    fn ct_state(&mut self, mask: u32, op: CmpOp, data: &[u8]) -> Step {
        let Ok(d) = <[u8; 4]>::try_from(data) else {
            return unsupported("ct state width");
        };
        let data = u32::from_ne_bytes(d);
        let negate = match op {
            CmpOp::Eq => false,
            CmpOp::Neq => true,
            _ => return unsupported("ordered cmp on ct state"),
        };
        // Every state bit the kernel defines fits in a byte.
        let m = mask & 0xff;
        let constant = |eq: bool| {
            if eq != negate {
                Step::Next
            } else {
                Step::Never
            }
        };
        if data & !m != 0 || data.count_ones() > 1 {
            // `state & mask` is one bit or none: never this value.
            return constant(false);
        }
        if data == 0 {
            if m == 0 {
                return constant(true);
            }
            // `state & mask == 0`: the state is not one of `mask`.
            return self.add(Pred::CtState(m as u8), !negate);
        }
        self.add(Pred::CtState(data as u8), negate)
    }

    fn xt_match(&mut self, name: &str, m: Option<&XtMatchInfo>) -> Step {
        let Some(m) = m else {
            return unsupported(format!("xt match {name}"));
        };
        match m {
            XtMatchInfo::Comment { .. } => Step::Next,
            // `-m conntrack --ctstate` alone and `-m state`: their state
            // bits are nft's for invalid, established, related and new;
            // untracked, SNAT and DNAT never hold for a mirrored flow, so
            // they are left out.
            XtMatchInfo::Conntrack(c) => match c.plain_state() {
                Some(mask) => self.add(Pred::CtState((mask & 0x0f) as u8), false),
                None => Step::Punt(PuntWhy::Conntrack),
            },
            XtMatchInfo::State { state_mask } => {
                self.add(Pred::CtState((state_mask & 0x0f) as u8), false)
            }
            XtMatchInfo::Tcp(t) => {
                if self.l4proto() != Some(6) {
                    return unsupported("xt tcp without -p tcp");
                }
                if t.option != 0 {
                    return unsupported("xt tcp option");
                }
                if let s @ (Step::Punt(_) | Step::Never) =
                    self.xt_ports(t.ports.sport, t.ports.dport, t.invflags)
                {
                    return s;
                }
                if t.flags_mask != 0 {
                    return self.add(
                        Pred::TcpFlags {
                            mask: t.flags_mask,
                            cmp: t.flags_cmp & t.flags_mask,
                        },
                        t.invflags & 0x04 != 0,
                    );
                }
                Step::Next
            }
            XtMatchInfo::Udp(u) => {
                if self.l4proto() != Some(17) {
                    return unsupported("xt udp without -p udp");
                }
                self.xt_ports(u.ports.sport, u.ports.dport, u.invflags)
            }
            XtMatchInfo::Multiport(mp) => {
                if !matches!(self.l4proto(), Some(6 | 17)) {
                    return unsupported("multiport without -p tcp/udp");
                }
                let field = match mp.direction {
                    0 => Field::Sport,
                    1 => Field::Dport,
                    _ => return unsupported("multiport --ports (either direction)"),
                };
                let mut elements = Vec::new();
                for &(lo, hi) in &mp.ports {
                    for (v, bits) in range_prefixes(u128::from(lo), u128::from(hi.max(lo)), 16) {
                        elements.push(((v as u16).to_be_bytes().to_vec(), bits));
                    }
                }
                let set = self.new_set(format!("rule {} multiport", self.handle), field, elements);
                self.add(Pred::InSet { field, set }, mp.invert)
            }
            XtMatchInfo::Icmp {
                kind,
                code_min,
                code_max,
                invert,
            } => {
                if self.l4proto() != Some(self.cx.l3.icmp()) {
                    return unsupported("xt icmp without -p icmp");
                }
                if *kind == 0xff {
                    // Any type: matches every ICMP packet (unless inverted).
                    return if *invert { Step::Never } else { Step::Next };
                }
                if *invert {
                    // !(type && code) is a disjunction.
                    return unsupported("inverted xt icmp");
                }
                if let s @ (Step::Punt(_) | Step::Never) =
                    self.add(Pred::IcmpType(*kind, *kind), false)
                {
                    return s;
                }
                if (*code_min, *code_max) != (0, 0xff) {
                    return self.add(Pred::IcmpCode(*code_min, *code_max), false);
                }
                Step::Next
            }
            XtMatchInfo::Mark { .. } => unsupported("xt mark"),
            XtMatchInfo::IpRange(_) => unsupported("xt iprange"),
            XtMatchInfo::AddrType { .. } => unsupported("xt addrtype"),
        }
    }

    fn xt_ports(&mut self, sport: (u16, u16), dport: (u16, u16), inv: u8) -> Step {
        if (sport != (0, u16::MAX) || inv & 0x01 != 0)
            && let s @ (Step::Punt(_) | Step::Never) =
                self.add(Pred::Sport(sport.0, sport.1), inv & 0x01 != 0)
        {
            return s;
        }
        if dport != (0, u16::MAX) || inv & 0x02 != 0 {
            return self.add(Pred::Dport(dport.0, dport.1), inv & 0x02 != 0);
        }
        Step::Next
    }
}

/// A source or destination prefix predicate, as `part` says.
fn addr_pred(part: Part, p: Prefix) -> Pred {
    if matches!(part, Part::Saddr(_)) {
        Pred::Saddr(p)
    } else {
        Pred::Daddr(p)
    }
}

fn be16(d: &[u8]) -> Option<u16> {
    <[u8; 2]>::try_from(d).ok().map(u16::from_be_bytes)
}

/// The prefix length of a mask of contiguous leading ones, `None` if it is
/// not one.
pub fn prefix_len(mask: &[u8]) -> Option<u32> {
    let mut len = 0u32;
    let mut ended = false;
    for &b in mask {
        if ended && b != 0 {
            return None;
        }
        if b == 0xff {
            len += 8;
        } else {
            if b.leading_ones() + b.trailing_zeros() != 8 {
                return None;
            }
            len += b.leading_ones();
            ended = true;
        }
    }
    Some(len)
}

/// Decomposes the inclusive range `[lo, hi]` of `bits`-bit values into
/// prefixes `(value, prefix bits)`.
pub fn range_prefixes(lo: u128, hi: u128, bits: u32) -> Vec<(u128, u32)> {
    // A block of 2^size values starting at `at`, as (first, last).
    let block_last = |at: u128, size: u32| -> Option<u128> {
        if size >= 128 {
            (at == 0).then_some(u128::MAX)
        } else {
            at.checked_add((1u128 << size) - 1)
        }
    };
    let mut out = Vec::new();
    let mut lo = lo;
    while lo <= hi {
        // The largest aligned block starting at lo that stays within hi.
        let mut size = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        while size > 0 && block_last(lo, size).is_none_or(|l| l > hi) {
            size -= 1;
        }
        out.push((lo, bits - size));
        match block_last(lo, size).and_then(|l| l.checked_add(1)) {
            Some(next) => lo = next,
            None => break,
        }
    }
    out
}

fn to_uint(b: &[u8]) -> u128 {
    b.iter().fold(0u128, |a, x| (a << 8) | u128::from(*x))
}

fn from_uint(v: u128, len: usize) -> Vec<u8> {
    let all = v.to_be_bytes();
    all[16 - len..].to_vec()
}

/// The elements of a set keyed on `field`, as prefixes; a punt when the
/// set cannot be mirrored (dynamic, timeouts, maps, concatenations,
/// undecoded elements, too many prefixes).
fn set_elements(set: &Set, field: Field, l3: L3) -> Result<Vec<(Vec<u8>, u32)>, Step> {
    if set.is_dynamic() {
        return Err(stateful(format!("dynamic set {}", set.name)));
    }
    if set.is_map() || set.flags & linuxfp::inspector::nftables::SET_CONCAT != 0 {
        return Err(unsupported(format!(
            "set {} is a map or concatenation",
            set.name
        )));
    }
    if set.elements_error.is_some() {
        return Err(unsupported(format!("set {} elements undecoded", set.name)));
    }
    let bits = field.bits(l3);
    let len = (bits / 8) as usize;
    if set.key_len as usize != len && !(field == Field::Iif || field == Field::Oif) {
        return Err(unsupported(format!("set {} key length", set.name)));
    }
    if matches!(field, Field::Iif | Field::Oif) && set.key_len != 4 {
        return Err(unsupported(format!("set {} of interface names", set.name)));
    }
    let mut out = Vec::new();
    if set.is_interval() {
        // Interval sets hold range starts and (exclusive) ends flagged
        // INTERVAL_END; walk them in key order, ends first on ties.
        let mut bounds: Vec<(u128, bool)> = Vec::new();
        for e in &set.elements {
            if e.key.len() != len || e.key_end.is_some() {
                return Err(unsupported(format!("set {} element shape", set.name)));
            }
            bounds.push((to_uint(&e.key), !e.is_interval_end()));
        }
        bounds.sort();
        let max = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let mut open: Option<u128> = None;
        for (k, start) in bounds {
            match (start, open) {
                (true, None) => open = Some(k),
                (true, Some(_)) => {}
                (false, Some(s)) => {
                    if k > s {
                        out.extend(range_prefixes(s, k - 1, bits));
                    }
                    open = None;
                }
                (false, None) => {}
            }
            if out.len() > MAX_SET_ELEMENTS {
                return Err(unsupported(format!("set {} too large", set.name)));
            }
        }
        if let Some(s) = open {
            out.extend(range_prefixes(s, max, bits));
        }
        Ok(out
            .into_iter()
            .map(|(v, p)| (from_uint(v, len), p))
            .collect())
    } else {
        let mut exact = Vec::new();
        for e in &set.elements {
            if e.key.len() != len {
                return Err(unsupported(format!("set {} element shape", set.name)));
            }
            exact.push((e.key.clone(), bits));
        }
        if exact.len() > MAX_SET_ELEMENTS {
            return Err(unsupported(format!("set {} too large", set.name)));
        }
        Ok(exact)
    }
}
