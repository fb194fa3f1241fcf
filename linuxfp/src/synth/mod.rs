// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Synthesizer: topology + decisions → [`FastPathPlan`]. Pure,
//! serialisable and diffable: the deployer applies the difference between
//! the plan that is deployed and the next one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    compat::Decisions,
    fpm::{FpmConfig, FpmError, FpmRegistry, Hook, ParamInput},
    state::KernelState,
    topology::Topology,
};

/// What to deploy: per interface the hook and the chain of stages, per FPM
/// its parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastPathPlan {
    /// Accelerated interfaces by ifindex.
    pub interfaces: BTreeMap<u32, InterfacePlan>,
    /// Parameters of every FPM that has at least one stage.
    pub fpms: BTreeMap<String, FpmConfig>,
    /// Interfaces left entirely to the kernel, with the reasons.
    pub slow_path: BTreeMap<u32, SlowPath>,
}

/// The chain on one interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfacePlan {
    /// Interface name (for people and for TC attachment).
    pub name: String,
    /// The hook.
    pub hook: Hook,
    /// FPM names in chain order; position = index.
    pub stages: Vec<String>,
    /// Why this hook and this chain.
    pub reasons: Vec<String>,
}

/// An interface the fast path leaves alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowPath {
    /// Interface name.
    pub name: String,
    /// Why.
    pub reasons: Vec<String>,
}

/// Errors of planning.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A decision names an FPM that is not registered.
    #[error("decision for interface {ifindex} names unregistered FPM `{fpm}`")]
    UnknownFpm {
        /// The interface.
        ifindex: u32,
        /// The FPM name.
        fpm: String,
    },
    /// An FPM's parameterizer failed.
    #[error(transparent)]
    Fpm(#[from] FpmError),
}

/// Builds the plan for `topology` under `decisions`.
pub fn synthesize(
    topology: &Topology,
    decisions: &Decisions,
    registry: &FpmRegistry,
    state: Option<&KernelState>,
) -> Result<FastPathPlan, SynthError> {
    let mut plan = FastPathPlan::default();
    let mut used = BTreeSet::new();
    for (&ifindex, d) in &decisions.interfaces {
        match d.hook {
            Some(hook) if !d.stages.is_empty() => {
                for fpm in &d.stages {
                    if registry.get(fpm).is_none() {
                        return Err(SynthError::UnknownFpm {
                            ifindex,
                            fpm: fpm.clone(),
                        });
                    }
                    used.insert(fpm.clone());
                }
                plan.interfaces.insert(
                    ifindex,
                    InterfacePlan {
                        name: d.name.clone(),
                        hook,
                        stages: d.stages.clone(),
                        reasons: d.reasons.clone(),
                    },
                );
            }
            _ => {
                plan.slow_path.insert(
                    ifindex,
                    SlowPath {
                        name: d.name.clone(),
                        reasons: d.reasons.clone(),
                    },
                );
            }
        }
    }
    let input = ParamInput {
        topology,
        decisions,
        state,
    };
    for name in used {
        // Checked above: every used name is registered.
        if let Some(fpm) = registry.get(&name) {
            plan.fpms.insert(name, fpm.parameterize(&input)?);
        }
    }
    Ok(plan)
}

/// What changed between two plans.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDiff {
    /// Interfaces that gain a chain.
    pub attach: BTreeSet<u32>,
    /// Interfaces that lose their chain.
    pub detach: BTreeSet<u32>,
    /// Interfaces whose hook or stages change.
    pub rechain: BTreeSet<u32>,
    /// FPMs whose globals change: their programs are reloaded and swapped.
    pub reload: BTreeSet<String>,
    /// FPMs whose map contents change: written in place.
    pub resync: BTreeSet<String>,
}

impl PlanDiff {
    /// True if nothing changes.
    pub fn is_empty(&self) -> bool {
        self.attach.is_empty()
            && self.detach.is_empty()
            && self.rechain.is_empty()
            && self.reload.is_empty()
            && self.resync.is_empty()
    }
}

impl FastPathPlan {
    /// What must change to go from `self` to `next`.
    pub fn diff(&self, next: &FastPathPlan) -> PlanDiff {
        let mut d = PlanDiff::default();
        for (ifindex, p) in &next.interfaces {
            match self.interfaces.get(ifindex) {
                None => {
                    d.attach.insert(*ifindex);
                }
                Some(old) if old.hook != p.hook || old.stages != p.stages || old.name != p.name => {
                    d.rechain.insert(*ifindex);
                }
                Some(_) => {}
            }
        }
        for ifindex in self.interfaces.keys() {
            if !next.interfaces.contains_key(ifindex) {
                d.detach.insert(*ifindex);
            }
        }
        for (name, cfg) in &next.fpms {
            match self.fpms.get(name) {
                Some(old) => {
                    if old.globals != cfg.globals {
                        d.reload.insert(name.clone());
                    }
                    if old.maps != cfg.maps {
                        d.resync.insert(name.clone());
                    }
                }
                None => {
                    d.resync.insert(name.clone());
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests;
