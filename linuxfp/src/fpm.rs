// SPDX-License-Identifier: MIT OR Apache-2.0
//! The API every fast-path module (FPM) implements, and the registry a host
//! application fills.
//!
//! An FPM bundles an eBPF object (its stage programs, built against the ABI
//! in [`linuxfp_ebpf_common`]), a declaration of what it accelerates, and a
//! parameterizer that turns the [`Topology`] into the object's global
//! constants and map contents. The core crate never names a concrete FPM:
//! host applications register the ones they want.
//!
//! ```no_run
//! # use linuxfp::fpm::{FpmRegistry, Fpm};
//! # fn router() -> std::sync::Arc<dyn Fpm> { unimplemented!() }
//! let mut registry = FpmRegistry::new();
//! registry.register(router())?;
//! # Ok::<(), linuxfp::fpm::FpmError>(())
//! ```

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::{
    compat::Decisions,
    deploy::PinLayout,
    state::KernelState,
    topology::{NetworkFunction, Topology},
};

/// Where a stage program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// eXpress Data Path, in the driver before an skb exists.
    Xdp,
    /// TC ingress (tcx where the kernel has it, clsact otherwise).
    Tc,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::Xdp => "xdp",
            Hook::Tc => "tc",
        })
    }
}

/// A kernel feature an FPM needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// `bpf_fib_lookup` (4.18).
    FibLookup,
    /// `bpf_redirect_neigh` (5.10).
    RedirectNeigh,
    /// BPF links for XDP (5.9).
    XdpLink,
}

/// Where an FPM's stage sits in an interface's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FpmRole {
    /// It accelerates this network function, at the function's place in
    /// each chain the topology gives.
    Accelerates(NetworkFunction),
    /// It runs first on every accelerated interface (observers, counters,
    /// samplers) and must continue to the next stage for every packet it
    /// does not itself finish exactly as Linux would.
    Prelude,
}

/// What an FPM is and needs: read by the Compatibility Manager and shown to
/// people in plans.
#[derive(Clone, Debug)]
pub struct FpmDeclaration {
    /// Unique name, lowercase, used in pin paths and counters (`router`).
    pub name: &'static str,
    /// Where it sits in the pipeline.
    pub role: FpmRole,
    /// The stage program for each hook it supports, by program name in its
    /// object.
    pub programs: BTreeMap<Hook, &'static str>,
    /// Kernel features it needs.
    pub capabilities: Vec<Capability>,
    /// Maps shared by all loaded instances of its object in one network
    /// namespace (pinned under the FPM's directory). Maps not listed here are
    /// private to each instance.
    ///
    /// The order is the deployer's write order: it writes every map's
    /// additions and changes in this order, then every map's removals in
    /// the reverse order, and the last map listed whole after all of
    /// that. List first what other entries refer to (a devmap before the
    /// flags that say an interface is in it), and last a map that switches
    /// what the programs read (a generation): it is written once the
    /// entries it switches to are complete and the stale ones are gone.
    pub shared_maps: Vec<&'static str>,
    /// Names of its punt reasons, for counters from
    /// [`linuxfp_ebpf_common::abi::counter::FIRST_FPM_REASON`] on.
    pub punt_reasons: Vec<&'static str>,
}

impl FpmDeclaration {
    /// The hooks this FPM has a program for.
    pub fn hooks(&self) -> impl Iterator<Item = Hook> + '_ {
        self.programs.keys().copied()
    }

    /// Name of counter `index` (generic counters first, then punt reasons).
    pub fn counter_name(&self, index: u32) -> Option<&'static str> {
        use linuxfp_ebpf_common::abi::counter::{FIRST_FPM_REASON, GENERIC_NAMES};
        if index < FIRST_FPM_REASON {
            GENERIC_NAMES.get(index as usize).copied()
        } else {
            self.punt_reasons
                .get((index - FIRST_FPM_REASON) as usize)
                .copied()
        }
    }
}

/// Bytes, shown as hex in JSON so plans stay readable and diffable.
///
/// Map keys and values are mostly small (a rule slot, an LPM key), and a
/// large ruleset makes tens of thousands of them on every change: up to
/// [`HexBytes::INLINE`] bytes are kept inline, without an allocation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HexBytes(SmallVec<[u8; HexBytes::INLINE]>);

impl HexBytes {
    /// The longest bytes kept without a heap allocation.
    pub const INLINE: usize = 32;

    /// A copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        HexBytes(SmallVec::from_slice(bytes))
    }

    /// The bytes of a plain-old-data value (its in-memory representation).
    pub fn of<T: aya::Pod>(value: &T) -> Self {
        // SAFETY: `Pod` types are plain bytes with no padding and no
        // pointers, so viewing one as a byte slice is sound.
        let bytes = unsafe {
            std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>())
        };
        Self::new(bytes)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Appends `bytes` (to build a key from its parts).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

impl std::ops::Deref for HexBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for HexBytes {
    fn from(bytes: &[u8]) -> Self {
        Self::new(bytes)
    }
}

impl From<Vec<u8>> for HexBytes {
    fn from(bytes: Vec<u8>) -> Self {
        HexBytes(SmallVec::from_vec(bytes))
    }
}

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for HexBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{self:?}"))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|d| u8::from_str_radix(d, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("not a hex digit"))
            })
            .collect::<Result<SmallVec<_>, _>>()
            .map(HexBytes)
    }
}

/// The desired contents of one map: key bytes → value bytes.
pub type MapContents = BTreeMap<HexBytes, HexBytes>;

/// An FPM's parameters for one deployment: global constants (a change means
/// new programs, swapped in atomically) and the contents of its shared maps
/// (a change is written in place, no redeploy).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FpmConfig {
    /// Global constants by symbol name.
    pub globals: BTreeMap<String, HexBytes>,
    /// Shared map contents by map name. Maps not named here are left alone.
    pub maps: BTreeMap<String, MapContents>,
}

/// What an FPM's parameterizer gets to look at.
#[derive(Clone, Copy, Debug)]
pub struct ParamInput<'a> {
    /// The topology being planned.
    pub topology: &'a Topology,
    /// What the Compatibility Manager decided for every interface.
    pub decisions: &'a Decisions,
    /// The kernel state the topology was derived from, when there is one (a
    /// host feeding topologies from an orchestrator may have none).
    pub state: Option<&'a KernelState>,
}

/// A fast-path module.
///
/// Implementations must be cheap to call: `parameterize` runs on every
/// (debounced) change of the kernel's state, and its output is diffed
/// against what is deployed, so only real changes reach the kernel.
pub trait Fpm: Send + Sync + 'static {
    /// What this FPM is, accelerates and needs.
    fn declaration(&self) -> &FpmDeclaration;

    /// The eBPF object (an ELF file), aligned as `aya` needs: use
    /// `aya::include_bytes_aligned!`.
    fn bytecode(&self) -> &'static [u8];

    /// Globals and shared map contents for this topology and these
    /// decisions. Only the interfaces where the decisions place this FPM
    /// matter, but the FPM may also need the others (e.g. a router's egress
    /// interfaces).
    fn parameterize(&self, input: &ParamInput<'_>) -> Result<FpmConfig, FpmError>;

    /// How often [`Fpm::upkeep`] runs while the FPM has stages deployed;
    /// `None` (the default) for never.
    fn upkeep_interval(&self) -> Option<Duration> {
        None
    }

    /// Periodic work while deployed: typically giving back to the kernel
    /// what the fast path hides from it (the bridge FPM refreshes the
    /// kernel's FDB entries that only the fast path sees in use, so they
    /// age exactly as without LinuxFP). Runs on the deploy worker's thread,
    /// inside the target network namespace, so sockets opened here talk to
    /// that namespace. An error is logged and the next call happens as
    /// planned; the fast path is not affected.
    fn upkeep(&self, _ctx: &UpkeepCtx<'_>) -> Result<(), FpmError> {
        Ok(())
    }
}

/// What an FPM's [`Fpm::upkeep`] works with.
#[derive(Debug)]
pub struct UpkeepCtx<'a> {
    /// The FPM's name.
    pub fpm: &'a str,
    /// Where the namespace's maps are pinned.
    pub layout: &'a PinLayout,
    /// The FPM's configuration as deployed.
    pub config: &'a FpmConfig,
}

impl UpkeepCtx<'_> {
    /// The pin of one of the FPM's maps (its `shared_maps` and
    /// [`linuxfp_ebpf_common::abi::STATS_MAP`]).
    pub fn map_pin(&self, map: &str) -> std::path::PathBuf {
        self.layout.fpm_map(self.fpm, map)
    }
}

/// Errors of FPMs and of the registry.
#[derive(Debug, thiserror::Error)]
pub enum FpmError {
    /// Two FPMs with the same name were registered.
    #[error("an FPM named `{0}` is already registered")]
    Duplicate(&'static str),
    /// The parameterizer could not express the topology.
    #[error("FPM `{fpm}` cannot parameterize: {reason}")]
    Parameterize {
        /// The FPM.
        fpm: &'static str,
        /// Why.
        reason: String,
    },
    /// An FPM's periodic upkeep failed (it runs again at its next interval).
    #[error("FPM `{fpm}` upkeep: {reason}")]
    Upkeep {
        /// The FPM.
        fpm: &'static str,
        /// Why.
        reason: String,
    },
}

/// The FPMs a host application registered, in registration order.
#[derive(Clone, Default)]
pub struct FpmRegistry {
    fpms: Vec<Arc<dyn Fpm>>,
}

impl fmt::Debug for FpmRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.fpms.iter().map(|m| m.declaration().name))
            .finish()
    }
}

impl FpmRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an FPM; names must be unique.
    pub fn register(&mut self, fpm: Arc<dyn Fpm>) -> Result<(), FpmError> {
        let name = fpm.declaration().name;
        if self.get(name).is_some() {
            return Err(FpmError::Duplicate(name));
        }
        self.fpms.push(fpm);
        Ok(())
    }

    /// The FPM with this name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Fpm>> {
        self.fpms.iter().find(|m| m.declaration().name == name)
    }

    /// The first registered FPM that accelerates `function` on `hook`.
    pub fn for_function(&self, function: NetworkFunction, hook: Hook) -> Option<&Arc<dyn Fpm>> {
        self.fpms.iter().find(|m| {
            let d = m.declaration();
            d.role == FpmRole::Accelerates(function) && d.programs.contains_key(&hook)
        })
    }

    /// All FPMs for `function`, in registration order.
    pub fn all_for(&self, function: NetworkFunction) -> impl Iterator<Item = &Arc<dyn Fpm>> {
        self.fpms
            .iter()
            .filter(move |m| m.declaration().role == FpmRole::Accelerates(function))
    }

    /// The prelude FPMs, in registration order.
    pub fn preludes(&self) -> impl Iterator<Item = &Arc<dyn Fpm>> {
        self.fpms
            .iter()
            .filter(|m| m.declaration().role == FpmRole::Prelude)
    }

    /// All registered FPMs.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Fpm>> {
        self.fpms.iter()
    }

    /// True if nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.fpms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_bytes_round_trip_through_json() {
        let v = HexBytes::new(&[0x00, 0x0a, 0xff]);
        let json = serde_json::to_string(&v).expect("serialise");
        assert_eq!(json, "\"000aff\"");
        let back: HexBytes = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, v);
        assert!(serde_json::from_str::<HexBytes>("\"abc\"").is_err());
        assert!(serde_json::from_str::<HexBytes>("\"zz\"").is_err());
        // Not a panic on a multi-byte character.
        assert!(serde_json::from_str::<HexBytes>("\"0é\"").is_err());
        // Longer than what is kept inline: the same bytes.
        let long: Vec<u8> = (0..=200).collect();
        let v = HexBytes::from(long.clone());
        let back: HexBytes =
            serde_json::from_str(&serde_json::to_string(&v).expect("json")).expect("parse");
        assert_eq!(back.as_slice(), long.as_slice());
        assert_eq!(HexBytes::new(&long), v);
    }

    #[test]
    fn hex_bytes_of_pod_is_its_memory() {
        assert_eq!(
            HexBytes::of(&0x0102_0304u32).as_slice(),
            0x0102_0304u32.to_ne_bytes()
        );
    }

    #[test]
    fn counter_names_cover_generic_then_fpm_reasons() {
        let d = FpmDeclaration {
            name: "x",
            role: FpmRole::Prelude,
            programs: BTreeMap::new(),
            capabilities: vec![],
            shared_maps: vec![],
            punt_reasons: vec!["a", "b"],
        };
        assert_eq!(d.counter_name(0), Some("fast"));
        assert_eq!(d.counter_name(3), Some("chain_miss"));
        assert_eq!(d.counter_name(4), Some("a"));
        assert_eq!(d.counter_name(5), Some("b"));
        assert_eq!(d.counter_name(6), None);
    }
}
