//! Running commands with a bound on their time, capturing their output.
//!
//! Every command the kit runs goes through [`NsChild`]: it owns the child
//! process (so signals go to a PID that cannot have been reused: the child
//! is not reaped before we are done with it), drains its pipes on two
//! threads (so a chatty process never blocks on a full pipe), and kills it
//! when the time is up or the guard is dropped.

use std::{
    io::Read,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, RecvTimeoutError},
    },
    thread,
    time::{Duration, Instant},
};

use crate::error::{Error, Result};

/// How long a command may take unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The label used in errors for commands run in the caller's own namespace.
pub(crate) const HOST: &str = "host";

/// How a command ended and what it printed.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote on stdout (lossily decoded as UTF-8).
    pub stdout: String,
    /// Everything it wrote on stderr (lossily decoded as UTF-8).
    pub stderr: String,
}

impl Finished {
    /// Its stdout if it exited with status 0, otherwise an [`Error::Command`]
    /// that names the command, where it ran, the status and what it said.
    pub(crate) fn checked(self, netns: &str, command: &str) -> Result<String> {
        if self.status.success() {
            return Ok(self.stdout);
        }
        // Some tools (iperf3 -J, ping) report failures on stdout.
        let said = if self.stderr.trim().is_empty() {
            self.stdout.trim()
        } else {
            self.stderr.trim()
        };
        Err(Error::Command {
            netns: netns.to_string(),
            command: command.to_string(),
            status: self.status,
            stderr: said.to_string(),
        })
    }
}

/// One pipe drained by a background thread.
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    /// Disconnected when the reader thread has seen end of file.
    eof: Receiver<()>,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> std::io::Result<Self> {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (alive, eof) = mpsc::channel::<()>();
        let sink = Arc::clone(&buf);
        thread::Builder::new()
            .name("testkit-pipe".into())
            .spawn(move || {
                let _alive = alive;
                let mut chunk = [0u8; 8192];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => lock(&sink).extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            })?;
        Ok(Self { buf, eof })
    }

    /// Waits until end of file or `until`; true once the pipe is closed.
    fn wait_eof(&self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        !matches!(self.eof.recv_timeout(left), Err(RecvTimeoutError::Timeout))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.buf)).into_owned()
    }
}

/// A poisoned buffer still holds valid bytes; a reader thread cannot panic
/// while holding the lock anyway.
fn lock(m: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A process started by the kit, usually inside a namespace (an `iperf3`
/// server, a traffic generator). Dropping the guard stops it: SIGTERM, one
/// second of grace, then SIGKILL, always by the PID of our own unreaped
/// child.
pub struct NsChild {
    netns: String,
    command: String,
    child: Child,
    stdout: Capture,
    stderr: Capture,
    status: Option<ExitStatus>,
}

impl std::fmt::Debug for NsChild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NsChild")
            .field("netns", &self.netns)
            .field("command", &self.command)
            .field("pid", &self.child.id())
            .field("status", &self.status)
            .finish()
    }
}

impl NsChild {
    /// Starts `program args…`; `netns` and `command` are only for messages.
    pub(crate) fn start(
        netns: &str,
        command: String,
        program: &str,
        args: &[&str],
    ) -> Result<Self> {
        Self::start_in(netns, command, program, args, false)
    }

    /// [`NsChild::start`]; with `own_group` the child gets a process group
    /// of its own, so a Ctrl-C at the terminal does not reach it (used for
    /// the cleanup commands, which must finish even then).
    fn start_in(
        netns: &str,
        command: String,
        program: &str,
        args: &[&str],
        own_group: bool,
    ) -> Result<Self> {
        let spawn_error = |source| Error::Spawn {
            netns: netns.to_string(),
            command: command.clone(),
            source,
        };
        let mut cmd = Command::new(program);
        if own_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        let mut child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        let pipes = child.stdout.take().zip(child.stderr.take());
        let captures = pipes
            .ok_or_else(|| std::io::Error::other("child has no stdout/stderr pipe"))
            .and_then(|(out, err)| Ok((Capture::start(out)?, Capture::start(err)?)));
        let (stdout, stderr) = match captures {
            Ok(c) => c,
            Err(e) => {
                // Never leave an unreaped child behind.
                let _ = child.kill();
                let _ = child.wait();
                return Err(spawn_error(e));
            }
        };
        tracing::debug!(netns, %command, pid = child.id(), "started");
        Ok(Self {
            netns: netns.to_string(),
            command,
            child,
            stdout,
            stderr,
            status: None,
        })
    }

    /// The process ID (of `ip netns exec`, which execs the command itself,
    /// so this is the command's PID).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> Result<bool> {
        if self.status.is_some() {
            return Ok(false);
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.status = Some(status);
                Ok(false)
            }
            Ok(None) => Ok(true),
            Err(source) => Err(self.wait_error(source)),
        }
    }

    /// What it has written on stdout so far.
    pub fn stdout_so_far(&self) -> String {
        self.stdout.text()
    }

    /// What it has written on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.text()
    }

    /// Waits at most `timeout` for it to exit; its stdout if it exited with
    /// status 0. On timeout it is killed and [`Error::Timeout`] returned.
    pub fn wait(self, timeout: Duration) -> Result<String> {
        let (netns, command) = (self.netns.clone(), self.command.clone());
        self.wait_output(timeout)?.checked(&netns, &command)
    }

    /// Like [`NsChild::wait`], but any exit status is returned, not an error.
    pub fn wait_output(mut self, timeout: Duration) -> Result<Finished> {
        match self.reap_by(Instant::now() + timeout)? {
            Some(status) => Ok(self.finished(status)),
            None => {
                self.kill_now()?;
                Err(Error::Timeout {
                    netns: self.netns.clone(),
                    command: self.command.clone(),
                    timeout,
                })
            }
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after `grace`) and returns how it
    /// ended and what it printed.
    pub fn stop(mut self, grace: Duration) -> Result<Finished> {
        let status = self.terminate(grace)?;
        Ok(self.finished(status))
    }

    fn finished(&self, status: ExitStatus) -> Finished {
        Finished {
            status,
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        }
    }

    /// Waits until the child exits or `deadline` passes (then `None`).
    fn reap_by(&mut self, deadline: Instant) -> Result<Option<ExitStatus>> {
        let mut nap = Duration::from_millis(1);
        loop {
            if let Some(status) = self.status {
                return Ok(Some(status));
            }
            if let Some(status) = self.child.try_wait().map_err(|e| self.wait_error(e))? {
                self.status = Some(status);
                // Its output is complete once both pipes close; a grandchild
                // that inherited them gets a short grace, not our deadline.
                let grace = deadline.min(Instant::now() + Duration::from_millis(200));
                self.stdout.wait_eof(grace);
                self.stderr.wait_eof(grace);
                return Ok(Some(status));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            // The pipes close when the process exits, which wakes us at
            // once; until then back off, so long runs cost no CPU.
            let until = deadline.min(now + nap);
            if self.stdout.wait_eof(until) && self.stderr.wait_eof(until) {
                thread::sleep(until.saturating_duration_since(Instant::now()));
            }
            nap = (nap * 2).min(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait `grace`, SIGKILL; returns the exit status.
    fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return self.kill_now();
        };
        // SAFETY: kill(2) has no memory effects; `pid` is our own child and
        // is not reaped yet (`status` is None), so it cannot name another
        // process.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            tracing::debug!(pid, err = %std::io::Error::last_os_error(), "SIGTERM failed");
        }
        match self.reap_by(Instant::now() + grace)? {
            Some(status) => Ok(status),
            None => self.kill_now(),
        }
    }

    fn kill_now(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        // ESRCH-like errors mean it exited on its own; the wait says how.
        let _ = self.child.kill();
        let status = self.child.wait().map_err(|e| self.wait_error(e))?;
        self.status = Some(status);
        Ok(status)
    }

    fn wait_error(&self, source: std::io::Error) -> Error {
        Error::Wait {
            netns: self.netns.clone(),
            command: self.command.clone(),
            source,
        }
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        match self.terminate(Duration::from_secs(1)) {
            Ok(status) => {
                tracing::debug!(netns = %self.netns, command = %self.command, %status, "stopped")
            }
            Err(e) => tracing::error!(error = %e, "cannot stop a background process"),
        }
    }
}

/// Runs a command in the host namespace (`ip netns add`/`pids`/`del`) and
/// returns its stdout, or an error naming it. It runs in a process group
/// of its own, so that a second Ctrl-C cannot interrupt a cleanup.
pub(crate) fn host(args: &[&str], timeout: Duration) -> Result<String> {
    let (program, rest) = split(HOST, args)?;
    NsChild::start_in(HOST, args.join(" "), program, rest, true)?.wait(timeout)
}

/// Runs a command in the calling thread's network namespace (children
/// inherit it, also inside [`crate::Netns::run_in`]); `label` names that
/// namespace in errors.
pub(crate) fn here(label: &str, args: &[&str], timeout: Duration) -> Result<String> {
    let (program, rest) = split(label, args)?;
    NsChild::start(label, args.join(" "), program, rest)?.wait(timeout)
}

fn split<'a>(label: &str, args: &'a [&'a str]) -> Result<(&'a str, &'a [&'a str])> {
    let (program, rest) = args.split_first().ok_or_else(|| Error::Parse {
        netns: label.into(),
        command: String::new(),
        detail: "empty command line".into(),
    })?;
    Ok((program, rest))
}
