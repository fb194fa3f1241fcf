// SPDX-License-Identifier: MIT OR Apache-2.0
//! The full dump: every rtnetlink table the fast paths depend on, as raw
//! bytes (so tests can record them) and as events.

use super::{
    InspectError,
    decode::{self, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR},
    socket::RtnlSocket,
};
use crate::state::{KernelState, NetEvent, Route};

const RTM_GETLINK: u16 = 18;
const RTM_GETADDR: u16 = 22;
const RTM_GETROUTE: u16 = 26;
const RTM_GETNEIGH: u16 = 30;
const RTM_GETRULE: u16 = 34;
const RTM_GETNETCONF: u16 = 82;
const AF_UNSPEC: u8 = libc::AF_UNSPEC as u8;
const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;
const AF_BRIDGE: u8 = libc::AF_BRIDGE as u8;
const IFLA_EXT_MASK: u16 = 29;
/// `RTEXT_FILTER_BRVLAN_COMPRESSED`: bridge VLANs, as ranges.
const RTEXT_FILTER_BRVLAN_COMPRESSED: u32 = 1 << 2;
/// How often a dump interrupted by concurrent changes is retried.
const DUMP_RETRIES: usize = 10;

/// One dump request: message type, family, and the request body.
struct Request {
    what: &'static str,
    kind: u16,
    body: Vec<u8>,
}

/// A request body: the family-specific header (family first, zero
/// elsewhere) of `len` bytes.
fn header(family: u8, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    b[0] = family;
    b
}

/// The requests of a full dump, in the order they must be folded (links
/// before what refers to them).
fn requests() -> Vec<Request> {
    let mut bridge = header(AF_BRIDGE, 16);
    bridge.extend_from_slice(&8u16.to_ne_bytes());
    bridge.extend_from_slice(&IFLA_EXT_MASK.to_ne_bytes());
    bridge.extend_from_slice(&RTEXT_FILTER_BRVLAN_COMPRESSED.to_ne_bytes());
    vec![
        Request {
            what: "links",
            kind: RTM_GETLINK,
            body: header(AF_UNSPEC, 16),
        },
        Request {
            what: "bridge ports and VLANs",
            kind: RTM_GETLINK,
            body: bridge,
        },
        Request {
            what: "addresses",
            kind: RTM_GETADDR,
            body: header(AF_UNSPEC, 8),
        },
        Request {
            what: "IPv4 routes",
            kind: RTM_GETROUTE,
            body: header(AF_INET, 12),
        },
        Request {
            what: "IPv6 routes",
            kind: RTM_GETROUTE,
            body: header(AF_INET6, 12),
        },
        Request {
            what: "IPv4 rules",
            kind: RTM_GETRULE,
            body: header(AF_INET, 12),
        },
        Request {
            what: "IPv6 rules",
            kind: RTM_GETRULE,
            body: header(AF_INET6, 12),
        },
        Request {
            what: "ARP neighbours",
            kind: RTM_GETNEIGH,
            body: header(AF_INET, 12),
        },
        Request {
            what: "NDP neighbours",
            kind: RTM_GETNEIGH,
            body: header(AF_INET6, 12),
        },
        Request {
            what: "bridge FDB",
            kind: RTM_GETNEIGH,
            body: header(AF_BRIDGE, 12),
        },
        Request {
            what: "IPv4 netconf",
            kind: RTM_GETNETCONF,
            body: header(AF_INET, 4),
        },
        Request {
            what: "IPv6 netconf",
            kind: RTM_GETNETCONF,
            body: header(AF_INET6, 4),
        },
    ]
}

/// Runs one dump request and returns the reply's datagrams, retrying when
/// the kernel flags the dump as interrupted by a concurrent change.
fn dump_one(sock: &mut RtnlSocket, req: &Request) -> Result<Vec<u8>, InspectError> {
    'retry: for _ in 0..DUMP_RETRIES {
        let seq = sock.send_dump(req.kind, &req.body)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let datagram = sock
                .recv()
                .map_err(|e| InspectError::io("recv(rtnetlink dump)", e))?;
            let mut done = false;
            for m in decode::messages(datagram) {
                if m.seq != seq {
                    continue;
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                match m.kind {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => {
                        let code = m.error_code();
                        // Families without the table (no IPv6, no bridge
                        // module) answer EOPNOTSUPP / EAFNOSUPPORT: empty.
                        if code == -libc::EOPNOTSUPP || code == -libc::EAFNOSUPPORT {
                            tracing::debug!(what = req.what, code, "dump not supported here");
                            return Ok(Vec::new());
                        }
                        return Err(InspectError::Netlink {
                            call: req.what,
                            code,
                        });
                    }
                    _ => {}
                }
            }
            out.extend_from_slice(datagram);
            if done {
                if interrupted {
                    tracing::debug!(what = req.what, "dump interrupted; retrying");
                    continue 'retry;
                }
                return Ok(out);
            }
        }
    }
    Err(InspectError::Interrupted { what: req.what })
}

/// Dumps every table and returns the raw replies, concatenated.
pub(crate) fn dump_raw(sock: &mut RtnlSocket) -> Result<Vec<u8>, InspectError> {
    let mut all = Vec::new();
    for req in requests() {
        all.extend(dump_one(sock, &req)?);
    }
    Ok(all)
}

/// Dumps every table and folds it into a fresh state (sysctls and the
/// firewall are read separately).
pub(crate) fn dump_state(sock: &mut RtnlSocket) -> Result<KernelState, InspectError> {
    let mut state = KernelState::default();
    for req in requests() {
        let bytes = dump_one(sock, &req)?;
        for e in decode::parse_messages(&bytes) {
            state.apply(e);
        }
    }
    Ok(state)
}

/// Dumps the routes of one family (`4`/`6`) of every table.
pub(crate) fn dump_routes(sock: &mut RtnlSocket, family: u8) -> Result<Vec<Route>, InspectError> {
    let (what, af) = if family == 4 {
        ("IPv4 routes", AF_INET)
    } else {
        ("IPv6 routes", AF_INET6)
    };
    let req = Request {
        what,
        kind: RTM_GETROUTE,
        body: header(af, 12),
    };
    let bytes = dump_one(sock, &req)?;
    Ok(decode::parse_messages(&bytes)
        .into_iter()
        .filter_map(|e| match e {
            NetEvent::NewRoute(r) => Some(r),
            _ => None,
        })
        .collect())
}
