use super::*;

fn merchant_key(of: &str) -> Actor {
    Actor {
        key_id: KeyId::parse(format!("key-{of}")).expect("valid"),
        role: Role::Merchant,
        merchant_id: Some(merchant(of)),
    }
}

#[test]
fn a_merchant_key_acts_only_for_its_own_merchant() {
    let mut ledger = Ledger::with_merchants();
    ledger.actor = merchant_key("cafe");
    ledger.issue("ann", "cafe", "o1", 100);
    let rejection = ledger.rejected(issue("ann", "cinema", "o2", 100));
    assert_eq!(code(&rejection), "forbidden");
    let rejection = ledger.rejected(redeem("ann", "cinema", 10));
    assert_eq!(code(&rejection), "forbidden");
    ledger.redeem("ann", "cafe", 10);
}

#[test]
fn a_merchant_key_cannot_touch_another_merchants_holds_or_reversals() {
    let mut ledger = Ledger::with_merchants();
    let issuance = ledger.issue("ann", "cinema", "o1", 100);
    let hold = ledger.hold("ann", "cinema", 10, 60);
    ledger.actor = merchant_key("cafe");
    for command in [
        Command::CaptureHold {
            hold_id: hold,
            points: None,
        },
        Command::ReleaseHold { hold_id: hold },
        Command::ReverseIssuance {
            issuance_id: issuance,
            points: None,
        },
    ] {
        assert_eq!(code(&ledger.rejected(command)), "forbidden");
    }
}

#[test]
fn merchant_keys_cannot_run_back_office_commands() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 100);
    ledger.actor = merchant_key("cafe");
    let commands = [
        Command::ConfigureProgram {
            rules: Box::new(ProgramRules::with_cap(5)),
        },
        Command::RecordDeposit {
            merchant_id: merchant("cafe"),
            amount: amount("5"),
        },
        transfer("ann", "bob", 1),
        Command::RunExpiry { as_of: ledger.now },
    ];
    for command in commands {
        assert_eq!(code(&ledger.rejected(command)), "forbidden");
    }
}

#[test]
fn auditors_and_analysts_only_read() {
    let mut ledger = Ledger::with_merchants();
    for role in [Role::Auditor, Role::Analyst] {
        ledger.actor = Actor {
            key_id: KeyId::parse("reader").expect("valid"),
            role,
            merchant_id: None,
        };
        assert_eq!(
            code(&ledger.rejected(issue("ann", "cafe", "o1", 1))),
            "forbidden"
        );
    }
}
