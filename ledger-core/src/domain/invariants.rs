//! The invariants of DESIGN.md that live in the decision state (1–5 and the
//! order half of 7). Log-level invariants (6, the command-id half of 7) are
//! checked where the log is read. Used by the property tests after every
//! step and by the replay tool.

use super::ids::{AccountId, LotId, MerchantId};
use super::money::Points;
use super::state::{Account, HoldStatus, Merchant, State};
use super::time::Timestamp;

/// A broken invariant, numbered as in DESIGN.md, with the values involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invariant {invariant} ({name}) violated: {detail}")]
pub struct InvariantViolation {
    pub invariant: u8,
    pub name: &'static str,
    pub detail: String,
}

fn violation(invariant: u8, detail: String) -> InvariantViolation {
    let name = match invariant {
        1 => "balances non-negative, held within balance",
        2 => "balances sum to outstanding supply within the cap",
        3 => "balance equals the sum of its lots",
        4 => "issuance within the period's release budget",
        5 => "merchant funding non-negative",
        7 => "one issuance per merchant order",
        _ => "internal index consistency",
    };
    InvariantViolation {
        invariant,
        name,
        detail,
    }
}

/// Invariants 1 and 3 for one account, plus the consistency of its holds.
pub fn check_account(
    state: &State,
    account_id: &AccountId,
    account: &Account,
) -> Result<(), InvariantViolation> {
    if account.held > account.balance {
        return Err(violation(
            1,
            format!(
                "account {account_id}: held {} > balance {}",
                account.held, account.balance
            ),
        ));
    }
    let lots_total = account
        .lots
        .iter()
        .try_fold(0 as Points, |total, lot| total.checked_add(lot.remaining));
    if lots_total != Some(account.balance) {
        return Err(violation(
            3,
            format!(
                "account {account_id}: balance {} but lots sum to {lots_total:?}",
                account.balance
            ),
        ));
    }
    if let Some(lot) = account.lots.iter().find(|lot| lot.remaining == 0) {
        return Err(violation(
            0,
            format!("account {account_id}: empty lot {} kept", lot.lot_id),
        ));
    }
    if account
        .lots
        .windows(2)
        .any(|pair| pair[0].consumption_key() >= pair[1].consumption_key())
    {
        return Err(violation(
            0,
            format!("account {account_id}: lots out of consumption order"),
        ));
    }
    // A lot beyond the newest key would let a later credit go last out of
    // order (see `Account::newest_lot_key`).
    if let Some(last) = account.lots.last() {
        let (expiry, lot_id) = last.consumption_key();
        if (expiry, lot_id.0) > account.newest_lot_key {
            return Err(violation(
                0,
                format!(
                    "account {account_id}: lot {lot_id} comes after the newest key credited, {:?}",
                    account.newest_lot_key
                ),
            ));
        }
    }
    let held_by_holds: Points = account
        .active_holds
        .iter()
        .filter_map(|hold_id| state.holds.get(*hold_id))
        .filter(|hold| hold.status == HoldStatus::Active && &hold.account == account_id)
        .map(|hold| hold.points)
        .sum();
    if held_by_holds != account.held {
        return Err(violation(
            0,
            format!(
                "account {account_id}: held {} but its active holds reserve {held_by_holds}",
                account.held
            ),
        ));
    }
    Ok(())
}

/// Invariants 2, 4 and 5 given the sum of all balances (which the caller may
/// maintain incrementally instead of summing every account).
pub fn check_supply(state: &State, balances_total: u128) -> Result<(), InvariantViolation> {
    check_supply_totals(state, balances_total)?;
    for (merchant_id, merchant) in &state.merchants {
        check_funding(merchant_id, merchant)?;
    }
    Ok(())
}

/// Invariants 2 and 4: the supply against the balances, the cap and the
/// period's budget.
pub fn check_supply_totals(state: &State, balances_total: u128) -> Result<(), InvariantViolation> {
    let supply = &state.supply;
    let outstanding = supply.outstanding().ok_or_else(|| {
        violation(
            2,
            format!(
                "issued {} < redeemed {} + expired {} + reversed {}",
                supply.issued_total,
                supply.redeemed_total,
                supply.expired_total,
                supply.reversed_total
            ),
        )
    })?;
    if u128::from(outstanding) != balances_total {
        return Err(violation(
            2,
            format!("balances sum to {balances_total}, outstanding supply is {outstanding}"),
        ));
    }
    if let Some(cap) = state.supply_cap()
        && outstanding > cap
    {
        return Err(violation(
            2,
            format!("outstanding {outstanding} > supply cap {cap}"),
        ));
    }
    let period = state.period_at(state.period.start);
    if let Some(budget) = state.release_budget(&period)
        && state.period.issued > budget
    {
        return Err(violation(
            4,
            format!(
                "period starting {} issued {} > budget {budget}",
                state.period.start, state.period.issued
            ),
        ));
    }
    Ok(())
}

/// Invariant 5 for one merchant (an unknown merchant has no funding to
/// break it). Only the merchant an event names changes its funding, so a
/// replay checks that one after each event.
pub fn check_merchant_funding(
    state: &State,
    merchant_id: &MerchantId,
) -> Result<(), InvariantViolation> {
    state
        .merchants
        .get(merchant_id)
        .map_or(Ok(()), |merchant| check_funding(merchant_id, merchant))
}

fn check_funding(merchant_id: &MerchantId, merchant: &Merchant) -> Result<(), InvariantViolation> {
    if merchant.funding.is_negative() {
        return Err(violation(
            5,
            format!("merchant {merchant_id} funding {}", merchant.funding),
        ));
    }
    Ok(())
}

/// Every state invariant, scanning every account. O(state): for tests and
/// occasional audits, not for every event of a large replay.
pub fn check_all(state: &State) -> Result<(), InvariantViolation> {
    state
        .check_merchant_numbers()
        .map_err(|detail| violation(0, detail))?;
    let mut balances_total: u128 = 0;
    for (account_id, account) in state.accounts.iter() {
        check_account(state, account_id, account)?;
        balances_total += u128::from(account.balance);
    }
    check_supply(state, balances_total)?;
    if state.orders_total() != state.issuances.len() {
        return Err(violation(
            7,
            format!(
                "{} orders recorded for {} issuances",
                state.orders_total(),
                state.issuances.len()
            ),
        ));
    }
    check_expiry_index(state)
}

/// The expiry index holds exactly the accounts' expiring lots, each under
/// its own account. Both sides are compared as lists sorted by (expiry, lot
/// id): a lookup into the accounts per index entry, then a scan of that
/// account's lots, took a seventh of a ten-million-event replay.
fn check_expiry_index(state: &State) -> Result<(), InvariantViolation> {
    // Sized for a sound index up front: grown by doubling, the list took
    // twice its size at the peak of a large replay's memory.
    let mut expiring: Vec<((Timestamp, LotId), &AccountId)> =
        Vec::with_capacity(state.lot_expiries.len());
    expiring.extend(state.accounts.iter().flat_map(|(account_id, account)| {
        account.lots.iter().filter_map(move |lot| {
            lot.expires_at()
                .map(|expires_at| ((expires_at, lot.lot_id), account_id))
        })
    }));
    expiring.sort_unstable_by_key(|(key, _)| *key);
    let mut indexed = state.lot_expiries.iter();
    for ((expires_at, lot_id), account_id) in expiring {
        match indexed.next() {
            Some((key, indexed_account)) if *key == (expires_at, lot_id) => {
                if indexed_account != account_id {
                    return Err(violation(
                        0,
                        format!(
                            "expiry index names lot {lot_id} of {indexed_account}, but {account_id} holds it"
                        ),
                    ));
                }
            }
            Some(((indexed_expiry, indexed_lot), indexed_account))
                if (*indexed_expiry, *indexed_lot) < (expires_at, lot_id) =>
            {
                return Err(violation(
                    0,
                    format!(
                        "expiry index names lot {indexed_lot} of {indexed_account}, which is gone"
                    ),
                ));
            }
            _ => {
                return Err(violation(
                    0,
                    format!(
                        "lot {lot_id} of {account_id} expires at {expires_at} but is missing from the expiry index"
                    ),
                ));
            }
        }
    }
    if let Some(((_, lot_id), account_id)) = indexed.next() {
        return Err(violation(
            0,
            format!("expiry index names lot {lot_id} of {account_id}, which is gone"),
        ));
    }
    Ok(())
}
