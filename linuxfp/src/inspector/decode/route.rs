// SPDX-License-Identifier: MIT OR Apache-2.0
//! `RTM_NEWROUTE` / `RTM_DELROUTE` and `RTM_NEWRULE` / `RTM_DELRULE`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::Nla;
use netlink_packet_route::{
    AddressFamily,
    route::{
        RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteMetric, RouteNextHop, RouteVia,
    },
    rule::{RuleAttribute, RuleMessage},
};

use super::raw;
use crate::state::{NextHop, RawAttr, Route, Rule};

/// `RTNH_F_DEAD | RTNH_F_LINKDOWN`: the kernel derives these from the
/// state of the output link (which we follow) and does not announce their
/// changes, so they are left out to keep events and dumps in agreement.
const LINK_STATE_FLAGS: u32 = 0x01 | 0x10;

fn family_of(f: AddressFamily) -> Option<u8> {
    match f {
        AddressFamily::Inet => Some(4),
        AddressFamily::Inet6 => Some(6),
        _ => None,
    }
}

fn unspecified(family: u8) -> IpAddr {
    if family == 4 {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    }
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some((*v4).into()),
        RouteAddress::Inet6(v6) => Some((*v6).into()),
        _ => None,
    }
}

fn via(v: &RouteVia) -> Option<IpAddr> {
    match v {
        RouteVia::Inet(v4) => Some((*v4).into()),
        RouteVia::Inet6(v6) => Some((*v6).into()),
        _ => None,
    }
}

/// A typed attribute we do not model, kept in its wire form.
fn emitted<T: Nla>(a: &T) -> RawAttr {
    let mut value = vec![0u8; a.value_len()];
    a.emit_value(&mut value);
    RawAttr {
        kind: a.kind() & 0x3fff,
        value,
    }
}

pub(super) fn decode(r: &RouteMessage) -> Option<Route> {
    let h = &r.header;
    let family = family_of(h.address_family)?;
    if h.flags.contains(RouteFlags::Cloned) {
        // Route cache entries (PMTU exceptions) are not configuration.
        return None;
    }
    let mut out = Route {
        table: u32::from(h.table),
        dst: unspecified(family),
        dst_len: h.destination_prefix_length,
        src: None,
        src_len: h.source_prefix_length,
        tos: h.tos,
        priority: 0,
        protocol: u8::from(h.protocol),
        scope: u8::from(h.scope),
        kind: u8::from(h.kind),
        flags: h.flags.bits() & !LINK_STATE_FLAGS,
        oif: None,
        iif: None,
        gateway: None,
        prefsrc: None,
        nexthops: Vec::new(),
        nh_id: None,
        mtu: None,
        unknown: Vec::new(),
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Table(t) => out.table = *t,
            RouteAttribute::Destination(d) => {
                if let Some(d) = ip(d) {
                    out.dst = d;
                }
            }
            RouteAttribute::Source(s) => out.src = ip(s),
            RouteAttribute::Gateway(g) => out.gateway = ip(g),
            RouteAttribute::Via(v) => out.gateway = via(v),
            RouteAttribute::PrefSource(s) => out.prefsrc = ip(s),
            RouteAttribute::Oif(i) => out.oif = Some(*i),
            RouteAttribute::Iif(i) => out.iif = Some(*i),
            RouteAttribute::Priority(p) => out.priority = *p,
            RouteAttribute::NhId(i) => out.nh_id = Some(*i),
            RouteAttribute::MultiPath(hops) => out.nexthops = hops.iter().map(nexthop).collect(),
            RouteAttribute::Metrics(m) => {
                for x in m {
                    if let RouteMetric::Mtu(v) = x {
                        out.mtu = Some(*v);
                    }
                }
            }
            // Timers and statistics change by themselves; they are not
            // configuration.
            RouteAttribute::CacheInfo(_)
            | RouteAttribute::Expires(_)
            | RouteAttribute::MulticastExpires(_)
            | RouteAttribute::MfcStats(_) => {}
            RouteAttribute::Other(nla) => out.unknown.push(raw(nla)),
            // Typed, but not modelled (encap, MPLS, preference, realm,
            // ...): keep it so a change is still a change.
            other => out.unknown.push(emitted(other)),
        }
    }
    Some(out)
}

fn nexthop(n: &RouteNextHop) -> NextHop {
    let mut gateway = None;
    for a in &n.attributes {
        match a {
            RouteAttribute::Gateway(g) => gateway = ip(g),
            RouteAttribute::Via(v) => gateway = via(v),
            _ => {}
        }
    }
    NextHop {
        oif: n.interface_index,
        gateway,
        weight: u16::from(n.hops) + 1,
        flags: u32::from(n.flags.bits()) & !LINK_STATE_FLAGS,
    }
}

pub(super) fn decode_rule(r: &RuleMessage) -> Option<Rule> {
    let h = &r.header;
    let family = family_of(h.family)?;
    let mut out = Rule {
        family,
        priority: 0,
        table: u32::from(h.table),
        action: u8::from(h.action),
        src: None,
        src_len: h.src_len,
        dst: None,
        dst_len: h.dst_len,
        tos: h.tos,
        iifname: None,
        oifname: None,
        fwmark: None,
        fwmask: None,
        goto: None,
        l3mdev: false,
        suppress_prefixlen: None,
        flags: h.flags.bits(),
        unknown: Vec::new(),
    };
    for a in &r.attributes {
        match a {
            RuleAttribute::Priority(p) => out.priority = *p,
            RuleAttribute::Table(t) => out.table = *t,
            RuleAttribute::Source(s) => out.src = Some(*s),
            RuleAttribute::Destination(d) => out.dst = Some(*d),
            RuleAttribute::Iifname(n) => out.iifname = Some(n.clone()),
            RuleAttribute::Oifname(n) => out.oifname = Some(n.clone()),
            RuleAttribute::FwMark(m) => out.fwmark = Some(*m),
            RuleAttribute::FwMask(m) => out.fwmask = Some(*m),
            RuleAttribute::Goto(g) => out.goto = Some(*g),
            RuleAttribute::L3MDev(b) => out.l3mdev = *b,
            RuleAttribute::SuppressPrefixLen(p) => out.suppress_prefixlen = Some(*p),
            RuleAttribute::Other(nla) => out.unknown.push(raw(nla)),
            // The protocol (who added it) is not a selector.
            RuleAttribute::Protocol(_) => {}
            other => out.unknown.push(emitted(other)),
        }
    }
    // The kernel reports table ids > 255 only in FRA_TABLE.
    Some(out)
}
