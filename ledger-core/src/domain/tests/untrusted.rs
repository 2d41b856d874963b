//! `try_apply` on events no `decide` produced, as a log under audit may
//! hold them: each is refused naming what does not fit, where the same
//! event with that one thing right applies.

use super::*;
use crate::domain::event::{EarningLimit, HoldReleaseReason, PointsIssued};
use crate::domain::ids::{IssuanceId, LotId};
use crate::domain::program::VelocityLimit;
use crate::domain::state::{Lot, MerchantNumber};
use crate::domain::try_apply;

/// The issuance `decide` records next for `order_ref`, not applied.
fn next_issuance(ledger: &Ledger, order_ref: &str) -> PointsIssued {
    let command = issue("bob", "cafe", order_ref, 20);
    match decide(&ledger.state, &command, &ledger.context()).as_deref() {
        Ok([Event::PointsIssued(issued)]) => issued.clone(),
        other => panic!("expected one points_issued, got {other:?}"),
    }
}

fn refusal(ledger: &Ledger, issued: PointsIssued) -> String {
    let mut state = ledger.state.clone();
    match try_apply(&mut state, &Event::PointsIssued(issued)) {
        Ok(()) => panic!("applied"),
        Err(error) => error.reason,
    }
}

#[test]
fn an_issuance_that_does_not_fit_is_refused_for_what_does_not() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 10);
    let fresh = next_issuance(&ledger, "o2");

    let mut state = ledger.state.clone();
    try_apply(&mut state, &Event::PointsIssued(fresh.clone())).expect("as decided, it applies");

    let repeated_order = PointsIssued {
        order_ref: order("o1"),
        ..fresh.clone()
    };
    assert_eq!(
        refusal(&ledger, repeated_order),
        "order o1 of cafe already earned"
    );

    let skipped_lot = PointsIssued {
        lot_id: LotId(fresh.lot_id.0 + 1),
        ..fresh.clone()
    };
    assert_eq!(
        refusal(&ledger, skipped_lot),
        format!("lot id {}, expected {}", fresh.lot_id.0 + 1, fresh.lot_id.0)
    );

    let wrong_funding = PointsIssued {
        funding_after: amount("999.80"),
        ..fresh.clone()
    };
    assert_eq!(fresh.funding_after, amount("999.70"));
    assert_eq!(
        refusal(&ledger, wrong_funding),
        format!(
            "funding after is recorded as {}, computed {:?}",
            amount("999.80"),
            Some(fresh.funding_after)
        )
    );

    // A lot keeps its expiry in 8 bytes, the last instant meaning never,
    // so it cannot record one at that instant (an issuance's validity is
    // checked against the programme's before that).
    assert_eq!(
        Lot::new(
            fresh.lot_id,
            MerchantNumber(0),
            20,
            fresh.issued_at,
            Some(Timestamp(i64::MAX))
        ),
        None
    );
    let expiring_at_the_end_of_time = PointsIssued {
        expires_at: Some(Timestamp(i64::MAX)),
        ..fresh.clone()
    };
    assert!(
        refusal(&ledger, expiring_at_the_end_of_time)
            .ends_with("the programme's validity gives None")
    );
}

#[test]
fn a_transfer_naming_another_origin_is_refused() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 10);
    let events =
        decide(&ledger.state, &transfer("ann", "bob", 4), &ledger.context()).expect("decided");
    let Some(Event::PointsTransferred(transferred)) = events.last() else {
        panic!("expected a transfer, got {events:?}");
    };
    let mut state = ledger.state.clone();
    try_apply(&mut state, &Event::PointsTransferred(transferred.clone()))
        .expect("as decided, it applies");

    let mut forged = transferred.clone();
    forged.moved[0].origin_merchant_id = merchant("cinema");
    let mut state = ledger.state.clone();
    let refused =
        try_apply(&mut state, &Event::PointsTransferred(forged)).map_err(|error| error.reason);
    assert_eq!(
        refused,
        Err(format!(
            "lot {} is recorded with other origin or dates",
            transferred.moved[0].source_lot_id
        ))
    );
}

#[test]
fn merchant_numbers_that_do_not_fit_are_reported() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 10);
    assert_eq!(ledger.state.check_merchant_numbers(), Ok(()));
    let merchants = ledger.state.merchant_ids.len() as u32;

    let mut unnumbered_origin = ledger.state.clone();
    let Some(ann) = unnumbered_origin.accounts.get_mut(&account("ann")) else {
        panic!("ann has an account");
    };
    let lot_id = ann.lots[0].lot_id;
    ann.lots[0].origin = MerchantNumber(merchants);
    assert_eq!(
        unnumbered_origin.check_merchant_numbers(),
        Err(format!(
            "lot {lot_id} of ann comes from merchant number {merchants}, which no merchant has"
        ))
    );
    let violation = check_all(&unnumbered_origin).expect_err("check_all reports it");
    assert_eq!(violation.invariant, 0);

    let mut unnumbered_issuer = ledger.state.clone();
    if let Some(issuance) = unnumbered_issuer.issuances.get_mut(IssuanceId(1)) {
        issuance.merchant = MerchantNumber(merchants);
    }
    assert_eq!(
        unnumbered_issuer.check_merchant_numbers(),
        Err("an issuance names a merchant number no merchant has".to_owned())
    );

    let mut swapped = ledger.state.clone();
    swapped.merchant_ids.swap(0, 1);
    assert!(
        swapped
            .check_merchant_numbers()
            .is_err_and(|why| why.contains("has number")),
        "a merchant must be at its own number"
    );

    let mut short = ledger.state.clone();
    short.merchant_ids.pop();
    assert_eq!(
        short.check_merchant_numbers(),
        Err(format!(
            "{} merchant numbers for {merchants} merchants",
            merchants - 1
        ))
    );
}

/// The last event `decide` makes of `command`, not applied; it applies.
fn decided(ledger: &Ledger, command: Command) -> Event {
    let events = decide(&ledger.state, &command, &ledger.context()).expect("decided");
    let last = events.last().cloned().expect("an event");
    let mut state = ledger.state.clone();
    for event in &events {
        try_apply(&mut state, event).expect("as decided, it applies");
    }
    last
}

/// Ann's hold at the café for ten minutes.
fn hold_at_the_cafe(points: Points) -> Command {
    Command::HoldPoints {
        account: account("ann"),
        merchant_id: merchant("cafe"),
        points,
        order_ref: None,
        expires_in_seconds: Some(600),
    }
}

fn refused(ledger: &Ledger, forged: Event) -> String {
    let mut state = ledger.state.clone();
    match try_apply(&mut state, &forged) {
        Ok(()) => panic!("applied: {forged:?}"),
        Err(error) => error.reason,
    }
}

#[test]
fn money_an_event_records_is_computed_not_taken_from_the_log() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 100);

    let fresh = next_issuance(&ledger, "o2");
    let cheaper = PointsIssued {
        unit_price: amount("0.005"),
        ..fresh.clone()
    };
    assert_eq!(
        refusal(&ledger, cheaper),
        "unit price is recorded as 0.005, the merchant's is 0.01"
    );
    let mut underpaid = fresh.clone();
    underpaid.funds_consumed.amount = amount("0.10");
    assert_eq!(
        refusal(&ledger, underpaid),
        "funds consumed is recorded as 0.1 EUR, computed 0.2 EUR (20 points at 0.01)"
    );

    let Event::PointsRedeemed(redeemed) = decided(&ledger, redeem("ann", "cinema", 10)) else {
        panic!("expected a redemption");
    };
    let mut overpaid = redeemed.clone();
    overpaid.value_owed.amount = amount("80");
    assert_eq!(
        refused(&ledger, Event::PointsRedeemed(overpaid)),
        "value owed is recorded as 80 EUR, computed 0.08 EUR (10 points at 0.008)"
    );
    let mut dearer = redeemed.clone();
    dearer.unit_value = amount("8");
    assert_eq!(
        refused(&ledger, Event::PointsRedeemed(dearer)),
        "unit value is recorded as 8, the merchant's is 0.008"
    );
    let mut nowhere = redeemed.clone();
    nowhere.merchant_id = merchant("nowhere");
    assert_eq!(
        refused(&ledger, Event::PointsRedeemed(nowhere)),
        "merchant nowhere does not exist"
    );
}

#[test]
fn a_capture_or_release_names_its_holds_merchant() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 100);
    let hold_id = ledger.hold("ann", "cafe", 30, 600);
    let capture = Command::CaptureHold {
        hold_id,
        points: Some(20),
    };
    let Event::HoldCaptured(captured) = decided(&ledger, capture) else {
        panic!("expected a capture");
    };
    let mut elsewhere = captured.clone();
    elsewhere.merchant_id = merchant("cinema");
    assert_eq!(
        refused(&ledger, Event::HoldCaptured(elsewhere)),
        format!("capture does not match hold {hold_id}")
    );
    let mut overpaid = captured.clone();
    overpaid.value_owed.amount = amount("1.60");
    assert_eq!(
        refused(&ledger, Event::HoldCaptured(overpaid)),
        "value owed is recorded as 1.6 EUR, computed 0.16 EUR (20 points at 0.008)"
    );

    let Event::HoldReleased(released) = decided(&ledger, Command::ReleaseHold { hold_id }) else {
        panic!("expected a release");
    };
    let mut elsewhere = released.clone();
    elsewhere.merchant_id = merchant("cinema");
    assert_eq!(
        refused(&ledger, Event::HoldReleased(elsewhere)),
        format!("release does not match hold {hold_id}")
    );
    let mut early_timeout = released.clone();
    early_timeout.reason = HoldReleaseReason::TimedOut;
    assert_eq!(
        refused(&ledger, Event::HoldReleased(early_timeout)),
        format!(
            "hold {hold_id} expiring at {} is recorded as TimedOut at {}",
            ledger.now.plus_seconds(600),
            ledger.now
        )
    );
}

#[test]
fn a_withdrawal_dressed_as_a_deposit_or_a_hold_at_no_merchant_is_refused() {
    let mut ledger = Ledger::with_merchants();
    let deposit = Command::RecordDeposit {
        merchant_id: merchant("cafe"),
        amount: amount("50"),
    };
    let Event::DepositRecorded(deposited) = decided(&ledger, deposit) else {
        panic!("expected a deposit");
    };
    let mut withdrawal = deposited.clone();
    withdrawal.amount.amount = amount("-50");
    withdrawal.funding_after = amount("950");
    assert_eq!(
        refused(&ledger, Event::DepositRecorded(withdrawal)),
        "deposit of -50"
    );

    ledger.issue("ann", "cafe", "o1", 100);
    let hold_id = ledger.hold("ann", "cafe", 30, 600);
    ledger.ok(Command::ReleaseHold { hold_id });
    let hold = hold_at_the_cafe(10);
    let Event::PointsHeld(held) = decided(&ledger, hold) else {
        panic!("expected a hold");
    };
    let mut nowhere = held.clone();
    nowhere.merchant_id = merchant("nowhere");
    assert_eq!(
        refused(&ledger, Event::PointsHeld(nowhere)),
        "merchant nowhere does not exist"
    );
}

#[test]
fn a_reversal_must_fit_what_it_reverses() {
    let mut ledger = Ledger::with_merchants();
    let issuance_id = ledger.issue("ann", "cafe", "o1", 100);
    ledger.issue("ann", "cinema", "o2", 100);
    ledger.issue("bob", "cafe", "o3", 100);

    let reverse_issuance = Command::ReverseIssuance {
        issuance_id,
        points: Some(40),
    };
    let Event::IssuanceReversed(reversed) = decided(&ledger, reverse_issuance) else {
        panic!("expected an issuance reversal");
    };
    let mut refund_elsewhere = reversed.clone();
    refund_elsewhere.merchant_id = merchant("cinema");
    assert_eq!(
        refused(&ledger, Event::IssuanceReversed(refund_elsewhere)),
        format!("issuance {issuance_id} was of ann at cafe, not of ann at cinema")
    );
    let mut larger_refund = reversed.clone();
    larger_refund.funds_returned.amount = amount("4");
    assert_eq!(
        refused(&ledger, Event::IssuanceReversed(larger_refund)),
        "funds returned is recorded as 4 EUR, computed 0.4 EUR (40 points at 0.01)"
    );

    // Spends all of cafe's lot and 50 of cinema's; a reversal of 60
    // restores cinema's 50 first, then 10 of cafe's.
    let redemption_id = ledger.redeem("ann", "cafe", 150);
    let reverse_redemption = Command::ReverseRedemption {
        redemption_id,
        points: Some(60),
    };
    let Event::RedemptionReversed(restoring) = decided(&ledger, reverse_redemption) else {
        panic!("expected a redemption reversal");
    };
    let restored: Vec<_> = restoring
        .restored
        .iter()
        .map(|credit| (credit.origin_merchant_id.as_str(), credit.points))
        .collect();
    assert_eq!(restored, [("cinema", 50), ("cafe", 10)]);
    let mut other_origin = restoring.clone();
    other_origin.restored[0].origin_merchant_id = merchant("cafe");
    assert_eq!(
        refused(&ledger, Event::RedemptionReversed(other_origin)),
        format!("redemption {redemption_id} restores other lots than it consumed, last first")
    );
    let mut first_spent_first = restoring.clone();
    first_spent_first.restored.reverse();
    assert_eq!(
        refused(&ledger, Event::RedemptionReversed(first_spent_first)),
        format!("redemption {redemption_id} restores other lots than it consumed, last first")
    );
    let mut to_bob = restoring.clone();
    to_bob.account = account("bob");
    assert_eq!(
        refused(&ledger, Event::RedemptionReversed(to_bob)),
        format!("redemption {redemption_id} was of ann at cafe, not of bob at cafe")
    );
    let mut larger_return = restoring.clone();
    larger_return.value_returned.amount = amount("48");
    assert_eq!(
        refused(&ledger, Event::RedemptionReversed(larger_return)),
        "value returned is recorded as 48 EUR, computed 0.48 EUR (60 points at 0.008)"
    );
}

/// `issued` granting `points` instead, its funding moved to match, so that
/// only the earning rules can tell.
fn granting(issued: &PointsIssued, points_before_limits: Points, points: Points) -> Event {
    let mut forged = issued.clone();
    let cost = |points: Points| {
        issued
            .unit_price
            .checked_times_points(points)
            .expect("a small cost")
    };
    forged.points_before_limits = points_before_limits;
    forged.points = points;
    forged.funds_consumed.amount = cost(points);
    forged.funding_after = Amount(issued.funding_after.0 + cost(issued.points).0 - cost(points).0);
    Event::PointsIssued(forged)
}

#[test]
fn an_issuance_grants_what_the_earning_rules_give() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| {
        rules.earning_rules.per_order_points_max = Some(500);
    });
    let Event::PointsIssued(priced) = decided(&ledger, purchase("ann", "cafe", "o1", "12.34"))
    else {
        panic!("expected an issuance");
    };
    assert_eq!((priced.points_before_limits, priced.points), (12, 12));
    assert_eq!(
        refused(&ledger, granting(&priced, 1_200, 500)),
        format!(
            "the purchase is recorded as earning 1200 ({:?}); the rules give 12 ({:?})",
            priced.pricing.clone().expect("priced"),
            priced.pricing.clone().expect("priced")
        )
    );

    let Event::PointsIssued(limited) = decided(&ledger, issue("ann", "cafe", "o2", 800)) else {
        panic!("expected an issuance");
    };
    assert_eq!(
        (limited.points, limited.limited_by),
        (500, Some(EarningLimit::PerOrder))
    );
    assert_eq!(
        refused(&ledger, granting(&limited, 800, 800)),
        "800 points before limits are recorded as 800 (Some(PerOrder)); the limits give 500 (Some(PerOrder))"
    );

    let mut old_rules = limited.clone();
    old_rules.rule_version -= 1;
    assert_eq!(
        refused(&ledger, Event::PointsIssued(old_rules)),
        format!(
            "priced by rule version {}, the programme's is {}",
            limited.rule_version - 1,
            limited.rule_version
        )
    );
}

#[test]
fn lots_cannot_be_expired_before_they_are_due() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(10));
    ledger.issue("ann", "cafe", "o1", 10);
    ledger.advance_days(10);
    let run = Command::RunExpiry { as_of: ledger.now };
    let events = decide(&ledger.state, &run, &ledger.context()).expect("decided");
    let Some(Event::PointsExpired(expired)) = events.first() else {
        panic!("expected an expiry, got {events:?}");
    };
    let mut state = ledger.state.clone();
    try_apply(&mut state, &Event::PointsExpired(expired.clone())).expect("as decided, it applies");

    // The same expiry recorded a day early, naming the day it was due.
    let mut early = expired.clone();
    early.expired_at = ledger.now.minus_seconds(86_400);
    assert_eq!(
        refused(&ledger, Event::PointsExpired(early.clone())),
        format!(
            "expires as of {}, later than it is recorded at ({})",
            early.as_of, early.expired_at
        )
    );
}

#[test]
fn a_merchant_cannot_apply_at_a_negative_price() {
    let ledger = Ledger::with_merchants();
    let apply = Command::ApplyMerchant {
        merchant_id: merchant("books"),
        name: "Books".to_owned(),
        currency: Currency::parse("EUR").expect("valid"),
        issue_price: amount("0.01"),
        redemption_value: amount("0.008"),
    };
    let Event::MerchantApplied(applied) = decided(&ledger, apply) else {
        panic!("expected an application");
    };
    let mut paid_to_issue = applied.clone();
    paid_to_issue.issue_price = amount("-0.01");
    assert_eq!(
        refused(&ledger, Event::MerchantApplied(paid_to_issue)),
        "merchant books applies at -0.01 a point issued and 0.008 a point redeemed"
    );
}

#[test]
fn a_lot_is_valid_for_the_programmes_expiry_and_no_longer() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(30));
    let fresh = next_issuance(&ledger, "o1");
    assert_eq!(fresh.expires_at, Some(ledger.now.plus_days(30)));
    let longer = PointsIssued {
        expires_at: Some(ledger.now.plus_days(3650)),
        ..fresh.clone()
    };
    assert_eq!(
        refusal(&ledger, longer),
        format!(
            "the lot is recorded as expiring at {:?}; the programme's validity gives {:?}",
            Some(ledger.now.plus_days(3650)),
            fresh.expires_at
        )
    );
    let never = PointsIssued {
        expires_at: None,
        ..fresh.clone()
    };
    assert!(refusal(&ledger, never).starts_with("the lot is recorded as expiring at None"));
}

/// Points are issued, held and spent only at an active merchant: events
/// decided while the café was active do not apply once it is suspended.
#[test]
fn points_move_only_at_an_active_merchant() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 100);
    let hold_id = ledger.hold("ann", "cafe", 30, 600);
    let issued = Event::PointsIssued(next_issuance(&ledger, "o2"));
    let redeemed = decided(&ledger, redeem("ann", "cafe", 10));
    let held = decided(&ledger, hold_at_the_cafe(5));
    let captured = decided(
        &ledger,
        Command::CaptureHold {
            hold_id,
            points: None,
        },
    );

    ledger.ok(Command::SuspendMerchant {
        merchant_id: merchant("cafe"),
        reason: None,
    });
    for event in [issued, redeemed, held, captured] {
        assert_eq!(
            refused(&ledger, event),
            "merchant cafe is Suspended, not active"
        );
    }
}

/// A movement past a hard velocity limit is refused, as `decide` rejects
/// it: events decided while no limit applied do not apply once the
/// programme allows one redemption (or hold) and one transfer an hour.
#[test]
fn a_movement_past_a_hard_velocity_limit_is_refused() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 100);
    ledger.redeem("ann", "cafe", 10);
    ledger.ok(transfer("ann", "bob", 5));
    let redeemed = decided(&ledger, redeem("ann", "cinema", 10));
    let held = decided(&ledger, hold_at_the_cafe(7));
    let transferred = decided(&ledger, transfer("ann", "bob", 5));

    configure(&mut ledger, |rules| {
        let once_an_hour = VelocityLimit {
            window_seconds: 3600,
            count_max: Some(1),
            points_max: None,
            soft_count_max: None,
            soft_points_max: None,
        };
        rules.risk_rules.redemption_velocity = Some(once_an_hour.clone());
        rules.risk_rules.transfer_velocity = Some(once_an_hour);
    });
    for (event, movement) in [
        (redeemed, "redemption of 10"),
        (held, "hold of 7"),
        (transferred, "transfer of 5"),
    ] {
        assert_eq!(
            refused(&ledger, event),
            format!(
                "{movement} points exceeds a hard velocity limit: 2 by count within 3600 s, at most 1"
            )
        );
    }
}
