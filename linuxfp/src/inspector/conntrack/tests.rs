// SPDX-License-Identifier: MIT OR Apache-2.0
//! The decoder on crafted messages: every field, both families, and
//! malformed input (an error naming the attribute, never a panic).

use std::net::IpAddr;

use super::{decode::*, *};
use crate::inspector::nftables::{DecodeError, NfMsg, attr::nla, parse_messages};

fn tuple(src: &str, dst: &str, proto: u8, sport: u16, dport: u16) -> CtTuple {
    CtTuple {
        src: src.parse::<IpAddr>().expect("addr"),
        dst: dst.parse::<IpAddr>().expect("addr"),
        proto,
        sport,
        dport,
    }
}

fn tcp_entry() -> CtEntry {
    let orig = tuple("10.0.1.2", "10.0.2.2", PROTO_TCP, 40000, 80);
    CtEntry {
        orig,
        reply: orig.inverted(),
        status: IPS_CONFIRMED | IPS_ASSURED | IPS_SEEN_REPLY,
        timeout: 431999,
        mark: 7,
        zone: 0,
        id: 1234,
        tcp: Some(TcpInfo {
            state: TCP_CONNTRACK_ESTABLISHED,
            flags_orig: IP_CT_TCP_FLAG_BE_LIBERAL | 0x02,
            flags_reply: 0x02,
        }),
        helper: false,
        rewrites: false,
    }
}

fn msg(op: u8, payload: Vec<u8>) -> NfMsg {
    NfMsg {
        kind: (u16::from(NFNL_SUBSYS_CTNETLINK) << 8) | u16::from(op),
        subsys: NFNL_SUBSYS_CTNETLINK,
        op,
        flags: 0,
        seq: 0,
        family: 2,
        res_id: 0,
        payload,
    }
}

#[test]
fn decodes_every_field_of_a_tcp_entry() {
    let e = tcp_entry();
    let got = decode_message(&msg(IPCTNL_MSG_CT_NEW, encode_entry(&e))).expect("decodes");
    assert_eq!(got, Some(CtEvent::Upsert(e.clone())));
    let tcp = e.tcp.expect("tcp");
    assert!(!tcp.liberal(), "only the original direction is liberal");
    let both = TcpInfo {
        flags_reply: IP_CT_TCP_FLAG_BE_LIBERAL,
        ..tcp
    };
    assert!(both.liberal());
}

#[test]
fn decodes_ipv6_udp_destroy_with_helper_and_zone() {
    let orig = tuple("fd00:1::2", "fd00:2::2", PROTO_UDP, 5353, 53);
    let e = CtEntry {
        orig,
        reply: orig.inverted(),
        status: IPS_CONFIRMED | IPS_DYING,
        timeout: 0,
        mark: 0,
        zone: 3,
        id: 9,
        tcp: None,
        helper: true,
        rewrites: false,
    };
    let got = decode_message(&msg(IPCTNL_MSG_CT_DELETE, encode_entry(&e))).expect("decodes");
    assert_eq!(got, Some(CtEvent::Destroy(e)));
}

#[test]
fn nat_attributes_and_other_messages() {
    let mut e = tcp_entry();
    e.reply.dst = "192.0.2.1".parse().expect("addr");
    let mut b = encode_entry(&e);
    b.extend(nla(13 | 0x8000, &nla(1, &[192, 0, 2, 1])));
    let Some(CtEvent::Upsert(got)) = decode_message(&msg(IPCTNL_MSG_CT_NEW, b)).expect("ok") else {
        panic!("an entry");
    };
    assert!(got.rewrites);
    assert_ne!(got.reply, got.orig.inverted());
    // A GET (a request echoed) and another subsystem are not entries.
    assert_eq!(decode_message(&msg(IPCTNL_MSG_CT_GET, vec![])), Ok(None));
    let mut other = msg(IPCTNL_MSG_CT_NEW, vec![]);
    other.subsys = 2;
    assert_eq!(decode_message(&other), Ok(None));
}

#[test]
fn malformed_entries_are_errors_not_panics() {
    let good = encode_entry(&tcp_entry());
    // Every truncation of a valid entry: an error or (at attribute
    // boundaries past the mandatory ones) a smaller entry, never a panic.
    for n in 0..good.len() {
        let _ = decode_message(&msg(IPCTNL_MSG_CT_NEW, good[..n].to_vec()));
    }
    assert!(matches!(
        decode_message(&msg(IPCTNL_MSG_CT_NEW, good[..good.len() - 2].to_vec())),
        Err(DecodeError::Truncated { .. })
    ));
    // No original tuple.
    assert!(matches!(
        decode_message(&msg(IPCTNL_MSG_CT_NEW, nla(3, &8u32.to_be_bytes()))),
        Err(DecodeError::Missing { .. })
    ));
    // A 3-byte IPv4 address.
    let ip = nla(1, &[10, 0, 0]);
    let bad = nla(1 | 0x8000, &nla(1 | 0x8000, &ip));
    assert!(decode_message(&msg(IPCTNL_MSG_CT_NEW, bad)).is_err());
    // A status of the wrong size.
    let mut b = encode_tuple(1, &tcp_entry().orig);
    b.extend(encode_tuple(2, &tcp_entry().reply));
    b.extend(nla(3, &[0, 8]));
    assert!(matches!(
        decode_message(&msg(IPCTNL_MSG_CT_NEW, b)),
        Err(DecodeError::Length { .. })
    ));
}

#[test]
fn framed_messages_decode_through_the_nfnetlink_parser() {
    let e = tcp_entry();
    let payload = encode_entry(&e);
    let len = 16 + 4 + payload.len();
    let mut b = Vec::new();
    b.extend_from_slice(&(len as u32).to_ne_bytes());
    b.extend_from_slice(&(u16::from(NFNL_SUBSYS_CTNETLINK) << 8).to_ne_bytes());
    b.extend_from_slice(&0u16.to_ne_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[2, 0, 0, 0]);
    b.extend_from_slice(&payload);
    let msgs = parse_messages(&b);
    assert_eq!(msgs.len(), 1);
    assert_eq!(decode_message(&msgs[0]), Ok(Some(CtEvent::Upsert(e))));
}

#[test]
fn timeout_request_names_the_original_tuple_and_the_seconds() {
    let e = tcp_entry();
    let b = timeout_request(&e.orig, 120);
    // The request's attributes decode as a (partial) entry would.
    let a = crate::inspector::nftables::attr::Attrs::parse(&b, "req").expect("attrs");
    assert_eq!(a.req_be32(CTA_TIMEOUT, "TIMEOUT"), Ok(120));
    let mut full = b.clone();
    full.extend(encode_tuple(2, &e.reply));
    full.extend(nla(3, &0u32.to_be_bytes()));
    let Some(CtEvent::Upsert(got)) = decode_message(&msg(0, full)).expect("ok") else {
        panic!("an entry");
    };
    assert_eq!(got.orig, e.orig);
    assert_eq!(got.timeout, 120);
}
