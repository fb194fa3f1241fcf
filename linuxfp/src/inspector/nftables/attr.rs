// SPDX-License-Identifier: MIT OR Apache-2.0
//! Netlink attributes of nf_tables messages, parsed strictly: every length
//! is checked, and a malformed attribute is a [`DecodeError`] naming the
//! object and the attribute, never a panic.

use serde::{Deserialize, Serialize};

/// Attribute flag bits (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`) masked off
/// the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Why a message, expression or attribute could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DecodeError {
    /// An attribute header claims more bytes than there are, or trailing
    /// bytes do not form an attribute.
    #[error("{what}: truncated attribute at byte {offset}")]
    Truncated {
        /// The object being decoded (`rule`, `expr cmp`, ...).
        what: String,
        /// Offset of the bad attribute in its enclosing payload.
        offset: usize,
    },
    /// A mandatory attribute is absent.
    #[error("{what}: missing attribute {attr}")]
    Missing {
        /// The object being decoded.
        what: String,
        /// The attribute (`NFTA_...` name without prefix).
        attr: String,
    },
    /// An attribute has the wrong size.
    #[error("{what}: attribute {attr} has {len} bytes, expected {expected}")]
    Length {
        /// The object being decoded.
        what: String,
        /// The attribute.
        attr: String,
        /// Its size.
        len: usize,
        /// The size(s) accepted.
        expected: String,
    },
    /// An attribute has a value this decoder does not accept.
    #[error("{what}: attribute {attr} has unsupported value {value}")]
    Value {
        /// The object being decoded.
        what: String,
        /// The attribute.
        attr: String,
        /// The value, printed.
        value: String,
    },
}

impl DecodeError {
    /// A [`DecodeError::Missing`].
    pub(crate) fn missing(what: &str, attr: &str) -> Self {
        DecodeError::Missing {
            what: what.into(),
            attr: attr.into(),
        }
    }

    /// A [`DecodeError::Length`].
    pub(crate) fn length(what: &str, attr: &str, len: usize, expected: impl ToString) -> Self {
        DecodeError::Length {
            what: what.into(),
            attr: attr.into(),
            len,
            expected: expected.to_string(),
        }
    }

    /// A [`DecodeError::Value`].
    pub(crate) fn value(what: &str, attr: &str, value: impl ToString) -> Self {
        DecodeError::Value {
            what: what.into(),
            attr: attr.into(),
            value: value.to_string(),
        }
    }
}

/// One attribute kept as bytes (for expressions this reader does not
/// decode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawAttr {
    /// The attribute type, flag bits removed.
    pub kind: u16,
    /// Its payload, padding removed.
    pub data: Vec<u8>,
}

/// The attributes of one payload, in wire order, with typed accessors
/// whose errors name the object (`what`).
#[derive(Debug)]
pub(crate) struct Attrs<'a> {
    what: &'a str,
    list: Vec<(u16, &'a [u8])>,
}

impl<'a> Attrs<'a> {
    /// Parses `b` as a sequence of attributes; any bad length is an error.
    pub(crate) fn parse(b: &'a [u8], what: &'a str) -> Result<Self, DecodeError> {
        // An attribute takes at least 4 bytes; most payloads have a few.
        let mut list = Vec::with_capacity((b.len() / 8).clamp(1, 16));
        let mut off = 0usize;
        while off < b.len() {
            let rest = &b[off..];
            let truncated = || DecodeError::Truncated {
                what: what.into(),
                offset: off,
            };
            let hdr = rest.get(..4).ok_or_else(truncated)?;
            let len = usize::from(u16::from_ne_bytes([hdr[0], hdr[1]]));
            let kind = u16::from_ne_bytes([hdr[2], hdr[3]]) & NLA_TYPE_MASK;
            if len < 4 || len > rest.len() {
                return Err(truncated());
            }
            list.push((kind, &rest[4..len]));
            // Padding to 4 bytes; the last attribute may omit it.
            off = off.saturating_add((len + 3) & !3);
        }
        Ok(Attrs { what, list })
    }

    /// The object name used in errors.
    pub(crate) fn what(&self) -> &'a str {
        self.what
    }

    /// The payload of the first attribute of type `kind`.
    pub(crate) fn get(&self, kind: u16) -> Option<&'a [u8]> {
        self.list.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
    }

    /// Every attribute, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u16, &'a [u8])> + '_ {
        self.list.iter().copied()
    }

    /// Every attribute as owned [`RawAttr`]s.
    pub(crate) fn raw(&self) -> Vec<RawAttr> {
        self.list
            .iter()
            .map(|(kind, data)| RawAttr {
                kind: *kind,
                data: data.to_vec(),
            })
            .collect()
    }

    /// A mandatory attribute.
    pub(crate) fn req(&self, kind: u16, name: &str) -> Result<&'a [u8], DecodeError> {
        self.get(kind)
            .ok_or_else(|| DecodeError::missing(self.what, name))
    }

    fn fixed<const N: usize>(&self, kind: u16, name: &str) -> Result<Option<[u8; N]>, DecodeError> {
        match self.get(kind) {
            None => Ok(None),
            Some(b) => b
                .try_into()
                .map(Some)
                .map_err(|_| DecodeError::length(self.what, name, b.len(), N)),
        }
    }

    /// An optional `u8`.
    pub(crate) fn u8(&self, kind: u16, name: &str) -> Result<Option<u8>, DecodeError> {
        Ok(self.fixed::<1>(kind, name)?.map(|b| b[0]))
    }

    /// An optional big-endian `u16`.
    pub(crate) fn be16(&self, kind: u16, name: &str) -> Result<Option<u16>, DecodeError> {
        Ok(self.fixed::<2>(kind, name)?.map(u16::from_be_bytes))
    }

    /// An optional big-endian `u32`.
    pub(crate) fn be32(&self, kind: u16, name: &str) -> Result<Option<u32>, DecodeError> {
        Ok(self.fixed::<4>(kind, name)?.map(u32::from_be_bytes))
    }

    /// A mandatory big-endian `u32`.
    pub(crate) fn req_be32(&self, kind: u16, name: &str) -> Result<u32, DecodeError> {
        self.be32(kind, name)?
            .ok_or_else(|| DecodeError::missing(self.what, name))
    }

    /// An optional big-endian `u64`.
    pub(crate) fn be64(&self, kind: u16, name: &str) -> Result<Option<u64>, DecodeError> {
        Ok(self.fixed::<8>(kind, name)?.map(u64::from_be_bytes))
    }

    /// An optional NUL-terminated string (bytes after the first NUL are
    /// ignored; invalid UTF-8 is replaced).
    pub(crate) fn string(&self, kind: u16) -> Option<String> {
        self.get(kind).map(c_string)
    }

    /// A mandatory NUL-terminated string.
    pub(crate) fn req_string(&self, kind: u16, name: &str) -> Result<String, DecodeError> {
        self.string(kind)
            .ok_or_else(|| DecodeError::missing(self.what, name))
    }
}

/// The text of a NUL-terminated (or unterminated) byte string.
pub(crate) fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Encodes one attribute (for requests, and for tests), padded to 4
/// bytes.
pub(crate) fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 8);
    v.extend_from_slice(&((payload.len() + 4) as u16).to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(payload);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typed_values_and_rejects_bad_lengths() {
        let mut b = nla(1, &7u32.to_be_bytes());
        b.extend(nla(2 | 0x8000, b"abc\0"));
        b.extend(nla(3, &[1, 2]));
        let a = Attrs::parse(&b, "t").expect("parse");
        assert_eq!(a.req_be32(1, "ONE"), Ok(7));
        assert_eq!(a.string(2).as_deref(), Some("abc"));
        assert!(matches!(
            a.be32(3, "THREE"),
            Err(DecodeError::Length { len: 2, .. })
        ));
        assert!(matches!(a.req(9, "NINE"), Err(DecodeError::Missing { .. })));
    }

    #[test]
    fn truncation_is_an_error() {
        let mut b = nla(1, &[1, 2, 3, 4]);
        b.truncate(6);
        assert!(matches!(
            Attrs::parse(&b, "t"),
            Err(DecodeError::Truncated { offset: 0, .. })
        ));
        assert!(Attrs::parse(&[4, 0], "t").is_err());
        assert!(Attrs::parse(&[2, 0, 1, 0], "t").is_err());
        assert!(Attrs::parse(&[], "t").is_ok());
    }
}
