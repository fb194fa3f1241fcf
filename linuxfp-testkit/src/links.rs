//! Building blocks of test topologies: veth pairs, addresses, routes,
//! sysctls, bridges, and reading back what the kernel made of them.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    netns::Netns,
};

/// Creates a veth pair with `a_if` in `a` and `b_if` in `b`. It is created
/// inside `a` with its peer placed straight into `b`, so the host namespace
/// never sees either end. Both ends are left down.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    a.exec(&[
        "ip",
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    Ok(())
}

/// Adds an address (`"10.0.0.1/24"`, `"fd00::1/64"`) to an interface. IPv6
/// addresses get `nodad`, so they are usable at once.
pub fn addr(ns: &Netns, ifname: &str, cidr: &str) -> Result<()> {
    let mut argv = vec!["ip", "addr", "add", cidr, "dev", ifname];
    if cidr.contains(':') {
        argv.push("nodad");
    }
    ns.exec(&argv)?;
    Ok(())
}

/// Sets an interface up.
pub fn up(ns: &Netns, ifname: &str) -> Result<()> {
    ns.exec(&["ip", "link", "set", ifname, "up"])?;
    Ok(())
}

/// Adds a route, written as after `ip route add`: `"10.0.2.0/24 via
/// 10.0.1.1"`, `"default via fd01::1"`.
pub fn route(ns: &Netns, spec: &str) -> Result<()> {
    let mut argv = vec!["ip", "route", "add"];
    argv.extend(spec.split_whitespace());
    ns.exec(&argv)?;
    Ok(())
}

/// Sets a sysctl inside the namespace (`"net.ipv4.ip_forward"`, `"1"`).
pub fn sysctl(ns: &Netns, key: &str, value: &str) -> Result<()> {
    ns.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")])?;
    Ok(())
}

/// Creates a bridge and sets it up.
pub fn bridge(ns: &Netns, name: &str) -> Result<()> {
    ns.exec(&["ip", "link", "add", name, "type", "bridge"])?;
    up(ns, name)
}

/// Makes `port` a port of `master` (a bridge, a VRF, a bond).
pub fn enslave(ns: &Netns, port: &str, master: &str) -> Result<()> {
    ns.exec(&["ip", "link", "set", port, "master", master])?;
    Ok(())
}

/// Adds a permanent neighbour entry (no ARP/ND will be needed for `ip`).
pub fn neighbour(ns: &Netns, ifname: &str, ip: &str, mac: [u8; 6]) -> Result<()> {
    ns.exec(&[
        "ip",
        "neigh",
        "replace",
        ip,
        "lladdr",
        &format_mac(mac),
        "nud",
        "permanent",
        "dev",
        ifname,
    ])?;
    Ok(())
}

/// The interface's MAC address.
pub fn mac(ns: &Netns, ifname: &str) -> Result<[u8; 6]> {
    let file = format!("/sys/class/net/{ifname}/address");
    let text = ns.exec(&["cat", &file])?;
    parse_mac(text.trim()).ok_or_else(|| Error::Parse {
        netns: ns.name().to_string(),
        command: format!("cat {file}"),
        detail: format!("not a MAC address: {:?}", text.trim()),
    })
}

/// The interface's index inside its namespace.
pub fn ifindex(ns: &Netns, ifname: &str) -> Result<u32> {
    let file = format!("/sys/class/net/{ifname}/ifindex");
    let text = ns.exec(&["cat", &file])?;
    text.trim().parse().map_err(|_| Error::Parse {
        netns: ns.name().to_string(),
        command: format!("cat {file}"),
        detail: format!("not an ifindex: {:?}", text.trim()),
    })
}

/// Waits until the interface's operational state is `up` (a veth is up
/// only once both ends are).
pub fn wait_up(ns: &Netns, ifname: &str, timeout: Duration) -> Result<()> {
    let file = format!("/sys/class/net/{ifname}/operstate");
    let deadline = Instant::now() + timeout;
    loop {
        if ns.exec(&["cat", &file])?.trim() == "up" {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::NotReady {
                netns: ns.name().to_string(),
                what: format!("{ifname} operstate up"),
                timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An interface's packet counters, as the kernel keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Packets dropped on receive.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Packets dropped on transmit.
    pub tx_dropped: u64,
}

/// The interface's counters. Cheap enough for benchmark windows: it reads
/// `/proc/thread-self/net/dev` from a thread inside the namespace instead
/// of starting a process.
pub fn link_stats(ns: &Netns, ifname: &str) -> Result<LinkStats> {
    let path = PathBuf::from("/proc/thread-self/net/dev");
    let text = ns
        .run_in(|| std::fs::read_to_string(&path))?
        .map_err(|source| Error::Read {
            netns: ns.name().to_string(),
            path: path.clone(),
            source,
        })?;
    parse_net_dev(&text, ifname).ok_or_else(|| Error::Parse {
        netns: ns.name().to_string(),
        command: path.display().to_string(),
        detail: format!("no well-formed line for {ifname}"),
    })
}

fn parse_net_dev(text: &str, ifname: &str) -> Option<LinkStats> {
    let fields = text.lines().find_map(|line| {
        let (name, counters) = line.split_once(':')?;
        (name.trim() == ifname).then_some(counters)
    })?;
    let n: Vec<u64> = fields
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // Receive: bytes packets errs drop fifo frame compressed multicast;
    // transmit: bytes packets errs drop fifo colls carrier compressed.
    (n.len() == 16).then(|| LinkStats {
        rx_bytes: n[0],
        rx_packets: n[1],
        rx_errors: n[2],
        rx_dropped: n[3],
        tx_bytes: n[8],
        tx_packets: n[9],
        tx_errors: n[10],
        tx_dropped: n[11],
    })
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     840      10    0    0    0     0          0         0      840      10    0    0    0     0       0          0
    s0: 1234567    8901    2    3    0     0          0         5   765432    4321    6    7    0     0       0          0
";

    #[test]
    fn net_dev_lines_are_parsed_by_name() {
        let s = parse_net_dev(NET_DEV, "s0").expect("s0");
        assert_eq!(
            s,
            LinkStats {
                rx_bytes: 1234567,
                rx_packets: 8901,
                rx_errors: 2,
                rx_dropped: 3,
                tx_bytes: 765432,
                tx_packets: 4321,
                tx_errors: 6,
                tx_dropped: 7,
            }
        );
        assert_eq!(parse_net_dev(NET_DEV, "lo").map(|s| s.rx_packets), Some(10));
        assert_eq!(parse_net_dev(NET_DEV, "s"), None);
        assert_eq!(parse_net_dev("x: 1 2 3", "x"), None);
    }

    #[test]
    fn macs_round_trip() {
        let mac = [0x02, 0xab, 0, 0x10, 0xff, 0x01];
        assert_eq!(format_mac(mac), "02:ab:00:10:ff:01");
        assert_eq!(parse_mac("02:ab:00:10:ff:01"), Some(mac));
        assert_eq!(parse_mac("02:ab:00:10:ff"), None);
        assert_eq!(parse_mac("02:ab:00:10:ff:01:02"), None);
        assert_eq!(parse_mac("02:ab:00:10:ff:1"), None);
        assert_eq!(parse_mac("02:ab:00:10:ff:zz"), None);
    }
}
