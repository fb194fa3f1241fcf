// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Topology Manager: a pure function from [`crate::state::KernelState`]
//! to [`Topology`], plus change detection.

mod model;

pub use model::*;
