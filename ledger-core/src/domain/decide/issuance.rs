//! Earning: a merchant issues points to an account for an order.

use super::super::earning::{apply_limits, member_tier, price_purchase};
use super::super::event::{Event, PointsIssued};
use super::super::ids::{AccountId, Category, MerchantId, OrderRef};
use super::super::money::{Amount, Money, Points};
use super::super::rejection::Rejection;
use super::super::state::State;
use super::super::time::Timestamp;
use super::{IdAllocator, require_active_merchant, validate_points};

pub(super) struct IssueRequest<'command> {
    pub account: &'command AccountId,
    pub merchant_id: &'command MerchantId,
    pub order_ref: &'command OrderRef,
    pub points: Option<Points>,
    pub purchase_amount: Option<Amount>,
    pub category: Option<&'command Category>,
}

pub(super) fn issue_points(
    state: &State,
    request: IssueRequest<'_>,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    let program = state
        .program
        .as_ref()
        .ok_or(Rejection::ProgramNotConfigured)?;
    let rules = &program.rules.earning_rules;
    let merchant = require_active_merchant(state, request.merchant_id)?;
    if let Some(issuance_id) = state.issuance_of_order(request.merchant_id, request.order_ref) {
        return Err(Rejection::DuplicateOrder {
            merchant_id: request.merchant_id.clone(),
            order_ref: request.order_ref.clone(),
            issuance_id,
        });
    }
    let account = state.accounts.get(request.account);

    let (points_before_limits, pricing) = match (request.points, request.purchase_amount) {
        (Some(points), None) => {
            if request.category.is_some() {
                return Err(Rejection::invalid(
                    "category",
                    "only applies with purchase_amount",
                ));
            }
            validate_points("points", points)?;
            (points, None)
        }
        (None, Some(amount)) => {
            if !amount.is_positive() {
                return Err(Rejection::invalid("purchase_amount", "must be above 0"));
            }
            let purchase = Money {
                amount,
                currency: merchant.currency,
            };
            let tier = member_tier(rules, account, now);
            let (points, pricing) = price_purchase(rules, purchase, request.category, tier, now)?;
            if points == 0 {
                return Err(Rejection::invalid(
                    "purchase_amount",
                    format!(
                        "{amount} {} earns no points under the current rules",
                        merchant.currency
                    ),
                ));
            }
            (points, Some(pricing))
        }
        _ => {
            return Err(Rejection::invalid(
                "points",
                "give exactly one of points and purchase_amount",
            ));
        }
    };

    let (points, limited_by) =
        apply_limits(rules, account, now, points_before_limits).map_err(|limit| {
            Rejection::EarningLimitReached {
                account: request.account.clone(),
                limit,
            }
        })?;

    let headroom = state.headroom();
    if points > headroom {
        return Err(Rejection::SupplyCapExceeded {
            requested: points,
            supply_cap: program.rules.supply_cap,
            headroom,
        });
    }
    let period = state.period_at(now);
    if let Some(budget) = state.release_budget(&period) {
        let remaining = budget.saturating_sub(period.issued);
        if points > remaining {
            return Err(Rejection::ReleaseBudgetExceeded {
                requested: points,
                budget,
                remaining,
                period_start: period.start,
            });
        }
    }
    let funds_consumed = merchant
        .issue_price
        .checked_times_points(points)
        .ok_or_else(|| Rejection::invalid("points", "funding cost overflows"))?;
    let funding_after = merchant.funding.checked_sub(funds_consumed);
    let Some(funding_after) = funding_after.filter(|after| !after.is_negative()) else {
        return Err(Rejection::MerchantFundingInsufficient {
            merchant_id: request.merchant_id.clone(),
            required: funds_consumed,
            available: merchant.funding,
        });
    };

    let mut ids = IdAllocator::new(state);
    Ok(vec![Event::PointsIssued(PointsIssued {
        issuance_id: ids.issuance(),
        account: request.account.clone(),
        merchant_id: request.merchant_id.clone(),
        order_ref: request.order_ref.clone(),
        points,
        points_before_limits,
        limited_by,
        pricing,
        rule_version: program.version,
        lot_id: ids.lot(),
        issued_at: now,
        expires_at: program.rules.expiry_days.map(|days| now.plus_days(days)),
        unit_price: merchant.issue_price,
        funds_consumed: Money {
            amount: funds_consumed,
            currency: merchant.currency,
        },
        funding_after,
        period_start: period.start,
    })])
}
