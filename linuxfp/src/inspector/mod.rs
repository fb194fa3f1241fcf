// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Service Inspector: reads the kernel's networking state of one
//! namespace over netlink (rtnetlink and nfnetlink; no shelling out) and
//! follows its changes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), linuxfp::inspector::InspectError> {
//! use futures::StreamExt;
//! use linuxfp::{inspector::Inspector, netns::NetnsRef};
//!
//! // One-shot.
//! let state = Inspector::new(NetnsRef::Named("rtr".into())).dump()?;
//! println!("{} links", state.links.len());
//!
//! // Following: the first item is the initial state, then one per
//! // (debounced) change; `Resynced` after events were lost.
//! let mut events = Inspector::new(NetnsRef::Current).watch()?;
//! while let Some(ev) = events.next().await {
//!     println!("{} routes", ev.state().route_count(4));
//! }
//! # Ok(()) }
//! ```
//!
//! What is read: links (kind, flags, MTU, MAC, master, lower link, XDP
//! program, bridge and bridge-port attributes, VLAN and VXLAN attributes),
//! bridge VLAN membership, IPv4/IPv6 addresses, routes of every table,
//! rules, neighbours, bridge FDB, netconf (forwarding per device, `all`
//! and `default`), the sysctls that change forwarding semantics
//! ([`sysctl`]), iptables-legacy tables, and the nf_tables ruleset
//! ([`nftables`]: tables, chains, rules with decoded expressions, sets and
//! their elements, at one generation).
//!
//! Watching runs on a dedicated thread that entered the namespace and owns
//! blocking netlink sockets; it works with any executor. A socket overrun
//! (`ENOBUFS`) means events were lost: the thread re-dumps everything and
//! sends [`InspectorEvent::Resynced`]; it never drifts silently.
//!
//! Minimum kernel version: 6.1, as for the rest of LinuxFP (every request
//! used here, netconf and compressed bridge-VLAN dumps included, is much
//! older); tested on 6.18.

pub mod conntrack;
mod decode;
mod dump;
mod firewall;
pub mod nftables;
mod socket;
mod stream;
pub mod sysctl;

use std::{sync::Arc, time::Duration};

pub use decode::parse_messages;
use futures::{Stream, StreamExt};
pub use nftables::parse_messages as parse_nfnetlink;
pub use stream::InspectorStream;

pub use crate::state::NetEvent;
use crate::{
    controller::TopologyUpdate,
    netns::{NetnsError, NetnsRef},
    state::KernelState,
    topology,
};

/// Errors of the inspector.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// A socket call failed.
    #[error("{call}")]
    Io {
        /// The call, with what it was for.
        call: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel answered a request with an error.
    #[error("{call}: kernel error {code}")]
    Netlink {
        /// The request.
        call: &'static str,
        /// The (negative) errno.
        code: i32,
    },
    /// A dump kept being interrupted by concurrent changes.
    #[error("dump of {what} interrupted by concurrent changes too many times in a row")]
    Interrupted {
        /// What was being dumped.
        what: &'static str,
    },
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

impl InspectError {
    fn io(call: &'static str, source: std::io::Error) -> Self {
        InspectError::Io { call, source }
    }
}

/// What a watching inspector sends. Every item carries the whole folded
/// state, shared: consumers diff what they care about.
#[derive(Clone, Debug)]
pub enum InspectorEvent {
    /// The state after a batch of changes; the first item is the initial
    /// dump.
    Snapshot(Arc<KernelState>),
    /// Events were lost (socket overrun): the state was re-read from
    /// scratch and is exactly the kernel's again.
    Resynced(Arc<KernelState>),
}

impl InspectorEvent {
    /// The state.
    pub fn state(&self) -> &Arc<KernelState> {
        match self {
            InspectorEvent::Snapshot(s) | InspectorEvent::Resynced(s) => s,
        }
    }
}

/// The inspector of one namespace. See [`Inspector::new`].
#[derive(Debug)]
pub struct Inspector;

impl Inspector {
    /// Starts configuring an inspector for `netns`.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(netns: NetnsRef) -> InspectorBuilder {
        InspectorBuilder {
            netns,
            opts: Options::default(),
        }
    }
}

/// Options of the watching thread.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) rx_buffer: Option<usize>,
    pub(crate) depth: usize,
    pub(crate) debounce: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) sysctl_poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rx_buffer: None,
            depth: 1,
            debounce: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            sysctl_poll: Duration::from_secs(1),
        }
    }
}

/// Configures and starts an [`Inspector`].
#[derive(Debug)]
pub struct InspectorBuilder {
    netns: NetnsRef,
    opts: Options,
}

impl InspectorBuilder {
    /// The event socket's receive buffer (`SO_RCVBUF`), in bytes. The
    /// kernel's default is used otherwise; tests set a tiny one to force
    /// overruns.
    pub fn rx_buffer(mut self, bytes: usize) -> Self {
        self.opts.rx_buffer = Some(bytes);
        self
    }

    /// How many snapshots may wait in the stream (default 1). Older
    /// undelivered snapshots are replaced by newer ones.
    pub fn channel_depth(mut self, depth: usize) -> Self {
        self.opts.depth = depth.max(1);
        self
    }

    /// Quiet time after the last event before a snapshot is sent
    /// (default 10 ms).
    pub fn debounce(mut self, quiet: Duration) -> Self {
        self.opts.debounce = quiet;
        self
    }

    /// Longest a continuous stream of events delays a snapshot
    /// (default 200 ms).
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.opts.max_delay = max;
        self
    }

    /// How often sysctls that emit no event are re-read (default 1 s).
    pub fn sysctl_poll(mut self, every: Duration) -> Self {
        self.opts.sysctl_poll = every;
        self
    }

    /// Reads the namespace's state once. Blocks the calling thread for the
    /// dump (tens of milliseconds for 100k routes).
    pub fn dump(&self) -> Result<KernelState, InspectError> {
        self.netns.run(|| {
            let mut sock = socket::RtnlSocket::open(&[], None)?;
            let fw = firewall::Firewall::open()?;
            stream::full_dump(&mut sock, &fw)
        })?
    }

    /// The raw bytes of a full rtnetlink dump of the namespace (every
    /// reply datagram, concatenated), for recorded-input tests and fuzz
    /// corpora: [`parse_messages`] turns them back into events.
    pub fn record(&self) -> Result<Vec<u8>, InspectError> {
        self.netns.run(|| {
            let mut sock = socket::RtnlSocket::open(&[], None)?;
            dump::dump_raw(&mut sock)
        })?
    }

    /// Follows the namespace. The first item is the initial state. The
    /// stream ends its thread when dropped.
    pub fn watch(self) -> Result<InspectorStream, InspectError> {
        stream::spawn(self.netns, self.opts)
    }
}

/// Reads the namespace's state once (`Inspector::new(netns).dump()`).
pub fn dump(netns: &NetnsRef) -> Result<KernelState, InspectError> {
    Inspector::new(netns.clone()).dump()
}

/// Follows the namespace as topologies: the current one first, then one
/// per change of the kernel's state. State-only changes (a learnt FDB
/// entry, a route's MTU) matter too: FPM parameterizers read the state, so
/// an unchanged topology still goes to the planner, which deploys only
/// what differs (a consumer debounces bursts, as the controller does).
pub fn topology_updates(
    netns: NetnsRef,
) -> Result<impl Stream<Item = TopologyUpdate> + Send + Unpin + 'static, InspectError> {
    let events = Inspector::new(netns).watch()?;
    Ok(events.map(move |ev| {
        let state = ev.state().clone();
        TopologyUpdate {
            topology: topology::derive(&state),
            state: Some(state),
        }
    }))
}
