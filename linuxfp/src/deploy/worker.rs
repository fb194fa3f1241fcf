// SPDX-License-Identifier: MIT OR Apache-2.0
//! A [`Deployer`] on its own thread inside the target network namespace,
//! driven asynchronously (executor-agnostic: futures oneshot channels).
//!
//! The thread runs FPM code (bytecode, upkeep). If that panics, the
//! deployer is dropped while unwinding, which detaches every program it
//! attached (its links are owned, never pinned), its pins and status file
//! are removed, and the death is announced ([`DeployWorker::death`]): Linux carries the
//! traffic, and the owner learns why.

use std::{
    sync::{Arc, Mutex, mpsc},
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
    Deployed(oneshot::Sender<Arc<FastPathPlan>>),
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
    /// The worker thread died: code run in it panicked. Everything it had
    /// attached is detached.
    #[error("deploy worker died ({reason}); its programs are detached, Linux carries all traffic")]
    Died {
        /// The panic message.
        reason: String,
    },
}

/// Handle to a deployer running on a thread inside a network namespace.
/// Dropping it (or [`DeployWorker::shutdown`]) detaches everything.
#[derive(Debug)]
pub struct DeployWorker {
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
    died: Mutex<Option<oneshot::Receiver<String>>>,
}

impl DeployWorker {
    /// Starts the worker: enters `netns`, takes the namespace's lock and
    /// prepares the pin directory.
    pub fn spawn(netns: NetnsRef, registry: FpmRegistry) -> Result<Self, WorkerError> {
        let (tx, rx) = mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), WorkerError>>();
        let (died_tx, died_rx) = oneshot::channel::<String>();
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
                let deployer = match deployer {
                    Ok(d) => {
                        let _ = ready_tx.send(Ok(()));
                        d
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let (root, status) = (
                    deployer.layout().root.clone(),
                    deployer.layout().status.clone(),
                );
                // The deployer moves into `serve`: if FPM code panics there, it
                // is dropped while unwinding, which detaches its programs.
                let served =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(deployer, &rx)));
                if let Err(payload) = served {
                    let reason = panic_message(payload.as_ref());
                    tracing::error!(netns = %netns, %reason, "deploy worker died; its programs are detached");
                    super::pins::remove_pins(&root);
                    // Best effort: a stale status would show chains that are gone.
                    let _ = std::fs::remove_file(&status);
                    let _ = died_tx.send(reason);
                }
            })
            .map_err(|e| WorkerError::Start {
                netns: label.clone(),
                reason: e.to_string(),
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(DeployWorker {
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                died: Mutex::new(Some(died_rx)),
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

    /// The plan as deployed (shared with the worker, not copied).
    pub async fn deployed(&self) -> Result<Arc<FastPathPlan>, WorkerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Deployed(tx))?;
        rx.await.map_err(|_| WorkerError::Stopped)
    }

    /// Resolves with [`WorkerError::Died`] when the worker thread dies of
    /// a panic; never resolves otherwise (nor after a clean shutdown).
    /// There is one such future per worker: later calls get one that never
    /// resolves.
    pub fn death(&self) -> impl std::future::Future<Output = WorkerError> + Send + 'static {
        let died = self.died.lock().unwrap_or_else(|p| p.into_inner()).take();
        async move {
            match died {
                Some(rx) => match rx.await {
                    Ok(reason) => WorkerError::Died { reason },
                    // Shut down cleanly: nothing to announce, ever.
                    Err(_) => futures::future::pending().await,
                },
                None => futures::future::pending().await,
            }
        }
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

/// The worker's command loop: applies plans, answers queries, and runs FPM
/// upkeep between commands until the handle is gone; then detaches
/// everything.
fn serve(mut deployer: Deployer, rx: &mpsc::Receiver<Command>) {
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
                let _ = reply.send(deployer.apply_owned(plan));
                wait = deployer.upkeep(&mut upkept);
            }
            Command::Stats(reply) => {
                let _ = reply.send(deployer.stats());
            }
            Command::Deployed(reply) => {
                let _ = reply.send(deployer.deployed_shared());
            }
        }
    }
    deployer.shutdown();
}

/// The message of a panic payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_string())
}
