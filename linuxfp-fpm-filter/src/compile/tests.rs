// SPDX-License-Identifier: MIT OR Apache-2.0
//! The compiler on the recorded rulesets (Docker, Flannel, the research
//! note's mixed one, native nft) and on hand-built ones: what is
//! translated, and where rules punt on which predicates.

use linuxfp::inspector::nftables::{
    BaseHook, Bitwise, BitwiseOp, Chain, Cmp, CmpOp, Ct, CtKey, Data, Expr, Immediate, Log, Lookup,
    Meta, MetaKey, Payload, PayloadBase, Range, RegOp, Rule, RuleExprs, Ruleset, Set, SetElem,
    Table, Verdict,
};

use super::*;

fn recorded(name: &str) -> Ruleset {
    let path = format!(
        "{}/../linuxfp/tests/data/nft_{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    Ruleset::from_messages(&std::fs::read(&path).expect("recorded ruleset"))
}

/// The same ruleset without its non-filter base chains, to look at how the
/// filter chains translate.
fn without_nat(mut rs: Ruleset) -> Ruleset {
    rs.chains
        .retain(|c| c.base.as_ref().is_none_or(|b| b.chain_type == "filter"));
    rs
}

fn ifaces() -> Interfaces {
    Interfaces::new(
        [
            ("eth0", 2),
            ("eth1", 3),
            ("docker0", 5),
            ("veth0", 6),
            ("veth1", 7),
            ("vethab", 8),
        ]
        .map(|(n, i)| (n.to_string(), i)),
    )
}

fn program(p: &PathPlan) -> &Program {
    match p {
        PathPlan::Rules(p) => p,
        other => panic!("expected rules, got {other:?}"),
    }
}

fn punt_reason(p: &PathPlan) -> &str {
    match p {
        PathPlan::Punt { reason } => reason,
        other => panic!("expected a punt, got {other:?}"),
    }
}

fn rule(p: &Program, chain: &str, handle: u64) -> IrRule {
    p.chain(chain)
        .unwrap_or_else(|| panic!("chain {chain}"))
        .rules
        .iter()
        .find(|r| r.handle == handle)
        .unwrap_or_else(|| panic!("rule {handle} in {chain}"))
        .clone()
}

fn yes(pred: Pred) -> Match {
    Match {
        pred,
        negate: false,
    }
}

fn not(pred: Pred) -> Match {
    Match { pred, negate: true }
}

fn v4(a: [u8; 4], len: u32) -> Prefix {
    Prefix {
        addr: a.to_vec(),
        len,
    }
}

#[test]
fn nat_chains_become_established_gates() {
    for name in ["docker", "flannel", "mixed", "native"] {
        let rs = recorded(name);
        let nat_names: Vec<String> = rs
            .chains
            .iter()
            .filter(|c| c.base.as_ref().is_some_and(|b| b.chain_type == "nat"))
            .map(|c| format!("{} {} {}", c.family, c.table, c.name))
            .collect();
        let c = compile(&rs, &ifaces());
        let p = program(&c.v4);
        let nat: Vec<&IrChain> = p
            .chains
            .iter()
            .filter(|c| nat_names.contains(&c.name))
            .collect();
        assert!(!nat.is_empty(), "{name}: no nat chain compiled");
        for c in nat {
            // Established (mirrored, non-NAT) packets pass; the kernel
            // never traverses nat chains for them. Everything else punts.
            assert!(c.base.as_ref().is_some_and(|b| b.accept), "{name}: {c:?}");
            // The first base chain of a path the kernel tracks starts
            // with the conntrack gate (the same test, for conntrack).
            let gate = |why| IrRule {
                handle: 0,
                matches: vec![not(Pred::CtState(2))],
                action: Action::Punt(why),
            };
            let rules: Vec<IrRule> = c
                .rules
                .iter()
                .filter(|r| **r != gate(PuntWhy::Conntrack))
                .cloned()
                .collect();
            assert_eq!(rules, [gate(PuntWhy::Nat)], "{name}: {}", c.name);
        }
        // The chains the nat rules jump to are not compiled (Docker's
        // `ip nat DOCKER`).
        if name == "docker" {
            assert!(rs.chain(Family::Ip, "nat", "DOCKER").is_some());
            assert!(p.chain("ip nat DOCKER").is_none());
        }
    }
}

#[test]
fn docker_forward_chains_translate_and_punt_where_they_must() {
    let c = compile(&without_nat(recorded("docker")), &ifaces());
    let p = program(&c.v4);
    let names: Vec<&str> = p.chains.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ip filter FORWARD",
            "ip filter DOCKER-USER",
            "ip filter DOCKER-ISOLATION-STAGE-1",
            "ip filter DOCKER",
            "ip filter DOCKER-ISOLATION-STAGE-2",
        ]
    );
    let fwd = p.chain("ip filter FORWARD").expect("FORWARD");
    assert_eq!(
        fwd.base,
        Some(IrBase {
            hook: "forward".into(),
            priority: 0,
            accept: false
        })
    );
    // Docker's rules use conntrack, so the kernel tracks every IPv4
    // packet: the first base chain starts with the gate that leaves
    // every flow not yet in the mirror to it.
    assert!(tracks_connections(&without_nat(recorded("docker")), L3::V4));
    assert_eq!(fwd.rules[0].matches, [not(Pred::CtState(2))]);
    assert_eq!(fwd.rules[0].action, Action::Punt(PuntWhy::Conntrack));
    // -j DOCKER-USER
    assert_eq!(fwd.rules[1].action, Action::Jump(1));
    // -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT.
    let r = &fwd.rules[3];
    assert_eq!(r.matches, [yes(Pred::Oif(5)), yes(Pred::CtState(6))]);
    assert_eq!(r.action, Action::Accept);
    // -i docker0 ! -o docker0 -j ACCEPT
    assert_eq!(fwd.rules[5].matches, [yes(Pred::Iif(5)), not(Pred::Oif(5))]);
    assert_eq!(fwd.rules[5].action, Action::Accept);

    // DOCKER-USER: -m state INVALID -j DROP.
    let r = rule(p, "ip filter DOCKER-USER", 20);
    assert_eq!(r.matches, [yes(Pred::CtState(1))]);
    assert_eq!(r.action, Action::Drop);
    // -p tcp -m multiport --dports 22,443,8000:8080 -m comment -j ACCEPT
    let r = rule(p, "ip filter DOCKER-USER", 21);
    assert_eq!(
        r.matches,
        [
            yes(Pred::L4Proto(6)),
            yes(Pred::InSet {
                field: Field::Dport,
                set: 0
            })
        ]
    );
    assert_eq!(r.action, Action::Accept);
    assert_eq!(
        p.sets[0].elements,
        [
            (22u16.to_be_bytes().to_vec(), 16),
            (443u16.to_be_bytes().to_vec(), 16),
            (8000u16.to_be_bytes().to_vec(), 10),
            (8064u16.to_be_bytes().to_vec(), 12),
            (8080u16.to_be_bytes().to_vec(), 16),
        ]
    );
    // -s 10.66.0.0/16 -j LOG: punts on the source prefix (a 2-byte load).
    let r = rule(p, "ip filter DOCKER-USER", 22);
    assert_eq!(r.matches, [yes(Pred::Saddr(v4([10, 66, 0, 0], 16)))]);
    assert_eq!(r.action, Action::Punt(PuntWhy::Stateful("LOG".into())));
    // -d 10.66.0.1/32 -p udp -j REJECT: punts so the kernel answers.
    let r = rule(p, "ip filter DOCKER-USER", 23);
    assert_eq!(
        r.matches,
        [
            yes(Pred::L4Proto(17)),
            yes(Pred::Daddr(v4([10, 66, 0, 1], 32)))
        ]
    );
    assert_eq!(r.action, Action::Punt(PuntWhy::Reject));
    assert_eq!(rule(p, "ip filter DOCKER-USER", 24).action, Action::Return);
    // DOCKER: -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp --dport 80
    let r = rule(p, "ip filter DOCKER", 15);
    assert_eq!(
        r.matches,
        [
            not(Pred::Iif(5)),
            yes(Pred::Oif(5)),
            yes(Pred::L4Proto(6)),
            yes(Pred::Daddr(v4([172, 17, 0, 2], 32))),
            yes(Pred::Dport(80, 80)),
        ]
    );
    assert_eq!(
        rule(p, "ip filter DOCKER-ISOLATION-STAGE-2", 18).action,
        Action::Drop
    );
    // An ip table is not on the IPv6 path.
    assert_eq!(c.v6, PathPlan::Open);
}

#[test]
fn flannel_forward_accepts_by_prefix() {
    let c = compile(&without_nat(recorded("flannel")), &ifaces());
    let p = program(&c.v4);
    let r = rule(p, "ip filter FLANNEL-FWD", 6);
    assert_eq!(r.matches, [yes(Pred::Saddr(v4([10, 244, 0, 0], 16)))]);
    assert_eq!(r.action, Action::Accept);
    let r = rule(p, "ip filter FLANNEL-FWD", 7);
    assert_eq!(r.matches, [yes(Pred::Daddr(v4([10, 244, 0, 0], 16)))]);
}

#[test]
fn mixed_ruleset_punts_every_stateful_or_unknown_rule() {
    let c = compile(&without_nat(recorded("mixed")), &ifaces());
    let p = program(&c.v4);
    // Base chains in hook then priority order.
    let base: Vec<&str> = p.base_chains().map(|c| c.name.as_str()).collect();
    assert_eq!(
        base,
        [
            "ip mangle PREROUTING",
            "ip mangle FORWARD",
            "ip filter FORWARD",
            "ip mangle POSTROUTING"
        ]
    );
    // -j MARK: a mark write.
    assert_eq!(
        rule(p, "ip mangle PREROUTING", 6).action,
        Action::Punt(PuntWhy::Stateful("target MARK".into()))
    );
    let f = "ip filter FORWARD";
    // -s 10.0.0.0/8 -p tcp --dport 80 -j DROP: a real drop.
    let r = rule(p, f, 8);
    assert_eq!(
        r.matches,
        [
            yes(Pred::L4Proto(6)),
            yes(Pred::Saddr(v4([10, 0, 0, 0], 8))),
            yes(Pred::Dport(80, 80))
        ]
    );
    assert_eq!(r.action, Action::Drop);
    // -d 192.168.1.0/24 -p udp --sport 53 -j ACCEPT (a 3-byte load).
    assert_eq!(
        rule(p, f, 12).matches,
        [
            yes(Pred::L4Proto(17)),
            yes(Pred::Daddr(v4([192, 168, 1, 0], 24))),
            yes(Pred::Sport(53, 53))
        ]
    );
    // ! -s 172.16.0.0/12 -p tcp ! --dport 1000:2000 -j ACCEPT
    assert_eq!(
        rule(p, f, 19).matches,
        [
            yes(Pred::L4Proto(6)),
            not(Pred::Saddr(v4([172, 16, 0, 0], 12))),
            not(Pred::Dport(1000, 2000))
        ]
    );
    // --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT
    assert_eq!(
        rule(p, f, 24).matches,
        [
            yes(Pred::L4Proto(6)),
            yes(Pred::TcpFlags {
                mask: 0x17,
                cmp: 0x02
            })
        ]
    );
    // The rest punt, each with its reason.
    let why = |h| match rule(p, f, h).action {
        Action::Punt(w) => w,
        a => panic!("rule {h}: {a:?}"),
    };
    assert_eq!(why(13), PuntWhy::Stateful("LOG".into()));
    assert_eq!(why(15), PuntWhy::Unsupported("xt iprange".into()));
    assert_eq!(why(16), PuntWhy::Unsupported("xt addrtype".into()));
    assert_eq!(why(17), PuntWhy::Stateful("limit".into()));
    assert_eq!(why(18), PuntWhy::Stateful("target TCPMSS".into()));
    assert_eq!(why(20), PuntWhy::Unsupported("xt match physdev".into()));
    assert_eq!(why(21), PuntWhy::Unsupported("xt match statistic".into()));
    assert_eq!(why(23), PuntWhy::Unsupported("xt mark".into()));
    // TCPMSS punts on what precedes it: -p tcp --tcp-flags SYN,RST SYN.
    assert_eq!(
        rule(p, f, 18).matches,
        [
            yes(Pred::L4Proto(6)),
            yes(Pred::TcpFlags {
                mask: 0x06,
                cmp: 0x02
            })
        ]
    );
    // MYCHAIN: -s 1.2.3.4 -j REJECT, -m mark -j RETURN.
    let r = rule(p, "ip filter MYCHAIN", 25);
    assert_eq!(r.matches, [yes(Pred::Saddr(v4([1, 2, 3, 4], 32)))]);
    assert_eq!(r.action, Action::Punt(PuntWhy::Reject));
}

#[test]
fn native_sets_wildcards_and_families() {
    let c = compile(&without_nat(recorded("native")), &ifaces());
    let p = program(&c.v4);
    let f = "inet native forward_chain";
    // iifname "veth*" udp dport 53 accept: the wildcard is a set of the
    // matching interfaces.
    let r = rule(p, f, 15);
    let Pred::InSet {
        field: Field::Iif,
        set,
    } = r.matches[0].pred
    else {
        panic!("{r:?}")
    };
    let idx: Vec<u32> = p.sets[set]
        .elements
        .iter()
        .map(|(v, _)| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
        .collect();
    assert_eq!(idx, [6, 7, 8]);
    // iifname "eth0" oifname "eth1" accept
    assert_eq!(
        rule(p, f, 16).matches,
        [yes(Pred::Iif(2)), yes(Pred::Oif(3))]
    );
    // ip saddr @blocked drop: an interval set as prefixes.
    let r = rule(p, f, 17);
    let Pred::InSet { set, .. } = r.matches[0].pred else {
        panic!("{r:?}")
    };
    assert_eq!(
        p.sets[set].elements,
        [(vec![192, 0, 2, 0], 24), (vec![198, 51, 100, 7], 32)]
    );
    assert_eq!(r.action, Action::Drop);
    // A set with timeouts punts.
    assert_eq!(
        rule(p, f, 18).action,
        Action::Punt(PuntWhy::Stateful("dynamic set timed".into()))
    );
    // vmap and concatenations punt after the protocol check.
    let r = rule(p, f, 21);
    assert_eq!(r.matches, [yes(Pred::L4Proto(6))]);
    assert_eq!(
        r.action,
        Action::Punt(PuntWhy::Unsupported("map lookup".into()))
    );
    // ip6 daddr fe80::/10 accept never matches IPv4: left out.
    assert!(
        p.chain(f)
            .expect("chain")
            .rules
            .iter()
            .all(|r| r.handle != 24)
    );
    // meta mark set punts; the IPv6 path has the ip6 rule and not the ip ones.
    assert_eq!(
        rule(p, f, 28).action,
        Action::Punt(PuntWhy::Stateful("meta Mark set".into()))
    );
    let p6 = program(&c.v6);
    let r = rule(p6, f, 24);
    assert_eq!(
        r.matches,
        [yes(Pred::Daddr(Prefix {
            addr: {
                let mut a = vec![0u8; 16];
                a[0] = 0xfe;
                a[1] = 0x80;
                a
            },
            len: 10
        }))]
    );
    assert!(
        p6.chain(f)
            .expect("chain")
            .rules
            .iter()
            .all(|r| r.handle != 26 && r.handle != 17)
    );
    // The dormant table is not on any path.
    assert!(p.chains.iter().all(|c| !c.name.contains("sleepy")));
}

// ---- Hand-built rulesets -------------------------------------------------

fn table(family: Family, name: &str) -> Table {
    Table {
        family,
        name: name.into(),
        flags: 0,
        handle: 1,
    }
}

fn base(family: Family, t: &str, name: &str, hook: Hook, prio: i32, policy: Policy) -> Chain {
    Chain {
        family,
        table: t.into(),
        name: name.into(),
        handle: 1,
        flags: 1,
        base: Some(BaseHook {
            hook,
            priority: prio,
            policy,
            chain_type: "filter".into(),
            devices: vec![],
        }),
    }
}

fn regular(family: Family, t: &str, name: &str) -> Chain {
    Chain {
        family,
        table: t.into(),
        name: name.into(),
        handle: 2,
        flags: 0,
        base: None,
    }
}

fn nft_rule(family: Family, t: &str, chain: &str, handle: u64, exprs: Vec<Expr>) -> Rule {
    Rule {
        family,
        table: t.into(),
        chain: chain.into(),
        handle,
        position: None,
        exprs: RuleExprs::Parsed(exprs),
        userdata: None,
    }
}

fn meta(key: MetaKey) -> Expr {
    Expr::Meta(Meta {
        key,
        op: RegOp::Load { dreg: 1 },
    })
}

fn payload(base: PayloadBase, offset: u32, len: u32) -> Expr {
    Expr::Payload(Payload {
        base,
        offset,
        len,
        op: RegOp::Load { dreg: 1 },
        csum: None,
    })
}

fn cmp(op: CmpOp, data: &[u8]) -> Expr {
    Expr::Cmp(Cmp {
        sreg: 1,
        op,
        data: data.to_vec(),
    })
}

fn verdict(v: Verdict) -> Expr {
    Expr::Immediate(Immediate {
        dreg: 0,
        data: Data::Verdict(v),
    })
}

/// `meta l4proto udp udp dport <port>` as nft emits it.
fn udp_dport(port: u16) -> Vec<Expr> {
    vec![
        meta(MetaKey::L4Proto),
        cmp(CmpOp::Eq, &[17]),
        payload(PayloadBase::Transport, 2, 2),
        cmp(CmpOp::Eq, &port.to_be_bytes()),
    ]
}

fn inet_forward(rules: Vec<Vec<Expr>>, policy: Policy) -> Ruleset {
    let mut rs = Ruleset {
        generation: 7,
        tables: vec![table(Family::Inet, "t")],
        chains: vec![base(Family::Inet, "t", "fwd", Hook::Forward, 0, policy)],
        ..Default::default()
    };
    for (i, exprs) in rules.into_iter().enumerate() {
        rs.rules
            .push(nft_rule(Family::Inet, "t", "fwd", i as u64 + 1, exprs));
    }
    rs
}

#[test]
fn drop_one_udp_port_compiles_for_both_families() {
    let mut r = udp_dport(5001);
    r.insert(0, Expr::Counter);
    r.push(verdict(Verdict::Drop));
    let rs = inet_forward(vec![r], Policy::Accept);
    let c = compile(&rs, &ifaces());
    for l3 in [L3::V4, L3::V6] {
        let p = program(c.path(l3));
        assert_eq!(
            p.chains[0].rules,
            [IrRule {
                handle: 1,
                matches: vec![yes(Pred::L4Proto(17)), yes(Pred::Dport(5001, 5001))],
                action: Action::Drop,
            }]
        );
        assert_eq!(p.chains[0].base.as_ref().map(|b| b.accept), Some(true));
    }
    assert_eq!(c.known_ifaces.len(), 6);
    // A bridge port is not a place routed packets are classified on.
    let mut ifs = ifaces();
    ifs.enslave(6);
    let c = compile(&rs, &ifs);
    assert!(!c.known_ifaces.contains(&6));
    assert_eq!(c.known_ifaces.len(), 5);
}

#[test]
fn first_unknown_expression_makes_a_punt_on_the_prefix() {
    // udp dport 53 <unknown "socket"> drop → punt on udp dport 53.
    let mut r = udp_dport(53);
    r.push(Expr::Unknown {
        name: "socket".into(),
        attrs: vec![],
    });
    r.push(verdict(Verdict::Drop));
    // ip saddr 10.0.0.0/8 log accept → punt on the prefix.
    let log = vec![
        meta(MetaKey::NfProto),
        cmp(CmpOp::Eq, &[2]),
        payload(PayloadBase::Network, 12, 4),
        Expr::Bitwise(Bitwise {
            sreg: 1,
            dreg: 1,
            len: 4,
            op: BitwiseOp::MaskXor {
                mask: vec![255, 0, 0, 0],
                xor: vec![0; 4],
            },
        }),
        cmp(CmpOp::Eq, &[10, 0, 0, 0]),
        Expr::Log(Log::default()),
        verdict(Verdict::Accept),
    ];
    // ct state != 0 accept.
    let ct = vec![
        Expr::Ct(Ct {
            key: CtKey::State,
            dir: None,
            op: RegOp::Load { dreg: 1 },
        }),
        cmp(CmpOp::Neq, &[0, 0, 0, 0]),
        verdict(Verdict::Accept),
    ];
    // reject after a port range.
    let reject = vec![
        meta(MetaKey::L4Proto),
        cmp(CmpOp::Eq, &[6]),
        payload(PayloadBase::Transport, 2, 2),
        Expr::Range(Range {
            sreg: 1,
            negated: false,
            from: 1000u16.to_be_bytes().to_vec(),
            to: 2000u16.to_be_bytes().to_vec(),
        }),
        Expr::Reject(linuxfp::inspector::nftables::Reject {
            kind: 1,
            icmp_code: None,
        }),
    ];
    let rs = inet_forward(vec![r, log, ct, reject], Policy::Drop);
    let c = compile(&rs, &ifaces());
    let p = program(&c.v4);
    // The `ct` rule makes the kernel track connections: the chain starts
    // with the conntrack gate; the rules follow.
    assert_eq!(
        p.chains[0].rules[0].action,
        Action::Punt(PuntWhy::Conntrack)
    );
    let rules = &p.chains[0].rules[1..];
    assert_eq!(
        rules[0].matches,
        [yes(Pred::L4Proto(17)), yes(Pred::Dport(53, 53))]
    );
    assert_eq!(
        rules[0].action,
        Action::Punt(PuntWhy::Unsupported("socket".into()))
    );
    assert_eq!(rules[1].matches, [yes(Pred::Saddr(v4([10, 0, 0, 0], 8)))]);
    assert_eq!(
        rules[1].action,
        Action::Punt(PuntWhy::Stateful("log".into()))
    );
    // `ct state != 0`: any state (mirrored flows match, others punt).
    assert_eq!(rules[2].matches, [yes(Pred::CtState(0xff))]);
    assert_eq!(rules[2].action, Action::Accept);
    assert_eq!(
        rules[3].matches,
        [yes(Pred::L4Proto(6)), yes(Pred::Dport(1000, 2000))]
    );
    assert_eq!(rules[3].action, Action::Punt(PuntWhy::Reject));
    // On IPv6 the ip saddr rule is left out (meta nfproto ipv4).
    let p6 = program(&c.v6);
    assert_eq!(p6.chains[0].rules.len(), 1 + 3);
}

#[test]
fn jumps_gotos_returns_and_unknown_interfaces() {
    let mut rs = inet_forward(
        vec![
            // iifname "nosuch" drop: never matches, left out.
            vec![
                meta(MetaKey::IifName),
                cmp(CmpOp::Eq, b"nosuch\0"),
                verdict(Verdict::Drop),
            ],
            // oifname != "nosuch" jump sub: always true interface predicate.
            vec![
                meta(MetaKey::OifName),
                cmp(CmpOp::Neq, b"nosuch\0"),
                verdict(Verdict::Jump {
                    chain: "sub".into(),
                }),
            ],
            vec![verdict(Verdict::Goto {
                chain: "sub2".into(),
            })],
            vec![verdict(Verdict::Jump {
                chain: "missing".into(),
            })],
        ],
        Policy::Accept,
    );
    rs.chains.push(regular(Family::Inet, "t", "sub"));
    rs.chains.push(regular(Family::Inet, "t", "sub2"));
    rs.chains.push(regular(Family::Inet, "t", "unreached"));
    rs.rules.push(nft_rule(
        Family::Inet,
        "t",
        "sub",
        10,
        vec![verdict(Verdict::Return)],
    ));
    let c = compile(&rs, &ifaces());
    let p = program(&c.v4);
    let names: Vec<&str> = p.chains.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["inet t fwd", "inet t sub", "inet t sub2"]);
    let rules = &p.chains[0].rules;
    assert_eq!(rules.len(), 3);
    assert!(rules[0].matches.is_empty());
    assert_eq!(rules[0].action, Action::Jump(1));
    assert_eq!(rules[1].action, Action::Goto(2));
    assert!(matches!(
        rules[2].action,
        Action::Punt(PuntWhy::Unsupported(_))
    ));
    assert_eq!(p.chains[1].rules[0].action, Action::Return);
}

#[test]
fn output_interface_at_prerouting_punts() {
    let mut rs = Ruleset {
        tables: vec![table(Family::Ip, "t")],
        chains: vec![base(
            Family::Ip,
            "t",
            "pre",
            Hook::Prerouting,
            -100,
            Policy::Accept,
        )],
        ..Default::default()
    };
    rs.rules.push(nft_rule(
        Family::Ip,
        "t",
        "pre",
        1,
        vec![
            meta(MetaKey::Oif),
            cmp(CmpOp::Eq, &2u32.to_ne_bytes()),
            verdict(Verdict::Drop),
        ],
    ));
    let c = compile(&rs, &ifaces());
    let p = program(&c.v4);
    assert_eq!(
        p.chains[0].rules[0].action,
        Action::Punt(PuntWhy::Unsupported(
            "output interface at prerouting".into()
        ))
    );
}

#[test]
fn paths_that_punt_whole() {
    // A route chain (mangle OUTPUT-like on a routed hook).
    let mut rs = inet_forward(vec![], Policy::Accept);
    let mut route = base(Family::Ip, "m", "r", Hook::Prerouting, -150, Policy::Accept);
    if let Some(b) = route.base.as_mut() {
        b.chain_type = "route".into();
    }
    rs.chains.push(route);
    let c = compile(&rs, &ifaces());
    assert!(punt_reason(&c.v4).contains("route chain"));
    // The IPv6 path does not see an ip table.
    assert!(matches!(c.v6, PathPlan::Rules(_)));

    // Two forward chains at the same priority.
    let mut rs = inet_forward(vec![], Policy::Accept);
    rs.tables.push(table(Family::Ip, "u"));
    rs.chains.push(base(
        Family::Ip,
        "u",
        "FORWARD",
        Hook::Forward,
        0,
        Policy::Accept,
    ));
    assert!(punt_reason(&compile(&rs, &ifaces()).v4).contains("share hook and priority"));

    // A netdev chain runs after TC.
    let mut rs = inet_forward(vec![], Policy::Accept);
    rs.chains.push(base(
        Family::Netdev,
        "n",
        "in",
        Hook::Ingress,
        0,
        Policy::Accept,
    ));
    let c = compile(&rs, &ifaces());
    assert!(punt_reason(&c.v4).contains("after the TC hook"));
    assert!(punt_reason(&c.v6).contains("after the TC hook"));

    // Nothing on the path: open. Input chains do not count.
    let mut rs = Ruleset {
        tables: vec![table(Family::Ip, "t")],
        chains: vec![base(Family::Ip, "t", "in", Hook::Input, 0, Policy::Drop)],
        ..Default::default()
    };
    assert_eq!(compile(&rs, &ifaces()).v4, PathPlan::Open);
    // A dormant table's chains are not attached.
    rs.chains
        .push(base(Family::Ip, "t", "f", Hook::Forward, 0, Policy::Drop));
    rs.tables[0].flags = linuxfp::inspector::nftables::TABLE_F_DORMANT;
    assert_eq!(compile(&rs, &ifaces()).v4, PathPlan::Open);
}

#[test]
fn sets_with_ranges_and_ordered_port_compares() {
    let mut rs = inet_forward(
        vec![
            vec![
                meta(MetaKey::L4Proto),
                cmp(CmpOp::Eq, &[17]),
                payload(PayloadBase::Transport, 2, 2),
                Expr::Lookup(Lookup {
                    set: "ports".into(),
                    set_id: None,
                    sreg: 1,
                    dreg: None,
                    flags: linuxfp::inspector::nftables::LOOKUP_F_INV,
                }),
                verdict(Verdict::Drop),
            ],
            vec![
                meta(MetaKey::L4Proto),
                cmp(CmpOp::Eq, &[6]),
                payload(PayloadBase::Transport, 0, 2),
                cmp(CmpOp::Gt, &1023u16.to_be_bytes()),
                verdict(Verdict::Accept),
            ],
        ],
        Policy::Accept,
    );
    let el = |k: u16, end: bool| SetElem {
        key: k.to_be_bytes().to_vec(),
        key_end: None,
        data: None,
        objref: None,
        flags: u32::from(end),
        timeout_ms: None,
    };
    rs.sets.push(Set {
        family: Family::Inet,
        table: "t".into(),
        name: "ports".into(),
        handle: 1,
        flags: linuxfp::inspector::nftables::SET_INTERVAL,
        key_type: 13,
        key_len: 2,
        data_type: None,
        data_len: None,
        timeout_ms: None,
        // Dump order is the kernel's (descending here); the interval end
        // is exclusive: { 53, 100-199 }.
        elements: vec![el(200, true), el(100, false), el(54, true), el(53, false)],
        elements_error: None,
    });
    let c = compile(&rs, &ifaces());
    let p = program(&c.v4);
    let r = &p.chains[0].rules[0];
    assert_eq!(
        r.matches[1],
        not(Pred::InSet {
            field: Field::Dport,
            set: 0
        })
    );
    let els: Vec<(u16, u32)> = p.sets[0]
        .elements
        .iter()
        .map(|(v, b)| (u16::from_be_bytes([v[0], v[1]]), *b))
        .collect();
    // 53, then 100-199 = 100/14 (100-103), 104/13 (104-111), 112/12 (112-127),
    // 128/10 (128-191), 192/13 (192-199).
    assert_eq!(
        els,
        [
            (53, 16),
            (100, 14),
            (104, 13),
            (112, 12),
            (128, 10),
            (192, 13)
        ]
    );
    assert_eq!(
        p.chains[0].rules[1].matches[1],
        yes(Pred::Sport(1024, u16::MAX))
    );
}

#[test]
fn range_prefixes_cover_exactly() {
    for (lo, hi) in [(0u128, 65535u128), (1, 1), (8000, 8080), (1, 65534), (0, 0)] {
        let ps = range_prefixes(lo, hi, 16);
        let mut covered = 0u128;
        let mut next = lo;
        for (v, bits) in ps {
            assert_eq!(v, next, "contiguous");
            let size = 1u128 << (16 - bits);
            assert_eq!(v % size, 0, "aligned");
            covered += size;
            next = v + size;
        }
        assert_eq!(covered, hi - lo + 1);
    }
    assert_eq!(range_prefixes(0, u128::MAX, 128), [(0, 0)]);
    assert_eq!(prefix_len(&[255, 240, 0, 0]), Some(12));
    assert_eq!(prefix_len(&[255, 0, 255, 0]), None);
}

#[test]
fn legacy_tables_punt_everything() {
    let mut st = KernelState {
        nft: inet_forward(vec![], Policy::Accept).into(),
        ..Default::default()
    };
    assert!(matches!(compile_state(&st).v4, PathPlan::Rules(_)));
    st.legacy_tables = vec!["filter".into()];
    let c = compile_state(&st);
    assert!(punt_reason(&c.v4).contains("iptables-legacy"));
    assert!(punt_reason(&c.v6).contains("iptables-legacy"));
}

fn ct_load(key: CtKey) -> Expr {
    Expr::Ct(Ct {
        key,
        dir: None,
        op: RegOp::Load { dreg: 1 },
    })
}

fn ct_mask(mask: u32) -> Expr {
    Expr::Bitwise(Bitwise {
        sreg: 1,
        dreg: 1,
        len: 4,
        op: BitwiseOp::MaskXor {
            mask: mask.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
    })
}

/// `ct state` as nft emits it (`bitwise & mask`, `cmp op value`) or plain.
fn ct_state(mask: Option<u32>, op: CmpOp, value: u32) -> Vec<Expr> {
    let mut v = vec![ct_load(CtKey::State)];
    v.extend(mask.map(ct_mask));
    v.push(cmp(op, &value.to_ne_bytes()));
    v
}

#[test]
fn ct_state_and_direction_become_predicates() {
    let with = |mut e: Vec<Expr>, v: Verdict| {
        e.push(verdict(v));
        e
    };
    let rs = inet_forward(
        vec![
            // ct state established,related accept
            with(ct_state(Some(6), CmpOp::Neq, 0), Verdict::Accept),
            // ct state invalid drop
            with(ct_state(Some(1), CmpOp::Neq, 0), Verdict::Drop),
            // ct state != new accept (bitwise & 8, cmp eq 0)
            with(ct_state(Some(8), CmpOp::Eq, 0), Verdict::Accept),
            // ct state == new (plain compare of one bit)
            with(ct_state(None, CmpOp::Eq, 8), Verdict::Accept),
            // Two bits never equal one state: the rule is left out.
            with(ct_state(None, CmpOp::Eq, 6), Verdict::Accept),
            // ct direction reply accept
            vec![
                ct_load(CtKey::Direction),
                cmp(CmpOp::Eq, &[1]),
                verdict(Verdict::Accept),
            ],
            // ct mark 7 accept: only the kernel knows.
            vec![
                ct_load(CtKey::Mark),
                cmp(CmpOp::Eq, &7u32.to_ne_bytes()),
                verdict(Verdict::Accept),
            ],
        ],
        Policy::Drop,
    );
    let c = compile(&rs, &ifaces());
    let p = program(&c.v4);
    assert!(p.reads_ct());
    let got: Vec<(Vec<Match>, Action)> = p.chains[0]
        .rules
        .iter()
        .map(|r| (r.matches.clone(), r.action.clone()))
        .collect();
    assert_eq!(
        got,
        [
            // The kernel tracks connections here: new flows are its own.
            (
                vec![not(Pred::CtState(2))],
                Action::Punt(PuntWhy::Conntrack)
            ),
            (vec![yes(Pred::CtState(6))], Action::Accept),
            (vec![yes(Pred::CtState(1))], Action::Drop),
            (vec![not(Pred::CtState(8))], Action::Accept),
            (vec![yes(Pred::CtState(8))], Action::Accept),
            (vec![yes(Pred::CtDirection(1))], Action::Accept),
            (vec![], Action::Punt(PuntWhy::Conntrack)),
        ]
    );
}

#[test]
fn the_reference_evaluator_knows_mirrored_flows_and_punts_the_rest() {
    use super::eval::{CtClass, Fields, Outcome, evaluate, evaluate_ct};
    let with = |mut e: Vec<Expr>, v: Verdict| {
        e.push(verdict(v));
        e
    };
    let mut new_udp = ct_state(Some(8), CmpOp::Neq, 0);
    new_udp.extend(udp_dport(5000));
    let rs = inet_forward(
        vec![
            with(ct_state(Some(6), CmpOp::Neq, 0), Verdict::Accept),
            with(ct_state(Some(1), CmpOp::Neq, 0), Verdict::Drop),
            with(new_udp, Verdict::Accept),
        ],
        Policy::Drop,
    );
    let mut rs = rs;
    // A nat postrouting chain with a masquerade rule.
    rs.tables.push(table(Family::Ip, "nat"));
    let mut post = base(
        Family::Ip,
        "nat",
        "POSTROUTING",
        Hook::Postrouting,
        100,
        Policy::Accept,
    );
    if let Some(b) = post.base.as_mut() {
        b.chain_type = "nat".into();
    }
    rs.chains.push(post);
    let c = compile(&rs, &ifaces());
    let p = program(&c.v4);
    let f = Fields {
        iif: 2,
        oif: 3,
        l4proto: 17,
        saddr: vec![10, 0, 1, 2],
        daddr: vec![10, 0, 2, 2],
        sport: 40000,
        dport: 5000,
        tcp_flags: 0,
    };
    // Established, either direction: accepted by the first rule, passes
    // the nat chain.
    assert_eq!(
        evaluate_ct(p, &f, CtClass::Established(0)),
        Outcome::Continue
    );
    assert_eq!(
        evaluate_ct(p, &f, CtClass::Established(1)),
        Outcome::Continue
    );
    // Not mirrored: the first rule already needs the kernel.
    assert_eq!(evaluate(p, &f), Outcome::Punt(PuntWhy::Conntrack));
    // Without the ct rules, the nat chain alone makes the kernel track
    // connections: an unknown packet punts at the conntrack gate, before
    // it reaches the nat chain's own gate.
    let mut open = rs.clone();
    open.rules.clear();
    let c = compile(&open, &ifaces());
    let mut p2 = program(&c.v4).clone();
    if let Some(fwd) = p2.chains.iter_mut().find(|c| c.name.contains("fwd"))
        && let Some(b) = fwd.base.as_mut()
    {
        b.accept = true;
    }
    assert_eq!(evaluate(&p2, &f), Outcome::Punt(PuntWhy::Conntrack));
    assert_eq!(
        evaluate_ct(&p2, &f, CtClass::Established(0)),
        Outcome::Continue
    );
}

#[test]
fn what_makes_the_kernel_track_connections() {
    // Flannel's filter table reads no conntrack state: untracked. (Rules
    // of the nat table's regular chains count even when nothing jumps to
    // them: their MASQUERADE target makes the kernel track connections.)
    let mut flannel = recorded("flannel");
    assert!(tracks_connections(&without_nat(flannel.clone()), L3::V4));
    flannel.chains.retain(|c| c.table != "nat");
    flannel.rules.retain(|r| r.table != "nat");
    assert!(!tracks_connections(&flannel, L3::V4));
    // Its nat table does (a nat chain).
    assert!(tracks_connections(&recorded("flannel"), L3::V4));
    // An ip table says nothing of IPv6.
    assert!(!tracks_connections(&recorded("flannel"), L3::V6));
    // An unparsed rule might: assumed to.
    let mut broken = flannel.clone();
    if let Some(r) = broken.rules.first_mut() {
        r.exprs = linuxfp::inspector::nftables::RuleExprs::Unparsed(
            linuxfp::inspector::nftables::RuleError {
                family: r.family,
                table: r.table.clone(),
                chain: r.chain.clone(),
                handle: r.handle,
                source: linuxfp::inspector::nftables::DecodeError::Missing {
                    what: "rule".into(),
                    attr: "EXPRESSIONS".into(),
                },
            },
        );
    }
    assert!(tracks_connections(&broken, L3::V4));
}

#[test]
fn a_compile_input_is_the_same_only_for_the_same_ruleset_object() {
    let mut state = KernelState {
        nft: Arc::new(inet_forward(vec![udp_dport(53)], Policy::Accept)),
        ..Default::default()
    };
    let then = CompileInput::of_state(&state).remember();
    // Another state sharing the ruleset (a route or FDB event).
    assert!(CompileInput::of_state(&state.clone()).same(&then));
    // Equal rules in a new object (a re-read): compiled again.
    state.nft = Arc::new((*state.nft).clone());
    assert!(!CompileInput::of_state(&state).same(&then));
    let then = CompileInput::of_state(&state).remember();
    // A changed input besides the ruleset.
    let mut legacy = state.clone();
    legacy.legacy_tables = vec!["filter".into()];
    assert!(!CompileInput::of_state(&legacy).same(&then));
    let mut more = state.clone();
    more.links.insert(
        9,
        linuxfp::state::Link {
            ifindex: 9,
            name: "eth9".into(),
            ..Default::default()
        },
    );
    assert!(!CompileInput::of_state(&more).same(&then));
    // Remembering does not keep the ruleset alive.
    let weak = Arc::downgrade(&state.nft);
    drop((state, legacy, more));
    assert_eq!(weak.strong_count(), 0);
}

#[test]
fn rules_are_sorted_out_by_chain_in_evaluation_order() {
    let mut rs = inet_forward(vec![udp_dport(1), udp_dport(2)], Policy::Accept);
    rs.chains.push(regular(Family::Inet, "t", "other"));
    // Interleaved, as a ruleset built by hand may be.
    rs.rules
        .insert(1, nft_rule(Family::Inet, "t", "other", 10, udp_dport(3)));
    rs.rules
        .push(nft_rule(Family::Inet, "t", "fwd", 3, udp_dport(4)));
    let by_chain = ChainRules::new(&rs);
    let handles = |c: &Chain| by_chain.of(c).iter().map(|r| r.handle).collect::<Vec<_>>();
    assert_eq!(handles(&rs.chains[0]), vec![1, 2, 3]);
    assert_eq!(handles(&rs.chains[1]), vec![10]);
    assert!(handles(&regular(Family::Inet, "t", "none")).is_empty());
    let via_scan: Vec<u64> = rs
        .rules_of(Family::Inet, "t", "fwd")
        .map(|r| r.handle)
        .collect();
    assert_eq!(handles(&rs.chains[0]), via_scan);
}
