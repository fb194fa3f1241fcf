// SPDX-License-Identifier: MIT OR Apache-2.0
//! A [`Deployer`] on its own thread inside the target network namespace,
//! driven asynchronously (executor-agnostic: futures oneshot channels).

use std::{
    sync::{Mutex, mpsc},
    thread,
};

use futures::channel::oneshot;

use super::{DeployError, DeployReport, Deployer, PinLayout, Stats};
use crate::{fpm::FpmRegistry, netns::NetnsRef, synth::FastPathPlan};

enum Command {
    Apply(
        FastPathPlan,
        oneshot::Sender<Result<DeployReport, DeployError>>,
    ),
    Stats(oneshot::Sender<Stats>),
    Deployed(oneshot::Sender<FastPathPlan>),
}

/// Errors of the worker itself.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The worker thread could not enter the namespace or start.
    #[error("deploy worker for netns {netns}: {reason}")]
    Start {
        /// The namespace.
        netns: String,
        /// Why.
        reason: String,
    },
    /// The deployer failed to start (lock, bpffs).
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The worker thread is gone (it panicked or was shut down).
    #[error("deploy worker stopped")]
    Stopped,
}

/// Handle to a deployer running on a thread inside a network namespace.
/// Dropping it (or [`DeployWorker::shutdown`]) detaches everything.
#[derive(Debug)]
pub struct DeployWorker {
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl DeployWorker {
    /// Starts the worker: enters `netns`, takes the namespace's lock and
    /// prepares the pin directory.
    pub fn spawn(netns: NetnsRef, registry: FpmRegistry) -> Result<Self, WorkerError> {
        let (tx, rx) = mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), WorkerError>>();
        let label = netns.to_string();
        let thread = thread::Builder::new()
            .name("linuxfp-deploy".into())
            .spawn(move || {
                let deployer = netns
                    .enter_on_this_thread()
                    .map_err(|e| WorkerError::Start {
                        netns: netns.to_string(),
                        reason: super::error_chain(&e),
                    })
                    .and_then(|()| {
                        Deployer::new(PinLayout::new(&netns.pin_name()), registry)
                            .map_err(WorkerError::from)
                    });
                let mut deployer = match deployer {
                    Ok(d) => {
                        let _ = ready_tx.send(Ok(()));
                        d
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Between commands, FPM upkeep runs when due.
                let mut upkept = std::collections::BTreeMap::new();
                let mut wait = None;
                loop {
                    let cmd = match wait {
                        Some(w) => match rx.recv_timeout(w) {
                            Ok(cmd) => cmd,
                            Err(mpsc::RecvTimeoutError::Timeout) => {
                                wait = deployer.upkeep(&mut upkept);
                                continue;
                            }
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        },
                        None => match rx.recv() {
                            Ok(cmd) => cmd,
                            Err(_) => break,
                        },
                    };
                    match cmd {
                        Command::Apply(plan, reply) => {
                            let _ = reply.send(deployer.apply(&plan));
                            wait = deployer.upkeep(&mut upkept);
                        }
                        Command::Stats(reply) => {
                            let _ = reply.send(deployer.stats());
                        }
                        Command::Deployed(reply) => {
                            let _ = reply.send(deployer.deployed().clone());
                        }
                    }
                }
                deployer.shutdown();
            })
            .map_err(|e| WorkerError::Start {
                netns: label.clone(),
                reason: e.to_string(),
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(DeployWorker {
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(WorkerError::Start {
                    netns: label,
                    reason: "worker thread died while starting".into(),
                })
            }
        }
    }

    fn send(&self, cmd: Command) -> Result<(), WorkerError> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(WorkerError::Stopped)?;
        tx.send(cmd).map_err(|_| WorkerError::Stopped)
    }

    /// Applies `plan`.
    pub async fn apply(&self, plan: FastPathPlan) -> Result<DeployReport, WorkerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Apply(plan, tx))?;
        Ok(rx.await.map_err(|_| WorkerError::Stopped)??)
    }

    /// Reads the counters.
    pub async fn stats(&self) -> Result<Stats, WorkerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats(tx))?;
        rx.await.map_err(|_| WorkerError::Stopped)
    }

    /// The plan as deployed.
    pub async fn deployed(&self) -> Result<FastPathPlan, WorkerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Deployed(tx))?;
        rx.await.map_err(|_| WorkerError::Stopped)
    }

    /// Detaches everything, removes pins, and waits for the thread.
    /// Later calls on this worker fail with [`WorkerError::Stopped`].
    pub fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for DeployWorker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
