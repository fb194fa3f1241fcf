// SPDX-License-Identifier: MIT OR Apache-2.0
//! Rules (`NFT_MSG_NEWRULE`): where they sit and their expressions. A rule
//! whose expressions cannot be decoded is kept as [`RuleExprs::Unparsed`]
//! with a [`RuleError`] saying which rule and why, so a classifier punts
//! it instead of losing it.

use serde::{Deserialize, Serialize};

use super::{
    Family,
    attr::{Attrs, DecodeError},
    expr::{Expr, decode_expressions},
};

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_POSITION: u16 = 6;
const NFTA_RULE_USERDATA: u16 = 7;

/// A rule's expressions could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("rule {family} {table} {chain} handle {handle}: {source}")]
pub struct RuleError {
    /// Family of its table.
    pub family: Family,
    /// Table.
    pub table: String,
    /// Chain.
    pub chain: String,
    /// Rule handle.
    pub handle: u64,
    /// What was wrong.
    #[source]
    pub source: DecodeError,
}

/// A rule's expressions, or why they are not available.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleExprs {
    /// Decoded, in evaluation order.
    Parsed(Vec<Expr>),
    /// Malformed: the rule exists but what it does is unknown.
    Unparsed(RuleError),
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Family of its table.
    pub family: Family,
    /// Table.
    pub table: String,
    /// Chain.
    pub chain: String,
    /// Handle (unique within the table).
    pub handle: u64,
    /// `NFTA_RULE_POSITION` if the kernel sent one (events only).
    pub position: Option<u64>,
    /// Expressions.
    pub exprs: RuleExprs,
    /// Raw `NFTA_RULE_USERDATA` (nft comments, iptables-nft compat data).
    pub userdata: Option<Vec<u8>>,
}

impl Rule {
    /// The decoded expressions, or `None` if the rule is unparsed.
    pub fn expressions(&self) -> Option<&[Expr]> {
        match &self.exprs {
            RuleExprs::Parsed(v) => Some(v),
            RuleExprs::Unparsed(_) => None,
        }
    }
}

/// Decodes a `NEWRULE` payload. Errors only when the rule cannot be placed
/// (no table, chain or handle); bad expressions give a rule with
/// [`RuleExprs::Unparsed`], logged.
pub fn decode_rule(family: Family, payload: &[u8]) -> Result<Rule, DecodeError> {
    let a = Attrs::parse(payload, "rule")?;
    let table = a.req_string(NFTA_RULE_TABLE, "RULE_TABLE")?;
    let chain = a.req_string(NFTA_RULE_CHAIN, "RULE_CHAIN")?;
    let handle = a
        .be64(NFTA_RULE_HANDLE, "RULE_HANDLE")?
        .ok_or_else(|| DecodeError::missing("rule", "RULE_HANDLE"))?;
    let position = a.be64(NFTA_RULE_POSITION, "RULE_POSITION")?;
    let exprs = match decode_expressions(a.get(NFTA_RULE_EXPRESSIONS).unwrap_or(&[])) {
        Ok(v) => RuleExprs::Parsed(v),
        Err(source) => {
            let e = RuleError {
                family,
                table: table.clone(),
                chain: chain.clone(),
                handle,
                source,
            };
            tracing::warn!(error = %e, "nf_tables rule kept unparsed");
            RuleExprs::Unparsed(e)
        }
    };
    Ok(Rule {
        family,
        table,
        chain,
        handle,
        position,
        exprs,
        userdata: a.get(NFTA_RULE_USERDATA).map(<[u8]>::to_vec),
    })
}
