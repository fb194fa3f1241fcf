// SPDX-License-Identifier: MIT OR Apache-2.0
//! Soak: a virtual router and a bridge, with UDP (iperf3 at a bounded
//! rate) and a ping stream through the router and a ping stream through
//! the bridge for the whole run, and the topology churned in cycles:
//! routes added and removed in bulk, a side interface of the router and a
//! side port of the bridge taken down and up, static FDB entries moved
//! between ports, rules of the router's nft forward chain (decided by the
//! filter FPM) added and flushed back to the base ruleset.
//!
//! The same run is made twice on fresh testbeds, with Linux alone and with
//! each under its own LinuxFP controller, and compared: where Linux alone
//! loses nothing, LinuxFP must lose nothing either:
//! - every ping in the quiet window after each churn step is answered
//!   (router and bridge), in both runs;
//! - the ping streams, which run through the churn steps too, lose no
//!   more with LinuxFP than with Linux alone;
//! - UDP loses no more (within iperf3's reordering noise, 0.1 %);
//! - with LinuxFP, the controllers' memory (this process's RSS) and the
//!   FDB mirror stay bounded, and the plans end equal to a fresh read of
//!   the kernel.
//!
//! `short_soak` runs in CI (two runs of 14 s of churn, about 35 s in
//! all); `long_soak` is `#[ignore]`d and runs for `LINUXFP_SOAK_SECS`
//! seconds per run (default 600):
//! `cargo test -p linuxfp-fpm-bridge --test soak -- --ignored`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use linuxfp::{
    compat::Policy,
    controller::{Controller, ControllerEvent, ControllerHandle, plan_once},
    fpm::{Fpm, FpmRegistry},
    netns::NetnsRef,
};
use linuxfp_ebpf_common::bridge::FDB_MAP;
use linuxfp_fpm_bridge::BridgeFpm;
use linuxfp_fpm_filter::FilterFpm;
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{
    Iperf3, Netns, PingStats, Switch, VirtualRouter, addr, require_root, up, veth,
};

/// This process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// The router's FPMs: routing and the firewall.
fn router_fpms() -> Vec<Arc<dyn Fpm>> {
    vec![Arc::new(RouterFpm::new()), Arc::new(FilterFpm::new())]
}

/// The router's forward chain: drops UDP ports the measured traffic never
/// uses.
const RULESET: &str = r#"table inet t {
    chain filt {
        type filter hook forward priority 0; policy accept;
        udp dport 9999 drop
    }
}
"#;

async fn start(
    ns: &Netns,
    fpms: Vec<Arc<dyn Fpm>>,
) -> (ControllerHandle, tokio::task::JoinHandle<()>) {
    let mut builder = Controller::builder().netns(NetnsRef::Named(ns.name().to_string()));
    for fpm in fpms {
        builder = builder.fpm(fpm);
    }
    let (handle, run) = builder.build().expect("build").start().expect("start");
    let task = tokio::spawn(async move {
        let _ = run.await;
    });
    (handle, task)
}

async fn wait_plan(handle: &ControllerHandle, interfaces: usize, what: &str) {
    let t = Instant::now();
    while handle.plan().interfaces.len() != interfaces {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: plan not ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn routes_batch(ns: &Netns, verb: &str) -> String {
    let path = std::env::temp_dir().join(format!("{}-soak-{verb}.batch", ns.name()));
    let text: String = (0..500u32)
        .map(|i| {
            format!(
                "route {verb} 10.77.{}.{}/32 via 10.3.0.2\n",
                i >> 8,
                i & 0xff
            )
        })
        .collect();
    std::fs::write(&path, text).expect("batch file");
    path.to_string_lossy().into_owned()
}

/// What the churn loop saw (Linux alone would answer every ping).
#[derive(Debug, Default)]
struct Tally {
    cycles: u32,
    router_pings: u32,
    bridge_pings: u32,
    max_mirror: usize,
    failures: Vec<String>,
}

/// What one run of the soak measured.
#[derive(Debug)]
struct Outcome {
    tally: Tally,
    /// UDP through the router: percent lost, Mbit/s.
    udp_lost: f64,
    udp_mbps: f64,
    /// Pings sent through the router and the bridge for the whole run,
    /// churn steps included (one every 50 ms).
    router_stream: PingStats,
    bridge_stream: PingStats,
}

/// The soak with Linux alone, then with LinuxFP, on fresh testbeds: the
/// same traffic and the same churn. Where Linux alone loses nothing,
/// LinuxFP must lose nothing either.
async fn soak(secs: u64) {
    let linux = soak_run(secs, false).await;
    let fast = soak_run(secs, true).await;
    for (who, o) in [("Linux alone", &linux), ("LinuxFP", &fast)] {
        eprintln!(
            "soak {secs} s, {who}: {} cycles; UDP {:.1} Mbit/s, {} % lost; ping streams: router {}/{}, bridge {}/{} answered; quiet-window failures {:?}",
            o.tally.cycles,
            o.udp_mbps,
            o.udp_lost,
            o.router_stream.received,
            o.router_stream.transmitted,
            o.bridge_stream.received,
            o.bridge_stream.transmitted,
            o.tally.failures
        );
    }
    assert!(
        linux.tally.failures.is_empty(),
        "Linux alone lost pings in a quiet window: {:#?}",
        linux.tally.failures
    );
    assert!(
        fast.tally.failures.is_empty(),
        "LinuxFP: {:#?}",
        fast.tally.failures
    );
    for (what, l, f) in [
        ("router", linux.router_stream, fast.router_stream),
        ("bridge", linux.bridge_stream, fast.bridge_stream),
    ] {
        let lost = |p: PingStats| p.transmitted - p.received;
        assert!(
            lost(f) <= lost(l),
            "{what}: LinuxFP lost {} of {} pings during the churn, Linux alone {} of {}",
            lost(f),
            f.transmitted,
            lost(l),
            l.transmitted
        );
    }
    // iperf3 counts a datagram reordered across its report intervals as
    // lost; a tenth of a percent is that noise, not a drop.
    assert!(
        fast.udp_lost <= linux.udp_lost + 0.1,
        "UDP through the router: LinuxFP lost {} %, Linux alone {} %",
        fast.udp_lost,
        linux.udp_lost
    );
}

/// One run: the testbeds, with LinuxFP's controllers if `accelerate`,
/// UDP and two ping streams for the whole run, and the churn. With
/// LinuxFP, also checks what only it has: no controller error, bounded
/// memory and FDB mirror, plans equal to the kernel's, fast paths used.
async fn soak_run(secs: u64, accelerate: bool) -> Outcome {
    let tag = if accelerate { "skf" } else { "skl" };
    let tb = VirtualRouter::new(tag).expect("router testbed");
    tb.set_static_neighbours().expect("neighbours");
    let side = Netns::new(&format!("{tag}x")).expect("netns");
    veth(&tb.rtr, "r2", &side, "x0").expect("veth");
    addr(&tb.rtr, "r2", "10.3.0.1/24").expect("addr");
    up(&tb.rtr, "r2").expect("up");
    addr(&side, "x0", "10.3.0.2/24").expect("addr");
    up(&side, "x0").expect("up");
    let sw = Switch::new(tag, 3).expect("switch");
    sw.set_static_neighbours().expect("neighbours");

    // A firewall on the router that the measured traffic passes (ping,
    // iperf3 on 5201): the filter FPM decides it, the churn edits it.
    tb.rtr
        .sh(&format!("nft -f - <<'EOF'\n{RULESET}EOF\n"))
        .expect("nft -f");
    if !accelerate {
        return traffic_and_churn(&tb, &sw, None, secs).0;
    }
    let (rh, rt) = start(&tb.rtr, router_fpms()).await;
    let (bh, bt) = start(&sw.sw, vec![Arc::new(BridgeFpm::new())]).await;
    let mut events = futures::stream::select(rh.events(), bh.events());
    wait_plan(&rh, 3, "router").await;
    wait_plan(&bh, 3, "bridge").await;
    let (outcome, rss) = traffic_and_churn(&tb, &sw, Some((&rh, &bh)), secs);
    let tally = &outcome.tally;
    eprintln!(
        "soak {secs} s: {} cycles, {} router and {} bridge pings in quiet windows, FDB mirror at most {} entries; UDP {:.1} Mbit/s, {:?} % lost; RSS {} -> {} KiB",
        tally.cycles,
        tally.router_pings,
        tally.bridge_pings,
        tally.max_mirror,
        outcome.udp_mbps,
        outcome.udp_lost,
        rss.0,
        rss.1
    );
    // No controller error and no interface that failed to deploy.
    let mut deploys = 0;
    while let Some(Some(ev)) = futures::FutureExt::now_or_never(events.next()) {
        match ev {
            ControllerEvent::Error { message } => panic!("controller error: {message}"),
            ControllerEvent::Deployed { failed, .. } => {
                assert!(failed.is_empty(), "{failed:?}");
                deploys += 1;
            }
            ControllerEvent::TopologyChanged { .. } => {}
        }
    }
    assert!(deploys >= tally.cycles / 2, "only {deploys} deployments");
    assert!(
        tally.max_mirror < 64,
        "FDB mirror reached {} entries",
        tally.max_mirror
    );
    // Memory: bounded growth after warm-up (no per-change leak).
    assert!(
        rss.1 < rss.0 + 64 * 1024,
        "RSS grew from {} to {} KiB",
        rss.0,
        rss.1
    );
    // The plans end as a fresh read of the kernel plans them, and the FDB
    // mirror holds what the kernel has (a few dozen entries, not the
    // history of moves).
    // (The filter's own configuration carries generation numbers that
    // only its running instance knows, so for the router the interfaces
    // and the router's configuration are compared.)
    for (handle, ns, fpms, only) in [
        (&rh, &tb.rtr, router_fpms(), Some("router")),
        (
            &bh,
            &sw.sw,
            vec![Arc::new(BridgeFpm::new()) as Arc<dyn Fpm>],
            None,
        ),
    ] {
        let mut reg = FpmRegistry::new();
        for fpm in fpms {
            reg.register(fpm).expect("register");
        }
        let netns = NetnsRef::Named(ns.name().to_string());
        let t = Instant::now();
        loop {
            let fresh =
                plan_once(&netns, &reg, &Policy::default(), handle.kernel_caps()).expect("plan");
            let mine = handle.plan();
            let same = match only {
                Some(fpm) => {
                    mine.interfaces == fresh.plan.interfaces
                        && mine.fpms.get(fpm) == fresh.plan.fpms.get(fpm)
                }
                None => *mine == fresh.plan,
            };
            if same {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "{}: the controller's plan differs from the kernel's",
                ns.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The fast paths ran: the filter decided packets, the router and the
    // bridge forwarded some.
    let rstats = rh.stats().await.expect("stats");
    let bstats = bh.stats().await.expect("stats");
    for (what, n) in [
        ("filter continue", rstats.total("filter", "continue")),
        ("router fast", rstats.total("router", "fast")),
        ("bridge fast", bstats.total("bridge", "fast")),
    ] {
        assert!(
            n > 100,
            "{what}: {n}; filter {:?}, router {:?}; plan {:?}",
            rstats.totals("filter"),
            rstats.totals("router"),
            rh.plan().interfaces
        );
    }
    let mirror = bh.plan().fpms["bridge"].maps[FDB_MAP].len();
    assert!(mirror < 64, "FDB mirror has {mirror} entries");
    for (h, t) in [(rh, rt), (bh, bt)] {
        h.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    outcome
}

/// UDP (iperf3 at a bounded rate) through the router and a ping stream
/// through the router and through the bridge, each on its own thread for
/// the whole run, while this thread churns (the controllers run on the
/// runtime's workers). Returns what was measured and the RSS after the
/// first cycle and at the end.
fn traffic_and_churn(
    tb: &VirtualRouter,
    sw: &Switch,
    handles: Option<(&ControllerHandle, &ControllerHandle)>,
    secs: u64,
) -> (Outcome, (u64, u64)) {
    let run = Iperf3 {
        seconds: secs as u32 + 2,
        udp_bitrate: Some(20_000_000),
        ..Iperf3::default()
    };
    // One ping every 50 ms for the length of the churn.
    let pings = secs as u32 * 20;
    std::thread::scope(|scope| {
        let udp = scope.spawn(|| tb.iperf3(false, &run));
        let router = scope.spawn(|| tb.ping_stats(false, pings));
        let bridge = scope.spawn(|| sw.ping(0, 1, false, pings));
        let (tally, rss) = churn(tb, sw, handles, secs);
        let joined = |name: &str, r: std::thread::Result<linuxfp_testkit::Result<PingStats>>| {
            r.expect("ping thread")
                .unwrap_or_else(|e| panic!("{name} ping stream: {e}"))
        };
        let udp = udp
            .join()
            .expect("iperf3 thread")
            .expect("iperf3 UDP through the router");
        let outcome = Outcome {
            tally,
            udp_lost: udp.lost_percent.expect("UDP loss reported"),
            udp_mbps: udp.bits_per_second / 1e6,
            router_stream: joined("router", router.join()),
            bridge_stream: joined("bridge", bridge.join()),
        };
        (outcome, rss)
    })
}

/// One churn step per cycle, then a quiet window with pings. Returns the
/// tally and the RSS after the first cycle and at the end.
fn churn(
    tb: &VirtualRouter,
    sw: &Switch,
    handles: Option<(&ControllerHandle, &ControllerHandle)>,
    secs: u64,
) -> (Tally, (u64, u64)) {
    let mut tally = Tally::default();
    let start = Instant::now();
    let mut rss_warm = 0;
    let add = routes_batch(&tb.rtr, "add");
    let del = routes_batch(&tb.rtr, "del");
    while start.elapsed() < Duration::from_secs(secs) {
        let step = tally.cycles % 8;
        let fake = format!("02:aa:00:00:00:{:02x}", tally.cycles % 16);
        let port = if tally.cycles % 2 == 0 { "p3" } else { "p2" };
        let argv: Vec<&str> = match step {
            0 => vec!["ip", "-batch", &add],
            1 => vec!["ip", "-batch", &del],
            2 => vec!["ip", "link", "set", "r2", "down"],
            3 => vec!["ip", "link", "set", "r2", "up"],
            4 => vec!["ip", "link", "set", "p3", "down"],
            5 => vec!["ip", "link", "set", "p3", "up"],
            6 => vec![
                "nft", "add", "rule", "inet", "t", "filt", "udp", "dport", "9998", "drop",
            ],
            // Back to the base ruleset, in one transaction.
            _ => vec![
                "nft",
                "flush chain inet t filt ; add rule inet t filt udp dport 9999 drop",
            ],
        };
        let ns = if step == 4 || step == 5 {
            &sw.sw
        } else {
            &tb.rtr
        };
        if let Err(e) = ns.exec_timeout(&argv, Duration::from_secs(30)) {
            tally
                .failures
                .push(format!("cycle {}: {argv:?}: {e}", tally.cycles));
        }
        // A static FDB entry moves to the other side port every cycle.
        if let Err(e) = sw.sw.exec(&[
            "bridge", "fdb", "replace", &fake, "dev", port, "master", "static",
        ]) {
            tally
                .failures
                .push(format!("cycle {}: fdb move: {e}", tally.cycles));
        }
        // Quiet window: the controllers catch up, then Linux alone would
        // answer every ping on the measured paths.
        std::thread::sleep(Duration::from_millis(150));
        match tb.ping_stats(false, 10) {
            Ok(p) if p.all_answered() => tally.router_pings += p.transmitted,
            other => tally.failures.push(format!(
                "cycle {} (step {step}): router ping {other:?}",
                tally.cycles
            )),
        }
        match sw.ping(0, 1, false, 10) {
            Ok(p) if p.all_answered() => tally.bridge_pings += p.transmitted,
            other => tally.failures.push(format!(
                "cycle {} (step {step}): bridge ping {other:?}",
                tally.cycles
            )),
        }
        // Neither controller reports an error or a failed interface.
        if let Some((rh, bh)) = handles {
            for (name, h) in [("router", rh), ("bridge", bh)] {
                if h.plan().interfaces.is_empty() {
                    tally
                        .failures
                        .push(format!("cycle {}: {name} plan empty", tally.cycles));
                }
            }
            let mirror = bh
                .plan()
                .fpms
                .get("bridge")
                .map_or(0, |c| c.maps[FDB_MAP].len());
            tally.max_mirror = tally.max_mirror.max(mirror);
        }
        tally.cycles += 1;
        if tally.cycles == 8 {
            rss_warm = rss_kib();
        }
    }
    let _ = std::fs::remove_file(&add);
    let _ = std::fs::remove_file(&del);
    if rss_warm == 0 {
        rss_warm = rss_kib();
    }
    (tally, (rss_warm, rss_kib()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_soak() {
    if !require_root("short_soak") {
        return;
    }
    soak(14).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10 minutes; set LINUXFP_SOAK_SECS to change"]
async fn long_soak() {
    if !require_root("long_soak") {
        return;
    }
    let secs = std::env::var("LINUXFP_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    soak(secs).await;
}
