//! `decide(state, command, context) -> events | rejection`: the only place a
//! command becomes events. It never mutates state; every derived value the
//! events carry (lots consumed, ids, prices, funding after) is computed here
//! so that `apply` only has to carry it out and re-check it.

mod account_view;
mod admin;
pub mod expiry;
mod issuance;
mod reversal;
mod spending;

pub use spending::alerts_raised_by;

use super::command::{Actor, Command, Context, Role};
use super::event::Event;
use super::ids::MerchantId;
use super::money::{POINTS_PER_COMMAND_MAX, Points};
use super::rejection::Rejection;
use super::state::{Merchant, MerchantNumber, MerchantStatus, NextIds, State};

/// Judges `command` against `state` as of `context.now`. A rejection leaves
/// no trace; an acceptance yields at least one event.
pub fn decide(
    state: &State,
    command: &Command,
    context: &Context,
) -> Result<Vec<Event>, Rejection> {
    authorize(state, command, &context.actor)?;
    let now = context.now;
    match command {
        Command::ConfigureProgram { rules } => admin::configure_program(state, rules, now),
        Command::ApplyMerchant {
            merchant_id,
            name,
            currency,
            issue_price,
            redemption_value,
        } => admin::apply_merchant(
            state,
            merchant_id,
            name,
            *currency,
            *issue_price,
            *redemption_value,
            now,
        ),
        Command::ApproveMerchant {
            merchant_id,
            reason,
        }
        | Command::RejectMerchant {
            merchant_id,
            reason,
        }
        | Command::SuspendMerchant {
            merchant_id,
            reason,
        }
        | Command::ReinstateMerchant {
            merchant_id,
            reason,
        } => admin::change_merchant_status(state, command, merchant_id, reason.as_deref(), now),
        Command::RecordDeposit {
            merchant_id,
            amount,
        } => admin::record_deposit(state, merchant_id, *amount, now),
        Command::CreateApiKey {
            key_id,
            role,
            merchant_id,
            key_hash,
        } => admin::create_api_key(state, key_id, *role, merchant_id.as_ref(), key_hash, now),
        Command::RevokeApiKey { key_id } => admin::revoke_api_key(state, key_id, now),
        Command::IssuePoints {
            account,
            merchant_id,
            order_ref,
            points,
            purchase_amount,
            category,
        } => issuance::issue_points(
            state,
            issuance::IssueRequest {
                account,
                merchant_id,
                order_ref,
                points: *points,
                purchase_amount: *purchase_amount,
                category: category.as_ref(),
            },
            now,
        ),
        Command::RedeemPoints {
            account,
            merchant_id,
            points,
            order_ref,
        } => spending::redeem_points(state, account, merchant_id, *points, order_ref, now),
        Command::TransferPoints { from, to, points } => {
            spending::transfer_points(state, from, to, *points, now)
        }
        Command::HoldPoints {
            account,
            merchant_id,
            points,
            order_ref,
            expires_in_seconds,
        } => spending::hold_points(
            state,
            account,
            merchant_id,
            *points,
            order_ref.as_ref(),
            *expires_in_seconds,
            now,
        ),
        Command::CaptureHold { hold_id, points } => {
            spending::capture_hold(state, *hold_id, *points, now)
        }
        Command::ReleaseHold { hold_id } => spending::release_hold(state, *hold_id, now),
        Command::ReverseIssuance {
            issuance_id,
            points,
        } => reversal::reverse_issuance(state, *issuance_id, *points, now),
        Command::ReverseRedemption {
            redemption_id,
            points,
        } => reversal::reverse_redemption(state, *redemption_id, *points, now),
        Command::RunExpiry { as_of } => expiry::run_expiry(state, *as_of, now),
    }
}

/// Decides and, on acceptance, applies the events: one step of the ledger.
pub fn execute(
    state: &mut State,
    command: &Command,
    context: &Context,
) -> Result<Vec<Event>, Rejection> {
    let events = decide(state, command, context)?;
    for event in &events {
        super::apply::apply(state, event);
    }
    Ok(events)
}

/// Roles and merchant scope. Admins may do anything; merchant keys may only
/// issue, redeem, hold and reverse for their own merchant; auditors and
/// analysts only read.
fn authorize(state: &State, command: &Command, actor: &Actor) -> Result<(), Rejection> {
    // Keys the ledger never issued (the configured bootstrap key) are
    // vouched for by the caller; a revoked one acts no more, whatever the
    // caller's view of the keys.
    if state
        .api_keys
        .get(&actor.key_id)
        .is_some_and(|key| key.revoked)
    {
        return Err(Rejection::Unauthorized {
            key_id: actor.key_id.to_string(),
        });
    }
    match actor.role {
        Role::Admin => return Ok(()),
        Role::Auditor | Role::Analyst => {
            return Err(Rejection::forbidden(format!(
                "the {:?} role cannot run commands",
                actor.role
            )));
        }
        Role::Merchant => {}
    }
    let acting_for = match command {
        Command::IssuePoints { merchant_id, .. }
        | Command::RedeemPoints { merchant_id, .. }
        | Command::HoldPoints { merchant_id, .. } => Some(merchant_id),
        Command::CaptureHold { hold_id, .. } | Command::ReleaseHold { hold_id } => {
            state.holds.get(*hold_id).map(|hold| &hold.merchant_id)
        }
        Command::ReverseIssuance { issuance_id, .. } => state
            .issuances
            .get(*issuance_id)
            .and_then(|issuance| state.merchant_id(issuance.merchant)),
        Command::ReverseRedemption { redemption_id, .. } => state
            .redemptions
            .get(*redemption_id)
            .and_then(|redemption| state.merchant_id(redemption.merchant)),
        _ => {
            return Err(Rejection::forbidden(format!(
                "merchant keys cannot {}",
                command.kind()
            )));
        }
    };
    match (acting_for, actor.merchant_id.as_ref()) {
        // The target does not exist: let the command report not_found.
        (None, _) => Ok(()),
        (Some(target), Some(own)) if target == own => Ok(()),
        (Some(target), _) => Err(Rejection::forbidden(format!(
            "this key acts for merchant {}, not {target}",
            actor
                .merchant_id
                .as_ref()
                .map_or("(none)", MerchantId::as_str)
        ))),
    }
}

/// Whether `actor` could have recorded `event` in `state` (as it was just
/// before the event): `authorize`'s policy read off a log, for the replay
/// tool. A key the ledger issued acts with the role and merchant it was
/// issued with, and not once revoked; a key it never issued (the bootstrap
/// key, the system's expiry runs) is vouched for by its caller, as
/// `authorize` vouches for it. Auditors and analysts record nothing. A merchant key's own events name its merchant;
/// what a debit brings along (expired lots, timed-out holds, risk alerts)
/// is the ledger's doing, whoever's command made it due.
pub fn check_actor(state: &State, event: &Event, actor: &Actor) -> Result<(), String> {
    let key_id = &actor.key_id;
    match state.api_keys.get(key_id) {
        Some(key) if key.revoked => return Err(format!("key {key_id} acts after its revocation")),
        Some(key) if key.role != actor.role || key.merchant_id != actor.merchant_id => {
            return Err(format!(
                "key {key_id} acts as {} but was issued as {}",
                role_text(actor.role, actor.merchant_id.as_ref()),
                role_text(key.role, key.merchant_id.as_ref())
            ));
        }
        Some(_) | None => {}
    }
    let acting_for = match (actor.role, event) {
        (Role::Admin, _) => return Ok(()),
        (Role::Auditor | Role::Analyst, _) => {
            return Err(format!("the {:?} role records no events", actor.role));
        }
        (Role::Merchant, Event::PointsExpired(_) | Event::RiskAlertRaised(_)) => return Ok(()),
        (Role::Merchant, Event::HoldReleased(released))
            if released.reason == super::event::HoldReleaseReason::TimedOut =>
        {
            return Ok(());
        }
        (Role::Merchant, Event::HoldReleased(released)) => &released.merchant_id,
        (Role::Merchant, Event::PointsIssued(issued)) => &issued.merchant_id,
        (Role::Merchant, Event::PointsRedeemed(redeemed)) => &redeemed.merchant_id,
        (Role::Merchant, Event::PointsHeld(held)) => &held.merchant_id,
        (Role::Merchant, Event::HoldCaptured(captured)) => &captured.merchant_id,
        (Role::Merchant, Event::IssuanceReversed(reversed)) => &reversed.merchant_id,
        (Role::Merchant, Event::RedemptionReversed(reversed)) => &reversed.merchant_id,
        (Role::Merchant, other) => {
            return Err(format!("merchant keys record no {}", other.kind()));
        }
    };
    if actor.merchant_id.as_ref() == Some(acting_for) {
        Ok(())
    } else {
        Err(format!(
            "key {key_id} acts for merchant {}, not {acting_for}",
            actor
                .merchant_id
                .as_ref()
                .map_or("(none)", MerchantId::as_str)
        ))
    }
}

fn role_text(role: Role, merchant_id: Option<&MerchantId>) -> String {
    match merchant_id {
        Some(merchant_id) => format!("{role:?} of {merchant_id}"),
        None => format!("{role:?}"),
    }
}

fn validate_points(field: &str, points: Points) -> Result<(), Rejection> {
    if points == 0 || points > POINTS_PER_COMMAND_MAX {
        return Err(Rejection::invalid(
            field,
            format!("must be between 1 and {POINTS_PER_COMMAND_MAX}"),
        ));
    }
    Ok(())
}

/// The id of the merchant numbered `number`. Every number in the state
/// has one (`apply` numbers them, `State::check_merchant_numbers` vets a
/// state read from a snapshot), but a miss is reported, not trusted.
fn merchant_of(state: &State, number: MerchantNumber) -> Result<&MerchantId, Rejection> {
    state
        .merchant_id(number)
        .ok_or_else(|| Rejection::not_found("merchant number", number.0))
}

fn find_merchant<'state>(
    state: &'state State,
    merchant_id: &MerchantId,
) -> Result<&'state Merchant, Rejection> {
    state
        .merchants
        .get(merchant_id)
        .ok_or_else(|| Rejection::not_found("merchant", merchant_id))
}

fn require_active_merchant<'state>(
    state: &'state State,
    merchant_id: &MerchantId,
) -> Result<&'state Merchant, Rejection> {
    let merchant = find_merchant(state, merchant_id)?;
    if merchant.status != MerchantStatus::Active {
        return Err(Rejection::MerchantNotActive {
            merchant_id: merchant_id.clone(),
            status: merchant.status,
        });
    }
    Ok(merchant)
}

/// Hands out the ids `apply` will expect, in order, within one command.
struct IdAllocator {
    next: NextIds,
    issuance: u64,
    redemption: u64,
    hold: u64,
}

impl IdAllocator {
    fn new(state: &State) -> IdAllocator {
        IdAllocator {
            next: state.next_ids.clone(),
            issuance: state.issuances.next_number(),
            redemption: state.redemptions.next_number(),
            hold: state.holds.next_number(),
        }
    }

    fn take(counter: &mut u64) -> u64 {
        let id = *counter;
        *counter += 1;
        id
    }

    fn lot(&mut self) -> super::ids::LotId {
        super::ids::LotId(Self::take(&mut self.next.lot))
    }
    fn issuance(&mut self) -> super::ids::IssuanceId {
        super::ids::IssuanceId(Self::take(&mut self.issuance))
    }
    fn redemption(&mut self) -> super::ids::RedemptionId {
        super::ids::RedemptionId(Self::take(&mut self.redemption))
    }
    fn transfer(&mut self) -> super::ids::TransferId {
        super::ids::TransferId(Self::take(&mut self.next.transfer))
    }
    fn hold(&mut self) -> super::ids::HoldId {
        super::ids::HoldId(Self::take(&mut self.hold))
    }
    fn reversal(&mut self) -> super::ids::ReversalId {
        super::ids::ReversalId(Self::take(&mut self.next.reversal))
    }
}
