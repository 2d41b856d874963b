//! `apply(state, event)`: carries out an event. It trusts nothing it can
//! check: ids must be the next in sequence, lots must hold what the event
//! takes from them, and the derived values an event records (funding after,
//! totals, every sum of money a settlement adds up) must equal what the
//! state computes; what ends or reverses an earlier record must name that
//! record's account and merchant. For events `decide` produced
//! these checks cannot fail, so `apply` treats a failure as a broken
//! programme and stops; the replay tool calls `try_apply` to report it.

use std::collections::VecDeque;

use super::earning::{apply_limits, member_tier, price_purchase};
use super::event::{Event, LotCredit, LotPortion, PointsIssued};
use super::expiry_index::ExpiryIndex;
use super::ids::{AccountId, LotId, MerchantId};
use super::money::{Amount, Currency, Money, Points};
use super::program::{TIER_WINDOW_DAYS_MAX, VELOCITY_WINDOW_SECONDS_MAX, VelocityLimit};
use super::rejection::RiskRule;
use super::sharded_map::ShardedMap;
use super::state::{
    Account, ApiKey, Hold, HoldStatus, IssuanceRecord, Lot, Merchant, MerchantNumber,
    MerchantStatus, PeriodState, Program, RedemptionRecord, State, restorable,
};
use super::time::Timestamp;

/// An event that does not fit the state it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot apply {event_kind}: {reason}")]
pub struct ApplyError {
    pub event_kind: &'static str,
    pub reason: String,
}

/// Applies an event `decide` produced. Panics if it does not fit: that is a
/// bug in `decide` or `apply`, never a business outcome.
pub fn apply(state: &mut State, event: &Event) {
    if let Err(error) = try_apply(state, event) {
        panic!("decide produced an event apply cannot carry out: {error}");
    }
}

/// Applies an event from an untrusted source (a log under audit). On error
/// the state may be partly updated and must be discarded.
pub fn try_apply(state: &mut State, event: &Event) -> Result<(), ApplyError> {
    let fail = |reason: String| ApplyError {
        event_kind: event.kind(),
        reason,
    };
    apply_event(state, event).map_err(fail)
}

type Outcome = Result<(), String>;

fn ensure(condition: bool, reason: impl FnOnce() -> String) -> Outcome {
    if condition { Ok(()) } else { Err(reason()) }
}

fn next_id(counter: &mut u64, id: u64, what: &str) -> Outcome {
    ensure(id == *counter, || {
        format!("{what} id {id}, expected {counter}")
    })?;
    *counter += 1;
    Ok(())
}

fn checked_add(left: Points, right: Points, what: &str) -> Result<Points, String> {
    left.checked_add(right)
        .ok_or_else(|| format!("{what} overflows"))
}

fn checked_sub(left: Points, right: Points, what: &str) -> Result<Points, String> {
    left.checked_sub(right)
        .ok_or_else(|| format!("{what} would go below zero ({left} - {right})"))
}

fn merchant_mut<'state>(
    state: &'state mut State,
    merchant_id: &MerchantId,
) -> Result<&'state mut Merchant, String> {
    state
        .merchants
        .get_mut(merchant_id)
        .ok_or_else(|| format!("merchant {merchant_id} does not exist"))
}

fn account_mut<'state>(
    accounts: &'state mut ShardedMap<AccountId, Account>,
    account: &AccountId,
) -> Result<&'state mut Account, String> {
    accounts
        .get_mut(account)
        .ok_or_else(|| format!("account {account} does not exist"))
}

/// The account, created on its first credit (one probe; the id is
/// cloned only then).
fn account_or_new<'state>(
    accounts: &'state mut ShardedMap<AccountId, Account>,
    account: &AccountId,
) -> &'state mut Account {
    accounts.get_or_insert_with(account, Account::default)
}

fn roll_period(period: &mut PeriodState, at: Timestamp, length_days: u32) {
    let view = period.view_at(at, length_days);
    if view.start != period.start || length_days != period.length_days {
        *period = PeriodState {
            start: view.start,
            length_days,
            issued: 0,
            redeemed: 0,
            previous_redeemed: view.previous_redeemed,
        };
    }
}

/// Records a movement among an account's recent ones (forgetting those
/// older than any window), refusing one past a hard velocity limit:
/// `decide` rejects those, a log under audit may hold one.
fn record_movement(
    recent: &mut VecDeque<(Timestamp, Points)>,
    limit: Option<&VelocityLimit>,
    what: &str,
    points: Points,
    at: Timestamp,
) -> Outcome {
    let breach = limit.and_then(|limit| {
        limit
            .measure(recent.iter(), points, at)
            .into_iter()
            .find_map(|measured| {
                let hard = measured.hard_breached()?;
                Some((measured, hard, limit.window_seconds))
            })
    });
    if let Some((measured, hard, window_seconds)) = breach {
        return Err(format!(
            "{what} of {points} points exceeds a hard velocity limit: {} by {} within {window_seconds} s, at most {hard}",
            measured.observed, measured.measure
        ));
    }
    let horizon = at.minus_seconds(VELOCITY_WINDOW_SECONDS_MAX);
    while recent
        .front()
        .is_some_and(|(moved_at, _)| *moved_at <= horizon)
    {
        recent.pop_front();
    }
    recent.push_back((at, points));
    Ok(())
}

/// The programme's limit of `rule`, if it has one.
fn velocity_limit(program: Option<&Program>, rule: RiskRule) -> Option<&VelocityLimit> {
    program.and_then(|program| program.rules.risk_rules.limit(rule))
}

/// Takes each portion from its lot, exactly as recorded; with `spent`,
/// keeps each portion there as its lot holding what was taken (what a
/// redemption record keeps).
fn debit_portions(
    account: &mut Account,
    account_id: &AccountId,
    portions: &[LotPortion],
    merchant_ids: &[MerchantId],
    lot_expiries: &mut ExpiryIndex,
    mut spent: Option<&mut Vec<Lot>>,
) -> Result<Points, String> {
    let mut total: Points = 0;
    for portion in portions {
        ensure(portion.points > 0, || {
            format!("empty portion of lot {}", portion.lot_id)
        })?;
        let index = account
            .lots
            .iter()
            .position(|lot| lot.lot_id == portion.lot_id)
            .ok_or_else(|| format!("lot {} is not in account {account_id}", portion.lot_id))?;
        let lot = &mut account.lots[index];
        ensure(
            merchant_ids.get(lot.origin.index()) == Some(&portion.origin_merchant_id)
                && lot.expires_at() == portion.expires_at
                && lot.issued_at == portion.issued_at,
            || format!("lot {} is recorded with other origin or dates", lot.lot_id),
        )?;
        if let Some(spent) = spent.as_deref_mut() {
            spent.push(lot.with_remaining(portion.points));
        }
        lot.remaining = checked_sub(lot.remaining, portion.points, "lot remaining")?;
        if lot.remaining == 0 {
            if let Some(expires_at) = lot.expires_at() {
                lot_expiries.remove(&(expires_at, lot.lot_id));
            }
            account.lots.remove(index);
        }
        total = checked_add(total, portion.points, "portion total")?;
    }
    account.balance = checked_sub(account.balance, total, "balance")?;
    Ok(total)
}

/// The number of the merchant a lot comes from, which must exist.
fn origin_number(
    state: &State,
    lot_id: LotId,
    origin: &MerchantId,
) -> Result<MerchantNumber, String> {
    state
        .merchants
        .get(origin)
        .map(|merchant| merchant.number)
        .ok_or_else(|| format!("lot {lot_id} comes from merchant {origin}, which does not exist"))
}

fn new_lot(
    lot_id: LotId,
    origin: MerchantNumber,
    points: Points,
    issued_at: Timestamp,
    expires_at: Option<Timestamp>,
) -> Result<Lot, String> {
    Lot::new(lot_id, origin, points, issued_at, expires_at)
        .ok_or_else(|| format!("lot {lot_id} expires at the last instant there is"))
}

fn credit_lot(
    account: &mut Account,
    account_id: &AccountId,
    lot: Lot,
    lot_expiries: &mut ExpiryIndex,
) -> Outcome {
    ensure(lot.remaining > 0, || format!("empty lot {}", lot.lot_id))?;
    account.balance = checked_add(account.balance, lot.remaining, "balance")?;
    if let Some(expires_at) = lot.expires_at() {
        lot_expiries.insert((expires_at, lot.lot_id), account_id.clone());
    }
    let key = lot.consumption_key();
    // A new lot nearly always goes last (issued now, with the programme's
    // one validity), so that is checked first: for a member with
    // thousands of lots, each step of a binary search was a cache miss.
    let newest_key = (key.0, key.1.0);
    if newest_key > account.newest_lot_key {
        account.newest_lot_key = newest_key;
        account.lots.push(lot);
    } else {
        let index = account
            .lots
            .partition_point(|existing| existing.consumption_key() < key);
        account.lots.insert(index, lot);
    }
    Ok(())
}

fn credit_lots(
    state: &mut State,
    account_id: &AccountId,
    credits: &[LotCredit],
) -> Result<Points, String> {
    let mut total: Points = 0;
    for credit in credits {
        next_id(&mut state.next_ids.lot, credit.lot_id.0, "lot")?;
        let lot = new_lot(
            credit.lot_id,
            origin_number(state, credit.lot_id, &credit.origin_merchant_id)?,
            credit.points,
            credit.issued_at,
            credit.expires_at,
        )?;
        let account = account_or_new(&mut state.accounts, account_id);
        credit_lot(account, account_id, lot, &mut state.lot_expiries)?;
        total = checked_add(total, credit.points, "credit total")?;
    }
    Ok(total)
}

fn portions_of(credits: &[LotCredit]) -> Vec<LotPortion> {
    credits
        .iter()
        .map(|credit| LotPortion {
            lot_id: credit.source_lot_id,
            origin_merchant_id: credit.origin_merchant_id.clone(),
            points: credit.points,
            issued_at: credit.issued_at,
            expires_at: credit.expires_at,
        })
        .collect()
}

fn end_hold(
    state: &mut State,
    hold_id: super::ids::HoldId,
    status: HoldStatus,
) -> Result<Hold, String> {
    let hold = state
        .holds
        .get_mut(hold_id)
        .ok_or_else(|| format!("hold {hold_id} does not exist"))?;
    ensure(hold.status == HoldStatus::Active, || {
        format!("hold {hold_id} is {:?}", hold.status)
    })?;
    hold.status = status;
    let hold = hold.clone();
    state.hold_timeouts.remove(&(hold.expires_at, hold_id));
    let account = account_mut(&mut state.accounts, &hold.account)?;
    account.held = checked_sub(account.held, hold.points, "held")?;
    account.active_holds.retain(|active| *active != hold_id);
    Ok(hold)
}

fn record_redeemed(state: &mut State, points: Points, at: Timestamp) -> Outcome {
    state.supply.redeemed_total =
        checked_add(state.supply.redeemed_total, points, "redeemed total")?;
    let length_days = state.period_length_days();
    roll_period(&mut state.period, at, length_days);
    state.period.redeemed = checked_add(state.period.redeemed, points, "period redeemed")?;
    Ok(())
}

fn ensure_funding(recorded: Amount, computed: Option<Amount>) -> Outcome {
    ensure(computed == Some(recorded), || {
        format!("funding after is recorded as {recorded}, computed {computed:?}")
    })
}

/// A recorded sum of money must be `unit` × `points` in `currency`: what
/// settlements add up, so a log cannot state its own.
fn ensure_value(
    what: &str,
    recorded: &Money,
    unit: Amount,
    points: Points,
    currency: Currency,
) -> Outcome {
    let computed = unit.checked_times_points(points);
    ensure(
        computed == Some(recorded.amount) && recorded.currency == currency,
        || {
            let computed =
                computed.map_or_else(|| "an overflow".to_owned(), |amount| amount.to_string());
            format!(
                "{what} is recorded as {} {}, computed {computed} {currency} ({points} points at {unit})",
                recorded.amount, recorded.currency
            )
        },
    )
}

/// Points are issued, held and spent only at an active merchant (a
/// pending, rejected or suspended one can still be funded or reversed).
fn active_merchant<'state>(
    state: &'state State,
    merchant_id: &MerchantId,
) -> Result<&'state Merchant, String> {
    let merchant = state
        .merchants
        .get(merchant_id)
        .ok_or_else(|| format!("merchant {merchant_id} does not exist"))?;
    ensure_active(merchant, merchant_id)?;
    Ok(merchant)
}

fn ensure_active(merchant: &Merchant, merchant_id: &MerchantId) -> Outcome {
    ensure(merchant.status == MerchantStatus::Active, || {
        format!(
            "merchant {merchant_id} is {:?}, not active",
            merchant.status
        )
    })
}

/// The active merchant a spending event names: its number, and the unit
/// value and currency it redeems at.
fn redemption_terms(
    state: &State,
    merchant_id: &MerchantId,
) -> Result<(MerchantNumber, Amount, Currency), String> {
    active_merchant(state, merchant_id).map(|merchant| {
        (
            merchant.number,
            merchant.redemption_value,
            merchant.currency,
        )
    })
}

/// A reversal names the account and merchant of what it reverses.
fn ensure_same_parties(
    reversed: std::fmt::Arguments<'_>,
    recorded: (&AccountId, Option<&MerchantId>),
    named: (&AccountId, &MerchantId),
) -> Outcome {
    ensure(recorded == (named.0, Some(named.1)), || {
        let merchant = recorded
            .1
            .map_or_else(|| "an unnumbered merchant".to_owned(), ToString::to_string);
        format!(
            "{reversed} was of {} at {merchant}, not of {} at {}",
            recorded.0, named.0, named.1
        )
    })
}

/// An issuance grants what the programme's rules give: a lot valid for
/// the programme's expiry, a purchase priced at the rule version in force
/// (the member's tier as of the issuance), then the per-order and per-day
/// limits.
fn ensure_earned_by_the_rules(state: &State, issued: &PointsIssued) -> Outcome {
    let program = state
        .program
        .as_ref()
        .ok_or_else(|| "no programme is configured".to_owned())?;
    ensure(issued.rule_version == program.version, || {
        format!(
            "priced by rule version {}, the programme's is {}",
            issued.rule_version, program.version
        )
    })?;
    let validity = program
        .rules
        .expiry_days
        .map(|days| issued.issued_at.plus_days(days));
    ensure(issued.expires_at == validity, || {
        format!(
            "the lot is recorded as expiring at {:?}; the programme's validity gives {validity:?}",
            issued.expires_at
        )
    })?;
    let rules = &program.rules.earning_rules;
    let account = state.accounts.get(&issued.account);
    if let Some(pricing) = &issued.pricing {
        let currency = state
            .merchants
            .get(&issued.merchant_id)
            .map(|merchant| merchant.currency);
        ensure(currency == Some(pricing.purchase.currency), || {
            format!(
                "a purchase in {} at a merchant that deals in {currency:?}",
                pricing.purchase.currency
            )
        })?;
        let tier = member_tier(rules, account, issued.issued_at);
        let repriced = price_purchase(
            rules,
            pricing.purchase,
            pricing.category.as_ref(),
            tier,
            issued.issued_at,
        )
        .map_err(|rejection| format!("the purchase cannot be priced: {rejection}"))?;
        ensure(
            repriced == (issued.points_before_limits, pricing.clone()),
            || {
                format!(
                    "the purchase is recorded as earning {} ({pricing:?}); the rules give {} ({:?})",
                    issued.points_before_limits, repriced.0, repriced.1
                )
            },
        )?;
    }
    let limited = apply_limits(
        rules,
        account,
        issued.issued_at,
        issued.points_before_limits,
    )
    .map_err(|limit| format!("{} had earned the day's maximum of {limit}", issued.account))?;
    ensure(limited == (issued.points, issued.limited_by), || {
        format!(
            "{} points before limits are recorded as {} ({:?}); the limits give {} ({:?})",
            issued.points_before_limits, issued.points, issued.limited_by, limited.0, limited.1
        )
    })
}

fn ensure_unit(what: &str, recorded: Amount, terms: Amount) -> Outcome {
    ensure(recorded == terms, || {
        format!("{what} is recorded as {recorded}, the merchant's is {terms}")
    })
}

fn apply_event(state: &mut State, event: &Event) -> Outcome {
    match event {
        Event::ProgramConfigured(configured) => {
            let expected = state
                .program
                .as_ref()
                .map_or(1, |program| program.version + 1);
            ensure(configured.version == expected, || {
                format!("version {}, expected {expected}", configured.version)
            })?;
            state.program = Some(Program {
                version: configured.version,
                rules: configured.rules.clone(),
            });
            let length_days = state.period_length_days();
            roll_period(&mut state.period, configured.configured_at, length_days);
        }
        Event::MerchantApplied(applied) => {
            ensure(!state.merchants.contains_key(&applied.merchant_id), || {
                format!("merchant {} exists", applied.merchant_id)
            })?;
            // A negative price would pay the merchant for issuing.
            ensure(
                !applied.issue_price.is_negative() && !applied.redemption_value.is_negative(),
                || {
                    format!(
                        "merchant {} applies at {} a point issued and {} a point redeemed",
                        applied.merchant_id, applied.issue_price, applied.redemption_value
                    )
                },
            )?;
            let number = u32::try_from(state.merchant_ids.len())
                .map(MerchantNumber)
                .map_err(|_| "more merchants than a lot can name".to_owned())?;
            state.merchant_ids.push(applied.merchant_id.clone());
            state.merchants.insert(
                applied.merchant_id.clone(),
                Merchant {
                    name: applied.name.clone(),
                    currency: applied.currency,
                    issue_price: applied.issue_price,
                    redemption_value: applied.redemption_value,
                    status: MerchantStatus::Pending,
                    funding: Amount::ZERO,
                    number,
                },
            );
        }
        Event::MerchantApproved(change)
        | Event::MerchantRejected(change)
        | Event::MerchantSuspended(change)
        | Event::MerchantReinstated(change) => {
            let (from, to) = match event {
                Event::MerchantApproved(_) => (MerchantStatus::Pending, MerchantStatus::Active),
                Event::MerchantRejected(_) => (MerchantStatus::Pending, MerchantStatus::Rejected),
                Event::MerchantSuspended(_) => (MerchantStatus::Active, MerchantStatus::Suspended),
                _ => (MerchantStatus::Suspended, MerchantStatus::Active),
            };
            let merchant = merchant_mut(state, &change.merchant_id)?;
            ensure(merchant.status == from, || {
                format!(
                    "merchant {} is {:?}, not {from:?}",
                    change.merchant_id, merchant.status
                )
            })?;
            merchant.status = to;
        }
        Event::DepositRecorded(deposit) => {
            let merchant = merchant_mut(state, &deposit.merchant_id)?;
            ensure(deposit.amount.currency == merchant.currency, || {
                "deposit currency differs from the merchant's".to_owned()
            })?;
            // A negative one would be a withdrawal no command makes.
            ensure(deposit.amount.amount.is_positive(), || {
                format!("deposit of {}", deposit.amount.amount)
            })?;
            ensure_funding(
                deposit.funding_after,
                merchant.funding.checked_add(deposit.amount.amount),
            )?;
            merchant.funding = deposit.funding_after;
        }
        Event::ApiKeyCreated(created) => {
            ensure(!state.api_keys.contains_key(&created.key_id), || {
                format!("API key {} exists", created.key_id)
            })?;
            state.api_keys.insert(
                created.key_id.clone(),
                ApiKey {
                    role: created.role,
                    merchant_id: created.merchant_id.clone(),
                    key_hash: created.key_hash.hex.clone(),
                    revoked: false,
                },
            );
        }
        Event::ApiKeyRevoked(revoked) => {
            let key = state
                .api_keys
                .get_mut(&revoked.key_id)
                .ok_or_else(|| format!("API key {} does not exist", revoked.key_id))?;
            ensure(!key.revoked, || {
                format!("API key {} already revoked", revoked.key_id)
            })?;
            key.revoked = true;
        }
        Event::PointsIssued(issued) => {
            next_id(&mut state.next_ids.lot, issued.lot_id.0, "lot")?;
            ensure_earned_by_the_rules(state, issued)?;
            // Recorded before the checks below: one probe finds a repeated
            // order and makes room for this one (a state `apply` refused an
            // event on is discarded whole, so the early entry never stays).
            let first_earning = state
                .orders
                .entry(issued.merchant_id.clone())
                .or_default()
                .insert_new(issued.order_ref.clone(), issued.issuance_id);
            ensure(first_earning, || {
                format!(
                    "order {} of {} already earned",
                    issued.order_ref, issued.merchant_id
                )
            })?;
            let merchant = merchant_mut(state, &issued.merchant_id)?;
            ensure_active(merchant, &issued.merchant_id)?;
            ensure_unit("unit price", issued.unit_price, merchant.issue_price)?;
            ensure_value(
                "funds consumed",
                &issued.funds_consumed,
                issued.unit_price,
                issued.points,
                merchant.currency,
            )?;
            ensure_funding(
                issued.funding_after,
                merchant.funding.checked_sub(issued.funds_consumed.amount),
            )?;
            merchant.funding = issued.funding_after;
            let currency = merchant.currency;
            let merchant_number = merchant.number;
            let lot = new_lot(
                issued.lot_id,
                merchant_number,
                issued.points,
                issued.issued_at,
                issued.expires_at,
            )?;

            let account = account_or_new(&mut state.accounts, &issued.account);
            credit_lot(account, &issued.account, lot, &mut state.lot_expiries)?;
            let day = issued.issued_at.day_index();
            match account.earned_by_day.back_mut() {
                Some((last_day, points)) if *last_day == day => {
                    *points = checked_add(*points, issued.points, "daily earnings")?;
                }
                _ => account.earned_by_day.push_back((day, issued.points)),
            }
            let horizon = day - i64::from(TIER_WINDOW_DAYS_MAX);
            while account
                .earned_by_day
                .front()
                .is_some_and(|(day, _)| *day <= horizon)
            {
                account.earned_by_day.pop_front();
            }

            state.supply.issued_total =
                checked_add(state.supply.issued_total, issued.points, "issued total")?;
            let length_days = state.period_length_days();
            roll_period(&mut state.period, issued.issued_at, length_days);
            ensure(state.period.start == issued.period_start, || {
                format!(
                    "period start recorded as {}, computed {}",
                    issued.period_start, state.period.start
                )
            })?;
            state.period.issued = checked_add(state.period.issued, issued.points, "period issued")?;
            state.issuances.push(
                issued.issuance_id,
                IssuanceRecord {
                    account: issued.account.clone(),
                    merchant: merchant_number,
                    points: issued.points,
                    lot_id: issued.lot_id,
                    unit_price: issued.unit_price,
                    currency,
                    points_reversed: 0,
                },
            )?;
        }
        Event::PointsRedeemed(redeemed) => {
            let (merchant, unit_value, currency) = redemption_terms(state, &redeemed.merchant_id)?;
            ensure_unit("unit value", redeemed.unit_value, unit_value)?;
            ensure_value(
                "value owed",
                &redeemed.value_owed,
                redeemed.unit_value,
                redeemed.points,
                currency,
            )?;
            // Sized exactly: most redemptions take from one lot.
            let mut consumed = Vec::with_capacity(redeemed.consumed.len());
            let account = account_mut(&mut state.accounts, &redeemed.account)?;
            let total = debit_portions(
                account,
                &redeemed.account,
                &redeemed.consumed,
                &state.merchant_ids,
                &mut state.lot_expiries,
                Some(&mut consumed),
            )?;
            ensure(total == redeemed.points, || {
                format!(
                    "consumed {total} points for a redemption of {}",
                    redeemed.points
                )
            })?;
            ensure(account.held <= account.balance, || {
                format!("redemption spends held points of {}", redeemed.account)
            })?;
            record_movement(
                &mut account.recent_redemptions,
                velocity_limit(state.program.as_ref(), RiskRule::RedemptionVelocity),
                "redemption",
                redeemed.points,
                redeemed.redeemed_at,
            )?;
            record_redeemed(state, redeemed.points, redeemed.redeemed_at)?;
            state.redemptions.push(
                redeemed.redemption_id,
                RedemptionRecord {
                    account: redeemed.account.clone(),
                    merchant,
                    points: redeemed.points,
                    consumed,
                    unit_value: redeemed.unit_value,
                    currency: redeemed.value_owed.currency,
                    points_reversed: 0,
                },
            )?;
        }
        Event::PointsTransferred(transfer) => {
            next_id(
                &mut state.next_ids.transfer,
                transfer.transfer_id.0,
                "transfer",
            )?;
            ensure(transfer.from != transfer.to, || {
                "transfer to itself".to_owned()
            })?;
            let sender = account_mut(&mut state.accounts, &transfer.from)?;
            let debited = debit_portions(
                sender,
                &transfer.from,
                &portions_of(&transfer.moved),
                &state.merchant_ids,
                &mut state.lot_expiries,
                None,
            )?;
            ensure(sender.held <= sender.balance, || {
                format!("transfer moves held points of {}", transfer.from)
            })?;
            record_movement(
                &mut sender.recent_transfers,
                velocity_limit(state.program.as_ref(), RiskRule::TransferVelocity),
                "transfer",
                transfer.points,
                transfer.transferred_at,
            )?;
            let credited = credit_lots(state, &transfer.to, &transfer.moved)?;
            ensure(
                debited == transfer.points && credited == transfer.points,
                || {
                    format!(
                        "moved {debited}/{credited} points for a transfer of {}",
                        transfer.points
                    )
                },
            )?;
        }
        Event::PointsHeld(held) => {
            ensure(held.points > 0, || "empty hold".to_owned())?;
            active_merchant(state, &held.merchant_id)?;
            let account = account_mut(&mut state.accounts, &held.account)?;
            ensure(held.points <= account.available(), || {
                format!(
                    "hold of {} exceeds available {}",
                    held.points,
                    account.available()
                )
            })?;
            account.held += held.points;
            account.active_holds.push(held.hold_id);
            record_movement(
                &mut account.recent_redemptions,
                velocity_limit(state.program.as_ref(), RiskRule::RedemptionVelocity),
                "hold",
                held.points,
                held.held_at,
            )?;
            state.hold_timeouts.insert((held.expires_at, held.hold_id));
            state.holds.push(
                held.hold_id,
                Hold {
                    account: held.account.clone(),
                    merchant_id: held.merchant_id.clone(),
                    order_ref: held.order_ref.clone(),
                    points: held.points,
                    expires_at: held.expires_at,
                    status: HoldStatus::Active,
                },
            )?;
        }
        Event::HoldCaptured(captured) => {
            let hold = end_hold(state, captured.hold_id, HoldStatus::Captured)?;
            ensure(
                hold.account == captured.account
                    && hold.merchant_id == captured.merchant_id
                    && checked_add(captured.points, captured.points_released, "capture")?
                        == hold.points,
                || format!("capture does not match hold {}", captured.hold_id),
            )?;
            let (merchant, unit_value, currency) = redemption_terms(state, &captured.merchant_id)?;
            ensure_unit("unit value", captured.unit_value, unit_value)?;
            ensure_value(
                "value owed",
                &captured.value_owed,
                captured.unit_value,
                captured.points,
                currency,
            )?;
            // Sized exactly: most redemptions take from one lot.
            let mut consumed = Vec::with_capacity(captured.consumed.len());
            let account = account_mut(&mut state.accounts, &captured.account)?;
            let total = debit_portions(
                account,
                &captured.account,
                &captured.consumed,
                &state.merchant_ids,
                &mut state.lot_expiries,
                Some(&mut consumed),
            )?;
            ensure(total == captured.points, || {
                format!(
                    "consumed {total} points for a capture of {}",
                    captured.points
                )
            })?;
            ensure(account.held <= account.balance, || {
                "capture spends other holds' points".to_owned()
            })?;
            record_redeemed(state, captured.points, captured.captured_at)?;
            state.redemptions.push(
                captured.redemption_id,
                RedemptionRecord {
                    account: captured.account.clone(),
                    merchant,
                    points: captured.points,
                    consumed,
                    unit_value: captured.unit_value,
                    currency: captured.value_owed.currency,
                    points_reversed: 0,
                },
            )?;
        }
        Event::HoldReleased(released) => {
            let status = match released.reason {
                super::event::HoldReleaseReason::Released => HoldStatus::Released,
                super::event::HoldReleaseReason::TimedOut => HoldStatus::TimedOut,
            };
            let hold = end_hold(state, released.hold_id, status)?;
            ensure(
                hold.points == released.points
                    && hold.account == released.account
                    && hold.merchant_id == released.merchant_id,
                || format!("release does not match hold {}", released.hold_id),
            )?;
            let timed_out = hold.expires_at <= released.released_at;
            ensure(timed_out == (status == HoldStatus::TimedOut), || {
                format!(
                    "hold {} expiring at {} is recorded as {:?} at {}",
                    released.hold_id, hold.expires_at, released.reason, released.released_at
                )
            })?;
        }
        Event::IssuanceReversed(reversed) => {
            next_id(
                &mut state.next_ids.reversal,
                reversed.reversal_id.0,
                "reversal",
            )?;
            let issuance = state
                .issuances
                .get_mut(reversed.issuance_id)
                .ok_or_else(|| format!("issuance {} does not exist", reversed.issuance_id))?;
            ensure_same_parties(
                format_args!("issuance {}", reversed.issuance_id),
                (
                    &issuance.account,
                    state.merchant_ids.get(issuance.merchant.index()),
                ),
                (&reversed.account, &reversed.merchant_id),
            )?;
            ensure_value(
                "funds returned",
                &reversed.funds_returned,
                issuance.unit_price,
                reversed.points_reversed,
                issuance.currency,
            )?;
            issuance.points_reversed = checked_add(
                issuance.points_reversed,
                reversed.points_requested,
                "points reversed",
            )?;
            ensure(issuance.points_reversed <= issuance.points, || {
                format!(
                    "issuance {} reversed beyond its points",
                    reversed.issuance_id
                )
            })?;
            ensure(
                checked_add(
                    reversed.points_reversed,
                    reversed.points_unrecoverable,
                    "reversal",
                )? == reversed.points_requested,
                || "reversed + unrecoverable differs from requested".to_owned(),
            )?;
            let account = account_mut(&mut state.accounts, &reversed.account)?;
            let total = debit_portions(
                account,
                &reversed.account,
                &reversed.clawed_back,
                &state.merchant_ids,
                &mut state.lot_expiries,
                None,
            )?;
            ensure(total == reversed.points_reversed, || {
                format!(
                    "clawed back {total} points, recorded {}",
                    reversed.points_reversed
                )
            })?;
            ensure(account.held <= account.balance, || {
                "reversal takes held points".to_owned()
            })?;
            let merchant = merchant_mut(state, &reversed.merchant_id)?;
            ensure_funding(
                reversed.funding_after,
                merchant.funding.checked_add(reversed.funds_returned.amount),
            )?;
            merchant.funding = reversed.funding_after;
            state.supply.reversed_total = checked_add(
                state.supply.reversed_total,
                reversed.points_reversed,
                "reversed total",
            )?;
        }
        Event::RedemptionReversed(reversed) => {
            next_id(
                &mut state.next_ids.reversal,
                reversed.reversal_id.0,
                "reversal",
            )?;
            let redemption = state
                .redemptions
                .get_mut(reversed.redemption_id)
                .ok_or_else(|| format!("redemption {} does not exist", reversed.redemption_id))?;
            ensure_same_parties(
                format_args!("redemption {}", reversed.redemption_id),
                (
                    &redemption.account,
                    state.merchant_ids.get(redemption.merchant.index()),
                ),
                (&reversed.account, &reversed.merchant_id),
            )?;
            ensure_value(
                "value returned",
                &reversed.value_returned,
                redemption.unit_value,
                reversed.points,
                redemption.currency,
            )?;
            let expected = restorable(
                &redemption.consumed,
                redemption.points_reversed,
                reversed.points,
            );
            ensure(
                expected.len() == reversed.restored.len()
                    && expected
                        .iter()
                        .zip(&reversed.restored)
                        .all(|((spent, points), credit)| {
                            credit.source_lot_id == spent.lot_id
                                && state.merchant_ids.get(spent.origin.index())
                                    == Some(&credit.origin_merchant_id)
                                && credit.points == *points
                                && credit.issued_at == spent.issued_at
                                && credit.expires_at == spent.expires_at()
                        }),
                || {
                    format!(
                        "redemption {} restores other lots than it consumed, last first",
                        reversed.redemption_id
                    )
                },
            )?;
            redemption.points_reversed = checked_add(
                redemption.points_reversed,
                reversed.points,
                "points reversed",
            )?;
            ensure(redemption.points_reversed <= redemption.points, || {
                format!(
                    "redemption {} reversed beyond its points",
                    reversed.redemption_id
                )
            })?;
            let credited = credit_lots(state, &reversed.account, &reversed.restored)?;
            ensure(credited == reversed.points, || {
                format!("restored {credited} points, recorded {}", reversed.points)
            })?;
            state.supply.redeemed_total = checked_sub(
                state.supply.redeemed_total,
                reversed.points,
                "redeemed total",
            )?;
            state.supply.redemption_reversed_total = checked_add(
                state.supply.redemption_reversed_total,
                reversed.points,
                "redemption reversed total",
            )?;
        }
        Event::PointsExpired(expired) => {
            // Otherwise lots could be expired before they are due, by
            // naming a later `as_of`.
            ensure(expired.as_of <= expired.expired_at, || {
                format!(
                    "expires as of {}, later than it is recorded at ({})",
                    expired.as_of, expired.expired_at
                )
            })?;
            let account = account_mut(&mut state.accounts, &expired.account)?;
            ensure(
                expired
                    .lots
                    .iter()
                    .all(|lot| lot.expires_at.is_some_and(|at| at <= expired.as_of)),
                || "expires a lot that is not due".to_owned(),
            )?;
            let total = debit_portions(
                account,
                &expired.account,
                &expired.lots,
                &state.merchant_ids,
                &mut state.lot_expiries,
                None,
            )?;
            ensure(total == expired.points, || {
                format!("expired {total} points, recorded {}", expired.points)
            })?;
            ensure(account.held <= account.balance, || {
                "expiry takes held points".to_owned()
            })?;
            state.supply.expired_total =
                checked_add(state.supply.expired_total, expired.points, "expired total")?;
        }
        Event::ExpiryRunCompleted(_) | Event::RiskAlertRaised(_) => {}
    }
    Ok(())
}
