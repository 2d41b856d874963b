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

/// The replay tool's reading of the same policy off a log
/// (`decide::check_actor`): who may have recorded what.
mod recorded_actors {
    use super::*;
    use crate::domain::decide::check_actor;
    use crate::domain::event::{HoldReleaseReason, HoldReleased};

    fn issued_key(ledger: &mut Ledger, id: &str, role: Role, merchant_id: Option<&str>) -> Actor {
        ledger.ok(Command::CreateApiKey {
            key_id: KeyId::parse(id).expect("valid"),
            role,
            merchant_id: merchant_id.map(merchant),
            key_hash: "ab".repeat(32),
        });
        Actor {
            key_id: KeyId::parse(id).expect("valid"),
            role,
            merchant_id: merchant_id.map(merchant),
        }
    }

    fn only_event(events: Vec<Event>) -> Event {
        events.into_iter().last().expect("an event")
    }

    #[test]
    fn a_merchant_key_records_only_its_own_merchants_events() {
        let mut ledger = Ledger::with_merchants();
        let at_cinema = only_event(ledger.ok(issue("ann", "cinema", "o1", 100)));
        let at_cafe = only_event(ledger.ok(issue("ann", "cafe", "o2", 100)));
        let deposit = only_event(ledger.ok(Command::RecordDeposit {
            merchant_id: merchant("cafe"),
            amount: amount("5"),
        }));
        let cafe = merchant_key("cafe");
        assert_eq!(check_actor(&ledger.state, &at_cafe, &cafe), Ok(()));
        let refused = check_actor(&ledger.state, &at_cinema, &cafe).expect_err("another merchant");
        assert!(
            refused.contains("acts for merchant cafe, not cinema"),
            "{refused}"
        );
        let refused = check_actor(&ledger.state, &deposit, &cafe).expect_err("back office");
        assert!(refused.contains("merchant keys record no"), "{refused}");
        for role in [Role::Auditor, Role::Analyst] {
            let reader = Actor {
                key_id: KeyId::parse("reader").expect("valid"),
                role,
                merchant_id: None,
            };
            assert!(check_actor(&ledger.state, &at_cafe, &reader).is_err());
        }
    }

    #[test]
    fn what_a_debit_brings_along_is_nobodys_merchant() {
        let mut ledger = Ledger::with_merchants();
        ledger.issue("ann", "cinema", "o1", 10);
        let hold = ledger.hold("ann", "cinema", 10, 60);
        let released = |reason| {
            Event::HoldReleased(HoldReleased {
                hold_id: hold,
                account: account("ann"),
                merchant_id: merchant("cinema"),
                points: 1,
                reason,
                released_at: ledger.now,
            })
        };
        let cafe = merchant_key("cafe");
        assert_eq!(
            check_actor(&ledger.state, &released(HoldReleaseReason::TimedOut), &cafe),
            Ok(())
        );
        assert!(check_actor(&ledger.state, &released(HoldReleaseReason::Released), &cafe).is_err());
    }

    #[test]
    fn an_issued_key_acts_as_issued_and_not_once_revoked() {
        let mut ledger = Ledger::with_merchants();
        let cafe = issued_key(&mut ledger, "cafe-till", Role::Merchant, Some("cafe"));
        let at_cafe = only_event(ledger.ok(issue("ann", "cafe", "o1", 100)));
        assert_eq!(check_actor(&ledger.state, &at_cafe, &cafe), Ok(()));
        let promoted = Actor {
            role: Role::Admin,
            merchant_id: None,
            ..cafe.clone()
        };
        let refused = check_actor(&ledger.state, &at_cafe, &promoted).expect_err("promoted");
        assert!(
            refused.contains("but was issued as Merchant of cafe"),
            "{refused}"
        );
        ledger.ok(Command::RevokeApiKey {
            key_id: cafe.key_id.clone(),
        });
        let refused = check_actor(&ledger.state, &at_cafe, &cafe).expect_err("revoked");
        assert!(refused.contains("after its revocation"), "{refused}");
    }
}
