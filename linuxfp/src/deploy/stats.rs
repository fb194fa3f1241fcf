// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fast-path counters, readable by the controller and by any other root
//! process through the pinned maps and the status file.

use std::{collections::BTreeMap, path::Path};

use aya::maps::{Map, MapData, PerCpuArray};
use linuxfp_ebpf_common::abi::{self, STATS_MAP};
use serde::{Deserialize, Serialize};

use super::PinLayout;
use crate::synth::FastPathPlan;

/// What a running controller publishes in its status file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFile {
    /// The controller's process id.
    pub pid: u32,
    /// The deployed plan, without the FPMs' map contents (their globals
    /// are there; the maps are pinned, for whoever needs their entries).
    pub plan: FastPathPlan,
    /// Counter names per FPM, by counter index.
    pub counters: BTreeMap<String, Vec<String>>,
}

impl StatusFile {
    /// Reads a status file.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}

/// Named counters: counter name → packets.
pub type CounterSet = BTreeMap<String, u64>;

/// Counters of every deployed stage: FPM → ifindex → counters (summed over
/// CPUs). Zero counters are omitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Per FPM, per ingress interface.
    pub fpms: BTreeMap<String, BTreeMap<u32, CounterSet>>,
}

impl Stats {
    /// One counter, 0 if absent.
    pub fn get(&self, fpm: &str, ifindex: u32, counter: &str) -> u64 {
        self.fpms
            .get(fpm)
            .and_then(|m| m.get(&ifindex))
            .and_then(|c| c.get(counter))
            .copied()
            .unwrap_or(0)
    }

    /// A counter summed over all interfaces.
    pub fn total(&self, fpm: &str, counter: &str) -> u64 {
        self.fpms
            .get(fpm)
            .map(|m| m.values().filter_map(|c| c.get(counter)).sum())
            .unwrap_or(0)
    }

    /// All counters of one FPM summed over interfaces.
    pub fn totals(&self, fpm: &str) -> CounterSet {
        let mut out = CounterSet::new();
        for set in self.fpms.get(fpm).into_iter().flat_map(|m| m.values()) {
            for (k, v) in set {
                *out.entry(k.clone()).or_default() += v;
            }
        }
        out
    }
}

/// Reads the counters of the stages in `status` from the pins in `layout`.
/// FPMs whose map cannot be opened are skipped (logged).
pub fn read_stats(layout: &PinLayout, status: &StatusFile) -> Stats {
    let mut stats = Stats::default();
    for (fpm, names) in &status.counters {
        let path = layout.fpm_map(fpm, STATS_MAP);
        let array = MapData::from_pin(&path)
            .and_then(Map::from_map_data)
            .and_then(PerCpuArray::<MapData, u64>::try_from);
        let array = match array {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no counters");
                continue;
            }
        };
        let ifaces = status
            .plan
            .interfaces
            .iter()
            .filter(|(_, p)| p.stages.iter().any(|s| s == fpm))
            .map(|(i, _)| *i);
        let per_fpm = stats.fpms.entry(fpm.clone()).or_default();
        for ifindex in ifaces {
            let mut set = CounterSet::new();
            for (i, name) in names.iter().enumerate() {
                let idx = abi::stats_index(ifindex, i as u32);
                if let Ok(values) = array.get(&idx, 0) {
                    let sum: u64 = values.iter().sum();
                    if sum > 0 {
                        set.insert(name.clone(), sum);
                    }
                }
            }
            per_fpm.insert(ifindex, set);
        }
    }
    stats
}
