// SPDX-License-Identifier: MIT OR Apache-2.0
//! How the fast path tells a martian IPv4 source, as `fib_validate_source`
//! does for a forwarded packet.
//!
//! With `rp_filter` and `accept_local` off (the router is not run where
//! they are on: see the topology's limitations), the kernel rejects:
//! - without custom policy rules or local routes, a source that is one of
//!   the host's own addresses (a hash lookup of every address);
//! - otherwise, a source the FIB resolves to a route of type local,
//!   broadcast, anycast, multicast or nat (a lookup of the source).
//!
//! The second case holds even after the custom rules or local routes are
//! gone (the kernel's flags stay set), so the fast path cannot tell which
//! of the two the kernel applies. It does not need to: with only the
//! default rules, the FIB consults the `local`, `main` and `default`
//! tables, and if every non-unicast route there is a host route (or lies
//! in 0/8, 127/8 or 224/3, whose sources the program punts anyway), the
//! set of those routes' addresses and the host's own addresses holds every
//! source either test rejects. The program then makes one hash lookup
//! ([`SRC_CHECK_MAP`]) instead of a second FIB lookup. A source outside
//! the set is accepted by both tests; one inside may be accepted by the
//! kernel, and merely goes to the kernel. Anything else (custom rules, a
//! non-unicast prefix route, too many entries, unknown state) keeps the
//! FIB lookup ([`SRC_CHECK_FIB`]), which is exact in every case.

use std::{collections::BTreeSet, net::IpAddr};

use linuxfp::state::{KernelState, Rule, route_kind as kind};
use linuxfp_ebpf_common::router::{MAX_SRC4, SRC_CHECK_FIB, SRC_CHECK_MAP};

/// `FR_ACT_TO_TBL`.
const FR_ACT_TO_TBL: u8 = 1;
/// The IPv4 rules every namespace starts with: (priority, table).
const DEFAULT_RULES: [(u32, u32); 3] = [(0, 255), (32766, 254), (32767, 253)];
/// Tables the default rules consult.
const DEFAULT_TABLES: [u32; 3] = [255, 254, 253];

/// The fast path's source check: `SRC_CHECK_*`, and under
/// [`SRC_CHECK_MAP`] the sources (network byte order) that go to the
/// kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCheck {
    /// [`SRC_CHECK_FIB`] or [`SRC_CHECK_MAP`].
    pub mode: u32,
    /// The sources to punt, empty under [`SRC_CHECK_FIB`].
    pub sources: BTreeSet<[u8; 4]>,
    /// Why the FIB lookup was kept, for logs and tests.
    pub why_fib: Option<String>,
}

impl SourceCheck {
    fn fib(why: impl Into<String>) -> Self {
        SourceCheck {
            mode: SRC_CHECK_FIB,
            sources: BTreeSet::new(),
            why_fib: Some(why.into()),
        }
    }
}

/// The source check for this kernel state (`None`: the FIB lookup).
pub fn source_check(state: Option<&KernelState>) -> SourceCheck {
    let Some(state) = state else {
        return SourceCheck::fib("no kernel state");
    };
    let rules: Vec<&Rule> = state.rules.iter().filter(|r| r.family == 4).collect();
    if let Some(r) = rules.iter().find(|r| !is_default_rule(r)) {
        return SourceCheck::fib(format!(
            "policy rule {} (table {}): the kernel checks sources through the FIB",
            r.priority, r.table
        ));
    }
    if rules.len() != DEFAULT_RULES.len() {
        return SourceCheck::fib(format!(
            "{} IPv4 policy rules instead of the default {}",
            rules.len(),
            DEFAULT_RULES.len()
        ));
    }
    let mut sources = BTreeSet::new();
    for addr in state.addresses.values().flatten() {
        if let IpAddr::V4(a) = addr.address {
            sources.insert(a.octets());
        }
    }
    for table in DEFAULT_TABLES {
        for r in state.table(table) {
            let IpAddr::V4(dst) = r.dst else { continue };
            if matches!(
                r.kind,
                kind::UNICAST | kind::BLACKHOLE | kind::UNREACHABLE | kind::PROHIBIT
            ) {
                // The kernel accepts these sources: a unicast route, or a
                // lookup error (its last resort without rp_filter).
                continue;
            }
            if r.dst_len == 32 {
                sources.insert(dst.octets());
            } else if !punted_by_program(dst.octets(), r.dst_len) {
                return SourceCheck::fib(format!(
                    "route {dst}/{} of type {} in table {table}",
                    r.dst_len, r.kind
                ));
            }
        }
    }
    if sources.len() > MAX_SRC4 as usize {
        return SourceCheck::fib(format!(
            "{} local and broadcast addresses, more than the map's {MAX_SRC4}",
            sources.len()
        ));
    }
    SourceCheck {
        mode: SRC_CHECK_MAP,
        sources,
        why_fib: None,
    }
}

/// One of the three rules of a fresh namespace, without any selector.
fn is_default_rule(r: &Rule) -> bool {
    DEFAULT_RULES.contains(&(r.priority, r.table))
        && r.action == FR_ACT_TO_TBL
        && r.src.is_none()
        && r.dst.is_none()
        && r.src_len == 0
        && r.dst_len == 0
        && r.tos == 0
        && r.iifname.is_none()
        && r.oifname.is_none()
        && r.fwmark.unwrap_or(0) == 0
        && r.fwmask.unwrap_or(0) == 0
        && r.goto.is_none()
        && !r.l3mdev
        // The kernel reports -1 (none) for its own rules.
        && r.suppress_prefixlen.is_none_or(|p| p == u32::MAX)
        && r.flags == 0
        && r.unknown.is_empty()
}

/// True if every address of `prefix/len` is a source the program punts
/// before any lookup (0/8, 127/8, 224/3: see `ipv4_martian` in the
/// program).
fn punted_by_program(prefix: [u8; 4], len: u8) -> bool {
    let first = prefix[0];
    (len >= 8 && (first == 0 || first == 127)) || (len >= 3 && first >= 224)
}

#[cfg(test)]
mod tests;
