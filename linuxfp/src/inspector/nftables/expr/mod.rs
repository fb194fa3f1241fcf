// SPDX-License-Identifier: MIT OR Apache-2.0
//! nf_tables expressions (`NFTA_RULE_EXPRESSIONS`), decoded from the
//! kernel's VM bytecode: loads into registers (`meta`, `payload`, `ct`,
//! `fib`), operations on them (`cmp`, `bitwise`, `range`, `lookup`),
//! verdicts (`immediate`), statements (`counter`, `log`, `limit`, NAT,
//! `reject`, `notrack`) and iptables-nft compat `match`/`target` blobs.
//! Anything else is kept as [`Expr::Unknown`] with its raw attributes.
//!
//! Registers are the kernel's numbers: 0 is the verdict register, 1–4
//! the 16-byte registers, 8–23 the 4-byte ones. Data bytes are kept as the
//! kernel holds them in registers (network order for packet fields, host
//! order for most `meta`/`ct` keys).

mod keys;
mod types;

use serde::{Deserialize, Serialize};

pub use self::{keys::*, types::*};
use super::{
    attr::{Attrs, DecodeError, RawAttr},
    xt,
};

/// One decoded expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "expr", rename_all = "snake_case")]
pub enum Expr {
    /// `meta`: packet metadata into a register, or set from one.
    Meta(Meta),
    /// `payload`: packet bytes into a register, or written from one.
    Payload(Payload),
    /// `cmp`: compares a register with constant data.
    Cmp(Cmp),
    /// `bitwise`: mask/xor or shift of a register.
    Bitwise(Bitwise),
    /// `immediate`: constant data or a verdict into a register.
    Immediate(Immediate),
    /// `lookup`: set membership, or map lookup into a register.
    Lookup(Lookup),
    /// `ct`: conntrack data into a register, or set from one.
    Ct(Ct),
    /// `counter`. Its packet and byte counts change with every packet and
    /// are not configuration, so they are not kept.
    Counter,
    /// `log`.
    Log(Log),
    /// `limit`.
    Limit(Limit),
    /// `nat` (snat/dnat).
    Nat(Nat),
    /// `masq` (masquerade).
    Masq(Masq),
    /// `redir` (redirect).
    Redir(Redir),
    /// `reject`.
    Reject(Reject),
    /// `range`: a register within (or outside) an inclusive range.
    Range(Range),
    /// `fib`: a FIB lookup result into a register.
    Fib(Fib),
    /// `notrack`.
    Notrack,
    /// iptables-nft compat `match`.
    Match(XtMatch),
    /// iptables-nft compat `target`.
    Target(XtTarget),
    /// An expression this reader does not decode, kept whole.
    Unknown {
        /// Its `NFTA_EXPR_NAME`.
        name: String,
        /// The attributes of its `NFTA_EXPR_DATA`.
        attrs: Vec<RawAttr>,
    },
}

// NFTA_DATA_* and NFTA_VERDICT_*.
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// Decodes a nested `NFTA_DATA_*` attribute.
pub(crate) fn decode_data(b: &[u8], what: &str) -> Result<Data, DecodeError> {
    let a = Attrs::parse(b, what)?;
    if let Some(v) = a.get(NFTA_DATA_VALUE) {
        return Ok(Data::Value(v.to_vec()));
    }
    let v = a
        .get(NFTA_DATA_VERDICT)
        .ok_or_else(|| DecodeError::missing(what, "DATA_VALUE or DATA_VERDICT"))?;
    let va = Attrs::parse(v, what)?;
    let code = va.req_be32(NFTA_VERDICT_CODE, "VERDICT_CODE")? as i32;
    let chain = || va.req_string(NFTA_VERDICT_CHAIN, "VERDICT_CHAIN");
    let verdict = match code {
        0 => Verdict::Drop,
        1 => Verdict::Accept,
        2 => Verdict::Stolen,
        4 => Verdict::Repeat,
        5 => Verdict::Stop,
        -1 => Verdict::Continue,
        -2 => Verdict::Break,
        -3 => Verdict::Jump { chain: chain()? },
        -4 => Verdict::Goto { chain: chain()? },
        -5 => Verdict::Return,
        c if c >= 0 && c & 0xff == 3 => Verdict::Queue {
            num: (c as u32 >> 16) as u16,
        },
        c => return Err(DecodeError::value(what, "VERDICT_CODE", c)),
    };
    Ok(Data::Verdict(verdict))
}

/// Plain bytes of a nested `NFTA_DATA_VALUE` attribute.
fn value(a: &Attrs<'_>, kind: u16, name: &str) -> Result<Vec<u8>, DecodeError> {
    match decode_data(a.req(kind, name)?, a.what())? {
        Data::Value(v) => Ok(v),
        Data::Verdict(_) => Err(DecodeError::value(a.what(), name, "a verdict")),
    }
}

fn reg_op(a: &Attrs<'_>, dreg: u16, sreg: u16) -> Result<RegOp, DecodeError> {
    if let Some(dreg) = a.be32(dreg, "DREG")? {
        Ok(RegOp::Load { dreg })
    } else if let Some(sreg) = a.be32(sreg, "SREG")? {
        Ok(RegOp::Set { sreg })
    } else {
        Err(DecodeError::missing(a.what(), "DREG or SREG"))
    }
}

/// How errors name an expression (`expr cmp`): without an allocation for
/// the common ones, decoded tens of thousands of times per ruleset read.
fn what_of(name: &str) -> std::borrow::Cow<'static, str> {
    const KNOWN: [&str; 12] = [
        "expr meta",
        "expr payload",
        "expr cmp",
        "expr bitwise",
        "expr immediate",
        "expr lookup",
        "expr counter",
        "expr ct",
        "expr range",
        "expr nat",
        "expr match",
        "expr target",
    ];
    match KNOWN.iter().find(|k| &k[5..] == name) {
        Some(k) => std::borrow::Cow::Borrowed(k),
        None => std::borrow::Cow::Owned(format!("expr {name}")),
    }
}

/// Decodes one expression from its name and `NFTA_EXPR_DATA` payload.
/// Unknown names give [`Expr::Unknown`]; a known expression with malformed
/// or missing attributes is an error.
pub fn decode_expr(name: &str, data: &[u8]) -> Result<Expr, DecodeError> {
    let what = what_of(name);
    let what = what.as_ref();
    let a = Attrs::parse(data, what)?;
    Ok(match name {
        "meta" => Expr::Meta(Meta {
            key: MetaKey::from_u32(a.req_be32(2, "META_KEY")?),
            op: reg_op(&a, 1, 3)?,
        }),
        "payload" => {
            let op = reg_op(&a, 1, 5)?;
            let csum = match op {
                RegOp::Set { .. } => {
                    let kind = a.be32(6, "PAYLOAD_CSUM_TYPE")?;
                    let offset = a.be32(7, "PAYLOAD_CSUM_OFFSET")?;
                    let flags = a.be32(8, "PAYLOAD_CSUM_FLAGS")?;
                    (kind.is_some() || offset.is_some() || flags.is_some()).then(|| PayloadCsum {
                        kind: kind.unwrap_or(0),
                        offset: offset.unwrap_or(0),
                        flags: flags.unwrap_or(0),
                    })
                }
                RegOp::Load { .. } => None,
            };
            Expr::Payload(Payload {
                base: match a.req_be32(2, "PAYLOAD_BASE")? {
                    0 => PayloadBase::LinkLayer,
                    1 => PayloadBase::Network,
                    2 => PayloadBase::Transport,
                    3 => PayloadBase::Inner,
                    4 => PayloadBase::Tunnel,
                    b => PayloadBase::Other(b),
                },
                offset: a.req_be32(3, "PAYLOAD_OFFSET")?,
                len: a.req_be32(4, "PAYLOAD_LEN")?,
                op,
                csum,
            })
        }
        "cmp" => Expr::Cmp(Cmp {
            sreg: a.req_be32(1, "CMP_SREG")?,
            op: match a.req_be32(2, "CMP_OP")? {
                0 => CmpOp::Eq,
                1 => CmpOp::Neq,
                2 => CmpOp::Lt,
                3 => CmpOp::Lte,
                4 => CmpOp::Gt,
                5 => CmpOp::Gte,
                o => return Err(DecodeError::value(what, "CMP_OP", o)),
            },
            data: value(&a, 3, "CMP_DATA")?,
        }),
        "bitwise" => Expr::Bitwise(decode_bitwise(&a)?),
        "immediate" => {
            let dreg = a.req_be32(1, "IMMEDIATE_DREG")?;
            let data = decode_data(a.req(2, "IMMEDIATE_DATA")?, what)?;
            if dreg == 0 && !matches!(data, Data::Verdict(_)) {
                return Err(DecodeError::value(
                    what,
                    "IMMEDIATE_DATA",
                    "bytes into reg 0",
                ));
            }
            Expr::Immediate(Immediate { dreg, data })
        }
        "lookup" => Expr::Lookup(Lookup {
            set: a.req_string(1, "LOOKUP_SET")?,
            set_id: a.be32(4, "LOOKUP_SET_ID")?,
            sreg: a.req_be32(2, "LOOKUP_SREG")?,
            dreg: a.be32(3, "LOOKUP_DREG")?,
            flags: a.be32(5, "LOOKUP_FLAGS")?.unwrap_or(0),
        }),
        "ct" => Expr::Ct(Ct {
            key: CtKey::from_u32(a.req_be32(2, "CT_KEY")?),
            dir: a.u8(3, "CT_DIRECTION")?,
            op: reg_op(&a, 1, 4)?,
        }),
        "counter" => {
            // Checked for shape only: the values are not kept.
            a.be64(1, "COUNTER_BYTES")?;
            a.be64(2, "COUNTER_PACKETS")?;
            Expr::Counter
        }
        "log" => Expr::Log(Log {
            group: a.be16(1, "LOG_GROUP")?,
            prefix: a.string(2),
            snaplen: a.be32(3, "LOG_SNAPLEN")?,
            qthreshold: a.be16(4, "LOG_QTHRESHOLD")?,
            level: a.be32(5, "LOG_LEVEL")?,
            flags: a.be32(6, "LOG_FLAGS")?,
        }),
        "limit" => Expr::Limit(Limit {
            rate: a.be64(1, "LIMIT_RATE")?.unwrap_or(0),
            unit: a.be64(2, "LIMIT_UNIT")?.unwrap_or(0),
            burst: a.be32(3, "LIMIT_BURST")?.unwrap_or(0),
            kind: a.be32(4, "LIMIT_TYPE")?.unwrap_or(0),
            flags: a.be32(5, "LIMIT_FLAGS")?.unwrap_or(0),
        }),
        "nat" => Expr::Nat(Nat {
            kind: match a.req_be32(1, "NAT_TYPE")? {
                t @ (0 | 1) => t,
                t => return Err(DecodeError::value(what, "NAT_TYPE", t)),
            },
            family: a.be32(2, "NAT_FAMILY")?,
            reg_addr_min: a.be32(3, "NAT_REG_ADDR_MIN")?,
            reg_addr_max: a.be32(4, "NAT_REG_ADDR_MAX")?,
            reg_proto_min: a.be32(5, "NAT_REG_PROTO_MIN")?,
            reg_proto_max: a.be32(6, "NAT_REG_PROTO_MAX")?,
            flags: a.be32(7, "NAT_FLAGS")?,
        }),
        "masq" => Expr::Masq(Masq {
            flags: a.be32(1, "MASQ_FLAGS")?,
            reg_proto_min: a.be32(2, "MASQ_REG_PROTO_MIN")?,
            reg_proto_max: a.be32(3, "MASQ_REG_PROTO_MAX")?,
        }),
        "redir" => Expr::Redir(Redir {
            reg_proto_min: a.be32(1, "REDIR_REG_PROTO_MIN")?,
            reg_proto_max: a.be32(2, "REDIR_REG_PROTO_MAX")?,
            flags: a.be32(3, "REDIR_FLAGS")?,
        }),
        "reject" => Expr::Reject(Reject {
            kind: a.req_be32(1, "REJECT_TYPE")?,
            icmp_code: a.u8(2, "REJECT_ICMP_CODE")?,
        }),
        "range" => Expr::Range(Range {
            sreg: a.req_be32(1, "RANGE_SREG")?,
            negated: match a.req_be32(2, "RANGE_OP")? {
                0 => false,
                1 => true,
                o => return Err(DecodeError::value(what, "RANGE_OP", o)),
            },
            from: value(&a, 3, "RANGE_FROM_DATA")?,
            to: value(&a, 4, "RANGE_TO_DATA")?,
        }),
        "fib" => Expr::Fib(Fib {
            dreg: a.req_be32(1, "FIB_DREG")?,
            result: a.req_be32(2, "FIB_RESULT")?,
            flags: a.req_be32(3, "FIB_FLAGS")?,
        }),
        "notrack" => Expr::Notrack,
        "match" => {
            let name = a.req_string(1, "MATCH_NAME")?;
            let revision = a.req_be32(2, "MATCH_REV")?;
            let info = a.req(3, "MATCH_INFO")?;
            Expr::Match(XtMatch {
                decoded: xt::decode_match(&name, revision, info)?,
                name,
                revision,
                info: info.to_vec(),
            })
        }
        "target" => {
            let name = a.req_string(1, "TARGET_NAME")?;
            let revision = a.req_be32(2, "TARGET_REV")?;
            let info = a.req(3, "TARGET_INFO")?;
            Expr::Target(XtTarget {
                decoded: xt::decode_target(&name, revision, info)?,
                name,
                revision,
                info: info.to_vec(),
            })
        }
        _ => Expr::Unknown {
            name: name.to_string(),
            attrs: a.raw(),
        },
    })
}

fn decode_bitwise(a: &Attrs<'_>) -> Result<Bitwise, DecodeError> {
    let what = a.what();
    let shift = || -> Result<u32, DecodeError> {
        let v = value(a, 7, "BITWISE_DATA")?;
        let b: [u8; 4] = v
            .as_slice()
            .try_into()
            .map_err(|_| DecodeError::length(what, "BITWISE_DATA", v.len(), 4))?;
        // The shift amount is a host-order u32 register value.
        Ok(u32::from_ne_bytes(b))
    };
    let sreg2 = || a.req_be32(8, "BITWISE_SREG2");
    let op = match a.be32(6, "BITWISE_OP")?.unwrap_or(0) {
        0 => BitwiseOp::MaskXor {
            mask: value(a, 4, "BITWISE_MASK")?,
            xor: value(a, 5, "BITWISE_XOR")?,
        },
        1 => BitwiseOp::LeftShift { shift: shift()? },
        2 => BitwiseOp::RightShift { shift: shift()? },
        3 => BitwiseOp::And { sreg2: sreg2()? },
        4 => BitwiseOp::Or { sreg2: sreg2()? },
        5 => BitwiseOp::Xor { sreg2: sreg2()? },
        o => return Err(DecodeError::value(what, "BITWISE_OP", o)),
    };
    Ok(Bitwise {
        sreg: a.req_be32(1, "BITWISE_SREG")?,
        dreg: a.req_be32(2, "BITWISE_DREG")?,
        len: a.req_be32(3, "BITWISE_LEN")?,
        op,
    })
}

/// Decodes an `NFTA_RULE_EXPRESSIONS` list.
pub fn decode_expressions(b: &[u8]) -> Result<Vec<Expr>, DecodeError> {
    const NFTA_LIST_ELEM: u16 = 1;
    const NFTA_EXPR_NAME: u16 = 1;
    const NFTA_EXPR_DATA: u16 = 2;
    let list = Attrs::parse(b, "rule expressions")?;
    let mut out = Vec::new();
    for (kind, elem) in list.iter() {
        if kind != NFTA_LIST_ELEM {
            return Err(DecodeError::value("rule expressions", "LIST_ELEM", kind));
        }
        let e = Attrs::parse(elem, "expression")?;
        let name = e.req_string(NFTA_EXPR_NAME, "EXPR_NAME")?;
        out.push(decode_expr(&name, e.get(NFTA_EXPR_DATA).unwrap_or(&[]))?);
    }
    Ok(out)
}

#[cfg(test)]
mod what_tests {
    use super::*;

    #[test]
    fn errors_name_the_expression_known_or_not() {
        assert_eq!(what_of("cmp"), "expr cmp");
        assert_eq!(what_of("target"), "expr target");
        assert_eq!(what_of("quota"), "expr quota");
        assert_eq!(what_of(""), "expr ");
        // A malformed known expression says which one.
        let e = decode_expr("cmp", &[]).expect_err("no attributes");
        assert!(e.to_string().starts_with("expr cmp:"), "{e}");
    }
}
