// SPDX-License-Identifier: MIT OR Apache-2.0
//! The filter FPM's stages: `filter_xdp` and `filter_tc`.
//!
//! For a routed IPv4/IPv6 packet: parse it, ask the FIB where it goes
//! (a packet that is not certainly forwarded goes to the kernel), then
//! decide as the compiled nf_tables path would: continue to the next stage
//! (every base chain accepts), drop (a compiled drop verdict or drop
//! policy), or punt under a named reason. Decisions are cached per flow
//! (every field the rules can read, plus the ruleset generation); a miss
//! runs the chain interpreter over the rules in `FILTER_RULES` with
//! `bpf_loop`, so the verifier sees one step, not the ruleset. Before it,
//! the candidate prefilter looks up the packet's class per field
//! (`FILTER_CLASSES`) and ANDs the classes' bit vectors over the rules
//! (`FILTER_CLASS_ROWS`, `FILTER_CLASS_CHUNKS`); a step skips the rules
//! whose bit is clear (they cannot match), so a miss costs the candidate
//! rules, not every rule before the verdict. `FILTER_STEPS` counts the
//! work.
//!
//! When the ruleset reads conntrack state, a TCP (without SYN, FIN or RST)
//! or UDP packet is looked up in the conntrack mirror `FILTER_CT`: found,
//! it is ESTABLISHED in the direction the mirror says, and rules testing
//! `ct state`/`ct direction` are decided; not found, such a rule punts the
//! packet. Mirrored packets that continue are recorded in `FILTER_CT_SEEN`
//! so the FPM's upkeep refreshes the kernel entry's timeout.
#![no_std]
#![no_main]

mod parse;

use aya_ebpf::{
    EbpfContext,
    bindings::{TC_ACT_OK, TC_ACT_SHOT, bpf_fib_lookup as FibParams, xdp_action},
    helpers::{
        bpf_csum_level, bpf_fib_lookup, bpf_ktime_get_ns, bpf_loop, bpf_probe_read_kernel,
    },
    macros::{classifier, map, xdp},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, lpm_trie::Key},
    programs::{TcContext, XdpContext},
};
use linuxfp_ebpf_common::{
    abi::counter,
    declare_abi_maps,
    ebpf::{
        FibFor, count, hand_fib_result, headers_wanted, next_stage, ptr_at, reset_pkt_ctx,
        zeroed_fib_params,
    },
    filter::*,
    net::{ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, IPPROTO_UDP},
};

use crate::parse::{Packet, parse};

declare_abi_maps!();

#[unsafe(no_mangle)]
static FILTER_CONF: aya_ebpf::Global<FilterConf> = aya_ebpf::Global::new(FilterConf { flags: 0 });

/// The configuration of each generation parity.
#[map]
static FILTER_GENERATIONS: Array<GenConf> = Array::with_max_entries(2, 0);

/// The parity of the generation to evaluate: the deployer's commit.
#[map]
static FILTER_ACTIVE: Array<u32> = Array::with_max_entries(1, 0);

/// Where `sk_buff::ip_summed` lies on this kernel (see `SkbLayout`).
#[unsafe(no_mangle)]
static FILTER_SKB: aya_ebpf::Global<SkbLayout> = aya_ebpf::Global::new(SkbLayout {
    ip_summed_byte: 0,
    ip_summed_shift: 0,
    known: 0,
});

#[map]
static FILTER_RULES: Array<FilterRule> = Array::with_max_entries(RULES_ENTRIES, 0);

#[map]
static FILTER_SETS: LpmTrie<SetKey, u8> = LpmTrie::with_max_entries(SETS_ENTRIES, 0);

#[map]
static FILTER_CACHE: LruHashMap<FlowKey, CachedVerdict> =
    LruHashMap::with_max_entries(CACHE_ENTRIES, 0);

/// The conntrack mirror, written by the FPM's upkeep.
#[map]
static FILTER_CT: HashMap<CtKey, CtValue> = HashMap::with_max_entries(CT_ENTRIES, 0);

/// Mirrored flows forwarded, with the time of the last packet.
#[map]
static FILTER_CT_SEEN: LruHashMap<CtKey, u64> = LruHashMap::with_max_entries(CT_SEEN_ENTRIES, 0);

/// Per-rule counters of the packets decided here.
#[map]
static FILTER_RULE_STATS: PerCpuArray<RuleStat> = PerCpuArray::with_max_entries(RULES_ENTRIES, 0);

/// The candidate prefilter: a packet's field value → its class's rows.
#[map]
static FILTER_CLASSES: LpmTrie<ClassKey, ClassValue> =
    LpmTrie::with_max_entries(CLASSES_ENTRIES, 0);

/// Which chunk of candidate bits a class has at a position where it
/// differs from its field's base; allocated as written
/// (`BPF_F_NO_PREALLOC`).
#[map]
static FILTER_CLASS_ROWS: HashMap<ClassRow, u32> =
    HashMap::with_max_entries(CLASS_ROWS_ENTRIES, BPF_F_NO_PREALLOC);

/// Each field's base vector: the chunk at each position.
#[map]
static FILTER_CLASS_BASE: Array<ClassBase> = Array::with_max_entries(CLASS_BASE_ENTRIES, 0);

/// The distinct chunks of candidate bits.
#[map]
static FILTER_CLASS_CHUNKS: Array<ClassChunk> = Array::with_max_entries(CLASS_CHUNKS_ENTRIES, 0);

/// The prefilter of each generation parity.
#[map]
static FILTER_CLASS_CONF: Array<ClassConf> = Array::with_max_entries(2, 0);

/// Evaluations, interpreter steps and prefilter chunks, per CPU.
#[map]
static FILTER_STEPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STEPS_ENTRIES, 0);

/// The interfaces the XDP program runs on, with their MACs.
#[map]
static FILTER_IFACES: Array<FilterIface> =
    Array::with_max_entries(linuxfp_ebpf_common::abi::MAX_IFINDEX, 0);

/// The interpreter's state for the packet being evaluated (too large for
/// the stack next to the packet and FIB data).
#[map]
static FILTER_SCRATCH: PerCpuArray<Eval> = PerCpuArray::with_max_entries(1, 0);

/// `BPF_F_NO_PREALLOC`.
const BPF_F_NO_PREALLOC: u32 = 1;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// `skb->pkt_type` of a frame addressed to this host.
const PACKET_HOST: u32 = 0;

/// What the hook tells about the frame before parsing.
struct Frame {
    start: usize,
    end: usize,
    /// The whole packet's length (`skb->len` at TC: GSO payload lies
    /// beyond the linear part).
    len: usize,
    /// Unicast to this host (`PACKET_HOST`).
    host: bool,
    /// `skb->gso_size` (0 at XDP).
    gso_size: u32,
    /// The L4 checksum is known good (at TC `CHECKSUM_UNNECESSARY` or
    /// `CHECKSUM_PARTIAL`, asked only when the ruleset reads conntrack;
    /// never known at XDP).
    csum_ok: bool,
}

#[classifier]
pub fn filter_tc(ctx: TcContext) -> i32 {
    if LFP_STAGE_CONF.load().position == 0 {
        reset_pkt_ctx(&LFP_PKT_CTX);
    }
    // SAFETY: reading fields of the skb context.
    let (ingress, pkt_type, vlan_present, gso_size) = unsafe {
        let s = &*ctx.skb.skb;
        (s.ifindex, s.pkt_type, s.vlan_present, s.gso_size)
    };
    let verdict = if vlan_present != 0 {
        Err(PUNT_NOT_IP)
    } else {
        let want = headers_wanted(ctx.data(), ctx.data_end(), ctx.len() as usize);
        if ctx.data() + want > ctx.data_end() {
            let _ = ctx.pull_data(want as u32);
        }
        let frame = Frame {
            start: ctx.data(),
            end: ctx.data_end(),
            len: ctx.len() as usize,
            host: pkt_type == PACKET_HOST,
            gso_size,
            csum_ok: checksum_known_good(&ctx),
        };
        decide(&ctx, ingress, &frame)
    };
    match verdict {
        Ok(VERDICT_CONTINUE) => {
            count(&LFP_STATS, ingress, counter::CONTINUE);
            let conf = LFP_STAGE_CONF.load();
            if conf.has_next != 0 {
                next_stage(&LFP_CHAIN_TC, &ctx, ingress, conf.position);
            }
            count(&LFP_STATS, ingress, counter::CHAIN_MISS);
            TC_ACT_OK
        }
        Ok(_) => {
            count(&LFP_STATS, ingress, counter::DROP);
            TC_ACT_SHOT
        }
        Err(reason) => {
            count(&LFP_STATS, ingress, reason);
            TC_ACT_OK
        }
    }
}

/// The kernel's conntrack would take the packet's L4 checksum as good
/// without computing it: `CHECKSUM_UNNECESSARY` or `CHECKSUM_PARTIAL`.
/// Only a ruleset that reads conntrack state needs to know (`CONF_CT`, a
/// load-time constant: otherwise the verifier drops both helper calls).
#[inline(always)]
fn checksum_known_good(ctx: &TcContext) -> bool {
    if FILTER_CONF.load().flags & CONF_CT == 0 {
        return false;
    }
    // SAFETY: a query of the skb's checksum state; nothing is changed.
    let level = unsafe { bpf_csum_level(ctx.skb.skb, 0) };
    level >= 0 || checksum_partial(ctx)
}

/// The skb's checksum is `CHECKSUM_PARTIAL`: the sender left it to the
/// device, and the kernel's conntrack accepts it without computing it
/// (`nf_ip_checksum`). No helper reports it (`bpf_csum_level` knows only
/// `CHECKSUM_UNNECESSARY`), so the byte holding `ip_summed` is read at the
/// place the kernel's BTF gives.
#[inline(always)]
fn checksum_partial(ctx: &TcContext) -> bool {
    let l = FILTER_SKB.load();
    if l.known == 0 {
        return false;
    }
    // The context of a TC program is the kernel's `struct sk_buff`.
    let at = (ctx.skb.skb as *const u8).wrapping_add(l.ip_summed_byte as usize);
    // SAFETY: reads one byte inside the skb this program runs on; the
    // helper reports a fault instead of taking it.
    match unsafe { bpf_probe_read_kernel(at) } {
        Ok(b) => (u32::from(b) >> (l.ip_summed_shift & 7)) & 3 == CHECKSUM_PARTIAL,
        Err(_) => false,
    }
}

#[xdp]
pub fn filter_xdp(ctx: XdpContext) -> u32 {
    if LFP_STAGE_CONF.load().position == 0 {
        reset_pkt_ctx(&LFP_PKT_CTX);
    }
    // SAFETY: reading the context's ingress ifindex.
    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
    let (start, end) = (ctx.data(), ctx.data_end());
    // The kernel's PACKET_HOST: the destination MAC is the interface's own
    // (a frame for a macvlan on top, say, is not for this stack).
    let host = match (ptr_at::<[u8; 6]>(start, end, 0), FILTER_IFACES.get(ingress)) {
        (Some(dst), Some(i)) if i.flags & IFACE_XDP != 0 => {
            // SAFETY: bounds checked by ptr_at.
            unsafe { *dst == i.mac }
        }
        _ => false,
    };
    let frame = Frame {
        start,
        end,
        len: end - start,
        host,
        gso_size: 0,
        csum_ok: false,
    };
    match decide(&ctx, ingress, &frame) {
        Ok(VERDICT_CONTINUE) => {
            count(&LFP_STATS, ingress, counter::CONTINUE);
            let conf = LFP_STAGE_CONF.load();
            if conf.has_next != 0 {
                next_stage(&LFP_CHAIN_XDP, &ctx, ingress, conf.position);
            }
            count(&LFP_STATS, ingress, counter::CHAIN_MISS);
            xdp_action::XDP_PASS
        }
        Ok(_) => {
            count(&LFP_STATS, ingress, counter::DROP);
            xdp_action::XDP_DROP
        }
        Err(reason) => {
            count(&LFP_STATS, ingress, reason);
            xdp_action::XDP_PASS
        }
    }
}

/// `Ok(VERDICT_CONTINUE)`, `Ok(VERDICT_DROP)`, or the punt reason.
#[inline(always)]
fn decide<C: EbpfContext>(ctx: &C, ingress: u32, frame: &Frame) -> Result<u32, u32> {
    let ev = FILTER_SCRATCH.get_ptr_mut(0).ok_or(PUNT_NO_RULES)?;
    // SAFETY: this CPU's scratch entry; nothing else runs on it meanwhile
    // (the interpreter's callback reads it only inside bpf_loop below).
    let ev = unsafe { &mut *ev };
    let pkt = parse(frame.start, frame.end, frame.len, &mut ev.key)?;
    let conf = FILTER_CONF.load();
    let gen_conf = active_generation().ok_or(PUNT_PATH)?;
    let generation = gen_conf.generation;
    let path = if pkt.v6 { gen_conf.v6 } else { gen_conf.v4 };
    let bridge = match way(ingress, frame.host, pkt.v6, path.state)? {
        Way::Routed => 0,
        Way::Open => return Ok(VERDICT_CONTINUE),
        Way::Bridged(bridge) => bridge,
    };
    match path.state {
        PATH_NONE => return Ok(VERDICT_CONTINUE),
        PATH_RULES => {}
        _ => return Err(PUNT_PATH),
    }
    if martian(&ev.key) {
        return Err(PUNT_NOT_FORWARDED);
    }
    if conf.flags & CONF_CT != 0 {
        ct_class(ev, &pkt, frame.csum_ok);
    }
    // A path that starts with the conntrack gate punts every packet not of
    // a mirrored flow first thing: no FIB or cache lookup needed.
    let gate = if pkt.v6 { CONF_GATED_V6 } else { CONF_GATED_V4 };
    if conf.flags & gate != 0 && ev.key.ct == CT_UNKNOWN {
        return Err(PUNT_RULE_CONNTRACK);
    }
    let (iif, oif) = if bridge != 0 {
        (bridge, bridge)
    } else {
        // Only what is certainly forwarded is decided here: the FORWARD
        // and POSTROUTING hooks see nothing else, and the kernel answers
        // some packets (TTL, MTU, unreachable routes, redirects) before
        // them.
        if pkt.ttl <= 1 {
            return Err(PUNT_NOT_FORWARDED);
        }
        let tot_len = if frame.gso_size == 0 {
            pkt.l3_len
        } else if pkt.l4proto == IPPROTO_TCP {
            u16::try_from(pkt.l4_offset - pkt.l3_offset + pkt.l4_hdr_len + frame.gso_size)
                .map_err(|_| PUNT_NOT_FORWARDED)?
        } else {
            return Err(PUNT_NOT_FORWARDED);
        };
        (ingress, egress(ctx, &pkt, &ev.key, ingress, tot_len)?)
    };

    ev.key.generation = generation;
    ev.key.iif = iif;
    ev.key.oif = oif;
    // SAFETY: plain lookup; the value is copied out at once.
    let c = match unsafe { FILTER_CACHE.get(&ev.key) } {
        Some(c) => *c,
        None => evaluate(ev, generation, path)?,
    };
    if c.verdict == VERDICT_CONTINUE && ev.key.ct != CT_UNKNOWN {
        seen(&ev.ct_key);
    }
    if bridge != 0 && c.verdict == VERDICT_DROP {
        return Err(PUNT_BRIDGED_DROP);
    }
    if c.verdict != VERDICT_PUNT {
        count_rules(&c, generation, u64::from(pkt.l3_len));
    }
    verdict(c.verdict, c.reason)
}

/// The configuration of the generation the deployer committed last, read
/// once per packet (the parity first, then that parity's entry, which is
/// rewritten only two commits later). `None` until one is committed.
#[inline(always)]
fn active_generation() -> Option<GenConf> {
    let parity = *FILTER_ACTIVE.get(0)? & 1;
    let g = *FILTER_GENERATIONS.get(parity)?;
    (g.generation != 0 && g.generation & 1 == parity).then_some(g)
}

/// The way a frame takes through the `ip` hooks, if the next stages
/// forward it.
enum Way {
    /// Routed from the ingress interface.
    Routed,
    /// Bridged, and no hook sees it (no `br_netfilter` for the bridge and
    /// family): as if every chain accepted.
    Open,
    /// Bridged, through every base chain on the way as from and to this
    /// bridge device (`br_netfilter`).
    Bridged(u32),
}

/// On a bridge port, every frame the next stage (the bridge's, which
/// never hands a frame on) forwards is bridged, whatever its destination
/// MAC: frames for the bridge itself go up to the bridge device through
/// the kernel. Elsewhere only frames for this host are routed; frames of
/// a port whose bridged frames are not modelled (`bridge` family chains,
/// VLAN filtering) punt.
#[inline(always)]
fn way(ingress: u32, host: bool, v6: bool, path_state: u32) -> Result<Way, u32> {
    let (flags, bridge) = FILTER_IFACES
        .get(ingress)
        .map_or((0, 0), |i| (i.flags, i.bridge));
    if bridge == 0 {
        return if host {
            Ok(Way::Routed)
        } else {
            Err(PUNT_NOT_FORWARDED)
        };
    }
    let (open, rules) = if v6 {
        (IFACE_BRIDGED_OPEN_V6, IFACE_BRIDGED_RULES_V6)
    } else {
        (IFACE_BRIDGED_OPEN_V4, IFACE_BRIDGED_RULES_V4)
    };
    // A path that punts whole may do so for chains that see every frame
    // (netdev): then no frame continues.
    if flags & open != 0 && path_state != PATH_PUNT {
        return Ok(Way::Open);
    }
    if flags & rules == 0 {
        return Err(PUNT_NOT_FORWARDED);
    }
    Ok(Way::Bridged(bridge))
}

/// Adds a packet of `bytes` to the counters of the rules it matched.
#[inline(always)]
fn count_rules(c: &CachedVerdict, generation: u32, bytes: u64) {
    let mut i = 0;
    while i < MAX_COUNTED {
        if i as u32 >= c.nrules {
            break;
        }
        if let Some(slot) = rule_slot(generation, c.rules[i])
            && let Some(st) = FILTER_RULE_STATS.get_ptr_mut(slot)
        {
            // SAFETY: this CPU's entry of a successful lookup.
            let st = unsafe { &mut *st };
            if st.generation != generation {
                *st = RuleStat {
                    generation,
                    ..RuleStat::default()
                };
            }
            st.packets += 1;
            st.bytes += bytes;
        }
        i += 1;
    }
}

/// The packet's conntrack class from the mirror (`ev.key.ct`), and its
/// mirror key (`ev.ct_key`). SYN, FIN and RST change the kernel's TCP
/// state and go to the kernel as unknown, and FIN or RST take the flow
/// out of the mirror; only TCP and UDP are mirrored.
#[inline(always)]
fn ct_class(ev: &mut Eval, pkt: &Packet, csum_ok: bool) {
    const FIN_RST: u8 = 0x05;
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    // Flags the kernel's TCP tracker ignores when it checks the
    // combination (`tcp_error`: ECE, CWR, PSH); URG may go with ACK.
    const IGNORED: u8 = 0xc8 | 0x20;
    let k = &ev.key;
    if k.l4proto != IPPROTO_UDP && k.l4proto != IPPROTO_TCP {
        return;
    }
    ev.ct_key = CtKey {
        l3: k.l3,
        l4proto: k.l4proto,
        reserved: 0,
        sport: k.sport,
        dport: k.dport,
        saddr: k.saddr,
        daddr: k.daddr,
    };
    if k.l4proto == IPPROTO_TCP && k.tcp_flags & FIN_RST != 0 {
        // Teardown: from now on every packet of the flow goes to the
        // kernel, so its tracker sees the last ACKs too (the upkeep would
        // only learn of the state change an interval later). A non-NAT
        // flow's other direction is this key inverted.
        let _ = FILTER_CT.remove(&ev.ct_key);
        ev.ct_key = CtKey {
            sport: k.dport,
            dport: k.sport,
            saddr: k.daddr,
            daddr: k.saddr,
            ..ev.ct_key
        };
        let _ = FILTER_CT.remove(&ev.ct_key);
        return;
    }
    // What the kernel's tracker would call INVALID is not ESTABLISHED: a
    // TCP flag combination other than ACK (+ URG, PSH, ECE, CWR) or a
    // header longer than the packet, a UDP length outside the packet.
    let ip_payload = u32::from(pkt.l3_len).saturating_sub(pkt.l4_offset - pkt.l3_offset);
    if k.l4proto == IPPROTO_TCP
        && (k.tcp_flags & SYN != 0
            || k.tcp_flags & !IGNORED != ACK
            || pkt.l4_hdr_len > ip_payload)
    {
        return;
    }
    if k.l4proto == IPPROTO_UDP && (pkt.udp_len < 8 || u32::from(pkt.udp_len) > ip_payload) {
        return;
    }
    // SAFETY: plain lookup; the value is copied out at once.
    if let Some(v) = unsafe { FILTER_CT.get(&ev.ct_key) }
        && (v.ct == u32::from(CT_EST_ORIGINAL) || v.ct == u32::from(CT_EST_REPLY))
        // A bad checksum makes the packet INVALID where the kernel checks
        // it (`nf_conntrack_checksum=1`): only a checksum the kernel would
        // not compute (UNNECESSARY or PARTIAL) is known good here.
        && (v.flags & CT_CSUM_CHECKED == 0 || csum_ok)
    {
        ev.key.ct = v.ct as u8;
    }
}

/// Records that the fast path passed a packet of a mirrored flow.
#[inline(always)]
fn seen(key: &CtKey) {
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    match FILTER_CT_SEEN.get_ptr_mut(key) {
        // SAFETY: the pointer comes from a successful lookup; a racing
        // writer stores a time just as recent.
        Some(p) => unsafe { *p = now },
        None => {
            let _ = FILTER_CT_SEEN.insert(key, &now, 0);
        }
    }
}

/// Runs the interpreter for a packet the cache does not know, and caches
/// its verdict.
#[inline(always)]
fn evaluate(ev: &mut Eval, generation: u32, path: PathConf) -> Result<CachedVerdict, u32> {
    let ingress = ev.key.iif;
    let oif = ev.key.oif;
    if !known_iface(generation, ingress) || !known_iface(generation, oif) {
        return Err(PUNT_UNKNOWN_IF);
    }
    ev.pc = path.start;
    ev.base_end = path.end;
    ev.sp = 0;
    ev.done = 0;
    ev.verdict = VERDICT_PUNT;
    ev.reason = PUNT_TOO_LONG;
    ev.matched.nrules = 0;
    ev.overflow = 0;
    ev.steps = 0;
    prefilter(ev, generation);
    // SAFETY: the callback is a static function taking no context (it
    // finds the scratch entry itself).
    unsafe {
        bpf_loop(
            MAX_STEPS,
            step_cb as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    // The callback wrote these through its own pointer to the scratch
    // entry; `ev` is a `&mut` argument here, which the compiler may assume
    // nothing else changed: read them afresh.
    // SAFETY: plain reads of fields of a valid, aligned entry.
    let (done, v, reason, matched, overflow, steps) = unsafe {
        (
            core::ptr::read_volatile(&ev.done),
            core::ptr::read_volatile(&ev.verdict),
            core::ptr::read_volatile(&ev.reason),
            core::ptr::read_volatile(&ev.matched),
            core::ptr::read_volatile(&ev.overflow),
            core::ptr::read_volatile(&ev.steps),
        )
    };
    add_steps(STEPS_EVALUATIONS, 1);
    add_steps(STEPS_RULES, u64::from(steps));
    let (v, reason) = if done == 0 {
        (VERDICT_PUNT, PUNT_TOO_LONG)
    } else {
        (v, reason)
    };
    let c = CachedVerdict {
        verdict: v,
        reason,
        ..matched
    };
    // A missing rule is a race with an update: do not remember it. Nor a
    // verdict whose matched rules do not all fit: its packets are counted
    // one by one.
    if !(v == VERDICT_PUNT && reason == PUNT_NO_RULES) && overflow == 0 {
        let _ = FILTER_CACHE.insert(&ev.key, &c, 0);
    }
    Ok(c)
}

/// Adds `n` to this CPU's `STEPS_*` counter `which`.
#[inline(always)]
fn add_steps(which: u32, n: u64) {
    if let Some(p) = FILTER_STEPS.get_ptr_mut(which) {
        // SAFETY: this CPU's entry of a successful lookup.
        unsafe { *p += n };
    }
}

/// Fills `ev.cand` with the candidate rules of the packet: per field the
/// prefilter classifies, the packet's class, and the AND of the classes'
/// bit vectors (`bpf_loop`, one chunk of 512 rules per iteration). Off
/// (`ev.filter == 0`, every rule a candidate) when the prefilter of this
/// generation is not in the maps.
#[inline(always)]
fn prefilter(ev: &mut Eval, generation: u32) {
    ev.filter = 0;
    let Some(conf) = FILTER_CLASS_CONF.get(generation & 1) else {
        return;
    };
    if conf.generation != entry_stamp(generation)
        || conf.fields == 0
        || conf.chunks == 0
        || conf.chunks > MAX_CHUNKS
    {
        return;
    }
    let fields = conf.fields;
    let chunks = conf.chunks;
    let mut i = 0;
    while i < CLASS_FIELDS.len() {
        let f = CLASS_FIELDS[i];
        ev.rows[i] = NO_NEXT;
        ev.own[i] = 0;
        if fields & (1 << f) != 0 {
            let k = Key::new(
                64 + 128,
                ClassKey {
                    generation: entry_stamp(generation),
                    field: u32::from(f),
                    value: set_value(f, &ev.key),
                },
            );
            if let Some(v) = FILTER_CLASSES.get(&k) {
                ev.rows[i] = v.class;
                ev.own[i] = v.own;
            }
        }
        i += 1;
    }
    // SAFETY: as in `evaluate`: a static callback finding the scratch
    // entry itself.
    let done = unsafe {
        bpf_loop(
            chunks,
            chunk_cb as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    add_steps(STEPS_CHUNKS, u64::from(chunks));
    // Only a vector written whole may skip rules: an earlier packet's
    // bits would be another packet's candidates.
    if done == i64::from(chunks) {
        ev.filter = 1;
    }
}

extern "C" fn chunk_cb(index: u64, _ctx: *mut core::ffi::c_void) -> i64 {
    let Some(ev) = FILTER_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch entry, filled by `prefilter` before the
    // loop.
    and_chunk(unsafe { &mut *ev }, index)
}

/// Candidate bits of chunk `c`: the AND of that chunk of every class the
/// packet is in (the class's row, or else its field's base row). A
/// missing row or a chunk of another generation (maps being rewritten)
/// leaves its field out: more candidates, never fewer.
#[inline(always)]
fn and_chunk(ev: &mut Eval, c: u64) -> i64 {
    if c >= u64::from(MAX_CHUNKS) {
        return 1;
    }
    let c = c as u32;
    let g = ev.key.generation;
    let mut acc = [u64::MAX; CHUNK_WORDS];
    let mut i = 0;
    while i < CLASS_FIELDS.len() {
        let class = ev.rows[i];
        if class != NO_NEXT
            && let Some(id) = class_row(g, class, ev.own[i], c, CLASS_FIELDS[i])
            && let Some(slot) = class_chunk_slot(g, id)
            && let Some(ch) = FILTER_CLASS_CHUNKS.get(slot)
            && ch.generation == entry_stamp(g)
        {
            let mut w = 0;
            while w < CHUNK_WORDS {
                acc[w] &= ch.bits[w];
                w += 1;
            }
        }
        i += 1;
    }
    let base = c as usize * CHUNK_WORDS;
    let mut w = 0;
    while w < CHUNK_WORDS {
        if base + w < CAND_WORDS {
            ev.cand[base + w] = acc[w];
        }
        w += 1;
    }
    0
}

/// The chunk index class `class` of field `f` has at position `c`: its
/// own row (`own` bit `c`, a hash lookup) or its field's base (an array
/// lookup).
#[inline(always)]
fn class_row(generation: u32, class: u32, own: u32, c: u32, f: u8) -> Option<u32> {
    if c < 32 && own >> c & 1 == 1 {
        let k = ClassRow {
            generation: entry_stamp(generation),
            class,
            chunk: c,
        };
        // SAFETY: plain lookup; the value is copied out at once.
        return unsafe { FILTER_CLASS_ROWS.get(&k).copied() };
    }
    let b = FILTER_CLASS_BASE.get(class_base_slot(generation, f, c)?)?;
    (b.generation == entry_stamp(generation)).then_some(b.chunk)
}

/// Moves `ev.pc` over rules that are not candidates, up to
/// [`SKIP_WORDS`] words of them; true if it stands on a candidate (or
/// past the vector: the rule lookup decides there).
#[inline(always)]
fn skip_to_candidate(ev: &mut Eval) -> bool {
    let mut n = 0;
    while n < SKIP_WORDS {
        let pc = ev.pc;
        let w = (pc / 64) as usize;
        if w >= CAND_WORDS {
            return true;
        }
        let bits = ev.cand[w] >> (pc % 64);
        if bits != 0 {
            ev.pc = pc + trailing_zeros(bits);
            return true;
        }
        ev.pc = (pc | 63) + 1;
        n += 1;
    }
    false
}

/// The index of the lowest set bit of `x` (not 0): the BPF instruction
/// set has no such instruction.
#[inline(always)]
fn trailing_zeros(mut x: u64) -> u32 {
    let mut n = 0;
    let mut shift = 32;
    while shift > 0 {
        let low = (1u64 << shift) - 1;
        if x & low == 0 {
            n += shift;
            x >>= shift;
        }
        shift /= 2;
    }
    n
}

#[inline(always)]
fn verdict(v: u32, reason: u32) -> Result<u32, u32> {
    match v {
        VERDICT_CONTINUE | VERDICT_DROP => Ok(v),
        _ => Err(reason),
    }
}

/// Addresses routing refuses or answers before the FORWARD hook (the
/// kernel drops martians, may log them, and answers a link-local IPv6
/// source with an ICMPv6 error): IPv4 0/8, 127/8, 224/4 and above; IPv6
/// unspecified, loopback, IPv4-mapped, multicast, link-local.
#[inline(always)]
fn martian(k: &FlowKey) -> bool {
    if k.l3 == 4 {
        let bad = |a: u8| a == 0 || a == 127 || a >= 224;
        return bad(k.saddr[0]) || bad(k.daddr[0]);
    }
    let bad = |a: &[u8; 16]| {
        let zero_prefix = a[..10].iter().all(|b| *b == 0);
        a[0] == 0xff
            || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
            || (zero_prefix && (a[10..12] == [0, 0] || a[10..12] == [0xff, 0xff]))
    };
    bad(&k.saddr) || bad(&k.daddr)
}

/// The output interface the kernel would forward the packet to.
#[inline(always)]
fn egress<C: EbpfContext>(
    ctx: &C,
    pkt: &Packet,
    key: &FlowKey,
    ingress: u32,
    tot_len: u16,
) -> Result<u32, u32> {
    // SAFETY: an all-zero bpf_fib_lookup is a valid input.
    let mut slot = core::mem::MaybeUninit::uninit();
    let p = zeroed_fib_params(&mut slot);
    p.ifindex = ingress;
    p.l4_protocol = key.l4proto;
    if pkt.ports {
        p.sport = key.sport.to_be();
        p.dport = key.dport.to_be();
    }
    if pkt.v6 {
        p.family = AF_INET6;
        p.__bindgen_anon_2.flowinfo = pkt.flowinfo_be;
        p.__bindgen_anon_3.ipv6_src = words(&key.saddr);
        p.__bindgen_anon_4.ipv6_dst = words(&key.daddr);
    } else {
        p.family = AF_INET;
        p.__bindgen_anon_2.tos = pkt.tos;
        p.__bindgen_anon_3.ipv4_src = words(&key.saddr)[0];
        p.__bindgen_anon_4.ipv4_dst = words(&key.daddr)[0];
    }
    p.__bindgen_anon_1.tot_len = tot_len;
    // SAFETY: `p` is a valid, initialised lookup structure of the size given.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.as_ptr(),
            p,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    };
    // SUCCESS, or NO_NEIGH (the kernel forwards after resolving it).
    if (rc == 0 || rc == 7) && p.ifindex != ingress && p.ifindex != 0 {
        if rc == 0 {
            // The router stage asks the same question of the same packet
            // (see `hand_fib_result`): spare it the second lookup.
            let at = FibFor {
                ingress,
                l3_proto: if pkt.v6 { ETH_P_IPV6 } else { ETH_P_IP },
                l3_offset: pkt.l3_offset as u16,
                l4_offset: pkt.l4_offset as u16,
            };
            hand_fib_result(&LFP_PKT_CTX, at, p.ifindex, p.smac, p.dmac);
        }
        Ok(p.ifindex)
    } else {
        Err(PUNT_NOT_FORWARDED)
    }
}

#[inline(always)]
fn words(a: &[u8; 16]) -> [u32; 4] {
    let mut w = [0u32; 4];
    let mut i = 0;
    while i < 4 {
        w[i] = u32::from_ne_bytes([a[i * 4], a[i * 4 + 1], a[i * 4 + 2], a[i * 4 + 3]]);
        i += 1;
    }
    w
}

#[inline(always)]
fn in_set(generation: u32, set: u32, value: [u8; 16]) -> bool {
    let k = Key::new(
        64 + 128,
        SetKey {
            generation: entry_stamp(generation),
            set,
            value,
        },
    );
    FILTER_SETS.get(&k).is_some()
}

#[inline(always)]
fn known_iface(generation: u32, ifindex: u32) -> bool {
    let mut v = [0u8; 16];
    let b = ifindex.to_ne_bytes();
    v[0] = b[0];
    v[1] = b[1];
    v[2] = b[2];
    v[3] = b[3];
    in_set(generation, SET_KNOWN_IFACES, v)
}

/// The interpreter's registers.
#[repr(C)]
struct Eval {
    key: FlowKey,
    /// The packet's conntrack mirror key (valid when `key.ct` is set).
    ct_key: CtKey,
    pc: u32,
    /// End rule of the current base chain (its policy; `accept` and a
    /// `return` from the base chain go there).
    base_end: u32,
    sp: u32,
    done: u32,
    verdict: u32,
    reason: u32,
    stack: [u32; MAX_DEPTH],
    /// The rules matched so far (`rules`, `nrules`), for the counters.
    matched: CachedVerdict,
    /// More rules matched than `matched` holds.
    overflow: u32,
    /// Interpreter steps of this evaluation.
    steps: u32,
    /// The prefilter ran: `cand` holds the candidate rules.
    filter: u32,
    /// Per `CLASS_FIELDS` entry, the packet's class, or `NO_NEXT` (field
    /// not classified).
    rows: [u32; CLASS_FIELDS.len()],
    /// Per `CLASS_FIELDS` entry, the chunks its class has own rows for.
    own: [u32; CLASS_FIELDS.len()],
    /// Candidate bits by rule index (bit `i % 64` of word `i / 64`).
    cand: [u64; CAND_WORDS],
}

/// Words of the candidate vector.
const CAND_WORDS: usize = (MAX_RULES / 64) as usize;
/// Most candidate words one interpreter step skips.
const SKIP_WORDS: u32 = 8;

extern "C" fn step_cb(_index: u64, _ctx: *mut core::ffi::c_void) -> i64 {
    let Some(ev) = FILTER_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch entry, filled by `decide` before the loop.
    step(unsafe { &mut *ev })
}

#[inline(always)]
fn finish(ev: &mut Eval, verdict: u32, reason: u32) -> i64 {
    ev.done = 1;
    ev.verdict = verdict;
    ev.reason = reason;
    1
}

/// Continues with the next base chain, as the end rule `end` of the
/// current one names it (its first rule and its own end rule).
#[inline(always)]
fn next_base(ev: &mut Eval, end: &FilterRule) -> i64 {
    if end.next_base == NO_NEXT {
        return finish(ev, VERDICT_CONTINUE, 0);
    }
    ev.pc = end.next_base;
    ev.base_end = end.base_end;
    ev.sp = 0;
    0
}

/// Rule `index` of `generation`, if the map holds it (a rule of another
/// generation means the maps are being rewritten under an old program).
#[inline(always)]
fn rule(generation: u32, index: u32) -> Option<&'static FilterRule> {
    let r = FILTER_RULES.get(rule_slot(generation, index)?)?;
    (r.generation == entry_stamp(generation)).then_some(r)
}

/// One rule. Returns 1 when the evaluation is over.
#[inline(always)]
fn step(ev: &mut Eval) -> i64 {
    ev.steps += 1;
    // A rule that is not a candidate cannot match: skipping it is what
    // `pc += 1` below would do.
    if ev.filter != 0 && !skip_to_candidate(ev) {
        return 0;
    }
    let g = ev.key.generation;
    let Some(r) = rule(g, ev.pc) else {
        return finish(ev, VERDICT_PUNT, PUNT_NO_RULES);
    };
    if r.matches & (m::CT_STATE | m::CT_DIR) != 0 && ev.key.ct == CT_UNKNOWN {
        // Only the kernel knows this packet's conntrack state: if the
        // rule's other predicates hold, it might match.
        if matches(r, &ev.key, false) {
            let reason = if r.action == ACT_PUNT {
                r.arg
            } else {
                PUNT_RULE_CONNTRACK
            };
            return finish(ev, VERDICT_PUNT, reason);
        }
        ev.pc += 1;
        return 0;
    }
    if !matches(r, &ev.key, true) {
        ev.pc += 1;
        return 0;
    }
    if r.action != ACT_END_BASE {
        let n = ev.matched.nrules as usize;
        if n < MAX_COUNTED {
            ev.matched.rules[n] = ev.pc;
            ev.matched.nrules += 1;
        } else {
            ev.overflow = 1;
        }
    }
    match r.action {
        ACT_CONTINUE => {
            ev.pc += 1;
            0
        }
        ACT_ACCEPT => {
            match rule(g, ev.base_end) {
                Some(e) => next_base(ev, e),
                None => finish(ev, VERDICT_PUNT, PUNT_NO_RULES),
            }
        }
        ACT_DROP => finish(ev, VERDICT_DROP, 0),
        ACT_JUMP => {
            let sp = ev.sp as usize;
            if sp >= MAX_DEPTH {
                return finish(ev, VERDICT_PUNT, PUNT_TOO_LONG);
            }
            ev.stack[sp] = ev.pc + 1;
            ev.sp += 1;
            ev.pc = r.arg;
            0
        }
        ACT_GOTO => {
            ev.pc = r.arg;
            0
        }
        ACT_RETURN => {
            if ev.sp == 0 {
                // Return from the base chain: its policy.
                ev.pc = ev.base_end;
                return 0;
            }
            ev.sp -= 1;
            let sp = ev.sp as usize;
            if sp >= MAX_DEPTH {
                return finish(ev, VERDICT_PUNT, PUNT_TOO_LONG);
            }
            ev.pc = ev.stack[sp];
            0
        }
        ACT_PUNT => finish(ev, VERDICT_PUNT, r.arg),
        ACT_END_BASE => {
            if r.arg == u32::from(ACT_DROP) {
                finish(ev, VERDICT_DROP, 0)
            } else {
                next_base(ev, r)
            }
        }
        _ => finish(ev, VERDICT_PUNT, PUNT_NO_RULES),
    }
}

#[inline(always)]
fn prefix_eq(addr: &[u8; 16], want: &[u8; 16], mask: &[u8; 16]) -> bool {
    let (a, w, m) = (words(addr), words(want), words(mask));
    (a[0] & m[0]) == w[0] && (a[1] & m[1]) == w[1] && (a[2] & m[2]) == w[2] && (a[3] & m[3]) == w[3]
}

/// A field's bytes as set elements and the prefilter's classes key them:
/// addresses and ports in network order, ifindexes in native order.
#[inline(always)]
fn set_value(field: u8, k: &FlowKey) -> [u8; 16] {
    let mut v = [0u8; 16];
    match field {
        field::IIF | field::OIF => {
            let b = if field == field::IIF { k.iif } else { k.oif }.to_ne_bytes();
            v[0] = b[0];
            v[1] = b[1];
            v[2] = b[2];
            v[3] = b[3];
        }
        field::SADDR => v = k.saddr,
        field::DADDR => v = k.daddr,
        field::L4PROTO => v[0] = k.l4proto,
        field::SPORT | field::DPORT => {
            let b = if field == field::SPORT { k.sport } else { k.dport }.to_be_bytes();
            v[0] = b[0];
            v[1] = b[1];
        }
        _ => {}
    }
    v
}

/// True if every predicate of `r` holds (each negated as flagged); with
/// `with_ct` false, the conntrack predicates are left out.
#[inline(always)]
fn matches(r: &FilterRule, k: &FlowKey, with_ct: bool) -> bool {
    let want = if with_ct {
        r.matches
    } else {
        r.matches & !(m::CT_STATE | m::CT_DIR)
    };
    if want == 0 {
        return true;
    }
    let neg = r.negate;
    let ports = k.l4proto == 6 || k.l4proto == 17;
    let icmp = k.l4proto == 1 || k.l4proto == 58;
    let test = |bit: u32, ok: bool| want & bit == 0 || (ok != (neg & bit != 0));
    test(m::IIF, k.iif == r.iif)
        && test(m::OIF, k.oif == r.oif)
        && test(m::L4PROTO, k.l4proto == r.l4proto)
        && test(m::SADDR, prefix_eq(&k.saddr, &r.saddr, &r.smask))
        && test(m::DADDR, prefix_eq(&k.daddr, &r.daddr, &r.dmask))
        && test(
            m::SPORT,
            ports && k.sport >= r.sport[0] && k.sport <= r.sport[1],
        )
        && test(
            m::DPORT,
            ports && k.dport >= r.dport[0] && k.dport <= r.dport[1],
        )
        && test(
            m::ICMP_TYPE,
            icmp && (k.sport as u8) >= r.icmp_type[0] && (k.sport as u8) <= r.icmp_type[1],
        )
        && test(
            m::ICMP_CODE,
            icmp && (k.dport as u8) >= r.icmp_code[0] && (k.dport as u8) <= r.icmp_code[1],
        )
        && test(
            m::TCP_FLAGS,
            k.l4proto == 6 && (k.tcp_flags & r.tcp_mask) == r.tcp_cmp,
        )
        && test(
            m::CT_STATE,
            k.ct != CT_UNKNOWN && r.ct_state & CT_STATE_ESTABLISHED != 0,
        )
        && test(m::CT_DIR, k.ct != CT_UNKNOWN && k.ct - 1 == r.ct_dir)
        && (want & m::SET0 == 0
            || (in_set(k.generation, r.set_id[0], set_value(r.set_field[0], k))
                != (neg & m::SET0 != 0)))
        && (want & m::SET1 == 0
            || (in_set(k.generation, r.set_id[1], set_value(r.set_field[1], k))
                != (neg & m::SET1 != 0)))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
