//! Reversals: a refunded purchase claws back what it earned (as far as the
//! points are still there), a cancelled redemption restores what it spent.

use super::super::event::{Event, IssuanceReversed, LotCredit, RedemptionReversed};
use super::super::ids::{IssuanceId, RedemptionId};
use super::super::money::{Money, Points};
use super::super::program::ReversalPolicy;
use super::super::rejection::{Rejection, ReversalTarget};
use super::super::state::{State, restorable};
use super::super::time::Timestamp;
use super::account_view::prepare_debit;
use super::{IdAllocator, find_merchant, merchant_of, validate_points};

fn requested_points(
    target: ReversalTarget,
    requested: Option<Points>,
    original: Points,
    already_reversed: Points,
) -> Result<Points, Rejection> {
    // Points given are validated like any command's: zero is bad input,
    // not more than is left.
    if let Some(points) = requested {
        validate_points("points", points)?;
    }
    let reversible = original - already_reversed;
    let requested = requested.unwrap_or(reversible);
    if requested == 0 || requested > reversible {
        return Err(Rejection::ReversalExceedsOriginal {
            target,
            requested,
            reversible,
        });
    }
    Ok(requested)
}

pub(super) fn reverse_issuance(
    state: &State,
    issuance_id: IssuanceId,
    points: Option<Points>,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    let issuance = state
        .issuances
        .get(issuance_id)
        .ok_or_else(|| Rejection::not_found("issuance", issuance_id))?;
    let requested = requested_points(
        ReversalTarget::Issuance(issuance_id),
        points,
        issuance.points,
        issuance.points_reversed,
    )?;
    let policy = state
        .program
        .as_ref()
        .map_or(ReversalPolicy::default(), |program| {
            program.rules.reversal_policy
        });
    let merchant_id = merchant_of(state, issuance.merchant)?;
    let merchant = find_merchant(state, merchant_id)?;
    let (mut view, mut events) = prepare_debit(state, &issuance.account, now);

    // Held points stay untouched: a hold is a promise to a merchant.
    let from_issued_lot = requested.min(view.available());
    let mut clawed_back: Vec<_> = view
        .take_from_lot(issuance.lot_id, from_issued_lot)
        .into_iter()
        .collect();
    let mut points_reversed: Points = clawed_back.iter().map(|portion| portion.points).sum();
    if policy == ReversalPolicy::AnyAvailable {
        let rest = (requested - points_reversed).min(view.available());
        if rest > 0 {
            clawed_back.extend(view.consume(rest));
            points_reversed += rest;
        }
    }
    let funds_returned = issuance
        .unit_price
        .checked_times_points(points_reversed)
        .ok_or_else(|| Rejection::invalid("points", "refund overflows"))?;
    let funding_after = merchant
        .funding
        .checked_add(funds_returned)
        .ok_or_else(|| Rejection::invalid("points", "funding would overflow"))?;
    let mut ids = IdAllocator::new(state);
    events.push(Event::IssuanceReversed(IssuanceReversed {
        reversal_id: ids.reversal(),
        issuance_id,
        account: issuance.account.clone(),
        merchant_id: merchant_id.clone(),
        points_requested: requested,
        points_reversed,
        points_unrecoverable: requested - points_reversed,
        clawed_back,
        funds_returned: Money {
            amount: funds_returned,
            currency: issuance.currency,
        },
        funding_after,
        reversed_at: now,
    }));
    Ok(events)
}

pub(super) fn reverse_redemption(
    state: &State,
    redemption_id: RedemptionId,
    points: Option<Points>,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    let redemption = state
        .redemptions
        .get(redemption_id)
        .ok_or_else(|| Rejection::not_found("redemption", redemption_id))?;
    let requested = requested_points(
        ReversalTarget::Redemption(redemption_id),
        points,
        redemption.points,
        redemption.points_reversed,
    )?;
    let supply_cap = state.supply_cap().ok_or(Rejection::ProgramNotConfigured)?;
    let headroom = state.headroom();
    if requested > headroom {
        return Err(Rejection::SupplyCapExceeded {
            requested,
            supply_cap,
            headroom,
        });
    }
    let mut ids = IdAllocator::new(state);
    let restored = restorable(&redemption.consumed, redemption.points_reversed, requested)
        .into_iter()
        .map(|(spent, taken)| {
            Ok(LotCredit {
                lot_id: ids.lot(),
                source_lot_id: spent.lot_id,
                origin_merchant_id: merchant_of(state, spent.origin)?.clone(),
                points: taken,
                issued_at: spent.issued_at,
                expires_at: spent.expires_at(),
            })
        })
        .collect::<Result<Vec<_>, Rejection>>()?;
    let value_returned = redemption
        .unit_value
        .checked_times_points(requested)
        .ok_or_else(|| Rejection::invalid("points", "value overflows"))?;
    Ok(vec![Event::RedemptionReversed(RedemptionReversed {
        reversal_id: ids.reversal(),
        redemption_id,
        account: redemption.account.clone(),
        merchant_id: merchant_of(state, redemption.merchant)?.clone(),
        points: requested,
        restored,
        value_returned: Money {
            amount: value_returned,
            currency: redemption.currency,
        },
        reversed_at: now,
    })])
}
