// SPDX-License-Identifier: MIT OR Apache-2.0
//! Conntrack for the fast path without kfuncs (aya 0.14 cannot load kfunc
//! calls): the kernel's entries the fast path may treat as ESTABLISHED
//! ([`eligible`](mod@eligible)) mirrored into a BPF map from ctnetlink, and the kernel
//! timeouts of the flows the fast path carries refreshed ([`mirror`]).

pub mod eligible;
pub mod mirror;

pub use self::{
    eligible::{CtSettings, Ineligible, eligible},
    mirror::{CtMirror, MirrorError, MirrorStats},
};
