// SPDX-License-Identifier: MIT OR Apache-2.0
//! The nf_tables ruleset of a namespace.
//!
//! Placeholder created by the rtnetlink inspector so the crate compiles
//! until the nf_tables reader lands here: only the [`Ruleset`] type, filled
//! for now by the inspector's interim base-chain reader (`inspector/nft.rs`).

use serde::{Deserialize, Serialize};

use crate::topology::BaseChain;

/// The firewall state that concerns the fast paths.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ruleset {
    /// nf_tables base chains (nft and iptables-nft), in hook and priority
    /// order.
    pub base_chains: Vec<BaseChain>,
    /// The ruleset generation id it was read at.
    pub generation: u32,
}

impl Ruleset {
    /// The base chains, as the topology summarises them.
    pub fn base_chains(&self) -> Vec<BaseChain> {
        self.base_chains.clone()
    }
}
