// SPDX-License-Identifier: MIT OR Apache-2.0
//! The LinuxFP pipeline ABI, shared by every fast-path module (FPM) and by
//! the userspace controller.
//!
//! # How stages cooperate on one packet
//!
//! A *chain* is the ordered list of FPM stages that process packets arriving
//! on one interface at one hook (XDP or TC). The first stage is the program
//! attached to the interface. A stage that wants the next one to look at the
//! packet tail-calls through the netns-wide program array
//! ([`abi::CHAIN_XDP_MAP`] or [`abi::CHAIN_TC_MAP`]) at the key
//! [`abi::chain_key`]`(ingress ifindex, own position + 1)`. Each loaded stage
//! knows its own position from the global [`abi::STAGE_CONF_GLOBAL`].
//!
//! If the slot is empty, or the tail call fails for any reason (depth limit,
//! program type mismatch), execution falls through and the stage returns the
//! packet to the kernel, counted under [`abi::counter::CHAIN_MISS`]. So a
//! missing or half-deployed chain can never lose a packet: the kernel
//! handles it as if LinuxFP were not there.
//!
//! Stages pass information to the next one in the per-CPU scratch map
//! [`abi::PKT_CTX_MAP`] (a [`abi::PacketCtx`]); tail calls run on the same
//! CPU without preemption, so the value written by stage *n* is the one stage
//! *n + 1* reads. The stage at position 0 empties it first, so nothing an
//! earlier packet left is ever read. Today the filter stage hands the router
//! its successful FIB lookup there (`PKT_CTX_FIB_DONE`), made with the same
//! parameters, and the router skips its own.
//!
//! # Verdicts and counters
//!
//! Every stage ends in one of four ways: it finished the packet in the fast
//! path (forwarded or redirected: [`abi::counter::FAST`]), dropped it exactly
//! where Linux would drop it ([`abi::counter::DROP`]), continued to the next
//! stage ([`abi::counter::CONTINUE`]), or returned it to the kernel under a
//! named punt reason (counters from [`abi::counter::FIRST_FPM_REASON`] on,
//! declared by each FPM). Counters live in each FPM's per-CPU array
//! [`abi::STATS_MAP`], indexed by [`abi::stats_index`].
//!
//! Minimum kernel version: 5.10 (BPF links for XDP, `bpf_redirect_neigh`);
//! 6.6 for tcx links.
#![no_std]
#![deny(missing_docs)]

pub mod abi;
pub mod bridge;
pub mod filter;
pub mod net;
pub mod router;

#[cfg(feature = "ebpf")]
pub mod ebpf;
