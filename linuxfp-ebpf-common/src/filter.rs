// SPDX-License-Identifier: MIT OR Apache-2.0
//! ABI of the filter FPM: its punt reasons, its configuration global and the
//! key and value types of its maps.
//!
//! The compiled ruleset is a flat array of rules per generation
//! ([`RULES_MAP`], at [`rule_slot`]); chains are contiguous ranges in it
//! and end in a synthetic rule ([`ACT_END_BASE`] / [`ACT_RETURN`]). Set
//! lookups go through one LPM trie ([`SETS_MAP`]) whose key starts with the
//! generation and the set id, so every generation has its own sets. Which
//! generation the programs evaluate is map state too ([`ACTIVE_MAP`] names
//! the parity whose [`GenConf`] in [`GENERATIONS_MAP`] holds it), written
//! by the deployer after every other entry of the new generation and
//! before any entry of an old one is removed: a packet reads the parity
//! once and sees the old ruleset or the new one, never a mix, and a
//! ruleset change needs no new programs (no load, no verification). Only
//! what shapes the programs' code ([`FilterConf`]: whether conntrack is
//! read at all) is a load-time global.

use crate::abi::counter::FIRST_FPM_REASON;

/// Not IPv4 or IPv6 (ARP, VLAN tagged, ...): the filter has no opinion.
pub const PUNT_NOT_IP: u32 = FIRST_FPM_REASON;
/// Truncated or malformed header: the kernel counts and drops it.
pub const PUNT_MALFORMED: u32 = FIRST_FPM_REASON + 1;
/// IPv4 or IPv6 fragment: ports are not visible, defragmentation is the
/// kernel's.
pub const PUNT_FRAGMENT: u32 = FIRST_FPM_REASON + 2;
/// IPv4 options or IPv6 extension headers.
pub const PUNT_IP_OPTIONS: u32 = FIRST_FPM_REASON + 3;
/// The packet is not certainly forwarded (local, no route, frag needed,
/// same interface, TTL expiring, ...): the FORWARD hook may not see it.
pub const PUNT_NOT_FORWARDED: u32 = FIRST_FPM_REASON + 4;
/// The whole path of this family is not accelerated (a nat or route chain,
/// a base chain of another type, iptables-legacy tables, no ruleset).
pub const PUNT_PATH: u32 = FIRST_FPM_REASON + 5;
/// A rule with an expression the compiler does not understand matched.
pub const PUNT_RULE_UNSUPPORTED: u32 = FIRST_FPM_REASON + 6;
/// A rule reading conntrack state matched a packet whose flow is not in
/// the conntrack mirror ([`CT_MAP`]): only the kernel knows its state.
pub const PUNT_RULE_CONNTRACK: u32 = FIRST_FPM_REASON + 7;
/// A rule with side effects or hidden state (log, limit, quota, set
/// updates, mark writes, queue) matched.
pub const PUNT_RULE_STATEFUL: u32 = FIRST_FPM_REASON + 8;
/// A `reject` rule matched: the kernel sends the ICMP error or RST.
pub const PUNT_RULE_REJECT: u32 = FIRST_FPM_REASON + 9;
/// A NAT statement matched.
pub const PUNT_RULE_NAT: u32 = FIRST_FPM_REASON + 10;
/// The ruleset of the configured generation is (partly) missing from the
/// maps: only during an update that was not atomic.
pub const PUNT_NO_RULES: u32 = FIRST_FPM_REASON + 11;
/// The evaluation took more than [`MAX_STEPS`] rules or nested more than
/// [`MAX_DEPTH`] jumps.
pub const PUNT_TOO_LONG: u32 = FIRST_FPM_REASON + 12;
/// The ingress or egress interface was not known when the ruleset was
/// compiled (interface names are resolved at compile time).
pub const PUNT_UNKNOWN_IF: u32 = FIRST_FPM_REASON + 13;
/// A frame a bridge port received for another host (so bridged, if the
/// bridge forwards it) was dropped by the `ip` hooks `br_netfilter` runs:
/// the kernel drops it, as only the kernel knows whether the bridge would
/// forward it (flood, local delivery) rather than drop it.
pub const PUNT_BRIDGED_DROP: u32 = FIRST_FPM_REASON + 14;

/// Names of the filter's punt reasons, indexed from `FIRST_FPM_REASON`.
pub const PUNT_NAMES: [&str; 15] = [
    "not_ip",
    "malformed",
    "fragment",
    "ip_options",
    "not_forwarded",
    "path",
    "rule_unsupported",
    "rule_conntrack",
    "rule_stateful",
    "rule_reject",
    "rule_nat",
    "no_rules",
    "too_long",
    "unknown_if",
    "bridged_drop",
];

/// Name of the [`FilterConf`] global.
pub const CONF_GLOBAL: &str = "FILTER_CONF";
/// Map: the configuration of each generation parity (`Array<GenConf>`,
/// indexed by `generation & 1`): its generation and where its paths start.
pub const GENERATIONS_MAP: &str = "FILTER_GENERATIONS";
/// Map: the parity of the generation the programs evaluate (`Array<u32>`,
/// one entry, 0 or 1). The deployer's commit: written after everything
/// else of a generation. A 0/1 value differs in one byte only, so a
/// packet reading it while it is written sees the old or the new parity,
/// never anything else (an array map's value is copied with `memcpy`,
/// which promises no wider atomicity).
pub const ACTIVE_MAP: &str = "FILTER_ACTIVE";
/// Map: the compiled rules (`Array<FilterRule>`, at [`rule_slot`]): two
/// halves, one per generation parity, so the rules of the next generation
/// are written while the current one runs (consecutive generations have
/// different parities). Each rule carries its generation's
/// [`entry_stamp`]: a program that reads a rule of another parity punts
/// ([`PUNT_NO_RULES`]).
pub const RULES_MAP: &str = "FILTER_RULES";
/// Map: set elements (`LpmTrie<SetKey, u8>`).
pub const SETS_MAP: &str = "FILTER_SETS";
/// Map: the interfaces the stages run on (`Array<FilterIface>` indexed by
/// ifindex, below [`crate::abi::MAX_IFINDEX`]): at XDP their MACs tell
/// frames for this host from others, as `skb->pkt_type` does at TC; on a
/// bridge port, what becomes of the frames for other hosts (bridged).
pub const IFACES_MAP: &str = "FILTER_IFACES";
/// Map: the conntrack mirror (`HashMap<CtKey, CtValue>`): the flows the
/// fast path may treat as ESTABLISHED, both directions of each, written
/// by the FPM's upkeep from the kernel's conntrack table.
pub const CT_MAP: &str = "FILTER_CT";
/// Map: mirrored flows the fast path forwarded (`LruHashMap<CtKey, u64>`,
/// the `bpf_ktime_get_ns` of the last one), read by the upkeep to refresh
/// the kernel entries' timeouts.
pub const CT_SEEN_MAP: &str = "FILTER_CT_SEEN";
/// Map: per-rule counters (`PerCpuArray<RuleStat>`, at [`rule_slot`]):
/// packets and bytes of the packets the fast path decided (continued or
/// dropped) that matched the rule. Punted packets are not counted: the
/// kernel evaluates them and its own rule counters count them.
pub const RULE_STATS_MAP: &str = "FILTER_RULE_STATS";
/// Map: the per-flow verdict cache (`LruHashMap<FlowKey, CachedVerdict>`),
/// private to each program instance (never written from userspace).
pub const CACHE_MAP: &str = "FILTER_CACHE";

/// Map: the candidate prefilter's classes (`LpmTrie<ClassKey, u32>`):
/// for each prefiltered field of a generation, the packet's value → its
/// class (numbered across the generation's fields) and which chunks it has
/// rows for ([`ClassValue`]). Every field has a
/// catch-all entry (prefix 0 on the value), so a lookup of a field in
/// use always finds a class.
pub const CLASSES_MAP: &str = "FILTER_CLASSES";
/// Map: which chunk of candidate bits a class has at a position
/// (`HashMap<ClassRow, u32>`, the chunk's index in the generation's part
/// of [`CLASS_CHUNKS_MAP`]), for the positions where the class differs
/// from its field's base vector ([`CLASS_BASE_MAP`]) only.
pub const CLASS_ROWS_MAP: &str = "FILTER_CLASS_ROWS";
/// Map: each field's base vector, the vector of a value under no range
/// (`Array<ClassBase>`, at [`class_base_slot`]).
pub const CLASS_BASE_MAP: &str = "FILTER_CLASS_BASE";
/// Map: the distinct candidate bit chunks (`Array<ClassChunk>`, at
/// [`class_chunk_slot`]); classes share equal chunks.
pub const CLASS_CHUNKS_MAP: &str = "FILTER_CLASS_CHUNKS";
/// Map: the prefilter of each generation parity (`Array<ClassConf>`,
/// indexed by `generation & 1`).
pub const CLASS_CONF_MAP: &str = "FILTER_CLASS_CONF";
/// Map: the interpreter's work on cache misses (`PerCpuArray<u64>`,
/// indexed by `STEPS_*`), private to each program instance.
pub const STEPS_MAP: &str = "FILTER_STEPS";

/// [`STEPS_MAP`]: evaluations (cache misses that ran the interpreter).
pub const STEPS_EVALUATIONS: u32 = 0;
/// [`STEPS_MAP`]: interpreter steps (`bpf_loop` iterations over rules).
pub const STEPS_RULES: u32 = 1;
/// [`STEPS_MAP`]: prefilter chunks combined (`bpf_loop` iterations
/// ANDing the classes' candidate bits).
pub const STEPS_CHUNKS: u32 = 2;
/// [`STEPS_MAP`]: its entries.
pub const STEPS_ENTRIES: u32 = 3;

/// Rules per candidate chunk ([`ClassChunk::bits`]).
pub const CHUNK_RULES: u32 = 512;
/// `u64` words of one chunk.
pub const CHUNK_WORDS: usize = (CHUNK_RULES / 64) as usize;
/// Most chunks of one candidate vector (covering [`MAX_RULES`]).
pub const MAX_CHUNKS: u32 = MAX_RULES / CHUNK_RULES;
/// Most class rows of one generation in [`CLASS_ROWS_MAP`].
pub const MAX_CLASS_ROWS: u32 = 65536;
/// Most distinct chunks of one generation in [`CLASS_CHUNKS_MAP`].
pub const MAX_CLASS_CHUNKS: u32 = 16384;
/// Most class prefixes of one generation in [`CLASSES_MAP`].
pub const MAX_CLASS_PREFIXES: u32 = 65536;
/// Capacity of [`CLASSES_MAP`]: two generations.
pub const CLASSES_ENTRIES: u32 = 2 * MAX_CLASS_PREFIXES;
/// Capacity of [`CLASS_ROWS_MAP`]: two generations.
pub const CLASS_ROWS_ENTRIES: u32 = 2 * MAX_CLASS_ROWS;
/// Capacity of [`CLASS_CHUNKS_MAP`]: two generations.
pub const CLASS_CHUNKS_ENTRIES: u32 = 2 * MAX_CLASS_CHUNKS;
/// The fields the prefilter can classify, in the order the stage looks
/// them up (`ClassConf::fields` has bit `1 << field` for those in use).
pub const CLASS_FIELDS: [u8; 7] = [
    field::IIF,
    field::OIF,
    field::SADDR,
    field::DADDR,
    field::L4PROTO,
    field::SPORT,
    field::DPORT,
];

/// Entries of [`CLASS_BASE_MAP`] per generation: a vector of
/// [`MAX_CHUNKS`] per field code (below 8).
pub const CLASS_BASE_PER_GEN: u32 = 8 * MAX_CHUNKS;
/// Capacity of [`CLASS_BASE_MAP`]: two generations.
pub const CLASS_BASE_ENTRIES: u32 = 2 * CLASS_BASE_PER_GEN;

/// Index in [`CLASS_BASE_MAP`] of chunk `chunk` of field `field`'s base
/// vector in `generation`, `None` for a field code or chunk out of range.
#[inline(always)]
pub const fn class_base_slot(generation: u32, field: u8, chunk: u32) -> Option<u32> {
    if field >= 8 || chunk >= MAX_CHUNKS {
        None
    } else {
        Some((generation & 1) * CLASS_BASE_PER_GEN + field as u32 * MAX_CHUNKS + chunk)
    }
}

/// Index in [`CLASS_CHUNKS_MAP`] of chunk `index` of `generation`, `None`
/// past [`MAX_CLASS_CHUNKS`].
#[inline(always)]
pub const fn class_chunk_slot(generation: u32, index: u32) -> Option<u32> {
    if index >= MAX_CLASS_CHUNKS {
        None
    } else {
        Some((generation & 1) * MAX_CLASS_CHUNKS + index)
    }
}

/// Capacity of [`RULES_MAP`]: two generations of [`MAX_RULES`].
pub const RULES_ENTRIES: u32 = 2 * MAX_RULES;
/// Most rules (including the synthetic chain ends) of one generation.
pub const MAX_RULES: u32 = 16384;
/// Capacity of [`SETS_MAP`].
pub const SETS_ENTRIES: u32 = 65536;
/// Capacity of [`CT_MAP`] (two keys per flow).
pub const CT_ENTRIES: u32 = 131072;
/// Capacity of [`CT_SEEN_MAP`].
pub const CT_SEEN_ENTRIES: u32 = 65536;
/// Capacity of [`CACHE_MAP`].
pub const CACHE_ENTRIES: u32 = 65536;
/// Most rules one packet is evaluated against (loop bound).
pub const MAX_STEPS: u32 = 2 * MAX_RULES;
/// Jump stack depth (`NFT_JUMP_STACK_SIZE`).
pub const MAX_DEPTH: usize = 16;
/// `FilterRule::next_base` of the last base chain.
pub const NO_NEXT: u32 = u32::MAX;
/// Set id reserved for the interfaces known at compile time.
pub const SET_KNOWN_IFACES: u32 = 0;

/// `PathConf::state`: no base chain of this family on the path: continue.
pub const PATH_NONE: u32 = 0;
/// `PathConf::state`: evaluate the rules from `PathConf::start`.
pub const PATH_RULES: u32 = 1;
/// `PathConf::state`: punt every packet of this family ([`PUNT_PATH`]).
pub const PATH_PUNT: u32 = 2;

/// Where the compiled path of one family starts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathConf {
    /// `PATH_*`.
    pub state: u32,
    /// Index of the first rule (of the first base chain).
    pub start: u32,
    /// Index of the first base chain's [`ACT_END_BASE`] rule (the chain's
    /// end and policy, where `accept` and `return` in it go). Kept here and
    /// in the end rules, not in every rule, so that adding a rule at the
    /// end of a long chain rewrites a few entries, not all of them.
    pub end: u32,
}

/// `FilterConf::flags`: some rule reads conntrack state: look packets up
/// in [`CT_MAP`].
pub const CONF_CT: u32 = 1;
/// `FilterConf::flags`: the IPv4 path starts with the conntrack gate
/// ("not ESTABLISHED: punt"), so a packet whose flow is not established
/// in the mirror punts (`rule_conntrack`) before anything else is looked
/// up.
pub const CONF_GATED_V4: u32 = 2;
/// Likewise for the IPv6 path.
pub const CONF_GATED_V6: u32 = 4;

/// Load-time configuration of the filter programs: what shapes their code
/// (the verifier drops the conntrack lookups when no rule reads
/// conntrack). Either value is safe with any generation: without
/// `CONF_CT` a rule reading conntrack punts, and the gate bits only make
/// the gate rule that starts such a path punt earlier.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterConf {
    /// `CONF_*` bits.
    pub flags: u32,
}

/// Value of [`GENERATIONS_MAP`]: one compiled ruleset's configuration.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenConf {
    /// Generation of the compiled ruleset (never 0 once compiled: 0 means
    /// "nothing compiled", every packet punts).
    pub generation: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// The IPv4 path.
    pub v4: PathConf,
    /// The IPv6 path.
    pub v6: PathConf,
}

/// Name of the [`SkbLayout`] global.
pub const SKB_GLOBAL: &str = "FILTER_SKB";

/// `sk_buff::ip_summed` of a packet whose L4 checksum the sender left to
/// the device (`CHECKSUM_PARTIAL`: locally generated, e.g. through a veth):
/// the kernel's conntrack accepts its checksum without computing it.
pub const CHECKSUM_PARTIAL: u32 = 3;

/// Where the running kernel keeps `sk_buff::ip_summed`, found in its BTF
/// by the FPM: the TC stage reads that byte (`bpf_probe_read_kernel`) to
/// tell a `CHECKSUM_PARTIAL` packet, which no helper reports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkbLayout {
    /// Byte offset of the byte holding `ip_summed`.
    pub ip_summed_byte: u32,
    /// Shift of the 2-bit field in that byte.
    pub ip_summed_shift: u32,
    /// 1 when the place is known; 0: only `bpf_csum_level` is used.
    pub known: u32,
}

/// What the map entries of `generation` are stamped and keyed with: 1 for
/// an odd generation, 2 for an even one (never 0, which means "no entry").
///
/// Not the generation itself, so that a generation's entries are the same
/// bytes as those of the generation two before it wherever the ruleset
/// did not change: the deployer then writes only what changed (one rule
/// added to 10,000 is a few entries, not all of them). Two generations of
/// one parity never run at once: the deployer writes a generation's
/// entries, removes what is left of the one two before, and only then
/// commits it ([`ACTIVE_MAP`], declared last); the cache and the rule
/// counters are keyed by the generation itself.
#[inline(always)]
pub const fn entry_stamp(generation: u32) -> u32 {
    2 - (generation & 1)
}

/// Index in [`RULES_MAP`] of rule `index` of `generation`, `None` past
/// [`MAX_RULES`].
#[inline(always)]
pub const fn rule_slot(generation: u32, index: u32) -> Option<u32> {
    if index >= MAX_RULES {
        None
    } else {
        Some((generation & 1) * MAX_RULES + index)
    }
}

/// `FilterRule::matches` bits: which predicates the rule has.
pub mod m {
    /// Input interface equals `iif`.
    pub const IIF: u32 = 1 << 0;
    /// Output interface equals `oif`.
    pub const OIF: u32 = 1 << 1;
    /// Source address under `saddr`/`smask`.
    pub const SADDR: u32 = 1 << 2;
    /// Destination address under `daddr`/`dmask`.
    pub const DADDR: u32 = 1 << 3;
    /// L4 protocol equals `l4proto`.
    pub const L4PROTO: u32 = 1 << 4;
    /// Source port within `sport` (TCP/UDP only).
    pub const SPORT: u32 = 1 << 5;
    /// Destination port within `dport` (TCP/UDP only).
    pub const DPORT: u32 = 1 << 6;
    /// ICMP/ICMPv6 type within `icmp_type`.
    pub const ICMP_TYPE: u32 = 1 << 7;
    /// ICMP/ICMPv6 code within `icmp_code`.
    pub const ICMP_CODE: u32 = 1 << 8;
    /// `tcp flags & tcp_mask == tcp_cmp`.
    pub const TCP_FLAGS: u32 = 1 << 9;
    /// Set lookup 0 (`sets[0]`).
    pub const SET0: u32 = 1 << 10;
    /// Set lookup 1 (`sets[1]`).
    pub const SET1: u32 = 1 << 11;
    /// `ct state & ct_state != 0`. Only known for flows in [`super::CT_MAP`]
    /// (state ESTABLISHED); for any other packet a rule with this bit
    /// punts when its other predicates hold.
    pub const CT_STATE: u32 = 1 << 12;
    /// `ct direction == ct_dir` (0 original, 1 reply); known as
    /// [`CT_STATE`].
    pub const CT_DIR: u32 = 1 << 13;
}

/// `ct state` bit of ESTABLISHED (`NF_CT_STATE_BIT(IP_CT_ESTABLISHED)`,
/// also the `-m conntrack`/`-m state` bit): the state of every packet of
/// a mirrored flow.
pub const CT_STATE_ESTABLISHED: u8 = 2;

/// `FlowKey::ct`: the flow is not in [`CT_MAP`] (or the packet cannot be
/// classified from it: TCP SYN/FIN/RST, not TCP or UDP).
pub const CT_UNKNOWN: u8 = 0;
/// `FlowKey::ct`: ESTABLISHED, original direction.
pub const CT_EST_ORIGINAL: u8 = 1;
/// `FlowKey::ct`: ESTABLISHED, reply direction.
pub const CT_EST_REPLY: u8 = 2;

/// What a set lookup's key is made of.
pub mod field {
    /// Input interface (ifindex, native order, 4 bytes).
    pub const IIF: u8 = 1;
    /// Output interface (ifindex, native order, 4 bytes).
    pub const OIF: u8 = 2;
    /// Source address (network order, 4 or 16 bytes).
    pub const SADDR: u8 = 3;
    /// Destination address (network order, 4 or 16 bytes).
    pub const DADDR: u8 = 4;
    /// L4 protocol (1 byte).
    pub const L4PROTO: u8 = 5;
    /// Source port (network order, 2 bytes).
    pub const SPORT: u8 = 6;
    /// Destination port (network order, 2 bytes).
    pub const DPORT: u8 = 7;
}

/// `FilterRule::action`: go on with the next rule (a rule without verdict).
pub const ACT_CONTINUE: u8 = 0;
/// Accept: this base chain is done, go on with the next one.
pub const ACT_ACCEPT: u8 = 1;
/// Drop: final.
pub const ACT_DROP: u8 = 2;
/// Jump to rule `arg`, returning here afterwards.
pub const ACT_JUMP: u8 = 3;
/// Go to rule `arg`, without return.
pub const ACT_GOTO: u8 = 4;
/// Return to the caller (or, in a base chain, apply its policy).
pub const ACT_RETURN: u8 = 5;
/// Hand the packet to the kernel under reason `arg`.
pub const ACT_PUNT: u8 = 6;
/// End of a base chain: its policy, `arg` = [`ACT_ACCEPT`] or [`ACT_DROP`].
pub const ACT_END_BASE: u8 = 7;

/// One compiled rule: a conjunction of the predicates flagged in `matches`
/// (each negated if flagged in `negate`) and an action.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterRule {
    /// `m::*` bits present.
    pub matches: u32,
    /// `m::*` bits negated.
    pub negate: u32,
    /// `ACT_*`.
    pub action: u8,
    /// L4 protocol for [`m::L4PROTO`].
    pub l4proto: u8,
    /// `tcp flags` mask for [`m::TCP_FLAGS`].
    pub tcp_mask: u8,
    /// `tcp flags` value for [`m::TCP_FLAGS`].
    pub tcp_cmp: u8,
    /// Jump/goto target index; punt reason; end-of-base policy.
    pub arg: u32,
    /// For [`ACT_END_BASE`]: index of the next base chain's first rule, or
    /// [`NO_NEXT`] after the last one.
    pub next_base: u32,
    /// For [`ACT_END_BASE`]: index of the next base chain's
    /// [`ACT_END_BASE`] rule, or [`NO_NEXT`] after the last one (read with
    /// `next_base` when the packet moves on to that chain; the first
    /// chain's is [`PathConf::end`]). [`NO_NEXT`] in every other rule.
    pub base_end: u32,
    /// Input ifindex.
    pub iif: u32,
    /// Output ifindex.
    pub oif: u32,
    /// Source port range, inclusive, host order.
    pub sport: [u16; 2],
    /// Destination port range, inclusive, host order.
    pub dport: [u16; 2],
    /// ICMP type range, inclusive.
    pub icmp_type: [u8; 2],
    /// ICMP code range, inclusive.
    pub icmp_code: [u8; 2],
    /// `field::*` of the two set lookups.
    pub set_field: [u8; 2],
    /// `ct state` bits for [`m::CT_STATE`].
    pub ct_state: u8,
    /// Direction for [`m::CT_DIR`].
    pub ct_dir: u8,
    /// [`entry_stamp`] of the generation this rule belongs to (0: no
    /// rule).
    pub generation: u32,
    /// Set ids of the two set lookups.
    pub set_id: [u32; 2],
    /// Source address (network order; IPv4 in the first 4 bytes).
    pub saddr: [u8; 16],
    /// Source mask.
    pub smask: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
    /// Destination mask.
    pub dmask: [u8; 16],
}

/// Key of [`SETS_MAP`]: an LPM trie key whose data starts with the
/// generation and the set id (always matched in full: `prefix_len` is 64
/// plus the element's prefix on `value`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetKey {
    /// [`entry_stamp`] of the generation.
    pub generation: u32,
    /// Set id.
    pub set: u32,
    /// The field's bytes, zero padded.
    pub value: [u8; 16],
}

/// Key of [`CACHE_MAP`]: every field the ruleset can read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowKey {
    /// Generation.
    pub generation: u32,
    /// Input ifindex.
    pub iif: u32,
    /// Output ifindex (from the FIB).
    pub oif: u32,
    /// 4 or 6.
    pub l3: u8,
    /// L4 protocol.
    pub l4proto: u8,
    /// TCP flags.
    pub tcp_flags: u8,
    /// `CT_UNKNOWN`, `CT_EST_ORIGINAL` or `CT_EST_REPLY`.
    pub ct: u8,
    /// Source port (TCP/UDP) or ICMP type (host order).
    pub sport: u16,
    /// Destination port (TCP/UDP) or ICMP code (host order).
    pub dport: u16,
    /// Source address (network order).
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
}

/// Key of [`CLASSES_MAP`]: an LPM trie key whose data starts with the
/// generation and the field (`prefix_len` is 64 plus the class prefix's
/// bits on `value`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassKey {
    /// [`entry_stamp`] of the generation.
    pub generation: u32,
    /// `field::*`.
    pub field: u32,
    /// The field's bytes as for [`SetKey::value`]: addresses and ports in
    /// network order, ifindexes in native order, the protocol in the
    /// first byte.
    pub value: [u8; 16],
}

/// Value of [`CLASSES_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassValue {
    /// The class.
    pub class: u32,
    /// Bit `c`: the class has its own row for chunk `c` in
    /// [`CLASS_ROWS_MAP`]; for the other chunks it has its field's base.
    pub own: u32,
}

/// Value of [`CLASS_BASE_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassBase {
    /// [`entry_stamp`] of the generation (an entry of another parity is
    /// not used).
    pub generation: u32,
    /// Index of the chunk in the generation's part of [`CLASS_CHUNKS_MAP`].
    pub chunk: u32,
}

/// Key of [`CLASS_ROWS_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassRow {
    /// [`entry_stamp`] of the generation.
    pub generation: u32,
    /// The class ([`ClassValue::class`]).
    pub class: u32,
    /// The chunk's position in the vector (rules `chunk * 512..`).
    pub chunk: u32,
}

/// Value of [`CLASS_CHUNKS_MAP`]: candidate bits of [`CHUNK_RULES`] rules.
/// Bit `i % 64` of word `i / 64` is clear only if rule `chunk * 512 + i`
/// cannot match any packet of the class (its predicate on the field holds
/// for no value of the class).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassChunk {
    /// [`entry_stamp`] of the generation (a chunk of another parity is
    /// not used).
    pub generation: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// The candidate bits.
    pub bits: [u64; CHUNK_WORDS],
}

/// Value of [`CLASS_CONF_MAP`]: the prefilter of one generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassConf {
    /// [`entry_stamp`] of the generation (another one than the
    /// program's: no prefilter).
    pub generation: u32,
    /// Chunks per candidate vector (rows per class).
    pub chunks: u32,
    /// `1 << field::*` of the fields classified.
    pub fields: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// `FilterIface::flags`: the filter runs at XDP here; `mac` is valid.
pub const IFACE_XDP: u16 = 1;
/// `FilterIface::flags`: a bridge port whose bridged IPv4 frames reach no
/// `ip` hook (`br_netfilter` is off for its bridge) nor any `bridge`
/// family chain: frames for other hosts continue to the bridge stage.
pub const IFACE_BRIDGED_OPEN_V4: u16 = 2;
/// Likewise for IPv6.
pub const IFACE_BRIDGED_OPEN_V6: u16 = 4;
/// `FilterIface::flags`: a bridge port whose bridged IPv4 frames
/// `br_netfilter` passes through the `ip` hooks (prerouting, forward,
/// postrouting) as coming from and going to the bridge device `bridge`,
/// and no `bridge` family chain sees them: frames for other hosts are
/// evaluated so, and continue or punt (never dropped here).
pub const IFACE_BRIDGED_RULES_V4: u16 = 8;
/// Likewise for IPv6.
pub const IFACE_BRIDGED_RULES_V6: u16 = 16;

/// Value of [`IFACES_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterIface {
    /// The interface's own MAC.
    pub mac: [u8; 6],
    /// `IFACE_*` bits.
    pub flags: u16,
    /// For a bridge port, its bridge's ifindex.
    pub bridge: u32,
}

/// `CachedVerdict::verdict`: continue to the next stage.
pub const VERDICT_CONTINUE: u32 = 0;
/// `CachedVerdict::verdict`: drop.
pub const VERDICT_DROP: u32 = 1;
/// `CachedVerdict::verdict`: punt under `reason`.
pub const VERDICT_PUNT: u32 = 2;

/// Most rules one cached verdict records for the per-rule counters; a
/// packet that matched more is not cached (every packet of its flow is
/// evaluated and counted).
pub const MAX_COUNTED: usize = 6;

/// Value of [`CACHE_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CachedVerdict {
    /// `VERDICT_*`.
    pub verdict: u32,
    /// Punt reason for [`VERDICT_PUNT`].
    pub reason: u32,
    /// How many of `rules` are valid.
    pub nrules: u32,
    /// Indexes of the rules the packet matched (for [`RULE_STATS_MAP`]).
    pub rules: [u32; MAX_COUNTED],
}

/// Value of [`RULE_STATS_MAP`] (per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleStat {
    /// The generation the counts belong to (a slot is reused every other
    /// generation: counts of another generation are stale).
    pub generation: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Packets.
    pub packets: u64,
    /// Bytes (IP packet length, as nf_tables counters).
    pub bytes: u64,
}

/// Key of [`CT_MAP`] and [`CT_SEEN_MAP`]: one direction of a flow as its
/// packets carry it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    /// 4 or 6.
    pub l3: u8,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub l4proto: u8,
    /// Reserved, zero.
    pub reserved: u16,
    /// Source port (host order).
    pub sport: u16,
    /// Destination port (host order).
    pub dport: u16,
    /// Source address (network order; IPv4 in the first 4 bytes).
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
}

/// Value of [`CT_MAP`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtValue {
    /// `CT_EST_ORIGINAL` or `CT_EST_REPLY`: the direction of the key's
    /// tuple in the kernel's entry.
    pub ct: u32,
    /// `CT_CSUM_*` bits.
    pub flags: u32,
}

/// `CtValue::flags`: the kernel verifies L4 checksums of this flow's
/// packets (`nf_conntrack_checksum=1`) and calls a bad one INVALID: the
/// fast path classifies the packet only when its checksum is known good
/// (at TC, `CHECKSUM_UNNECESSARY` or `CHECKSUM_PARTIAL`: see
/// [`SkbLayout`]).
pub const CT_CSUM_CHECKED: u32 = 1;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all types below are repr(C), contain only integers and byte
    // arrays, and have no implicit padding (size asserts below).
    unsafe impl aya::Pod for super::FilterConf {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::GenConf {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FilterRule {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SetKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CachedVerdict {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FilterIface {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CtKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CtValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RuleStat {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ClassKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ClassRow {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ClassValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ClassBase {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ClassChunk {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ClassConf {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SkbLayout {}
}

const _: () = assert!(core::mem::size_of::<FilterConf>() == 4);
const _: () = assert!(core::mem::size_of::<GenConf>() == 32);
const _: () = assert!(core::mem::size_of::<SkbLayout>() == 12);
const _: () = assert!(core::mem::size_of::<FilterRule>() == 124);
const _: () = assert!(core::mem::size_of::<SetKey>() == 24);
const _: () = assert!(core::mem::size_of::<FlowKey>() == 52);
const _: () = assert!(core::mem::size_of::<CachedVerdict>() == 36);
const _: () = assert!(core::mem::size_of::<RuleStat>() == 24);
const _: () = assert!(core::mem::size_of::<FilterIface>() == 12);
const _: () = assert!(core::mem::size_of::<CtKey>() == 40);
const _: () = assert!(core::mem::size_of::<CtValue>() == 8);
const _: () = assert!(core::mem::size_of::<ClassKey>() == 24);
const _: () = assert!(core::mem::size_of::<ClassRow>() == 12);
const _: () = assert!(core::mem::size_of::<ClassChunk>() == 72);
const _: () = assert!(core::mem::size_of::<ClassConf>() == 16);
const _: () = assert!(core::mem::size_of::<ClassValue>() == 8);
const _: () = assert!(core::mem::size_of::<ClassBase>() == 8);
const _: () = assert!(MAX_CHUNKS <= 32, "ClassValue::own has a bit per chunk");
