//! Named network namespaces that exist exactly as long as their guard.

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::Duration,
};

use crate::{
    command::{self, DEFAULT_TIMEOUT, Finished, HOST, NsChild},
    error::{Error, Result},
};

/// Every namespace the kit creates is named `lfpt-<prefix>-<pid>-<n>`, so
/// one left behind by a killed test can be recognised (and its owner shown
/// to be dead) by [`remove_stale`].
pub const NAME_PREFIX: &str = "lfpt-";

/// Where `ip netns` keeps its handles.
pub const NETNS_DIR: &str = "/run/netns";

/// Where LinuxFP pins per-namespace objects (one directory per namespace
/// name); stale test directories there are removed with their namespace.
const LINUXFP_BPFFS: &str = "/sys/fs/bpf/linuxfp";

/// Unique within the process; the PID makes names unique across processes.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace created for a test. `lo` is up; nothing else exists.
///
/// Dropping it (also while unwinding from a panic) kills every process
/// still inside it and deletes it; errors are logged, never raised.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// Creates `lfpt-<prefix>-<pid>-<n>` and brings its loopback up.
    /// `prefix` is reduced to ASCII letters, digits, `_` and at most 16
    /// characters (say which test or role it is for: `"vr-src"`, `"ifca"`).
    pub fn new(prefix: &str) -> Result<Self> {
        let name = format!(
            "{NAME_PREFIX}{}-{}-{}",
            sanitize(prefix),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = Path::new(NETNS_DIR).join(&name);
        if path.exists() {
            // Our counter never repeats a name, so this one was left by an
            // earlier process that had our PID and died before cleaning up.
            tracing::warn!(netns = %name, "removing a stale namespace of a dead process");
            remove(&name);
        }
        command::host(&["ip", "netns", "add", &name], DEFAULT_TIMEOUT)?;
        // From here on the guard exists, so an error below still deletes it.
        let ns = Self { name, path };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        tracing::debug!(netns = %ns.name, "created");
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` and `ip -n` know it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its handle, `/run/netns/<name>` (what `setns` opens).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `argv` inside the namespace (`ip netns exec`, so `/sys` shows
    /// the namespace's interfaces) and returns its stdout. Fails with the
    /// command, exit status and stderr if it exits non-zero, or after
    /// [`DEFAULT_TIMEOUT`].
    pub fn exec(&self, argv: &[&str]) -> Result<String> {
        self.exec_timeout(argv, DEFAULT_TIMEOUT)
    }

    /// [`Netns::exec`] with an explicit time limit; the command is killed
    /// when it is exceeded.
    pub fn exec_timeout(&self, argv: &[&str], timeout: Duration) -> Result<String> {
        self.spawn(argv)?.wait(timeout)
    }

    /// Runs `argv` inside the namespace and returns how it ended, whatever
    /// its exit status (for tools like `ping` whose failure is an answer).
    pub fn output(&self, argv: &[&str], timeout: Duration) -> Result<Finished> {
        self.spawn(argv)?.wait_output(timeout)
    }

    /// Runs a `sh -c` script inside the namespace; its stdout.
    pub fn sh(&self, script: &str) -> Result<String> {
        self.exec(&["sh", "-c", script])
    }

    /// Starts `argv` in the background inside the namespace. The returned
    /// guard stops it when dropped. The process (`ip netns exec`, which
    /// then execs `argv` under the same PID) enters the namespace a moment
    /// after this returns; wait for what it does (e.g. [`crate::wait_listening`]),
    /// not for the call.
    pub fn spawn(&self, argv: &[&str]) -> Result<NsChild> {
        let mut args = vec!["netns", "exec", self.name.as_str()];
        args.extend_from_slice(argv);
        NsChild::start(&self.name, argv.join(" "), "ip", &args)
    }

    /// Runs `f` on a fresh thread that has entered this namespace with
    /// `setns(CLONE_NEWNET)`, so sockets it opens (netlink, BPF attach by
    /// ifindex, `if_nametoindex`) act inside the namespace. A panic in `f`
    /// is resumed on the caller's thread.
    ///
    /// Only the network namespace changes: `/sys/class/net` still shows the
    /// mount's namespace; read `/proc/thread-self/net/…` or use
    /// [`Netns::exec`] for files.
    pub fn run_in<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let handle = File::open(&self.path).map_err(|source| Error::Read {
            netns: self.name.clone(),
            path: self.path.clone(),
            source,
        })?;
        let netns = self.name.as_str();
        thread::scope(|scope| {
            let worker = thread::Builder::new()
                .name(format!("ns {netns}"))
                .spawn_scoped(scope, move || {
                    // SAFETY: setns(2) only reads the descriptor, which
                    // `handle` keeps open for the call; it changes the
                    // network namespace of this thread alone, which exists
                    // only to run `f` and ends with it.
                    let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(Error::Setns {
                            netns: netns.to_string(),
                            source: std::io::Error::last_os_error(),
                        });
                    }
                    drop(handle);
                    Ok(f())
                })
                .map_err(|source| Error::Thread {
                    netns: netns.to_string(),
                    source,
                })?;
            match worker.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// The PIDs of the processes inside the namespace (`ip netns pids`).
    pub fn pids(&self) -> Result<Vec<u32>> {
        pids_of(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

fn pids_of(name: &str) -> Result<Vec<u32>> {
    let out = command::host(&["ip", "netns", "pids", name], DEFAULT_TIMEOUT)?;
    out.split_whitespace()
        .map(|p| {
            p.parse().map_err(|_| Error::Parse {
                netns: name.to_string(),
                command: format!("ip netns pids {name}"),
                detail: format!("not a PID: {p:?}"),
            })
        })
        .collect()
}

/// Kills what runs inside the namespace and deletes it, logging failures.
fn remove(name: &str) {
    match pids_of(name) {
        Ok(pids) => {
            let me = std::process::id();
            for pid in pids.into_iter().filter(|&p| p != me) {
                let Ok(pid) = libc::pid_t::try_from(pid) else {
                    continue;
                };
                // SAFETY: kill(2) has no memory effects. The process is in a
                // namespace this kit created for a test, so it was started
                // by that test (or is an orphan of one).
                if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
                    tracing::warn!(netns = name, pid, err = %std::io::Error::last_os_error(), "cannot kill");
                } else {
                    tracing::debug!(netns = name, pid, "killed a process left in the namespace");
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot list the processes of a test namespace"),
    }
    match command::host(&["ip", "netns", "del", name], DEFAULT_TIMEOUT) {
        Ok(_) => tracing::debug!(netns = name, "deleted"),
        Err(e) => tracing::error!(error = %e, "cannot delete a test namespace"),
    }
}

fn sanitize(prefix: &str) -> String {
    let clean: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(16)
        .collect();
    if clean.is_empty() { "t".into() } else { clean }
}

/// The PID of the process that created a kit namespace, from its name
/// (`lfpt-<prefix>-<pid>-<n>`); `None` for any other name.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    parts.next()?.parse::<u32>().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next().filter(|p| !p.is_empty())?;
    Some(pid)
}

/// Whether `name` is a kit namespace whose creator no longer runs.
pub fn is_stale(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists())
}

/// The names of all named namespaces (`ip netns list`), sorted.
pub fn list() -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(source) => {
            return Err(Error::Read {
                netns: HOST.into(),
                path: NETNS_DIR.into(),
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            netns: HOST.into(),
            path: NETNS_DIR.into(),
            source,
        })?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Removes what killed test processes left behind: kit namespaces whose
/// creator is dead (killing the processes still inside them, which that
/// test started) and LinuxFP pin directories named after them. Returns a
/// line per removed thing.
pub fn remove_stale() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in list()?.into_iter().filter(|n| is_stale(n)) {
        remove(&name);
        removed.push(format!("netns {name}"));
    }
    if let Ok(entries) = std::fs::read_dir(LINUXFP_BPFFS) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_stale(&name) {
                let path = entry.path();
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => removed.push(format!("bpffs {}", path.display())),
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "cannot remove stale pins")
                    }
                }
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner() {
        assert_eq!(owner_pid("lfpt-vrsrc-1234-7"), Some(1234));
        assert_eq!(owner_pid("lfpt-a_b-99-0"), Some(99));
        assert_eq!(owner_pid("lfpt--99-0"), None);
        assert_eq!(owner_pid("lfpt-x-99"), None);
        assert_eq!(owner_pid("rtr"), None);
        assert_eq!(owner_pid("lfpt-x-pid-0"), None);
    }

    #[test]
    fn prefixes_are_cleaned() {
        assert_eq!(sanitize("vr-src"), "vrsrc");
        assert_eq!(sanitize("a/b c"), "abc");
        assert_eq!(sanitize("---"), "t");
        assert_eq!(sanitize("abcdefghijklmnopqrstuvwxyz").len(), 16);
    }

    #[test]
    fn only_dead_owners_are_stale() {
        let me = format!("lfpt-x-{}-0", std::process::id());
        assert!(!is_stale(&me));
        assert!(!is_stale("rtr"));
        // PIDs are below 2^22 on Linux.
        assert!(is_stale("lfpt-x-4294967290-0"));
    }
}
