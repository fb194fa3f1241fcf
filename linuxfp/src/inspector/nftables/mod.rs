// SPDX-License-Identifier: MIT OR Apache-2.0
//! The nf_tables ruleset of a namespace, read over nfnetlink: tables,
//! chains, rules with their decoded expressions, sets and maps with their
//! elements, all at one ruleset generation. Covers native `nft` rulesets
//! and iptables-nft (whose compat `match`/`target` blobs are decoded for a
//! whitelist of extensions, [`xt`]).
//!
//! What cannot be decoded is never dropped silently: unknown expressions
//! are [`Expr::Unknown`], malformed rules are [`RuleExprs::Unparsed`] with a
//! [`RuleError`], and objects that could not even be placed are counted in
//! [`Ruleset::errors`].
//!
//! The decoding is pure ([`Ruleset::from_messages`] on recorded bytes);
//! [`record`] takes those bytes from a live namespace.

pub(crate) mod attr;
mod chain;
pub mod expr;
pub(crate) mod message;
mod read;
mod rule;
mod set;
pub mod xt;

#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use self::{
    attr::{DecodeError, RawAttr},
    chain::{BaseHook, Chain, Hook, Policy, TABLE_F_DORMANT, Table},
    expr::{
        Bitwise, BitwiseOp, Cmp, CmpOp, Ct, CtKey, Data, Expr, Fib, Immediate, LOOKUP_F_INV, Limit,
        Log, Lookup, Masq, Meta, MetaKey, Nat, Payload, PayloadBase, PayloadCsum, Range, Redir,
        RegOp, Reject, Verdict, XtMatch, XtTarget, decode_expr, decode_expressions,
    },
    message::{Messages, NfMsg, NfMsgRef, messages, parse_messages},
    read::record,
    rule::{Rule, RuleError, RuleExprs, decode_rule},
    set::{
        DATA_VERDICT, ELEM_INTERVAL_END, SET_ANONYMOUS, SET_CONCAT, SET_CONSTANT, SET_EVAL,
        SET_INTERVAL, SET_MAP, SET_OBJECT, SET_TIMEOUT, Set, SetElem, SetElems, decode_set,
        decode_set_elems,
    },
};
pub(crate) use read::{NFNLGRP_NFTABLES, dump, open};

use crate::topology::BaseChain;

/// An nf_tables family (`NFPROTO_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// `inet` (IPv4 and IPv6).
    Inet,
    /// `ip`.
    Ip,
    /// `arp`.
    Arp,
    /// `netdev`.
    Netdev,
    /// `bridge`.
    Bridge,
    /// `ip6`.
    Ip6,
    /// Anything else, by number.
    Other(u8),
}

impl Family {
    /// From the `nfgenmsg` family byte.
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Family::Inet,
            2 => Family::Ip,
            3 => Family::Arp,
            5 => Family::Netdev,
            7 => Family::Bridge,
            10 => Family::Ip6,
            n => Family::Other(n),
        }
    }

    /// The `nfgenmsg` family byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Family::Inet => 1,
            Family::Ip => 2,
            Family::Arp => 3,
            Family::Netdev => 5,
            Family::Bridge => 7,
            Family::Ip6 => 10,
            Family::Other(n) => n,
        }
    }

    /// The name `nft` uses (`unknown` for others).
    pub fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Arp => "arp",
            Family::Netdev => "netdev",
            Family::Bridge => "bridge",
            Family::Ip6 => "ip6",
            Family::Other(_) => "unknown",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The firewall state that concerns the fast paths: the whole nf_tables
/// ruleset at one generation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ruleset {
    /// nf_tables base chains (nft and iptables-nft), in hook and priority
    /// order: the summary the topology uses ([`Ruleset::summarize`] fills
    /// it from `chains` and `rules`).
    pub base_chains: Vec<BaseChain>,
    /// The ruleset generation id it was read at.
    pub generation: u32,
    /// Tables, in dump order.
    pub tables: Vec<Table>,
    /// Chains (base and regular), in dump order.
    pub chains: Vec<Chain>,
    /// Rules, in dump order: per chain, in evaluation order.
    pub rules: Vec<Rule>,
    /// Sets and maps (named and anonymous) with their elements.
    pub sets: Vec<Set>,
    /// Messages that could not be decoded into any object (e.g. a rule
    /// without a handle). Non-empty means the ruleset is incomplete.
    pub errors: Vec<DecodeError>,
}

/// [`Ruleset::from_messages`] a datagram at a time, so that a reader can
/// decode while the kernel is still dumping.
#[derive(Default)]
pub struct RulesetFold {
    ruleset: Ruleset,
    have_gen: bool,
}

impl RulesetFold {
    /// Folds the messages of `bytes` (whole messages: a datagram, or
    /// several) into the ruleset.
    pub fn feed(&mut self, bytes: &[u8]) {
        for m in messages(bytes) {
            self.message(&m);
        }
    }

    fn message(&mut self, m: &NfMsgRef<'_>) {
        if m.subsys != message::NFNL_SUBSYS_NFTABLES {
            return;
        }
        let r = &mut self.ruleset;
        let family = Family::from_u8(m.family);
        let res = match m.op {
            message::NFT_MSG_NEWGEN if !self.have_gen => message::decode_gen(m.payload).map(|g| {
                r.generation = g;
                self.have_gen = true;
            }),
            message::NFT_MSG_NEWTABLE => {
                chain::decode_table(family, m.payload).map(|t| r.tables.push(t))
            }
            message::NFT_MSG_NEWCHAIN => {
                chain::decode_chain(family, m.payload).map(|c| r.chains.push(c))
            }
            message::NFT_MSG_NEWRULE => decode_rule(family, m.payload).map(|x| r.rules.push(x)),
            message::NFT_MSG_NEWSET => decode_set(family, m.payload).map(|s| r.sets.push(s)),
            message::NFT_MSG_NEWSETELEM => {
                r.add_elements(family, m.payload);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, op = m.op, "nf_tables message not decoded");
            r.errors.push(e);
        }
    }

    /// The ruleset, summarised.
    pub fn finish(mut self) -> Ruleset {
        self.ruleset.summarize();
        self.ruleset
    }
}

impl Ruleset {
    /// The base chains, as the topology summarises them.
    pub fn base_chains(&self) -> Vec<BaseChain> {
        self.base_chains.clone()
    }

    /// Folds the messages of a dump (as [`record`] returns them, or any
    /// concatenation of nfnetlink datagrams): `NEWGEN` sets the generation
    /// (the first one wins), `NEWTABLE`/`NEWCHAIN`/`NEWRULE`/`NEWSET` add
    /// objects, `NEWSETELEM` adds elements to their set. Other messages are
    /// ignored. Never panics.
    pub fn from_messages(bytes: &[u8]) -> Ruleset {
        let mut fold = RulesetFold::default();
        fold.feed(bytes);
        fold.finish()
    }

    fn add_elements(&mut self, family: Family, payload: &[u8]) {
        match decode_set_elems(payload) {
            Ok(el) => match self.set_mut(family, &el.table, &el.set) {
                Some(s) => s.elements.extend(el.elements),
                None => {
                    tracing::warn!(table = %el.table, set = %el.set, "elements of an unknown set");
                    self.errors
                        .push(DecodeError::missing("set elements", "matching NEWSET"));
                }
            },
            Err(e) => {
                // Find the set by the list header if it parses, to flag it.
                let target = attr::Attrs::parse(payload, "set elements")
                    .ok()
                    .and_then(|a| Some((a.string(1)?, a.string(2)?)));
                tracing::warn!(error = %e, "nf_tables set elements not decoded");
                match target.and_then(|(t, s)| self.set_mut(family, &t, &s)) {
                    Some(s) => s.elements_error = Some(e),
                    None => self.errors.push(e),
                }
            }
        }
    }

    fn set_mut(&mut self, family: Family, table: &str, name: &str) -> Option<&mut Set> {
        self.sets
            .iter_mut()
            .find(|s| s.family == family && s.table == table && s.name == name)
    }

    /// Recomputes [`Ruleset::base_chains`] from the chains and rules.
    pub fn summarize(&mut self) {
        let mut base: Vec<BaseChain> = self
            .chains
            .iter()
            .filter_map(|c| {
                let h = c.base.as_ref()?;
                let rules = self
                    .rules
                    .iter()
                    .filter(|r| r.family == c.family && r.table == c.table && r.chain == c.name)
                    .count();
                Some(BaseChain {
                    family: c.family.name().to_string(),
                    table: c.table.clone(),
                    chain: c.name.clone(),
                    hook: h.hook.name(),
                    priority: h.priority,
                    chain_type: h.chain_type.clone(),
                    policy: h.policy.name().to_string(),
                    rules: u32::try_from(rules).unwrap_or(u32::MAX),
                })
            })
            .collect();
        base.sort_by(|x, y| {
            (x.family.as_str(), x.hook.as_str(), x.priority).cmp(&(
                y.family.as_str(),
                y.hook.as_str(),
                y.priority,
            ))
        });
        self.base_chains = base;
    }

    /// The table `family`/`name`.
    pub fn table(&self, family: Family, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.family == family && t.name == name)
    }

    /// The chain `family`/`table`/`name`.
    pub fn chain(&self, family: Family, table: &str, name: &str) -> Option<&Chain> {
        self.chains
            .iter()
            .find(|c| c.family == family && c.table == table && c.name == name)
    }

    /// The rules of a chain, in evaluation order.
    pub fn rules_of<'a>(
        &'a self,
        family: Family,
        table: &'a str,
        chain: &'a str,
    ) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.family == family && r.table == table && r.chain == chain)
    }

    /// The set or map `family`/`table`/`name`.
    pub fn set(&self, family: Family, table: &str, name: &str) -> Option<&Set> {
        self.sets
            .iter()
            .find(|s| s.family == family && s.table == table && s.name == name)
    }

    /// Rules whose expressions could not be decoded.
    pub fn unparsed_rules(&self) -> impl Iterator<Item = &RuleError> {
        self.rules.iter().filter_map(|r| match &r.exprs {
            RuleExprs::Unparsed(e) => Some(e),
            RuleExprs::Parsed(_) => None,
        })
    }
}
