//! Debits: redemptions, transfers, and holds (authorise now, capture or
//! release later). Every debit first times out the account's stale holds and
//! expires its due lots, so it never spends points that are already gone.

use super::super::command::{HOLD_EXPIRY_SECONDS_DEFAULT, HOLD_EXPIRY_SECONDS_MAX};
use super::super::event::{
    Event, HoldCaptured, HoldReleaseReason, HoldReleased, LotCredit, PointsHeld, PointsRedeemed,
    PointsTransferred, RiskAlertRaised,
};
use super::super::ids::{AccountId, HoldId, MerchantId, OrderRef};
use super::super::money::{Money, Points};
use super::super::program::RiskRules;
use super::super::rejection::{Rejection, RiskRule};
use super::super::state::{Hold, HoldStatus, State};
use super::super::time::Timestamp;
use super::account_view::{AccountView, check_velocity, prepare_debit};
use super::{IdAllocator, require_active_merchant, validate_points};

fn risk_rules(state: &State) -> Option<&RiskRules> {
    state
        .program
        .as_ref()
        .map(|program| &program.rules.risk_rules)
}

fn require_available(
    view: &AccountView,
    account: &AccountId,
    points: Points,
) -> Result<(), Rejection> {
    if points > view.available() {
        return Err(Rejection::InsufficientPoints {
            account: account.clone(),
            requested: points,
            available: view.available(),
        });
    }
    Ok(())
}

/// The velocity check of `rule` for one more movement of `points` from
/// `account` at `now`, against the account's recent movements of that
/// kind: hard limits reject, soft limits raise alerts.
fn velocity_alerts(
    state: &State,
    rule: RiskRule,
    account: &AccountId,
    points: Points,
    now: Timestamp,
) -> Result<Vec<RiskAlertRaised>, Rejection> {
    // Most programmes set no limit: then no account is looked up (the
    // replay tool asks this for every movement).
    let Some(limit) = risk_rules(state).and_then(|rules| rules.limit(rule)) else {
        return Ok(Vec::new());
    };
    let recent = state.accounts.get(account).map(|stored| match rule {
        RiskRule::RedemptionVelocity => &stored.recent_redemptions,
        RiskRule::TransferVelocity => &stored.recent_transfers,
    });
    check_velocity(Some(limit), rule, account, recent, points, now)
}

/// Velocity check for a redemption-like debit (redemption or hold).
fn redemption_alerts(
    state: &State,
    account: &AccountId,
    points: Points,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    let alerts = velocity_alerts(state, RiskRule::RedemptionVelocity, account, points, now)?;
    Ok(alerts.into_iter().map(Event::RiskAlertRaised).collect())
}

/// The risk alerts `decide` raises together with `movement` (a
/// redemption, hold or transfer; none for any other event), in `state` as
/// it was just before the movement: the replay tool holds a log's alerts
/// to them. None for a movement past a hard limit, which `apply` refuses.
pub fn alerts_raised_by(state: &State, movement: &Event) -> Vec<RiskAlertRaised> {
    let (rule, account, points) = match movement {
        Event::PointsRedeemed(redeemed) => (
            RiskRule::RedemptionVelocity,
            &redeemed.account,
            redeemed.points,
        ),
        Event::PointsHeld(held) => (RiskRule::RedemptionVelocity, &held.account, held.points),
        Event::PointsTransferred(transfer) => {
            (RiskRule::TransferVelocity, &transfer.from, transfer.points)
        }
        _ => return Vec::new(),
    };
    velocity_alerts(state, rule, account, points, movement.occurred_at()).unwrap_or_default()
}

pub(super) fn redeem_points(
    state: &State,
    account: &AccountId,
    merchant_id: &MerchantId,
    points: Points,
    order_ref: &OrderRef,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    validate_points("points", points)?;
    let merchant = require_active_merchant(state, merchant_id)?;
    let (mut view, mut events) = prepare_debit(state, account, now);
    require_available(&view, account, points)?;
    events.extend(redemption_alerts(state, account, points, now)?);
    let value_owed = merchant
        .redemption_value
        .checked_times_points(points)
        .ok_or_else(|| Rejection::invalid("points", "redemption value overflows"))?;
    let mut ids = IdAllocator::new(state);
    events.push(Event::PointsRedeemed(PointsRedeemed {
        redemption_id: ids.redemption(),
        account: account.clone(),
        merchant_id: merchant_id.clone(),
        order_ref: order_ref.clone(),
        points,
        consumed: view.consume(points),
        unit_value: merchant.redemption_value,
        value_owed: Money {
            amount: value_owed,
            currency: merchant.currency,
        },
        redeemed_at: now,
    }));
    Ok(events)
}

pub(super) fn transfer_points(
    state: &State,
    from: &AccountId,
    to: &AccountId,
    points: Points,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    validate_points("points", points)?;
    if from == to {
        return Err(Rejection::invalid("to", "must differ from from"));
    }
    let (mut view, mut events) = prepare_debit(state, from, now);
    require_available(&view, from, points)?;
    let alerts = velocity_alerts(state, RiskRule::TransferVelocity, from, points, now)?;
    events.extend(alerts.into_iter().map(Event::RiskAlertRaised));
    let mut ids = IdAllocator::new(state);
    let transfer_id = ids.transfer();
    let moved = view
        .consume(points)
        .into_iter()
        .map(|portion| LotCredit {
            lot_id: ids.lot(),
            source_lot_id: portion.lot_id,
            origin_merchant_id: portion.origin_merchant_id,
            points: portion.points,
            issued_at: portion.issued_at,
            expires_at: portion.expires_at,
        })
        .collect();
    events.push(Event::PointsTransferred(PointsTransferred {
        transfer_id,
        from: from.clone(),
        to: to.clone(),
        points,
        moved,
        transferred_at: now,
    }));
    Ok(events)
}

pub(super) fn hold_points(
    state: &State,
    account: &AccountId,
    merchant_id: &MerchantId,
    points: Points,
    order_ref: Option<&OrderRef>,
    expires_in_seconds: Option<u64>,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    validate_points("points", points)?;
    let expires_in_seconds = expires_in_seconds.unwrap_or(HOLD_EXPIRY_SECONDS_DEFAULT);
    if expires_in_seconds == 0 || expires_in_seconds > HOLD_EXPIRY_SECONDS_MAX {
        return Err(Rejection::invalid(
            "expires_in_seconds",
            format!("must be between 1 and {HOLD_EXPIRY_SECONDS_MAX}"),
        ));
    }
    require_active_merchant(state, merchant_id)?;
    let (view, mut events) = prepare_debit(state, account, now);
    require_available(&view, account, points)?;
    events.extend(redemption_alerts(state, account, points, now)?);
    let mut ids = IdAllocator::new(state);
    events.push(Event::PointsHeld(PointsHeld {
        hold_id: ids.hold(),
        account: account.clone(),
        merchant_id: merchant_id.clone(),
        order_ref: order_ref.cloned(),
        points,
        held_at: now,
        expires_at: now.plus_seconds(expires_in_seconds),
    }));
    Ok(events)
}

fn find_active_hold(state: &State, hold_id: HoldId, now: Timestamp) -> Result<&Hold, Rejection> {
    let hold = state
        .holds
        .get(hold_id)
        .ok_or_else(|| Rejection::not_found("hold", hold_id))?;
    let status = match hold.status {
        HoldStatus::Active if hold.expires_at <= now => HoldStatus::TimedOut,
        status => status,
    };
    if status != HoldStatus::Active {
        return Err(Rejection::HoldNotActive { hold_id, status });
    }
    Ok(hold)
}

pub(super) fn capture_hold(
    state: &State,
    hold_id: HoldId,
    points: Option<Points>,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    let hold = find_active_hold(state, hold_id, now)?;
    let points = points.unwrap_or(hold.points);
    validate_points("points", points)?;
    if points > hold.points {
        return Err(Rejection::invalid(
            "points",
            format!("the hold reserves only {} points", hold.points),
        ));
    }
    let merchant = require_active_merchant(state, &hold.merchant_id)?;
    // The hold's points are part of the balance and reserved, so the lots
    // cover them; capture takes the earliest-expiring, which may be due lots
    // the hold kept from expiring.
    let mut view = AccountView::of(state, &hold.account);
    let value_owed = merchant
        .redemption_value
        .checked_times_points(points)
        .ok_or_else(|| Rejection::invalid("points", "redemption value overflows"))?;
    let mut ids = IdAllocator::new(state);
    Ok(vec![Event::HoldCaptured(HoldCaptured {
        hold_id,
        redemption_id: ids.redemption(),
        account: hold.account.clone(),
        merchant_id: hold.merchant_id.clone(),
        order_ref: hold.order_ref.clone(),
        points,
        points_released: hold.points - points,
        consumed: view.consume(points),
        unit_value: merchant.redemption_value,
        value_owed: Money {
            amount: value_owed,
            currency: merchant.currency,
        },
        captured_at: now,
    })])
}

pub(super) fn release_hold(
    state: &State,
    hold_id: HoldId,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    let hold = state
        .holds
        .get(hold_id)
        .ok_or_else(|| Rejection::not_found("hold", hold_id))?;
    if hold.status != HoldStatus::Active {
        return Err(Rejection::HoldNotActive {
            hold_id,
            status: hold.status,
        });
    }
    let reason = if hold.expires_at <= now {
        HoldReleaseReason::TimedOut
    } else {
        HoldReleaseReason::Released
    };
    Ok(vec![Event::HoldReleased(HoldReleased {
        hold_id,
        account: hold.account.clone(),
        merchant_id: hold.merchant_id.clone(),
        points: hold.points,
        reason,
        released_at: now,
    })])
}
