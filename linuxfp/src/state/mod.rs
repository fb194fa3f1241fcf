// SPDX-License-Identifier: MIT OR Apache-2.0
//! KernelState: the kernel's networking state of one namespace, folded from
//! netlink dumps and events ([`KernelState::apply`]) and indexed for the
//! queries the later stages make.
//!
//! Everything is plain data (serde, `PartialEq`): two states compare equal
//! exactly when the kernel's relevant configuration is the same, which is
//! how the inspector knows whether anything changed.

mod addr;
mod event;
mod link;
mod neigh;
mod netconf;
mod route;
mod sysctl;

use std::collections::BTreeMap;

pub use addr::Address;
pub use event::NetEvent;
pub use link::{BridgeAttrs, BridgePortAttrs, Link, VlanAttrs, VlanMembership, VxlanAttrs};
pub use neigh::{FdbEntry, FdbKey, Neighbour};
pub use netconf::{IFINDEX_ALL, IFINDEX_DEFAULT, Netconf};
pub use route::{NextHop, Route, RouteKey, RouteTable, Rule, kind as route_kind};
use serde::{Deserialize, Serialize};
pub use sysctl::Sysctls;

use crate::inspector::nftables::Ruleset;

/// A netlink attribute kept as it came, because netlink-packet-route does
/// not type it (or we do not model it): never silently dropped.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RawAttr {
    /// Attribute type (without the nested / byte-order flags).
    pub kind: u16,
    /// Payload.
    pub value: Vec<u8>,
}

/// A value stored in a map under a key derived from itself, so the map
/// serialises as a plain list.
pub trait Keyed {
    /// The key type.
    type Key: Ord;
    /// The value's key.
    fn key(&self) -> Self::Key;
}

/// Serde for `BTreeMap<V::Key, V>` as a list of values (JSON keys must be
/// strings; ours are tuples and structs).
pub(crate) mod keyed {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Keyed;

    pub(crate) fn serialize<S: Serializer, K, V: Serialize>(
        m: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.values())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de> + Keyed>(
        d: D,
    ) -> Result<BTreeMap<V::Key, V>, D::Error> {
        let v = Vec::<V>::deserialize(d)?;
        Ok(v.into_iter().map(|x| (x.key(), x)).collect())
    }
}

/// The folded state of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelState {
    /// Links by ifindex.
    pub links: BTreeMap<u32, Link>,
    /// Ifindex by link name.
    pub link_names: BTreeMap<String, u32>,
    /// Addresses by ifindex, in the order the kernel listed them.
    pub addresses: BTreeMap<u32, Vec<Address>>,
    /// Routes by table id (254 main, 255 local, ...), IPv4 and IPv6.
    pub routes: BTreeMap<u32, RouteTable>,
    /// Routing-policy rules, IPv4 and IPv6, sorted by family and priority.
    pub rules: Vec<Rule>,
    /// ARP and NDP entries.
    #[serde(with = "keyed")]
    pub neighbours: BTreeMap<(u32, std::net::IpAddr), Neighbour>,
    /// Bridge (and VXLAN) FDB entries.
    #[serde(with = "keyed")]
    pub fdb: BTreeMap<FdbKey, FdbEntry>,
    /// Bridge VLAN membership by port ifindex (the bridge device's own
    /// VLANs under its ifindex).
    pub vlans: BTreeMap<u32, BTreeMap<u16, VlanMembership>>,
    /// Netconf by (family `4`/`6`, ifindex or [`IFINDEX_ALL`] /
    /// [`IFINDEX_DEFAULT`]).
    #[serde(with = "keyed")]
    pub netconf: BTreeMap<(u8, i32), Netconf>,
    /// Sysctls that change forwarding semantics.
    pub sysctls: Sysctls,
    /// iptables-legacy tables present (`ip filter`, `ip6 nat`, ...).
    pub legacy_tables: Vec<String>,
    /// The nf_tables ruleset, shared between the snapshots that hold the
    /// same one (a large ruleset is tens of thousands of expressions, and
    /// every snapshot of the state would otherwise copy it).
    pub nft: std::sync::Arc<Ruleset>,
}

impl KernelState {
    /// Folds one event into the state.
    pub fn apply(&mut self, event: NetEvent) {
        match event {
            NetEvent::NewLink(link) => self.new_link(link),
            NetEvent::DelLink { ifindex } => self.del_link(ifindex),
            NetEvent::BridgeLink {
                ifindex,
                port,
                vlans,
            } => {
                if let (Some(p), Some(l)) = (port, self.links.get_mut(&ifindex)) {
                    l.bridge_port = Some(p);
                }
                if let Some(v) = vlans {
                    if v.is_empty() {
                        self.vlans.remove(&ifindex);
                    } else {
                        self.vlans.insert(ifindex, v);
                    }
                }
            }
            NetEvent::DelBridgeLink { ifindex } => {
                self.vlans.remove(&ifindex);
            }
            NetEvent::NewAddress(a) => {
                let list = self.addresses.entry(a.ifindex).or_default();
                match list.iter_mut().find(|o| o.key() == a.key()) {
                    Some(o) => *o = a,
                    None => list.push(a),
                }
            }
            NetEvent::DelAddress(a) => {
                if let Some(list) = self.addresses.get_mut(&a.ifindex) {
                    list.retain(|o| o.key() != a.key());
                    if list.is_empty() {
                        self.addresses.remove(&a.ifindex);
                    }
                }
            }
            NetEvent::NewRoute(r) => {
                self.routes
                    .entry(r.table)
                    .or_default()
                    .routes
                    .insert(r.key(), r);
            }
            NetEvent::DelRoute(r) => {
                if let Some(t) = self.routes.get_mut(&r.table) {
                    t.routes.remove(&r.key());
                    if t.routes.is_empty() {
                        self.routes.remove(&r.table);
                    }
                }
            }
            NetEvent::NewRule(r) => {
                if let Err(at) = self.rules.binary_search(&r) {
                    self.rules.insert(at, r);
                }
            }
            NetEvent::DelRule(r) => self.rules.retain(|o| *o != r),
            NetEvent::NewNeighbour(n) => {
                self.neighbours.insert(n.key(), n);
            }
            NetEvent::DelNeighbour(n) => {
                self.neighbours.remove(&n.key());
            }
            NetEvent::NewFdb(f) => {
                self.forget_moved_fdb(&f);
                self.fdb.insert(f.key(), f);
            }
            NetEvent::DelFdb(f) => {
                self.fdb.remove(&f.key());
            }
            NetEvent::NewNetconf(n) => self.netconf.entry(n.key()).or_default().merge_into(n),
            NetEvent::DelNetconf(n) => {
                self.netconf.remove(&n.key());
            }
            NetEvent::Sysctls(s) => self.sysctls = s,
            NetEvent::LegacyTables(t) => self.legacy_tables = t,
            NetEvent::Ruleset(r) => self.nft = std::sync::Arc::new(r),
        }
    }

    fn new_link(&mut self, link: Link) {
        if let Some(old) = self.links.get(&link.ifindex)
            && old.name != link.name
        {
            self.link_names.remove(&old.name);
        }
        self.link_names.insert(link.name.clone(), link.ifindex);
        self.links.insert(link.ifindex, link);
    }

    fn del_link(&mut self, ifindex: u32) {
        if let Some(old) = self.links.remove(&ifindex) {
            self.link_names.remove(&old.name);
        }
        self.addresses.remove(&ifindex);
        self.vlans.remove(&ifindex);
        // IPv4 does not announce the routes it flushes with the device.
        for t in self.routes.values_mut() {
            t.routes.retain(|_, r| !r.uses_device(ifindex));
        }
        self.routes.retain(|_, t| !t.routes.is_empty());
        self.neighbours.retain(|(i, _), _| *i != ifindex);
        self.fdb.retain(|(i, ..), _| *i != ifindex);
        self.netconf
            .retain(|(_, i), _| i32::try_from(ifindex) != Ok(*i));
    }

    /// Replaces all routes of one family (`4`/`6`) with a fresh dump.
    pub fn replace_routes(&mut self, family: u8, routes: Vec<Route>) {
        for t in self.routes.values_mut() {
            t.routes.retain(|_, r| r.family() != family);
        }
        for r in routes {
            self.routes
                .entry(r.table)
                .or_default()
                .routes
                .insert(r.key(), r);
        }
        self.routes.retain(|_, t| !t.routes.is_empty());
    }

    /// The link with this name.
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.get(self.link_names.get(name)?)
    }

    /// The addresses of a link.
    pub fn addresses_of(&self, ifindex: u32) -> &[Address] {
        self.addresses.get(&ifindex).map_or(&[], Vec::as_slice)
    }

    /// The routes of one table.
    pub fn table(&self, table: u32) -> impl Iterator<Item = &Route> {
        self.routes
            .get(&table)
            .into_iter()
            .flat_map(|t| t.routes.values())
    }

    /// All routes of all tables.
    pub fn all_routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.values().flat_map(|t| t.routes.values())
    }

    /// The number of routes of one family (`4`/`6`) in all tables.
    pub fn route_count(&self, family: u8) -> usize {
        self.all_routes().filter(|r| r.family() == family).count()
    }

    /// The netconf entry of a family (`4`/`6`) and device (or
    /// [`IFINDEX_ALL`] / [`IFINDEX_DEFAULT`]).
    pub fn netconf(&self, family: u8, ifindex: i32) -> Option<&Netconf> {
        self.netconf.get(&(family, ifindex))
    }

    /// IPv4 forwarding on a link: netconf, else the sysctl.
    pub fn ipv4_forwarding(&self, ifindex: u32) -> bool {
        self.forwarding(4, ifindex)
    }

    /// IPv6 forwarding on a link: netconf, else the sysctl.
    pub fn ipv6_forwarding(&self, ifindex: u32) -> bool {
        self.forwarding(6, ifindex)
    }

    /// `net.ipv6.conf.all.forwarding`: IPv6 routes packets only when set.
    pub fn ipv6_forwarding_all(&self) -> bool {
        match self.netconf(6, IFINDEX_ALL).and_then(|n| n.forwarding) {
            Some(v) => v != 0,
            None => self.sysctls.ipv6("all", "forwarding").unwrap_or(0) != 0,
        }
    }

    fn forwarding(&self, family: u8, ifindex: u32) -> bool {
        let nc = i32::try_from(ifindex)
            .ok()
            .and_then(|i| self.netconf(family, i))
            .and_then(|n| n.forwarding);
        if let Some(v) = nc {
            return v != 0;
        }
        let Some(link) = self.links.get(&ifindex) else {
            return false;
        };
        let conf = if family == 4 {
            self.sysctls.ipv4(&link.name, "forwarding")
        } else {
            self.sysctls.ipv6(&link.name, "forwarding")
        };
        conf.unwrap_or(0) != 0
    }

    /// An IPv4 per-interface sysctl of a link (`rp_filter`, ...), if read.
    pub fn ipv4_conf(&self, ifindex: u32, key: &str) -> Option<i64> {
        self.sysctls.ipv4(&self.links.get(&ifindex)?.name, key)
    }

    /// An IPv6 per-interface sysctl of a link (`proxy_ndp`, ...), if read.
    pub fn ipv6_conf(&self, ifindex: u32, key: &str) -> Option<i64> {
        self.sysctls.ipv6(&self.links.get(&ifindex)?.name, key)
    }

    /// The ports of a bridge.
    pub fn bridge_ports(&self, bridge: u32) -> impl Iterator<Item = &Link> {
        self.links
            .values()
            .filter(move |l| l.master == Some(bridge))
    }

    /// A bridge keeps one FDB entry per MAC and VLAN; when it moves a MAC to
    /// another port it notifies the entry at the new port only (no delete
    /// for the old one), so the entry at any other port of that bridge goes
    /// here. Without this the state would hold the MAC at both ports.
    fn forget_moved_fdb(&mut self, f: &FdbEntry) {
        let Some(bridge) = f.master else {
            return;
        };
        let others: Vec<u32> = self
            .links
            .values()
            .filter(|l| l.master == Some(bridge) || l.ifindex == bridge)
            .map(|l| l.ifindex)
            .filter(|&i| i != f.ifindex)
            .collect();
        for port in others {
            let key = (port, f.mac, f.vlan, f.dst);
            if self.fdb.get(&key).is_some_and(|o| o.master == Some(bridge)) {
                self.fdb.remove(&key);
            }
        }
    }

    /// The FDB entries of a bridge (entries whose master is the bridge, and
    /// the bridge's own entries).
    pub fn fdb_of_bridge(&self, bridge: u32) -> impl Iterator<Item = &FdbEntry> {
        self.fdb
            .values()
            .filter(move |f| f.master == Some(bridge) || f.ifindex == bridge)
    }

    /// Whether `br_netfilter` passes IPv4 traffic bridged by some bridge
    /// through the iptables / nf_tables `ip` hooks
    /// ([`KernelState::br_netfilter_ipv4_on`] for one of them).
    pub fn br_netfilter_ipv4(&self) -> bool {
        self.br_netfilter_any(Self::br_netfilter_ipv4_on)
    }

    /// Likewise for IPv6.
    pub fn br_netfilter_ipv6(&self) -> bool {
        self.br_netfilter_any(Self::br_netfilter_ipv6_on)
    }

    /// Whether `br_netfilter` passes IPv4 traffic bridged by `bridge`
    /// through the `ip` hooks: the module is loaded (its sysctls exist)
    /// and `net.bridge.bridge-nf-call-iptables` is on, or the bridge's own
    /// `nf_call_iptables` option is (`br_nf_pre_routing` checks either).
    pub fn br_netfilter_ipv4_on(&self, bridge: u32) -> bool {
        self.br_netfilter_on("net.bridge.bridge-nf-call-iptables", bridge, |b| {
            b.nf_call_iptables
        })
    }

    /// Likewise for IPv6 (`bridge-nf-call-ip6tables`, `nf_call_ip6tables`).
    pub fn br_netfilter_ipv6_on(&self, bridge: u32) -> bool {
        self.br_netfilter_on("net.bridge.bridge-nf-call-ip6tables", bridge, |b| {
            b.nf_call_ip6tables
        })
    }

    fn br_netfilter_on(&self, sysctl: &str, bridge: u32, option: fn(&BridgeAttrs) -> bool) -> bool {
        match self.sysctls.global(sysctl) {
            None => false,
            Some(v) if v != 0 => true,
            Some(_) => self
                .links
                .get(&bridge)
                .and_then(|l| l.bridge.as_ref())
                .is_some_and(option),
        }
    }

    fn br_netfilter_any(&self, on: fn(&Self, u32) -> bool) -> bool {
        self.links
            .values()
            .any(|l| l.kind.as_deref() == Some("bridge") && on(self, l.ifindex))
    }
}

impl Netconf {
    fn merge_into(&mut self, n: Netconf) {
        if self.family == 0 {
            self.family = n.family;
            self.ifindex = n.ifindex;
        }
        self.merge(&n);
    }
}

#[cfg(test)]
mod tests;
