//! A Flannel-like two-node cluster in namespaces: the network a Kubernetes
//! node gets from Flannel, with its bridge, overlay, routes and iptables
//! rules, built by hand the way `flanneld` and the CNI bridge plugin
//! program the kernel.
//!
//! ```text
//!  node 1 (192.168.50.1)                          node 2 (192.168.50.2)
//!  pod1-1 e0 10.244.1.2 ─ veth1 ┐                ┌ veth1 ─ pod2-1 e0 10.244.2.2
//!  pod1-2 e0 10.244.1.3 ─ veth2 ┴ cni0 10.244.1.1 │ cni0 10.244.2.1 ┴ veth2 ─ pod2-2 …
//!                   flannel.1 10.244.1.0/32 (VXLAN 1, :8472)   flannel.1 10.244.2.0/32
//!                   eth0 ──────────────── the wire ──────────────── eth0
//! ```
//!
//! Inter-node traffic goes either through the VXLAN device `flannel.1`
//! (Flannel's default `vxlan` backend: the peer's pod subnet routed via
//! `flannel.1` to an on-link gateway `10.244.M.0`, with a permanent
//! neighbour entry for it and a static FDB entry sending that MAC to the
//! peer node, learning off) or straight over the wire (`host-gw`: the
//! peer's pod subnet routed via the peer's node address). Each node
//! forwards, and carries Flannel's iptables rules: `FLANNEL-FWD` in the
//! filter table's `FORWARD` accepting the cluster CIDR both ways, and,
//! with `--ip-masq` (as the kube-flannel manifest runs flanneld),
//! `FLANNEL-POSTRTG` in the nat table's `POSTROUTING`, which returns
//! pod-to-pod traffic un-NATed and masquerades pods' traffic leaving the
//! cluster.

use std::{net::Ipv4Addr, time::Duration};

use crate::{
    error::Result,
    links::{addr, bridge, enslave, format_mac, mac, neighbour, route, sysctl, up, veth, wait_up},
    netns::Netns,
    traffic::{Iperf3, PingStats, Throughput, ping},
};

/// The cluster's pod network (Flannel's `Network`).
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";

/// The VXLAN UDP port Flannel uses on Linux.
pub const VXLAN_PORT: u16 = 8472;

/// How pods on different nodes reach each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// Flannel's default: the VXLAN overlay device `flannel.1`.
    Vxlan,
    /// Flannel's `host-gw`: routes via the peer node's address.
    HostGw,
}

impl Backend {
    /// Both backends.
    pub const ALL: [Backend; 2] = [Backend::Vxlan, Backend::HostGw];

    /// The name Flannel's configuration uses (`"vxlan"`, `"host-gw"`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
        }
    }

    /// The pods' MTU: Flannel leaves 50 bytes for the VXLAN encapsulation.
    pub fn pod_mtu(self) -> u32 {
        match self {
            Backend::Vxlan => 1450,
            Backend::HostGw => 1500,
        }
    }
}

/// A pod: a namespace whose `e0` is attached to its node's `cni0`.
#[derive(Debug)]
pub struct Pod {
    /// Its namespace.
    pub ns: Netns,
    /// `e0`'s address (in its node's /24).
    pub ipv4: Ipv4Addr,
    /// The bridge port in the node facing it (`vethI`).
    pub port: String,
}

/// A node: a namespace with `eth0` on the wire, `cni0`, the pods'
/// ports and (with VXLAN) `flannel.1`.
#[derive(Debug)]
pub struct Node {
    /// Its namespace (where LinuxFP runs on a real node).
    pub ns: Netns,
    /// 1 or 2: the third octet of its pod subnet, the last of its address.
    pub index: u8,
    /// `eth0`'s address on the wire (192.168.50.index/24).
    pub address: Ipv4Addr,
    /// Its pods, in address order.
    pub pods: Vec<Pod>,
}

impl Node {
    /// Its pod subnet, `10.244.index.0/24` (Flannel's lease).
    pub fn pod_subnet(&self) -> String {
        format!("10.244.{}.0/24", self.index)
    }
}

/// The two-node cluster. Dropping it removes every namespace, and with
/// them every link, route and rule it made.
#[derive(Debug)]
pub struct FlannelCluster {
    /// How inter-node traffic travels.
    pub backend: Backend,
    /// Whether flanneld's `--ip-masq` rules (the nat table) are installed.
    pub ip_masq: bool,
    /// Node 1 and node 2.
    pub nodes: [Node; 2],
}

/// How long a fresh veth may take to report carrier.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(5);

impl FlannelCluster {
    /// Builds two nodes with `pods` pods (at most 253) each, with flanneld's `--ip-masq`
    /// rules as the kube-flannel manifest has them; `tag` goes into the
    /// namespace names, so say which test it is for.
    pub fn new(tag: &str, backend: Backend, pods: usize) -> Result<Self> {
        Self::with_ip_masq(tag, backend, pods, true)
    }

    /// [`FlannelCluster::new`], with (`ip_masq`) or without the nat
    /// table's `FLANNEL-POSTRTG` rules (flanneld's own default is
    /// without).
    pub fn with_ip_masq(tag: &str, backend: Backend, pods: usize, ip_masq: bool) -> Result<Self> {
        let n1 = Netns::new(&format!("{tag}n1"))?;
        let n2 = Netns::new(&format!("{tag}n2"))?;
        veth(&n1, "eth0", &n2, "eth0")?;
        let nodes = [
            node(n1, 1, backend, pods, ip_masq)?,
            node(n2, 2, backend, pods, ip_masq)?,
        ];
        match backend {
            Backend::Vxlan => {
                let macs = [
                    mac(&nodes[0].ns, "flannel.1")?,
                    mac(&nodes[1].ns, "flannel.1")?,
                ];
                for (this, peer) in [(0, 1), (1, 0)] {
                    vxlan_peer(&nodes[this], &nodes[peer], macs[peer])?;
                }
            }
            Backend::HostGw => {
                for (this, peer) in [(0, 1), (1, 0)] {
                    let spec = format!(
                        "{} via {} dev eth0",
                        nodes[peer].pod_subnet(),
                        nodes[peer].address
                    );
                    route(&nodes[this].ns, &spec)?;
                }
            }
        }
        for node in &nodes {
            wait_up(&node.ns, "eth0", LINK_UP_TIMEOUT)?;
            for pod in &node.pods {
                wait_up(&pod.ns, "e0", LINK_UP_TIMEOUT)?;
            }
        }
        Ok(Self {
            backend,
            ip_masq,
            nodes,
        })
    }

    /// Sets `net.netfilter.nf_conntrack_tcp_be_liberal` on both nodes, as
    /// kube-proxy does with `conntrack.tcpBeLiberal` (`--conntrack-tcp-be-liberal`):
    /// conntrack stops calling out-of-window TCP segments INVALID.
    pub fn set_tcp_be_liberal(&self, on: bool) -> Result<()> {
        let v = format!("net.netfilter.nf_conntrack_tcp_be_liberal={}", u8::from(on));
        for n in &self.nodes {
            n.ns.exec(&["sysctl", "-qw", &v])?;
        }
        Ok(())
    }

    /// The pod `pod` (index) of node `node` (0 or 1).
    pub fn pod(&self, node: usize, pod: usize) -> &Pod {
        &self.nodes[node].pods[pod]
    }

    /// Pings pod `to` from pod `from`, each given as (node, pod).
    pub fn ping(&self, from: (usize, usize), to: (usize, usize), count: u32) -> Result<PingStats> {
        ping(
            &self.pod(from.0, from.1).ns,
            &self.pod(to.0, to.1).ipv4.to_string(),
            count,
        )
    }

    /// Runs `iperf3` from pod `from` to a server in pod `to`, each given as
    /// (node, pod).
    pub fn iperf3(
        &self,
        from: (usize, usize),
        to: (usize, usize),
        run: &Iperf3,
    ) -> Result<Throughput> {
        let server = self.pod(to.0, to.1);
        run.run(
            &server.ns,
            &server.ipv4.to_string(),
            &self.pod(from.0, from.1).ns,
        )
    }

    /// Runs one `iperf3` per pair at the same time, each from the first
    /// pod of the pair to a server in the second (pods given as (node,
    /// pod); every server pod must be distinct). Returns each pair's
    /// throughput, in order, or the first failure once all have ended.
    pub fn iperf3_pairs(&self, pairs: &[PodPair], run: &Iperf3) -> Result<Vec<Throughput>> {
        std::thread::scope(|scope| {
            let runs: Vec<_> = pairs
                .iter()
                .map(|&(from, to)| scope.spawn(move || self.iperf3(from, to, run)))
                .collect();
            // Join every thread before returning, so no client outlives
            // the call.
            let results: Vec<Result<Throughput>> = runs
                .into_iter()
                .map(|r| match r.join() {
                    Ok(result) => result,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect();
            results.into_iter().collect()
        })
    }
}

/// A client pod and a server pod, each as (node, pod).
pub type PodPair = ((usize, usize), (usize, usize));

/// Builds one node: `eth0`'s address, `cni0` with its pods, forwarding,
/// Flannel's iptables rules (with the nat ones if `ip_masq`) and, with VXLAN, `flannel.1` (its peer comes
/// later, once both devices exist).
fn node(ns: Netns, index: u8, backend: Backend, pods: usize, ip_masq: bool) -> Result<Node> {
    let address = Ipv4Addr::new(192, 168, 50, index);
    addr(&ns, "eth0", &format!("{address}/24"))?;
    up(&ns, "eth0")?;
    sysctl(&ns, "net.ipv4.ip_forward", "1")?;
    let mtu = backend.pod_mtu().to_string();
    if backend == Backend::Vxlan {
        // As flanneld creates it: VNI 1, its own port, the node's address
        // as source, no learning (flanneld writes the FDB itself).
        ns.exec(&[
            "ip",
            "link",
            "add",
            "flannel.1",
            "type",
            "vxlan",
            "id",
            "1",
            "local",
            &address.to_string(),
            "dev",
            "eth0",
            "dstport",
            &VXLAN_PORT.to_string(),
            "nolearning",
        ])?;
        ns.exec(&["ip", "link", "set", "flannel.1", "mtu", &mtu])?;
        addr(&ns, "flannel.1", &format!("10.244.{index}.0/32"))?;
        up(&ns, "flannel.1")?;
    }
    bridge(&ns, "cni0")?;
    addr(&ns, "cni0", &format!("10.244.{index}.1/24"))?;
    let mut out = Vec::with_capacity(pods);
    for i in 1..=pods {
        let pod = Netns::new(&format!("p{index}x{i}"))?;
        let port = format!("veth{i}");
        veth(&ns, &port, &pod, "e0")?;
        // The CNI bridge plugin gives both ends the network's MTU and
        // turns hairpin mode on for the port.
        ns.exec(&["ip", "link", "set", &port, "mtu", &mtu])?;
        enslave(&ns, &port, "cni0")?;
        ns.exec(&[
            "ip",
            "link",
            "set",
            &port,
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ])?;
        up(&ns, &port)?;
        let ipv4 = Ipv4Addr::new(10, 244, index, 1 + i as u8);
        pod.exec(&["ip", "link", "set", "e0", "mtu", &mtu])?;
        addr(&pod, "e0", &format!("{ipv4}/24"))?;
        up(&pod, "e0")?;
        route(&pod, &format!("default via 10.244.{index}.1"))?;
        out.push(Pod {
            ns: pod,
            ipv4,
            port,
        });
    }
    let node = Node {
        ns,
        index,
        address,
        pods: out,
    };
    flannel_rules(&node, ip_masq)?;
    Ok(node)
}

/// What flanneld programs for a VXLAN peer: a route to its pod subnet via
/// its `flannel.1` address (on-link, since that /32 is on no subnet of
/// ours), a permanent neighbour entry for that address with the peer's
/// `flannel.1` MAC, and an FDB entry sending that MAC to the peer node.
fn vxlan_peer(this: &Node, peer: &Node, peer_mac: [u8; 6]) -> Result<()> {
    let gateway = format!("10.244.{}.0", peer.index);
    route(
        &this.ns,
        &format!("{} via {gateway} dev flannel.1 onlink", peer.pod_subnet()),
    )?;
    neighbour(&this.ns, "flannel.1", &gateway, peer_mac)?;
    this.ns.exec(&[
        "bridge",
        "fdb",
        "replace",
        &format_mac(peer_mac),
        "dev",
        "flannel.1",
        "dst",
        &peer.address.to_string(),
        "self",
        "permanent",
    ])?;
    Ok(())
}

/// Flannel's iptables rules for this node (IPv4, iptables-nft): accept
/// forwarding to and from the cluster, leave pod-to-pod traffic un-NATed,
/// masquerade pods' traffic leaving the cluster (except multicast) and the
/// host's traffic entering it (the nat rules only with `ip_masq`). Each
/// rule carries flanneld's comment.
fn flannel_rules(node: &Node, ip_masq: bool) -> Result<()> {
    let pods = node.pod_subnet();
    let cluster = CLUSTER_CIDR;
    let fwd = ["-m", "comment", "--comment", "flanneld forward"];
    let masq = ["-m", "comment", "--comment", "flanneld masq"];
    let rules: [(&str, &[&str], &[&str]); 12] = [
        ("filter", &["-N", "FLANNEL-FWD"], &[]),
        ("filter", &["-A", "FORWARD"], &["-j", "FLANNEL-FWD"]),
        (
            "filter",
            &["-A", "FLANNEL-FWD", "-s", cluster],
            &["-j", "ACCEPT"],
        ),
        (
            "filter",
            &["-A", "FLANNEL-FWD", "-d", cluster],
            &["-j", "ACCEPT"],
        ),
        ("nat", &["-N", "FLANNEL-POSTRTG"], &[]),
        ("nat", &["-A", "POSTROUTING"], &["-j", "FLANNEL-POSTRTG"]),
        (
            // kube-proxy's masquerade mark: it NATs those itself.
            "nat",
            &[
                "-A",
                "FLANNEL-POSTRTG",
                "-m",
                "mark",
                "--mark",
                "0x4000/0x4000",
            ],
            &["-j", "RETURN"],
        ),
        (
            "nat",
            &["-A", "FLANNEL-POSTRTG", "-s", &pods, "-d", cluster],
            &["-j", "RETURN"],
        ),
        (
            "nat",
            &["-A", "FLANNEL-POSTRTG", "-s", cluster, "-d", &pods],
            &["-j", "RETURN"],
        ),
        (
            "nat",
            &["-A", "FLANNEL-POSTRTG", "!", "-s", cluster, "-d", &pods],
            &["-j", "RETURN"],
        ),
        (
            "nat",
            &[
                "-A",
                "FLANNEL-POSTRTG",
                "-s",
                cluster,
                "!",
                "-d",
                "224.0.0.0/4",
            ],
            &["-j", "MASQUERADE", "--random-fully"],
        ),
        (
            "nat",
            &["-A", "FLANNEL-POSTRTG", "!", "-s", cluster, "-d", cluster],
            &["-j", "MASQUERADE", "--random-fully"],
        ),
    ];
    for (table, matches, target) in rules {
        if table == "nat" && !ip_masq {
            continue;
        }
        let mut argv = vec!["iptables", "-w", "-t", table];
        argv.extend_from_slice(matches);
        if !target.is_empty() {
            argv.extend_from_slice(if table == "filter" { &fwd } else { &masq });
            argv.extend_from_slice(target);
        }
        node.ns.exec(&argv)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_named_as_flannel_names_them() {
        assert_eq!(Backend::Vxlan.name(), "vxlan");
        assert_eq!(Backend::HostGw.name(), "host-gw");
        assert_eq!(Backend::Vxlan.pod_mtu() + 50, Backend::HostGw.pod_mtu());
    }
}
