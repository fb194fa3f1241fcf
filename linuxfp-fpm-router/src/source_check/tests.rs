// SPDX-License-Identifier: MIT OR Apache-2.0
use std::net::IpAddr;

use linuxfp::state::{Address, Route};

use super::*;

fn rule(priority: u32, table: u32) -> Rule {
    Rule {
        family: 4,
        priority,
        table,
        action: FR_ACT_TO_TBL,
        src: None,
        src_len: 0,
        dst: None,
        dst_len: 0,
        tos: 0,
        iifname: None,
        oifname: None,
        fwmark: None,
        fwmask: None,
        goto: None,
        l3mdev: false,
        // As the kernel reports its own rules: -1, none.
        suppress_prefixlen: Some(u32::MAX),
        flags: 0,
        unknown: vec![],
    }
}

fn route(table: u32, kind: u8, dst: &str, dst_len: u8) -> Route {
    Route {
        table,
        dst: dst.parse::<IpAddr>().expect("ip"),
        dst_len,
        src: None,
        src_len: 0,
        tos: 0,
        priority: 0,
        protocol: 2,
        scope: 0,
        kind,
        flags: 0,
        oif: Some(2),
        iif: None,
        gateway: None,
        prefsrc: None,
        nexthops: vec![],
        nh_id: None,
        mtu: None,
        unknown: vec![],
    }
}

fn address(ifindex: u32, a: &str) -> Address {
    Address {
        ifindex,
        address: a.parse().expect("ip"),
        prefix_len: 24,
        peer: None,
        broadcast: None,
        label: None,
        scope: 0,
        flags: 0,
        unknown: vec![],
    }
}

/// A fresh namespace with 10.1.0.1/24 on ifindex 2 (and on a link that is
/// down, 10.3.0.1/24 on ifindex 3, whose broadcast route the kernel
/// removed).
fn state() -> KernelState {
    let mut s = KernelState {
        rules: DEFAULT_RULES.iter().map(|&(p, t)| rule(p, t)).collect(),
        ..Default::default()
    };
    s.addresses.insert(2, vec![address(2, "10.1.0.1")]);
    s.addresses.insert(3, vec![address(3, "10.3.0.1")]);
    s.replace_routes(
        4,
        vec![
            route(255, kind::LOCAL, "127.0.0.0", 8),
            route(255, kind::LOCAL, "127.0.0.1", 32),
            route(255, kind::BROADCAST, "127.255.255.255", 32),
            route(255, kind::LOCAL, "10.1.0.1", 32),
            route(255, kind::BROADCAST, "10.1.0.255", 32),
            route(254, kind::UNICAST, "10.1.0.0", 24),
            route(254, kind::BLACKHOLE, "10.9.0.0", 16),
            route(254, kind::UNREACHABLE, "10.8.0.0", 16),
        ],
    );
    s
}

fn set(addrs: &[&str]) -> BTreeSet<[u8; 4]> {
    addrs
        .iter()
        .map(|a| a.parse::<std::net::Ipv4Addr>().expect("ipv4").octets())
        .collect()
}

#[test]
fn a_fresh_namespace_checks_sources_in_the_map() {
    let c = source_check(Some(&state()));
    assert_eq!(c.mode, SRC_CHECK_MAP, "{:?}", c.why_fib);
    // Own addresses (also on a link that is down), local and broadcast
    // host routes; not the unicast, blackhole and unreachable routes (a
    // lookup error: the kernel accepts the source), not 127/8 (punted by
    // the program before any lookup).
    assert_eq!(
        c.sources,
        set(&[
            "10.1.0.1",
            "10.3.0.1",
            "10.1.0.255",
            "127.0.0.1",
            "127.255.255.255"
        ])
    );
}

#[test]
fn without_kernel_state_the_fib_is_asked() {
    assert_eq!(source_check(None).mode, SRC_CHECK_FIB);
}

#[test]
fn any_custom_rule_keeps_the_fib_lookup() {
    let mut s = state();
    s.rules.push(rule(100, 100));
    let c = source_check(Some(&s));
    assert_eq!(c.mode, SRC_CHECK_FIB);
    assert!(c.sources.is_empty());
    assert!(c.why_fib.is_some_and(|w| w.contains("policy rule 100")));

    // A default rule with a selector is custom too.
    let mut s = state();
    s.rules[1].fwmark = Some(1);
    assert_eq!(source_check(Some(&s)).mode, SRC_CHECK_FIB);
    let mut s = state();
    s.rules[1].suppress_prefixlen = Some(0);
    assert_eq!(source_check(Some(&s)).mode, SRC_CHECK_FIB);

    // A default rule deleted.
    let mut s = state();
    s.rules.pop();
    assert_eq!(source_check(Some(&s)).mode, SRC_CHECK_FIB);

    // IPv6 rules do not matter.
    let mut s = state();
    let mut r6 = rule(100, 100);
    r6.family = 6;
    s.rules.push(r6);
    assert_eq!(source_check(Some(&s)).mode, SRC_CHECK_MAP);
}

#[test]
fn a_non_unicast_prefix_route_keeps_the_fib_lookup() {
    for (table, kind) in [
        (255, kind::LOCAL),
        (254, kind::LOCAL),
        (253, kind::BROADCAST),
    ] {
        let mut s = state();
        let mut routes: Vec<Route> = s.all_routes().cloned().collect();
        routes.push(route(table, kind, "10.77.0.0", 16));
        s.replace_routes(4, routes);
        assert_eq!(source_check(Some(&s)).mode, SRC_CHECK_FIB, "{table} {kind}");
    }
    // In a table the default rules never consult: irrelevant.
    let mut s = state();
    let mut routes: Vec<Route> = s.all_routes().cloned().collect();
    routes.push(route(100, kind::LOCAL, "10.77.0.0", 16));
    s.replace_routes(4, routes);
    assert_eq!(source_check(Some(&s)).mode, SRC_CHECK_MAP);
    // Inside a range the program punts anyway: irrelevant.
    let mut s = state();
    let mut routes: Vec<Route> = s.all_routes().cloned().collect();
    routes.push(route(255, kind::LOCAL, "127.1.0.0", 16));
    routes.push(route(254, 5, "224.0.0.0", 4));
    s.replace_routes(4, routes);
    assert_eq!(source_check(Some(&s)).mode, SRC_CHECK_MAP);
}

#[test]
fn too_many_sources_keep_the_fib_lookup() {
    let mut s = state();
    let many = (0..=MAX_SRC4)
        .map(|i| {
            let a = std::net::Ipv4Addr::from(0x0a40_0000 + i);
            address(4, &a.to_string())
        })
        .collect();
    s.addresses.insert(4, many);
    let c = source_check(Some(&s));
    assert_eq!(c.mode, SRC_CHECK_FIB);
    assert!(c.why_fib.is_some_and(|w| w.contains("more than")));
}

#[test]
fn prefixes_the_program_punts() {
    assert!(punted_by_program([127, 0, 0, 0], 8));
    assert!(punted_by_program([0, 0, 0, 0], 8));
    assert!(punted_by_program([224, 0, 0, 0], 3));
    assert!(punted_by_program([240, 0, 0, 0], 4));
    assert!(!punted_by_program([0, 0, 0, 0], 0));
    assert!(!punted_by_program([126, 0, 0, 0], 7));
    assert!(!punted_by_program([10, 0, 0, 0], 8));
}
