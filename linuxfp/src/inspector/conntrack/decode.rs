// SPDX-License-Identifier: MIT OR Apache-2.0
//! ctnetlink attributes → [`CtEntry`], and a tuple → attributes (for
//! requests). Every length is checked; a malformed entry is an error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{CtEntry, CtEvent, CtTuple, IPS_SEQ_ADJUST, PROTO_TCP, TcpInfo};
use crate::inspector::nftables::{
    DecodeError, NfMsg,
    attr::{Attrs, nla},
};

/// `NFNL_SUBSYS_CTNETLINK`.
pub(crate) const NFNL_SUBSYS_CTNETLINK: u8 = 1;
/// `IPCTNL_MSG_CT_NEW`: dump replies, `NEW`/`UPDATE` events, and the
/// request that changes an entry.
pub(crate) const IPCTNL_MSG_CT_NEW: u8 = 0;
/// `IPCTNL_MSG_CT_GET`.
pub(crate) const IPCTNL_MSG_CT_GET: u8 = 1;
/// `IPCTNL_MSG_CT_DELETE`: `DESTROY` events.
pub(crate) const IPCTNL_MSG_CT_DELETE: u8 = 2;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_PROTOINFO: u16 = 4;
const CTA_HELP: u16 = 5;
const CTA_NAT_SRC: u16 = 6;
pub(crate) const CTA_TIMEOUT: u16 = 7;
const CTA_MARK: u16 = 8;
const CTA_ID: u16 = 12;
const CTA_NAT_DST: u16 = 13;
const CTA_SEQ_ADJ_ORIG: u16 = 15;
const CTA_SEQ_ADJ_REPLY: u16 = 16;
const CTA_ZONE: u16 = 18;

const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_TUPLE_ZONE: u16 = 3;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
const CTA_PROTOINFO_TCP_FLAGS_ORIGINAL: u16 = 4;
const CTA_PROTOINFO_TCP_FLAGS_REPLY: u16 = 5;

/// `NLA_F_NESTED`.
const NLA_F_NESTED: u16 = 0x8000;

/// Decodes one ctnetlink message. `Ok(None)` for messages that are not
/// conntrack entries (other subsystems, expectations, control messages).
pub fn decode_message(m: &NfMsg) -> Result<Option<CtEvent>, DecodeError> {
    if m.subsys != NFNL_SUBSYS_CTNETLINK {
        return Ok(None);
    }
    match m.op {
        IPCTNL_MSG_CT_NEW => Ok(Some(CtEvent::Upsert(decode_entry(&m.payload)?))),
        IPCTNL_MSG_CT_DELETE => Ok(Some(CtEvent::Destroy(decode_entry(&m.payload)?))),
        _ => Ok(None),
    }
}

/// The attributes of one entry.
fn decode_entry(payload: &[u8]) -> Result<CtEntry, DecodeError> {
    let a = Attrs::parse(payload, "conntrack")?;
    let (orig, zone_o) = tuple(a.req(CTA_TUPLE_ORIG, "TUPLE_ORIG")?, "tuple orig")?;
    let (reply, zone_r) = tuple(a.req(CTA_TUPLE_REPLY, "TUPLE_REPLY")?, "tuple reply")?;
    let status = a.req_be32(CTA_STATUS, "STATUS")?;
    let tcp = match a.get(CTA_PROTOINFO) {
        Some(b) if orig.proto == PROTO_TCP => tcp_info(b)?,
        _ => None,
    };
    let zone = a.be16(CTA_ZONE, "ZONE")?.unwrap_or(0);
    Ok(CtEntry {
        orig,
        reply,
        status,
        timeout: a.be32(CTA_TIMEOUT, "TIMEOUT")?.unwrap_or(0),
        mark: a.be32(CTA_MARK, "MARK")?.unwrap_or(0),
        zone: zone.max(zone_o).max(zone_r),
        id: a.be32(CTA_ID, "ID")?.unwrap_or(0),
        tcp,
        helper: a.get(CTA_HELP).is_some(),
        rewrites: [
            CTA_NAT_SRC,
            CTA_NAT_DST,
            CTA_SEQ_ADJ_ORIG,
            CTA_SEQ_ADJ_REPLY,
        ]
        .iter()
        .any(|k| a.get(*k).is_some())
            || status & IPS_SEQ_ADJUST != 0,
    })
}

fn tuple(b: &[u8], what: &'static str) -> Result<(CtTuple, u16), DecodeError> {
    let t = Attrs::parse(b, what)?;
    let ip = Attrs::parse(t.req(CTA_TUPLE_IP, "TUPLE_IP")?, what)?;
    let addr = |v4: u16, v6: u16, name: &str| -> Result<IpAddr, DecodeError> {
        if let Some(b) = ip.get(v4) {
            let o: [u8; 4] = b
                .try_into()
                .map_err(|_| DecodeError::length(what, name, b.len(), 4))?;
            return Ok(IpAddr::V4(Ipv4Addr::from(o)));
        }
        let b = ip.req(v6, name)?;
        let o: [u8; 16] = b
            .try_into()
            .map_err(|_| DecodeError::length(what, name, b.len(), 16))?;
        Ok(IpAddr::V6(Ipv6Addr::from(o)))
    };
    let src = addr(CTA_IP_V4_SRC, CTA_IP_V6_SRC, "IP_SRC")?;
    let dst = addr(CTA_IP_V4_DST, CTA_IP_V6_DST, "IP_DST")?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(DecodeError::value(what, "TUPLE_IP", "mixed families"));
    }
    let p = Attrs::parse(t.req(CTA_TUPLE_PROTO, "TUPLE_PROTO")?, what)?;
    let proto = p
        .u8(CTA_PROTO_NUM, "PROTO_NUM")?
        .ok_or_else(|| DecodeError::missing(what, "PROTO_NUM"))?;
    let tuple = CtTuple {
        src,
        dst,
        proto,
        sport: p.be16(CTA_PROTO_SRC_PORT, "PROTO_SRC_PORT")?.unwrap_or(0),
        dport: p.be16(CTA_PROTO_DST_PORT, "PROTO_DST_PORT")?.unwrap_or(0),
    };
    Ok((tuple, t.be16(CTA_TUPLE_ZONE, "TUPLE_ZONE")?.unwrap_or(0)))
}

fn tcp_info(b: &[u8]) -> Result<Option<TcpInfo>, DecodeError> {
    let pi = Attrs::parse(b, "protoinfo")?;
    let Some(t) = pi.get(CTA_PROTOINFO_TCP) else {
        return Ok(None);
    };
    let t = Attrs::parse(t, "protoinfo tcp")?;
    // `struct nf_ct_tcp_flags { __u8 flags; __u8 mask; }`.
    let flags = |k: u16, name: &str| -> Result<u8, DecodeError> {
        match t.get(k) {
            None => Ok(0),
            Some(b) if b.len() == 2 => Ok(b[0]),
            Some(b) => Err(DecodeError::length(t.what(), name, b.len(), 2)),
        }
    };
    Ok(Some(TcpInfo {
        state: t
            .u8(CTA_PROTOINFO_TCP_STATE, "TCP_STATE")?
            .ok_or_else(|| DecodeError::missing(t.what(), "TCP_STATE"))?,
        flags_orig: flags(CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, "TCP_FLAGS_ORIGINAL")?,
        flags_reply: flags(CTA_PROTOINFO_TCP_FLAGS_REPLY, "TCP_FLAGS_REPLY")?,
    }))
}

/// A tuple as a nested `CTA_TUPLE_*` attribute of type `kind` (what a
/// request names an entry by).
pub fn encode_tuple(kind: u16, t: &CtTuple) -> Vec<u8> {
    let ip = match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut v = nla(CTA_IP_V4_SRC, &s.octets());
            v.extend(nla(CTA_IP_V4_DST, &d.octets()));
            v
        }
        (s, d) => {
            let six = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                IpAddr::V6(a) => a.octets(),
            };
            let mut v = nla(CTA_IP_V6_SRC, &six(s));
            v.extend(nla(CTA_IP_V6_DST, &six(d)));
            v
        }
    };
    let mut proto = nla(CTA_PROTO_NUM, &[t.proto]);
    proto.extend(nla(CTA_PROTO_SRC_PORT, &t.sport.to_be_bytes()));
    proto.extend(nla(CTA_PROTO_DST_PORT, &t.dport.to_be_bytes()));
    let mut inner = nla(CTA_TUPLE_IP | NLA_F_NESTED, &ip);
    inner.extend(nla(CTA_TUPLE_PROTO | NLA_F_NESTED, &proto));
    nla(kind | NLA_F_NESTED, &inner)
}

/// The attributes of a request that sets the timeout of the entry whose
/// original tuple is `orig` to `secs`.
pub(crate) fn timeout_request(orig: &CtTuple, secs: u32) -> Vec<u8> {
    let mut v = encode_tuple(CTA_TUPLE_ORIG, orig);
    v.extend(nla(CTA_TIMEOUT, &secs.to_be_bytes()));
    v
}

/// Test helpers: a dump reply or event for an entry, as the kernel sends it.
#[cfg(test)]
pub(crate) fn encode_entry(e: &CtEntry) -> Vec<u8> {
    let mut v = encode_tuple(CTA_TUPLE_ORIG, &e.orig);
    v.extend(encode_tuple(CTA_TUPLE_REPLY, &e.reply));
    v.extend(nla(CTA_STATUS, &e.status.to_be_bytes()));
    v.extend(nla(CTA_TIMEOUT, &e.timeout.to_be_bytes()));
    v.extend(nla(CTA_MARK, &e.mark.to_be_bytes()));
    if let Some(t) = &e.tcp {
        let mut tcp = nla(CTA_PROTOINFO_TCP_STATE, &[t.state]);
        tcp.extend(nla(CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, &[t.flags_orig, 0xff]));
        tcp.extend(nla(CTA_PROTOINFO_TCP_FLAGS_REPLY, &[t.flags_reply, 0xff]));
        v.extend(nla(
            CTA_PROTOINFO | NLA_F_NESTED,
            &nla(CTA_PROTOINFO_TCP | NLA_F_NESTED, &tcp),
        ));
    }
    if e.helper {
        v.extend(nla(CTA_HELP | NLA_F_NESTED, &nla(1, b"ftp\0")));
    }
    if e.zone != 0 {
        v.extend(nla(CTA_ZONE, &e.zone.to_be_bytes()));
    }
    v.extend(nla(CTA_ID, &e.id.to_be_bytes()));
    v
}
