// SPDX-License-Identifier: MIT OR Apache-2.0
//! The router FPM's fast path: `router_xdp` and `router_tc`.
//!
//! Forward exactly as Linux's `ip_forward` / `ip6_forward` would, using the
//! kernel's own FIB and neighbour table (`bpf_fib_lookup` with the ingress
//! interface), or hand the packet to the kernel under a counted reason.
#![no_std]
#![no_main]

mod parse;

use aya_ebpf::{
    EbpfContext,
    bindings::{TC_ACT_OK, TC_ACT_REDIRECT, bpf_fib_lookup as FibParams, xdp_action},
    helpers::{bpf_csum_update, bpf_fib_lookup, bpf_redirect, bpf_redirect_neigh},
    macros::{classifier, map, xdp},
    maps::{Array, DevMapHash, HashMap},
    programs::{TcContext, XdpContext},
};
use linuxfp_ebpf_common::{
    abi::counter,
    declare_abi_maps,
    ebpf::{
        FibFor, count, headers_wanted, reset_pkt_ctx, take_fib_result, zeroed_fib_params,
    },
    net::{ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP},
    router::*,
};

use crate::parse::{Host, Packet, parse};

declare_abi_maps!();

#[unsafe(no_mangle)]
static ROUTER_CONF: aya_ebpf::Global<RouterConf> =
    aya_ebpf::Global::new(RouterConf {
        families: 0,
        ipv4_route_mtu: 0,
        src_check: SRC_CHECK_FIB,
    });

#[map]
static ROUTER_XDP_PORTS: DevMapHash = DevMapHash::with_max_entries(MAX_IFACES, 0);

#[map]
static ROUTER_SRC4: HashMap<u32, u8> = HashMap::with_max_entries(MAX_SRC4, 0);

#[map]
static ROUTER_IFACES: Array<RouterIface> =
    Array::with_max_entries(linuxfp_ebpf_common::abi::MAX_IFINDEX, 0);

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Result of the common decision: forward out of `egress` with these MACs,
/// or punt under a reason.
enum Decision {
    Forward(FibParams),
    NoNeigh(FibParams),
    Punt(u32),
}

/// Asks the FIB as `ip_route_input` would for a packet arriving on
/// `ingress`. `tot_len` is the length the helper checks against the
/// route's MTU (as `ip_forward` checks the skb): the IP length, or for a
/// GSO skb the length of one segment (see [`gso_segment_len`]).
#[inline(always)]
fn decide<C: EbpfContext>(ctx: &C, pkt: &Packet, ingress: u32, tot_len: u16) -> Decision {
    let mut slot = core::mem::MaybeUninit::uninit();
    let p = zeroed_fib_params(&mut slot);
    p.ifindex = ingress;
    p.l4_protocol = pkt.l4_proto;
    p.sport = pkt.sport_be;
    p.dport = pkt.dport_be;
    if pkt.v6 {
        p.family = AF_INET6;
        p.__bindgen_anon_2.flowinfo = pkt.flowinfo_be;
        p.__bindgen_anon_3.ipv6_src = pkt.src6;
        p.__bindgen_anon_4.ipv6_dst = pkt.dst6;
    } else {
        p.family = AF_INET;
        p.__bindgen_anon_2.tos = pkt.tos;
        p.__bindgen_anon_3.ipv4_src = pkt.src4_be;
        p.__bindgen_anon_4.ipv4_dst = pkt.dst4_be;
    }
    if !pkt.v6 {
        let cap = ROUTER_CONF.load().ipv4_route_mtu;
        if cap != 0 && u32::from(tot_len) > cap {
            return Decision::Punt(PUNT_ROUTE_MTU);
        }
    }
    p.__bindgen_anon_1.tot_len = tot_len;
    let at = FibFor {
        ingress,
        l3_proto: if pkt.v6 { ETH_P_IPV6 } else { ETH_P_IP },
        l3_offset: pkt.l3_offset as u16,
        l4_offset: pkt.l4_offset as u16,
    };
    // A filter stage before this one may have asked the FIB exactly this
    // question for this packet, successfully: then its answer is ours. As
    // the first stage there is no one before (the entry was just emptied):
    // no lookup of it.
    let handed = if LFP_STAGE_CONF.load().position > 0 {
        take_fib_result(&LFP_PKT_CTX, at)
    } else {
        None
    };
    let rc = if let Some((egress, smac, dmac)) = handed {
        p.ifindex = egress;
        p.smac = smac;
        p.dmac = dmac;
        0
    } else {
        // SAFETY: `p` is a valid, initialised lookup structure of the size
        // given.
        unsafe {
            bpf_fib_lookup(
                ctx.as_ptr(),
                p,
                core::mem::size_of::<FibParams>() as i32,
                0,
            )
        }
    };
    let reason = match rc as u32 {
        0 => None,
        1..=3 => Some(PUNT_ROUTE_REJECT),
        4 => Some(PUNT_LOCAL),
        5 => Some(PUNT_FWD_DISABLED),
        7 => {
            if p.ifindex == ingress {
                return Decision::Punt(PUNT_SAME_IF);
            }
            if !pkt.v6 && !ipv4_source_is_unicast(ctx, pkt, ingress) {
                return Decision::Punt(PUNT_MARTIAN);
            }
            return Decision::NoNeigh(*p);
        }
        8 => Some(PUNT_FRAG_NEEDED),
        _ => Some(PUNT_FIB_OTHER),
    };
    if let Some(r) = reason {
        return Decision::Punt(r);
    }
    if p.ifindex == ingress {
        return Decision::Punt(PUNT_SAME_IF);
    }
    if !pkt.v6 && !ipv4_source_is_unicast(ctx, pkt, ingress) {
        return Decision::Punt(PUNT_MARTIAN);
    }
    Decision::Forward(*p)
}

/// `ip_route_input` drops an IPv4 packet whose source is one of this host's
/// own addresses (`fib_validate_source`: a martian source), and with custom
/// local routes or policy rules any source the FIB calls local, broadcast,
/// anycast or multicast; `bpf_fib_lookup` checks neither.
///
/// Under [`SRC_CHECK_MAP`] the parameterizer has put every such source in
/// `ROUTER_SRC4` (the addresses, and the host routes of those types; it
/// only chooses this when no other source can be one): one hash lookup,
/// the same test the kernel itself makes without custom rules.
/// Otherwise the FIB is asked about the source: unless it answers with a
/// unicast route (or one whose neighbour is unresolved), the kernel
/// decides. A source without any route back goes to the kernel too, which
/// forwards it: a punt, never a difference. IPv6 forwarding has no such
/// check.
#[inline(always)]
fn ipv4_source_is_unicast<C: EbpfContext>(ctx: &C, pkt: &Packet, ingress: u32) -> bool {
    if ROUTER_CONF.load().src_check == SRC_CHECK_MAP {
        // SAFETY: a plain lookup; the value is not kept.
        return unsafe { ROUTER_SRC4.get(&pkt.src4_be) }.is_none();
    }
    let mut slot = core::mem::MaybeUninit::uninit();
    let p = zeroed_fib_params(&mut slot);
    p.family = AF_INET;
    p.ifindex = ingress;
    p.l4_protocol = pkt.l4_proto;
    p.__bindgen_anon_2.tos = pkt.tos;
    p.__bindgen_anon_3.ipv4_src = pkt.dst4_be;
    p.__bindgen_anon_4.ipv4_dst = pkt.src4_be;
    // SAFETY: `p` is a valid, initialised lookup structure of the size given.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.as_ptr(),
            p,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    };
    // 4: BPF_FIB_LKUP_RET_NOT_FWDED (local, broadcast, multicast, no route).
    rc >= 0 && rc != 4
}

/// The network length of one segment of a GSO skb, as
/// `skb_gso_validate_network_len` computes it for `ip_forward`'s MTU check
/// (passed to the FIB helper, it is checked against the route's MTU, which
/// may be below the device's). Only TCP's is exact: `__sk_buff` has no
/// `gso_type`, so a UDP GSO skb may be UFO or a UDP tunnel whose segments
/// carry more headers; those go to the kernel.
#[inline(always)]
fn gso_segment_len(pkt: &Packet, gso_size: u32) -> Result<u16, u32> {
    if pkt.l4_proto != IPPROTO_TCP {
        return Err(PUNT_FRAG_NEEDED);
    }
    let seg = pkt.l4_offset - pkt.l3_offset + pkt.l4_hdr_len + gso_size;
    u16::try_from(seg).map_err(|_| PUNT_FRAG_NEEDED)
}

#[inline(always)]
fn egress_flags(ifindex: u32) -> u16 {
    ROUTER_IFACES.get(ifindex).map_or(0, |i| i.flags)
}

/// Decrements TTL / hop limit and writes the MACs. `parse` checked the
/// headers against `end`, but the verifier may have lost that range by
/// now (the offsets spilled to the stack), so the bytes written are
/// checked again, before anything is written: a failure (which cannot
/// happen) leaves the packet as it arrived, for the kernel.
#[inline(always)]
fn rewrite(start: usize, end: usize, pkt: &Packet, p: &FibParams) -> Result<(), u32> {
    // The mask changes nothing (the offset is the Ethernet header's
    // length) but bounds it, which the verifier needs to accept the check
    // below as giving a range.
    let l3 = start + (pkt.l3_offset as usize & 0xFF);
    // TTL (byte 8) and checksum (bytes 10-11); IPv6: hop limit (byte 7).
    let touched = if pkt.v6 { 8 } else { 12 };
    if start + 12 > end || l3 + touched > end {
        return Err(PUNT_MALFORMED);
    }
    // SAFETY: every byte written was just checked against `end`, and the
    // packet has not been resized since.
    unsafe {
        let eth = start as *mut [u8; 12];
        let mut macs = [0u8; 12];
        macs[..6].copy_from_slice(&p.dmac);
        macs[6..].copy_from_slice(&p.smac);
        core::ptr::write_unaligned(eth, macs);
        if pkt.v6 {
            let hl = (l3 + 7) as *mut u8;
            *hl -= 1;
        } else {
            let ttl = (l3 + 8) as *mut u8;
            let check = (l3 + 10) as *mut u16;
            let mut c = u16::from_be(core::ptr::read_unaligned(check)) as u32;
            c += 0x0100;
            let c = (c + (c >= 0xFFFF) as u32) as u16;
            core::ptr::write_unaligned(check, c.to_be());
            *ttl -= 1;
        }
    }
    Ok(())
}

#[xdp]
pub fn router_xdp(ctx: XdpContext) -> u32 {
    if LFP_STAGE_CONF.load().position == 0 {
        reset_pkt_ctx(&LFP_PKT_CTX);
    }
    // SAFETY: reading the context's ingress ifindex.
    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
    let verdict = xdp_forward(&ctx, ingress);
    match verdict {
        Ok(v) => {
            count(&LFP_STATS, ingress, counter::FAST);
            v
        }
        Err(reason) => {
            count(&LFP_STATS, ingress, reason);
            xdp_action::XDP_PASS
        }
    }
}

#[inline(always)]
fn xdp_forward(ctx: &XdpContext, ingress: u32) -> Result<u32, u32> {
    let (start, end) = (ctx.data(), ctx.data_end());
    let iface = ROUTER_IFACES.get(ingress).ok_or(PUNT_FWD_DISABLED)?;
    if iface.flags & IFACE_INGRESS == 0 {
        return Err(PUNT_FWD_DISABLED);
    }
    let pkt = parse(
        start,
        end,
        end - start,
        Host::Mac(&iface.mac),
        ROUTER_CONF.load().families,
    )?;
    match decide(ctx, &pkt, ingress, pkt.l3_len) {
        Decision::Forward(p) => {
            // IFACE_XDP_EGRESS says the parameterizer put the interface in
            // the devmap; IFACE_EGRESS that it may be forwarded out of at
            // all (an attached interface that is down has only the former).
            let need = IFACE_EGRESS | IFACE_XDP_EGRESS;
            if egress_flags(p.ifindex) & need != need {
                return Err(PUNT_EGRESS);
            }
            // bpf_redirect_map only records the target (the frame leaves
            // after the program returns), so ask first: a devmap miss (the
            // maps briefly out of step) then hands the kernel the frame as
            // it arrived, not one already rewritten for the next hop.
            let action = ROUTER_XDP_PORTS
                .redirect(p.ifindex, 0)
                .map_err(|_| PUNT_REDIRECT_FAILED)?;
            rewrite(start, end, &pkt, &p)?;
            Ok(action)
        }
        Decision::NoNeigh(_) => Err(PUNT_NO_NEIGH),
        Decision::Punt(r) => Err(r),
    }
}

#[classifier]
pub fn router_tc(ctx: TcContext) -> i32 {
    if LFP_STAGE_CONF.load().position == 0 {
        reset_pkt_ctx(&LFP_PKT_CTX);
    }
    // SAFETY: reading fields of the skb context.
    let ingress = unsafe { (*ctx.skb.skb).ifindex };
    match tc_forward(&ctx, ingress) {
        Ok(v) => {
            count(&LFP_STATS, ingress, counter::FAST);
            v
        }
        Err(reason) => {
            count(&LFP_STATS, ingress, reason);
            TC_ACT_OK
        }
    }
}

#[inline(always)]
fn tc_forward(ctx: &TcContext, ingress: u32) -> Result<i32, u32> {
    // SAFETY: reading fields of the skb context.
    let (pkt_type, vlan_present, gso_size) = unsafe {
        let s = &*ctx.skb.skb;
        (s.pkt_type, s.vlan_present, s.gso_size)
    };
    if egress_flags(ingress) & IFACE_INGRESS == 0 {
        return Err(PUNT_FWD_DISABLED);
    }
    if vlan_present != 0 {
        return Err(PUNT_VLAN);
    }
    // Make sure the headers are in the linear part before parsing, and
    // pull no more (see `headers_wanted`): a packet whose headers are
    // linear already, as a local sender's are, costs no helper call.
    let want = headers_wanted(ctx.data(), ctx.data_end(), ctx.len() as usize);
    if ctx.data() + want > ctx.data_end() {
        let _ = ctx.pull_data(want as u32);
    }
    let (start, end) = (ctx.data(), ctx.data_end());
    let pkt = parse(
        start,
        end,
        ctx.len() as usize,
        Host::PktType(pkt_type),
        ROUTER_CONF.load().families,
    )?;
    // skb_is_gso(): checked per segment, as ip_forward does.
    let tot_len = if gso_size == 0 {
        pkt.l3_len
    } else {
        gso_segment_len(&pkt, gso_size)?
    };
    match decide(ctx, &pkt, ingress, tot_len) {
        Decision::Forward(p) => {
            if egress_flags(p.ifindex) & IFACE_EGRESS == 0 {
                return Err(PUNT_EGRESS);
            }
            // bpf_redirect (like bpf_redirect_neigh below) only records the
            // target; the skb leaves after the program returns. With flags
            // 0 neither refuses today, but asking before any rewrite means
            // a refusal could only ever hand the kernel the packet as it
            // arrived, as in router_xdp.
            // SAFETY: plain helper call.
            let rc = unsafe { bpf_redirect(p.ifindex, 0) };
            if rc as i32 != TC_ACT_REDIRECT {
                return Err(PUNT_REDIRECT_FAILED);
            }
            rewrite(start, end, &pkt, &p)?;
            keep_csum_complete(ctx, &pkt);
            set_priority(ctx, &pkt);
            Ok(TC_ACT_REDIRECT)
        }
        Decision::NoNeigh(p) => {
            if egress_flags(p.ifindex) & IFACE_EGRESS == 0 {
                return Err(PUNT_EGRESS);
            }
            // The kernel resolves the neighbour on its own path, exactly as
            // for a routed packet: only the TTL is ours, the neighbour
            // layer writes the MACs.
            let mut nh: aya_ebpf::bindings::bpf_redir_neigh = unsafe { core::mem::zeroed() };
            // The next hop's family is the FIB's answer, not the packet's:
            // an IPv4 route may have an IPv6 gateway (RFC 5549), and then
            // the helper sets `family` to AF_INET6 and leaves the gateway
            // in the IPv6 destination.
            if p.family == AF_INET6 {
                nh.nh_family = AF_INET6 as u32;
                // SAFETY: after NO_NEIGH the helper left the next hop in dst.
                nh.__bindgen_anon_1.ipv6_nh = unsafe { p.__bindgen_anon_4.ipv6_dst };
            } else {
                nh.nh_family = AF_INET as u32;
                // SAFETY: as above.
                nh.__bindgen_anon_1.ipv4_nh = unsafe { p.__bindgen_anon_4.ipv4_dst };
            }
            // SAFETY: `nh` is initialised and its size passed.
            let rc = unsafe {
                bpf_redirect_neigh(
                    p.ifindex,
                    &mut nh,
                    core::mem::size_of::<aya_ebpf::bindings::bpf_redir_neigh>() as i32,
                    0,
                )
            };
            if rc as i32 != TC_ACT_REDIRECT {
                return Err(PUNT_REDIRECT_FAILED);
            }
            rewrite_ttl_only(start, end, &pkt)?;
            keep_csum_complete(ctx, &pkt);
            set_priority(ctx, &pkt);
            Ok(TC_ACT_REDIRECT)
        }
        Decision::Punt(r) => Err(r),
    }
}

#[inline(always)]
fn rewrite_ttl_only(start: usize, end: usize, pkt: &Packet) -> Result<(), u32> {
    let mut slot = core::mem::MaybeUninit::uninit();
    let p = zeroed_fib_params(&mut slot);
    // Keep the MACs as they are; bpf_redirect_neigh fills them.
    if start + 12 > end {
        return Err(PUNT_MALFORMED);
    }
    // SAFETY: just checked against `end`.
    unsafe {
        let eth = start as *const [u8; 12];
        let macs = core::ptr::read_unaligned(eth);
        p.dmac.copy_from_slice(&macs[..6]);
        p.smac.copy_from_slice(&macs[6..]);
    }
    rewrite(start, end, pkt, &p)
}

/// Keeps a CHECKSUM_COMPLETE `skb->csum` (the sum of the bytes from the
/// network header on, as a NIC reports it) true after the hop-limit
/// decrement. `ip6_forward` drops the sum instead (`skb_forward_csum`:
/// CHECKSUM_NONE, so the receiver sums in software), which a program
/// cannot do; a true sum gives every receiver the same verdict, where a
/// stale one makes a host that delivers the packet locally (a veth peer)
/// find a mismatch, re-sum in software and report "hw csum failure".
/// `bpf_csum_update` does nothing unless the skb is CHECKSUM_COMPLETE.
/// IPv4 needs nothing: the TTL and the header checksum change together, so
/// the header sums to the same value.
#[inline(always)]
fn keep_csum_complete(ctx: &TcContext, pkt: &Packet) {
    if pkt.v6 {
        // The hop limit is byte 7 of the header, an odd offset from where
        // the sum starts: one less there is 0x100 less in the little-endian
        // 16-bit words the kernel's csum_partial adds (1 less on
        // big-endian); a one's complement sum subtracts by adding the
        // complement.
        let diff: u32 = if cfg!(target_endian = "little") {
            !0x0100
        } else {
            !0x0001
        };
        // SAFETY: plain helper call on this program's own skb.
        unsafe { bpf_csum_update(ctx.skb.skb, diff) };
    }
}

/// `ip_forward` sets `skb->priority = rt_tos2priority(tos)` for IPv4.
#[inline(always)]
fn set_priority(ctx: &TcContext, pkt: &Packet) {
    if pkt.v6 {
        return;
    }
    // ip_tos2prio from net/ipv4/route.c, indexed by IPTOS_TOS(tos) >> 1.
    const TOS2PRIO: [u32; 16] = [0, 0, 0, 0, 2, 2, 2, 2, 6, 6, 6, 6, 4, 4, 4, 4];
    let idx = ((pkt.tos & 0x1E) >> 1) as usize;
    if let Some(prio) = TOS2PRIO.get(idx) {
        // SAFETY: priority is a writable field of __sk_buff at TC ingress.
        unsafe { (*ctx.skb.skb).priority = *prio };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
