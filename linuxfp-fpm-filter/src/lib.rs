// SPDX-License-Identifier: MIT OR Apache-2.0
//! The filter FPM: the kernel's nf_tables ruleset for routed IPv4/IPv6
//! traffic, evaluated in XDP or TC before the router stage, never more or
//! less permissive than netfilter.
//!
//! - [`compile`]: the ruleset → per family, the base chains of the routed
//!   path (prerouting, forward, postrouting) as rules of predicates and
//!   actions; what is not understood punts (see the module docs for the
//!   soundness rule).
//! - [`params`]: the compiled rules → the `FILTER_RULES` and `FILTER_SETS`
//!   maps, keyed by generation, and the `FILTER_CONF` global naming the
//!   generation (a ruleset change swaps programs atomically).
//! - the stage (`ebpf/`, `filter_xdp` and `filter_tc`): parses the packet
//!   (at XDP, a frame not addressed to the interface's own MAC is not for
//!   this stack: it punts, as `skb->pkt_type` makes it at TC), asks the FIB
//!   for the egress interface (a packet that is not certainly forwarded
//!   punts), looks the
//!   flow up in a per-flow verdict cache (LRU hash keyed by every field the
//!   rules read and the generation), and on a miss evaluates the rules with
//!   a bounded chain interpreter (a linear scan in this phase: cost grows
//!   with the rules one flow's first packet traverses, not afterwards).
//!   Accepted packets continue to the next stage, dropped ones are dropped
//!   (only on a compiled `drop` verdict or drop policy), the rest punt
//!   under a named reason ([`linuxfp_ebpf_common::filter::PUNT_NAMES`]).
//!
//! Limits (each punts, never guesses): 4096 rules per generation including
//! one synthetic end rule per chain (a larger ruleset punts whole,
//! `path`), 8192 rules evaluated for one packet (`too_long`), 16 nested
//! jumps (`too_long`), 16384 prefixes per set (that rule punts), 32768
//! set prefixes in all.
//!
//! Counters: `counter` expressions are not emulated, so the kernel's rule
//! counters miss the packets the fast path decides; the FPM's own counters
//! (continue, drop, and each punt reason, per interface) account for them.
//!
//! ```no_run
//! use std::sync::Arc;
//! let mut registry = linuxfp::fpm::FpmRegistry::new();
//! registry.register(Arc::new(linuxfp_fpm_filter::FilterFpm::new()))?;
//! # Ok::<(), linuxfp::fpm::FpmError>(())
//! ```
//!
//! Minimum kernel version: 5.10 (`bpf_fib_lookup` with `mtu_result`, LPM
//! tries, LRU hashes, tail calls from TC).
#![deny(missing_docs)]

pub mod bytecode;
pub mod compile;
pub mod params;

use std::collections::BTreeMap;

use linuxfp::{
    fpm::{Capability, Fpm, FpmConfig, FpmDeclaration, FpmError, FpmRole, Hook, ParamInput},
    topology::NetworkFunction,
};
use linuxfp_ebpf_common::filter;

/// Name of the XDP program in the object.
pub const XDP_PROGRAM: &str = "filter_xdp";
/// Name of the TC program in the object.
pub const TC_PROGRAM: &str = "filter_tc";

/// The filter FPM.
#[derive(Debug)]
pub struct FilterFpm {
    declaration: FpmDeclaration,
    generations: params::Generations,
}

impl Default for FilterFpm {
    fn default() -> Self {
        Self::new()
    }
}

impl FilterFpm {
    /// The filter FPM with its bundled program.
    pub fn new() -> Self {
        FilterFpm {
            declaration: FpmDeclaration {
                name: "filter",
                role: FpmRole::Accelerates(NetworkFunction::Filter),
                programs: BTreeMap::from([(Hook::Xdp, XDP_PROGRAM), (Hook::Tc, TC_PROGRAM)]),
                capabilities: vec![Capability::FibLookup],
                shared_maps: vec![filter::RULES_MAP, filter::SETS_MAP, filter::IFACES_MAP],
                punt_reasons: filter::PUNT_NAMES.to_vec(),
            },
            generations: params::Generations::default(),
        }
    }

    /// The generation of the ruleset last handed to the deployer.
    pub fn generation(&self) -> Option<u32> {
        self.generations.current()
    }
}

impl Fpm for FilterFpm {
    fn declaration(&self) -> &FpmDeclaration {
        &self.declaration
    }

    fn bytecode(&self) -> &'static [u8] {
        bytecode::FILTER_OBJ
    }

    fn parameterize(&self, input: &ParamInput<'_>) -> Result<FpmConfig, FpmError> {
        let compiled = match input.state {
            Some(state) => compile::compile_state(state),
            None => compile::punt_all("no kernel state to read the ruleset from"),
        };
        for (l3, p) in [
            (compile::L3::V4, &compiled.v4),
            (compile::L3::V6, &compiled.v6),
        ] {
            if let compile::PathPlan::Punt { reason } = p {
                tracing::debug!(family = ?l3, %reason, "filter path punts");
            }
        }
        let layout = match params::layout(&compiled) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "ruleset too large for the fast path; punting it");
                params::layout(&compile::punt_all(&e.to_string())).map_err(|e| {
                    FpmError::Parameterize {
                        fpm: self.declaration.name,
                        reason: e.to_string(),
                    }
                })?
            }
        };
        let mut cfg = self.generations.config(layout);
        cfg.maps.insert(
            filter::IFACES_MAP.to_string(),
            params::xdp_ifaces(self.declaration.name, input),
        );
        Ok(cfg)
    }
}
