// SPDX-License-Identifier: MIT OR Apache-2.0
//! Faults on the virtual router, each ending in a correct state or a clear
//! error with Linux still forwarding: a kernel too old for the fast path, a
//! netlink overrun in a route storm while the controller runs, an
//! interface deleted under an attached program, and the deploy worker
//! dying while the controller runs.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use linuxfp::{
    compat::{KernelCaps, Policy},
    controller::{
        Controller, ControllerBuilder, ControllerError, ControllerEvent, ControllerHandle,
        TopologyUpdate, plan_once,
    },
    deploy::{PinLayout, worker::WorkerError},
    fpm::{Fpm, FpmConfig, FpmDeclaration, FpmError, FpmRegistry, ParamInput, UpkeepCtx},
    inspector::{Inspector, InspectorEvent},
    netns::NetnsRef,
};
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{Netns, VirtualRouter, addr, attached_programs, require_root, up, veth};

/// Collects every event until `ok` holds for the handle, or panics after
/// `within`. Returns the events seen and how long it took.
async fn until(
    handle: &ControllerHandle,
    events: &mut (impl futures::Stream<Item = ControllerEvent> + Unpin),
    within: Duration,
    what: &str,
    mut ok: impl FnMut(&ControllerHandle) -> bool,
) -> (Vec<ControllerEvent>, Duration) {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < within {
        if ok(handle) {
            return (seen, start.elapsed());
        }
        if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(20), events.next()).await {
            seen.push(ev);
        }
    }
    panic!("{what}: not within {within:?}; events: {seen:?}");
}

/// Waits for the router's three interfaces to be in the plan.
async fn three_planned(
    handle: &ControllerHandle,
    events: &mut (impl futures::Stream<Item = ControllerEvent> + Unpin),
) {
    until(
        handle,
        events,
        Duration::from_secs(5),
        "3 interfaces",
        |h| h.plan().interfaces.len() == 3,
    )
    .await;
}

fn errors(events: &[ControllerEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ControllerEvent::Error { message } => Some(message.clone()),
            ControllerEvent::Deployed { failed, .. } if !failed.is_empty() => {
                Some(format!("{failed:?}"))
            }
            _ => None,
        })
        .collect()
}

fn registry() -> FpmRegistry {
    let mut r = FpmRegistry::new();
    r.register(Arc::new(RouterFpm::new())).expect("register");
    r
}

/// A controller with the router FPM for the testbed's router namespace.
fn builder(tb: &VirtualRouter) -> ControllerBuilder {
    Controller::builder()
        .netns(NetnsRef::Named(tb.rtr.name().to_string()))
        .fpm(Arc::new(RouterFpm::new()))
}

/// Runs the controller's future on the runtime.
fn spawn(
    run: impl std::future::Future<Output = Result<(), ControllerError>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = run.await {
            eprintln!("controller ended with {e}");
        }
    })
}

/// A third router interface, `r2` (10.3.0.1/24), to a namespace of its own
/// (`x0`, 10.3.0.2/24); returns that namespace and `r2`'s ifindex.
fn side_interface(tb: &VirtualRouter, tag: &str) -> (Netns, u32) {
    let side = Netns::new(tag).expect("netns");
    veth(&tb.rtr, "r2", &side, "x0").expect("veth");
    addr(&tb.rtr, "r2", "10.3.0.1/24").expect("addr");
    up(&tb.rtr, "r2").expect("up");
    addr(&side, "x0", "10.3.0.2/24").expect("addr");
    up(&side, "x0").expect("up");
    let r2 = linuxfp_testkit::ifindex(&tb.rtr, "r2").expect("ifindex");
    (side, r2)
}

async fn stop(handle: ControllerHandle, task: tokio::task::JoinHandle<()>) {
    handle.shutdown();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops in time")
        .expect("join");
}

/// Pings 20 times; all must be answered and at least 30 packets (of 40)
/// must be counted `fast` by the router.
async fn forwards_fast(tb: &VirtualRouter, handle: &ControllerHandle, what: &str) {
    let before = handle.stats().await.expect("stats").total("router", "fast");
    assert!(
        tb.ping(false, 20).expect("ping"),
        "{what}: ping through r0/r1"
    );
    let fast = handle.stats().await.expect("stats").total("router", "fast") - before;
    assert!(fast >= 30, "{what}: only {fast} of 40 packets fast");
}

/// Fault 7: a kernel without the basics (4.19): the plan says why for every
/// interface, nothing is attached, Linux forwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_kernel_gets_no_fast_path_and_the_plan_says_why() {
    if !require_root("an_old_kernel_gets_no_fast_path_and_the_plan_says_why") {
        return;
    }
    let tb = VirtualRouter::new("fold").expect("testbed");
    let (handle, run) = builder(&tb)
        .kernel_caps(KernelCaps::for_version("4.19.0"))
        .build()
        .expect("build")
        .start()
        .expect("start");
    let mut events = handle.events();
    let task = spawn(run);
    let (seen, _) = until(
        &handle,
        &mut events,
        Duration::from_secs(3),
        "topology seen",
        |h| h.topology().interfaces.contains_key(&tb.rtr_dst_if.ifindex),
    )
    .await;
    assert!(errors(&seen).is_empty(), "{seen:?}");
    let plan = handle.plan();
    assert!(plan.interfaces.is_empty(), "nothing planned: {plan:?}");
    let decisions = handle.decisions();
    for ifindex in [tb.rtr_src_if.ifindex, tb.rtr_dst_if.ifindex] {
        let d = &decisions.interfaces[&ifindex];
        assert!(d.hook.is_none(), "{d:?}");
        let why = d.reasons.join("; ");
        assert!(why.contains("4.19"), "the reason names the kernel: {why}");
        let slow = plan.slow_path[&ifindex].reasons.join("; ");
        assert!(
            slow.contains("older than 5.10"),
            "the plan says why: {slow}"
        );
    }
    for ifname in ["r0", "r1"] {
        assert!(
            attached_programs(&tb.rtr, ifname)
                .expect("query")
                .is_empty()
        );
    }
    assert!(tb.ping(false, 5).expect("ping"), "Linux forwards");
    stop(handle, task).await;
}

/// Writes an `ip -batch` file: `n` blackhole routes added or removed, and
/// `extra` (a plan-changing command) in the middle of the storm.
fn storm(ns: &Netns, verb: &str, n: u32, extra: &str) -> String {
    let path = std::env::temp_dir().join(format!("{}-{verb}.batch", ns.name()));
    let mut text = String::new();
    for i in 0..n {
        if i == n / 2 {
            text.push_str(extra);
            text.push('\n');
        }
        text.push_str(&format!(
            "route {verb} blackhole 10.{}.{}.{}/32\n",
            100 + (i >> 16),
            (i >> 8) & 0xff,
            i & 0xff
        ));
    }
    std::fs::write(&path, text).expect("batch file");
    path.to_string_lossy().into_owned()
}

/// Fault 2: 50k route changes into an inspector with the smallest receive
/// buffer (so events are lost and it re-dumps) while the controller runs,
/// with an interface going down (then up) in the middle of the storm: the
/// controller's topology and plan end equal to a fresh read of the kernel,
/// and the router forwards fast, all within bounded time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_storm_with_an_overrun_ends_in_the_kernels_plan() {
    if !require_root("a_route_storm_with_an_overrun_ends_in_the_kernels_plan") {
        return;
    }
    const ROUTES: u32 = 50_000;
    let tb = VirtualRouter::new("fstm").expect("testbed");
    let (_side, r2) = side_interface(&tb, "fstmx");
    let netns = NetnsRef::Named(tb.rtr.name().to_string());
    // The controller's own pipeline (inspector → topology), with the
    // smallest receive buffer the kernel allows and the re-dumps counted.
    let resyncs = Arc::new(AtomicUsize::new(0));
    let counted = resyncs.clone();
    let source = Inspector::new(netns.clone())
        .rx_buffer(1)
        .watch()
        .expect("watch")
        .map(move |ev| {
            if matches!(ev, InspectorEvent::Resynced(_)) {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            let state = ev.state().clone();
            TopologyUpdate {
                topology: linuxfp::topology::derive(&state),
                state: Some(state),
            }
        });
    let (handle, run) = builder(&tb)
        .build()
        .expect("build")
        .start_with_source(source)
        .expect("start");
    let mut events = handle.events();
    let task = spawn(run);
    three_planned(&handle, &mut events).await;
    forwards_fast(&tb, &handle, "before the storm").await;

    let caps = handle.kernel_caps().clone();
    let matches_kernel = |h: &ControllerHandle| {
        let fresh = plan_once(&netns, &registry(), &Policy::default(), &caps).expect("plan");
        h.topology() == fresh.topology && *h.plan() == fresh.plan
    };
    for (verb, extra_cmd, r2_planned) in [
        ("add", "link set r2 down", false),
        ("del", "link set r2 up", true),
    ] {
        let file = storm(&tb.rtr, verb, ROUTES, extra_cmd);
        let t0 = Instant::now();
        tb.rtr
            .exec_timeout(&["ip", "-batch", &file], Duration::from_secs(120))
            .expect("ip -batch");
        let _ = std::fs::remove_file(&file);
        let batch = t0.elapsed();
        let (seen, took) = until(
            &handle,
            &mut events,
            Duration::from_secs(30),
            &format!("plan follows the {verb} storm"),
            |h| h.plan().interfaces.contains_key(&r2) == r2_planned && matches_kernel(h),
        )
        .await;
        eprintln!(
            "{ROUTES} route {verb}s in {batch:?}; controller matched the kernel {took:?} later ({} re-dumps so far)",
            resyncs.load(Ordering::Relaxed)
        );
        assert!(errors(&seen).is_empty(), "{:?}", errors(&seen));
        assert_eq!(
            attached_programs(&tb.rtr, "r2").expect("query").is_empty(),
            !r2_planned,
            "r2 attached as planned"
        );
        forwards_fast(&tb, &handle, &format!("after the {verb} storm")).await;
    }
    assert!(
        resyncs.load(Ordering::Relaxed) > 0,
        "the storm must overrun the inspector's socket"
    );
    stop(handle, task).await;
}

/// Fault 3 (router): an interface deleted while the router is attached to
/// it: the plan drops it without an error, the others keep forwarding fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_interface_leaves_the_plan_quietly() {
    if !require_root("a_deleted_interface_leaves_the_plan_quietly") {
        return;
    }
    let tb = VirtualRouter::new("fdel").expect("testbed");
    let (_side, r2) = side_interface(&tb, "fdelx");
    let (handle, run) = builder(&tb).build().expect("build").start().expect("start");
    let mut events = handle.events();
    let task = spawn(run);
    three_planned(&handle, &mut events).await;
    assert!(!attached_programs(&tb.rtr, "r2").expect("query").is_empty());

    tb.rtr
        .exec(&["ip", "link", "del", "r2"])
        .expect("delete r2 under its program");
    let (mut seen, took) = until(
        &handle,
        &mut events,
        Duration::from_secs(3),
        "r2 leaves the plan",
        |h| !h.plan().interfaces.contains_key(&r2) && h.plan().interfaces.len() == 2,
    )
    .await;
    eprintln!("deleted interface left the plan {took:?} after the delete");
    // No error then, nor in the second after (no retry storm).
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(1) {
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await {
            seen.push(e);
        }
    }
    assert!(errors(&seen).is_empty(), "{:?}", errors(&seen));
    assert!(seen.len() < 10, "a few events, not a storm: {seen:?}");
    forwards_fast(&tb, &handle, "after r2 was deleted").await;
    stop(handle, task).await;
}

/// The router FPM, whose upkeep (run on the deploy worker's thread) panics
/// once armed: third-party code failing inside the worker.
struct PanickingUpkeep {
    router: RouterFpm,
    armed: Arc<AtomicBool>,
}

impl Fpm for PanickingUpkeep {
    fn declaration(&self) -> &FpmDeclaration {
        self.router.declaration()
    }
    fn bytecode(&self) -> &'static [u8] {
        self.router.bytecode()
    }
    fn parameterize(&self, input: &ParamInput<'_>) -> Result<FpmConfig, FpmError> {
        self.router.parameterize(input)
    }
    fn upkeep_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(20))
    }
    fn upkeep(&self, _ctx: &UpkeepCtx<'_>) -> Result<(), FpmError> {
        assert!(!self.armed.load(Ordering::SeqCst), "injected upkeep panic");
        Ok(())
    }
}

/// The deploy worker's thread dies (an FPM's upkeep panics in it) while
/// the controller runs: the programs are detached with the deployer (fail
/// open), the pins are removed, the controller reports the death (an
/// `Error` event naming the panic, every interface in the plan's slow path
/// with that reason) and its run ends with `WorkerError::Died`; Linux
/// forwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_worker_dying_fails_open_and_is_reported() {
    if !require_root("the_deploy_worker_dying_fails_open_and_is_reported") {
        return;
    }
    let tb = VirtualRouter::new("fwd").expect("testbed");
    let armed = Arc::new(AtomicBool::new(false));
    let fpm = PanickingUpkeep {
        router: RouterFpm::new(),
        armed: armed.clone(),
    };
    let netns = NetnsRef::Named(tb.rtr.name().to_string());
    let (handle, run) = Controller::builder()
        .netns(netns.clone())
        .fpm(Arc::new(fpm))
        .build()
        .expect("build")
        .start()
        .expect("start");
    let mut events = handle.events();
    let task = tokio::spawn(run);
    until(
        &handle,
        &mut events,
        Duration::from_secs(5),
        "r0 and r1 deployed",
        |h| h.plan().interfaces.len() >= 2,
    )
    .await;
    forwards_fast(&tb, &handle, "before the fault").await;
    let pins = PinLayout::new(&netns.pin_name()).root;
    assert!(pins.exists(), "{} while deployed", pins.display());

    armed.store(true, Ordering::SeqCst);
    let ended = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the run ends when the worker dies")
        .expect("join");
    match ended {
        Err(ControllerError::Worker(WorkerError::Died { reason })) => {
            assert!(reason.contains("injected upkeep panic"), "{reason}");
        }
        other => panic!("the run ended with {other:?}"),
    }
    let mut seen = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        seen.push(ev);
    }
    let errs = errors(&seen);
    assert!(
        errs.iter()
            .any(|e| e.contains("deploy worker died") && e.contains("injected upkeep panic")),
        "reported: {errs:?}"
    );
    let plan = handle.plan();
    assert!(plan.interfaces.is_empty(), "{plan:?}");
    for ifindex in [tb.rtr_src_if.ifindex, tb.rtr_dst_if.ifindex] {
        let slow = plan.slow_path.get(&ifindex).expect("in the slow path");
        assert!(
            slow.reasons
                .iter()
                .any(|r| r.contains("deploy worker died")),
            "{slow:?}"
        );
    }
    for ifname in ["r0", "r1"] {
        let att = attached_programs(&tb.rtr, ifname).expect("query");
        assert!(
            att.tc_ingress.is_empty() && att.xdp.is_empty(),
            "{ifname}: {att:?}"
        );
    }
    assert!(!pins.exists(), "{} removed", pins.display());
    let status = PinLayout::new(&netns.pin_name()).status;
    assert!(!status.exists(), "{} removed", status.display());
    assert!(tb.ping(false, 10).expect("ping"), "Linux forwards");
    assert!(
        matches!(handle.stats().await, Err(ControllerError::Worker(_))),
        "the worker is gone"
    );
}
