// SPDX-License-Identifier: MIT OR Apache-2.0
//! The router's parameterizer: topology and decisions → its globals and the
//! contents of its interface maps.
//!
//! - `ROUTER_CONF` (global): which families are forwarded, and the smallest
//!   IPv4 route MTU metric (longer IPv4 packets go to the kernel).
//! - `ROUTER_IFACES`: every interface of the router, with its MAC and
//!   whether packets may arrive there (a router stage is attached) and leave
//!   there (TC may redirect to any router interface that is up; XDP only to
//!   interfaces in the devmap).
//! - `ROUTER_XDP_PORTS`: the devmap, holding the router interfaces that run
//!   XDP themselves (only those are known to take XDP redirects).
//! - `ROUTER_SRC4`: the IPv4 sources the kernel could reject as martians,
//!   when that set makes the source check one hash lookup
//!   ([`crate::source_check`]).
//!
//! Interfaces come and go by map writes; programs are not reloaded.

use linuxfp::{
    fpm::{FpmConfig, HexBytes, Hook, ParamInput},
    topology::Topology,
};
use linuxfp_ebpf_common::router::{
    CONF_GLOBAL, FAMILY_IPV4, FAMILY_IPV6, IFACE_EGRESS, IFACE_INGRESS, IFACE_XDP_EGRESS,
    IFACES_MAP, RouterConf, RouterIface, SRC4_MAP, XDP_PORTS_MAP,
};

use crate::source_check::source_check;

/// The router's configuration for this input.
pub fn router_config(fpm: &str, input: &ParamInput<'_>) -> FpmConfig {
    let topo: &Topology = input.topology;
    let mut cfg = FpmConfig::default();
    let mut families = 0;
    if let Some(r) = &topo.router {
        if r.ipv4 {
            families |= FAMILY_IPV4;
        }
        if r.ipv6 {
            families |= FAMILY_IPV6;
        }
    }
    // ip_forward honours every route's MTU metric; bpf_fib_lookup only
    // locked ones. Without the per-route answer in BPF, the smallest metric
    // bounds what the fast path forwards (longer packets: the kernel).
    let ipv4_route_mtu = input
        .state
        .into_iter()
        .flat_map(|s| s.all_routes())
        .filter(|r| r.dst.is_ipv4())
        .filter_map(|r| r.mtu.filter(|m| *m > 0))
        .min()
        .unwrap_or(0);
    let sources = source_check(input.state);
    if let Some(why) = &sources.why_fib {
        tracing::debug!(%why, "router: IPv4 sources checked with a FIB lookup");
    }
    cfg.globals.insert(
        CONF_GLOBAL.to_string(),
        HexBytes::of(&RouterConf {
            families,
            ipv4_route_mtu,
            src_check: sources.mode,
        }),
    );
    cfg.maps.insert(
        SRC4_MAP.to_string(),
        sources
            .sources
            .iter()
            .map(|a| (HexBytes::new(a), HexBytes::new(&[1])))
            .collect(),
    );

    let attached: std::collections::BTreeMap<u32, Hook> =
        input.decisions.interfaces_of(fpm).collect();
    let ifaces = cfg.maps.entry(IFACES_MAP.to_string()).or_default();
    let mut ports = linuxfp::fpm::MapContents::new();
    if let Some(router) = &topo.router {
        for ifindex in router.interfaces.keys() {
            let Some(iface) = topo.interfaces.get(ifindex) else {
                continue;
            };
            // ROUTER_IFACES is an array indexed by ifindex: interfaces above
            // its range are left to the kernel (their packets punt).
            if *ifindex >= linuxfp_ebpf_common::abi::MAX_IFINDEX {
                continue;
            }
            let mut flags = 0u16;
            if iface.up {
                flags |= IFACE_EGRESS;
            }
            match attached.get(ifindex) {
                Some(Hook::Xdp) => {
                    flags |= IFACE_INGRESS | IFACE_XDP_EGRESS;
                    // bpf_devmap_val: the target ifindex, no program (fd 0).
                    let mut val = ifindex.to_ne_bytes().to_vec();
                    val.extend_from_slice(&0u32.to_ne_bytes());
                    ports.insert(HexBytes::new(&ifindex.to_ne_bytes()), HexBytes::from(val));
                }
                Some(Hook::Tc) => flags |= IFACE_INGRESS,
                None => {}
            }
            if flags == 0 {
                continue;
            }
            let value = RouterIface {
                mac: iface.mac.unwrap_or_default(),
                flags,
            };
            ifaces.insert(HexBytes::new(&ifindex.to_ne_bytes()), HexBytes::of(&value));
        }
    }
    cfg.maps.insert(XDP_PORTS_MAP.to_string(), ports);
    cfg
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use linuxfp::{
        compat::{Decisions, InterfaceDecision},
        topology::{Interface, Router, RouterInterface},
    };

    use linuxfp_ebpf_common::router::SRC_CHECK_FIB;

    use super::*;

    fn topo() -> Topology {
        let mut t = Topology::default();
        for (i, name, kind) in [(2, "r0", "veth"), (3, "r1", "veth"), (4, "r2", "veth")] {
            t.interfaces.insert(
                i,
                Interface {
                    ifindex: i,
                    name: name.into(),
                    kind: Some(kind.into()),
                    up: i != 4,
                    mac: Some([2, 0, 0, 0, 0, i as u8]),
                    ..Default::default()
                },
            );
        }
        t.router = Some(Router {
            ipv4: true,
            ipv6: false,
            interfaces: [2, 3, 4]
                .into_iter()
                .map(|i| (i, RouterInterface::default()))
                .collect(),
        });
        t
    }

    fn decide(hooks: &[(u32, Hook)]) -> Decisions {
        Decisions {
            interfaces: hooks
                .iter()
                .map(|(i, h)| {
                    (
                        *i,
                        InterfaceDecision {
                            name: format!("if{i}"),
                            hook: Some(*h),
                            stages: vec!["router".into()],
                            reasons: vec![],
                        },
                    )
                })
                .collect(),
        }
    }

    fn iface(cfg: &FpmConfig, ifindex: u32) -> Option<RouterIface> {
        let v = cfg.maps[IFACES_MAP].get(&HexBytes::new(&ifindex.to_ne_bytes()))?;
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&v[..6]);
        Some(RouterIface {
            mac,
            flags: u16::from_ne_bytes([v[6], v[7]]),
        })
    }

    #[test]
    fn tc_interfaces_are_ingress_and_egress_but_not_in_the_devmap() {
        let t = topo();
        let d = decide(&[(2, Hook::Tc), (3, Hook::Tc)]);
        let cfg = router_config(
            "router",
            &ParamInput {
                topology: &t,
                decisions: &d,
                state: None,
            },
        );
        assert_eq!(
            iface(&cfg, 2).map(|i| i.flags),
            Some(IFACE_INGRESS | IFACE_EGRESS)
        );
        assert_eq!(iface(&cfg, 2).map(|i| i.mac), Some([2, 0, 0, 0, 0, 2]));
        // r2 is down and not attached: absent.
        assert_eq!(iface(&cfg, 4), None);
        assert!(cfg.maps[XDP_PORTS_MAP].is_empty());
        assert_eq!(
            cfg.globals[CONF_GLOBAL],
            HexBytes::of(&RouterConf {
                families: FAMILY_IPV4,
                ipv4_route_mtu: 0,
                src_check: SRC_CHECK_FIB,
            })
        );
    }

    #[test]
    fn xdp_interfaces_fill_the_devmap() {
        let t = topo();
        let d = decide(&[(2, Hook::Xdp), (3, Hook::Tc)]);
        let cfg = router_config(
            "router",
            &ParamInput {
                topology: &t,
                decisions: &d,
                state: None,
            },
        );
        assert_eq!(
            iface(&cfg, 2).map(|i| i.flags),
            Some(IFACE_INGRESS | IFACE_EGRESS | IFACE_XDP_EGRESS)
        );
        let ports: BTreeMap<_, _> = cfg.maps[XDP_PORTS_MAP].clone();
        assert_eq!(ports.len(), 1);
        let v = &ports[&HexBytes::new(&2u32.to_ne_bytes())];
        assert_eq!(v.len(), 8);
        assert_eq!(&v[..4], &2u32.to_ne_bytes());
    }

    #[test]
    fn no_router_means_no_interfaces() {
        let mut t = topo();
        t.router = None;
        let d = decide(&[]);
        let cfg = router_config(
            "router",
            &ParamInput {
                topology: &t,
                decisions: &d,
                state: None,
            },
        );
        assert!(cfg.maps[IFACES_MAP].is_empty());
        assert_eq!(
            cfg.globals[CONF_GLOBAL],
            HexBytes::of(&RouterConf::default())
        );
    }
}
