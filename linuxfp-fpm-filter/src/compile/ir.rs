// SPDX-License-Identifier: MIT OR Apache-2.0
//! The compiled form of a routed path: chains of rules, each a conjunction
//! of predicates over packet fields and an action.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The IP family a path is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum L3 {
    /// IPv4: base chains of `ip` and `inet` tables.
    V4,
    /// IPv6: base chains of `ip6` and `inet` tables.
    V6,
}

impl L3 {
    /// Address length in bytes.
    pub fn addr_len(self) -> usize {
        match self {
            L3::V4 => 4,
            L3::V6 => 16,
        }
    }

    /// `NFPROTO_*` (what `meta nfproto` loads).
    pub fn nfproto(self) -> u8 {
        match self {
            L3::V4 => 2,
            L3::V6 => 10,
        }
    }

    /// EtherType (what `meta protocol` loads, network order).
    pub fn ethertype(self) -> [u8; 2] {
        match self {
            L3::V4 => 0x0800u16.to_be_bytes(),
            L3::V6 => 0x86DDu16.to_be_bytes(),
        }
    }

    /// The ICMP protocol number of this family.
    pub fn icmp(self) -> u8 {
        match self {
            L3::V4 => 1,
            L3::V6 => 58,
        }
    }
}

/// A packet field a set lookup can key on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// Input ifindex.
    Iif,
    /// Output ifindex.
    Oif,
    /// Source address.
    Saddr,
    /// Destination address.
    Daddr,
    /// L4 protocol.
    L4Proto,
    /// TCP/UDP source port.
    Sport,
    /// TCP/UDP destination port.
    Dport,
}

impl Field {
    /// Bits of the field's key in a set (ifindexes are 32-bit values).
    pub fn bits(self, l3: L3) -> u32 {
        match self {
            Field::Iif | Field::Oif => 32,
            Field::Saddr | Field::Daddr => 8 * l3.addr_len() as u32,
            Field::L4Proto => 8,
            Field::Sport | Field::Dport => 16,
        }
    }
}

/// An address prefix (network-order bytes, `len` bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Prefix {
    /// Address bytes, already masked.
    pub addr: Vec<u8>,
    /// Prefix length in bits.
    pub len: u32,
}

/// One predicate on the packet.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pred {
    /// Input interface is this ifindex.
    Iif(u32),
    /// Output interface is this ifindex.
    Oif(u32),
    /// Source address under the prefix.
    Saddr(Prefix),
    /// Destination address under the prefix.
    Daddr(Prefix),
    /// L4 protocol.
    L4Proto(u8),
    /// TCP/UDP source port within the inclusive range.
    Sport(u16, u16),
    /// TCP/UDP destination port within the inclusive range.
    Dport(u16, u16),
    /// ICMP type within the inclusive range.
    IcmpType(u8, u8),
    /// ICMP code within the inclusive range.
    IcmpCode(u8, u8),
    /// `tcp flags & mask == cmp`.
    TcpFlags {
        /// Mask.
        mask: u8,
        /// Value.
        cmp: u8,
    },
    /// The field's value is in set `set` (an index into
    /// [`Program::sets`]).
    InSet {
        /// The field.
        field: Field,
        /// The set.
        set: usize,
    },
    /// `ct state & mask != 0` (nft `ct state` bits: invalid 1,
    /// established 2, related 4, new 8, untracked 64). The fast path knows
    /// the state only of flows in its conntrack mirror (always
    /// ESTABLISHED); for other packets the rule punts.
    CtState(u8),
    /// `ct direction` is this (0 original, 1 reply); known as
    /// [`Pred::CtState`].
    CtDirection(u8),
}

impl Pred {
    /// Reads conntrack state.
    pub fn reads_ct(&self) -> bool {
        matches!(self, Pred::CtState(_) | Pred::CtDirection(_))
    }
}

/// A predicate, possibly negated.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Match {
    /// What is tested.
    pub pred: Pred,
    /// `!=`.
    pub negate: bool,
}

/// Why a rule hands its packets to the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "why", content = "what", rename_all = "snake_case")]
pub enum PuntWhy {
    /// An expression the compiler does not understand (named).
    Unsupported(String),
    /// Reads conntrack state the fast path does not compile (`ct mark`,
    /// `ct status`, `ct zone`, negated or mixed `-m conntrack` tests, ...).
    Conntrack,
    /// Side effects or hidden state: log, limit, quota, set updates, mark
    /// writes, queue (named).
    Stateful(String),
    /// `reject`: the kernel must send the ICMP error or RST.
    Reject,
    /// NAT.
    Nat,
}

impl PuntWhy {
    /// The filter's punt counter for this reason.
    pub fn counter(&self) -> u32 {
        use linuxfp_ebpf_common::filter::*;
        match self {
            PuntWhy::Unsupported(_) => PUNT_RULE_UNSUPPORTED,
            PuntWhy::Conntrack => PUNT_RULE_CONNTRACK,
            PuntWhy::Stateful(_) => PUNT_RULE_STATEFUL,
            PuntWhy::Reject => PUNT_RULE_REJECT,
            PuntWhy::Nat => PUNT_RULE_NAT,
        }
    }
}

impl fmt::Display for PuntWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PuntWhy::Unsupported(w) => write!(f, "unsupported: {w}"),
            PuntWhy::Conntrack => f.write_str("conntrack"),
            PuntWhy::Stateful(w) => write!(f, "stateful: {w}"),
            PuntWhy::Reject => f.write_str("reject"),
            PuntWhy::Nat => f.write_str("nat"),
        }
    }
}

/// What a rule does when its predicates hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", content = "arg", rename_all = "snake_case")]
pub enum Action {
    /// Nothing: go on with the next rule.
    Continue,
    /// End this base chain; the next base chain on the path runs.
    Accept,
    /// Drop (final).
    Drop,
    /// Jump to a chain (index into [`Program::chains`]).
    Jump(usize),
    /// Go to a chain (no return).
    Goto(usize),
    /// Return to the caller; in a base chain, its policy.
    Return,
    /// Hand the packet to the kernel.
    Punt(PuntWhy),
}

/// One compiled rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IrRule {
    /// The nf_tables rule handle (0 for rules the compiler made).
    pub handle: u64,
    /// All must hold.
    pub matches: Vec<Match>,
    /// Then this.
    pub action: Action,
}

/// Where a base chain is attached.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IrBase {
    /// `prerouting`, `forward` or `postrouting`.
    pub hook: String,
    /// Priority.
    pub priority: i32,
    /// Policy: true for accept.
    pub accept: bool,
}

/// One compiled chain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IrChain {
    /// `family table chain`, for people.
    pub name: String,
    /// For base chains: where and with which policy.
    pub base: Option<IrBase>,
    /// Rules in order (rules that can never match are left out).
    pub rules: Vec<IrRule>,
}

/// A set of field values, as prefixes (`value`, bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IrSet {
    /// `family table set`, or the rule that made it, for people.
    pub name: String,
    /// The field its elements are values of.
    pub field: Field,
    /// Elements as prefixes of the field's bytes.
    pub elements: Vec<(Vec<u8>, u32)>,
}

/// The compiled path of one family: base chains first, in evaluation
/// order, then the regular chains they reach.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Program {
    /// The family.
    pub l3: L3,
    /// Chains.
    pub chains: Vec<IrChain>,
    /// Sets the rules look up.
    pub sets: Vec<IrSet>,
}

impl Program {
    /// Some rule has a conntrack predicate: packets need their ct class.
    pub fn reads_ct(&self) -> bool {
        self.chains
            .iter()
            .flat_map(|c| &c.rules)
            .flat_map(|r| &r.matches)
            .any(|m| m.pred.reads_ct())
    }

    /// The base chains, in evaluation order.
    pub fn base_chains(&self) -> impl Iterator<Item = &IrChain> {
        self.chains.iter().filter(|c| c.base.is_some())
    }

    /// The chain named `family table chain`.
    pub fn chain(&self, name: &str) -> Option<&IrChain> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// What the fast path does with one family's routed packets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "path", rename_all = "snake_case")]
pub enum PathPlan {
    /// No base chain on the path: nothing to filter.
    Open,
    /// Evaluate this program.
    Rules(Program),
    /// Every packet goes to the kernel, for this reason.
    Punt {
        /// Why.
        reason: String,
    },
}
