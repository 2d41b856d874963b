use super::*;
use crate::domain::program::ReversalPolicy;
use crate::domain::rejection::ReversalTarget;

fn reversed(events: &[Event]) -> &crate::domain::event::IssuanceReversed {
    match events.last() {
        Some(Event::IssuanceReversed(reversed)) => reversed,
        other => panic!("expected issuance_reversed, got {other:?}"),
    }
}

#[test]
fn an_unspent_issuance_is_clawed_back_and_refunded() {
    let mut ledger = Ledger::with_merchants();
    let issuance = ledger.issue("ann", "cafe", "o1", 1000);
    let events = ledger.ok(Command::ReverseIssuance {
        issuance_id: issuance,
        points: None,
    });
    let reversal = reversed(&events);
    assert_eq!(
        (reversal.points_reversed, reversal.points_unrecoverable),
        (1000, 0)
    );
    assert_eq!(reversal.funds_returned.amount, amount("10.00"));
    assert_eq!(ledger.funding("cafe"), amount("1000.00"));
    assert_eq!(ledger.balance("ann"), (0, 0));
    assert_eq!(ledger.state.supply.reversed_total, 1000);
}

#[test]
fn spent_points_are_reported_unrecoverable_under_the_default_policy() {
    let mut ledger = Ledger::with_merchants();
    let issuance = ledger.issue("ann", "cafe", "o1", 100);
    ledger.issue("ann", "cinema", "o2", 100);
    ledger.redeem("ann", "cinema", 70); // takes 70 from lot 1
    let events = ledger.ok(Command::ReverseIssuance {
        issuance_id: issuance,
        points: None,
    });
    let reversal = reversed(&events);
    assert_eq!(
        (reversal.points_reversed, reversal.points_unrecoverable),
        (30, 70)
    );
    assert_eq!(
        ledger.balance("ann"),
        (100, 0),
        "the other lot is untouched"
    );
    // The whole issuance is now accounted for.
    let rejection = ledger.rejected(Command::ReverseIssuance {
        issuance_id: issuance,
        points: Some(1),
    });
    assert_eq!(
        rejection,
        Rejection::ReversalExceedsOriginal {
            target: ReversalTarget::Issuance(issuance),
            requested: 1,
            reversible: 0,
        }
    );
}

#[test]
fn the_any_available_policy_claws_back_from_other_lots_but_never_from_holds() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| {
        rules.reversal_policy = ReversalPolicy::AnyAvailable
    });
    let issuance = ledger.issue("ann", "cafe", "o1", 100);
    ledger.issue("ann", "cinema", "o2", 100);
    ledger.redeem("ann", "cinema", 70);
    ledger.hold("ann", "cinema", 100, 600);
    let events = ledger.ok(Command::ReverseIssuance {
        issuance_id: issuance,
        points: None,
    });
    let reversal = reversed(&events);
    // 130 left, 100 held: 30 can go.
    assert_eq!(
        (reversal.points_reversed, reversal.points_unrecoverable),
        (30, 70)
    );
    assert_eq!(ledger.balance("ann"), (100, 100));
    assert_eq!(reversal.funds_returned.amount, amount("0.30"));
}

#[test]
fn partial_issuance_reversals_add_up_to_at_most_the_issuance() {
    let mut ledger = Ledger::with_merchants();
    let issuance = ledger.issue("ann", "cafe", "o1", 100);
    ledger.ok(Command::ReverseIssuance {
        issuance_id: issuance,
        points: Some(40),
    });
    let rejection = ledger.rejected(Command::ReverseIssuance {
        issuance_id: issuance,
        points: Some(61),
    });
    assert_eq!(code(&rejection), "reversal_exceeds_original");
    ledger.ok(Command::ReverseIssuance {
        issuance_id: issuance,
        points: Some(60),
    });
    assert_eq!(ledger.balance("ann"), (0, 0));
    let rejection = ledger.rejected(Command::ReverseIssuance {
        issuance_id: IssuanceId(42),
        points: None,
    });
    assert_eq!(code(&rejection), "not_found");
}

#[test]
fn a_cancelled_redemption_restores_its_lots_last_spent_first() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(30));
    ledger.issue("ann", "cafe", "o1", 10);
    ledger.advance_days(1);
    ledger.issue("ann", "cinema", "o2", 10);
    let redemption = ledger.redeem("ann", "cafe", 15);
    assert_eq!(ledger.balance("ann"), (5, 0));
    let events = ledger.ok(Command::ReverseRedemption {
        redemption_id: redemption,
        points: Some(3),
    });
    let Some(Event::RedemptionReversed(first)) = events.last() else {
        panic!("expected a redemption reversal");
    };
    assert_eq!(first.restored.len(), 1);
    assert_eq!(first.restored[0].origin_merchant_id, merchant("cinema"));
    assert_eq!(first.value_returned.amount, amount("0.024"));
    let events = ledger.ok(Command::ReverseRedemption {
        redemption_id: redemption,
        points: None,
    });
    let Some(Event::RedemptionReversed(rest)) = events.last() else {
        panic!("expected a redemption reversal");
    };
    let restored: Vec<_> = rest
        .restored
        .iter()
        .map(|credit| (credit.origin_merchant_id.as_str(), credit.points))
        .collect();
    assert_eq!(restored, vec![("cinema", 2), ("cafe", 10)]);
    assert_eq!(ledger.balance("ann"), (20, 0));
    let lots = &ledger.state.accounts[&account("ann")].lots;
    assert!(
        lots.iter().all(|lot| lot.expires_at().is_some()),
        "original expiry kept"
    );
    assert_eq!(ledger.state.supply.redeemed_total, 0);
    assert_eq!(ledger.state.supply.redemption_reversed_total, 15);
    let in_full = ledger.rejected(Command::ReverseRedemption {
        redemption_id: redemption,
        points: None,
    });
    assert_eq!(code(&in_full), "reversal_exceeds_original");
    assert_eq!(
        in_full.to_string(),
        format!("redemption {} is already reversed in full", redemption.0)
    );
}

#[test]
fn reversing_zero_points_is_bad_input_not_an_excess() {
    let mut ledger = Ledger::with_merchants();
    let issuance = ledger.issue("ann", "cafe", "o1", 10);
    let redemption = ledger.redeem("ann", "cafe", 5);
    for command in [
        Command::ReverseIssuance {
            issuance_id: issuance,
            points: Some(0),
        },
        Command::ReverseRedemption {
            redemption_id: redemption,
            points: Some(0),
        },
    ] {
        let rejection = ledger.rejected(command);
        assert_eq!(code(&rejection), "validation_error", "{rejection}");
    }
}

#[test]
fn restoring_points_respects_the_cap() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.supply_cap = 100);
    ledger.issue("ann", "cafe", "o1", 100);
    let redemption = ledger.redeem("ann", "cinema", 50);
    ledger.issue("bob", "cafe", "o2", 50);
    let rejection = ledger.rejected(Command::ReverseRedemption {
        redemption_id: redemption,
        points: None,
    });
    assert_eq!(code(&rejection), "supply_cap_exceeded");
}

#[test]
fn captured_holds_can_be_cancelled_like_redemptions() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 100);
    let hold = ledger.hold("ann", "cinema", 40, 600);
    let events = ledger.ok(Command::CaptureHold {
        hold_id: hold,
        points: None,
    });
    let Some(Event::HoldCaptured(captured)) = events.last() else {
        panic!("expected a capture");
    };
    ledger.ok(Command::ReverseRedemption {
        redemption_id: captured.redemption_id,
        points: None,
    });
    assert_eq!(ledger.balance("ann"), (100, 0));
}
