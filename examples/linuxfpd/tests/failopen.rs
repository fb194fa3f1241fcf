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

/// Fault 1: the daemon killed (-9) in the middle of a redeploy, at several
/// points after the change that triggered it (an interface coming up or
/// going down): nothing stays attached, Linux forwards, and a restart
/// attaches what the current configuration asks for.
#[test]
fn kill_9_during_a_redeploy_fails_open() {
    if !require_root("kill_9_during_a_redeploy_fails_open") {
        return;
    }
    let tb = VirtualRouter::new("dkm").expect("testbed");
    let extra = linuxfp_testkit::Netns::new("dkmx").expect("netns");
    linuxfp_testkit::veth(&tb.rtr, "r2", &extra, "x0").expect("veth");
    linuxfp_testkit::addr(&tb.rtr, "r2", "10.3.0.1/24").expect("addr");
    linuxfp_testkit::up(&extra, "x0").expect("up");
    let ns = tb.rtr.name().to_string();
    let none_attached = || {
        ["r0", "r1", "r2"]
            .iter()
            .all(|i| attached_programs(&tb.rtr, i).expect("query").is_empty())
    };
    let mut r2_up = false;
    for delay_ms in [0u64, 1, 3, 10, 30] {
        let d = Daemon::start(&ns);
        wait_for("programs attached", Duration::from_secs(3), || {
            attached(&tb) == (true, true)
        });
        // The change that makes the daemon redeploy, then the kill.
        r2_up = !r2_up;
        let state = if r2_up { "up" } else { "down" };
        tb.rtr
            .exec(&["ip", "link", "set", "r2", state])
            .expect("toggle r2");
        std::thread::sleep(Duration::from_millis(delay_ms));
        d.signal(libc::SIGKILL);
        assert!(d.wait(Duration::from_secs(5)).is_some(), "daemon died");
        let t = wait_for(
            "nothing attached after kill -9 mid-deploy",
            Duration::from_secs(2),
            none_attached,
        );
        eprintln!("killed {delay_ms} ms into a redeploy (r2 {state}): detached within {t:?}");
        assert!(
            tb.ping(false, 5).expect("ping"),
            "Linux carries the traffic after a kill {delay_ms} ms into a redeploy"
        );
    }
    // A restart takes over and attaches r0, r1 and (up now) r2.
    assert!(r2_up, "an odd number of toggles leaves r2 up");
    let d = Daemon::start(&ns);
    wait_for("programs re-attached", Duration::from_secs(3), || {
        attached(&tb) == (true, true)
            && !attached_programs(&tb.rtr, "r2").expect("query").is_empty()
    });
    assert!(tb.ping(false, 5).expect("ping"), "forwarding after restart");
    d.signal(libc::SIGTERM);
    assert_eq!(d.wait(Duration::from_secs(10)), Some(0), "clean exit");
    assert!(none_attached());
}
