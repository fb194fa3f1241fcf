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
    maps::{PerCpuArray, PerCpuValues},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode, xdp::XdpLink},
};

static OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/linuxfp-trafficgen-ebpf"));

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
        let words = header_len.div_ceil(8);
        if words * 8 > TEMPLATE_MAX || words * 8 > frame.len() {
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
    pub fn send(&mut self, ifindex: u32, count: u32) -> Result<(), TrafficError> {
        let prog: &mut Xdp = program(&mut self.ebpf, "gen_tx")?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
        let mut ctx = [0u8; 24];
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

/// Counts and drops frames arriving on an interface.
pub struct Sink {
    ebpf: Ebpf,
    _link: XdpLink,
}

impl Sink {
    /// Attaches a counting sink to `ifindex` (in the caller's namespace).
    /// Detached when dropped.
    pub fn attach(ifindex: u32) -> Result<Self, TrafficError> {
        let mut ebpf = Ebpf::load(OBJ).map_err(|e| TrafficError::Load(Box::new(e)))?;
        let prog: &mut Xdp = program(&mut ebpf, "sink_count")?;
        prog.load().map_err(prog_err("loading sink_count"))?;
        let id = prog
            .attach_to_if_index(ifindex, XdpMode::default())
            .map_err(prog_err("attaching the sink"))?;
        let link = prog.take_link(id).map_err(prog_err("taking the sink link"))?;
        Ok(Sink { ebpf, _link: link })
    }

    /// Packets and bytes counted so far.
    pub fn counts(&self) -> Result<(u64, u64), TrafficError> {
        let map = self
            .ebpf
            .map("SINK_COUNT")
            .ok_or(TrafficError::Map(aya::maps::MapError::InvalidName {
                name: "SINK_COUNT".into(),
            }))?;
        let array = PerCpuArray::<_, u64>::try_from(map).map_err(TrafficError::Map)?;
        let sum = |v: PerCpuValues<u64>| v.iter().sum::<u64>();
        let packets = sum(array.get(&0, 0).map_err(TrafficError::Map)?);
        let bytes = sum(array.get(&1, 0).map_err(TrafficError::Map)?);
        Ok((packets, bytes))
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
