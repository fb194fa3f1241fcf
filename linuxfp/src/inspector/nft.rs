// SPDX-License-Identifier: MIT OR Apache-2.0
//! The nf_tables ruleset's base chains over nfnetlink (covers `nft` and
//! iptables-nft), decoded from the raw attributes: which chains sit at
//! which hooks, their type, policy and number of rules. Enough for the
//! Compatibility Manager to know which traffic the firewall can touch.

use std::collections::BTreeMap;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::InspectError;
use crate::topology::BaseChain;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
/// Multicast group of nf_tables changes.
pub const NFNLGRP_NFTABLES: u32 = 7;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 16;
const NLA_F_MASK: u16 = 0x3fff;

/// A decoded nf_tables dump.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftState {
    /// Base chains in hook and priority order.
    pub base_chains: Vec<BaseChain>,
    /// The ruleset generation.
    pub generation: u32,
}

fn family_name(f: u8) -> &'static str {
    match f {
        1 => "inet",
        2 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        10 => "ip6",
        _ => "unknown",
    }
}

fn hook_name(family: u8, hook: u32) -> String {
    match (family, hook) {
        (5, 0) => "ingress".into(),
        (5, 1) => "egress".into(),
        (_, 0) => "prerouting".into(),
        (_, 1) => "input".into(),
        (_, 2) => "forward".into(),
        (_, 3) => "output".into(),
        (_, 4) => "postrouting".into(),
        (_, 5) => "ingress".into(),
        (_, n) => format!("hook{n}"),
    }
}

/// Netlink attributes of one message: type → payload.
fn attrs(mut b: &[u8]) -> BTreeMap<u16, &[u8]> {
    let mut out = BTreeMap::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_F_MASK;
        if len < 4 || len > b.len() {
            break;
        }
        out.insert(ty, &b[4..len]);
        let next = (len + 3) & !3;
        if next >= b.len() {
            break;
        }
        b = &b[next..];
    }
    out
}

fn string(b: Option<&&[u8]>) -> String {
    b.map(|b| {
        let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    })
    .unwrap_or_default()
}

fn be32(b: Option<&&[u8]>) -> Option<u32> {
    let b: [u8; 4] = b?.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// One nfnetlink message: (type, flags, family, attribute bytes).
type Msg = (u16, u16, u8, Vec<u8>);

/// Parses a datagram of nfnetlink messages. Malformed tails are dropped
/// (logged), never a panic.
pub fn parse_messages(mut b: &[u8]) -> Vec<Msg> {
    let mut out = Vec::new();
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < 16 || len > b.len() {
            tracing::warn!(len, "truncated nfnetlink message skipped");
            break;
        }
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        let flags = u16::from_ne_bytes([b[6], b[7]]);
        let body = &b[16..len];
        let family = body.first().copied().unwrap_or(0);
        let payload = if ty == NLMSG_ERROR || ty == NLMSG_DONE {
            body.to_vec()
        } else {
            body.get(4..).unwrap_or(&[]).to_vec()
        };
        out.push((ty, flags, family, payload));
        let next = (len + 3) & !3;
        if next >= b.len() {
            break;
        }
        b = &b[next..];
    }
    out
}

/// Opens an nfnetlink socket in the calling thread's namespace.
pub(crate) fn open() -> Result<Socket, InspectError> {
    let mut s = Socket::new(NETLINK_NETFILTER)
        .map_err(|e| InspectError::io("socket(NETLINK_NETFILTER)", e))?;
    s.bind(&SocketAddr::new(0, 0))
        .map_err(|e| InspectError::io("bind(NETLINK_NETFILTER)", e))?;
    Ok(s)
}

fn request(s: &Socket, msg: u16, seq: u32) -> Result<Option<Vec<Msg>>, InspectError> {
    let mut req = Vec::with_capacity(20);
    req.extend_from_slice(&20u32.to_ne_bytes());
    req.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
    let flags = if msg == NFT_MSG_GETGEN {
        NLM_F_REQUEST
    } else {
        NLM_F_REQUEST | NLM_F_DUMP
    };
    req.extend_from_slice(&flags.to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: AF_UNSPEC (all families), NFNETLINK_V0, res_id 0.
    req.extend_from_slice(&[0, 0, 0, 0]);
    s.send(&req, 0)
        .map_err(|e| InspectError::io("send(nf_tables dump)", e))?;
    let mut out = Vec::new();
    let mut interrupted = false;
    let mut rx = Vec::with_capacity(1 << 16);
    loop {
        rx.clear();
        s.recv(&mut rx, 0)
            .map_err(|e| InspectError::io("recv(nf_tables dump)", e))?;
        for m in parse_messages(&rx) {
            if m.1 & NLM_F_DUMP_INTR != 0 {
                interrupted = true;
            }
            match m.0 {
                NLMSG_DONE => return Ok((!interrupted).then_some(out)),
                NLMSG_ERROR => {
                    let code =
                        m.3.get(..4)
                            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    if code == 0 {
                        return Ok(Some(out));
                    }
                    // No nf_tables in this kernel or namespace: no rules.
                    if code == -libc::EOPNOTSUPP
                        || code == -libc::ENOENT
                        || code == -libc::EPROTONOSUPPORT
                    {
                        return Ok(Some(Vec::new()));
                    }
                    return Err(InspectError::Netlink {
                        call: "nf_tables dump",
                        code,
                    });
                }
                _ => {
                    let is_gen = m.0 == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN);
                    out.push(m);
                    if is_gen && msg == NFT_MSG_GETGEN {
                        return Ok(Some(out));
                    }
                }
            }
        }
    }
}

fn request_retrying(s: &Socket, msg: u16, seq: u32) -> Result<Vec<Msg>, InspectError> {
    for i in 0..5 {
        if let Some(v) = request(s, msg, seq + i)? {
            return Ok(v);
        }
    }
    Err(InspectError::Interrupted {
        what: "nf_tables dump",
    })
}

/// Dumps the base chains and the generation.
pub(crate) fn dump(s: &Socket) -> Result<NftState, InspectError> {
    // Read the generation before and after: a change in between means the
    // ruleset moved under us, so read again.
    for attempt in 0..5u32 {
        let gen_before = generation(s, 100 + attempt * 10)?;
        let chains = request_retrying(s, NFT_MSG_GETCHAIN, 1000 + attempt * 10)?;
        let rules = request_retrying(s, NFT_MSG_GETRULE, 2000 + attempt * 10)?;
        let gen_after = generation(s, 3000 + attempt * 10)?;
        if gen_before != gen_after {
            continue;
        }
        return Ok(fold(&chains, &rules, gen_after));
    }
    Err(InspectError::Interrupted {
        what: "nf_tables dump",
    })
}

fn generation(s: &Socket, seq: u32) -> Result<u32, InspectError> {
    let msgs = request(s, NFT_MSG_GETGEN, seq)?.unwrap_or_default();
    Ok(msgs
        .iter()
        .find(|m| m.0 == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN))
        .and_then(|m| be32(attrs(&m.3).get(&1)))
        .unwrap_or(0))
}

/// Folds chain and rule messages into base chains (pure: unit-tested on
/// recorded bytes).
pub fn fold(chains: &[Msg], rules: &[Msg], generation: u32) -> NftState {
    let mut counts: BTreeMap<(u8, String, String), u32> = BTreeMap::new();
    for (ty, _, family, payload) in rules {
        if *ty != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE) {
            continue;
        }
        let a = attrs(payload);
        *counts
            .entry((*family, string(a.get(&1)), string(a.get(&2))))
            .or_default() += 1;
    }
    let mut base = Vec::new();
    for (ty, _, family, payload) in chains {
        if *ty != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN) {
            continue;
        }
        let a = attrs(payload);
        let Some(hook) = a.get(&4) else {
            continue; // a regular chain: reached only by jumps
        };
        let h = attrs(hook);
        let table = string(a.get(&1));
        let chain = string(a.get(&3));
        let rules = counts
            .get(&(*family, table.clone(), chain.clone()))
            .copied()
            .unwrap_or(0);
        base.push(BaseChain {
            family: family_name(*family).to_string(),
            hook: hook_name(*family, be32(h.get(&1)).unwrap_or(u32::MAX)),
            priority: be32(h.get(&2)).map_or(0, |p| p as i32),
            chain_type: {
                let t = string(a.get(&7));
                if t.is_empty() { "filter".into() } else { t }
            },
            policy: match be32(a.get(&5)) {
                Some(0) => "drop".into(),
                _ => "accept".into(),
            },
            table,
            chain,
            rules,
        });
    }
    base.sort_by(|x, y| {
        (x.family.as_str(), x.hook.as_str(), x.priority).cmp(&(
            y.family.as_str(),
            y.hook.as_str(),
            y.priority,
        ))
    });
    NftState {
        base_chains: base,
        generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((payload.len() + 4) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn msg(ty: u16, family: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = attrs.concat();
        let len = 16 + 4 + body.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | ty).to_ne_bytes());
        v.extend_from_slice(&[0; 10]);
        v.extend_from_slice(&[family, 0, 0, 0]);
        v.extend_from_slice(&body);
        v
    }

    #[test]
    fn forward_chain_with_rules_and_drop_policy() {
        let mut hook = nla(1, &2u32.to_be_bytes());
        hook.extend(nla(2, &0i32.to_be_bytes()));
        let chain = msg(
            NFT_MSG_NEWCHAIN,
            2,
            &[
                nla(1, b"filter\0"),
                nla(3, b"FORWARD\0"),
                nla(4, &hook),
                nla(5, &0u32.to_be_bytes()),
                nla(7, b"filter\0"),
            ],
        );
        let regular = msg(
            NFT_MSG_NEWCHAIN,
            2,
            &[nla(1, b"filter\0"), nla(3, b"DOCKER\0")],
        );
        let rule = msg(
            NFT_MSG_NEWRULE,
            2,
            &[nla(1, b"filter\0"), nla(2, b"FORWARD\0")],
        );
        let mut chains_bytes = chain.clone();
        chains_bytes.extend(regular);
        let chains = parse_messages(&chains_bytes);
        let mut rb = rule.clone();
        rb.extend(rule);
        let rules = parse_messages(&rb);
        let st = fold(&chains, &rules, 7);
        assert_eq!(st.generation, 7);
        assert_eq!(st.base_chains.len(), 1);
        let c = &st.base_chains[0];
        assert_eq!(
            (c.family.as_str(), c.hook.as_str(), c.policy.as_str()),
            ("ip", "forward", "drop")
        );
        assert_eq!(c.rules, 2);
        assert!(c.affects_forwarding());
    }

    #[test]
    fn malformed_input_is_skipped_without_panic() {
        assert!(parse_messages(&[1, 2, 3]).is_empty());
        let mut m = msg(NFT_MSG_NEWCHAIN, 2, &[nla(1, b"t\0")]);
        m.truncate(m.len() - 3);
        assert!(parse_messages(&m).is_empty());
        // An attribute claiming more bytes than there are.
        let bad = vec![200u8, 0, 1, 0, 1, 2];
        assert!(attrs(&bad).is_empty());
        let st = fold(
            &parse_messages(&msg(NFT_MSG_NEWCHAIN, 2, &[vec![255, 255, 4, 0]])),
            &[],
            0,
        );
        assert!(st.base_chains.is_empty());
    }
}
