// SPDX-License-Identifier: MIT OR Apache-2.0
//! `RTM_NEWLINK` / `RTM_DELLINK`, in both the `AF_UNSPEC` view (the
//! device) and the `AF_BRIDGE` view (bridge port attributes and VLANs).

use std::collections::BTreeMap;

use netlink_packet_route::{
    AddressFamily,
    link::{
        AfSpecBridge, BridgeVlanInfoFlags, InfoBridge, InfoBridgePort, InfoData, InfoKind,
        InfoPortData, InfoVlan, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
        LinkProtoInfoBridge, LinkXdp,
    },
};

use super::{attrs, raw};
use crate::state::{
    BridgeAttrs, BridgePortAttrs, Link, NetEvent, VlanAttrs, VlanMembership, VxlanAttrs,
};

const IFLA_BRPORT_STATE: u16 = 1;
const IFLA_BRPORT_MODE: u16 = 4;
const IFLA_BRPORT_LEARNING: u16 = 8;
const IFLA_BRPORT_UNICAST_FLOOD: u16 = 9;
const IFLA_BRPORT_PROXYARP: u16 = 10;
const IFLA_BRPORT_MCAST_FLOOD: u16 = 27;
const IFLA_BRPORT_BCAST_FLOOD: u16 = 30;
const IFLA_BRPORT_NEIGH_SUPPRESS: u16 = 32;
const IFLA_BRPORT_ISOLATED: u16 = 33;
const IFLA_BRPORT_LOCKED: u16 = 39;
const IFLA_BRPORT_MAB: u16 = 40;

pub(super) fn new(l: &LinkMessage) -> NetEvent {
    if l.header.interface_family == AddressFamily::Bridge {
        bridge_view(l)
    } else {
        NetEvent::NewLink(decode(l))
    }
}

pub(super) fn del(l: &LinkMessage) -> NetEvent {
    if l.header.interface_family == AddressFamily::Bridge {
        NetEvent::DelBridgeLink {
            ifindex: l.header.index,
        }
    } else {
        NetEvent::DelLink {
            ifindex: l.header.index,
        }
    }
}

/// Decodes the device view of a link.
pub(super) fn decode(l: &LinkMessage) -> Link {
    let flags = l.header.flags;
    let mut link = Link {
        ifindex: l.header.index,
        flags: flags.bits(),
        admin_up: flags.contains(LinkFlags::Up),
        running: flags.contains(LinkFlags::Running) || flags.contains(LinkFlags::LowerUp),
        loopback: flags.contains(LinkFlags::Loopback),
        ..Default::default()
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Address(mac) => link.mac = mac.as_slice().try_into().ok(),
            LinkAttribute::Controller(m) => link.master = Some(*m),
            LinkAttribute::Link(i) => link.link = Some(*i),
            LinkAttribute::LinkNetNsId(i) => link.link_netnsid = Some(*i),
            LinkAttribute::LinkInfo(infos) => link_info(&mut link, infos),
            LinkAttribute::Xdp(x) => {
                for a in x {
                    if let LinkXdp::ProgId(id) = a
                        && *id != 0
                    {
                        link.xdp_prog_id = Some(*id);
                    }
                }
            }
            LinkAttribute::Other(nla) => link.unknown.push(raw(nla)),
            _ => {}
        }
    }
    link
}

fn link_info(link: &mut Link, infos: &[LinkInfo]) {
    for i in infos {
        match i {
            LinkInfo::Kind(k) => {
                link.kind = Some(match k {
                    InfoKind::Other(s) => s.clone(),
                    k => k.to_string(),
                })
            }
            LinkInfo::PortKind(k) => link.port_kind = Some(k.to_string()),
            LinkInfo::Data(InfoData::Bridge(v)) => link.bridge = Some(bridge_attrs(v)),
            LinkInfo::Data(InfoData::Vlan(v)) => {
                let mut out = VlanAttrs::default();
                for a in v {
                    match a {
                        InfoVlan::Id(id) => out.id = *id,
                        InfoVlan::Protocol(p) => out.protocol = u16::from(*p),
                        _ => {}
                    }
                }
                link.vlan = Some(out);
            }
            LinkInfo::Data(InfoData::Vxlan(v)) => {
                let mut out = VxlanAttrs::default();
                for a in v {
                    match a {
                        InfoVxlan::Id(id) => out.vni = Some(*id),
                        InfoVxlan::Local(ip) => out.local = Some((*ip).into()),
                        InfoVxlan::Local6(ip) => out.local = Some((*ip).into()),
                        InfoVxlan::Group(ip) => out.group = Some((*ip).into()),
                        InfoVxlan::Group6(ip) => out.group = Some((*ip).into()),
                        InfoVxlan::Link(i) => out.link = Some(*i),
                        InfoVxlan::Port(p) => out.port = Some(*p),
                        _ => {}
                    }
                }
                link.vxlan = Some(out);
            }
            LinkInfo::PortData(InfoPortData::BridgePort(v)) => {
                link.bridge_port = Some(bridge_port_attrs(v));
            }
            _ => {}
        }
    }
}

fn bridge_attrs(v: &[InfoBridge]) -> BridgeAttrs {
    let mut out = BridgeAttrs::default();
    for a in v {
        match a {
            InfoBridge::VlanFiltering(f) => out.vlan_filtering = *f,
            InfoBridge::StpState(s) => out.stp_state = u32::from(*s),
            InfoBridge::VlanProtocol(p) => out.vlan_protocol = u16::from(*p),
            InfoBridge::VlanDefaultPvid(p) => out.default_pvid = *p,
            InfoBridge::NfCallIpTables(on) => out.nf_call_iptables = *on,
            InfoBridge::NfCallIp6Tables(on) => out.nf_call_ip6tables = *on,
            _ => {}
        }
    }
    out
}

fn bridge_port_attrs(v: &[InfoBridgePort]) -> BridgePortAttrs {
    let mut p = BridgePortAttrs::default();
    for a in v {
        match a {
            InfoBridgePort::State(s) => p.state = u8::from(*s),
            InfoBridgePort::Learning(b) => p.learning = *b,
            InfoBridgePort::UnicastFlood(b) => p.unicast_flood = *b,
            InfoBridgePort::MulticastFlood(b) => p.multicast_flood = *b,
            InfoBridgePort::BroadcastFlood(b) => p.broadcast_flood = *b,
            InfoBridgePort::HairpinMode(b) => p.hairpin = *b,
            InfoBridgePort::Isolated(b) => p.isolated = *b,
            InfoBridgePort::Locked(b) => p.locked = *b,
            InfoBridgePort::Mab(b) => p.mab = *b,
            InfoBridgePort::ProxyARP(b) => p.proxy_arp = *b,
            InfoBridgePort::NeighSupress(b) => p.neigh_suppress = *b,
            _ => {}
        }
    }
    p
}

/// The `AF_BRIDGE` view: `IFLA_PROTINFO` (port attributes, which
/// netlink-packet-route leaves raw) and `IFLA_AF_SPEC` (VLANs, possibly
/// compressed into ranges).
fn bridge_view(l: &LinkMessage) -> NetEvent {
    let mut port = None;
    let mut vlans = None;
    for a in &l.attributes {
        match a {
            LinkAttribute::ProtoInfoBridge(v) => {
                let mut p = BridgePortAttrs::default();
                for i in v {
                    if let LinkProtoInfoBridge::Other(nla) = i {
                        let r = raw(nla);
                        protinfo(&mut p, r.kind, &r.value);
                    }
                }
                port = Some(p);
            }
            LinkAttribute::ProtoInfoUnknown(nla) => {
                let r = raw(nla);
                let mut p = BridgePortAttrs::default();
                for (kind, value) in attrs(&r.value) {
                    protinfo(&mut p, kind, value);
                }
                port = Some(p);
            }
            LinkAttribute::AfSpecBridge(spec) => {
                vlans = Some(vlan_infos(l.header.index, spec));
            }
            _ => {}
        }
    }
    NetEvent::BridgeLink {
        ifindex: l.header.index,
        port,
        vlans,
    }
}

fn protinfo(p: &mut BridgePortAttrs, kind: u16, value: &[u8]) {
    let Some(&v) = value.first() else {
        return;
    };
    let b = v != 0;
    match kind {
        IFLA_BRPORT_STATE => p.state = v,
        IFLA_BRPORT_MODE => p.hairpin = b,
        IFLA_BRPORT_LEARNING => p.learning = b,
        IFLA_BRPORT_UNICAST_FLOOD => p.unicast_flood = b,
        IFLA_BRPORT_PROXYARP => p.proxy_arp = b,
        IFLA_BRPORT_MCAST_FLOOD => p.multicast_flood = b,
        IFLA_BRPORT_BCAST_FLOOD => p.broadcast_flood = b,
        IFLA_BRPORT_NEIGH_SUPPRESS => p.neigh_suppress = b,
        IFLA_BRPORT_ISOLATED => p.isolated = b,
        IFLA_BRPORT_LOCKED => p.locked = b,
        IFLA_BRPORT_MAB => p.mab = b,
        _ => {}
    }
}

/// Expands `IFLA_BRIDGE_VLAN_INFO` entries, including
/// `RANGE_BEGIN`..`RANGE_END` pairs (`RTEXT_FILTER_BRVLAN_COMPRESSED`).
fn vlan_infos(ifindex: u32, spec: &[AfSpecBridge]) -> BTreeMap<u16, VlanMembership> {
    let mut out = BTreeMap::new();
    let mut begin: Option<u16> = None;
    for s in spec {
        let AfSpecBridge::VlanInfo(v) = s else {
            continue;
        };
        let m = VlanMembership {
            pvid: v.flags.contains(BridgeVlanInfoFlags::Pvid),
            untagged: v.flags.contains(BridgeVlanInfoFlags::Untagged),
        };
        if v.flags.contains(BridgeVlanInfoFlags::RangeBegin) {
            begin = Some(v.vid);
            continue;
        }
        let first = if v.flags.contains(BridgeVlanInfoFlags::RangeEnd) {
            match begin.take() {
                Some(b) if b <= v.vid => b,
                _ => {
                    tracing::warn!(ifindex, vid = v.vid, "VLAN range end without a begin");
                    v.vid
                }
            }
        } else {
            v.vid
        };
        for vid in first..=v.vid {
            out.insert(vid, m);
        }
    }
    out
}
