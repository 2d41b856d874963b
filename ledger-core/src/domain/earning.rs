//! Pricing a purchase into points under the earning rules. Pure arithmetic on
//! exact decimals; the one rounding step is explicit and always down.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::event::{EarningLimit, PurchasePricing};
use super::ids::Category;
use super::money::{Amount, Money, POINTS_PER_COMMAND_MAX, Points};
use super::program::{EarningRules, Tier};
use super::rejection::Rejection;
use super::state::Account;
use super::time::Timestamp;

/// The highest tier whose threshold the member's trailing earnings reach.
pub fn member_tier<'rules>(
    rules: &'rules EarningRules,
    account: Option<&Account>,
    now: Timestamp,
) -> Option<&'rules Tier> {
    let today = now.day_index();
    let first_day = today - i64::from(rules.tier_window_days) + 1;
    let earned = account.map_or(0, |account| account.earned_between_days(first_day, today));
    rules
        .tiers
        .iter()
        .filter(|tier| earned >= tier.points_earned_min)
        .max_by_key(|tier| tier.points_earned_min)
}

/// The largest multiplier of the time windows open at `now`, or 1.
fn time_window_multiplier(rules: &EarningRules, now: Timestamp) -> Decimal {
    let minute = now.minute_of_day();
    let weekday = now.iso_weekday();
    rules
        .time_windows
        .iter()
        .filter(|window| window.weekdays.is_empty() || window.weekdays.contains(&weekday))
        .filter(|window| {
            if window.start_minute < window.end_minute {
                (window.start_minute..window.end_minute).contains(&minute)
            } else {
                minute >= window.start_minute || minute < window.end_minute
            }
        })
        .map(|window| window.multiplier.0)
        .max()
        .unwrap_or(Decimal::ONE)
}

fn category_multiplier(rules: &EarningRules, category: Option<&Category>) -> Decimal {
    category
        .and_then(|category| {
            rules
                .category_multipliers
                .iter()
                .find(|entry| &entry.category == category)
        })
        .map_or(Decimal::ONE, |entry| entry.multiplier.0)
}

/// `floor(amount × points_per_currency_unit × category × tier × window)`.
pub fn price_purchase(
    rules: &EarningRules,
    purchase: Money,
    category: Option<&Category>,
    tier: Option<&Tier>,
    now: Timestamp,
) -> Result<(Points, PurchasePricing), Rejection> {
    let multiplier = category_multiplier(rules, category)
        .checked_mul(tier.map_or(Decimal::ONE, |tier| tier.multiplier.0))
        .and_then(|product| product.checked_mul(time_window_multiplier(rules, now)));
    let points = multiplier.and_then(|multiplier| {
        purchase
            .amount
            .0
            .checked_mul(rules.points_per_currency_unit.0)?
            .checked_mul(multiplier)
            .map(|exact| (multiplier, exact.floor()))
    });
    let too_large = || {
        Rejection::invalid(
            "purchase_amount",
            format!("earns more than {POINTS_PER_COMMAND_MAX} points"),
        )
    };
    let (multiplier, points) = points.ok_or_else(too_large)?;
    let points = points
        .to_u64()
        .filter(|points| *points <= POINTS_PER_COMMAND_MAX)
        .ok_or_else(too_large)?;
    Ok((
        points,
        PurchasePricing {
            purchase,
            category: category.cloned(),
            tier: tier.map(|tier| tier.name.clone()),
            points_per_currency_unit: rules.points_per_currency_unit,
            multiplier: Amount(multiplier.normalize()),
        },
    ))
}

/// The points an issuance of `points_before_limits` at `now` grants under
/// the per-order and per-day limits, and the limit that cut it, if any;
/// `Err(daily maximum)` when the member has earned the day's maximum.
/// `decide` grants this and `apply` holds a recorded issuance to it.
pub fn apply_limits(
    rules: &EarningRules,
    account: Option<&Account>,
    now: Timestamp,
    points_before_limits: Points,
) -> Result<(Points, Option<EarningLimit>), Points> {
    let mut points = points_before_limits;
    let mut limited_by = None;
    if let Some(order_max) = rules.per_order_points_max
        && points > order_max
    {
        points = order_max;
        limited_by = Some(EarningLimit::PerOrder);
    }
    if let Some(daily_max) = rules.per_account_daily_points_max {
        let earned_today = account.map_or(0, |account| account.earned_on_day(now.day_index()));
        let allowance = daily_max.saturating_sub(earned_today);
        if allowance == 0 {
            return Err(daily_max);
        }
        if points > allowance {
            points = allowance;
            limited_by = Some(EarningLimit::PerAccountDaily);
        }
    }
    Ok((points, limited_by))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;
    use crate::domain::program::{CategoryMultiplier, TimeWindowMultiplier};

    fn money(text: &str) -> Money {
        Money {
            amount: text.parse().expect("valid amount"),
            currency: Currency::parse("EUR").expect("valid currency"),
        }
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("valid timestamp")
    }

    fn category(name: &str) -> Category {
        Category::parse(name).expect("valid category")
    }

    #[test]
    fn rounds_down_never_up() {
        let rules = EarningRules::default();
        let (points, _) = price_purchase(
            &rules,
            money("12.99"),
            None,
            None,
            at("2026-11-24T10:00:00Z"),
        )
        .expect("prices");
        assert_eq!(points, 12);
    }

    #[test]
    fn multipliers_compose_and_the_largest_window_wins() {
        let mut rules = EarningRules {
            points_per_currency_unit: "2".parse().expect("valid"),
            ..EarningRules::default()
        };
        rules.category_multipliers.push(CategoryMultiplier {
            category: category("fuel"),
            multiplier: "1.5".parse().expect("valid"),
        });
        // Tuesday 2026-11-24, two overlapping windows at 10:00.
        rules.time_windows.push(TimeWindowMultiplier {
            weekdays: vec![2],
            start_minute: 9 * 60,
            end_minute: 11 * 60,
            multiplier: "2".parse().expect("valid"),
        });
        rules.time_windows.push(TimeWindowMultiplier {
            weekdays: vec![],
            start_minute: 22 * 60,
            end_minute: 11 * 60,
            multiplier: "3".parse().expect("valid"),
        });
        let gold = Tier {
            name: category("gold"),
            points_earned_min: 100,
            multiplier: "1.1".parse().expect("valid"),
        };
        let (points, pricing) = price_purchase(
            &rules,
            money("10.00"),
            Some(&category("fuel")),
            Some(&gold),
            at("2026-11-24T10:00:00Z"),
        )
        .expect("prices");
        // 10 × 2 × 1.5 × 1.1 × 3 = 99
        assert_eq!(points, 99);
        assert_eq!(pricing.multiplier, "4.95".parse().expect("valid"));
        assert_eq!(pricing.tier, Some(category("gold")));
        // Outside both windows (Tuesday 12:00) only the category and tier apply.
        let (points, _) = price_purchase(
            &rules,
            money("10.00"),
            Some(&category("fuel")),
            None,
            at("2026-11-24T12:00:00Z"),
        )
        .expect("prices");
        assert_eq!(points, 30);
        // Unknown categories earn the base rate.
        let (points, _) = price_purchase(
            &rules,
            money("10.00"),
            Some(&category("books")),
            None,
            at("2026-11-24T12:00:00Z"),
        )
        .expect("prices");
        assert_eq!(points, 20);
    }

    #[test]
    fn absurd_purchases_are_refused() {
        let rules = EarningRules::default();
        let refused = price_purchase(
            &rules,
            money("10000000000000"),
            None,
            None,
            at("2026-11-24T10:00:00Z"),
        );
        assert!(
            matches!(refused, Err(Rejection::ValidationError { field, .. }) if field == "purchase_amount")
        );
    }

    #[test]
    fn the_highest_reached_tier_applies() {
        let mut rules = EarningRules::default();
        for (name, threshold) in [("silver", 50), ("gold", 200), ("bronze", 0)] {
            rules.tiers.push(Tier {
                name: category(name),
                points_earned_min: threshold,
                multiplier: "1".parse().expect("valid"),
            });
        }
        let now = at("2026-11-24T10:00:00Z");
        let mut account = Account::default();
        assert_eq!(
            member_tier(&rules, Some(&account), now).map(|tier| tier.name.as_str()),
            Some("bronze")
        );
        account.earned_by_day.push_back((now.day_index() - 10, 60));
        assert_eq!(
            member_tier(&rules, Some(&account), now).map(|tier| tier.name.as_str()),
            Some("silver")
        );
        // Earnings older than the window no longer count.
        rules.tier_window_days = 5;
        assert_eq!(
            member_tier(&rules, Some(&account), now).map(|tier| tier.name.as_str()),
            Some("bronze")
        );
    }
}
