// SPDX-License-Identifier: MIT OR Apache-2.0
//! An example third-party FPM, written only against LinuxFP's public API:
//! a prelude stage that counts packets and bytes per ingress interface and
//! passes every packet on to the rest of the chain.
//!
//! ```no_run
//! use std::sync::Arc;
//! let mut registry = linuxfp::fpm::FpmRegistry::new();
//! registry.register(Arc::new(linuxfp_fpm_ifcounter::IfCounterFpm::new()))?;
//! # Ok::<(), linuxfp::fpm::FpmError>(())
//! ```
#![deny(missing_docs)]

use std::{collections::BTreeMap, path::Path};

use aya::maps::{Map, MapData, PerCpuArray};
use linuxfp::{
    deploy::PinLayout,
    fpm::{Fpm, FpmConfig, FpmDeclaration, FpmError, FpmRole, Hook, ParamInput},
};

/// The bundled eBPF object.
pub static IFCOUNTER_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/linuxfp-fpm-ifcounter-ebpf"));

/// Name of the FPM (and of its pin directory).
pub const NAME: &str = "ifcounter";
/// The per-interface byte counter map.
pub const BYTES_MAP: &str = "IFCOUNTER_BYTES";

/// The interface-counter FPM.
#[derive(Debug)]
pub struct IfCounterFpm {
    declaration: FpmDeclaration,
}

impl Default for IfCounterFpm {
    fn default() -> Self {
        Self::new()
    }
}

impl IfCounterFpm {
    /// The FPM with its bundled programs.
    pub fn new() -> Self {
        IfCounterFpm {
            declaration: FpmDeclaration {
                name: NAME,
                role: FpmRole::Prelude,
                programs: BTreeMap::from([
                    (Hook::Xdp, "ifcounter_xdp"),
                    (Hook::Tc, "ifcounter_tc"),
                ]),
                capabilities: vec![],
                shared_maps: vec![BYTES_MAP],
                punt_reasons: vec![],
            },
        }
    }
}

impl Fpm for IfCounterFpm {
    fn declaration(&self) -> &FpmDeclaration {
        &self.declaration
    }

    fn bytecode(&self) -> &'static [u8] {
        IFCOUNTER_OBJ
    }

    fn parameterize(&self, _input: &ParamInput<'_>) -> Result<FpmConfig, FpmError> {
        // Nothing to configure: it counts whatever reaches it.
        Ok(FpmConfig::default())
    }
}

/// Errors reading the byte counters.
#[derive(Debug, thiserror::Error)]
#[error("reading {path}")]
pub struct ReadError {
    path: String,
    #[source]
    source: aya::maps::MapError,
}

/// Bytes received on `ifindex` so far, read from the pinned map of the
/// controller whose pins are laid out as `layout`.
pub fn bytes_received(layout: &PinLayout, ifindex: u32) -> Result<u64, ReadError> {
    let path = layout.fpm_map(NAME, BYTES_MAP);
    read(&path, ifindex).map_err(|source| ReadError {
        path: path.display().to_string(),
        source,
    })
}

fn read(path: &Path, ifindex: u32) -> Result<u64, aya::maps::MapError> {
    let map = Map::from_map_data(MapData::from_pin(path)?)?;
    let array = PerCpuArray::<MapData, u64>::try_from(map)?;
    Ok(array.get(&ifindex, 0)?.iter().sum())
}
