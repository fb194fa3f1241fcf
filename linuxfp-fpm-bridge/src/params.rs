// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bridge's parameterizer: topology, decisions and the kernel's FDB →
//! the contents of the bridge maps.
//!
//! - `BRIDGE_PORTS`: every port of every bridge with at least one
//!   accelerated port: its bridge, state and flags, MTU, PVID.
//! - `BRIDGE_VLANS`: with VLAN filtering, each port's VLANs and whether they
//!   leave untagged.
//! - `BRIDGE_FDB`: the kernel's FDB for those bridges, keyed as the kernel
//!   looks it up (bridge, VLAN, MAC); local entries (`NUD_PERMANENT`: the
//!   bridge's and its ports' own addresses, and `bridge fdb add` without
//!   `static`) are marked so frames to them go up to the kernel.
//! - `BRIDGE_XDP_PORTS`: the ports running XDP themselves (only those take
//!   XDP redirects).
//!
//! The mirror holds at most [`FDB_MIRROR_CAP`] entries (half of
//! [`MAX_FDB`]): the deployer adds new entries before it removes old ones,
//! so the old and the new mirror must fit in the map together. Past the cap
//! the entries that sort last are left out; a MAC missing from the mirror is
//! unknown to the fast path, so frames to or from it go to the kernel (the
//! invariant holds, only those hosts lose acceleration).
//!
//! Every change arrives as map writes (the deployer writes the difference),
//! so a MAC move is one in-place update and programs are never reloaded.

use std::collections::BTreeMap;

use linuxfp::{
    fpm::{FpmConfig, HexBytes, Hook, MapContents, ParamInput},
    state::{FdbEntry, KernelState},
    topology::{Bridge, Topology},
};
use linuxfp_ebpf_common::{abi::MAX_IFINDEX, bridge::*};

/// `NUD_PERMANENT`: how the kernel reports a local FDB entry.
const NUD_PERMANENT: u16 = 0x80;
/// `NTF_STICKY`: the kernel never moves the entry.
const NTF_STICKY: u8 = 0x40;
/// `BR_STATE_FORWARDING`.
const BR_STATE_FORWARDING: u8 = 3;
/// The VLAN protocol of a bridge that does not report one.
const ETH_P_8021Q: u16 = 0x8100;

/// The most FDB entries mirrored, over all bridges: half of [`MAX_FDB`],
/// so a whole new mirror can be written before the old one is removed.
pub const FDB_MIRROR_CAP: usize = MAX_FDB as usize / 2;

/// The bridge's configuration for this input.
pub fn bridge_config(fpm: &str, input: &ParamInput<'_>) -> FpmConfig {
    let topo: &Topology = input.topology;
    let attached: BTreeMap<u32, Hook> = input.decisions.interfaces_of(fpm).collect();
    let mut ports = MapContents::new();
    let mut vlans = MapContents::new();
    let mut fdb = MapContents::new();
    let mut xdp_ports = MapContents::new();
    for bridge in topo.bridges.values() {
        if !bridge.ports.keys().any(|p| attached.contains_key(p)) {
            continue;
        }
        let vlan_proto = input
            .state
            .and_then(|s| s.links.get(&bridge.ifindex))
            .and_then(|l| l.bridge.as_ref())
            .map(|b| b.vlan_protocol)
            .filter(|p| *p != 0)
            .unwrap_or(ETH_P_8021Q);
        // br_netfilter validates the IP headers of bridged frames.
        let br_nf = input.state.map_or((false, false), |s| {
            (
                s.br_netfilter_ipv4_on(bridge.ifindex),
                s.br_netfilter_ipv6_on(bridge.ifindex),
            )
        });
        for (&ifindex, port) in &bridge.ports {
            // BRIDGE_PORTS is an array indexed by ifindex: ports above its
            // range are unknown to the fast path (frames to them punt).
            if ifindex >= MAX_IFINDEX {
                continue;
            }
            let Some(iface) = topo.interfaces.get(&ifindex) else {
                continue;
            };
            let mut flags = 0;
            match attached.get(&ifindex) {
                Some(Hook::Xdp) => {
                    flags |= PORT_INGRESS | PORT_XDP_EGRESS;
                    // bpf_devmap_val: the target ifindex, no program (fd 0).
                    let mut val = ifindex.to_ne_bytes().to_vec();
                    val.extend_from_slice(&0u32.to_ne_bytes());
                    xdp_ports.insert(HexBytes::new(&ifindex.to_ne_bytes()), HexBytes::from(val));
                }
                Some(Hook::Tc) => flags |= PORT_INGRESS,
                None => {}
            }
            for (bit, on) in [
                (
                    PORT_FORWARDING,
                    port.state == BR_STATE_FORWARDING && iface.up,
                ),
                (PORT_LEARNING, port.learning),
                (PORT_HAIRPIN, port.hairpin),
                (PORT_ISOLATED, port.isolated),
                (PORT_LOCKED, port.locked),
                (PORT_VLAN_FILTERING, bridge.vlan_filtering),
                (PORT_BR_NF_IPV4, br_nf.0),
                (PORT_BR_NF_IPV6, br_nf.1),
            ] {
                if on {
                    flags |= bit;
                }
            }
            let conf = PortConf {
                bridge: bridge.ifindex,
                flags,
                mtu: iface.mtu,
                pvid: if bridge.vlan_filtering {
                    port.pvid.unwrap_or(0)
                } else {
                    0
                },
                vlan_proto,
            };
            ports.insert(HexBytes::new(&ifindex.to_ne_bytes()), HexBytes::of(&conf));
            if bridge.vlan_filtering {
                for (&vlan, &untagged) in &port.vlans {
                    let key = VlanKey {
                        port: ifindex,
                        vlan,
                        pad: 0,
                    };
                    let mut v = VLAN_MEMBER;
                    if untagged {
                        v |= VLAN_UNTAGGED;
                    }
                    vlans.insert(HexBytes::of(&key), HexBytes::new(&v.to_ne_bytes()));
                }
            }
        }
        if let Some(state) = input.state {
            fdb.extend(fdb_entries(state, bridge));
        }
    }
    cap_fdb(&mut fdb, FDB_MIRROR_CAP);
    let mut cfg = FpmConfig::default();
    cfg.maps.insert(PORTS_MAP.to_string(), ports);
    cfg.maps.insert(VLANS_MAP.to_string(), vlans);
    cfg.maps.insert(FDB_MAP.to_string(), fdb);
    cfg.maps.insert(XDP_PORTS_MAP.to_string(), xdp_ports);
    cfg
}

/// Keeps the first `cap` entries of the mirror (in key order, so the same
/// kernel FDB always gives the same mirror); the rest stay with the kernel.
fn cap_fdb(fdb: &mut MapContents, cap: usize) {
    if fdb.len() <= cap {
        return;
    }
    let total = fdb.len();
    if let Some(first_left_out) = fdb.keys().nth(cap).cloned() {
        fdb.split_off(&first_left_out);
    }
    tracing::warn!(
        total,
        mirrored = cap,
        "bridge FDB larger than the fast path's mirror: {} entries stay with the kernel (frames to and from them are punted)",
        total - cap
    );
}

/// The FDB mirror entries of one bridge.
fn fdb_entries<'a>(
    state: &'a KernelState,
    bridge: &'a Bridge,
) -> impl Iterator<Item = (HexBytes, HexBytes)> + 'a {
    state
        .fdb_of_bridge(bridge.ifindex)
        .filter_map(move |e| fdb_entry(bridge, e))
}

/// One FDB entry as the fast path keys it, or `None` for entries that are
/// not forwarding entries of this bridge (multicast, remote VTEPs).
fn fdb_entry(bridge: &Bridge, e: &FdbEntry) -> Option<(HexBytes, HexBytes)> {
    if e.mac[0] & 1 != 0 || e.dst.is_some() {
        return None;
    }
    let on_bridge = e.ifindex == bridge.ifindex;
    if !on_bridge && !bridge.ports.contains_key(&e.ifindex) {
        return None;
    }
    let key = FdbKey {
        bridge: bridge.ifindex,
        vlan: e.vlan.unwrap_or(0),
        mac: e.mac,
    };
    let mut flags = 0;
    if on_bridge || e.state & NUD_PERMANENT != 0 {
        flags |= FDB_LOCAL;
    }
    if e.flags & NTF_STICKY != 0 {
        flags |= FDB_STICKY;
    }
    let value = FdbValue {
        port: e.ifindex,
        flags,
        moved_ns: 0,
    };
    Some((HexBytes::of(&key), HexBytes::of(&value)))
}

#[cfg(test)]
mod tests;
