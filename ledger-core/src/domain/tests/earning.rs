use super::*;
use crate::domain::event::EarningLimit;
use crate::domain::program::{CategoryMultiplier, ReleasePolicy, Tier};

fn issued(events: &[Event]) -> &crate::domain::event::PointsIssued {
    match events.last() {
        Some(Event::PointsIssued(issued)) => issued,
        other => panic!("expected points_issued, got {other:?}"),
    }
}

#[test]
fn issuance_needs_a_programme() {
    let mut ledger = Ledger::new();
    let rejection = ledger.rejected(issue("ann", "cafe", "o1", 1));
    assert_eq!(code(&rejection), "program_not_configured");
}

#[test]
fn issuance_credits_a_lot_and_consumes_funding_exactly() {
    let mut ledger = Ledger::with_merchants();
    let events = ledger.ok(issue("ann", "cafe", "o1", 1234));
    let issued = issued(&events);
    assert_eq!(issued.funds_consumed.amount, amount("12.34"));
    assert_eq!(issued.funding_after, amount("987.66"));
    assert_eq!(ledger.funding("cafe"), amount("987.66"));
    assert_eq!(ledger.balance("ann"), (1234, 0));
    let lots = &ledger.state.accounts[&account("ann")].lots;
    assert_eq!(lots.len(), 1);
    assert_eq!(
        ledger.state.merchant_id(lots[0].origin),
        Some(&merchant("cafe"))
    );
    assert_eq!(ledger.state.supply.issued_total, 1234);
}

#[test]
fn only_active_merchants_issue() {
    let mut ledger = Ledger::with_merchants();
    ledger.ok(Command::SuspendMerchant {
        merchant_id: merchant("cafe"),
        reason: None,
    });
    assert_eq!(
        code(&ledger.rejected(issue("ann", "cafe", "o1", 1))),
        "merchant_not_active"
    );
    assert_eq!(
        code(&ledger.rejected(issue("ann", "nobody", "o1", 1))),
        "not_found"
    );
}

#[test]
fn one_order_earns_once() {
    let mut ledger = Ledger::with_merchants();
    let first = ledger.issue("ann", "cafe", "o1", 10);
    let rejection = ledger.rejected(issue("bob", "cafe", "o1", 20));
    assert_eq!(
        rejection,
        Rejection::DuplicateOrder {
            merchant_id: merchant("cafe"),
            order_ref: order("o1"),
            issuance_id: first,
        }
    );
    // The same reference at another merchant is another order.
    ledger.issue("ann", "cinema", "o1", 10);
}

#[test]
fn funding_must_cover_the_issuance() {
    let mut ledger = Ledger::with_merchants();
    // 1,000.00 EUR at 0.01 per point covers exactly 100,000 points.
    let rejection = ledger.rejected(issue("ann", "cafe", "o1", 100_001));
    assert_eq!(
        rejection,
        Rejection::MerchantFundingInsufficient {
            merchant_id: merchant("cafe"),
            required: amount("1000.01"),
            available: amount("1000.00"),
        }
    );
    ledger.issue("ann", "cafe", "o1", 100_000);
    assert_eq!(ledger.funding("cafe"), Amount::ZERO);
}

#[test]
fn the_supply_cap_bounds_outstanding_points() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.supply_cap = 1000);
    ledger.issue("ann", "cafe", "o1", 900);
    let rejection = ledger.rejected(issue("ann", "cinema", "o2", 101));
    assert_eq!(
        rejection,
        Rejection::SupplyCapExceeded {
            requested: 101,
            supply_cap: 1000,
            headroom: 100,
        }
    );
    // Redemption frees headroom.
    ledger.redeem("ann", "cinema", 1);
    ledger.issue("ann", "cinema", "o2", 101);
    assert_eq!(ledger.state.outstanding(), 1000);
}

#[test]
fn the_release_budget_is_base_plus_factor_times_last_periods_redemptions() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| {
        rules.release = Some(ReleasePolicy {
            period_days: 1,
            base_points: 100,
            redeemed_factor: amount("0.5"),
        });
    });
    ledger.issue("ann", "cafe", "o1", 100);
    let rejection = ledger.rejected(issue("ann", "cafe", "o2", 1));
    assert!(matches!(
        rejection,
        Rejection::ReleaseBudgetExceeded {
            budget: 100,
            remaining: 0,
            requested: 1,
            ..
        }
    ));
    ledger.redeem("ann", "cinema", 61);
    // Next day: 100 + floor(0.5 × 61) = 130.
    ledger.advance_days(1);
    ledger.issue("ann", "cafe", "o3", 130);
    let rejection = ledger.rejected(issue("ann", "cafe", "o4", 1));
    assert!(matches!(
        rejection,
        Rejection::ReleaseBudgetExceeded { budget: 130, .. }
    ));
    // A day without redemptions: the day after falls back to the base.
    ledger.advance_days(2);
    let rejection = ledger.rejected(issue("ann", "cafe", "o5", 101));
    assert!(matches!(
        rejection,
        Rejection::ReleaseBudgetExceeded { budget: 100, .. }
    ));
}

#[test]
fn purchases_are_priced_by_the_rules_and_rounded_down() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| {
        rules.earning_rules.points_per_currency_unit = amount("10");
        rules
            .earning_rules
            .category_multipliers
            .push(CategoryMultiplier {
                category: category("fuel"),
                multiplier: amount("2"),
            });
    });
    let events = ledger.ok(Command::IssuePoints {
        account: account("ann"),
        merchant_id: merchant("cafe"),
        order_ref: order("o1"),
        points: None,
        purchase_amount: Some(amount("3.99")),
        category: Some(category("fuel")),
    });
    let issued = issued(&events);
    assert_eq!(issued.points, 79, "3.99 × 10 × 2 = 79.8, rounded down");
    let pricing = issued
        .pricing
        .as_ref()
        .expect("purchase pricing is recorded");
    assert_eq!(pricing.multiplier, amount("2"));
    assert_eq!(pricing.purchase.amount, amount("3.99"));
}

#[test]
fn a_purchase_too_small_to_earn_is_refused_clearly() {
    let mut ledger = Ledger::with_merchants();
    let rejection = ledger.rejected(purchase("ann", "cafe", "o1", "0.99"));
    assert!(
        matches!(rejection, Rejection::ValidationError { ref field, .. } if field == "purchase_amount")
    );
    assert_eq!(
        code(&ledger.rejected(purchase("ann", "cafe", "o1", "0"))),
        "validation_error"
    );
}

#[test]
fn exactly_one_of_points_and_purchase_amount() {
    let mut ledger = Ledger::with_merchants();
    let both = Command::IssuePoints {
        account: account("ann"),
        merchant_id: merchant("cafe"),
        order_ref: order("o1"),
        points: Some(1),
        purchase_amount: Some(amount("1")),
        category: None,
    };
    assert_eq!(code(&ledger.rejected(both)), "validation_error");
    let neither = Command::IssuePoints {
        account: account("ann"),
        merchant_id: merchant("cafe"),
        order_ref: order("o1"),
        points: None,
        purchase_amount: None,
        category: None,
    };
    assert_eq!(code(&ledger.rejected(neither)), "validation_error");
    let category_without_purchase = Command::IssuePoints {
        account: account("ann"),
        merchant_id: merchant("cafe"),
        order_ref: order("o1"),
        points: Some(1),
        purchase_amount: None,
        category: Some(category("fuel")),
    };
    assert_eq!(
        code(&ledger.rejected(category_without_purchase)),
        "validation_error"
    );
    for points in [0, crate::domain::money::POINTS_PER_COMMAND_MAX + 1] {
        assert_eq!(
            code(&ledger.rejected(issue("ann", "cafe", "o1", points))),
            "validation_error"
        );
    }
}

#[test]
fn per_order_and_daily_limits_cut_awards_then_refuse() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| {
        rules.earning_rules.per_order_points_max = Some(50);
        rules.earning_rules.per_account_daily_points_max = Some(120);
    });
    let events = ledger.ok(issue("ann", "cafe", "o1", 80));
    assert_eq!(issued(&events).points, 50);
    assert_eq!(issued(&events).points_before_limits, 80);
    assert_eq!(issued(&events).limited_by, Some(EarningLimit::PerOrder));
    ledger.issue("ann", "cafe", "o2", 50);
    let events = ledger.ok(issue("ann", "cafe", "o3", 50));
    assert_eq!(issued(&events).points, 20);
    assert_eq!(
        issued(&events).limited_by,
        Some(EarningLimit::PerAccountDaily)
    );
    let rejection = ledger.rejected(issue("ann", "cafe", "o4", 1));
    assert_eq!(
        rejection,
        Rejection::EarningLimitReached {
            account: account("ann"),
            limit: 120,
        }
    );
    // Other members and the next day are unaffected.
    ledger.issue("bob", "cafe", "o5", 10);
    ledger.advance_days(1);
    ledger.issue("ann", "cafe", "o6", 10);
}

#[test]
fn tiers_follow_trailing_earnings() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| {
        rules.earning_rules.tiers.push(Tier {
            name: category("gold"),
            points_earned_min: 100,
            multiplier: amount("2"),
        });
        rules.earning_rules.tier_window_days = 30;
    });
    let events = ledger.ok(purchase("ann", "cafe", "o1", "100"));
    assert_eq!(issued(&events).points, 100);
    assert_eq!(
        issued(&events)
            .pricing
            .as_ref()
            .and_then(|pricing| pricing.tier.clone()),
        None
    );
    let events = ledger.ok(purchase("ann", "cafe", "o2", "10"));
    assert_eq!(issued(&events).points, 20, "gold doubles");
    ledger.advance_days(31);
    let events = ledger.ok(purchase("ann", "cafe", "o3", "10"));
    assert_eq!(issued(&events).points, 10, "the window has passed");
}
