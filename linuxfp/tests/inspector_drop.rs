// SPDX-License-Identifier: MIT OR Apache-2.0
//! Dropping the stream ends the inspector thread (root). Alone in its test
//! binary so no other inspector thread runs in the process.

use std::time::{Duration, Instant};

use futures::StreamExt;
use linuxfp::{inspector::Inspector, netns::NetnsRef};
use linuxfp_testkit::{Netns, require_root};

fn inspector_threads() -> usize {
    std::fs::read_dir("/proc/thread-self/../")
        .expect("/proc/self/task")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim() == "linuxfp-inspect")
        .count()
}

#[test]
fn dropping_the_stream_ends_the_thread() {
    if !require_root("dropping_the_stream_ends_the_thread") {
        return;
    }
    let ns = Netns::new("insdrop").expect("netns");
    let mut stream = Inspector::new(NetnsRef::Named(ns.name().into()))
        .watch()
        .expect("watch");
    let first = futures::executor::block_on(stream.next()).expect("initial snapshot");
    assert!(first.state().link_by_name("lo").is_some());
    assert_eq!(inspector_threads(), 1);
    drop(stream);
    let start = Instant::now();
    while inspector_threads() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "inspector thread still running 1 s after the stream was dropped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("thread gone {:?} after drop", start.elapsed());
}
