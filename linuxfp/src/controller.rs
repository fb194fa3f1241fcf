// SPDX-License-Identifier: MIT OR Apache-2.0
//! The controller: Inspector → TopologyManager → Compatibility →
//! Synthesizer → Deployer, as one async component.
//!
//! ```no_run
//! # async fn demo(router: std::sync::Arc<dyn linuxfp::fpm::Fpm>) -> Result<(), Box<dyn std::error::Error>> {
//! use linuxfp::{controller::Controller, netns::NetnsRef};
//! let (handle, run) = Controller::builder()
//!     .netns(NetnsRef::Named("rtr".into()))
//!     .fpm(router)
//!     .build()?
//!     .start()?;
//! // Spawn `run` on any executor; it ends when `handle.shutdown()` is called.
//! # let _ = run;
//! handle.shutdown();
//! # Ok(()) }
//! ```
//!
//! Every stage is replaceable: [`Controller::start_with_source`] takes any
//! `Stream` of [`TopologyUpdate`]s instead of the built-in inspector (an
//! orchestrator feeding desired topologies), and [`ControllerBuilder::dry_run`]
//! plans without touching the kernel.

use std::{
    collections::BTreeSet,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{
    FutureExt, Stream, StreamExt,
    channel::{mpsc, oneshot},
    future::{Either, select},
};
use serde::Serialize;

use crate::{
    compat::{self, Decisions, HookPolicy, KernelCaps, Policy},
    deploy::{
        DeployReport, Stats, error_chain,
        worker::{DeployWorker, WorkerError},
    },
    fpm::{Fpm, FpmError, FpmRegistry},
    netns::NetnsRef,
    state::KernelState,
    synth::{self, FastPathPlan, PlanDiff, SlowPath, SynthError},
    topology::{Topology, TopologyDiff},
};

/// One input to the planner: a topology and, when it came from the kernel,
/// the state it was derived from.
#[derive(Clone, Debug)]
pub struct TopologyUpdate {
    /// The topology.
    pub topology: Topology,
    /// The kernel state, if any.
    pub state: Option<Arc<KernelState>>,
}

/// What the controller tells its host, in order.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ControllerEvent {
    /// The topology changed (the first one is a change from empty).
    TopologyChanged {
        /// What changed.
        diff: TopologyDiff,
    },
    /// A new plan was computed and applied (or would be, in dry run).
    Deployed {
        /// What changed in the plan.
        diff: PlanDiff,
        /// Interfaces that got a chain for the first time.
        attached: BTreeSet<u32>,
        /// Interfaces whose program or chain was swapped.
        swapped: BTreeSet<u32>,
        /// Interfaces whose chain was removed.
        detached: BTreeSet<u32>,
        /// Interfaces that could not be accelerated, with the error.
        failed: std::collections::BTreeMap<u32, String>,
        /// Milliseconds from the topology update to the deployed plan.
        latency_ms: f64,
    },
    /// Planning or deploying failed; the previous plan stays in force. Or
    /// the deploy worker died: then nothing is deployed any more (the plan
    /// has every interface in its slow path, with this message) and the
    /// controller's run ends with [`WorkerError::Died`].
    Error {
        /// The error, with its causes.
        message: String,
    },
}

/// Errors of the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Registering an FPM failed.
    #[error(transparent)]
    Fpm(#[from] FpmError),
    /// No FPM was registered.
    #[error("no FPM registered: nothing to accelerate")]
    NoFpm,
    /// The deploy worker failed.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// Planning failed.
    #[error(transparent)]
    Synth(#[from] SynthError),
    /// The inspector failed.
    #[error(transparent)]
    Inspect(#[from] crate::inspector::InspectError),
}

/// Builds a [`Controller`].
#[derive(Debug)]
pub struct ControllerBuilder {
    netns: NetnsRef,
    registry: FpmRegistry,
    policy: Policy,
    debounce: Duration,
    caps: Option<KernelCaps>,
    dry_run: bool,
    errors: Vec<FpmError>,
}

impl Default for ControllerBuilder {
    fn default() -> Self {
        ControllerBuilder {
            netns: NetnsRef::Current,
            registry: FpmRegistry::new(),
            policy: Policy::default(),
            // Off: the inspector already coalesces bursts, and a second
            // debounce here held a map-only change (an FDB entry) 20 ms
            // whenever an unrelated event (a port entering forwarding)
            // had been planned just before it.
            debounce: Duration::ZERO,
            caps: None,
            dry_run: false,
            errors: Vec::new(),
        }
    }
}

impl ControllerBuilder {
    /// The network namespace to accelerate (default: the current one).
    pub fn netns(mut self, netns: NetnsRef) -> Self {
        self.netns = netns;
        self
    }

    /// Registers an FPM.
    pub fn fpm(mut self, fpm: Arc<dyn Fpm>) -> Self {
        if let Err(e) = self.registry.register(fpm) {
            self.errors.push(e);
        }
        self
    }

    /// Uses this registry (replacing FPMs registered so far).
    pub fn registry(mut self, registry: FpmRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// Hook preference (default: auto).
    pub fn hook_policy(mut self, hook: HookPolicy) -> Self {
        self.policy.hook = hook;
        self
    }

    /// Only accelerate these interfaces.
    pub fn allow<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.policy.allow = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Never accelerate these interfaces.
    pub fn deny<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.policy.deny.extend(names.into_iter().map(Into::into));
        self
    }

    /// Burst coalescing in the controller (default: none). A change that
    /// arrives when nothing was planned for this long is planned at once;
    /// changes that follow within it are held until the source has been
    /// quiet for this long, so a storm becomes a few plans, not thousands.
    ///
    /// The inspector's stream coalesces its own bursts (see
    /// [`crate::inspector::InspectorBuilder::debounce`]), and updates that
    /// arrive while a plan is made are folded into one (the newest wins),
    /// so only a source that sends every change on its own needs this.
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// Plan for these capabilities instead of probing the kernel.
    pub fn kernel_caps(mut self, caps: KernelCaps) -> Self {
        self.caps = Some(caps);
        self
    }

    /// Plan only: never load or attach anything.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Checks the configuration.
    pub fn build(mut self) -> Result<Controller, ControllerError> {
        if let Some(e) = self.errors.pop() {
            return Err(e.into());
        }
        if self.registry.is_empty() {
            return Err(ControllerError::NoFpm);
        }
        Ok(Controller {
            caps: self.caps.unwrap_or_else(KernelCaps::probe),
            netns: self.netns,
            registry: self.registry,
            policy: self.policy,
            debounce: self.debounce,
            dry_run: self.dry_run,
        })
    }
}

/// A configured controller, ready to start.
#[derive(Debug)]
pub struct Controller {
    netns: NetnsRef,
    registry: FpmRegistry,
    policy: Policy,
    debounce: Duration,
    caps: KernelCaps,
    dry_run: bool,
}

#[derive(Default)]
struct Shared {
    topology: Topology,
    decisions: Decisions,
    /// Shared with the deploy worker: a firewall's plan is tens of
    /// thousands of map entries, not copied per deployment.
    plan: std::sync::Arc<FastPathPlan>,
    subscribers: Vec<mpsc::UnboundedSender<ControllerEvent>>,
}

impl Shared {
    fn emit(&mut self, event: ControllerEvent) {
        self.subscribers
            .retain(|s| s.unbounded_send(event.clone()).is_ok());
    }
}

/// Handle to a running controller: snapshots, events, counters, shutdown.
/// Cheap to clone.
#[derive(Clone)]
pub struct ControllerHandle {
    shared: Arc<Mutex<Shared>>,
    worker: Arc<Option<DeployWorker>>,
    stop: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    caps: KernelCaps,
}

impl std::fmt::Debug for ControllerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerHandle").finish_non_exhaustive()
    }
}

impl Controller {
    /// A builder with defaults: current namespace, auto hooks, no debounce
    /// of its own.
    pub fn builder() -> ControllerBuilder {
        ControllerBuilder::default()
    }

    /// Starts with the built-in inspector as the topology source. Returns
    /// the handle and the future that runs the controller; spawn it on any
    /// executor. It resolves after [`ControllerHandle::shutdown`], once
    /// everything is detached.
    pub fn start(
        self,
    ) -> Result<
        (
            ControllerHandle,
            impl Future<Output = Result<(), ControllerError>> + Send + 'static,
        ),
        ControllerError,
    > {
        let source = crate::inspector::topology_updates(self.netns.clone())?;
        self.start_with_source(source)
    }

    /// Starts with `source` as the topology source.
    pub fn start_with_source<S>(
        self,
        source: S,
    ) -> Result<
        (
            ControllerHandle,
            impl Future<Output = Result<(), ControllerError>> + Send + 'static,
        ),
        ControllerError,
    >
    where
        S: Stream<Item = TopologyUpdate> + Send + Unpin + 'static,
    {
        let worker = if self.dry_run {
            None
        } else {
            Some(DeployWorker::spawn(
                self.netns.clone(),
                self.registry.clone(),
            )?)
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let handle = ControllerHandle {
            shared: Arc::new(Mutex::new(Shared::default())),
            worker: Arc::new(worker),
            stop: Arc::new(Mutex::new(Some(stop_tx))),
            caps: self.caps.clone(),
        };
        let run = run(self, source, handle.clone(), stop_rx);
        Ok((handle, run))
    }
}

async fn run<S>(
    ctl: Controller,
    source: S,
    handle: ControllerHandle,
    stop: oneshot::Receiver<()>,
) -> Result<(), ControllerError>
where
    S: Stream<Item = TopologyUpdate> + Send + Unpin + 'static,
{
    let mut source = source.take_until(stop.map(|_| ()));
    let mut last_plan: Option<Instant> = None;
    // The deploy worker's death (FPM code panicked in it) ends the run: its
    // programs are already detached, so Linux carries the traffic; the
    // plan says so and the host is told.
    let mut death: std::pin::Pin<Box<dyn Future<Output = WorkerError> + Send>> =
        match handle.worker.as_ref() {
            Some(w) => Box::pin(w.death()),
            None => Box::pin(futures::future::pending()),
        };
    loop {
        let mut update = match select(&mut death, source.next()).await {
            Either::Left((died, _)) => {
                handle.worker_died(&died);
                if let Some(w) = handle.worker.as_ref() {
                    w.shutdown();
                }
                return Err(ControllerError::Worker(died));
            }
            Either::Right((Some(u), _)) => u,
            Either::Right((None, _)) => break,
        };
        let started = Instant::now();
        let mut ended = false;
        // Whatever is already queued is folded in (the newest wins: each
        // update carries the whole state).
        while let Some(next) = source.next().now_or_never() {
            match next {
                Some(u) => update = u,
                None => {
                    ended = true;
                    break;
                }
            }
        }
        // Within a burst (planned less than `debounce` ago), wait for the
        // source to be quiet; a lone change is planned at once.
        let in_burst = last_plan.is_some_and(|t| t.elapsed() < ctl.debounce);
        while in_burst && !ended {
            let delay = futures_timer::Delay::new(ctl.debounce);
            match select(source.next(), delay).await {
                Either::Left((Some(u), _)) => update = u,
                Either::Left((None, _)) => ended = true,
                Either::Right(_) => break,
            }
        }
        handle.process(&ctl, update, started).await;
        last_plan = Some(Instant::now());
        if ended {
            break;
        }
    }
    // Detach everything before resolving.
    if let Some(w) = handle.worker.as_ref() {
        w.shutdown();
    }
    Ok(())
}

impl ControllerHandle {
    async fn process(&self, ctl: &Controller, update: TopologyUpdate, started: Instant) {
        let decisions = compat::decide(&update.topology, &ctl.caps, &ctl.registry, &ctl.policy);
        let plan = synth::synthesize(
            &update.topology,
            &decisions,
            &ctl.registry,
            update.state.as_deref(),
        );
        let old_topology = self.lock().topology.clone();
        let tdiff = crate::topology::diff(&old_topology, &update.topology);
        if !tdiff.is_empty() {
            self.lock()
                .emit(ControllerEvent::TopologyChanged { diff: tdiff });
        }
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                self.error(&e);
                return;
            }
        };
        // Compared in place: a firewall's plan is tens of thousands of map
        // entries, not to be copied on every change.
        let pdiff = self.lock().plan.diff(&plan);
        let planned = started.elapsed();
        let (deployed, report) = match self.worker.as_ref() {
            Some(w) if !pdiff.is_empty() => match w.apply(plan).await {
                Ok(report) => match w.deployed().await {
                    Ok(d) => (d, report),
                    Err(e) => {
                        self.error(&e);
                        return;
                    }
                },
                Err(e) => {
                    self.error(&e);
                    return;
                }
            },
            Some(_) => (
                std::sync::Arc::new(in_force(&self.lock().plan, plan)),
                DeployReport::default(),
            ),
            None => (std::sync::Arc::new(plan), DeployReport::default()),
        };
        tracing::debug!(
            plan_ms = planned.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            changed = !pdiff.is_empty(),
            "controller: planned (with every FPM's parameters) and deployed"
        );
        let mut s = self.lock();
        s.topology = update.topology;
        s.decisions = decisions;
        let replaced = std::mem::replace(&mut s.plan, deployed);
        if !pdiff.is_empty() {
            s.emit(ControllerEvent::Deployed {
                diff: pdiff,
                attached: report.attached,
                swapped: report.swapped,
                detached: report.detached,
                failed: report.failed,
                latency_ms: started.elapsed().as_secs_f64() * 1e3,
            });
        }
        // Freed once the deployment is reported and the lock released.
        drop(s);
        drop(replaced);
    }

    /// Records the deploy worker's death: nothing is deployed any more
    /// (every planned interface moves to the slow path, with the reason),
    /// and an [`ControllerEvent::Error`] says why.
    fn worker_died(&self, died: &WorkerError) {
        let message = error_chain(died);
        tracing::error!(error = %message, "controller: the deploy worker died");
        let mut s = self.lock();
        let plan = std::sync::Arc::make_mut(&mut s.plan);
        let planned = std::mem::take(&mut plan.interfaces);
        for (ifindex, p) in planned {
            plan.slow_path.insert(
                ifindex,
                SlowPath {
                    name: p.name,
                    reasons: vec![message.clone()],
                },
            );
        }
        plan.fpms.clear();
        s.emit(ControllerEvent::Error { message });
    }

    fn error(&self, e: &(dyn std::error::Error + 'static)) {
        let message = error_chain(e);
        tracing::error!(error = %message, "controller: keeping the previous plan");
        self.lock().emit(ControllerEvent::Error { message });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A panic while holding the lock cannot leave Shared inconsistent in
        // a way that matters (plain values replaced whole): keep going.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest topology.
    pub fn topology(&self) -> Topology {
        self.lock().topology.clone()
    }

    /// The newest decisions.
    pub fn decisions(&self) -> Decisions {
        self.lock().decisions.clone()
    }

    /// The plan in force (as deployed; in dry run, as planned), shared
    /// with the controller: a plan with a large ruleset holds tens of
    /// thousands of map entries, too many to copy on every look. The
    /// controller replaces it whole, so it never changes under the caller.
    pub fn plan(&self) -> Arc<FastPathPlan> {
        self.lock().plan.clone()
    }

    /// The probed kernel capabilities.
    pub fn kernel_caps(&self) -> &KernelCaps {
        &self.caps
    }

    /// The fast-path counters (empty in dry run).
    pub async fn stats(&self) -> Result<Stats, ControllerError> {
        match self.worker.as_ref() {
            Some(w) => Ok(w.stats().await?),
            None => Ok(Stats::default()),
        }
    }

    /// A stream of the controller's events from now on.
    pub fn events(&self) -> impl Stream<Item = ControllerEvent> + Send + Unpin + 'static + use<> {
        let (tx, rx) = mpsc::unbounded();
        self.lock().subscribers.push(tx);
        rx
    }

    /// Asks the controller to stop: it detaches everything, removes its
    /// pins, and its run future resolves.
    pub fn shutdown(&self) {
        let stop = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = stop {
            let _ = tx.send(());
        }
    }
}

/// The plan in force when nothing needed deploying: the new plan, so its
/// reasons (why an interface stays on the slow path, why a hook was chosen)
/// are current, with the interfaces the deployer could not accelerate kept
/// on the slow path as it reported them.
fn in_force(deployed: &FastPathPlan, planned: FastPathPlan) -> FastPathPlan {
    let mut plan = planned;
    for (ifindex, slow) in &deployed.slow_path {
        if plan.interfaces.remove(ifindex).is_some() {
            plan.slow_path.insert(*ifindex, slow.clone());
        }
    }
    plan
}

/// The result of planning once: what the kernel shows, what was decided,
/// and the plan.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// The topology derived from the kernel's state.
    pub topology: Topology,
    /// The Compatibility Manager's decisions.
    pub decisions: Decisions,
    /// The plan that would be deployed.
    pub plan: FastPathPlan,
}

/// Reads the namespace's state once and plans, without touching the
/// kernel's fast paths (`linuxfpd plan`, dry runs, tests).
pub fn plan_once(
    netns: &NetnsRef,
    registry: &FpmRegistry,
    policy: &Policy,
    caps: &KernelCaps,
) -> Result<Snapshot, ControllerError> {
    let state = crate::inspector::dump(netns)?;
    let topology = crate::topology::derive(&state);
    let decisions = compat::decide(&topology, caps, registry, policy);
    let plan = synth::synthesize(&topology, &decisions, registry, Some(&state))?;
    Ok(Snapshot {
        topology,
        decisions,
        plan,
    })
}
