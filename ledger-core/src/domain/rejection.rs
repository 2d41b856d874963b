//! Business outcomes that refuse a command. Each variant has one stable,
//! snake_case code (the `code` in problem+json); the HTTP status for each
//! code lives in the API crate's single error table.

use serde::{Deserialize, Serialize};

use super::ids::{AccountId, HoldId, IssuanceId, MerchantId, OrderRef, RedemptionId};
use super::money::{Amount, Points};
use super::state::{HoldStatus, MerchantStatus};
use super::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Rejection {
    #[error("{field}: {message}")]
    ValidationError { field: String, message: String },

    #[error("{message}")]
    Forbidden { message: String },

    #[error("{entity} {id} does not exist")]
    NotFound { entity: String, id: String },

    #[error("account {account} has {available} points available, {requested} requested")]
    InsufficientPoints {
        account: AccountId,
        requested: Points,
        available: Points,
    },

    #[error(
        "issuing {requested} points would exceed the supply cap of {supply_cap} (headroom {headroom})"
    )]
    SupplyCapExceeded {
        requested: Points,
        supply_cap: Points,
        headroom: Points,
    },

    #[error(
        "issuing {requested} points would exceed the release budget of {budget} for the period starting {period_start} ({remaining} left)"
    )]
    ReleaseBudgetExceeded {
        requested: Points,
        budget: Points,
        remaining: Points,
        period_start: Timestamp,
    },

    #[error("merchant {merchant_id} is {status:?}, not active")]
    MerchantNotActive {
        merchant_id: MerchantId,
        status: MerchantStatus,
    },

    #[error("merchant {merchant_id} has funding {available}, {required} required")]
    MerchantFundingInsufficient {
        merchant_id: MerchantId,
        required: Amount,
        available: Amount,
    },

    #[error(
        "order {order_ref} of merchant {merchant_id} already earned points (issuance {issuance_id})"
    )]
    DuplicateOrder {
        merchant_id: MerchantId,
        order_ref: OrderRef,
        issuance_id: IssuanceId,
    },

    #[error("this idempotency key was already used for a different command")]
    IdempotencyKeyReused,

    #[error(
        "{rule} limit exceeded for account {account}: {measure} would be {observed}, limit {limit} per {window_seconds}s"
    )]
    RiskLimitExceeded {
        account: AccountId,
        rule: RiskRule,
        measure: RiskMeasure,
        observed: u64,
        limit: u64,
        window_seconds: u64,
    },

    #[error("no programme is configured yet")]
    ProgramNotConfigured,

    #[error("merchant {merchant_id} already exists")]
    MerchantAlreadyExists { merchant_id: MerchantId },

    #[error("merchant {merchant_id} is {status:?}; cannot {action}")]
    InvalidMerchantTransition {
        merchant_id: MerchantId,
        status: MerchantStatus,
        action: String,
    },

    #[error("API key {key_id} already exists")]
    ApiKeyAlreadyExists { key_id: String },

    #[error("hold {hold_id} is {status:?}")]
    HoldNotActive { hold_id: HoldId, status: HoldStatus },

    #[error("account {account} earned its daily maximum of {limit} points")]
    EarningLimitReached { account: AccountId, limit: Points },

    #[error("{}", reversal_excess(*target, *requested, *reversible))]
    ReversalExceedsOriginal {
        target: ReversalTarget,
        requested: Points,
        reversible: Points,
    },

    /// The acting key was revoked before the command was decided (the
    /// server's key read model may not have applied the revocation yet;
    /// the writer's state has).
    #[error("API key {key_id} is revoked")]
    Unauthorized { key_id: String },
}

/// What a reversal refers to, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReversalTarget {
    Issuance(IssuanceId),
    Redemption(RedemptionId),
}

impl std::fmt::Display for ReversalTarget {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReversalTarget::Issuance(id) => write!(formatter, "issuance {id}"),
            ReversalTarget::Redemption(id) => write!(formatter, "redemption {id}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RiskRule {
    RedemptionVelocity,
    TransferVelocity,
}

impl std::fmt::Display for RiskRule {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            RiskRule::RedemptionVelocity => "redemption_velocity",
            RiskRule::TransferVelocity => "transfer_velocity",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RiskMeasure {
    Count,
    Points,
}

impl std::fmt::Display for RiskMeasure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            RiskMeasure::Count => "count",
            RiskMeasure::Points => "points",
        })
    }
}

impl Rejection {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Rejection {
        Rejection::ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(entity: &str, id: impl std::fmt::Display) -> Rejection {
        Rejection::NotFound {
            entity: entity.to_owned(),
            id: id.to_string(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Rejection {
        Rejection::Forbidden {
            message: message.into(),
        }
    }

    /// The stable code. Matches the serde tag, so stored rejections and
    /// HTTP problems always agree.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::ValidationError { .. } => "validation_error",
            Rejection::Forbidden { .. } => "forbidden",
            Rejection::NotFound { .. } => "not_found",
            Rejection::InsufficientPoints { .. } => "insufficient_points",
            Rejection::SupplyCapExceeded { .. } => "supply_cap_exceeded",
            Rejection::ReleaseBudgetExceeded { .. } => "release_budget_exceeded",
            Rejection::MerchantNotActive { .. } => "merchant_not_active",
            Rejection::MerchantFundingInsufficient { .. } => "merchant_funding_insufficient",
            Rejection::DuplicateOrder { .. } => "duplicate_order",
            Rejection::IdempotencyKeyReused => "idempotency_key_reused",
            Rejection::RiskLimitExceeded { .. } => "risk_limit_exceeded",
            Rejection::ProgramNotConfigured => "program_not_configured",
            Rejection::MerchantAlreadyExists { .. } => "merchant_already_exists",
            Rejection::InvalidMerchantTransition { .. } => "invalid_merchant_transition",
            Rejection::ApiKeyAlreadyExists { .. } => "api_key_already_exists",
            Rejection::HoldNotActive { .. } => "hold_not_active",
            Rejection::EarningLimitReached { .. } => "earning_limit_reached",
            Rejection::ReversalExceedsOriginal { .. } => "reversal_exceeds_original",
            Rejection::Unauthorized { .. } => "unauthorized",
        }
    }
}

fn reversal_excess(target: ReversalTarget, requested: Points, reversible: Points) -> String {
    if reversible == 0 {
        format!("{target} is already reversed in full")
    } else {
        format!("only {reversible} points of {target} are left to reverse, {requested} requested")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_matches_the_serialised_tag() {
        let samples = [
            Rejection::invalid("points", "must be positive"),
            Rejection::forbidden("no"),
            Rejection::not_found("merchant", "m1"),
            Rejection::IdempotencyKeyReused,
            Rejection::ProgramNotConfigured,
            Rejection::Unauthorized {
                key_id: "k1".to_owned(),
            },
        ];
        for rejection in samples {
            let json = serde_json::to_value(&rejection).expect("serialises");
            assert_eq!(json["code"], rejection.code());
        }
    }
}
