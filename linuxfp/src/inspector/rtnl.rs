// SPDX-License-Identifier: MIT OR Apache-2.0
//! rtnetlink dumps: links, addresses and routes, folded into a
//! [`KernelState`]. Must run on a thread inside the target namespace.

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage},
    link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, LinkXdp},
    route::{RouteAttribute, RouteMessage},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::InspectError;
use crate::state::{KernelState, Link};

/// How often a dump interrupted by concurrent changes is retried.
const DUMP_RETRIES: usize = 5;

/// A request/response rtnetlink socket.
pub(crate) struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    pub(crate) fn open() -> Result<Self, InspectError> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| InspectError::io("socket(NETLINK_ROUTE)", e))?;
        socket
            .bind(&SocketAddr::new(0, 0))
            .map_err(|e| InspectError::io("bind(NETLINK_ROUTE)", e))?;
        Ok(Rtnl { socket, seq: 1 })
    }

    /// Sends a dump request and returns every message of the reply. `None`
    /// if the kernel flagged the dump as interrupted (retry).
    fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> Result<Option<Vec<RouteNetlinkMessage>>, InspectError> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|e| InspectError::io("send(rtnetlink dump)", e))?;
        let mut out = Vec::new();
        let mut interrupted = false;
        let mut rx = Vec::with_capacity(1 << 16);
        loop {
            rx.clear();
            self.socket
                .recv(&mut rx, 0)
                .map_err(|e| InspectError::io("recv(rtnetlink dump)", e))?;
            let mut offset = 0;
            while offset < rx.len() {
                let bytes = &rx[offset..];
                let msg = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                    Ok(m) => m,
                    Err(e) => {
                        // Skip the malformed message by its own length, or
                        // give up on the rest of this datagram.
                        tracing::warn!(error = %e, "skipping undecodable rtnetlink message");
                        match header_len(bytes) {
                            Some(n) => {
                                offset += align(n);
                                continue;
                            }
                            None => break,
                        }
                    }
                };
                let len = msg.header.length as usize;
                if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => {
                        return Ok((!interrupted).then_some(out));
                    }
                    NetlinkPayload::Error(e) => {
                        return Err(InspectError::Netlink {
                            call: "rtnetlink dump",
                            code: e.code.map_or(0, |c| c.get()),
                        });
                    }
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                offset += align(len);
            }
        }
    }

    fn dump_retrying(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, InspectError> {
        for _ in 0..DUMP_RETRIES {
            if let Some(v) = self.dump(msg.clone())? {
                return Ok(v);
            }
        }
        Err(InspectError::Interrupted)
    }

    /// Dumps links, addresses and routes into `state`.
    pub(crate) fn fold_into(&mut self, state: &mut KernelState) -> Result<(), InspectError> {
        for m in self.dump_retrying(RouteNetlinkMessage::GetLink(LinkMessage::default()))? {
            if let RouteNetlinkMessage::NewLink(l) = m {
                let link = decode_link(&l);
                state.links.insert(link.ifindex, link);
            }
        }
        for m in self.dump_retrying(RouteNetlinkMessage::GetAddress(AddressMessage::default()))? {
            if let RouteNetlinkMessage::NewAddress(a) = m
                && let Some(text) = decode_address(&a)
                && let Some(link) = state.links.get_mut(&a.header.index)
            {
                link.addresses.push(text);
            }
        }
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut req = RouteMessage::default();
            req.header.address_family = family;
            let fam = if family == AddressFamily::Inet { 4 } else { 6 };
            let mut count = 0;
            let mut devices = std::collections::BTreeSet::new();
            for m in self.dump_retrying(RouteNetlinkMessage::GetRoute(req))? {
                if let RouteNetlinkMessage::NewRoute(r) = m {
                    count += 1;
                    for a in &r.attributes {
                        if let RouteAttribute::Oif(i) = a {
                            devices.insert(*i);
                        }
                    }
                }
            }
            state.route_count.insert(fam, count);
            state
                .route_devices
                .insert(fam, devices.into_iter().collect());
        }
        Ok(())
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn header_len(bytes: &[u8]) -> Option<usize> {
    let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let n = u32::from_ne_bytes(b) as usize;
    (n >= 16 && n <= bytes.len()).then_some(n)
}

/// Decodes one link message.
pub(crate) fn decode_link(l: &LinkMessage) -> Link {
    let flags = l.header.flags;
    let mut link = Link {
        ifindex: l.header.index,
        admin_up: flags.contains(LinkFlags::Up),
        running: flags.contains(LinkFlags::Running) || flags.contains(LinkFlags::LowerUp),
        loopback: flags.contains(LinkFlags::Loopback),
        ..Default::default()
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Address(mac) if mac.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(mac);
                link.mac = Some(m);
            }
            LinkAttribute::Controller(m) => link.master = Some(*m),
            LinkAttribute::Link(i) => link.link = Some(*i),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(match k {
                            InfoKind::Other(s) => s.clone(),
                            k => k.to_string(),
                        });
                    }
                }
            }
            LinkAttribute::Xdp(x) => {
                for a in x {
                    if let LinkXdp::ProgId(id) = a
                        && *id != 0
                    {
                        link.xdp_prog_id = Some(*id);
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn decode_address(a: &AddressMessage) -> Option<String> {
    // For IPv4, IFA_LOCAL is the interface's own address (IFA_ADDRESS is
    // the peer on point-to-point links); IPv6 only has IFA_ADDRESS.
    let mut addr = None;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(ip) => addr = Some(*ip),
            AddressAttribute::Address(ip) if addr.is_none() => addr = Some(*ip),
            _ => {}
        }
    }
    addr.map(|ip| format!("{ip}/{}", a.header.prefix_len))
}
