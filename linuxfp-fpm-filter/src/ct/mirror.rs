// SPDX-License-Identifier: MIT OR Apache-2.0
//! The conntrack mirror, kept by the FPM's upkeep on the deploy worker
//! (inside the namespace): the eligible kernel entries ([`eligible`])
//! in `FILTER_CT`, and the kernel timeouts of the flows the fast path
//! forwards refreshed from `FILTER_CT_SEEN`.
//!
//! On the first round (and whenever the ruleset starts reading conntrack,
//! the pinned map is a new one, `nf_conntrack_tcp_be_liberal` changes or
//! events were lost) it subscribes to the conntrack events, then dumps the
//! table and rewrites the map; afterwards each round applies the queued
//! events. A flow is in the map from the round after the kernel assured it
//! until the round after it stops being eligible (a FIN moves TCP out of
//! ESTABLISHED; the kernel's UPDATE says so) or is destroyed; in between
//! the fast path may classify a packet with a state up to one interval
//! old (see the crate docs).
//!
//! Timeouts: every [`REFRESH_EVERY`], each mirrored flow the fast path
//! forwarded since its last refresh gets the
//! timeout the kernel would have set on seeing that packet (TCP
//! established / UDP stream timeout of the namespace). Idle flows are left
//! alone and expire as usual.

use std::{
    collections::HashMap as StdHashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use aya::maps::{HashMap, Map, MapData, MapError};
use linuxfp::{
    fpm::UpkeepCtx,
    inspector::{
        InspectError,
        conntrack::{CtEntry, CtEvent, CtSocket, CtTuple},
    },
};
use linuxfp_ebpf_common::filter::{CONF_CT, CONF_GLOBAL, CT_MAP, CT_SEEN_MAP, CtKey, CtValue};

use super::eligible::{CtSettings, eligible, mirror_entries, refreshed_timeout};

/// Least time between two timeout refreshes of one flow.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// Errors of one upkeep round.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// A pinned map could not be opened.
    #[error("open {map} at {path}: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// Its pin.
        path: String,
        /// Why.
        #[source]
        source: MapError,
    },
    /// A map update failed for another reason than a full map.
    #[error("update {map}: {source}")]
    Update {
        /// The map.
        map: &'static str,
        /// Why.
        #[source]
        source: MapError,
    },
    /// The ctnetlink socket failed.
    #[error("conntrack: {0}")]
    Conntrack(#[from] InspectError),
}

/// What the mirror has done so far, for tests and operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorStats {
    /// Upkeep rounds that kept the mirror.
    pub rounds: u64,
    /// Full dumps (first round, map or setting changes, lost events).
    pub resyncs: u64,
    /// Flows in the mirror now.
    pub mirrored: u64,
    /// Eligible flows left out because the map was full.
    pub full: u64,
    /// ctnetlink messages that did not decode.
    pub skipped: u64,
    /// Kernel timeouts set.
    pub refreshed: u64,
}

/// The upkeep's state across rounds.
#[derive(Debug, Default)]
pub struct CtMirror {
    live: Mutex<Option<Live>>,
    rounds: AtomicU64,
    resyncs: AtomicU64,
    mirrored: AtomicU64,
    full: AtomicU64,
    skipped: AtomicU64,
    refreshed: AtomicU64,
}

/// One flow in the mirror.
#[derive(Debug)]
struct Flow {
    entry: CtEntry,
    /// `FILTER_CT_SEEN` time of the packet that caused the last refresh.
    refreshed_ns: u64,
    /// When it was last refreshed.
    refreshed_at: Option<Instant>,
}

#[derive(Debug)]
struct Live {
    events: CtSocket,
    requests: CtSocket,
    settings: CtSettings,
    /// The id of the pinned map written (a redeploy may make a new one).
    map_id: u32,
    /// Mirrored flows by original tuple.
    flows: StdHashMap<CtTuple, Flow>,
    /// Both mirror keys of each flow → its original tuple.
    by_key: StdHashMap<CtKey, CtTuple>,
    /// When `FILTER_CT_SEEN` was last walked.
    scanned_at: Option<Instant>,
}

type CtMap = HashMap<MapData, CtKey, CtValue>;

fn open_map<V: aya::Pod>(
    ctx: &UpkeepCtx<'_>,
    map: &'static str,
) -> Result<(HashMap<MapData, CtKey, V>, u32), MirrorError> {
    let path = ctx.map_pin(map);
    let err = |source| MirrorError::Map {
        map,
        path: path.display().to_string(),
        source,
    };
    let data = MapData::from_pin(&path).map_err(err)?;
    let id = data.info().map_err(err)?.id();
    let m = Map::from_map_data(data)
        .and_then(HashMap::try_from)
        .map_err(err)?;
    Ok((m, id))
}

/// Reads the namespace's settings (the calling thread's namespace). A
/// missing file (conntrack not loaded) gives the kernel default.
fn read_settings() -> CtSettings {
    let read = |name: &str| -> Option<u32> {
        std::fs::read_to_string(format!("/proc/sys/net/netfilter/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let d = CtSettings::default();
    CtSettings {
        tcp_be_liberal: read("nf_conntrack_tcp_be_liberal").is_some_and(|v| v != 0),
        tcp_established: read("nf_conntrack_tcp_timeout_established").unwrap_or(d.tcp_established),
        udp_stream: read("nf_conntrack_udp_timeout_stream").unwrap_or(d.udp_stream),
        checksum: read("nf_conntrack_checksum").is_none_or(|v| v != 0),
    }
}

/// Whether the deployed configuration reads conntrack state.
fn reads_ct(ctx: &UpkeepCtx<'_>) -> bool {
    ctx.config
        .globals
        .get(CONF_GLOBAL)
        .and_then(|b| {
            let at = std::mem::offset_of!(linuxfp_ebpf_common::filter::FilterConf, flags);
            b.get(at..at + 4)
        })
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .is_some_and(|b| u32::from_ne_bytes(b) & CONF_CT != 0)
}

impl CtMirror {
    /// What has been done so far.
    pub fn stats(&self) -> MirrorStats {
        MirrorStats {
            rounds: self.rounds.load(Ordering::Relaxed),
            resyncs: self.resyncs.load(Ordering::Relaxed),
            mirrored: self.mirrored.load(Ordering::Relaxed),
            full: self.full.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            refreshed: self.refreshed.load(Ordering::Relaxed),
        }
    }

    /// One upkeep round.
    pub fn run(&self, ctx: &UpkeepCtx<'_>) -> Result<(), MirrorError> {
        let mut guard = crate::lock(&self.live);
        if !reads_ct(ctx) {
            // Nothing reads the mirror: no sockets, no events to follow.
            // Whoever needs it again starts with a full dump.
            *guard = None;
            return Ok(());
        }
        self.rounds.fetch_add(1, Ordering::Relaxed);
        let (mut map, map_id) = open_map::<CtValue>(ctx, CT_MAP)?;
        let settings = read_settings();
        let stale = match guard.as_ref() {
            None => true,
            Some(l) => l.map_id != map_id || l.settings != settings,
        };
        if stale {
            // Subscribe before dumping: nothing falls between the two.
            let live = Live {
                events: CtSocket::events_socket()?,
                requests: CtSocket::requests()?,
                settings,
                map_id,
                flows: StdHashMap::new(),
                by_key: StdHashMap::new(),
                scanned_at: None,
            };
            let live = guard.insert(live);
            self.resync(live, &mut map)?;
        }
        let Some(live) = guard.as_mut() else {
            return Ok(());
        };
        let batch = live.events.events()?;
        self.skipped
            .fetch_add(batch.skipped as u64, Ordering::Relaxed);
        if batch.overrun {
            tracing::debug!("conntrack events lost; dumping the table again");
            self.resync(live, &mut map)?;
        } else {
            for ev in batch.events {
                self.apply(live, &mut map, ev)?;
            }
        }
        self.mirrored
            .store(live.flows.len() as u64, Ordering::Relaxed);
        self.refresh(ctx, live)
    }

    /// Rewrites the map from a full dump.
    fn resync(&self, live: &mut Live, map: &mut CtMap) -> Result<(), MirrorError> {
        self.resyncs.fetch_add(1, Ordering::Relaxed);
        // Drain what queued up to now: the dump below supersedes it.
        let _ = live.events.events()?;
        let batch = live.requests.dump()?;
        self.skipped
            .fetch_add(batch.skipped as u64, Ordering::Relaxed);
        let old: Vec<CtKey> = map.keys().filter_map(Result::ok).collect();
        for k in &old {
            remove_key(map, k)?;
        }
        live.flows.clear();
        live.by_key.clear();
        for ev in batch.events {
            self.apply(live, map, ev)?;
        }
        tracing::debug!(flows = live.flows.len(), "conntrack mirror rebuilt");
        Ok(())
    }

    /// One entry added, changed or removed.
    fn apply(&self, live: &mut Live, map: &mut CtMap, ev: CtEvent) -> Result<(), MirrorError> {
        let (entry, alive) = match ev {
            CtEvent::Upsert(e) => (e, true),
            CtEvent::Destroy(e) => (e, false),
        };
        let ok = alive && eligible(&entry, &live.settings).is_ok();
        let known = live.flows.contains_key(&entry.orig);
        if !ok {
            if let Some(f) = live.flows.remove(&entry.orig) {
                for (k, _) in mirror_entries(&f.entry, &live.settings) {
                    live.by_key.remove(&k);
                    remove_key(map, &k)?;
                }
            }
            return Ok(());
        }
        if known {
            // The same flow (tuples are the identity): keep its refresh
            // state, update what the kernel says about it.
            if let Some(f) = live.flows.get_mut(&entry.orig) {
                f.entry = entry;
            }
            return Ok(());
        }
        let entries = mirror_entries(&entry, &live.settings);
        for (i, (k, v)) in entries.iter().enumerate() {
            if let Err(e) = map.insert(k, v, 0) {
                // Undo the half written.
                for (k, _) in &entries[..i] {
                    remove_key(map, k)?;
                }
                if is_full(&e) {
                    self.full.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                return Err(MirrorError::Update {
                    map: CT_MAP,
                    source: e,
                });
            }
        }
        for (k, _) in &entries {
            live.by_key.insert(*k, entry.orig);
        }
        live.flows.insert(
            entry.orig,
            Flow {
                entry,
                refreshed_ns: 0,
                refreshed_at: None,
            },
        );
        Ok(())
    }

    /// Sets the kernel timeout of the flows the fast path kept busy. The
    /// walk over `FILTER_CT_SEEN` (two syscalls per entry) runs once per
    /// [`REFRESH_EVERY`], not every round.
    fn refresh(&self, ctx: &UpkeepCtx<'_>, live: &mut Live) -> Result<(), MirrorError> {
        let now = Instant::now();
        if live
            .scanned_at
            .is_some_and(|at| now.duration_since(at) < REFRESH_EVERY)
        {
            return Ok(());
        }
        live.scanned_at = Some(now);
        let (seen, _) = open_map::<u64>(ctx, CT_SEEN_MAP)?;
        let mut todo: Vec<(CtTuple, u64)> = Vec::new();
        for item in seen.iter() {
            // An entry evicted while iterating ends the walk early; the
            // rest is picked up next round.
            let Ok((key, last_ns)) = item else { break };
            let Some(orig) = live.by_key.get(&key) else {
                continue;
            };
            let Some(f) = live.flows.get(orig) else {
                continue;
            };
            let due = f
                .refreshed_at
                .is_none_or(|at| now.duration_since(at) >= REFRESH_EVERY);
            if last_ns > f.refreshed_ns && due {
                todo.push((*orig, last_ns));
            }
        }
        for (orig, last_ns) in todo {
            let Some(f) = live.flows.get_mut(&orig) else {
                continue;
            };
            if f.refreshed_at == Some(now) {
                // Both directions were seen: one refresh covers them.
                f.refreshed_ns = f.refreshed_ns.max(last_ns);
                continue;
            }
            let secs = refreshed_timeout(&f.entry, &live.settings);
            if live.requests.set_timeout(&orig, secs)? {
                self.refreshed.fetch_add(1, Ordering::Relaxed);
            }
            f.refreshed_ns = last_ns;
            f.refreshed_at = Some(now);
        }
        Ok(())
    }
}

fn is_full(e: &MapError) -> bool {
    matches!(e, MapError::SyscallError(s) if s.io_error.raw_os_error() == Some(libc::E2BIG))
}

/// Removes `k`; absent is fine.
fn remove_key(map: &mut CtMap, k: &CtKey) -> Result<(), MirrorError> {
    match map.remove(k) {
        Ok(()) => Ok(()),
        Err(MapError::SyscallError(s)) if s.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(MapError::KeyNotFound) => Ok(()),
        Err(e) => Err(MirrorError::Update {
            map: CT_MAP,
            source: e,
        }),
    }
}
