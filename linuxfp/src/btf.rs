// SPDX-License-Identifier: MIT OR Apache-2.0
//! Where a field lies in a kernel structure, from the running kernel's own
//! type information (BTF, `/sys/kernel/btf/vmlinux`).
//!
//! A few facts a fast path must know have no helper: at TC, whether the
//! skb's checksum is `CHECKSUM_PARTIAL` (the kernel's conntrack accepts
//! such a packet's checksum without computing it) is only in
//! `sk_buff::ip_summed`. An FPM can read such a field with
//! `bpf_probe_read_kernel` at the offset found here: exact for the running
//! kernel, whatever its version or configuration, because the offset comes
//! from the kernel itself.
//!
//! Only what that lookup needs is parsed: the type section (every kind's
//! size, to walk it) and the names of structs, unions and members.
//! Anonymous struct and union members are searched into, as the C compiler
//! resolves `skb->ip_summed` through `struct_group`s.
//!
//! ```no_run
//! let m = linuxfp::btf::vmlinux_member("sk_buff", "ip_summed")?;
//! assert_eq!(m.bit_size, 2);
//! # Ok::<(), linuxfp::btf::BtfError>(())
//! ```

use std::path::Path;

/// The kernel's BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// `BTF_MAGIC` as read on this host.
const MAGIC: u16 = 0xeb9f;
/// Deepest nesting of anonymous members searched.
const MAX_DEPTH: usize = 8;

/// A member's place in its structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Bits from the start of the structure.
    pub bit_offset: u32,
    /// Width in bits (a bitfield's width, or the type's size).
    pub bit_size: u32,
}

impl Member {
    /// The byte that holds the whole member and the member's shift within
    /// it (bit 0 the least significant, as on a little-endian host), if it
    /// fits in one byte.
    pub fn in_byte(&self) -> Option<(u32, u32)> {
        let shift = self.bit_offset % 8;
        (self.bit_size >= 1 && shift + self.bit_size <= 8).then_some((self.bit_offset / 8, shift))
    }
}

/// Why a member's place is not known.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The BTF could not be read.
    #[error("reading BTF {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The data is not BTF this parser understands.
    #[error("malformed BTF: {0}")]
    Malformed(String),
    /// No structure of that name with that member.
    #[error("BTF has no member {member} in struct {structure}")]
    NotFound {
        /// The structure searched.
        structure: String,
        /// The member.
        member: String,
    },
}

/// The place of `member` in `struct structure` on the running kernel.
pub fn vmlinux_member(structure: &str, member: &str) -> Result<Member, BtfError> {
    member_in_file(Path::new(VMLINUX), structure, member)
}

/// The place of `member` in `struct structure` according to a BTF file.
pub fn member_in_file(path: &Path, structure: &str, member: &str) -> Result<Member, BtfError> {
    let data = std::fs::read(path).map_err(|source| BtfError::Read {
        path: path.display().to_string(),
        source,
    })?;
    find_member(&data, structure, member)
}

/// The place of `member` in `struct structure` according to BTF `data`.
pub fn find_member(data: &[u8], structure: &str, member: &str) -> Result<Member, BtfError> {
    let btf = Btf::parse(data)?;
    let not_found = || BtfError::NotFound {
        structure: structure.into(),
        member: member.into(),
    };
    let sid = (1..btf.types.len() as u32)
        .find(|&id| {
            btf.ty(id).is_ok_and(|t| {
                t.kind == KIND_STRUCT && t.vlen > 0 && btf.name(t.name_off) == Some(structure)
            })
        })
        .ok_or_else(not_found)?;
    btf.search(sid, member, 0, 0)?.ok_or_else(not_found)
}

const KIND_INT: u32 = 1;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

/// One `btf_type` header.
#[derive(Clone, Copy)]
struct Type {
    name_off: u32,
    kind: u32,
    vlen: u32,
    kind_flag: bool,
    /// `size` or `type`, by kind.
    size_or_type: u32,
    /// Where its kind-specific data starts in the type section.
    extra: usize,
}

struct Btf<'a> {
    types_sec: &'a [u8],
    strings: &'a [u8],
    /// Index = type id (0 is `void`, never looked at).
    types: Vec<Type>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

impl<'a> Btf<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, BtfError> {
        let bad = |what: &str| BtfError::Malformed(what.into());
        let magic = data
            .get(0..2)
            .map(|m| u16::from_ne_bytes([m[0], m[1]]))
            .ok_or_else(|| bad("shorter than its header"))?;
        if magic != MAGIC {
            return Err(bad("bad magic (or another byte order)"));
        }
        let field = |at| u32_at(data, at).ok_or_else(|| bad("shorter than its header"));
        let hdr_len = field(4)? as usize;
        let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
        let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            data.get(start..start.checked_add(len)?)
        };
        let types_sec = section(type_off, type_len).ok_or_else(|| bad("type section"))?;
        let strings = section(str_off, str_len).ok_or_else(|| bad("string section"))?;
        let mut types = vec![Type {
            name_off: 0,
            kind: 0,
            vlen: 0,
            kind_flag: false,
            size_or_type: 0,
            extra: 0,
        }];
        let mut at = 0;
        while at < types_sec.len() {
            let word =
                |i: usize| u32_at(types_sec, at + 4 * i).ok_or_else(|| bad("truncated type"));
            let (name_off, info, size_or_type) = (word(0)?, word(1)?, word(2)?);
            let kind = (info >> 24) & 0x1f;
            let vlen = info & 0xffff;
            let extra = at + 12;
            let n = vlen as usize;
            let data_len = match kind {
                1 | 14 | 17 => 4,          // INT, VAR, DECL_TAG
                3 => 12,                   // ARRAY
                4 | 5 | 15 | 19 => 12 * n, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * n,           // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, modifiers, FUNC, FLOAT, TYPE_TAG
                k => return Err(BtfError::Malformed(format!("unknown kind {k}"))),
            };
            types.push(Type {
                name_off,
                kind,
                vlen,
                kind_flag: info >> 31 != 0,
                size_or_type,
                extra,
            });
            at = extra + data_len;
        }
        if at != types_sec.len() {
            return Err(bad("type section ends inside a type"));
        }
        Ok(Btf {
            types_sec,
            strings,
            types,
        })
    }

    fn ty(&self, id: u32) -> Result<Type, BtfError> {
        self.types
            .get(id as usize)
            .copied()
            .filter(|_| id != 0)
            .ok_or_else(|| BtfError::Malformed(format!("type id {id} out of range")))
    }

    fn name(&self, off: u32) -> Option<&'a str> {
        let rest = self.strings.get(off as usize..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// Follows typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Result<Type, BtfError> {
        for _ in 0..32 {
            let t = self.ty(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return Ok(t),
            }
        }
        Err(BtfError::Malformed(format!(
            "type chain from {id} too long"
        )))
    }

    /// `member` in the struct or union `id`, `base` bits into the outer
    /// structure, searching anonymous members.
    fn search(
        &self,
        id: u32,
        member: &str,
        base: u32,
        depth: usize,
    ) -> Result<Option<Member>, BtfError> {
        let t = self.resolve(id)?;
        if !matches!(t.kind, KIND_STRUCT | KIND_UNION) || depth > MAX_DEPTH {
            return Ok(None);
        }
        for i in 0..t.vlen as usize {
            let at = t.extra + 12 * i;
            let word = |k: usize| {
                u32_at(self.types_sec, at + 4 * k)
                    .ok_or_else(|| BtfError::Malformed("truncated member".into()))
            };
            let (name_off, mtype, offset) = (word(0)?, word(1)?, word(2)?);
            let (bit_offset, bitfield) = if t.kind_flag {
                (offset & 0x00ff_ffff, offset >> 24)
            } else {
                (offset, 0)
            };
            let bit_offset = base
                .checked_add(bit_offset)
                .ok_or_else(|| BtfError::Malformed("member offset overflows".into()))?;
            match self.name(name_off) {
                Some(n) if n == member => {
                    return self.place(mtype, bit_offset, bitfield).map(Some);
                }
                Some("") | None => {
                    if let Some(m) = self.search(mtype, member, bit_offset, depth + 1)? {
                        return Ok(Some(m));
                    }
                }
                Some(_) => {}
            }
        }
        Ok(None)
    }

    /// A found member's offset and width.
    fn place(&self, mtype: u32, bit_offset: u32, bitfield: u32) -> Result<Member, BtfError> {
        let t = self.resolve(mtype)?;
        if bitfield != 0 {
            return Ok(Member {
                bit_offset,
                bit_size: bitfield,
            });
        }
        if t.kind == KIND_INT {
            // Without `kind_flag`, a bitfield's place is in the int's
            // encoding: bits 16..24 its offset, 0..8 its width.
            let enc = u32_at(self.types_sec, t.extra)
                .ok_or_else(|| BtfError::Malformed("truncated int".into()))?;
            return Ok(Member {
                bit_offset: bit_offset.saturating_add((enc >> 16) & 0xff),
                bit_size: enc & 0xff,
            });
        }
        match t.kind {
            KIND_STRUCT | KIND_UNION => Ok(Member {
                bit_offset,
                bit_size: t.size_or_type.saturating_mul(8),
            }),
            k => Err(BtfError::Malformed(format!(
                "member of kind {k}: width not computed"
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
