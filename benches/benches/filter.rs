// SPDX-License-Identifier: MIT OR Apache-2.0
//! Firewall benchmark: packets/s through the virtual router against the
//! number of nf_tables rules in its forward chain, Linux alone vs LinuxFP
//! (router + filter FPMs, XDP and TC), in the same run, as ratios.
//!
//! The forward chain holds N-1 rules that do not match the measured flow
//! (`ip daddr <other> udp dport 9 drop`, which netfilter evaluates one by
//! one) and a final accept. One UDP flow, `BPF_PROG_TEST_RUN` live frames
//! from the source namespace, XDP sink in the destination namespace. With
//! one flow LinuxFP's per-flow verdict cache hits after the first packet:
//! this measures the steady state of an established flow.
//!
//! The second table is new-flow classification: every frame carries other
//! UDP ports (2^20 flows in turn, far more than the verdict cache's 65536
//! entries), so every packet misses the cache and is classified: the
//! candidate prefilter, then the rules it leaves (the final accept).
//!
//! Every (rule count, mode) case gets its own testbed, built up front and
//! warmed up once; the repeats then take turns over all of them.
//!
//! `cargo bench -p linuxfp-benches --bench filter` (root); writes
//! `bench-results/filter.{md,json}`. `LINUXFP_BENCH_QUICK=1` for a short run,
//! `LINUXFP_BENCH_RULES=10,1000` for some rule counts only.

use std::{
    collections::BTreeMap,
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use linuxfp::{
    deploy::worker::DeployWorker,
    fpm::{Fpm, Hook},
};
use linuxfp_benches::{
    Spread,
    dataplane::{Mode, deploy, share},
    in_turns,
    prog_stats::ns_per_packet,
    spread,
};
use linuxfp_fpm_filter::FilterFpm;
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{VirtualRouter, require_root};
use linuxfp_trafficgen::{Generator, Sink, frame};
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
struct Cell {
    mpps: Spread,
    /// Share of the filter stage's packets it decided itself (LinuxFP).
    filter_fast_share: Option<f64>,
    /// The filter program's run time per packet in ns (LinuxFP; the
    /// kernel's accounting, in one extra run).
    filter_ns: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    kernel: String,
    cpus: usize,
    method: &'static str,
    frame_bytes: usize,
    /// Rules → mode → result, one flow.
    rules: BTreeMap<usize, BTreeMap<Mode, Cell>>,
    /// Rules → mode → result, every frame a new flow.
    new_flows: BTreeMap<usize, BTreeMap<Mode, Cell>>,
}

/// Flows the new-flow runs cycle through: many times the verdict cache.
const NEW_FLOWS: u32 = 1 << 20;

/// The ruleset: `n - 1` non-matching rules, then accept.
fn ruleset(n: usize) -> String {
    let mut s = String::from(
        "table inet lfpbench {\n  chain forward {\n    type filter hook forward priority 0; policy drop;\n",
    );
    for i in 0..n.saturating_sub(1) {
        s.push_str(&format!(
            "    ip daddr 198.18.{}.{} udp dport 9 drop\n",
            i / 250,
            i % 250 + 1
        ));
    }
    s.push_str("    accept\n  }\n}\n");
    s
}

fn load_ruleset(tb: &VirtualRouter, n: usize) {
    let path = std::env::temp_dir().join(format!("lfp-bench-filter-{}.nft", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("ruleset file");
    f.write_all(ruleset(n).as_bytes()).expect("write ruleset");
    drop(f);
    let p = path.to_string_lossy().to_string();
    tb.rtr
        .exec_timeout(&["nft", "-f", &p], Duration::from_secs(120))
        .expect("nft -f");
    let _ = std::fs::remove_file(&path);
}

/// Mpps of `frames` frames of one flow (`flows` 0) or of `flows` flows.
fn measure_pps(tb: &VirtualRouter, sink: &Sink, size: usize, frames: u32, flows: u32) -> f64 {
    let f = frame::udp4(
        tb.rtr_src_if.mac,
        tb.src_if.mac,
        tb.src_if.ipv4,
        tb.dst_if.ipv4,
        1000,
        2000,
        size,
    );
    let ifindex = tb.src_if.ifindex;
    let (before, _) = sink.counts().expect("sink");
    let started = Instant::now();
    tb.src
        .run_in(move || {
            let mut g = if flows == 0 {
                Generator::new(&f, frame::UDP4_HEADERS)
            } else {
                Generator::new_flows(&f, flows)
            }
            .expect("generator");
            g.send(ifindex, frames).expect("send");
        })
        .expect("netns");
    std::thread::sleep(Duration::from_millis(50));
    let elapsed = started.elapsed().as_secs_f64() - 0.05;
    let (after, _) = sink.counts().expect("sink");
    (after - before) as f64 / elapsed / 1e6
}

/// One testbed: the router with `rules` rules, carried by `mode`. Every
/// case has its own, all built up front, so that the repeats take turns
/// and a machine that slows down mid-run weighs on every case alike.
struct Case {
    mode: Mode,
    rules: usize,
    /// 0: one flow; else every frame one of this many flows.
    flows: u32,
    worker: Option<DeployWorker>,
    sink: Sink,
    tb: VirtualRouter,
    /// Frames per run: about [`RUN_SECONDS`] at this case's rate (Linux
    /// with 10k rules forwards ~10k packets/s), at most the configured
    /// count.
    frames: u32,
}

/// How long one measured run lasts, about.
const RUN_SECONDS: f64 = 1.0;

impl Case {
    fn new(mode: Mode, rules: usize, flows: u32) -> Case {
        let tb = VirtualRouter::new("bf").expect("testbed");
        tb.set_static_neighbours().expect("neighbours");
        tb.rtr
            .exec(&["ethtool", "-K", "r0", "gro", "on"])
            .expect("gro on r0");
        load_ruleset(&tb, rules);
        let d0 = tb.dst_if.ifindex;
        let sink = tb
            .dst
            .run_in(move || Sink::attach(d0))
            .expect("netns")
            .expect("sink");
        let worker = mode.hook().map(|hook| {
            let fpms: Vec<Arc<dyn Fpm>> =
                vec![Arc::new(FilterFpm::new()), Arc::new(RouterFpm::new())];
            deploy(tb.rtr.name(), fpms, hook, 2)
        });
        Case {
            mode,
            rules,
            flows,
            worker,
            sink,
            tb,
            frames: 0,
        }
    }

    /// Sizes this case's runs by a short first run, then runs once more
    /// unmeasured: the first runs on a fresh testbed are slower than the
    /// next (caches, the generator's page pool, first packets).
    fn calibrate(&mut self, size: usize, max_frames: u32) {
        const PROBE: u32 = 20_000;
        let mpps = self.pps(size, PROBE);
        self.frames = ((mpps * 1e6 * RUN_SECONDS) as u32).clamp(PROBE, max_frames);
        self.pps(size, self.frames / 2);
    }

    fn pps(&self, size: usize, frames: u32) -> f64 {
        measure_pps(&self.tb, &self.sink, size, frames, self.flows)
    }

    /// The filter program's run time per packet, from one more run with
    /// the kernel's accounting on (kept apart from the measured runs: it
    /// costs every program two clock reads per run).
    fn filter_ns(&self, size: usize, frames: u32) -> Option<f64> {
        let prog = match self.mode.hook()? {
            Hook::Xdp => linuxfp_fpm_filter::XDP_PROGRAM,
            Hook::Tc => linuxfp_fpm_filter::TC_PROGRAM,
        };
        ns_per_packet(prog, || {
            self.pps(size, frames);
        })
    }
}

/// Every (rule count, mode) cell, the repeats taking turns ([`in_turns`]).
fn run_all(counts: &[(usize, u32)], repeats: usize, frames: u32, size: usize) -> Vec<(Case, Cell)> {
    let mut cases: Vec<Case> = counts
        .iter()
        .flat_map(|&(n, flows)| Mode::ALL.into_iter().map(move |m| (m, n, flows)))
        .map(|(mode, n, flows)| {
            eprintln!("== building: {n} rules, {flows} flows, {}", mode.label());
            Case::new(mode, n, flows)
        })
        .collect();
    for case in &mut cases {
        case.calibrate(size, frames);
    }
    let mut runs = vec![Vec::new(); cases.len()];
    for (r, i) in in_turns(cases.len(), repeats) {
        if i == r % cases.len() {
            eprintln!("== repeat {}/{repeats}", r + 1);
        }
        runs[i].push(cases[i].pps(size, cases[i].frames));
    }
    cases
        .into_iter()
        .zip(runs)
        .map(|(case, runs)| {
            let cell = Cell {
                filter_ns: case.filter_ns(size, case.frames / 4),
                mpps: spread(runs),
                filter_fast_share: case
                    .worker
                    .as_ref()
                    .map(|w| share(w, "filter", &["continue", "drop"])),
            };
            (case, cell)
        })
        .collect()
}

fn main() {
    if !require_root("filter benchmark") {
        return;
    }
    let quick = std::env::var_os("LINUXFP_BENCH_QUICK").is_some();
    let (counts, repeats, frames): (&[usize], usize, u32) = if quick {
        (&[10, 1000, 10_000], 1, 1_000_000)
    } else {
        (&[10, 100, 1000, 10_000], 3, 3_000_000)
    };
    let size = 64;
    let mut report = Report {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        method: "BPF_PROG_TEST_RUN live frames through the virtual router, XDP sink; one UDP flow; forward chain of N rules, the last one accepting",
        frame_bytes: size,
        ..Default::default()
    };
    // One flow at every count, and new flows at 10, 1k and 10k rules:
    // all the cases of both tables take turns. `LINUXFP_BENCH_RULES=10,1000`
    // keeps only those rule counts.
    let only: Option<Vec<usize>> = std::env::var("LINUXFP_BENCH_RULES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let wanted = |n: &usize| only.as_ref().is_none_or(|o| o.contains(n));
    let cases: Vec<(usize, u32)> = counts
        .iter()
        .map(|&n| (n, 0))
        .chain([10, 1000, 10_000].map(|n| (n, NEW_FLOWS)))
        .filter(|(n, _)| wanted(n))
        .collect();
    for (case, cell) in run_all(&cases, repeats, frames, size) {
        let table = if case.flows == 0 {
            &mut report.rules
        } else {
            &mut report.new_flows
        };
        table.entry(case.rules).or_default().insert(case.mode, cell);
    }
    let md = markdown(&report);
    let cats: Vec<String> = report.rules.keys().map(|n| format!("{n} rules")).collect();
    let series = Mode::ALL
        .into_iter()
        .map(|m| linuxfp_benches::plot::Series {
            name: m.label().to_string(),
            values: report
                .rules
                .values()
                .map(|modes| modes.get(&m).map_or(0.0, |c| c.mpps.median))
                .collect(),
        })
        .collect::<Vec<_>>();
    linuxfp_benches::write_chart(
        "filter",
        &linuxfp_benches::plot::bar_chart(
            "Firewall: packets/s vs forward-chain rules (Mpps, 64 B)",
            "Mpps",
            &cats,
            &series,
        ),
    );
    linuxfp_benches::write_results("filter", &md, &report);
}

fn markdown(r: &Report) -> String {
    let mut s = format!(
        "## Firewall: packets/s vs rules, LinuxFP vs Linux (same run)\n\nKernel {}, {} CPUs, {} B frames. {}.\n\n",
        r.kernel, r.cpus, r.frame_bytes, r.method
    );
    s.push_str(&table(&r.rules));
    s.push_str(&format!(
        "\nNew flows: every frame other UDP ports ({NEW_FLOWS} flows in turn), so every packet misses LinuxFP's verdict cache.\n\n"
    ));
    s.push_str(&table(&r.new_flows));
    s
}

/// One table: rules → Linux, LinuxFP XDP and TC, with ratios.
fn table(rules: &BTreeMap<usize, BTreeMap<Mode, Cell>>) -> String {
    let mut s = String::from(
        "| rules | Linux Mpps, median [min–max] | LinuxFP XDP Mpps (ratio) | LinuxFP TC Mpps (ratio) | filter decided (XDP / TC) | filter run time per packet (XDP / TC) |\n|---|---|---|---|---|---|\n",
    );
    for (n, modes) in rules {
        let linux = modes
            .get(&Mode::Linux)
            .map(|c| c.mpps.clone())
            .unwrap_or_default();
        let base = linux.median;
        let cell = |m: Mode| {
            modes.get(&m).map_or("-".to_string(), |c| {
                let ratio = if base > 0.0 {
                    c.mpps.median / base
                } else {
                    0.0
                };
                format!(
                    "{:.2} [{:.2}–{:.2}] ({ratio:.2}x)",
                    c.mpps.median, c.mpps.min, c.mpps.max
                )
            })
        };
        let share = |m: Mode| {
            modes
                .get(&m)
                .and_then(|c| c.filter_fast_share)
                .map_or("-".to_string(), |f| format!("{:.0}%", f * 100.0))
        };
        let ns = |m: Mode| {
            modes
                .get(&m)
                .and_then(|c| c.filter_ns)
                .map_or("-".to_string(), |n| format!("{n:.0} ns"))
        };
        s.push_str(&format!(
            "| {n} | {base:.2} [{:.2}–{:.2}] | {} | {} | {} / {} | {} / {} |\n",
            linux.min,
            linux.max,
            cell(Mode::LinuxfpXdp),
            cell(Mode::LinuxfpTc),
            share(Mode::LinuxfpXdp),
            share(Mode::LinuxfpTc),
            ns(Mode::LinuxfpXdp),
            ns(Mode::LinuxfpTc),
        ));
    }
    s
}
