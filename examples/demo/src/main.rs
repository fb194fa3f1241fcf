//! `cargo xtask demo` (this binary, run as root after the set-up): the seed
//! paper's virtual router, built in network namespaces, with real traffic
//! across it — first Linux alone, then LinuxFP through its public API.
//!
//! Steps: (1) build the testbed, (2) ping through it over IPv4 and IPv6,
//! (3) measure TCP throughput with iperf3, (4) report, (5) clean up. Ctrl-C
//! at any point stops after the running step and still removes everything
//! (the testbed's guards drop on every exit path).

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use linuxfp_testkit::{Endpoint, Iperf3, Throughput, VirtualRouter, format_mac};

mod story;

/// Seconds of iperf3 per measurement.
const IPERF_SECONDS: u32 = 3;
/// Echo requests per ping check.
const PINGS: u32 = 5;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    if !linuxfp_testkit::is_root() {
        bail!("the demo creates network namespaces: run it as root");
    }
    interrupt::install()?;

    println!("\n[1/5] building the virtual router: src ── rtr ── dst (three network namespaces)");
    let vr = step(VirtualRouter::new("demo"), "building the testbed")?;
    show_topology(&vr);

    println!("\n[2/5] ping src → dst through rtr ({PINGS} echo requests each)");
    for v6 in [false, true] {
        let stats = step(vr.ping_stats(v6, PINGS), "ping")?;
        println!(
            "  {:<5} {:>15}: {}/{} answered {}",
            family(v6),
            vr.dst_if.ip(v6).to_string(),
            stats.received,
            stats.transmitted,
            if stats.all_answered() { "✔" } else { "✘" }
        );
    }

    println!("\n[3/5] iperf3: TCP from src to dst for {IPERF_SECONDS} s per address family");
    let run = Iperf3 {
        seconds: IPERF_SECONDS,
        ..Iperf3::default()
    };
    let mut results = Vec::new();
    for v6 in [false, true] {
        let t = step(vr.iperf3(v6, &run), "iperf3")?;
        println!("  {:<5} {}", family(v6), describe(&t));
        results.push((v6, t));
    }

    story::run(&vr)?;
    interrupt::check()?;

    println!("\n[4/5] results");
    println!(
        "  {:<22} {:>12} {:>12}",
        "path", "throughput", "retransmits"
    );
    for (v6, t) in &results {
        println!(
            "  {:<22} {:>7.2} Gb/s {:>12}",
            format!("Linux forwarding {}", family(*v6)),
            t.gbps(),
            t.retransmits.map_or("-".to_string(), |r| r.to_string())
        );
    }

    println!("\n[5/5] removing the namespaces");
    let names = [&vr.src, &vr.rtr, &vr.dst].map(|ns| ns.name().to_string());
    drop(vr);
    let left: Vec<_> = linuxfp_testkit::list_namespaces()?
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    if !left.is_empty() {
        bail!("namespaces left behind: {}", left.join(", "));
    }
    println!("  removed {}", names.join(", "));
    Ok(())
}

/// The outcome of one demo step; after Ctrl-C whatever the step returned
/// (the terminal's SIGINT also hit its commands) becomes "interrupted".
fn step<T>(outcome: linuxfp_testkit::Result<T>, what: &str) -> Result<T> {
    interrupt::check()?;
    outcome.with_context(|| format!("{what} failed"))
}

fn show_topology(vr: &VirtualRouter) {
    let row = |ns: &str, e: &Endpoint| {
        println!(
            "  {:<20} {:<3} ifindex {:<3} {}  {}/24  {}/64",
            ns,
            e.name,
            e.ifindex,
            format_mac(e.mac),
            e.ipv4,
            e.ipv6
        );
    };
    row(vr.src.name(), &vr.src_if);
    row(vr.rtr.name(), &vr.rtr_src_if);
    row(vr.rtr.name(), &vr.rtr_dst_if);
    row(vr.dst.name(), &vr.dst_if);
    println!(
        "  rtr forwards IPv4 and IPv6 (net.ipv4.ip_forward=1, net.ipv6.conf.all.forwarding=1)"
    );
}

/// An error if Ctrl-C was pressed (for the LinuxFP steps).
pub fn interrupted() -> Result<()> {
    interrupt::check()
}

fn family(v6: bool) -> &'static str {
    if v6 { "IPv6" } else { "IPv4" }
}

fn describe(t: &Throughput) -> String {
    let mut s = format!(
        "{:.2} Gb/s ({:.1} MB in {:.1} s",
        t.gbps(),
        t.bytes as f64 / 1e6,
        t.seconds
    );
    if let Some(r) = t.retransmits {
        s.push_str(&format!(", {r} retransmits"));
    }
    s.push(')');
    s
}

/// Ctrl-C (SIGINT) and SIGTERM set a flag instead of killing the process,
/// so the demo returns through its guards and removes its namespaces. The
/// commands running at that moment get the signal from the terminal too
/// and end early; the step then fails or finishes, and `check` stops the
/// demo.
mod interrupt {
    use super::*;

    static INTERRUPTED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_signal(_signal: libc::c_int) {
        // Only an atomic store: async-signal-safe.
        INTERRUPTED.store(true, Ordering::SeqCst);
    }

    pub fn install() -> Result<()> {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
            // value; we then set the handler to a function that only does
            // an atomic store, which is async-signal-safe.
            let rc = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut())
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("installing the Ctrl-C handler");
            }
        }
        Ok(())
    }

    /// An error once Ctrl-C was pressed, so `?` returns through the
    /// guards, which remove the namespaces.
    pub fn check() -> Result<()> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted: the namespaces are being removed");
        }
        Ok(())
    }
}
