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

/// How bridged traffic reaches the `ip` hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BrNf {
    /// `net.bridge.bridge-nf-call-ip(6)tables=1`, the namespace default
    /// once `br_netfilter` is loaded.
    Sysctl,
    /// The sysctls off, the bridge's own `nf_call_ip(6)tables` on.
    BridgeOption,
    /// Both off: no hook sees bridged frames.
    Off,
}

impl BrNf {
    /// Commands that set it up in the switch namespace.
    fn setup(self) -> &'static str {
        match self {
            BrNf::Sysctl => {
                "sysctl -qw net.bridge.bridge-nf-call-iptables=1 \
                 net.bridge.bridge-nf-call-ip6tables=1"
            }
            BrNf::BridgeOption => {
                "sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
                 net.bridge.bridge-nf-call-ip6tables=0 && \
                 ip link set br0 type bridge nf_call_iptables 1 nf_call_ip6tables 1"
            }
            // The bridge routes too (an address, forwarding on), so the
            // filter stage stands in front of the bridge for routed
            // traffic, and must let bridged frames through unevaluated.
            BrNf::Off => {
                "sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
                 net.bridge.bridge-nf-call-ip6tables=0 net.ipv4.ip_forward=1 && \
                 ip addr add 10.50.0.254/24 dev br0"
            }
        }
    }
}

async fn differential(hook: HookPolicy, brnf: BrNf, tag: &str) {
    let corpus = diff::corpus::bridge_filter(&bed::SWITCH);
    let napi = hook == HookPolicy::Xdp;
    let load = |s: &linuxfp_testkit::Switch| {
        s.sw.sh(&format!("nft -f - <<'EOF'\n{RULESET}EOF\n"))
            .expect("nft -f");
        s.sw.sh(brnf.setup()).expect("br_netfilter's settings");
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
    let label = format!("{hook:?}, {brnf:?}");
    eprintln!(
        "{label}: filter continue {passed}, bridged_drop {dropped}; filter {:?}",
        after.totals("filter")
    );
    assert_same(&label, &report, "bridge", &before, &after, 50);
    if brnf == BrNf::Off {
        // No hook sees bridged frames: all continue, none evaluated.
        assert!(
            passed > 150,
            "{label}: the filter let frames through: {passed}"
        );
        assert_eq!(dropped, 0, "{label}: {:?}", after.totals("filter"));
    } else {
        assert!(
            passed > 100,
            "{label}: the filter let frames through: {passed}"
        );
        assert!(dropped > 20, "{label}: drops left to the kernel: {dropped}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc_bridged_frames_through_the_firewall_like_linux() {
    if require_root("tc_bridged_frames_through_the_firewall_like_linux") {
        differential(HookPolicy::Auto, BrNf::Sysctl, "fbt").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdp_bridged_frames_through_the_firewall_like_linux() {
    if require_root("xdp_bridged_frames_through_the_firewall_like_linux") {
        differential(HookPolicy::Xdp, BrNf::Sysctl, "fbx").await;
    }
}

/// The bridge's own `nf_call_iptables` sends its traffic through the
/// hooks with the sysctls off; with both off, bridged frames are not
/// filtered, by Linux or by LinuxFP (whose filter stage, in front of a
/// bridge that also routes, lets them all through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_option_and_no_br_netfilter_like_linux() {
    if require_root("the_bridge_option_and_no_br_netfilter_like_linux") {
        differential(HookPolicy::Auto, BrNf::BridgeOption, "fbo").await;
        differential(HookPolicy::Auto, BrNf::Off, "fbn").await;
    }
}
