// SPDX-License-Identifier: MIT OR Apache-2.0
//! Tables (`NFT_MSG_NEWTABLE`) and chains (`NFT_MSG_NEWCHAIN`).

use serde::{Deserialize, Serialize};

use super::{
    Family,
    attr::{Attrs, DecodeError},
};

/// `NFT_TABLE_F_DORMANT`: the table's chains are not attached.
pub const TABLE_F_DORMANT: u32 = 0x1;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_HANDLE: u16 = 4;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_HANDLE: u16 = 2;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_CHAIN_FLAGS: u16 = 10;

const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_HOOK_DEV: u16 = 3;
const NFTA_HOOK_DEVS: u16 = 4;

/// A table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Family.
    pub family: Family,
    /// Name.
    pub name: String,
    /// `NFT_TABLE_F_*` flags ([`TABLE_F_DORMANT`], owner 2, persist 4).
    pub flags: u32,
    /// Handle.
    pub handle: u64,
}

impl Table {
    /// True if the table is dormant (its base chains see no packets).
    pub fn is_dormant(&self) -> bool {
        self.flags & TABLE_F_DORMANT != 0
    }
}

/// A netfilter hook, named for the chain's family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// `prerouting`.
    Prerouting,
    /// `input`.
    Input,
    /// `forward`.
    Forward,
    /// `output`.
    Output,
    /// `postrouting`.
    Postrouting,
    /// `ingress` (netdev, or inet).
    Ingress,
    /// `egress` (netdev).
    Egress,
    /// Another hook number.
    Other(u32),
}

impl Hook {
    /// From the hook number as the family numbers it.
    pub fn from_num(family: Family, n: u32) -> Self {
        match (family, n) {
            (Family::Netdev, 0) => Hook::Ingress,
            (Family::Netdev, 1) => Hook::Egress,
            (Family::Netdev, n) => Hook::Other(n),
            // ARP: 0 input, 1 output, 2 forward.
            (Family::Arp, 0) => Hook::Input,
            (Family::Arp, 1) => Hook::Output,
            (Family::Arp, 2) => Hook::Forward,
            (Family::Arp, n) => Hook::Other(n),
            (_, 0) => Hook::Prerouting,
            (_, 1) => Hook::Input,
            (_, 2) => Hook::Forward,
            (_, 3) => Hook::Output,
            (_, 4) => Hook::Postrouting,
            (_, 5) => Hook::Ingress,
            (_, n) => Hook::Other(n),
        }
    }

    /// The name `nft` uses (`hook<N>` for others).
    pub fn name(self) -> String {
        match self {
            Hook::Prerouting => "prerouting".into(),
            Hook::Input => "input".into(),
            Hook::Forward => "forward".into(),
            Hook::Output => "output".into(),
            Hook::Postrouting => "postrouting".into(),
            Hook::Ingress => "ingress".into(),
            Hook::Egress => "egress".into(),
            Hook::Other(n) => format!("hook{n}"),
        }
    }
}

/// A base chain's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// `accept` (also the default when absent).
    Accept,
    /// `drop`.
    Drop,
}

impl Policy {
    /// `accept` or `drop`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        }
    }
}

/// Where and how a base chain is attached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseHook {
    /// Hook.
    pub hook: Hook,
    /// Priority (lower runs first).
    pub priority: i32,
    /// Policy.
    pub policy: Policy,
    /// `filter`, `nat` or `route`.
    pub chain_type: String,
    /// Devices (netdev and inet ingress chains).
    pub devices: Vec<String>,
}

/// A chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// Family of its table.
    pub family: Family,
    /// Table.
    pub table: String,
    /// Name.
    pub name: String,
    /// Handle.
    pub handle: u64,
    /// `NFT_CHAIN_*` flags (base 1, hw offload 2, binding 4).
    pub flags: u32,
    /// For base chains: the hook; `None` for regular chains (reached by
    /// jump/goto only).
    pub base: Option<BaseHook>,
}

/// Decodes a `NEWTABLE` payload.
pub(crate) fn decode_table(family: Family, payload: &[u8]) -> Result<Table, DecodeError> {
    let a = Attrs::parse(payload, "table")?;
    Ok(Table {
        family,
        name: a.req_string(NFTA_TABLE_NAME, "TABLE_NAME")?,
        flags: a.be32(NFTA_TABLE_FLAGS, "TABLE_FLAGS")?.unwrap_or(0),
        handle: a.be64(NFTA_TABLE_HANDLE, "TABLE_HANDLE")?.unwrap_or(0),
    })
}

/// Decodes a `NEWCHAIN` payload.
pub(crate) fn decode_chain(family: Family, payload: &[u8]) -> Result<Chain, DecodeError> {
    let a = Attrs::parse(payload, "chain")?;
    let base = match a.get(NFTA_CHAIN_HOOK) {
        None => None,
        Some(h) => {
            let h = Attrs::parse(h, "chain hook")?;
            let mut devices: Vec<String> = h.string(NFTA_HOOK_DEV).into_iter().collect();
            if let Some(devs) = h.get(NFTA_HOOK_DEVS) {
                let devs = Attrs::parse(devs, "chain hook devices")?;
                devices.extend(devs.iter().map(|(_, d)| super::attr::c_string(d)));
            }
            Some(BaseHook {
                hook: Hook::from_num(family, h.req_be32(NFTA_HOOK_HOOKNUM, "HOOK_HOOKNUM")?),
                priority: h.req_be32(NFTA_HOOK_PRIORITY, "HOOK_PRIORITY")? as i32,
                policy: match a.be32(NFTA_CHAIN_POLICY, "CHAIN_POLICY")? {
                    None | Some(1) => Policy::Accept,
                    Some(0) => Policy::Drop,
                    Some(p) => return Err(DecodeError::value("chain", "CHAIN_POLICY", p)),
                },
                chain_type: a
                    .string(NFTA_CHAIN_TYPE)
                    .unwrap_or_else(|| "filter".to_string()),
                devices,
            })
        }
    };
    Ok(Chain {
        family,
        table: a.req_string(NFTA_CHAIN_TABLE, "CHAIN_TABLE")?,
        name: a.req_string(NFTA_CHAIN_NAME, "CHAIN_NAME")?,
        handle: a.be64(NFTA_CHAIN_HANDLE, "CHAIN_HANDLE")?.unwrap_or(0),
        flags: a.be32(NFTA_CHAIN_FLAGS, "CHAIN_FLAGS")?.unwrap_or(0),
        base,
    })
}
