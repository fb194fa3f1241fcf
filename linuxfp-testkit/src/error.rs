//! The one error type of the test kit. Every variant says where (`netns`:
//! a namespace name, or `host`) and what (the command line, the file, the
//! syscall), so a failing root test explains itself.

use std::{io, path::PathBuf, process::ExitStatus, time::Duration};

/// What went wrong while building or driving a test topology.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command could not be started at all (not installed, no permission).
    #[error("{netns}: cannot start `{command}`")]
    Spawn {
        /// Where the command was to run.
        netns: String,
        /// The command line.
        command: String,
        /// Why the kernel refused.
        #[source]
        source: io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("{netns}: `{command}` failed ({status}): {stderr}")]
    Command {
        /// Where the command ran.
        netns: String,
        /// The command line.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr (or, when that is empty, on stdout).
        stderr: String,
    },
    /// A command did not finish in time and was killed.
    #[error("{netns}: `{command}` did not finish within {timeout:?} and was killed")]
    Timeout {
        /// Where the command ran.
        netns: String,
        /// The command line.
        command: String,
        /// How long it was given.
        timeout: Duration,
    },
    /// Waiting for or signalling a child process failed.
    #[error("{netns}: cannot wait for `{command}`")]
    Wait {
        /// Where the command ran.
        netns: String,
        /// The command line.
        command: String,
        /// The failed wait/kill.
        #[source]
        source: io::Error,
    },
    /// A file (a namespace handle, a /proc or /sys file) could not be read.
    #[error("{netns}: cannot open or read {path}")]
    Read {
        /// Which namespace the file belongs to.
        netns: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `setns(CLONE_NEWNET)` into a namespace failed.
    #[error("{netns}: setns(CLONE_NEWNET) failed")]
    Setns {
        /// The namespace.
        netns: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The thread that was to run inside a namespace could not be started.
    #[error("{netns}: cannot start a thread inside the namespace")]
    Thread {
        /// The namespace.
        netns: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A BPF query (BPF_PROG_QUERY through aya) failed.
    #[error("{netns}: cannot query the TCX programs of {ifname}")]
    BpfQuery {
        /// Where the interface lives.
        netns: String,
        /// The interface.
        ifname: String,
        /// aya's error.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A socket call on an AF_PACKET socket (injection or capture) failed.
    #[error("{netns}: {call} on {ifname} failed")]
    Socket {
        /// Where the interface lives.
        netns: String,
        /// The interface.
        ifname: String,
        /// The call that failed.
        call: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// A command printed something this kit does not understand.
    #[error("{netns}: unexpected output of `{command}`: {detail}")]
    Parse {
        /// Where the command ran.
        netns: String,
        /// The command line (or file) whose output was read.
        command: String,
        /// What was wrong with it.
        detail: String,
    },
    /// A command printed invalid JSON.
    #[error("{netns}: `{command}` printed invalid JSON")]
    Json {
        /// Where the command ran.
        netns: String,
        /// The command line.
        command: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// Something the topology waits for (a link coming up, a server
    /// listening) did not happen in time.
    #[error("{netns}: {what} not ready within {timeout:?}")]
    NotReady {
        /// The namespace.
        netns: String,
        /// What was awaited.
        what: String,
        /// How long was waited.
        timeout: Duration,
    },
}

/// The test kit's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
