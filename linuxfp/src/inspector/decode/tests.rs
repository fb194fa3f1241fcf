// SPDX-License-Identifier: MIT OR Apache-2.0
use super::*;

/// One netlink message: header + payload, padded.
fn msg(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 16 + payload.len();
    let mut b = Vec::new();
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(&0u16.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(payload);
    b.resize(align(b.len()), 0);
    b
}

fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(value);
    b.resize(align(b.len()), 0);
    b
}

fn netconf(family: u8, attrs: &[(u16, i32)]) -> Vec<u8> {
    let mut p = vec![family, 0, 0, 0];
    for (k, v) in attrs {
        p.extend(nla(*k, &v.to_ne_bytes()));
    }
    p
}

#[test]
fn netconf_is_decoded_by_us() {
    let bytes = msg(
        RTM_NEWNETCONF,
        &netconf(libc::AF_INET as u8, &[(1, -1), (2, 1), (3, 2), (99, 5)]),
    );
    let ev = parse_messages(&bytes);
    let [NetEvent::NewNetconf(n)] = ev.as_slice() else {
        panic!("{ev:?}");
    };
    assert_eq!((n.family, n.ifindex), (4, -1));
    assert_eq!((n.forwarding, n.rp_filter), (Some(1), Some(2)));
    assert_eq!(n.unknown.len(), 1, "unknown attributes are kept raw");
    assert_eq!(n.unknown[0].kind, 99);
}

#[test]
fn malformed_messages_are_skipped_not_fatal() {
    let good = msg(
        RTM_NEWNETCONF,
        &netconf(libc::AF_INET6 as u8, &[(1, 3), (2, 1)]),
    );
    // A netconf without ifindex, a link message too short for its header,
    // a netconf of an unknown family, then a good one.
    let mut bytes = msg(RTM_NEWNETCONF, &netconf(libc::AF_INET as u8, &[(2, 1)]));
    bytes.extend(msg(16, &[1, 2, 3]));
    bytes.extend(msg(RTM_NEWNETCONF, &netconf(99, &[(1, 1)])));
    bytes.extend(&good);
    let ev = parse_messages(&bytes);
    assert_eq!(ev.len(), 1, "{ev:?}");
    // A header claiming more than there is ends the datagram quietly.
    let mut bad = good.clone();
    bad[0] = 0xff;
    assert!(parse_messages(&bad).is_empty());
    assert!(parse_messages(&good[..10]).is_empty());
}

#[test]
fn every_truncation_of_a_message_is_survived() {
    let m = msg(
        RTM_NEWNETCONF,
        &netconf(libc::AF_INET as u8, &[(1, 2), (2, 1), (3, 1)]),
    );
    for n in 0..m.len() {
        let _ = parse_messages(&m[..n]);
    }
    // And random bytes after a valid header.
    let mut seed = 0x1234_5678u32;
    for _ in 0..2000 {
        let mut b = msg(16 + (seed % 20) as u16, &[0; 64]);
        for x in b.iter_mut().skip(16) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *x = seed as u8;
        }
        let _ = parse_messages(&b);
    }
}

/// A bridge-port `RTM_NEWLINK` (`AF_BRIDGE`) as the kernel sends it with
/// `RTEXT_FILTER_BRVLAN_COMPRESSED`: port attributes in `IFLA_PROTINFO`,
/// VLANs in `IFLA_AF_SPEC` with a compressed range. Built with the crate's
/// own emitter (this machine's kernel has no VLAN filtering to record).
#[test]
fn bridge_view_decodes_port_attributes_and_vlan_ranges() {
    use netlink_packet_core::{DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::{
        AddressFamily,
        link::{
            AfSpecBridge, BridgeVlanInfo, BridgeVlanInfoFlags as F, LinkAttribute, LinkMessage,
            LinkProtoInfoBridge,
        },
    };

    let mut l = LinkMessage::default();
    l.header.interface_family = AddressFamily::Bridge;
    l.header.index = 7;
    let vlan = |flags: F, vid| AfSpecBridge::VlanInfo(BridgeVlanInfo { flags, vid });
    l.attributes = vec![
        LinkAttribute::Controller(3),
        LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(DefaultNla::new(1, vec![4])), // state blocking
            LinkProtoInfoBridge::Other(DefaultNla::new(8, vec![0])), // learning off
            LinkProtoInfoBridge::Other(DefaultNla::new(33, vec![1])), // isolated
            LinkProtoInfoBridge::Other(DefaultNla::new(39, vec![1])), // locked
        ]),
        LinkAttribute::AfSpecBridge(vec![
            vlan(F::Pvid | F::Untagged, 10),
            vlan(F::RangeBegin, 20),
            vlan(F::RangeEnd, 23),
            vlan(F::empty(), 100),
        ]),
    ];
    let mut header = NetlinkHeader::default();
    header.message_type = 16;
    let mut m = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::NewLink(l)),
    );
    m.finalize();
    let mut bytes = vec![0u8; m.buffer_len()];
    m.serialize(&mut bytes);

    let ev = parse_messages(&bytes);
    let [
        NetEvent::BridgeLink {
            ifindex,
            port,
            vlans,
        },
    ] = ev.as_slice()
    else {
        panic!("{ev:?}");
    };
    assert_eq!(*ifindex, 7);
    let p = port.clone().expect("port attributes");
    assert_eq!(p.state, 4);
    assert!(!p.learning && p.isolated && p.locked && p.unicast_flood);
    let v = vlans.clone().expect("vlans");
    assert_eq!(
        v.keys().copied().collect::<Vec<_>>(),
        vec![10, 20, 21, 22, 23, 100]
    );
    assert!(v[&10].pvid && v[&10].untagged);
    assert!(!v[&21].pvid && !v[&21].untagged);

    // Folded: the VLANs land on the port; leaving the bridge clears them.
    let mut s = crate::state::KernelState::default();
    s.apply(NetEvent::NewLink(crate::state::Link {
        ifindex: 7,
        name: "p".into(),
        ..Default::default()
    }));
    for e in ev {
        s.apply(e);
    }
    assert_eq!(s.vlans[&7].len(), 6);
    assert_eq!(s.links[&7].bridge_port.as_ref().map(|p| p.state), Some(4));
    s.apply(NetEvent::DelBridgeLink { ifindex: 7 });
    assert!(!s.vlans.contains_key(&7));
}
