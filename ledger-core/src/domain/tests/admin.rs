use super::*;
use crate::domain::program::ReleasePolicy;
use crate::domain::state::MerchantStatus;

#[test]
fn programme_versions_count_up_and_issuances_record_theirs() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(30));
    assert_eq!(
        ledger.state.program.as_ref().map(|program| program.version),
        Some(2)
    );
    let events = ledger.ok(issue("ann", "cafe", "o1", 10));
    let Some(Event::PointsIssued(issued)) = events.last() else {
        panic!("expected an issuance");
    };
    assert_eq!(issued.rule_version, 2);
    assert_eq!(issued.expires_at, Some(ledger.now.plus_days(30)));
}

#[test]
fn the_cap_cannot_be_lowered_below_outstanding_supply() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 500);
    let rejection = ledger.rejected(Command::ConfigureProgram {
        rules: Box::new(ProgramRules::with_cap(499)),
    });
    assert!(
        matches!(rejection, Rejection::ValidationError { ref field, .. } if field == "supply_cap")
    );
    ledger.ok(Command::ConfigureProgram {
        rules: Box::new(ProgramRules::with_cap(500)),
    });
}

#[test]
fn the_budget_cannot_be_lowered_below_what_the_period_already_issued() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 300);
    let mut rules = ProgramRules::with_cap(1_000_000);
    rules.release = Some(ReleasePolicy {
        period_days: 1,
        base_points: 299,
        redeemed_factor: Amount::ZERO,
    });
    let rejection = ledger.rejected(Command::ConfigureProgram {
        rules: Box::new(rules),
    });
    assert!(
        matches!(rejection, Rejection::ValidationError { ref field, .. } if field == "release.base_points")
    );
}

#[test]
fn invalid_rules_are_refused_before_anything_is_recorded() {
    let mut ledger = Ledger::new();
    let rejection = ledger.rejected(Command::ConfigureProgram {
        rules: Box::new(ProgramRules::with_cap(0)),
    });
    assert_eq!(code(&rejection), "validation_error");
}

#[test]
fn merchant_lifecycle_follows_its_transitions() {
    let mut ledger = Ledger::with_merchants();
    let id = merchant("shop");
    ledger.ok(Command::ApplyMerchant {
        merchant_id: id.clone(),
        name: "Shop".into(),
        currency: Currency::parse("EUR").expect("valid"),
        issue_price: amount("0.01"),
        redemption_value: amount("0.01"),
    });
    let status = |ledger: &Ledger| ledger.state.merchants[&id].status;
    assert_eq!(status(&ledger), MerchantStatus::Pending);
    let rejection = ledger.rejected(Command::SuspendMerchant {
        merchant_id: id.clone(),
        reason: None,
    });
    assert_eq!(code(&rejection), "invalid_merchant_transition");
    ledger.ok(Command::ApproveMerchant {
        merchant_id: id.clone(),
        reason: Some("documents checked".into()),
    });
    ledger.ok(Command::SuspendMerchant {
        merchant_id: id.clone(),
        reason: Some("chargebacks".into()),
    });
    assert_eq!(status(&ledger), MerchantStatus::Suspended);
    let rejection = ledger.rejected(Command::ApproveMerchant {
        merchant_id: id.clone(),
        reason: None,
    });
    assert_eq!(code(&rejection), "invalid_merchant_transition");
    ledger.ok(Command::ReinstateMerchant {
        merchant_id: id.clone(),
        reason: None,
    });
    assert_eq!(status(&ledger), MerchantStatus::Active);
}

#[test]
fn rejected_merchants_stay_rejected_and_take_no_deposits() {
    let mut ledger = Ledger::with_merchants();
    let id = merchant("shady");
    ledger.ok(Command::ApplyMerchant {
        merchant_id: id.clone(),
        name: "Shady".into(),
        currency: Currency::parse("EUR").expect("valid"),
        issue_price: amount("0.01"),
        redemption_value: amount("0.01"),
    });
    ledger.ok(Command::RejectMerchant {
        merchant_id: id.clone(),
        reason: Some("no licence".into()),
    });
    let rejection = ledger.rejected(Command::RecordDeposit {
        merchant_id: id.clone(),
        amount: amount("10"),
    });
    assert_eq!(code(&rejection), "merchant_not_active");
    let rejection = ledger.rejected(Command::ReinstateMerchant {
        merchant_id: id,
        reason: None,
    });
    assert_eq!(code(&rejection), "invalid_merchant_transition");
}

#[test]
fn merchants_are_unique_and_well_formed() {
    let mut ledger = Ledger::with_merchants();
    let apply = |id: &str, name: &str, price: &str| Command::ApplyMerchant {
        merchant_id: merchant(id),
        name: name.into(),
        currency: Currency::parse("EUR").expect("valid"),
        issue_price: amount(price),
        redemption_value: amount("0.01"),
    };
    assert_eq!(
        code(&ledger.rejected(apply("cafe", "Again", "0.01"))),
        "merchant_already_exists"
    );
    assert_eq!(
        code(&ledger.rejected(apply("new", "  ", "0.01"))),
        "validation_error"
    );
    assert_eq!(
        code(&ledger.rejected(apply("new", "Bell\u{7}", "0.01"))),
        "validation_error"
    );
    assert_eq!(
        code(&ledger.rejected(apply("new", "Neg", "-0.01"))),
        "validation_error"
    );
    assert_eq!(
        code(&ledger.rejected(apply("new", "Huge", "1000001"))),
        "validation_error"
    );
}

#[test]
fn deposits_add_exactly_and_must_be_positive() {
    let mut ledger = Ledger::with_merchants();
    ledger.ok(Command::RecordDeposit {
        merchant_id: merchant("cafe"),
        amount: amount("0.10"),
    });
    ledger.ok(Command::RecordDeposit {
        merchant_id: merchant("cafe"),
        amount: amount("0.20"),
    });
    assert_eq!(ledger.funding("cafe"), amount("1000.30"));
    for bad in ["0", "-5"] {
        let rejection = ledger.rejected(Command::RecordDeposit {
            merchant_id: merchant("cafe"),
            amount: amount(bad),
        });
        assert_eq!(code(&rejection), "validation_error");
    }
    let rejection = ledger.rejected(Command::RecordDeposit {
        merchant_id: merchant("nobody"),
        amount: amount("5"),
    });
    assert_eq!(code(&rejection), "not_found");
}

#[test]
fn api_keys_are_created_once_bound_correctly_and_revoked_once() {
    let mut ledger = Ledger::with_merchants();
    let hash = "ab".repeat(32);
    let create =
        |key: &str, role: Role, merchant_id: Option<&str>, hash: &str| Command::CreateApiKey {
            key_id: KeyId::parse(key).expect("valid"),
            role,
            merchant_id: merchant_id.map(merchant),
            key_hash: hash.to_owned(),
        };
    ledger.ok(create("k1", Role::Merchant, Some("cafe"), &hash));
    assert_eq!(
        code(&ledger.rejected(create("k1", Role::Analyst, None, &hash))),
        "api_key_already_exists"
    );
    assert_eq!(
        code(&ledger.rejected(create("k2", Role::Merchant, None, &hash))),
        "validation_error"
    );
    assert_eq!(
        code(&ledger.rejected(create("k2", Role::Analyst, Some("cafe"), &hash))),
        "validation_error"
    );
    assert_eq!(
        code(&ledger.rejected(create("k2", Role::Merchant, Some("nobody"), &hash))),
        "not_found"
    );
    assert_eq!(
        code(&ledger.rejected(create("k2", Role::Auditor, None, "not-hex"))),
        "validation_error"
    );
    let revoke = || Command::RevokeApiKey {
        key_id: KeyId::parse("k1").expect("valid"),
    };
    ledger.ok(revoke());
    assert_eq!(code(&ledger.rejected(revoke())), "not_found");
}

#[test]
fn a_revoked_key_acts_no_more_whatever_its_caller_believes() {
    let mut ledger = Ledger::with_merchants();
    let cafe_key = KeyId::parse("cafe-till").expect("valid");
    ledger.ok(Command::CreateApiKey {
        key_id: cafe_key.clone(),
        role: Role::Merchant,
        merchant_id: Some(merchant("cafe")),
        key_hash: "cd".repeat(32),
    });
    let as_cafe = Actor {
        key_id: cafe_key.clone(),
        role: Role::Merchant,
        merchant_id: Some(merchant("cafe")),
    };
    let admin = std::mem::replace(&mut ledger.actor, as_cafe);
    ledger.ok(issue("ann", "cafe", "o1", 10));

    ledger.actor = admin;
    ledger.ok(Command::RevokeApiKey {
        key_id: cafe_key.clone(),
    });
    // A server whose key read model lags still sends the key's commands.
    ledger.actor.key_id = cafe_key.clone();
    ledger.actor.role = Role::Merchant;
    ledger.actor.merchant_id = Some(merchant("cafe"));
    assert_eq!(
        ledger.rejected(issue("ann", "cafe", "o2", 10)),
        Rejection::Unauthorized {
            key_id: "cafe-till".to_owned()
        }
    );
    // Revoked admin keys too; a key the ledger never issued is the
    // caller's to vouch for (the configured bootstrap key).
    ledger.actor.role = Role::Admin;
    ledger.actor.merchant_id = None;
    assert_eq!(
        code(&ledger.rejected(issue("ann", "cafe", "o3", 10))),
        "unauthorized"
    );
    ledger.actor.key_id = KeyId::parse("bootstrap-admin").expect("valid");
    ledger.ok(issue("ann", "cafe", "o3", 10));
}
