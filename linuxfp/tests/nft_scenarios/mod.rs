// SPDX-License-Identifier: MIT OR Apache-2.0
//! Namespaces with the nf_tables rulesets the nftables reader tests read:
//! a Docker-like and a Flannel-like ruleset made by iptables-nft, and a
//! native `nft` ruleset with sets, maps, jumps and NAT. Removed on drop.

#![allow(dead_code)]

use linuxfp_testkit::{Netns, Result};

/// Docker's bridge-network rules (filter and nat, as `dockerd` 2x writes
/// them with iptables-nft), plus user rules in `DOCKER-USER` exercising
/// the whitelisted xt matches and targets.
pub const DOCKER: &str = r#"*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -m state --state INVALID -j DROP
-A DOCKER-USER -p tcp -m multiport --dports 22,443,8000:8080 -m comment --comment "user ports" -j ACCEPT
-A DOCKER-USER -s 10.66.0.0/16 -j LOG --log-prefix "user: "
-A DOCKER-USER -d 10.66.0.1/32 -p udp -j REJECT --reject-with icmp-port-unreachable
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
"#;

/// Flannel's FORWARD acceptance and POSTROUTING masquerade chains
/// (`pkg/trafficmngr/iptables`), for pod CIDR 10.244.0.0/16, node subnet
/// 10.244.0.0/24.
pub const FLANNEL: &str = r#"*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:FLANNEL-FWD - [0:0]
-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT
-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:FLANNEL-POSTRTG - [0:0]
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.0.0/24 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/24 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully
COMMIT
"#;

/// The filter-design research note's mixed iptables-nft ruleset
/// (`filter-design-captures/iptables-save.txt`): mangle MARK, every
/// common match (state, icmp, multiport, iprange, addrtype, limit, tcp
/// flags, physdev, statistic, mac, connmark, comment, mark) and targets
/// (LOG, TCPMSS, REJECT, MASQUERADE).
pub const MIXED: &str = r#"*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -j MARK --set-xmark 0x4000/0x4000
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:MYCHAIN - [0:0]
-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A FORWARD -s 10.0.0.0/8 -p tcp -m tcp --dport 80 -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i veth0 -o veth1 -j ACCEPT
-A FORWARD -p tcp -m multiport --dports 22,443,8000:8080 -j ACCEPT
-A FORWARD -d 192.168.1.0/24 -p udp -m udp --sport 53 -j ACCEPT
-A FORWARD -j LOG --log-prefix "fwdrop: "
-A FORWARD -j MYCHAIN
-A FORWARD -m iprange --src-range 10.1.1.1-10.1.1.20 -j DROP
-A FORWARD -m addrtype --dst-type LOCAL -j DROP
-A FORWARD -m limit --limit 5/sec -j ACCEPT
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
-A FORWARD ! -s 172.16.0.0/12 -p tcp -m tcp ! --dport 1000:2000 -j ACCEPT
-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT
-A FORWARD -m statistic --mode random --probability 0.50000000000 -j ACCEPT
-A FORWARD -m mac --mac-source 00:11:22:33:44:55 -j DROP
-A FORWARD -m connmark --mark 0x10 -j ACCEPT
-A FORWARD -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT
-A MYCHAIN -s 1.2.3.4/32 -m comment --comment hello -j REJECT --reject-with icmp-port-unreachable
-A MYCHAIN -m mark --mark 0x1/0x1 -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 10.244.0.0/16 ! -o veth0 -j MASQUERADE
COMMIT
"#;

/// A native nft ruleset: interval, timeout and concatenated sets, a verdict
/// map, anonymous sets, jumps and gotos, ct state, iifname wildcards,
/// payload matches, mark setting, log/limit/reject, numgen, fib, notrack,
/// NAT, and a dormant table.
pub const NATIVE: &str = r#"table inet native {
	set blocked {
		type ipv4_addr
		flags interval
		elements = { 192.0.2.0/24, 198.51.100.7 }
	}
	set timed {
		type ipv4_addr
		flags timeout
		timeout 1h
		elements = { 203.0.113.5 timeout 10m }
	}
	map portmap {
		type inet_service : verdict
		elements = { 22 : accept, 23 : drop, 8080 : jump web }
	}
	chain web {
		tcp dport 8080 counter accept
		return
	}
	chain other {
		drop
	}
	chain forward_chain {
		type filter hook forward priority filter + 10; policy drop;
		ct state established,related accept
		ct state invalid drop
		iifname "veth*" udp dport 53 counter accept
		iifname "eth0" oifname "eth1" accept
		ip saddr @blocked drop
		ip saddr != @timed continue
		tcp dport { 80, 443 } accept
		tcp dport vmap @portmap
		ip daddr . tcp dport { 10.0.0.1 . 80, 10.0.0.2 . 443 } accept
		ip6 daddr fe80::/10 accept
		tcp dport != 1000-2000 accept
		ip saddr 10.1.0.0/16 goto other
		ip daddr 10.9.9.9 jump web
		meta mark set 0x10
		limit rate 5/second log prefix "fwd: "
		tcp flags & (syn | rst) == syn reject with tcp reset
		udp dport 5000 numgen random mod 2 vmap { 0 : accept, 1 : drop }
	}
	chain pre {
		type filter hook prerouting priority raw; policy accept;
		fib daddr type local notrack
	}
	chain postnat {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth0" masquerade
		ip saddr 10.2.0.0/16 snat ip to 192.0.2.1
	}
	chain prenat {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 8080 redirect to :80
		tcp dport 9090 dnat ip to 10.0.0.5:90
	}
}
table ip sleepy {
	flags dormant
	chain c {
		type filter hook input priority 0; policy drop;
	}
}
"#;

/// A namespace holding one of the rulesets above.
pub struct Firewall {
    /// The namespace.
    pub ns: Netns,
}

/// Loads `rules` with `iptables-restore` (iptables-nft) into a new
/// namespace.
pub fn iptables(tag: &str, rules: &str) -> Result<Firewall> {
    let ns = Netns::new(tag)?;
    ns.sh(&format!(
        "iptables-nft-restore <<'LFP_EOF'\n{rules}LFP_EOF\n"
    ))?;
    Ok(Firewall { ns })
}

/// Loads `ruleset` with `nft -f` into a new namespace.
pub fn nft(tag: &str, ruleset: &str) -> Result<Firewall> {
    let ns = Netns::new(tag)?;
    ns.sh(&format!("nft -f - <<'LFP_EOF'\n{ruleset}LFP_EOF\n"))?;
    Ok(Firewall { ns })
}
