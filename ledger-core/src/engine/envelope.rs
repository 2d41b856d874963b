//! The event envelope: what is stored in each log record's payload, exactly
//! as serialised once. It wraps a domain event with its place in the log
//! and its provenance. The chain hashes are not inside it (a payload cannot
//! contain its own hash); readers take them from the record.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::command::Actor;
use crate::domain::idempotency::Fingerprint;
use crate::domain::{Event, Timestamp};
use crate::store::Position;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub position: Position,
    pub event_id: Uuid,
    pub schema_version: u32,
    pub recorded_at: Timestamp,
    pub command_id: Uuid,
    /// SHA-256 of the command and actor: lets a retry after a restart be
    /// told apart from a different command under the same key.
    pub command_fingerprint: Fingerprint,
    pub actor: Actor,
    /// `"type"` and `"data"`.
    #[serde(flatten)]
    pub event: Event,
}

impl EventEnvelope {
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<EventEnvelope, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Event ids are derived, not drawn: unique per (ledger, position), and the
/// same on every replay.
pub fn event_id(ledger_id: Uuid, position: Position) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(b"points-ledger event id");
    hasher.update(ledger_id.as_bytes());
    hasher.update(position.to_be_bytes());
    let digest: [u8; 32] = hasher.finalize().into();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::command::Role;
    use crate::domain::event::ApiKeyRevoked;
    use crate::domain::ids::KeyId;

    #[test]
    fn envelopes_round_trip_with_type_and_data_at_the_top() {
        let actor = Actor {
            key_id: KeyId::parse("admin").expect("valid"),
            role: Role::Admin,
            merchant_id: None,
        };
        let envelope = EventEnvelope {
            position: 7,
            event_id: event_id(Uuid::from_u128(1), 7),
            schema_version: 1,
            recorded_at: Timestamp::from_unix_seconds(1_800_000_000),
            command_id: Uuid::from_u128(99),
            command_fingerprint: Fingerprint([5; 32]),
            actor,
            event: Event::ApiKeyRevoked(ApiKeyRevoked {
                key_id: KeyId::parse("k1").expect("valid"),
                revoked_at: Timestamp::from_unix_seconds(1_800_000_000),
            }),
        };
        let bytes = envelope.encode().expect("encodes");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(json["type"], "api_key_revoked");
        assert_eq!(json["data"]["key_id"], "k1");
        assert_eq!(json["position"], 7);
        assert_eq!(EventEnvelope::decode(&bytes).expect("decodes"), envelope);
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let ledger = Uuid::from_u128(1);
        assert_eq!(event_id(ledger, 1), event_id(ledger, 1));
        assert_ne!(event_id(ledger, 1), event_id(ledger, 2));
        assert_ne!(event_id(ledger, 1), event_id(Uuid::from_u128(2), 1));
    }
}
