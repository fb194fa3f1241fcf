// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bridge's decision for one frame, common to XDP and TC: forward it to
//! a port (with the VLAN tag handling Linux would apply) or punt it.
//!
//! Mirrors `br_handle_frame` → `br_handle_frame_finish` → `br_forward` →
//! `should_deliver` → `br_handle_vlan` for known unicast; every branch where
//! the kernel would learn, flood, deliver locally, drop, or consult state
//! the maps do not hold returns a punt reason instead.

use linuxfp_ebpf_common::{
    bridge::*,
    net::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6},
};

use crate::{BRIDGE_FDB, BRIDGE_PORTS, BRIDGE_SEEN, BRIDGE_VLANS};

/// `ETH_P_RARP`.
const ETH_P_RARP: u16 = 0x8035;

/// What the parser found in the frame (tags as the kernel sees them after
/// `skb_vlan_untag`: the outer tag, if any, and the EtherType after it).
pub struct Frame {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// An outer VLAN tag is present (in the data for XDP, in skb metadata for TC).
    pub tagged: bool,
    /// Its protocol (host order).
    pub tag_proto: u16,
    /// Its VLAN id.
    pub tag_vid: u16,
    /// EtherType after the outer tag (host order).
    pub proto: u16,
    /// IPv6 neighbour discovery (or a frame too short to tell).
    pub nd: bool,
    /// The frame is untagged and carries a plain IP packet that fills it
    /// exactly, as `br_netfilter`'s validation leaves it unchanged (see
    /// [`crate::parse`]).
    pub plain_ip: bool,
    /// Length as the kernel's `is_skb_forwardable` counts it: without the
    /// outer tag; 0 for GSO skbs, which are always forwardable.
    pub len: u32,
}

/// What to do with the tag on the way out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Leave the frame as it is.
    Keep,
    /// Remove the outer tag (egress untagged).
    Strip,
    /// Add a tag with this VLAN id (untagged ingress, tagged egress).
    Push(u16),
}

/// Forward out of `egress`.
pub struct Forward {
    pub egress: u32,
    pub tag: Tag,
    /// The bridge's VLAN protocol, network order, for [`Tag::Push`].
    pub vlan_proto_be: u16,
}

#[inline(always)]
fn vlan_flags(port: u32, vlan: u16) -> u32 {
    let key = VlanKey { port, vlan, pad: 0 };
    // SAFETY: plain lookup; the value is copied out at once.
    unsafe { BRIDGE_VLANS.get(&key) }.copied().unwrap_or(0)
}

/// Decides for a frame arriving on `ingress`.
#[inline(always)]
pub fn decide(ingress: u32, f: &Frame) -> Result<Forward, u32> {
    let port = *BRIDGE_PORTS.get(ingress).ok_or(PUNT_NOT_PORT)?;
    if port.flags & PORT_INGRESS == 0 {
        return Err(PUNT_NOT_PORT);
    }
    if port.flags & PORT_LOCKED != 0 {
        return Err(PUNT_LOCKED);
    }
    if port.flags & PORT_FORWARDING == 0 {
        return Err(PUNT_PORT_STATE);
    }
    if let Err(reason) = not_unicast_forwarding(&port, f) {
        // The kernel learns (and moves) the source of nearly every frame,
        // whatever its destination: a host that moved and announced itself
        // with a broadcast must not be sent to at its old port until the
        // mirror has it at the new one.
        if port.flags & PORT_LEARNING != 0 {
            note_move(ingress, &port, f);
        }
        return Err(reason);
    }

    let filtering = port.flags & PORT_VLAN_FILTERING != 0;
    let vid = if !filtering {
        0
    } else if f.tagged {
        if f.tag_proto != port.vlan_proto || f.tag_vid == 0 {
            return Err(PUNT_VLAN_OTHER);
        }
        if vlan_flags(ingress, f.tag_vid) & VLAN_MEMBER == 0 {
            return Err(PUNT_VLAN_INGRESS);
        }
        f.tag_vid
    } else {
        if port.pvid == 0 || vlan_flags(ingress, port.pvid) & VLAN_MEMBER == 0 {
            return Err(PUNT_VLAN_INGRESS);
        }
        port.pvid
    };
    if filtering && (f.proto == port.vlan_proto || f.proto == 0x8100 || f.proto == 0x88a8) {
        // A second tag: the kernel's handling of stacked tags is not modelled.
        return Err(PUNT_VLAN_OTHER);
    }

    // Learning: the kernel refreshes or learns the source; only a source it
    // already has on this port may skip it (its ageing is refreshed from
    // BRIDGE_SEEN by the controller).
    let src_key = FdbKey {
        bridge: port.bridge,
        vlan: vid,
        mac: f.src,
    };
    let learning = port.flags & PORT_LEARNING != 0;
    if learning {
        // SAFETY: plain lookup, value copied out.
        let known = unsafe { BRIDGE_FDB.get(&src_key) }.copied();
        match known {
            Some(v) if v.port == ingress && v.flags & FDB_LOCAL == 0 => {}
            Some(v) if v.flags & (FDB_LOCAL | FDB_STICKY) == 0 => {
                mark_moving(&src_key);
                return Err(PUNT_LEARN);
            }
            _ => return Err(PUNT_LEARN),
        }
    }

    let dst_key = FdbKey {
        bridge: port.bridge,
        vlan: vid,
        mac: f.dst,
    };
    // SAFETY: plain lookup, value copied out.
    let dst = unsafe { BRIDGE_FDB.get(&dst_key) }
        .copied()
        .ok_or(PUNT_UNKNOWN_DST)?;
    if dst.flags & FDB_LOCAL != 0 {
        return Err(PUNT_LOCAL);
    }
    // SAFETY: helper without arguments.
    if dst.flags & FDB_MOVING != 0
        && unsafe { aya_ebpf::helpers::bpf_ktime_get_coarse_ns() }.wrapping_sub(dst.moved_ns)
            < MOVE_GRACE_NS
    {
        return Err(PUNT_MOVING);
    }
    let egress = dst.port;
    if egress == ingress && port.flags & PORT_HAIRPIN == 0 {
        return Err(PUNT_SAME_PORT);
    }
    let eport = *BRIDGE_PORTS.get(egress).ok_or(PUNT_EGRESS)?;
    if eport.bridge != port.bridge
        || eport.flags & PORT_FORWARDING == 0
        || (port.flags & eport.flags & PORT_ISOLATED) != 0
    {
        return Err(PUNT_EGRESS);
    }
    if f.len != 0 && f.len > eport.mtu + 18 {
        return Err(PUNT_TOO_BIG);
    }
    let tag = if filtering {
        let v = vlan_flags(egress, vid);
        if v & VLAN_MEMBER == 0 {
            return Err(PUNT_VLAN_EGRESS);
        }
        match (f.tagged, v & VLAN_UNTAGGED != 0) {
            (true, true) => Tag::Strip,
            (false, false) => Tag::Push(vid),
            _ => Tag::Keep,
        }
    } else {
        Tag::Keep
    };
    if learning {
        mark_seen(&src_key, ingress);
    }
    Ok(Forward {
        egress,
        tag,
        vlan_proto_be: port.vlan_proto.to_be(),
    })
}

/// The punts before learning: frames the kernel floods, consumes, drops
/// for their source, may suppress (ARP, neighbour discovery) or, with
/// `br_netfilter`, validates.
#[inline(always)]
fn not_unicast_forwarding(port: &PortConf, f: &Frame) -> Result<(), u32> {
    if f.dst[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && f.dst[5] & 0xf0 == 0 {
        return Err(PUNT_LINK_LOCAL);
    }
    if f.dst[0] & 1 != 0 {
        return Err(PUNT_MULTICAST);
    }
    if f.src[0] & 1 != 0 || f.src == [0; 6] {
        return Err(PUNT_BAD_SRC);
    }
    if f.proto == ETH_P_ARP || f.proto == ETH_P_RARP || f.nd {
        return Err(PUNT_NEIGH);
    }
    // br_netfilter validates IP headers (behind a VLAN tag too, with
    // bridge-nf-filter-vlan-tagged, which the maps do not mirror).
    let br_nf = match f.proto {
        ETH_P_IP => port.flags & PORT_BR_NF_IPV4,
        ETH_P_IPV6 => port.flags & PORT_BR_NF_IPV6,
        ETH_P_8021Q | ETH_P_8021AD => port.flags & (PORT_BR_NF_IPV4 | PORT_BR_NF_IPV6),
        _ => 0,
    };
    if br_nf != 0 && !f.plain_ip {
        return Err(PUNT_BR_NETFILTER);
    }
    Ok(())
}

/// For a frame punted before learning: if its (valid) source is in the
/// mirror on another port, the kernel is about to move it, so mark it
/// moving as the learning path does. Frames the kernel would not accept
/// on this VLAN mark nothing.
#[inline(always)]
fn note_move(ingress: u32, port: &PortConf, f: &Frame) {
    if f.src[0] & 1 != 0 || f.src == [0; 6] {
        return;
    }
    let vlan = if port.flags & PORT_VLAN_FILTERING == 0 {
        0
    } else if f.tagged {
        if f.tag_proto != port.vlan_proto || f.tag_vid == 0 {
            return;
        }
        f.tag_vid
    } else {
        port.pvid
    };
    let key = FdbKey {
        bridge: port.bridge,
        vlan,
        mac: f.src,
    };
    // SAFETY: plain lookup, value copied out.
    let known = unsafe { BRIDGE_FDB.get(&key) }.copied();
    if let Some(v) = known
        && v.port != ingress
        && v.flags & (FDB_LOCAL | FDB_STICKY) == 0
    {
        mark_moving(&key);
    }
}

/// Marks the mirror entry of a source that just arrived on another port
/// (see `FDB_MOVING`).
#[inline(always)]
fn mark_moving(key: &FdbKey) {
    if let Some(v) = BRIDGE_FDB.get_ptr_mut(key) {
        // SAFETY: helper without arguments; the pointer comes from a
        // successful lookup, and a racing writer stores the same marks or
        // the controller's fresh value.
        unsafe {
            (*v).moved_ns = aya_ebpf::helpers::bpf_ktime_get_coarse_ns();
            (*v).flags |= FDB_MOVING;
        }
    }
}

/// Records that `key` was active on `port`, at most every
/// `SEEN_GRANULARITY_NS` per entry so the value stays mostly read-only.
#[inline(always)]
fn mark_seen(key: &FdbKey, port: u32) {
    // SAFETY: helper without arguments.
    let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_coarse_ns() };
    if let Some(seen) = BRIDGE_SEEN.get_ptr_mut(key) {
        // SAFETY: the pointer comes from a successful lookup; a racing
        // writer can only store another recent time.
        unsafe {
            if (*seen).port != port || now.wrapping_sub((*seen).last_ns) >= SEEN_GRANULARITY_NS {
                (*seen).port = port;
                (*seen).last_ns = now;
            }
        }
    } else {
        let v = Seen {
            port,
            pad: 0,
            last_ns: now,
        };
        // A full LRU map evicts its oldest entry; failure only delays a
        // refresh, it never affects forwarding.
        let _ = BRIDGE_SEEN.insert(key, &v, 0);
    }
}
