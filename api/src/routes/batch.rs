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
use serde_json::value::RawValue;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::answers::{BatchAnswer, BatchResult};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::extract::{
    Aside, COMMAND_ID, command_id_field, decode_fields, not_an_object, read_json_body,
};
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

/// The item's `type`, read ahead of its fields (which may come first).
#[derive(Deserialize)]
struct ItemType {
    #[serde(rename = "type", default)]
    kind: Option<Value>,
}

const TYPE: &str = "type";

/// One batch item, still as its JSON text, and its name in errors.
struct Item<'body> {
    object: &'body str,
    prefix: String,
}

impl Item<'_> {
    /// Decodes the item's fields but `type` and `command_id` into `T`;
    /// `command_id` is kept in `aside`.
    fn decode<T: DeserializeOwned>(&self, aside: &mut Aside<'_>) -> Result<T, ApiError> {
        decode_fields(self.object, &self.prefix, aside)
    }
}

/// One item's command, from its `type` and the rest of its fields.
fn item_command(kind: &str, item: &Item<'_>, aside: &mut Aside<'_>) -> Result<Command, ApiError> {
    let prefix = &item.prefix;
    Ok(match kind {
        "program" => Command::ConfigureProgram {
            rules: Box::new(item.decode::<ProgramRules>(aside)?),
        },
        "merchant" => item.decode::<MerchantApplication>(aside)?.into(),
        "merchant_approve" | "merchant_reject" | "merchant_suspend" | "merchant_reinstate" => {
            let review: MerchantReview = item.decode(aside)?;
            let action = kind.trim_start_matches("merchant_");
            review_command(action, review.merchant_id, review.reason)?
        }
        "deposit" => {
            let deposit: MerchantDeposit = item.decode(aside)?;
            Command::RecordDeposit {
                merchant_id: deposit.merchant_id,
                amount: deposit.amount,
            }
        }
        "api_key_revoke" => Command::RevokeApiKey {
            key_id: item.decode::<KeyRevocation>(aside)?.key_id,
        },
        "issuance" => item.decode::<Issuance>(aside)?.into(),
        "redemption" => item.decode::<Redemption>(aside)?.into(),
        "transfer" => item.decode::<Transfer>(aside)?.into(),
        "hold" => item.decode::<Hold>(aside)?.into(),
        "hold_capture" => {
            let capture: HoldCapture = item.decode(aside)?;
            Command::CaptureHold {
                hold_id: capture.hold_id,
                points: capture.points,
            }
        }
        "hold_release" => Command::ReleaseHold {
            hold_id: item.decode::<HoldRelease>(aside)?.hold_id,
        },
        "reversal" => Command::try_from(item.decode::<Reversal>(aside)?)?,
        "expiry_run" => item.decode::<ExpiryRun>(aside)?.into_command(),
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
    // The field's name is built only for an item that has the field.
    let own = match own {
        Some(value) => command_id_field(Some(value), &format!("{prefix}.{COMMAND_ID}"))?,
        None => None,
    };
    match batch_key {
        Some(key) => idempotency_key_command_id(actor, &format!("{key}#{index}")),
        None => Ok(own.unwrap_or_else(Uuid::new_v4)),
    }
}

fn parse_item(
    actor: &Actor,
    batch_key: Option<&str>,
    index: usize,
    object: &RawValue,
) -> Result<CommandRequest, ApiError> {
    let item = Item {
        object: object.get(),
        prefix: format!("commands[{index}]"),
    };
    let prefix = &item.prefix;
    if !item.object.starts_with('{') {
        return Err(ApiError::validation(
            prefix.clone(),
            "each command must be a JSON object",
        ));
    }
    let kind = match serde_json::from_str::<ItemType>(item.object) {
        Ok(ItemType {
            kind: Some(Value::String(kind)),
        }) => kind,
        Ok(_) => {
            return Err(ApiError::validation(
                format!("{prefix}.{TYPE}"),
                format!("required: one of {}", BATCH_TYPES.join(", ")),
            ));
        }
        Err(error) => {
            return Err(ApiError::validation(
                format!("{prefix}.{TYPE}"),
                error.to_string(),
            ));
        }
    };
    let mut aside = [(TYPE, None), (COMMAND_ID, None)];
    let command = item_command(&kind, &item, &mut aside)?;
    let [_, (_, own_command_id)] = aside;
    let command_id = item_command_id(actor, batch_key, index, own_command_id, prefix)?;
    Ok(CommandRequest {
        command_id,
        command,
        actor: actor.clone(),
    })
}

/// The body's items, each still as its JSON text: the body is parsed
/// once, and each item is decoded straight into its command.
fn batch_items(body: &[u8]) -> Result<Vec<&RawValue>, ApiError> {
    let fields: std::collections::BTreeMap<String, &RawValue> =
        serde_json::from_slice(body).map_err(|_| not_an_object(body))?;
    if let Some(unknown) = fields.keys().find(|key| key.as_str() != "commands") {
        return Err(ApiError::validation(
            unknown.clone(),
            "unknown field; a batch body has only `commands`",
        ));
    }
    let items = fields
        .get("commands")
        .and_then(|commands| serde_json::from_str::<Vec<&RawValue>>(commands.get()).ok())
        .ok_or_else(|| ApiError::validation("commands", "required: an array of commands"))?;
    if items.is_empty() || items.len() > BATCH_COMMANDS_MAX {
        return Err(ApiError::validation(
            "commands",
            format!("must hold 1 to {BATCH_COMMANDS_MAX} commands"),
        ));
    }
    Ok(items)
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
    let body = read_json_body(request, &()).await?;
    let items = batch_items(&body)?;
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
    let mut last_revocation = None;
    let results: Vec<BatchResult> = results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| match decided.next() {
                Some((outcome, kind)) => {
                    count_command(kind, outcome.as_ref().ok());
                    if let ("revoke_api_key", Ok(Outcome::Accepted { position, .. })) =
                        (kind, &outcome)
                    {
                        last_revocation = Some(*position);
                    }
                    outcome_result(outcome)
                }
                None => BatchResult::Refused(error_result(ApiError::unavailable(
                    "no answer for this command",
                ))),
            })
        })
        .collect();
    // As for a single revocation: answered once the key read model has it.
    if let Some(position) = last_revocation {
        crate::auth::until_keys_reach(&state, position).await;
    }
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

#[cfg(test)]
mod tests {
    use ledger_core::domain::command::Role;

    use super::*;

    fn admin() -> Actor {
        Actor {
            key_id: KeyId::parse("admin").expect("valid key id"),
            role: Role::Admin,
            merchant_id: None,
        }
    }

    /// Each item parsed alone, as the route does: the command, or the
    /// refused field and detail.
    fn parse_all(body: &str, batch_key: Option<&str>) -> Vec<Result<CommandRequest, ApiError>> {
        let items = batch_items(body.as_bytes()).expect("a well-formed batch body");
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| parse_item(&admin(), batch_key, index, item))
            .collect()
    }

    fn refusal(result: &Result<CommandRequest, ApiError>) -> (String, String) {
        match result {
            Ok(request) => panic!("accepted: {:?}", request.command),
            Err(error) => (
                error.field.clone().unwrap_or_default(),
                error.detail.clone(),
            ),
        }
    }

    fn body_refusal(body: &str) -> (String, String) {
        match batch_items(body.as_bytes()) {
            Ok(items) => panic!("{} items accepted", items.len()),
            Err(error) => (error.field.unwrap_or_default(), error.detail),
        }
    }

    #[test]
    fn items_decode_whatever_the_order_of_their_fields() {
        let command_id = "8f6d3c1e-5a4b-4c2d-9e8f-7a6b5c4d3e2f";
        let results = parse_all(
            &format!(
                r#"{{"commands": [
                    {{"account": "alice", "merchant_id": "cafe", "order_ref": "o-1", "points": 5, "type": "issuance"}},
                    {{"type": "hold_release", "command_id": "{command_id}", "hold_id": 7}}
                ]}}"#
            ),
            None,
        );
        match &results[0] {
            Ok(CommandRequest {
                command: Command::IssuePoints { points, .. },
                ..
            }) => assert_eq!(*points, Some(5)),
            other => panic!("expected an issuance, got {other:?}"),
        }
        match &results[1] {
            Ok(request) => {
                assert_eq!(request.command_id.to_string(), command_id);
                assert!(matches!(
                    request.command,
                    Command::ReleaseHold { hold_id } if hold_id == HoldId(7)
                ));
            }
            Err(error) => panic!("refused: {error:?}"),
        }
    }

    #[test]
    fn the_batch_key_names_each_item_by_its_index() {
        let body = r#"{"commands": [{"type": "expiry_run"}, {"type": "expiry_run"}]}"#;
        let first = parse_all(body, Some("batch-1"));
        let again = parse_all(body, Some("batch-1"));
        let ids = |results: &[Result<CommandRequest, ApiError>]| -> Vec<Uuid> {
            results
                .iter()
                .map(|result| result.as_ref().expect("accepted").command_id)
                .collect()
        };
        assert_eq!(ids(&first), ids(&again));
        assert_ne!(ids(&first)[0], ids(&first)[1]);
    }

    #[test]
    fn a_bad_item_is_refused_alone_naming_its_field() {
        let results = parse_all(
            r#"{"commands": [
                5,
                {"account": "alice"},
                {"type": 3},
                {"type": "teleport"},
                {"type": "issuance", "account": "alice", "merchant_id": "cafe", "order_ref": "o-1", "colour": "red"},
                {"type": "transfer", "from": "alice", "to": "bob", "points": -1},
                {"type": "expiry_run", "command_id": "not-a-uuid"},
                {"type": "hold_release", "type": "hold_release", "hold_id": 1},
                {"type": "expiry_run"}
            ]}"#,
            None,
        );
        let expected_fields = [
            "commands[0]",
            "commands[1].type",
            "commands[2].type",
            "commands[3].type",
            "commands[4].colour",
            "commands[5].points",
            "commands[6].command_id",
            "commands[7].type",
        ];
        for (result, field) in results.iter().zip(expected_fields) {
            assert_eq!(refusal(result).0, field, "{:?}", refusal(result).1);
        }
        assert!(refusal(&results[0]).1.contains("must be a JSON object"));
        assert!(
            refusal(&results[1])
                .1
                .starts_with("required: one of program")
        );
        assert!(refusal(&results[3]).1.contains("unknown type `teleport`"));
        assert!(refusal(&results[4]).1.contains("unknown field `colour`"));
        assert!(refusal(&results[6]).1.starts_with("not a UUID"));
        assert!(results[8].is_ok(), "the items after a bad one still go");
    }

    #[test]
    fn a_bad_body_is_refused_whole() {
        assert_eq!(
            body_refusal(r#"{"commands": [], "extra": 1}"#).0,
            "extra",
            "an unknown top-level field"
        );
        for (body, field, detail) in [
            (r#"{"commands": []}"#, "commands", "must hold 1 to 10000"),
            (
                r#"{"commands": {"type": "expiry_run"}}"#,
                "commands",
                "required: an array",
            ),
            ("{}", "commands", "required: an array"),
            ("[1, 2]", "body", "must be a JSON object"),
            (r#"{"commands": ["#, "body", "not valid JSON"),
        ] {
            let (found_field, found_detail) = body_refusal(body);
            assert_eq!(found_field, field, "{body}");
            assert!(found_detail.contains(detail), "{body}: {found_detail}");
        }
    }
}
