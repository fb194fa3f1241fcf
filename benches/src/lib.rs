// SPDX-License-Identifier: MIT OR Apache-2.0
//! LinuxFP's benchmarks live in `benches/`: `router`, `bridge`, `filter`
//! and `flannel` (the data plane against Linux, in the same run, reported
//! as ratios), `reaction` (command to deployed fast path), `control_plane`
//! (criterion: topology derivation and planning) and `fold` (criterion:
//! decoding and folding a 100k-route rtnetlink dump, and deriving the
//! topology from it). Run them with `cargo xtask bench`.
//!
//! This library holds the synthetic inputs the control-plane benches share
//! and the summary statistics the data-plane benches report.

pub mod controllers;
pub mod dataplane;
pub mod plot;
pub mod prog_stats;

use linuxfp::state::{Address, KernelState, Link, NetEvent, Netconf};

/// `RTM_NEWROUTE`.
const RTM_NEWROUTE: u16 = 24;

fn nla(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The bytes of an rtnetlink route dump as the kernel sends it: `routes`
/// IPv4 unicast routes (`10.x.y.0/24`, static, main table) spread over the
/// interfaces `first_ifindex..first_ifindex + ifaces`.
pub fn route_dump(routes: u32, first_ifindex: u32, ifaces: u32) -> Vec<u8> {
    let mut all = Vec::with_capacity(routes as usize * 60);
    for i in 0..routes {
        let mut body = vec![
            libc_af_inet(), // rtm_family
            24,             // rtm_dst_len
            0,              // rtm_src_len
            0,              // rtm_tos
            254,            // rtm_table: main
            4,              // rtm_protocol: static
            0,              // rtm_scope: universe
            1,              // rtm_type: unicast
        ];
        body.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
        nla(&mut body, 15, &254u32.to_ne_bytes()); // RTA_TABLE
        let dst = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        nla(&mut body, 1, &dst); // RTA_DST
        nla(
            &mut body,
            4,
            &(first_ifindex + i % ifaces.max(1)).to_ne_bytes(),
        ); // RTA_OIF
        let len = 16 + body.len() as u32;
        all.extend_from_slice(&len.to_ne_bytes());
        all.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        all.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        all.extend_from_slice(&1u32.to_ne_bytes());
        all.extend_from_slice(&0u32.to_ne_bytes());
        all.extend_from_slice(&body);
    }
    all
}

const fn libc_af_inet() -> u8 {
    2
}

/// A router host: `n` veth interfaces (ifindex 2..n+2), each with an IPv4
/// address, forwarding on everywhere (as netconf reports it), and
/// `routes` routes spread over them.
pub fn router_state(n: u32, routes: u32) -> KernelState {
    let mut s = KernelState::default();
    for i in 2..n + 2 {
        s.apply(NetEvent::NewLink(Link {
            ifindex: i,
            name: format!("veth{i}"),
            kind: Some("veth".into()),
            admin_up: true,
            running: true,
            mtu: 1500,
            mac: Some([2, 0, 0, 0, (i >> 8) as u8, i as u8]),
            ..Default::default()
        }));
        s.apply(NetEvent::NewAddress(Address {
            ifindex: i,
            address: std::net::Ipv4Addr::new(172, 16 + (i >> 8) as u8, i as u8, 1).into(),
            prefix_len: 24,
            peer: None,
            broadcast: None,
            label: None,
            scope: 0,
            flags: 0x80,
            unknown: Vec::new(),
        }));
        for family in [4, 6] {
            s.apply(NetEvent::NewNetconf(Netconf {
                family,
                ifindex: i as i32,
                forwarding: Some(1),
                ..Default::default()
            }));
        }
    }
    s.apply(NetEvent::NewNetconf(Netconf {
        family: 6,
        ifindex: linuxfp::state::IFINDEX_ALL,
        forwarding: Some(1),
        ..Default::default()
    }));
    for e in linuxfp::inspector::parse_messages(&route_dump(routes, 2, n)) {
        s.apply(e);
    }
    s
}

/// The order in which `repeats` rounds over `cases` cases take turns, as
/// (round, case index): every round runs every case once, starting one
/// case later than the round before, so no case always runs first or
/// right after the same other one, and drift in the machine's speed
/// weighs on every case alike.
pub fn in_turns(cases: usize, repeats: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..repeats).flat_map(move |r| (0..cases).map(move |k| (r, (k + r) % cases)))
}

/// Minimum, median and maximum of repeated measurements.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Spread {
    /// Smallest value.
    pub min: f64,
    /// Median (upper median for an even count).
    pub median: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// `median [min–max]` with one decimal, for a table cell.
    pub fn cell(&self) -> String {
        format!("{:.1} [{:.1}–{:.1}]", self.median, self.min, self.max)
    }
}

/// A table cell for a measurement over repeats that can fail: its
/// [`Spread::cell`], or `-` if every run failed, noting failed runs.
pub fn runs_cell(spread: Option<&Spread>, failures: usize) -> String {
    let mut cell = spread.map_or_else(|| "-".to_string(), Spread::cell);
    if failures > 0 {
        cell.push_str(&format!(" ({failures} failed)"));
    }
    cell
}

/// The spread of `values` (all zero if empty).
pub fn spread(mut values: Vec<f64>) -> Spread {
    values.sort_by(f64::total_cmp);
    Spread {
        min: values.first().copied().unwrap_or(0.0),
        median: values.get(values.len() / 2).copied().unwrap_or(0.0),
        max: values.last().copied().unwrap_or(0.0),
    }
}

/// The spread of up to `repeats` runs of a measurement that can fail
/// (iperf3 through an XDP fast path on veth does), over the runs that
/// succeeded, with the number that failed; `None` if every run failed.
pub fn spread_of_runs<E>(
    repeats: usize,
    mut run: impl FnMut() -> Result<f64, E>,
) -> (Option<Spread>, usize) {
    let (ok, failed): (Vec<_>, Vec<_>) = (0..repeats).map(|_| run()).partition(Result::is_ok);
    let values: Vec<f64> = ok.into_iter().filter_map(Result::ok).collect();
    let spread = (!values.is_empty()).then(|| spread(values));
    (spread, failed.len())
}

/// Prints a data-plane bench's Markdown and writes it, with the JSON of
/// `report`, to `bench-results/<name>.{md,json}` at the workspace root.
pub fn write_results(name: &str, md: &str, report: &impl serde::Serialize) {
    println!("{md}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{name}.md")), md);
    if let Ok(json) = serde_json::to_string_pretty(report) {
        let _ = std::fs::write(dir.join(format!("{name}.json")), json);
    }
}

/// Writes an SVG chart to `bench-results/<name>.svg` at the workspace root.
pub fn write_chart(name: &str, svg: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{name}.svg")), svg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_visit_every_case_once_per_round_starting_later_each_round() {
        let turns: Vec<_> = in_turns(3, 2).collect();
        assert_eq!(turns, [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 0)]);
        assert_eq!(in_turns(0, 3).count(), 0);
    }

    #[test]
    fn spreads_leave_failed_runs_out() {
        let s = spread(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        let mut outcomes = vec![Ok(5.0), Err("reset"), Ok(7.0)].into_iter();
        let (s, failed) = spread_of_runs(3, || outcomes.next().expect("three runs"));
        let s = s.expect("two runs succeeded");
        assert_eq!((s.min, s.median, s.max, failed), (5.0, 7.0, 7.0, 1));
        let (none, failed) = spread_of_runs(2, || Err::<f64, _>("refused"));
        assert!(none.is_none());
        assert_eq!(failed, 2);
        assert_eq!(runs_cell(Some(&s), 1), "7.0 [5.0–7.0] (1 failed)");
        assert_eq!(runs_cell(None, 2), "- (2 failed)");
    }
}
