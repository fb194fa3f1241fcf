// SPDX-License-Identifier: MIT OR Apache-2.0
//! The firewall on the bridged path, against the kernel (issue 7): with
//! `br_netfilter` (on by default in a namespace once the module is
//! loaded, as on every Kubernetes node), bridged IP frames pass through
//! the `ip`/`ip6`/`inet` prerouting, forward and postrouting chains as if
//! they came from and went to the bridge device. A ruleset that accepts,
//! drops, rejects and logs by bridge device, address, port and set is
//! loaded into the switch namespace; the bridge-filter corpus (every pair
//! of hosts, IPv4 and IPv6, UDP, TCP, ICMP) goes through it once with
//! Linux alone and once with the controller deploying the filter and
//! bridge FPMs. What each host receives must be the same, and the fast
//! path must have both forwarded frames (the filter let them through and
//! the bridge stage sent them) and left the drops to the kernel.
//!
//! Root only; skips loudly otherwise.

#[path = "../../linuxfp-fpm-router/tests/support/linuxfp.rs"]
mod linuxfp_run;

use std::sync::Arc;

use linuxfp::{compat::HookPolicy, fpm::Fpm};
use linuxfp_fpm_bridge::BridgeFpm;
use linuxfp_fpm_filter::FilterFpm;
use linuxfp_run::{assert_same, with_linuxfp};
use linuxfp_testkit::{
    diff::{self, Normaliser, Options, bed},
    require_root,
};

/// Rules that tell bridged frames apart by what `br_netfilter` shows the
/// hooks: `br0` as input and output device.
const RULESET: &str = r#"
table inet lfp {
    set blocked4 {
        type ipv4_addr
        flags interval
        elements = { 10.50.0.3/32 }
    }
    chain pre {
        type filter hook prerouting priority -5; policy accept;
        iifname "br0" udp dport 7000 drop
    }
    chain filt {
        type filter hook forward priority 0; policy accept;
        iifname "br0" oifname "br0" udp dport 5001 accept
        udp dport 5001 drop
        tcp dport 22 reject with tcp reset
        ip saddr @blocked4 udp dport 6000-6010 drop
        ip6 saddr fd50::3 udp dport 6000-6010 drop
        udp dport 8000 log accept
        tcp flags & (syn | ack) == syn tcp dport 8080 drop
        ip daddr 10.50.0.2 tcp dport 443 jump web
        ip6 daddr fd50::2 tcp dport 443 jump web
        meta l4proto { icmp, ipv6-icmp } accept
        udp dport 9999 counter drop
    }
    chain web {
        ip saddr 10.50.0.1 return
        ip6 saddr fd50::1 return
        drop
    }
}
table ip late {
    chain post {
        type filter hook postrouting priority 100; policy accept;
        oifname "br0" udp dport 53 drop
    }
}
"#;

async fn differential(hook: HookPolicy, tag: &str) {
    let corpus = diff::corpus::bridge_filter(&bed::SWITCH);
    let napi = hook == HookPolicy::Xdp;
    let load = |s: &linuxfp_testkit::Switch| {
        s.sw.sh(&format!("nft -f - <<'EOF'\n{RULESET}EOF\n"))
            .expect("nft -f");
        let on =
            s.sw.sh("sysctl -n net.bridge.bridge-nf-call-iptables")
                .expect("br_netfilter's sysctl");
        assert_eq!(
            on.trim(),
            "1",
            "br_netfilter passes bridged IPv4 to the hooks"
        );
    };
    let base = tokio::task::block_in_place(|| {
        let s = bed::switch(&format!("{tag}l"), napi).expect("testbed");
        load(&s);
        diff::run(&bed::switch_wires(&s), &corpus, &Options::default())
    })
    .expect("run with Linux alone");
    let s = bed::switch(&format!("{tag}f"), napi).expect("testbed");
    load(&s);
    let fpms: Vec<Arc<dyn Fpm>> = vec![Arc::new(FilterFpm::new()), Arc::new(BridgeFpm::new())];
    let (fast, before, after) = with_linuxfp(&s.sw, fpms, hook, || {
        diff::run(&bed::switch_wires(&s), &corpus, &Options::default())
    })
    .await;
    let fast = fast.expect("run with LinuxFP");
    assert!(
        base.total() > corpus.probes.len() / 3,
        "Linux let too little through"
    );
    let report = diff::compare(&base, &fast, &corpus, &Normaliser::default());
    let delta = |fpm: &str, counter: &str| after.total(fpm, counter) - before.total(fpm, counter);
    let (passed, dropped) = (delta("filter", "continue"), delta("filter", "bridged_drop"));
    eprintln!(
        "{hook:?}: filter continue {passed}, bridged_drop {dropped}; filter {:?}",
        after.totals("filter")
    );
    assert_same(&format!("{hook:?}"), &report, "bridge", &before, &after, 50);
    assert!(passed > 100, "the filter let frames through: {passed}");
    assert!(
        dropped > 20,
        "the filter left drops to the kernel: {dropped}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc_bridged_frames_through_the_firewall_like_linux() {
    if require_root("tc_bridged_frames_through_the_firewall_like_linux") {
        differential(HookPolicy::Auto, "fbt").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdp_bridged_frames_through_the_firewall_like_linux() {
    if require_root("xdp_bridged_frames_through_the_firewall_like_linux") {
        differential(HookPolicy::Xdp, "fbx").await;
    }
}
