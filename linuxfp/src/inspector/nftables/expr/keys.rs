// SPDX-License-Identifier: MIT OR Apache-2.0
//! The keys of `meta` and `ct` expressions (`NFT_META_*`, `NFT_CT_*`).

use serde::{Deserialize, Serialize};

/// Defines a key enum numbered from 0 in declaration order (as the
/// kernel's enums are), with an `Other(u32)` variant for numbers it does
/// not list, and `from_u32`.
macro_rules! numbered_keys {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $v,)*
            /// A key this reader does not know, by number.
            Other(u32),
        }

        impl $name {
            /// From the kernel's number.
            pub fn from_u32(v: u32) -> Self {
                const KEYS: &[$name] = &[$($name::$v),*];
                usize::try_from(v)
                    .ok()
                    .and_then(|i| KEYS.get(i).copied())
                    .unwrap_or($name::Other(v))
            }
        }
    };
}

numbered_keys! {
    /// `NFT_META_*` keys.
    MetaKey {
        /// Packet length.
        Len,
        /// Ethertype (`skb->protocol`).
        Protocol,
        /// `skb->priority`.
        Priority,
        /// Packet mark.
        Mark,
        /// Input ifindex.
        Iif,
        /// Output ifindex.
        Oif,
        /// Input interface name (16 bytes, NUL padded).
        IifName,
        /// Output interface name.
        OifName,
        /// Input interface type.
        IifType,
        /// Output interface type.
        OifType,
        /// Socket UID.
        SkUid,
        /// Socket GID.
        SkGid,
        /// nftrace.
        NfTrace,
        /// Routing realm.
        RtClassId,
        /// Security mark.
        SecMark,
        /// Netfilter family (`NFPROTO_*`).
        NfProto,
        /// Layer-4 protocol number.
        L4Proto,
        /// Bridge input port name.
        BriIifName,
        /// Bridge output port name.
        BriOifName,
        /// Packet type (host, broadcast, multicast, other host).
        PktType,
        /// CPU number.
        Cpu,
        /// Input interface group.
        IifGroup,
        /// Output interface group.
        OifGroup,
        /// cgroup id.
        Cgroup,
        /// Pseudo-random number.
        Prandom,
        /// IPsec secpath present.
        Secpath,
        /// Input interface kind.
        IifKind,
        /// Output interface kind.
        OifKind,
        /// Bridge port PVID.
        BriIifPvid,
        /// Bridge VLAN protocol.
        BriIifVproto,
        /// Time in ns.
        TimeNs,
        /// Day of week.
        TimeDay,
        /// Hour of day.
        TimeHour,
        /// Slave device ifindex.
        Sdif,
        /// Slave device name.
        SdifName,
        /// Bridge broute.
        BriBroute,
    }
}

numbered_keys! {
    /// `NFT_CT_*` keys.
    CtKey {
        /// State bits (invalid 1, established 2, related 4, new 8, untracked 64).
        State,
        /// Direction.
        Direction,
        /// `IPS_*` status bits.
        Status,
        /// Connection mark.
        Mark,
        /// Security mark.
        SecMark,
        /// Time left.
        Expiration,
        /// Helper name.
        Helper,
        /// Layer-3 protocol.
        L3Protocol,
        /// Source address.
        Src,
        /// Destination address.
        Dst,
        /// Layer-4 protocol.
        Protocol,
        /// Source port.
        ProtoSrc,
        /// Destination port.
        ProtoDst,
        /// Labels.
        Labels,
        /// Packet count.
        Pkts,
        /// Byte count.
        Bytes,
        /// Average packet size.
        AvgPkt,
        /// Zone.
        Zone,
        /// Event mask.
        EventMask,
        /// IPv4 source.
        SrcIp,
        /// IPv4 destination.
        DstIp,
        /// IPv6 source.
        SrcIp6,
        /// IPv6 destination.
        DstIp6,
        /// Conntrack id.
        Id,
    }
}
