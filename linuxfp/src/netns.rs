// SPDX-License-Identifier: MIT OR Apache-2.0
//! Network namespaces: which one a component works on, and running code
//! inside it.
//!
//! Netlink sockets, BPF attachments, devmap entries and TC filters all
//! resolve interfaces in the namespace of the thread that makes the call.
//! LinuxFP therefore does such work on a dedicated thread that entered the
//! target namespace ([`NetnsRef::enter_on_this_thread`], [`NetnsRef::run`]);
//! the caller's own threads never change namespace.
//!
//! ```no_run
//! use linuxfp::netns::NetnsRef;
//!
//! let rtr = NetnsRef::Named("rtr".into()); // as `ip netns add rtr` made it
//! // A closure on a fresh thread inside the namespace; its result comes back.
//! let loopback_up = rtr.run(|| std::fs::read_to_string("/sys/class/net/lo/operstate"))?;
//! // A stable directory name for pins: "rtr" here, `ns<inode>` otherwise.
//! assert_eq!(rtr.pin_name(), "rtr");
//! # let _ = loopback_up;
//! # Ok::<(), linuxfp::netns::NetnsError>(())
//! ```
//!
//! A thread started from a thread inside a namespace starts in that
//! namespace too, so [`NetnsRef::Current`] used on such a thread means that
//! namespace.

use std::{
    fmt,
    fs::File,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

/// Where named namespaces live (`ip netns add` creates them there).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A network namespace.
#[derive(Clone, Debug, Default)]
pub enum NetnsRef {
    /// The namespace of the process (of the thread that created the value's
    /// users, which is the process's unless it moved threads itself).
    #[default]
    Current,
    /// A namespace by name under [`NETNS_RUN_DIR`] (as `ip netns` names it).
    Named(String),
    /// A namespace by path (`/proc/<pid>/ns/net`, a bind mount, ...).
    Path(PathBuf),
    /// A namespace by an open file descriptor.
    Fd(Arc<OwnedFd>),
}

/// Errors entering or naming a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened.
    #[error("network namespace {netns}: cannot open {path}")]
    Open {
        /// The namespace.
        netns: String,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `setns(2)` failed.
    #[error("network namespace {netns}: setns failed")]
    Setns {
        /// The namespace.
        netns: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The worker thread could not be started or panicked.
    #[error("network namespace {netns}: worker thread failed")]
    Thread {
        /// The namespace.
        netns: String,
    },
}

impl fmt::Display for NetnsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsRef::Current => f.write_str("the current network namespace"),
            NetnsRef::Named(n) => write!(f, "netns {n}"),
            NetnsRef::Path(p) => write!(f, "netns at {}", p.display()),
            NetnsRef::Fd(fd) => write!(f, "netns fd {}", fd.as_raw_fd()),
        }
    }
}

impl NetnsRef {
    /// A namespace by an open file descriptor, which the value takes over.
    ///
    /// # Safety
    ///
    /// `fd` must be an open file descriptor of a network namespace that
    /// nothing else closes.
    pub unsafe fn from_raw_fd(fd: RawFd) -> Self {
        // SAFETY: the caller guarantees the fd is open and ours.
        NetnsRef::Fd(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn path(&self) -> Option<PathBuf> {
        match self {
            NetnsRef::Current => Some(PathBuf::from("/proc/self/ns/net")),
            NetnsRef::Named(n) => Some(Path::new(NETNS_RUN_DIR).join(n)),
            NetnsRef::Path(p) => Some(p.clone()),
            NetnsRef::Fd(_) => None,
        }
    }

    /// Moves the calling thread into the namespace. `Current` is a no-op.
    /// Use it on a thread dedicated to the namespace.
    pub fn enter_on_this_thread(&self) -> Result<(), NetnsError> {
        let file;
        let fd = match self {
            NetnsRef::Current => return Ok(()),
            NetnsRef::Fd(fd) => fd.as_raw_fd(),
            other => {
                let path = other.path().unwrap_or_default();
                file = File::open(&path).map_err(|source| NetnsError::Open {
                    netns: self.to_string(),
                    path,
                    source,
                })?;
                file.as_raw_fd()
            }
        };
        // SAFETY: `fd` is an open namespace file for the duration of the call.
        if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
            return Err(NetnsError::Setns {
                netns: self.to_string(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Runs `f` on a fresh thread inside the namespace and returns its
    /// result. The caller's thread stays where it is.
    pub fn run<F, R>(&self, f: F) -> Result<R, NetnsError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                self.enter_on_this_thread()?;
                Ok(f())
            });
            handle.join().map_err(|_| NetnsError::Thread {
                netns: self.to_string(),
            })?
        })
    }

    /// The inode of the namespace, which identifies it.
    pub fn inode(&self) -> Result<u64, NetnsError> {
        let meta = match self {
            NetnsRef::Fd(fd) => {
                // SAFETY: fstat on an fd we hold; the struct is zeroed.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
                    return Err(NetnsError::Open {
                        netns: self.to_string(),
                        path: PathBuf::from(format!("fd {}", fd.as_raw_fd())),
                        source: std::io::Error::last_os_error(),
                    });
                }
                return Ok(st.st_ino);
            }
            other => {
                let path = other.path().unwrap_or_default();
                std::fs::metadata(&path).map_err(|source| NetnsError::Open {
                    netns: self.to_string(),
                    path,
                    source,
                })?
            }
        };
        Ok(meta.ino())
    }

    /// A stable name for pin directories and status files: the namespace's
    /// name if it has one, else `ns<inode>` of the namespace file (the same
    /// for every path or fd of one namespace). `ns0` if the file cannot be
    /// read, which only happens for a namespace that cannot be entered
    /// either.
    pub fn pin_name(&self) -> String {
        match self {
            NetnsRef::Named(n) => n.clone(),
            other => format!("ns{}", other.inode().unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_namespace_is_named_by_inode() {
        let n = NetnsRef::Current.pin_name();
        assert!(n.starts_with("ns") && n.len() > 2 && n != "ns0", "{n}");
        assert_eq!(NetnsRef::Named("rtr".into()).pin_name(), "rtr");
    }

    #[test]
    fn run_in_the_current_namespace_returns_the_value() {
        assert_eq!(NetnsRef::Current.run(|| 7).expect("run"), 7);
    }

    #[test]
    fn a_missing_namespace_is_a_clear_error() {
        let err = NetnsRef::Named("lfp-does-not-exist".into())
            .run(|| ())
            .expect_err("missing");
        assert!(err.to_string().contains("lfp-does-not-exist"), "{err}");
    }
}
