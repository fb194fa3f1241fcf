// SPDX-License-Identifier: MIT OR Apache-2.0
//! Which kernel conntrack entries the fast path may treat as ESTABLISHED,
//! and their keys in the mirror. Pure.
//!
//! An entry is mirrored only when every packet of the flow that is not a
//! TCP SYN, FIN or RST would get ctinfo ESTABLISHED (or ESTABLISHED_REPLY)
//! in the kernel and need nothing else from it:
//! - `CONFIRMED`, `SEEN_REPLY` and `ASSURED`, not `DYING`: the kernel saw
//!   both directions and settled the connection itself;
//! - no NAT: no `SRC_NAT`/`DST_NAT` bits, no NAT or sequence-adjust
//!   attributes, and the reply tuple is the original one inverted (the
//!   kernel rewrites NAT'd packets; the fast path does not);
//! - no helper (it must see the payload), zone 0 (the fast path does not
//!   know a packet's zone), not offloaded to a flowtable, no fixed
//!   timeout, not a template or untracked;
//! - UDP; or TCP in state ESTABLISHED whose window tracking cannot go
//!   stale: `nf_conntrack_tcp_be_liberal=1`, or `BE_LIBERAL` on both
//!   directions. Packets the fast path forwards never update the kernel's
//!   `td_end`/`td_maxend`; with window tracking on, a later packet the
//!   kernel does see (the FIN) could fall outside the stale window and be
//!   classified INVALID. Such TCP flows stay on the slow path.

use std::net::IpAddr;

use linuxfp::inspector::conntrack::{
    CtEntry, CtTuple, IPS_ASSURED, IPS_CONFIRMED, IPS_DST_NAT, IPS_DYING, IPS_FIXED_TIMEOUT,
    IPS_HW_OFFLOAD, IPS_OFFLOAD, IPS_SEEN_REPLY, IPS_SRC_NAT, IPS_TEMPLATE, IPS_UNTRACKED,
    PROTO_TCP, PROTO_UDP, TCP_CONNTRACK_ESTABLISHED,
};
use linuxfp_ebpf_common::filter::{CT_CSUM_CHECKED, CT_EST_ORIGINAL, CT_EST_REPLY, CtKey, CtValue};

/// The namespace's conntrack settings that decide eligibility and
/// timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtSettings {
    /// `net.netfilter.nf_conntrack_tcp_be_liberal`.
    pub tcp_be_liberal: bool,
    /// `net.netfilter.nf_conntrack_tcp_timeout_established`, seconds.
    pub tcp_established: u32,
    /// `net.netfilter.nf_conntrack_udp_timeout_stream`, seconds.
    pub udp_stream: u32,
    /// `net.netfilter.nf_conntrack_checksum`: the kernel calls packets
    /// with a bad L4 checksum INVALID (at prerouting).
    pub checksum: bool,
}

impl Default for CtSettings {
    /// The kernel's defaults.
    fn default() -> Self {
        CtSettings {
            tcp_be_liberal: false,
            tcp_established: 432_000,
            udp_stream: 120,
            checksum: true,
        }
    }
}

/// Why an entry is not mirrored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ineligible {
    /// Not (yet) `CONFIRMED`, `SEEN_REPLY` and `ASSURED`.
    NotAssured,
    /// `DYING`.
    Dying,
    /// NAT or sequence adjustment.
    Nat,
    /// A helper is attached.
    Helper,
    /// A zone other than 0.
    Zone,
    /// Offloaded, fixed timeout, template or untracked.
    Special,
    /// Neither TCP nor UDP.
    Protocol,
    /// TCP, not in state ESTABLISHED.
    TcpState,
    /// TCP with window tracking on.
    TcpWindow,
}

/// Whether the fast path may treat `e`'s packets as ESTABLISHED.
pub fn eligible(e: &CtEntry, s: &CtSettings) -> Result<(), Ineligible> {
    let need = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED;
    if e.status & IPS_DYING != 0 {
        return Err(Ineligible::Dying);
    }
    if e.status & need != need {
        return Err(Ineligible::NotAssured);
    }
    if e.status & (IPS_SRC_NAT | IPS_DST_NAT) != 0 || e.rewrites || e.reply != e.orig.inverted() {
        return Err(Ineligible::Nat);
    }
    if e.helper {
        return Err(Ineligible::Helper);
    }
    if e.zone != 0 {
        return Err(Ineligible::Zone);
    }
    let special = IPS_OFFLOAD | IPS_HW_OFFLOAD | IPS_FIXED_TIMEOUT | IPS_TEMPLATE | IPS_UNTRACKED;
    if e.status & special != 0 {
        return Err(Ineligible::Special);
    }
    match e.orig.proto {
        PROTO_UDP => Ok(()),
        PROTO_TCP => match e.tcp {
            Some(t) if t.state != TCP_CONNTRACK_ESTABLISHED => Err(Ineligible::TcpState),
            None => Err(Ineligible::TcpState),
            Some(t) if !s.tcp_be_liberal && !t.liberal() => Err(Ineligible::TcpWindow),
            Some(_) => Ok(()),
        },
        _ => Err(Ineligible::Protocol),
    }
}

/// The timeout the kernel sets when it sees a packet of an eligible entry
/// (`nf_ct_refresh` from the TCP or UDP tracker), seconds.
pub fn refreshed_timeout(e: &CtEntry, s: &CtSettings) -> u32 {
    if e.orig.proto == PROTO_TCP {
        s.tcp_established
    } else {
        s.udp_stream
    }
}

/// The mirror key of packets carrying `t`.
pub fn ct_key(t: &CtTuple) -> CtKey {
    let mut k = CtKey {
        l4proto: t.proto,
        sport: t.sport,
        dport: t.dport,
        ..Default::default()
    };
    match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            k.l3 = 4;
            k.saddr[..4].copy_from_slice(&s.octets());
            k.daddr[..4].copy_from_slice(&d.octets());
        }
        (s, d) => {
            k.l3 = 6;
            let six = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                IpAddr::V6(a) => a.octets(),
            };
            k.saddr = six(s);
            k.daddr = six(d);
        }
    }
    k
}

/// The two mirror entries of an eligible entry: packets in the original
/// direction, then in the reply direction.
pub fn mirror_entries(e: &CtEntry, s: &CtSettings) -> [(CtKey, CtValue); 2] {
    let value = |ct: u8| CtValue {
        ct: u32::from(ct),
        flags: if s.checksum { CT_CSUM_CHECKED } else { 0 },
    };
    [
        (ct_key(&e.orig), value(CT_EST_ORIGINAL)),
        (ct_key(&e.reply), value(CT_EST_REPLY)),
    ]
}

#[cfg(test)]
mod tests {
    use linuxfp::inspector::conntrack::{IP_CT_TCP_FLAG_BE_LIBERAL, IPS_EXPECTED, TcpInfo};

    use super::*;

    fn udp() -> CtEntry {
        let orig = CtTuple {
            src: "10.0.1.2".parse().expect("addr"),
            dst: "10.0.2.2".parse().expect("addr"),
            proto: PROTO_UDP,
            sport: 40000,
            dport: 5000,
        };
        CtEntry {
            orig,
            reply: orig.inverted(),
            status: IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED,
            timeout: 100,
            mark: 0,
            zone: 0,
            id: 1,
            tcp: None,
            helper: false,
            rewrites: false,
        }
    }

    fn tcp(state: u8, flags: u8) -> CtEntry {
        let mut e = udp();
        e.orig.proto = PROTO_TCP;
        e.reply.proto = PROTO_TCP;
        e.tcp = Some(TcpInfo {
            state,
            flags_orig: flags,
            flags_reply: flags,
        });
        e
    }

    #[test]
    fn assured_plain_udp_is_mirrored_and_everything_else_is_not() {
        let s = CtSettings::default();
        assert_eq!(eligible(&udp(), &s), Ok(()));
        // A related (expected) flow that is assured: ESTABLISHED too.
        let mut e = udp();
        e.status |= IPS_EXPECTED;
        assert_eq!(eligible(&e, &s), Ok(()));
        type Change = fn(&mut CtEntry);
        let cases: [(Change, Ineligible); 10] = [
            (|e| e.status &= !IPS_ASSURED, Ineligible::NotAssured),
            (|e| e.status &= !IPS_CONFIRMED, Ineligible::NotAssured),
            (|e| e.status &= !IPS_SEEN_REPLY, Ineligible::NotAssured),
            (|e| e.status |= IPS_DYING, Ineligible::Dying),
            (|e| e.status |= IPS_SRC_NAT, Ineligible::Nat),
            (
                |e| e.reply.dst = "192.0.2.1".parse().expect("addr"),
                Ineligible::Nat,
            ),
            (|e| e.rewrites = true, Ineligible::Nat),
            (|e| e.helper = true, Ineligible::Helper),
            (|e| e.zone = 1, Ineligible::Zone),
            (|e| e.status |= IPS_OFFLOAD, Ineligible::Special),
        ];
        for (change, why) in cases {
            let mut e = udp();
            change(&mut e);
            assert_eq!(eligible(&e, &s), Err(why), "{e:?}");
        }
        let mut icmp = udp();
        icmp.orig.proto = 1;
        icmp.reply.proto = 1;
        assert_eq!(eligible(&icmp, &s), Err(Ineligible::Protocol));
    }

    #[test]
    fn tcp_needs_established_and_no_window_tracking() {
        let strict = CtSettings::default();
        let liberal = CtSettings {
            tcp_be_liberal: true,
            ..strict
        };
        let est = tcp(TCP_CONNTRACK_ESTABLISHED, 0);
        assert_eq!(eligible(&est, &strict), Err(Ineligible::TcpWindow));
        assert_eq!(eligible(&est, &liberal), Ok(()));
        // Liberal by entry flag, both directions.
        let flagged = tcp(TCP_CONNTRACK_ESTABLISHED, IP_CT_TCP_FLAG_BE_LIBERAL);
        assert_eq!(eligible(&flagged, &strict), Ok(()));
        let mut one_way = flagged.clone();
        if let Some(t) = &mut one_way.tcp {
            t.flags_reply = 0;
        }
        assert_eq!(eligible(&one_way, &strict), Err(Ineligible::TcpWindow));
        // FIN_WAIT (4), TIME_WAIT (7): the kernel is tearing it down.
        for state in [1, 2, 4, 7] {
            assert_eq!(
                eligible(&tcp(state, 0), &liberal),
                Err(Ineligible::TcpState)
            );
        }
        assert_eq!(refreshed_timeout(&est, &strict), 432_000);
        assert_eq!(refreshed_timeout(&udp(), &strict), 120);
    }

    #[test]
    fn both_directions_are_keyed() {
        let e = udp();
        let [(ko, vo), (kr, vr)] = mirror_entries(&e, &CtSettings::default());
        assert_eq!(
            (ko.l3, ko.l4proto, ko.sport, ko.dport),
            (4, 17, 40000, 5000)
        );
        assert_eq!(&ko.saddr[..4], &[10, 0, 1, 2]);
        assert_eq!(&ko.daddr[..4], &[10, 0, 2, 2]);
        assert_eq!((kr.sport, kr.dport), (5000, 40000));
        assert_eq!(&kr.saddr[..4], &[10, 0, 2, 2]);
        assert_eq!(vo.ct, u32::from(CT_EST_ORIGINAL));
        assert_eq!(vr.ct, u32::from(CT_EST_REPLY));
        assert_eq!(vo.flags, CT_CSUM_CHECKED, "the kernel checks by default");
        let unchecked = CtSettings {
            checksum: false,
            ..CtSettings::default()
        };
        assert_eq!(mirror_entries(&e, &unchecked)[1].1.flags, 0);
        let mut six = e.clone();
        six.orig.src = "fd00::1".parse().expect("addr");
        six.orig.dst = "fd00::2".parse().expect("addr");
        let k = ct_key(&six.orig);
        assert_eq!(k.l3, 6);
        assert_eq!(k.saddr[15], 1);
    }
}
