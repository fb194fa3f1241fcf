// SPDX-License-Identifier: MIT OR Apache-2.0
use super::*;

/// Builds BTF blobs: strings and types, in the kernel's layout.
struct Blob {
    strings: Vec<u8>,
    types: Vec<u8>,
    next_id: u32,
}

impl Blob {
    fn new() -> Self {
        Blob {
            strings: vec![0],
            types: Vec::new(),
            next_id: 1,
        }
    }

    fn string(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn words(&mut self, w: &[u32]) {
        for x in w {
            self.types.extend_from_slice(&x.to_ne_bytes());
        }
    }

    /// An INT of `bytes` bytes with the encoding word `enc`.
    fn int(&mut self, name: &str, bytes: u32, enc: u32) -> u32 {
        let n = self.string(name);
        self.words(&[n, KIND_INT << 24, bytes, enc]);
        self.id()
    }

    fn typedef(&mut self, name: &str, to: u32) -> u32 {
        let n = self.string(name);
        self.words(&[n, KIND_TYPEDEF << 24, to]);
        self.id()
    }

    /// A struct or union; members `(name, type, offset word)`.
    fn compound(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        kind_flag: bool,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let n = self.string(name);
        let info = (kind << 24) | members.len() as u32 | if kind_flag { 1 << 31 } else { 0 };
        self.words(&[n, info, size]);
        for (name, ty, off) in members {
            let m = self.string(name);
            self.words(&[m, *ty, *off]);
        }
        self.id()
    }

    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id - 1
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let header = [
            u32::from(MAGIC) | (1 << 16), // magic, version 1, flags 0
            24,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ];
        for w in header {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// `struct sk_buff` in miniature: the member sits in an anonymous struct
/// inside an anonymous union (a `struct_group`), after another bitfield.
fn skb_like(kind_flag: bool) -> Vec<u8> {
    let mut b = Blob::new();
    let u8_t = b.int("unsigned char", 1, 8);
    let u8_td = b.typedef("__u8", u8_t);
    let u32_t = b.int("unsigned int", 4, 32);
    // Without kind_flag, each bitfield's width and offset are in an INT.
    let (pkt_type, summed) = if kind_flag {
        (u8_td, u8_td)
    } else {
        (b.int("", 1, 3), b.int("", 1, (3 << 16) | 2))
    };
    let off = |bit: u32, width: u32| if kind_flag { (width << 24) | bit } else { bit };
    let inner = b.compound(
        KIND_STRUCT,
        "",
        4,
        kind_flag,
        &[
            ("pkt_type", pkt_type, off(8, 3)),
            // Without kind_flag the member's offset is the storage unit's
            // (bit 8); the INT adds 3.
            ("ip_summed", summed, if kind_flag { off(11, 2) } else { 8 }),
        ],
    );
    let named = b.compound(KIND_STRUCT, "headers", 4, false, &[("x", u32_t, 0)]);
    let group = b.compound(
        KIND_UNION,
        "",
        4,
        false,
        &[("", inner, 0), ("headers", named, 0)],
    );
    b.compound(
        KIND_STRUCT,
        "sk_buff",
        12,
        false,
        &[("len", u32_t, 0), ("", group, 64)],
    );
    b.bytes()
}

#[test]
fn finds_a_bitfield_inside_anonymous_groups() {
    for kind_flag in [true, false] {
        let m = find_member(&skb_like(kind_flag), "sk_buff", "ip_summed")
            .unwrap_or_else(|e| panic!("kind_flag {kind_flag}: {e}"));
        assert_eq!(
            m,
            Member {
                bit_offset: 64 + 11,
                bit_size: 2
            },
            "kind_flag {kind_flag}"
        );
        assert_eq!(m.in_byte(), Some((9, 3)));
    }
}

#[test]
fn a_named_member_is_not_searched_into() {
    let data = skb_like(true);
    // `x` exists only inside the named member `headers`.
    assert!(matches!(
        find_member(&data, "sk_buff", "x"),
        Err(BtfError::NotFound { .. })
    ));
    assert!(matches!(
        find_member(&data, "net_device", "ip_summed"),
        Err(BtfError::NotFound { .. })
    ));
    let len = find_member(&data, "sk_buff", "len").expect("len");
    assert_eq!((len.bit_offset, len.bit_size), (0, 32));
    assert_eq!(len.in_byte(), None, "a 32-bit member is not in one byte");
}

#[test]
fn bad_data_is_an_error_never_a_panic() {
    let data = skb_like(true);
    for cut in 0..data.len() {
        let _ = find_member(&data[..cut], "sk_buff", "ip_summed");
    }
    let mut flipped = data.clone();
    flipped[0] ^= 0xff;
    assert!(matches!(
        find_member(&flipped, "sk_buff", "ip_summed"),
        Err(BtfError::Malformed(_))
    ));
    // Every byte changed, one at a time: errors or answers, no panic.
    for i in 0..data.len() {
        let mut d = data.clone();
        d[i] = d[i].wrapping_add(0x41);
        let _ = find_member(&d, "sk_buff", "ip_summed");
    }
    // Offsets that overflow when nested: an error, not an overflow panic.
    let mut b = Blob::new();
    let u8_t = b.int("unsigned char", 1, 8);
    let inner = b.compound(KIND_STRUCT, "", 1, false, &[("deep", u8_t, u32::MAX - 4)]);
    b.compound(KIND_STRUCT, "outer", 1, false, &[("", inner, u32::MAX - 4)]);
    assert!(matches!(
        find_member(&b.bytes(), "outer", "deep"),
        Err(BtfError::Malformed(_))
    ));
    assert!(matches!(
        member_in_file(Path::new("/nonexistent/btf"), "sk_buff", "ip_summed"),
        Err(BtfError::Read { .. })
    ));
}

#[test]
fn the_running_kernel_has_ip_summed_as_two_bits() {
    if !Path::new(VMLINUX).exists() {
        eprintln!("skipped: no {VMLINUX}");
        return;
    }
    let m = vmlinux_member("sk_buff", "ip_summed").expect("sk_buff::ip_summed");
    assert_eq!(m.bit_size, 2, "{m:?}");
    let (byte, _) = m.in_byte().expect("within a byte");
    assert!(byte < 256, "{m:?}");
}
