// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reaction time: from a plain configuration command to the updated fast
//! path, through the whole controller (netlink event → KernelState →
//! topology → plan → deploy), reported as p50/p99 over repeats.
//!
//! - FDB entry (`bridge fdb replace/del`): a map-only change (bridge FPM).
//! - New router interface (`ip link add` + address + up): a redeploy (a
//!   program attached to a new interface).
//! - A firewall rule added (`nft add rule` in a forward chain of 1 and of
//!   10,000 rules): the inspector re-reads the ruleset, the filter FPM
//!   compiles it into a new generation and the deployer writes what
//!   differs from the generation two before (same parity) and then
//!   switches to it in a map: no program is reloaded, but the whole
//!   ruleset is read and compiled again, so it is held to the redeploy
//!   target.
//!
//! The clock starts before the command is run and stops when the
//! controller reports the deployment, so it includes the command's own
//! process start (about 1–3 ms here). Route changes need no reaction at
//! all: the router reads the kernel's FIB on every packet.
//!
//! `cargo bench -p linuxfp-benches --bench reaction` (root); writes
//! `bench-results/reaction.{md,json}`. `LINUXFP_BENCH_QUICK=1` for fewer
//! repeats.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use linuxfp::{
    controller::{Controller, ControllerEvent, ControllerHandle},
    fpm::Fpm,
    netns::NetnsRef,
};
use linuxfp_fpm_bridge::BridgeFpm;
use linuxfp_fpm_filter::FilterFpm;
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{Netns, Switch, VirtualRouter, addr, require_root, up, veth};
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
struct Case {
    name: &'static str,
    kind: &'static str,
    samples: usize,
    /// From running the command to the deployment.
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// From the command's return (its netlink event is sent before) to the
    /// deployment: the controller's own reaction.
    after_cmd_p50_ms: f64,
    after_cmd_p99_ms: f64,
    /// The controller's own account (`Deployed::latency_ms`): from the
    /// inspector's snapshot to the deployment. The rest of "after the
    /// command" is the inspector's reading and the event's way there.
    controller_p50_ms: f64,
    controller_p99_ms: f64,
    target_p99_ms: f64,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One change: from the command's start, from its return, and the
/// controller's own account, in ms.
struct Sample {
    total: f64,
    after: f64,
    controller: f64,
}

impl Sample {
    fn new(t0: Instant, done: Instant, d: &Deployed) -> Self {
        Sample {
            total: ms(d.at - t0),
            after: ms(d.at.saturating_duration_since(done)),
            controller: d.latency_ms,
        }
    }
}

fn sorted(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> Vec<f64> {
    let mut v: Vec<f64> = samples.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn summarise(name: &'static str, kind: &'static str, target: f64, samples: Vec<Sample>) -> Case {
    let total = sorted(&samples, |s| s.total);
    let after = sorted(&samples, |s| s.after);
    let controller = sorted(&samples, |s| s.controller);
    Case {
        name,
        kind,
        samples: total.len(),
        p50_ms: quantile(&total, 0.5),
        p99_ms: quantile(&total, 0.99),
        max_ms: total.last().copied().unwrap_or(0.0),
        after_cmd_p50_ms: quantile(&after, 0.5),
        after_cmd_p99_ms: quantile(&after, 0.99),
        controller_p50_ms: quantile(&controller, 0.5),
        controller_p99_ms: quantile(&controller, 0.99),
        target_p99_ms: target,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Running {
    handle: ControllerHandle,
    events: Box<dyn futures::Stream<Item = ControllerEvent> + Send + Unpin>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(ns: &Netns, fpms: Vec<Arc<dyn Fpm>>) -> Running {
    let mut b = Controller::builder().netns(NetnsRef::Named(ns.name().to_string()));
    for f in fpms {
        b = b.fpm(f);
    }
    let (handle, run) = b.build().expect("build").start().expect("start");
    let mut events = Box::new(handle.events());
    let task = tokio::spawn(async move {
        let _ = run.await;
    });
    deploy_within(&mut events, Duration::from_secs(20))
        .await
        .expect("first deployment");
    Running {
        handle,
        events,
        task,
    }
}

/// A deployment the controller reported: when the bench saw it, and the
/// controller's own latency.
struct Deployed {
    at: Instant,
    latency_ms: f64,
}

/// Waits for the next deployment (at most 2 s).
async fn next_deploy(
    events: &mut (impl futures::Stream<Item = ControllerEvent> + Unpin),
) -> Option<Deployed> {
    deploy_within(events, Duration::from_secs(2)).await
}

/// Waits for the next deployment, at most `wait`.
async fn deploy_within(
    events: &mut (impl futures::Stream<Item = ControllerEvent> + Unpin),
    wait: Duration,
) -> Option<Deployed> {
    tokio::time::timeout(wait, async {
        loop {
            match events.next().await {
                Some(ControllerEvent::Deployed { latency_ms, .. }) => {
                    return Some(Deployed {
                        at: Instant::now(),
                        latency_ms,
                    });
                }
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Drains events already queued, so the next wait sees only new ones.
async fn drain(events: &mut (impl futures::Stream<Item = ControllerEvent> + Unpin)) {
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await {}
}

async fn fdb_case(repeats: usize) -> Case {
    let s = Switch::new("rf", 2).expect("switch");
    let mut r = start(&s.sw, vec![Arc::new(BridgeFpm::new())]).await;
    let mut samples = Vec::new();
    for i in 0..repeats {
        let mac = format!("02:fd:b0:00:{:02x}:{:02x}", i / 256, i % 256);
        drain(&mut r.events).await;
        let t0 = Instant::now();
        s.sw.exec(&[
            "bridge", "fdb", "replace", &mac, "dev", "p1", "master", "static",
        ])
        .expect("fdb add");
        let done = Instant::now();
        if let Some(d) = next_deploy(&mut r.events).await {
            samples.push(Sample::new(t0, done, &d));
        }
        s.sw.exec(&["bridge", "fdb", "del", &mac, "dev", "p1", "master"])
            .expect("fdb del");
        let _ = next_deploy(&mut r.events).await;
    }
    r.handle.shutdown();
    let _ = r.task.await;
    summarise("FDB entry added", "map-only", 10.0, samples)
}

async fn interface_case(repeats: usize) -> Case {
    let tb = VirtualRouter::new("ri").expect("testbed");
    let mut r = start(&tb.rtr, vec![Arc::new(RouterFpm::new())]).await;
    let far = Netns::new("rifar").expect("netns");
    let mut samples = Vec::new();
    for i in 0..repeats {
        drain(&mut r.events).await;
        let t0 = Instant::now();
        veth(&tb.rtr, "rx", &far, "fx").expect("veth");
        addr(&tb.rtr, "rx", &format!("10.9.{}.1/24", i % 200)).expect("addr");
        up(&far, "fx").expect("peer up");
        up(&tb.rtr, "rx").expect("up");
        let done = Instant::now();
        // The first deployment that attaches to the new interface.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let ifindex = linuxfp_testkit::ifindex(&tb.rtr, "rx").unwrap_or(0);
            match next_deploy(&mut r.events).await {
                Some(d) => {
                    let plan = r.handle.plan();
                    if plan.interfaces.contains_key(&ifindex) {
                        samples.push(Sample::new(t0, done, &d));
                        break;
                    }
                }
                None => break,
            }
        }
        tb.rtr
            .exec(&["ip", "link", "del", "rx"])
            .expect("remove the interface");
        let _ = next_deploy(&mut r.events).await;
    }
    r.handle.shutdown();
    let _ = r.task.await;
    summarise("router interface added", "redeploy", 100.0, samples)
}

/// The forward chain the rule cases edit: `rules` rules to start with
/// (`udp dport` 20000 + i, drop), none of which the added rules shadow.
fn base_ruleset(rules: usize) -> String {
    let mut s = String::from(
        "table ip lfpreact {\n  chain filt {\n    type filter hook forward priority 0; policy accept;\n",
    );
    for i in 0..rules {
        s.push_str(&format!("    udp dport {} drop\n", 20_000 + i));
    }
    s.push_str("  }\n}\n");
    s
}

/// A rule added to a forward chain of `rules` rules, then deleted again by
/// its handle (both changes make a new generation; only the addition is
/// timed).
async fn rule_case(name: &'static str, repeats: usize, rules: usize) -> Case {
    let tb = VirtualRouter::new("rr").expect("testbed");
    let path = std::env::temp_dir().join(format!("lfp-reaction-{}.nft", std::process::id()));
    std::fs::write(&path, base_ruleset(rules)).expect("write the ruleset");
    let loaded = tb.rtr.exec(&["nft", "-f", &path.display().to_string()]);
    let _ = std::fs::remove_file(&path);
    loaded.expect("base ruleset");
    let mut r = start(
        &tb.rtr,
        vec![Arc::new(RouterFpm::new()), Arc::new(FilterFpm::new())],
    )
    .await;
    let mut samples = Vec::new();
    for i in 0..repeats {
        drain(&mut r.events).await;
        let port = (10_000 + i).to_string();
        let t0 = Instant::now();
        let echoed = tb
            .rtr
            .exec(&[
                "nft", "--echo", "--handle", "add", "rule", "ip", "lfpreact", "filt", "udp",
                "dport", &port, "drop",
            ])
            .expect("nft add rule");
        let done = Instant::now();
        // A large ruleset takes long: wait for it rather than miss it.
        if let Some(d) = deploy_within(&mut r.events, Duration::from_secs(20)).await {
            samples.push(Sample::new(t0, done, &d));
        }
        // `... drop # handle N` (then `# new generation ...`): remove it.
        let handle = echoed
            .split("# handle ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|h| h.parse::<u64>().is_ok())
            .map(str::to_string)
            .expect("nft echoes the new rule's handle");
        tb.rtr
            .exec(&[
                "nft", "delete", "rule", "ip", "lfpreact", "filt", "handle", &handle,
            ])
            .expect("nft delete rule");
        let _ = deploy_within(&mut r.events, Duration::from_secs(20)).await;
    }
    r.handle.shutdown();
    let _ = r.task.await;
    summarise(name, "new generation", 100.0, samples)
}

fn markdown(cases: &[Case]) -> String {
    let mut s = String::from(
        "## Reaction time: command → updated fast path (through the controller)\n\n\
         | change | kind | samples | p50 ms | p99 ms | max ms | after the command: p50 / p99 ms | controller: p50 / p99 ms | target p99 |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for c in cases {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | < {} ms |\n",
            c.name,
            c.kind,
            c.samples,
            c.p50_ms,
            c.p99_ms,
            c.max_ms,
            c.after_cmd_p50_ms,
            c.after_cmd_p99_ms,
            c.controller_p50_ms,
            c.controller_p99_ms,
            c.target_p99_ms
        ));
    }
    s.push_str(
        "\nIncludes starting the `bridge`/`ip` processes. Route changes need no \
         reaction: the router reads the kernel's FIB per packet.\n",
    );
    s
}

fn main() {
    if !require_root("reaction-time benchmark") {
        return;
    }
    let repeats = if std::env::var_os("LINUXFP_BENCH_QUICK").is_some() {
        20
    } else {
        100
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cases = rt.block_on(async {
        vec![
            fdb_case(repeats).await,
            interface_case(repeats / 4 + 1).await,
            rule_case("firewall rule added", repeats / 4 + 1, 1).await,
            rule_case("firewall rule added to 10k rules", repeats / 10 + 1, 10_000).await,
        ]
    });
    let md = markdown(&cases);
    linuxfp_benches::write_results("reaction", &md, &cases);
}
