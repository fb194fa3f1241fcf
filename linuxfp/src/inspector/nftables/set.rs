// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sets and maps (`NFT_MSG_NEWSET`) and their elements
//! (`NFT_MSG_NEWSETELEM`), named and anonymous (`__set%d`, created for
//! `{ ... }` in a rule).

use serde::{Deserialize, Serialize};

use super::{
    Family,
    attr::{Attrs, DecodeError},
    expr::{Data, decode_data},
};

/// `NFT_SET_ANONYMOUS`.
pub const SET_ANONYMOUS: u32 = 0x1;
/// `NFT_SET_CONSTANT`.
pub const SET_CONSTANT: u32 = 0x2;
/// `NFT_SET_INTERVAL`: elements are ranges (start, and end flagged).
pub const SET_INTERVAL: u32 = 0x4;
/// `NFT_SET_MAP`: elements carry data.
pub const SET_MAP: u32 = 0x8;
/// `NFT_SET_TIMEOUT`: elements expire.
pub const SET_TIMEOUT: u32 = 0x10;
/// `NFT_SET_EVAL`: updated from the packet path (dynamic).
pub const SET_EVAL: u32 = 0x20;
/// `NFT_SET_OBJECT`: elements map to stateful objects.
pub const SET_OBJECT: u32 = 0x40;
/// `NFT_SET_CONCAT`: concatenated keys with ranges.
pub const SET_CONCAT: u32 = 0x80;
/// `NFT_DATA_VERDICT`: the data type of verdict maps.
pub const DATA_VERDICT: u32 = 0xffff_ff00;
/// `NFT_SET_ELEM_INTERVAL_END`: the element closes a range.
pub const ELEM_INTERVAL_END: u32 = 0x1;

const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_TIMEOUT: u16 = 11;
const NFTA_SET_HANDLE: u16 = 16;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_SET_ELEM_OBJREF: u16 = 9;
const NFTA_SET_ELEM_KEY_END: u16 = 10;

/// A set or map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Set {
    /// Family of its table.
    pub family: Family,
    /// Table.
    pub table: String,
    /// Name (`__set0`-like when anonymous).
    pub name: String,
    /// Handle.
    pub handle: u64,
    /// `NFT_SET_*` flags (see the `SET_*` constants).
    pub flags: u32,
    /// nft's key data type (`TYPE_*` of nftables, concatenations packed 6
    /// bits per component).
    pub key_type: u32,
    /// Key length in bytes.
    pub key_len: u32,
    /// Data type for maps ([`DATA_VERDICT`] for verdict maps).
    pub data_type: Option<u32>,
    /// Data length for maps.
    pub data_len: Option<u32>,
    /// Default element timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Elements, in dump order.
    pub elements: Vec<SetElem>,
    /// Set when the element dump could not be decoded: the elements are
    /// incomplete and lookups in this set must not be trusted.
    pub elements_error: Option<DecodeError>,
}

impl Set {
    /// True for sets created for one rule's `{ ... }`.
    pub fn is_anonymous(&self) -> bool {
        self.flags & SET_ANONYMOUS != 0
    }

    /// True for maps (elements carry data).
    pub fn is_map(&self) -> bool {
        self.flags & SET_MAP != 0
    }

    /// True for verdict maps (`vmap`).
    pub fn is_verdict_map(&self) -> bool {
        self.is_map() && self.data_type == Some(DATA_VERDICT)
    }

    /// True for interval sets (elements are ranges).
    pub fn is_interval(&self) -> bool {
        self.flags & SET_INTERVAL != 0
    }

    /// True if elements can expire or be added from the packet path, so the
    /// dumped content may change without a new ruleset generation.
    pub fn is_dynamic(&self) -> bool {
        self.flags & (SET_TIMEOUT | SET_EVAL) != 0
            || self.timeout_ms.is_some()
            || self.elements.iter().any(|e| e.timeout_ms.is_some())
    }
}

/// One element.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetElem {
    /// Key bytes (register layout; concatenations are padded to 4 bytes
    /// per component).
    pub key: Vec<u8>,
    /// End of the range for concatenated-range sets (`NFTA_SET_ELEM_KEY_END`).
    pub key_end: Option<Vec<u8>>,
    /// Data for maps.
    pub data: Option<Data>,
    /// Object name for object maps.
    pub objref: Option<String>,
    /// `NFT_SET_ELEM_*` flags ([`ELEM_INTERVAL_END`]).
    pub flags: u32,
    /// Element timeout in milliseconds (the time left is not kept: it
    /// changes on every read).
    pub timeout_ms: Option<u64>,
}

impl SetElem {
    /// True if this element ends an interval.
    pub fn is_interval_end(&self) -> bool {
        self.flags & ELEM_INTERVAL_END != 0
    }
}

/// Decodes a `NEWSET` payload (without elements).
pub fn decode_set(family: Family, payload: &[u8]) -> Result<Set, DecodeError> {
    let a = Attrs::parse(payload, "set")?;
    Ok(Set {
        family,
        table: a.req_string(NFTA_SET_TABLE, "SET_TABLE")?,
        name: a.req_string(NFTA_SET_NAME, "SET_NAME")?,
        handle: a.be64(NFTA_SET_HANDLE, "SET_HANDLE")?.unwrap_or(0),
        flags: a.be32(NFTA_SET_FLAGS, "SET_FLAGS")?.unwrap_or(0),
        key_type: a.be32(NFTA_SET_KEY_TYPE, "SET_KEY_TYPE")?.unwrap_or(0),
        key_len: a.req_be32(NFTA_SET_KEY_LEN, "SET_KEY_LEN")?,
        data_type: a.be32(NFTA_SET_DATA_TYPE, "SET_DATA_TYPE")?,
        data_len: a.be32(NFTA_SET_DATA_LEN, "SET_DATA_LEN")?,
        timeout_ms: a.be64(NFTA_SET_TIMEOUT, "SET_TIMEOUT")?,
        elements: Vec::new(),
        elements_error: None,
    })
}

/// The elements of one `NEWSETELEM` message: table, set name, elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetElems {
    /// Table.
    pub table: String,
    /// Set name.
    pub set: String,
    /// Elements.
    pub elements: Vec<SetElem>,
}

/// Decodes a `NEWSETELEM` payload.
pub fn decode_set_elems(payload: &[u8]) -> Result<SetElems, DecodeError> {
    let a = Attrs::parse(payload, "set elements")?;
    let table = a.req_string(NFTA_SET_ELEM_LIST_TABLE, "SET_ELEM_LIST_TABLE")?;
    let set = a.req_string(NFTA_SET_ELEM_LIST_SET, "SET_ELEM_LIST_SET")?;
    let mut elements = Vec::new();
    if let Some(list) = a.get(NFTA_SET_ELEM_LIST_ELEMENTS) {
        for (kind, e) in Attrs::parse(list, "set elements")?.iter() {
            if kind != NFTA_LIST_ELEM {
                return Err(DecodeError::value("set elements", "LIST_ELEM", kind));
            }
            elements.push(decode_elem(e)?);
        }
    }
    Ok(SetElems {
        table,
        set,
        elements,
    })
}

fn decode_elem(b: &[u8]) -> Result<SetElem, DecodeError> {
    let a = Attrs::parse(b, "set element")?;
    let value = |kind: u16, name: &str| -> Result<Option<Vec<u8>>, DecodeError> {
        match a.get(kind) {
            None => Ok(None),
            Some(d) => match decode_data(d, "set element")? {
                Data::Value(v) => Ok(Some(v)),
                Data::Verdict(_) => Err(DecodeError::value("set element", name, "a verdict")),
            },
        }
    };
    let flags = a.be32(NFTA_SET_ELEM_FLAGS, "SET_ELEM_FLAGS")?.unwrap_or(0);
    // The catch-all element (`*`) and interval ends may have no key.
    let key = value(NFTA_SET_ELEM_KEY, "SET_ELEM_KEY")?.unwrap_or_default();
    Ok(SetElem {
        key,
        key_end: value(NFTA_SET_ELEM_KEY_END, "SET_ELEM_KEY_END")?,
        data: a
            .get(NFTA_SET_ELEM_DATA)
            .map(|d| decode_data(d, "set element"))
            .transpose()?,
        objref: a.string(NFTA_SET_ELEM_OBJREF),
        flags,
        timeout_ms: a.be64(NFTA_SET_ELEM_TIMEOUT, "SET_ELEM_TIMEOUT")?,
    })
}
