// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sysctls that change forwarding semantics, as read from `/proc/sys`
//! inside the namespace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The sysctl values read, by configuration directory and key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctls {
    /// `net.ipv4.conf.<dir>.<key>`, by `<dir>` (`all`, `default`, or an
    /// interface name) then `<key>`.
    pub ipv4_conf: BTreeMap<String, BTreeMap<String, i64>>,
    /// `net.ipv6.conf.<dir>.<key>`, likewise.
    pub ipv6_conf: BTreeMap<String, BTreeMap<String, i64>>,
    /// Namespace-wide ones by full dotted name
    /// (`net.ipv4.ip_forward`, `net.bridge.bridge-nf-call-iptables`, ...).
    /// Absent when the file does not exist (e.g. `net.bridge.*` without
    /// `br_netfilter`).
    pub global: BTreeMap<String, i64>,
}

impl Sysctls {
    /// `net.ipv4.conf.<dir>.<key>`, if read.
    pub fn ipv4(&self, dir: &str, key: &str) -> Option<i64> {
        self.ipv4_conf.get(dir)?.get(key).copied()
    }

    /// `net.ipv6.conf.<dir>.<key>`, if read.
    pub fn ipv6(&self, dir: &str, key: &str) -> Option<i64> {
        self.ipv6_conf.get(dir)?.get(key).copied()
    }

    /// A namespace-wide sysctl by dotted name, if read.
    pub fn global(&self, name: &str) -> Option<i64> {
        self.global.get(name).copied()
    }
}
