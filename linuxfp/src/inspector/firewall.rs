// SPDX-License-Identifier: MIT OR Apache-2.0
//! The firewall part of the inspector: reads the nf_tables ruleset and
//! tells when it changed (`NFNLGRP_NFTABLES`). Everything nf_tables-specific
//! stays in [`super::nftables`].

use std::os::fd::{AsRawFd, RawFd};

use netlink_sys::Socket;

use super::{
    InspectError,
    nftables::{self as nft, Ruleset},
};

/// Reads the ruleset. Must run inside the namespace.
pub(crate) struct Firewall {
    dump: Socket,
    events: Option<Socket>,
}

impl Firewall {
    /// For one-shot dumps.
    pub(crate) fn open() -> Result<Self, InspectError> {
        Ok(Firewall {
            dump: nft::open()?,
            events: None,
        })
    }

    /// For dumps and change notifications.
    pub(crate) fn open_watching() -> Result<Self, InspectError> {
        let events = nft::open()?;
        events
            .add_membership(nft::NFNLGRP_NFTABLES)
            .map_err(|e| InspectError::io("setsockopt(NETLINK_ADD_MEMBERSHIP nf_tables)", e))?;
        events
            .set_non_blocking(true)
            .map_err(|e| InspectError::io("fcntl(O_NONBLOCK) on nfnetlink", e))?;
        Ok(Firewall {
            dump: nft::open()?,
            events: Some(events),
        })
    }

    /// The current ruleset.
    pub(crate) fn ruleset(&self) -> Result<Ruleset, InspectError> {
        nft::dump(&self.dump)
    }

    /// The socket to poll for changes, if watching.
    pub(crate) fn event_fd(&self) -> Option<RawFd> {
        self.events.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Drains pending notifications; true if there were any (an overrun
    /// counts: the ruleset is re-read as a whole anyway).
    pub(crate) fn drain(&self) -> bool {
        let Some(s) = &self.events else {
            return false;
        };
        let mut any = false;
        let mut buf = Vec::with_capacity(1 << 16);
        loop {
            buf.clear();
            match s.recv(&mut buf, 0) {
                Ok(_) => any = true,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => any = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return any,
                Err(e) => {
                    tracing::warn!(error = %e, "nf_tables event socket failed; re-reading");
                    return true;
                }
            }
        }
    }
}
