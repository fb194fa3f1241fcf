// SPDX-License-Identifier: MIT OR Apache-2.0
//! Virtual-router benchmark: Linux alone vs LinuxFP (XDP and TC) on the
//! same namespace testbed in the same run, reported as ratios.
//!
//! Traffic comes from `BPF_PROG_TEST_RUN` live frames injected in the
//! source namespace and is counted by an XDP sink in the destination
//! namespace (no pktgen in this kernel; see shared/notes/bench-method.md).
//! Neighbours are static so no ARP/ND runs during a measurement. The
//! generator is pinned to one CPU, and the softirq work it sets off (every
//! veth hop, the router, the sink) runs on that CPU too: one core's rate.
//! Linux, LinuxFP XDP, LinuxFP TC and the ceiling each get their own
//! testbed, all built first; each repeat then runs every case in turn, so
//! a machine that slows down mid-run weighs on all of them alike.
//!
//! Reports, per family: packets/s on one flow for a packet-size sweep
//! (min/median/max of repeats), one-way latency (mean, p99, stddev) at a
//! fixed offered load near Linux's saturation, and TCP throughput (iperf3)
//! through the router per hook. Writes `bench-results/router.{md,json}`.
//!
//! `cargo bench -p linuxfp-benches --bench router` (root). Set
//! `LINUXFP_BENCH_QUICK=1` for a short run.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use linuxfp::{deploy::worker::DeployWorker, fpm::Hook};
use linuxfp_benches::{
    Spread,
    dataplane::{Mode, deploy, share},
    in_turns,
    prog_stats::ns_per_packet,
    runs_cell, spread, spread_of_runs,
};
use linuxfp_fpm_router::{RouterFpm, TC_PROGRAM, XDP_PROGRAM};
use linuxfp_testkit::{Iperf3, VirtualRouter, require_root};
use linuxfp_trafficgen::{BareRedirect, Generator, Latency, Sink, frame};
use serde::Serialize;

/// One latency run.
struct LatencyRun {
    delivered_mpps: f64,
    mean_us: f64,
    p99_us: f64,
    stddev_us: f64,
}

/// Latency at one offered load, over the repeats.
#[derive(Clone, Debug, Default, Serialize)]
struct LatencyResult {
    offered_mpps: f64,
    delivered_mpps: Spread,
    mean_us: Spread,
    p99_us: Spread,
    stddev_us: Spread,
}

impl LatencyResult {
    fn of(offered_mpps: f64, runs: &[LatencyRun]) -> Self {
        let field = |f: fn(&LatencyRun) -> f64| spread(runs.iter().map(f).collect());
        Self {
            offered_mpps,
            delivered_mpps: field(|r| r.delivered_mpps),
            mean_us: field(|r| r.mean_us),
            p99_us: field(|r| r.p99_us),
            stddev_us: field(|r| r.stddev_us),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
struct ModeResult {
    /// Frame size → delivered Mpps.
    mpps: BTreeMap<usize, Spread>,
    latency: Option<LatencyResult>,
    /// TCP Gbit/s over the repeats that succeeded.
    tcp_gbps: Option<Spread>,
    /// TCP repeats that failed.
    tcp_failures: usize,
    /// Share of forwarded packets the fast path handled (LinuxFP modes).
    fast_share: Option<f64>,
    /// The stage program's run time per packet during the 64 B runs, in ns
    /// (LinuxFP modes; the kernel's own accounting).
    prog_ns: Option<f64>,
}

/// The ceiling: a bare XDP redirect on the router (fixed MACs, a devmap,
/// no lookup), on the same testbed and traffic.
#[derive(Clone, Debug, Default, Serialize)]
struct Ceiling {
    /// Delivered Mpps with 64 B frames.
    mpps_64: Spread,
    /// Its run time per packet, in ns.
    prog_ns: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    kernel: String,
    cpus: usize,
    method: &'static str,
    families: BTreeMap<&'static str, BTreeMap<Mode, ModeResult>>,
    ceilings: BTreeMap<&'static str, Ceiling>,
}

struct Config {
    sizes: Vec<usize>,
    repeats: usize,
    frames: u32,
}

fn config() -> Config {
    if std::env::var_os("LINUXFP_BENCH_QUICK").is_some() {
        Config {
            sizes: vec![64, 1500],
            repeats: 1,
            frames: 1_000_000,
        }
    } else {
        Config {
            sizes: vec![64, 128, 256, 512, 1024, 1500],
            repeats: 3,
            frames: 3_000_000,
        }
    }
}

fn test_frame(tb: &VirtualRouter, v6: bool, size: usize) -> (Vec<u8>, usize) {
    let (dmac, smac) = (tb.rtr_src_if.mac, tb.src_if.mac);
    match (tb.src_if.ip(v6), tb.dst_if.ip(v6)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (
            frame::udp4(dmac, smac, s, d, 1000, 2000, size),
            frame::UDP4_HEADERS,
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => (
            frame::udp6(dmac, smac, s, d, 1000, 2000, size),
            frame::UDP6_HEADERS,
        ),
        _ => unreachable!("families match"),
    }
}

/// Delivered Mpps for `frames` frames of `size` bytes.
fn measure_pps(tb: &VirtualRouter, sink: &Sink, v6: bool, size: usize, frames: u32) -> f64 {
    let (f, hdr) = test_frame(tb, v6, size);
    let ifindex = tb.src_if.ifindex;
    let mut generator = tb
        .src
        .run_in(move || Generator::new(&f, hdr))
        .expect("netns")
        .expect("generator");
    let (before, _) = sink.counts().expect("sink");
    let started = Instant::now();
    let generator_back = tb
        .src
        .run_in(move || {
            let r = generator.send(ifindex, frames);
            (generator, r)
        })
        .expect("netns");
    generator_back.1.expect("send");
    // Let in-flight frames land before reading the counter.
    std::thread::sleep(Duration::from_millis(50));
    let elapsed = started.elapsed().as_secs_f64() - 0.05;
    let (after, _) = sink.counts().expect("sink");
    (after - before) as f64 / elapsed / 1e6
}

/// Where the send-time stamp goes: the first 8-byte slot after the headers
/// (the generator rewrites whole 8-byte words of header).
fn stamp_offset(v6: bool) -> usize {
    let hdr = if v6 {
        frame::UDP6_HEADERS
    } else {
        frame::UDP4_HEADERS
    };
    hdr.div_ceil(8) * 8
}

/// Latency at a fixed offered load: one long, paced generator run.
fn measure_latency(tb: &VirtualRouter, sink: &Sink, v6: bool, offered_mpps: f64) -> LatencyRun {
    let ts_offset = stamp_offset(v6);
    let (f, hdr) = test_frame(tb, v6, (ts_offset + 8).max(64));
    let ifindex = tb.src_if.ifindex;
    let interval_ns = (1e3 / offered_mpps) as u64;
    let before = sink.latency().expect("latency");
    let (p0, _) = sink.counts().expect("sink");
    let started = Instant::now();
    tb.src
        .run_in(move || {
            let mut g = Generator::paced(&f, hdr, ts_offset, interval_ns).expect("generator");
            // Iterations, mostly cheap drops between paced frames: ~1-3 s.
            g.send(ifindex, 30_000_000).expect("send");
        })
        .expect("netns");
    std::thread::sleep(Duration::from_millis(50));
    let elapsed = started.elapsed().as_secs_f64() - 0.05;
    let (p1, _) = sink.counts().expect("sink");
    let lat: Latency = sink.latency().expect("latency").since(&before);
    LatencyRun {
        delivered_mpps: (p1 - p0) as f64 / elapsed / 1e6,
        mean_us: lat.mean_us(),
        p99_us: lat.quantile_us(0.99),
        stddev_us: lat.stddev_us(),
    }
}

/// The router testbed as every mode measures it, with the sink on `d0`.
fn testbed(tag: &str, v6: bool) -> (VirtualRouter, Sink) {
    let tb = VirtualRouter::new(tag).expect("testbed");
    tb.set_static_neighbours().expect("neighbours");
    // The generator's XDP_TX into s0 needs NAPI on r0 (GRO on, or an XDP
    // program there); set it in every mode so the paths compare fairly.
    tb.rtr
        .exec(&["ethtool", "-K", "r0", "gro", "on"])
        .expect("gro on r0");
    let d0 = tb.dst_if.ifindex;
    let stamp_at = stamp_offset(v6);
    let sink = tb
        .dst
        .run_in(move || Sink::attach_with_latency(d0, stamp_at))
        .expect("netns")
        .expect("sink");
    (tb, sink)
}

/// What carries the traffic on one testbed.
enum Carrier {
    /// Linux alone.
    Linux,
    /// LinuxFP, deployed on the router.
    Linuxfp(DeployWorker),
    /// The ceiling: a bare XDP redirect on the router (held to keep it
    /// attached).
    Bare(#[allow(dead_code)] BareRedirect),
}

/// One testbed and what carries its traffic: a mode, or the ceiling
/// (`mode` `None`). Every case of a family has its own testbed, all alive
/// at once, so that the repeats take turns and a machine that slows down
/// or speeds up during the run weighs on every case alike.
struct Case {
    mode: Option<Mode>,
    carrier: Carrier,
    sink: Sink,
    tb: VirtualRouter,
    v6: bool,
}

impl Case {
    fn new(mode: Option<Mode>, v6: bool) -> Case {
        let tag = match mode {
            Some(Mode::Linux) => "l",
            Some(Mode::LinuxfpXdp) => "x",
            Some(Mode::LinuxfpTc) => "t",
            None => "c",
        };
        let (tb, sink) = testbed(&format!("b{}{tag}", if v6 { 6 } else { 4 }), v6);
        let carrier = match mode.map(Mode::hook) {
            None => {
                let (r0, r1, dmac, smac) = (
                    tb.rtr_src_if.ifindex,
                    tb.rtr_dst_if.ifindex,
                    tb.dst_if.mac,
                    tb.rtr_dst_if.mac,
                );
                let bare = tb
                    .rtr
                    .run_in(move || BareRedirect::attach(r0, r1, dmac, smac))
                    .expect("netns")
                    .expect("bare redirect");
                Carrier::Bare(bare)
            }
            Some(None) => Carrier::Linux,
            Some(Some(hook)) => Carrier::Linuxfp(deploy(
                tb.rtr.name(),
                vec![Arc::new(RouterFpm::new())],
                hook,
                2,
            )),
        };
        Case {
            mode,
            carrier,
            sink,
            tb,
            v6,
        }
    }

    /// The program whose run time is reported.
    fn prog(&self) -> Option<&'static str> {
        match self.mode.map(Mode::hook) {
            None => Some("bare_redirect"),
            Some(Some(Hook::Xdp)) => Some(XDP_PROGRAM),
            Some(Some(Hook::Tc)) => Some(TC_PROGRAM),
            Some(None) => None,
        }
    }

    fn pps(&self, size: usize, frames: u32) -> f64 {
        measure_pps(&self.tb, &self.sink, self.v6, size, frames)
    }

    /// The program's run time per packet, from one more 64 B run with the
    /// kernel's accounting on. That run is kept apart from the measured
    /// ones: the accounting reads the clock twice per program run, for the
    /// generator and the sink too, and measured here it cut the ceiling's
    /// rate by almost half, squeezing every ratio.
    fn prog_ns(&self, frames: u32) -> Option<f64> {
        ns_per_packet(self.prog()?, || {
            self.pps(64, frames);
        })
    }
}

/// Every mode and the ceiling for one family, the repeats taking turns
/// ([`in_turns`]).
fn run_family(v6: bool, cfg: &Config) -> (BTreeMap<Mode, ModeResult>, Ceiling) {
    let cases: Vec<Case> = [
        Some(Mode::Linux),
        Some(Mode::LinuxfpXdp),
        Some(Mode::LinuxfpTc),
        None,
    ]
    .into_iter()
    .map(|m| Case::new(m, v6))
    .collect();
    // The first run on a fresh testbed is measured here 20-40% slower than
    // the next (caches, the generator's page pool, first-packet work),
    // whatever carries the traffic: one unmeasured run each.
    for case in &cases {
        case.pps(64, cfg.frames / 2);
    }
    let mut runs: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for &size in &cfg.sizes {
        for (_, i) in in_turns(cases.len(), cfg.repeats) {
            // The ceiling is a 64 B reference.
            if cases[i].mode.is_none() && size != 64 {
                continue;
            }
            let mpps = cases[i].pps(size, cfg.frames);
            runs.entry((i, size)).or_default().push(mpps);
        }
    }
    let linux_64 = runs
        .get(&(0, 64))
        .cloned()
        .map_or(0.5, |r| spread(r).median);
    // Latency at 90% of what Linux delivered with 64 B frames.
    let offered = linux_64 * 0.9;
    let mut latency: BTreeMap<usize, Vec<LatencyRun>> = BTreeMap::new();
    for (_, i) in in_turns(cases.len(), cfg.repeats) {
        let c = &cases[i];
        if c.mode.is_some() {
            let run = measure_latency(&c.tb, &c.sink, v6, offered);
            latency.entry(i).or_default().push(run);
        }
    }
    let mut modes = BTreeMap::new();
    let mut ceiling = Ceiling::default();
    for (i, case) in cases.into_iter().enumerate() {
        let prog_ns = case.prog_ns(cfg.frames / 4);
        let mut mpps = BTreeMap::new();
        for &size in &cfg.sizes {
            if let Some(r) = runs.remove(&(i, size)) {
                mpps.insert(size, spread(r));
            }
        }
        let Case {
            mode,
            carrier,
            sink,
            tb,
            ..
        } = case;
        let Some(mode) = mode else {
            ceiling = Ceiling {
                mpps_64: mpps.remove(&64).unwrap_or_default(),
                prog_ns,
            };
            continue;
        };
        let fast_share = match &carrier {
            Carrier::Linuxfp(w) => Some(share(w, "router", &["fast"])),
            _ => None,
        };
        // The sink drops everything that reaches d0: off before TCP.
        drop(sink);
        // TCP with default offloads, through the router, socket to socket.
        let (tcp_gbps, tcp_failures) = spread_of_runs(cfg.repeats, || {
            tb.iperf3(v6, &Iperf3::default()).map(|t| t.gbps())
        });
        drop(carrier);
        let latency = latency.remove(&i).unwrap_or_default();
        modes.insert(
            mode,
            ModeResult {
                mpps,
                latency: Some(LatencyResult::of(offered, &latency)),
                tcp_gbps,
                tcp_failures,
                fast_share,
                prog_ns,
            },
        );
    }
    (modes, ceiling)
}

fn main() {
    if !require_root("router benchmark") {
        return;
    }
    let cfg = config();
    let mut report = Report {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        method: "BPF_PROG_TEST_RUN live frames from the source netns, XDP sink in the destination netns; UDP, one flow; generator and every softirq it sets off on one CPU",
        ..Default::default()
    };
    for (family, v6) in [("ipv4", false), ("ipv6", true)] {
        eprintln!("== {family}: Linux, LinuxFP XDP, LinuxFP TC and the ceiling, taking turns");
        let (modes, ceiling) = run_family(v6, &cfg);
        report.families.insert(family, modes);
        report.ceilings.insert(family, ceiling);
    }
    let md = markdown(&report);
    for (family, modes) in &report.families {
        let sizes: Vec<usize> = modes
            .get(&Mode::Linux)
            .map(|l| l.mpps.keys().copied().collect())
            .unwrap_or_default();
        let series = modes
            .iter()
            .map(|(m, r)| linuxfp_benches::plot::Series {
                name: m.label().to_string(),
                values: sizes
                    .iter()
                    .map(|s| r.mpps.get(s).map_or(0.0, |x| x.median))
                    .collect(),
            })
            .collect::<Vec<_>>();
        let cats: Vec<String> = sizes.iter().map(|s| format!("{s} B")).collect();
        linuxfp_benches::write_chart(
            &format!("router-{family}"),
            &linuxfp_benches::plot::bar_chart(
                &format!("Virtual router, {family}: packets/s by frame size (Mpps, median)"),
                "Mpps",
                &cats,
                &series,
            ),
        );
    }
    linuxfp_benches::write_results("router", &md, &report);
}

fn markdown(r: &Report) -> String {
    let mut s = format!(
        "## Virtual router: LinuxFP vs Linux (same run)\n\nKernel {}, {} CPUs. {}.\n\n",
        r.kernel, r.cpus, r.method
    );
    for (family, modes) in &r.families {
        let linux = modes.get(&Mode::Linux);
        s.push_str(&format!("### {family}: packets/s (Mpps, median of repeats [min–max]; ratio to Linux)\n\n| size |"));
        for m in modes.keys() {
            s.push_str(&format!(" {} |", m.label()));
        }
        s.push_str("\n|---|");
        for _ in modes {
            s.push_str("---|");
        }
        s.push('\n');
        let sizes: Vec<usize> = linux
            .map(|l| l.mpps.keys().copied().collect())
            .unwrap_or_default();
        for size in sizes {
            s.push_str(&format!("| {size} B |"));
            let base = linux
                .and_then(|l| l.mpps.get(&size))
                .map_or(0.0, |x| x.median);
            for res in modes.values() {
                if let Some(x) = res.mpps.get(&size) {
                    let ratio = if base > 0.0 { x.median / base } else { 0.0 };
                    s.push_str(&format!(
                        " {:.2} [{:.2}–{:.2}] ({ratio:.2}x) |",
                        x.median, x.min, x.max
                    ));
                }
            }
            s.push('\n');
        }
        if let Some(c) = r.ceilings.get(family) {
            let xdp = modes
                .get(&Mode::LinuxfpXdp)
                .and_then(|m| m.mpps.get(&64))
                .map_or(0.0, |x| x.median);
            let share = if c.mpps_64.median > 0.0 {
                xdp / c.mpps_64.median * 100.0
            } else {
                0.0
            };
            let ns = |v: Option<f64>| v.map_or("-".into(), |n| format!("{n:.0} ns"));
            s.push_str(&format!(
                "\nCeiling, a bare XDP redirect on the router (no lookup, no checks): {:.2} [{:.2}–{:.2}] Mpps at 64 B; LinuxFP XDP reaches {share:.0}% of it.\n\nProgram run time per packet (the kernel's accounting, 64 B runs): bare redirect {}",
                c.mpps_64.median,
                c.mpps_64.min,
                c.mpps_64.max,
                ns(c.prog_ns),
            ));
            for (mode, res) in modes {
                if mode.hook().is_some() {
                    s.push_str(&format!(", {} {}", mode.label(), ns(res.prog_ns)));
                }
            }
            s.push_str(".\n");
        }
        s.push_str(&format!(
            "\n### {family}: latency at a fixed offered load, TCP, fast-path share (median [min–max] of repeats)\n\n| mode | offered Mpps | delivered Mpps | mean µs | p99 µs | stddev µs | TCP Gbit/s | fast path |\n|---|---|---|---|---|---|---|---|\n"
        ));
        for (mode, res) in modes {
            let l = res.latency.clone().unwrap_or_default();
            s.push_str(&format!(
                "| {} | {:.2} | {:.2} | {} | {} | {:.1} | {} | {} |\n",
                mode.label(),
                l.offered_mpps,
                l.delivered_mpps.median,
                l.mean_us.cell(),
                l.p99_us.cell(),
                l.stddev_us.median,
                runs_cell(res.tcp_gbps.as_ref(), res.tcp_failures),
                res.fast_share
                    .map_or("-".into(), |f| format!("{:.1}%", f * 100.0)),
            ));
        }
        s.push('\n');
    }
    s
}
