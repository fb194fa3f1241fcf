// SPDX-License-Identifier: MIT OR Apache-2.0
//! `filter_tc` and `filter_xdp` through `BPF_PROG_TEST_RUN`, in the router
//! namespace of the virtual router: a real nft ruleset is loaded there
//! with `nft -f`, read
//! back over nfnetlink, compiled and laid out exactly as the FPM does, and
//! every row's verdict and counter is checked: accept → continue, drop
//! only on compiled drops and drop policies, punts under their reasons,
//! sets, jumps/gotos/returns, several base chains, and the per-flow cache
//! giving the same answer as the evaluation.
//!
//! Root only; skips loudly otherwise.

// The router's test helpers: crafted frames and the counter reader.
#[path = "../../linuxfp-fpm-router/tests/common/mod.rs"]
mod common;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap as AyaHashMap, LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use linuxfp::{inspector::nftables, netns::NetnsRef};
use linuxfp_ebpf_common::{
    abi::{
        COUNTERS_PER_IF, PKT_CTX_FIB_DONE, PKT_CTX_MAP, PKT_CTX_VALID, PacketCtx,
        STAGE_CONF_GLOBAL, StageConf, counter,
    },
    filter::*,
};
use linuxfp_fpm_filter::{
    TC_PROGRAM, XDP_PROGRAM,
    bytecode::FILTER_OBJ,
    compile::{Interfaces, compile},
    counters::{self, RuleCount},
    params::{Layout, layout, skb_layout},
    prefilter::Prefilter,
};
use linuxfp_testkit::{VirtualRouter, require_root, route};

use common::{counters, load_program, packet::*};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const SKB_SIZE: usize = 192;
const SKB_INGRESS_IFINDEX: usize = 36;
const SKB_IFINDEX: usize = 40;

const RULESET: &str = r#"
table inet t {
    set blocked {
        type ipv4_addr
        flags interval
        elements = { 10.2.0.128/25 }
    }
    chain pre {
        type filter hook prerouting priority -10; policy accept;
        tcp dport 25 drop
    }
    chain filt {
        type filter hook forward priority 0; policy accept;
        udp dport 5001 counter drop
        tcp dport 22 reject with tcp reset
        ip daddr @blocked drop
        iifname "r0" oifname "r1" tcp dport 80 jump web
        tcp dport 443 goto tls
        udp dport 6000-6010 log accept
        udp dport 7000 limit rate 10/second accept
        udp dport { 7100, 7200 } drop
        ip6 daddr fd02::2 udp dport 5002 drop
        icmp type echo-request accept
        udp dport 8000 accept
        ip daddr 10.2.0.3 drop
    }
    chain web {
        ip saddr 10.1.0.2 return
        drop
    }
    chain tls {
        ip saddr 10.1.0.3 drop
    }
}
table ip late {
    chain post {
        type filter hook postrouting priority 100; policy accept;
        udp dport 8000 drop
    }
}
"#;

const POLICY_DROP: &str = r#"
table ip t {
    chain filt {
        type filter hook forward priority 0; policy drop;
        udp dport 53 accept
    }
}
"#;

enum Expect {
    Continue,
    Drop,
    Punt(u32),
}

/// A table row: name, frame, what must happen.
type Row = (&'static str, Vec<u8>, Expect);

struct Lab {
    tb: VirtualRouter,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let tb = VirtualRouter::new(tag).expect("virtual router");
        tb.set_static_neighbours().expect("neighbours");
        route(&tb.rtr, "blackhole 10.9.1.0/24").expect("route");
        Lab { tb }
    }

    /// Loads `ruleset` in the router namespace and returns it compiled and
    /// laid out, as the FPM would (generation `1`).
    fn compile(&self, ruleset: &str) -> Layout {
        self.compile_enslaving(ruleset, &[])
    }

    /// As `compile`, with the `enslaved` interfaces marked as having a
    /// master (a bridge port, say).
    fn compile_enslaving(&self, ruleset: &str, enslaved: &[u32]) -> Layout {
        self.tb
            .rtr
            .sh(&format!(
                "nft flush ruleset; nft -f - <<'EOF'\n{ruleset}\nEOF\n"
            ))
            .expect("nft -f");
        self.record(enslaved)
    }

    /// As `compile`, for a ruleset too long for a command line: loaded
    /// from a file.
    fn compile_file(&self, ruleset: &str) -> Layout {
        let path = std::env::temp_dir().join(format!(
            "lfp-{}-{}.nft",
            self.tb.rtr.name(),
            std::process::id()
        ));
        std::fs::write(&path, ruleset).expect("write the ruleset");
        let loaded = self
            .tb
            .rtr
            .sh(&format!("nft flush ruleset; nft -f {}", path.display()));
        let _ = std::fs::remove_file(&path);
        loaded.expect("nft -f");
        self.record(&[])
    }

    /// The router namespace's ruleset, compiled and laid out.
    fn record(&self, enslaved: &[u32]) -> Layout {
        let bytes = nftables::record(&NetnsRef::Named(self.tb.rtr.name().into())).expect("record");
        let rs = nftables::Ruleset::from_messages(&bytes);
        let mut ifaces = Interfaces::new([
            ("lo".to_string(), 1),
            ("r0".to_string(), self.tb.rtr_src_if.ifindex),
            ("r1".to_string(), self.tb.rtr_dst_if.ifindex),
        ]);
        for i in enslaved {
            ifaces.enslave(*i);
        }
        layout(&compile(&rs, &ifaces)).expect("fits")
    }

    fn v4(&self, proto: u8, src: &str, dst: &str, l4: &[u8]) -> Vec<u8> {
        frame(
            self.tb.rtr_src_if.mac,
            self.tb.src_if.mac,
            ETH_P_IP,
            &hdr4(proto, src, dst).packet(l4),
        )
    }

    fn v6(&self, proto: u8, src: &str, dst: &str, l4: &[u8]) -> Vec<u8> {
        frame(
            self.tb.rtr_src_if.mac,
            self.tb.src_if.mac,
            ETH_P_IPV6,
            &hdr6(proto, src, dst).packet(l4),
        )
    }
}

/// Loads the object with `layout` at generation `generation` in its maps.
/// Loads both programs with `l` at `generation` in the maps, and the lab's
/// router interfaces as XDP interfaces (their MACs).
fn load(lab: &Lab, l: &Layout, generation: u32) -> Ebpf {
    load_with_ct(lab, l, generation, &[])
}

/// As [`load`], with `ct` in the conntrack mirror.
fn load_with_ct(lab: &Lab, l: &Layout, generation: u32, ct: &[(CtKey, CtValue)]) -> Ebpf {
    load_full(lab, l, generation, ct, true)
}

/// As [`load_with_ct`]; the prefilter's maps are written only with
/// `prefilter` (without, every miss walks the rules one by one).
/// The running kernel has BTF and `sk_buff::ip_summed` in it, so the TC
/// stage's checksum test reads the skb (the cases with
/// `CT_CSUM_CHECKED` show that a CHECKSUM_NONE skb is not taken as good).
#[test]
fn the_skb_checksum_state_is_located() {
    let l = skb_layout();
    assert_eq!(l.known, 1, "{l:?}");
    assert!(l.ip_summed_shift <= 6, "{l:?}");
}

fn load_full(
    lab: &Lab,
    l: &Layout,
    generation: u32,
    ct: &[(CtKey, CtValue)],
    prefilter: bool,
) -> Ebpf {
    let conf = FilterConf {
        flags: (if l.ct { CONF_CT } else { 0 }) | l.gated,
    };
    let mut ebpf = EbpfLoader::new()
        .override_global(CONF_GLOBAL, &conf, true)
        // The running kernel's: the TC stage reads the skb's checksum state.
        .override_global(SKB_GLOBAL, &skb_layout(), true)
        .override_global(
            STAGE_CONF_GLOBAL,
            &StageConf {
                position: 0,
                has_next: 0,
            },
            true,
        )
        .load(FILTER_OBJ)
        .expect("load the filter object");
    {
        let mut rules: Array<_, FilterRule> =
            Array::try_from(ebpf.map_mut(RULES_MAP).expect(RULES_MAP)).expect("array");
        for (i, r) in l.rules.iter().enumerate() {
            let slot = rule_slot(generation, i as u32).expect("within MAX_RULES");
            let r = FilterRule {
                generation: entry_stamp(generation),
                ..*r
            };
            rules.set(slot, r, 0).expect("set rule");
        }
    }
    {
        let mut sets: LpmTrie<_, SetKey, u8> =
            LpmTrie::try_from(ebpf.map_mut(SETS_MAP).expect(SETS_MAP)).expect("lpm");
        for (set, value, bits) in &l.sets {
            let k = Key::new(
                64 + bits,
                SetKey {
                    generation: entry_stamp(generation),
                    set: *set,
                    value: *value,
                },
            );
            sets.insert(&k, 1, 0).expect("insert set element");
        }
    }
    if prefilter {
        write_prefilter(&mut ebpf, &l.prefilter, generation);
    }
    {
        let mut ifaces: Array<_, FilterIface> =
            Array::try_from(ebpf.map_mut(IFACES_MAP).expect(IFACES_MAP)).expect("array");
        for e in [&lab.tb.rtr_src_if, &lab.tb.rtr_dst_if] {
            let v = FilterIface {
                mac: e.mac,
                flags: IFACE_XDP,
                bridge: 0,
            };
            ifaces.set(e.ifindex, v, 0).expect("set iface");
        }
    }
    {
        let mut mirror: AyaHashMap<_, CtKey, CtValue> =
            AyaHashMap::try_from(ebpf.map_mut(CT_MAP).expect(CT_MAP)).expect("hash");
        for (k, v) in ct {
            mirror.insert(k, v, 0).expect("insert mirror entry");
        }
    }
    {
        // The commit, last, as the deployer writes it.
        let mut gens: Array<_, GenConf> =
            Array::try_from(ebpf.map_mut(GENERATIONS_MAP).expect(GENERATIONS_MAP)).expect("array");
        let g = GenConf {
            generation,
            reserved: 0,
            v4: l.v4,
            v6: l.v6,
        };
        gens.set(generation & 1, g, 0).expect("set generation");
        let mut active: Array<_, u32> =
            Array::try_from(ebpf.map_mut(ACTIVE_MAP).expect(ACTIVE_MAP)).expect("array");
        active.set(0, generation & 1, 0).expect("set active parity");
    }
    load_program(&mut ebpf, TC_PROGRAM, SchedClassifier::load);
    load_program(&mut ebpf, XDP_PROGRAM, Xdp::load);
    ebpf
}

/// The prefilter's maps of `generation`, as the parameterizer lays them.
fn write_prefilter(ebpf: &mut Ebpf, p: &Prefilter, generation: u32) {
    // Entries carry the generation's stamp, as the parameterizer writes them.
    let stamp = entry_stamp(generation);
    let mut classes: LpmTrie<_, ClassKey, ClassValue> =
        LpmTrie::try_from(ebpf.map_mut(CLASSES_MAP).expect(CLASSES_MAP)).expect("lpm");
    for f in &p.fields {
        for (value, bits, class) in &f.prefixes {
            let k = Key::new(
                64 + bits,
                ClassKey {
                    generation: stamp,
                    field: f.field.into(),
                    value: *value,
                },
            );
            classes.insert(&k, class, 0).expect("insert class prefix");
        }
    }
    let mut rows: AyaHashMap<_, ClassRow, u32> =
        AyaHashMap::try_from(ebpf.map_mut(CLASS_ROWS_MAP).expect(CLASS_ROWS_MAP)).expect("hash");
    for (class, chunk, id) in &p.rows {
        let k = ClassRow {
            generation: stamp,
            class: *class,
            chunk: *chunk,
        };
        rows.insert(k, id, 0).expect("insert class row");
    }
    let mut base: Array<_, ClassBase> =
        Array::try_from(ebpf.map_mut(CLASS_BASE_MAP).expect(CLASS_BASE_MAP)).expect("array");
    for (field, chunk, id) in &p.base {
        let slot = class_base_slot(generation, *field, *chunk).expect("a field's chunk");
        let b = ClassBase {
            generation: stamp,
            chunk: *id,
        };
        base.set(slot, b, 0).expect("set class base");
    }
    let mut chunks: Array<_, ClassChunk> =
        Array::try_from(ebpf.map_mut(CLASS_CHUNKS_MAP).expect(CLASS_CHUNKS_MAP)).expect("array");
    for (i, bits) in p.bits.iter().enumerate() {
        let slot = class_chunk_slot(generation, i as u32).expect("within the budget");
        let c = ClassChunk {
            generation: stamp,
            reserved: 0,
            bits: *bits,
        };
        chunks.set(slot, c, 0).expect("set class chunk");
    }
    let mut conf: Array<_, ClassConf> =
        Array::try_from(ebpf.map_mut(CLASS_CONF_MAP).expect(CLASS_CONF_MAP)).expect("array");
    let c = ClassConf {
        generation: stamp,
        chunks: p.chunks,
        fields: p.field_bits(),
        reserved: 0,
    };
    conf.set(generation & 1, c, 0).expect("set class conf");
}

/// The `STEPS_*` counters of a loaded instance, summed over CPUs.
fn steps(ebpf: &Ebpf) -> [u64; STEPS_ENTRIES as usize] {
    let m: PerCpuArray<_, u64> =
        PerCpuArray::try_from(ebpf.map(STEPS_MAP).expect(STEPS_MAP)).expect("per-cpu array");
    let mut out = [0; STEPS_ENTRIES as usize];
    for (i, o) in out.iter_mut().enumerate() {
        *o = m.get(&(i as u32), 0).expect("steps").iter().sum();
    }
    out
}

fn name(c: u32) -> String {
    if c < counter::FIRST_FPM_REASON {
        counter::GENERIC_NAMES[c as usize].to_string()
    } else {
        PUNT_NAMES
            .get((c - counter::FIRST_FPM_REASON) as usize)
            .map_or_else(|| format!("#{c}"), |n| n.to_string())
    }
}

/// The hooks a table runs on.
#[derive(Clone, Copy, Debug)]
enum On {
    Tc,
    Xdp,
}

/// Runs every row on both hooks (each with freshly loaded programs and an
/// empty cache), twice each (evaluation, then the cache), and reports every
/// failure at once.
fn check(lab: &Lab, l: &Layout, generation: u32, ingress: u32, rows: &[Row]) {
    for on in [On::Tc, On::Xdp] {
        check_on(&load(lab, l, generation), on, ingress, rows);
    }
}

/// What the stage left in its conntrack maps after a table.
struct CtAfter {
    /// Keys recorded as forwarded (`FILTER_CT_SEEN`).
    seen: Vec<CtKey>,
    /// Keys still in the mirror (`FILTER_CT`).
    mirror: Vec<CtKey>,
    /// Per-rule counters (`FILTER_RULE_STATS`).
    counted: std::collections::BTreeMap<(String, u64), RuleCount>,
}

fn keys_of<V: aya::Pod>(ebpf: &Ebpf, map: &str) -> Vec<CtKey> {
    let m: AyaHashMap<_, CtKey, V> = AyaHashMap::try_from(ebpf.map(map).expect(map)).expect("hash");
    let mut keys: Vec<CtKey> = m.keys().map(|k| k.expect("key")).collect();
    keys.sort_by_key(|k| (k.l4proto, k.sport, k.dport, k.l3));
    keys
}

/// As [`check`], with `ct` in the conntrack mirror; returns, per hook,
/// what the stage left in its conntrack maps.
fn check_ct(
    lab: &Lab,
    l: &Layout,
    generation: u32,
    ct: &[(CtKey, CtValue)],
    rows: &[Row],
) -> Vec<CtAfter> {
    let mut out = Vec::new();
    for on in [On::Tc, On::Xdp] {
        let ebpf = load_with_ct(lab, l, generation, ct);
        check_on(&ebpf, on, lab.tb.rtr_src_if.ifindex, rows);
        let stats: PerCpuArray<_, RuleStat> =
            PerCpuArray::try_from(ebpf.map(RULE_STATS_MAP).expect(RULE_STATS_MAP))
                .expect("per-cpu array");
        let counted = counters::by_rule(l, generation, |slot| {
            stats
                .get(&slot, 0)
                .ok()
                .map(|v| v.iter().copied().collect())
        });
        out.push(CtAfter {
            seen: keys_of::<u64>(&ebpf, CT_SEEN_MAP),
            mirror: keys_of::<CtValue>(&ebpf, CT_MAP),
            counted,
        });
    }
    out
}

fn check_on(ebpf: &Ebpf, on: On, ingress: u32, rows: &[Row]) {
    let run = |frame: &[u8], out: &mut [u8]| match on {
        On::Tc => {
            let prog: &SchedClassifier = ebpf
                .program(TC_PROGRAM)
                .expect("filter_tc")
                .try_into()
                .expect("classifier");
            prog.test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(out),
                ctx_in: Some(&skb_ctx(ingress)),
                ..TestRunOptions::default()
            })
        }
        On::Xdp => {
            let prog: &Xdp = ebpf
                .program(XDP_PROGRAM)
                .expect("filter_xdp")
                .try_into()
                .expect("XDP");
            // struct xdp_md: data, data_end, data_meta, ingress_ifindex, ...
            let mut ctx = [0u8; 24];
            ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
            ctx[12..16].copy_from_slice(&ingress.to_ne_bytes());
            prog.test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(out),
                ctx_in: Some(&ctx),
                ..TestRunOptions::default()
            })
        }
    };
    let (pass_rc, drop_rc) = match on {
        On::Tc => (TC_ACT_OK, TC_ACT_SHOT),
        On::Xdp => (XDP_PASS, XDP_DROP),
    };
    let mut failures = Vec::new();
    for pass in ["evaluated", "cached"] {
        for (row_name, frame, expect) in rows {
            let mut out = vec![0u8; frame.len() + 256];
            let before = counters(ebpf, ingress);
            let res =
                run(frame, &mut out).unwrap_or_else(|e| panic!("{on:?} {row_name}: test_run: {e}"));
            let after = counters(ebpf, ingress);
            let moved: Vec<(String, u64)> = (0..COUNTERS_PER_IF)
                .filter(|&c| after[c as usize] != before[c as usize])
                .map(|c| (name(c), after[c as usize] - before[c as usize]))
                .collect();
            let (want_rc, want): (u32, Vec<(String, u64)>) = match expect {
                // No next stage in this test: continue, then chain miss.
                Expect::Continue => (
                    pass_rc,
                    vec![(name(counter::CONTINUE), 1), (name(counter::CHAIN_MISS), 1)],
                ),
                Expect::Drop => (drop_rc, vec![(name(counter::DROP), 1)]),
                Expect::Punt(r) => (pass_rc, vec![(name(*r), 1)]),
            };
            let mut want = want;
            want.sort();
            let mut moved = moved;
            moved.sort();
            if res.return_value != want_rc || moved != want {
                failures.push(format!(
                    "{on:?} {pass} {}: rc {} counters {moved:?}, want rc {want_rc} counters {want:?}",
                    row_name, res.return_value
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Runs `body` in a new lab's router namespace (BPF_PROG_TEST_RUN resolves
/// the ingress ifindex and runs the FIB lookup in the caller's namespace),
/// after adding `routes` there. Skips loudly without root.
fn in_lab(test: &str, tag: &str, routes: &[&str], body: fn(&Lab)) {
    if !require_root(test) {
        return;
    }
    let lab = Lab::new(tag);
    for r in routes {
        route(&lab.tb.rtr, r).expect("route");
    }
    lab.tb
        .rtr
        .run_in(|| body(&lab))
        .expect("run in the router namespace");
}

/// The `__sk_buff` of a packet arriving on `ingress`.
fn skb_ctx(ingress: u32) -> Vec<u8> {
    let mut ctx = vec![0u8; SKB_SIZE];
    ctx[SKB_INGRESS_IFINDEX..SKB_INGRESS_IFINDEX + 4].copy_from_slice(&ingress.to_ne_bytes());
    ctx[SKB_IFINDEX..SKB_IFINDEX + 4].copy_from_slice(&ingress.to_ne_bytes());
    ctx
}

#[test]
fn filter_table() {
    in_lab("filter_table", "fltr", &[], table);
}

/// Rules for frames a bridge port receives for other hosts: `r1` plays
/// the bridge device.
const BRIDGED: &str = r#"
table ip t {
    chain filt {
        type filter hook forward priority 0; policy accept;
        iifname "r1" oifname "r1" udp dport 5001 accept
        udp dport 5001 drop
        iifname "r1" udp dport 5002 drop
        udp dport 5003 log accept
    }
}
"#;

/// On a bridge port, a frame is what the bridge after the stage may
/// forward: with `br_netfilter`, it is evaluated as the `ip` hooks see a
/// bridged frame (from and to the bridge device), continues or punts (a
/// drop is the kernel's to make: only it knows whether the bridge would
/// forward the frame); without, it continues; on a port whose bridged
/// frames are not modelled, it punts. That holds for frames to the port's
/// own MAC as well: the bridge stage never forwards those.
#[test]
fn bridged_frames_are_decided_as_br_netfilter_shows_them() {
    in_lab(
        "bridged_frames_are_decided_as_br_netfilter_shows_them",
        "flbr",
        &[],
        |lab| {
            let l = lab.compile(BRIDGED);
            let port = &lab.tb.rtr_src_if;
            let bridge = lab.tb.rtr_dst_if.ifindex;
            let (s, d) = ("10.1.0.2", "10.1.0.3");
            let other = [0x02, 0xaa, 0, 0, 0, 1];
            let bridged = |dport: u16| {
                frame(
                    other,
                    lab.tb.src_if.mac,
                    ETH_P_IP,
                    &hdr4(UDP, s, d).packet(&udp(1000, dport, 8)),
                )
            };
            let bridged6 = frame(
                other,
                lab.tb.src_if.mac,
                ETH_P_IPV6,
                &hdr6(UDP, "fd01::2", "fd01::3").packet(&udp(1000, 5002, 8)),
            );
            let through: Vec<Row> = vec![
                (
                    "seen from and to the bridge: accepted",
                    bridged(5001),
                    Expect::Continue,
                ),
                (
                    "dropped by the hooks: the kernel drops",
                    bridged(5002),
                    Expect::Punt(PUNT_BRIDGED_DROP),
                ),
                (
                    "a stateful rule: the kernel's",
                    bridged(5003),
                    Expect::Punt(PUNT_RULE_STATEFUL),
                ),
                ("the policy accepts", bridged(9000), Expect::Continue),
                (
                    "IPv6 not passed through the hooks here: not modelled",
                    bridged6.clone(),
                    Expect::Punt(PUNT_NOT_FORWARDED),
                ),
                (
                    "for the port's own MAC: bridged too (the bridge stage leaves it to the kernel)",
                    lab.v4(UDP, s, "10.2.0.2", &udp(1000, 5001, 8)),
                    Expect::Continue,
                ),
            ];
            let open: Vec<Row> = vec![
                (
                    "no hook sees it: continues",
                    bridged(5002),
                    Expect::Continue,
                ),
                ("IPv6 as well", bridged6.clone(), Expect::Continue),
            ];
            let unmodelled: Vec<Row> = vec![
                (
                    "not modelled: punts",
                    bridged(9000),
                    Expect::Punt(PUNT_NOT_FORWARDED),
                ),
                (
                    "nor for the port's own MAC",
                    lab.v4(UDP, s, "10.2.0.2", &udp(1000, 9000, 8)),
                    Expect::Punt(PUNT_NOT_FORWARDED),
                ),
            ];
            for (flags, rows) in [
                (IFACE_BRIDGED_RULES_V4, &through),
                (IFACE_BRIDGED_OPEN_V4 | IFACE_BRIDGED_OPEN_V6, &open),
                (0, &unmodelled),
            ] {
                for on in [On::Tc, On::Xdp] {
                    let mut ebpf = load(lab, &l, 3);
                    let mut ifaces: Array<_, FilterIface> =
                        Array::try_from(ebpf.map_mut(IFACES_MAP).expect(IFACES_MAP))
                            .expect("array");
                    let v = FilterIface {
                        mac: port.mac,
                        flags: IFACE_XDP | flags,
                        bridge,
                    };
                    ifaces.set(port.ifindex, v, 0).expect("set iface");
                    check_on(&ebpf, on, port.ifindex, rows);
                }
            }
        },
    );
}

/// The stage hands the router its successful FIB answer for a packet it
/// lets through (the egress and the next hop's MACs, for the ingress and
/// layout it was asked for), and leaves nothing for a packet it punts.
#[test]
fn the_fib_answer_is_handed_to_the_next_stage() {
    in_lab(
        "the_fib_answer_is_handed_to_the_next_stage",
        "flhand",
        &[],
        |lab| {
            let l = lab.compile(RULESET);
            let (s, d) = ("10.1.0.2", "10.2.0.2");
            let ingress = lab.tb.rtr_src_if.ifindex;
            let handed = PacketCtx {
                flags: PKT_CTX_VALID | PKT_CTX_FIB_DONE,
                ingress_ifindex: ingress,
                l3_proto: 0x0800,
                l3_offset: 14,
                l4_offset: 34,
                vlan_id: 0,
                egress_ifindex: lab.tb.rtr_dst_if.ifindex,
                smac: lab.tb.rtr_dst_if.mac,
                dmac: lab.tb.dst_if.mac,
            };
            let through: Row = (
                "udp to an open port",
                lab.v4(UDP, s, d, &udp(1000, 9000, 8)),
                Expect::Continue,
            );
            let mut frame = through.1.clone();
            frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
            let not_ip: Row = ("not IP", frame, Expect::Punt(PUNT_NOT_IP));
            for on in [On::Tc, On::Xdp] {
                let mut ebpf = load(lab, &l, 7);
                check_on(&ebpf, on, ingress, std::slice::from_ref(&through));
                let left = pkt_ctx(&ebpf);
                assert!(left.contains(&handed), "{on:?}: {left:?}");
                // Whatever an earlier packet left, the stage at position 0
                // starts from an empty context: a packet punted before any
                // lookup leaves it empty.
                set_pkt_ctx(&mut ebpf, handed);
                check_on(&ebpf, on, ingress, std::slice::from_ref(&not_ip));
                let left = pkt_ctx(&ebpf);
                assert!(left.iter().any(|c| c.flags == 0), "{on:?}: {left:?}");
            }
        },
    );
}

/// Writes `value` into every CPU's `LFP_PKT_CTX` entry.
fn set_pkt_ctx(ebpf: &mut Ebpf, value: PacketCtx) {
    let mut map: PerCpuArray<_, PacketCtx> =
        PerCpuArray::try_from(ebpf.map_mut(PKT_CTX_MAP).expect(PKT_CTX_MAP)).expect("per-CPU");
    let cpus = aya::util::nr_cpus().expect("CPUs");
    let values = aya::maps::PerCpuValues::try_from(vec![value; cpus]).expect("values");
    map.set(0, values, 0).expect("set LFP_PKT_CTX");
}

/// Every CPU's `LFP_PKT_CTX` entry.
fn pkt_ctx(ebpf: &Ebpf) -> Vec<PacketCtx> {
    let map: PerCpuArray<_, PacketCtx> =
        PerCpuArray::try_from(ebpf.map(PKT_CTX_MAP).expect(PKT_CTX_MAP)).expect("per-CPU");
    map.get(&0, 0)
        .expect("LFP_PKT_CTX")
        .iter()
        .copied()
        .collect()
}

/// Conntrack: the ruleset of a stateful router (established first, invalid
/// dropped, a new-flow rule, drop policy) with a masquerade chain, and a
/// mirror holding some flows.
#[test]
fn conntrack_table() {
    in_lab("conntrack_table", "fltct", &[], ct_table);
}

/// A path that starts with the conntrack gate (the ruleset makes the
/// kernel track connections) punts a packet of a flow the mirror does not
/// have before any FIB, cache or rule lookup: nothing is evaluated or
/// cached. A ruleset without conntrack has no gate.
#[test]
fn the_conntrack_gate_punts_an_unknown_flow_first_thing() {
    in_lab(
        "the_conntrack_gate_punts_an_unknown_flow_first_thing",
        "flgate",
        &[],
        |lab| {
            let l = lab.compile(CT_RULESET);
            assert_eq!(
                l.gated,
                CONF_GATED_V4 | CONF_GATED_V6,
                "both families tracked"
            );
            let row: Row = (
                "not mirrored",
                lab.v4(UDP, "10.1.0.2", "10.2.0.2", &udp(40000, 5000, 8)),
                Expect::Punt(PUNT_RULE_CONNTRACK),
            );
            for on in [On::Tc, On::Xdp] {
                let ebpf = load(lab, &l, 1);
                check_on(
                    &ebpf,
                    on,
                    lab.tb.rtr_src_if.ifindex,
                    std::slice::from_ref(&row),
                );
                let st = steps(&ebpf);
                assert_eq!(
                    st[STEPS_EVALUATIONS as usize], 0,
                    "{on:?}: nothing evaluated"
                );
                let cache: AyaHashMap<_, FlowKey, CachedVerdict> =
                    AyaHashMap::try_from(ebpf.map(CACHE_MAP).expect(CACHE_MAP)).expect("hash");
                assert_eq!(cache.keys().count(), 0, "{on:?}: nothing cached");
            }
            let plain = lab.compile(POLICY_DROP);
            assert_eq!(plain.gated, 0, "no conntrack, no gate");
        },
    );
}

const CT_RULESET: &str = r#"
table inet t {
    chain fwdc {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        ct state invalid drop
        ct state new udp dport 5000 accept
    }
}
table ip n {
    chain post {
        type nat hook postrouting priority 100; policy accept;
        oifname "nowhere" masquerade
    }
}
"#;

/// The mirror key of a packet from `s`:`sp` to `d`:`dp`.
fn ct_key(proto: u8, s: &str, d: &str, sp: u16, dp: u16) -> CtKey {
    let mut k = CtKey {
        l3: 4,
        l4proto: proto,
        sport: sp,
        dport: dp,
        ..Default::default()
    };
    let (s, d): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
        (s.parse().expect("addr"), d.parse().expect("addr"));
    k.saddr[..4].copy_from_slice(&s.octets());
    k.daddr[..4].copy_from_slice(&d.octets());
    k
}

fn ct_table(lab: &Lab) {
    let (s, d) = ("10.1.0.2", "10.2.0.2");
    let est = |ct: u8| CtValue {
        ct: u32::from(ct),
        flags: 0,
    };
    let udp_flow = ct_key(UDP, s, d, 40000, 5000);
    // A flow opened from the other side: this packet is its reply.
    let udp_reply = ct_key(UDP, s, d, 53, 41000);
    let tcp_flow = ct_key(TCP, s, d, 40001, 80);
    let mut udp6_flow = CtKey {
        l3: 6,
        l4proto: UDP,
        sport: 40000,
        dport: 5000,
        ..Default::default()
    };
    udp6_flow.saddr = "fd01::2"
        .parse::<std::net::Ipv6Addr>()
        .expect("addr")
        .octets();
    udp6_flow.daddr = "fd02::2"
        .parse::<std::net::Ipv6Addr>()
        .expect("addr")
        .octets();
    let mirror = [
        (udp_flow, est(CT_EST_ORIGINAL)),
        (udp_reply, est(CT_EST_REPLY)),
        (tcp_flow, est(CT_EST_ORIGINAL)),
        (udp6_flow, est(CT_EST_ORIGINAL)),
    ];
    let with_flags = |flags: u8| {
        let mut t = tcp(40001, 80, 8);
        t[13] = flags;
        lab.v4(TCP, s, d, &t)
    };
    let l = lab.compile(CT_RULESET);
    assert!(l.ct, "the ruleset reads conntrack");
    let with_udp_len = |len: u16| {
        let mut u = udp(40000, 5000, 8);
        u[4..6].copy_from_slice(&len.to_be_bytes());
        lab.v4(UDP, s, d, &u)
    };
    let rows = vec![
        (
            "mirrored udp, original direction: established, accepted",
            lab.v4(UDP, s, d, &udp(40000, 5000, 8)),
            Expect::Continue,
        ),
        (
            "mirrored udp, reply direction: established, accepted",
            lab.v4(UDP, s, d, &udp(53, 41000, 8)),
            Expect::Continue,
        ),
        (
            "mirrored tcp ack: established, accepted",
            with_flags(0x10),
            Expect::Continue,
        ),
        (
            "mirrored ipv6 udp: established, accepted",
            lab.v6(UDP, "fd01::2", "fd02::2", &udp(40000, 5000, 8)),
            Expect::Continue,
        ),
        (
            "ipv6 udp of no mirrored flow",
            lab.v6(UDP, "fd01::2", "fd02::2", &udp(40003, 5000, 8)),
            Expect::Punt(PUNT_RULE_CONNTRACK),
        ),
        (
            "mirrored tcp ack+psh+urg+ece+cwr: still established",
            with_flags(0x10 | 0x08 | 0x20 | 0x40 | 0x80),
            Expect::Continue,
        ),
        (
            "mirrored tcp without ack: the kernel calls it invalid",
            with_flags(0x08),
            Expect::Punt(PUNT_RULE_CONNTRACK),
        ),
        (
            "mirrored udp with a length past the packet: invalid",
            with_udp_len(17),
            Expect::Punt(PUNT_RULE_CONNTRACK),
        ),
        (
            "mirrored udp with a length under its header: invalid",
            with_udp_len(7),
            Expect::Punt(PUNT_RULE_CONNTRACK),
        ),
        (
            "mirrored tcp syn",
            with_flags(0x02),
            Expect::Punt(PUNT_RULE_CONNTRACK),
        ),
        (
            "udp of no mirrored flow: only the kernel knows its state",
            lab.v4(UDP, s, d, &udp(40002, 5000, 8)),
            Expect::Punt(PUNT_RULE_CONNTRACK),
        ),
        (
            "icmp is never mirrored",
            lab.v4(1, s, d, &[8, 0, 0, 0, 0, 1, 0, 1]),
            Expect::Punt(PUNT_RULE_CONNTRACK),
        ),
    ];
    let after = check_ct(lab, &l, 1, &mirror, &rows);
    let established = l
        .origins
        .iter()
        .find(|(chain, h)| chain == "inet t fwdc" && *h != 0)
        .cloned()
        .expect("the established rule");
    let continued = rows
        .iter()
        .filter(|(_, _, e)| matches!(e, Expect::Continue))
        .count() as u64;
    for (hook, a) in ["tc", "xdp"].iter().zip(&after) {
        // Exactly the mirrored packets that went on were recorded.
        assert_eq!(a.seen, [tcp_flow, udp_reply, udp_flow, udp6_flow], "{hook}");
        assert_eq!(a.mirror.len(), 4, "{hook}");
        // Every packet that went on matched the established rule, once
        // evaluated and once from the cache; nothing else was decided.
        let mut counted = a.counted.clone();
        counted.retain(|_, c| c.packets > 0);
        assert_eq!(
            counted.keys().collect::<Vec<_>>(),
            [&established],
            "{hook}: {counted:?}"
        );
        assert_eq!(counted[&established].packets, 2 * continued, "{hook}");
        assert!(counted[&established].bytes >= 2 * continued * 28, "{hook}");
    }

    // A FIN or RST goes to the kernel and takes the flow (both
    // directions) out of the mirror: the ACKs after it go to the kernel
    // too, so its tracker follows the whole teardown.
    let mut tcp_reverse = tcp_flow;
    (tcp_reverse.saddr, tcp_reverse.daddr) = (tcp_flow.daddr, tcp_flow.saddr);
    (tcp_reverse.sport, tcp_reverse.dport) = (tcp_flow.dport, tcp_flow.sport);
    let both = [
        (tcp_flow, est(CT_EST_ORIGINAL)),
        (tcp_reverse, est(CT_EST_REPLY)),
        (udp_flow, est(CT_EST_ORIGINAL)),
    ];
    for (flags, what) in [(0x11, "fin"), (0x14, "rst")] {
        let after = check_ct(
            lab,
            &l,
            1,
            &both,
            &[
                (what, with_flags(flags), Expect::Punt(PUNT_RULE_CONNTRACK)),
                (
                    "an ack after it",
                    with_flags(0x10),
                    Expect::Punt(PUNT_RULE_CONNTRACK),
                ),
            ],
        );
        for (hook, a) in ["tc", "xdp"].iter().zip(&after) {
            assert_eq!(a.mirror, [udp_flow], "{what} on {hook}");
            assert!(a.seen.is_empty(), "{what} on {hook}");
        }
    }

    // Only the nat chain reads conntrack, but that is enough for the
    // kernel to track every packet: established packets pass it, the
    // others punt at the conntrack gate before it.
    let l = lab.compile(
        "table ip n {
 chain post {
 type nat hook postrouting priority 100; policy accept;
 masquerade
 }
}",
    );
    check_ct(
        lab,
        &l,
        2,
        &mirror,
        &[
            (
                "mirrored: skips the nat chain",
                lab.v4(UDP, s, d, &udp(40000, 5000, 8)),
                Expect::Continue,
            ),
            (
                "not mirrored: the kernel tracks it (and sets up nat)",
                lab.v4(UDP, s, d, &udp(40002, 5000, 8)),
                Expect::Punt(PUNT_RULE_CONNTRACK),
            ),
        ],
    );

    // The kernel checks L4 checksums (`nf_conntrack_checksum=1`): a
    // checksum the device did not verify leaves the packet to the kernel
    // (test-run skbs are CHECKSUM_NONE, neither UNNECESSARY nor PARTIAL,
    // which TC reads from the skb; XDP never knows).
    let checked = [(
        udp_flow,
        CtValue {
            ct: u32::from(CT_EST_ORIGINAL),
            flags: CT_CSUM_CHECKED,
        },
    )];
    check_ct(
        lab,
        &l,
        1,
        &checked,
        &[(
            "checksum not verified by the device: not established, the conntrack gate punts",
            lab.v4(UDP, s, d, &udp(40000, 5000, 8)),
            Expect::Punt(PUNT_RULE_CONNTRACK),
        )],
    );

    // A ruleset without ct: no lookups, nothing recorded.
    let l = lab.compile(
        "table ip t {
 chain f {
 type filter hook forward priority 0; policy accept;
 }
}",
    );
    assert!(!l.ct);
    let after = check_ct(
        lab,
        &l,
        3,
        &mirror,
        &[(
            "no ct rule",
            lab.v4(UDP, s, d, &udp(40000, 5000, 8)),
            Expect::Continue,
        )],
    );
    assert!(after.iter().all(|a| a.seen.is_empty()));
}

fn table(lab: &Lab) {
    let l = lab.compile(RULESET);
    let (s, d) = ("10.1.0.2", "10.2.0.2");
    let rows = vec![
        (
            "udp to an open port continues",
            lab.v4(UDP, s, d, &udp(1000, 9000, 8)),
            Expect::Continue,
        ),
        (
            "udp 5001 dropped in forward",
            lab.v4(UDP, s, d, &udp(1000, 5001, 8)),
            Expect::Drop,
        ),
        (
            "tcp 25 dropped in prerouting",
            lab.v4(TCP, s, d, &tcp(1000, 25, 0)),
            Expect::Drop,
        ),
        (
            "tcp 22 rejected by the kernel",
            lab.v4(TCP, s, d, &tcp(1000, 22, 0)),
            Expect::Punt(PUNT_RULE_REJECT),
        ),
        (
            "destination in an interval set",
            lab.v4(UDP, s, "10.2.0.200", &udp(1000, 9000, 8)),
            Expect::Drop,
        ),
        (
            "jump to web, return, continue to accept",
            lab.v4(TCP, s, d, &tcp(1000, 80, 0)),
            Expect::Continue,
        ),
        (
            "jump to web from another source: drop",
            lab.v4(TCP, "10.1.0.3", d, &tcp(1000, 80, 0)),
            Expect::Drop,
        ),
        (
            "goto tls, end of chain: base policy accept",
            lab.v4(TCP, s, d, &tcp(1000, 443, 0)),
            Expect::Continue,
        ),
        (
            "goto tls, dropped there",
            lab.v4(TCP, "10.1.0.3", d, &tcp(1000, 443, 0)),
            Expect::Drop,
        ),
        (
            "log rule punts",
            lab.v4(UDP, s, d, &udp(1000, 6005, 8)),
            Expect::Punt(PUNT_RULE_STATEFUL),
        ),
        (
            "limit rule punts",
            lab.v4(UDP, s, d, &udp(1000, 7000, 8)),
            Expect::Punt(PUNT_RULE_STATEFUL),
        ),
        (
            "anonymous port set",
            lab.v4(UDP, s, d, &udp(1000, 7200, 8)),
            Expect::Drop,
        ),
        (
            "icmp echo accepted",
            lab.v4(ICMP, s, d, &echo(8)),
            Expect::Continue,
        ),
        (
            "accept in forward, drop in postrouting",
            lab.v4(UDP, s, d, &udp(1000, 8000, 8)),
            Expect::Drop,
        ),
        (
            "a later rule in forward drops",
            lab.v4(UDP, s, "10.2.0.3", &udp(1000, 9000, 8)),
            Expect::Drop,
        ),
        (
            "blackhole route: not forwarded",
            lab.v4(UDP, s, "10.9.1.1", &udp(1000, 5001, 8)),
            Expect::Punt(PUNT_NOT_FORWARDED),
        ),
        (
            "frame for another MAC (a macvlan's, say): not for this stack",
            frame(
                [0x02, 0, 0, 0, 0, 0x99],
                lab.tb.src_if.mac,
                ETH_P_IP,
                &hdr4(UDP, s, d).packet(&udp(1000, 5001, 8)),
            ),
            Expect::Punt(PUNT_NOT_FORWARDED),
        ),
        (
            "loopback source: not forwarded",
            lab.v4(UDP, "127.0.0.1", d, &udp(1000, 5001, 8)),
            Expect::Punt(PUNT_NOT_FORWARDED),
        ),
        (
            "ipv6 link-local source: the kernel answers with ICMPv6",
            lab.v6(UDP, "fe80::2", "fd02::2", &udp(1000, 5001, 8)),
            Expect::Punt(PUNT_NOT_FORWARDED),
        ),
        (
            "to the router itself: not forwarded",
            lab.v4(UDP, s, "10.2.0.1", &udp(1000, 5001, 8)),
            Expect::Punt(PUNT_NOT_FORWARDED),
        ),
        (
            "ipv6 udp 5002 dropped",
            lab.v6(UDP, "fd01::2", "fd02::2", &udp(1000, 5002, 8)),
            Expect::Drop,
        ),
        (
            "ipv6 udp 5001 dropped (inet)",
            lab.v6(UDP, "fd01::2", "fd02::2", &udp(1000, 5001, 8)),
            Expect::Drop,
        ),
        (
            "ipv6 udp 8000 continues (ip postrouting is IPv4 only)",
            lab.v6(UDP, "fd01::2", "fd02::2", &udp(1000, 8000, 8)),
            Expect::Continue,
        ),
        (
            "arp is not ip",
            frame(
                lab.tb.rtr_src_if.mac,
                lab.tb.src_if.mac,
                ETH_P_ARP,
                &[0u8; 28],
            ),
            Expect::Punt(PUNT_NOT_IP),
        ),
        (
            "ipv4 fragment",
            {
                let mut f = lab.v4(UDP, s, d, &udp(1000, 5001, 8));
                // MF set; fix the header checksum is not needed by the filter.
                f[14 + 6] = 0x20;
                f
            },
            Expect::Punt(PUNT_FRAGMENT),
        ),
        (
            "truncated tcp",
            lab.v4(TCP, s, d, &tcp(1000, 80, 0))[..14 + 20 + 10].to_vec(),
            Expect::Punt(PUNT_MALFORMED),
        ),
    ];
    check(lab, &l, 1, lab.tb.rtr_src_if.ifindex, &rows);

    // Drop policy.
    let l = lab.compile(POLICY_DROP);
    check(
        lab,
        &l,
        2,
        lab.tb.rtr_src_if.ifindex,
        &[
            (
                "accepted port",
                lab.v4(UDP, s, d, &udp(1000, 53, 8)),
                Expect::Continue,
            ),
            (
                "policy drop",
                lab.v4(UDP, s, d, &udp(1000, 54, 8)),
                Expect::Drop,
            ),
            (
                "ipv6 has no chain: continues",
                lab.v6(UDP, "fd01::2", "fd02::2", &udp(1000, 54, 8)),
                Expect::Continue,
            ),
        ],
    );

    // A nat chain: every IPv4 packet of an unknown flow punts.
    let l = lab.compile(
        "table ip n {\n chain p {\n type nat hook postrouting priority 100; policy accept;\n masquerade\n }\n}",
    );
    check(
        lab,
        &l,
        3,
        lab.tb.rtr_src_if.ifindex,
        &[(
            "nat on the path: a packet of no mirrored flow punts (the kernel tracks it)",
            lab.v4(UDP, s, d, &udp(1000, 53, 8)),
            Expect::Punt(PUNT_RULE_CONNTRACK),
        )],
    );

    // An ingress interface with a master: netfilter would see the packet
    // on another device.
    let l = lab.compile_enslaving(POLICY_DROP, &[lab.tb.rtr_src_if.ifindex]);
    check(
        lab,
        &l,
        4,
        lab.tb.rtr_src_if.ifindex,
        &[(
            "enslaved ingress",
            lab.v4(UDP, s, d, &udp(1000, 54, 8)),
            Expect::Punt(PUNT_UNKNOWN_IF),
        )],
    );
}

/// The cost of one packet by the number of rules it traverses: on a cache
/// miss (a new flow: every rule is a candidate here, all `udp dport`) and
/// on a hit (one LRU lookup: flat). Printed, with loose bounds only.
#[test]
fn evaluation_cost_by_rule_count() {
    in_lab("evaluation_cost_by_rule_count", "fltcost", &[], cost_table);
}

fn cost_table(lab: &Lab) {
    let ingress = lab.tb.rtr_src_if.ifindex;
    let skb = |frame: &[u8]| (frame.to_vec(), skb_ctx(ingress));
    let mut hit_costs = Vec::new();
    for n in [1usize, 10, 100, 1000] {
        let rules: String = (0..n)
            .map(|i| format!("        udp dport {} drop\n", 10000 + i))
            .collect();
        let ruleset = format!(
            "table ip t {{\n    chain filt {{\n        type filter hook forward priority 0; policy accept;\n{rules}    }}\n}}\n"
        );
        let l = lab.compile(&ruleset);
        let ebpf = load(lab, &l, 1);
        let prog: &SchedClassifier = ebpf
            .program(TC_PROGRAM)
            .expect("filter_tc")
            .try_into()
            .expect("classifier");
        let run = |frame: &[u8], ctx: &[u8], repeat: u32| {
            let res = prog
                .test_run(TestRunOptions {
                    data_in: Some(frame),
                    ctx_in: Some(ctx),
                    repeat,
                    ..TestRunOptions::default()
                })
                .expect("test_run");
            assert_eq!(res.return_value, TC_ACT_OK, "passes all {n} rules");
            res.duration
        };
        // Misses: a new flow (source port) each time.
        let flows = 200u16;
        let mut miss = std::time::Duration::ZERO;
        for sport in 0..flows {
            let (f, c) = skb(&lab.v4(UDP, "10.1.0.2", "10.2.0.2", &udp(20000 + sport, 9000, 8)));
            miss += run(&f, &c, 1);
        }
        let miss_ns = miss.as_nanos() / u128::from(flows);
        // Hits: the same flow again and again.
        let (f, c) = skb(&lab.v4(UDP, "10.1.0.2", "10.2.0.2", &udp(20000, 9000, 8)));
        let hit_ns = run(&f, &c, 20000).as_nanos();
        eprintln!("{n:>5} rules: miss {miss_ns:>7} ns/packet, hit {hit_ns:>4} ns/packet");
        hit_costs.push(hit_ns);
    }
    // The cached path does not grow with the rules (loose: 5x for noise).
    let (first, last) = (hit_costs[0].max(1), hit_costs[hit_costs.len() - 1]);
    assert!(last < first * 5 + 200, "hit cost grew: {hit_costs:?}");
}

/// Differential: the recorded Docker, Flannel, mixed and native rulesets
/// (their nat chains left out so that their filter rules are exercised),
/// with their interface names mapped onto the lab's, and a few hundred
/// packets per family built from the addresses and ports the rules name:
/// `filter_tc` must decide exactly what the reference evaluator decides
/// from the IR (continue, drop, or the same punt reason).
#[test]
fn stage_agrees_with_the_reference_evaluator() {
    in_lab(
        "stage_agrees_with_the_reference_evaluator",
        "fltdiff",
        &["default via 10.2.0.2", "default via fd02::2"],
        differential,
    );
}

/// xorshift64: deterministic packets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

fn differential(lab: &Lab) {
    use linuxfp_fpm_filter::compile::{
        Action, L3, PathPlan,
        eval::{Fields, Outcome, evaluate},
    };
    let (r0, r1) = (lab.tb.rtr_src_if.ifindex, lab.tb.rtr_dst_if.ifindex);
    let ifaces = Interfaces::new(
        [
            ("lo", 1),
            ("r0", r0),
            ("r1", r1),
            // Reversed, so `-i veth0 -o veth1` (accept) does not take
            // every packet of the lab (r0 → r1).
            ("eth0", r1),
            ("eth1", r0),
            ("veth0", r1),
            ("veth1", r0),
            ("docker0", r1),
        ]
        .map(|(n, i)| (n.to_string(), i)),
    );
    let v4_src = [
        "10.0.0.5",
        "10.1.1.10",
        "10.66.0.9",
        "172.16.5.5",
        "172.17.0.9",
        "1.2.3.4",
        "10.244.1.2",
        "192.0.2.9",
        "198.51.100.7",
        "8.8.8.8",
        "203.0.113.5",
    ];
    let v4_dst = [
        "10.2.0.2",
        "172.17.0.2",
        "10.66.0.1",
        "192.168.1.20",
        "10.9.9.9",
        "10.244.0.7",
        "9.9.9.9",
        "10.2.0.200",
    ];
    let v6_src = ["fd01::2", "fd66::1", "2001:db8::1"];
    let v6_dst = ["fd02::2", "2001:db8:1::5", "fd09::9"];
    let ports = [
        22u16, 53, 80, 443, 1000, 1500, 2000, 2001, 5000, 5001, 7000, 8000, 8080, 8081, 40000,
    ];
    let flags = [0x02u8, 0x10, 0x12, 0x04, 0x11, 0x06];
    let mut generation = 10;
    // Each ruleset as compiled, and without its catch-all punts (e.g. a
    // leading `ct state` rule), so that the rules behind them run too.
    let variants = ["docker", "flannel", "mixed", "native"]
        .into_iter()
        .flat_map(|n| [(n, false), (n, true)]);
    for (name, strip) in variants {
        let path = format!(
            "{}/../linuxfp/tests/data/nft_{name}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut rs = nftables::Ruleset::from_messages(&std::fs::read(&path).expect(name));
        rs.chains
            .retain(|c| c.base.as_ref().is_none_or(|b| b.chain_type == "filter"));
        let mut compiled = compile(&rs, &ifaces);
        if strip {
            for p in [&mut compiled.v4, &mut compiled.v6] {
                if let PathPlan::Rules(p) = p {
                    for c in &mut p.chains {
                        c.rules.retain(|r| {
                            !(r.matches.is_empty() && matches!(r.action, Action::Punt(_)))
                        });
                    }
                }
            }
        }
        let l = layout(&compiled).expect("fits");
        generation += 1;

        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ generation as u64);
        let mut rows: Vec<Row> = Vec::new();
        for l3 in [L3::V4, L3::V6] {
            for _ in 0..150 {
                let v6 = l3 == L3::V6;
                let protos: &[u8] = if v6 {
                    &[TCP, UDP, ICMPV6]
                } else {
                    &[TCP, UDP, ICMP, 47]
                };
                let proto = *rng.pick(protos);
                let (s, d) = if v6 {
                    (*rng.pick(&v6_src), *rng.pick(&v6_dst))
                } else {
                    (*rng.pick(&v4_src), *rng.pick(&v4_dst))
                };
                let (sport, dport) = (*rng.pick(&ports), *rng.pick(&ports));
                let tcp_flags = *rng.pick(&flags);
                let icmp_type = *rng.pick(&[8u8, 0, 3, 128, 129]);
                let l4 = match proto {
                    TCP => {
                        let mut t = tcp(sport, dport, 0);
                        t[13] = tcp_flags;
                        t
                    }
                    UDP => udp(sport, dport, 8),
                    ICMP | ICMPV6 => {
                        let mut e = echo(icmp_type);
                        e[0] = icmp_type;
                        e
                    }
                    _ => vec![0u8; 8],
                };
                let frame = if v6 {
                    lab.v6(proto, s, d, &l4)
                } else {
                    lab.v4(proto, s, d, &l4)
                };
                let addr = |a: &str| -> Vec<u8> {
                    match a.parse::<std::net::IpAddr>().expect("address") {
                        std::net::IpAddr::V4(a) => a.octets().to_vec(),
                        std::net::IpAddr::V6(a) => a.octets().to_vec(),
                    }
                };
                let (fs, fd) = match proto {
                    TCP | UDP => (sport, dport),
                    ICMP | ICMPV6 => (u16::from(icmp_type), 0),
                    _ => (0, 0),
                };
                let fields = Fields {
                    iif: r0,
                    oif: r1,
                    l4proto: proto,
                    saddr: addr(s),
                    daddr: addr(d),
                    sport: fs,
                    dport: fd,
                    tcp_flags: if proto == TCP { tcp_flags } else { 0 },
                };
                let expect = match compiled.path(l3) {
                    PathPlan::Open => Expect::Continue,
                    PathPlan::Punt { .. } => Expect::Punt(PUNT_PATH),
                    PathPlan::Rules(p) => match evaluate(p, &fields) {
                        Outcome::Continue => Expect::Continue,
                        Outcome::Drop => Expect::Drop,
                        Outcome::Punt(w) => Expect::Punt(w.counter()),
                        Outcome::TooDeep => Expect::Punt(PUNT_TOO_LONG),
                    },
                };
                rows.push(("random packet", frame, expect));
            }
        }
        let tally = |f: &dyn Fn(&Expect) -> bool| rows.iter().filter(|r| f(&r.2)).count();
        eprintln!(
            "{name}{}: {} packets: {} continue, {} drop, {} punt",
            if strip {
                " (catch-all punts removed)"
            } else {
                ""
            },
            rows.len(),
            tally(&|e| matches!(e, Expect::Continue)),
            tally(&|e| matches!(e, Expect::Drop)),
            tally(&|e| matches!(e, Expect::Punt(_))),
        );
        check(lab, &l, generation, r0, &rows);
    }
}

/// Issue #7: on a miss the prefilter skips the rules that cannot match.
/// A flat 10k-rule forward chain (addresses, negated addresses, ports,
/// port ranges, protocols; every packet walks it to the end or nearly)
/// and the testkit's random 10k-rule ruleset (jumps by destination,
/// regular chains): for every packet, `filter_tc` with the prefilter's
/// maps and without gives the same verdict and counters, the steps
/// (`FILTER_STEPS`) with the prefilter stay far below the rules a packet
/// walks without it, and the prefilter ran (chunks counted).
#[test]
fn prefilter_cuts_the_steps_of_a_miss() {
    in_lab(
        "prefilter_cuts_the_steps_of_a_miss",
        "fltpre",
        &["default via 10.2.0.2", "default via fd02::2"],
        prefilter_steps,
    );
}

/// A flat forward chain of `n` random rules that late packets walk whole.
fn flat_ruleset(n: usize, rng: &mut Rng) -> String {
    let mut rules = String::new();
    for _ in 0..n {
        let (a, b) = (rng.next() % 16, rng.next() % 64);
        let port = 1 + rng.next() % 500;
        let verdict = if rng.next().is_multiple_of(2) {
            "drop"
        } else {
            "accept"
        };
        let rule = match rng.next() % 5 {
            0 => format!("ip daddr 10.{a}.{b}.0/24 udp dport {port} {verdict}"),
            1 => format!("ip saddr 10.{a}.0.0/16 tcp dport {port} {verdict}"),
            2 => format!("ip daddr != 10.{a}.0.0/16 tcp dport {port} {verdict}"),
            3 => format!(
                "ip daddr 10.{a}.{b}.0/24 udp dport {port}-{} {verdict}",
                port + rng.next() % 20
            ),
            _ => format!("ip6 daddr fd10:{a:x}:{b:x}::/48 meta l4proto udp {verdict}"),
        };
        rules.push_str(&format!("        {rule}\n"));
    }
    format!(
        "table inet flat {{\n    chain filt {{\n        type filter hook forward priority 0; policy accept;\n{rules}        udp dport 9999 drop\n    }}\n}}\n"
    )
}

fn prefilter_steps(lab: &Lab) {
    let mut rng = Rng(0x7e57_5eed);
    let flat = flat_ruleset(10_000, &mut rng);
    let random = linuxfp_testkit::diff::rulesets::random(10_000, 0x1d);
    // The flat ruleset's addresses; the random one's last 20 chains
    // (chain `c` handles 10.(16 + c)/16 and fd10:(100 + c)::/32).
    let flat_dst: Dst = |rng, v6| {
        let (a, b) = (rng.next() % 16, rng.next() % 64);
        if v6 {
            format!("fd10:{a:x}:{b:x}::{:x}", 2 + rng.next() % 250)
        } else {
            format!("10.{a}.{b}.{}", 2 + rng.next() % 250)
        }
    };
    let random_dst: Dst = |rng, v6| {
        let c = 80 + rng.next() % 20;
        if v6 {
            format!(
                "fd10:{:x}:{:x}::{:x}",
                0x100 + c,
                rng.next() % 4,
                rng.next() % 16
            )
        } else {
            format!("10.{}.{}.{}", 16 + c, rng.next() % 4 * 16, rng.next() % 256)
        }
    };
    for (name, text, dst) in [
        ("flat", flat, flat_dst),
        ("random", random.text, random_dst),
    ] {
        let l = lab.compile_file(&text);
        assert!(l.rules.len() > 9_000, "{name}: {} rules", l.rules.len());
        let p = &l.prefilter;
        eprintln!(
            "{name}: {} rules, prefilter fields {:?}, dropped {:?}, {} rows, {} chunks",
            l.rules.len(),
            p.fields
                .iter()
                .map(|f| (f.field, f.classes, f.prefixes.len()))
                .collect::<Vec<_>>(),
            p.dropped,
            p.rows.len(),
            p.bits.len()
        );
        assert!(!p.fields.is_empty(), "{name}: the prefilter classifies");
        let frames = probe_frames(lab, &mut rng, dst);
        let with = load_full(lab, &l, 1, &[], true);
        let without = load_full(lab, &l, 1, &[], false);
        let ingress = lab.tb.rtr_src_if.ifindex;
        let (mut max_with, mut sum_with, mut sum_without, mut max_without) = (0, 0, 0, 0);
        for (i, frame) in frames.iter().enumerate() {
            let mut outcome = Vec::new();
            let mut cost = Vec::new();
            for ebpf in [&with, &without] {
                let prog: &SchedClassifier = ebpf
                    .program(TC_PROGRAM)
                    .expect("filter_tc")
                    .try_into()
                    .expect("classifier");
                let (before, steps_before) = (counters(ebpf, ingress), steps(ebpf));
                let res = prog
                    .test_run(TestRunOptions {
                        data_in: Some(frame),
                        ctx_in: Some(&skb_ctx(ingress)),
                        ..TestRunOptions::default()
                    })
                    .expect("test_run");
                let (after, steps_after) = (counters(ebpf, ingress), steps(ebpf));
                let moved: Vec<(u32, u64)> = (0..COUNTERS_PER_IF)
                    .filter(|&c| after[c as usize] != before[c as usize])
                    .map(|c| (c, after[c as usize] - before[c as usize]))
                    .collect();
                outcome.push((res.return_value, moved));
                let d: Vec<u64> = (0..STEPS_ENTRIES as usize)
                    .map(|k| steps_after[k] - steps_before[k])
                    .collect();
                cost.push(d);
            }
            assert_eq!(outcome[0], outcome[1], "{name} probe {i}: with vs without");
            // Every probe is a new flow: one evaluation each.
            assert_eq!((cost[0][0], cost[1][0]), (1, 1), "{name} probe {i}");
            assert!(cost[0][2] > 0, "{name} probe {i}: the prefilter ran");
            assert_eq!(cost[1][2], 0, "{name} probe {i}: no prefilter without maps");
            max_with = max_with.max(cost[0][1]);
            max_without = max_without.max(cost[1][1]);
            sum_with += cost[0][1];
            sum_without += cost[1][1];
        }
        let n = frames.len() as u64;
        eprintln!(
            "{name}: steps per miss with the prefilter: mean {} max {max_with}; without: mean {} max {max_without}",
            sum_with / n,
            sum_without / n
        );
        assert!(max_with < 500, "{name}: {max_with} steps on a miss");
        if name == "flat" {
            // The inet table's ip6 rules are in the IPv6 program only.
            let v4_rules = u64::from(l.v6.start - l.v4.start);
            assert!(
                max_without + 1 >= v4_rules && v4_rules > 7_000,
                "{name}: the dport 9999 probes walk all {v4_rules} IPv4 rules without the prefilter"
            );
        }
        assert!(
            sum_with * 2 < sum_without,
            "{name}: the prefilter cuts the work"
        );
    }
}

/// A probe destination (IPv6 if asked) drawn from a ruleset's addresses.
type Dst = fn(&mut Rng, bool) -> String;

/// New flows (source port per probe) of both families, to `dst` and the
/// ports the rulesets above use (dport 9999 walks the flat one whole).
fn probe_frames(lab: &Lab, rng: &mut Rng, dst: Dst) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for i in 0..120u16 {
        let dport = (1 + rng.next() % 600) as u16;
        let sport = 20000 + i;
        let frame = match i % 4 {
            0 => lab.v4(UDP, "10.1.0.2", &dst(rng, false), &udp(sport, dport, 8)),
            1 => lab.v4(TCP, "10.1.0.2", &dst(rng, false), &tcp(sport, dport, 0)),
            2 => lab.v4(UDP, "10.1.0.2", &dst(rng, false), &udp(sport, 9999, 8)),
            _ => lab.v6(UDP, "fd01::2", &dst(rng, true), &udp(sport, dport, 8)),
        };
        frames.push(frame);
    }
    frames
}
