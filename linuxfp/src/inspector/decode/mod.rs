// SPDX-License-Identifier: MIT OR Apache-2.0
//! rtnetlink bytes → [`NetEvent`]s. Pure: used on live sockets, on
//! recorded dumps in tests, and by fuzzers.
//!
//! netlink-packet-route types most messages; netconf (which it lacks) and
//! the attributes it leaves untyped are decoded here or kept raw. A
//! malformed message is logged and skipped, never a panic.

mod addr;
mod link;
mod neigh;
mod netconf;
mod route;

use netlink_packet_core::{DefaultNla, Nla, ParseableParametrized};
use netlink_packet_route::RouteNetlinkMessage;

use crate::state::{NetEvent, RawAttr};

/// `NLMSG_ERROR`.
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`.
pub(crate) const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`.
const NLMSG_OVERRUN: u16 = 4;
/// `NLM_F_DUMP_INTR`: the dump was interrupted by a change; retry.
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
const RTM_NEWNETCONF: u16 = 80;
const RTM_DELNETCONF: u16 = 81;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// One netlink message: its header fields and payload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawMessage<'a> {
    pub(crate) kind: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    pub(crate) payload: &'a [u8],
}

impl RawMessage<'_> {
    /// For `NLMSG_ERROR`: the errno (negative), 0 for an ack.
    pub(crate) fn error_code(&self) -> i32 {
        self.payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(-libc::EPROTO, i32::from_ne_bytes)
    }
}

/// Iterates over the messages of one datagram. Stops (with a warning) at
/// the first header that does not fit.
pub(crate) fn messages(mut buf: &[u8]) -> impl Iterator<Item = RawMessage<'_>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let header: [u8; 16] = match buf.get(..16).and_then(|h| h.try_into().ok()) {
            Some(h) => h,
            None => {
                tracing::warn!(bytes = buf.len(), "truncated netlink header; rest skipped");
                return None;
            }
        };
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len < 16 || len > buf.len() {
            tracing::warn!(
                len,
                bytes = buf.len(),
                "bad netlink message length; rest skipped"
            );
            buf = &[];
            return None;
        }
        let msg = RawMessage {
            kind: u16::from_ne_bytes([header[4], header[5]]),
            flags: u16::from_ne_bytes([header[6], header[7]]),
            seq: u32::from_ne_bytes([header[8], header[9], header[10], header[11]]),
            payload: &buf[16..len],
        };
        buf = buf.get(align(len)..).unwrap_or(&[]);
        Some(msg)
    })
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Decodes one message into the events it carries (none for messages we
/// do not follow, or for malformed ones, which are logged).
pub(crate) fn decode(msg: &RawMessage<'_>) -> Vec<NetEvent> {
    match msg.kind {
        NLMSG_ERROR | NLMSG_DONE | NLMSG_OVERRUN | 0 | 1 => Vec::new(),
        RTM_NEWNETCONF | RTM_DELNETCONF => match netconf::decode(msg.payload) {
            Ok(n) if msg.kind == RTM_NEWNETCONF => vec![NetEvent::NewNetconf(n)],
            Ok(n) => vec![NetEvent::DelNetconf(n)],
            Err(e) => {
                tracing::warn!(kind = msg.kind, error = %e, "skipping malformed netconf message");
                Vec::new()
            }
        },
        kind => match RouteNetlinkMessage::parse_with_param(msg.payload, kind) {
            Ok(m) => from_route_message(m),
            Err(e) => {
                tracing::warn!(kind, error = %e, "skipping undecodable rtnetlink message");
                Vec::new()
            }
        },
    }
}

fn from_route_message(m: RouteNetlinkMessage) -> Vec<NetEvent> {
    use RouteNetlinkMessage as M;
    let one = |e: Option<NetEvent>| e.into_iter().collect();
    match m {
        M::NewLink(l) => vec![link::new(&l)],
        M::DelLink(l) => vec![link::del(&l)],
        M::NewAddress(a) => one(addr::decode(&a).map(NetEvent::NewAddress)),
        M::DelAddress(a) => one(addr::decode(&a).map(NetEvent::DelAddress)),
        M::NewRoute(r) => one(route::decode(&r).map(NetEvent::NewRoute)),
        M::DelRoute(r) => one(route::decode(&r).map(NetEvent::DelRoute)),
        M::NewRule(r) => one(route::decode_rule(&r).map(NetEvent::NewRule)),
        M::DelRule(r) => one(route::decode_rule(&r).map(NetEvent::DelRule)),
        M::NewNeighbour(n) => one(neigh::decode(&n, true)),
        M::DelNeighbour(n) => one(neigh::decode(&n, false)),
        _ => Vec::new(),
    }
}

/// Parses a buffer of netlink messages (one datagram, or several
/// concatenated, as recorded) into events. Control messages (`DONE`,
/// `ERROR`) and messages we do not follow yield nothing; malformed ones
/// are logged and skipped.
pub fn parse_messages(buf: &[u8]) -> Vec<NetEvent> {
    messages(buf).flat_map(|m| decode(&m)).collect()
}

/// A raw attribute from netlink-packet-route's catch-all.
pub(crate) fn raw(nla: &DefaultNla) -> RawAttr {
    let mut value = vec![0u8; nla.value_len()];
    nla.emit_value(&mut value);
    RawAttr {
        kind: nla.kind() & NLA_TYPE_MASK,
        value,
    }
}

/// Iterates over raw attributes `(type, payload)`; stops at the first that
/// does not fit.
pub(crate) fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16::from_ne_bytes([*b.first()?, *b.get(1)?]) as usize;
        let kind = u16::from_ne_bytes([*b.get(2)?, *b.get(3)?]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            b = &[];
            return None;
        }
        let value = &b[4..len];
        b = b.get(align(len)..).unwrap_or(&[]);
        Some((kind, value))
    })
}

#[cfg(test)]
mod tests;
