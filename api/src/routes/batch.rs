//! `POST /v1/batch`: up to 10,000 commands in one request, decided in
//! order (each sees the effects of those before it), each with its own
//! result. A malformed item gets its own `validation_error` and is not
//! submitted; the others still are.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ledger_core::domain::command::{Actor, Command};
use ledger_core::domain::ids::{HoldId, KeyId, MerchantId};
use ledger_core::domain::program::ProgramRules;
use ledger_core::domain::{Amount, Points};
use ledger_core::engine::{CommandRequest, Outcome};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::answers::{BatchAnswer, BatchResult};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::{command_id_field, decode_value, read_json_object};
use crate::routes::commands::{
    ExpiryRun, Hold, Issuance, MerchantApplication, Redemption, Reversal, Transfer, review_command,
};
use crate::server::AppState;
use crate::sized_json::{RESULT_BYTES_TYPICAL, SizedJson, accepted_bytes};
use crate::submit::{IDEMPOTENCY_KEY_HEADER, accepted, count_command, idempotency_key_command_id};

pub const BATCH_COMMANDS_MAX: usize = 10_000;

/// The body of `POST /v1/batch` (decoded item by item, so that one bad item
/// fails alone): each command is an object with a `type` — `program`,
/// `merchant`, `merchant_approve`, `merchant_reject`, `merchant_suspend`,
/// `merchant_reinstate`, `deposit`, `api_key_revoke`, `issuance`,
/// `redemption`, `transfer`, `hold`, `hold_capture`, `hold_release`,
/// `reversal`, `expiry_run` — and that command's fields (as the
/// single-command endpoint's body, with the path's id as a field: e.g.
/// `merchant_id`, `hold_id`), optionally a `command_id`.
#[derive(Debug, utoipa::ToSchema)]
pub struct BatchRequest {
    /// 1 to 10,000 commands.
    #[schema(value_type = Vec<Object>)]
    pub commands: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MerchantReview {
    merchant_id: MerchantId,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MerchantDeposit {
    merchant_id: MerchantId,
    amount: Amount,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRevocation {
    key_id: KeyId,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldCapture {
    hold_id: HoldId,
    #[serde(default)]
    points: Option<Points>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRelease {
    hold_id: HoldId,
}

/// The batch item types, named as the single-command endpoints' resources.
pub const BATCH_TYPES: &[&str] = &[
    "program",
    "merchant",
    "merchant_approve",
    "merchant_reject",
    "merchant_suspend",
    "merchant_reinstate",
    "deposit",
    "api_key_revoke",
    "issuance",
    "redemption",
    "transfer",
    "hold",
    "hold_capture",
    "hold_release",
    "reversal",
    "expiry_run",
];

fn decode<T: DeserializeOwned>(fields: Map<String, Value>, prefix: &str) -> Result<T, ApiError> {
    decode_value(Value::Object(fields), prefix)
}

/// One item's command, from its `type` and the rest of its fields.
fn item_command(kind: &str, fields: Map<String, Value>, prefix: &str) -> Result<Command, ApiError> {
    Ok(match kind {
        "program" => Command::ConfigureProgram {
            rules: Box::new(decode::<ProgramRules>(fields, prefix)?),
        },
        "merchant" => decode::<MerchantApplication>(fields, prefix)?.into(),
        "merchant_approve" | "merchant_reject" | "merchant_suspend" | "merchant_reinstate" => {
            let review: MerchantReview = decode(fields, prefix)?;
            let action = kind.trim_start_matches("merchant_");
            review_command(action, review.merchant_id, review.reason)?
        }
        "deposit" => {
            let deposit: MerchantDeposit = decode(fields, prefix)?;
            Command::RecordDeposit {
                merchant_id: deposit.merchant_id,
                amount: deposit.amount,
            }
        }
        "api_key_revoke" => Command::RevokeApiKey {
            key_id: decode::<KeyRevocation>(fields, prefix)?.key_id,
        },
        "issuance" => decode::<Issuance>(fields, prefix)?.into(),
        "redemption" => decode::<Redemption>(fields, prefix)?.into(),
        "transfer" => decode::<Transfer>(fields, prefix)?.into(),
        "hold" => decode::<Hold>(fields, prefix)?.into(),
        "hold_capture" => {
            let capture: HoldCapture = decode(fields, prefix)?;
            Command::CaptureHold {
                hold_id: capture.hold_id,
                points: capture.points,
            }
        }
        "hold_release" => Command::ReleaseHold {
            hold_id: decode::<HoldRelease>(fields, prefix)?.hold_id,
        },
        "reversal" => Command::try_from(decode::<Reversal>(fields, prefix)?)?,
        "expiry_run" => decode::<ExpiryRun>(fields, prefix)?.into_command(),
        other => {
            return Err(ApiError::validation(
                format!("{prefix}.type"),
                format!("unknown type `{other}`; one of {}", BATCH_TYPES.join(", ")),
            ));
        }
    })
}

/// An item's command id: from the batch's `Idempotency-Key` and the item's
/// index, else the item's own `command_id`, else fresh.
fn item_command_id(
    actor: &Actor,
    batch_key: Option<&str>,
    index: usize,
    own: Option<Value>,
    prefix: &str,
) -> Result<Uuid, ApiError> {
    let own = command_id_field(own, &format!("{prefix}.command_id"))?;
    match batch_key {
        Some(key) => idempotency_key_command_id(actor, &format!("{key}#{index}")),
        None => Ok(own.unwrap_or_else(Uuid::new_v4)),
    }
}

fn parse_item(
    actor: &Actor,
    batch_key: Option<&str>,
    index: usize,
    item: Value,
) -> Result<CommandRequest, ApiError> {
    let prefix = format!("commands[{index}]");
    let Value::Object(mut fields) = item else {
        return Err(ApiError::validation(
            prefix,
            "each command must be a JSON object",
        ));
    };
    let kind = match fields.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => {
            return Err(ApiError::validation(
                format!("{prefix}.type"),
                format!("required: one of {}", BATCH_TYPES.join(", ")),
            ));
        }
    };
    let command_id = item_command_id(
        actor,
        batch_key,
        index,
        fields.remove("command_id"),
        &prefix,
    )?;
    let command = item_command(&kind, fields, &prefix)?;
    Ok(CommandRequest {
        command_id,
        command,
        actor: actor.clone(),
    })
}

fn error_result(error: ApiError) -> Value {
    let mut result = json!({
        "status": error.status.as_u16(),
        "code": error.code,
        "detail": error.detail,
    });
    if let (Some(field), Value::Object(fields)) = (error.field, &mut result) {
        fields.insert("field".to_owned(), Value::String(field));
    }
    result
}

pub async fn batch(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let batch_key = request
        .headers()
        .get(IDEMPOTENCY_KEY_HEADER)
        .map(|value| {
            value
                .to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::validation("Idempotency-Key", "must be visible ASCII"))
        })
        .transpose()?;
    let mut body = read_json_object(request, &()).await?;
    if let Some(unknown) = body.keys().find(|key| key.as_str() != "commands") {
        return Err(ApiError::validation(
            unknown.clone(),
            "unknown field; a batch body has only `commands`",
        ));
    }
    let Some(Value::Array(items)) = body.remove("commands") else {
        return Err(ApiError::validation(
            "commands",
            "required: an array of commands",
        ));
    };
    if items.is_empty() || items.len() > BATCH_COMMANDS_MAX {
        return Err(ApiError::validation(
            "commands",
            format!("must hold 1 to {BATCH_COMMANDS_MAX} commands"),
        ));
    }
    metrics::histogram!("api_batch_commands").record(items.len() as f64);

    let mut results: Vec<Option<BatchResult>> = Vec::with_capacity(items.len());
    let mut requests = Vec::with_capacity(items.len());
    let mut kinds = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match parse_item(&actor, batch_key.as_deref(), index, item) {
            Ok(request) => {
                kinds.push(request.command.kind());
                requests.push(request);
                results.push(None);
            }
            Err(error) => results.push(Some(BatchResult::Refused(error_result(error)))),
        }
    }
    let outcomes = state.engine.submit_in_order(requests).await;
    let mut decided = outcomes.into_iter().zip(kinds);
    let results: Vec<BatchResult> = results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| match decided.next() {
                Some((outcome, kind)) => {
                    count_command(kind, outcome.as_ref().ok());
                    outcome_result(outcome)
                }
                None => BatchResult::Refused(error_result(ApiError::unavailable(
                    "no answer for this command",
                ))),
            })
        })
        .collect();
    let capacity = results
        .iter()
        .map(|result| match result {
            BatchResult::Accepted { accepted, .. } => accepted_bytes(accepted),
            BatchResult::Refused(_) => RESULT_BYTES_TYPICAL,
        })
        .sum();
    Ok((
        StatusCode::OK,
        SizedJson {
            value: BatchAnswer { results },
            capacity,
        },
    ))
}

fn outcome_result(outcome: Result<Outcome, ledger_core::engine::Unavailable>) -> BatchResult {
    match outcome {
        Ok(Outcome::Accepted { position, events }) => BatchResult::Accepted {
            status: 201,
            accepted: Box::new(accepted(position, events)),
        },
        Ok(Outcome::Rejected(rejection)) => BatchResult::Refused(error_result(rejection.into())),
        Err(unavailable) => {
            BatchResult::Refused(error_result(ApiError::unavailable(unavailable.reason)))
        }
    }
}
