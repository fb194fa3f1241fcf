// SPDX-License-Identifier: MIT OR Apache-2.0
use std::{collections::BTreeMap, sync::Arc};

use super::*;
use crate::{
    fpm::{Fpm, FpmConfig, FpmDeclaration, FpmError, FpmRole, ParamInput},
    topology::{Interface, Limitation},
};

struct Fake(FpmDeclaration);

impl Fpm for Fake {
    fn declaration(&self) -> &FpmDeclaration {
        &self.0
    }
    fn bytecode(&self) -> &'static [u8] {
        &[]
    }
    fn parameterize(&self, _: &ParamInput<'_>) -> Result<FpmConfig, FpmError> {
        Ok(FpmConfig::default())
    }
}

fn fake(name: &'static str, role: FpmRole, hooks: &[Hook]) -> Arc<dyn Fpm> {
    Arc::new(Fake(FpmDeclaration {
        name,
        role,
        programs: hooks.iter().map(|h| (*h, "prog")).collect(),
        capabilities: vec![],
        shared_maps: vec![],
        punt_reasons: vec![],
    }))
}

fn registry(fpms: Vec<Arc<dyn Fpm>>) -> FpmRegistry {
    let mut r = FpmRegistry::new();
    for f in fpms {
        r.register(f).expect("unique names");
    }
    r
}

fn router_topology() -> Topology {
    let mut t = Topology::default();
    for (i, name, kind) in [(2, "r0", Some("veth")), (3, "eth1", None)] {
        t.interfaces.insert(
            i,
            Interface {
                ifindex: i,
                name: name.into(),
                kind: kind.map(String::from),
                up: true,
                ..Default::default()
            },
        );
        t.chains.insert(i, vec![FunctionRef::Router]);
    }
    t
}

fn caps() -> KernelCaps {
    KernelCaps::for_version("6.18.0")
}

fn router_fpm() -> Arc<dyn Fpm> {
    fake(
        "router",
        FpmRole::Accelerates(NetworkFunction::Router),
        &[Hook::Xdp, Hook::Tc],
    )
}

#[test]
fn auto_picks_tc_on_veth_and_xdp_on_physical() {
    let d = decide(
        &router_topology(),
        &caps(),
        &registry(vec![router_fpm()]),
        &Policy::default(),
    );
    assert_eq!(d.interfaces[&2].hook, Some(Hook::Tc));
    assert!(d.interfaces[&2].reasons[0].contains("virtual device"));
    assert_eq!(d.interfaces[&3].hook, Some(Hook::Xdp));
    assert_eq!(d.interfaces[&3].stages, vec!["router".to_string()]);
}

#[test]
fn forced_xdp_on_veth_warns_about_napi() {
    let policy = Policy {
        hook: HookPolicy::Xdp,
        ..Default::default()
    };
    let d = decide(
        &router_topology(),
        &caps(),
        &registry(vec![router_fpm()]),
        &policy,
    );
    assert_eq!(d.interfaces[&2].hook, Some(Hook::Xdp));
    assert!(d.interfaces[&2].reasons[0].contains("NAPI"));
}

#[test]
fn firewall_without_filter_fpm_keeps_the_interface_on_the_slow_path() {
    let mut t = router_topology();
    for chain in t.chains.values_mut() {
        chain.insert(0, FunctionRef::Filter);
    }
    let d = decide(
        &t,
        &caps(),
        &registry(vec![router_fpm()]),
        &Policy::default(),
    );
    for dec in d.interfaces.values() {
        assert_eq!(dec.hook, None);
        assert!(dec.stages.is_empty());
        assert!(
            dec.reasons
                .iter()
                .any(|r| r.contains("filter left to the kernel")),
            "{:?}",
            dec.reasons
        );
    }
}

#[test]
fn limitation_stops_the_chain_with_its_reason() {
    let mut t = router_topology();
    t.limitations.push(Limitation {
        ifindex: Some(2),
        function: NetworkFunction::Router,
        reason: "rp_filter=1 on r0".into(),
        lifted_by: None,
    });
    let d = decide(
        &t,
        &caps(),
        &registry(vec![router_fpm()]),
        &Policy::default(),
    );
    assert!(d.interfaces[&2].stages.is_empty());
    assert!(
        d.interfaces[&2]
            .reasons
            .iter()
            .any(|r| r.contains("rp_filter=1 on r0"))
    );
    assert_eq!(d.interfaces[&3].stages, vec!["router".to_string()]);
}

#[test]
fn chain_is_accelerated_up_to_the_first_function_without_fpm() {
    let mut t = router_topology();
    t.chains.insert(
        2,
        vec![FunctionRef::Bridge { bridge: 9 }, FunctionRef::Router],
    );
    let bridge = fake(
        "bridge",
        FpmRole::Accelerates(NetworkFunction::Bridge),
        &[Hook::Tc],
    );
    // Bridge FPM but no router FPM: only the bridge stage.
    let d = decide(
        &t,
        &caps(),
        &registry(vec![bridge.clone()]),
        &Policy::default(),
    );
    assert_eq!(d.interfaces[&2].stages, vec!["bridge".to_string()]);
    // With both, the port still runs only the bridge: the router stage
    // belongs to the bridge device's chain.
    let d = decide(
        &t,
        &caps(),
        &registry(vec![bridge.clone(), router_fpm()]),
        &Policy::default(),
    );
    assert_eq!(d.interfaces[&2].stages, vec!["bridge".to_string()]);
    assert!(
        d.interfaces[&2]
            .reasons
            .iter()
            .any(|r| r.contains("own chain"))
    );
    // Router FPM but no bridge FPM: nothing (the bridge must run first).
    let d = decide(
        &t,
        &caps(),
        &registry(vec![router_fpm()]),
        &Policy::default(),
    );
    assert!(d.interfaces[&2].stages.is_empty());
}

#[test]
fn preludes_run_first_and_policy_lists_apply() {
    let counter = fake("ifcounter", FpmRole::Prelude, &[Hook::Tc, Hook::Xdp]);
    let policy = Policy {
        deny: ["eth1".to_string()].into(),
        ..Default::default()
    };
    let d = decide(
        &router_topology(),
        &caps(),
        &registry(vec![counter, router_fpm()]),
        &policy,
    );
    assert_eq!(
        d.interfaces[&2].stages,
        vec!["ifcounter".to_string(), "router".to_string()]
    );
    assert_eq!(d.interfaces[&3].hook, None);
    assert_eq!(
        d.interfaces[&3].reasons,
        vec!["in the deny list".to_string()]
    );
}

#[test]
fn missing_capability_or_hook_is_explained() {
    let old = KernelCaps::for_version("4.19.0");
    let d = decide(
        &router_topology(),
        &old,
        &registry(vec![router_fpm()]),
        &Policy::default(),
    );
    assert!(d.interfaces[&2].reasons[0].contains("older than 5.10"));

    let tc_only = fake(
        "router",
        FpmRole::Accelerates(NetworkFunction::Router),
        &[Hook::Tc],
    );
    let policy = Policy {
        hook: HookPolicy::Xdp,
        ..Default::default()
    };
    let d = decide(
        &router_topology(),
        &caps(),
        &registry(vec![tc_only]),
        &policy,
    );
    assert!(
        d.interfaces[&3]
            .reasons
            .iter()
            .any(|r| r.contains("no xdp program"))
    );
    let _: BTreeMap<u32, InterfaceDecision> = d.interfaces;
}

#[test]
fn a_nat_limitation_is_lifted_behind_a_filter_stage_only() {
    let mut t = router_topology();
    t.limitations.push(Limitation {
        ifindex: None,
        function: NetworkFunction::Router,
        reason: "NAT chain ip nat POSTROUTING".into(),
        lifted_by: Some(NetworkFunction::Filter),
    });
    // Router alone: it would forward first packets past NAT.
    let d = decide(
        &t,
        &caps(),
        &registry(vec![router_fpm()]),
        &Policy::default(),
    );
    assert!(d.interfaces[&2].stages.is_empty());
    assert!(
        d.interfaces[&2]
            .reasons
            .iter()
            .any(|r| r.contains("NAT chain"))
    );
    // Behind a filter stage (which gates the NAT chains): both run.
    for chain in t.chains.values_mut() {
        chain.insert(0, FunctionRef::Filter);
    }
    let filter = fake(
        "filter",
        FpmRole::Accelerates(NetworkFunction::Filter),
        &[Hook::Xdp, Hook::Tc],
    );
    let d = decide(
        &t,
        &caps(),
        &registry(vec![router_fpm(), filter]),
        &Policy::default(),
    );
    assert_eq!(
        d.interfaces[&2].stages,
        vec!["filter".to_string(), "router".to_string()]
    );
}
