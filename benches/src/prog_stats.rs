// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a BPF program costs per run, from the kernel's own accounting
//! (`BPF_ENABLE_STATS`: `run_time_ns` and `run_cnt` in each program's
//! fdinfo). Unlike a packet rate, the time a program spends per packet
//! barely depends on what else the machine runs, so it tells apart a
//! change to the program from a noisy neighbour.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use aya::{
    programs::loaded_programs,
    sys::{Stats, enable_stats},
};

/// Keeps the kernel's run-time accounting of BPF programs on while alive
/// (it costs two clock reads per program run).
pub struct RunTimeStats {
    _fd: OwnedFd,
}

impl RunTimeStats {
    /// Turns the accounting on; `None` if the kernel refuses.
    pub fn enable() -> Option<Self> {
        enable_stats(Stats::RunTime)
            .ok()
            .map(|fd| RunTimeStats { _fd: fd })
    }
}

/// Total run time (ns) and runs of every loaded program named `name`
/// (as the kernel truncates it: 15 bytes), in any namespace of the host:
/// run benchmarks alone, or another instance's runs are counted too.
pub fn runtime_of(name: &str) -> (u64, u64) {
    let short = &name.as_bytes()[..name.len().min(15)];
    let mut total = (0, 0);
    for info in loaded_programs().flatten() {
        if info.name() != short {
            continue;
        }
        let Ok(fd) = info.fd() else { continue };
        let path = format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd());
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        total.0 += field("run_time_ns:");
        total.1 += field("run_cnt:");
    }
    total
}

/// Nanoseconds per run of `name` between two [`runtime_of`] readings.
pub fn ns_per_run(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let runs = after.1.checked_sub(before.1)?;
    (runs > 0).then(|| after.0.saturating_sub(before.0) as f64 / runs as f64)
}

/// The run time per packet of the programs named `name`, in ns, over
/// `run` (which sends the packets), with the kernel's accounting on for
/// that run only: it costs every BPF program two clock reads per run (a
/// traffic generator and sink too), so measured rates must come from other
/// runs. `None` if the kernel refuses the accounting or nothing ran.
pub fn ns_per_packet(name: &str, run: impl FnOnce()) -> Option<f64> {
    let _stats = RunTimeStats::enable()?;
    let before = runtime_of(name);
    run();
    ns_per_run(before, runtime_of(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_per_run_needs_runs() {
        assert_eq!(ns_per_run((100, 10), (400, 13)), Some(100.0));
        assert_eq!(ns_per_run((100, 10), (100, 10)), None);
        assert_eq!(ns_per_run((100, 10), (50, 5)), None);
    }
}
