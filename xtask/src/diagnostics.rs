//! Keeping a failed step's compiler errors for the summary.
//!
//! A CI log is often read from its end, and a build's first error can sit
//! thousands of lines above it (under the build scripts' output). The
//! gate therefore repeats every `error` block at the bottom, with the free
//! disk space, the usual cause of an error that a local build never shows.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, ExitStatus, Stdio},
};

use anyhow::{Context, Result};

/// At most this many lines of errors are kept for the summary.
const MAX_KEPT: usize = 80;

/// Below this much free space a whole build from scratch may not fit
/// (a fresh clone's `target/` reaches about 5 GB).
pub const LOW_DISK_BYTES: u64 = 10 << 30;

/// Runs `cmd` with its stderr echoed line by line, and returns its status
/// with the `error` blocks it printed (each up to its first blank line).
pub fn status_keeping_errors(cmd: &mut Command) -> Result<(ExitStatus, Vec<String>)> {
    println!("\n==> {}", crate::run::describe(cmd));
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", crate::run::describe(cmd)))?;
    let mut errors = ErrorBlocks::default();
    if let Some(stderr) = child.stderr.take() {
        // Raw lines, read to the end: a line that is not UTF-8 is shown
        // lossily rather than ending the reading, which would leave cargo
        // blocked on a full pipe.
        for line in BufReader::new(stderr).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line);
            eprintln!("{line}");
            errors.push(&line);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    Ok((status, errors.kept))
}

/// Collects `error…` blocks from a stream of lines.
#[derive(Default)]
struct ErrorBlocks {
    kept: Vec<String>,
    in_block: bool,
}

impl ErrorBlocks {
    fn push(&mut self, line: &str) {
        if line.trim_start().starts_with("error") {
            self.in_block = true;
        } else if line.trim().is_empty() {
            self.in_block = false;
        }
        if self.in_block && self.kept.len() < MAX_KEPT {
            self.kept.push(line.to_string());
        }
    }
}

/// Free bytes on the file system that holds `path`, if it can be read.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `st` is a writable
    // statvfs the call fills in; it is read only when the call succeeds.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// `12.3 GB free on <path>`, or why it is unknown.
pub fn disk_line(path: &Path) -> String {
    match free_bytes(path) {
        Some(b) => format!("{:.1} GB free on {}", b as f64 / 1e9, path.display()),
        None => format!("free space on {} unknown", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_blocks_are_kept_to_their_blank_line() {
        let mut e = ErrorBlocks::default();
        for line in [
            "   Compiling foo v0.1.0",
            "warning: unused",
            "error: linking with `cc` failed: exit status: 1",
            "  = note: No space left on device",
            "",
            "warning: something else",
            "error: could not compile `foo` (test \"faults\") due to 1 previous error",
        ] {
            e.push(line);
        }
        assert_eq!(
            e.kept,
            [
                "error: linking with `cc` failed: exit status: 1",
                "  = note: No space left on device",
                "error: could not compile `foo` (test \"faults\") due to 1 previous error",
            ]
        );
    }

    #[test]
    fn free_space_of_the_root_is_known() {
        assert!(free_bytes(Path::new("/")).is_some());
        assert!(free_bytes(Path::new("/no/such/path/here")).is_none());
    }
}
