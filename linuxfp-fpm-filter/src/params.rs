// SPDX-License-Identifier: MIT OR Apache-2.0
//! The filter's parameterizer: compiled paths → the `FILTER_CONF` global
//! and the contents of `FILTER_RULES`, `FILTER_SETS`, the prefilter's maps,
//! `FILTER_GENERATIONS` and `FILTER_ACTIVE`.
//!
//! # Layout
//!
//! Rules of one generation are numbered from 0: the IPv4 program, then the
//! IPv6 one. In each, the base chains come first in evaluation order, each
//! followed by a synthetic end rule ([`ACT_END_BASE`]: its policy, and
//! where the next base chain starts); then the regular chains, each
//! followed by a synthetic [`ACT_RETURN`]. Set 0 holds the interfaces known
//! at compile time; the compiled sets follow.
//!
//! # Atomic updates
//!
//! Rules sit in the half of the rule array of their generation's parity,
//! stamped with the parity's [`entry_stamp`]; set and prefilter keys carry
//! it too. Which generation the programs evaluate is the commit entry of
//! `FILTER_ACTIVE` (a parity) and that parity's [`GenConf`] in
//! `FILTER_GENERATIONS`; the filter declares `FILTER_ACTIVE` last, so the
//! deployer writes it after every other entry of the new generation and
//! after removing what is left of the one two before: a new ruleset is
//! written next to the old one and switched to in one write, with the same
//! programs. The [`Generations`] keeper keeps the previous generation's
//! entries in the desired contents, so packets still evaluating it find
//! their rules; as stamps are per parity, only what differs from the
//! generation two before is written.

use std::{
    collections::BTreeMap,
    sync::{Mutex, OnceLock},
};

use linuxfp::fpm::{FpmConfig, HexBytes, Hook, MapContents, ParamInput};
use linuxfp_ebpf_common::filter::*;

use crate::{
    compile::{Action, Compiled, Field, L3, PathPlan, Pred, Program},
    prefilter::{self, Prefilter},
};

/// Why a compiled ruleset cannot be laid out in the maps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// More rules than [`MAX_RULES`].
    #[error("{rules} rules (with chain ends) exceed the map's {max} per generation")]
    TooManyRules {
        /// Rules needed.
        rules: usize,
        /// The limit.
        max: u32,
    },
    /// More set elements than the map holds for two generations.
    #[error("{elements} set elements exceed half the map's {max}")]
    TooManyElements {
        /// Elements needed.
        elements: usize,
        /// The map's capacity.
        max: u32,
    },
}

/// Rulesets with fewer rules (chain ends included) are walked without the
/// candidate prefilter: its class lookups, one per classified field, cost
/// more on a cache miss than walking that many rules.
pub const PREFILTER_MIN_RULES: usize = 64;

/// One generation's map contents, without the generation in the keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// The IPv4 path.
    pub v4: PathConf,
    /// The IPv6 path.
    pub v6: PathConf,
    /// Rules by index.
    pub rules: Vec<FilterRule>,
    /// Set elements: (set id, value bytes zero padded, prefix bits on the
    /// value).
    pub sets: Vec<(u32, [u8; 16], u32)>,
    /// Some rule reads conntrack state ([`CONF_CT`]).
    pub ct: bool,
    /// `CONF_GATED_*` bits: the paths that start with the conntrack gate.
    pub gated: u32,
    /// Where each rule of `rules` comes from: `family table chain` and the
    /// nf_tables handle (0 for the rules the compiler made).
    pub origins: Vec<(String, u64)>,
    /// The candidate prefilter of `rules` ([`prefilter`]).
    pub prefilter: Prefilter,
}

fn field_code(f: Field) -> u8 {
    match f {
        Field::Iif => field::IIF,
        Field::Oif => field::OIF,
        Field::Saddr => field::SADDR,
        Field::Daddr => field::DADDR,
        Field::L4Proto => field::L4PROTO,
        Field::Sport => field::SPORT,
        Field::Dport => field::DPORT,
    }
}

fn pad16(b: &[u8]) -> [u8; 16] {
    let mut v = [0u8; 16];
    let n = b.len().min(16);
    v[..n].copy_from_slice(&b[..n]);
    v
}

/// A prefix length as a byte mask of `len` bytes.
fn mask16(bits: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    for (i, b) in m.iter_mut().enumerate() {
        let lo = 8 * i as u32;
        *b = if bits >= lo + 8 {
            0xff
        } else if bits > lo {
            0xffu8 << (8 - (bits - lo))
        } else {
            0
        };
    }
    m
}

/// Lays a compiled ruleset out as map contents.
pub fn layout(c: &Compiled) -> Result<Layout, LayoutError> {
    let mut out = Layout::default();
    out.sets.extend(
        c.known_ifaces
            .iter()
            .map(|i| (SET_KNOWN_IFACES, pad16(&i.to_ne_bytes()), 32)),
    );
    let mut next_set = SET_KNOWN_IFACES + 1;
    for l3 in [L3::V4, L3::V6] {
        let conf = match c.path(l3) {
            PathPlan::Open => PathConf {
                state: PATH_NONE,
                start: 0,
                end: NO_NEXT,
            },
            PathPlan::Punt { .. } => PathConf {
                state: PATH_PUNT,
                start: 0,
                end: NO_NEXT,
            },
            PathPlan::Rules(p) => {
                out.ct |= p.reads_ct();
                if p.gated() {
                    out.gated |= match l3 {
                        L3::V4 => CONF_GATED_V4,
                        L3::V6 => CONF_GATED_V6,
                    };
                }
                let start = out.rules.len() as u32;
                let end = lay_program(p, &mut out, &mut next_set);
                PathConf {
                    state: PATH_RULES,
                    start,
                    end,
                }
            }
        };
        match l3 {
            L3::V4 => out.v4 = conf,
            L3::V6 => out.v6 = conf,
        }
    }
    if out.rules.len() > MAX_RULES as usize {
        return Err(LayoutError::TooManyRules {
            rules: out.rules.len(),
            max: MAX_RULES,
        });
    }
    if out.sets.len() > (SETS_ENTRIES / 2) as usize {
        return Err(LayoutError::TooManyElements {
            elements: out.sets.len(),
            max: SETS_ENTRIES,
        });
    }
    out.prefilter = if out.rules.len() >= PREFILTER_MIN_RULES {
        prefilter::build(&out.rules)
    } else {
        Prefilter::default()
    };
    Ok(out)
}

/// Lays out `p`'s chains after what `out` holds; returns the index of
/// the first base chain's end rule ([`NO_NEXT`] without base chains).
fn lay_program(p: &Program, out: &mut Layout, next_set: &mut u32) -> u32 {
    let base = out.rules.len() as u32;
    let set_base = *next_set;
    for (i, s) in p.sets.iter().enumerate() {
        let id = set_base + i as u32;
        for (v, bits) in &s.elements {
            out.sets.push((id, pad16(v), *bits));
        }
    }
    *next_set += p.sets.len() as u32;
    // Chain start indexes: each chain is its rules plus one end rule.
    let mut starts = Vec::with_capacity(p.chains.len());
    let mut at = base;
    for c in &p.chains {
        starts.push(at);
        at += c.rules.len() as u32 + 1;
    }
    let nbase = p.chains.iter().filter(|c| c.base.is_some()).count();
    // The end rule of chain `ci` (base chains come first).
    let end_of = |ci: usize| starts[ci] + p.chains[ci].rules.len() as u32;
    for (ci, c) in p.chains.iter().enumerate() {
        for r in &c.rules {
            let mut fr = FilterRule {
                base_end: NO_NEXT,
                next_base: NO_NEXT,
                ..Default::default()
            };
            let mut nset = 0;
            for m in &r.matches {
                let bit = match &m.pred {
                    Pred::Iif(i) => {
                        fr.iif = *i;
                        m::IIF
                    }
                    Pred::Oif(i) => {
                        fr.oif = *i;
                        m::OIF
                    }
                    Pred::Saddr(px) => {
                        fr.saddr = pad16(&px.addr);
                        fr.smask = mask16(px.len);
                        m::SADDR
                    }
                    Pred::Daddr(px) => {
                        fr.daddr = pad16(&px.addr);
                        fr.dmask = mask16(px.len);
                        m::DADDR
                    }
                    Pred::L4Proto(v) => {
                        fr.l4proto = *v;
                        m::L4PROTO
                    }
                    Pred::Sport(lo, hi) => {
                        fr.sport = [*lo, *hi];
                        m::SPORT
                    }
                    Pred::Dport(lo, hi) => {
                        fr.dport = [*lo, *hi];
                        m::DPORT
                    }
                    Pred::IcmpType(lo, hi) => {
                        fr.icmp_type = [*lo, *hi];
                        m::ICMP_TYPE
                    }
                    Pred::IcmpCode(lo, hi) => {
                        fr.icmp_code = [*lo, *hi];
                        m::ICMP_CODE
                    }
                    Pred::TcpFlags { mask, cmp } => {
                        fr.tcp_mask = *mask;
                        fr.tcp_cmp = *cmp;
                        m::TCP_FLAGS
                    }
                    Pred::InSet { field, set } => {
                        // The compiler allows two lookups per rule.
                        let slot = nset.min(1);
                        nset += 1;
                        fr.set_field[slot] = field_code(*field);
                        fr.set_id[slot] = set_base + *set as u32;
                        if slot == 0 { m::SET0 } else { m::SET1 }
                    }
                    Pred::CtState(bits) => {
                        fr.ct_state = *bits;
                        m::CT_STATE
                    }
                    Pred::CtDirection(d) => {
                        fr.ct_dir = *d;
                        m::CT_DIR
                    }
                };
                fr.matches |= bit;
                if m.negate {
                    fr.negate |= bit;
                }
            }
            let (action, arg) = match &r.action {
                Action::Continue => (ACT_CONTINUE, 0),
                Action::Accept => (ACT_ACCEPT, 0),
                Action::Drop => (ACT_DROP, 0),
                Action::Jump(t) => (ACT_JUMP, starts[*t]),
                Action::Goto(t) => (ACT_GOTO, starts[*t]),
                Action::Return => (ACT_RETURN, 0),
                Action::Punt(why) => (ACT_PUNT, why.counter()),
            };
            fr.action = action;
            fr.arg = arg;
            out.rules.push(fr);
            out.origins.push((c.name.clone(), r.handle));
        }
        // The chain's end.
        let end_rule = match &c.base {
            Some(b) => FilterRule {
                action: ACT_END_BASE,
                arg: u32::from(if b.accept { ACT_ACCEPT } else { ACT_DROP }),
                next_base: if ci + 1 < nbase {
                    starts[ci + 1]
                } else {
                    NO_NEXT
                },
                base_end: if ci + 1 < nbase {
                    end_of(ci + 1)
                } else {
                    NO_NEXT
                },
                ..Default::default()
            },
            None => FilterRule {
                action: ACT_RETURN,
                base_end: NO_NEXT,
                next_base: NO_NEXT,
                ..Default::default()
            },
        };
        out.rules.push(end_rule);
        out.origins.push((c.name.clone(), 0));
    }
    if nbase > 0 { end_of(0) } else { NO_NEXT }
}

/// `FILTER_IFACES`: for every interface the decisions attach `fpm` to,
/// its MAC at XDP (the XDP stage's test for frames addressed to this
/// host) and, on a bridge port, what becomes of the frames it receives
/// for other hosts ([`bridged`]).
pub fn ifaces(fpm: &str, input: &ParamInput<'_>) -> MapContents {
    input
        .decisions
        .interfaces_of(fpm)
        .filter(|(i, _)| *i < linuxfp_ebpf_common::abi::MAX_IFINDEX)
        .filter_map(|(i, hook)| {
            let iface = input.topology.interfaces.get(&i)?;
            let mut v = FilterIface::default();
            if let (Hook::Xdp, Some(mac)) = (hook, iface.mac) {
                v.mac = mac;
                v.flags |= IFACE_XDP;
            }
            if let Some((flags, bridge)) = bridged(i, input) {
                v.flags |= flags;
                v.bridge = bridge;
            }
            (v.flags != 0 || v.bridge != 0)
                .then(|| (HexBytes::new(&i.to_ne_bytes()), HexBytes::of(&v)))
        })
        .collect()
}

/// For a bridge port: the `IFACE_BRIDGED_*` flags of its bridged frames,
/// per family, and its bridge. A family's frames are open (no hook sees
/// them) without `br_netfilter` for the bridge, evaluated (as from and to
/// the bridge device) with it, unless the bridge filters VLANs (the
/// forward hook then sees tagged skbs, which `br_netfilter` treats by
/// other sysctls); any `bridge` family chain on the way (prerouting,
/// forward, postrouting: not compiled) leaves them all to the kernel.
pub fn bridged(port: u32, input: &ParamInput<'_>) -> Option<(u16, u32)> {
    let bridge = input
        .topology
        .bridges
        .values()
        .find(|b| b.ports.contains_key(&port))?;
    let bridge_chains = input.topology.filter.base_chains.iter().any(|c| {
        c.family == "bridge" && matches!(c.hook.as_str(), "prerouting" | "forward" | "postrouting")
    });
    let state = input.state.filter(|_| !bridge_chains);
    let Some(state) = state else {
        return Some((0, bridge.ifindex));
    };
    let mut flags = 0;
    for (hooks_on, open, rules) in [
        (
            state.br_netfilter_ipv4_on(bridge.ifindex),
            IFACE_BRIDGED_OPEN_V4,
            IFACE_BRIDGED_RULES_V4,
        ),
        (
            state.br_netfilter_ipv6_on(bridge.ifindex),
            IFACE_BRIDGED_OPEN_V6,
            IFACE_BRIDGED_RULES_V6,
        ),
    ] {
        if !hooks_on {
            flags |= open;
        } else if !bridge.vlan_filtering {
            flags |= rules;
        }
    }
    Some((flags, bridge.ifindex))
}

/// The map key of a set element: `bpf_lpm_trie_key` (prefix length, then
/// the data), the data being a [`SetKey`].
pub fn set_key_bytes(generation: u32, set: u32, value: &[u8; 16], bits: u32) -> HexBytes {
    lpm_key(
        64 + bits,
        &SetKey {
            generation,
            set,
            value: *value,
        },
    )
}

/// The map key of a prefilter class prefix: `bpf_lpm_trie_key` (prefix
/// length, then the data), the data being a [`ClassKey`].
pub fn class_key_bytes(generation: u32, field: u8, value: &[u8; 16], bits: u32) -> HexBytes {
    lpm_key(
        64 + bits,
        &ClassKey {
            generation,
            field: u32::from(field),
            value: *value,
        },
    )
}

/// `bpf_lpm_trie_key`: the prefix length in bits, then the data.
fn lpm_key<T: aya::Pod>(prefix_len: u32, data: &T) -> HexBytes {
    let mut k = HexBytes::new(&prefix_len.to_ne_bytes());
    k.extend_from_slice(&HexBytes::of(data));
    k
}

/// Map entries as they are made, by map, sorted into [`MapContents`] in
/// one go at the end: for 10k rules a configuration is about 62k entries,
/// and a bulk build of each map costs a fraction of inserting them one by
/// one.
#[derive(Default)]
struct Entries(BTreeMap<&'static str, Staged>);

/// One map's entries in the order they were made.
#[derive(Default)]
struct Staged(Vec<(HexBytes, HexBytes)>);

impl Staged {
    /// Adds an entry (a later one with the same key wins, as in a map).
    fn insert(&mut self, key: HexBytes, value: HexBytes) {
        self.0.push((key, value));
    }
}

impl Entries {
    fn of(&mut self, map: &'static str) -> &mut Staged {
        self.0.entry(map).or_default()
    }

    /// Sets each map's contents to its entries.
    fn into_maps(self, maps: &mut BTreeMap<String, MapContents>) {
        for (map, Staged(entries)) in self.0 {
            maps.insert(map.to_string(), entries.into_iter().collect());
        }
    }
}

/// Adds one generation's prefilter to the map contents (`build` kept it
/// within the per-generation budgets, so every chunk slot exists).
/// `stamp`: the generation's [`entry_stamp`].
fn write_prefilter(p: &Prefilter, stamp: u32, maps: &mut Entries) {
    let key = |slot: Option<u32>| slot.map(|s| HexBytes::new(&s.to_ne_bytes()));
    let classes = maps.of(CLASSES_MAP);
    for f in &p.fields {
        for (value, bits, class) in &f.prefixes {
            classes.insert(
                class_key_bytes(stamp, f.field, value, *bits),
                HexBytes::of(class),
            );
        }
    }
    let rows = maps.of(CLASS_ROWS_MAP);
    for (class, chunk, id) in &p.rows {
        let k = ClassRow {
            generation: stamp,
            class: *class,
            chunk: *chunk,
        };
        rows.insert(HexBytes::of(&k), HexBytes::new(&id.to_ne_bytes()));
    }
    let base = maps.of(CLASS_BASE_MAP);
    for (field, chunk, id) in &p.base {
        if let Some(k) = key(class_base_slot(stamp, *field, *chunk)) {
            base.insert(
                k,
                HexBytes::of(&ClassBase {
                    generation: stamp,
                    chunk: *id,
                }),
            );
        }
    }
    let chunks = maps.of(CLASS_CHUNKS_MAP);
    for (i, bits) in p.bits.iter().enumerate() {
        if let Some(k) = key(class_chunk_slot(stamp, i as u32)) {
            chunks.insert(
                k,
                HexBytes::of(&ClassChunk {
                    generation: stamp,
                    reserved: 0,
                    bits: *bits,
                }),
            );
        }
    }
    maps.of(CLASS_CONF_MAP).insert(
        HexBytes::new(&(stamp & 1).to_ne_bytes()),
        HexBytes::of(&ClassConf {
            generation: stamp,
            chunks: p.chunks,
            fields: p.field_bits(),
            reserved: 0,
        }),
    );
}

/// Adds one generation's entries to the map contents: stamped and keyed
/// with its [`entry_stamp`], so what did not change since the generation
/// two before is the same bytes (and not written again); only its
/// [`GenConf`] names the generation itself.
fn write(layout: &Layout, generation: u32, maps: &mut Entries) {
    let stamp = entry_stamp(generation);
    write_prefilter(&layout.prefilter, stamp, maps);
    let rules = maps.of(RULES_MAP);
    for (i, r) in layout.rules.iter().enumerate() {
        // `layout` refused more than MAX_RULES.
        let Some(slot) = rule_slot(stamp, i as u32) else {
            break;
        };
        let r = FilterRule {
            generation: stamp,
            ..*r
        };
        rules.insert(HexBytes::new(&slot.to_ne_bytes()), HexBytes::of(&r));
    }
    let sets = maps.of(SETS_MAP);
    for (set, value, bits) in &layout.sets {
        sets.insert(
            set_key_bytes(stamp, *set, value, *bits),
            HexBytes::new(&[1]),
        );
    }
    let conf = GenConf {
        generation,
        reserved: 0,
        v4: layout.v4,
        v6: layout.v6,
    };
    maps.of(GENERATIONS_MAP).insert(
        HexBytes::new(&(generation & 1).to_ne_bytes()),
        HexBytes::of(&conf),
    );
}

/// Where the running kernel keeps `sk_buff::ip_summed` (its BTF), read
/// once; unknown (only `CHECKSUM_UNNECESSARY` is then known good at TC)
/// if the kernel has no BTF or the field is not a 2-bit field in one byte.
pub fn skb_layout() -> SkbLayout {
    static LAYOUT: OnceLock<SkbLayout> = OnceLock::new();
    *LAYOUT.get_or_init(|| {
        let found = linuxfp::btf::vmlinux_member("sk_buff", "ip_summed");
        match found.as_ref().map(|m| (m.bit_size, m.in_byte())) {
            Ok((2, Some((byte, shift)))) => SkbLayout {
                ip_summed_byte: byte,
                ip_summed_shift: shift,
                known: 1,
            },
            _ => {
                tracing::warn!(
                    result = ?found,
                    "sk_buff::ip_summed not found as a 2-bit field: at TC, packets with \
                     CHECKSUM_PARTIAL (local senders, veth) are not classified by conntrack"
                );
                SkbLayout::default()
            }
        }
    })
}

/// The current and previous generation the parameterizer produced.
#[derive(Debug, Default)]
pub struct Generations {
    state: Mutex<GenState>,
}

#[derive(Debug, Default)]
struct GenState {
    current: Option<(u32, Layout)>,
    previous: Option<(u32, Layout)>,
    /// The configuration made for these two once the layout was asked for
    /// again: given while it stays (making it anew is most of the cost of
    /// an unchanged ruleset). Not kept on a change, which would pay for
    /// the copy.
    made: Option<FpmConfig>,
}

impl Generations {
    /// The configuration for `layout`: a new generation if it differs from
    /// the last one, with the previous generation's entries kept.
    pub fn config(&self, layout: Layout) -> FpmConfig {
        let mut st = crate::lock(&self.state);
        let same = st.current.as_ref().is_some_and(|(_, l)| *l == layout);
        if !same {
            // Consecutive generations differ in parity (they use the two
            // halves of the rule array); 0 is never one.
            let next = match &st.current {
                Some((u32::MAX, _)) => 2,
                Some((g, _)) => g + 1,
                None => 1,
            };
            // The first generation gets a twin at the other parity,
            // numbered 0 and never committed: the first change then finds
            // its entries written, as every later change finds those of the
            // generation two before, and writes only what differs (for
            // 10k rules, a few entries instead of 31k).
            let twin = || (0, layout.clone());
            st.previous = st.current.take().or_else(|| Some(twin()));
            st.current = Some((next, layout));
            st.made = None;
        } else if let Some(made) = &st.made {
            return made.clone();
        }
        let mut cfg = FpmConfig::default();
        // Every map the parameterizer writes is named even when empty, so
        // the entries of an older generation are removed.
        for map in [
            RULES_MAP,
            SETS_MAP,
            CLASSES_MAP,
            CLASS_ROWS_MAP,
            CLASS_BASE_MAP,
            CLASS_CHUNKS_MAP,
            CLASS_CONF_MAP,
            GENERATIONS_MAP,
            ACTIVE_MAP,
        ] {
            cfg.maps.insert(map.to_string(), MapContents::new());
        }
        // Both generations' entries, made afresh into the one configuration
        // (they never share a key: keys and slots are per parity). Making
        // them costs less than copying entries kept from the call before:
        // for 10k rules, 12 ms a generation against 15-23 ms to copy both.
        let mut entries = Entries::default();
        for (g, l) in [&st.current, &st.previous].into_iter().flatten() {
            write(l, *g, &mut entries);
        }
        entries.into_maps(&mut cfg.maps);
        let mut conf = FilterConf::default();
        if let Some((g, l)) = &st.current {
            conf = FilterConf {
                flags: (if l.ct { CONF_CT } else { 0 }) | l.gated,
            };
            // The commit: the filter declares this map last, so the
            // deployer writes it after every other map's entries are
            // written and the stale ones removed.
            cfg.maps
                .entry(ACTIVE_MAP.to_string())
                .or_default()
                .insert(HexBytes::new(&0u32.to_ne_bytes()), HexBytes::of(&(g & 1)));
        }
        cfg.globals
            .insert(CONF_GLOBAL.to_string(), HexBytes::of(&conf));
        cfg.globals
            .insert(SKB_GLOBAL.to_string(), HexBytes::of(&skb_layout()));
        if same {
            st.made = Some(cfg.clone());
        }
        cfg
    }

    /// The generation and layout of the last configuration.
    pub fn current_layout(&self) -> Option<(u32, Layout)> {
        let st = crate::lock(&self.state);
        st.current.clone()
    }

    /// The generation of the last configuration.
    pub fn current(&self) -> Option<u32> {
        let st = crate::lock(&self.state);
        st.current.as_ref().map(|(g, _)| *g)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::compile::{IrBase, IrChain, IrRule, IrSet, Match, Prefix, PuntWhy};

    fn program() -> Program {
        Program {
            l3: L3::V4,
            chains: vec![
                IrChain {
                    name: "ip filter FORWARD".into(),
                    base: Some(IrBase {
                        hook: "forward".into(),
                        priority: 0,
                        accept: false,
                    }),
                    rules: vec![
                        IrRule {
                            handle: 1,
                            matches: vec![Match {
                                pred: Pred::Daddr(Prefix {
                                    addr: vec![10, 0, 0, 0],
                                    len: 8,
                                }),
                                negate: true,
                            }],
                            action: Action::Jump(1),
                        },
                        IrRule {
                            handle: 2,
                            matches: vec![Match {
                                pred: Pred::InSet {
                                    field: Field::Dport,
                                    set: 0,
                                },
                                negate: false,
                            }],
                            action: Action::Accept,
                        },
                    ],
                },
                IrChain {
                    name: "ip filter USER".into(),
                    base: None,
                    rules: vec![IrRule {
                        handle: 3,
                        matches: vec![],
                        action: Action::Punt(PuntWhy::Reject),
                    }],
                },
            ],
            sets: vec![IrSet {
                name: "s".into(),
                field: Field::Dport,
                elements: vec![(80u16.to_be_bytes().to_vec(), 16)],
            }],
        }
    }

    /// A ruleset of `rules` port rules in the forward chain.
    fn port_rules(rules: u16) -> Compiled {
        let mut p = program();
        p.chains[0].rules = (0..rules)
            .map(|i| IrRule {
                handle: u64::from(i) + 1,
                matches: vec![Match {
                    pred: Pred::Dport(1000 + i, 1000 + i),
                    negate: false,
                }],
                action: Action::Drop,
            })
            .collect();
        Compiled {
            v4: PathPlan::Rules(p),
            v6: PathPlan::Open,
            known_ifaces: BTreeSet::from([2, 3]),
        }
    }

    #[test]
    fn only_rulesets_worth_it_get_a_prefilter() {
        let small = layout(&port_rules(10)).expect("fits");
        assert!(small.rules.len() < PREFILTER_MIN_RULES);
        assert_eq!(small.prefilter, Prefilter::default(), "walked, no classes");
        let large = layout(&port_rules(PREFILTER_MIN_RULES as u16)).expect("fits");
        assert!(large.prefilter.chunks > 0 && !large.prefilter.fields.is_empty());
    }

    #[test]
    fn a_rule_added_at_a_chains_end_changes_a_few_entries_not_the_chain() {
        // The forward chain of 2,000 rules, then the USER chain (a rule
        // and its return), which moves along by one.
        let before = layout(&port_rules(2000)).expect("fits");
        let after = layout(&port_rules(2001)).expect("fits");
        let changed = (0..after.rules.len())
            .filter(|&i| before.rules.get(i) != after.rules.get(i))
            .count();
        // The new rule where the end rule was, the end rule where USER's
        // rule was, USER's rule and its return.
        assert_eq!(changed, 4);
        assert_eq!((before.v4.end, after.v4.end), (2000, 2001));
        assert!(after.rules[..2000].iter().all(|r| r.base_end == NO_NEXT));
    }

    #[test]
    fn chains_are_laid_out_with_their_ends_and_targets() {
        let c = Compiled {
            v4: PathPlan::Rules(program()),
            v6: PathPlan::Punt {
                reason: "nat".into(),
            },
            known_ifaces: BTreeSet::from([2, 3]),
        };
        let l = layout(&c).expect("fits");
        assert_eq!(
            l.v4,
            PathConf {
                state: PATH_RULES,
                start: 0,
                end: 2,
            }
        );
        assert_eq!(l.v6.state, PATH_PUNT);
        // FORWARD: 2 rules + end; USER: 1 rule + return.
        assert_eq!(l.rules.len(), 5);
        assert_eq!(l.rules[0].action, ACT_JUMP);
        assert_eq!(l.rules[0].arg, 3);
        assert_eq!(l.rules[0].matches, m::DADDR);
        assert_eq!(l.rules[0].negate, m::DADDR);
        assert_eq!(&l.rules[0].dmask[..4], &[0xff, 0, 0, 0]);
        assert_eq!(l.rules[0].base_end, NO_NEXT);
        assert_eq!(l.rules[1].set_id[0], 1);
        assert_eq!(l.rules[1].set_field[0], field::DPORT);
        assert_eq!(l.rules[2].action, ACT_END_BASE);
        assert_eq!(l.rules[2].arg, u32::from(ACT_DROP));
        assert_eq!(l.rules[2].next_base, NO_NEXT);
        assert_eq!(l.rules[3].action, ACT_PUNT);
        assert_eq!(l.rules[3].arg, PUNT_RULE_REJECT);
        assert_eq!(l.rules[3].base_end, NO_NEXT);
        assert_eq!(l.rules[4].action, ACT_RETURN);
        // Two known interfaces, one port.
        assert_eq!(l.sets.len(), 3);
        assert!(l.sets.contains(&(1, pad16(&[0, 80]), 16)));
    }

    #[test]
    fn generations_keep_the_previous_one_and_bump_on_change() {
        let g = Generations::default();
        let c1 = Compiled {
            v4: PathPlan::Rules(program()),
            v6: PathPlan::Open,
            known_ifaces: BTreeSet::new(),
        };
        let cfg1 = g.config(layout(&c1).expect("fits"));
        assert_eq!(g.current(), Some(1));
        // Its rules, and their twin at the other parity (generation 0,
        // never committed).
        let n1 = cfg1.maps[RULES_MAP].len();
        assert_eq!(n1, 5 + 5);
        assert_eq!(cfg1.maps[GENERATIONS_MAP].len(), 2);
        assert!(
            cfg1.maps[RULES_MAP].contains_key(&HexBytes::new(&0u32.to_ne_bytes())),
            "the twin in the even half"
        );
        // Same input: same generation, same contents (made again, then
        // kept).
        assert_eq!(g.config(layout(&c1).expect("fits")), cfg1);
        assert_eq!(g.config(layout(&c1).expect("fits")), cfg1);
        let mut p = program();
        p.chains[0].rules.pop();
        let c2 = Compiled {
            v4: PathPlan::Rules(p),
            ..c1.clone()
        };
        let cfg2 = g.config(layout(&c2).expect("fits"));
        assert_eq!(g.current(), Some(2));
        assert_ne!(cfg2, cfg1);
        for _ in 0..2 {
            assert_eq!(
                g.config(layout(&c2).expect("fits")),
                cfg2,
                "not the kept one"
            );
        }
        assert_eq!(cfg2.maps[RULES_MAP].len(), 5 + 4);
        // Generation 2 sits in the even half, with its generation's stamp.
        let slot = rule_slot(2, 0).expect("slot");
        assert_eq!(slot, 0);
        let v = &cfg2.maps[RULES_MAP][&HexBytes::new(&slot.to_ne_bytes())];
        let stamp = u32::from_ne_bytes([v[48], v[49], v[50], v[51]]);
        assert_eq!(stamp, entry_stamp(2));
        assert!(
            cfg2.maps[RULES_MAP].contains_key(&HexBytes::new(&MAX_RULES.to_ne_bytes())),
            "generation 1 kept in the odd half"
        );
        let c3 = Compiled {
            v4: PathPlan::Open,
            ..c1
        };
        let cfg3 = g.config(layout(&c3).expect("fits"));
        // Generation 1 is gone, 2 is kept for the programs still running.
        assert_eq!(cfg3.maps[RULES_MAP].len(), 4);
        // A new generation is map contents only: the same programs run it.
        assert_eq!(cfg3.globals, cfg2.globals);
        // Its configuration sits at its parity, and the commit names it.
        let gens = &cfg3.maps[GENERATIONS_MAP];
        assert_eq!(gens.len(), 2, "generations 3 and 2");
        let g3 = &gens[&HexBytes::new(&1u32.to_ne_bytes())];
        assert_eq!(u32::from_ne_bytes([g3[0], g3[1], g3[2], g3[3]]), 3);
        let active = &cfg3.maps[ACTIVE_MAP];
        assert_eq!(
            active.get(&HexBytes::new(&0u32.to_ne_bytes())),
            Some(&HexBytes::new(&1u32.to_ne_bytes()))
        );
    }

    #[test]
    fn xdp_interfaces_get_their_mac() {
        use linuxfp::{
            compat::{Decisions, InterfaceDecision},
            topology::{Interface, Topology},
        };
        let mut topology = Topology::default();
        for i in [2u32, 3] {
            topology.interfaces.insert(
                i,
                Interface {
                    ifindex: i,
                    name: format!("r{i}"),
                    mac: Some([2, 0, 0, 0, 0, i as u8]),
                    ..Default::default()
                },
            );
        }
        let decisions = Decisions {
            interfaces: [(2, Hook::Xdp), (3, Hook::Tc)]
                .into_iter()
                .map(|(i, hook)| {
                    (
                        i,
                        InterfaceDecision {
                            name: format!("r{i}"),
                            hook: Some(hook),
                            stages: vec!["filter".into(), "router".into()],
                            reasons: vec![],
                        },
                    )
                })
                .collect(),
        };
        let m = ifaces(
            "filter",
            &ParamInput {
                topology: &topology,
                decisions: &decisions,
                state: None,
            },
        );
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[&HexBytes::new(&2u32.to_ne_bytes())],
            HexBytes::of(&FilterIface {
                mac: [2, 0, 0, 0, 0, 2],
                flags: IFACE_XDP,
                bridge: 0,
            })
        );
    }

    #[test]
    fn bridge_ports_say_what_becomes_of_bridged_frames() {
        use linuxfp::{
            compat::{Decisions, InterfaceDecision},
            state::KernelState,
            topology::{BaseChain, Bridge, BridgePort, Interface, Topology},
        };
        let mut topology = Topology::default();
        for i in [2u32, 3, 4] {
            topology.interfaces.insert(
                i,
                Interface {
                    ifindex: i,
                    name: format!("p{i}"),
                    mac: Some([2, 0, 0, 0, 0, i as u8]),
                    ..Default::default()
                },
            );
        }
        topology.bridges.insert(
            9,
            Bridge {
                ifindex: 9,
                name: "br0".into(),
                ports: [(2, BridgePort::default()), (3, BridgePort::default())].into(),
                ..Default::default()
            },
        );
        let decisions = Decisions {
            interfaces: [(2, Hook::Tc), (3, Hook::Xdp), (4, Hook::Tc)]
                .into_iter()
                .map(|(i, hook)| {
                    let d = InterfaceDecision {
                        name: format!("p{i}"),
                        hook: Some(hook),
                        stages: vec!["filter".into()],
                        reasons: vec![],
                    };
                    (i, d)
                })
                .collect(),
        };
        let mut state = KernelState::default();
        state.links.insert(
            9,
            linuxfp::state::Link {
                ifindex: 9,
                name: "br0".into(),
                bridge: Some(Default::default()),
                ..Default::default()
            },
        );
        let entry = |t: &Topology, s: &KernelState, i: u32| {
            let input = ParamInput {
                topology: t,
                decisions: &decisions,
                state: Some(s),
            };
            ifaces("filter", &input)
                .get(&HexBytes::new(&i.to_ne_bytes()))
                .cloned()
        };
        let of = |flags: u16, mac: Option<[u8; 6]>, bridge: u32| {
            Some(HexBytes::of(&FilterIface {
                mac: mac.unwrap_or_default(),
                flags: flags | if mac.is_some() { IFACE_XDP } else { 0 },
                bridge,
            }))
        };
        let open = IFACE_BRIDGED_OPEN_V4 | IFACE_BRIDGED_OPEN_V6;
        // br_netfilter not loaded: no hook sees bridged frames.
        assert_eq!(entry(&topology, &state, 2), of(open, None, 9));
        assert_eq!(
            entry(&topology, &state, 3),
            of(open, Some([2, 0, 0, 0, 0, 3]), 9)
        );
        assert_eq!(entry(&topology, &state, 4), None, "not a port, not XDP");
        // Loaded, IPv4 on: IPv4 through the rules, IPv6 open.
        let g = &mut state.sysctls.global;
        g.insert("net.bridge.bridge-nf-call-iptables".into(), 1);
        g.insert("net.bridge.bridge-nf-call-ip6tables".into(), 0);
        let through4 = IFACE_BRIDGED_RULES_V4 | IFACE_BRIDGED_OPEN_V6;
        assert_eq!(entry(&topology, &state, 2), of(through4, None, 9));
        // The bridge's own option for IPv6.
        if let Some(b) = state.links.get_mut(&9).and_then(|l| l.bridge.as_mut()) {
            b.nf_call_ip6tables = true;
        }
        let through = IFACE_BRIDGED_RULES_V4 | IFACE_BRIDGED_RULES_V6;
        assert_eq!(entry(&topology, &state, 2), of(through, None, 9));
        // VLAN filtering: what the hooks see is not modelled.
        let mut vlans = topology.clone();
        if let Some(b) = vlans.bridges.get_mut(&9) {
            b.vlan_filtering = true;
        }
        assert_eq!(entry(&vlans, &state, 2), of(0, None, 9));
        // A bridge family chain sees every bridged frame: none modelled,
        // with or without br_netfilter.
        let mut chains = topology.clone();
        chains.filter.base_chains.push(BaseChain {
            family: "bridge".into(),
            table: "f".into(),
            chain: "fwd".into(),
            hook: "forward".into(),
            priority: 0,
            chain_type: "filter".into(),
            policy: "accept".into(),
            rules: 1,
        });
        assert_eq!(entry(&chains, &state, 2), of(0, None, 9));
        assert_eq!(entry(&chains, &KernelState::default(), 2), of(0, None, 9));
        assert_eq!(
            entry(&chains, &state, 3),
            of(0, Some([2, 0, 0, 0, 0, 3]), 9)
        );
    }

    #[test]
    fn masks_from_prefix_lengths() {
        assert_eq!(mask16(0), [0; 16]);
        assert_eq!(&mask16(12)[..3], &[0xff, 0xf0, 0]);
        assert_eq!(mask16(128), [0xff; 16]);
    }

    /// A ruleset larger than the rule map does not fit; what the FPM then
    /// deploys instead (`punt_all` with the error as the reason) fits and
    /// sends every packet of both families to the kernel.
    #[test]
    fn too_many_rules_is_an_error_and_the_fallback_punts_everything() {
        let rule = IrRule {
            handle: 1,
            matches: vec![],
            action: Action::Accept,
        };
        let mut p = program();
        p.chains[0].rules = vec![rule; MAX_RULES as usize + 1];
        let c = Compiled {
            v4: PathPlan::Rules(p),
            v6: PathPlan::Punt {
                reason: "nat".into(),
            },
            known_ifaces: BTreeSet::from([2, 3]),
        };
        let err = layout(&c).expect_err("too many rules");
        assert!(
            matches!(err, LayoutError::TooManyRules { max: MAX_RULES, .. }),
            "{err:?}"
        );
        let fallback = layout(&crate::compile::punt_all(&err.to_string())).expect("fits");
        assert_eq!(fallback.v4.state, PATH_PUNT);
        assert_eq!(fallback.v6.state, PATH_PUNT);
        assert!(fallback.rules.is_empty());
    }
}
