//! A scratch copy of one account, so a command can first time out stale
//! holds and expire due lots, then decide its debit against the result,
//! all without touching the real state.

use std::collections::VecDeque;

use super::super::event::{
    Event, HoldReleaseReason, HoldReleased, LotPortion, PointsExpired, RiskAlertRaised,
};
use super::super::ids::{AccountId, LotId};
use super::super::money::Points;
use super::super::program::VelocityLimit;
use super::super::rejection::{Rejection, RiskMeasure, RiskRule};
use super::super::state::{HoldStatus, Lot, State};
use super::super::time::Timestamp;

#[derive(Debug, Clone, Default)]
pub(super) struct AccountView {
    pub balance: Points,
    pub held: Points,
    pub lots: Vec<Lot>,
}

impl AccountView {
    pub fn of(state: &State, account: &AccountId) -> AccountView {
        state
            .accounts
            .get(account)
            .map(|stored| AccountView {
                balance: stored.balance,
                held: stored.held,
                lots: stored.lots.clone(),
            })
            .unwrap_or_default()
    }

    pub fn available(&self) -> Points {
        self.balance.saturating_sub(self.held)
    }

    /// Takes `points` from the lots in consumption order. The caller has
    /// checked that the balance covers them.
    pub fn consume(&mut self, points: Points) -> Vec<LotPortion> {
        let mut portions = Vec::new();
        let mut left = points;
        for lot in &mut self.lots {
            if left == 0 {
                break;
            }
            let taken = lot.remaining.min(left);
            if taken > 0 {
                portions.push(lot.portion(taken));
                lot.remaining -= taken;
                left -= taken;
            }
        }
        self.lots.retain(|lot| lot.remaining > 0);
        self.balance -= points - left;
        portions
    }

    /// Takes up to `points` from one lot; `None` if it holds nothing.
    pub fn take_from_lot(&mut self, lot_id: LotId, points: Points) -> Option<LotPortion> {
        let index = self.lots.iter().position(|lot| lot.lot_id == lot_id)?;
        let lot = &mut self.lots[index];
        let taken = lot.remaining.min(points);
        if taken == 0 {
            return None;
        }
        let portion = lot.portion(taken);
        lot.remaining -= taken;
        if lot.remaining == 0 {
            self.lots.remove(index);
        }
        self.balance -= taken;
        Some(portion)
    }

    /// Expires what is due at `as_of`, except points an active hold still
    /// reserves (those expire once the hold lets go of them).
    pub fn expire_due(
        &mut self,
        account: &AccountId,
        as_of: Timestamp,
        now: Timestamp,
    ) -> Option<PointsExpired> {
        // Due lots sort first: consumption order is earliest expiry first.
        let due: Points = self
            .lots
            .iter()
            .take_while(|lot| lot.is_due(as_of))
            .map(|lot| lot.remaining)
            .sum();
        let expirable = due.min(self.available());
        if expirable == 0 {
            return None;
        }
        let lots = self.consume(expirable);
        Some(PointsExpired {
            account: account.clone(),
            as_of,
            points: expirable,
            lots,
            points_retained_by_holds: due - expirable,
            expired_at: now,
        })
    }
}

/// Releases the account's holds that timed out by `now`, in the order they
/// were placed, and returns the events and how much they freed.
pub(super) fn time_out_holds(
    state: &State,
    account: &AccountId,
    now: Timestamp,
) -> (Vec<Event>, Points) {
    let mut events = Vec::new();
    let mut freed = 0;
    let Some(stored) = state.accounts.get(account) else {
        return (events, freed);
    };
    for hold_id in &stored.active_holds {
        let Some(hold) = state.holds.get(*hold_id) else {
            continue;
        };
        if hold.status == HoldStatus::Active && hold.expires_at <= now {
            freed += hold.points;
            events.push(Event::HoldReleased(HoldReleased {
                hold_id: *hold_id,
                account: account.clone(),
                merchant_id: hold.merchant_id.clone(),
                points: hold.points,
                reason: HoldReleaseReason::TimedOut,
                released_at: now,
            }));
        }
    }
    (events, freed)
}

/// The account as a debit at `now` sees it: timed-out holds released and due
/// lots expired, with the events that record both.
pub(super) fn prepare_debit(
    state: &State,
    account: &AccountId,
    now: Timestamp,
) -> (AccountView, Vec<Event>) {
    let mut view = AccountView::of(state, account);
    let (mut events, freed) = time_out_holds(state, account, now);
    view.held -= freed;
    if let Some(expired) = view.expire_due(account, now, now) {
        events.push(Event::PointsExpired(expired));
    }
    (view, events)
}

/// Checks a velocity limit for one more movement of `points` at `now`.
/// Hard limits reject; soft limits produce alerts.
pub(super) fn check_velocity(
    limit: Option<&VelocityLimit>,
    rule: RiskRule,
    account: &AccountId,
    recent: Option<&VecDeque<(Timestamp, Points)>>,
    points: Points,
    now: Timestamp,
) -> Result<Vec<RiskAlertRaised>, Rejection> {
    let Some(limit) = limit else {
        return Ok(Vec::new());
    };
    let window_start = now.minus_seconds(limit.window_seconds);
    let (count, total) = recent
        .into_iter()
        .flatten()
        .filter(|(at, _)| *at > window_start)
        .fold((1u64, points), |(count, total), (_, moved)| {
            (count + 1, total.saturating_add(*moved))
        });
    let measures = [
        (
            RiskMeasure::Count,
            count,
            limit.count_max.map(u64::from),
            limit.soft_count_max.map(u64::from),
        ),
        (
            RiskMeasure::Points,
            total,
            limit.points_max,
            limit.soft_points_max,
        ),
    ];
    let mut alerts = Vec::new();
    for (measure, observed, hard, soft) in measures {
        if let Some(hard) = hard.filter(|hard| observed > *hard) {
            return Err(Rejection::RiskLimitExceeded {
                account: account.clone(),
                rule,
                measure,
                observed,
                limit: hard,
                window_seconds: limit.window_seconds,
            });
        }
        if let Some(soft) = soft.filter(|soft| observed > *soft) {
            alerts.push(RiskAlertRaised {
                account: account.clone(),
                rule,
                measure,
                observed,
                limit: soft,
                window_seconds: limit.window_seconds,
                raised_at: now,
            });
        }
    }
    Ok(alerts)
}
