// SPDX-License-Identifier: MIT OR Apache-2.0
//! Where a controller keeps its state outside the process: map pins under
//! bpffs, a lock and a status file under `/run`.
//!
//! ```text
//! /sys/fs/bpf/linuxfp/<netns>/LFP_CHAIN_XDP, LFP_CHAIN_TC, LFP_PKT_CTX
//! /sys/fs/bpf/linuxfp/<netns>/<fpm>/LFP_STATS and the FPM's shared maps
//! /run/linuxfp/<netns>.lock     held (flock) while a controller runs
//! /run/linuxfp/<netns>.json     the deployed plan, for `linuxfpd stats`
//! ```
//! Everything is created root-only (0700 directories).

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::{
        fd::AsRawFd,
        unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    },
    path::{Path, PathBuf},
};

use super::DeployError;

/// Default bpffs mount point.
pub const BPFFS: &str = "/sys/fs/bpf";
/// Default directory for locks and status files.
pub const RUN_DIR: &str = "/run/linuxfp";

/// The paths of one controller instance (one network namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinLayout {
    /// `/sys/fs/bpf/linuxfp/<netns>`.
    pub root: PathBuf,
    /// `/run/linuxfp/<netns>.lock`.
    pub lock: PathBuf,
    /// `/run/linuxfp/<netns>.json`.
    pub status: PathBuf,
}

impl PinLayout {
    /// The layout for the namespace with this pin name (see
    /// [`crate::netns::NetnsRef::pin_name`]).
    pub fn new(pin_name: &str) -> Self {
        Self::with_dirs(Path::new(BPFFS), Path::new(RUN_DIR), pin_name)
    }

    /// The layout under other base directories (tests).
    pub fn with_dirs(bpffs: &Path, run: &Path, pin_name: &str) -> Self {
        PinLayout {
            root: bpffs.join("linuxfp").join(pin_name),
            lock: run.join(format!("{pin_name}.lock")),
            status: run.join(format!("{pin_name}.json")),
        }
    }

    /// Pin path of an ABI map shared by all FPMs.
    pub fn abi_map(&self, map: &str) -> PathBuf {
        self.root.join(map)
    }

    /// Pin path of a map of one FPM.
    pub fn fpm_map(&self, fpm: &str, map: &str) -> PathBuf {
        self.root.join(fpm).join(map)
    }
}

/// Makes sure bpffs is mounted at `/sys/fs/bpf`, mounting it if absent.
pub fn ensure_bpffs() -> Result<(), DeployError> {
    ensure_bpffs_at(Path::new(BPFFS))
}

/// Makes sure bpffs is mounted at `root`, mounting it if absent. Fails with
/// [`DeployError::Bpffs`] (the path and the OS error) if it cannot be
/// mounted there: no such directory, no `CAP_SYS_ADMIN`, no bpffs in the
/// kernel.
pub fn ensure_bpffs_at(root: &Path) -> Result<(), DeployError> {
    if is_bpffs(root) {
        return Ok(());
    }
    tracing::info!(path = %root.display(), "bpffs not mounted: mounting it");
    let target = std::ffi::CString::new(root.as_os_str().as_encoded_bytes()).map_err(|_| {
        DeployError::Bpffs {
            path: root.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        }
    })?;
    let fstype = c"bpf";
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(DeployError::Bpffs {
            path: root.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Fails with [`DeployError::Bpffs`] unless `dir` is on a bpffs mount (BPF
/// objects can only be pinned there).
pub(crate) fn require_bpffs(dir: &Path) -> Result<(), DeployError> {
    if is_bpffs(dir) {
        Ok(())
    } else {
        Err(DeployError::Bpffs {
            path: dir.to_path_buf(),
            source: std::io::Error::other("not on a bpffs mount: BPF maps cannot be pinned here"),
        })
    }
}

fn is_bpffs(path: &Path) -> bool {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Creates a root-only directory and its parents. A directory that was
/// already there is made ours and private too: whoever else owned it or
/// could write to it could swap the pins under it.
pub(crate) fn mkdir_private(path: &Path) -> Result<(), DeployError> {
    let pin_err = |source| DeployError::Pin {
        path: path.to_path_buf(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(pin_err)?;
    make_private(path).map_err(pin_err)
}

/// Gives `path` to this process's user and group, mode 0700 for a
/// directory and 0600 for a file.
fn make_private(path: &Path) -> std::io::Result<()> {
    // SAFETY: geteuid/getegid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    let mode = if path.is_dir() { 0o700 } else { 0o600 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Writes `bytes` to `path` through a temporary file renamed over it, both
/// readable by this process's user only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    // A temporary file left by an older version keeps its old mode.
    make_private(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    fs::rename(&tmp, path)
}

/// An exclusive lock on one namespace: only one controller manages it.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock, failing at once if another process holds it.
    pub fn acquire(path: &Path) -> Result<Self, DeployError> {
        if let Some(dir) = path.parent() {
            mkdir_private(dir)?;
        }
        let pin_err = |source| DeployError::Pin {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(pin_err)?;
        // A lock file an older version created keeps its old mode.
        make_private(path).map_err(pin_err)?;
        // SAFETY: flock on a valid fd we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(DeployError::Busy {
                lock: path.to_path_buf(),
            });
        }
        Ok(InstanceLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes a pin directory tree (pins are plain files to `unlink`).
pub(crate) fn remove_pins(root: &Path) {
    if root.exists()
        && let Err(e) = fs::remove_dir_all(root)
    {
        tracing::warn!(path = %root.display(), error = %e, "could not remove pins");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths() {
        let l = PinLayout::new("rtr");
        assert_eq!(l.root, Path::new("/sys/fs/bpf/linuxfp/rtr"));
        assert_eq!(
            l.abi_map("LFP_CHAIN_TC"),
            Path::new("/sys/fs/bpf/linuxfp/rtr/LFP_CHAIN_TC")
        );
        assert_eq!(
            l.fpm_map("router", "LFP_STATS"),
            Path::new("/sys/fs/bpf/linuxfp/rtr/router/LFP_STATS")
        );
        assert_eq!(l.status, Path::new("/run/linuxfp/rtr.json"));
    }

    #[test]
    fn second_lock_on_the_same_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("lfp-lock-{}", std::process::id()));
        let path = dir.join("x.lock");
        let first = InstanceLock::acquire(&path).expect("first lock");
        // flock locks belong to open file descriptions: a second open in the
        // same process conflicts just like another process would.
        assert!(matches!(
            InstanceLock::acquire(&path),
            Err(DeployError::Busy { .. })
        ));
        drop(first);
        assert!(InstanceLock::acquire(&path).is_ok());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn bpffs_that_cannot_be_mounted_is_a_clear_error() {
        if !nix_root() {
            eprintln!("SKIPPED bpffs_that_cannot_be_mounted_is_a_clear_error: needs root");
            return;
        }
        let missing = Path::new("/nonexistent-lfp-bpffs/fs/bpf");
        let err = ensure_bpffs_at(missing).expect_err("cannot mount on a missing directory");
        let msg = crate::deploy::error_chain(&err);
        assert!(matches!(err, DeployError::Bpffs { .. }), "{err:?}");
        assert!(msg.contains("/nonexistent-lfp-bpffs/fs/bpf"), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");
    }

    #[test]
    fn bpffs_is_mounted_where_asked() {
        if !nix_root() {
            eprintln!("SKIPPED bpffs_is_mounted_where_asked: needs root");
            return;
        }
        let dir = std::env::temp_dir().join(format!("lfp-bpffs-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        assert!(
            require_bpffs(&dir).is_err(),
            "a plain directory is not bpffs"
        );
        ensure_bpffs_at(&dir).expect("mount bpffs");
        let mounted = is_bpffs(&dir);
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: umount of the mount this test made, by its NUL-terminated path.
        let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let _ = fs::remove_dir(&dir);
        assert!(mounted, "bpffs mounted at {}", dir.display());
        assert_eq!(rc, 0, "unmounted");
    }

    #[test]
    fn a_pin_directory_off_bpffs_is_refused_with_its_path() {
        let dir = std::env::temp_dir().join(format!("lfp-offbpffs-{}", std::process::id()));
        let layout = PinLayout::with_dirs(&dir.join("bpf"), &dir.join("run"), "t");
        let err = crate::deploy::Deployer::new(layout.clone(), crate::fpm::FpmRegistry::new())
            .expect_err("pins off bpffs are refused");
        let msg = crate::deploy::error_chain(&err);
        let _ = fs::remove_dir_all(&dir);
        assert!(matches!(err, DeployError::Bpffs { .. }), "{err:?}");
        assert!(msg.contains(&layout.root.display().to_string()), "{msg}");
        assert!(msg.contains("not on a bpffs mount"), "{msg}");
    }

    fn nix_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }
}
