// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Deployer: applies the difference between the deployed
//! [`FastPathPlan`] and a new one.
//!
//! - Objects are loaded once per (FPM, hook, chain position) and reused
//!   until the FPM's globals change; then new programs are loaded and
//!   swapped in.
//! - Swaps are atomic: an attached program is replaced through its BPF link
//!   (`bpf_link_update`), a chained stage through its program-array slot.
//!   Packets see the old or the new path, never a half-built one.
//! - Map contents are written before the programs that read them are
//!   attached, and only the entries that changed are written.
//! - Links are owned by this process and never pinned: if it exits or
//!   crashes, the kernel detaches every program and Linux carries the
//!   traffic again (fail open).
//! - It never replaces a program it did not install: the kernel refuses an
//!   XDP link over another XDP program, and foreign tcx programs are
//!   checked before attaching.
//!
//! A `Deployer` must be used from a thread inside the target network
//! namespace (ifindexes, devmap targets and TC attachment are resolved in
//! the caller's namespace); [`worker::DeployWorker`] runs one on such a
//! thread.
//!
//! Minimum kernel version: 5.10; tcx needs 6.6 (clsact is used before).

mod attach;
mod pins;
mod rawmap;
mod stats;
pub mod worker;

use std::{
    cmp::Ordering,
    collections::{BTreeMap, BTreeSet},
};

use aya::{
    EbpfLoader,
    maps::{Map, MapData, ProgramArray},
    programs::{ProgramError, SchedClassifier, Xdp},
};
use linuxfp_ebpf_common::abi::{
    self, CHAIN_TC_MAP, CHAIN_XDP_MAP, PKT_CTX_MAP, STAGE_CONF_GLOBAL, STATS_MAP, StageConf,
};
pub use pins::{InstanceLock, PinLayout, ensure_bpffs, ensure_bpffs_at};
pub use stats::{CounterSet, Stats, StatusFile, read_stats};

use self::{attach::Attachment, rawmap::RawMap};
use crate::{
    fpm::{FpmRegistry, HexBytes, Hook, MapContents},
    synth::{FastPathPlan, SlowPath},
};

/// Errors of the deployer. Each names the interface, FPM, map or path.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Another controller manages this namespace.
    #[error("another LinuxFP controller holds {lock}: one controller per network namespace")]
    Busy {
        /// The lock file.
        lock: std::path::PathBuf,
    },
    /// bpffs is missing and could not be mounted.
    #[error("bpffs unavailable at {path}")]
    Bpffs {
        /// The mount point.
        path: std::path::PathBuf,
        /// The mount error.
        #[source]
        source: std::io::Error,
    },
    /// A pin directory or file could not be created.
    #[error("cannot create {path}")]
    Pin {
        /// The path.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Loading an FPM's object failed (ELF, maps, globals, verifier).
    #[error("loading FPM `{fpm}` ({hook}, position {position})")]
    Load {
        /// The FPM.
        fpm: String,
        /// The hook.
        hook: Hook,
        /// The chain position.
        position: u32,
        /// aya's error, with the verifier log if any.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The FPM's object lacks the program its declaration names.
    #[error("FPM `{fpm}` declares program `{program}` but its object has none")]
    MissingProgram {
        /// The FPM.
        fpm: String,
        /// The program name.
        program: String,
    },
    /// The plan names an FPM that is not registered here.
    #[error("plan names unregistered FPM `{0}`")]
    UnknownFpm(String),
    /// A map operation failed.
    #[error("map `{map}`")]
    Map {
        /// The map.
        map: String,
        /// aya's error.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// A raw map syscall failed.
    #[error("{call} on map `{map}`")]
    MapSyscall {
        /// The map.
        map: String,
        /// The syscall.
        call: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A planned map entry has the wrong size for its map.
    #[error(
        "map `{map}`: entry of {key}/{value} bytes, map wants {want_key}/{want_value} (key/value)"
    )]
    MapEntrySize {
        /// The map.
        map: String,
        /// Key bytes given.
        key: usize,
        /// Value bytes given.
        value: usize,
        /// Key bytes expected.
        want_key: usize,
        /// Value bytes expected.
        want_value: usize,
    },
    /// Attaching, replacing or detaching a program on an interface failed.
    #[error("{action} {hook} program on interface {name} (ifindex {ifindex})")]
    Attach {
        /// What was being done.
        action: &'static str,
        /// The hook.
        hook: Hook,
        /// The interface name.
        name: String,
        /// The interface index.
        ifindex: u32,
        /// aya's error.
        #[source]
        source: Box<ProgramError>,
    },
    /// A program that LinuxFP did not install is attached there.
    #[error(
        "interface {name} (ifindex {ifindex}) already has a {hook} program that LinuxFP did not install{detail}; not replacing it"
    )]
    ForeignProgram {
        /// The interface name.
        name: String,
        /// The interface index.
        ifindex: u32,
        /// The hook.
        hook: Hook,
        /// Extra detail (program ids).
        detail: String,
    },
    /// Writing the status file failed.
    #[error("writing status file {path}")]
    Status {
        /// The path.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// What applying a plan did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeployReport {
    /// Interfaces that got a chain for the first time.
    pub attached: BTreeSet<u32>,
    /// Interfaces whose program or chain was swapped.
    pub swapped: BTreeSet<u32>,
    /// Interfaces whose chain was removed.
    pub detached: BTreeSet<u32>,
    /// FPMs whose maps were written, with the number of entries changed.
    pub map_writes: BTreeMap<String, usize>,
    /// Interfaces that could not be accelerated, with the error.
    pub failed: BTreeMap<u32, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InstanceKey {
    fpm: String,
    hook: Hook,
    position: u32,
}

struct Instance {
    ebpf: aya::Ebpf,
    program: &'static str,
    globals: BTreeMap<String, HexBytes>,
    generation: u64,
}

/// Applies plans to the kernel for one network namespace.
pub struct Deployer {
    layout: PinLayout,
    registry: FpmRegistry,
    _lock: InstanceLock,
    instances: BTreeMap<InstanceKey, Instance>,
    next_generation: u64,
    links: BTreeMap<u32, Attachment>,
    slots: BTreeMap<(Hook, u32), (InstanceKey, u64)>,
    maps: BTreeMap<(String, String), RawMap>,
    written: BTreeMap<String, BTreeMap<String, MapContents>>,
    chain_xdp: Option<ProgramArray<MapData>>,
    chain_tc: Option<ProgramArray<MapData>>,
    deployed: std::sync::Arc<FastPathPlan>,
}

impl std::fmt::Debug for Deployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployer")
            .field("layout", &self.layout)
            .field("interfaces", &self.links.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Deployer {
    /// Takes the namespace's lock, clears pins a crashed predecessor left,
    /// and prepares the pin directory. Nothing is attached yet.
    ///
    /// Fails with [`DeployError::Bpffs`] if bpffs is missing at
    /// `/sys/fs/bpf` and cannot be mounted, or if the layout's pin
    /// directory is not on bpffs; nothing is attached then.
    pub fn new(layout: PinLayout, registry: FpmRegistry) -> Result<Self, DeployError> {
        if layout.root.starts_with(pins::BPFFS) {
            ensure_bpffs()?;
        }
        let lock = InstanceLock::acquire(&layout.lock)?;
        // We hold the lock, so pins here belong to a dead instance: their
        // programs are already detached (links die with the process); start
        // clean so no stale map content or chain slot survives.
        pins::remove_pins(&layout.root);
        // The shared parent (`/sys/fs/bpf/linuxfp`) too: it may predate us.
        if let Some(parent) = layout.root.parent() {
            pins::mkdir_private(parent)?;
        }
        pins::mkdir_private(&layout.root)?;
        if let Err(e) = pins::require_bpffs(&layout.root) {
            pins::remove_pins(&layout.root);
            return Err(e);
        }
        Ok(Deployer {
            layout,
            registry,
            _lock: lock,
            instances: BTreeMap::new(),
            next_generation: 1,
            links: BTreeMap::new(),
            slots: BTreeMap::new(),
            maps: BTreeMap::new(),
            written: BTreeMap::new(),
            chain_xdp: None,
            chain_tc: None,
            deployed: std::sync::Arc::default(),
        })
    }

    /// The plan currently deployed (failed interfaces moved to its slow path).
    pub fn deployed(&self) -> &FastPathPlan {
        &self.deployed
    }

    /// The plan currently deployed, shared rather than copied (a
    /// firewall's is tens of thousands of map entries).
    pub fn deployed_shared(&self) -> std::sync::Arc<FastPathPlan> {
        self.deployed.clone()
    }

    /// The pin layout.
    pub fn layout(&self) -> &PinLayout {
        &self.layout
    }

    /// Ids of the programs LinuxFP loaded, to recognise its own attachments.
    pub fn program_ids(&self) -> BTreeSet<u32> {
        self.instances
            .values()
            .filter_map(|i| i.ebpf.program(i.program)?.info().ok().map(|p| p.id()))
            .collect()
    }

    /// Moves the kernel from the deployed plan to `plan`. Failures on one
    /// interface leave it to the kernel and are reported; they do not stop
    /// the others. A stage whose program cannot be loaded (the verifier
    /// refuses it, a map cannot be created) fails every interface whose
    /// chain needs it: those are left to the kernel whole (their previous
    /// chain detached too, since its parameters are out of date), never
    /// with a part of their chain.
    pub fn apply(&mut self, plan: &FastPathPlan) -> Result<DeployReport, DeployError> {
        self.apply_owned(plan.clone())
    }

    /// [`Deployer::apply`] for a plan the caller gives away: no copy of
    /// its map contents (a firewall's are tens of thousands of entries).
    pub fn apply_owned(&mut self, plan: FastPathPlan) -> Result<DeployReport, DeployError> {
        let mut report = DeployReport::default();
        let interfaces = plan.interfaces.clone();
        let mut next = plan;
        let started = std::time::Instant::now();

        // 1. Programs: load what is missing or whose globals changed.
        let mut fresh: BTreeMap<InstanceKey, Instance> = BTreeMap::new();
        let mut unloadable: BTreeMap<InstanceKey, String> = BTreeMap::new();
        for p in interfaces.values() {
            for (position, fpm) in p.stages.iter().enumerate() {
                let key = InstanceKey {
                    fpm: fpm.clone(),
                    hook: p.hook,
                    position: position as u32,
                };
                let globals = next
                    .fpms
                    .get(fpm)
                    .map(|c| c.globals.clone())
                    .unwrap_or_default();
                let current = self.instances.get(&key).map(|i| &i.globals);
                if current == Some(&globals)
                    || fresh.contains_key(&key)
                    || unloadable.contains_key(&key)
                {
                    continue;
                }
                match self.load(&key, globals) {
                    Ok(inst) => {
                        fresh.insert(key, inst);
                    }
                    Err(e) => {
                        let message = error_chain(&e);
                        tracing::warn!(fpm = %key.fpm, hook = %key.hook, position = key.position, error = %message, "cannot load; its interfaces are left to the kernel");
                        unloadable.insert(key, message);
                    }
                }
            }
        }
        for (&ifindex, p) in &interfaces {
            let unloaded = p.stages.iter().enumerate().find_map(|(position, fpm)| {
                unloadable.get(&InstanceKey {
                    fpm: fpm.clone(),
                    hook: p.hook,
                    position: position as u32,
                })
            });
            if let Some(message) = unloaded {
                Self::leave_to_kernel(&mut next, &mut report, ifindex, &p.name, message.clone());
            }
        }
        let needed: BTreeSet<&String> = next.interfaces.values().flat_map(|p| &p.stages).collect();
        let loaded = started.elapsed();

        // 2. Maps, before anything that reads them is attached (only of
        //    the FPMs still used: one that failed to load may have none).
        for (fpm, cfg) in next.fpms.iter().filter(|(f, _)| needed.contains(f)) {
            let n = self.sync_maps(fpm, &cfg.maps)?;
            if n > 0 {
                report.map_writes.insert(fpm.clone(), n);
            }
        }

        let mapped = started.elapsed();

        // Swap loaded instances in; keep the old ones alive until every
        // attachment and slot has moved to the new programs.
        let mut retired = Vec::new();
        for (key, inst) in fresh {
            if let Some(old) = self.instances.insert(key, inst) {
                retired.push(old);
            }
        }

        // 3. Chains: later stages first (slots), then the attached stage, so
        //    a packet entering the new first stage finds its successors.
        let chains: Vec<(u32, crate::synth::InterfacePlan)> = next
            .interfaces
            .iter()
            .map(|(i, p)| (*i, p.clone()))
            .collect();
        for (ifindex, p) in chains {
            let result = self
                .set_slots(ifindex, p.hook, &p.stages)
                .and_then(|()| self.attach_first(ifindex, &p.name, p.hook, &p.stages[0]));
            match result {
                Ok(Some(swapped)) => {
                    if swapped {
                        report.swapped.insert(ifindex);
                    } else {
                        report.attached.insert(ifindex);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(ifindex, interface = %p.name, error = %error_chain(&e), "left to the kernel");
                    self.clear_slots(ifindex, p.hook);
                    self.links.remove(&ifindex);
                    Self::leave_to_kernel(
                        &mut next,
                        &mut report,
                        ifindex,
                        &p.name,
                        error_chain(&e),
                    );
                }
            }
        }

        // 4. Interfaces that lost their chain.
        let gone: Vec<u32> = self
            .links
            .keys()
            .copied()
            .filter(|i| !next.interfaces.contains_key(i))
            .collect();
        for ifindex in gone {
            if let Some(att) = self.links.remove(&ifindex) {
                self.clear_slots(ifindex, att.hook());
                drop(att);
                report.detached.insert(ifindex);
            }
        }

        // 5. Instances no one uses any more, and their FPMs' maps.
        drop(retired);
        let used: BTreeSet<InstanceKey> = next
            .interfaces
            .values()
            .flat_map(|p| {
                p.stages.iter().enumerate().map(|(i, f)| InstanceKey {
                    fpm: f.clone(),
                    hook: p.hook,
                    position: i as u32,
                })
            })
            .collect();
        self.instances.retain(|k, _| used.contains(k));
        let live: BTreeSet<String> = used.iter().map(|k| k.fpm.clone()).collect();
        let dead: Vec<String> = self
            .written
            .keys()
            .filter(|f| !live.contains(*f))
            .cloned()
            .collect();
        for fpm in dead {
            self.written.remove(&fpm);
            self.maps.retain(|(f, _), _| *f != fpm);
            pins::remove_pins(&self.layout.root.join(&fpm));
        }
        // Maps a refused load pinned, for an FPM used nowhere.
        for key in unloadable.keys().filter(|k| !live.contains(&k.fpm)) {
            pins::remove_pins(&self.layout.root.join(&key.fpm));
        }

        next.fpms.retain(|f, _| live.contains(f));
        let old = std::mem::replace(&mut self.deployed, std::sync::Arc::new(next));
        // Freeing a firewall's plan is a few hundred thousand allocations
        // (milliseconds) that nothing waits for: not on the way to
        // reporting the deployment. (Usually the controller still holds
        // it, and frees it once the deployment is reported.)
        if let Ok(old) = std::sync::Arc::try_unwrap(old)
            && old.fpms.values().any(|c| !c.maps.is_empty())
        {
            let _ = std::thread::Builder::new()
                .name("linuxfp-retire".into())
                .spawn(move || drop(old));
        }
        self.write_status()?;
        // Where a deployment's time goes: loading (and verifying) programs,
        // writing maps, swapping chains and retiring the old programs.
        tracing::debug!(
            load_ms = loaded.as_secs_f64() * 1e3,
            maps_ms = (mapped - loaded).as_secs_f64() * 1e3,
            swap_ms = (started.elapsed() - mapped).as_secs_f64() * 1e3,
            entries = report.map_writes.values().sum::<usize>(),
            "deployer: applied"
        );
        Ok(report)
    }

    /// Moves `ifindex` from `next`'s chains to its slow path, and reports
    /// it failed, with `reason`.
    fn leave_to_kernel(
        next: &mut FastPathPlan,
        report: &mut DeployReport,
        ifindex: u32,
        name: &str,
        reason: String,
    ) {
        report.failed.insert(ifindex, reason.clone());
        next.interfaces.remove(&ifindex);
        next.slow_path.insert(
            ifindex,
            SlowPath {
                name: name.to_string(),
                reasons: vec![reason],
            },
        );
    }

    /// Detaches everything and removes the pins and status file.
    pub fn shutdown(mut self) {
        self.links.clear();
        self.instances.clear();
        self.chain_xdp = None;
        self.chain_tc = None;
        self.maps.clear();
        pins::remove_pins(&self.layout.root);
        let _ = std::fs::remove_file(&self.layout.status);
    }

    /// Runs the upkeep of every deployed FPM that has one and whose
    /// interval has passed since `last[fpm]` (updated here). Returns how
    /// long until the next one is due (`None`: no FPM needs upkeep).
    pub fn upkeep(
        &self,
        last: &mut BTreeMap<String, std::time::Instant>,
    ) -> Option<std::time::Duration> {
        let now = std::time::Instant::now();
        let mut next: Option<std::time::Duration> = None;
        for fpm in self.registry.iter() {
            let (Some(every), name) = (fpm.upkeep_interval(), fpm.declaration().name) else {
                continue;
            };
            let Some(config) = self.deployed.fpms.get(name) else {
                last.remove(name);
                continue;
            };
            let due = last
                .get(name)
                .is_none_or(|t| now.duration_since(*t) >= every);
            if due {
                let ctx = crate::fpm::UpkeepCtx {
                    fpm: name,
                    layout: &self.layout,
                    config,
                };
                if let Err(e) = fpm.upkeep(&ctx) {
                    tracing::warn!(fpm = name, error = %e, "upkeep failed");
                }
                last.insert(name.to_string(), now);
            }
            let wait = every.saturating_sub(now.duration_since(last[name]));
            next = Some(next.map_or(wait, |n| n.min(wait)));
        }
        next
    }

    /// Reads the counters of every deployed stage.
    pub fn stats(&self) -> Stats {
        read_stats(&self.layout, &self.status_file())
    }

    fn load(
        &mut self,
        key: &InstanceKey,
        globals: BTreeMap<String, HexBytes>,
    ) -> Result<Instance, DeployError> {
        let fpm = self
            .registry
            .get(&key.fpm)
            .ok_or_else(|| DeployError::UnknownFpm(key.fpm.clone()))?
            .clone();
        let decl = fpm.declaration();
        let program = *decl
            .programs
            .get(&key.hook)
            .ok_or_else(|| DeployError::MissingProgram {
                fpm: key.fpm.clone(),
                program: format!("<{} program>", key.hook),
            })?;
        let fpm_dir = self.layout.root.join(&key.fpm);
        pins::mkdir_private(&fpm_dir)?;

        let stage = StageConf {
            position: key.position,
            has_next: 1,
        };
        let abi_paths: Vec<(&str, std::path::PathBuf)> = [CHAIN_XDP_MAP, CHAIN_TC_MAP, PKT_CTX_MAP]
            .into_iter()
            .map(|m| (m, self.layout.abi_map(m)))
            .collect();
        let fpm_paths: Vec<(&str, std::path::PathBuf)> = std::iter::once(STATS_MAP)
            .chain(decl.shared_maps.iter().copied())
            .map(|m| (m, self.layout.fpm_map(&key.fpm, m)))
            .collect();

        let mut loader = EbpfLoader::new();
        for (m, p) in abi_paths.iter().chain(fpm_paths.iter()) {
            loader.map_pin_path(m, p.as_path());
        }
        loader.override_global(STAGE_CONF_GLOBAL, &stage, false);
        for (name, bytes) in &globals {
            loader.override_global(name, bytes.as_slice(), true);
        }
        let load_err = |e: Box<dyn std::error::Error + Send + Sync>| DeployError::Load {
            fpm: key.fpm.clone(),
            hook: key.hook,
            position: key.position,
            source: e,
        };
        let mut ebpf = loader
            .load(fpm.bytecode())
            .map_err(|e| load_err(Box::new(e)))?;
        let prog = ebpf
            .program_mut(program)
            .ok_or_else(|| DeployError::MissingProgram {
                fpm: key.fpm.clone(),
                program: program.to_string(),
            })?;
        match key.hook {
            Hook::Xdp => {
                let p: &mut Xdp = prog
                    .try_into()
                    .map_err(|e: ProgramError| load_err(Box::new(e)))?;
                p.load().map_err(|e| load_err(Box::new(e)))?;
            }
            Hook::Tc => {
                let p: &mut SchedClassifier = prog
                    .try_into()
                    .map_err(|e: ProgramError| load_err(Box::new(e)))?;
                p.load().map_err(|e| load_err(Box::new(e)))?;
            }
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        tracing::debug!(fpm = %key.fpm, hook = %key.hook, position = key.position, generation, "loaded");
        Ok(Instance {
            ebpf,
            program,
            globals,
            generation,
        })
    }

    /// Writes `desired` (map name → contents) for `fpm`, in the order its
    /// `shared_maps` declares (see [`FpmDeclaration::shared_maps`]):
    /// every map's additions and changes in that order, then every map's
    /// removals in the reverse order, except for the last declared map,
    /// which is written whole after all of that. So a key that moves (a
    /// MAC to another port) is never briefly absent, and a map that
    /// switches generations (declared last) is written once the new
    /// generation's entries are complete and the old ones it replaces are
    /// gone. Both in batches: a new firewall generation is tens of
    /// thousands of entries. What was written is followed exactly, also
    /// on an error.
    ///
    /// [`FpmDeclaration::shared_maps`]: crate::fpm::FpmDeclaration::shared_maps
    fn sync_maps(
        &mut self,
        fpm: &str,
        desired: &BTreeMap<String, MapContents>,
    ) -> Result<usize, DeployError> {
        let declared: Vec<&'static str> = self
            .registry
            .get(fpm)
            .map(|f| f.declaration().shared_maps.clone())
            .unwrap_or_default();
        let (order, last) = write_order(&declared, desired.keys());
        let mut changed = 0;
        for map in &order {
            changed += self.write_map(fpm, map, &desired[*map])?;
        }
        for map in order.iter().rev() {
            changed += self.remove_stale(fpm, map, &desired[*map])?;
        }
        if let Some(map) = last {
            changed += self.write_map(fpm, map, &desired[map])?;
            changed += self.remove_stale(fpm, map, &desired[map])?;
        }
        Ok(changed)
    }

    /// Writes the entries of `want` that `fpm`'s map `map` lacks or holds
    /// with another value. Returns how many were written.
    fn write_map(
        &mut self,
        fpm: &str,
        map: &str,
        want: &MapContents,
    ) -> Result<usize, DeployError> {
        let (raw, have) = self.open_map(fpm, map)?;
        let updates = changed_entries(want, have);
        let bytes: Vec<(&[u8], &[u8])> = updates
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let (done, result) = raw.update_all(&bytes);
        for (k, v) in &updates[..done] {
            have.insert((*k).clone(), (*v).clone());
        }
        result.map(|()| done)
    }

    /// Removes the entries of `fpm`'s map `map` that `want` does not hold.
    /// Returns how many were removed.
    fn remove_stale(
        &mut self,
        fpm: &str,
        map: &str,
        want: &MapContents,
    ) -> Result<usize, DeployError> {
        let (raw, have) = self.open_map(fpm, map)?;
        let stale = stale_keys(want, have);
        let keys: Vec<&[u8]> = stale.iter().map(|k| k.as_slice()).collect();
        let (done, result) = raw.delete_all(&keys);
        for k in &stale[..done] {
            have.remove(k);
        }
        result.map(|()| done)
    }

    /// `fpm`'s map `map` (its pin opened once) and what was written to it.
    fn open_map(
        &mut self,
        fpm: &str,
        map: &str,
    ) -> Result<(&RawMap, &mut MapContents), DeployError> {
        let key = (fpm.to_string(), map.to_string());
        if !self.maps.contains_key(&key) {
            let path = self.layout.fpm_map(fpm, map);
            let data = MapData::from_pin(&path).map_err(|source| DeployError::Map {
                map: format!("{fpm}/{map} ({})", path.display()),
                source: Box::new(source),
            })?;
            self.maps
                .insert(key.clone(), RawMap::new(&format!("{fpm}/{map}"), data)?);
        }
        let have = self
            .written
            .entry(key.0.clone())
            .or_default()
            .entry(key.1.clone())
            .or_default();
        Ok((&self.maps[&key], have))
    }

    fn chain_map(&mut self, hook: Hook) -> Result<&mut ProgramArray<MapData>, DeployError> {
        let (slot, name) = match hook {
            Hook::Xdp => (&mut self.chain_xdp, CHAIN_XDP_MAP),
            Hook::Tc => (&mut self.chain_tc, CHAIN_TC_MAP),
        };
        if slot.is_none() {
            let path = self.layout.abi_map(name);
            let map_err = |source| DeployError::Map {
                map: format!("{name} ({})", path.display()),
                source: Box::new(source),
            };
            let data = MapData::from_pin(&path).map_err(map_err)?;
            let map = Map::from_map_data(data).map_err(map_err)?;
            *slot = Some(ProgramArray::try_from(map).map_err(map_err)?);
        }
        // Just filled above if it was empty.
        slot.as_mut().ok_or_else(|| DeployError::Map {
            map: name.to_string(),
            source: Box::new(aya::maps::MapError::InvalidName {
                name: name.to_string(),
            }),
        })
    }

    fn set_slots(
        &mut self,
        ifindex: u32,
        hook: Hook,
        stages: &[String],
    ) -> Result<(), DeployError> {
        for (position, fpm) in stages.iter().enumerate().skip(1) {
            let key = InstanceKey {
                fpm: fpm.clone(),
                hook,
                position: position as u32,
            };
            let Some(slot) = abi::chain_key(ifindex, position as u32) else {
                continue;
            };
            let inst = self
                .instances
                .get(&key)
                .ok_or_else(|| DeployError::UnknownFpm(fpm.clone()))?;
            let generation = inst.generation;
            if self.slots.get(&(hook, slot)) == Some(&(key.clone(), generation)) {
                continue;
            }
            let fd = inst
                .ebpf
                .program(inst.program)
                .ok_or_else(|| DeployError::MissingProgram {
                    fpm: fpm.clone(),
                    program: inst.program.to_string(),
                })?
                .fd()
                .map_err(|source| DeployError::Attach {
                    action: "chaining",
                    hook,
                    name: format!("#{ifindex}"),
                    ifindex,
                    source: Box::new(source),
                })?
                .try_clone()
                .map_err(|e| DeployError::MapSyscall {
                    map: "chain".into(),
                    call: "dup",
                    source: e,
                })?;
            self.chain_map(hook)?
                .set(slot, &fd, 0)
                .map_err(|source| DeployError::Map {
                    map: format!("chain slot {slot} (ifindex {ifindex}, position {position})"),
                    source: Box::new(source),
                })?;
            self.slots.insert((hook, slot), (key, generation));
        }
        // Slots past the end of the chain (it got shorter, or changed hook).
        for h in [Hook::Xdp, Hook::Tc] {
            let from = if h == hook { stages.len() as u32 } else { 1 };
            for position in from.max(1)..abi::MAX_STAGES {
                if let Some(slot) = abi::chain_key(ifindex, position)
                    && self.slots.remove(&(h, slot)).is_some()
                {
                    let _ = self.chain_map(h)?.clear_index(&slot);
                }
            }
        }
        Ok(())
    }

    fn clear_slots(&mut self, ifindex: u32, hook: Hook) {
        for position in 1..abi::MAX_STAGES {
            if let Some(slot) = abi::chain_key(ifindex, position)
                && self.slots.remove(&(hook, slot)).is_some()
                && let Ok(map) = self.chain_map(hook)
            {
                let _ = map.clear_index(&slot);
            }
        }
    }

    fn write_status(&self) -> Result<(), DeployError> {
        let status = self.status_file();
        let json = serde_json::to_vec_pretty(&status).map_err(|e| DeployError::Status {
            path: self.layout.status.clone(),
            source: std::io::Error::other(e),
        })?;
        pins::write_private(&self.layout.status, &json).map_err(|source| DeployError::Status {
            path: self.layout.status.clone(),
            source,
        })
    }

    fn status_file(&self) -> StatusFile {
        let counters = self
            .deployed
            .fpms
            .keys()
            .filter_map(|f| self.registry.get(f))
            .map(|m| {
                let d = m.declaration();
                let names = (0..abi::COUNTERS_PER_IF)
                    .map_while(|i| d.counter_name(i).map(str::to_string))
                    .collect();
                (d.name.to_string(), names)
            })
            .collect();
        // The plan without the FPMs' map contents: a firewall's are tens of
        // thousands of entries, which readers of the status (counters,
        // `linuxfpd stats`) never look at and which made writing the file
        // the slowest step of a deployment (the maps themselves are pinned).
        let plan = FastPathPlan {
            interfaces: self.deployed.interfaces.clone(),
            fpms: self
                .deployed
                .fpms
                .iter()
                .map(|(name, cfg)| {
                    let cfg = crate::fpm::FpmConfig {
                        globals: cfg.globals.clone(),
                        maps: BTreeMap::new(),
                    };
                    (name.clone(), cfg)
                })
                .collect(),
            slow_path: self.deployed.slow_path.clone(),
        };
        StatusFile {
            pid: std::process::id(),
            plan,
            counters,
        }
    }
}

/// The order [`Deployer::sync_maps`] writes `maps` in: those `declared`
/// (an FPM's `shared_maps`) in that order, then the others by name; the
/// last declared map apart (written last, whole), if among them.
fn write_order<'a>(
    declared: &[&str],
    maps: impl Iterator<Item = &'a String>,
) -> (Vec<&'a String>, Option<&'a String>) {
    let rank = |m: &str| declared.iter().position(|d| *d == m).unwrap_or(usize::MAX);
    let mut order: Vec<&String> = maps.collect();
    // A stable sort: maps not declared keep their order, after the rest.
    order.sort_by_key(|m| rank(m));
    let last = declared
        .last()
        .and_then(|l| order.iter().position(|m| m.as_str() == *l))
        .map(|i| order.remove(i));
    (order, last)
}

/// The entries of `want` that `have` lacks or holds with another value, in
/// key order. Both maps are sorted by the same key, so one walk over the
/// two compares them (tens of thousands of entries per firewall change:
/// no lookup per entry).
fn changed_entries<'a>(
    want: &'a MapContents,
    have: &MapContents,
) -> Vec<(&'a HexBytes, &'a HexBytes)> {
    let mut out = Vec::new();
    let mut theirs = have.iter().peekable();
    for (k, v) in want {
        // One comparison of the keys per step (they are compared bytewise).
        let mut held = None;
        while let Some((hk, hv)) = theirs.peek() {
            match (*hk).cmp(k) {
                Ordering::Less => {
                    theirs.next();
                }
                Ordering::Equal => {
                    held = Some(*hv);
                    break;
                }
                Ordering::Greater => break,
            }
        }
        if held != Some(v) {
            out.push((k, v));
        }
    }
    out
}

/// The keys of `have` that `want` does not hold, in key order (one walk,
/// as in [`changed_entries`]).
fn stale_keys(want: &MapContents, have: &MapContents) -> Vec<HexBytes> {
    let mut out = Vec::new();
    let mut ours = want.keys().peekable();
    for k in have.keys() {
        let mut wanted = false;
        while let Some(wk) = ours.peek() {
            match (*wk).cmp(k) {
                Ordering::Less => {
                    ours.next();
                }
                Ordering::Equal => {
                    wanted = true;
                    break;
                }
                Ordering::Greater => break,
            }
        }
        if !wanted {
            out.push(k.clone());
        }
    }
    out
}

/// An error and its sources, on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(entries: &[(u8, u8)]) -> MapContents {
        entries
            .iter()
            .map(|(k, v)| (HexBytes::new(&[*k]), HexBytes::new(&[*v])))
            .collect()
    }

    #[test]
    fn maps_are_written_in_declared_order_with_the_last_apart() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let maps = names(&["A_OTHER", "GEN", "ROWS", "RULES", "Z_OTHER"]);
        let (order, last) = write_order(&["RULES", "ROWS", "GEN"], maps.iter());
        assert_eq!(order, ["RULES", "ROWS", "A_OTHER", "Z_OTHER"]);
        assert_eq!(last.map(String::as_str), Some("GEN"));
        // The last declared map not in the plan: nothing is apart.
        let (order, last) = write_order(&["RULES", "GEN"], maps[2..4].iter());
        assert_eq!(order, ["RULES", "ROWS"]);
        assert_eq!(last, None);
    }

    #[test]
    fn the_diff_writes_what_changed_and_removes_what_is_gone() {
        let have = contents(&[(1, 10), (2, 20), (4, 40), (6, 60)]);
        let want = contents(&[(0, 1), (2, 20), (3, 30), (4, 41), (7, 70)]);
        let changed: Vec<(u8, u8)> = changed_entries(&want, &have)
            .into_iter()
            .map(|(k, v)| (k[0], v[0]))
            .collect();
        assert_eq!(changed, [(0, 1), (3, 30), (4, 41), (7, 70)]);
        let stale: Vec<u8> = stale_keys(&want, &have).into_iter().map(|k| k[0]).collect();
        assert_eq!(stale, [1, 6]);
        // Nothing to do between equal contents; everything against empty.
        assert!(changed_entries(&want, &want).is_empty());
        assert!(stale_keys(&want, &want).is_empty());
        assert_eq!(
            changed_entries(&want, &MapContents::new()).len(),
            want.len()
        );
        assert_eq!(stale_keys(&MapContents::new(), &have).len(), have.len());
    }
}
