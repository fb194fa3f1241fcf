// SPDX-License-Identifier: MIT OR Apache-2.0
//! LinuxFP: transparently accelerate Linux networking with eBPF.
//!
//! Configure Linux as always (`ip`, `bridge`, `sysctl`, `nft`, ...); LinuxFP
//! reads the kernel's state over netlink, works out which network functions
//! are configured, and installs eBPF fast paths that handle the common case
//! exactly as Linux would, handing everything else back to the kernel.
//!
//! The pipeline, each stage usable on its own:
//!
//! 1. [`inspector`]: netlink dump + events → [`state::KernelState`].
//! 2. [`topology`]: `KernelState` → [`topology::Topology`] (pure).
//! 3. [`compat`]: `Topology` × kernel capabilities × registered FPMs →
//!    decisions with reasons (pure).
//! 4. [`synth`]: decisions → [`synth::FastPathPlan`] (pure).
//! 5. [`deploy`]: applies plan differences to the kernel.
//!
//! [`controller`] composes them; [`fpm`] is the API fast-path modules
//! implement.
#![deny(missing_docs)]

pub mod btf;
pub mod compat;
pub mod controller;
pub mod deploy;
pub mod fpm;
pub mod inspector;
pub mod netns;
pub mod rtnl;
pub mod state;
pub mod synth;
pub mod topology;

pub use linuxfp_ebpf_common as abi;
