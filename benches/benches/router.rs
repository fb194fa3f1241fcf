// SPDX-License-Identifier: MIT OR Apache-2.0
//! Virtual-router benchmark: Linux alone vs LinuxFP (XDP and TC) on the
//! same namespace testbed in the same run, reported as ratios.
//!
//! Traffic comes from `BPF_PROG_TEST_RUN` live frames injected in the
//! source namespace and is counted by an XDP sink in the destination
//! namespace (no pktgen in this kernel; see shared/notes/bench-method.md).
//! Neighbours are static so no ARP/ND runs during a measurement.
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

use linuxfp::fpm::Hook;
use linuxfp_benches::{
    Spread,
    dataplane::{Mode, deploy, share},
    prog_stats::{RunTimeStats, ns_per_run, runtime_of},
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
fn testbed(v6: bool) -> (VirtualRouter, Sink) {
    let tb = VirtualRouter::new(if v6 { "b6" } else { "b4" }).expect("testbed");
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

/// Mpps with 64 B frames over the repeats, and the run time per packet of
/// the program named `prog` meanwhile.
fn measure_64(
    tb: &VirtualRouter,
    sink: &Sink,
    v6: bool,
    cfg: &Config,
    prog: Option<&str>,
) -> (Spread, Option<f64>) {
    let before = prog.map(runtime_of);
    let runs = (0..cfg.repeats)
        .map(|_| measure_pps(tb, sink, v6, 64, cfg.frames))
        .collect();
    let ns = prog
        .zip(before)
        .and_then(|(p, b)| ns_per_run(b, runtime_of(p)));
    (spread(runs), ns)
}

/// The bare-redirect ceiling for one family.
fn run_ceiling(v6: bool, cfg: &Config) -> Ceiling {
    let (tb, sink) = testbed(v6);
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
    let (mpps_64, prog_ns) = measure_64(&tb, &sink, v6, cfg, Some("bare_redirect"));
    drop(bare);
    Ceiling { mpps_64, prog_ns }
}

fn run_mode(mode: Mode, v6: bool, cfg: &Config, offered: Option<f64>) -> ModeResult {
    let (tb, sink) = testbed(v6);
    let deployed = mode
        .hook()
        .map(|hook| deploy(tb.rtr.name(), vec![Arc::new(RouterFpm::new())], hook, 2));
    let mut result = ModeResult::default();
    let prog = match mode.hook() {
        Some(Hook::Xdp) => Some(XDP_PROGRAM),
        Some(Hook::Tc) => Some(TC_PROGRAM),
        None => None,
    };
    for &size in &cfg.sizes {
        if size == 64 {
            let (mpps, ns) = measure_64(&tb, &sink, v6, cfg, prog);
            result.mpps.insert(size, mpps);
            result.prog_ns = ns;
            continue;
        }
        let runs = (0..cfg.repeats)
            .map(|_| measure_pps(&tb, &sink, v6, size, cfg.frames))
            .collect();
        result.mpps.insert(size, spread(runs));
    }
    // Offered load for latency: given, or 90% of what this (Linux) run
    // delivered with 64 B frames.
    let offered = offered.unwrap_or_else(|| result.mpps.get(&64).map_or(0.5, |x| x.median * 0.9));
    let latency: Vec<LatencyRun> = (0..cfg.repeats)
        .map(|_| measure_latency(&tb, &sink, v6, offered))
        .collect();
    result.latency = Some(LatencyResult::of(offered, &latency));
    result.fast_share = deployed.as_ref().map(|w| share(w, "router", &["fast"]));
    drop(sink);
    // TCP with default offloads, through the router, socket to socket.
    (result.tcp_gbps, result.tcp_failures) = spread_of_runs(cfg.repeats, || {
        tb.iperf3(v6, &Iperf3::default()).map(|t| t.gbps())
    });
    drop(deployed);
    result
}

fn main() {
    if !require_root("router benchmark") {
        return;
    }
    let cfg = config();
    // Program run times per packet (two clock reads per run, for every
    // mode alike); without it the report just leaves them out.
    let _stats = RunTimeStats::enable();
    let mut report = Report {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        method: "BPF_PROG_TEST_RUN live frames from the source netns, XDP sink in the destination netns; UDP, one flow",
        ..Default::default()
    };
    for (family, v6) in [("ipv4", false), ("ipv6", true)] {
        eprintln!("== {family}: Linux");
        let linux = run_mode(Mode::Linux, v6, &cfg, None);
        let offered = linux.latency.as_ref().map(|l| l.offered_mpps);
        let mut modes = BTreeMap::new();
        modes.insert(Mode::Linux, linux);
        for mode in [Mode::LinuxfpXdp, Mode::LinuxfpTc] {
            eprintln!("== {family}: {}", mode.label());
            modes.insert(mode, run_mode(mode, v6, &cfg, offered));
        }
        report.families.insert(family, modes);
        eprintln!("== {family}: bare XDP redirect (the ceiling)");
        report.ceilings.insert(family, run_ceiling(v6, &cfg));
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
