// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Topology Manager: a pure function from [`crate::state::KernelState`]
//! to [`Topology`], plus change detection.

mod derive;
mod diff;
mod limits;
mod model;

pub use derive::derive;
pub use diff::{TopologyDiff, diff};
pub use model::*;

#[cfg(test)]
mod tests;
