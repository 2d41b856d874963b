//! Events: what happened, past tense, immutable. Each carries everything an
//! auditor needs to understand it without other context (lots touched, their
//! origins, prices, rule versions, the resulting funding), and `apply`
//! re-checks the derived values it carries against its own state.

use serde::{Deserialize, Serialize};

use super::command::Role;
use super::ids::{
    AccountId, Category, HoldId, IssuanceId, KeyId, LotId, MerchantId, OrderRef, RedemptionId,
    ReversalId, TransferId,
};
use super::money::{Amount, Currency, Money, Points};
use super::program::ProgramRules;
use super::rejection::{RiskMeasure, RiskRule};
use super::time::Timestamp;

/// Declares every event kind once: the enum, its snake_case names, and the
/// payload-only (de)serialisers the envelope uses to keep `type` and `data`
/// side by side without buffering.
macro_rules! events {
    ($($variant:ident($payload:ty) = $name:literal,)*) => {
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
        #[serde(tag = "type", content = "data", rename_all = "snake_case")]
        pub enum Event {
            $($variant($payload),)*
        }

        /// Every event type name, as in the `type` field.
        pub const EVENT_KINDS: &[&str] = &[$($name),*];

        impl Event {
            /// The snake_case type name, as in the `type` field.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Event::$variant(_) => $name,)*
                }
            }

            /// Serialises the payload alone: the envelope's `data`.
            pub fn serialize_data<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Event::$variant(payload) => payload.serialize(serializer),)*
                }
            }

            /// The JSON Schema of each event type's payload (`data`).
            #[cfg(feature = "schemas")]
            pub fn payload_schemas() -> Vec<(&'static str, schemars::Schema)> {
                vec![$(($name, schemars::schema_for!($payload)),)*]
            }

            /// Reads a payload of the given type name.
            pub fn deserialize_data<'de, D: serde::Deserializer<'de>>(kind: &str, deserializer: D) -> Result<Event, D::Error> {
                match kind {
                    $($name => Ok(Event::$variant(<$payload>::deserialize(deserializer)?)),)*
                    other => Err(serde::de::Error::unknown_variant(other, EVENT_KINDS)),
                }
            }
        }
    };
}

events! {
    ProgramConfigured(Box<ProgramConfigured>) = "program_configured",
    MerchantApplied(MerchantApplied) = "merchant_applied",
    MerchantApproved(MerchantStatusChanged) = "merchant_approved",
    MerchantRejected(MerchantStatusChanged) = "merchant_rejected",
    MerchantSuspended(MerchantStatusChanged) = "merchant_suspended",
    MerchantReinstated(MerchantStatusChanged) = "merchant_reinstated",
    DepositRecorded(DepositRecorded) = "deposit_recorded",
    ApiKeyCreated(ApiKeyCreated) = "api_key_created",
    ApiKeyRevoked(ApiKeyRevoked) = "api_key_revoked",
    PointsIssued(PointsIssued) = "points_issued",
    PointsRedeemed(PointsRedeemed) = "points_redeemed",
    PointsTransferred(PointsTransferred) = "points_transferred",
    PointsHeld(PointsHeld) = "points_held",
    HoldCaptured(HoldCaptured) = "hold_captured",
    HoldReleased(HoldReleased) = "hold_released",
    IssuanceReversed(IssuanceReversed) = "issuance_reversed",
    RedemptionReversed(RedemptionReversed) = "redemption_reversed",
    PointsExpired(PointsExpired) = "points_expired",
    ExpiryRunCompleted(ExpiryRunCompleted) = "expiry_run_completed",
    RiskAlertRaised(RiskAlertRaised) = "risk_alert_raised",
}

/// The current schema version of an event type: 1, bumped per type when
/// its shape changes (`schemas/README.md`). Older versions are upcast when
/// read, in [`Event::deserialize_data_version`].
pub fn current_schema_version(kind: &str) -> u32 {
    match kind {
        "api_key_created" => 2,
        _ => 1,
    }
}

/// Versions still read and upcast: (type, version).
pub const SUPERSEDED_VERSIONS: &[(&str, u32)] = &[("api_key_created", 1)];

impl Event {
    pub fn schema_version(&self) -> u32 {
        current_schema_version(self.kind())
    }

    /// Reads a payload written at `version` of its type, upcasting an
    /// older version to the current type.
    pub fn deserialize_data_version<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        version: u32,
        deserializer: D,
    ) -> Result<Event, D::Error> {
        match (kind, version) {
            ("api_key_created", 1) => Ok(Event::ApiKeyCreated(
                ApiKeyCreatedV1::deserialize(deserializer)?.into(),
            )),
            (kind, version) if version == current_schema_version(kind) => {
                Event::deserialize_data(kind, deserializer)
            }
            (kind, version) => Err(serde::de::Error::custom(format!(
                "`{kind}` has no schema version {version} (current: {})",
                current_schema_version(kind)
            ))),
        }
    }

    /// The schemas of superseded versions still read, by (type, version).
    #[cfg(feature = "schemas")]
    pub fn superseded_payload_schemas() -> Vec<(&'static str, u32, schemars::Schema)> {
        vec![("api_key_created", 1, schemars::schema_for!(ApiKeyCreatedV1))]
    }

    /// The merchant the event is about or acted at, if any (for filtering
    /// exports and histories by merchant).
    pub fn merchant(&self) -> Option<&MerchantId> {
        match self {
            Event::MerchantApplied(event) => Some(&event.merchant_id),
            Event::MerchantApproved(event)
            | Event::MerchantRejected(event)
            | Event::MerchantSuspended(event)
            | Event::MerchantReinstated(event) => Some(&event.merchant_id),
            Event::DepositRecorded(event) => Some(&event.merchant_id),
            Event::ApiKeyCreated(event) => event.merchant_id.as_ref(),
            Event::PointsIssued(event) => Some(&event.merchant_id),
            Event::PointsRedeemed(event) => Some(&event.merchant_id),
            Event::PointsHeld(event) => Some(&event.merchant_id),
            Event::HoldCaptured(event) => Some(&event.merchant_id),
            Event::HoldReleased(event) => Some(&event.merchant_id),
            Event::IssuanceReversed(event) => Some(&event.merchant_id),
            Event::RedemptionReversed(event) => Some(&event.merchant_id),
            _ => None,
        }
    }

    /// When it happened: the writer's `now` for the batch that recorded
    /// it, so always its envelope's `recorded_at` (the replay tool checks
    /// that: a log moving one event's own time would move a lot's issue
    /// date, a day's earning limit or a hold's time-out with it).
    pub fn occurred_at(&self) -> Timestamp {
        match self {
            Event::ProgramConfigured(event) => event.configured_at,
            Event::MerchantApplied(event) => event.applied_at,
            Event::MerchantApproved(event)
            | Event::MerchantRejected(event)
            | Event::MerchantSuspended(event)
            | Event::MerchantReinstated(event) => event.changed_at,
            Event::DepositRecorded(event) => event.recorded_at,
            Event::ApiKeyCreated(event) => event.created_at,
            Event::ApiKeyRevoked(event) => event.revoked_at,
            Event::PointsIssued(event) => event.issued_at,
            Event::PointsRedeemed(event) => event.redeemed_at,
            Event::PointsTransferred(event) => event.transferred_at,
            Event::PointsHeld(event) => event.held_at,
            Event::HoldCaptured(event) => event.captured_at,
            Event::HoldReleased(event) => event.released_at,
            Event::IssuanceReversed(event) => event.reversed_at,
            Event::RedemptionReversed(event) => event.reversed_at,
            Event::PointsExpired(event) => event.expired_at,
            Event::ExpiryRunCompleted(event) => event.completed_at,
            Event::RiskAlertRaised(event) => event.raised_at,
        }
    }

    /// The accounts whose balance or lots this event changes, each once
    /// (a transfer to oneself is refused, but a log could hold one). No
    /// allocation: read models and the verifier ask for every event.
    pub fn accounts(&self) -> impl Iterator<Item = &AccountId> + Clone {
        let (first, second) = match self {
            Event::PointsIssued(event) => (Some(&event.account), None),
            Event::PointsRedeemed(event) => (Some(&event.account), None),
            Event::PointsTransferred(event) => (
                Some(&event.from),
                Some(&event.to).filter(|to| **to != event.from),
            ),
            Event::PointsHeld(event) => (Some(&event.account), None),
            Event::HoldCaptured(event) => (Some(&event.account), None),
            Event::HoldReleased(event) => (Some(&event.account), None),
            Event::IssuanceReversed(event) => (Some(&event.account), None),
            Event::RedemptionReversed(event) => (Some(&event.account), None),
            Event::PointsExpired(event) => (Some(&event.account), None),
            Event::RiskAlertRaised(event) => (Some(&event.account), None),
            _ => (None, None),
        };
        first.into_iter().chain(second)
    }
}

/// The programme's rules were set or changed (`PUT /v1/program`); carries the whole rule set and its version, which later issuances cite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProgramConfigured {
    /// 1 for the first configuration, then +1 per change.
    pub version: u32,
    pub rules: ProgramRules,
    pub configured_at: Timestamp,
}

/// A merchant applied to join the alliance; it starts pending, with its issue price and redemption value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MerchantApplied {
    pub merchant_id: MerchantId,
    pub name: String,
    pub currency: Currency,
    pub issue_price: Amount,
    pub redemption_value: Amount,
    pub applied_at: Timestamp,
}

/// An admin approved, rejected, suspended or reinstated a merchant (the event type says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MerchantStatusChanged {
    pub merchant_id: MerchantId,
    #[serde(default)]
    pub reason: Option<String>,
    pub changed_at: Timestamp,
}

/// A merchant paid funds in; issuing points draws on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct DepositRecorded {
    pub merchant_id: MerchantId,
    pub amount: Money,
    pub funding_after: Amount,
    pub recorded_at: Timestamp,
}

/// An admin created an API key; only the hash of its secret is recorded,
/// with the algorithm that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreated {
    pub key_id: KeyId,
    pub role: Role,
    #[serde(default)]
    pub merchant_id: Option<MerchantId>,
    /// The secret's hash and the algorithm that made it (version 2; version
    /// 1 held only the hex, implicitly SHA-256).
    pub key_hash: KeyHash,
    pub created_at: Timestamp,
}

/// How a key's secret was hashed. Naming the algorithm in the event lets a
/// later one be introduced without any record becoming ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyHashAlgorithm {
    Sha256,
}

/// A key secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyHash {
    pub algorithm: KeyHashAlgorithm,
    /// Lowercase hex.
    pub hex: String,
}

// Version 1 of `api_key_created`, kept only to read old logs: decoding
// upcasts it to the current `ApiKeyCreated`. Its doc line is the version 1
// schema's description, which must not change.
/// An admin created an API key; only the SHA-256 of its secret is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreatedV1 {
    pub key_id: KeyId,
    pub role: Role,
    #[serde(default)]
    pub merchant_id: Option<MerchantId>,
    pub key_hash: String,
    pub created_at: Timestamp,
}

impl From<ApiKeyCreatedV1> for ApiKeyCreated {
    /// Version 1 hashes were SHA-256, the only algorithm there was.
    fn from(v1: ApiKeyCreatedV1) -> ApiKeyCreated {
        ApiKeyCreated {
            key_id: v1.key_id,
            role: v1.role,
            merchant_id: v1.merchant_id,
            key_hash: KeyHash {
                algorithm: KeyHashAlgorithm::Sha256,
                hex: v1.key_hash,
            },
            created_at: v1.created_at,
        }
    }
}

/// An admin revoked an API key; it authenticates nothing from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRevoked {
    pub key_id: KeyId,
    pub revoked_at: Timestamp,
}

/// Which earning limit cut an award.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum EarningLimit {
    PerOrder,
    PerAccountDaily,
}

/// How a purchase was priced into points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PurchasePricing {
    pub purchase: Money,
    #[serde(default)]
    pub category: Option<Category>,
    #[serde(default)]
    pub tier: Option<Category>,
    pub points_per_currency_unit: Amount,
    /// Product of the category, tier and time-window multipliers.
    pub multiplier: Amount,
}

/// A member earned points at a merchant for an order: one new lot, priced by the cited rule version, paid from the merchant's funding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PointsIssued {
    pub issuance_id: IssuanceId,
    pub account: AccountId,
    pub merchant_id: MerchantId,
    pub order_ref: OrderRef,
    /// Points credited, after limits.
    pub points: Points,
    /// Points asked for or priced, before limits.
    pub points_before_limits: Points,
    #[serde(default)]
    pub limited_by: Option<EarningLimit>,
    #[serde(default)]
    pub pricing: Option<PurchasePricing>,
    /// The programme version whose rules applied.
    pub rule_version: u32,
    pub lot_id: LotId,
    pub issued_at: Timestamp,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// The merchant's price per point at issuance; a reversal refunds at it.
    pub unit_price: Amount,
    pub funds_consumed: Money,
    pub funding_after: Amount,
    pub period_start: Timestamp,
}

/// Points taken from one lot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LotPortion {
    pub lot_id: LotId,
    pub origin_merchant_id: MerchantId,
    pub points: Points,
    pub issued_at: Timestamp,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

/// A new lot credited from a portion of another (a transfer, or a cancelled
/// redemption): same origin, issue time and expiry as the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LotCredit {
    pub lot_id: LotId,
    pub source_lot_id: LotId,
    pub origin_merchant_id: MerchantId,
    pub points: Points,
    pub issued_at: Timestamp,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

/// A member spent points at a merchant: the lots consumed (earliest expiry first) with their origin merchants, and what the merchant is owed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PointsRedeemed {
    pub redemption_id: RedemptionId,
    pub account: AccountId,
    pub merchant_id: MerchantId,
    pub order_ref: OrderRef,
    pub points: Points,
    pub consumed: Vec<LotPortion>,
    /// The merchant's redemption value per point at redemption.
    pub unit_value: Amount,
    pub value_owed: Money,
    pub redeemed_at: Timestamp,
}

/// Points moved between two accounts; each moved portion keeps its lot's origin, issue time and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PointsTransferred {
    pub transfer_id: TransferId,
    pub from: AccountId,
    pub to: AccountId,
    pub points: Points,
    pub moved: Vec<LotCredit>,
    pub transferred_at: Timestamp,
}

/// Points were reserved for a later capture or release (an authorised redemption).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PointsHeld {
    pub hold_id: HoldId,
    pub account: AccountId,
    pub merchant_id: MerchantId,
    #[serde(default)]
    pub order_ref: Option<OrderRef>,
    pub points: Points,
    pub held_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A hold was captured (wholly or in part): a redemption of the held points; the rest is released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HoldCaptured {
    pub hold_id: HoldId,
    pub redemption_id: RedemptionId,
    pub account: AccountId,
    pub merchant_id: MerchantId,
    #[serde(default)]
    pub order_ref: Option<OrderRef>,
    pub points: Points,
    /// The part of the hold not captured, released back to the account.
    pub points_released: Points,
    pub consumed: Vec<LotPortion>,
    pub unit_value: Amount,
    pub value_owed: Money,
    pub captured_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum HoldReleaseReason {
    Released,
    TimedOut,
}

/// A hold ended without a redemption: released by a caller, or timed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HoldReleased {
    pub hold_id: HoldId,
    pub account: AccountId,
    pub merchant_id: MerchantId,
    pub points: Points,
    pub reason: HoldReleaseReason,
    pub released_at: Timestamp,
}

/// An issuance was reversed (wholly or in part): points clawed back from the member, funds returned to the merchant, and what could not be recovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IssuanceReversed {
    pub reversal_id: ReversalId,
    pub issuance_id: IssuanceId,
    pub account: AccountId,
    pub merchant_id: MerchantId,
    pub points_requested: Points,
    pub points_reversed: Points,
    /// Requested but already spent, moved or expired: not clawed back.
    pub points_unrecoverable: Points,
    pub clawed_back: Vec<LotPortion>,
    pub funds_returned: Money,
    pub funding_after: Amount,
    pub reversed_at: Timestamp,
}

/// A redemption was cancelled (wholly or in part): points restored to the member as new lots with the original origins and expiries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RedemptionReversed {
    pub reversal_id: ReversalId,
    pub redemption_id: RedemptionId,
    pub account: AccountId,
    pub merchant_id: MerchantId,
    pub points: Points,
    pub restored: Vec<LotCredit>,
    pub value_returned: Money,
    pub reversed_at: Timestamp,
}

/// Lots of an account reached their expiry and were removed (breakage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PointsExpired {
    pub account: AccountId,
    pub as_of: Timestamp,
    pub points: Points,
    pub lots: Vec<LotPortion>,
    /// Past due, but reserved by an active hold; expires once released.
    pub points_retained_by_holds: Points,
    pub expired_at: Timestamp,
}

/// An expiry run finished: how many accounts, points and holds it ended, and whether more remain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ExpiryRunCompleted {
    pub as_of: Timestamp,
    pub accounts_expired: u64,
    pub points_expired: Points,
    pub holds_timed_out: u64,
    /// The run stopped at its bound; another run will continue.
    pub more_pending: bool,
    pub completed_at: Timestamp,
}

/// A soft velocity limit was crossed: the command was accepted and this alert recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RiskAlertRaised {
    pub account: AccountId,
    pub rule: RiskRule,
    pub measure: RiskMeasure,
    pub observed: u64,
    pub limit: u64,
    pub window_seconds: u64,
    pub raised_at: Timestamp,
}
