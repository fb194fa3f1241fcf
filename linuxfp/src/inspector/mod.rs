// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Service Inspector: reads the kernel's networking state of one
//! namespace over netlink (rtnetlink and nfnetlink, no shelling out) and
//! follows its changes.
//!
//! - [`dump`] reads everything once into a [`KernelState`].
//! - [`topology_updates`] follows changes: a thread inside the namespace
//!   subscribes to the rtnetlink groups (links, addresses, routes, rules,
//!   netconf) and to nf_tables' group, and on any change — or on a socket
//!   overrun (`ENOBUFS`), so nothing is ever silently missed — re-reads the
//!   whole state, derives the topology and emits it if it changed. A storm
//!   of events (10k routes) is drained before the re-read, so it costs one
//!   dump; the channel holds at most one pending update, so memory stays
//!   bounded however slow the consumer.
//! - Sysctls that emit no event are re-read every [`RESYNC_EVERY`].

mod nft;
mod rtnl;
pub mod sysctl;

use std::{
    os::fd::AsRawFd,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{Stream, channel::mpsc};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
pub use nft::{NftState, parse_messages as parse_nfnetlink};

use crate::{
    controller::TopologyUpdate,
    netns::{NetnsError, NetnsRef},
    state::KernelState,
    topology,
};

/// Periodic full re-read, for state that changes without a netlink event
/// (some sysctls).
pub const RESYNC_EVERY: Duration = Duration::from_secs(2);

/// rtnetlink multicast groups followed: link, IPv4/IPv6 addresses, routes
/// and rules, IPv4/IPv6 netconf (forwarding, rp_filter, proxy_arp).
const RTNL_GROUPS: [u32; 9] = [1, 5, 7, 8, 9, 11, 19, 24, 25];

/// Errors of the inspector.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// A socket call failed.
    #[error("{call}")]
    Io {
        /// The call.
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
    #[error("dump interrupted by concurrent changes 5 times in a row")]
    Interrupted,
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

impl InspectError {
    fn io(call: &'static str, source: std::io::Error) -> Self {
        InspectError::Io { call, source }
    }
}

/// Sockets for dumps, opened inside the namespace.
struct Dumper {
    rtnl: rtnl::Rtnl,
    nft: Socket,
}

impl Dumper {
    fn open() -> Result<Self, InspectError> {
        Ok(Dumper {
            rtnl: rtnl::Rtnl::open()?,
            nft: nft::open()?,
        })
    }

    fn dump(&mut self) -> Result<KernelState, InspectError> {
        let mut state = KernelState::default();
        self.rtnl.fold_into(&mut state)?;
        sysctl::fold_into(&mut state);
        let nft = nft::dump(&self.nft)?;
        state.nft_chains = nft.base_chains;
        state.nft_generation = nft.generation;
        Ok(state)
    }
}

/// Reads the namespace's state once.
pub fn dump(netns: &NetnsRef) -> Result<KernelState, InspectError> {
    netns.run(|| Dumper::open()?.dump())?
}

/// Follows the namespace: the current topology first, then one update per
/// change. The stream ends (and its thread exits) when dropped.
pub fn topology_updates(
    netns: NetnsRef,
) -> Result<impl Stream<Item = TopologyUpdate> + Send + Unpin + 'static, InspectError> {
    let (tx, rx) = mpsc::channel::<TopologyUpdate>(1);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), InspectError>>();
    std::thread::Builder::new()
        .name("linuxfp-inspect".into())
        .spawn(move || {
            let setup = netns
                .enter_on_this_thread()
                .map_err(InspectError::from)
                .and_then(|()| Watcher::open());
            match setup {
                Ok(w) => {
                    let _ = ready_tx.send(Ok(()));
                    w.run(tx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| InspectError::io("spawn inspector thread", e))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(rx),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(InspectError::io(
            "inspector thread",
            std::io::Error::other("died while starting"),
        )),
    }
}

struct Watcher {
    dumper: Dumper,
    events: Socket,
    nft_events: Socket,
}

impl Watcher {
    fn open() -> Result<Self, InspectError> {
        let mut events =
            Socket::new(NETLINK_ROUTE).map_err(|e| InspectError::io("socket(NETLINK_ROUTE)", e))?;
        events
            .bind(&SocketAddr::new(0, 0))
            .map_err(|e| InspectError::io("bind(NETLINK_ROUTE)", e))?;
        for g in RTNL_GROUPS {
            events
                .add_membership(g)
                .map_err(|e| InspectError::io("add_membership(rtnetlink)", e))?;
        }
        let nft_events = nft::open()?;
        nft_events
            .add_membership(nft::NFNLGRP_NFTABLES)
            .map_err(|e| InspectError::io("add_membership(nf_tables)", e))?;
        for s in [&events, &nft_events] {
            s.set_non_blocking(true)
                .map_err(|e| InspectError::io("set_non_blocking", e))?;
        }
        Ok(Watcher {
            dumper: Dumper::open()?,
            events,
            nft_events,
        })
    }

    /// Drains pending events; true if there were any (or an overrun).
    fn drain(&self) -> bool {
        let mut any = false;
        let mut buf = Vec::with_capacity(1 << 16);
        for s in [&self.events, &self.nft_events] {
            loop {
                buf.clear();
                match s.recv(&mut buf, 0) {
                    Ok(_) => any = true,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        tracing::info!("netlink overrun: full re-read");
                        any = true;
                    }
                    Err(_) => break,
                }
            }
        }
        any
    }

    fn wait(&self, timeout: Duration) {
        let mut fds = [
            libc::pollfd {
                fd: self.events.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.nft_events.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the call.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout.as_millis() as libc::c_int) };
    }

    fn run(mut self, mut tx: mpsc::Sender<TopologyUpdate>) {
        let mut last: Option<topology::Topology> = None;
        let mut pending: Option<TopologyUpdate> = None;
        let mut last_dump = Instant::now() - RESYNC_EVERY;
        let mut dirty = true;
        loop {
            if tx.is_closed() {
                return;
            }
            if dirty || last_dump.elapsed() >= RESYNC_EVERY {
                // Let a burst settle so one dump covers it.
                while self.drain() {
                    std::thread::sleep(Duration::from_millis(2));
                }
                match self.dumper.dump() {
                    Ok(state) => {
                        let topo = topology::derive(&state);
                        if last.as_ref() != Some(&topo) {
                            last = Some(topo.clone());
                            pending = Some(TopologyUpdate {
                                topology: topo,
                                state: Some(Arc::new(state)),
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "re-reading the kernel state failed; retrying")
                    }
                }
                last_dump = Instant::now();
                dirty = false;
            }
            if let Some(update) = pending.take() {
                match tx.try_send(update) {
                    Ok(()) => {}
                    Err(e) if e.is_full() => pending = Some(e.into_inner()),
                    Err(_) => return,
                }
            }
            let timeout = if pending.is_some() {
                Duration::from_millis(10)
            } else {
                RESYNC_EVERY
            };
            self.wait(timeout);
            dirty |= self.drain();
        }
    }
}
