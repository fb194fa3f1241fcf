// SPDX-License-Identifier: MIT OR Apache-2.0
//! LinuxFP as a node runs it: one controller per namespace (the full
//! pipeline, with the Compatibility Manager choosing the hooks), started
//! on a runtime of its own so synchronous benches and tests can use it,
//! and what it chose and counted, summed over the namespaces.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use linuxfp::{
    controller::{Controller, ControllerError, ControllerHandle},
    deploy::CounterSet,
    fpm::Fpm,
    netns::NetnsRef,
};
use serde::Serialize;

/// Errors of starting, querying or stopping the controllers.
#[derive(Debug, thiserror::Error)]
pub enum ControllersError {
    /// The runtime the controllers run on could not be built.
    #[error("cannot build a tokio runtime for the controllers")]
    Runtime(#[source] std::io::Error),
    /// A controller could not be built or started.
    #[error("controller for netns {netns}")]
    Controller {
        /// The namespace.
        netns: String,
        /// What failed.
        #[source]
        source: ControllerError,
    },
    /// A controller had not deployed its plan in time.
    #[error("controller for netns {netns}: nothing deployed within {within:?} ({detail})")]
    NotDeployed {
        /// The namespace.
        netns: String,
        /// How long it was given.
        within: Duration,
        /// What was decided and what was deployed.
        detail: String,
    },
    /// A controller did not stop in time after its shutdown.
    #[error("controller for netns {netns} did not stop within {within:?}")]
    Stuck {
        /// The namespace.
        netns: String,
        /// How long it was given.
        within: Duration,
    },
}

/// What the Compatibility Manager chose for one interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HookChoice {
    /// The namespace (as the caller named it: `node1`, …).
    pub node: String,
    /// The interface.
    pub interface: String,
    /// `xdp`, `tc`, or `-` if nothing runs there.
    pub hook: String,
    /// The chain's stages in order.
    pub stages: Vec<String>,
    /// The Compatibility Manager's reasons.
    pub reasons: Vec<String>,
}

/// Counters that end no packet's path: a stage handing it to the next.
const NOT_TERMINAL: [&str; 1] = ["continue"];
/// Terminal counters that are not punts.
const NOT_PUNTS: [&str; 2] = ["fast", "drop"];

/// Counter totals of every FPM, summed over interfaces and namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// FPM → counter → packets.
    pub fpms: BTreeMap<String, CounterSet>,
}

impl Counters {
    /// The share of packets that entered a chain and ended in the fast
    /// path (`fast` in some stage), among all that ended somewhere (fast,
    /// dropped as Linux would, or punted to the kernel). 0 if none.
    pub fn fast_share(&self) -> f64 {
        let mut fast = 0u64;
        let mut ended = 0u64;
        for (name, n) in self.fpms.values().flatten() {
            if NOT_TERMINAL.contains(&name.as_str()) {
                continue;
            }
            ended += n;
            if name == "fast" {
                fast += n;
            }
        }
        if ended == 0 {
            0.0
        } else {
            fast as f64 / ended as f64
        }
    }

    /// Punts by `fpm/reason`, most frequent first.
    pub fn top_punts(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .fpms
            .iter()
            .flat_map(|(fpm, set)| {
                set.iter()
                    .filter(|(k, _)| {
                        !NOT_TERMINAL.contains(&k.as_str()) && !NOT_PUNTS.contains(&k.as_str())
                    })
                    .map(move |(k, v)| (format!("{fpm}/{k}"), *v))
            })
            .filter(|(_, v)| *v > 0)
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// `self - before`, counter by counter (counters only grow while the
    /// programs stay attached).
    pub fn since(&self, before: &Counters) -> Counters {
        let mut out = self.clone();
        for (fpm, set) in &mut out.fpms {
            for (name, n) in set.iter_mut() {
                let was = before
                    .fpms
                    .get(fpm)
                    .and_then(|s| s.get(name))
                    .copied()
                    .unwrap_or(0);
                *n = n.saturating_sub(was);
            }
        }
        out
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Counters) {
        for (fpm, set) in &other.fpms {
            let mine = self.fpms.entry(fpm.clone()).or_default();
            for (name, n) in set {
                *mine.entry(name.clone()).or_default() += n;
            }
        }
    }
}

/// One running controller.
struct Running {
    label: String,
    netns: String,
    handle: ControllerHandle,
    task: tokio::task::JoinHandle<Result<(), ControllerError>>,
}

/// Controllers running on several namespaces with the same FPMs. Dropping
/// it shuts them down, which detaches everything they attached.
pub struct Controllers {
    runtime: tokio::runtime::Runtime,
    running: Vec<Running>,
}

/// How long the controllers may take to deploy their first plan.
const DEPLOY_WITHIN: Duration = Duration::from_secs(10);
/// How long a controller may take to stop and detach.
const STOP_WITHIN: Duration = Duration::from_secs(10);

impl Controllers {
    /// Starts a controller with `fpms` (auto hooks) on each namespace,
    /// given as (label, netns name), and waits until each has deployed
    /// what its Compatibility Manager decided.
    pub fn start(
        namespaces: &[(&str, &str)],
        fpms: &[Arc<dyn Fpm>],
    ) -> Result<Self, ControllersError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(ControllersError::Runtime)?;
        let mut out = Controllers {
            runtime,
            running: Vec::new(),
        };
        for &(label, netns) in namespaces {
            let fail = |source| ControllersError::Controller {
                netns: netns.to_string(),
                source,
            };
            let mut builder = Controller::builder().netns(NetnsRef::Named(netns.to_string()));
            for f in fpms {
                builder = builder.fpm(Arc::clone(f));
            }
            let (handle, run) = builder.build().map_err(fail)?.start().map_err(fail)?;
            let task = out.runtime.spawn(run);
            out.running.push(Running {
                label: label.to_string(),
                netns: netns.to_string(),
                handle,
                task,
            });
        }
        for r in &out.running {
            wait_deployed(r)?;
        }
        Ok(out)
    }

    /// What the Compatibility Manager decided on every interface of every
    /// namespace, in namespace then ifindex order.
    pub fn hook_choices(&self) -> Vec<HookChoice> {
        let mut out = Vec::new();
        for r in &self.running {
            for d in r.handle.decisions().interfaces.values() {
                out.push(HookChoice {
                    node: r.label.clone(),
                    interface: d.name.clone(),
                    hook: d.hook.map_or_else(|| "-".to_string(), |h| h.to_string()),
                    stages: d.stages.clone(),
                    reasons: d.reasons.clone(),
                });
            }
        }
        out
    }

    /// The FPMs' counters now, summed over interfaces and namespaces.
    /// Reading them has no side effects; diff two readings with
    /// [`Counters::since`].
    pub fn counters(&self) -> Result<Counters, ControllersError> {
        let mut total = Counters::default();
        for r in &self.running {
            let stats = self.runtime.block_on(r.handle.stats()).map_err(|source| {
                ControllersError::Controller {
                    netns: r.netns.clone(),
                    source,
                }
            })?;
            let mut one = Counters::default();
            for fpm in stats.fpms.keys() {
                one.fpms.insert(fpm.clone(), stats.totals(fpm));
            }
            total.add(&one);
        }
        Ok(total)
    }

    /// Shuts every controller down and waits until each has detached.
    pub fn stop(mut self) -> Result<(), ControllersError> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Result<(), ControllersError> {
        let mut first_error = None;
        for r in self.running.drain(..) {
            r.handle.shutdown();
            let outcome = self
                .runtime
                .block_on(async { tokio::time::timeout(STOP_WITHIN, r.task).await });
            let error = match outcome {
                Err(_) => Some(ControllersError::Stuck {
                    netns: r.netns.clone(),
                    within: STOP_WITHIN,
                }),
                Ok(Ok(Err(source))) => Some(ControllersError::Controller {
                    netns: r.netns.clone(),
                    source,
                }),
                // A panicked task: the kernel detached its links when its
                // handles were dropped; nothing more to wait for.
                Ok(Err(join)) => {
                    tracing::error!(netns = %r.netns, error = %join, "controller task failed");
                    None
                }
                Ok(Ok(Ok(()))) => None,
            };
            if first_error.is_none() {
                first_error = error;
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        if let Err(e) = self.stop_all() {
            tracing::error!(error = %e, "stopping the controllers");
        }
    }
}

/// Waits until the deployed plan holds every chain the Compatibility
/// Manager decided on (and it decided on at least one interface).
fn wait_deployed(r: &Running) -> Result<(), ControllersError> {
    let deadline = Instant::now() + DEPLOY_WITHIN;
    loop {
        let decisions = r.handle.decisions();
        let plan = r.handle.plan();
        let wanted: Vec<(&u32, &Vec<String>)> = decisions
            .interfaces
            .iter()
            .filter(|(_, d)| d.hook.is_some())
            .map(|(i, d)| (i, &d.stages))
            .collect();
        let done = !wanted.is_empty()
            && wanted
                .iter()
                .all(|(i, stages)| plan.interfaces.get(i).is_some_and(|p| &p.stages == *stages));
        if done {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ControllersError::NotDeployed {
                netns: r.netns.clone(),
                within: DEPLOY_WITHIN,
                detail: format!(
                    "decided {:?}, deployed {:?}",
                    wanted,
                    plan.interfaces.keys().collect::<Vec<_>>()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(entries: &[(&str, &str, u64)]) -> Counters {
        let mut c = Counters::default();
        for (fpm, name, n) in entries {
            c.fpms
                .entry(fpm.to_string())
                .or_default()
                .insert(name.to_string(), *n);
        }
        c
    }

    #[test]
    fn the_share_counts_where_packets_ended() {
        // 100 packets entered the filter: 90 went on, 10 were punted for
        // NAT; of the 90, the router forwarded 80 and punted 10.
        let c = counters(&[
            ("filter", "continue", 90),
            ("filter", "rule_nat", 10),
            ("router", "fast", 80),
            ("router", "no_neigh", 10),
        ]);
        assert!((c.fast_share() - 0.8).abs() < 1e-9);
        assert_eq!(
            c.top_punts(5),
            vec![
                ("filter/rule_nat".to_string(), 10),
                ("router/no_neigh".to_string(), 10)
            ]
        );
        assert_eq!(c.top_punts(1).len(), 1);
        assert_eq!(Counters::default().fast_share(), 0.0);
    }

    #[test]
    fn readings_subtract_and_add() {
        let before = counters(&[("router", "fast", 5)]);
        let after = counters(&[("router", "fast", 12), ("bridge", "fast", 3)]);
        let d = after.since(&before);
        assert_eq!(d.fpms["router"]["fast"], 7);
        assert_eq!(d.fpms["bridge"]["fast"], 3);
        let mut sum = d.clone();
        sum.add(&d);
        assert_eq!(sum.fpms["router"]["fast"], 14);
    }
}
