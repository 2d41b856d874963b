//! From a parsed request to the engine and back: the command id (the
//! idempotency key), submission, metrics, and the `201` answer with the
//! events and the ids of what the command created.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_core::domain::Event;
use ledger_core::domain::command::{Actor, Command};
use ledger_core::engine::{CommandRequest, EventEnvelope, Outcome};
use ledger_core::store::Position;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::answers::Accepted;
use crate::error::ApiError;
use crate::server::AppState;
use crate::sized_json::{SizedJson, accepted_bytes};

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Longest `Idempotency-Key` header value.
const IDEMPOTENCY_KEY_LENGTH_MAX: usize = 255;

/// The command id: from the `Idempotency-Key` header (namespaced by the
/// API key, so two clients' keys never collide), else the body's
/// `command_id`, else a fresh one (no retry protection).
pub fn command_id(
    actor: &Actor,
    headers: &HeaderMap,
    body_command_id: Option<Uuid>,
) -> Result<Uuid, ApiError> {
    let Some(header) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(body_command_id.unwrap_or_else(Uuid::new_v4));
    };
    let derived = idempotency_key_command_id(actor, header.to_str().unwrap_or(""))?;
    match body_command_id {
        Some(from_body) if from_body != derived => Err(ApiError::validation(
            "command_id",
            "give either an Idempotency-Key header or a command_id, not two different keys",
        )),
        _ => Ok(derived),
    }
}

/// The command id an idempotency key stands for, for this API key.
pub fn idempotency_key_command_id(actor: &Actor, key: &str) -> Result<Uuid, ApiError> {
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_LENGTH_MAX
        || !key
            .bytes()
            .all(|byte| byte.is_ascii_graphic() || byte == b' ' || byte == b'\t')
    {
        return Err(ApiError::validation(
            "Idempotency-Key",
            format!("must be 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} visible ASCII characters"),
        ));
    }
    Ok(idempotency_command_id(actor, key))
}

fn idempotency_command_id(actor: &Actor, key: &str) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(actor.key_id.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Sends one command to the engine and counts the result.
pub async fn submit(
    state: &AppState,
    actor: Actor,
    command_id: Uuid,
    command: Command,
) -> Result<Outcome, ApiError> {
    let kind = command.kind();
    let outcome = state
        .engine
        .submit(CommandRequest {
            command_id,
            command,
            actor,
        })
        .await;
    count_command(kind, outcome.as_ref().ok());
    outcome.map_err(|unavailable| ApiError::unavailable(unavailable.reason))
}

pub fn count_command(kind: &'static str, outcome: Option<&Outcome>) {
    let result = match outcome {
        Some(Outcome::Accepted { .. }) => "accepted",
        Some(Outcome::Rejected(rejection)) => rejection.code(),
        None => "unavailable",
    };
    metrics::counter!("ledger_commands_total", "type" => kind, "result" => result).increment(1);
}

/// The answer to a decided command: `201` with the events (and, for a new
/// API key, its id and secret), or the rejection as problem+json.
pub fn respond(outcome: Outcome, new_key: Option<(String, String)>) -> Response {
    match outcome {
        Outcome::Accepted { position, events } => {
            let mut answer = accepted(position, events);
            if let Some((key_id, secret)) = new_key {
                answer.key_id = Some(key_id);
                answer.key = Some(secret);
            }
            let capacity = accepted_bytes(&answer);
            (
                StatusCode::CREATED,
                SizedJson {
                    value: answer,
                    capacity,
                },
            )
                .into_response()
        }
        Outcome::Rejected(rejection) => ApiError::from(rejection).into_response(),
    }
}

/// The body of an accepted command.
pub fn accepted(position: Position, events: Arc<[EventEnvelope]>) -> Accepted {
    let mut accepted = Accepted {
        position,
        events: Arc::clone(&events),
        issuance_id: None,
        redemption_id: None,
        transfer_id: None,
        hold_id: None,
        reversal_id: None,
        key_id: None,
        key: None,
    };
    record_created_ids(&mut accepted, &events);
    accepted
}

/// The ids of what the command created, named as the contract names them.
fn record_created_ids(accepted: &mut Accepted, events: &[EventEnvelope]) {
    for envelope in events {
        let (slot, id) = match &envelope.event {
            Event::PointsIssued(issued) => (&mut accepted.issuance_id, issued.issuance_id.0),
            Event::PointsRedeemed(redeemed) => {
                (&mut accepted.redemption_id, redeemed.redemption_id.0)
            }
            Event::PointsTransferred(transferred) => {
                (&mut accepted.transfer_id, transferred.transfer_id.0)
            }
            Event::PointsHeld(held) => (&mut accepted.hold_id, held.hold_id.0),
            Event::HoldCaptured(captured) => {
                (&mut accepted.redemption_id, captured.redemption_id.0)
            }
            Event::IssuanceReversed(reversed) => {
                (&mut accepted.reversal_id, reversed.reversal_id.0)
            }
            Event::RedemptionReversed(reversed) => {
                (&mut accepted.reversal_id, reversed.reversal_id.0)
            }
            _ => continue,
        };
        slot.get_or_insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::domain::command::Role;
    use ledger_core::domain::ids::KeyId;

    fn actor(key_id: &str) -> Actor {
        Actor {
            key_id: KeyId::parse(key_id).expect("valid key id"),
            role: Role::Admin,
            merchant_id: None,
        }
    }

    fn headers_with_key(key: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY_HEADER, key.parse().expect("header value"));
        headers
    }

    #[test]
    fn the_same_idempotency_key_gives_the_same_command_id_per_api_key_only() {
        let first = command_id(&actor("a"), &headers_with_key("order-1"), None);
        let again = command_id(&actor("a"), &headers_with_key("order-1"), None);
        let other_client = command_id(&actor("b"), &headers_with_key("order-1"), None);
        assert_eq!(first, again);
        assert_ne!(first, other_client);
    }

    #[test]
    fn a_body_command_id_is_used_when_there_is_no_header() {
        let id = Uuid::new_v4();
        assert_eq!(command_id(&actor("a"), &HeaderMap::new(), Some(id)), Ok(id));
    }

    #[test]
    fn two_different_keys_are_refused() {
        let refused = command_id(&actor("a"), &headers_with_key("k"), Some(Uuid::new_v4()));
        assert_eq!(refused.map_err(|error| error.code), Err("validation_error"));
    }
}
