// SPDX-License-Identifier: MIT OR Apache-2.0
//! What changed between two topologies.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::model::Topology;

/// The differences between two topologies, for events and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyDiff {
    /// Interfaces that appeared.
    pub added: BTreeSet<u32>,
    /// Interfaces that disappeared.
    pub removed: BTreeSet<u32>,
    /// Interfaces whose attributes changed.
    pub changed: BTreeSet<u32>,
    /// Interfaces whose chain of network functions changed.
    pub rechained: BTreeSet<u32>,
    /// The router function changed (appeared, went, or its interfaces).
    pub router: bool,
    /// Some bridge changed.
    pub bridges: bool,
    /// The bridges that appeared, went or changed (attributes or ports).
    #[serde(default)]
    pub changed_bridges: BTreeSet<u32>,
    /// The firewall summary changed.
    pub filter: bool,
    /// The limitations changed.
    pub limitations: bool,
}

impl TopologyDiff {
    /// True if nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == TopologyDiff::default()
    }
}

/// Compares two topologies.
pub fn diff(old: &Topology, new: &Topology) -> TopologyDiff {
    let mut d = TopologyDiff::default();
    for (i, iface) in &new.interfaces {
        match old.interfaces.get(i) {
            None => {
                d.added.insert(*i);
            }
            Some(o) if o != iface => {
                d.changed.insert(*i);
            }
            Some(_) => {}
        }
    }
    d.removed = old
        .interfaces
        .keys()
        .filter(|i| !new.interfaces.contains_key(i))
        .copied()
        .collect();
    let keys: BTreeSet<u32> = old
        .chains
        .keys()
        .chain(new.chains.keys())
        .copied()
        .collect();
    d.rechained = keys
        .into_iter()
        .filter(|i| old.chains.get(i) != new.chains.get(i))
        .collect();
    d.router = old.router != new.router;
    d.bridges = old.bridges != new.bridges;
    d.changed_bridges = old
        .bridges
        .keys()
        .chain(new.bridges.keys())
        .filter(|b| old.bridges.get(b) != new.bridges.get(b))
        .copied()
        .collect();
    d.filter = old.filter != new.filter;
    d.limitations = old.limitations != new.limitations;
    d
}
