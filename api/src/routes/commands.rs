//! Command endpoints: decode the body, build the command, submit, answer.
//! Who may do what (roles, merchant scope) is decided by the domain, so the
//! rules hold for every way a command can arrive.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use ledger_core::domain::command::{Command, Role};
use ledger_core::domain::ids::{
    AccountId, Category, HoldId, IssuanceId, KeyId, MerchantId, OrderRef, RedemptionId,
};
use ledger_core::domain::program::ProgramRules;
use ledger_core::domain::{Amount, Currency, Points, Timestamp};
use ledger_core::engine::{Clock, Outcome, SystemClock};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::auth::{Authenticated, hash_secret};
use crate::error::ApiError;
use crate::extract::CommandBody;
use crate::server::AppState;
use crate::submit::{command_id, respond, submit};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MerchantApplication {
    #[schema(value_type = String)]
    pub merchant_id: MerchantId,
    pub name: String,
    #[schema(value_type = String)]
    pub currency: Currency,
    #[schema(value_type = String)]
    pub issue_price: Amount,
    #[schema(value_type = String)]
    pub redemption_value: Amount,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deposit {
    #[schema(value_type = String)]
    pub amount: Amount,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub role: Role,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub merchant_id: Option<MerchantId>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Issuance {
    #[schema(value_type = String)]
    pub account: AccountId,
    #[schema(value_type = String)]
    pub merchant_id: MerchantId,
    #[schema(value_type = String)]
    pub order_ref: OrderRef,
    #[serde(default)]
    pub points: Option<Points>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub purchase_amount: Option<Amount>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub category: Option<Category>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Redemption {
    #[schema(value_type = String)]
    pub account: AccountId,
    #[schema(value_type = String)]
    pub merchant_id: MerchantId,
    pub points: Points,
    #[schema(value_type = String)]
    pub order_ref: OrderRef,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    #[schema(value_type = String)]
    pub from: AccountId,
    #[schema(value_type = String)]
    pub to: AccountId,
    pub points: Points,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    #[schema(value_type = String)]
    pub account: AccountId,
    #[schema(value_type = String)]
    pub merchant_id: MerchantId,
    pub points: Points,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub order_ref: Option<OrderRef>,
    #[serde(default)]
    pub expires_in_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    #[serde(default)]
    pub points: Option<Points>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reversal {
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub issuance_id: Option<IssuanceId>,
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub redemption_id: Option<RedemptionId>,
    #[serde(default)]
    pub points: Option<Points>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpiryRun {
    /// Defaults to now.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<Timestamp>,
}

impl From<MerchantApplication> for Command {
    fn from(body: MerchantApplication) -> Command {
        Command::ApplyMerchant {
            merchant_id: body.merchant_id,
            name: body.name,
            currency: body.currency,
            issue_price: body.issue_price,
            redemption_value: body.redemption_value,
        }
    }
}

impl From<Issuance> for Command {
    fn from(body: Issuance) -> Command {
        Command::IssuePoints {
            account: body.account,
            merchant_id: body.merchant_id,
            order_ref: body.order_ref,
            points: body.points,
            purchase_amount: body.purchase_amount,
            category: body.category,
        }
    }
}

impl From<Redemption> for Command {
    fn from(body: Redemption) -> Command {
        Command::RedeemPoints {
            account: body.account,
            merchant_id: body.merchant_id,
            points: body.points,
            order_ref: body.order_ref,
        }
    }
}

impl From<Transfer> for Command {
    fn from(body: Transfer) -> Command {
        Command::TransferPoints {
            from: body.from,
            to: body.to,
            points: body.points,
        }
    }
}

impl From<Hold> for Command {
    fn from(body: Hold) -> Command {
        Command::HoldPoints {
            account: body.account,
            merchant_id: body.merchant_id,
            points: body.points,
            order_ref: body.order_ref,
            expires_in_seconds: body.expires_in_seconds,
        }
    }
}

impl TryFrom<Reversal> for Command {
    type Error = ApiError;

    fn try_from(body: Reversal) -> Result<Command, ApiError> {
        match (body.issuance_id, body.redemption_id) {
            (Some(issuance_id), None) => Ok(Command::ReverseIssuance {
                issuance_id,
                points: body.points,
            }),
            (None, Some(redemption_id)) => Ok(Command::ReverseRedemption {
                redemption_id,
                points: body.points,
            }),
            _ => Err(ApiError::validation(
                "issuance_id",
                "give exactly one of issuance_id and redemption_id",
            )),
        }
    }
}

impl ExpiryRun {
    pub fn into_command(self) -> Command {
        Command::RunExpiry {
            // The server's clock, for the default only: the writer stamps the
            // time that counts, and the domain refuses an `as_of` after it.
            as_of: self.as_of.unwrap_or_else(|| SystemClock.now()),
        }
    }
}

pub fn review_command(
    action: &str,
    merchant_id: MerchantId,
    reason: Option<String>,
) -> Result<Command, ApiError> {
    Ok(match action {
        "approve" => Command::ApproveMerchant {
            merchant_id,
            reason,
        },
        "reject" => Command::RejectMerchant {
            merchant_id,
            reason,
        },
        "suspend" => Command::SuspendMerchant {
            merchant_id,
            reason,
        },
        "reinstate" => Command::ReinstateMerchant {
            merchant_id,
            reason,
        },
        _ => {
            return Err(ApiError::not_found(format!(
                "no merchant action `{action}`"
            )));
        }
    })
}

fn path_id<T>(
    parse: impl FnOnce(String) -> Result<T, ledger_core::domain::ids::InvalidId>,
    field: &str,
    text: String,
) -> Result<T, ApiError> {
    parse(text).map_err(|error| ApiError::validation(field, error.to_string()))
}

fn sequence_id(field: &str, text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::validation(field, "must be a positive integer"))
}

/// Submits `command` under the request's command id and answers.
async fn run(
    state: &AppState,
    Authenticated(actor): Authenticated,
    headers: &HeaderMap,
    body_command_id: Option<uuid::Uuid>,
    command: Command,
) -> Result<Response, ApiError> {
    let command_id = command_id(&actor, headers, body_command_id)?;
    let outcome = submit(state, actor, command_id, command).await?;
    Ok(respond(outcome, None))
}

/// The endpoints whose body maps straight onto one command.
pub async fn submit_body<Body: DeserializeOwned + Into<Command>>(
    State(state): State<AppState>,
    actor: Authenticated,
    headers: HeaderMap,
    request: CommandBody<Body>,
) -> Result<Response, ApiError> {
    run(
        &state,
        actor,
        &headers,
        request.command_id,
        request.body.into(),
    )
    .await
}

pub async fn configure_program(
    State(state): State<AppState>,
    actor: Authenticated,
    headers: HeaderMap,
    request: CommandBody<ProgramRules>,
) -> Result<Response, ApiError> {
    let command = Command::ConfigureProgram {
        rules: Box::new(request.body),
    };
    run(&state, actor, &headers, request.command_id, command).await
}

pub async fn review_merchant(
    State(state): State<AppState>,
    Path((merchant_id, action)): Path<(String, String)>,
    actor: Authenticated,
    headers: HeaderMap,
    request: CommandBody<Review>,
) -> Result<Response, ApiError> {
    let merchant_id = path_id(MerchantId::parse, "merchant_id", merchant_id)?;
    let command = review_command(&action, merchant_id, request.body.reason)?;
    run(&state, actor, &headers, request.command_id, command).await
}

pub async fn record_deposit(
    State(state): State<AppState>,
    Path(merchant_id): Path<String>,
    actor: Authenticated,
    headers: HeaderMap,
    request: CommandBody<Deposit>,
) -> Result<Response, ApiError> {
    let merchant_id = path_id(MerchantId::parse, "merchant_id", merchant_id)?;
    let command = Command::RecordDeposit {
        merchant_id,
        amount: request.body.amount,
    };
    run(&state, actor, &headers, request.command_id, command).await
}

/// Creates a key and shows its secret once. The key id and secret derive
/// from the command id, so a retry answers with the same key.
pub async fn create_api_key(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    headers: HeaderMap,
    request: CommandBody<NewApiKey>,
) -> Result<Response, ApiError> {
    let command_id = command_id(&actor, &headers, request.command_id)?;
    let (key_id, secret) = state.key_derivation.derive(command_id);
    let command = Command::CreateApiKey {
        key_id: path_id(KeyId::parse, "key_id", key_id.clone())?,
        role: request.body.role,
        merchant_id: request.body.merchant_id,
        key_hash: hash_secret(&secret),
    };
    let outcome = submit(&state, actor, command_id, command).await?;
    Ok(respond(outcome, Some((key_id, secret))))
}

pub async fn revoke_api_key(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    actor: Authenticated,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key_id = path_id(KeyId::parse, "key_id", key_id)?;
    let Authenticated(acting) = actor;
    if key_id.as_str() == crate::auth::BOOTSTRAP_KEY_ID && acting.role == Role::Admin {
        return Err(ApiError::validation(
            "key_id",
            "the bootstrap key is LEDGER_ADMIN_KEY itself, not a key created here: retire it by restarting the server with another LEDGER_ADMIN_KEY",
        ));
    }
    let command_id = command_id(&acting, &headers, None)?;
    let outcome = submit(&state, acting, command_id, Command::RevokeApiKey { key_id }).await?;
    // Requests are authenticated against the key read model: answered
    // only once it has the revocation, the key is refused from then on
    // (the writer refuses its commands either way).
    if let Outcome::Accepted { position, .. } = &outcome {
        crate::auth::until_keys_reach(&state, *position).await;
    }
    Ok(respond(outcome, None))
}

pub async fn capture_hold(
    State(state): State<AppState>,
    Path(hold_id): Path<String>,
    actor: Authenticated,
    headers: HeaderMap,
    request: CommandBody<Capture>,
) -> Result<Response, ApiError> {
    let command = Command::CaptureHold {
        hold_id: HoldId(sequence_id("hold_id", &hold_id)?),
        points: request.body.points,
    };
    run(&state, actor, &headers, request.command_id, command).await
}

pub async fn release_hold(
    State(state): State<AppState>,
    Path(hold_id): Path<String>,
    actor: Authenticated,
    headers: HeaderMap,
    request: CommandBody<Release>,
) -> Result<Response, ApiError> {
    let command = Command::ReleaseHold {
        hold_id: HoldId(sequence_id("hold_id", &hold_id)?),
    };
    run(&state, actor, &headers, request.command_id, command).await
}

pub async fn reverse(
    State(state): State<AppState>,
    actor: Authenticated,
    headers: HeaderMap,
    request: CommandBody<Reversal>,
) -> Result<Response, ApiError> {
    let command = Command::try_from(request.body)?;
    run(&state, actor, &headers, request.command_id, command).await
}

pub async fn run_expiry(
    State(state): State<AppState>,
    actor: Authenticated,
    headers: HeaderMap,
    request: CommandBody<ExpiryRun>,
) -> Result<Response, ApiError> {
    let command = request.body.into_command();
    run(&state, actor, &headers, request.command_id, command).await
}
