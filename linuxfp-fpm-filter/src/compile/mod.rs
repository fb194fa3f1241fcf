// SPDX-License-Identifier: MIT OR Apache-2.0
//! The rule compiler: an nf_tables [`Ruleset`] → what the fast path does
//! with routed IPv4 and IPv6 packets. Pure; no kernel access.
//!
//! # The routed path
//!
//! A forwarded packet traverses the base chains of the `prerouting`,
//! `forward` and `postrouting` hooks of its family (`ip` + `inet` for
//! IPv4, `ip6` + `inet` for IPv6), hook by hook and by priority within a
//! hook. `accept` ends one base chain and the next one runs; `drop` is
//! final; the packet is forwarded if every base chain accepts it. The
//! compiler lays these chains out in that order ([`Program`]).
//!
//! The whole path of a family punts ([`PathPlan::Punt`]) when the fast path
//! cannot be equivalent to netfilter whatever the rules say:
//! - a base chain of type `route` (or any type but `filter` and `nat`) on
//!   the path: rerouting needs the kernel;
//! - two base chains of one hook with the same priority: their order is
//!   the kernel's registration order, which the dump does not show;
//! - `netdev` (or `inet ingress`) chains: they run after the TC hook, a
//!   forwarded packet would bypass them;
//! - iptables-legacy tables (invisible to nfnetlink);
//! - undecodable objects in the dump (the ruleset is incomplete).
//!
//! # The rules
//!
//! Each rule is translated expression by expression ([`rule`]): what is
//! understood becomes a predicate; at the first expression that is not, or
//! that has side effects or hidden state, the rule becomes a
//! [`Action::Punt`] on the predicates so far. That match is a superset of
//! the rule's real match, so the fast path never accepts what netfilter
//! drops nor drops what it accepts: a packet that might reach the unknown
//! part goes to the kernel, every other packet is classified exactly.
//! Rules that can never match on the path (wrong family, interface that
//! does not exist) are left out. Regular chains are compiled once, when
//! reachable from a base chain of the path.
//!
//! # Conntrack
//!
//! `ct state` and `ct direction` (and iptables' `-m conntrack --ctstate`,
//! `-m state`) become predicates ([`Pred::CtState`], [`Pred::CtDirection`])
//! over the packet's conntrack class, which the fast path knows only for
//! flows in its conntrack mirror: those are ESTABLISHED, in a known
//! direction (see the crate docs for which flows are mirrored). A rule
//! with such a predicate punts any other packet its remaining predicates
//! match. Every other `ct` key punts ([`PuntWhy::Conntrack`]).
//!
//! A `nat` base chain is traversed by the first packet of a connection
//! only: packets of an established connection skip it. So it compiles to
//! one rule, "not ESTABLISHED: punt (nat)", and an accept policy: packets
//! of mirrored (non-NAT) flows pass it, all others go to the kernel,
//! which sets up NAT. Its rules are not compiled.
//!
//! When anything in a family's ruleset makes the kernel track connections
//! ([`tracks_connections`]: a `ct` expression, NAT, an iptables conntrack
//! match or target, anything not understood), conntrack sees every packet
//! of that family, in every chain, and its entries decide later verdicts:
//! a reply is ESTABLISHED only if the kernel saw the packets before it. A
//! packet the fast path forwarded without the kernel would leave no entry,
//! and the kernel would then judge the reply NEW (and, say, drop it where
//! Linux alone accepts it). So on such a path the first base chain starts
//! with the same gate, "not ESTABLISHED: punt (conntrack)": only packets
//! of flows already in the conntrack mirror are decided in the fast path,
//! and every new flow goes through the kernel until its entry is
//! established.

pub mod eval;
mod ir;
pub mod rule;

#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Weak},
};

use linuxfp::{
    inspector::nftables::{Chain, Family, Hook, Policy, Rule, Ruleset, Verdict},
    state::KernelState,
};
use serde::{Deserialize, Serialize};

use self::rule::{RuleCtx, compile_rule};
pub use self::{
    ir::{
        Action, Field, IrBase, IrChain, IrRule, IrSet, L3, Match, PathPlan, Pred, Prefix, Program,
        PuntWhy,
    },
    rule::{MAX_SET_ELEMENTS, prefix_len, range_prefixes},
};

/// Interface names and ifindexes, to resolve `iifname`/`oifname`, and
/// which interfaces a routed packet can enter or leave by as netfilter
/// sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interfaces {
    by_name: BTreeMap<String, u32>,
    /// Interfaces enslaved to a master (bridge ports, bond or VRF members):
    /// the IP hooks see their packets with another device, or twice.
    enslaved: BTreeSet<u32>,
}

impl Interfaces {
    /// From `(name, ifindex)` pairs, none enslaved.
    pub fn new(it: impl IntoIterator<Item = (String, u32)>) -> Self {
        Interfaces {
            by_name: it.into_iter().collect(),
            enslaved: BTreeSet::new(),
        }
    }

    /// The interfaces of a kernel state.
    pub fn of_state(state: &KernelState) -> Self {
        let mut i = Self::new(state.links.values().map(|l| (l.name.clone(), l.ifindex)));
        i.enslaved = state
            .links
            .values()
            .filter(|l| l.master.is_some())
            .map(|l| l.ifindex)
            .collect();
        i
    }

    /// Marks `ifindex` as enslaved to a master.
    pub fn enslave(&mut self, ifindex: u32) {
        self.enslaved.insert(ifindex);
    }

    /// The ifindexes the fast path may classify routed packets on: every
    /// known interface that has no master. A packet from or to any other
    /// punts.
    pub fn routable(&self) -> BTreeSet<u32> {
        self.by_name
            .values()
            .copied()
            .filter(|i| !self.enslaved.contains(i))
            .collect()
    }

    /// The ifindexes whose name matches the bytes of an `iifname` compare:
    /// up to a NUL the name exactly, without one a prefix (`eth*`,
    /// iptables' `eth+`).
    pub fn matching(&self, data: &[u8]) -> Vec<u32> {
        let (want, exact) = match data.iter().position(|b| *b == 0) {
            Some(n) => (&data[..n], true),
            None => (data, false),
        };
        let mut v: Vec<u32> = self
            .by_name
            .iter()
            .filter(|(name, _)| {
                let n = name.as_bytes();
                if exact {
                    n == want
                } else {
                    n.starts_with(want)
                }
            })
            .map(|(_, i)| *i)
            .collect();
        v.sort_unstable();
        v
    }
}

/// The routed path of both families, compiled.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compiled {
    /// IPv4.
    pub v4: PathPlan,
    /// IPv6.
    pub v6: PathPlan,
    /// The interfaces known when compiling, less the enslaved ones
    /// ([`Interfaces::routable`]): packets from or to others punt (their
    /// names may match rules the compiler resolved without them, or
    /// netfilter sees them with another device).
    pub known_ifaces: BTreeSet<u32>,
}

impl Compiled {
    /// The path of one family.
    pub fn path(&self, l3: L3) -> &PathPlan {
        match l3 {
            L3::V4 => &self.v4,
            L3::V6 => &self.v6,
        }
    }
}

/// Everything punts: no ruleset to compile (a host without kernel state).
pub fn punt_all(reason: &str) -> Compiled {
    Compiled {
        v4: PathPlan::Punt {
            reason: reason.into(),
        },
        v6: PathPlan::Punt {
            reason: reason.into(),
        },
        known_ifaces: BTreeSet::new(),
    }
}

/// Compiles the routed path of both families from a kernel state.
pub fn compile_state(state: &KernelState) -> Compiled {
    CompileInput::of_state(state).compile()
}

/// What [`compile_state`] reads of a kernel state. Two inputs that are
/// [`CompileInput::same`] compile alike, so a caller may keep what it made
/// of one: the state changes far more often than its ruleset (every
/// neighbour, route or FDB event is a new state), and compiling 10k rules
/// takes milliseconds.
#[derive(Clone, Debug)]
pub struct CompileInput {
    /// Compared by identity: the inspector shares one ruleset between
    /// states until it reads a new one.
    ruleset: Arc<Ruleset>,
    ifaces: Interfaces,
    legacy_tables: Vec<String>,
}

impl CompileInput {
    /// The input of `state`.
    pub fn of_state(state: &KernelState) -> Self {
        CompileInput {
            ruleset: state.nft.clone(),
            ifaces: Interfaces::of_state(state),
            legacy_tables: state.legacy_tables.clone(),
        }
    }

    /// Whether `other` compiles as this does (the same ruleset object,
    /// interfaces and legacy tables).
    pub fn same(&self, other: &CompiledFrom) -> bool {
        std::ptr::eq(Arc::as_ptr(&self.ruleset), other.ruleset.as_ptr())
            && self.ifaces == other.ifaces
            && self.legacy_tables == other.legacy_tables
    }

    /// What [`CompileInput::same`] compares later inputs with. It does not
    /// keep the ruleset: the inspector frees a replaced ruleset off the
    /// path of the change that replaced it, which for 10k rules saves
    /// milliseconds. A `Weak` keeps the allocation, so no other ruleset
    /// can come to have its address, and no one can change this one in
    /// place while it is held (`Arc::get_mut` refuses, `Arc::make_mut`
    /// moves the ruleset to a new address): the same address is the same
    /// rules.
    pub fn remember(self) -> CompiledFrom {
        CompiledFrom {
            ruleset: Arc::downgrade(&self.ruleset),
            ifaces: self.ifaces,
            legacy_tables: self.legacy_tables,
        }
    }

    /// Compiles it.
    pub fn compile(&self) -> Compiled {
        let mut c = compile(&self.ruleset, &self.ifaces);
        if !self.legacy_tables.is_empty() {
            let reason = format!(
                "iptables-legacy tables loaded: {}",
                self.legacy_tables.join(", ")
            );
            c.v4 = PathPlan::Punt {
                reason: reason.clone(),
            };
            c.v6 = PathPlan::Punt { reason };
        }
        c
    }
}

/// A [`CompileInput`] as remembered after the compile.
#[derive(Debug)]
pub struct CompiledFrom {
    ruleset: Weak<Ruleset>,
    ifaces: Interfaces,
    legacy_tables: Vec<String>,
}

/// Compiles the routed path of both families.
pub fn compile(ruleset: &Ruleset, ifaces: &Interfaces) -> Compiled {
    let rules = ChainRules::new(ruleset);
    Compiled {
        v4: compile_path_with(ruleset, &rules, ifaces, L3::V4),
        v6: compile_path_with(ruleset, &rules, ifaces, L3::V6),
        known_ifaces: ifaces.routable(),
    }
}

/// The rules of every chain, in evaluation order, sorted out in one pass
/// over the ruleset (`Ruleset::rules_of` walks all of its rules for each
/// chain: with 10k rules and a few dozen chains, most of a compile).
struct ChainRules<'a>(HashMap<(Family, &'a str, &'a str), Vec<&'a Rule>>);

impl<'a> ChainRules<'a> {
    fn new(ruleset: &'a Ruleset) -> Self {
        let mut by_chain: HashMap<_, Vec<&Rule>> = HashMap::new();
        // A dump lists a chain's rules together: one hash per run of them.
        let mut run: Vec<&Rule> = Vec::new();
        let same =
            |a: &Rule, b: &Rule| a.family == b.family && a.chain == b.chain && a.table == b.table;
        for r in &ruleset.rules {
            if run.last().is_some_and(|l| !same(l, r)) {
                Self::add(&mut by_chain, std::mem::take(&mut run));
            }
            run.push(r);
        }
        Self::add(&mut by_chain, run);
        ChainRules(by_chain)
    }

    fn add(by_chain: &mut HashMap<(Family, &'a str, &'a str), Vec<&'a Rule>>, run: Vec<&'a Rule>) {
        if let Some(first) = run.first() {
            by_chain
                .entry((first.family, first.table.as_str(), first.chain.as_str()))
                .or_default()
                .extend(run);
        }
    }

    fn of<'s>(&'s self, c: &'s Chain) -> &'s [&'s Rule] {
        self.0
            .get(&(c.family, c.table.as_str(), c.name.as_str()))
            .map_or(&[], Vec::as_slice)
    }
}

fn hook_rank(h: Hook) -> Option<u8> {
    match h {
        Hook::Prerouting => Some(0),
        Hook::Forward => Some(1),
        Hook::Postrouting => Some(2),
        _ => None,
    }
}

fn family_on_path(f: Family, l3: L3) -> bool {
    matches!(
        (f, l3),
        (Family::Inet, _) | (Family::Ip, L3::V4) | (Family::Ip6, L3::V6)
    )
}

fn chain_name(c: &Chain) -> String {
    format!("{} {} {}", c.family, c.table, c.name)
}

fn is_nat(c: &Chain) -> bool {
    c.base.as_ref().is_some_and(|h| h.chain_type == "nat")
}

/// A `nat` base chain as the fast path sees it: established packets pass
/// (the kernel does not traverse nat chains for them), the rest punt.
fn nat_chain(c: &Chain) -> IrChain {
    IrChain {
        name: chain_name(c),
        base: c.base.as_ref().map(|h| IrBase {
            hook: h.hook.name(),
            priority: h.priority,
            accept: true,
        }),
        rules: vec![established_gate(PuntWhy::Nat)],
    }
}

/// True if anything in the ruleset of `l3`'s families makes the kernel
/// track connections of that family (`nf_ct_netns_get`): a `ct`
/// expression, NAT (a nat chain, nat/masquerade/redirect), an iptables
/// match or target that uses conntrack, or anything the decoder did not
/// understand (assumed to). Chains off the forwarding path count too:
/// conntrack then sees every packet of the family.
pub fn tracks_connections(ruleset: &Ruleset, l3: L3) -> bool {
    use linuxfp::inspector::nftables::Expr;
    const XT_MATCHES: [&str; 7] = [
        "conntrack",
        "state",
        "connmark",
        "connbytes",
        "connlimit",
        "helper",
        "cluster",
    ];
    const XT_TARGETS: [&str; 8] = [
        "MASQUERADE",
        "SNAT",
        "DNAT",
        "REDIRECT",
        "NETMAP",
        "CT",
        "CONNMARK",
        "NOTRACK",
    ];
    let on_path = |f: Family| family_on_path(f, l3);
    if ruleset
        .chains
        .iter()
        .any(|c| on_path(c.family) && is_nat(c))
    {
        return true;
    }
    ruleset
        .rules
        .iter()
        .filter(|r| on_path(r.family))
        .any(|r| match r.expressions() {
            None => true,
            Some(exprs) => exprs.iter().any(|e| match e {
                Expr::Ct(_)
                | Expr::Nat(_)
                | Expr::Masq(_)
                | Expr::Redir(_)
                | Expr::Notrack
                | Expr::Unknown { .. } => true,
                Expr::Match(m) => XT_MATCHES.contains(&m.name.as_str()),
                Expr::Target(t) => XT_TARGETS.contains(&t.name.as_str()),
                _ => false,
            }),
        })
}

/// The rule that sends every packet not of a mirrored (ESTABLISHED) flow
/// to the kernel, for `why`.
fn established_gate(why: PuntWhy) -> IrRule {
    IrRule {
        handle: 0,
        matches: vec![Match {
            pred: Pred::CtState(linuxfp_ebpf_common::filter::CT_STATE_ESTABLISHED),
            negate: true,
        }],
        action: Action::Punt(why),
    }
}

impl Program {
    /// The path starts with the conntrack gate: a packet not of a flow
    /// established in the mirror punts before any other rule.
    pub fn gated(&self) -> bool {
        self.chains.first().and_then(|c| c.rules.first())
            == Some(&established_gate(PuntWhy::Conntrack))
    }
}

/// Compiles the routed path of one family.
pub fn compile_path(ruleset: &Ruleset, ifaces: &Interfaces, l3: L3) -> PathPlan {
    compile_path_with(ruleset, &ChainRules::new(ruleset), ifaces, l3)
}

fn compile_path_with(
    ruleset: &Ruleset,
    chain_rules: &ChainRules<'_>,
    ifaces: &Interfaces,
    l3: L3,
) -> PathPlan {
    let punt = |reason: String| PathPlan::Punt { reason };
    if !ruleset.errors.is_empty() {
        return punt(format!(
            "{} nf_tables objects not decoded",
            ruleset.errors.len()
        ));
    }
    let live = |c: &&Chain| {
        ruleset
            .table(c.family, &c.table)
            .is_none_or(|t| !t.is_dormant())
    };
    // Base chains on the path, and the ones that make it opaque.
    let mut base: Vec<&Chain> = Vec::new();
    for c in ruleset.chains.iter().filter(live) {
        let Some(h) = &c.base else { continue };
        if c.family == Family::Netdev || (c.family == Family::Inet && h.hook == Hook::Ingress) {
            return punt(format!("{} runs after the TC hook", chain_name(c)));
        }
        if !family_on_path(c.family, l3) || hook_rank(h.hook).is_none() {
            continue;
        }
        if h.chain_type != "filter" && h.chain_type != "nat" {
            return punt(format!(
                "{} is a {} chain on the path",
                chain_name(c),
                h.chain_type
            ));
        }
        base.push(c);
    }
    if base.is_empty() {
        return PathPlan::Open;
    }
    let key = |c: &Chain| {
        let h = c.base.as_ref().map(|h| (hook_rank(h.hook), h.priority));
        h.unwrap_or((None, 0))
    };
    base.sort_by_key(|c| key(c));
    for w in base.windows(2) {
        if key(w[0]) == key(w[1]) {
            return punt(format!(
                "{} and {} share hook and priority (order unknown)",
                chain_name(w[0]),
                chain_name(w[1])
            ));
        }
    }

    // Regular chains reachable from the base chains, breadth first; the
    // hooks each may run at (an output interface is unknown at prerouting).
    let mut order: Vec<&Chain> = base.clone();
    let mut prerouting: Vec<bool> = base
        .iter()
        .map(|c| c.base.as_ref().is_some_and(|h| h.hook == Hook::Prerouting))
        .collect();
    let mut i = 0;
    while i < order.len() {
        let c = order[i];
        let pre = prerouting[i];
        // A nat chain's rules are not compiled, nor what they jump to.
        let rules = (!is_nat(c)).then(|| chain_rules.of(c));
        for r in rules.into_iter().flatten() {
            for e in r.expressions().unwrap_or(&[]) {
                let target = match e {
                    linuxfp::inspector::nftables::Expr::Immediate(im) => match &im.data {
                        linuxfp::inspector::nftables::Data::Verdict(
                            Verdict::Jump { chain } | Verdict::Goto { chain },
                        ) => Some(chain),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(t) = target.and_then(|t| ruleset.chain(c.family, &c.table, t)) else {
                    continue;
                };
                if t.base.is_some() {
                    // Jumping to a base chain is refused by the kernel;
                    // the rule punts (unknown chain) if it ever shows up.
                    continue;
                }
                match order.iter().position(|o| std::ptr::eq(*o, t)) {
                    Some(j) => prerouting[j] |= pre,
                    None => {
                        order.push(t);
                        prerouting.push(pre);
                    }
                }
            }
        }
        i += 1;
    }
    // A chain first seen from a forward chain and later from a prerouting
    // one: propagate the flag until stable (chains are few).
    loop {
        let mut changed = false;
        for (ci, c) in order.iter().enumerate() {
            if !prerouting[ci] || is_nat(c) {
                continue;
            }
            for r in chain_rules.of(c) {
                for e in r.expressions().unwrap_or(&[]) {
                    if let linuxfp::inspector::nftables::Expr::Immediate(im) = e
                        && let linuxfp::inspector::nftables::Data::Verdict(
                            Verdict::Jump { chain } | Verdict::Goto { chain },
                        ) = &im.data
                        && let Some(j) = order.iter().position(|o| {
                            o.family == c.family && o.table == c.table && o.name == *chain
                        })
                        && !prerouting[j]
                    {
                        prerouting[j] = true;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }

    let mut sets = Vec::new();
    let mut chains = Vec::new();
    for (ci, c) in order.iter().enumerate() {
        let index = |name: &str| {
            order
                .iter()
                .position(|o| o.family == c.family && o.table == c.table && o.name == name)
        };
        let cx = RuleCtx {
            ruleset,
            ifaces,
            l3,
            prerouting: prerouting[ci],
            chain_index: &index,
        };
        if is_nat(c) {
            chains.push(nat_chain(c));
            continue;
        }
        let rules = chain_rules
            .of(c)
            .iter()
            .filter_map(|r| compile_rule(&cx, r, &mut sets))
            .collect();
        chains.push(IrChain {
            name: chain_name(c),
            base: c.base.as_ref().map(|h| IrBase {
                hook: h.hook.name(),
                priority: h.priority,
                accept: h.policy == Policy::Accept,
            }),
            rules,
        });
    }
    // The kernel's conntrack must see every flow until it is established
    // (see the module docs): the first base chain starts with the gate.
    if tracks_connections(ruleset, l3)
        && let Some(first) = chains.first_mut()
    {
        first.rules.insert(0, established_gate(PuntWhy::Conntrack));
    }
    PathPlan::Rules(Program { l3, chains, sets })
}
