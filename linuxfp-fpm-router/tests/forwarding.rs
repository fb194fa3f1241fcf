// SPDX-License-Identifier: MIT OR Apache-2.0
//! Namespace tests on the seed paper's virtual router: real traffic through
//! LinuxFP's router, compared with what Linux does, with the counters
//! proving the fast path did the work.

use std::{sync::Arc, time::Duration};

use linuxfp::{
    compat::{HookPolicy, KernelCaps, Policy},
    controller::plan_once,
    deploy::{Stats, worker::DeployWorker},
    fpm::{FpmRegistry, Hook},
    netns::NetnsRef,
};
use linuxfp_fpm_router::RouterFpm;
use linuxfp_testkit::{Iperf3, VirtualRouter, require_root};

fn registry() -> FpmRegistry {
    let mut r = FpmRegistry::new();
    r.register(Arc::new(RouterFpm::new())).expect("register");
    r
}

/// LinuxFP's router deployed in the testbed's router namespace.
struct Fast {
    worker: DeployWorker,
    netns: NetnsRef,
    policy: Policy,
}

impl Fast {
    fn deploy(tb: &VirtualRouter, hook: HookPolicy) -> Fast {
        let netns = NetnsRef::Named(tb.rtr.name().to_string());
        let policy = Policy {
            hook,
            ..Default::default()
        };
        let worker = DeployWorker::spawn(netns.clone(), registry()).expect("worker");
        let fast = Fast {
            worker,
            netns,
            policy,
        };
        fast.replan();
        fast
    }

    /// Re-reads the kernel's state and applies the new plan (what the
    /// controller does on every change).
    fn replan(&self) {
        let snap =
            plan_once(&self.netns, &registry(), &self.policy, &KernelCaps::probe()).expect("plan");
        let report = futures::executor::block_on(self.worker.apply(snap.plan)).expect("apply");
        assert!(report.failed.is_empty(), "{:?}", report.failed);
    }

    fn stats(&self) -> Stats {
        futures::executor::block_on(self.worker.stats()).expect("stats")
    }
}

fn total(s: &Stats, counter: &str) -> u64 {
    s.total("router", counter)
}

fn ping(tb: &VirtualRouter, v6: bool, count: u32, extra: &[&str]) -> Result<String, String> {
    let dst = tb.dst_if.ip(v6).to_string();
    let c = count.to_string();
    let mut argv = vec!["ping", "-c", &c, "-i", "0.005", "-W", "1", "-q"];
    argv.extend_from_slice(extra);
    argv.push(&dst);
    tb.src.exec(&argv).map_err(|e| e.to_string())
}

fn steady_state(hook: HookPolicy, v6: bool, tag: &str) {
    let tb = VirtualRouter::new(tag).expect("testbed");
    if hook == HookPolicy::Xdp {
        tb.gro_on_hosts().expect("gro");
    }
    // Linux alone first: the same traffic must work.
    ping(&tb, v6, 5, &[]).expect("ping with Linux alone");
    let fast = Fast::deploy(&tb, hook);
    // Warm-up resolves neighbours (the kernel does it; later packets go fast).
    ping(&tb, v6, 5, &[]).expect("warm-up ping with LinuxFP");
    let before = fast.stats();
    let n = 500;
    ping(&tb, v6, n, &[]).expect("ping with LinuxFP");
    let after = fast.stats();
    let fast_pkts = total(&after, "fast") - total(&before, "fast");
    // Requests (on r0) and replies (on r1) are both forwarded.
    assert!(
        fast_pkts * 100 >= 2 * n as u64 * 99,
        "fast path forwarded {fast_pkts} of {}: {:?}",
        2 * n,
        after.totals("router")
    );
    if hook != HookPolicy::Xdp {
        // TCP and UDP with default offloads, socket to socket.
        let tcp = tb
            .iperf3(v6, &Iperf3::default())
            .expect("iperf3 tcp through LinuxFP");
        assert!(tcp.bytes > 0, "TCP moved no data");
        let udp = tb
            .iperf3(
                v6,
                &Iperf3 {
                    udp_bitrate: Some(50_000_000),
                    seconds: 2,
                    ..Iperf3::default()
                },
            )
            .expect("iperf3 udp through LinuxFP");
        assert!(udp.lost_percent.unwrap_or(100.0) < 5.0, "{udp:?}");
        let end = fast.stats();
        // GSO super-packets are longer than the linear part TC can read:
        // none of them may be mistaken for malformed (regression).
        assert_eq!(
            total(&end, "malformed"),
            total(&after, "malformed"),
            "{:?}",
            end.totals("router")
        );
        assert!(
            total(&end, "fast") > total(&after, "fast") + 1000,
            "TCP/UDP took the fast path: {:?}",
            end.totals("router")
        );
    }
}

#[test]
fn tc_router_ipv4_steady_state_is_fast() {
    if require_root("tc_router_ipv4_steady_state_is_fast") {
        steady_state(HookPolicy::Auto, false, "ft4");
    }
}

#[test]
fn tc_router_ipv6_steady_state_is_fast() {
    if require_root("tc_router_ipv6_steady_state_is_fast") {
        steady_state(HookPolicy::Auto, true, "ft6");
    }
}

#[test]
fn xdp_router_ipv4_steady_state_is_fast() {
    if require_root("xdp_router_ipv4_steady_state_is_fast") {
        steady_state(HookPolicy::Xdp, false, "fx4");
    }
}

#[test]
fn xdp_router_ipv6_steady_state_is_fast() {
    if require_root("xdp_router_ipv6_steady_state_is_fast") {
        steady_state(HookPolicy::Xdp, true, "fx6");
    }
}

#[test]
fn ttl_expiry_still_yields_time_exceeded() {
    if !require_root("ttl_expiry_still_yields_time_exceeded") {
        return;
    }
    for v6 in [false, true] {
        let tb = VirtualRouter::new(if v6 { "tt6" } else { "tt4" }).expect("testbed");
        let fast = Fast::deploy(&tb, HookPolicy::Auto);
        ping(&tb, v6, 2, &[]).expect("warm-up");
        let before = total(&fast.stats(), "ttl");
        // TTL 1 expires at the router, which must answer as Linux does:
        // ping counts the ICMP time-exceeded answers as errors.
        let out = ping(&tb, v6, 3, &["-t", "1"]).unwrap_or_else(|e| e);
        assert!(out.contains("+3 errors"), "no time exceeded: {out}");
        assert!(total(&fast.stats(), "ttl") >= before + 3);
    }
}

#[test]
fn an_unlocked_route_mtu_is_honoured_as_ip_forward_does() {
    if !require_root("an_unlocked_route_mtu_is_honoured_as_ip_forward_does") {
        return;
    }
    let tb = VirtualRouter::new("rm").expect("testbed");
    // Not locked: bpf_fib_lookup ignores it, ip_forward does not.
    tb.rtr
        .exec(&[
            "ip",
            "route",
            "replace",
            "10.2.0.0/24",
            "dev",
            "r1",
            "mtu",
            "1000",
        ])
        .expect("route mtu");
    // 1100-byte packets with DF: Linux answers frag-needed (ping reports
    // an error per packet, or "message too long" once the source caches
    // the path MTU) and forwards none.
    let big = ["-M", "do", "-s", "1072"];
    let linux = ping(&tb, false, 3, &big).unwrap_or_else(|e| e);
    assert!(!linux.contains(" 3 received"), "Linux forwarded: {linux}");
    tb.src
        .exec(&["ip", "route", "flush", "cache"])
        .expect("flush the learnt path MTU");
    let fast = Fast::deploy(&tb, HookPolicy::Auto);
    ping(&tb, false, 3, &[]).expect("small packets are forwarded");
    let before = total(&fast.stats(), "route_mtu");
    let out = ping(&tb, false, 3, &big).unwrap_or_else(|e| e);
    assert!(!out.contains(" 3 received"), "LinuxFP forwarded: {out}");
    assert!(
        total(&fast.stats(), "route_mtu") > before,
        "punted to the kernel under route_mtu"
    );
    // Small packets still take the fast path.
    let fast_before = total(&fast.stats(), "fast");
    ping(&tb, false, 10, &[]).expect("small packets");
    assert!(total(&fast.stats(), "fast") >= fast_before + 20);
}

#[test]
fn route_changes_take_effect_on_the_next_packet() {
    if !require_root("route_changes_take_effect_on_the_next_packet") {
        return;
    }
    let tb = VirtualRouter::new("rt").expect("testbed");
    let fast = Fast::deploy(&tb, HookPolicy::Auto);
    ping(&tb, false, 3, &[]).expect("baseline");
    // A blackhole for the destination: Linux drops, and so must we (punt).
    tb.rtr
        .exec(&["ip", "route", "replace", "blackhole", "10.2.0.2/32"])
        .expect("blackhole");
    let before = total(&fast.stats(), "route_reject");
    assert!(
        ping(&tb, false, 3, &[]).is_err(),
        "blackholed traffic got through"
    );
    assert!(total(&fast.stats(), "route_reject") >= before + 3);
    tb.rtr
        .exec(&["ip", "route", "del", "blackhole", "10.2.0.2/32"])
        .expect("remove blackhole");
    ping(&tb, false, 3, &[]).expect("reachable again on the next packet");
    // The destination becomes one of the router's own addresses: the next
    // request is delivered to the router (punted as local), which answers.
    tb.rtr
        .exec(&["ip", "addr", "add", "10.2.0.2/32", "dev", "lo"])
        .expect("local address");
    let before = total(&fast.stats(), "local");
    ping(&tb, false, 3, &[]).expect("the router answers");
    assert!(
        total(&fast.stats(), "local") >= before + 3,
        "{:?}",
        fast.stats().totals("router")
    );
}

/// Replaces the router's neighbour entry for the destination host with a
/// MAC nobody has, pings once, puts the right MAC back and pings once
/// more: whether each of the two pings came back.
fn pings_around_a_neighbour_change(tb: &VirtualRouter, v6: bool) -> (bool, bool) {
    let next_hop = tb.dst_if.ip(v6).to_string();
    let set = |mac: [u8; 6]| {
        linuxfp_testkit::neighbour(&tb.rtr, tb.rtr_dst_if.name, &next_hop, mac)
            .expect("ip neigh replace")
    };
    set([0x02, 0, 0, 0, 0x0d, 0x77]);
    let wrong = ping(tb, v6, 1, &[]).is_ok();
    set(tb.dst_if.mac);
    let right = ping(tb, v6, 1, &[]).is_ok();
    (wrong, right)
}

/// A neighbour entry changed on the router (`ip neigh replace`) is used by
/// the very next packet, on both hooks and for both families, as with
/// Linux: with the next hop's MAC replaced by one nobody has, the next
/// ping is lost (the fast path sent it, to that MAC); with the right one
/// back, the next ping gets through. (The fast path keeps no copy of the
/// neighbour table; this guards that.)
#[test]
fn a_neighbour_change_takes_effect_on_the_next_packet() {
    if !require_root("a_neighbour_change_takes_effect_on_the_next_packet") {
        return;
    }
    for (hook, v6, tag) in [
        (HookPolicy::Tc, false, "nc4t"),
        (HookPolicy::Xdp, false, "nc4x"),
        (HookPolicy::Tc, true, "nc6t"),
        (HookPolicy::Xdp, true, "nc6x"),
    ] {
        let tb = VirtualRouter::new(tag).expect("testbed");
        tb.gro_on_hosts().expect("gro");
        ping(&tb, v6, 5, &[]).expect("Linux alone");
        let linux = pings_around_a_neighbour_change(&tb, v6);
        assert_eq!(linux, (false, true), "{tag}: Linux alone");
        let fast = Fast::deploy(&tb, hook);
        ping(&tb, v6, 10, &[]).expect("warm-up");
        let before = fast.stats();
        let with_linuxfp = pings_around_a_neighbour_change(&tb, v6);
        assert_eq!(with_linuxfp, linux, "{tag}: LinuxFP");
        // Both requests, and the second reply, went through the fast path.
        assert!(
            total(&fast.stats(), "fast") >= total(&before, "fast") + 3,
            "{tag}: {:?}",
            fast.stats().totals("router")
        );
    }
}

#[test]
fn unresolved_neighbour_resolves_then_goes_fast() {
    if !require_root("unresolved_neighbour_resolves_then_goes_fast") {
        return;
    }
    for v6 in [false, true] {
        let tb = VirtualRouter::new(if v6 { "nb6" } else { "nb4" }).expect("testbed");
        tb.gro_on_hosts().expect("gro");
        // XDP cannot resolve neighbours: the first packet must go to the
        // kernel, which resolves it; the rest then go fast.
        let fast = Fast::deploy(&tb, HookPolicy::Xdp);
        tb.rtr
            .exec(&["ip", "neigh", "flush", "all"])
            .expect("flush");
        let before = fast.stats();
        ping(&tb, v6, 20, &[]).expect("ping resolves the neighbour");
        let after = fast.stats();
        assert!(
            total(&after, "no_neigh") > total(&before, "no_neigh"),
            "{:?}",
            after.totals("router")
        );
        assert!(
            total(&after, "fast") >= total(&before, "fast") + 30,
            "{:?}",
            after.totals("router")
        );
    }
}

/// Makes `tb`'s router notice an unanswering next hop within seconds:
/// short reachable and first-probe times on `r1`, quick retransmits. `d0`
/// gets a permanent entry for the router, so it never sends an ARP the
/// router could learn its new MAC from: only the router's own probing can.
fn quick_neighbour_timers(tb: &VirtualRouter) {
    linuxfp_testkit::neighbour(
        &tb.dst,
        "d0",
        &tb.rtr_dst_if.ip(false).to_string(),
        tb.rtr_dst_if.mac,
    )
    .expect("permanent neighbour on d0");
    for (key, value) in [
        ("base_reachable_time_ms", "500"),
        ("delay_first_probe_time", "1"),
        ("retrans_time_ms", "100"),
    ] {
        linuxfp_testkit::sysctl(&tb.rtr, &format!("net.ipv4.neigh.r1.{key}"), value)
            .expect("neighbour timer");
    }
}

/// Pings through the router while `d0` changes its MAC without telling
/// anyone (no gratuitous ARP), for long enough that Linux finds it again
/// (STALE → DELAY → PROBE unanswered → FAILED → a fresh broadcast
/// resolution); then whether 50 more pings all came back. Before the
/// change, 2 s of steady traffic (the timers are short: see
/// [`quick_neighbour_timers`]).
fn pings_after_a_silent_mac_change(tb: &VirtualRouter) -> bool {
    ping(tb, false, 5, &[]).expect("resolve");
    ping(tb, false, 400, &[]).expect("steady traffic");
    tb.dst
        .exec(&["ip", "link", "set", "d0", "address", "02:00:00:00:0d:99"])
        .expect("new MAC");
    // Lost at first; about 6 s.
    let _ = ping(tb, false, 1200, &[]);
    ping(tb, false, 50, &[]).is_ok()
}

/// The fast path takes next hops from the kernel's neighbour table on
/// every packet (`bpf_fib_lookup`) and keeps no copy, so when the kernel
/// finds a next hop again after it silently changed its MAC (its probes
/// go unanswered, the entry fails, a broadcast resolution finds the new
/// MAC), the fast path follows at once, as Linux does. (Observed here,
/// also with XDP: the entry of a next hop the fast path sends to keeps
/// cycling through DELAY and PROBE as without LinuxFP, so nothing needs to
/// report its use to the kernel.)
#[test]
fn a_next_hop_that_silently_changes_its_mac_is_found_again_as_with_linux() {
    if !require_root("a_next_hop_that_silently_changes_its_mac_is_found_again_as_with_linux") {
        return;
    }
    let linux = VirtualRouter::new("nbmacl").expect("testbed");
    quick_neighbour_timers(&linux);
    assert!(
        pings_after_a_silent_mac_change(&linux),
        "Linux alone finds the next hop again"
    );

    let tb = VirtualRouter::new("nbmacf").expect("testbed");
    quick_neighbour_timers(&tb);
    let fast = Fast::deploy(&tb, HookPolicy::Auto);
    let before = fast.stats();
    assert!(
        pings_after_a_silent_mac_change(&tb),
        "LinuxFP finds the next hop again: {:?}",
        fast.stats().totals("router")
    );
    let after = fast.stats();
    // The fast path carried the traffic before and after the change (on
    // TC, packets for an unresolved next hop go through
    // `bpf_redirect_neigh`, which resolves it as the kernel does).
    assert!(
        total(&after, "fast") >= total(&before, "fast") + 100,
        "{:?}",
        after.totals("router")
    );
    let neigh = tb
        .rtr
        .exec(&["ip", "neigh", "show", "10.2.0.2", "dev", "r1"])
        .expect("neigh");
    assert!(neigh.contains("02:00:00:00:0d:99"), "{neigh}");
}

#[test]
fn forwarding_off_is_honoured() {
    if !require_root("forwarding_off_is_honoured") {
        return;
    }
    let tb = VirtualRouter::new("fo").expect("testbed");
    let fast = Fast::deploy(&tb, HookPolicy::Auto);
    ping(&tb, false, 3, &[]).expect("baseline");
    tb.rtr
        .exec(&["sysctl", "-qw", "net.ipv4.conf.r0.forwarding=0"])
        .expect("sysctl");
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        ping(&tb, false, 3, &[]).is_err(),
        "forwarded with forwarding off"
    );
    fast.replan();
    assert!(
        ping(&tb, false, 2, &[]).is_err(),
        "forwarded with forwarding off after replan"
    );
}

#[test]
fn hook_choice_is_tc_on_veth_by_default() {
    if !require_root("hook_choice_is_tc_on_veth_by_default") {
        return;
    }
    let tb = VirtualRouter::new("hk").expect("testbed");
    let netns = NetnsRef::Named(tb.rtr.name().to_string());
    let snap = plan_once(
        &netns,
        &registry(),
        &Policy::default(),
        &KernelCaps::probe(),
    )
    .expect("plan");
    assert_eq!(snap.plan.interfaces.len(), 2, "{snap:?}");
    for p in snap.plan.interfaces.values() {
        assert_eq!(p.hook, Hook::Tc);
        assert!(p.reasons.iter().any(|r| r.contains("virtual device")));
    }
}

#[test]
fn redeploy_under_traffic_loses_no_packet() {
    if !require_root("redeploy_under_traffic_loses_no_packet") {
        return;
    }
    let tb = VirtualRouter::new("rd").expect("testbed");
    let fast = Fast::deploy(&tb, HookPolicy::Auto);
    ping(&tb, false, 3, &[]).expect("warm-up");
    // 1500 IPv4 echo requests over ~3 s while the router's programs are
    // reloaded and swapped: IPv6 forwarding toggles change the programs'
    // globals, so each replan loads new programs and swaps the links.
    let flood = tb
        .src
        .spawn(&[
            "ping", "-c", "1500", "-i", "0.002", "-W", "2", "-q", "10.2.0.2",
        ])
        .expect("ping");
    let mut swaps = 0;
    for on in ["0", "1", "0", "1"] {
        std::thread::sleep(Duration::from_millis(400));
        tb.rtr
            .exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.all.forwarding={on}"),
            ])
            .expect("sysctl");
        let snap =
            plan_once(&fast.netns, &registry(), &fast.policy, &KernelCaps::probe()).expect("plan");
        let report = futures::executor::block_on(fast.worker.apply(snap.plan)).expect("apply");
        swaps += report.swapped.len();
    }
    let out = flood
        .wait_output(Duration::from_secs(15))
        .expect("ping ends");
    assert!(
        swaps >= 8,
        "programs were swapped on both interfaces 4 times: {swaps}"
    );
    assert!(
        out.stdout
            .contains("1500 packets transmitted, 1500 received"),
        "packets lost during the swaps: {}",
        out.stdout
    );
}
