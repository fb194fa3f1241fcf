// SPDX-License-Identifier: MIT OR Apache-2.0
//! LinuxFP's benchmarks live in `benches/`: `router` (the data plane
//! against Linux, in the same run, reported as ratios) and `control_plane`
//! (criterion: topology derivation and planning). Run them with
//! `cargo xtask bench`.
