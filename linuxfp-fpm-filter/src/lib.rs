// SPDX-License-Identifier: MIT OR Apache-2.0
//! The filter FPM: the kernel's nf_tables ruleset for routed IPv4/IPv6
//! traffic, and for bridged traffic under `br_netfilter`, evaluated in XDP
//! or TC before the router or bridge stage, never more or less permissive
//! than netfilter.
//!
//! - [`compile`]: the ruleset → per family, the base chains of the routed
//!   path (prerouting, forward, postrouting) as rules of predicates and
//!   actions; what is not understood punts (see the module docs for the
//!   soundness rule).
//! - [`params`]: the compiled rules → the `FILTER_RULES` and `FILTER_SETS`
//!   maps and the prefilter's (`FILTER_CLASSES`, `FILTER_CLASS_ROWS`,
//!   `FILTER_CLASS_BASE`, `FILTER_CLASS_CHUNKS`, `FILTER_CLASS_CONF`),
//!   keyed by generation parity, and `FILTER_GENERATIONS`/`FILTER_ACTIVE`
//!   naming the generation to evaluate (a ruleset change is map contents:
//!   the deployer switches `FILTER_ACTIVE` after all the new generation's
//!   entries are written, with no new programs). The `FILTER_CONF` global
//!   says only whether conntrack is read at all.
//! - the stage (`ebpf/`, `filter_xdp` and `filter_tc`): parses the packet
//!   (at XDP, a frame not addressed to the interface's own MAC is not for
//!   this stack: it punts, as `skb->pkt_type` makes it at TC), asks the FIB
//!   for the egress interface (a packet that is not certainly forwarded
//!   punts), looks the
//!   flow up in a per-flow verdict cache (LRU hash keyed by every field the
//!   rules read and the generation), and on a miss evaluates the rules with
//!   a bounded chain interpreter behind a candidate prefilter
//!   ([`prefilter`]): one class lookup per field (interfaces, addresses,
//!   protocol, ports), the classes' rule bit vectors ANDed, and the
//!   interpreter jumps over rules that cannot match, up to 512 per step.
//!   A miss costs the vectors' chunks (one per 512 rules) plus the
//!   candidate rules, not every rule before the verdict (10k-rule flat
//!   chain: about 10 steps instead of up to 7941). Rulesets below
//!   [`params::PREFILTER_MIN_RULES`] are walked without it: its lookups
//!   cost more than walking them.
//!   Accepted packets continue to the next stage, dropped ones are dropped
//!   (only on a compiled `drop` verdict or drop policy), the rest punt
//!   under a named reason ([`linuxfp_ebpf_common::filter::PUNT_NAMES`]).
//!
//! # Bridged traffic
//!
//! On a bridge port the filter stage runs before the bridge stage, which
//! forwards only what the bridge would bridge port to port (never a frame
//! for the bridge itself). So every frame there is judged as a bridged
//! one, whatever its destination MAC ([`params::bridged`]):
//! - with `br_netfilter` on for the bridge and the family (the
//!   `bridge-nf-call-iptables`/`-ip6tables` sysctls, or the bridge's own
//!   `nf_call_iptables`/`nf_call_ip6tables`), bridged IP traffic passes the
//!   `ip`/`ip6`/`inet` prerouting, forward and postrouting hooks with the
//!   bridge device as input and output device: the routed path's program
//!   is evaluated so. Accepted frames continue; a drop verdict punts
//!   (`bridged_drop`), since only the kernel knows whether the bridge
//!   would forward the frame or flood or deliver it; the rest punt as for
//!   routed packets;
//! - without `br_netfilter`, no hook sees bridged frames: they continue;
//! - a bridge with VLAN filtering (the forward hook then sees tagged skbs)
//!   or any `bridge` family chain on the way: every frame punts.
//!
//! # Conntrack
//!
//! aya 0.14 cannot load kfunc calls (`bpf_skb_ct_lookup`), so the fast path
//! follows the kernel's conntrack through a mirror ([`ct`]): the FPM's
//! upkeep (every [`UPKEEP_INTERVAL`], on the deploy worker inside the
//! namespace) dumps the table once, then applies the ctnetlink events, and
//! keeps in `FILTER_CT` both directions of every flow whose packets the
//! kernel would all classify ESTABLISHED without needing to see them:
//! confirmed, seen-reply and assured, not dying, no NAT (no NAT bits or
//! attributes, reply tuple = original inverted), no helper, zone 0, not
//! offloaded, no fixed timeout; UDP, or TCP in state ESTABLISHED whose
//! window tracking cannot go stale (`nf_conntrack_tcp_be_liberal=1`, or
//! `BE_LIBERAL` on both directions: packets the fast path forwards never
//! advance the kernel's window, so with tracking on a later FIN could be
//! INVALID). Other flows, ICMP, and every packet of a flow not (yet) in
//! the mirror stay on the slow path.
//!
//! What is accelerated: packets of mirrored flows that the kernel's
//! tracker would call ESTABLISHED: UDP with a sane length, TCP with ACK
//! (plus PSH, URG, ECE, CWR) and no SYN, FIN or RST, and, where the kernel
//! verifies L4 checksums (`nf_conntrack_checksum=1`, the default), only
//! packets whose checksum the kernel takes as good without computing it:
//! at TC, `CHECKSUM_UNNECESSARY` (the device verified it, `bpf_csum_level`)
//! or `CHECKSUM_PARTIAL` (a local sender left it to offload, as on a veth;
//! no helper reports that, so the stage reads `sk_buff::ip_summed` with
//! `bpf_probe_read_kernel` at the place the kernel's BTF gives,
//! [`params::skb_layout`]); never at XDP, and never `CHECKSUM_NONE` or
//! `CHECKSUM_COMPLETE`, whose checksum the kernel computes. For those, `ct state` and `ct direction` tests (also `-m
//! conntrack --ctstate`, `-m state`) are decided (state ESTABLISHED), and
//! `nat` base chains are skipped, as the kernel skips them after a
//! connection's first packet. Every other packet reaching a rule that reads
//! conntrack punts (`rule_conntrack`, or `rule_nat` at a nat chain); `ct
//! mark`, `ct status` and the other keys always punt. Where the ruleset
//! makes the kernel track every flow (any NAT or conntrack rule: the
//! compiler's conntrack gate, see [`compile`]), a packet of a flow not in
//! the mirror punts right after the mirror lookup, before any FIB or
//! cache lookup (`CONF_GATED_*`).
//!
//! A FIN or RST goes to the kernel and takes its flow out of the mirror at
//! once, so the kernel's tracker sees the whole teardown. The kernel's
//! timeouts: flows the fast path forwards are recorded (`FILTER_CT_SEEN`)
//! and the upkeep sets their kernel entry's timeout to what the kernel sets
//! on a packet (the TCP established or UDP stream timeout of the namespace)
//! at most once a second ([`ct::mirror::REFRESH_EVERY`]); idle flows expire
//! as without LinuxFP.
//!
//! Known deviations: the mirror lags the kernel by up to one upkeep
//! interval, so for that long after an entry is deleted (`conntrack -D`,
//! expiry) or changes state from outside the fast path, packets of the
//! flow may still be classified ESTABLISHED; the kernel's per-entry
//! accounting (`nf_conntrack_acct`) and `conntrack -E` UPDATE events do
//! not see fast-path packets.
//!
//! Limits (each punts, never guesses): 16384 rules per generation including
//! one synthetic end rule per chain (a larger ruleset punts whole,
//! `path`), 8192 rules evaluated for one packet (`too_long`), 16 nested
//! jumps (`too_long`), 16384 prefixes per set (that rule punts), 32768
//! set prefixes in all.
//!
//! Counters: `counter` expressions are not emulated, so the kernel's rule
//! counters miss the packets the fast path decides; the FPM's own counters
//! (continue, drop, and each punt reason, per interface) account for them,
//! and per rule [`FilterFpm::rule_counters`] ([`counters`]): the packets
//! and bytes of the decided packets that matched each rule (a verdict
//! cache entry remembers up to six matched rules; a flow that matched more
//! is evaluated, and counted, packet by packet).
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
pub mod counters;
pub mod ct;
pub mod params;
pub mod prefilter;

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use linuxfp::{
    fpm::{
        Capability, Fpm, FpmConfig, FpmDeclaration, FpmError, FpmRole, Hook, ParamInput, UpkeepCtx,
    },
    topology::NetworkFunction,
};
use linuxfp_ebpf_common::filter;

/// Name of the XDP program in the object.
pub const XDP_PROGRAM: &str = "filter_xdp";
/// Name of the TC program in the object.
pub const TC_PROGRAM: &str = "filter_tc";

/// How often the upkeep follows the kernel's conntrack table: the most a
/// mirrored flow's state can lag the kernel's.
pub const UPKEEP_INTERVAL: Duration = Duration::from_millis(100);

/// What the candidate prefilter of a ruleset classifies
/// ([`FilterFpm::prefilter_fields`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefilterFields {
    /// Fields classified (`field::*`) and their classes.
    pub classified: Vec<(u8, usize)>,
    /// Fields left out for the map budget and the classes they needed.
    pub dropped: Vec<(u8, usize)>,
}

/// The filter FPM.
#[derive(Debug)]
pub struct FilterFpm {
    declaration: FpmDeclaration,
    /// The last compile's input and layout: kept while the state changes
    /// elsewhere (a neighbour, a route, an FDB entry).
    memo: Mutex<Option<(compile::CompiledFrom, params::Layout)>>,
    generations: params::Generations,
    mirror: ct::CtMirror,
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
                // The order is the deployer's write order: the generation
                // switch (`ACTIVE_MAP`) comes last.
                shared_maps: vec![
                    filter::RULES_MAP,
                    filter::SETS_MAP,
                    filter::IFACES_MAP,
                    filter::CT_MAP,
                    filter::CT_SEEN_MAP,
                    filter::RULE_STATS_MAP,
                    filter::CLASSES_MAP,
                    filter::CLASS_ROWS_MAP,
                    filter::CLASS_BASE_MAP,
                    filter::CLASS_CHUNKS_MAP,
                    filter::CLASS_CONF_MAP,
                    filter::GENERATIONS_MAP,
                    filter::ACTIVE_MAP,
                ],
                punt_reasons: filter::PUNT_NAMES.to_vec(),
            },
            memo: Mutex::new(None),
            generations: params::Generations::default(),
            mirror: ct::CtMirror::default(),
        }
    }

    /// The packets and bytes the fast path decided per nf_tables rule
    /// (`family table chain`, handle) of the ruleset last handed to the
    /// deployer, read from the pins of a deployed instance (`pins`: the
    /// namespace's [`linuxfp::deploy::PinLayout`]). Add them to the
    /// kernel's rule counters, which never see those packets.
    pub fn rule_counters(
        &self,
        pins: &linuxfp::deploy::PinLayout,
    ) -> Result<BTreeMap<(String, u64), counters::RuleCount>, counters::CountersError> {
        match self.generations.current_layout() {
            Some((g, layout)) => counters::read(pins, self.declaration.name, &layout, g),
            None => Ok(BTreeMap::new()),
        }
    }

    /// What the conntrack mirror has done so far.
    pub fn ct_stats(&self) -> ct::MirrorStats {
        self.mirror.stats()
    }

    /// The candidate prefilter of the ruleset last handed to the deployer:
    /// the fields it classifies and those left out for the map budget
    /// (`field::*`, classes), or `None` before the first ruleset.
    pub fn prefilter_fields(&self) -> Option<PrefilterFields> {
        let (_, layout) = self.generations.current_layout()?;
        let p = &layout.prefilter;
        Some(PrefilterFields {
            classified: p.fields.iter().map(|f| (f.field, f.classes)).collect(),
            dropped: p.dropped.clone(),
        })
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
        let started = std::time::Instant::now();
        let read = input.state.map(compile::CompileInput::of_state);
        let kept = {
            let memo = lock(&self.memo);
            match (&read, &*memo) {
                (Some(now), Some((then, layout))) if now.same(then) => Some(layout.clone()),
                _ => None,
            }
        };
        let layout = match kept {
            Some(layout) => layout,
            None => {
                let layout = self.lay_out(read.as_ref())?;
                *lock(&self.memo) = read.map(|r| (r.remember(), layout.clone()));
                layout
            }
        };
        let laid_out = started.elapsed();
        let mut cfg = self.generations.config(layout);
        cfg.maps.insert(
            filter::IFACES_MAP.to_string(),
            params::ifaces(self.declaration.name, input),
        );
        tracing::debug!(
            layout_ms = laid_out.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "filter: parameterized (compiled, laid out, map contents made)"
        );
        Ok(cfg)
    }

    fn upkeep_interval(&self) -> Option<Duration> {
        Some(UPKEEP_INTERVAL)
    }

    fn upkeep(&self, ctx: &UpkeepCtx<'_>) -> Result<(), FpmError> {
        self.mirror.run(ctx).map_err(|e| FpmError::Upkeep {
            fpm: self.declaration.name,
            reason: e.to_string(),
        })
    }
}

impl FilterFpm {
    /// Compiles and lays out what `read` holds (no state: everything
    /// punts).
    fn lay_out(&self, read: Option<&compile::CompileInput>) -> Result<params::Layout, FpmError> {
        let compiled = match read {
            Some(read) => read.compile(),
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
        match params::layout(&compiled) {
            Ok(l) => Ok(l),
            Err(e) => {
                tracing::warn!(error = %e, "ruleset too large for the fast path; punting it");
                params::layout(&compile::punt_all(&e.to_string())).map_err(|e| {
                    FpmError::Parameterize {
                        fpm: self.declaration.name,
                        reason: e.to_string(),
                    }
                })
            }
        }
    }
}

/// A mutex's value, also after a panic elsewhere (the values this crate
/// keeps under a lock are replaced whole, never left half-changed).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use linuxfp::{
        compat::Decisions,
        fpm::{HexBytes, ParamInput},
        inspector::nftables::Ruleset,
        state::{KernelState, Link},
        topology::Topology,
    };
    use linuxfp_ebpf_common::filter::{
        ACTIVE_MAP, CONF_GLOBAL, FilterConf, GENERATIONS_MAP, GenConf, PATH_PUNT, PATH_RULES,
        RULES_MAP,
    };

    use super::*;

    fn state(nft: &str) -> KernelState {
        let path = format!(
            "{}/../linuxfp/tests/data/nft_{nft}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut nft = Ruleset::from_messages(&std::fs::read(&path).expect("recorded ruleset"));
        nft.chains
            .retain(|c| c.base.as_ref().is_none_or(|b| b.chain_type == "filter"));
        let mut st = KernelState {
            nft: nft.into(),
            ..Default::default()
        };
        for (i, name) in [(1u32, "lo"), (2, "eth0"), (3, "docker0")] {
            st.links.insert(
                i,
                Link {
                    ifindex: i,
                    name: name.into(),
                    ..Default::default()
                },
            );
        }
        st
    }

    /// The generation `cfg` commits: the parity in `ACTIVE_MAP`, that
    /// parity's entry in `GENERATIONS_MAP`.
    fn conf(cfg: &FpmConfig) -> GenConf {
        let u = |b: &[u8], o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let active = &cfg.maps[ACTIVE_MAP];
        assert_eq!(active.len(), 1, "one commit entry");
        let (key, parity) = active.iter().next().expect("one entry");
        assert_eq!(u(key, 0), 0);
        let parity = u(parity, 0);
        let b = &cfg.maps[GENERATIONS_MAP][&HexBytes::new(&parity.to_ne_bytes())];
        let g = GenConf {
            generation: u(b, 0),
            reserved: u(b, 4),
            v4: filter::PathConf {
                state: u(b, 8),
                start: u(b, 12),
                end: u(b, 16),
            },
            v6: filter::PathConf {
                state: u(b, 20),
                start: u(b, 24),
                end: u(b, 28),
            },
        };
        assert_eq!(g.generation & 1, parity, "{g:?}");
        g
    }

    #[test]
    fn declaration_names_the_filter_function_hooks_and_reasons() {
        let f = FilterFpm::new();
        let d = f.declaration();
        assert_eq!(d.role, FpmRole::Accelerates(NetworkFunction::Filter));
        assert_eq!(d.hooks().collect::<Vec<_>>(), [Hook::Xdp, Hook::Tc]);
        assert_eq!(
            d.counter_name(filter::PUNT_RULE_REJECT),
            Some("rule_reject")
        );
        assert!(!f.bytecode().is_empty());
    }

    #[test]
    fn parameterize_compiles_the_state_and_bumps_generations_on_change() {
        let f = FilterFpm::new();
        let (topology, decisions) = (Topology::default(), Decisions::default());
        let docker = state("docker");
        let input = |st| ParamInput {
            topology: &topology,
            decisions: &decisions,
            state: Some(st),
        };
        assert_eq!(f.prefilter_fields(), None);
        let cfg = f.parameterize(&input(&docker)).expect("parameterize");
        let c = conf(&cfg);
        assert_eq!(c.generation, 1);
        // Docker's rules are few (below `PREFILTER_MIN_RULES`): a miss
        // walks them without the prefilter, whose maps stay empty.
        let pf = f.prefilter_fields().expect("a ruleset");
        assert!(pf.classified.is_empty() && pf.dropped.is_empty(), "{pf:?}");
        assert!(cfg.maps[filter::CLASS_ROWS_MAP].is_empty());
        assert_eq!(c.v4.state, PATH_RULES);
        assert!(!cfg.maps[RULES_MAP].is_empty());
        // Same state, same configuration (nothing to redeploy).
        assert_eq!(f.parameterize(&input(&docker)).expect("again"), cfg);
        assert_eq!(f.generation(), Some(1));
        // A new interface changes what `-o docker0` and friends resolve
        // to: a new generation.
        let mut more = docker.clone();
        more.links.insert(
            9,
            Link {
                ifindex: 9,
                name: "veth9".into(),
                ..Default::default()
            },
        );
        let cfg2 = f.parameterize(&input(&more)).expect("parameterize");
        assert_eq!(conf(&cfg2).generation, 2);
        // Only the maps changed: the new generation needs no new programs.
        assert_eq!(cfg2.globals, cfg.globals);
        // Both generations' configurations are kept: the previous one is
        // what runs until the deployer's commit.
        assert_eq!(cfg2.maps[GENERATIONS_MAP].len(), 2);
        // iptables-legacy: everything punts.
        let mut legacy = more.clone();
        legacy.legacy_tables = vec!["filter".into()];
        let c3 = conf(&f.parameterize(&input(&legacy)).expect("parameterize"));
        assert_eq!((c3.v4.state, c3.v6.state), (PATH_PUNT, PATH_PUNT));
        // No kernel state at all: everything punts too.
        let none = ParamInput {
            topology: &topology,
            decisions: &decisions,
            state: None,
        };
        let cfg4 = f.parameterize(&none).expect("parameterize");
        let c4 = conf(&cfg4);
        assert_eq!(c4.v4.state, PATH_PUNT);
        assert_eq!(c4, conf(&f.parameterize(&none).expect("again")));
        // What shapes the programs' code: no rule reads conntrack.
        assert_eq!(
            cfg4.globals[CONF_GLOBAL],
            HexBytes::of(&FilterConf { flags: 0 })
        );
    }
}
