// SPDX-License-Identifier: MIT OR Apache-2.0
//! Attaching the first stage of a chain, and swapping it atomically.

use aya::programs::{
    ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
    tc::{self, SchedClassifierLink},
    xdp::XdpLink,
};

use super::{DeployError, Deployer, InstanceKey};
use crate::fpm::Hook;

/// The link that holds a chain's first stage on an interface. Dropping it
/// detaches the program.
pub(crate) enum Attachment {
    Xdp {
        link: XdpLink,
        key: InstanceKey,
        generation: u64,
    },
    Tc {
        link: SchedClassifierLink,
        key: InstanceKey,
        generation: u64,
    },
}

impl Attachment {
    pub(crate) fn hook(&self) -> Hook {
        match self {
            Attachment::Xdp { .. } => Hook::Xdp,
            Attachment::Tc { .. } => Hook::Tc,
        }
    }

    fn current(&self) -> (&InstanceKey, u64) {
        match self {
            Attachment::Xdp {
                key, generation, ..
            }
            | Attachment::Tc {
                key, generation, ..
            } => (key, *generation),
        }
    }
}

impl Deployer {
    /// Makes `fpm`'s position-0 program the one attached to `ifindex`.
    /// Returns `Some(true)` if it replaced another, `Some(false)` if newly
    /// attached, `None` if it was already there.
    pub(super) fn attach_first(
        &mut self,
        ifindex: u32,
        name: &str,
        hook: Hook,
        fpm: &str,
    ) -> Result<Option<bool>, DeployError> {
        let key = InstanceKey {
            fpm: fpm.to_string(),
            hook,
            position: 0,
        };
        let generation = self
            .instances
            .get(&key)
            .map(|i| i.generation)
            .ok_or_else(|| DeployError::UnknownFpm(fpm.to_string()))?;
        if let Some(att) = self.links.get(&ifindex)
            && att.current() == (&key, generation)
        {
            return Ok(None);
        }
        let err = |action: &'static str, source: ProgramError| DeployError::Attach {
            action,
            hook,
            name: name.to_string(),
            ifindex,
            source: Box::new(source),
        };
        let old = self.links.remove(&ifindex);
        let replacing = old.is_some();
        if hook == Hook::Tc && old.as_ref().map(Attachment::hook) != Some(Hook::Tc) {
            self.refuse_foreign_tc(ifindex, name)?;
        }
        let inst = self
            .instances
            .get_mut(&key)
            .ok_or_else(|| DeployError::UnknownFpm(fpm.to_string()))?;
        let program = inst.program;
        let prog = inst
            .ebpf
            .program_mut(program)
            .ok_or_else(|| DeployError::MissingProgram {
                fpm: fpm.to_string(),
                program: program.to_string(),
            })?;
        let att = match (hook, old) {
            (Hook::Xdp, Some(Attachment::Xdp { link, .. })) => {
                let p: &mut Xdp = prog.try_into().map_err(|e| err("replacing", e))?;
                let id = p.attach_to_link(link).map_err(|e| err("replacing", e))?;
                let link = p.take_link(id).map_err(|e| err("replacing", e))?;
                Attachment::Xdp {
                    link,
                    key,
                    generation,
                }
            }
            (Hook::Tc, Some(Attachment::Tc { link, .. })) => {
                let p: &mut SchedClassifier = prog.try_into().map_err(|e| err("replacing", e))?;
                let id = p.attach_to_link(link).map_err(|e| err("replacing", e))?;
                let link = p.take_link(id).map_err(|e| err("replacing", e))?;
                Attachment::Tc {
                    link,
                    key,
                    generation,
                }
            }
            (Hook::Xdp, other) => {
                // A different hook (or nothing) before: attach the new one
                // first, then let the old link go, so there is no moment
                // without a fast path. Both are correct on their own.
                let p: &mut Xdp = prog.try_into().map_err(|e| err("attaching", e))?;
                let id =
                    p.attach_to_if_index(ifindex, XdpMode::default())
                        .map_err(|e| match &e {
                            ProgramError::SyscallError(s)
                                if s.io_error.raw_os_error() == Some(libc::EBUSY) =>
                            {
                                DeployError::ForeignProgram {
                                    name: name.to_string(),
                                    ifindex,
                                    hook,
                                    detail: String::new(),
                                }
                            }
                            _ => err("attaching", e),
                        })?;
                let link = p.take_link(id).map_err(|e| err("attaching", e))?;
                drop(other);
                Attachment::Xdp {
                    link,
                    key,
                    generation,
                }
            }
            (Hook::Tc, other) => {
                let p: &mut SchedClassifier = prog.try_into().map_err(|e| err("attaching", e))?;
                if !tcx_available() {
                    // clsact is needed for netlink attachment; "exists" is fine.
                    let _ = tc::qdisc_add_clsact(name);
                }
                let id = p
                    .attach(name, TcAttachType::Ingress)
                    .map_err(|e| err("attaching", e))?;
                let link = p.take_link(id).map_err(|e| err("attaching", e))?;
                drop(other);
                Attachment::Tc {
                    link,
                    key,
                    generation,
                }
            }
        };
        self.links.insert(ifindex, att);
        Ok(Some(replacing))
    }

    /// Fails if a tcx ingress program that is not ours is on the interface.
    fn refuse_foreign_tc(&self, ifindex: u32, name: &str) -> Result<(), DeployError> {
        if !tcx_available() {
            return Ok(());
        }
        let ours = self.program_ids();
        let Ok((_, progs)) = SchedClassifier::query_tcx(name, TcAttachType::Ingress) else {
            // No tcx entry at all on this device: nothing attached.
            return Ok(());
        };
        let foreign: Vec<u32> = progs
            .iter()
            .map(|p| p.id())
            .filter(|id| !ours.contains(id))
            .collect();
        if foreign.is_empty() {
            Ok(())
        } else {
            Err(DeployError::ForeignProgram {
                name: name.to_string(),
                ifindex,
                hook: Hook::Tc,
                detail: format!(" (program ids {foreign:?})"),
            })
        }
    }
}

/// tcx links exist from 6.6 on; aya uses them there and netlink before.
fn tcx_available() -> bool {
    use aya::util::KernelVersion;
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}
