// SPDX-License-Identifier: MIT OR Apache-2.0
//! Keeps the kernel's FDB ageing true while the fast path forwards.
//!
//! The kernel bridge refreshes an entry each time it sees a frame from that
//! source; frames forwarded in the fast path never reach it. The fast path
//! records, per source, when it last forwarded a frame from it
//! (`BRIDGE_SEEN`). Each upkeep, every source active since its last refresh
//! is refreshed in the kernel with `RTM_NEWNEIGH` + `NTF_USE` on the port
//! it was seen on — the kernel's own `br_fdb_update`, as if it had seen a
//! frame. Sources with no traffic are left alone and age out as usual.
//!
//! A refresh is only sent while the mirror still has the source on that
//! port and the kernel's entry, read back just before, is learnt and on
//! that port too: a host that moved is learnt by the kernel from its first
//! frame on the new port (the fast path punts it), and a refresh never
//! moves it back, even while the mirror still lags by an event.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use aya::maps::{HashMap, Map, MapData};
use linuxfp::{
    fpm::{HexBytes, UpkeepCtx},
    rtnl::{Reply, Requester, RtnlError},
};
use linuxfp_ebpf_common::bridge::{FDB_LOCAL, FDB_MAP, FdbKey, SEEN_MAP, Seen};
use netlink_packet_core::NLM_F_ACK;
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState},
};

/// Errors of one refresh round.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The pinned `BRIDGE_SEEN` map could not be opened.
    #[error("open {map} at {path}: {reason}")]
    Map {
        /// The map.
        map: &'static str,
        /// Its pin.
        path: String,
        /// Why.
        reason: String,
    },
    /// The rtnetlink socket failed.
    #[error(transparent)]
    Netlink(#[from] RtnlError),
    /// The kernel refused some refreshes (the first error is given).
    #[error("{failed} of {sent} FDB refreshes refused; first: port {port}: {reason}")]
    Refused {
        /// Refreshes refused.
        failed: usize,
        /// Refreshes sent.
        sent: usize,
        /// The port of the first refusal.
        port: u32,
        /// The kernel's error.
        reason: String,
    },
}

/// Counters of the refresher, for tests and operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RefreshStats {
    /// Upkeep rounds run.
    pub rounds: u64,
    /// Kernel FDB entries refreshed.
    pub refreshed: u64,
    /// Active sources skipped because the mirror or the kernel no longer
    /// has them, learnt, on the port they were seen on (moved, removed or
    /// made static).
    pub skipped_moved: u64,
}

/// The refresher's state across rounds.
#[derive(Debug, Default)]
pub struct Refresher {
    /// `last_ns` of each source at its last refresh.
    refreshed_at: Mutex<BTreeMap<HexBytes, u64>>,
    rounds: AtomicU64,
    refreshed: AtomicU64,
    skipped_moved: AtomicU64,
}

impl Refresher {
    /// What has been done so far.
    pub fn stats(&self) -> RefreshStats {
        RefreshStats {
            rounds: self.rounds.load(Ordering::Relaxed),
            refreshed: self.refreshed.load(Ordering::Relaxed),
            skipped_moved: self.skipped_moved.load(Ordering::Relaxed),
        }
    }

    /// One round: refreshes every source seen since its last refresh.
    pub fn run(&self, ctx: &UpkeepCtx<'_>) -> Result<(), RefreshError> {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        let path = ctx.map_pin(SEEN_MAP);
        let map_err = |reason: String| RefreshError::Map {
            map: SEEN_MAP,
            path: path.display().to_string(),
            reason,
        };
        let seen = MapData::from_pin(&path)
            .and_then(Map::from_map_data)
            .and_then(HashMap::<MapData, FdbKey, Seen>::try_from)
            .map_err(|e| map_err(e.to_string()))?;
        let empty = BTreeMap::new();
        let mirror = ctx.config.maps.get(FDB_MAP).unwrap_or(&empty);

        let mut todo: Vec<(FdbKey, u32)> = Vec::new();
        let mut last = self.refreshed_at.lock().unwrap_or_else(|p| p.into_inner());
        let mut live = BTreeMap::new();
        for item in seen.iter() {
            // An entry evicted while iterating ends the walk early; the rest
            // is picked up next round.
            let Ok((key, s)) = item else { break };
            let k = HexBytes::of(&key);
            let before = last.get(&k).copied().unwrap_or(0);
            live.insert(k.clone(), before);
            if s.last_ns <= before {
                continue;
            }
            if !mirror_has(mirror, &k, s.port) {
                self.skipped_moved.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            live.insert(k, s.last_ns);
            todo.push((key, s.port));
        }
        // Forget sources the LRU map dropped, so memory stays bounded.
        *last = live;
        drop(last);
        if todo.is_empty() {
            return Ok(());
        }
        let (n, skipped) = refresh_kernel(&todo)?;
        self.refreshed.fetch_add(n as u64, Ordering::Relaxed);
        self.skipped_moved
            .fetch_add(skipped as u64, Ordering::Relaxed);
        tracing::trace!(refreshed = n, skipped, "bridge FDB entries refreshed");
        Ok(())
    }
}

/// Does the FDB mirror still hold `key` on `port` (and as a learnt entry)?
fn mirror_has(mirror: &BTreeMap<HexBytes, HexBytes>, key: &HexBytes, port: u32) -> bool {
    let Some(v) = mirror.get(key) else {
        return false;
    };
    let Some(bytes) = v.get(..8) else {
        return false;
    };
    let entry_port = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let flags = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    entry_port == port && flags & FDB_LOCAL == 0
}

/// The `RTM_NEWNEIGH` that makes the kernel bridge refresh `mac` in `vlan`
/// on `port`, as `bridge fdb replace <mac> dev <port> master use` does
/// (sent with `NLM_F_ACK`).
fn refresh_message(key: &FdbKey, port: u32) -> RouteNetlinkMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = port;
    msg.header.state = NeighbourState::Reachable;
    msg.header.flags = NeighbourFlags::Controller | NeighbourFlags::Use;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(key.mac.to_vec()));
    if key.vlan != 0 {
        msg.attributes.push(NeighbourAttribute::Vlan(key.vlan));
    }
    RouteNetlinkMessage::NewNeighbour(msg)
}

/// `RTM_GETNEIGH` for one bridge FDB entry (`bridge fdb get`).
fn get_message(key: &FdbKey) -> RouteNetlinkMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(key.mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Controller(key.bridge));
    if key.vlan != 0 {
        msg.attributes.push(NeighbourAttribute::Vlan(key.vlan));
    }
    RouteNetlinkMessage::GetNeighbour(msg)
}

/// Is the kernel's entry for `key` a learnt (ageing) one on `port`?
fn kernel_has_learnt(rtnl: &mut Requester, key: &FdbKey, port: u32) -> Result<bool, RefreshError> {
    Ok(match rtnl.request(0, get_message(key))? {
        Reply::Message(RouteNetlinkMessage::NewNeighbour(m)) => {
            m.header.ifindex == port
                && matches!(
                    m.header.state,
                    NeighbourState::Reachable | NeighbourState::Stale
                )
        }
        _ => false,
    })
}

/// Refreshes each entry the kernel still has, learnt, on the port the fast
/// path saw it on — read back just before, so a refresh never moves an
/// entry the kernel has meanwhile moved (the mirror may lag by an event).
/// Returns (refreshed, skipped).
fn refresh_kernel(todo: &[(FdbKey, u32)]) -> Result<(usize, usize), RefreshError> {
    let mut rtnl = Requester::open()?;
    let mut refused: Option<(u32, String)> = None;
    let (mut failed, mut refreshed, mut skipped) = (0, 0, 0);
    for (key, port) in todo {
        if !kernel_has_learnt(&mut rtnl, key, *port)? {
            skipped += 1;
            continue;
        }
        match rtnl.request(NLM_F_ACK, refresh_message(key, *port))? {
            Reply::Ack(Some(reason)) => {
                failed += 1;
                refused.get_or_insert((*port, reason));
            }
            _ => refreshed += 1,
        }
    }
    match refused {
        Some((port, reason)) => Err(RefreshError::Refused {
            failed,
            sent: todo.len(),
            port,
            reason,
        }),
        None => Ok((refreshed, skipped)),
    }
}

#[cfg(test)]
mod tests {
    use linuxfp_ebpf_common::bridge::FdbValue;

    use super::*;

    #[test]
    fn refresh_message_is_what_bridge_fdb_use_sends() {
        let key = FdbKey {
            bridge: 2,
            vlan: 10,
            mac: [0x02, 0, 0, 0, 0, 0x11],
        };
        let msg = refresh_message(&key, 7);
        let RouteNetlinkMessage::NewNeighbour(n) = &msg else {
            panic!("not a new neighbour message: {msg:?}");
        };
        assert_eq!(n.header.family, AddressFamily::Bridge);
        assert_eq!(n.header.ifindex, 7);
        assert_eq!(
            n.header.flags,
            NeighbourFlags::Controller | NeighbourFlags::Use
        );
        assert!(
            n.attributes
                .contains(&NeighbourAttribute::LinkLayerAddress(key.mac.to_vec()))
        );
        assert!(n.attributes.contains(&NeighbourAttribute::Vlan(10)));
        // Without VLAN filtering (vlan 0), no NDA_VLAN.
        let untagged = refresh_message(&FdbKey { vlan: 0, ..key }, 7);
        let RouteNetlinkMessage::NewNeighbour(n) = &untagged else {
            panic!("not a new neighbour message");
        };
        assert!(
            !n.attributes
                .iter()
                .any(|a| matches!(a, NeighbourAttribute::Vlan(_)))
        );
    }

    #[test]
    fn only_learnt_entries_on_the_same_port_are_refreshed() {
        let key = HexBytes::new(&[1; 12]);
        let entry = |port: u32, flags: u32| {
            HexBytes::of(&FdbValue {
                port,
                flags,
                moved_ns: 0,
            })
        };
        let mut mirror = BTreeMap::new();
        assert!(!mirror_has(&mirror, &key, 3), "absent");
        mirror.insert(key.clone(), entry(3, 0));
        assert!(mirror_has(&mirror, &key, 3));
        assert!(!mirror_has(&mirror, &key, 4), "moved to another port");
        mirror.insert(key.clone(), entry(3, FDB_LOCAL));
        assert!(!mirror_has(&mirror, &key, 3), "local entries never age");
    }
}
