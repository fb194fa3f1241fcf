// SPDX-License-Identifier: MIT OR Apache-2.0
//! Links (network interfaces) and their bridge, VLAN and VXLAN attributes.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::RawAttr;

/// One network interface as the kernel reports it (`RTM_NEWLINK`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Interface index.
    pub ifindex: u32,
    /// Name.
    pub name: String,
    /// `IFLA_INFO_KIND` (`veth`, `bridge`, `vlan`, `vxlan`, `bond`, `dummy`,
    /// `vrf`, ...), `None` for physical devices.
    pub kind: Option<String>,
    /// `IFLA_INFO_SLAVE_KIND`: the kind of the master this link is a port of.
    pub port_kind: Option<String>,
    /// `IFF_*` flags, raw.
    pub flags: u32,
    /// `IFF_UP`.
    pub admin_up: bool,
    /// `IFF_RUNNING` or `IFF_LOWER_UP`: carrier.
    pub running: bool,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// MTU.
    pub mtu: u32,
    /// Hardware address (Ethernet-like links).
    pub mac: Option<[u8; 6]>,
    /// Master (bridge, bond, VRF), `IFLA_MASTER`.
    pub master: Option<u32>,
    /// Lower device (`IFLA_LINK`): the veth peer, the VLAN's parent, ...
    /// When `link_netnsid` is set it is an ifindex in another namespace.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the lower device lives in another namespace.
    pub link_netnsid: Option<i32>,
    /// Attached XDP program id, if any (ours or not).
    pub xdp_prog_id: Option<u32>,
    /// Bridge attributes, for `kind == "bridge"`.
    pub bridge: Option<BridgeAttrs>,
    /// Bridge port attributes, for ports of a bridge.
    pub bridge_port: Option<BridgePortAttrs>,
    /// 802.1Q attributes, for `kind == "vlan"`.
    pub vlan: Option<VlanAttrs>,
    /// VXLAN attributes, for `kind == "vxlan"`.
    pub vxlan: Option<VxlanAttrs>,
    /// Top-level attributes netlink-packet-route does not type, raw.
    pub unknown: Vec<RawAttr>,
}

/// Attributes of a bridge device (`IFLA_INFO_DATA` of kind `bridge`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeAttrs {
    /// `vlan_filtering`.
    pub vlan_filtering: bool,
    /// `stp_state` (0 off, 1 kernel STP, 2 user-space STP).
    pub stp_state: u32,
    /// `vlan_protocol` (ethertype, `0x8100` or `0x88a8`).
    pub vlan_protocol: u16,
    /// `default_pvid` given to new ports.
    pub default_pvid: u16,
    /// `nf_call_iptables`: with `br_netfilter` loaded, this bridge passes
    /// bridged IPv4 traffic through the `ip` hooks even when
    /// `net.bridge.bridge-nf-call-iptables` is off.
    #[serde(default)]
    pub nf_call_iptables: bool,
    /// `nf_call_ip6tables`: likewise for IPv6.
    #[serde(default)]
    pub nf_call_ip6tables: bool,
}

/// Attributes of a bridge port (`IFLA_INFO_SLAVE_DATA` or the `AF_BRIDGE`
/// `IFLA_PROTINFO`, both carry `IFLA_BRPORT_*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgePortAttrs {
    /// STP port state (`BR_STATE_*`: 0 disabled, 1 listening, 2 learning,
    /// 3 forwarding, 4 blocking).
    pub state: u8,
    /// Learning on.
    pub learning: bool,
    /// Unknown-unicast flooding on.
    pub unicast_flood: bool,
    /// Multicast flooding on.
    pub multicast_flood: bool,
    /// Broadcast flooding on.
    pub broadcast_flood: bool,
    /// Hairpin mode on.
    pub hairpin: bool,
    /// Port isolation on.
    pub isolated: bool,
    /// Port locked (802.1X).
    pub locked: bool,
    /// MAC authentication bypass on.
    pub mab: bool,
    /// Bridge-level proxy ARP on.
    pub proxy_arp: bool,
    /// Neighbour suppression on.
    pub neigh_suppress: bool,
}

impl Default for BridgePortAttrs {
    /// The kernel's defaults for a new port.
    fn default() -> Self {
        BridgePortAttrs {
            state: 3,
            learning: true,
            unicast_flood: true,
            multicast_flood: true,
            broadcast_flood: true,
            hairpin: false,
            isolated: false,
            locked: false,
            mab: false,
            proxy_arp: false,
            neigh_suppress: false,
        }
    }
}

/// Attributes of an 802.1Q VLAN device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanAttrs {
    /// VLAN id.
    pub id: u16,
    /// Protocol ethertype (`0x8100` or `0x88a8`).
    pub protocol: u16,
}

/// Attributes of a VXLAN device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanAttrs {
    /// VNI (`None` in external / collect-metadata mode).
    pub vni: Option<u32>,
    /// Local tunnel address.
    pub local: Option<IpAddr>,
    /// Multicast group or remote.
    pub group: Option<IpAddr>,
    /// Underlay device.
    pub link: Option<u32>,
    /// UDP destination port.
    pub port: Option<u16>,
}

/// A port's membership of one bridge VLAN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanMembership {
    /// The VLAN is the port's PVID (untagged ingress goes to it).
    pub pvid: bool,
    /// Frames of the VLAN leave the port untagged.
    pub untagged: bool,
}
