// SPDX-License-Identifier: MIT OR Apache-2.0
use std::sync::Arc;

use super::*;
use crate::{
    compat::InterfaceDecision,
    fpm::{Fpm, FpmConfig, FpmDeclaration, FpmError, FpmRole, HexBytes, ParamInput},
    topology::NetworkFunction,
};

/// An FPM whose globals and maps depend on how many interfaces it serves.
struct Counting(FpmDeclaration);

impl Fpm for Counting {
    fn declaration(&self) -> &FpmDeclaration {
        &self.0
    }
    fn bytecode(&self) -> &'static [u8] {
        &[]
    }
    fn parameterize(&self, input: &ParamInput<'_>) -> Result<FpmConfig, FpmError> {
        let mut cfg = FpmConfig::default();
        let n = input.decisions.interfaces_of(self.0.name).count() as u32;
        cfg.globals
            .insert("N".into(), HexBytes::new(&n.to_ne_bytes()));
        let map = cfg.maps.entry("M".into()).or_default();
        for (i, _) in input.decisions.interfaces_of(self.0.name) {
            map.insert(HexBytes::new(&i.to_ne_bytes()), HexBytes::new(&[1]));
        }
        Ok(cfg)
    }
}

fn registry() -> FpmRegistry {
    let mut r = FpmRegistry::new();
    r.register(Arc::new(Counting(FpmDeclaration {
        name: "router",
        role: FpmRole::Accelerates(NetworkFunction::Router),
        programs: [(Hook::Tc, "p")].into(),
        capabilities: vec![],
        shared_maps: vec!["M"],
        punt_reasons: vec![],
    })))
    .expect("unique");
    r
}

fn decisions(ifaces: &[u32]) -> Decisions {
    let mut d = Decisions::default();
    for i in ifaces {
        d.interfaces.insert(
            *i,
            InterfaceDecision {
                name: format!("if{i}"),
                hook: Some(Hook::Tc),
                stages: vec!["router".into()],
                reasons: vec!["tc".into()],
            },
        );
    }
    d.interfaces.insert(
        99,
        InterfaceDecision {
            name: "lo9".into(),
            hook: None,
            stages: vec![],
            reasons: vec!["in the deny list".into()],
        },
    );
    d
}

#[test]
fn plan_has_chains_params_and_slow_path() {
    let t = Topology::default();
    let plan = synthesize(&t, &decisions(&[2, 3]), &registry(), None).expect("plan");
    assert_eq!(plan.interfaces.len(), 2);
    assert_eq!(plan.interfaces[&2].stages, vec!["router".to_string()]);
    assert_eq!(
        plan.slow_path[&99].reasons,
        vec!["in the deny list".to_string()]
    );
    assert_eq!(plan.fpms["router"].maps["M"].len(), 2);
    // Serialisable and back.
    let json = serde_json::to_string(&plan).expect("json");
    let back: FastPathPlan = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, plan);
}

#[test]
fn diff_separates_reload_resync_and_chain_changes() {
    let t = Topology::default();
    let r = registry();
    let a = synthesize(&t, &decisions(&[2, 3]), &r, None).expect("plan");
    let b = synthesize(&t, &decisions(&[2, 4]), &r, None).expect("plan");
    let d = a.diff(&b);
    assert_eq!(d.attach, [4].into());
    assert_eq!(d.detach, [3].into());
    assert!(d.rechain.is_empty());
    // Same count of interfaces: globals unchanged, maps changed.
    assert!(d.reload.is_empty());
    assert_eq!(d.resync, ["router".to_string()].into());
    let c = synthesize(&t, &decisions(&[2]), &r, None).expect("plan");
    assert_eq!(a.diff(&c).reload, ["router".to_string()].into());
    assert!(a.diff(&a).is_empty());
}

#[test]
fn unknown_fpm_in_decisions_is_an_error() {
    let mut d = decisions(&[2]);
    if let Some(x) = d.interfaces.get_mut(&2) {
        x.stages = vec!["nope".into()];
    }
    let err = synthesize(&Topology::default(), &d, &registry(), None).expect_err("unknown");
    assert!(err.to_string().contains("nope"));
}
