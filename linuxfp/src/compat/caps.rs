// SPDX-License-Identifier: MIT OR Apache-2.0
//! Kernel capabilities, probed once.

use serde::{Deserialize, Serialize};

use crate::fpm::Capability;

/// What the running kernel offers the fast paths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCaps {
    /// `uname -r`.
    pub release: String,
    /// Parsed (major, minor, patch).
    pub version: (u32, u32, u32),
    /// BPF is usable at all (the `bpf()` syscall answers).
    pub bpf: bool,
    /// BPF links for XDP (5.9).
    pub xdp_link: bool,
    /// tcx links for TC (6.6); clsact via netlink otherwise.
    pub tcx: bool,
    /// `bpf_fib_lookup` (4.18).
    pub fib_lookup: bool,
    /// `bpf_redirect_neigh` (5.10).
    pub redirect_neigh: bool,
}

impl KernelCaps {
    /// Probes the running kernel: its version, and whether `bpf()` works.
    pub fn probe() -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mut caps = Self::for_version(&release);
        caps.bpf = bpf_syscall_works();
        caps
    }

    /// The capabilities a kernel of this release has, assuming BPF works.
    /// Used by tests and by dry-run planning for another machine.
    pub fn for_version(release: &str) -> Self {
        let version = parse_version(release);
        let at_least = |maj: u32, min: u32| (version.0, version.1) >= (maj, min);
        KernelCaps {
            release: release.to_string(),
            version,
            bpf: true,
            xdp_link: at_least(5, 9),
            tcx: at_least(6, 6),
            fib_lookup: at_least(4, 18),
            redirect_neigh: at_least(5, 10),
        }
    }

    /// True if the kernel has `cap`.
    pub fn has(&self, cap: Capability) -> bool {
        match cap {
            Capability::FibLookup => self.fib_lookup,
            Capability::RedirectNeigh => self.redirect_neigh,
            Capability::XdpLink => self.xdp_link,
        }
    }

    /// Why nothing at all can be accelerated, if so.
    pub fn missing_basics(&self) -> Option<String> {
        if !self.bpf {
            return Some(
                "BPF unavailable (no CAP_BPF / CAP_SYS_ADMIN, or bpf() disabled)".to_string(),
            );
        }
        if self.version < (5, 10, 0) {
            return Some(format!(
                "kernel {} is older than 5.10, the minimum LinuxFP supports",
                self.release
            ));
        }
        None
    }
}

fn parse_version(release: &str) -> (u32, u32, u32) {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

fn bpf_syscall_works() -> bool {
    // BPF_PROG_GET_NEXT_ID needs CAP_SYS_ADMIN (or CAP_BPF) but no object:
    // success or ENOENT means we may use bpf().
    #[repr(C)]
    struct Attr {
        start_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let mut attr = Attr {
        start_id: 0,
        next_id: 0,
        open_flags: 0,
    };
    const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
    // SAFETY: the attr struct outlives the call and its size is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_NEXT_ID,
            &mut attr as *mut Attr,
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("6.18.44-fc-v669"), (6, 18, 44));
        assert_eq!(parse_version("5.10.0-28-amd64"), (5, 10, 0));
        assert_eq!(parse_version(""), (0, 0, 0));
    }

    #[test]
    fn features_follow_versions() {
        let old = KernelCaps::for_version("5.15.0");
        assert!(old.xdp_link && !old.tcx);
        let new = KernelCaps::for_version("6.18.1");
        assert!(new.tcx && new.redirect_neigh);
        assert!(KernelCaps::for_version("4.19.0").missing_basics().is_some());
    }
}
