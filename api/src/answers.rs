//! The JSON the API answers with. Each shape is one type, used both to
//! serialise the answer and to describe it in the OpenAPI document, so the
//! two cannot drift apart.

use std::sync::Arc;

use ledger_core::domain::command::Role;
use ledger_core::domain::ids::{AccountId, KeyId, LotId, MerchantId};
use ledger_core::domain::state::MerchantStatus;
use ledger_core::domain::{Amount, Currency, Points, Timestamp};
use ledger_core::engine::EventEnvelope;
use ledger_core::store::Position;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A command was accepted: its events are durable.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Global log position of the command's last event.
    pub position: Position,
    /// The event envelopes the command produced (`schemas/envelope.json`;
    /// each `data` as `schemas/events/<type>.v<schema_version>.json`).
    #[schema(value_type = Vec<Object>)]
    pub events: Arc<[EventEnvelope]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuance_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redemption_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reversal_id: Option<u64>,
    /// New API keys only: the key's public id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// New API keys only: the secret, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LotAnswer {
    #[schema(value_type = u64)]
    pub lot_id: LotId,
    #[schema(value_type = String)]
    pub merchant_id: MerchantId,
    pub remaining: Points,
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountAnswer {
    #[schema(value_type = String)]
    pub account: AccountId,
    pub balance: Points,
    pub held: Points,
    pub available: Points,
    /// In the order debits take them: earliest expiry first.
    pub lots: Vec<LotAnswer>,
    pub expiring: ExpiringAnswer,
    pub as_of_position: Position,
}

/// What the account will have lost to expiry by a time, unless it spends
/// it first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpiringAnswer {
    /// `expiring_within_days` of the request (default 30).
    pub within_days: u32,
    /// Now plus `within_days`.
    #[schema(value_type = String, format = DateTime)]
    pub by: Timestamp,
    /// Points in lots expiring by then, including lots past their expiry
    /// that the next expiry run takes.
    pub points: Points,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryAnswer {
    #[schema(value_type = String)]
    pub account: AccountId,
    /// Event envelopes with `prev_hash` and `hash`, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    /// Pass as `after` for the next page.
    pub next_after: Position,
    pub as_of_position: Position,
}

/// Risk alerts raised by soft velocity limits, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RiskAlertsAnswer {
    pub alerts: Vec<RiskAlertAnswer>,
    /// Pass as `after` for the next page.
    pub next_after: Position,
    pub as_of_position: Position,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RiskAlertAnswer {
    /// The alert's event.
    pub position: Position,
    #[schema(value_type = String)]
    pub account: AccountId,
    /// The merchant of the movement that raised it (none for a transfer).
    #[schema(value_type = Option<String>)]
    pub merchant_id: Option<MerchantId>,
    /// `redemption_velocity` or `transfer_velocity`.
    pub rule: String,
    /// `count` or `points`.
    pub measure: String,
    /// What the window held with the movement counted.
    pub observed: u64,
    /// The soft limit it went past.
    pub limit: u64,
    pub window_seconds: u64,
    #[schema(value_type = String, format = DateTime)]
    pub raised_at: Timestamp,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodAnswer {
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    pub length_days: u32,
    /// `null`: no release policy, only the cap limits issuance.
    pub budget: Option<Points>,
    pub issued: Points,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SupplyAnswer {
    /// `null` until a programme is configured.
    pub supply_cap: Option<Points>,
    pub outstanding: Points,
    pub issued_total: Points,
    pub redeemed_total: Points,
    pub expired_total: Points,
    pub reversed_total: Points,
    pub headroom: Points,
    pub current_period: PeriodAnswer,
    pub as_of_position: Position,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotalsAnswer {
    pub points_issued: Points,
    /// Issuance cost, net of refunds from reversals (decimal string).
    #[schema(value_type = String)]
    pub funds_consumed: Amount,
    pub points_redeemed: Points,
    /// Owed to the merchant for redemptions at it (decimal string).
    #[schema(value_type = String)]
    pub amount_owed: Amount,
    pub points_reversed: Points,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantAnswer {
    #[serde(flatten)]
    pub merchant: MerchantView,
    pub as_of_position: Position,
}

/// Every merchant, ordered by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantsAnswer {
    pub merchants: Vec<MerchantView>,
    pub as_of_position: Position,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantView {
    #[schema(value_type = String)]
    pub merchant_id: MerchantId,
    pub name: String,
    #[schema(value_type = String)]
    pub currency: Currency,
    #[schema(value_type = String)]
    pub status: MerchantStatus,
    #[schema(value_type = String)]
    pub funding_balance: Amount,
    #[schema(value_type = String)]
    pub deposits_total: Amount,
    pub totals: TotalsAnswer,
    /// What the operator owes the merchant; negative: the merchant owes.
    #[schema(value_type = String)]
    pub net: Amount,
}

/// Every API key created through the API, ordered by id: never its
/// secret, nor the secret's hash. The bootstrap key (`LEDGER_ADMIN_KEY`)
/// is not among them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeysAnswer {
    pub keys: Vec<ApiKeyView>,
    pub as_of_position: Position,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    #[schema(value_type = String)]
    pub key_id: KeyId,
    /// `admin`, `merchant`, `auditor` or `analyst`.
    #[schema(value_type = String)]
    pub role: Role,
    /// The merchant a merchant key acts for.
    #[schema(value_type = Option<String>)]
    pub merchant_id: Option<MerchantId>,
    pub revoked: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantSettlementAnswer {
    #[schema(value_type = String)]
    pub merchant_id: MerchantId,
    #[schema(value_type = String)]
    pub currency: Currency,
    #[serde(flatten)]
    pub totals: TotalsAnswer,
    #[schema(value_type = String)]
    pub net: Amount,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClearingAnswer {
    /// The merchant whose points (lot origins) were spent.
    #[schema(value_type = String)]
    pub issuer_merchant_id: MerchantId,
    /// The merchant they were spent at.
    #[schema(value_type = String)]
    pub redeemer_merchant_id: MerchantId,
    /// Net of cancelled redemptions.
    #[schema(value_type = i64)]
    pub points: i128,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementsAnswer {
    pub from: Option<String>,
    pub to: Option<String>,
    pub merchants: Vec<MerchantSettlementAnswer>,
    pub clearing: Vec<ClearingAnswer>,
    pub as_of_position: Position,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventsAnswer {
    /// Event envelopes (position, event_id, type, schema_version,
    /// recorded_at, command_id, command_fingerprint, actor, data,
    /// prev_hash, hash), oldest first.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    pub next_after: Position,
    /// The log's head when read.
    pub as_of_position: Position,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    /// One per command, in order: an accepted command's `Accepted` body
    /// with `"status": 201`, or a problem with its `status` and `code`.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<BatchResult>,
}

/// One command's result within a batch, serialised without building an
/// intermediate JSON tree (a batch answer holds up to 10,000 of them).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum BatchResult {
    Accepted {
        status: u16,
        #[serde(flatten)]
        accepted: Box<Accepted>,
    },
    Refused(Value),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// `running`, or why the writer stopped.
    pub writer: String,
    pub head_position: Position,
    pub projections_position: Position,
}

impl From<&projections::settlements::MerchantTotals> for TotalsAnswer {
    fn from(totals: &projections::settlements::MerchantTotals) -> TotalsAnswer {
        TotalsAnswer {
            points_issued: totals.points_issued,
            funds_consumed: totals.funds_consumed,
            points_redeemed: totals.points_redeemed,
            amount_owed: totals.amount_owed,
            points_reversed: totals.points_reversed,
        }
    }
}
