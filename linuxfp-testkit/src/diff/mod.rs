//! The differential harness: the same packet corpus through the same
//! topology, once with Linux alone and once with LinuxFP, and a comparison
//! of what left every interface.
//!
//! A run ([`run`]) opens a [`Capture`] on every receiving interface (a
//! [`Wire`]) before anything is sent, injects the corpus frame by frame
//! through [`Injector`]s (AF_PACKET, so any bytes at all can be sent),
//! then reads the captures until they have been quiet for a while, bounded
//! by a frame count and a deadline. The receivers are the hosts around the
//! device under test, so the captures hold what the device sent out of
//! each of its interfaces: forwarded frames, and the ICMP errors, ARP and
//! neighbour replies its kernel generated.
//!
//! [`compare`] normalises both runs ([`Normaliser`]: only what Linux itself
//! makes nondeterministic) and reports, per wire, the frames one run has
//! and the other has not, named by the corpus packet whose tag they carry
//! ([`frame::tag`]).
//!
//! The corpora for the router and the bridge are in [`corpus`]; the
//! firewall rulesets of the filter's test in [`rulesets`] and the corpus
//! drawn from a ruleset in [`rule_corpus`]; the testbeds prepared for a
//! deterministic run in [`bed`].

pub mod bed;
pub mod corpus;
pub mod frame;
pub mod rule_corpus;
pub mod rulesets;
mod socket;

use std::{
    collections::BTreeMap,
    fmt,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

pub use socket::{Capture, Injector, Stopped};

use crate::{error::Result, netns::Netns};

/// An interface the harness injects into and captures on.
#[derive(Debug, Clone, Copy)]
pub struct Wire<'a> {
    /// Its name in reports and in [`Probe::wire`] (`"s0"`, `"h2"`).
    pub label: &'a str,
    /// The namespace it lives in.
    pub ns: &'a Netns,
    /// The interface name there.
    pub ifname: &'a str,
}

/// One corpus packet: the frame and where it is sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Corpus-wide index; the tag in its payload (if it has room for one).
    pub id: u32,
    /// What it is, for reports.
    pub name: String,
    /// The label of the [`Wire`] it is injected on.
    pub wire: String,
    /// The frame, from the destination MAC on.
    pub frame: Vec<u8>,
}

/// A packet corpus: a warm-up (sent first, then the harness waits so the
/// device under test can settle, e.g. learn addresses and mirror them),
/// then the probes.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// Sent first.
    pub warmup: Vec<Probe>,
    /// Sent after the warm-up has settled.
    pub probes: Vec<Probe>,
}

impl Corpus {
    /// The next free id.
    fn next_id(&self) -> u32 {
        (self.warmup.len() + self.probes.len()) as u32
    }

    /// Adds a probe built by `build`, which gets the probe's tag to put in
    /// its payload.
    pub fn add(
        &mut self,
        wire: &str,
        name: impl Into<String>,
        build: impl FnOnce(&[u8]) -> Vec<u8>,
    ) {
        self.add_in(Phase::Probes, wire, name, build);
    }

    /// Adds a packet to `phase`, built as for [`Corpus::add`].
    pub fn add_in(
        &mut self,
        phase: Phase,
        wire: &str,
        name: impl Into<String>,
        build: impl FnOnce(&[u8]) -> Vec<u8>,
    ) {
        let probe = self.make(wire, name.into(), build);
        match phase {
            Phase::Warmup => self.warmup.push(probe),
            Phase::Probes => self.probes.push(probe),
        }
    }

    fn make(&self, wire: &str, name: String, build: impl FnOnce(&[u8]) -> Vec<u8>) -> Probe {
        let id = self.next_id();
        Probe {
            id,
            name,
            wire: wire.to_string(),
            frame: build(&frame::tag(id)),
        }
    }

    /// Every packet, warm-up first.
    pub fn all(&self) -> impl Iterator<Item = &Probe> {
        self.warmup.iter().chain(&self.probes)
    }

    /// The packet with this id.
    pub fn get(&self, id: u32) -> Option<&Probe> {
        self.all().find(|p| p.id == id)
    }

    /// Number of packets, warm-up included.
    pub fn len(&self) -> usize {
        self.warmup.len() + self.probes.len()
    }

    /// Whether there is no packet at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes the probes `excluded` names (documented known divergences);
    /// returns how many went.
    pub fn exclude(&mut self, excluded: impl Fn(&Probe) -> bool) -> usize {
        let before = self.probes.len();
        self.probes.retain(|p| !excluded(p));
        before - self.probes.len()
    }
}

/// The part of a [`Corpus`] a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sent first, then the device settles.
    Warmup,
    /// Sent after the warm-up has settled.
    Probes,
}

/// The bounds and pacing of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Pause after each injected frame (lets the receiving side's queues
    /// drain, so no frame is lost to a full backlog).
    pub gap: Duration,
    /// Pause after the warm-up.
    pub settle: Duration,
    /// A capture is done when nothing arrived for this long.
    pub quiet: Duration,
    /// Upper bound on reading the captures after the last frame was sent.
    pub max_wait: Duration,
    /// Upper bound on frames read per wire.
    pub max_frames: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            gap: Duration::from_micros(300),
            settle: Duration::from_millis(1500),
            quiet: Duration::from_millis(400),
            max_wait: Duration::from_secs(10),
            max_frames: 20_000,
        }
    }
}

/// What one run captured.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Per wire label, the frames received, in arrival order.
    pub frames: BTreeMap<String, Vec<Vec<u8>>>,
    /// Per wire label, why its capture stopped.
    pub stopped: BTreeMap<String, Stopped>,
    /// How long the run took, from opening the captures to the end of
    /// reading them.
    pub elapsed: Duration,
}

impl Run {
    /// Total frames captured.
    pub fn total(&self) -> usize {
        self.frames.values().map(Vec::len).sum()
    }
}

/// Injects `corpus` on `wires` and captures on all of them. Every probe's
/// wire must be among `wires`.
pub fn run(wires: &[Wire<'_>], corpus: &Corpus, opts: &Options) -> Result<Run> {
    let started = Instant::now();
    let mut captures = Vec::with_capacity(wires.len());
    let mut injectors = BTreeMap::new();
    for w in wires {
        captures.push((w.label, Capture::open(w.ns, w.ifname)?));
        injectors.insert(w.label, Injector::open(w.ns, w.ifname)?);
    }
    let send = |probes: &[Probe]| -> Result<()> {
        for p in probes {
            let inj = injectors
                .get(p.wire.as_str())
                .ok_or_else(|| crate::Error::Parse {
                    netns: "harness".into(),
                    command: format!("probe {} ({})", p.id, p.name),
                    detail: format!("no wire labelled {:?}", p.wire),
                })?;
            inj.send(&p.frame)?;
            std::thread::sleep(opts.gap);
        }
        Ok(())
    };
    send(&corpus.warmup)?;
    if !corpus.warmup.is_empty() {
        std::thread::sleep(opts.settle);
    }
    send(&corpus.probes)?;
    let deadline = Instant::now() + opts.max_wait;
    let mut out = Run::default();
    for (label, cap) in captures {
        let (frames, why) = cap.drain(opts.quiet, deadline, opts.max_frames)?;
        out.frames.insert(label.to_string(), frames);
        out.stopped.insert(label.to_string(), why);
    }
    out.elapsed = started.elapsed();
    Ok(out)
}

/// What the comparison leaves out or rewrites, because Linux itself does
/// not do it the same way twice:
/// - IPv4 identification of datagrams the device under test originates
///   (ICMP errors and replies: `ip_select_ident` hashes with a per-boot
///   secret and a time-based increment): set to 0 and, if the header
///   checksum was correct, the checksum recomputed, so a wrong checksum
///   still shows;
/// - multicast listener reports (IGMP, MLD), which Linux sends unsolicited
///   after random delays;
/// - the order of frames on a wire (each wire is compared as a multiset).
#[derive(Debug, Clone, Default)]
pub struct Normaliser {
    /// The device under test's own IPv4 addresses.
    pub own_ipv4: Vec<Ipv4Addr>,
}

impl Normaliser {
    /// The frame as compared, or `None` if it is not compared at all.
    pub fn normalise(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let mut f = frame.to_vec();
        let (ethertype, l3) = l3_of(&f)?;
        match ethertype {
            frame::ETH_P_IP if f.len() >= l3 + 20 => {
                let ihl = usize::from(f[l3] & 0x0F) * 4;
                let proto = f[l3 + 9];
                if proto == 2 {
                    // IGMP: every message a host sends is a report or leave.
                    return None;
                }
                let src = Ipv4Addr::new(f[l3 + 12], f[l3 + 13], f[l3 + 14], f[l3 + 15]);
                if self.own_ipv4.contains(&src) && ihl >= 20 && f.len() >= l3 + ihl {
                    let valid = frame::checksum(&f[l3..l3 + ihl]) == 0;
                    f[l3 + 4] = 0;
                    f[l3 + 5] = 0;
                    if valid {
                        f[l3 + 10] = 0;
                        f[l3 + 11] = 0;
                        let c = frame::checksum(&f[l3..l3 + ihl]);
                        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
                    }
                }
                Some(f)
            }
            frame::ETH_P_IPV6 if is_mld_report(&f, l3) => None,
            _ => Some(f),
        }
    }
}

/// The EtherType after any VLAN tags, and where the L3 header starts.
fn l3_of(f: &[u8]) -> Option<(u16, usize)> {
    let mut at = 12;
    loop {
        let t = u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]);
        if t == frame::ETH_P_8021Q || t == frame::ETH_P_8021AD {
            at += 4;
            continue;
        }
        return Some((t, at + 2));
    }
}

/// An MLDv1 report or done, or an MLDv2 report, behind at most a
/// hop-by-hop header (where Linux puts its router alert).
fn is_mld_report(f: &[u8], l3: usize) -> bool {
    let Some(mut next) = f.get(l3 + 6).copied() else {
        return false;
    };
    let mut at = l3 + 40;
    if next == frame::HOPOPTS {
        let (Some(n), Some(len)) = (f.get(at).copied(), f.get(at + 1).copied()) else {
            return false;
        };
        next = n;
        at += (usize::from(len) + 1) * 8;
    }
    next == frame::ICMPV6 && f.get(at).is_some_and(|t| matches!(t, 131 | 132 | 143))
}

/// Frames one run sent out of a wire and the other did not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireDiff {
    /// The wire's label.
    pub wire: String,
    /// Frames seen with Linux alone only (normalised).
    pub linux_only: Vec<Vec<u8>>,
    /// Frames seen with LinuxFP only (normalised).
    pub fast_only: Vec<Vec<u8>>,
}

/// The comparison of two runs.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per wire with any difference.
    pub diffs: Vec<WireDiff>,
    /// Frames compared per run (after normalisation), per wire: (Linux, LinuxFP).
    pub compared: BTreeMap<String, (usize, usize)>,
    /// Frames left out by the normaliser, both runs together.
    pub left_out: usize,
    /// Wires whose capture ended on its frame or time bound instead of
    /// going quiet, with the run (`"linux h2"`): what they sent may be
    /// incomplete, so the comparison does not hold.
    pub bounded: Vec<String>,
    /// Packets in the corpus.
    pub packets: usize,
    /// Frames captured (before normalisation): (Linux, LinuxFP).
    pub frames: (usize, usize),
    /// How long each run took: (Linux, LinuxFP).
    pub elapsed: (Duration, Duration),
    /// Names of the corpus packets, by id, for the report.
    names: BTreeMap<u32, String>,
}

impl Report {
    /// True if both runs sent exactly the same frames out of every wire
    /// and every capture ended quiet.
    pub fn is_empty(&self) -> bool {
        self.diffs.is_empty() && self.bounded.is_empty()
    }

    /// The ids of the corpus packets involved in a difference (by the tag
    /// in the differing frames).
    pub fn probes_involved(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .diffs
            .iter()
            .flat_map(|d| d.linux_only.iter().chain(&d.fast_only))
            .filter_map(|f| frame::find_tag(f))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Compares two runs of `corpus`, after `norm`.
pub fn compare(linux: &Run, fast: &Run, corpus: &Corpus, norm: &Normaliser) -> Report {
    let mut report = Report {
        names: corpus.all().map(|p| (p.id, p.name.clone())).collect(),
        packets: corpus.len(),
        frames: (linux.total(), fast.total()),
        elapsed: (linux.elapsed, fast.elapsed),
        ..Report::default()
    };
    for (run, which) in [(linux, "linux"), (fast, "linuxfp")] {
        for (wire, why) in &run.stopped {
            if *why != Stopped::Quiet {
                report.bounded.push(format!("{which} {wire} ({why:?})"));
            }
        }
    }
    let empty = Vec::new();
    let wires: std::collections::BTreeSet<&String> =
        linux.frames.keys().chain(fast.frames.keys()).collect();
    for wire in wires {
        let mut count = |frames: &Vec<Vec<u8>>| {
            let mut kept: Vec<Vec<u8>> = Vec::with_capacity(frames.len());
            for f in frames {
                match norm.normalise(f) {
                    Some(n) => kept.push(n),
                    None => report.left_out += 1,
                }
            }
            kept.sort();
            kept
        };
        let a = count(linux.frames.get(wire).unwrap_or(&empty));
        let b = count(fast.frames.get(wire).unwrap_or(&empty));
        report.compared.insert(wire.clone(), (a.len(), b.len()));
        let (linux_only, fast_only) = multiset_difference(&a, &b);
        if !linux_only.is_empty() || !fast_only.is_empty() {
            report.diffs.push(WireDiff {
                wire: wire.clone(),
                linux_only,
                fast_only,
            });
        }
    }
    report
}

/// `a − b` and `b − a` of two sorted multisets.
fn multiset_difference(a: &[Vec<u8>], b: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut i, mut j) = (0, 0);
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                only_a.push(x.clone());
                i += 1;
            }
            (Some(_), Some(y)) => {
                only_b.push(y.clone());
                j += 1;
            }
            (Some(x), None) => {
                only_a.push(x.clone());
                i += 1;
            }
            (None, Some(y)) => {
                only_b.push(y.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_a, only_b)
}

/// At most this many bytes of a frame are printed.
const SHOWN: usize = 96;

fn hex(bytes: &[u8]) -> String {
    let mut s: String = bytes
        .iter()
        .take(SHOWN)
        .map(|b| format!("{b:02x}"))
        .collect();
    if bytes.len() > SHOWN {
        s.push('…');
    }
    s
}

impl Report {
    fn describe(&self, f: &[u8]) -> String {
        match frame::find_tag(f) {
            Some(id) => format!(
                "probe {id} ({})",
                self.names
                    .get(&id)
                    .map_or("not in the corpus", String::as_str)
            ),
            None => "no tag".to_string(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} packets; captured {} frames with Linux alone (run {:?}), {} with LinuxFP ({:?})",
            self.packets, self.frames.0, self.elapsed.0, self.frames.1, self.elapsed.1
        )?;
        if !self.bounded.is_empty() {
            writeln!(f, "captures that hit a bound: {}", self.bounded.join(", "))?;
        }
        if self.diffs.is_empty() {
            write!(f, "no differences;")?;
        } else {
            writeln!(f, "{} wire(s) differ:", self.diffs.len())?;
        }
        for d in &self.diffs {
            writeln!(
                f,
                "  {}: {} frame(s) only with Linux, {} only with LinuxFP",
                d.wire,
                d.linux_only.len(),
                d.fast_only.len()
            )?;
            for (side, frames) in [("linux  ", &d.linux_only), ("linuxfp", &d.fast_only)] {
                for fr in frames {
                    writeln!(
                        f,
                        "    {side} {} [{} B] {}",
                        self.describe(fr),
                        fr.len(),
                        hex(fr)
                    )?;
                }
            }
        }
        write!(f, " compared (linux, linuxfp) per wire: ")?;
        for (w, (a, b)) in &self.compared {
            write!(f, "{w}: ({a}, {b}) ")?;
        }
        write!(f, "; left out by the normaliser: {}", self.left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multisets_keep_duplicates() {
        let v = |x: u8| vec![x];
        let (a, b) = multiset_difference(&[v(1), v(1), v(2), v(4)], &[v(1), v(3), v(4), v(4)]);
        assert_eq!(a, [v(1), v(2)]);
        assert_eq!(b, [v(3), v(4)]);
    }

    fn icmp_from(src: Ipv4Addr, id: u16) -> Vec<u8> {
        let mut h = frame::Ipv4::new(frame::ICMP, src, Ipv4Addr::new(10, 1, 0, 2));
        h.id = id;
        frame::ether(
            [2; 6],
            [4; 6],
            frame::ETH_P_IP,
            &h.packet(&frame::icmp4(11, 0, [0; 4], &[])),
        )
    }

    #[test]
    fn own_ipv4_ids_are_normalised_and_others_kept() {
        let own = Ipv4Addr::new(10, 1, 0, 1);
        let norm = Normaliser {
            own_ipv4: vec![own],
        };
        let a = norm.normalise(&icmp_from(own, 7)).expect("kept");
        let b = norm.normalise(&icmp_from(own, 9)).expect("kept");
        assert_eq!(a, b);
        assert_eq!(frame::checksum(&a[14..34]), 0, "checksum recomputed");
        let other = Ipv4Addr::new(10, 2, 0, 2);
        assert_ne!(
            norm.normalise(&icmp_from(other, 7)),
            norm.normalise(&icmp_from(other, 9))
        );
        // A wrong checksum stays wrong.
        let mut bad = icmp_from(own, 7);
        bad[24] ^= 1;
        let n = norm.normalise(&bad).expect("kept");
        assert_ne!(frame::checksum(&n[14..34]), 0);
    }

    #[test]
    fn listener_reports_are_left_out() {
        let src = "fe80::1".parse().expect("addr");
        let dst = "ff02::16".parse().expect("addr");
        let mut h = frame::Ipv6::new(frame::HOPOPTS, src, dst);
        h.hop_limit = 1;
        let mut p = frame::ext6(frame::ICMPV6, &[5, 2, 0, 0]);
        p.extend(frame::icmp6(src, dst, 143, 0, [0; 4], &[]));
        let f = frame::ether(
            [0x33, 0x33, 0, 0, 0, 0x16],
            [2; 6],
            frame::ETH_P_IPV6,
            &h.packet(&p),
        );
        assert_eq!(Normaliser::default().normalise(&f), None);
        let echo = frame::icmp6(src, dst, 128, 0, [0; 4], &[]);
        let g = frame::ether(
            [2; 6],
            [4; 6],
            frame::ETH_P_IPV6,
            &frame::Ipv6::new(frame::ICMPV6, src, dst).packet(&echo),
        );
        assert!(Normaliser::default().normalise(&g).is_some());
    }

    #[test]
    fn reports_name_the_probe() {
        let mut c = Corpus::default();
        c.add("s0", "a probe", |t| frame::ether([1; 6], [2; 6], 0x88B5, t));
        let mut linux = Run::default();
        linux
            .frames
            .insert("d0".into(), vec![c.probes[0].frame.clone()]);
        let fast = Run::default();
        let r = compare(&linux, &fast, &c, &Normaliser::default());
        assert!(!r.is_empty());
        assert_eq!(r.probes_involved(), [0]);
        let text = r.to_string();
        assert!(text.contains("probe 0 (a probe)"), "{text}");
    }
}
