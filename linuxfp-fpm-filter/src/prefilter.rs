// SPDX-License-Identifier: MIT OR Apache-2.0
//! The candidate prefilter: laid-out rules → per field, classes of values
//! and, per class, a bit vector over the rules (issue #7).
//!
//! A cache miss used to walk the rules one by one. The stage now first
//! looks up the class of each prefiltered field of the packet, ANDs the
//! classes' vectors, and the interpreter jumps over rules whose bit is
//! clear. A clear bit only ever says "this rule's predicate on this field
//! holds for no value of the class", so the rule cannot match the packet
//! and skipping it is what `pc += 1` would have done: jumps, returns and
//! verdicts are unchanged, and so is the outcome.
//!
//! # Classes
//!
//! Each field's values are numbers of `width` bits (addresses in network
//! order, ports, the protocol, ifindexes in the stage's native byte
//! order). Every rule with a predicate on the field constrains it to a
//! range or, negated, to the outside of one.
//!
//! - Addresses, the protocol and interfaces: the ranges are prefixes (an
//!   exact value is a full-length one). Each distinct prefix `Q` is a
//!   class, the values whose longest matching prefix is `Q`, and the
//!   trie holds exactly those prefixes (plus prefix 0 for the values
//!   under none): a value of class `Q` is in a range `P` exactly when `P`
//!   contains `Q`.
//! - Ports: the ranges' bounds split the field into intervals in which
//!   every range is all in or all out; adjacent intervals with equal
//!   vectors merge, and each class is written as the prefixes covering
//!   its intervals (the one with the most prefixes as prefix 0 instead).
//!
//! Classes with equal vectors are one class. A rule keeps its bit set in
//! every class when the field does not decide it: no predicate on the
//! field, a mask that is not a prefix, an empty range, a negated port
//! range (a packet without ports satisfies it, whatever the port field
//! holds). Synthetic chain ends have no predicates: their bit is always
//! set, so skipping never leaves a chain.
//!
//! # Budget
//!
//! Vectors are stored in chunks of [`CHUNK_RULES`] rules shared between
//! classes (equal chunks are stored once). Each field has a base vector
//! (a value under no range: its rules' predicates fail, negated ones
//! hold), stored whole in an array; a class stores only the chunks where
//! it differs from the base (with addresses, the chunks holding the rules
//! of its prefixes) in a hash map, and its trie entry says which chunks
//! those are, so the stage looks up the hash map for them alone. Fields are added from the one that decides the most rules
//! on while the generation's rows, chunks and trie prefixes fit
//! ([`MAX_CLASS_ROWS`], [`MAX_CLASS_CHUNKS`], [`MAX_CLASS_PREFIXES`]); a
//! field that does not fit is left out (every rule a candidate for it),
//! logged and named in [`Prefilter::dropped`].

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    hash::{BuildHasherDefault, Hasher},
};

use linuxfp_ebpf_common::filter::{
    CHUNK_RULES, CHUNK_WORDS, CLASS_FIELDS, ClassValue, FilterRule, MAX_CLASS_CHUNKS,
    MAX_CLASS_PREFIXES, MAX_CLASS_ROWS, field, m,
};

/// One chunk of candidate bits.
pub type Chunk = [u64; CHUNK_WORDS];

/// A hash of whole words for the bit vectors and chunks the build groups
/// by value: with 10k rules the standard SipHash once took a tenth of a
/// 10k-rule plan to hash them. The keys come from the host's own ruleset,
/// so no flooding to guard against.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.write_u64(u64::from_ne_bytes(b));
        }
        for &b in words.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, w: u64) {
        // FxHash's step: rotate, mix in, multiply by a large odd constant.
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Maps keyed by bit vectors or chunks, hashed with [`WordHasher`].
type WordMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// The prefilter of one generation, without the generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefilter {
    /// Chunks per candidate vector.
    pub chunks: u32,
    /// The fields classified.
    pub fields: Vec<FieldClasses>,
    /// Each classified field's base vector: (field, chunk position, index
    /// in `bits`), every position.
    pub base: Vec<(u8, u32, u32)>,
    /// Class rows: (class, chunk position, index in `bits`), only where
    /// the class differs from its field's base.
    pub rows: Vec<(u32, u32, u32)>,
    /// The distinct chunks.
    pub bits: Vec<Chunk>,
    /// Fields that would help but do not fit the budget: (`field::*`,
    /// classes they would need).
    pub dropped: Vec<(u8, usize)>,
}

/// The classes of one field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldClasses {
    /// `field::*`.
    pub field: u8,
    /// How many classes.
    pub classes: usize,
    /// Trie entries: value (left aligned, big-endian), prefix bits, and
    /// the class with the chunks it has rows for.
    pub prefixes: Vec<([u8; 16], u32, ClassValue)>,
}

impl Prefilter {
    /// `1 << field` of the fields classified.
    pub fn field_bits(&self) -> u32 {
        self.fields.iter().fold(0, |b, f| b | 1 << f.field)
    }

    /// The candidate bits for a packet whose fields hold `values`
    /// (`field::*`, value as a number of the field's width: addresses in
    /// network order, interfaces by ifindex), as the stage
    /// computes them: a longest-prefix lookup per classified field, each
    /// chunk the class's row or else the base's, ANDed. Fields missing
    /// from `values` are not narrowed.
    pub fn candidates(&self, values: &[(u8, u128)]) -> Vec<u64> {
        let rows: HashMap<(u32, u32), u32> =
            self.rows.iter().map(|(k, c, id)| ((*k, *c), *id)).collect();
        let base: HashMap<(u8, u32), u32> =
            self.base.iter().map(|(f, c, id)| ((*f, *c), *id)).collect();
        let mut out = vec![u64::MAX; self.chunks as usize * CHUNK_WORDS];
        for f in &self.fields {
            let Some((_, v)) = values.iter().find(|(id, _)| *id == f.field) else {
                continue;
            };
            let v = match f.field {
                field::IIF | field::OIF => iface(*v as u32),
                _ => *v,
            };
            let key = aligned(v, width(f.field));
            let best = f
                .prefixes
                .iter()
                .filter(|(p, bits, _)| prefix_has(p, *bits, &key))
                .max_by_key(|(_, bits, _)| *bits);
            let Some((_, _, class)) = best else { continue };
            for c in 0..self.chunks {
                let id = if class.own >> c & 1 == 1 {
                    rows.get(&(class.class, c))
                } else {
                    base.get(&(f.field, c))
                };
                let Some(id) = id else { continue };
                for (w, b) in self.bits[*id as usize].iter().enumerate() {
                    out[c as usize * CHUNK_WORDS + w] &= b;
                }
            }
        }
        out
    }
}

/// What one rule says of one field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Constraint {
    /// Nothing the prefilter may use.
    Any,
    /// The rule matches only values in `[lo, hi]`.
    Inside(u128, u128),
    /// The rule matches only values outside `[lo, hi]`.
    Outside(u128, u128),
}

/// Bits of a field's value.
fn width(f: u8) -> u32 {
    match f {
        field::SADDR | field::DADDR => 128,
        field::IIF | field::OIF => 32,
        field::SPORT | field::DPORT => 16,
        _ => 8,
    }
}

fn max_of(width: u32) -> u128 {
    if width >= 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    }
}

/// An ifindex as the stage keys it (native byte order, as set elements)
/// read as a big-endian number: only ever compared for equality.
fn iface(ifindex: u32) -> u128 {
    u32::from_be_bytes(ifindex.to_ne_bytes()).into()
}

/// `v` as the trie's value bytes: big-endian, left aligned.
fn aligned(v: u128, width: u32) -> [u8; 16] {
    if width >= 128 {
        v.to_be_bytes()
    } else {
        (v << (128 - width)).to_be_bytes()
    }
}

fn prefix_has(p: &[u8; 16], bits: u32, v: &[u8; 16]) -> bool {
    let (p, v) = (u128::from_be_bytes(*p), u128::from_be_bytes(*v));
    bits == 0 || (p ^ v) >> (128 - bits) == 0
}

/// An address predicate as a range: `(a & mask) == want` over 16 bytes.
/// `None` when no address satisfies it or the mask is not a prefix.
fn address_range(want: &[u8; 16], mask: &[u8; 16]) -> Option<(u128, u128)> {
    let (w, msk) = (u128::from_be_bytes(*want), u128::from_be_bytes(*mask));
    let prefix = msk.leading_ones();
    let contiguous = prefix == 128 || msk << prefix == 0;
    (contiguous && w & !msk == 0).then_some((w, w | !msk))
}

fn constraint(r: &FilterRule, f: u8) -> Constraint {
    let (bit, range, negatable) = match f {
        field::IIF => (m::IIF, Some((iface(r.iif), iface(r.iif))), true),
        field::OIF => (m::OIF, Some((iface(r.oif), iface(r.oif))), true),
        field::SADDR => (m::SADDR, address_range(&r.saddr, &r.smask), true),
        field::DADDR => (m::DADDR, address_range(&r.daddr, &r.dmask), true),
        field::L4PROTO => (m::L4PROTO, Some((r.l4proto.into(), r.l4proto.into())), true),
        field::SPORT => (
            m::SPORT,
            Some((r.sport[0].into(), r.sport[1].into())),
            false,
        ),
        field::DPORT => (
            m::DPORT,
            Some((r.dport[0].into(), r.dport[1].into())),
            false,
        ),
        _ => return Constraint::Any,
    };
    if r.matches & bit == 0 {
        return Constraint::Any;
    }
    match range {
        Some((lo, hi)) if lo <= hi => {
            if r.negate & bit == 0 {
                Constraint::Inside(lo, hi)
            } else if negatable {
                Constraint::Outside(lo, hi)
            } else {
                Constraint::Any
            }
        }
        _ => Constraint::Any,
    }
}

/// One field's classes before they are placed in the budget.
struct Draft {
    field: u8,
    /// Rules the field decides (a predicate the prefilter uses).
    decided: usize,
    /// The vector of a value no range holds.
    base: Vec<u64>,
    /// Per class, its candidate vector: the chunks where it differs from
    /// `base`.
    vectors: Vec<Sparse>,
    /// Per class, its trie prefixes (value, bits).
    prefixes: Vec<Vec<([u8; 16], u32)>>,
}

impl Draft {
    fn prefix_count(&self) -> usize {
        self.prefixes.iter().map(Vec::len).sum()
    }
}

/// What one generation's prefilter may take of the maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Class rows.
    pub rows: usize,
    /// Distinct chunks.
    pub chunks: usize,
    /// Trie prefixes.
    pub prefixes: usize,
}

impl Budget {
    /// The maps' share of one generation.
    pub const MAPS: Budget = Budget {
        rows: MAX_CLASS_ROWS as usize,
        chunks: MAX_CLASS_CHUNKS as usize,
        prefixes: MAX_CLASS_PREFIXES as usize,
    };
}

/// The prefilter of `rules` (one generation, as laid out), within the
/// maps' budget.
pub fn build(rules: &[FilterRule]) -> Prefilter {
    build_within(rules, Budget::MAPS)
}

/// The prefilter of `rules` within `budget`.
pub fn build_within(rules: &[FilterRule], budget: Budget) -> Prefilter {
    let chunks = rules.len().div_ceil(CHUNK_RULES as usize);
    let mut out = Prefilter {
        chunks: chunks as u32,
        ..Prefilter::default()
    };
    if chunks == 0 {
        return out;
    }
    let mut drafts: Vec<Draft> = Vec::new();
    for f in CLASS_FIELDS {
        match draft(rules, f, chunks, budget) {
            Ok(Some(d)) => drafts.push(d),
            Ok(None) => {}
            Err(classes) => out.dropped.push((f, classes)),
        }
    }
    // The fields that decide the most rules first (a ruleset dispatching
    // on destinations gains most from those), the cheapest among equals.
    drafts.sort_by_key(|d| (std::cmp::Reverse(d.decided), d.vectors.len(), d.field));
    let mut chunk_ids: WordMap<Chunk, u32> = WordMap::default();
    let mut prefixes = 0usize;
    let mut next_class = 0u32;
    for d in drafts {
        // Rows: every chunk of the base, and each class's chunks that
        // differ from it.
        let base: Vec<Chunk> = d.base.chunks(CHUNK_WORDS).map(to_chunk).collect();
        let mut rows: Vec<(u32, u32, Chunk)> = Vec::new();
        let mut own = vec![0u32; d.vectors.len()];
        for (k, v) in d.vectors.iter().enumerate() {
            for (c, ch) in v {
                rows.push((next_class + k as u32, *c, *ch));
                own[k] |= 1 << c;
            }
        }
        let new_chunks: HashSet<&Chunk, BuildHasherDefault<WordHasher>> = rows
            .iter()
            .map(|(_, _, c)| c)
            .chain(&base)
            .filter(|c| !chunk_ids.contains_key(*c))
            .collect();
        let fits = out.rows.len() + rows.len() <= budget.rows
            && out.bits.len() + new_chunks.len() <= budget.chunks
            && prefixes + d.prefix_count() <= budget.prefixes;
        if !fits {
            tracing::info!(
                field = d.field,
                classes = d.vectors.len(),
                rows = rows.len(),
                prefixes = d.prefix_count(),
                "prefilter: field left out, its classes exceed the map budget"
            );
            out.dropped.push((d.field, d.vectors.len()));
            continue;
        }
        prefixes += d.prefix_count();
        let mut intern = |ch: Chunk| {
            let next = out.bits.len() as u32;
            let id = *chunk_ids.entry(ch).or_insert(next);
            if id == next {
                out.bits.push(ch);
            }
            id
        };
        let base_ids: Vec<u32> = base.into_iter().map(&mut intern).collect();
        let row_ids: Vec<(u32, u32, u32)> = rows
            .into_iter()
            .map(|(class, c, ch)| (class, c, intern(ch)))
            .collect();
        out.base.extend(
            base_ids
                .into_iter()
                .enumerate()
                .map(|(c, id)| (d.field, c as u32, id)),
        );
        out.rows.extend(row_ids);
        let mut fc = FieldClasses {
            field: d.field,
            classes: d.vectors.len(),
            prefixes: Vec::new(),
        };
        for (k, ps) in d.prefixes.iter().enumerate() {
            let class = ClassValue {
                class: next_class + k as u32,
                own: own[k],
            };
            fc.prefixes
                .extend(ps.iter().map(|(p, bits)| (*p, *bits, class)));
        }
        next_class += d.vectors.len() as u32;
        out.fields.push(fc);
    }
    out.dropped.sort_unstable();
    out
}

fn to_chunk(words: &[u64]) -> Chunk {
    let mut c = [u64::MAX; CHUNK_WORDS];
    c[..words.len()].copy_from_slice(words);
    c
}

fn clear(v: &mut [u64], i: usize) {
    v[i / 64] &= !(1u64 << (i % 64));
}

fn set(v: &mut [u64], i: usize) {
    v[i / 64] |= 1u64 << (i % 64);
}

fn bit(v: &[u64], i: usize) -> bool {
    v[i / 64] & (1u64 << (i % 64)) != 0
}

fn flip(v: &mut [u64], i: usize) {
    v[i / 64] ^= 1u64 << (i % 64);
}

/// The word bit `i` contributes to a vector's hash in [`by_intervals`]
/// (SplitMix64 of `i`: well spread, so unequal vectors rarely collide).
fn bit_key(i: usize) -> u64 {
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The classes of field `f`: `Ok(None)` when no rule is decided by it
/// (one class: nothing to gain), `Err(classes)` when it alone exceeds
/// the budget.
fn draft(
    rules: &[FilterRule],
    f: u8,
    chunks: usize,
    budget: Budget,
) -> Result<Option<Draft>, usize> {
    let w = width(f);
    let cons: Vec<Constraint> = rules.iter().map(|r| constraint(r, f)).collect();
    let decided = cons.iter().filter(|c| **c != Constraint::Any).count();
    if decided == 0 {
        return Ok(None);
    }
    // A value no range holds: Inside rules cannot match, the rest can.
    let mut base = vec![u64::MAX; chunks * CHUNK_WORDS];
    for (i, c) in cons.iter().enumerate() {
        if matches!(c, Constraint::Inside(..)) {
            clear(&mut base, i);
        }
    }
    let classes = if matches!(f, field::SPORT | field::DPORT) {
        by_intervals(&cons, &base, w, budget)?
    } else {
        by_prefixes(&cons, &base, w, budget)?
    };
    if classes.len() == 1 {
        return Ok(None);
    }
    let (vectors, prefixes) = classes.into_iter().unzip();
    Ok(Some(Draft {
        field: f,
        decided,
        base,
        vectors,
        prefixes,
    }))
}

/// A vector as the chunks (index, bits) where it differs from the base,
/// in chunk order: a class of a 10k-rule chain usually differs in one of
/// 20 chunks, and a vector per class made whole was 12 MB per field.
type Sparse = Vec<(u32, Chunk)>;

/// A class: its vector and its trie prefixes.
type Class = (Sparse, Vec<([u8; 16], u32)>);

/// `v` as the chunks where it differs from `base` (both whole vectors).
fn sparse_of(v: &[u64], base: &[u64]) -> Sparse {
    v.chunks(CHUNK_WORDS)
        .zip(base.chunks(CHUNK_WORDS))
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(c, (a, _))| (c as u32, to_chunk(a)))
        .collect()
}

/// Classes of a field whose ranges are all prefixes (addresses, the
/// protocol, interfaces): one per distinct prefix `Q`, holding the values
/// whose longest matching prefix is `Q`, plus the values under none. A
/// value of class `Q` is in a range `P` exactly when `P` contains `Q`
/// (were `P` inside `Q`, the value's longest match would be `P`).
fn by_prefixes(
    cons: &[Constraint],
    base: &[u64],
    w: u32,
    budget: Budget,
) -> Result<Vec<Class>, usize> {
    let mut by_prefix: HashMap<(u128, u32), Vec<(usize, bool)>> = HashMap::new();
    for (i, c) in cons.iter().enumerate() {
        let (lo, hi, inside) = match *c {
            Constraint::Inside(lo, hi) => (lo, hi, true),
            Constraint::Outside(lo, hi) => (lo, hi, false),
            Constraint::Any => continue,
        };
        // Ranges here come from masks and exact values: prefixes.
        let len = w - (hi - lo).count_ones();
        by_prefix.entry((lo, len)).or_default().push((i, inside));
    }
    if by_prefix.len() > budget.prefixes {
        return Err(by_prefix.len());
    }
    let lens: BTreeSet<u32> = by_prefix.keys().map(|(_, l)| *l).collect();
    let mut classes: Vec<Class> = Vec::new();
    let mut class_of: WordMap<Vec<u64>, usize> = WordMap::default();
    // A vector is copied only when it makes a new class.
    let mut add = |v: &[u64], p: ([u8; 16], u32), classes: &mut Vec<Class>| {
        let k = match class_of.get(v) {
            Some(k) => *k,
            None => {
                let next = classes.len();
                class_of.insert(v.to_vec(), next);
                classes.push((sparse_of(v, base), Vec::new()));
                next
            }
        };
        classes[k].1.push(p);
    };
    if !by_prefix.contains_key(&(0, 0)) {
        add(base, ([0; 16], 0), &mut classes);
    }
    let mut prefixes: Vec<&(u128, u32)> = by_prefix.keys().collect();
    prefixes.sort_unstable();
    let mut v = base.to_vec();
    for &(q, qlen) in prefixes {
        v.copy_from_slice(base);
        for &len in lens.range(..=qlen) {
            let p = if len == 0 {
                0
            } else {
                q & (max_of(w) << (w - len) & max_of(w))
            };
            for (i, inside) in by_prefix.get(&(p, len)).into_iter().flatten() {
                if *inside {
                    set(&mut v, *i);
                } else {
                    clear(&mut v, *i);
                }
            }
        }
        add(&v, (aligned(q, w), qlen), &mut classes);
    }
    Ok(classes)
}

/// Classes of a field of ranges (ports): the ranges' bounds split the
/// field into intervals in which every range is all in or all out;
/// adjacent intervals with equal vectors merge, equal vectors make one
/// class, written as the prefixes covering its intervals (the class with
/// the most prefixes is the catch-all, prefix 0, instead).
fn by_intervals(
    cons: &[Constraint],
    base: &[u64],
    w: u32,
    budget: Budget,
) -> Result<Vec<Class>, usize> {
    let max = max_of(w);
    let mut bounds = vec![0u128];
    for c in cons {
        if let Constraint::Inside(lo, hi) | Constraint::Outside(lo, hi) = *c {
            bounds.push(lo);
            if hi < max {
                bounds.push(hi + 1);
            }
        }
    }
    bounds.sort_unstable();
    bounds.dedup();
    // Classes are at most the intervals: far more intervals than the
    // budget has rows for would only build vectors to throw away.
    if bounds.len() > budget.rows {
        return Err(bounds.len());
    }
    let starts = bounds;
    // A rule's bit differs from the base exactly inside its range, so it
    // flips where the range starts and flips back after it ends. Sweep
    // the bounds in order with one vector, flipping those bits, rather
    // than building a vector per interval (10k port rules make 20k
    // intervals of 10k bits: 25 MB per field, for every change).
    let mut flips: Vec<(u128, usize)> = Vec::new();
    for (i, c) in cons.iter().enumerate() {
        if let Constraint::Inside(lo, hi) | Constraint::Outside(lo, hi) = *c {
            flips.push((lo, i));
            if hi < max {
                flips.push((hi + 1, i));
            }
        }
    }
    flips.sort_unstable();
    let mut cur = base.to_vec();
    // Per chunk, how many of its bits differ from the base now: the
    // chunks a class's vector is made of are those above 0.
    let mut differing = vec![0u32; base.len().div_ceil(CHUNK_WORDS)];
    // Classes are found by a hash of their vector kept up to date as bits
    // flip (each bit has its own key word), so no vector is hashed whole;
    // vectors with equal hashes are compared in full.
    let mut hash = 0u64;
    let mut first_with: WordMap<u64, usize> = WordMap::default();
    let mut next_with: Vec<Option<usize>> = Vec::new();
    let mut vectors: Vec<Sparse> = Vec::new();
    let mut intervals: Vec<Vec<(u128, u128)>> = Vec::new();
    // The run of equal vectors being extended: where it starts, its class.
    let mut run: Option<(u128, usize)> = None;
    let mut f = 0;
    for &start in &starts {
        let before = f;
        while f < flips.len() && flips[f].0 == start {
            let i = flips[f].1;
            flip(&mut cur, i);
            let c = i / CHUNK_RULES as usize;
            if bit(&cur, i) == bit(base, i) {
                differing[c] -= 1;
            } else {
                differing[c] += 1;
            }
            hash ^= bit_key(i);
            f += 1;
        }
        // No bit flipped (only where no range starts or ends, at 0): the
        // interval before goes on.
        if run.is_some() && f == before {
            continue;
        }
        if let Some((from, c)) = run.take() {
            intervals[c].push((from, start - 1));
        }
        let mut same = first_with.get(&hash).copied();
        while let Some(k) = same.filter(|k| !is_current(&vectors[*k], &cur, &differing)) {
            same = next_with[k];
        }
        let c = match same {
            Some(c) => c,
            None => {
                let next = vectors.len();
                next_with.push(first_with.insert(hash, next));
                vectors.push(current(&cur, &differing));
                intervals.push(Vec::new());
                next
            }
        };
        run = Some((start, c));
    }
    if let Some((from, c)) = run {
        intervals[c].push((from, max));
    }
    let mut prefixes: Vec<Vec<([u8; 16], u32)>> = intervals
        .iter()
        .map(|ivs| {
            ivs.iter()
                .flat_map(|(lo, hi)| cover(*lo, *hi, w))
                .map(|(v, bits)| (aligned(v, w), bits))
                .collect()
        })
        .collect();
    // Values of the catch-all's intervals match no other class's prefix.
    if let Some(widest) = (0..prefixes.len()).max_by_key(|c| prefixes[*c].len()) {
        prefixes[widest] = vec![([0; 16], 0)];
    }
    Ok(vectors.into_iter().zip(prefixes).collect())
}

/// Whether `v` is the sweep's current vector `cur` (whose chunks differing
/// from the base are those `differing` counts above 0).
fn is_current(v: &Sparse, cur: &[u64], differing: &[u32]) -> bool {
    let mut held = v.iter();
    let mut next = held.next();
    for (c, n) in differing.iter().enumerate() {
        match next {
            Some((k, ch)) if *k as usize == c => {
                let words = &cur[c * CHUNK_WORDS..(c + 1) * CHUNK_WORDS];
                if *n == 0 || ch[..] != *words {
                    return false;
                }
                next = held.next();
            }
            _ if *n != 0 => return false,
            _ => {}
        }
    }
    next.is_none()
}

/// The sweep's current vector, as its chunks differing from the base.
fn current(cur: &[u64], differing: &[u32]) -> Sparse {
    differing
        .iter()
        .enumerate()
        .filter(|(_, n)| **n != 0)
        .map(|(c, _)| {
            (
                c as u32,
                to_chunk(&cur[c * CHUNK_WORDS..(c + 1) * CHUNK_WORDS]),
            )
        })
        .collect()
}

/// The fewest prefixes (value, bits) of a `width`-bit field covering
/// exactly `[lo, hi]`.
fn cover(mut lo: u128, hi: u128, width: u32) -> Vec<(u128, u32)> {
    let mut out = Vec::new();
    loop {
        // The largest aligned block starting at `lo` within `hi`.
        let mut k = if lo == 0 {
            width
        } else {
            lo.trailing_zeros().min(width)
        };
        while k > 0 && (k >= 128 || (1u128 << k) - 1 > hi - lo) {
            if k >= 128 && lo == 0 && hi == u128::MAX {
                break;
            }
            k -= 1;
        }
        out.push((lo, width - k));
        if k >= 128 {
            return out;
        }
        match lo.checked_add(1u128 << k) {
            Some(next) if next <= hi && next > lo => lo = next,
            _ => return out,
        }
    }
}

#[cfg(test)]
mod tests;
