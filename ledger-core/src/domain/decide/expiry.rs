//! Expiry runs: time out stale holds, then expire every lot due at `as_of`.
//! A run does a bounded amount of work and says whether more is pending, so
//! one command never grows without limit.

use rustc_hash::{FxHashMap, FxHashSet};

use super::super::event::{Event, ExpiryRunCompleted, HoldReleaseReason, HoldReleased};
use super::super::ids::{AccountId, HoldId, LotId};
use super::super::money::Points;
use super::super::rejection::Rejection;
use super::super::state::State;
use super::super::time::Timestamp;
use super::account_view::AccountView;

/// Most holds one run times out.
pub const HOLDS_TIMED_OUT_PER_RUN_MAX: usize = 10_000;
/// Most due lots one run looks at.
pub const LOTS_SCANNED_PER_RUN_MAX: usize = 10_000;

pub(super) fn run_expiry(
    state: &State,
    as_of: Timestamp,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    if as_of > now {
        return Err(Rejection::invalid("as_of", "must not be in the future"));
    }
    let mut events = Vec::new();
    let mut more_pending = false;

    let mut freed: FxHashMap<&AccountId, Points> = FxHashMap::default();
    let mut holds_timed_out = 0u64;
    for (index, (_, hold_id)) in state
        .hold_timeouts
        .range(..=(now, HoldId(u64::MAX)))
        .enumerate()
    {
        if index == HOLDS_TIMED_OUT_PER_RUN_MAX {
            more_pending = true;
            break;
        }
        let Some(hold) = state.holds.get(*hold_id) else {
            continue;
        };
        *freed.entry(&hold.account).or_default() += hold.points;
        holds_timed_out += 1;
        events.push(Event::HoldReleased(HoldReleased {
            hold_id: *hold_id,
            account: hold.account.clone(),
            merchant_id: hold.merchant_id.clone(),
            points: hold.points,
            reason: HoldReleaseReason::TimedOut,
            released_at: now,
        }));
    }

    let mut accounts_in_order: Vec<&AccountId> = Vec::new();
    let mut seen: FxHashSet<&AccountId> = FxHashSet::default();
    for (index, (_, account)) in state
        .lot_expiries
        .iter_through((as_of, LotId(u64::MAX)))
        .enumerate()
    {
        if index == LOTS_SCANNED_PER_RUN_MAX {
            more_pending = true;
            break;
        }
        if seen.insert(account) {
            accounts_in_order.push(account);
        }
    }
    let mut accounts_expired = 0u64;
    let mut points_expired: Points = 0;
    for account in accounts_in_order {
        let mut view = AccountView::of(state, account);
        view.held -= freed.get(account).copied().unwrap_or(0);
        if let Some(expired) = view.expire_due(account, as_of, now) {
            accounts_expired += 1;
            points_expired += expired.points;
            events.push(Event::PointsExpired(expired));
        }
    }
    events.push(Event::ExpiryRunCompleted(ExpiryRunCompleted {
        as_of,
        accounts_expired,
        points_expired,
        holds_timed_out,
        more_pending,
        completed_at: now,
    }));
    Ok(events)
}
