// SPDX-License-Identifier: MIT OR Apache-2.0
//! L2 forwarding benchmark: the Linux bridge alone vs LinuxFP's bridge FPM
//! (XDP and TC) on the same namespace switch in the same run, reported as
//! ratios.
//!
//! `h1` sends `BPF_PROG_TEST_RUN` live frames (one UDP flow, h1 → h2) into
//! `p1`; an XDP sink on `h2`'s interface counts what the bridge delivers.
//! Both MACs are static FDB entries, so no flooding or learning happens
//! during a measurement. Also reports TCP throughput (iperf3, offloads on)
//! through the bridge per mode, and the fast path's share.
//!
//! `cargo bench -p linuxfp-benches --bench bridge` (root); writes
//! `bench-results/bridge.{md,json}`. `LINUXFP_BENCH_QUICK=1` for a short run.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use linuxfp_benches::{
    Spread,
    dataplane::{Mode, deploy, share},
    runs_cell, spread, spread_of_runs,
};
use linuxfp_fpm_bridge::BridgeFpm;
use linuxfp_testkit::{Iperf3, Switch, format_mac, require_root};
use linuxfp_trafficgen::{Generator, Sink, frame};
use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
struct ModeResult {
    /// Frame size → delivered Mpps.
    mpps: BTreeMap<usize, Spread>,
    /// TCP Gbit/s over the repeats that succeeded.
    tcp_gbps: Option<Spread>,
    /// TCP repeats that failed.
    tcp_failures: usize,
    /// Share of the bridge stage's frames it forwarded itself.
    fast_share: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    kernel: String,
    cpus: usize,
    method: &'static str,
    modes: BTreeMap<Mode, ModeResult>,
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
            sizes: vec![64, 256, 1024, 1500],
            repeats: 3,
            frames: 3_000_000,
        }
    }
}

/// Delivered Mpps for `frames` frames of `size` bytes from h1 to h2.
fn measure_pps(s: &Switch, sink: &Sink, size: usize, frames: u32) -> f64 {
    let (h1, h2) = (&s.hosts[0], &s.hosts[1]);
    let f = frame::udp4(h2.mac, h1.mac, h1.ipv4, h2.ipv4, 1000, 2000, size);
    let e0 = linuxfp_testkit::ifindex(&h1.ns, "e0").expect("e0");
    let (before, _) = sink.counts().expect("sink");
    let started = Instant::now();
    h1.ns
        .run_in(move || {
            let mut g = Generator::new(&f, frame::UDP4_HEADERS).expect("generator");
            g.send(e0, frames).expect("send");
        })
        .expect("netns");
    // Let in-flight frames land before reading the counter.
    std::thread::sleep(Duration::from_millis(50));
    let elapsed = started.elapsed().as_secs_f64() - 0.05;
    let (after, _) = sink.counts().expect("sink");
    (after - before) as f64 / elapsed / 1e6
}

fn run_mode(mode: Mode, cfg: &Config) -> ModeResult {
    let s = Switch::new("bb", 2).expect("switch");
    s.set_static_neighbours().expect("neighbours");
    for h in &s.hosts {
        let mac = format_mac(h.mac);
        s.sw.exec(&[
            "bridge", "fdb", "replace", &mac, "dev", &h.port, "master", "static",
        ])
        .expect("static fdb entry");
    }
    // The generator's XDP_TX into h1's e0 needs NAPI on p1 (GRO on, or an
    // XDP program there); set it in every mode so the paths compare fairly.
    s.sw.exec(&["ethtool", "-K", "p1", "gro", "on"])
        .expect("gro on p1");
    let e0 = linuxfp_testkit::ifindex(&s.hosts[1].ns, "e0").expect("e0");
    let sink = s.hosts[1]
        .ns
        .run_in(move || Sink::attach(e0))
        .expect("netns")
        .expect("sink");
    let worker = mode.hook().map(|hook| {
        deploy(
            s.sw.name(),
            vec![Arc::new(BridgeFpm::new())],
            hook,
            s.hosts.len(),
        )
    });
    let mut result = ModeResult::default();
    for &size in &cfg.sizes {
        let runs = (0..cfg.repeats)
            .map(|_| measure_pps(&s, &sink, size, cfg.frames))
            .collect();
        result.mpps.insert(size, spread(runs));
    }
    result.fast_share = worker.as_ref().map(|w| share(w, "bridge", &["fast"]));
    drop(sink);
    let iperf = Iperf3::default();
    (result.tcp_gbps, result.tcp_failures) = spread_of_runs(cfg.repeats, || {
        iperf
            .run(&s.hosts[1].ns, &s.hosts[1].ipv4.to_string(), &s.hosts[0].ns)
            .map(|t| t.gbps())
    });
    drop(worker);
    result
}

fn main() {
    if !require_root("bridge benchmark") {
        return;
    }
    let cfg = config();
    let mut report = Report {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        method: "BPF_PROG_TEST_RUN live frames from h1 into the bridge, XDP sink on h2; UDP, one flow, static FDB entries",
        ..Default::default()
    };
    for mode in Mode::ALL {
        eprintln!("== bridge: {}", mode.label());
        report.modes.insert(mode, run_mode(mode, &cfg));
    }
    let md = markdown(&report);
    let sizes: Vec<usize> = report
        .modes
        .get(&Mode::Linux)
        .map(|l| l.mpps.keys().copied().collect())
        .unwrap_or_default();
    let series = report
        .modes
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
        "bridge",
        &linuxfp_benches::plot::bar_chart(
            "Bridge: L2 forwarding, one flow (Mpps, median)",
            "Mpps",
            &cats,
            &series,
        ),
    );
    linuxfp_benches::write_results("bridge", &md, &report);
}

fn markdown(r: &Report) -> String {
    let mut s = format!(
        "## Bridge: LinuxFP vs the Linux bridge (same run)\n\nKernel {}, {} CPUs. {}.\n\n\
         | size |",
        r.kernel, r.cpus, r.method
    );
    for m in r.modes.keys() {
        s.push_str(&format!(" {} |", m.label()));
    }
    s.push_str("\n|---|");
    for _ in &r.modes {
        s.push_str("---|");
    }
    s.push('\n');
    let linux = r.modes.get(&Mode::Linux);
    let sizes: Vec<usize> = linux
        .map(|l| l.mpps.keys().copied().collect())
        .unwrap_or_default();
    for size in sizes {
        s.push_str(&format!("| {size} B |"));
        let base = linux
            .and_then(|l| l.mpps.get(&size))
            .map_or(0.0, |x| x.median);
        for res in r.modes.values() {
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
    s.push_str("\n| mode | TCP Gbit/s, median [min–max] | fast path |\n|---|---|---|\n");
    for (mode, res) in &r.modes {
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            mode.label(),
            runs_cell(res.tcp_gbps.as_ref(), res.tcp_failures),
            res.fast_share
                .map_or("-".into(), |f| format!("{:.1}%", f * 100.0)),
        ));
    }
    s.push_str(
        "\nTCP `-`: iperf3 failed. XDP on a veth hands locally generated TCP \
         (CHECKSUM_PARTIAL, GSO) to the peer without its checksum state; the \
         Compatibility Manager therefore picks TC on veth (Auto policy).\n",
    );
    s
}
