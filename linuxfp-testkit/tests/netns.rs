// SPDX-License-Identifier: MIT OR Apache-2.0
//! Root tests of the namespace guard: it exists while held, disappears on
//! drop and on panic, takes its processes with it, and `run_in` really runs
//! inside it.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    time::{Duration, Instant},
};

use linuxfp_testkit::{Error, Netns, ifindex, list_namespaces, require_root, veth};

fn exists(name: &str) -> bool {
    list_namespaces().expect("list").iter().any(|n| n == name)
}

/// Zombies count as gone: what matters is that nothing runs any more.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

#[test]
fn namespace_lives_exactly_as_long_as_its_guard() {
    if !require_root("namespace_lives_exactly_as_long_as_its_guard") {
        return;
    }
    let ns = Netns::new("life").expect("netns");
    let name = ns.name().to_string();
    assert!(name.starts_with("lfpt-life-"), "{name}");
    assert_eq!(ns.path(), Path::new("/run/netns").join(&name));
    assert!(exists(&name));
    let lo = ns
        .exec(&["cat", "/sys/class/net/lo/operstate"])
        .expect("lo");
    assert_eq!(lo.trim(), "unknown", "lo is up (loopback reports unknown)");
    drop(ns);
    assert!(!exists(&name), "{name} still listed after drop");
    assert!(!Path::new("/run/netns").join(&name).exists());
}

#[test]
fn namespace_is_removed_when_the_test_panics() {
    if !require_root("namespace_is_removed_when_the_test_panics") {
        return;
    }
    let mut name = String::new();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let ns = Netns::new("panic").expect("netns");
        name = ns.name().to_string();
        assert!(exists(&name));
        panic!("deliberate panic with {name} alive");
    }));
    assert!(outcome.is_err(), "the closure panicked");
    assert!(!name.is_empty());
    assert!(!exists(&name), "{name} survived the panic");
}

#[test]
fn names_are_unique_and_carry_the_pid() {
    if !require_root("names_are_unique_and_carry_the_pid") {
        return;
    }
    let a = Netns::new("same").expect("a");
    let b = Netns::new("same").expect("b");
    assert_ne!(a.name(), b.name());
    let pid = std::process::id();
    assert_eq!(linuxfp_testkit::owner_pid(a.name()), Some(pid));
    assert!(!linuxfp_testkit::is_stale(a.name()));
}

#[test]
fn processes_left_inside_are_killed_on_drop() {
    if !require_root("processes_left_inside_are_killed_on_drop") {
        return;
    }
    let ns = Netns::new("pids").expect("netns");
    // A daemonised process the test does not hold a guard for.
    let out = ns
        .sh("sleep 60 >/dev/null 2>&1 & echo $!")
        .expect("background sleep");
    let pid: u32 = out.trim().parse().expect("pid");
    assert!(running(pid));
    assert!(
        ns.pids().expect("pids").contains(&pid),
        "listed in the namespace"
    );
    drop(ns);
    assert!(
        wait_until(|| !running(pid)),
        "sleep {pid} outlived its namespace"
    );
}

#[test]
fn spawned_guard_stops_its_process() {
    if !require_root("spawned_guard_stops_its_process") {
        return;
    }
    let ns = Netns::new("spawn").expect("netns");
    let mut child = ns.spawn(&["sleep", "60"]).expect("spawn");
    let pid = child.pid();
    assert!(child.is_running().expect("status"));
    // `ip netns exec` enters the namespace a moment after it starts.
    assert!(
        wait_until(|| ns.pids().expect("pids").contains(&pid)),
        "it runs inside the namespace"
    );
    let started = Instant::now();
    drop(child);
    assert!(!running(pid));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "SIGTERM is enough for sleep"
    );

    // Output of a finished background command is kept.
    let child = ns
        .spawn(&["sh", "-c", "echo out; echo err >&2"])
        .expect("spawn");
    let done = child.wait_output(Duration::from_secs(5)).expect("wait");
    assert!(done.status.success());
    assert_eq!(
        (done.stdout.as_str(), done.stderr.as_str()),
        ("out\n", "err\n")
    );
}

#[test]
fn exec_names_the_failing_command() {
    if !require_root("exec_names_the_failing_command") {
        return;
    }
    let ns = Netns::new("fail").expect("netns");
    let err = ns
        .exec(&["ip", "link", "show", "nope0"])
        .expect_err("no such device");
    let Error::Command {
        netns,
        command,
        stderr,
        status,
    } = &err
    else {
        panic!("wrong error: {err:?}");
    };
    assert_eq!(netns, ns.name());
    assert_eq!(command, "ip link show nope0");
    assert!(!status.success());
    assert!(stderr.contains("nope0"), "{stderr}");
    assert!(err.to_string().contains(ns.name()), "{err}");

    let err = ns
        .exec(&["no-such-program-lfpt"])
        .expect_err("not installed");
    assert!(matches!(err, Error::Command { .. }), "{err:?}");
}

#[test]
fn exec_kills_a_command_that_overruns() {
    if !require_root("exec_kills_a_command_that_overruns") {
        return;
    }
    let ns = Netns::new("slow").expect("netns");
    let started = Instant::now();
    let err = ns
        .exec_timeout(&["sleep", "30"], Duration::from_millis(300))
        .expect_err("times out");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        wait_until(|| ns.pids().expect("pids").is_empty()),
        "sleep was killed"
    );
}

#[test]
fn run_in_runs_inside_the_namespace() {
    if !require_root("run_in_runs_inside_the_namespace") {
        return;
    }
    let a = Netns::new("runa").expect("a");
    let b = Netns::new("runb").expect("b");
    veth(&a, "lfptq0", &b, "lfptq1").expect("veth");
    let expected = ifindex(&a, "lfptq0").expect("ifindex via exec");
    let name = std::ffi::CString::new("lfptq0").expect("cstring");
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let inside = a
        .run_in(|| unsafe { libc::if_nametoindex(name.as_ptr()) })
        .expect("run_in");
    assert_eq!(inside, expected);
    // SAFETY: as above.
    let outside = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_eq!(outside, 0, "the host does not see the veth");
    let in_b = b
        .run_in(|| unsafe { libc::if_nametoindex(name.as_ptr()) })
        .expect("run_in b");
    assert_eq!(in_b, 0, "b has only the peer");

    // The thread's namespace is the very one the handle names.
    let ns_inode =
        |path: &str| std::fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let handle = ns_inode(a.path().to_str().expect("utf-8")).expect("stat handle");
    let thread = a
        .run_in(|| ns_inode("/proc/thread-self/ns/net"))
        .expect("run_in")
        .expect("stat");
    assert_eq!(thread, handle);
    let own = ns_inode("/proc/thread-self/ns/net").expect("stat");
    assert_ne!(own, handle, "the caller's thread did not move");
}

#[test]
fn run_in_resumes_a_panic_on_the_caller() {
    if !require_root("run_in_resumes_a_panic_on_the_caller") {
        return;
    }
    let ns = Netns::new("runp").expect("netns");
    let outcome = catch_unwind(AssertUnwindSafe(|| ns.run_in(|| panic!("inside"))));
    let payload = outcome.expect_err("panic crosses run_in");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"inside"));
    // The guard still works afterwards.
    assert_eq!(ns.run_in(|| 7).expect("run_in"), 7);
}
