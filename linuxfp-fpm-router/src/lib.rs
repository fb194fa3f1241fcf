// SPDX-License-Identifier: MIT OR Apache-2.0
//! The router FPM: IPv4 and IPv6 forwarding in XDP and TC, exactly as Linux
//! forwards.
//!
//! The fast path asks the kernel's own FIB (`bpf_fib_lookup`, with the
//! ingress interface, so policy routing, VRFs, ECMP and the neighbour table
//! are the kernel's), decrements the TTL or hop limit, rewrites the MACs and
//! redirects. Everything else — TTL expiry, options, fragments, unknown
//! neighbours (XDP), oversize packets, local or rejected destinations,
//! martians — goes to the kernel under a named, counted punt reason
//! ([`linuxfp_ebpf_common::router::PUNT_NAMES`]).
//!
//! Behind a filter stage the router does not ask the FIB a second time: the
//! filter has already asked it the very same question for the packet (to
//! know its output interface) and hands a successful answer over in the
//! chain's per-CPU packet context
//! ([`linuxfp_ebpf_common::abi::PKT_CTX_FIB_DONE`]); the router takes it
//! only as a later stage, for the same ingress and packet layout, and once.
//!
//! ```no_run
//! use std::sync::Arc;
//! let mut registry = linuxfp::fpm::FpmRegistry::new();
//! registry.register(Arc::new(linuxfp_fpm_router::RouterFpm::new()))?;
//! # Ok::<(), linuxfp::fpm::FpmError>(())
//! ```
//!
//! Minimum kernel version: 5.10 (`bpf_fib_lookup` with `mtu_result`,
//! `bpf_redirect_neigh`).
#![deny(missing_docs)]

pub mod bytecode;
pub mod params;
pub mod source_check;

use std::collections::BTreeMap;

use linuxfp::{
    fpm::{Capability, Fpm, FpmConfig, FpmDeclaration, FpmError, FpmRole, Hook, ParamInput},
    topology::NetworkFunction,
};
use linuxfp_ebpf_common::router;

/// Name of the XDP program in the object.
pub const XDP_PROGRAM: &str = "router_xdp";
/// Name of the TC program in the object.
pub const TC_PROGRAM: &str = "router_tc";

/// The router FPM.
#[derive(Debug)]
pub struct RouterFpm {
    declaration: FpmDeclaration,
}

impl Default for RouterFpm {
    fn default() -> Self {
        Self::new()
    }
}

impl RouterFpm {
    /// The router FPM with its bundled programs.
    pub fn new() -> Self {
        RouterFpm {
            declaration: FpmDeclaration {
                name: "router",
                role: FpmRole::Accelerates(NetworkFunction::Router),
                programs: BTreeMap::from([(Hook::Xdp, XDP_PROGRAM), (Hook::Tc, TC_PROGRAM)]),
                capabilities: vec![Capability::FibLookup, Capability::RedirectNeigh],
                // The deployer's write order (removals in reverse): an
                // interface's devmap entry before the flags that say it
                // is there.
                shared_maps: vec![router::XDP_PORTS_MAP, router::IFACES_MAP, router::SRC4_MAP],
                punt_reasons: router::PUNT_NAMES.to_vec(),
            },
        }
    }
}

impl Fpm for RouterFpm {
    fn declaration(&self) -> &FpmDeclaration {
        &self.declaration
    }

    fn bytecode(&self) -> &'static [u8] {
        bytecode::ROUTER_OBJ
    }

    fn parameterize(&self, input: &ParamInput<'_>) -> Result<FpmConfig, FpmError> {
        Ok(params::router_config(self.declaration.name, input))
    }
}
