//! The seed paper's virtual-router testbed: `src` ↔ `rtr` ↔ `dst`, each a
//! namespace, joined by veth pairs, IPv4 and IPv6, Linux forwarding on.
//!
//! ```text
//!  src              rtr                      dst
//!  s0 10.1.0.2/24 ─ r0 10.1.0.1/24
//!     fd01::2/64       fd01::1/64
//!                   r1 10.2.0.1/24 ─ d0 10.2.0.2/24
//!                      fd02::1/64       fd02::2/64
//! ```

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use crate::{
    error::Result,
    links::{addr, ifindex, mac, neighbour, route, sysctl, up, veth, wait_up},
    netns::Netns,
    traffic::{Iperf3, PingStats, Throughput, ping},
};

/// One end of a veth pair in the testbed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Interface name inside its namespace.
    pub name: &'static str,
    /// Interface index inside its namespace.
    pub ifindex: u32,
    /// MAC address.
    pub mac: [u8; 6],
    /// IPv4 address (prefix length 24).
    pub ipv4: Ipv4Addr,
    /// IPv6 address (prefix length 64).
    pub ipv6: Ipv6Addr,
}

impl Endpoint {
    /// The IPv6 or IPv4 address.
    pub fn ip(&self, v6: bool) -> IpAddr {
        if v6 {
            self.ipv6.into()
        } else {
            self.ipv4.into()
        }
    }
}

/// The three-namespace virtual router. Dropping it removes everything.
#[derive(Debug)]
pub struct VirtualRouter {
    /// The traffic source.
    pub src: Netns,
    /// The router (where LinuxFP is deployed).
    pub rtr: Netns,
    /// The traffic sink.
    pub dst: Netns,
    /// `s0` in `src`.
    pub src_if: Endpoint,
    /// `r0` in `rtr`, facing `src`.
    pub rtr_src_if: Endpoint,
    /// `r1` in `rtr`, facing `dst`.
    pub rtr_dst_if: Endpoint,
    /// `d0` in `dst`.
    pub dst_if: Endpoint,
}

/// How long a fresh veth may take to report carrier.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(5);

impl VirtualRouter {
    /// Builds the testbed; `tag` goes into the namespace names (`<tag>src`,
    /// `<tag>rtr`, `<tag>dst`), so say which test it is for.
    pub fn new(tag: &str) -> Result<Self> {
        let src = Netns::new(&format!("{tag}src"))?;
        let rtr = Netns::new(&format!("{tag}rtr"))?;
        let dst = Netns::new(&format!("{tag}dst"))?;
        veth(&src, "s0", &rtr, "r0")?;
        veth(&rtr, "r1", &dst, "d0")?;
        let plan: [(&Netns, &'static str, Ipv4Addr, Ipv6Addr); 4] = [
            (&src, "s0", Ipv4Addr::new(10, 1, 0, 2), v6(1, 2)),
            (&rtr, "r0", Ipv4Addr::new(10, 1, 0, 1), v6(1, 1)),
            (&rtr, "r1", Ipv4Addr::new(10, 2, 0, 1), v6(2, 1)),
            (&dst, "d0", Ipv4Addr::new(10, 2, 0, 2), v6(2, 2)),
        ];
        for (ns, ifname, ipv4, ipv6) in plan {
            // No DAD on the link-local address either, so neighbour
            // discovery has a usable source at once.
            sysctl(ns, &format!("net.ipv6.conf.{ifname}.accept_dad"), "0")?;
            addr(ns, ifname, &format!("{ipv4}/24"))?;
            addr(ns, ifname, &format!("{ipv6}/64"))?;
            up(ns, ifname)?;
        }
        sysctl(&rtr, "net.ipv4.ip_forward", "1")?;
        sysctl(&rtr, "net.ipv6.conf.all.forwarding", "1")?;
        route(&src, "default via 10.1.0.1")?;
        route(&src, "default via fd01::1")?;
        route(&dst, "default via 10.2.0.1")?;
        route(&dst, "default via fd02::1")?;
        let endpoint = |(ns, name, ipv4, ipv6): (&Netns, &'static str, Ipv4Addr, Ipv6Addr)| {
            wait_up(ns, name, LINK_UP_TIMEOUT)?;
            Ok::<_, crate::Error>(Endpoint {
                name,
                ifindex: ifindex(ns, name)?,
                mac: mac(ns, name)?,
                ipv4,
                ipv6,
            })
        };
        let [s0, r0, r1, d0] = plan;
        let (src_if, rtr_src_if) = (endpoint(s0)?, endpoint(r0)?);
        let (rtr_dst_if, dst_if) = (endpoint(r1)?, endpoint(d0)?);
        Ok(Self {
            src,
            rtr,
            dst,
            src_if,
            rtr_src_if,
            rtr_dst_if,
            dst_if,
        })
    }

    /// Installs permanent neighbour entries for every next hop (both
    /// families), so no ARP or ND happens during a measurement.
    pub fn set_static_neighbours(&self) -> Result<()> {
        for v6 in [false, true] {
            for (ns, via, peer) in [
                (&self.src, &self.src_if, &self.rtr_src_if),
                (&self.rtr, &self.rtr_src_if, &self.src_if),
                (&self.rtr, &self.rtr_dst_if, &self.dst_if),
                (&self.dst, &self.dst_if, &self.rtr_dst_if),
            ] {
                neighbour(ns, via.name, &peer.ip(v6).to_string(), peer.mac)?;
            }
        }
        Ok(())
    }

    /// Turns GRO on for the hosts' veths (`s0`, `d0`): an XDP redirect
    /// into a veth needs NAPI on the receiving peer.
    pub fn gro_on_hosts(&self) -> Result<()> {
        self.src
            .exec(&["ethtool", "-K", self.src_if.name, "gro", "on"])?;
        self.dst
            .exec(&["ethtool", "-K", self.dst_if.name, "gro", "on"])?;
        Ok(())
    }

    /// Turns IPv4 and IPv6 forwarding in `rtr` on or off.
    pub fn set_forwarding(&self, on: bool) -> Result<()> {
        let value = if on { "1" } else { "0" };
        sysctl(&self.rtr, "net.ipv4.ip_forward", value)?;
        sysctl(&self.rtr, "net.ipv6.conf.all.forwarding", value)
    }

    /// Pings `dst` from `src` through the router; true if all `count`
    /// requests were answered.
    pub fn ping(&self, v6: bool, count: u32) -> Result<bool> {
        Ok(self.ping_stats(v6, count)?.all_answered())
    }

    /// Pings `dst` from `src` through the router.
    pub fn ping_stats(&self, v6: bool, count: u32) -> Result<PingStats> {
        ping(&self.src, &self.dst_if.ip(v6).to_string(), count)
    }

    /// Runs `iperf3` from `src` to a server in `dst`, through the router.
    pub fn iperf3(&self, v6: bool, run: &Iperf3) -> Result<Throughput> {
        run.run(&self.dst, &self.dst_if.ip(v6).to_string(), &self.src)
    }
}

fn v6(subnet: u16, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00 | subnet, 0, 0, 0, 0, 0, 0, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_plan() {
        assert_eq!(v6(1, 2).to_string(), "fd01::2");
        assert_eq!(v6(2, 1).to_string(), "fd02::1");
    }
}
