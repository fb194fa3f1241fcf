// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading the ruleset over nfnetlink: dumps of tables, chains, rules,
//! sets and each set's elements, bracketed by `NFT_MSG_GETGEN` so the
//! whole read belongs to one generation (retried when a commit lands in
//! between, or when the kernel flags a dump `NLM_F_DUMP_INTR`).

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::{
    Ruleset,
    attr::nla,
    message::{
        NFNL_SUBSYS_NFTABLES, NFT_MSG_GETCHAIN, NFT_MSG_GETGEN, NFT_MSG_GETRULE, NFT_MSG_GETSET,
        NFT_MSG_GETSETELEM, NFT_MSG_GETTABLE, NFT_MSG_NEWGEN, NFT_MSG_NEWSET, NLM_F_DUMP_INTR,
        NLMSG_DONE, NLMSG_ERROR, NfMsg, decode_gen, parse_messages,
    },
    set::decode_set,
};
use crate::{inspector::InspectError, netns::NetnsRef};

/// Multicast group of nf_tables changes (`NFNLGRP_NFTABLES`).
pub(crate) const NFNLGRP_NFTABLES: u32 = 7;

const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
/// How often a read is restarted because the ruleset changed under it.
const ATTEMPTS: u32 = 8;
/// Receive buffer: nf_tables dump datagrams are at most a few pages.
const RECV_BUF: usize = 64 * 1024;

/// Opens an nfnetlink socket in the calling thread's namespace.
pub(crate) fn open() -> Result<Socket, InspectError> {
    let mut s = Socket::new(NETLINK_NETFILTER)
        .map_err(|e| InspectError::io("socket(NETLINK_NETFILTER)", e))?;
    s.bind(&SocketAddr::new(0, 0))
        .map_err(|e| InspectError::io("bind(NETLINK_NETFILTER)", e))?;
    Ok(s)
}

/// The raw bytes of a consistent ruleset read in `netns` (every reply
/// datagram, concatenated), for recorded-input tests:
/// [`Ruleset::from_messages`] decodes them.
pub fn record(netns: &NetnsRef) -> Result<Vec<u8>, InspectError> {
    netns.run(|| {
        let s = open()?;
        dump_raw(&s)
    })?
}

/// Reads the ruleset at one generation.
pub(crate) fn dump(s: &Socket) -> Result<Ruleset, InspectError> {
    Ok(Ruleset::from_messages(&dump_raw(s)?))
}

/// One request and its replies.
struct Requester<'s> {
    socket: &'s Socket,
    seq: u32,
    rx: Vec<u8>,
}

/// How a request ended.
enum Reply {
    /// The messages (control messages removed).
    Done(Vec<NfMsg>),
    /// The ruleset changed during the dump: start over.
    Interrupted,
}

impl Requester<'_> {
    /// Sends `op` (a dump unless it is `GETGEN`) for `family` with
    /// `attrs`, appends every reply datagram to `raw`.
    fn request(
        &mut self,
        op: u8,
        family: u8,
        attrs: &[u8],
        raw: &mut Vec<u8>,
    ) -> Result<Reply, InspectError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let len = 16 + 4 + attrs.len();
        let mut req = Vec::with_capacity(len);
        req.extend_from_slice(&(len as u32).to_ne_bytes());
        req.extend_from_slice(
            &((u16::from(NFNL_SUBSYS_NFTABLES) << 8) | u16::from(op)).to_ne_bytes(),
        );
        let flags = if op == NFT_MSG_GETGEN {
            NLM_F_REQUEST
        } else {
            NLM_F_REQUEST | NLM_F_DUMP
        };
        req.extend_from_slice(&flags.to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, NFNETLINK_V0, res_id 0.
        req.extend_from_slice(&[family, 0, 0, 0]);
        req.extend_from_slice(attrs);
        self.socket
            .send(&req, 0)
            .map_err(|e| InspectError::io("send(nf_tables request)", e))?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            self.rx.clear();
            let n = self
                .socket
                .recv(&mut self.rx, 0)
                .map_err(|e| InspectError::io("recv(nf_tables reply)", e))?;
            let datagram = &self.rx[..n.min(self.rx.len())];
            let msgs = parse_messages(datagram);
            if msgs.iter().any(|m| m.seq == seq) {
                raw.extend_from_slice(datagram);
            }
            for m in msgs {
                if m.seq != seq {
                    continue; // a late reply to an abandoned request
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                match m.kind {
                    NLMSG_DONE => return Ok(finish(out, interrupted)),
                    NLMSG_ERROR => {
                        let code = m.error_code().unwrap_or(0);
                        return match code {
                            0 => Ok(finish(out, interrupted)),
                            // No nf_tables in this kernel: no rules.
                            c if c == -libc::EOPNOTSUPP || c == -libc::EPROTONOSUPPORT => {
                                Ok(Reply::Done(Vec::new()))
                            }
                            // The set asked for went away: the ruleset changed.
                            c if c == -libc::ENOENT && op == NFT_MSG_GETSETELEM => {
                                Ok(Reply::Interrupted)
                            }
                            // Nothing to dump (as the base-chain reader
                            // always treated it).
                            c if c == -libc::ENOENT => Ok(Reply::Done(Vec::new())),
                            c if c == -libc::EINTR => Ok(Reply::Interrupted),
                            code => Err(InspectError::Netlink {
                                call: "nf_tables dump",
                                code,
                            }),
                        };
                    }
                    _ => {
                        let is_gen = m.subsys == NFNL_SUBSYS_NFTABLES && m.op == NFT_MSG_NEWGEN;
                        out.push(m);
                        if is_gen && op == NFT_MSG_GETGEN {
                            return Ok(finish(out, interrupted));
                        }
                    }
                }
            }
        }
    }

    /// The current generation id, its reply appended to `raw`.
    fn generation(&mut self, raw: &mut Vec<u8>) -> Result<Option<u32>, InspectError> {
        let Reply::Done(msgs) = self.request(NFT_MSG_GETGEN, 0, &[], raw)? else {
            return Ok(None);
        };
        Ok(Some(
            msgs.iter()
                .find(|m| m.op == NFT_MSG_NEWGEN)
                .and_then(|m| decode_gen(&m.payload).ok())
                .unwrap_or(0),
        ))
    }
}

fn finish(out: Vec<NfMsg>, interrupted: bool) -> Reply {
    if interrupted {
        Reply::Interrupted
    } else {
        Reply::Done(out)
    }
}

fn c_str(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// The raw reply bytes of a read at one generation.
pub(crate) fn dump_raw(s: &Socket) -> Result<Vec<u8>, InspectError> {
    let mut r = Requester {
        socket: s,
        seq: 0,
        rx: Vec::with_capacity(RECV_BUF),
    };
    'attempt: for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tracing::debug!(attempt, "nf_tables ruleset changed during the read; again");
        }
        let mut raw = Vec::new();
        let Some(before) = r.generation(&mut raw)? else {
            continue;
        };
        let mut sets = Vec::new();
        for op in [
            NFT_MSG_GETTABLE,
            NFT_MSG_GETCHAIN,
            NFT_MSG_GETRULE,
            NFT_MSG_GETSET,
        ] {
            match r.request(op, 0, &[], &mut raw)? {
                Reply::Done(msgs) if op == NFT_MSG_GETSET => sets = msgs,
                Reply::Done(_) => {}
                Reply::Interrupted => continue 'attempt,
            }
        }
        for m in sets.iter().filter(|m| m.op == NFT_MSG_NEWSET) {
            // A set that does not decode is reported by the fold; its
            // elements cannot be asked for.
            let Ok(set) = decode_set(super::Family::from_u8(m.family), &m.payload) else {
                continue;
            };
            let mut attrs = nla(1, &c_str(&set.table));
            attrs.extend(nla(2, &c_str(&set.name)));
            if let Reply::Interrupted = r.request(NFT_MSG_GETSETELEM, m.family, &attrs, &mut raw)? {
                continue 'attempt;
            }
        }
        let mut scratch = Vec::new();
        if r.generation(&mut scratch)? == Some(before) {
            return Ok(raw);
        }
    }
    Err(InspectError::Interrupted {
        what: "nf_tables ruleset",
    })
}
