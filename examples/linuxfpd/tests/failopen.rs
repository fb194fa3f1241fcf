// SPDX-License-Identifier: MIT OR Apache-2.0
//! The daemon on the virtual router: it deploys, a `kill -9` leaves Linux
//! carrying the traffic with nothing attached, a restart re-attaches, and
//! SIGTERM cleans up everything. Exit codes say what went wrong.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use linuxfp_testkit::{VirtualRouter, attached_programs, require_root};

const BIN: &str = env!("CARGO_BIN_EXE_linuxfpd");

/// A daemon process, killed by PID when dropped.
struct Daemon(Child);

impl Daemon {
    fn start(netns: &str) -> Daemon {
        let child = Command::new(BIN)
            .args(["run", "--netns", netns, "--json-events"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn linuxfpd");
        Daemon(child)
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill on the PID of a child we spawned and still own.
        unsafe { libc::kill(self.0.id() as libc::pid_t, sig) };
    }

    fn wait(mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn attached(tb: &VirtualRouter) -> (bool, bool) {
    let r0 = attached_programs(&tb.rtr, "r0").expect("query");
    let r1 = attached_programs(&tb.rtr, "r1").expect("query");
    (!r0.is_empty(), !r1.is_empty())
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        if ok() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}: not within {within:?}");
}

#[test]
fn kill_9_fails_open_and_a_restart_reattaches() {
    if !require_root("kill_9_fails_open_and_a_restart_reattaches") {
        return;
    }
    let tb = VirtualRouter::new("dk").expect("testbed");
    let ns = tb.rtr.name().to_string();
    let d = Daemon::start(&ns);
    let t = wait_for("programs attached", Duration::from_secs(2), || {
        attached(&tb) == (true, true)
    });
    eprintln!("attached {t:?} after start");
    assert!(tb.ping(false, 10).expect("ping"), "forwarding with LinuxFP");

    // A second instance on the same namespace is refused: exit code 6.
    let second = Command::new(BIN)
        .args(["run", "--netns", &ns])
        .stdin(Stdio::null())
        .output()
        .expect("second instance");
    assert_eq!(second.status.code(), Some(6), "{second:?}");

    // kill -9: the kernel drops the links with the process.
    d.signal(libc::SIGKILL);
    assert!(d.wait(Duration::from_secs(5)).is_some(), "daemon died");
    wait_for("programs detached", Duration::from_secs(2), || {
        attached(&tb) == (false, false)
    });
    assert!(
        tb.ping(false, 5).expect("ping"),
        "Linux carries the traffic"
    );

    // A restart takes over the stale pins and attaches again.
    let d = Daemon::start(&ns);
    wait_for("programs re-attached", Duration::from_secs(2), || {
        attached(&tb) == (true, true)
    });
    assert!(tb.ping(false, 5).expect("ping"), "forwarding after restart");

    // SIGTERM: clean exit, nothing attached, pins and status removed.
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)), Some(0), "clean exit");
    assert_eq!(attached(&tb), (false, false));
    assert!(
        !std::path::Path::new("/sys/fs/bpf/linuxfp")
            .join(&ns)
            .exists(),
        "pins removed"
    );
    assert!(
        !std::path::Path::new("/run/linuxfp")
            .join(format!("{ns}.json"))
            .exists(),
        "status removed"
    );
}

#[test]
fn exit_codes_name_the_problem() {
    let missing = Command::new(BIN)
        .args(["plan", "--netns", "lfp-no-such-namespace"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(5), "{missing:?}");
    let bad_fpm = Command::new(BIN)
        .args(["plan", "--fpm", "nonsense"])
        .output()
        .expect("run");
    assert_eq!(bad_fpm.status.code(), Some(2), "{bad_fpm:?}");
}
