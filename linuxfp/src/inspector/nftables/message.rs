// SPDX-License-Identifier: MIT OR Apache-2.0
//! nfnetlink message framing: `nlmsghdr` + `nfgenmsg` + attributes.

use super::attr::{Attrs, DecodeError};

/// `NFNL_SUBSYS_NFTABLES`.
pub(crate) const NFNL_SUBSYS_NFTABLES: u8 = 10;
pub(crate) const NFT_MSG_NEWTABLE: u8 = 0;
pub(crate) const NFT_MSG_GETTABLE: u8 = 1;
pub(crate) const NFT_MSG_NEWCHAIN: u8 = 3;
pub(crate) const NFT_MSG_GETCHAIN: u8 = 4;
pub(crate) const NFT_MSG_NEWRULE: u8 = 6;
pub(crate) const NFT_MSG_GETRULE: u8 = 7;
pub(crate) const NFT_MSG_NEWSET: u8 = 9;
pub(crate) const NFT_MSG_GETSET: u8 = 10;
pub(crate) const NFT_MSG_NEWSETELEM: u8 = 12;
pub(crate) const NFT_MSG_GETSETELEM: u8 = 13;
pub(crate) const NFT_MSG_NEWGEN: u8 = 15;
pub(crate) const NFT_MSG_GETGEN: u8 = 16;

pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_DUMP_INTR: u16 = 16;

const NLMSG_HDRLEN: usize = 16;

/// One nfnetlink message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfMsg {
    /// `nlmsg_type`: `subsys << 8 | op`, or a control type (`NLMSG_DONE`
    /// 3, `NLMSG_ERROR` 2).
    pub kind: u16,
    /// Subsystem (upper byte of `kind`).
    pub subsys: u8,
    /// Operation (lower byte of `kind`).
    pub op: u8,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nfgenmsg.nfgen_family` (0 for control messages).
    pub family: u8,
    /// `nfgenmsg.res_id` (the low 16 bits of the generation in dumps).
    pub res_id: u16,
    /// The attributes after `nfgenmsg`; for control messages the whole
    /// body (the errno first for `NLMSG_ERROR`).
    pub payload: Vec<u8>,
}

impl NfMsg {
    /// For `NLMSG_ERROR`: the (negative) errno, 0 for an ack.
    pub fn error_code(&self) -> Option<i32> {
        error_code(self.kind, &self.payload)
    }
}

/// One nfnetlink message, borrowed from the datagram it arrived in: what
/// a reader looks at before deciding to keep anything (a 10,000-rule dump
/// is 10,000 messages, most of them only decoded, never stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NfMsgRef<'a> {
    /// As [`NfMsg::kind`].
    pub kind: u16,
    /// As [`NfMsg::subsys`].
    pub subsys: u8,
    /// As [`NfMsg::op`].
    pub op: u8,
    /// As [`NfMsg::flags`].
    pub flags: u16,
    /// As [`NfMsg::seq`].
    pub seq: u32,
    /// As [`NfMsg::family`].
    pub family: u8,
    /// As [`NfMsg::res_id`].
    pub res_id: u16,
    /// As [`NfMsg::payload`].
    pub payload: &'a [u8],
}

impl NfMsgRef<'_> {
    /// For `NLMSG_ERROR`: the (negative) errno, 0 for an ack.
    pub fn error_code(&self) -> Option<i32> {
        error_code(self.kind, self.payload)
    }

    /// An owned copy.
    pub fn to_owned(&self) -> NfMsg {
        NfMsg {
            kind: self.kind,
            subsys: self.subsys,
            op: self.op,
            flags: self.flags,
            seq: self.seq,
            family: self.family,
            res_id: self.res_id,
            payload: self.payload.to_vec(),
        }
    }
}

/// The errno an `NLMSG_ERROR` carries first in its body.
fn error_code(kind: u16, payload: &[u8]) -> Option<i32> {
    if kind != NLMSG_ERROR {
        return None;
    }
    let b: [u8; 4] = payload.get(..4)?.try_into().ok()?;
    Some(i32::from_ne_bytes(b))
}

/// Parses a sequence of nfnetlink messages (one datagram, or several
/// concatenated). A malformed message ends the parse (logged); never a
/// panic.
pub fn parse_messages(b: &[u8]) -> Vec<NfMsg> {
    messages(b).map(|m| m.to_owned()).collect()
}

/// The messages of `b`, as [`parse_messages`] finds them, borrowed.
pub fn messages(b: &[u8]) -> Messages<'_> {
    Messages { rest: b }
}

/// Iterator of [`messages`].
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = NfMsgRef<'a>;

    fn next(&mut self) -> Option<NfMsgRef<'a>> {
        loop {
            let b = self.rest;
            if b.len() < NLMSG_HDRLEN {
                return None;
            }
            let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
            if len < NLMSG_HDRLEN || len > b.len() {
                tracing::warn!(len, left = b.len(), "truncated nfnetlink message skipped");
                self.rest = &[];
                return None;
            }
            let kind = u16::from_ne_bytes([b[4], b[5]]);
            let flags = u16::from_ne_bytes([b[6], b[7]]);
            let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
            let body = &b[NLMSG_HDRLEN..len];
            let next = (len + 3) & !3;
            self.rest = b.get(next..).unwrap_or(&[]);
            let control = kind < 0x10;
            let header = if control {
                Some((0, 0, body))
            } else {
                body.get(..4)
                    .map(|h| (h[0], u16::from_be_bytes([h[2], h[3]]), &body[4..]))
            };
            match header {
                Some((family, res_id, payload)) => {
                    return Some(NfMsgRef {
                        kind,
                        subsys: (kind >> 8) as u8,
                        op: (kind & 0xff) as u8,
                        flags,
                        seq,
                        family,
                        res_id,
                        payload,
                    });
                }
                None => tracing::warn!(kind, "nfnetlink message without nfgenmsg skipped"),
            }
        }
    }
}

/// The generation id of a `NEWGEN` payload.
pub(crate) fn decode_gen(payload: &[u8]) -> Result<u32, DecodeError> {
    const NFTA_GEN_ID: u16 = 1;
    Attrs::parse(payload, "generation")?.req_be32(NFTA_GEN_ID, "GEN_ID")
}
