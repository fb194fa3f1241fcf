// SPDX-License-Identifier: MIT OR Apache-2.0
//! One rtnetlink request at a time, and its answer: for FPM upkeep that
//! must go through the kernel's own code (refreshing an FDB entry or a
//! neighbour with `NTF_USE`, reading one entry back), in the namespace of
//! the calling thread.
//!
//! ```no_run
//! use linuxfp::rtnl::{Reply, Requester};
//! use netlink_packet_core::NLM_F_ACK;
//! use netlink_packet_route::{RouteNetlinkMessage, neighbour::NeighbourMessage};
//!
//! let mut rtnl = Requester::open()?;
//! let msg = RouteNetlinkMessage::NewNeighbour(NeighbourMessage::default());
//! if let Reply::Ack(Some(refused)) = rtnl.request(NLM_F_ACK, msg)? {
//!     eprintln!("refused: {refused}");
//! }
//! # Ok::<(), linuxfp::rtnl::RtnlError>(())
//! ```

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// The rtnetlink socket failed.
#[derive(Debug, thiserror::Error)]
#[error("rtnetlink {op}: {source}")]
pub struct RtnlError {
    /// What was being done (`socket`, `bind`, `send`, `recv`...).
    pub op: &'static str,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// What the kernel answered to one request.
#[derive(Debug)]
pub enum Reply {
    /// An acknowledgement: `None` if the request was carried out, else
    /// the kernel's error (or why the answer could not be read).
    Ack(Option<String>),
    /// A message (the answer to a `GET`).
    Message(RouteNetlinkMessage),
}

/// An rtnetlink socket for one request at a time.
pub struct Requester {
    socket: Socket,
    buf: Vec<u8>,
    seq: u32,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester").field("seq", &self.seq).finish()
    }
}

impl Requester {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, RtnlError> {
        let err = |op| move |source| RtnlError { op, source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(err("socket"))?;
        socket.bind_auto().map_err(err("bind"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(err("connect"))?;
        Ok(Requester {
            socket,
            buf: Vec::with_capacity(8192),
            seq: 0,
        })
    }

    /// Sends `msg` with `NLM_F_REQUEST | flags` and reads the answer: ask
    /// for `NLM_F_ACK` on requests that change something, or the kernel
    /// answers nothing and this waits.
    pub fn request(&mut self, flags: u16, msg: RouteNetlinkMessage) -> Result<Reply, RtnlError> {
        let err = |op| move |source| RtnlError { op, source };
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.socket.send(&out, 0).map_err(err("send"))?;
        self.buf.clear();
        let n = self.socket.recv(&mut self.buf, 0).map_err(err("recv"))?;
        let answer = &self.buf[..n.min(self.buf.len())];
        Ok(
            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(answer) {
                Ok(NetlinkMessage {
                    payload: NetlinkPayload::Error(e),
                    ..
                }) => Reply::Ack(
                    e.code
                        .map(|c| std::io::Error::from_raw_os_error(-c.get()).to_string()),
                ),
                Ok(NetlinkMessage {
                    payload: NetlinkPayload::InnerMessage(m),
                    ..
                }) => Reply::Message(m),
                Ok(_) => Reply::Ack(None),
                Err(e) => Reply::Ack(Some(format!("unparsable reply: {e}"))),
            },
        )
    }
}
