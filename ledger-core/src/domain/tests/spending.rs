use super::*;
use crate::domain::event::{HoldReleaseReason, LotPortion};
use crate::domain::program::VelocityLimit;
use crate::domain::state::HoldStatus;

fn consumed_lots(events: &[Event]) -> Vec<(u64, Points)> {
    let portions: &[LotPortion] = match events.last() {
        Some(Event::PointsRedeemed(redeemed)) => &redeemed.consumed,
        Some(Event::HoldCaptured(captured)) => &captured.consumed,
        other => panic!("expected a redemption, got {other:?}"),
    };
    portions
        .iter()
        .map(|portion| (portion.lot_id.0, portion.points))
        .collect()
}

#[test]
fn redemptions_take_the_earliest_expiring_lots_first() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(10));
    ledger.issue("ann", "cafe", "o1", 10); // lot 1, expires day 10
    ledger.advance_days(1);
    ledger.issue("ann", "cafe", "o2", 10); // lot 2, expires day 11
    configure(&mut ledger, |rules| rules.expiry_days = None);
    ledger.issue("ann", "cafe", "o3", 10); // lot 3, never expires
    configure(&mut ledger, |rules| rules.expiry_days = Some(5));
    ledger.issue("ann", "cinema", "o4", 10); // lot 4, expires day 6: first
    let events = ledger.ok(redeem("ann", "cafe", 25));
    assert_eq!(consumed_lots(&events), vec![(4, 10), (1, 10), (2, 5)]);
    let events = ledger.ok(redeem("ann", "cafe", 15));
    assert_eq!(
        consumed_lots(&events),
        vec![(2, 5), (3, 10)],
        "never-expiring last"
    );
}

#[test]
fn lots_with_the_same_expiry_go_oldest_first() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(10));
    ledger.issue("ann", "cinema", "o1", 5);
    ledger.issue("ann", "cafe", "o2", 5);
    let events = ledger.ok(redeem("ann", "cafe", 6));
    assert_eq!(consumed_lots(&events), vec![(1, 5), (2, 1)]);
}

#[test]
fn redemptions_need_points_and_an_active_merchant() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 10);
    let rejection = ledger.rejected(redeem("ann", "cinema", 11));
    assert_eq!(
        rejection,
        Rejection::InsufficientPoints {
            account: account("ann"),
            requested: 11,
            available: 10,
        }
    );
    assert_eq!(
        code(&ledger.rejected(redeem("nobody", "cinema", 1))),
        "insufficient_points"
    );
    ledger.ok(Command::SuspendMerchant {
        merchant_id: merchant("cinema"),
        reason: None,
    });
    assert_eq!(
        code(&ledger.rejected(redeem("ann", "cinema", 1))),
        "merchant_not_active"
    );
    assert_eq!(
        code(&ledger.rejected(redeem("ann", "cafe", 0))),
        "validation_error"
    );
}

#[test]
fn a_redemption_records_what_the_merchant_is_owed() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 1000);
    let events = ledger.ok(redeem("ann", "cinema", 250));
    let Some(Event::PointsRedeemed(redeemed)) = events.last() else {
        panic!("expected a redemption");
    };
    assert_eq!(redeemed.value_owed.amount, amount("2.000"));
    assert_eq!(redeemed.consumed[0].origin_merchant_id, merchant("cafe"));
    assert_eq!(ledger.state.supply.redeemed_total, 250);
}

#[test]
fn transfers_keep_origin_and_expiry() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(30));
    ledger.issue("ann", "cafe", "o1", 10);
    ledger.issue("ann", "cinema", "o2", 10);
    let events = ledger.ok(transfer("ann", "bob", 15));
    let Some(Event::PointsTransferred(transferred)) = events.last() else {
        panic!("expected a transfer");
    };
    assert_eq!(transferred.moved.len(), 2);
    let bob = &ledger.state.accounts[&account("bob")];
    let ann = &ledger.state.accounts[&account("ann")];
    assert_eq!(bob.balance, 15);
    assert_eq!(ann.balance, 5);
    assert_eq!(
        ledger.state.merchant_id(bob.lots[0].origin),
        Some(&merchant("cafe"))
    );
    assert_eq!(
        ledger.state.merchant_id(bob.lots[1].origin),
        Some(&merchant("cinema"))
    );
    assert_eq!(bob.lots[1].remaining, 5);
    assert_eq!(bob.lots[0].expires_at(), Some(ledger.now.plus_days(30)));
    assert_eq!(
        ledger.state.merchant_id(ann.lots[0].origin),
        Some(&merchant("cinema"))
    );
}

#[test]
fn transfers_need_two_accounts_and_enough_points() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 10);
    assert_eq!(
        code(&ledger.rejected(transfer("ann", "ann", 1))),
        "validation_error"
    );
    assert_eq!(
        code(&ledger.rejected(transfer("ann", "bob", 11))),
        "insufficient_points"
    );
}

#[test]
fn holds_reserve_then_capture_or_release() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 100);
    let hold = ledger.hold("ann", "cinema", 60, 600);
    assert_eq!(ledger.balance("ann"), (100, 60));
    assert_eq!(
        code(&ledger.rejected(redeem("ann", "cafe", 41))),
        "insufficient_points"
    );
    assert_eq!(
        code(&ledger.rejected(transfer("ann", "bob", 41))),
        "insufficient_points"
    );
    // Partial capture: 50 spent, 10 released.
    let events = ledger.ok(Command::CaptureHold {
        hold_id: hold,
        points: Some(50),
    });
    let Some(Event::HoldCaptured(captured)) = events.last() else {
        panic!("expected a capture");
    };
    assert_eq!((captured.points, captured.points_released), (50, 10));
    assert_eq!(ledger.balance("ann"), (50, 0));
    assert_eq!(ledger.state.supply.redeemed_total, 50);
    let rejection = ledger.rejected(Command::CaptureHold {
        hold_id: hold,
        points: None,
    });
    assert_eq!(
        rejection,
        Rejection::HoldNotActive {
            hold_id: hold,
            status: HoldStatus::Captured,
        }
    );
    let second = ledger.hold("ann", "cinema", 20, 600);
    ledger.ok(Command::ReleaseHold { hold_id: second });
    assert_eq!(ledger.balance("ann"), (50, 0));
    assert_eq!(
        code(&ledger.rejected(Command::ReleaseHold { hold_id: second })),
        "hold_not_active"
    );
    assert_eq!(
        code(&ledger.rejected(Command::ReleaseHold {
            hold_id: HoldId(99)
        })),
        "not_found"
    );
}

#[test]
fn a_capture_cannot_exceed_the_hold() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 100);
    let hold = ledger.hold("ann", "cinema", 10, 600);
    let rejection = ledger.rejected(Command::CaptureHold {
        hold_id: hold,
        points: Some(11),
    });
    assert_eq!(code(&rejection), "validation_error");
}

#[test]
fn timed_out_holds_cannot_be_captured_and_free_their_points_on_the_next_debit() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 100);
    let hold = ledger.hold("ann", "cinema", 80, 60);
    ledger.advance_seconds(60);
    let rejection = ledger.rejected(Command::CaptureHold {
        hold_id: hold,
        points: None,
    });
    assert_eq!(
        rejection,
        Rejection::HoldNotActive {
            hold_id: hold,
            status: HoldStatus::TimedOut,
        }
    );
    let events = ledger.ok(redeem("ann", "cafe", 90));
    assert!(matches!(
        &events[0],
        Event::HoldReleased(released) if released.reason == HoldReleaseReason::TimedOut && released.hold_id == hold
    ));
    assert_eq!(ledger.balance("ann"), (10, 0));
}

#[test]
fn hold_lifetimes_are_bounded() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 100);
    for seconds in [0, crate::domain::command::HOLD_EXPIRY_SECONDS_MAX + 1] {
        let rejection = ledger.rejected(Command::HoldPoints {
            account: account("ann"),
            merchant_id: merchant("cafe"),
            points: 1,
            order_ref: None,
            expires_in_seconds: Some(seconds),
        });
        assert_eq!(code(&rejection), "validation_error");
    }
}

fn velocity(count_max: Option<u32>, soft_points_max: Option<Points>) -> VelocityLimit {
    VelocityLimit {
        window_seconds: 3600,
        count_max,
        points_max: None,
        soft_count_max: None,
        soft_points_max,
    }
}

#[test]
fn hard_velocity_limits_refuse_and_soft_ones_raise_alerts() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| {
        rules.risk_rules.redemption_velocity = Some(velocity(Some(2), Some(15)));
        rules.risk_rules.transfer_velocity = Some(velocity(Some(1), None));
    });
    ledger.issue("ann", "cafe", "o1", 100);
    let events = ledger.ok(redeem("ann", "cafe", 10));
    assert_eq!(events.len(), 1, "no alert below the soft limit");
    let events = ledger.ok(redeem("ann", "cafe", 10));
    assert!(
        matches!(&events[0], Event::RiskAlertRaised(alert) if alert.observed == 20 && alert.limit == 15)
    );
    let rejection = ledger.rejected(redeem("ann", "cafe", 1));
    assert!(matches!(
        rejection,
        Rejection::RiskLimitExceeded {
            observed: 3,
            limit: 2,
            ..
        }
    ));
    // The window slides.
    ledger.advance_seconds(3600);
    ledger.redeem("ann", "cafe", 1);
    ledger.ok(transfer("ann", "bob", 1));
    assert_eq!(
        code(&ledger.rejected(transfer("ann", "bob", 1))),
        "risk_limit_exceeded"
    );
    // Limits are per account.
    ledger.ok(transfer("bob", "ann", 1));
}
