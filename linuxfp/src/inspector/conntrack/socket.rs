// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ctnetlink socket: dumps, events and timeout updates. Open it on a
//! thread inside the target namespace (a netlink socket belongs to the
//! namespace it was created in).

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::{
    CT_GROUPS, CtEvent, CtTuple,
    decode::{
        IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_NEW, NFNL_SUBSYS_CTNETLINK, decode_message,
        timeout_request,
    },
};
use crate::inspector::{
    InspectError,
    nftables::{
        NfMsg,
        message::{NLMSG_DONE, NLMSG_ERROR},
        parse_messages,
    },
};

const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
/// Receive buffer of one `recv` (ctnetlink datagrams are at most a few
/// pages).
const RECV_BUF: usize = 64 * 1024;
/// Socket buffer of an event socket: room for bursts between two drains.
const EVENT_SOCKET_BUF: usize = 8 * 1024 * 1024;

/// What one read brought.
#[derive(Debug, Default)]
pub struct CtBatch {
    /// Entries and removals, in the kernel's order.
    pub events: Vec<CtEvent>,
    /// Messages that did not decode (logged, skipped).
    pub skipped: usize,
    /// Events were lost (`ENOBUFS`): the caller must dump again.
    pub overrun: bool,
}

impl CtBatch {
    fn take(&mut self, msgs: Vec<NfMsg>) {
        for m in msgs {
            match decode_message(&m) {
                Ok(Some(ev)) => self.events.push(ev),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "conntrack message skipped");
                    self.skipped += 1;
                }
            }
        }
    }
}

/// A ctnetlink socket.
pub struct CtSocket {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for CtSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtSocket").field("seq", &self.seq).finish()
    }
}

impl CtSocket {
    /// A socket for requests (dumps, timeout updates) in the calling
    /// thread's namespace.
    pub fn requests() -> Result<Self, InspectError> {
        Self::open(false)
    }

    /// A non-blocking socket subscribed to the conntrack change events of
    /// the calling thread's namespace, read with [`CtSocket::events`].
    pub fn events_socket() -> Result<Self, InspectError> {
        Self::open(true)
    }

    fn open(events: bool) -> Result<Self, InspectError> {
        let mut socket = Socket::new(NETLINK_NETFILTER)
            .map_err(|e| InspectError::io("socket(NETLINK_NETFILTER) for ctnetlink", e))?;
        if events {
            socket
                .set_rx_buf_sz(EVENT_SOCKET_BUF)
                .map_err(|e| InspectError::io("setsockopt(SO_RCVBUF) on ctnetlink", e))?;
        }
        socket
            .bind(&SocketAddr::new(0, 0))
            .map_err(|e| InspectError::io("bind(NETLINK_NETFILTER) for ctnetlink", e))?;
        if events {
            for g in CT_GROUPS {
                socket.add_membership(g).map_err(|e| {
                    InspectError::io("setsockopt(NETLINK_ADD_MEMBERSHIP) conntrack", e)
                })?;
            }
            socket
                .set_non_blocking(true)
                .map_err(|e| InspectError::io("fcntl(O_NONBLOCK) on ctnetlink", e))?;
        }
        Ok(CtSocket {
            socket,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    fn send(&mut self, op: u8, flags: u16, family: u8, attrs: &[u8]) -> Result<u32, InspectError> {
        self.seq = self.seq.wrapping_add(1);
        let len = 16 + 4 + attrs.len();
        let mut req = Vec::with_capacity(len);
        req.extend_from_slice(&(len as u32).to_ne_bytes());
        req.extend_from_slice(
            &((u16::from(NFNL_SUBSYS_CTNETLINK) << 8) | u16::from(op)).to_ne_bytes(),
        );
        req.extend_from_slice(&flags.to_ne_bytes());
        req.extend_from_slice(&self.seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, NFNETLINK_V0, res_id 0.
        req.extend_from_slice(&[family, 0, 0, 0]);
        req.extend_from_slice(attrs);
        self.socket
            .send(&req, 0)
            .map_err(|e| InspectError::io("send(ctnetlink request)", e))?;
        Ok(self.seq)
    }

    fn recv(&mut self) -> io::Result<Vec<NfMsg>> {
        self.buf.clear();
        let n = self.socket.recv(&mut self.buf, 0)?;
        Ok(parse_messages(&self.buf[..n.min(self.buf.len())]))
    }

    /// Every entry of the table (both families, every zone).
    pub fn dump(&mut self) -> Result<CtBatch, InspectError> {
        let seq = self.send(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 0, &[])?;
        let mut batch = CtBatch::default();
        loop {
            let msgs = self
                .recv()
                .map_err(|e| InspectError::io("recv(ctnetlink dump)", e))?;
            let mut done = false;
            let mut mine = Vec::new();
            for m in msgs.into_iter().filter(|m| m.seq == seq) {
                match m.kind {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => match m.error_code().unwrap_or(0) {
                        0 => done = true,
                        code => {
                            return Err(InspectError::Netlink {
                                call: "conntrack dump",
                                code,
                            });
                        }
                    },
                    _ => mine.push(m),
                }
            }
            batch.take(mine);
            if done {
                return Ok(batch);
            }
        }
    }

    /// The events queued on an [`CtSocket::events_socket`], without
    /// waiting.
    pub fn events(&mut self) -> Result<CtBatch, InspectError> {
        let mut batch = CtBatch::default();
        loop {
            match self.recv() {
                Ok(msgs) => batch.take(msgs),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(batch),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => batch.overrun = true,
                Err(e) => return Err(InspectError::io("recv(ctnetlink events)", e)),
            }
        }
    }

    /// Sets the timeout of the entry whose original tuple is `orig` to
    /// `secs`, as the kernel does when it sees a packet of the flow.
    /// `Ok(false)` if there is no such entry (any more).
    pub fn set_timeout(&mut self, orig: &CtTuple, secs: u32) -> Result<bool, InspectError> {
        let family = if orig.src.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        } as u8;
        let seq = self.send(
            IPCTNL_MSG_CT_NEW,
            NLM_F_REQUEST | NLM_F_ACK,
            family,
            &timeout_request(orig, secs),
        )?;
        loop {
            let msgs = self
                .recv()
                .map_err(|e| InspectError::io("recv(ctnetlink timeout ack)", e))?;
            for m in msgs.into_iter().filter(|m| m.seq == seq) {
                if let Some(code) = m.error_code() {
                    return match code {
                        0 => Ok(true),
                        c if c == -libc::ENOENT => Ok(false),
                        code => Err(InspectError::Netlink {
                            call: "conntrack timeout update",
                            code,
                        }),
                    };
                }
            }
        }
    }
}
