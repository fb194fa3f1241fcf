// SPDX-License-Identifier: MIT OR Apache-2.0
//! The nf_tables reader on rulesets recorded from real namespaces
//! (`tests/data/nft_*.bin`, made by `nft_record.rs` from the rulesets in
//! `nft_scenarios/mod.rs`). No root.

use linuxfp::inspector::nftables::{
    BitwiseOp, CmpOp, CtKey, Data, Expr, Family, Hook, MetaKey, PayloadBase, Policy, RegOp, Rule,
    Ruleset, Verdict, xt::XtMatchInfo, xt::XtTargetInfo,
};

fn recorded(name: &str) -> Ruleset {
    let path = format!("{}/tests/data/nft_{name}.bin", env!("CARGO_MANIFEST_DIR"));
    Ruleset::from_messages(&std::fs::read(&path).expect("recorded ruleset"))
}

fn exprs(r: &Rule) -> &[Expr] {
    r.expressions()
        .unwrap_or_else(|| panic!("rule {} unparsed: {:?}", r.handle, r.exprs))
}

fn rules<'a>(rs: &'a Ruleset, family: Family, table: &'a str, chain: &'a str) -> Vec<&'a Rule> {
    rs.rules_of(family, table, chain).collect()
}

/// The verdict a rule ends with, if its last expression is one.
fn verdict(r: &Rule) -> Option<Verdict> {
    match exprs(r).last()? {
        Expr::Immediate(i) if i.dreg == 0 => match &i.data {
            Data::Verdict(v) => Some(v.clone()),
            Data::Value(_) => None,
        },
        _ => None,
    }
}

fn jump(chain: &str) -> Option<Verdict> {
    Some(Verdict::Jump {
        chain: chain.into(),
    })
}

fn cmp_data(e: &Expr) -> Option<(CmpOp, &[u8])> {
    match e {
        Expr::Cmp(c) => Some((c.op, &c.data)),
        _ => None,
    }
}

fn meta_key(e: &Expr) -> Option<MetaKey> {
    match e {
        Expr::Meta(m) => Some(m.key),
        _ => None,
    }
}

/// Every rule decodes: no unparsed rule, no undecodable object.
fn fully_decoded(rs: &Ruleset) {
    assert!(rs.errors.is_empty(), "{:?}", rs.errors);
    assert_eq!(rs.unparsed_rules().count(), 0);
    assert!(rs.generation > 0);
}

#[test]
fn docker_ruleset_from_iptables_nft() {
    let rs = recorded("docker");
    fully_decoded(&rs);
    let ip = Family::Ip;
    assert_eq!(rs.tables.len(), 2);
    let fwd = rs.chain(ip, "filter", "FORWARD").expect("FORWARD");
    let base = fwd.base.as_ref().expect("base chain");
    assert_eq!(
        (base.hook, base.priority, base.policy),
        (Hook::Forward, 0, Policy::Drop)
    );
    assert!(
        rs.chain(ip, "filter", "DOCKER")
            .expect("DOCKER")
            .base
            .is_none()
    );
    let nat = rs.chain(ip, "nat", "POSTROUTING").expect("nat POSTROUTING");
    assert_eq!(
        nat.base.as_ref().map(|b| b.chain_type.as_str()),
        Some("nat")
    );

    // FORWARD: jumps in order, then the ct match, then the -i/-o rules.
    let f = rules(&rs, ip, "filter", "FORWARD");
    let verdicts: Vec<_> = f.iter().map(|r| verdict(r)).collect();
    assert_eq!(
        verdicts,
        vec![
            jump("DOCKER-USER"),
            jump("DOCKER-ISOLATION-STAGE-1"),
            Some(Verdict::Accept),
            jump("DOCKER"),
            Some(Verdict::Accept),
            Some(Verdict::Accept),
        ]
    );
    // `-o docker0 -m conntrack --ctstate RELATED,ESTABLISHED`: the
    // interface compares "docker0\0" (exact match), the ct state comes
    // from the xt blob.
    let ct_rule = exprs(f[2]);
    assert_eq!(meta_key(&ct_rule[0]), Some(MetaKey::OifName));
    assert_eq!(cmp_data(&ct_rule[1]), Some((CmpOp::Eq, &b"docker0\0"[..])));
    let Expr::Match(m) = &ct_rule[2] else {
        panic!("not a match: {:?}", ct_rule[2])
    };
    assert_eq!(
        (m.name.as_str(), m.revision, m.info.len()),
        ("conntrack", 3, 168)
    );
    let Some(XtMatchInfo::Conntrack(c)) = &m.decoded else {
        panic!("conntrack not decoded")
    };
    assert_eq!(c.plain_state(), Some(0x2 | 0x4));
    // `-i docker0 ! -o docker0`.
    assert_eq!(
        cmp_data(&exprs(f[4])[3]),
        Some((CmpOp::Neq, &b"docker0\0"[..]))
    );

    // DOCKER: `-d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp --dport 80`.
    let d = exprs(rules(&rs, ip, "filter", "DOCKER")[0]);
    assert!(d.iter().any(|e| matches!(e, Expr::Payload(p)
        if p.base == PayloadBase::Network && p.offset == 16 && p.len == 4)));
    assert!(
        d.iter()
            .any(|e| cmp_data(e) == Some((CmpOp::Eq, &[172, 17, 0, 2][..])))
    );
    assert!(
        d.iter()
            .any(|e| cmp_data(e) == Some((CmpOp::Eq, &[0, 80][..])))
    );

    // DOCKER-USER: -m state, multiport + comment, LOG, REJECT, RETURN.
    let u = rules(&rs, ip, "filter", "DOCKER-USER");
    let Expr::Match(state) = &exprs(u[0])[0] else {
        panic!("state")
    };
    let Some(XtMatchInfo::Conntrack(c)) = &state.decoded else {
        panic!("state not decoded")
    };
    assert_eq!(c.plain_state(), Some(0x1));
    assert_ne!(
        c.match_flags & linuxfp::inspector::nftables::xt::CONNTRACK_STATE_ALIAS,
        0
    );
    let mp: Vec<_> = exprs(u[1])
        .iter()
        .filter_map(|e| match e {
            Expr::Match(m) => m.decoded.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(mp.len(), 2);
    let XtMatchInfo::Multiport(ports) = &mp[0] else {
        panic!("multiport")
    };
    assert_eq!(ports.ports, vec![(22, 22), (443, 443), (8000, 8080)]);
    assert_eq!(
        mp[1],
        XtMatchInfo::Comment {
            text: "user ports".into()
        }
    );
    let targets: Vec<_> = u
        .iter()
        .filter_map(|r| match exprs(r).last() {
            Some(Expr::Target(t)) => t.decoded.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        targets,
        vec![
            XtTargetInfo::Log {
                level: 4,
                flags: 0,
                prefix: "user: ".into()
            },
            XtTargetInfo::Reject { with: 3 },
        ]
    );
    assert_eq!(verdict(u[4]), Some(Verdict::Return));

    // INPUT: `-p icmp --icmp-type 8` stays an xt match.
    let i = exprs(rules(&rs, ip, "filter", "INPUT")[0]);
    assert!(i.iter().any(|e| matches!(e, Expr::Match(m) if m.decoded
        == Some(XtMatchInfo::Icmp { kind: 8, code_min: 0, code_max: 255, invert: false }))));

    // nat: addrtype LOCAL, MASQUERADE and DNAT kept raw (not whitelisted).
    let pre = exprs(rules(&rs, ip, "nat", "PREROUTING")[0]);
    assert!(matches!(&pre[0], Expr::Match(m) if m.decoded
        == Some(XtMatchInfo::AddrType { source: 0, dest: 1 << 2, flags: 0 })));
    let dnat = exprs(rules(&rs, ip, "nat", "DOCKER")[1]);
    assert!(matches!(dnat.last(), Some(Expr::Target(t))
        if t.name == "DNAT" && t.decoded.is_none() && !t.info.is_empty()));

    // The topology's summary still works.
    let summary = rs.base_chains();
    assert_eq!(summary.len(), 7);
    let fwd = summary
        .iter()
        .find(|c| c.chain == "FORWARD")
        .expect("summary");
    assert_eq!((fwd.rules, fwd.policy.as_str()), (6, "drop"));
    assert!(fwd.affects_forwarding());
}

#[test]
fn flannel_forward_and_masquerade() {
    let rs = recorded("flannel");
    fully_decoded(&rs);
    let ip = Family::Ip;
    let fwd = rules(&rs, ip, "filter", "FLANNEL-FWD");
    assert_eq!(fwd.len(), 2);
    // `-s 10.244.0.0/16`: a 2-byte payload load at network + 12.
    let e = exprs(fwd[0]);
    assert!(matches!(&e[0], Expr::Payload(p)
        if p.base == PayloadBase::Network && p.offset == 12 && p.len == 2
            && p.op == RegOp::Load { dreg: 1 }));
    assert_eq!(cmp_data(&e[1]), Some((CmpOp::Eq, &[10, 244][..])));
    assert!(e.iter().any(|e| matches!(e, Expr::Match(m)
        if m.decoded == Some(XtMatchInfo::Comment { text: "flanneld forward".into() }))));
    assert_eq!(verdict(fwd[0]), Some(Verdict::Accept));

    let post = rules(&rs, ip, "nat", "FLANNEL-POSTRTG");
    assert_eq!(post.len(), 6);
    // `-m mark --mark 0x4000/0x4000`: native meta mark + bitwise + cmp.
    let m = exprs(post[0]);
    assert_eq!(meta_key(&m[0]), Some(MetaKey::Mark));
    assert!(matches!(&m[1], Expr::Bitwise(b)
        if b.op == BitwiseOp::MaskXor { mask: 0x4000u32.to_ne_bytes().to_vec(), xor: vec![0; 4] }));
    assert_eq!(verdict(post[0]), Some(Verdict::Return));
    // `! -s 10.244.0.0/16`.
    assert!(
        exprs(post[3])
            .iter()
            .any(|e| cmp_data(e) == Some((CmpOp::Neq, &[10, 244][..])))
    );
    // MASQUERADE --random-fully: an xt target, kept raw.
    for r in &post[4..] {
        assert!(matches!(exprs(r).last(), Some(Expr::Target(t)) if t.name == "MASQUERADE"));
    }
    let jump_in = rules(&rs, ip, "nat", "POSTROUTING");
    assert_eq!(verdict(jump_in[0]), jump("FLANNEL-POSTRTG"));
}

#[test]
fn native_ruleset_with_sets_maps_jumps_and_nat() {
    let rs = recorded("native");
    fully_decoded(&rs);
    let inet = Family::Inet;
    assert!(rs.table(Family::Ip, "sleepy").expect("sleepy").is_dormant());
    assert!(!rs.table(inet, "native").expect("native").is_dormant());
    let fc = rs.chain(inet, "native", "forward_chain").expect("chain");
    let b = fc.base.as_ref().expect("base");
    assert_eq!(
        (b.hook, b.priority, b.policy),
        (Hook::Forward, 10, Policy::Drop)
    );
    let pre = rs.chain(inet, "native", "pre").and_then(|c| c.base.clone());
    assert_eq!(
        pre.map(|b| (b.hook, b.priority)),
        Some((Hook::Prerouting, -300))
    );

    let f = rules(&rs, inet, "native", "forward_chain");
    assert_eq!(f.len(), 17);
    // ct state established,related accept.
    let e = exprs(f[0]);
    assert!(
        matches!(&e[0], Expr::Ct(c) if c.key == CtKey::State && c.op == RegOp::Load { dreg: 1 })
    );
    assert!(matches!(&e[1], Expr::Bitwise(b)
        if b.op == BitwiseOp::MaskXor { mask: vec![6, 0, 0, 0], xor: vec![0; 4] }));
    assert_eq!(cmp_data(&e[2]), Some((CmpOp::Neq, &[0, 0, 0, 0][..])));
    // iifname "veth*": a prefix compare without NUL.
    assert_eq!(meta_key(&exprs(f[2])[0]), Some(MetaKey::IifName));
    assert_eq!(cmp_data(&exprs(f[2])[1]), Some((CmpOp::Eq, &b"veth"[..])));
    // ip saddr @blocked drop / ip saddr != @timed continue.
    let lookup = |r: &Rule| {
        exprs(r).iter().find_map(|e| match e {
            Expr::Lookup(l) => Some(l.clone()),
            _ => None,
        })
    };
    let l = lookup(f[4]).expect("lookup blocked");
    assert_eq!(
        (l.set.as_str(), l.inverted(), l.dreg),
        ("blocked", false, None)
    );
    assert_eq!(verdict(f[4]), Some(Verdict::Drop));
    let l = lookup(f[5]).expect("lookup timed");
    assert!(l.inverted());
    assert_eq!(verdict(f[5]), Some(Verdict::Continue));
    // tcp dport { 80, 443 }: an anonymous set with its elements.
    let anon = lookup(f[6]).expect("anonymous lookup");
    let s = rs.set(inet, "native", &anon.set).expect("anonymous set");
    assert!(s.is_anonymous());
    let keys: Vec<_> = s.elements.iter().map(|e| e.key.clone()).collect();
    assert!(keys.contains(&vec![0, 80]) && keys.contains(&vec![1, 187]));
    // tcp dport vmap @portmap.
    let vm = lookup(f[7]).expect("vmap lookup");
    assert_eq!((vm.set.as_str(), vm.dreg), ("portmap", Some(0)));
    let pm = rs.set(inet, "native", "portmap").expect("portmap");
    assert!(pm.is_verdict_map() && !pm.is_dynamic());
    let to_web = pm
        .elements
        .iter()
        .find(|e| e.key == [31, 144])
        .and_then(|e| e.data.clone());
    assert_eq!(
        to_web,
        Some(Data::Verdict(Verdict::Jump {
            chain: "web".into()
        }))
    );
    // Concatenation: two loads (reg 1 and reg 9) and an 8-byte key set.
    let cat = lookup(f[8]).expect("concat lookup");
    assert_eq!(rs.set(inet, "native", &cat.set).map(|s| s.key_len), Some(8));
    // ip6 daddr fe80::/10: 16-byte load, mask, compare.
    assert!(
        exprs(f[9])
            .iter()
            .any(|e| matches!(e, Expr::Payload(p) if p.offset == 24 && p.len == 16))
    );
    // tcp dport != 1000-2000.
    assert!(exprs(f[10]).iter().any(|e| matches!(e, Expr::Range(r)
        if r.negated && r.from == [3, 232] && r.to == [7, 208])));
    assert_eq!(
        verdict(f[11]),
        Some(Verdict::Goto {
            chain: "other".into()
        })
    );
    assert_eq!(verdict(f[12]), jump("web"));
    // meta mark set 0x10.
    assert!(matches!(&exprs(f[13])[1], Expr::Meta(m)
        if m.key == MetaKey::Mark && m.op == RegOp::Set { sreg: 1 }));
    // limit + log, reject with tcp reset.
    assert!(matches!(&exprs(f[14])[0], Expr::Limit(l) if l.rate == 5 && l.unit == 1));
    assert!(matches!(&exprs(f[14])[1], Expr::Log(l) if l.prefix.as_deref() == Some("fwd: ")));
    assert!(matches!(exprs(f[15]).last(), Some(Expr::Reject(r)) if r.kind == 1));
    // numgen is not decoded: kept whole, not dropped.
    assert!(
        exprs(f[16])
            .iter()
            .any(|e| matches!(e, Expr::Unknown { name, attrs }
        if name == "numgen" && !attrs.is_empty()))
    );

    // Named sets: interval, timeout.
    let blocked = rs.set(inet, "native", "blocked").expect("blocked");
    assert!(blocked.is_interval() && !blocked.is_map());
    assert!(blocked.elements.iter().any(|e| e.is_interval_end()));
    assert!(blocked.elements.iter().any(|e| e.key == [198, 51, 100, 7]));
    let timed = rs.set(inet, "native", "timed").expect("timed");
    assert!(timed.is_dynamic());
    assert_eq!(timed.timeout_ms, Some(3_600_000));
    assert_eq!(timed.elements[0].timeout_ms, Some(600_000));

    // Regular chains, fib + notrack, NAT statements.
    assert_eq!(
        verdict(rules(&rs, inet, "native", "web")[1]),
        Some(Verdict::Return)
    );
    let p = exprs(rules(&rs, inet, "native", "pre")[0]);
    assert!(matches!(&p[0], Expr::Fib(f) if f.result == 3 && f.flags == 2));
    assert_eq!(p[2], Expr::Notrack);
    let post = rules(&rs, inet, "native", "postnat");
    assert!(matches!(exprs(post[0]).last(), Some(Expr::Masq(_))));
    assert!(
        matches!(exprs(post[1]).last(), Some(Expr::Nat(n)) if n.kind == 0 && n.family == Some(2))
    );
    let prenat = rules(&rs, inet, "native", "prenat");
    assert!(matches!(exprs(prenat[0]).last(), Some(Expr::Redir(r)) if r.reg_proto_min == Some(1)));
    assert!(matches!(exprs(prenat[1]).last(), Some(Expr::Nat(n))
        if n.kind == 1 && n.reg_proto_min == Some(2)));
}

#[test]
fn truncated_recordings_never_panic_and_keep_what_decoded() {
    for name in ["docker", "flannel", "native", "mixed"] {
        let path = format!("{}/tests/data/nft_{name}.bin", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).expect("recorded ruleset");
        let full = Ruleset::from_messages(&bytes);
        for cut in (0..bytes.len()).step_by(97) {
            let part = Ruleset::from_messages(&bytes[..cut]);
            assert!(part.rules.len() <= full.rules.len());
        }
    }
}

/// The xt matches of a chain's rules, by name, with their decoding.
fn xt_matches(rs: &Ruleset, table: &str, chain: &str) -> Vec<(String, Option<XtMatchInfo>)> {
    rs.rules_of(Family::Ip, table, chain)
        .flat_map(|r| exprs(r).iter())
        .filter_map(|e| match e {
            Expr::Match(m) => Some((m.name.clone(), m.decoded.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn mixed_iptables_ruleset_of_the_research_note() {
    let rs = recorded("mixed");
    fully_decoded(&rs);
    assert_eq!(rs.tables.len(), 3);
    assert_eq!(rs.rules_of(Family::Ip, "filter", "FORWARD").count(), 17);
    let fwd = xt_matches(&rs, "filter", "FORWARD");
    let get = |name: &str| {
        fwd.iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in {fwd:?}"))
            .1
            .clone()
    };
    let Some(XtMatchInfo::IpRange(r)) = get("iprange") else {
        panic!("iprange")
    };
    assert_eq!(
        (&r.src.0[..4], &r.src.1[..4], r.flags),
        (&[10, 1, 1, 1][..], &[10, 1, 1, 20][..], 1)
    );
    assert_eq!(
        get("connmark"),
        Some(XtMatchInfo::Mark {
            mark: 0x10,
            mask: u32::MAX,
            invert: false
        })
    );
    let Some(XtMatchInfo::Conntrack(c)) = get("conntrack") else {
        panic!("conntrack")
    };
    assert_eq!(c.plain_state(), Some(0x6));
    // Not whitelisted: kept raw for the classifier to punt.
    for raw in ["physdev", "statistic", "mac"] {
        assert_eq!(get(raw), None, "{raw}");
        assert!(fwd.iter().any(|(n, _)| n == raw));
    }
    // `-m limit` and `! --dport 1000:2000` are native in iptables 1.8.9.
    let all: Vec<&Expr> = rs
        .rules_of(Family::Ip, "filter", "FORWARD")
        .flat_map(|r| exprs(r).iter())
        .collect();
    assert!(
        all.iter()
            .any(|e| matches!(e, Expr::Limit(l) if l.rate == 5 && l.unit == 1))
    );
    assert!(all.iter().any(|e| matches!(e, Expr::Range(r)
        if r.negated && r.from == [3, 232] && r.to == [7, 208])));
    assert!(
        all.iter()
            .any(|e| matches!(e, Expr::Target(t) if t.name == "TCPMSS"))
    );

    // INPUT: `-m state --state NEW` is conntrack rev 3 with the state alias.
    let input = xt_matches(&rs, "filter", "INPUT");
    let Some((_, Some(XtMatchInfo::Conntrack(state)))) = input.first() else {
        panic!("state: {input:?}")
    };
    assert_eq!(state.plain_state(), Some(0x8));
    // MYCHAIN: comment + REJECT, then the native mark match and RETURN.
    assert_eq!(
        xt_matches(&rs, "filter", "MYCHAIN"),
        vec![(
            "comment".to_string(),
            Some(XtMatchInfo::Comment {
                text: "hello".into()
            })
        )]
    );
    let my = rules(&rs, Family::Ip, "filter", "MYCHAIN");
    assert!(matches!(exprs(my[0]).last(), Some(Expr::Target(t))
        if t.decoded == Some(XtTargetInfo::Reject { with: 3 })));
    assert_eq!(meta_key(&exprs(my[1])[0]), Some(MetaKey::Mark));
    assert_eq!(verdict(my[1]), Some(Verdict::Return));
    // mangle MARK target.
    let mangle = rules(&rs, Family::Ip, "mangle", "PREROUTING");
    assert!(matches!(exprs(mangle[0]).last(), Some(Expr::Target(t)) if t.name == "MARK"));
}
