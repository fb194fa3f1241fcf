//! AF_PACKET sockets bound to one interface of a namespace: one to inject
//! raw frames, one to capture what the interface receives.
//!
//! A socket keeps the network namespace it was created in, so each is
//! opened on a thread inside the namespace ([`Netns::run_in`]) and then
//! used from any thread.

use std::{
    ffi::CString,
    io,
    mem::{size_of, zeroed},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    netns::Netns,
};

/// `ETH_P_ALL` in network order, as `socket(2)` and `sockaddr_ll` want it.
const ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// Receive buffer of a capture socket: room for every frame of a corpus run
/// (a few thousand frames of up to 2 KiB, with skb overhead), so nothing is
/// read while frames are injected.
const CAPTURE_RCVBUF: libc::c_int = 32 << 20;

/// Largest frame a capture reads whole (longer ones are truncated and
/// marked by their full length).
const SNAPLEN: usize = 65536;

/// Where a socket is, for errors.
fn where_(ns: &Netns, ifname: &str) -> (String, String) {
    (ns.name().to_string(), ifname.to_string())
}

fn sock_error(ns: &Netns, ifname: &str, call: &'static str) -> Error {
    let (netns, ifname) = where_(ns, ifname);
    Error::Socket {
        netns,
        ifname,
        call,
        source: io::Error::last_os_error(),
    }
}

/// Opens an AF_PACKET raw socket on `ifname` inside `ns`, bound to
/// `protocol` (network order; 0 receives nothing).
fn open(ns: &Netns, ifname: &str, protocol_be: u16) -> Result<OwnedFd> {
    let name = CString::new(ifname).map_err(|_| Error::Parse {
        netns: ns.name().to_string(),
        command: "if_nametoindex".into(),
        detail: format!("interface name with a NUL byte: {ifname:?}"),
    })?;
    ns.run_in(|| -> Result<OwnedFd> {
        // SAFETY: socket(2) takes no pointers; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::c_int::from(protocol_be),
            )
        };
        if fd < 0 {
            return Err(sock_error(ns, ifname, "socket(AF_PACKET)"));
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(sock_error(ns, ifname, "if_nametoindex"));
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = protocol_be;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is initialised and its exact size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(sock_error(ns, ifname, "bind(AF_PACKET)"));
        }
        Ok(fd)
    })?
}

fn set_int(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: the option value is a live c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// Sends raw frames out of one interface, as if a host wrote them to the
/// wire. Frames shorter than an Ethernet header are padded with zeros to
/// 14 bytes by the kernel (`dev_validate_header`, as root).
#[derive(Debug)]
pub struct Injector {
    fd: OwnedFd,
    netns: String,
    ifname: String,
}

impl Injector {
    /// Opens the injection socket on `ifname` in `ns`.
    pub fn open(ns: &Netns, ifname: &str) -> Result<Self> {
        Ok(Self {
            fd: open(ns, ifname, 0)?,
            netns: ns.name().to_string(),
            ifname: ifname.to_string(),
        })
    }

    /// Sends one frame.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        // SAFETY: the buffer is live for the call and its length is passed.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(Error::Socket {
                netns: self.netns.clone(),
                ifname: self.ifname.clone(),
                call: "send(AF_PACKET)",
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

/// Captures every frame an interface receives (not those it sends), from
/// the moment it is opened. VLAN tags the kernel moved into metadata are
/// put back into the bytes, so a frame reads as it was on the wire.
#[derive(Debug)]
pub struct Capture {
    fd: OwnedFd,
    netns: String,
    ifname: String,
}

/// Why a capture stopped reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing arrived for the quiet period.
    Quiet,
    /// The frame bound was reached.
    Full,
    /// The time bound was reached while frames kept arriving.
    Deadline,
}

impl Capture {
    /// Opens the capture socket on `ifname` in `ns`.
    pub fn open(ns: &Netns, ifname: &str) -> Result<Self> {
        let fd = open(ns, ifname, ALL_BE)?;
        if !set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, CAPTURE_RCVBUF) {
            return Err(sock_error(ns, ifname, "setsockopt(SO_RCVBUFFORCE)"));
        }
        if !set_int(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1) {
            return Err(sock_error(ns, ifname, "setsockopt(PACKET_AUXDATA)"));
        }
        Ok(Self {
            fd,
            netns: ns.name().to_string(),
            ifname: ifname.to_string(),
        })
    }

    /// Reads received frames until none arrived for `quiet`, `max` frames
    /// were read, or `deadline` passed, whichever comes first.
    pub fn drain(
        &self,
        quiet: Duration,
        deadline: Instant,
        max: usize,
    ) -> Result<(Vec<Vec<u8>>, Stopped)> {
        let mut frames = Vec::new();
        let mut buf = vec![0u8; SNAPLEN];
        loop {
            if frames.len() >= max {
                return Ok((frames, Stopped::Full));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok((frames, Stopped::Deadline));
            }
            let wait = quiet.min(deadline - now);
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
            // SAFETY: one live pollfd, its count passed.
            let rc = unsafe { libc::poll(&raw mut pfd, 1, ms.max(1)) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(self.error("poll", e));
            }
            if rc == 0 {
                if wait >= quiet {
                    return Ok((frames, Stopped::Quiet));
                }
                continue;
            }
            if let Some(frame) = self.recv(&mut buf)? {
                frames.push(frame);
            }
        }
    }

    /// One frame, or `None` for one this capture ignores (sent by the
    /// interface itself).
    fn recv(&self, buf: &mut [u8]) -> Result<Option<Vec<u8>>> {
        // SAFETY: plain data; all-zero is valid for each.
        let mut from: libc::sockaddr_ll = unsafe { zeroed() };
        let mut cmsg = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&raw mut from).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 16]>();
        // SAFETY: every pointer in `msg` refers to a live buffer of the
        // length given; the kernel writes within them.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, libc::MSG_TRUNC) };
        if n < 0 {
            return Err(self.error("recvmsg", io::Error::last_os_error()));
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            return Ok(None);
        }
        let len = (n as usize).min(buf.len());
        let mut frame = buf[..len].to_vec();
        if let Some((tpid, tci)) = vlan_from_cmsg(&msg)
            && frame.len() >= 12
        {
            let mut tag = tpid.to_be_bytes().to_vec();
            tag.extend_from_slice(&tci.to_be_bytes());
            frame.splice(12..12, tag);
        }
        Ok(Some(frame))
    }

    fn error(&self, call: &'static str, source: io::Error) -> Error {
        Error::Socket {
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            call,
            source,
        }
    }
}

/// The VLAN tag (TPID, TCI) the kernel reports in `PACKET_AUXDATA`, if any.
fn vlan_from_cmsg(msg: &libc::msghdr) -> Option<(u16, u16)> {
    // SAFETY: `msg` was filled by recvmsg(2); the CMSG_* walkers stay
    // within msg_control/msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                let aux: libc::tpacket_auxdata =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID == 0 {
                    return None;
                }
                let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    aux.tp_vlan_tpid
                } else {
                    libc::ETH_P_8021Q as u16
                };
                return Some((tpid, aux.tp_vlan_tci));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}
