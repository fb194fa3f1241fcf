// SPDX-License-Identifier: MIT OR Apache-2.0
//! Root: a ruleset configured with `nft` (and iptables-nft) in a fresh
//! namespace reads back as exactly the model that was configured, and
//! changes show up with a new generation.

mod nft_scenarios;

use linuxfp::{
    inspector::{
        self,
        nftables::{
            self, BaseHook, Bitwise, BitwiseOp, Chain, Cmp, CmpOp, Ct, CtKey, Data, Expr, Family,
            Hook, Immediate, Lookup, Meta, MetaKey, Payload, PayloadBase, Policy, RegOp, Ruleset,
            Set, SetElem, Table, Verdict,
        },
    },
    netns::NetnsRef,
};
use linuxfp_testkit::require_root;

const RULESET: &str = r#"table inet lfp {
	set allowed {
		type ipv4_addr
		elements = { 10.0.0.1, 10.0.0.2 }
	}
	chain web {
		tcp dport 443 accept
	}
	chain filter_forward {
		type filter hook forward priority 0; policy drop;
		ct state established accept
		iifname "lan0" ip saddr @allowed jump web
		ip daddr 192.0.2.0/24 drop
	}
}
"#;

fn load(dreg: u32) -> RegOp {
    RegOp::Load { dreg }
}

fn meta(key: MetaKey) -> Expr {
    Expr::Meta(Meta { key, op: load(1) })
}

fn cmp(op: CmpOp, data: &[u8]) -> Expr {
    Expr::Cmp(Cmp {
        sreg: 1,
        op,
        data: data.to_vec(),
    })
}

fn payload(base: PayloadBase, offset: u32, len: u32) -> Expr {
    Expr::Payload(Payload {
        base,
        offset,
        len,
        op: load(1),
        csum: None,
    })
}

fn verdict(v: Verdict) -> Expr {
    Expr::Immediate(Immediate {
        dreg: 0,
        data: Data::Verdict(v),
    })
}

/// The expressions of each rule, by chain, in order.
fn rules_of(rs: &Ruleset, chain: &str) -> Vec<Vec<Expr>> {
    rs.rules_of(Family::Inet, "lfp", chain)
        .map(|r| r.expressions().expect("parsed").to_vec())
        .collect()
}

/// Handles are the kernel's choice: zero them to compare.
fn without_handles(mut c: Chain) -> Chain {
    c.handle = 0;
    c
}

#[test]
fn configured_ruleset_reads_back_exactly() {
    if !require_root("configured_ruleset_reads_back_exactly") {
        return;
    }
    let fw = nft_scenarios::nft("nftlive", RULESET).expect("nft -f");
    let ns = NetnsRef::Named(fw.ns.name().into());
    let rs = inspector::dump(&ns).expect("dump").nft;
    assert!(rs.errors.is_empty());

    let t = rs.table(Family::Inet, "lfp").expect("table").clone();
    assert_eq!(
        Table { handle: 0, ..t },
        Table {
            family: Family::Inet,
            name: "lfp".into(),
            flags: 0,
            handle: 0
        }
    );
    let fwd = rs
        .chain(Family::Inet, "lfp", "filter_forward")
        .cloned()
        .expect("chain");
    assert_eq!(
        without_handles(fwd),
        Chain {
            family: Family::Inet,
            table: "lfp".into(),
            name: "filter_forward".into(),
            handle: 0,
            flags: 1,
            base: Some(BaseHook {
                hook: Hook::Forward,
                priority: 0,
                policy: Policy::Drop,
                chain_type: "filter".into(),
                devices: vec![],
            }),
        }
    );
    let web = rs.chain(Family::Inet, "lfp", "web").cloned().expect("web");
    assert_eq!(web.base, None);

    let mut lan0 = b"lan0".to_vec();
    lan0.resize(16, 0);
    assert_eq!(
        rules_of(&rs, "filter_forward"),
        vec![
            vec![
                Expr::Ct(Ct {
                    key: CtKey::State,
                    dir: None,
                    op: load(1)
                }),
                Expr::Bitwise(Bitwise {
                    sreg: 1,
                    dreg: 1,
                    len: 4,
                    op: BitwiseOp::MaskXor {
                        mask: 2u32.to_ne_bytes().to_vec(),
                        xor: vec![0; 4]
                    },
                }),
                cmp(CmpOp::Neq, &[0; 4]),
                verdict(Verdict::Accept),
            ],
            vec![
                meta(MetaKey::IifName),
                cmp(CmpOp::Eq, &lan0),
                meta(MetaKey::NfProto),
                cmp(CmpOp::Eq, &[2]),
                payload(PayloadBase::Network, 12, 4),
                Expr::Lookup(Lookup {
                    set: "allowed".into(),
                    set_id: None,
                    sreg: 1,
                    dreg: None,
                    flags: 0
                }),
                verdict(Verdict::Jump {
                    chain: "web".into()
                }),
            ],
            vec![
                meta(MetaKey::NfProto),
                cmp(CmpOp::Eq, &[2]),
                payload(PayloadBase::Network, 16, 3),
                cmp(CmpOp::Eq, &[192, 0, 2]),
                verdict(Verdict::Drop),
            ],
        ]
    );
    assert_eq!(
        rules_of(&rs, "web"),
        vec![vec![
            meta(MetaKey::L4Proto),
            cmp(CmpOp::Eq, &[6]),
            payload(PayloadBase::Transport, 2, 2),
            cmp(CmpOp::Eq, &[1, 187]),
            verdict(Verdict::Accept),
        ]]
    );

    let mut set = rs
        .set(Family::Inet, "lfp", "allowed")
        .cloned()
        .expect("set");
    set.handle = 0;
    set.elements.sort_by(|a, b| a.key.cmp(&b.key));
    let elem = |key: [u8; 4]| SetElem {
        key: key.to_vec(),
        key_end: None,
        data: None,
        objref: None,
        flags: 0,
        timeout_ms: None,
    };
    assert_eq!(
        set,
        Set {
            family: Family::Inet,
            table: "lfp".into(),
            name: "allowed".into(),
            handle: 0,
            flags: 0,
            // nftables' TYPE_IPADDR.
            key_type: 7,
            key_len: 4,
            data_type: None,
            data_len: None,
            timeout_ms: None,
            elements: vec![elem([10, 0, 0, 1]), elem([10, 0, 0, 2])],
            elements_error: None,
        }
    );
    let summary = rs.base_chains();
    assert_eq!(summary.len(), 1);
    assert_eq!((summary[0].rules, summary[0].policy.as_str()), (3, "drop"));

    // The recorded bytes decode to the same ruleset.
    let bytes = nftables::record(&ns).expect("record");
    assert_eq!(Ruleset::from_messages(&bytes), *rs);

    // A change is a new generation with the new rule and set element.
    fw.ns
        .sh("nft add rule inet lfp web udp dport 53 accept && nft add element inet lfp allowed '{ 10.0.0.3 }'")
        .expect("nft add");
    let after = inspector::dump(&ns).expect("dump").nft;
    assert!(after.generation > rs.generation);
    assert_eq!(rules_of(&after, "web").len(), 2);
    assert_eq!(
        after
            .set(Family::Inet, "lfp", "allowed")
            .map(|s| s.elements.len()),
        Some(3)
    );
}

#[test]
fn iptables_nft_rules_read_back_with_xt_payloads() {
    if !require_root("iptables_nft_rules_read_back_with_xt_payloads") {
        return;
    }
    let fw = nft_scenarios::iptables("nftlivext", nft_scenarios::DOCKER).expect("restore");
    let rs = inspector::dump(&NetnsRef::Named(fw.ns.name().into()))
        .expect("dump")
        .nft;
    assert!(rs.errors.is_empty());
    assert_eq!(rs.unparsed_rules().count(), 0);
    assert_eq!(rs.rules_of(Family::Ip, "filter", "DOCKER-USER").count(), 5);
    let xt: Vec<_> = rs
        .rules
        .iter()
        .flat_map(|r| r.expressions().unwrap_or(&[]).iter())
        .filter_map(|e| match e {
            Expr::Match(m) => Some((m.name.clone(), m.decoded.is_some())),
            _ => None,
        })
        .collect();
    for name in ["conntrack", "multiport", "comment", "icmp", "addrtype"] {
        assert!(
            xt.contains(&(name.to_string(), true)),
            "{name} not decoded: {xt:?}"
        );
    }
}
