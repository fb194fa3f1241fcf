// SPDX-License-Identifier: MIT OR Apache-2.0
//! Unit tests on crafted bytes.
