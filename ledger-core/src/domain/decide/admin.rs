//! Programme, merchant lifecycle, funding and API keys: the back office.

use rust_decimal::Decimal;

use super::super::command::{Command, Role, TEXT_LENGTH_MAX};
use super::super::event::{
    ApiKeyCreated, ApiKeyRevoked, DepositRecorded, Event, KeyHash, KeyHashAlgorithm,
    MerchantApplied, MerchantStatusChanged, ProgramConfigured,
};
use super::super::ids::{KeyId, MerchantId};
use super::super::money::{Amount, Currency, Money};
use super::super::program::ProgramRules;
use super::super::rejection::Rejection;
use super::super::state::{MerchantStatus, State, release_budget};
use super::super::time::Timestamp;
use super::find_merchant;

/// Largest price or value per point: a point worth more than this is a typo.
pub const UNIT_AMOUNT_MAX: u64 = 1_000_000;
/// Largest single deposit.
pub const DEPOSIT_AMOUNT_MAX: u64 = 1_000_000_000_000;

pub(super) fn configure_program(
    state: &State,
    rules: &ProgramRules,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    rules.validate()?;
    // A new rule set must not put the ledger in breach of its own invariants
    // (2: outstanding ≤ cap, 4: issued in period ≤ budget).
    let outstanding = state.outstanding();
    if rules.supply_cap < outstanding {
        return Err(Rejection::invalid(
            "supply_cap",
            format!("is below the outstanding supply of {outstanding} points"),
        ));
    }
    let length_days = rules
        .release
        .as_ref()
        .map_or(1, |release| release.period_days);
    let period = state.period.view_at(now, length_days);
    if let Some(budget) = release_budget(rules.release.as_ref(), period.previous_redeemed)
        && period.issued > budget
    {
        return Err(Rejection::invalid(
            "release.base_points",
            format!(
                "the budget of {budget} would be below the {} points already issued this period",
                period.issued
            ),
        ));
    }
    let version = state
        .program
        .as_ref()
        .map_or(1, |program| program.version + 1);
    Ok(vec![Event::ProgramConfigured(Box::new(
        ProgramConfigured {
            version,
            rules: rules.clone(),
            configured_at: now,
        },
    ))])
}

pub(super) fn apply_merchant(
    state: &State,
    merchant_id: &MerchantId,
    name: &str,
    currency: Currency,
    issue_price: Amount,
    redemption_value: Amount,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    validate_text("name", name)?;
    validate_unit_amount("issue_price", issue_price)?;
    validate_unit_amount("redemption_value", redemption_value)?;
    if state.merchants.contains_key(merchant_id) {
        return Err(Rejection::MerchantAlreadyExists {
            merchant_id: merchant_id.clone(),
        });
    }
    Ok(vec![Event::MerchantApplied(MerchantApplied {
        merchant_id: merchant_id.clone(),
        name: name.to_owned(),
        currency,
        issue_price,
        redemption_value,
        applied_at: now,
    })])
}

pub(super) fn change_merchant_status(
    state: &State,
    command: &Command,
    merchant_id: &MerchantId,
    reason: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    if let Some(reason) = reason {
        validate_text("reason", reason)?;
    }
    let merchant = find_merchant(state, merchant_id)?;
    // Pending → approve → Active ⇄ Suspended; Pending → reject → Rejected.
    let (required, action) = match command {
        Command::ApproveMerchant { .. } => (MerchantStatus::Pending, "approve"),
        Command::RejectMerchant { .. } => (MerchantStatus::Pending, "reject"),
        Command::SuspendMerchant { .. } => (MerchantStatus::Active, "suspend"),
        _ => (MerchantStatus::Suspended, "reinstate"),
    };
    if merchant.status != required {
        return Err(Rejection::InvalidMerchantTransition {
            merchant_id: merchant_id.clone(),
            status: merchant.status,
            action: action.to_owned(),
        });
    }
    let change = MerchantStatusChanged {
        merchant_id: merchant_id.clone(),
        reason: reason.map(str::to_owned),
        changed_at: now,
    };
    Ok(vec![match command {
        Command::ApproveMerchant { .. } => Event::MerchantApproved(change),
        Command::RejectMerchant { .. } => Event::MerchantRejected(change),
        Command::SuspendMerchant { .. } => Event::MerchantSuspended(change),
        _ => Event::MerchantReinstated(change),
    }])
}

pub(super) fn record_deposit(
    state: &State,
    merchant_id: &MerchantId,
    amount: Amount,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    if !amount.is_positive() || amount.0 > Decimal::from(DEPOSIT_AMOUNT_MAX) {
        return Err(Rejection::invalid(
            "amount",
            format!("must be above 0 and at most {DEPOSIT_AMOUNT_MAX}"),
        ));
    }
    let merchant = find_merchant(state, merchant_id)?;
    if merchant.status == MerchantStatus::Rejected {
        return Err(Rejection::MerchantNotActive {
            merchant_id: merchant_id.clone(),
            status: merchant.status,
        });
    }
    let funding_after = merchant
        .funding
        .checked_add(amount)
        .ok_or_else(|| Rejection::invalid("amount", "funding would overflow"))?;
    Ok(vec![Event::DepositRecorded(DepositRecorded {
        merchant_id: merchant_id.clone(),
        amount: Money {
            amount,
            currency: merchant.currency,
        },
        funding_after,
        recorded_at: now,
    })])
}

pub(super) fn create_api_key(
    state: &State,
    key_id: &KeyId,
    role: Role,
    merchant_id: Option<&MerchantId>,
    key_hash: &str,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    if key_hash.len() != 64 || !key_hash.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(Rejection::invalid(
            "key_hash",
            "must be a hex SHA-256 digest (64 hex digits)",
        ));
    }
    match (role, merchant_id) {
        (Role::Merchant, None) => {
            return Err(Rejection::invalid(
                "merchant_id",
                "is required for merchant keys",
            ));
        }
        (Role::Merchant, Some(merchant_id)) => {
            find_merchant(state, merchant_id)?;
        }
        (_, Some(_)) => {
            return Err(Rejection::invalid(
                "merchant_id",
                "only merchant keys are bound to a merchant",
            ));
        }
        (_, None) => {}
    }
    if state.api_keys.contains_key(key_id) {
        return Err(Rejection::ApiKeyAlreadyExists {
            key_id: key_id.to_string(),
        });
    }
    Ok(vec![Event::ApiKeyCreated(ApiKeyCreated {
        key_id: key_id.clone(),
        role,
        merchant_id: merchant_id.cloned(),
        key_hash: KeyHash {
            algorithm: KeyHashAlgorithm::Sha256,
            hex: key_hash.to_ascii_lowercase(),
        },
        created_at: now,
    })])
}

pub(super) fn revoke_api_key(
    state: &State,
    key_id: &KeyId,
    now: Timestamp,
) -> Result<Vec<Event>, Rejection> {
    match state.api_keys.get(key_id) {
        Some(key) if !key.revoked => Ok(vec![Event::ApiKeyRevoked(ApiKeyRevoked {
            key_id: key_id.clone(),
            revoked_at: now,
        })]),
        _ => Err(Rejection::not_found("api key", key_id)),
    }
}

pub(super) fn validate_text(field: &str, text: &str) -> Result<(), Rejection> {
    let length = text.chars().count();
    if text.trim().is_empty() || length > TEXT_LENGTH_MAX {
        return Err(Rejection::invalid(
            field,
            format!("must be 1 to {TEXT_LENGTH_MAX} characters, not blank"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(Rejection::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn validate_unit_amount(field: &str, amount: Amount) -> Result<(), Rejection> {
    if amount.is_negative() || amount.0 > Decimal::from(UNIT_AMOUNT_MAX) {
        return Err(Rejection::invalid(
            field,
            format!("must be between 0 and {UNIT_AMOUNT_MAX} per point"),
        ));
    }
    Ok(())
}
