// SPDX-License-Identifier: MIT OR Apache-2.0
//! Flannel benchmark: pod-to-pod TCP throughput on a Flannel-like
//! two-node cluster (`linuxfp_testkit::FlannelCluster`: `cni0` bridges,
//! veth pods, Flannel's iptables rules, and a VXLAN `flannel.1` overlay or
//! host-gw routes between the nodes), Linux alone vs LinuxFP in the same
//! run, as ratios.
//!
//! LinuxFP runs as a node would run it: one controller per node with the
//! default FPMs (router, bridge, filter) and the automatic hook policy, so
//! the Compatibility Manager decides what is accelerated and on which
//! hook; the report lists its choices and reasons, the fast path's share
//! of the packets and the most frequent punt reasons, so a reader sees why
//! the ratio is what it is.
//!
//! Cases: intra-node (pod → pod on the same `cni0`) and inter-node (pod on
//! node 1 → pod on node 2), for each backend and for 1..N concurrent pod
//! pairs (one iperf3 stream each, offloads on, as every container has).
//! Each repeat measures every case with Linux alone, then starts the
//! controllers and measures every case again, then stops them: the two
//! sides alternate, so drift on this shared machine hits both.
//!
//! `cargo bench -p linuxfp-benches --bench flannel` (root); writes
//! `bench-results/flannel.{md,json,svg}`. `LINUXFP_BENCH_QUICK=1` for a
//! short run.

use std::{collections::BTreeMap, sync::Arc};

use linuxfp::fpm::Fpm;
use linuxfp_benches::{
    Spread,
    controllers::{Controllers, Counters, HookChoice},
    runs_cell, spread,
};
use linuxfp_fpm_bridge::BridgeFpm;
use linuxfp_fpm_filter::FilterFpm;
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{
    Backend, FlannelCluster, Iperf3, Netns, PodPair, addr, require_root, up, veth,
};
use serde::Serialize;

/// Where the traffic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Path {
    /// Between pods of node 1, through its `cni0`.
    Intra,
    /// From node 1's pods to node 2's, through both nodes.
    Inter,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Intra => "intra-node",
            Path::Inter => "inter-node",
        }
    }

    /// `pairs` client/server pairs; no pod serves twice. Intra-node pairs
    /// are pods (2i, 2i+1) of node 1; inter-node pairs are pod i of node 1
    /// to pod i of node 2.
    fn pairs(self, pairs: usize) -> Vec<PodPair> {
        (0..pairs)
            .map(|i| match self {
                Path::Intra => ((0, 2 * i), (0, 2 * i + 1)),
                Path::Inter => ((0, i), (1, i)),
            })
            .collect()
    }
}

/// What the nodes run besides Flannel's `FLANNEL-FWD` rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
struct Setup {
    /// flanneld's `--ip-masq` nat rules (as the kube-flannel manifest runs
    /// it): conntrack then tracks every flow.
    ip_masq: bool,
    /// `nf_conntrack_tcp_be_liberal=1`, as kube-proxy sets with
    /// `conntrack.tcpBeLiberal`: TCP flows can then be followed by the
    /// fast path's conntrack mirror (with window tracking on, packets the
    /// kernel does not see would make a later FIN INVALID).
    tcp_be_liberal: bool,
}

/// Measured in this order.
const SETUPS: [Setup; 3] = [
    Setup {
        ip_masq: true,
        tcp_be_liberal: false,
    },
    Setup {
        ip_masq: true,
        tcp_be_liberal: true,
    },
    Setup {
        ip_masq: false,
        tcp_be_liberal: false,
    },
];

impl Setup {
    /// `vxlan`, `vxlan, tcp_be_liberal`, `vxlan, no ip-masq`.
    fn label(self, backend: &str) -> String {
        let mut s = backend.to_string();
        if self.tcp_be_liberal {
            s.push_str(", tcp_be_liberal");
        }
        if !self.ip_masq {
            s.push_str(", no ip-masq");
        }
        s
    }

    /// The chart's file name and title.
    fn chart(self) -> (String, String) {
        let mut file = "flannel".to_string();
        let mut title = "Flannel".to_string();
        if self.tcp_be_liberal {
            file.push_str("-liberal");
            title.push_str(", tcp_be_liberal=1");
        }
        if self.ip_masq {
            title.push_str(" (ip-masq)");
        } else {
            file.push_str("-no-masq");
            title.push_str(" without ip-masq");
        }
        title.push_str(": pod-to-pod TCP (Gbit/s, median)");
        (file, title)
    }
}

/// One measured case: a backend, a path, a number of pod pairs.
#[derive(Clone, Debug, Serialize)]
struct Case {
    backend: &'static str,
    #[serde(flatten)]
    setup: Setup,
    path: Path,
    pairs: usize,
    /// Summed Gbit/s of the pairs, per repeat.
    linux_runs: Vec<f64>,
    linuxfp_runs: Vec<f64>,
    /// Over the runs that succeeded; `None` if none did.
    linux: Option<Spread>,
    linuxfp: Option<Spread>,
    /// Median LinuxFP / median Linux, if both have runs.
    ratio: Option<f64>,
    /// Intra-node, one pair: two pods on one veth pair, nothing
    /// forwarded between them, measured right after Linux in each repeat:
    /// the most any fast path could give.
    ceiling_runs: Vec<f64>,
    ceiling: Option<Spread>,
    /// Median ceiling / median Linux.
    ceiling_ratio: Option<f64>,
    /// Runs where an iperf3 failed (left out of the runs above).
    linux_failures: usize,
    linuxfp_failures: usize,
    /// The FPMs' counters over this case's LinuxFP runs.
    counters: Counters,
    /// Of the packets that entered a chain, the share the fast path
    /// forwarded itself.
    fast_share: f64,
    /// The most frequent punts, `fpm/reason` → packets.
    top_punts: Vec<(String, u64)>,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    kernel: String,
    cpu: String,
    cpus: usize,
    method: &'static str,
    seconds: u32,
    repeats: usize,
    cases: Vec<Case>,
    /// Per setup (backend, with or without ip-masq): what the
    /// Compatibility Manager chose on each node.
    hooks: BTreeMap<String, Vec<HookChoice>>,
}

struct Config {
    pairs: Vec<usize>,
    repeats: usize,
    seconds: u32,
}

fn config() -> Config {
    if std::env::var_os("LINUXFP_BENCH_QUICK").is_some() {
        Config {
            pairs: vec![1, 2],
            repeats: 3,
            seconds: 2,
        }
    } else {
        Config {
            pairs: vec![1, 2, 4],
            repeats: 5,
            seconds: 5,
        }
    }
}

fn fpms() -> Vec<Arc<dyn Fpm>> {
    vec![
        Arc::new(RouterFpm::new()),
        Arc::new(BridgeFpm::new()),
        Arc::new(FilterFpm::new()),
    ]
}

/// The cases of one backend, in measurement order.
fn cases(cfg: &Config) -> Vec<(Path, usize)> {
    [Path::Intra, Path::Inter]
        .into_iter()
        .flat_map(|p| cfg.pairs.iter().map(move |&n| (p, n)))
        .collect()
}

/// Summed Gbit/s of `pairs` concurrent iperf3 runs, `None` if one failed.
fn measure(c: &FlannelCluster, path: Path, pairs: usize, run: &Iperf3) -> Option<f64> {
    match c.iperf3_pairs(&path.pairs(pairs), run) {
        Ok(t) => Some(t.iter().map(|t| t.gbps()).sum()),
        Err(e) => {
            eprintln!("   iperf3 failed: {e}");
            None
        }
    }
}

/// Two pods on one veth pair, nothing between them: the intra-node
/// ceiling. A fast path forwards between two veths through a bridge's
/// ports; it cannot do better than no forwarding at all.
struct Direct {
    client: Netns,
    server: Netns,
}

impl Direct {
    const SERVER: &str = "10.250.0.2";

    fn new() -> linuxfp_testkit::Result<Self> {
        let (client, server) = (Netns::new("bfdc")?, Netns::new("bfds")?);
        veth(&client, "eth0", &server, "eth0")?;
        addr(&client, "eth0", "10.250.0.1/24")?;
        addr(&server, "eth0", &format!("{}/24", Self::SERVER))?;
        up(&client, "eth0")?;
        up(&server, "eth0")?;
        Ok(Direct { client, server })
    }

    fn measure(&self, run: &Iperf3) -> Option<f64> {
        match run.run(&self.server, Self::SERVER, &self.client) {
            Ok(t) => Some(t.gbps()),
            Err(e) => {
                eprintln!("   iperf3 failed (ceiling): {e}");
                None
            }
        }
    }
}

/// Raw results of one case while the repeats run.
#[derive(Default)]
struct Runs {
    linux: Vec<f64>,
    linuxfp: Vec<f64>,
    ceiling: Vec<f64>,
    linux_failures: usize,
    linuxfp_failures: usize,
    counters: Counters,
}

fn run_backend(backend: Backend, setup: Setup, cfg: &Config, direct: &Direct, report: &mut Report) {
    let most = cfg.pairs.iter().copied().max().unwrap_or(1);
    let name = setup.label(backend.name());
    // Intra-node pairs take two pods of node 1 each.
    let tag = format!(
        "bf{}{}{}",
        backend.name(),
        u8::from(setup.ip_masq),
        u8::from(setup.tcp_be_liberal)
    );
    let c = FlannelCluster::with_ip_masq(&tag, backend, 2 * most, setup.ip_masq)
        .expect("flannel cluster");
    if setup.tcp_be_liberal {
        c.set_tcp_be_liberal(true).expect("tcp_be_liberal");
    }
    let iperf = Iperf3 {
        seconds: cfg.seconds,
        ..Default::default()
    };
    let cases = cases(cfg);
    let mut runs: Vec<Runs> = cases.iter().map(|_| Runs::default()).collect();
    let nodes = [
        ("node1", c.nodes[0].ns.name()),
        ("node2", c.nodes[1].ns.name()),
    ];
    for r in 0..cfg.repeats {
        for (&(path, pairs), out) in cases.iter().zip(&mut runs) {
            eprintln!(
                "== flannel {name} {} x{pairs}, repeat {}: Linux",
                path.label(),
                r + 1
            );
            match measure(&c, path, pairs, &iperf) {
                Some(g) => out.linux.push(g),
                None => out.linux_failures += 1,
            }
            if (path, pairs) == (Path::Intra, 1) {
                out.ceiling.extend(direct.measure(&iperf));
            }
        }
        let ctl = Controllers::start(&nodes, &fpms()).expect("controllers");
        report
            .hooks
            .entry(name.clone())
            .or_insert_with(|| ctl.hook_choices());
        for (&(path, pairs), out) in cases.iter().zip(&mut runs) {
            eprintln!(
                "== flannel {name} {} x{pairs}, repeat {}: LinuxFP",
                path.label(),
                r + 1
            );
            let before = ctl.counters().expect("counters");
            match measure(&c, path, pairs, &iperf) {
                Some(g) => out.linuxfp.push(g),
                None => out.linuxfp_failures += 1,
            }
            let after = ctl.counters().expect("counters");
            out.counters.add(&after.since(&before));
        }
        ctl.stop().expect("stop controllers");
    }
    for ((path, pairs), r) in cases.into_iter().zip(runs) {
        let of = |runs: &Vec<f64>| (!runs.is_empty()).then(|| spread(runs.clone()));
        let (linux, linuxfp) = (of(&r.linux), of(&r.linuxfp));
        let over_linux = |x: &Option<Spread>| match (&linux, x) {
            (Some(l), Some(f)) if l.median > 0.0 => Some(f.median / l.median),
            _ => None,
        };
        let ceiling = of(&r.ceiling);
        let (ratio, ceiling_ratio) = (over_linux(&linuxfp), over_linux(&ceiling));
        report.cases.push(Case {
            backend: backend.name(),
            setup,
            path,
            pairs,
            linux_runs: r.linux,
            linuxfp_runs: r.linuxfp,
            linux,
            linuxfp,
            ratio,
            ceiling_runs: r.ceiling,
            ceiling,
            ceiling_ratio,
            linux_failures: r.linux_failures,
            linuxfp_failures: r.linuxfp_failures,
            fast_share: r.counters.fast_share(),
            top_punts: r.counters.top_punts(3),
            counters: r.counters,
        });
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn main() {
    if !require_root("flannel benchmark") {
        return;
    }
    let cfg = config();
    let mut report = Report {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        cpu: cpu_model(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        method: "iperf3 TCP, one stream per pod pair, default offloads; Linux alone and \
                 LinuxFP (one controller per node: router, bridge, filter FPMs, automatic \
                 hooks) alternate within each repeat",
        seconds: cfg.seconds,
        repeats: cfg.repeats,
        ..Default::default()
    };
    let direct = Direct::new().expect("the ceiling's two pods");
    for setup in SETUPS {
        for backend in Backend::ALL {
            run_backend(backend, setup, &cfg, &direct, &mut report);
        }
    }
    drop(direct);
    for setup in SETUPS {
        let (file, title) = setup.chart();
        let cases: Vec<&Case> = report.cases.iter().filter(|c| c.setup == setup).collect();
        let cats: Vec<String> = cases
            .iter()
            .map(|c| format!("{} {} x{}", c.backend, short(c.path), c.pairs))
            .collect();
        let series = [
            ("Linux", medians(&cases, |c| c.linux.as_ref())),
            ("LinuxFP", medians(&cases, |c| c.linuxfp.as_ref())),
        ]
        .map(|(name, values)| linuxfp_benches::plot::Series {
            name: name.to_string(),
            values,
        });
        linuxfp_benches::write_chart(
            &file,
            &linuxfp_benches::plot::bar_chart(&title, "Gbit/s", &cats, &series),
        );
    }
    linuxfp_benches::write_results("flannel", &markdown(&report), &report);
}

/// Each case's median (0 where every run failed), for the chart.
fn medians(cases: &[&Case], side: fn(&Case) -> Option<&Spread>) -> Vec<f64> {
    cases
        .iter()
        .map(|c| side(c).map_or(0.0, |x| x.median))
        .collect()
}

fn short(p: Path) -> &'static str {
    match p {
        Path::Intra => "intra",
        Path::Inter => "inter",
    }
}

fn markdown(r: &Report) -> String {
    let mut s = format!(
        "## Flannel: pod-to-pod TCP, LinuxFP vs Linux (same run)\n\n\
         Kernel {}, {} CPUs ({}). {}; {} s per run, {} repeats.\n\n\
         | setup | path | pod pairs | Linux Gbit/s median [min–max] | LinuxFP Gbit/s median [min–max] | ratio | fast path | top punts |\n\
         |---|---|---|---|---|---|---|---|\n",
        r.kernel, r.cpus, r.cpu, r.method, r.seconds, r.repeats
    );
    for c in &r.cases {
        let punts = c
            .top_punts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1}% | {} |\n",
            c.setup.label(c.backend),
            c.path.label(),
            c.pairs,
            runs_cell(c.linux.as_ref(), c.linux_failures),
            runs_cell(c.linuxfp.as_ref(), c.linuxfp_failures),
            c.ratio
                .map_or_else(|| "-".to_string(), |x| format!("{x:.2}x")),
            c.fast_share * 100.0,
            if punts.is_empty() { "-" } else { &punts },
        ));
    }
    let ceilings: Vec<&Case> = r.cases.iter().filter(|c| c.ceiling.is_some()).collect();
    if !ceilings.is_empty() {
        s.push_str(
            "\nCeiling: two pods on one veth pair, nothing forwarded between them \
             (one stream, measured right after Linux's intra-node pair in each repeat). \
             No fast path can beat it:\n\n\
             | setup | ceiling Gbit/s median [min–max] | ceiling / Linux intra x1 |\n|---|---|---|\n",
        );
        for c in ceilings {
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                c.setup.label(c.backend),
                runs_cell(c.ceiling.as_ref(), 0),
                c.ceiling_ratio
                    .map_or_else(|| "-".to_string(), |x| format!("{x:.2}x")),
            ));
        }
    }
    let seen: std::collections::BTreeSet<&str> = r
        .cases
        .iter()
        .flat_map(|c| c.top_punts.iter().map(|(k, _)| k.as_str()))
        .collect();
    let notes: Vec<String> = seen
        .iter()
        .filter_map(|k| explain(k).map(|why| format!("- `{k}`: {why}")))
        .collect();
    if !notes.is_empty() {
        s.push_str(&format!("\nPunt reasons seen:\n{}\n", notes.join("\n")));
    }
    for (backend, hooks) in &r.hooks {
        s.push_str(&format!(
            "\n### {backend}: what the Compatibility Manager chose\n\n\
             | nodes | interface | hook | stages | reasons |\n|---|---|---|---|---|\n"
        ));
        for (nodes, h) in merge_nodes(hooks) {
            s.push_str(&format!(
                "| {nodes} | {} | {} | {} | {} |\n",
                h.interface,
                h.hook,
                h.stages.join(" → "),
                h.reasons.join("; ")
            ));
        }
    }
    s
}

/// The hook choices with the nodes that made the same one on the same
/// interface merged into one row (`node1, node2`), in first-seen order.
fn merge_nodes(hooks: &[HookChoice]) -> Vec<(String, &HookChoice)> {
    let mut rows: Vec<(String, &HookChoice)> = Vec::new();
    for h in hooks {
        let same = |(_, o): &&mut (String, &HookChoice)| {
            o.interface == h.interface
                && o.hook == h.hook
                && o.stages == h.stages
                && o.reasons == h.reasons
        };
        match rows.iter_mut().find(same) {
            Some((nodes, _)) => {
                nodes.push_str(", ");
                nodes.push_str(&h.node);
            }
            None => rows.push((h.node.clone(), h)),
        }
    }
    rows
}

/// What a punt reason this bench meets means, for the reader of the table.
fn explain(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "filter/path" => {
            "the filter stage hands every packet of the family to the kernel: its \
             ruleset has something the fast path does not model on the whole path"
        }
        "filter/not_forwarded" => {
            "the filter stage cannot show the packet is forwarded: VXLAN packets for \
             the node itself (decapsulation is the kernel's)"
        }
        "filter/unknown_if" => {
            "the filter stage met an interface its compiled ruleset does not know \
             (names are resolved when the ruleset is compiled)"
        }
        "filter/bridged_drop" => {
            "a bridged frame the firewall drops: the kernel drops it (only the kernel \
             knows whether the bridge would have forwarded it)"
        }
        "bridge/local" => {
            "frames for cni0 itself (pod traffic to another node): they go up through \
             the kernel bridge, and the router stage on cni0 takes them"
        }
        "router/l2_multicast" => "broadcast or multicast frames, for the kernel",
        "filter/chain_miss" => "a packet the filter let through with no stage after it",
        "bridge/multicast" => "broadcast or multicast frames (ARP), flooded by the kernel",
        "filter/rule_nat" => "a rule with NAT: evaluated by the kernel",
        "filter/rule_conntrack" => {
            "a packet of a flow not in the conntrack mirror met the conntrack gate (the \
             nat chain makes the kernel track every flow) or a rule that reads conntrack \
             state: new flows until the kernel marks them assured, every TCP flow while \
             window tracking is on (tcp_be_liberal=0), and VXLAN packets for the node \
             itself"
        }
        _ => return None,
    })
}
