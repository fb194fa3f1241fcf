// SPDX-License-Identifier: MIT OR Apache-2.0
//! The info blobs of iptables-nft compat expressions (`NFTA_MATCH_INFO`,
//! `NFTA_TARGET_INFO`): the kernel's `struct xt_*_info` UAPI layouts,
//! decoded for a whitelist of (name, revision) pairs. Multi-byte fields are
//! in host byte order except where the UAPI says `__be*`. Other extensions
//! are left undecoded (the raw bytes stay in the expression); a
//! whitelisted one whose blob is too short is a [`DecodeError`].

use serde::{Deserialize, Serialize};

use super::attr::{DecodeError, c_string};

/// A decoded xt match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "xt", rename_all = "snake_case")]
pub enum XtMatchInfo {
    /// `conntrack` revisions 1–3 (`-m conntrack`, and `-m state` as
    /// iptables-nft emits it: with [`CONNTRACK_STATE_ALIAS`]).
    Conntrack(Conntrack),
    /// `state` revision 0 (`xt_state_info`).
    State {
        /// `XT_STATE_*` bits: invalid 1, established 2, related 4, new 8,
        /// untracked 0x100.
        state_mask: u32,
    },
    /// `comment` revision 0.
    Comment {
        /// The comment text.
        text: String,
    },
    /// `multiport` revisions 0 and 1.
    Multiport(Multiport),
    /// `icmp` (IPv4) or `icmp6`, revision 0.
    Icmp {
        /// ICMP type.
        kind: u8,
        /// Lowest code matched.
        code_min: u8,
        /// Highest code matched.
        code_max: u8,
        /// `!` given.
        invert: bool,
    },
    /// `tcp` revision 0.
    Tcp(Tcp),
    /// `udp` revision 0.
    Udp(Udp),
    /// `mark` or `connmark` revision 1.
    Mark {
        /// Value compared.
        mark: u32,
        /// Mask applied first.
        mask: u32,
        /// `!` given.
        invert: bool,
    },
    /// `iprange` revision 1.
    IpRange(IpRange),
    /// `addrtype` revision 1.
    AddrType {
        /// `RTN_*` bit set for the source (`1 << RTN_LOCAL` ...), 0 = any.
        source: u16,
        /// Same for the destination.
        dest: u16,
        /// `XT_ADDRTYPE_*`: invert source 1, invert dest 2, limit to
        /// input interface 4, output interface 8.
        flags: u32,
    },
}

/// `XT_CONNTRACK_STATE`: the state mask is tested.
pub const CONNTRACK_STATE: u16 = 1 << 0;
/// `XT_CONNTRACK_STATUS`: the status mask is tested.
pub const CONNTRACK_STATUS: u16 = 1 << 6;
/// `XT_CONNTRACK_STATE_ALIAS`: the match came from `-m state`.
pub const CONNTRACK_STATE_ALIAS: u16 = 1 << 13;

/// `xt_conntrack_mtinfo{1,2,3}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conntrack {
    /// Revision it was decoded from.
    pub revision: u32,
    /// `XT_CONNTRACK_*` fields present (state 1, proto 2, origsrc 4,
    /// origdst 8, replsrc 0x10, repldst 0x20, status 0x40, expires 0x80,
    /// ports 0x100..0x800, direction 0x1000, state alias 0x2000).
    pub match_flags: u16,
    /// Same bits: which tests are negated.
    pub invert_flags: u16,
    /// `XT_CONNTRACK_STATE_*`: invalid 1, established 2, related 4, new 8,
    /// untracked 0x100, snat 0x200, dnat 0x400.
    pub state_mask: u16,
    /// `IPS_*` status bits.
    pub status_mask: u16,
    /// Layer-4 protocol (when `match_flags` has proto).
    pub l4proto: u16,
    /// Original source address and mask (16 bytes each).
    pub orig_src: AddrMask,
    /// Original destination.
    pub orig_dst: AddrMask,
    /// Reply source.
    pub repl_src: AddrMask,
    /// Reply destination.
    pub repl_dst: AddrMask,
    /// Expiry window in seconds.
    pub expires: (u32, u32),
    /// Port ranges (low, high; host order) of orig src, orig dst, reply
    /// src, reply dst. Revisions before 3 have single ports (low == high).
    pub ports: [(u16, u16); 4],
}

impl Conntrack {
    /// The state mask when it is the only thing tested (no negation):
    /// what `--ctstate X` / `--state X` mean.
    pub fn plain_state(&self) -> Option<u16> {
        let tested = self.match_flags & !CONNTRACK_STATE_ALIAS;
        (tested == CONNTRACK_STATE && self.invert_flags == 0).then_some(self.state_mask)
    }
}

/// An address and its mask (`union nf_inet_addr`, 16 bytes each).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrMask {
    /// Address (IPv4 in the first 4 bytes).
    pub addr: [u8; 16],
    /// Mask.
    pub mask: [u8; 16],
}

/// `xt_multiport` / `xt_multiport_v1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Multiport {
    /// 0 source, 1 destination, 2 either.
    pub direction: u8,
    /// Inclusive port ranges (single ports have low == high).
    pub ports: Vec<(u16, u16)>,
    /// `!` given (revision 1).
    pub invert: bool,
}

/// The port ranges `xt_tcp` and `xt_udp` start with (host order,
/// inclusive).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRanges {
    /// Source port range.
    pub sport: (u16, u16),
    /// Destination port range.
    pub dport: (u16, u16),
}

/// `xt_tcp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tcp {
    /// Ports.
    pub ports: PortRanges,
    /// TCP option number tested (0: none).
    pub option: u8,
    /// Flags examined.
    pub flags_mask: u8,
    /// Flags required among them.
    pub flags_cmp: u8,
    /// `XT_TCP_INV_*`: sport 1, dport 2, flags 4, option 8.
    pub invflags: u8,
}

/// `xt_udp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Udp {
    /// Ports.
    pub ports: PortRanges,
    /// `XT_UDP_INV_*`: sport 1, dport 2.
    pub invflags: u8,
}

/// `xt_iprange_mtinfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRange {
    /// Source range (16-byte addresses).
    pub src: ([u8; 16], [u8; 16]),
    /// Destination range.
    pub dst: ([u8; 16], [u8; 16]),
    /// `IPRANGE_*`: src 1, dst 2, src inverted 0x10, dst inverted 0x20.
    pub flags: u8,
}

/// A decoded xt target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "xt", rename_all = "snake_case")]
pub enum XtTargetInfo {
    /// `REJECT` (IPv4 and IPv6) revision 0.
    Reject {
        /// `IPT_*`/`IP6T_*` reject-with code.
        with: u32,
    },
    /// `LOG` revision 0.
    Log {
        /// Syslog level.
        level: u8,
        /// `XT_LOG_*` flags.
        flags: u8,
        /// Prefix.
        prefix: String,
    },
}

/// Reads `N` bytes at `off`, or a length error naming the extension.
fn at<const N: usize>(info: &[u8], off: usize, what: &str) -> Result<[u8; N], DecodeError> {
    info.get(off..off + N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| DecodeError::length(what, "INFO", info.len(), format!(">= {}", off + N)))
}

fn u16_at(info: &[u8], off: usize, what: &str) -> Result<u16, DecodeError> {
    at::<2>(info, off, what).map(u16::from_ne_bytes)
}

fn u32_at(info: &[u8], off: usize, what: &str) -> Result<u32, DecodeError> {
    at::<4>(info, off, what).map(u32::from_ne_bytes)
}

fn be16_at(info: &[u8], off: usize, what: &str) -> Result<u16, DecodeError> {
    at::<2>(info, off, what).map(u16::from_be_bytes)
}

/// Decodes a match blob; `Ok(None)` for extensions not on the whitelist.
pub fn decode_match(
    name: &str,
    revision: u32,
    info: &[u8],
) -> Result<Option<XtMatchInfo>, DecodeError> {
    let what = format!("xt match {name} rev {revision}");
    let w = what.as_str();
    Ok(Some(match (name, revision) {
        ("conntrack", 1..=3) => XtMatchInfo::Conntrack(conntrack(info, revision, w)?),
        ("state", 0) => XtMatchInfo::State {
            state_mask: u32_at(info, 0, w)?,
        },
        ("comment", 0) => {
            // `char comment[256]`; only require what is there up to a NUL.
            if info.is_empty() {
                return Err(DecodeError::length(w, "INFO", 0, ">= 1"));
            }
            XtMatchInfo::Comment {
                text: c_string(&info[..info.len().min(256)]),
            }
        }
        ("multiport", 0 | 1) => XtMatchInfo::Multiport(multiport(info, revision, w)?),
        ("icmp" | "icmp6", 0) => {
            let b = at::<4>(info, 0, w)?;
            XtMatchInfo::Icmp {
                kind: b[0],
                code_min: b[1],
                code_max: b[2],
                invert: b[3] & 1 != 0,
            }
        }
        ("tcp", 0) => {
            let b = at::<4>(info, 8, w)?;
            XtMatchInfo::Tcp(Tcp {
                ports: port_ranges(info, w)?,
                option: b[0],
                flags_mask: b[1],
                flags_cmp: b[2],
                invflags: b[3],
            })
        }
        ("udp", 0) => XtMatchInfo::Udp(Udp {
            ports: port_ranges(info, w)?,
            invflags: at::<1>(info, 8, w)?[0],
        }),
        ("mark" | "connmark", 1) => XtMatchInfo::Mark {
            mark: u32_at(info, 0, w)?,
            mask: u32_at(info, 4, w)?,
            invert: at::<1>(info, 8, w)?[0] != 0,
        },
        ("iprange", 1) => XtMatchInfo::IpRange(IpRange {
            src: (at(info, 0, w)?, at(info, 16, w)?),
            dst: (at(info, 32, w)?, at(info, 48, w)?),
            flags: at::<1>(info, 64, w)?[0],
        }),
        ("addrtype", 1) => XtMatchInfo::AddrType {
            source: u16_at(info, 0, w)?,
            dest: u16_at(info, 2, w)?,
            flags: u32_at(info, 4, w)?,
        },
        _ => return Ok(None),
    }))
}

/// The four host-order `u16` ports `xt_tcp` and `xt_udp` start with.
fn port_ranges(info: &[u8], w: &str) -> Result<PortRanges, DecodeError> {
    Ok(PortRanges {
        sport: (u16_at(info, 0, w)?, u16_at(info, 2, w)?),
        dport: (u16_at(info, 4, w)?, u16_at(info, 6, w)?),
    })
}

/// `xt_conntrack_mtinfo1/2/3`: 8 × 16-byte address/mask, expires (2 × u32),
/// l4proto u16, 4 × be16 ports, then match/invert flags and the masks (u8
/// in revision 1, u16 after), then (revision 3) the high ports.
fn conntrack(info: &[u8], revision: u32, w: &str) -> Result<Conntrack, DecodeError> {
    let am = |i: usize| -> Result<AddrMask, DecodeError> {
        Ok(AddrMask {
            addr: at(info, 32 * i, w)?,
            mask: at(info, 32 * i + 16, w)?,
        })
    };
    let port = |i: usize| be16_at(info, 138 + 2 * i, w);
    let (state_mask, status_mask) = if revision == 1 {
        let b = at::<2>(info, 150, w)?;
        (u16::from(b[0]), u16::from(b[1]))
    } else {
        (u16_at(info, 150, w)?, u16_at(info, 152, w)?)
    };
    let mut ports = [(0u16, 0u16); 4];
    for (i, p) in ports.iter_mut().enumerate() {
        let low = port(i)?;
        let high = if revision >= 3 {
            u16_at(info, 154 + 2 * i, w)?
        } else {
            low
        };
        *p = (low, high);
    }
    Ok(Conntrack {
        revision,
        orig_src: am(0)?,
        orig_dst: am(1)?,
        repl_src: am(2)?,
        repl_dst: am(3)?,
        expires: (u32_at(info, 128, w)?, u32_at(info, 132, w)?),
        l4proto: u16_at(info, 136, w)?,
        match_flags: u16_at(info, 146, w)?,
        invert_flags: u16_at(info, 148, w)?,
        state_mask,
        status_mask,
        ports,
    })
}

/// `xt_multiport` (flags, count, ports[15]) and `xt_multiport_v1` (+
/// pflags[15]: port i starts a range ending at port i+1, + invert).
fn multiport(info: &[u8], revision: u32, w: &str) -> Result<Multiport, DecodeError> {
    const MAX: usize = 15;
    let head = at::<2>(info, 0, w)?;
    let count = usize::from(head[1]);
    if count > MAX {
        return Err(DecodeError::value(w, "count", count));
    }
    let port = |i: usize| u16_at(info, 2 + 2 * i, w);
    let mut ports = Vec::new();
    let mut invert = false;
    if revision == 0 {
        for i in 0..count {
            let p = port(i)?;
            ports.push((p, p));
        }
    } else {
        let pflags = at::<MAX>(info, 32, w)?;
        invert = at::<1>(info, 47, w)?[0] != 0;
        let mut i = 0;
        while i < count {
            let low = port(i)?;
            if pflags[i] != 0 && i + 1 < count {
                ports.push((low, port(i + 1)?));
                i += 2;
            } else {
                ports.push((low, low));
                i += 1;
            }
        }
    }
    Ok(Multiport {
        direction: head[0],
        ports,
        invert,
    })
}

/// Decodes a target blob; `Ok(None)` for extensions not on the whitelist.
pub fn decode_target(
    name: &str,
    revision: u32,
    info: &[u8],
) -> Result<Option<XtTargetInfo>, DecodeError> {
    let what = format!("xt target {name} rev {revision}");
    let w = what.as_str();
    Ok(Some(match (name, revision) {
        ("REJECT", 0) => XtTargetInfo::Reject {
            with: u32_at(info, 0, w)?,
        },
        ("LOG", 0) => {
            let head = at::<2>(info, 0, w)?;
            XtTargetInfo::Log {
                level: head[0],
                flags: head[1],
                prefix: c_string(info.get(2..info.len().min(32)).unwrap_or(&[])),
            }
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn multiport_v1_from_the_capture() {
        // filter-design-captures/rawdump.txt: `--dports 22,443,8000:8080`.
        let mut info = hex("01041600bb01401f901f");
        info.resize(48, 0);
        info[32 + 2] = 1;
        let m = decode_match("multiport", 1, &info).expect("decode");
        assert_eq!(
            m,
            Some(XtMatchInfo::Multiport(Multiport {
                direction: 1,
                ports: vec![(22, 22), (443, 443), (8000, 8080)],
                invert: false,
            }))
        );
        assert!(decode_match("multiport", 1, &info[..40]).is_err());
    }

    #[test]
    fn conntrack_rev3_state_and_alias() {
        let mut info = vec![0u8; 168];
        info[146..148].copy_from_slice(&(CONNTRACK_STATE | CONNTRACK_STATE_ALIAS).to_ne_bytes());
        info[150..152].copy_from_slice(&8u16.to_ne_bytes());
        let Some(XtMatchInfo::Conntrack(c)) = decode_match("conntrack", 3, &info).expect("ok")
        else {
            panic!("not conntrack")
        };
        assert_eq!(c.plain_state(), Some(8));
        assert!(decode_match("conntrack", 3, &info[..160]).is_err());
        assert_eq!(decode_match("conntrack", 9, &info), Ok(None));
    }

    #[test]
    fn tcp_and_udp_ports() {
        let mut tcp = Vec::new();
        for p in [0u16, 0xffff, 80, 80] {
            tcp.extend_from_slice(&p.to_ne_bytes());
        }
        tcp.extend_from_slice(&[0, 0x16, 0x02, 0x02, 0, 0, 0, 0]);
        let Ok(Some(XtMatchInfo::Tcp(t))) = decode_match("tcp", 0, &tcp) else {
            panic!("tcp")
        };
        assert_eq!((t.ports.sport, t.ports.dport), ((0, 0xffff), (80, 80)));
        assert_eq!((t.flags_mask, t.flags_cmp, t.invflags), (0x16, 0x02, 0x02));
        let Ok(Some(XtMatchInfo::Udp(u))) = decode_match("udp", 0, &tcp[..12]) else {
            panic!("udp")
        };
        assert_eq!((u.ports.dport, u.invflags), ((80, 80), 0));
        assert!(decode_match("udp", 0, &tcp[..8]).is_err());
    }

    #[test]
    fn icmp_comment_and_targets() {
        assert_eq!(
            decode_match("icmp", 0, &hex("0800ff0000000000")),
            Ok(Some(XtMatchInfo::Icmp {
                kind: 8,
                code_min: 0,
                code_max: 255,
                invert: false
            }))
        );
        let mut c = b"hello".to_vec();
        c.resize(256, 0);
        assert_eq!(
            decode_match("comment", 0, &c),
            Ok(Some(XtMatchInfo::Comment {
                text: "hello".into()
            }))
        );
        assert_eq!(
            decode_target("REJECT", 0, &hex("0300000000000000")),
            Ok(Some(XtTargetInfo::Reject { with: 3 }))
        );
        let mut log = hex("0400");
        log.extend_from_slice(b"fwdrop: ");
        log.resize(32, 0);
        assert_eq!(
            decode_target("LOG", 0, &log),
            Ok(Some(XtTargetInfo::Log {
                level: 4,
                flags: 0,
                prefix: "fwdrop: ".into()
            }))
        );
        assert_eq!(decode_target("MASQUERADE", 0, &[0; 24]), Ok(None));
    }
}
