// SPDX-License-Identifier: MIT OR Apache-2.0
//! What linuxfpd prints: JSON for programs, short tables for people.

use linuxfp::{
    controller::{ControllerEvent, ControllerHandle, Snapshot},
    deploy::{Stats, StatusFile},
    topology::Topology,
};

fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("linuxfpd: cannot serialise: {e}"),
    }
}

fn name(topology: &Topology, ifindex: u32) -> String {
    topology
        .interfaces
        .get(&ifindex)
        .map_or_else(|| format!("#{ifindex}"), |i| i.name.clone())
}

/// Prints a topology.
pub fn topology(t: &Topology, as_json: bool) {
    if as_json {
        return json(t);
    }
    match &t.router {
        Some(r) => println!(
            "router: ipv4={} ipv6={} interfaces: {}",
            r.ipv4,
            r.ipv6,
            r.interfaces
                .keys()
                .map(|i| name(t, *i))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => println!("router: none (forwarding off)"),
    }
    for b in t.bridges.values() {
        println!(
            "bridge {}: vlan_filtering={} stp={} routed={} ports: {}",
            b.name,
            b.vlan_filtering,
            b.stp,
            b.routed,
            b.ports
                .keys()
                .map(|i| name(t, *i))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !t.filter.base_chains.is_empty() {
        println!("filter: {} base chains", t.filter.base_chains.len());
    }
    for (ifindex, chain) in &t.chains {
        let fns: Vec<String> = chain.iter().map(|f| f.function().to_string()).collect();
        println!("  {:<12} {}", name(t, *ifindex), fns.join(" -> "));
    }
    for l in &t.limitations {
        println!("  limitation ({}): {}", l.function, l.reason);
    }
}

/// Prints a plan with its reasons.
pub fn plan(s: &Snapshot, as_json: bool) {
    if as_json {
        return json(&serde_json::json!({
            "topology": s.topology,
            "decisions": s.decisions,
            "plan": s.plan,
        }));
    }
    for (ifindex, p) in &s.plan.interfaces {
        println!(
            "{:<12} {:<4} {}  ({})",
            name(&s.topology, *ifindex),
            p.hook.to_string(),
            p.stages.join(" -> "),
            p.reasons.join("; ")
        );
    }
    for (ifindex, p) in &s.plan.slow_path {
        println!(
            "{:<12} slow path: {}",
            name(&s.topology, *ifindex),
            p.reasons.join("; ")
        );
    }
    if s.plan.interfaces.is_empty() && s.plan.slow_path.is_empty() {
        println!("nothing to accelerate");
    }
}

/// Prints counters.
pub fn stats(status: &StatusFile, stats: &Stats, as_json: bool) {
    if as_json {
        return json(stats);
    }
    println!("instance pid {}", status.pid);
    for (fpm, per_if) in &stats.fpms {
        for (ifindex, counters) in per_if {
            let name = status
                .plan
                .interfaces
                .get(ifindex)
                .map_or_else(|| format!("#{ifindex}"), |p| p.name.clone());
            let list: Vec<String> = counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("{fpm:<10} {name:<12} {}", list.join(" "));
        }
    }
}

/// Prints one controller event.
pub fn event(ev: &ControllerEvent, handle: &ControllerHandle, as_json: bool) {
    if as_json {
        match serde_json::to_string(ev) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("linuxfpd: cannot serialise event: {e}"),
        }
        return;
    }
    match ev {
        ControllerEvent::TopologyChanged { .. } => {}
        ControllerEvent::Deployed {
            attached,
            swapped,
            detached,
            failed,
            latency_ms,
            ..
        } => {
            let plan = handle.plan();
            let topo = handle.topology();
            println!(
                "deployed in {latency_ms:.1} ms: {} attached, {} swapped, {} detached, {} failed",
                attached.len(),
                swapped.len(),
                detached.len(),
                failed.len()
            );
            for (ifindex, p) in &plan.interfaces {
                println!(
                    "  {:<12} {:<4} {}",
                    name(&topo, *ifindex),
                    p.hook.to_string(),
                    p.stages.join(" -> ")
                );
            }
            for (ifindex, msg) in failed {
                println!("  {:<12} FAILED: {msg}", name(&topo, *ifindex));
            }
        }
        ControllerEvent::Error { message } => println!("error: {message}"),
    }
}
