// SPDX-License-Identifier: MIT OR Apache-2.0
//! Benchmark traffic without pktgen: frames injected with
//! `BPF_PROG_TEST_RUN` in live-frames mode (as xdp-trafficgen does) and
//! counted by an XDP sink at the receiver.
//!
//! Both must be used from a thread inside the namespace that owns the
//! interface (ifindexes are resolved in the caller's namespace).
//!
//! Minimum kernel version: 5.18 (`BPF_F_TEST_XDP_LIVE_FRAMES`).
#![deny(missing_docs)]

pub mod frame;

use aya::{
    Ebpf, EbpfLoader,
    maps::{DevMap, PerCpuArray, PerCpuValues},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode, xdp::XdpLink},
};

static OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/linuxfp-trafficgen-ebpf"));

const TEMPLATE_MAX: usize = 128;

/// Errors of the generator and the sink.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// Loading the object failed.
    #[error("loading the traffic object")]
    Load(#[source] Box<aya::EbpfError>),
    /// A program operation failed.
    #[error("{what}")]
    Program {
        /// What was being done.
        what: String,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map operation failed.
    #[error("sink counter map")]
    Map(#[source] aya::maps::MapError),
    /// Setting the ceiling's egress in its devmap failed.
    #[error("bare_redirect devmap")]
    Devmap(#[source] aya::maps::xdp::XdpMapError),
    /// Pinning the sending thread to one CPU failed.
    #[error("pinning the generator's thread to CPU {cpu}")]
    Pin {
        /// The CPU asked for.
        cpu: usize,
        /// The kernel's error.
        #[source]
        source: std::io::Error,
    },
    /// The header template is too long.
    #[error("header template of {0} bytes exceeds {TEMPLATE_MAX}")]
    Template(usize),
}

fn prog_err(what: &str) -> impl FnOnce(aya::programs::ProgramError) -> TrafficError + '_ {
    move |source| TrafficError::Program {
        what: what.to_string(),
        source,
    }
}

/// Injects copies of one frame out of an interface at full speed.
pub struct Generator {
    ebpf: Ebpf,
    frame: Vec<u8>,
}

impl Generator {
    /// Loads a generator for `frame`: its first `header_len` bytes (rounded
    /// up to 8) are rewritten on every transmission.
    pub fn new(frame: &[u8], header_len: usize) -> Result<Self, TrafficError> {
        Self::with_timestamp(frame, header_len, 0)
    }

    /// Like [`Generator::new`], and also stamps the send time
    /// (`bpf_ktime_get_ns`, 8 bytes) at `ts_offset` in every frame, for a
    /// [`Sink`] that measures latency. The stamp must lie past the header.
    pub fn with_timestamp(
        frame: &[u8],
        header_len: usize,
        ts_offset: usize,
    ) -> Result<Self, TrafficError> {
        Self::paced(frame, header_len, ts_offset, 0)
    }

    /// Like [`Generator::with_timestamp`], and sends at most one frame per
    /// `interval_ns` (0: unpaced). Iterations over the budget are dropped
    /// before transmission, so [`Generator::send`]'s count is iterations,
    /// not frames sent: size it by time (the drop path costs ~50 ns).
    pub fn paced(
        frame: &[u8],
        header_len: usize,
        ts_offset: usize,
        interval_ns: u64,
    ) -> Result<Self, TrafficError> {
        Self::load(frame, header_len, ts_offset, interval_ns, None)
    }

    /// Like [`Generator::new`] for a UDP/IPv4 frame (as [`frame::udp4`]
    /// builds it), with every frame a new flow: the ports, read as one
    /// big-endian number (source port high), count up from the frame's
    /// through `flows` values (per CPU, then again), and the UDP checksum
    /// is 0 (none). More flows than a per-flow cache holds make every
    /// frame of a run a cache miss.
    pub fn new_flows(frame: &[u8], flows: u32) -> Result<Self, TrafficError> {
        Self::load(
            frame,
            frame::UDP4_HEADERS,
            0,
            0,
            Some((frame::UDP4_HEADERS - 8, flows)),
        )
    }

    /// Loads the generator; `flows`: the UDP header's offset and how many
    /// source ports to cycle through.
    fn load(
        frame: &[u8],
        header_len: usize,
        ts_offset: usize,
        interval_ns: u64,
        flows: Option<(usize, u32)>,
    ) -> Result<Self, TrafficError> {
        let words = header_len.div_ceil(8);
        let stamp_ok = ts_offset == 0 || (ts_offset >= words * 8 && ts_offset + 8 <= frame.len());
        if words * 8 > TEMPLATE_MAX || words * 8 > frame.len() || !stamp_ok {
            return Err(TrafficError::Template(header_len));
        }
        let (udp_offset, flows) = flows.unwrap_or((0, 0));
        let ports_base = frame
            .get(udp_offset..udp_offset + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if flows != 0 && udp_offset + 8 > words * 8 {
            return Err(TrafficError::Template(header_len));
        }
        let mut template = [0u64; TEMPLATE_MAX / 8];
        for (i, w) in template.iter_mut().enumerate().take(words) {
            let mut b = [0u8; 8];
            b.copy_from_slice(&frame[i * 8..i * 8 + 8]);
            *w = u64::from_ne_bytes(b);
        }
        let mut ebpf = EbpfLoader::new()
            .override_global("GEN_TEMPLATE", &template, true)
            .override_global("GEN_WORDS", &(words as u32), true)
            .override_global("GEN_TS_OFFSET", &(ts_offset as u32), true)
            .override_global("GEN_INTERVAL_NS", &interval_ns, true)
            .override_global("GEN_FLOWS", &flows, true)
            .override_global("GEN_UDP_OFFSET", &(udp_offset as u32), true)
            .override_global("GEN_PORTS_BASE", &ports_base, true)
            .load(OBJ)
            .map_err(|e| TrafficError::Load(Box::new(e)))?;
        let prog: &mut Xdp = program(&mut ebpf, "gen_tx")?;
        prog.load().map_err(prog_err("loading gen_tx"))?;
        Ok(Generator {
            ebpf,
            frame: frame.to_vec(),
        })
    }

    /// Sends `count` frames out of `ifindex` (in the caller's namespace),
    /// blocking until done.
    ///
    /// The calling thread is pinned to one CPU ([`generator_cpu`]) for the
    /// call, and its affinity restored after. Everything the frames set off
    /// on their way (each veth's NAPI poll, the forwarder's program, the
    /// sink) runs in softirq on that same CPU, so a rate measured this way
    /// is one core's, and repeatable: unpinned, the scheduler may move the
    /// thread between batches and a run mixes two CPUs' caches.
    pub fn send(&mut self, ifindex: u32, count: u32) -> Result<(), TrafficError> {
        let _pinned = Pinned::to(generator_cpu())?;
        let prog: &mut Xdp = program(&mut self.ebpf, "gen_tx")?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
        // The kernel wants data_end = frame length and nothing before data.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(self.frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let opts = TestRunOptions {
            data_in: Some(&self.frame),
            ctx_in: Some(&ctx),
            repeat: count,
            attrs: TestRunAttrs::new().xdp_live_frames(64),
            ..TestRunOptions::new()
        };
        prog.test_run(opts)
            .map_err(prog_err("BPF_PROG_TEST_RUN live frames"))?;
        Ok(())
    }
}

/// The CPU [`Generator::send`] runs on: the last online one (CPU 0 takes
/// most of the host's housekeeping interrupts).
pub fn generator_cpu() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get() - 1)
}

/// The calling thread pinned to one CPU until dropped, when its earlier
/// affinity is restored.
struct Pinned {
    before: libc::cpu_set_t,
}

impl Pinned {
    fn to(cpu: usize) -> Result<Self, TrafficError> {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: cpu_set_t is plain bits; all zeroes is the empty set.
        let mut before: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let mut only: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: both sets are valid for `size` bytes; pid 0 is this
        // thread; CPU_SET bounds-checks `cpu` against the set's size.
        let rc = unsafe {
            libc::CPU_SET(cpu, &mut only);
            if libc::sched_getaffinity(0, size, &mut before) != 0 {
                -1
            } else {
                libc::sched_setaffinity(0, size, &only)
            }
        };
        if rc != 0 {
            return Err(TrafficError::Pin {
                cpu,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Pinned { before })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: restores the set read in `to`; a failure leaves the
        // thread pinned, which is harmless.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.before);
        }
    }
}

/// Counts and drops frames arriving on an interface.
pub struct Sink {
    ebpf: Ebpf,
    _link: XdpLink,
}

impl Sink {
    /// Attaches a counting sink to `ifindex` (in the caller's namespace).
    /// Detached when dropped.
    pub fn attach(ifindex: u32) -> Result<Self, TrafficError> {
        Self::attach_with_latency(ifindex, 0)
    }

    /// Like [`Sink::attach`], and also measures one-way latency from the
    /// generator's stamp at `ts_offset`. Frames whose 8 bytes there are zero
    /// (not stamped) are counted without a clock read.
    pub fn attach_with_latency(ifindex: u32, ts_offset: usize) -> Result<Self, TrafficError> {
        let mut ebpf = EbpfLoader::new()
            .override_global("SINK_TS_OFFSET", &(ts_offset as u32), true)
            .load(OBJ)
            .map_err(|e| TrafficError::Load(Box::new(e)))?;
        let prog: &mut Xdp = program(&mut ebpf, "sink_count")?;
        prog.load().map_err(prog_err("loading sink_count"))?;
        let id = prog
            .attach_to_if_index(ifindex, XdpMode::default())
            .map_err(prog_err("attaching the sink"))?;
        let link = prog
            .take_link(id)
            .map_err(prog_err("taking the sink link"))?;
        Ok(Sink { ebpf, _link: link })
    }

    /// Packets and bytes counted so far.
    pub fn counts(&self) -> Result<(u64, u64), TrafficError> {
        let c = self.raw_counts()?;
        Ok((c[0], c[1]))
    }

    fn array(&self, name: &str) -> Result<PerCpuArray<&aya::maps::MapData, u64>, TrafficError> {
        let map = self.ebpf.map(name).ok_or_else(|| {
            TrafficError::Map(aya::maps::MapError::InvalidName { name: name.into() })
        })?;
        PerCpuArray::try_from(map).map_err(TrafficError::Map)
    }

    fn raw_counts(&self) -> Result<[u64; 5], TrafficError> {
        let array = self.array("SINK_COUNT")?;
        let mut out = [0u64; 5];
        for (i, o) in out.iter_mut().enumerate() {
            *o = sum(array.get(&(i as u32), 0).map_err(TrafficError::Map)?);
        }
        Ok(out)
    }

    /// The latency measured so far (since the sink was attached).
    pub fn latency(&self) -> Result<Latency, TrafficError> {
        let c = self.raw_counts()?;
        let hist = self.array("SINK_LATENCY")?;
        let mut buckets = Vec::with_capacity(LAT_BUCKETS as usize);
        for i in 0..LAT_BUCKETS {
            buckets.push(sum(hist.get(&i, 0).map_err(TrafficError::Map)?));
        }
        Ok(Latency {
            samples: c[2],
            sum_ns: c[3],
            sum_sq_ns: c[4],
            buckets,
        })
    }
}

fn sum(v: PerCpuValues<u64>) -> u64 {
    v.iter().sum()
}

/// The ceiling a forwarder is measured against: an XDP program on one
/// interface that writes fixed MACs and redirects every frame to another
/// interface, with no parsing, lookup or check at all. Detached when
/// dropped.
pub struct BareRedirect {
    _ebpf: Ebpf,
    _link: XdpLink,
}

impl BareRedirect {
    /// Attaches to `ingress`, sending every frame out of `egress` with
    /// destination `dst` and source `src` (interfaces in the caller's
    /// namespace). A veth egress needs NAPI on its peer (an XDP program
    /// there, such as a [`Sink`]).
    pub fn attach(
        ingress: u32,
        egress: u32,
        dst: [u8; 6],
        src: [u8; 6],
    ) -> Result<Self, TrafficError> {
        let mut macs = [0u8; 16];
        macs[..6].copy_from_slice(&dst);
        macs[6..12].copy_from_slice(&src);
        let words = [
            u64::from_ne_bytes(macs[..8].try_into().unwrap_or_default()),
            u64::from_ne_bytes(macs[8..].try_into().unwrap_or_default()),
        ];
        let mut ebpf = EbpfLoader::new()
            .override_global("BARE_MACS", &words, true)
            .load(OBJ)
            .map_err(|e| TrafficError::Load(Box::new(e)))?;
        let mut ports: DevMap<_> =
            DevMap::try_from(ebpf.map_mut("BARE_PORTS").ok_or_else(|| {
                TrafficError::Map(aya::maps::MapError::InvalidName {
                    name: "BARE_PORTS".into(),
                })
            })?)
            .map_err(TrafficError::Map)?;
        ports
            .set(0, egress, None, 0)
            .map_err(TrafficError::Devmap)?;
        let prog: &mut Xdp = program(&mut ebpf, "bare_redirect")?;
        prog.load().map_err(prog_err("loading bare_redirect"))?;
        let id = prog
            .attach_to_if_index(ingress, XdpMode::default())
            .map_err(prog_err("attaching bare_redirect"))?;
        let link = prog
            .take_link(id)
            .map_err(prog_err("taking the bare_redirect link"))?;
        Ok(BareRedirect {
            _ebpf: ebpf,
            _link: link,
        })
    }
}

/// Histogram bucket width of [`Latency`], in ns (as in the eBPF sink).
pub const LAT_BUCKET_NS: u64 = 250;
const LAT_BUCKETS: u32 = 4096;

/// One-way latencies measured by a [`Sink`]. Subtract an earlier reading
/// with [`Latency::since`] to look at a window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Number of samples.
    pub samples: u64,
    /// Sum of latencies, ns.
    pub sum_ns: u64,
    /// Sum of squared latencies, ns².
    pub sum_sq_ns: u64,
    /// Histogram, [`LAT_BUCKET_NS`] wide buckets; the last one is open.
    pub buckets: Vec<u64>,
}

impl Latency {
    /// The samples taken after `earlier`.
    pub fn since(&self, earlier: &Latency) -> Latency {
        Latency {
            samples: self.samples - earlier.samples,
            sum_ns: self.sum_ns - earlier.sum_ns,
            sum_sq_ns: self.sum_sq_ns - earlier.sum_sq_ns,
            buckets: self
                .buckets
                .iter()
                .zip(earlier.buckets.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a - b)
                .collect(),
        }
    }

    /// Mean latency in µs.
    pub fn mean_us(&self) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        self.sum_ns as f64 / self.samples as f64 / 1e3
    }

    /// Standard deviation in µs.
    pub fn stddev_us(&self) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        let n = self.samples as f64;
        let mean = self.sum_ns as f64 / n;
        ((self.sum_sq_ns as f64 / n - mean * mean).max(0.0)).sqrt() / 1e3
    }

    /// The `q` quantile (0..=1) in µs, at bucket resolution (upper edge).
    pub fn quantile_us(&self, q: f64) -> f64 {
        let target = (self.samples as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= target.max(1) {
                return ((i as u64 + 1) * LAT_BUCKET_NS) as f64 / 1e3;
            }
        }
        (self.buckets.len() as u64 * LAT_BUCKET_NS) as f64 / 1e3
    }
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp, TrafficError> {
    ebpf.program_mut(name)
        .ok_or_else(|| TrafficError::Program {
            what: format!("program {name} missing from the object"),
            source: aya::programs::ProgramError::NotLoaded,
        })?
        .try_into()
        .map_err(prog_err(name))
}
