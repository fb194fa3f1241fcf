// SPDX-License-Identifier: MIT OR Apache-2.0
//! Per-rule counters: the packets and bytes the fast path decided per
//! nf_tables rule, to add to the kernel's own rule counters (which never
//! see those packets). Packets the fast path punts are not counted here:
//! the kernel evaluates them and counts them itself.

use std::collections::BTreeMap;

use aya::maps::{Map, MapData, MapError, PerCpuArray};
use linuxfp::deploy::PinLayout;
use linuxfp_ebpf_common::filter::{RULE_STATS_MAP, RuleStat, rule_slot};

use crate::params::Layout;

/// The counts of one nf_tables rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleCount {
    /// Packets the fast path decided that matched the rule.
    pub packets: u64,
    /// Their bytes (IP packet length, as nf_tables counts).
    pub bytes: u64,
}

/// Why the counters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CountersError {
    /// The pinned map could not be opened or read.
    #[error("{map} at {path}: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// Its pin.
        path: String,
        /// Why.
        #[source]
        source: MapError,
    },
}

/// Sums per-CPU counts of `generation`'s rules by `(family table chain,
/// handle)` (a rule of an `inet` chain is compiled for both families:
/// both count). Rules the compiler made (handle 0) are left out.
pub fn by_rule(
    layout: &Layout,
    generation: u32,
    per_cpu: impl Fn(u32) -> Option<Vec<RuleStat>>,
) -> BTreeMap<(String, u64), RuleCount> {
    let mut out: BTreeMap<(String, u64), RuleCount> = BTreeMap::new();
    for (i, (chain, handle)) in layout.origins.iter().enumerate() {
        if *handle == 0 {
            continue;
        }
        let Some(slot) = rule_slot(generation, i as u32) else {
            break;
        };
        let Some(stats) = per_cpu(slot) else {
            continue;
        };
        let c = out.entry((chain.clone(), *handle)).or_default();
        for st in stats.iter().filter(|s| s.generation == generation) {
            c.packets += st.packets;
            c.bytes += st.bytes;
        }
    }
    out
}

/// Reads the counters of `fpm`'s `FILTER_RULE_STATS` pinned under
/// `pins` for `generation` laid out as `layout`.
pub fn read(
    pins: &PinLayout,
    fpm: &str,
    layout: &Layout,
    generation: u32,
) -> Result<BTreeMap<(String, u64), RuleCount>, CountersError> {
    let path = pins.fpm_map(fpm, RULE_STATS_MAP);
    let err = |source| CountersError::Map {
        map: RULE_STATS_MAP,
        path: path.display().to_string(),
        source,
    };
    let map = MapData::from_pin(&path)
        .and_then(Map::from_map_data)
        .and_then(PerCpuArray::<MapData, RuleStat>::try_from)
        .map_err(err)?;
    Ok(by_rule(layout, generation, |slot| {
        map.get(&slot, 0).ok().map(|v| v.iter().copied().collect())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_of_the_generation_are_summed_by_rule() {
        let layout = Layout {
            origins: vec![
                ("inet t f".into(), 7),
                ("inet t f".into(), 0),
                ("inet t f".into(), 7),
                ("inet t f".into(), 8),
            ],
            ..Default::default()
        };
        let st = |generation, packets| RuleStat {
            generation,
            reserved: 0,
            packets,
            bytes: packets * 100,
        };
        let g = 3u32;
        let base = rule_slot(g, 0).expect("slot");
        let got = by_rule(&layout, g, |slot| match slot - base {
            // Two CPUs; one holds counts of an older generation.
            0 => Some(vec![st(3, 2), st(1, 50)]),
            1 => Some(vec![st(3, 9)]),
            2 => Some(vec![st(3, 1), st(3, 1)]),
            _ => Some(vec![st(3, 0)]),
        });
        assert_eq!(
            got,
            BTreeMap::from([
                (
                    ("inet t f".to_string(), 7),
                    RuleCount {
                        packets: 4,
                        bytes: 400
                    }
                ),
                (("inet t f".to_string(), 8), RuleCount::default()),
            ])
        );
    }
}
