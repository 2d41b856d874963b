//! Query endpoints: read models, each answer stamped with the position it
//! reflects. `min_position` gives read-your-writes: the answer waits
//! (boundedly) until the read models have applied that position.

use axum::Json;
use axum::extract::{Path, State};
use ledger_core::domain::command::Role;
use ledger_core::domain::ids::{AccountId, MerchantId};
use ledger_core::domain::program::EXPIRY_DAYS_MAX;
use ledger_core::engine::EventEnvelope;
use ledger_core::store::{Position, Record};
use projections::Projections;
use projections::balances::AccountBalance;
use projections::settlements::MerchantAccount;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::RwLockReadGuard;

use crate::answers::{
    AccountAnswer, ApiKeyView, ApiKeysAnswer, ClearingAnswer, EventsAnswer, ExpiringAnswer,
    HistoryAnswer, LotAnswer, MerchantAnswer, MerchantSettlementAnswer, MerchantView,
    MerchantsAnswer, PeriodAnswer, RiskAlertAnswer, RiskAlertsAnswer, SettlementsAnswer,
    SupplyAnswer, TotalsAnswer,
};
use crate::auth::{Authenticated, require_role};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::server::AppState;

/// Most events one page returns.
pub const EVENTS_PAGE_MAX: usize = 10_000;
const EVENTS_PAGE_DEFAULT: usize = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    #[serde(default)]
    pub min_position: Option<Position>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    #[serde(default)]
    pub min_position: Option<Position>,
    /// The horizon of the answer's `expiring` points, in days from now.
    #[serde(default)]
    pub expiring_within_days: Option<u32>,
}

/// The horizon of `expiring` when a query names none.
const EXPIRING_WITHIN_DAYS_DEFAULT: u32 = 30;

impl AccountQuery {
    fn expiring_within_days(&self) -> Result<u32, ApiError> {
        match self.expiring_within_days {
            None => Ok(EXPIRING_WITHIN_DAYS_DEFAULT),
            Some(days) if days <= EXPIRY_DAYS_MAX => Ok(days),
            Some(_) => Err(ApiError::validation(
                "expiring_within_days",
                format!("must be between 0 and {EXPIRY_DAYS_MAX}"),
            )),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    #[serde(default)]
    pub after: Position,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub min_position: Option<Position>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskAlertsQuery {
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub merchant_id: Option<String>,
    #[serde(default)]
    pub after: Position,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub min_position: Option<Position>,
}

impl Page {
    fn limit(&self) -> Result<usize, ApiError> {
        page_limit(self.limit)
    }
}

/// A page size asked for, or the default.
fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(EVENTS_PAGE_DEFAULT),
        Some(limit) if (1..=EVENTS_PAGE_MAX).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {EVENTS_PAGE_MAX}"),
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First UTC day included (`YYYY-MM-DD`); default: the beginning.
    #[serde(default)]
    pub from: Option<String>,
    /// First UTC day no longer included; default: no end.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub min_position: Option<Position>,
}

/// The read models once they have applied `min_position`.
async fn read_models(
    state: &AppState,
    min_position: Option<Position>,
) -> Result<RwLockReadGuard<'_, Projections>, ApiError> {
    if let Some(wanted) = min_position {
        state
            .projections
            .wait_for(wanted, state.config.min_position_wait())
            .await
            .map_err(|not_caught_up| {
                ApiError::new(
                    "not_caught_up",
                    format!(
                        "the read models reached position {} but {} was asked for; retry",
                        not_caught_up.reached, not_caught_up.wanted
                    ),
                )
            })?;
    }
    Ok(state.projections.read().await)
}

fn parse_account(text: String) -> Result<AccountId, ApiError> {
    AccountId::parse(text).map_err(|error| ApiError::validation("account", error.to_string()))
}

fn parse_merchant(text: String) -> Result<MerchantId, ApiError> {
    MerchantId::parse(text).map_err(|error| ApiError::validation("merchant_id", error.to_string()))
}

pub async fn account(
    State(state): State<AppState>,
    Path(account): Path<String>,
    Authenticated(actor): Authenticated,
    ApiQuery(query): ApiQuery<AccountQuery>,
) -> Result<Json<AccountAnswer>, ApiError> {
    require_role(&actor, &[Role::Admin, Role::Analyst, Role::Merchant])?;
    let account = parse_account(account)?;
    let within_days = query.expiring_within_days()?;
    let models = read_models(&state, query.min_position).await?;
    let now = ledger_core::engine::Clock::now(&ledger_core::engine::SystemClock);
    // An account no event has touched yet simply holds nothing.
    let untouched = AccountBalance::default();
    let balance = models.balances.account(&account).unwrap_or(&untouched);
    let lots = balance
        .lots_in_order()
        .into_iter()
        .map(|lot| LotAnswer {
            lot_id: lot.lot_id,
            merchant_id: lot.merchant_id.clone(),
            remaining: lot.remaining,
            issued_at: lot.issued_at,
            expires_at: lot.expires_at,
        })
        .collect();
    Ok(Json(AccountAnswer {
        account,
        balance: balance.balance,
        held: balance.held,
        available: balance.available(),
        lots,
        expiring: ExpiringAnswer {
            within_days,
            by: now.plus_days(within_days),
            points: balance.expiring_within(now, within_days),
        },
        as_of_position: models.position(),
    }))
}

pub async fn risk_alerts(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(query): ApiQuery<RiskAlertsQuery>,
) -> Result<Json<RiskAlertsAnswer>, ApiError> {
    require_role(&actor, &[Role::Admin, Role::Analyst, Role::Auditor])?;
    let account = query.account.map(parse_account).transpose()?;
    let merchant_id = query.merchant_id.map(parse_merchant).transpose()?;
    let limit = page_limit(query.limit)?;
    let models = read_models(&state, query.min_position).await?;
    let all = models.risk.all();
    // Alerts are kept in log order: the page starts after `after`.
    let start = all.partition_point(|raised| raised.position <= query.after);
    let alerts: Vec<RiskAlertAnswer> = all[start..]
        .iter()
        .filter(|raised| {
            account
                .as_ref()
                .is_none_or(|account| &raised.alert.account == account)
        })
        .filter(|raised| {
            merchant_id
                .as_ref()
                .is_none_or(|merchant_id| raised.merchant_id.as_ref() == Some(merchant_id))
        })
        .take(limit)
        .map(|raised| RiskAlertAnswer {
            position: raised.position,
            account: raised.alert.account.clone(),
            merchant_id: raised.merchant_id.clone(),
            rule: raised.alert.rule.to_string(),
            measure: raised.alert.measure.to_string(),
            observed: raised.alert.observed,
            limit: raised.alert.limit,
            window_seconds: raised.alert.window_seconds,
            raised_at: raised.alert.raised_at,
        })
        .collect();
    Ok(Json(RiskAlertsAnswer {
        next_after: alerts.last().map_or(query.after, |alert| alert.position),
        alerts,
        as_of_position: models.position(),
    }))
}

pub async fn account_history(
    State(state): State<AppState>,
    Path(account): Path<String>,
    Authenticated(actor): Authenticated,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    require_role(&actor, &[Role::Admin, Role::Analyst])?;
    let account = parse_account(account)?;
    let limit = page.limit()?;
    let (positions, as_of) = {
        let models = read_models(&state, page.min_position).await?;
        (
            models.history_page(&account, page.after, limit),
            models.position(),
        )
    };
    let mut events = Vec::with_capacity(positions.len());
    for position in &positions {
        let records = read_log(&state, position - 1, 1).await?;
        events.extend(
            records
                .iter()
                .map(record_json)
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    Ok(Json(HistoryAnswer {
        account,
        events,
        next_after: positions.last().copied().unwrap_or(page.after),
        as_of_position: as_of,
    }))
}

pub async fn supply(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(query): ApiQuery<Consistency>,
) -> Result<Json<SupplyAnswer>, ApiError> {
    require_role(&actor, &[Role::Admin, Role::Analyst, Role::Auditor])?;
    let models = read_models(&state, query.min_position).await?;
    let view = models.supply.view(ledger_core::engine::Clock::now(
        &ledger_core::engine::SystemClock,
    ));
    Ok(Json(SupplyAnswer {
        supply_cap: view.supply_cap,
        outstanding: view.outstanding,
        issued_total: view.issued_total,
        redeemed_total: view.redeemed_total,
        expired_total: view.expired_total,
        reversed_total: view.reversed_total,
        headroom: view.headroom,
        current_period: PeriodAnswer {
            start: view.current_period.start,
            length_days: view.current_period.length_days,
            budget: view.current_period.budget,
            issued: view.current_period.issued,
        },
        as_of_position: models.position(),
    }))
}

pub async fn merchant(
    State(state): State<AppState>,
    Path(merchant_id): Path<String>,
    Authenticated(actor): Authenticated,
    ApiQuery(query): ApiQuery<Consistency>,
) -> Result<Json<MerchantAnswer>, ApiError> {
    require_role(&actor, &[Role::Admin, Role::Analyst, Role::Merchant])?;
    let merchant_id = parse_merchant(merchant_id)?;
    if actor.role == Role::Merchant && actor.merchant_id.as_ref() != Some(&merchant_id) {
        return Err(ApiError::forbidden(
            "a merchant key may read only its own merchant",
        ));
    }
    let models = read_models(&state, query.min_position).await?;
    let merchant = models
        .settlements
        .merchant(&merchant_id)
        .ok_or_else(|| ApiError::not_found(format!("no merchant `{merchant_id}`")))?;
    Ok(Json(MerchantAnswer {
        merchant: merchant_view(&merchant_id, merchant),
        as_of_position: models.position(),
    }))
}

fn merchant_view(merchant_id: &MerchantId, merchant: &MerchantAccount) -> MerchantView {
    MerchantView {
        merchant_id: merchant_id.clone(),
        name: merchant.name.clone(),
        currency: merchant.currency,
        status: merchant.status,
        funding_balance: merchant.funding,
        deposits_total: merchant.deposits_total,
        totals: TotalsAnswer::from(&merchant.totals),
        net: merchant.totals.net(),
    }
}

pub async fn merchants(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(query): ApiQuery<Consistency>,
) -> Result<Json<MerchantsAnswer>, ApiError> {
    require_role(&actor, &[Role::Admin, Role::Analyst])?;
    let models = read_models(&state, query.min_position).await?;
    let mut merchants: Vec<MerchantView> = models
        .settlements
        .merchants()
        .map(|(merchant_id, merchant)| merchant_view(merchant_id, merchant))
        .collect();
    merchants.sort_by(|left, right| left.merchant_id.cmp(&right.merchant_id));
    Ok(Json(MerchantsAnswer {
        merchants,
        as_of_position: models.position(),
    }))
}

pub async fn api_keys(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(query): ApiQuery<Consistency>,
) -> Result<Json<ApiKeysAnswer>, ApiError> {
    require_role(&actor, &[Role::Admin])?;
    let models = read_models(&state, query.min_position).await?;
    let mut keys: Vec<ApiKeyView> = models
        .keys
        .all()
        .map(|key| ApiKeyView {
            key_id: key.key_id.clone(),
            role: key.role,
            merchant_id: key.merchant_id.clone(),
            revoked: key.revoked,
        })
        .collect();
    keys.sort_by(|left, right| left.key_id.cmp(&right.key_id));
    Ok(Json(ApiKeysAnswer {
        keys,
        as_of_position: models.position(),
    }))
}

pub async fn settlements(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(period): ApiQuery<Period>,
) -> Result<Json<SettlementsAnswer>, ApiError> {
    require_role(&actor, &[Role::Admin, Role::Analyst])?;
    let from_day = period
        .from
        .as_deref()
        .map(|text| day_index("from", text))
        .transpose()?;
    let to_day = period
        .to
        .as_deref()
        .map(|text| day_index("to", text))
        .transpose()?;
    if let (Some(from), Some(to)) = (from_day, to_day)
        && from > to
    {
        return Err(ApiError::validation("to", "must not be before `from`"));
    }
    let models = read_models(&state, period.min_position).await?;
    let report = models
        .settlements
        .report(from_day.unwrap_or(i64::MIN), to_day.unwrap_or(i64::MAX));
    Ok(Json(SettlementsAnswer {
        from: period.from,
        to: period.to,
        merchants: report
            .merchants
            .into_iter()
            .map(|merchant| MerchantSettlementAnswer {
                totals: TotalsAnswer::from(&merchant.totals),
                merchant_id: merchant.merchant_id,
                currency: merchant.currency,
                net: merchant.net,
            })
            .collect(),
        clearing: report
            .clearing
            .into_iter()
            .map(|entry| ClearingAnswer {
                issuer_merchant_id: entry.issuer_merchant_id,
                redeemer_merchant_id: entry.redeemer_merchant_id,
                points: entry.points,
            })
            .collect(),
        as_of_position: models.position(),
    }))
}

/// Days since the Unix epoch of a `YYYY-MM-DD` date.
fn day_index(field: &str, text: &str) -> Result<i64, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, format)
        .map_err(|error| ApiError::validation(field, format!("not a YYYY-MM-DD date: {error}")))?;
    Ok(i64::from(
        date.to_julian_day() - time::macros::date!(1970 - 01 - 01).to_julian_day(),
    ))
}

pub async fn events(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<EventsAnswer>, ApiError> {
    require_role(&actor, &[Role::Admin, Role::Auditor])?;
    let limit = page.limit()?;
    if let Some(wanted) = page.min_position {
        drop(read_models(&state, Some(wanted)).await?);
    }
    let records = read_log(&state, page.after, limit).await?;
    let next_after = records.last().map_or(page.after, |record| record.position);
    let events = records
        .iter()
        .map(record_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(EventsAnswer {
        events,
        next_after,
        as_of_position: ledger_core::store::EventLog::head(state.log.as_ref()).position,
    }))
}

/// Records from the log, read off the async workers (reads may block on
/// the disk).
pub async fn read_log(
    state: &AppState,
    after: Position,
    limit: usize,
) -> Result<Vec<Record>, ApiError> {
    let log = std::sync::Arc::clone(&state.log);
    tokio::task::spawn_blocking(move || log.read_blocking(after, limit))
        .await
        .map_err(internal)?
        .map_err(|error| ApiError::unavailable(format!("the log could not be read: {error}")))
}

/// The stored envelope in its JSON form with its chain hashes, as the
/// contract shows it (an event stored at an older schema version shows
/// upcast, at the current one).
pub fn record_json(record: &Record) -> Result<Value, ApiError> {
    let envelope = EventEnvelope::decode(&record.payload).map_err(internal)?;
    let mut envelope = serde_json::to_value(&envelope).map_err(internal)?;
    if let Value::Object(fields) = &mut envelope {
        fields.insert(
            "prev_hash".to_owned(),
            json!(hex::encode(record.previous_hash)),
        );
        fields.insert("hash".to_owned(), json!(hex::encode(record.hash)));
    }
    Ok(envelope)
}

pub fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "internal error");
    ApiError::new("internal_error", error.to_string())
}
