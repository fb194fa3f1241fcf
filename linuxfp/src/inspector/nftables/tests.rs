// SPDX-License-Identifier: MIT OR Apache-2.0
//! Unit tests on crafted nfnetlink bytes: every decoded expression kind,
//! malformed and truncated input (typed errors, rules kept unparsed, no
//! panic), and a fuzz-style pass of random and mutated bytes.

use super::{
    attr::nla,
    message::{
        NFNL_SUBSYS_NFTABLES, NFT_MSG_NEWCHAIN, NFT_MSG_NEWGEN, NFT_MSG_NEWRULE, NFT_MSG_NEWSET,
        NFT_MSG_NEWSETELEM, NFT_MSG_NEWTABLE,
    },
    *,
};

fn be32(kind: u16, v: u32) -> Vec<u8> {
    nla(kind, &v.to_be_bytes())
}

fn s(kind: u16, v: &str) -> Vec<u8> {
    let mut b = v.as_bytes().to_vec();
    b.push(0);
    nla(kind, &b)
}

/// `NFTA_DATA_VALUE` nested in attribute `kind`.
fn data(kind: u16, v: &[u8]) -> Vec<u8> {
    nla(kind, &nla(1, v))
}

/// `NFTA_DATA_VERDICT` nested in attribute `kind`.
fn verdict(kind: u16, code: i32, chain: Option<&str>) -> Vec<u8> {
    let mut v = be32(1, code as u32);
    if let Some(c) = chain {
        v.extend(s(2, c));
    }
    nla(kind, &nla(2, &v))
}

/// One `NFTA_LIST_ELEM` expression.
fn expr(name: &str, attrs: &[Vec<u8>]) -> Vec<u8> {
    let mut e = s(1, name);
    e.extend(nla(2, &attrs.concat()));
    nla(1, &e)
}

fn msg(op: u8, family: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = attrs.concat();
    let len = 16 + 4 + body.len();
    let mut v = Vec::new();
    v.extend_from_slice(&(len as u32).to_ne_bytes());
    v.extend_from_slice(&((u16::from(NFNL_SUBSYS_NFTABLES) << 8) | u16::from(op)).to_ne_bytes());
    v.extend_from_slice(&[0; 10]);
    v.extend_from_slice(&[family, 0, 0, 0]);
    v.extend_from_slice(&body);
    v
}

fn rule(family: u8, chain: &str, handle: u64, exprs: &[Vec<u8>]) -> Vec<u8> {
    msg(
        NFT_MSG_NEWRULE,
        family,
        &[
            s(1, "t"),
            s(2, chain),
            nla(3, &handle.to_be_bytes()),
            nla(4, &exprs.concat()),
        ],
    )
}

fn decode_one(name: &str, attrs: &[Vec<u8>]) -> Result<Expr, DecodeError> {
    decode_expr(name, &attrs.concat())
}

#[test]
fn forward_chain_summary_with_rules_and_drop_policy() {
    let mut hook = be32(1, 2);
    hook.extend(be32(2, 0));
    let mut b = msg(NFT_MSG_NEWGEN, 0, &[be32(1, 42)]);
    b.extend(msg(NFT_MSG_NEWTABLE, 2, &[s(1, "filter"), be32(2, 0)]));
    b.extend(msg(
        NFT_MSG_NEWCHAIN,
        2,
        &[
            s(1, "filter"),
            s(3, "FORWARD"),
            nla(4, &hook),
            be32(5, 0),
            s(7, "filter"),
        ],
    ));
    b.extend(msg(NFT_MSG_NEWCHAIN, 2, &[s(1, "filter"), s(3, "DOCKER")]));
    let accept = expr("immediate", &[be32(1, 0), verdict(2, 1, None)]);
    for h in [5, 6] {
        b.extend(msg(
            NFT_MSG_NEWRULE,
            2,
            &[
                s(1, "filter"),
                s(2, "FORWARD"),
                nla(3, &(h as u64).to_be_bytes()),
                nla(4, &accept),
            ],
        ));
    }
    let rs = Ruleset::from_messages(&b);
    assert_eq!(rs.generation, 42);
    assert_eq!(rs.chains.len(), 2);
    assert_eq!(rs.base_chains.len(), 1);
    let c = &rs.base_chains()[0];
    assert_eq!(
        (
            c.family.as_str(),
            c.hook.as_str(),
            c.policy.as_str(),
            c.rules
        ),
        ("ip", "forward", "drop", 2)
    );
    assert!(c.affects_forwarding());
    let handles: Vec<u64> = rs
        .rules_of(Family::Ip, "filter", "FORWARD")
        .map(|r| r.handle)
        .collect();
    assert_eq!(handles, vec![5, 6]);
}

#[test]
fn register_expressions_decode() {
    assert_eq!(
        decode_one("meta", &[be32(2, 3), be32(3, 1)]),
        Ok(Expr::Meta(Meta {
            key: MetaKey::Mark,
            op: RegOp::Set { sreg: 1 }
        }))
    );
    assert_eq!(
        decode_one("meta", &[be32(2, 99), be32(1, 8)]),
        Ok(Expr::Meta(Meta {
            key: MetaKey::Other(99),
            op: RegOp::Load { dreg: 8 }
        }))
    );
    assert_eq!(
        decode_one(
            "payload",
            &[
                be32(5, 1),
                be32(2, 1),
                be32(3, 8),
                be32(4, 1),
                be32(6, 1),
                be32(7, 10),
                be32(8, 0)
            ]
        ),
        Ok(Expr::Payload(Payload {
            base: PayloadBase::Network,
            offset: 8,
            len: 1,
            op: RegOp::Set { sreg: 1 },
            csum: Some(PayloadCsum {
                kind: 1,
                offset: 10,
                flags: 0
            }),
        }))
    );
    assert_eq!(
        decode_one("ct", &[be32(1, 1), be32(2, 3), nla(3, &[1])]),
        Ok(Expr::Ct(Ct {
            key: CtKey::Mark,
            dir: Some(1),
            op: RegOp::Load { dreg: 1 }
        }))
    );
    assert_eq!(
        decode_one("fib", &[be32(1, 1), be32(2, 1), be32(3, 2 | 8)]),
        Ok(Expr::Fib(Fib {
            dreg: 1,
            result: 1,
            flags: 10
        }))
    );
}

#[test]
fn operations_and_verdicts_decode() {
    assert_eq!(
        decode_one("cmp", &[be32(1, 1), be32(2, 5), data(3, &[1, 2])]),
        Ok(Expr::Cmp(Cmp {
            sreg: 1,
            op: CmpOp::Gte,
            data: vec![1, 2]
        }))
    );
    assert_eq!(
        decode_one(
            "bitwise",
            &[
                be32(1, 1),
                be32(2, 1),
                be32(3, 4),
                be32(6, 1),
                data(7, &8u32.to_ne_bytes())
            ]
        ),
        Ok(Expr::Bitwise(Bitwise {
            sreg: 1,
            dreg: 1,
            len: 4,
            op: BitwiseOp::LeftShift { shift: 8 }
        }))
    );
    assert_eq!(
        decode_one(
            "bitwise",
            &[be32(1, 1), be32(2, 2), be32(3, 4), be32(6, 4), be32(8, 9)]
        ),
        Ok(Expr::Bitwise(Bitwise {
            sreg: 1,
            dreg: 2,
            len: 4,
            op: BitwiseOp::Or { sreg2: 9 }
        }))
    );
    let codes: [(i32, Option<&str>, Verdict); 7] = [
        (0, None, Verdict::Drop),
        (1, None, Verdict::Accept),
        (-1, None, Verdict::Continue),
        (-5, None, Verdict::Return),
        (-3, Some("c"), Verdict::Jump { chain: "c".into() }),
        (-4, Some("g"), Verdict::Goto { chain: "g".into() }),
        (3 | (7 << 16), None, Verdict::Queue { num: 7 }),
    ];
    for (code, chain, v) in codes {
        assert_eq!(
            decode_one("immediate", &[be32(1, 0), verdict(2, code, chain)]),
            Ok(Expr::Immediate(Immediate {
                dreg: 0,
                data: Data::Verdict(v)
            }))
        );
    }
    assert_eq!(
        decode_one(
            "lookup",
            &[s(1, "allow"), be32(2, 1), be32(3, 0), be32(5, 1)]
        ),
        Ok(Expr::Lookup(Lookup {
            set: "allow".into(),
            set_id: None,
            sreg: 1,
            dreg: Some(0),
            flags: LOOKUP_F_INV,
        }))
    );
    assert_eq!(
        decode_one(
            "range",
            &[be32(1, 1), be32(2, 0), data(3, &[0, 1]), data(4, &[0, 9])]
        ),
        Ok(Expr::Range(Range {
            sreg: 1,
            negated: false,
            from: vec![0, 1],
            to: vec![0, 9]
        }))
    );
}

#[test]
fn statements_decode() {
    assert_eq!(
        decode_one(
            "counter",
            &[nla(1, &9u64.to_be_bytes()), nla(2, &1u64.to_be_bytes())]
        ),
        Ok(Expr::Counter)
    );
    assert_eq!(decode_one("notrack", &[]), Ok(Expr::Notrack));
    assert_eq!(
        decode_one("reject", &[be32(1, 0), nla(2, &[3])]),
        Ok(Expr::Reject(Reject {
            kind: 0,
            icmp_code: Some(3)
        }))
    );
    assert_eq!(
        decode_one("masq", &[be32(1, 0x10)]),
        Ok(Expr::Masq(Masq {
            flags: Some(0x10),
            reg_proto_min: None,
            reg_proto_max: None
        }))
    );
    assert_eq!(
        decode_one(
            "nat",
            &[be32(1, 1), be32(2, 2), be32(3, 1), be32(4, 1), be32(7, 1)]
        ),
        Ok(Expr::Nat(Nat {
            kind: 1,
            family: Some(2),
            reg_addr_min: Some(1),
            reg_addr_max: Some(1),
            reg_proto_min: None,
            reg_proto_max: None,
            flags: Some(1)
        }))
    );
    let mut prefix = s(2, "drop: ");
    prefix.extend(nla(1, &5u16.to_be_bytes()));
    assert_eq!(
        decode_expr("log", &prefix),
        Ok(Expr::Log(Log {
            prefix: Some("drop: ".into()),
            group: Some(5),
            ..Log::default()
        }))
    );
    let mut info = b"web".to_vec();
    info.resize(256, 0);
    let m = decode_one("match", &[s(1, "comment"), be32(2, 0), nla(3, &info)]);
    assert!(matches!(
        m,
        Ok(Expr::Match(XtMatch {
            decoded: Some(xt::XtMatchInfo::Comment { .. }),
            ..
        }))
    ));
    let t = decode_one("target", &[s(1, "MARK"), be32(2, 2), nla(3, &[0; 8])]);
    assert!(
        matches!(t, Ok(Expr::Target(XtTarget { decoded: None, ref info, .. })) if info.len() == 8)
    );
}

#[test]
fn unknown_expressions_are_kept_whole() {
    assert_eq!(
        decode_one("quota", &[nla(1, &5u64.to_be_bytes()), be32(2, 1)]),
        Ok(Expr::Unknown {
            name: "quota".into(),
            attrs: vec![
                RawAttr {
                    kind: 1,
                    data: 5u64.to_be_bytes().to_vec()
                },
                RawAttr {
                    kind: 2,
                    data: 1u32.to_be_bytes().to_vec()
                },
            ]
        })
    );
}

#[test]
fn malformed_expressions_are_typed_errors() {
    // Missing key.
    assert!(matches!(
        decode_one("meta", &[be32(1, 1)]),
        Err(DecodeError::Missing { .. })
    ));
    // Neither dreg nor sreg.
    assert!(matches!(
        decode_one("ct", &[be32(2, 0)]),
        Err(DecodeError::Missing { .. })
    ));
    // A 2-byte register number.
    assert!(matches!(
        decode_one("cmp", &[nla(1, &[0, 1]), be32(2, 0), data(3, &[1])]),
        Err(DecodeError::Length { .. })
    ));
    // Unknown cmp operator, unknown verdict code, jump without a chain.
    assert!(matches!(
        decode_one("cmp", &[be32(1, 1), be32(2, 17), data(3, &[1])]),
        Err(DecodeError::Value { .. })
    ));
    assert!(decode_one("immediate", &[be32(1, 0), verdict(2, -9, None)]).is_err());
    assert!(decode_one("immediate", &[be32(1, 0), verdict(2, -3, None)]).is_err());
    // Plain bytes into the verdict register.
    assert!(decode_one("immediate", &[be32(1, 0), data(2, &[1, 0, 0, 0])]).is_err());
    // Whitelisted xt match with a short blob.
    assert!(decode_one("match", &[s(1, "conntrack"), be32(2, 3), nla(3, &[0; 20])]).is_err());
}

#[test]
fn malformed_rule_is_kept_unparsed_with_context() {
    let good = expr("immediate", &[be32(1, 0), verdict(2, 1, None)]);
    let bad = expr("cmp", &[be32(1, 1)]);
    let mut b = rule(1, "c", 7, std::slice::from_ref(&good));
    b.extend(rule(1, "c", 8, &[bad, good.clone()]));
    // Truncated expression list: the last attribute claims too many bytes.
    let mut trunc = good.clone();
    trunc[0] = 200;
    b.extend(rule(1, "c", 9, &[trunc]));
    let rs = Ruleset::from_messages(&b);
    assert_eq!(rs.rules.len(), 3);
    assert!(rs.rules[0].expressions().is_some());
    let errs: Vec<&RuleError> = rs.unparsed_rules().collect();
    assert_eq!(errs.len(), 2);
    assert_eq!(
        (
            errs[0].family,
            errs[0].table.as_str(),
            errs[0].chain.as_str(),
            errs[0].handle
        ),
        (Family::Inet, "t", "c", 8)
    );
    assert!(matches!(errs[0].source, DecodeError::Missing { .. }));
    assert!(matches!(errs[1].source, DecodeError::Truncated { .. }));
    assert!(errs[0].to_string().contains("rule inet t c handle 8"));
    // A rule that cannot be placed (no handle) is an error of the ruleset.
    let rs = Ruleset::from_messages(&msg(NFT_MSG_NEWRULE, 1, &[s(1, "t"), s(2, "c")]));
    assert!(rs.rules.is_empty());
    assert_eq!(rs.errors.len(), 1);
}

#[test]
fn set_elements_attach_to_their_set_and_errors_flag_it() {
    let set = msg(
        NFT_MSG_NEWSET,
        1,
        &[
            s(1, "t"),
            s(2, "m"),
            be32(3, SET_MAP),
            be32(4, 13),
            be32(5, 2),
            be32(6, DATA_VERDICT),
            be32(7, 0),
        ],
    );
    let mut el = data(1, &[0, 22]);
    el.extend(verdict(2, -3, Some("ssh")));
    let mut el2 = data(1, &[0, 23]);
    el2.extend(nla(4, &1000u64.to_be_bytes()));
    let elems = msg(
        NFT_MSG_NEWSETELEM,
        1,
        &[
            s(1, "t"),
            s(2, "m"),
            nla(3, &[nla(1, &el), nla(1, &el2)].concat()),
        ],
    );
    let mut b = set.clone();
    b.extend(elems);
    let rs = Ruleset::from_messages(&b);
    let m = rs.set(Family::Inet, "t", "m").expect("set");
    assert!(m.is_verdict_map() && m.is_dynamic());
    assert_eq!(m.elements.len(), 2);
    assert_eq!(
        m.elements[0].data,
        Some(Data::Verdict(Verdict::Jump {
            chain: "ssh".into()
        }))
    );
    assert_eq!(m.elements[1].timeout_ms, Some(1000));

    // A bad element flags the set; elements of an unknown set are an error.
    let bad = msg(
        NFT_MSG_NEWSETELEM,
        1,
        &[s(1, "t"), s(2, "m"), nla(3, &nla(1, &be32(3, 0)[..6]))],
    );
    let orphan = msg(NFT_MSG_NEWSETELEM, 1, &[s(1, "t"), s(2, "zz"), nla(3, &[])]);
    let mut b = set;
    b.extend(bad);
    b.extend(orphan);
    let rs = Ruleset::from_messages(&b);
    assert!(
        rs.set(Family::Inet, "t", "m")
            .and_then(|s| s.elements_error.clone())
            .is_some()
    );
    assert_eq!(rs.errors.len(), 1);
}

#[test]
fn truncated_and_garbage_messages_do_not_panic() {
    assert!(parse_messages(&[1, 2, 3]).is_empty());
    let mut m = msg(NFT_MSG_NEWCHAIN, 2, &[s(1, "t")]);
    m.truncate(m.len() - 3);
    assert!(parse_messages(&m).is_empty());
    // A chain whose hook is garbage: an error, not a chain.
    let rs = Ruleset::from_messages(&msg(
        NFT_MSG_NEWCHAIN,
        2,
        &[s(1, "t"), s(3, "c"), nla(4, &[255, 255, 1, 0])],
    ));
    assert!(rs.chains.is_empty() && rs.errors.len() == 1);
    // A message too short for nfgenmsg.
    let mut short = Vec::new();
    short.extend_from_slice(&18u32.to_ne_bytes());
    short.extend_from_slice(&((10u16 << 8) | 6).to_ne_bytes());
    short.extend_from_slice(&[0; 12]);
    assert!(parse_messages(&short).is_empty());
}

/// xorshift64*: deterministic pseudo-random bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn fuzz_decoders_never_panic() {
    let recordings: [&[u8]; 4] = [
        include_bytes!("../../../tests/data/nft_docker.bin"),
        include_bytes!("../../../tests/data/nft_flannel.bin"),
        include_bytes!("../../../tests/data/nft_native.bin"),
        include_bytes!("../../../tests/data/nft_mixed.bin"),
    ];
    let names = [
        "meta",
        "payload",
        "cmp",
        "bitwise",
        "immediate",
        "lookup",
        "ct",
        "counter",
        "log",
        "limit",
        "nat",
        "masq",
        "redir",
        "reject",
        "range",
        "fib",
        "notrack",
        "match",
        "target",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for _ in 0..4000 {
        let len = rng.below(96);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = decode_expr(names[rng.below(names.len())], &bytes);
        let _ = decode_expressions(&bytes);
        let _ = decode_set_elems(&bytes);
        let _ = xt::decode_match("conntrack", rng.below(4) as u32, &bytes);
        let _ = xt::decode_match("multiport", rng.below(2) as u32, &bytes);
        let _ = Ruleset::from_messages(&bytes);
    }
    // Mutations of real recordings: flipped bytes keep the framing mostly
    // intact, so the decoders see plausible but wrong attributes.
    for rec in recordings {
        for _ in 0..300 {
            let mut b = rec.to_vec();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            let cut = b.len() - rng.below(64).min(b.len());
            let _ = Ruleset::from_messages(&b[..cut]);
        }
    }
}

#[test]
fn netdev_ingress_chain_with_devices() {
    let mut devs = s(1, "eth0");
    devs.extend(s(1, "eth1"));
    let mut hook = be32(1, 0);
    hook.extend(be32(2, (-500i32) as u32));
    hook.extend(nla(4, &devs));
    let rs = Ruleset::from_messages(&msg(
        NFT_MSG_NEWCHAIN,
        5,
        &[s(1, "t"), s(3, "in"), nla(4, &hook), be32(5, 1)],
    ));
    let c = rs.chain(Family::Netdev, "t", "in").expect("chain");
    let b = c.base.as_ref().expect("base");
    assert_eq!(
        (b.hook, b.priority, b.policy, b.chain_type.as_str()),
        (Hook::Ingress, -500, Policy::Accept, "filter")
    );
    assert_eq!(b.devices, vec!["eth0".to_string(), "eth1".to_string()]);
    assert_eq!(rs.base_chains()[0].hook, "ingress");
    assert_eq!(Family::from_u8(Family::Netdev.to_u8()), Family::Netdev);
    assert_eq!(Family::from_u8(99).name(), "unknown");
}

#[test]
fn a_dump_fed_a_message_at_a_time_folds_to_the_same_ruleset() {
    // As the reader decodes datagrams while the kernel dumps the next.
    for name in ["nft_mixed.bin", "nft_docker.bin", "nft_native.bin"] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/").to_string() + name;
        let bytes = std::fs::read(&path).expect("recorded ruleset");
        let whole = Ruleset::from_messages(&bytes);
        assert!(!whole.rules.is_empty(), "{name}");
        let mut fold = super::RulesetFold::default();
        let mut rest = &bytes[..];
        let mut fed = 0;
        while rest.len() >= 4 {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let next = ((len + 3) & !3).clamp(1, rest.len());
            fold.feed(&rest[..next]);
            rest = &rest[next..];
            fed += 1;
        }
        assert!(fed > whole.rules.len(), "{name}: one message at a time");
        assert_eq!(fold.finish(), whole, "{name}");
    }
}
