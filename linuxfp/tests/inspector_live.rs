// SPDX-License-Identifier: MIT OR Apache-2.0
//! The inspector against the kernel, in namespaces the tests create (root).
//! Each configuration command must show in the watched state (and the
//! derived topology) within 1 s; the measured latency is printed.

mod inspector_scenarios;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use linuxfp::{
    inspector::{Inspector, InspectorEvent, InspectorStream},
    netns::NetnsRef,
    state::KernelState,
    topology::{self, FunctionRef},
};
use linuxfp_testkit::{Netns, require_root};

/// The watched stream and the latest state it delivered.
struct Watch {
    stream: InspectorStream,
    latest: Arc<KernelState>,
    resynced: usize,
}

impl Watch {
    async fn start(inspector: linuxfp::inspector::InspectorBuilder) -> Watch {
        let mut stream = inspector.watch().expect("watch");
        let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("initial snapshot in time")
            .expect("stream open");
        assert!(matches!(first, InspectorEvent::Snapshot(_)));
        Watch {
            latest: first.state().clone(),
            stream,
            resynced: 0,
        }
    }

    /// Waits until `pred` holds on the latest state; returns how long it
    /// took, or `None` after `limit`.
    async fn until(
        &mut self,
        limit: Duration,
        pred: impl Fn(&KernelState) -> bool,
    ) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if pred(&self.latest) {
                return Some(start.elapsed());
            }
            let left = limit.checked_sub(start.elapsed())?;
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(ev)) => {
                    if matches!(ev, InspectorEvent::Resynced(_)) {
                        self.resynced += 1;
                    }
                    self.latest = ev.state().clone();
                }
                Ok(None) => panic!("inspector stream ended"),
                Err(_) => return None,
            }
        }
    }

    /// Runs `cmd` in `ns` and waits (1 s at most) for `pred`.
    async fn step(&mut self, ns: &Netns, cmd: &str, pred: impl Fn(&KernelState) -> bool) {
        ns.sh(cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        match self.until(Duration::from_secs(1), pred).await {
            Some(d) => eprintln!("{:>8.1} ms  {cmd}", d.as_secs_f64() * 1e3),
            None => panic!(
                "not reflected within 1 s: {cmd}\nstate: {}",
                serde_json::to_string(&*self.latest).unwrap_or_default()
            ),
        }
    }
}

fn ifx(s: &KernelState, name: &str) -> Option<u32> {
    s.link_by_name(name).map(|l| l.ifindex)
}

fn chain_of(s: &KernelState, name: &str) -> Vec<FunctionRef> {
    let t = topology::derive(s);
    ifx(s, name)
        .and_then(|i| t.chains.get(&i).cloned())
        .unwrap_or_default()
}

#[test]
fn dump_reads_the_virtual_router() {
    if !require_root("dump_reads_the_virtual_router") {
        return;
    }
    let vr = inspector_scenarios::router("insdump").expect("testbed");
    let s = Inspector::new(NetnsRef::Named(vr.rtr.name().into()))
        .dump()
        .expect("dump");
    let r0 = ifx(&s, "r0").expect("r0");
    assert_eq!(r0, vr.rtr_src_if.ifindex);
    assert_eq!(s.links[&r0].mac, Some(vr.rtr_src_if.mac));
    assert!(s.ipv4_forwarding(r0) && s.ipv6_forwarding_all());
    assert_eq!(s.ipv4_conf(r0, "forwarding"), Some(1));
    assert!(s.sysctls.ipv4("all", "rp_filter").is_some());
    assert!(s.legacy_tables.is_empty(), "{:?}", s.legacy_tables);
    let t = topology::derive(&s);
    assert_eq!(t.chains[&r0], vec![FunctionRef::Router]);
    assert_eq!(t.router.expect("router").interfaces.len(), 2);
    // The one-shot dump and the recording agree.
    let bytes = Inspector::new(NetnsRef::Named(vr.rtr.name().into()))
        .record()
        .expect("record");
    let mut replay = KernelState::default();
    for e in linuxfp::inspector::parse_messages(&bytes) {
        replay.apply(e);
    }
    assert_eq!(replay.links, s.links);
    assert_eq!(replay.routes, s.routes);
}

#[tokio::test]
async fn watch_reflects_each_command() {
    if !require_root("watch_reflects_each_command") {
        return;
    }
    let ns = Netns::new("inswatch").expect("netns");
    let peer = Netns::new("inswpeer").expect("netns");
    let p = peer.name().to_string();
    let mut w = Watch::start(
        Inspector::new(NetnsRef::Named(ns.name().into())).sysctl_poll(Duration::from_millis(100)),
    )
    .await;

    w.step(
        &ns,
        &format!("ip link add v0 type veth peer name w0 netns {p}; ip link set v0 up"),
        |s| s.link_by_name("v0").is_some_and(|l| l.admin_up),
    )
    .await;
    peer.sh("ip link set w0 up").expect("peer up");
    w.until(Duration::from_secs(2), |s| {
        s.link_by_name("v0").is_some_and(|l| l.running)
    })
    .await
    .expect("carrier");
    w.step(&ns, "ip addr add 10.20.0.1/24 dev v0", |s| {
        ifx(s, "v0").is_some_and(|i| s.addresses_of(i).iter().any(|a| a.cidr() == "10.20.0.1/24"))
    })
    .await;
    w.step(&ns, "sysctl -qw net.ipv4.ip_forward=1", |s| {
        chain_of(s, "v0") == vec![FunctionRef::Router]
    })
    .await;
    w.step(&ns, "ip route add 10.30.0.0/16 via 10.20.0.2", |s| {
        s.table(254)
            .any(|r| r.dst.to_string() == "10.30.0.0" && r.gateway.is_some())
    })
    .await;
    w.step(
        &ns,
        "ip rule add from 10.40.0.0/16 table 100 pref 1000",
        |s| s.rules.iter().any(|r| r.priority == 1000 && r.table == 100),
    )
    .await;
    w.step(
        &ns,
        "ip neigh add 10.20.0.2 lladdr 02:00:00:00:00:02 dev v0 nud permanent",
        |s| {
            s.neighbours
                .values()
                .any(|n| n.address.to_string() == "10.20.0.2" && n.state == 0x80)
        },
    )
    .await;
    w.step(
        &ns,
        &format!(
            "ip link add br0 type bridge; ip link set br0 up; \
             ip link add v1 type veth peer name w1 netns {p}; \
             ip link set v1 master br0; ip link set v1 up"
        ),
        |s| {
            let (Some(br), Some(v1)) = (ifx(s, "br0"), ifx(s, "v1")) else {
                return false;
            };
            topology::derive(s)
                .bridges
                .get(&br)
                .is_some_and(|b| b.ports.contains_key(&v1))
        },
    )
    .await;
    w.step(&ns, "bridge link set dev v1 learning off hairpin on", |s| {
        s.link_by_name("v1")
            .and_then(|l| l.bridge_port.clone())
            .is_some_and(|p| !p.learning && p.hairpin)
    })
    .await;
    w.step(&ns, "ip link set br0 type bridge stp_state 1", |s| {
        ifx(s, "br0")
            .and_then(|b| topology::derive(s).bridges.get(&b).map(|b| b.stp))
            .unwrap_or(false)
    })
    .await;
    w.step(&ns, "ip link set br0 type bridge nf_call_iptables 1", |s| {
        s.link_by_name("br0")
            .and_then(|l| l.bridge.clone())
            .is_some_and(|b| b.nf_call_iptables && !b.nf_call_ip6tables)
    })
    .await;
    w.step(&ns, "ip addr add 10.50.0.1/24 dev br0", |s| {
        ifx(s, "br0")
            .and_then(|b| topology::derive(s).bridges.get(&b).map(|b| b.routed))
            .unwrap_or(false)
    })
    .await;
    w.step(&ns, "sysctl -qw net.ipv6.conf.all.forwarding=1", |s| {
        topology::derive(s).router.is_some_and(|r| r.ipv6)
    })
    .await;
    w.step(
        &ns,
        "bridge fdb add 02:00:00:00:00:bb dev v1 master static",
        |s| s.fdb.values().any(|f| f.mac == [2, 0, 0, 0, 0, 0xbb]),
    )
    .await;
    w.step(&ns, "sysctl -qw net.ipv4.conf.v0.rp_filter=1", |s| {
        topology::derive(s)
            .limitations
            .iter()
            .any(|l| l.reason.starts_with("rp_filter=1 on v0"))
    })
    .await;
    // No netlink event for this one: the periodic re-read catches it.
    w.step(&ns, "sysctl -qw net.ipv4.conf.v0.accept_local=1", |s| {
        topology::derive(s)
            .limitations
            .iter()
            .any(|l| l.reason.starts_with("accept_local=1 on v0"))
    })
    .await;
    w.step(
        &ns,
        "nft add table ip lfpt; \
         nft add chain ip lfpt lfpfwd '{ type filter hook forward priority 0; policy drop; }'",
        |s| chain_of(s, "v0") == vec![FunctionRef::Filter, FunctionRef::Router],
    )
    .await;
    w.step(&ns, "nft delete table ip lfpt", |s| {
        chain_of(s, "v0") == vec![FunctionRef::Router]
    })
    .await;
    // IPv4 flushes routes through a device that goes down without telling.
    w.step(&ns, "ip link set v0 down", |s| {
        !s.table(254).any(|r| r.dst.to_string() == "10.30.0.0") && chain_of(s, "v0").is_empty()
    })
    .await;
    w.step(&ns, "ip link del v1", |s| {
        ifx(s, "v1").is_none() && !s.fdb.values().any(|f| f.mac == [2, 0, 0, 0, 0, 0xbb])
    })
    .await;
    w.step(
        &ns,
        "sysctl -qw net.ipv4.ip_forward=0; sysctl -qw net.ipv6.conf.all.forwarding=0",
        |s| topology::derive(s).router.is_none(),
    )
    .await;

    // After all that, the folded state is exactly a fresh dump (once the
    // kernel's delayed work, carrier and DAD, has settled: dump again until
    // both agree).
    let inspector = Inspector::new(NetnsRef::Named(ns.name().into()));
    let mut fresh = inspector.dump().expect("dump");
    let mut same = false;
    for _ in 0..20 {
        if w.until(Duration::from_millis(200), |s| *s == fresh)
            .await
            .is_some()
        {
            same = true;
            break;
        }
        fresh = inspector.dump().expect("dump");
    }
    assert!(
        same,
        "watched state drifted from the kernel's:\nwatched: {}\nfresh:   {}",
        serde_json::to_string(&*w.latest).unwrap_or_default(),
        serde_json::to_string(&fresh).unwrap_or_default()
    );
    assert_eq!(w.resynced, 0, "no overrun expected with the default buffer");
}

/// Writes an `ip -batch` file of `n` blackhole routes.
fn batch(ns: &Netns, verb: &str, n: u32) -> String {
    let path = std::env::temp_dir().join(format!("{}-{verb}.batch", ns.name()));
    let text: String = (0..n)
        .map(|i| format!("route {verb} blackhole 10.{}.{}.0/24\n", i >> 8, i & 0xff))
        .collect();
    std::fs::write(&path, text).expect("batch file");
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn overrun_resyncs_to_exactly_the_kernels_state() {
    if !require_root("overrun_resyncs_to_exactly_the_kernels_state") {
        return;
    }
    let ns = Netns::new("insovr").expect("netns");
    let netns = NetnsRef::Named(ns.name().into());
    // The smallest receive buffer the kernel allows: a storm must overrun.
    let mut w = Watch::start(Inspector::new(netns.clone()).rx_buffer(1)).await;
    for (verb, expect) in [("add", 10_000usize), ("del", 0)] {
        let file = batch(&ns, verb, 10_000);
        let t0 = Instant::now();
        ns.exec_timeout(&["ip", "-batch", &file], Duration::from_secs(60))
            .expect("ip -batch");
        let _ = std::fs::remove_file(&file);
        let fresh = Inspector::new(netns.clone()).dump().expect("dump");
        let blackholes = |s: &KernelState| {
            s.all_routes()
                .filter(|r| r.kind == linuxfp::state::route_kind::BLACKHOLE)
                .count()
        };
        assert_eq!(blackholes(&fresh), expect);
        let took = w
            .until(Duration::from_secs(20), |s| s.routes == fresh.routes)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "after {verb}: {} blackhole routes watched, kernel has {expect}",
                    blackholes(&w.latest)
                )
            });
        eprintln!(
            "10k route {verb}: state exact {:.1} ms after the batch ended ({:.1} ms in all), {} resync(s) so far",
            took.as_secs_f64() * 1e3,
            t0.elapsed().as_secs_f64() * 1e3,
            w.resynced
        );
        assert_eq!(*w.latest, fresh, "the whole state, not only routes");
    }
    assert!(
        w.resynced > 0,
        "a 10k-route storm into a tiny buffer must overrun"
    );
}
