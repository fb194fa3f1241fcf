//! Firewall rule corpora for the filter's differential test: rulesets as
//! the tools that write them in production would (Docker, a kube-proxy in
//! iptables mode, Flannel, all through `iptables-nft-restore`), and seeded
//! random native nftables rulesets of any size.
//!
//! The rulesets are written for the router testbed ([`super::bed::ROUTER`]):
//! `r0` is the uplink (the "eth0" of a node), `r1` the container or pod
//! bridge (Docker's `docker0`, Flannel's `cni0`). They avoid what makes
//! Linux itself nondeterministic, so two runs with Linux alone agree:
//! services have one endpoint each (no `statistic --mode random`), and
//! masquerading never uses `--random-fully`.

use std::{fmt::Write as _, path::PathBuf};

use super::frame::Rng;
use crate::{error::Result, netns::Netns};

/// How a ruleset is loaded into a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// `iptables-nft-restore` (IPv4 rules in iptables-save format).
    IptablesNft,
    /// `nft -f` (a native nftables script).
    Nft,
}

/// A ruleset to load into the device under test.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// Its name in reports.
    pub name: String,
    /// How it is loaded.
    pub loader: Loader,
    /// The text the loader reads.
    pub text: String,
    /// Rules in it (lines that add a rule), for reports.
    pub rules: usize,
}

impl RuleSet {
    fn new(name: &str, loader: Loader, text: String) -> Self {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| match loader {
                Loader::IptablesNft => l.starts_with("-A "),
                Loader::Nft => {
                    !l.is_empty()
                        && !l.starts_with("table")
                        && !l.starts_with("chain")
                        && !l.starts_with("type")
                        && !l.starts_with('}')
                        && !l.starts_with('#')
                }
            })
            .count();
        Self {
            name: name.to_string(),
            loader,
            text,
            rules,
        }
    }

    /// The same ruleset without its `nat` table (iptables format only):
    /// the filter rules alone, which the fast path can decide where they
    /// need no connection state.
    pub fn without_nat(&self) -> Self {
        let mut out = String::new();
        let mut in_nat = false;
        for line in self.text.lines() {
            if line.starts_with('*') {
                in_nat = line == "*nat";
            }
            if !in_nat {
                out.push_str(line);
                out.push('\n');
            }
        }
        Self::new(
            &format!("{} (filter table only)", self.name),
            self.loader,
            out,
        )
    }

    /// Loads the ruleset into `ns` (through a file: a 10k-rule text is
    /// longer than one command-line argument may be).
    pub fn load(&self, ns: &Netns) -> Result<()> {
        let path = scratch_file(ns, &self.text)?;
        let path_str = path.to_string_lossy().into_owned();
        let out = match self.loader {
            Loader::IptablesNft => ns.exec(&["iptables-nft-restore", &path_str]),
            Loader::Nft => ns.exec(&["nft", "-f", &path_str]),
        };
        // Best effort: the file is scratch data in the temporary directory.
        let _ = std::fs::remove_file(&path);
        out.map(drop)
    }
}

/// Writes `text` to a file named for `ns` in the temporary directory.
pub(super) fn scratch_file(ns: &Netns, text: &str) -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("{}-rules.txt", ns.name()));
    std::fs::write(&path, text).map_err(|source| crate::Error::Read {
        netns: ns.name().to_string(),
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Docker's rules for one bridge (`r1` as `docker0`) and one container
/// (172.17.0.2) publishing TCP port 80 as 8080, as Docker 24 writes them
/// (FORWARD policy DROP, the isolation and user chains, conntrack accept,
/// DNAT and masquerade).
pub fn docker() -> RuleSet {
    let text = "\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o r1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o r1 -j DOCKER
-A FORWARD -i r1 ! -o r1 -j ACCEPT
-A FORWARD -i r1 -o r1 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i r1 -o r1 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i r1 ! -o r1 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o r1 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
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
-A POSTROUTING -s 172.17.0.0/16 ! -o r1 -j MASQUERADE
-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
-A DOCKER -i r1 -j RETURN
-A DOCKER ! -i r1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
COMMIT
";
    RuleSet::new("docker", Loader::IptablesNft, text.to_string())
}

/// Flannel's rules on a node with pod subnet 10.244.1.0/24 of the cluster
/// network 10.244.0.0/16 behind `r1` (`cni0`), with the FORWARD policy
/// DROP that Docker or the kubelet sets; masquerading as Flannel wrote it
/// before `--random-fully`.
pub fn flannel() -> RuleSet {
    let text = "\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:FLANNEL-FWD - [0:0]
-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD
-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT
-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:FLANNEL-POSTRTG - [0:0]
-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment \"flanneld masq\" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.1.0/24 -d 10.244.0.0/16 -m comment --comment \"flanneld masq\" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment \"flanneld masq\" -j RETURN
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment \"flanneld masq\" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment \"flanneld masq\" -j MASQUERADE
COMMIT
";
    RuleSet::new("flannel", Loader::IptablesNft, text.to_string())
}

/// A kube-proxy (iptables mode) ruleset for `services` ClusterIP services
/// (10.96.x.y, TCP port 80 or UDP port 53), each with one endpoint in
/// 10.244.0.0/16 except every fifth, which has none (a REJECT in the
/// filter table): the KUBE-* chains of kube-proxy 1.29 with their
/// conntrack, mark and masquerade rules.
pub fn kube_proxy(services: usize) -> RuleSet {
    let mut filter = String::from(
        "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
",
    );
    let mut nat = String::from(
        "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SERVICES - [0:0]
",
    );
    let mut nat_rules = String::from(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE
",
    );
    for i in 0..services {
        let vip = format!("10.96.{}.{}", i / 250, 1 + i % 250);
        let (proto, port, target) = if i % 2 == 0 {
            ("tcp", 80, 8080)
        } else {
            ("udp", 53, 53)
        };
        let name = format!("ns{}/svc{i}:p", i % 7);
        if i % 5 == 4 {
            let _ = writeln!(
                filter,
                "-A KUBE-SERVICES -d {vip}/32 -p {proto} -m comment --comment \"{name} has no endpoints\" -m {proto} --dport {port} -j REJECT --reject-with icmp-port-unreachable"
            );
            continue;
        }
        let id = format!("{:016X}", 0x5EC0_0000_0000_0000u64 + i as u64);
        let (svc, sep) = (format!("KUBE-SVC-{id}"), format!("KUBE-SEP-{id}"));
        let ep = format!("10.244.{}.{}", 2 + i / 250, 1 + i % 250);
        let _ = writeln!(nat, ":{svc} - [0:0]\n:{sep} - [0:0]");
        let _ = write!(
            nat_rules,
            "-A KUBE-SERVICES -d {vip}/32 -p {proto} -m comment --comment \"{name} cluster IP\" -m {proto} --dport {port} -j {svc}
-A {svc} ! -s 10.244.0.0/16 -d {vip}/32 -p {proto} -m comment --comment \"{name} cluster IP\" -m {proto} --dport {port} -j KUBE-MARK-MASQ
-A {svc} -m comment --comment \"{name} -> {ep}:{target}\" -j {sep}
-A {sep} -s {ep}/32 -m comment --comment \"{name}\" -j KUBE-MARK-MASQ
-A {sep} -p {proto} -m comment --comment \"{name}\" -m {proto} -j DNAT --to-destination {ep}:{target}
"
        );
    }
    nat_rules.push_str(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n",
    );
    filter.push_str("COMMIT\n");
    nat.push_str(&nat_rules);
    nat.push_str("COMMIT\n");
    RuleSet::new(
        &format!("kube-proxy ({services} services)"),
        Loader::IptablesNft,
        filter + &nat,
    )
}

/// A seeded random native nftables ruleset of about `rules` rules in one
/// `inet` table: a forward base chain (policy drop or accept) with a few
/// rules of its own and one dispatch rule per regular chain (by
/// destination /16 for IPv4 and /32 for IPv6), and regular chains of up
/// to 100 rules each over addresses inside their chain's prefix, ports,
/// port ranges and sets, protocols, ICMP types, TCP flags, interfaces and
/// negations, ending in accept, drop, jump, goto, return or no verdict,
/// with a few rules the fast path cannot decide (rate limits, logging)
/// among them.
pub fn random(rules: usize, seed: u64) -> RuleSet {
    random_ruleset(rules, seed, false)
}

/// [`random`] with a few `ct state` rules among the others, which make the
/// kernel track every connection (so a new flow is always its own).
pub fn random_with_conntrack(rules: usize, seed: u64) -> RuleSet {
    random_ruleset(rules, seed, true)
}

fn random_ruleset(rules: usize, seed: u64, conntrack: bool) -> RuleSet {
    let mut rng = Rng::new(seed);
    let chains = rules.div_ceil(100).clamp(1, 200);
    let per_chain = rules.saturating_sub(chains + 10) / chains;
    let policy = if rng.chance(1, 2) { "drop" } else { "accept" };
    let mut text = String::from("table inet rnd {\n");
    let mut bodies = String::new();
    for c in 0..chains {
        let _ = writeln!(bodies, "  chain c{c} {{");
        for _ in 0..per_chain {
            let _ = writeln!(
                bodies,
                "    {}",
                random_rule(&mut rng, c, chains, true, conntrack)
            );
        }
        bodies.push_str("  }\n");
    }
    let _ = writeln!(
        text,
        "  chain forward_filter {{\n    type filter hook forward priority 0; policy {policy};"
    );
    for _ in 0..10 {
        let c = rng.below(chains);
        let _ = writeln!(
            text,
            "    {}",
            random_rule(&mut rng, c, chains, false, conntrack)
        );
    }
    for c in 0..chains {
        let (v4, v6) = chain_prefixes(c);
        let _ = writeln!(text, "    ip daddr {v4}.0.0/16 jump c{c}");
        let _ = writeln!(text, "    ip6 daddr {v6}::/32 jump c{c}");
    }
    text.push_str("  }\n");
    text.push_str(&bodies);
    text.push_str("}\n");
    RuleSet::new(
        &format!(
            "random{} ({rules} rules, seed {seed:#x})",
            if conntrack { " with conntrack" } else { "" }
        ),
        Loader::Nft,
        text,
    )
}

/// The destination prefixes chain `c` of a random ruleset handles: an
/// IPv4 /16 (`10.x`, clear of the testbed's 10.1 and 10.2 and the
/// 10.9 routes) and an IPv6 /32.
fn chain_prefixes(c: usize) -> (String, String) {
    (
        format!("10.{}", 16 + c % 200),
        format!("fd10:{:x}", 0x100 + c),
    )
}

/// One random rule of chain `c` (of `chains`); `regular` allows `return`,
/// `conntrack` a `ct state` match now and then.
fn random_rule(rng: &mut Rng, c: usize, chains: usize, regular: bool, conntrack: bool) -> String {
    let (v4, v6) = chain_prefixes(c);
    let mut parts: Vec<String> = Vec::new();
    let v6_rule = rng.chance(1, 3);
    let neg = |rng: &mut Rng| if rng.chance(1, 8) { "!= " } else { "" };
    // Addresses.
    if rng.chance(2, 3) {
        let len4 = [16, 20, 24, 28, 32][rng.below(5)];
        let len6 = [32, 48, 64, 112, 128][rng.below(5)];
        let dir = if rng.chance(1, 2) { "daddr" } else { "saddr" };
        let n = neg(rng);
        if v6_rule {
            let a = format!("{v6}:{:x}::{:x}", rng.below(4), rng.below(16));
            parts.push(format!("ip6 {dir} {n}{a}/{len6}"));
        } else {
            let a = format!("{v4}.{}.{}", rng.below(4) * 16, rng.below(256));
            parts.push(format!("ip {dir} {n}{a}/{len4}"));
        }
    } else if v6_rule {
        parts.push("meta nfproto ipv6".into());
    } else {
        parts.push("meta nfproto ipv4".into());
    }
    // Interfaces.
    match rng.below(8) {
        0 => parts.push(format!("iifname {}\"r0\"", neg(rng))),
        1 => parts.push(format!("oifname {}\"r1\"", neg(rng))),
        2 => parts.push("iifname \"r*\"".into()),
        _ => {}
    }
    // Layer 4.
    let proto = ["tcp", "udp", "icmp", "any"][rng.below(4)];
    match proto {
        "tcp" | "udp" => {
            let dir = if rng.chance(3, 4) { "dport" } else { "sport" };
            let n = neg(rng);
            let port = 1 + rng.below(2000) as u16;
            let ports = match rng.below(4) {
                0 => format!("{n}{port}-{}", port + rng.below(100) as u16),
                1 => format!("{{ {port}, {}, {} }}", port + 7, 2000 + rng.below(9000)),
                _ => format!("{n}{port}"),
            };
            parts.push(format!("{proto} {dir} {ports}"));
            if proto == "tcp" && rng.chance(1, 6) {
                parts.push("tcp flags & (syn | ack) == syn".into());
            }
        }
        "icmp" if v6_rule => parts.push("icmpv6 type echo-request".into()),
        "icmp" => parts.push("icmp type echo-request".into()),
        _ => {}
    }
    // What the fast path cannot decide, now and then.
    match rng.below(40) {
        0 if conntrack => parts.push("ct state established,related".into()),
        // A rate limit the fast path must punt, whose bucket a probe
        // corpus cannot empty: with nft's default burst of 5, probes a few
        // hundred µs apart emptied it by timing, and the kernel's own
        // verdicts differed from run to run.
        1 => parts.push("limit rate 1000000/second burst 100000 packets".into()),
        2 => parts.push("log prefix \"rnd \"".into()),
        _ => {}
    }
    if rng.chance(1, 5) {
        parts.push("counter".into());
    }
    // Jumps go to the next chain of a group of four: nf_tables refuses
    // jump chains deeper than 16 (`EMLINK`).
    let can_jump = !(c + 1).is_multiple_of(4) && c + 1 < chains;
    let verdict = match rng.below(20) {
        0..=7 => "accept".to_string(),
        8..=15 => "drop".to_string(),
        16 if can_jump => format!("jump c{}", c + 1),
        17 if can_jump => format!("goto c{}", c + 1),
        18 if regular => "return".to_string(),
        _ => String::new(),
    };
    if !verdict.is_empty() {
        parts.push(verdict);
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_rulesets_are_deterministic_and_sized() {
        let a = random(10_000, 9);
        assert_eq!(a.text, random(10_000, 9).text);
        assert_ne!(a.text, random(10_000, 10).text);
        assert!((9_000..=10_500).contains(&a.rules), "{}", a.rules);
    }

    #[test]
    fn nat_tables_can_be_left_out() {
        let d = docker();
        let f = d.without_nat();
        assert!(d.text.contains("*nat") && !f.text.contains("*nat"));
        assert!(f.text.contains("DOCKER-ISOLATION-STAGE-2 -o r1 -j DROP"));
        assert_eq!(f.rules, 12);
        assert!(kube_proxy(10).rules > 40);
    }
}
