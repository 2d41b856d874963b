//! The event envelope: what is stored in each log record's payload, exactly
//! as serialised once. It wraps a domain event with its place in the log
//! and its provenance. The chain hashes are not inside it (a payload cannot
//! contain its own hash); readers take them from the record.
//!
//! The log stores envelopes in a binary form ([`binary`]); their JSON form
//! ([`json`]) is what the API and the replay tool show. Records written
//! before the binary form are JSON and still read: the first byte tells the
//! two apart, and the chain hashes whatever bytes were stored.

mod binary;
mod json;

use serde::de::DeserializeSeed;
use serde::{Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::command::Actor;
use crate::domain::idempotency::Fingerprint;
use crate::domain::{Event, Timestamp};
use crate::store::Position;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnvelope {
    pub position: Position,
    pub event_id: Uuid,
    /// The version `data` was written at; `event` holds it upcast to the
    /// current type, and re-encoding writes the current version.
    pub schema_version: u32,
    pub recorded_at: Timestamp,
    pub command_id: Uuid,
    /// SHA-256 of the command and actor: lets a retry after a restart be
    /// told apart from a different command under the same key.
    pub command_fingerprint: Fingerprint,
    pub actor: Actor,
    pub event: Event,
}

/// Why a stored payload is not an envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the payload is empty")]
    Empty,
    #[error("the payload starts with byte {first:#04x}, which begins no known envelope format")]
    UnknownFormat { first: u8 },
    #[error("the payload is not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    #[error("malformed JSON envelope: {0}")]
    Json(#[from] serde_json::Error),
    #[error("malformed binary envelope: {0}")]
    Binary(#[from] postcard::Error),
    #[error("{count} bytes follow the binary envelope")]
    TrailingBytes { count: usize },
}

/// The event's payload alone: the envelope's `data`.
struct PayloadOf<'event>(&'event Event);

impl Serialize for PayloadOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_data(serializer)
    }
}

/// Reads `data` as the payload of the `type` and `schema_version` read
/// before it (an older version is upcast).
struct DataSeed<'kind> {
    kind: &'kind str,
    version: u32,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Event;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Event, D::Error> {
        Event::deserialize_data_version(self.kind, self.version, deserializer)
    }
}

impl EventEnvelope {
    /// The stored form: binary.
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        binary::encode(self)
    }

    /// The binary form appended to `bytes` (on error, some of it may have
    /// been appended).
    pub fn encode_into(&self, bytes: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        binary::encode_into(self, bytes)
    }

    /// The JSON form, as the log stored envelopes before the binary one
    /// (for tools and tests that write such logs).
    pub fn encode_json(&self) -> Result<Vec<u8>, EnvelopeError> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Reads a stored payload in either form.
    pub fn decode(bytes: &[u8]) -> Result<EventEnvelope, EnvelopeError> {
        match bytes.first() {
            Some(&binary::FORMAT_TAG) => binary::decode(&bytes[1..]),
            Some(b'{') => json::decode(bytes),
            Some(&first) => Err(EnvelopeError::UnknownFormat { first }),
            None => Err(EnvelopeError::Empty),
        }
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
    use crate::domain::ids::{KeyId, MerchantId};

    fn sample(merchant: Option<&str>) -> EventEnvelope {
        let actor = Actor {
            key_id: KeyId::parse("admin").expect("valid"),
            role: Role::Admin,
            merchant_id: merchant.map(|id| MerchantId::parse(id).expect("valid")),
        };
        EventEnvelope {
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
        }
    }

    fn refusal(bytes: &[u8]) -> String {
        EventEnvelope::decode(bytes)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn json_envelopes_round_trip_with_type_and_data_at_the_top() {
        let envelope = sample(None);
        let bytes = envelope.encode_json().expect("encodes");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(json["type"], "api_key_revoked");
        assert_eq!(json["data"]["key_id"], "k1");
        assert_eq!(json["position"], 7);
        assert_eq!(EventEnvelope::decode(&bytes).expect("decodes"), envelope);
        let keys: Vec<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 9);
        // Data before type cannot be read without buffering: refused clearly.
        let swapped = br#"{"data":{},"type":"api_key_revoked"}"#;
        assert!(refusal(swapped).contains("must come before"));
        let unknown = String::from_utf8(bytes.clone())
            .expect("utf-8")
            .replace("api_key_revoked", "no_such_event");
        assert!(EventEnvelope::decode(unknown.as_bytes()).is_err());
        let mut not_text = bytes.clone();
        not_text[bytes.len() / 2] = 0xff;
        assert!(refusal(&not_text).contains("not UTF-8"));
    }

    #[test]
    fn binary_envelopes_round_trip_and_refuse_what_is_not_one_whole() {
        for merchant in [None, Some("m-1")] {
            let envelope = sample(merchant);
            let bytes = envelope.encode().expect("encodes");
            assert_eq!(bytes[0], binary::FORMAT_TAG);
            assert_eq!(EventEnvelope::decode(&bytes).expect("decodes"), envelope);
            let json = envelope.encode_json().expect("encodes");
            assert!(
                bytes.len() * 2 < json.len(),
                "{} vs {}",
                bytes.len(),
                json.len()
            );
            for cut in 1..bytes.len() {
                assert!(
                    EventEnvelope::decode(&bytes[..cut]).is_err(),
                    "cut at {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(refusal(&longer).contains("1 bytes follow"));
        }
        let bytes = sample(None).encode().expect("encodes");
        let kind_at = bytes
            .windows(b"api_key_revoked".len())
            .position(|window| window == b"api_key_revoked")
            .expect("the type is stored by name");
        let mut renamed = bytes.clone();
        renamed[kind_at..kind_at + 3].copy_from_slice(b"zzz");
        assert!(refusal(&renamed).contains("malformed binary envelope"));
        assert!(refusal(&[]).contains("empty"));
        assert!(refusal(b"[1]").contains("0x5b"));
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let ledger = Uuid::from_u128(1);
        assert_eq!(event_id(ledger, 1), event_id(ledger, 1));
        assert_ne!(event_id(ledger, 1), event_id(ledger, 2));
        assert_ne!(event_id(ledger, 1), event_id(Uuid::from_u128(2), 1));
    }
}
