//! What the test suite must leave as it found it in the host: the named
//! network namespaces, the host's interfaces and the programs and qdiscs on
//! them, and the pins in bpffs.

use std::{collections::BTreeSet, path::Path, process::Command};

use anyhow::{Context, Result};
use linuxfp_testkit::{attached_programs_here, is_root, list_namespaces, owner_pid};
use serde_json::Value;

const BPFFS: &str = "/sys/fs/bpf";

/// One line per thing that must not change, e.g. `netns rtr`,
/// `link eth0 kind=-`, `tc-ingress eth0 prog 17`, `bpffs linuxfp/x/MAP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot(BTreeSet<String>);

impl Snapshot {
    pub fn take() -> Result<Self> {
        let mut items = BTreeSet::new();
        for name in list_namespaces()? {
            items.insert(format!("netns {name}"));
        }
        let links = json(&["ip", "-j", "-d", "link", "show"])?;
        for link in links.as_array().into_iter().flatten() {
            let Some(name) = link["ifname"].as_str() else {
                continue;
            };
            let kind = link["linkinfo"]["info_kind"].as_str().unwrap_or("-");
            items.insert(format!("link {name} kind={kind}"));
            if is_root() {
                // TCX programs are only visible to root (BPF_PROG_QUERY).
                let attached = attached_programs_here(name)?;
                for (hook, ids) in [
                    ("xdp", &attached.xdp),
                    ("tc-ingress", &attached.tc_ingress),
                    ("tc-egress", &attached.tc_egress),
                ] {
                    items.extend(ids.iter().map(|id| format!("{hook} {name} prog {id}")));
                }
            }
        }
        let qdiscs = json(&["tc", "-j", "qdisc", "show"])?;
        for q in qdiscs.as_array().into_iter().flatten() {
            let field = |k: &str| q[k].as_str().unwrap_or("-").to_string();
            items.insert(format!(
                "qdisc {} {} {}",
                field("dev"),
                field("kind"),
                field("handle")
            ));
        }
        walk(Path::new(BPFFS), Path::new(BPFFS), &mut items);
        Ok(Self(items))
    }

    /// What changed from `before` to `self`, as `+ item` / `- item` lines,
    /// except things that belong to a test namespace of another process
    /// that still runs (a concurrent `cargo test`, not this suite, whose
    /// test processes have all exited by now); those are returned second.
    pub fn changes_since(&self, before: &Snapshot) -> (Vec<String>, Vec<String>) {
        let (mut leaked, mut foreign) = (Vec::new(), Vec::new());
        let added = self.0.difference(&before.0).map(|i| format!("+ {i}"));
        let removed = before.0.difference(&self.0).map(|i| format!("- {i}"));
        for line in added.chain(removed) {
            if owned_by_live_process(&line) {
                foreign.push(line);
            } else {
                leaked.push(line);
            }
        }
        (leaked, foreign)
    }
}

fn owned_by_live_process(line: &str) -> bool {
    line.split([' ', '/'])
        .filter_map(owner_pid)
        .any(|pid| pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists())
}

fn walk(root: &Path, dir: &Path, items: &mut BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        items.insert(format!("bpffs {rel}"));
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &path, items);
        }
    }
}

fn json(argv: &[&str]) -> Result<Value> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .with_context(|| format!("cannot run {}", argv.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        argv.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{} printed invalid JSON", argv.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(items: &[&str]) -> Snapshot {
        Snapshot(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn additions_and_removals_are_both_leaks() {
        let before = snap(&["netns a", "link eth0 kind=-", "xdp eth0 prog 3"]);
        let after = snap(&[
            "netns a",
            "link eth0 kind=-",
            "netns lfpt-x-4294967290-1",
            "bpffs linuxfp/y",
        ]);
        let (leaked, foreign) = after.changes_since(&before);
        assert_eq!(
            leaked,
            [
                "+ bpffs linuxfp/y",
                "+ netns lfpt-x-4294967290-1",
                "- xdp eth0 prog 3"
            ]
        );
        assert!(foreign.is_empty());
        assert!(before.changes_since(&before).0.is_empty());
    }

    #[test]
    fn namespaces_of_live_other_processes_are_not_ours() {
        // PID 1 always runs and is not us.
        let before = snap(&[]);
        let after = snap(&["netns lfpt-x-1-0", "bpffs linuxfp/lfpt-x-1-0/LFP_STATS"]);
        let (leaked, foreign) = after.changes_since(&before);
        assert!(leaked.is_empty(), "{leaked:?}");
        assert_eq!(foreign.len(), 2);
        // Our own PID is no excuse: our tests have exited by the time of the check.
        let mine = snap(&[&format!("netns lfpt-x-{}-0", std::process::id())]);
        assert_eq!(mine.changes_since(&before).0.len(), 1);
    }
}
