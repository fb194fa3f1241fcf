// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reading the ruleset over nfnetlink: dumps of tables, chains, rules,
//! sets and each set's elements, bracketed by `NFT_MSG_GETGEN` so the
//! whole read belongs to one generation (retried when a commit lands in
//! between, or when the kernel flags a dump `NLM_F_DUMP_INTR`).

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::{
    Ruleset, RulesetFold,
    attr::nla,
    message::{
        NFNL_SUBSYS_NFTABLES, NFT_MSG_GETCHAIN, NFT_MSG_GETGEN, NFT_MSG_GETRULE, NFT_MSG_GETSET,
        NFT_MSG_GETSETELEM, NFT_MSG_GETTABLE, NFT_MSG_NEWGEN, NFT_MSG_NEWSET, NLM_F_DUMP_INTR,
        NLMSG_DONE, NLMSG_ERROR, NfMsg, decode_gen, messages,
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
///
/// The datagrams are decoded on a second thread while this one receives
/// the next: the kernel builds each reply inside our `recv`, so with a
/// large ruleset (10,000 rules: about 60 datagrams) its dumping and our
/// decoding, each about half of a read, overlap instead of adding up.
pub(crate) fn dump(s: &Socket) -> Result<Ruleset, InspectError> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<Option<Vec<u8>>>();
        let decoder = std::thread::Builder::new()
            .name("linuxfp-nftdec".into())
            .spawn_scoped(scope, move || {
                let mut fold = RulesetFold::default();
                for datagram in rx {
                    match datagram {
                        Some(d) => fold.feed(&d),
                        // An attempt was abandoned: what came before it
                        // belongs to another generation.
                        None => fold = RulesetFold::default(),
                    }
                }
                fold.finish()
            });
        let Ok(decoder) = decoder else {
            // No second thread: receive everything, then decode.
            return Ok(Ruleset::from_messages(&dump_raw(s)?));
        };
        let read = read_consistent(s, &mut |d: &[u8]| {
            // A send fails only if the decoder is gone (it panicked): the
            // join below passes that on.
            let _ = tx.send((!d.is_empty()).then(|| d.to_vec()));
        });
        drop(tx);
        // The decoders never panic; if one did, this thread unwinds as it
        // would have had it decoded inline.
        let ruleset = decoder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read.map(|()| ruleset)
    })
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
    /// `attrs`, and hands every reply datagram to `sink`. The reply's
    /// messages are kept (returned) only for `GETSET` and `GETGEN`, the
    /// two whose replies the read itself needs.
    fn request(
        &mut self,
        op: u8,
        family: u8,
        attrs: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<Reply, InspectError> {
        let keep = op == NFT_MSG_GETSET || op == NFT_MSG_GETGEN;
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
            if messages(datagram).any(|m| m.seq == seq) {
                sink(datagram);
            }
            for m in messages(datagram) {
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
                        if keep {
                            out.push(m.to_owned());
                        }
                        if is_gen && op == NFT_MSG_GETGEN {
                            return Ok(finish(out, interrupted));
                        }
                    }
                }
            }
        }
    }

    /// The current generation id, its reply handed to `sink`.
    fn generation(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<Option<u32>, InspectError> {
        let Reply::Done(msgs) = self.request(NFT_MSG_GETGEN, 0, &[], sink)? else {
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
    let mut raw = Vec::new();
    read_consistent(s, &mut |d: &[u8]| match d.is_empty() {
        true => raw.clear(),
        false => raw.extend_from_slice(d),
    })?;
    Ok(raw)
}

/// Reads the ruleset at one generation, handing every reply datagram to
/// `sink`; an empty one means "forget what came before: the read starts
/// over".
fn read_consistent(s: &Socket, sink: &mut dyn FnMut(&[u8])) -> Result<(), InspectError> {
    let mut r = Requester {
        socket: s,
        seq: 0,
        rx: Vec::with_capacity(RECV_BUF),
    };
    'attempt: for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tracing::debug!(attempt, "nf_tables ruleset changed during the read; again");
            sink(&[]);
        }
        let Some(before) = r.generation(sink)? else {
            continue;
        };
        let mut sets = Vec::new();
        for op in [
            NFT_MSG_GETTABLE,
            NFT_MSG_GETCHAIN,
            NFT_MSG_GETRULE,
            NFT_MSG_GETSET,
        ] {
            match r.request(op, 0, &[], sink)? {
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
            if let Reply::Interrupted = r.request(NFT_MSG_GETSETELEM, m.family, &attrs, sink)? {
                continue 'attempt;
            }
        }
        if r.generation(&mut |_: &[u8]| {})? == Some(before) {
            return Ok(());
        }
    }
    Err(InspectError::Interrupted {
        what: "nf_tables ruleset",
    })
}
