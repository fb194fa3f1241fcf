// SPDX-License-Identifier: MIT OR Apache-2.0
//! The operands of each decoded expression kind.

use serde::{Deserialize, Serialize};

use super::{
    CtKey, MetaKey,
    xt::{XtMatchInfo, XtTargetInfo},
};

/// Direction of a register transfer of `meta`, `payload` and `ct`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegOp {
    /// Load the value into register `dreg`.
    Load {
        /// Destination register.
        dreg: u32,
    },
    /// Set the value from register `sreg` (a side effect).
    Set {
        /// Source register.
        sreg: u32,
    },
}

/// A `meta` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// What it reads or writes.
    pub key: MetaKey,
    /// Load or set.
    pub op: RegOp,
}

/// `NFT_PAYLOAD_*` bases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadBase {
    /// Link-layer header.
    LinkLayer,
    /// Network header.
    Network,
    /// Transport header.
    Transport,
    /// Inner header (tunnels).
    Inner,
    /// Tunnel header.
    Tunnel,
    /// A base this reader does not know.
    Other(u32),
}

/// Checksum update of a payload write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadCsum {
    /// `NFT_PAYLOAD_CSUM_*` type (0 none, 1 inet, 2 sctp).
    pub kind: u32,
    /// Offset of the checksum field.
    pub offset: u32,
    /// `NFT_PAYLOAD_L4CSUM_PSEUDOHDR` and friends.
    pub flags: u32,
}

/// A `payload` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Header the offset is relative to.
    pub base: PayloadBase,
    /// Byte offset.
    pub offset: u32,
    /// Byte length.
    pub len: u32,
    /// Load or set.
    pub op: RegOp,
    /// For a set: the checksum fix-up, if any attribute was given.
    pub csum: Option<PayloadCsum>,
}

/// `NFT_CMP_*` operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Neq,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

/// A `cmp` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cmp {
    /// Register compared.
    pub sreg: u32,
    /// Operator.
    pub op: CmpOp,
    /// Constant (as register bytes).
    pub data: Vec<u8>,
}

/// The operation of a `bitwise` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BitwiseOp {
    /// `dreg = (sreg & mask) ^ xor`.
    MaskXor {
        /// Mask.
        mask: Vec<u8>,
        /// Xor.
        xor: Vec<u8>,
    },
    /// Left shift of each 32-bit word by `shift` bits.
    LeftShift {
        /// Bits.
        shift: u32,
    },
    /// Right shift of each 32-bit word by `shift` bits.
    RightShift {
        /// Bits.
        shift: u32,
    },
    /// `dreg = sreg & sreg2`.
    And {
        /// Second source register.
        sreg2: u32,
    },
    /// `dreg = sreg | sreg2`.
    Or {
        /// Second source register.
        sreg2: u32,
    },
    /// `dreg = sreg ^ sreg2`.
    Xor {
        /// Second source register.
        sreg2: u32,
    },
}

/// A `bitwise` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bitwise {
    /// Source register.
    pub sreg: u32,
    /// Destination register.
    pub dreg: u32,
    /// Bytes operated on.
    pub len: u32,
    /// Operation.
    pub op: BitwiseOp,
}

/// A verdict (`NF_*`, `NFT_*` codes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// `drop`.
    Drop,
    /// `accept`.
    Accept,
    /// `NF_STOLEN`.
    Stolen,
    /// `queue` to userspace.
    Queue {
        /// Queue number (upper 16 bits of the code).
        num: u16,
    },
    /// `NF_REPEAT`.
    Repeat,
    /// `NF_STOP`.
    Stop,
    /// `continue`.
    Continue,
    /// `NFT_BREAK` (end of this rule's evaluation).
    Break,
    /// `jump` to a chain (returns at its end).
    Jump {
        /// Target chain.
        chain: String,
    },
    /// `goto` a chain (no return).
    Goto {
        /// Target chain.
        chain: String,
    },
    /// `return`.
    Return,
}

/// Register or set-element data: bytes or a verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Data {
    /// Plain bytes.
    Value(Vec<u8>),
    /// A verdict.
    Verdict(Verdict),
}

/// An `immediate` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Immediate {
    /// Destination register (0: the verdict register).
    pub dreg: u32,
    /// What is loaded.
    pub data: Data,
}

/// `NFT_LOOKUP_F_INV`.
pub const LOOKUP_F_INV: u32 = 1;

/// A `lookup` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    /// Set name (`__set0`-like for anonymous sets).
    pub set: String,
    /// Set id (only in transactions; dumps carry the name).
    pub set_id: Option<u32>,
    /// Key register.
    pub sreg: u32,
    /// Data register for maps (0 for verdict maps).
    pub dreg: Option<u32>,
    /// `NFT_LOOKUP_F_*`.
    pub flags: u32,
}

impl Lookup {
    /// True for `!= @set` (match when absent).
    pub fn inverted(&self) -> bool {
        self.flags & LOOKUP_F_INV != 0
    }
}

/// A `ct` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ct {
    /// What it reads or writes.
    pub key: CtKey,
    /// Tuple direction for per-direction keys (0 original, 1 reply).
    pub dir: Option<u8>,
    /// Load or set.
    pub op: RegOp,
}

/// A `log` expression.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Log {
    /// Prefix.
    pub prefix: Option<String>,
    /// nflog group.
    pub group: Option<u16>,
    /// nflog snaplen.
    pub snaplen: Option<u32>,
    /// nflog queue threshold.
    pub qthreshold: Option<u16>,
    /// Syslog level.
    pub level: Option<u32>,
    /// `NF_LOG_*` flags.
    pub flags: Option<u32>,
}

/// A `limit` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// Rate per unit.
    pub rate: u64,
    /// Unit in seconds.
    pub unit: u64,
    /// Burst.
    pub burst: u32,
    /// 0 packets, 1 bytes.
    pub kind: u32,
    /// `NFT_LIMIT_F_INV` (1): match over the limit.
    pub flags: u32,
}

/// A `nat` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat {
    /// 0 snat, 1 dnat.
    pub kind: u32,
    /// `NFPROTO_*` of the addresses.
    pub family: Option<u32>,
    /// Register of the lowest address.
    pub reg_addr_min: Option<u32>,
    /// Register of the highest address.
    pub reg_addr_max: Option<u32>,
    /// Register of the lowest port.
    pub reg_proto_min: Option<u32>,
    /// Register of the highest port.
    pub reg_proto_max: Option<u32>,
    /// `NF_NAT_RANGE_*` flags.
    pub flags: Option<u32>,
}

/// A `masq` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Masq {
    /// `NF_NAT_RANGE_*` flags (random, fully-random, persistent).
    pub flags: Option<u32>,
    /// Register of the lowest port.
    pub reg_proto_min: Option<u32>,
    /// Register of the highest port.
    pub reg_proto_max: Option<u32>,
}

/// A `redir` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redir {
    /// Register of the lowest port.
    pub reg_proto_min: Option<u32>,
    /// Register of the highest port.
    pub reg_proto_max: Option<u32>,
    /// `NF_NAT_RANGE_*` flags.
    pub flags: Option<u32>,
}

/// A `reject` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// 0 ICMP unreachable, 1 TCP reset, 2 ICMPX unreachable.
    pub kind: u32,
    /// ICMP code.
    pub icmp_code: Option<u8>,
}

/// A `range` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Register tested.
    pub sreg: u32,
    /// True for `!=` (outside the range).
    pub negated: bool,
    /// Lower bound (inclusive).
    pub from: Vec<u8>,
    /// Upper bound (inclusive).
    pub to: Vec<u8>,
}

/// A `fib` expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fib {
    /// Destination register.
    pub dreg: u32,
    /// `NFT_FIB_RESULT_*`: 1 oif, 2 oifname, 3 address type.
    pub result: u32,
    /// `NFTA_FIB_F_*`: saddr 1, daddr 2, mark 4, iif 8, oif 16, present 32.
    pub flags: u32,
}

/// An iptables-nft `match` (an xtables extension run by the kernel's
/// compat layer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XtMatch {
    /// Extension name (`conntrack`, `multiport`, ...).
    pub name: String,
    /// Revision.
    pub revision: u32,
    /// The raw `xt_*_info` bytes.
    pub info: Vec<u8>,
    /// Their decoding, for the whitelisted extensions.
    pub decoded: Option<XtMatchInfo>,
}

/// An iptables-nft `target`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XtTarget {
    /// Extension name (`LOG`, `REJECT`, `MASQUERADE`, ...).
    pub name: String,
    /// Revision.
    pub revision: u32,
    /// The raw info bytes.
    pub info: Vec<u8>,
    /// Their decoding, for the whitelisted extensions.
    pub decoded: Option<XtTargetInfo>,
}
