// SPDX-License-Identifier: MIT OR Apache-2.0
//! Command line and commands.

use std::{sync::Arc, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use linuxfp::{
    compat::{HookPolicy, KernelCaps, Policy},
    controller::{Controller, ControllerError, ControllerEvent, plan_once},
    deploy::{DeployError, PinLayout, StatusFile, read_stats, worker::WorkerError},
    fpm::{Fpm, FpmRegistry},
    netns::NetnsRef,
};

use crate::output;

/// LinuxFP daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum HookArg {
    Auto,
    Xdp,
    Tc,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// Network namespace (a name under /run/netns); default: the current one.
    #[arg(long)]
    netns: Option<String>,
}

#[derive(Debug, clap::Args)]
struct Planning {
    /// FPMs to register, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "router,bridge,filter")]
    fpm: Vec<String>,
    /// Hook preference.
    #[arg(long, value_enum, default_value = "auto")]
    hook: HookArg,
    /// Only accelerate these interfaces (comma separated).
    #[arg(long, value_delimiter = ',')]
    allow: Vec<String>,
    /// Never accelerate these interfaces (comma separated).
    #[arg(long, value_delimiter = ',')]
    deny: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Accelerate until SIGINT/SIGTERM, then detach everything.
    Run {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        planning: Planning,
        /// Print controller events as JSON lines.
        #[arg(long)]
        json_events: bool,
    },
    /// Print the topology LinuxFP derives from the kernel's state.
    Topology {
        #[command(flatten)]
        target: Target,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Plan without side effects: what would be accelerated, how, and why not.
    Plan {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        planning: Planning,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Read the fast-path counters of a running instance.
    Stats {
        #[command(flatten)]
        target: Target,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// A failure with the exit code that classifies it.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

const EXIT_OTHER: u8 = 1;
const EXIT_NOT_ROOT: u8 = 3;
const EXIT_NO_BPF: u8 = 4;
const EXIT_NO_NETNS: u8 = 5;
const EXIT_BUSY: u8 = 6;

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

fn other(e: &(dyn std::error::Error + 'static)) -> Failure {
    fail(EXIT_OTHER, linuxfp::deploy::error_chain(e))
}

/// Runs one command.
pub fn run(args: Args) -> Result<(), Failure> {
    match args.command {
        Command::Run {
            target,
            planning,
            json_events,
        } => {
            let netns = target.resolve()?;
            need_root_and_bpf()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| other(&e))?;
            runtime.block_on(run_daemon(netns, planning, json_events))
        }
        Command::Topology { target, json } => {
            let netns = target.resolve()?;
            let snap = plan_once(
                &netns,
                &FpmRegistry::new(),
                &Policy::default(),
                &KernelCaps::probe(),
            )
            .map_err(|e| other(&e))?;
            output::topology(&snap.topology, json);
            Ok(())
        }
        Command::Plan {
            target,
            planning,
            json,
        } => {
            let netns = target.resolve()?;
            let registry = planning.registry()?;
            let snap = plan_once(&netns, &registry, &planning.policy(), &KernelCaps::probe())
                .map_err(|e| other(&e))?;
            output::plan(&snap, json);
            Ok(())
        }
        Command::Stats { target, json } => {
            let netns = target.resolve()?;
            let layout = PinLayout::new(&netns.pin_name());
            let status = StatusFile::read(&layout.status).map_err(|e| {
                fail(
                    EXIT_OTHER,
                    format!(
                        "no running instance for {netns} ({}: {e})",
                        layout.status.display()
                    ),
                )
            })?;
            let stats = read_stats(&layout, &status);
            output::stats(&status, &stats, json);
            Ok(())
        }
    }
}

impl Target {
    fn resolve(&self) -> Result<NetnsRef, Failure> {
        match &self.netns {
            None => Ok(NetnsRef::Current),
            Some(name) => {
                let path = std::path::Path::new("/run/netns").join(name);
                if !path.exists() {
                    return Err(fail(
                        EXIT_NO_NETNS,
                        format!(
                            "network namespace `{name}` not found ({} missing)",
                            path.display()
                        ),
                    ));
                }
                Ok(NetnsRef::Named(name.clone()))
            }
        }
    }
}

impl Planning {
    fn registry(&self) -> Result<FpmRegistry, Failure> {
        let mut registry = FpmRegistry::new();
        for name in &self.fpm {
            let fpm: Arc<dyn Fpm> = match name.as_str() {
                "router" => Arc::new(linuxfp_fpm_router::RouterFpm::new()),
                "bridge" => Arc::new(linuxfp_fpm_bridge::BridgeFpm::new()),
                "filter" => Arc::new(linuxfp_fpm_filter::FilterFpm::new()),
                "ifcounter" => Arc::new(linuxfp_fpm_ifcounter::IfCounterFpm::new()),
                other => {
                    return Err(fail(
                        2,
                        format!(
                            "unknown FPM `{other}` (available: router, bridge, filter, ifcounter)"
                        ),
                    ));
                }
            };
            registry.register(fpm).map_err(|e| fail(2, e.to_string()))?;
        }
        Ok(registry)
    }

    fn policy(&self) -> Policy {
        Policy {
            hook: match self.hook {
                HookArg::Auto => HookPolicy::Auto,
                HookArg::Xdp => HookPolicy::Xdp,
                HookArg::Tc => HookPolicy::Tc,
            },
            allow: (!self.allow.is_empty()).then(|| self.allow.iter().cloned().collect()),
            deny: self.deny.iter().cloned().collect(),
        }
    }
}

fn need_root_and_bpf() -> Result<(), Failure> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(fail(
            EXIT_NOT_ROOT,
            "must run as root (CAP_BPF and CAP_NET_ADMIN)",
        ));
    }
    let caps = KernelCaps::probe();
    if let Some(why) = caps.missing_basics() {
        return Err(fail(EXIT_NO_BPF, why));
    }
    Ok(())
}

fn classify(e: ControllerError) -> Failure {
    match &e {
        ControllerError::Worker(WorkerError::Deploy(DeployError::Busy { .. })) => {
            fail(EXIT_BUSY, linuxfp::deploy::error_chain(&e))
        }
        ControllerError::Worker(WorkerError::Deploy(DeployError::Bpffs { .. })) => {
            fail(EXIT_NO_BPF, linuxfp::deploy::error_chain(&e))
        }
        ControllerError::Worker(WorkerError::Start { .. }) => {
            fail(EXIT_NO_NETNS, linuxfp::deploy::error_chain(&e))
        }
        _ => other(&e),
    }
}

async fn run_daemon(netns: NetnsRef, planning: Planning, json: bool) -> Result<(), Failure> {
    let registry = planning.registry()?;
    let policy = planning.policy();
    let mut builder = Controller::builder()
        .netns(netns.clone())
        .registry(registry)
        .hook_policy(policy.hook)
        .deny(policy.deny.iter().cloned());
    if let Some(allow) = policy.allow {
        builder = builder.allow(allow);
    }
    let (handle, run) = builder
        .build()
        .and_then(Controller::start)
        .map_err(classify)?;
    let mut events = handle.events();
    let task = tokio::spawn(run);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| other(&e))?;
    if !json {
        eprintln!("linuxfpd: accelerating {netns}; Ctrl-C to stop");
    }
    let mut foreign = None;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            ev = events.next() => match ev {
                Some(ev) => {
                    if let ControllerEvent::Deployed { failed, .. } = &ev
                        && let Some(msg) = failed.values().find(|m| m.contains("did not install"))
                    {
                        foreign = Some(msg.clone());
                    }
                    output::event(&ev, &handle, json);
                }
                None => break,
            },
        }
    }
    handle.shutdown();
    match tokio::time::timeout(Duration::from_secs(10), task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(classify(e)),
        Ok(Err(e)) => return Err(other(&e)),
        Err(_) => return Err(fail(EXIT_OTHER, "controller did not stop within 10 s")),
    }
    if let Some(msg) = foreign {
        return Err(fail(EXIT_BUSY, msg));
    }
    Ok(())
}
