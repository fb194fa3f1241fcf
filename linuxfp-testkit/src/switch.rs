//! A Linux bridge with hosts: `sw` holds `br0` and ports `p1..pN`; each
//! host `hI` is a namespace whose `e0` (10.50.0.I/24, fd50::I/64) is the
//! peer of `pI`.
//!
//! ```text
//!  h1 e0 ─ p1 ┐
//!  h2 e0 ─ p2 ├ br0  (sw)
//!  h3 e0 ─ p3 ┘
//! ```

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use crate::{
    error::Result,
    links::{addr, bridge, enslave, ifindex, mac, sysctl, up, veth, wait_up},
    netns::Netns,
    traffic::{PingStats, ping},
};

/// One host on the switch.
#[derive(Debug)]
pub struct Host {
    /// Its namespace.
    pub ns: Netns,
    /// `e0`'s MAC.
    pub mac: [u8; 6],
    /// `e0`'s IPv4 address (/24).
    pub ipv4: Ipv4Addr,
    /// `e0`'s IPv6 address (/64).
    pub ipv6: Ipv6Addr,
    /// The bridge port facing it (`pI` in `sw`).
    pub port: String,
    /// That port's ifindex.
    pub port_ifindex: u32,
}

/// The switch testbed. Dropping it removes every namespace.
#[derive(Debug)]
pub struct Switch {
    /// The switch namespace (where LinuxFP is deployed).
    pub sw: Netns,
    /// `br0`'s ifindex.
    pub bridge_ifindex: u32,
    /// The hosts, `h1` first.
    pub hosts: Vec<Host>,
}

/// How long a fresh veth may take to report carrier.
const LINK_UP_TIMEOUT: Duration = Duration::from_secs(5);

impl Switch {
    /// Builds the switch with `hosts` hosts; `tag` goes into the namespace
    /// names.
    pub fn new(tag: &str, hosts: usize) -> Result<Self> {
        let sw = Netns::new(&format!("{tag}sw"))?;
        bridge(&sw, "br0")?;
        let mut out = Vec::with_capacity(hosts);
        for i in 1..=hosts {
            let ns = Netns::new(&format!("{tag}h{i}"))?;
            let port = format!("p{i}");
            veth(&sw, &port, &ns, "e0")?;
            enslave(&sw, &port, "br0")?;
            up(&sw, &port)?;
            let ipv4 = Ipv4Addr::new(10, 50, 0, i as u8);
            let ipv6 = Ipv6Addr::new(0xfd50, 0, 0, 0, 0, 0, 0, i as u16);
            sysctl(&ns, "net.ipv6.conf.e0.accept_dad", "0")?;
            addr(&ns, "e0", &format!("{ipv4}/24"))?;
            addr(&ns, "e0", &format!("{ipv6}/64"))?;
            up(&ns, "e0")?;
            wait_up(&ns, "e0", LINK_UP_TIMEOUT)?;
            out.push(Host {
                mac: mac(&ns, "e0")?,
                port_ifindex: ifindex(&sw, &port)?,
                ns,
                ipv4,
                ipv6,
                port,
            });
        }
        let bridge_ifindex = ifindex(&sw, "br0")?;
        Ok(Switch {
            sw,
            bridge_ifindex,
            hosts: out,
        })
    }

    /// Pings host `to` (index) from host `from`, `count` times.
    pub fn ping(&self, from: usize, to: usize, v6: bool, count: u32) -> Result<PingStats> {
        let dst = if v6 {
            self.hosts[to].ipv6.to_string()
        } else {
            self.hosts[to].ipv4.to_string()
        };
        ping(&self.hosts[from].ns, &dst, count)
    }

    /// Installs permanent neighbour entries between every pair of hosts
    /// (both families), so no ARP or ND crosses the switch.
    pub fn set_static_neighbours(&self) -> Result<()> {
        for a in &self.hosts {
            for b in &self.hosts {
                if a.mac == b.mac {
                    continue;
                }
                for ip in [b.ipv4.to_string(), b.ipv6.to_string()] {
                    crate::links::neighbour(&a.ns, "e0", &ip, b.mac)?;
                }
            }
        }
        Ok(())
    }

    /// The MACs `bridge fdb show` lists as learnt on bridge ports (not
    /// local, not permanent), with their port names.
    pub fn learnt_macs(&self) -> Result<Vec<(String, String)>> {
        let text = self.sw.exec(&["bridge", "fdb", "show", "br", "br0"])?;
        Ok(text
            .lines()
            .filter(|l| !l.contains("permanent") && !l.contains("static"))
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let mac = w.next()?.to_string();
                let dev = w.skip_while(|x| *x != "dev").nth(1)?.to_string();
                Some((mac, dev))
            })
            .collect())
    }
}
