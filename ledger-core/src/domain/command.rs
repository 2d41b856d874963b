//! Commands: what a caller asks for. Imperative names. The context (who asks,
//! and the writer's clock reading) travels beside the command, never inside
//! the domain's own reach.

use serde::{Deserialize, Serialize};

use super::ids::{
    AccountId, Category, HoldId, IssuanceId, KeyId, MerchantId, OrderRef, RedemptionId,
};
use super::money::{Amount, Currency, Points};
use super::program::ProgramRules;
use super::time::Timestamp;

/// Default lifetime of a hold when the command names none: fifteen minutes.
pub const HOLD_EXPIRY_SECONDS_DEFAULT: u64 = 900;
/// Longest lifetime of a hold: seven days, as card authorisations.
pub const HOLD_EXPIRY_SECONDS_MAX: u64 = 7 * 86_400;
/// Longest free text (merchant names, reasons), in characters.
pub const TEXT_LENGTH_MAX: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Merchant,
    Auditor,
    Analyst,
}

/// Who is acting: the API key and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub key_id: KeyId,
    pub role: Role,
    /// Set for merchant keys: the one merchant this key acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<MerchantId>,
}

/// Everything `decide` needs besides state and command. `now` is stamped by
/// the single writer and never decreases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub now: Timestamp,
    pub actor: Actor,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    ConfigureProgram {
        rules: Box<ProgramRules>,
    },
    ApplyMerchant {
        merchant_id: MerchantId,
        name: String,
        currency: Currency,
        /// Money the merchant pays per point it issues.
        issue_price: Amount,
        /// Money the merchant receives per point redeemed at it.
        redemption_value: Amount,
    },
    ApproveMerchant {
        merchant_id: MerchantId,
        #[serde(default)]
        reason: Option<String>,
    },
    RejectMerchant {
        merchant_id: MerchantId,
        #[serde(default)]
        reason: Option<String>,
    },
    SuspendMerchant {
        merchant_id: MerchantId,
        #[serde(default)]
        reason: Option<String>,
    },
    ReinstateMerchant {
        merchant_id: MerchantId,
        #[serde(default)]
        reason: Option<String>,
    },
    RecordDeposit {
        merchant_id: MerchantId,
        amount: Amount,
    },
    CreateApiKey {
        key_id: KeyId,
        role: Role,
        #[serde(default)]
        merchant_id: Option<MerchantId>,
        /// Hex SHA-256 of the secret; the secret itself never reaches the log.
        key_hash: String,
    },
    RevokeApiKey {
        key_id: KeyId,
    },
    IssuePoints {
        account: AccountId,
        merchant_id: MerchantId,
        order_ref: OrderRef,
        /// Exactly one of `points` and `purchase_amount`.
        #[serde(default)]
        points: Option<Points>,
        /// In the merchant's currency; priced by the earning rules.
        #[serde(default)]
        purchase_amount: Option<Amount>,
        #[serde(default)]
        category: Option<Category>,
    },
    RedeemPoints {
        account: AccountId,
        merchant_id: MerchantId,
        points: Points,
        order_ref: OrderRef,
    },
    TransferPoints {
        from: AccountId,
        to: AccountId,
        points: Points,
    },
    HoldPoints {
        account: AccountId,
        merchant_id: MerchantId,
        points: Points,
        #[serde(default)]
        order_ref: Option<OrderRef>,
        /// Defaults to [`HOLD_EXPIRY_SECONDS_DEFAULT`].
        #[serde(default)]
        expires_in_seconds: Option<u64>,
    },
    CaptureHold {
        hold_id: HoldId,
        /// Defaults to the whole hold; the rest is released.
        #[serde(default)]
        points: Option<Points>,
    },
    ReleaseHold {
        hold_id: HoldId,
    },
    ReverseIssuance {
        issuance_id: IssuanceId,
        /// Defaults to everything not yet reversed.
        #[serde(default)]
        points: Option<Points>,
    },
    ReverseRedemption {
        redemption_id: RedemptionId,
        /// Defaults to everything not yet reversed.
        #[serde(default)]
        points: Option<Points>,
    },
    RunExpiry {
        as_of: Timestamp,
    },
}

impl Command {
    /// The snake_case name, as in the serde tag and in metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::ConfigureProgram { .. } => "configure_program",
            Command::ApplyMerchant { .. } => "apply_merchant",
            Command::ApproveMerchant { .. } => "approve_merchant",
            Command::RejectMerchant { .. } => "reject_merchant",
            Command::SuspendMerchant { .. } => "suspend_merchant",
            Command::ReinstateMerchant { .. } => "reinstate_merchant",
            Command::RecordDeposit { .. } => "record_deposit",
            Command::CreateApiKey { .. } => "create_api_key",
            Command::RevokeApiKey { .. } => "revoke_api_key",
            Command::IssuePoints { .. } => "issue_points",
            Command::RedeemPoints { .. } => "redeem_points",
            Command::TransferPoints { .. } => "transfer_points",
            Command::HoldPoints { .. } => "hold_points",
            Command::CaptureHold { .. } => "capture_hold",
            Command::ReleaseHold { .. } => "release_hold",
            Command::ReverseIssuance { .. } => "reverse_issuance",
            Command::ReverseRedemption { .. } => "reverse_redemption",
            Command::RunExpiry { .. } => "run_expiry",
        }
    }
}
