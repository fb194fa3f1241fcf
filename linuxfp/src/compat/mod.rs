// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Compatibility Manager: decides, per interface, what can be
//! accelerated, on which hook, and what stays on the slow path, each with a
//! reason a person can read.
//!
//! It is pure: [`decide`] is a function of the topology, the kernel's
//! capabilities ([`KernelCaps`], probed once), the registered FPMs and the
//! host's [`Policy`]. Its rule: never accelerate past something no
//! registered FPM models. A chain is accelerated up to (not including) the
//! first network function that no FPM can take, or that a
//! [`Limitation`](crate::topology::Limitation) rules out; what follows is
//! left to the kernel, which the chain ABI guarantees (a missing next stage
//! sends the packet to the kernel).

mod caps;

use std::collections::{BTreeMap, BTreeSet};

pub use caps::KernelCaps;
use serde::{Deserialize, Serialize};

use crate::{
    fpm::{FpmRegistry, FpmRole, Hook},
    topology::{FunctionRef, Interface, NetworkFunction, Topology},
};
use linuxfp_ebpf_common::abi::MAX_IFINDEX;

/// Which hook the host prefers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPolicy {
    /// Pick per interface: TC on virtual devices (veth, where XDP costs
    /// TCP its GRO/GSO and breaks the checksum state of local sockets'
    /// packets), XDP on physical devices.
    #[default]
    Auto,
    /// XDP wherever the FPMs have it. On veth, the peers must have NAPI
    /// (GRO or an XDP program) to receive redirected frames.
    Xdp,
    /// TC everywhere.
    Tc,
}

/// The host's choices that bound what is accelerated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Hook preference.
    pub hook: HookPolicy,
    /// If set, only these interfaces (by name) are accelerated.
    pub allow: Option<BTreeSet<String>>,
    /// These interfaces (by name) are never accelerated.
    pub deny: BTreeSet<String>,
}

/// What was decided for one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceDecision {
    /// Interface name.
    pub name: String,
    /// The hook, or `None` if nothing is accelerated here.
    pub hook: Option<Hook>,
    /// The FPMs of the chain, in order (empty if not accelerated).
    pub stages: Vec<String>,
    /// Why: the hook choice and everything left to the kernel.
    pub reasons: Vec<String>,
}

/// The decisions for all interfaces, by ifindex.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decisions {
    /// Per interface. Interfaces without a chain in the topology are absent.
    pub interfaces: BTreeMap<u32, InterfaceDecision>,
}

impl Decisions {
    /// The interfaces where `fpm` has a stage, with the hook used there.
    pub fn interfaces_of<'a>(&'a self, fpm: &'a str) -> impl Iterator<Item = (u32, Hook)> + 'a {
        self.interfaces.iter().filter_map(move |(ifindex, d)| {
            let hook = d.hook?;
            d.stages
                .iter()
                .any(|s| s == fpm)
                .then_some((*ifindex, hook))
        })
    }
}

/// Decides, for every interface with a chain in `topology`, what is
/// accelerated and how.
pub fn decide(
    topology: &Topology,
    caps: &KernelCaps,
    registry: &FpmRegistry,
    policy: &Policy,
) -> Decisions {
    let mut out = Decisions::default();
    for (&ifindex, chain) in &topology.chains {
        let Some(iface) = topology.interfaces.get(&ifindex) else {
            continue;
        };
        out.interfaces.insert(
            ifindex,
            decide_interface(topology, iface, chain, caps, registry, policy),
        );
    }
    out
}

fn decide_interface(
    topology: &Topology,
    iface: &Interface,
    chain: &[FunctionRef],
    caps: &KernelCaps,
    registry: &FpmRegistry,
    policy: &Policy,
) -> InterfaceDecision {
    let mut d = InterfaceDecision {
        name: iface.name.clone(),
        ..Default::default()
    };
    if let Some(allow) = &policy.allow
        && !allow.contains(&iface.name)
    {
        d.reasons.push("not in the allow list".into());
        return d;
    }
    if policy.deny.contains(&iface.name) {
        d.reasons.push("in the deny list".into());
        return d;
    }
    if !iface.up {
        d.reasons.push("interface is down".into());
        return d;
    }
    if let Some(missing) = caps.missing_basics() {
        d.reasons.push(missing);
        return d;
    }

    let hook = match choose_hook(iface, policy, caps) {
        Ok((hook, why)) => {
            d.reasons.push(why);
            hook
        }
        Err(why) => {
            d.reasons.push(why);
            return d;
        }
    };

    let mut stages: Vec<String> = Vec::new();
    let mut accelerated: Vec<NetworkFunction> = Vec::new();
    for (i, function) in chain.iter().enumerate() {
        let f = function.function();
        // Bridge then router: frames for the bridge's own MAC go up through
        // the kernel bridge to the bridge device, whose own chain holds the
        // router stage (with the bridge as ingress interface, as for IP).
        if let (FunctionRef::Router, Some(FunctionRef::Bridge { bridge })) =
            (function, i.checked_sub(1).and_then(|p| chain.get(p)))
        {
            let name = topology
                .interfaces
                .get(bridge)
                .map_or_else(|| bridge.to_string(), |b| b.name.clone());
            d.reasons.push(format!(
                "router: runs on {name}'s own chain (frames for the bridge go up through it)"
            ));
            break;
        }
        if let Some(limit) = topology.limitations.iter().find(|l| {
            l.function == f
                && (l.ifindex.is_none() || l.ifindex == Some(iface.ifindex))
                && !l.lifted_by.is_some_and(|g| accelerated.contains(&g))
        }) {
            d.reasons
                .push(format!("{f} left to the kernel: {}", limit.reason));
            break;
        }
        match pick_fpm(registry, f, hook, caps) {
            Ok(name) => {
                stages.push(name);
                accelerated.push(f);
            }
            Err(why) => {
                d.reasons.push(why);
                break;
            }
        }
    }
    if stages.is_empty() {
        return d;
    }

    // Preludes run first, on the hook the chain uses.
    let mut full: Vec<String> = registry
        .preludes()
        .filter(|m| m.declaration().programs.contains_key(&hook))
        .map(|m| m.declaration().name.to_string())
        .collect();
    full.extend(stages);

    if full.len() > 1 && iface.ifindex >= MAX_IFINDEX {
        d.reasons.push(format!(
            "ifindex {} is above the chainable range (< {MAX_IFINDEX}): only the first stage runs",
            iface.ifindex
        ));
        full.truncate(1);
    }
    d.hook = Some(hook);
    d.stages = full;
    d
}

fn choose_hook(
    iface: &Interface,
    policy: &Policy,
    caps: &KernelCaps,
) -> Result<(Hook, String), String> {
    let virtual_dev = iface.kind.is_some();
    match policy.hook {
        HookPolicy::Tc => Ok((Hook::Tc, "tc: chosen by policy".into())),
        HookPolicy::Xdp => {
            if !caps.xdp_link {
                return Err(format!(
                    "xdp requested but kernel {} lacks XDP links (5.9+)",
                    caps.release
                ));
            }
            let mut why = "xdp: chosen by policy".to_string();
            if iface.kind.as_deref() == Some("veth") {
                why.push_str(
                    "; veth: the peer needs NAPI (GRO or XDP) to receive redirects, \
                     and local sockets' partial checksums are not preserved",
                );
            }
            Ok((Hook::Xdp, why))
        }
        HookPolicy::Auto if virtual_dev => Ok((
            Hook::Tc,
            format!(
                "tc: {} is a virtual device ({}): TC keeps GRO/GSO and checksum offload state",
                iface.name,
                iface.kind.as_deref().unwrap_or("?")
            ),
        )),
        HookPolicy::Auto if caps.xdp_link => Ok((
            Hook::Xdp,
            format!("xdp: {} is a physical device", iface.name),
        )),
        HookPolicy::Auto => Ok((
            Hook::Tc,
            format!("tc: kernel {} lacks XDP links", caps.release),
        )),
    }
}

fn pick_fpm(
    registry: &FpmRegistry,
    function: NetworkFunction,
    hook: Hook,
    caps: &KernelCaps,
) -> Result<String, String> {
    let mut why = format!("{function} left to the kernel: no FPM registered for it");
    for fpm in registry.all_for(function) {
        let decl = fpm.declaration();
        debug_assert_eq!(decl.role, FpmRole::Accelerates(function));
        if !decl.programs.contains_key(&hook) {
            why = format!(
                "{function} left to the kernel: FPM `{}` has no {hook} program",
                decl.name
            );
            continue;
        }
        if let Some(cap) = decl.capabilities.iter().find(|c| !caps.has(**c)) {
            why = format!(
                "{function} left to the kernel: FPM `{}` needs {cap:?}, which kernel {} lacks",
                decl.name, caps.release
            );
            continue;
        }
        return Ok(decl.name.to_string());
    }
    Err(why)
}

#[cfg(test)]
mod tests;
