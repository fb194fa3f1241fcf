// SPDX-License-Identifier: MIT OR Apache-2.0
//! The rtnetlink socket: dump requests with their replies, and multicast
//! events. Opened on a thread inside the target namespace (a netlink
//! socket belongs to the namespace it was created in).

use std::{
    io,
    os::fd::{AsRawFd, RawFd},
};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::InspectError;

/// rtnetlink multicast groups followed: link (`RTNLGRP_LINK` 1), neighbours
/// and FDB (3), IPv4 addresses (5), routes (7), rules (8), IPv6 addresses
/// (9), routes (11), rules (19), IPv4 and IPv6 netconf (24, 25).
pub(crate) const RTNL_GROUPS: [u32; 10] = [1, 3, 5, 7, 8, 9, 11, 19, 24, 25];

/// Largest datagram the kernel sends on a netlink socket (dumps are capped
/// at 32 KiB per datagram; events are smaller).
const RECV_BUF: usize = 64 * 1024;

/// One rtnetlink socket.
pub(crate) struct RtnlSocket {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl RtnlSocket {
    /// A socket for requests (dumps), or, with `groups`, for events.
    pub(crate) fn open(groups: &[u32], rx_buffer: Option<usize>) -> Result<Self, InspectError> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| InspectError::io("socket(NETLINK_ROUTE)", e))?;
        if let Some(bytes) = rx_buffer {
            socket
                .set_rx_buf_sz(bytes)
                .map_err(|e| InspectError::io("setsockopt(SO_RCVBUF)", e))?;
        }
        socket
            .bind(&SocketAddr::new(0, 0))
            .map_err(|e| InspectError::io("bind(NETLINK_ROUTE)", e))?;
        for g in groups {
            socket
                .add_membership(*g)
                .map_err(|e| InspectError::io("setsockopt(NETLINK_ADD_MEMBERSHIP)", e))?;
        }
        Ok(RtnlSocket {
            socket,
            seq: 1,
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// Makes `recv` return `WouldBlock` instead of waiting.
    pub(crate) fn set_non_blocking(&self) -> Result<(), InspectError> {
        self.socket
            .set_non_blocking(true)
            .map_err(|e| InspectError::io("fcntl(O_NONBLOCK) on rtnetlink", e))
    }

    /// Sends a dump request: `kind` (`RTM_GET*`), its fixed header bytes
    /// and attributes. Returns the sequence number to wait for.
    pub(crate) fn send_dump(&mut self, kind: u16, body: &[u8]) -> Result<u32, InspectError> {
        const NLM_F_REQUEST: u16 = 1;
        const NLM_F_DUMP: u16 = 0x300;
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let len = 16 + body.len();
        let mut req = Vec::with_capacity(len);
        req.extend_from_slice(&(len as u32).to_ne_bytes());
        req.extend_from_slice(&kind.to_ne_bytes());
        req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(body);
        self.socket
            .send(&req, 0)
            .map_err(|e| InspectError::io("send(rtnetlink dump request)", e))?;
        Ok(seq)
    }

    /// Receives one datagram. `ENOBUFS` (events were lost) and
    /// `WouldBlock` come back as errors.
    pub(crate) fn recv(&mut self) -> io::Result<&[u8]> {
        self.buf.clear();
        let n = self.socket.recv(&mut self.buf, 0)?;
        Ok(&self.buf[..n.min(self.buf.len())])
    }
}

impl AsRawFd for RtnlSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
