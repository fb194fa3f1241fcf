//! Which BPF programs are attached to an interface, on every hook LinuxFP
//! (or anyone) can use: XDP (any mode), TCX, and legacy `cls_bpf` filters.
//! iproute2 6.1 does not show TCX programs, so those are asked from the
//! kernel with `BPF_PROG_QUERY`.

use std::time::Duration;

use aya::programs::{SchedClassifier, TcAttachType};
use serde_json::Value;

use crate::{
    command::{self, HOST},
    error::{Error, Result},
    netns::Netns,
};

/// The IDs of the BPF programs attached to one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attached {
    /// XDP programs (native, generic, offloaded).
    pub xdp: Vec<u32>,
    /// TC ingress programs: TCX first, then `cls_bpf` filters.
    pub tc_ingress: Vec<u32>,
    /// TC egress programs: TCX first, then `cls_bpf` filters.
    pub tc_egress: Vec<u32>,
}

impl Attached {
    /// True if no program is attached on any hook.
    pub fn is_empty(&self) -> bool {
        self.xdp.is_empty() && self.tc_ingress.is_empty() && self.tc_egress.is_empty()
    }
}

/// The programs attached to `ifname` inside `ns`.
pub fn attached_programs(ns: &Netns, ifname: &str) -> Result<Attached> {
    let label = ns.name().to_string();
    ns.run_in(|| attached_here(&label, ifname))?
}

/// The programs attached to `ifname` in the calling thread's own network
/// namespace (the host's, outside [`Netns::run_in`]).
pub fn attached_programs_here(ifname: &str) -> Result<Attached> {
    attached_here(HOST, ifname)
}

fn attached_here(label: &str, ifname: &str) -> Result<Attached> {
    // Child processes inherit the calling thread's network namespace, so
    // this works the same inside `run_in`.
    let run = |argv: &[&str]| -> Result<Value> {
        let out = command::here(label, argv, Duration::from_secs(10))?;
        if out.trim().is_empty() {
            return Ok(Value::Array(Vec::new()));
        }
        serde_json::from_str(&out).map_err(|source| Error::Json {
            netns: label.to_string(),
            command: argv.join(" "),
            source,
        })
    };
    let link = run(&["ip", "-j", "-d", "link", "show", "dev", ifname])?;
    let mut attached = Attached::default();
    if let Some(xdp) = link.get(0).and_then(|l| l.get("xdp")) {
        prog_ids(xdp, &mut attached.xdp);
    }
    for (attach, dir, ids) in [
        (TcAttachType::Ingress, "ingress", &mut attached.tc_ingress),
        (TcAttachType::Egress, "egress", &mut attached.tc_egress),
    ] {
        let (_revision, infos) =
            SchedClassifier::query_tcx(ifname, attach).map_err(|source| Error::BpfQuery {
                netns: label.to_string(),
                ifname: ifname.to_string(),
                source: Box::new(source),
            })?;
        ids.extend(infos.iter().map(|p| p.id()));
        prog_ids(
            &run(&["tc", "-j", "filter", "show", "dev", ifname, dir])?,
            ids,
        );
    }
    Ok(attached)
}

/// Collects `"prog": {"id": N}` anywhere below `v`: iproute2 prints XDP
/// (single or multi-mode) and `cls_bpf` filters that way.
fn prog_ids(v: &Value, out: &mut Vec<u32>) {
    match v {
        Value::Object(map) => {
            for (key, inner) in map {
                let id = inner
                    .get("id")
                    .and_then(Value::as_u64)
                    .and_then(|id| u32::try_from(id).ok());
                match (key.as_str(), id) {
                    ("prog", Some(id)) => out.push(id),
                    _ => prog_ids(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| prog_ids(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prog_ids_are_found_in_iproute2_json() {
        let single: Value =
            serde_json::from_str(r#"{"mode":1,"prog":{"id":42,"name":"x","tag":"ab","jited":1}}"#)
                .expect("json");
        let multi: Value = serde_json::from_str(
            r#"{"mode":4,"attached":[{"mode":1,"prog":{"id":7}},{"mode":2,"prog":{"id":8}}]}"#,
        )
        .expect("json");
        let tc: Value = serde_json::from_str(
            r#"[{"protocol":"all","pref":49152,"kind":"bpf","chain":0},
                {"protocol":"all","pref":49152,"kind":"bpf","chain":0,"options":{"handle":"0x1",
                 "bpf_name":"x.o:[tc]","direct-action":true,"prog":{"id":99,"name":"tc"}}}]"#,
        )
        .expect("json");
        let mut ids = Vec::new();
        prog_ids(&single, &mut ids);
        prog_ids(&multi, &mut ids);
        prog_ids(&tc, &mut ids);
        assert_eq!(ids, [42, 7, 8, 99]);
        let mut none = Vec::new();
        prog_ids(&serde_json::json!([]), &mut none);
        assert!(none.is_empty());
    }
}
