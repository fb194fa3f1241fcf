// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bridge FPM: Linux bridge forwarding in XDP and TC, on a stock kernel.
//!
//! The fast path forwards known unicast frames from port to port exactly as
//! the kernel bridge would — FDB lookup per VLAN, ingress PVID, egress
//! tagging, port state, isolation and hairpin — from maps that mirror the
//! kernel's own FDB and VLAN tables ([`params`]). Everything the mirror
//! cannot decide goes to the kernel bridge under a named, counted reason
//! ([`linuxfp_ebpf_common::bridge::PUNT_NAMES`]): unknown destinations
//! (flooding), new or moved sources (learning), broadcast and multicast,
//! link-local control frames, ARP and neighbour discovery, locked ports,
//! ports not forwarding, frames for the bridge itself (which reach the
//! router stage on the bridge device through the kernel), and, while
//! `br_netfilter` passes bridged IP traffic to the IP hooks, IP frames its
//! header validation would drop or change.
//!
//! The kernel never sees the frames the fast path forwards, so it would age
//! their sources out of its FDB and start flooding. The fast path records
//! the sources it forwards, and the FPM's upkeep ([`refresh`]) refreshes
//! those kernel entries (`NTF_USE`) so `bridge fdb show` ages them exactly
//! as without LinuxFP; idle entries still age out.
//!
//! ```no_run
//! use std::sync::Arc;
//! let mut registry = linuxfp::fpm::FpmRegistry::new();
//! registry.register(Arc::new(linuxfp_fpm_bridge::BridgeFpm::new()))?;
//! # Ok::<(), linuxfp::fpm::FpmError>(())
//! ```
//!
//! Not modelled, so left to the kernel by the punts above or by the
//! Compatibility Manager: per-VLAN STP states and MST (the port state is
//! used for every VLAN), a promiscuous bridge device (tcpdump on it), and
//! firewall rules: `br_netfilter` with IP rules, and `bridge` family
//! nf_tables chains, need the filter stage before this one
//! (`linuxfp-fpm-filter` decides the first and punts on the second).
#![deny(missing_docs)]

pub mod bytecode;
pub mod params;
pub mod refresh;

use std::{collections::BTreeMap, time::Duration};

use linuxfp::{
    fpm::{Fpm, FpmConfig, FpmDeclaration, FpmError, FpmRole, Hook, ParamInput, UpkeepCtx},
    topology::NetworkFunction,
};
use linuxfp_ebpf_common::bridge;

/// Name of the XDP program in the object.
pub const XDP_PROGRAM: &str = "bridge_xdp";
/// Name of the TC program in the object.
pub const TC_PROGRAM: &str = "bridge_tc";

/// How often the kernel's FDB entries in use are refreshed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// The bridge FPM.
#[derive(Debug)]
pub struct BridgeFpm {
    declaration: FpmDeclaration,
    refresher: refresh::Refresher,
}

impl Default for BridgeFpm {
    fn default() -> Self {
        Self::new()
    }
}

impl BridgeFpm {
    /// The bridge FPM with its bundled programs.
    pub fn new() -> Self {
        BridgeFpm {
            declaration: FpmDeclaration {
                name: "bridge",
                role: FpmRole::Accelerates(NetworkFunction::Bridge),
                programs: BTreeMap::from([(Hook::Xdp, XDP_PROGRAM), (Hook::Tc, TC_PROGRAM)]),
                capabilities: vec![],
                // The deployer's write order (removals in reverse): a
                // port's devmap entry before the port, ports and VLANs
                // before the FDB entries that lead to them.
                shared_maps: vec![
                    bridge::XDP_PORTS_MAP,
                    bridge::PORTS_MAP,
                    bridge::VLANS_MAP,
                    bridge::FDB_MAP,
                    bridge::SEEN_MAP,
                ],
                punt_reasons: bridge::PUNT_NAMES.to_vec(),
            },
            refresher: refresh::Refresher::default(),
        }
    }

    /// What the refresher has done so far.
    pub fn refresh_stats(&self) -> refresh::RefreshStats {
        self.refresher.stats()
    }
}

impl Fpm for BridgeFpm {
    fn declaration(&self) -> &FpmDeclaration {
        &self.declaration
    }

    fn bytecode(&self) -> &'static [u8] {
        bytecode::BRIDGE_OBJ
    }

    fn parameterize(&self, input: &ParamInput<'_>) -> Result<FpmConfig, FpmError> {
        Ok(params::bridge_config(self.declaration.name, input))
    }

    fn upkeep_interval(&self) -> Option<Duration> {
        Some(REFRESH_INTERVAL)
    }

    fn upkeep(&self, ctx: &UpkeepCtx<'_>) -> Result<(), FpmError> {
        self.refresher.run(ctx).map_err(|e| FpmError::Upkeep {
            fpm: self.declaration.name,
            reason: e.to_string(),
        })
    }
}
