// SPDX-License-Identifier: MIT OR Apache-2.0
//! Namespaces with the configurations the inspector tests read: built
//! with `ip`, `bridge` and `sysctl`, removed on drop.

#![allow(dead_code)]

use linuxfp_testkit::{Netns, Result, VirtualRouter};

/// A bridge with an SVI: `br0` with 10.10.0.1/24 and ports `p1`, `p2`
/// (veths to a peer namespace; `p2` with learning off and hairpin on),
/// forwarding on. (This kernel has no `CONFIG_BRIDGE_VLAN_FILTERING` nor
/// 802.1Q, so VLAN filtering is covered by crafted messages instead.)
pub struct SviBridge {
    /// The namespace with the bridge.
    pub ns: Netns,
    /// The other ends of the ports.
    pub peer: Netns,
}

pub fn svi_bridge(tag: &str) -> Result<SviBridge> {
    let ns = Netns::new(&format!("{tag}br"))?;
    let peer = Netns::new(&format!("{tag}pe"))?;
    ns.sh(&format!(
        "set -e
        ip link add br0 type bridge
        ip link add p1 type veth peer name q1 netns {peer}
        ip link add p2 type veth peer name q2 netns {peer}
        ip link set p1 master br0
        ip link set p2 master br0
        ip addr add 10.10.0.1/24 dev br0
        ip link set p1 up; ip link set p2 up; ip link set br0 up
        bridge link set dev p2 learning off hairpin on
        bridge fdb add 02:00:00:00:00:aa dev p1 master static
        sysctl -qw net.ipv4.ip_forward=1",
        peer = peer.name()
    ))?;
    peer.sh("ip link set q1 up; ip link set q2 up")?;
    Ok(SviBridge { ns, peer })
}

/// A Flannel-like node: `eth0` (veth to a "network" namespace) with
/// 192.168.50.10/24, VXLAN `flannel.1` (VNI 1, port 8472, over eth0) with
/// 10.244.0.0/32, bridge `cni0` with 10.244.0.1/24 and two pods on veths,
/// routes to the other nodes' pod subnets over flannel.1, forwarding on.
pub struct FlannelNode {
    /// The node.
    pub node: Netns,
    /// The pods.
    pub pods: Vec<Netns>,
    /// The underlay peer.
    pub net: Netns,
}

pub fn flannel_node(tag: &str) -> Result<FlannelNode> {
    let node = Netns::new(&format!("{tag}node"))?;
    let net = Netns::new(&format!("{tag}net"))?;
    let pods = vec![
        Netns::new(&format!("{tag}pod1"))?,
        Netns::new(&format!("{tag}pod2"))?,
    ];
    node.sh(&format!(
        "set -e
        ip link add eth0 type veth peer name n0 netns {net}
        ip addr add 192.168.50.10/24 dev eth0
        ip link set eth0 up
        ip link add flannel.1 type vxlan id 1 local 192.168.50.10 dev eth0 dstport 8472 nolearning
        ip addr add 10.244.0.0/32 dev flannel.1
        ip link set flannel.1 up
        ip link add cni0 type bridge
        ip addr add 10.244.0.1/24 dev cni0
        ip link set cni0 up
        ip route add 10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink
        ip route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
        ip neigh add 10.244.1.0 lladdr 02:00:00:00:01:00 dev flannel.1 nud permanent
        bridge fdb append 02:00:00:00:01:00 dev flannel.1 dst 192.168.50.11
        sysctl -qw net.ipv4.ip_forward=1",
        net = net.name()
    ))?;
    net.sh("ip addr add 192.168.50.1/24 dev n0; ip link set n0 up")?;
    for (i, pod) in pods.iter().enumerate() {
        let n = i + 2;
        node.sh(&format!(
            "set -e
            ip link add veth{n} type veth peer name eth0 netns {pod}
            ip link set veth{n} master cni0
            ip link set veth{n} up",
            pod = pod.name()
        ))?;
        pod.sh(&format!(
            "set -e
            ip addr add 10.244.0.{n}/24 dev eth0
            ip link set eth0 up
            ip route add default via 10.244.0.1"
        ))?;
    }
    Ok(FlannelNode { node, pods, net })
}

/// Three bridges with two veth ports each (`brN` with `dN0`, `dN1`, whose
/// peers `eN0`, `eN1` stay unbridged), no addresses, no forwarding; `br2`
/// runs STP.
pub fn bridges(tag: &str) -> Result<Netns> {
    let ns = Netns::new(&format!("{tag}brs"))?;
    for b in 0..3 {
        ns.sh(&format!(
            "set -e
            ip link add br{b} type bridge
            ip link add d{b}0 type veth peer name e{b}0
            ip link add d{b}1 type veth peer name e{b}1
            ip link set e{b}0 up; ip link set e{b}1 up
            ip link set d{b}0 master br{b}
            ip link set d{b}1 master br{b}
            ip link set d{b}0 up; ip link set d{b}1 up; ip link set br{b} up"
        ))?;
    }
    ns.sh("ip link set br2 type bridge stp_state 1")?;
    Ok(ns)
}

/// The seed's virtual router.
pub fn router(tag: &str) -> Result<VirtualRouter> {
    VirtualRouter::new(tag)
}
