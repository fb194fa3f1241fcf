//! The LinuxFP part of `cargo xtask demo`: start LinuxFP on the virtual
//! router through the public API, show what it detected and decided, the
//! live counters, the speed-up against Linux measured in the same run, and
//! the fast path following a plain `ip` command.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow};
use futures::StreamExt;
use linuxfp::{
    compat::HookPolicy,
    controller::{Controller, ControllerEvent, ControllerHandle},
    netns::NetnsRef,
};
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{Iperf3, VirtualRouter};
use linuxfp_trafficgen::{Generator, Sink, frame};

/// Frames per packets/s measurement.
const FRAMES: u32 = 1_000_000;

/// Runs the story on a built testbed.
pub fn run(vr: &VirtualRouter) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    println!(
        "\n[LinuxFP 1/4] Linux alone: packets/s (64 B UDP, live frames from src, counted at dst)"
    );
    vr.rtr
        .exec(&["ethtool", "-K", "r0", "gro", "on"])
        .context("gro on r0 (NAPI for injected frames)")?;
    vr.set_static_neighbours().context("static neighbours")?;
    let linux = pps(vr)?;
    println!("  Linux forwards {linux:.2} Mpps");
    crate::interrupted()?;

    println!("\n[LinuxFP 2/4] starting LinuxFP with the default policy (auto hooks)");
    rt.block_on(async {
        let (handle, task) = start(vr, HookPolicy::Auto).await?;
        show_plan(&handle);
        let tcp = vr
            .iperf3(false, &Iperf3 { seconds: 2, ..Iperf3::default() })
            .context("iperf3 through LinuxFP")?;
        println!("  TCP through LinuxFP (TC on veth keeps GRO/GSO): {:.1} Gbit/s", tcp.gbps());
        show_counters(&handle).await?;

        println!("\n[LinuxFP 3/4] the fast path follows `ip`: blackhole 10.2.0.2 on the router");
        vr.rtr
            .exec(&["ip", "route", "add", "blackhole", "10.2.0.2/32"])
            .context("blackhole route")?;
        let reachable = vr.ping(false, 3).unwrap_or(false);
        let stats = handle.stats().await?;
        println!(
            "  ping reachable: {reachable} (Linux drops it too); router punts for `route_reject`: {}",
            stats.total("router", "route_reject")
        );
        vr.rtr
            .exec(&["ip", "route", "del", "blackhole", "10.2.0.2/32"])
            .context("remove blackhole")?;
        println!("  route removed; ping reachable: {}", vr.ping(false, 3).unwrap_or(false));
        stop(handle, task).await
    })?;
    crate::interrupted()?;

    println!("\n[LinuxFP 4/4] LinuxFP with XDP (what a physical NIC would get): packets/s");
    let fast = rt.block_on(async {
        let (handle, task) = start(vr, HookPolicy::Xdp).await?;
        show_plan(&handle);
        let r = pps(vr);
        show_counters(&handle).await?;
        stop(handle, task).await?;
        r
    })?;
    println!(
        "\n  Linux {linux:.2} Mpps → LinuxFP XDP {fast:.2} Mpps: {:.2}x, measured in this run",
        fast / linux
    );
    Ok(())
}

async fn start(
    vr: &VirtualRouter,
    hook: HookPolicy,
) -> Result<(
    ControllerHandle,
    tokio::task::JoinHandle<Result<(), linuxfp::controller::ControllerError>>,
)> {
    let started = Instant::now();
    let (handle, run) = Controller::builder()
        .netns(NetnsRef::Named(vr.rtr.name().to_string()))
        .fpm(Arc::new(RouterFpm::new()))
        .hook_policy(hook)
        .build()?
        .start()?;
    let mut events = handle.events();
    let task = tokio::spawn(run);
    let deployed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = events.next().await {
            if let ControllerEvent::Deployed { .. } = ev {
                return Ok(());
            }
            if let ControllerEvent::Error { message } = ev {
                return Err(anyhow!(message));
            }
        }
        Err(anyhow!("controller stopped"))
    })
    .await
    .context("no deployment within 5 s")?;
    deployed?;
    println!("  deployed {:?} after start", started.elapsed());
    Ok((handle, task))
}

async fn stop(
    handle: ControllerHandle,
    task: tokio::task::JoinHandle<Result<(), linuxfp::controller::ControllerError>>,
) -> Result<()> {
    handle.shutdown();
    task.await.context("controller task")??;
    println!("  LinuxFP stopped: everything detached, Linux carries the traffic");
    Ok(())
}

fn show_plan(handle: &ControllerHandle) {
    let topo = handle.topology();
    if let Some(r) = &topo.router {
        let names: Vec<String> = r
            .interfaces
            .keys()
            .filter_map(|i| topo.interfaces.get(i).map(|x| x.name.clone()))
            .collect();
        println!(
            "  topology: router (ipv4={}, ipv6={}) on {}",
            r.ipv4,
            r.ipv6,
            names.join(", ")
        );
    }
    for (ifindex, p) in &handle.plan().interfaces {
        let name = topo
            .interfaces
            .get(ifindex)
            .map_or("?", |i| i.name.as_str());
        println!(
            "  plan: {name:<4} {:<3} {}  — {}",
            p.hook.to_string(),
            p.stages.join(" → "),
            p.reasons.join("; ")
        );
    }
}

async fn show_counters(handle: &ControllerHandle) -> Result<()> {
    let stats = handle.stats().await?;
    let totals = stats.totals("router");
    let list: Vec<String> = totals.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("  router counters: {}", list.join(" "));
    Ok(())
}

/// Delivered Mpps of 64-byte UDP frames from src to dst.
fn pps(vr: &VirtualRouter) -> Result<f64> {
    let d0 = vr.dst_if.ifindex;
    let sink = vr
        .dst
        .run_in(move || Sink::attach(d0))
        .context("entering dst")??;
    let (smac, dmac) = (vr.src_if.mac, vr.rtr_src_if.mac);
    let f = frame::udp4(dmac, smac, vr.src_if.ipv4, vr.dst_if.ipv4, 1000, 2000, 64);
    let s0 = vr.src_if.ifindex;
    let (before, _) = sink.counts()?;
    let t = Instant::now();
    let progress = std::thread::spawn(move || {
        // A progress line while the generator runs (it blocks its thread).
        for i in 0..6 {
            std::thread::sleep(Duration::from_millis(500));
            print!("\r  sending {FRAMES} frames{}", ".".repeat(i + 1));
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
        }
    });
    vr.src
        .run_in(move || -> Result<()> {
            let mut g = Generator::new(&f, frame::UDP4_HEADERS)?;
            g.send(s0, FRAMES)?;
            Ok(())
        })
        .context("entering src")??;
    let elapsed = t.elapsed().as_secs_f64();
    let _ = progress.join();
    println!();
    std::thread::sleep(Duration::from_millis(50));
    let (after, _) = sink.counts()?;
    Ok((after - before) as f64 / elapsed / 1e6)
}
