//! The event envelope: what is stored in each log record's payload, exactly
//! as serialised once. It wraps a domain event with its place in the log
//! and its provenance. The chain hashes are not inside it (a payload cannot
//! contain its own hash); readers take them from the record.

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::command::Actor;
use crate::domain::idempotency::Fingerprint;
use crate::domain::{Event, Timestamp};
use crate::store::Position;

/// Serialised as one flat JSON object —
/// `{"position", "event_id", "type", "schema_version", "recorded_at",
/// "command_id", "command_fingerprint", "actor", "data"}` — by hand rather
/// than with `#[serde(flatten)]`, which buffers every envelope and made
/// decoding several times slower. `type` is always written before `data`,
/// and a reader requires that order.
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

struct DataOf<'event>(&'event Event);

impl Serialize for DataOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_data(serializer)
    }
}

impl Serialize for EventEnvelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields = serializer.serialize_struct("EventEnvelope", 9)?;
        fields.serialize_field("position", &self.position)?;
        fields.serialize_field("event_id", &self.event_id)?;
        fields.serialize_field("type", self.event.kind())?;
        // `data` is always written in the current shape, so its version is
        // the current one, whatever version the event was read at.
        fields.serialize_field("schema_version", &self.event.schema_version())?;
        fields.serialize_field("recorded_at", &self.recorded_at)?;
        fields.serialize_field("command_id", &self.command_id)?;
        fields.serialize_field("command_fingerprint", &self.command_fingerprint)?;
        fields.serialize_field("actor", &self.actor)?;
        fields.serialize_field("data", &DataOf(&self.event))?;
        fields.end()
    }
}

/// Reads `data` as the payload of the `type` and `schema_version` read
/// before it (an older version is upcast).
struct DataSeed<'kind>(&'kind str, u32);

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Event;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Event, D::Error> {
        Event::deserialize_data_version(self.0, self.1, deserializer)
    }
}

struct EnvelopeVisitor;

/// Room for a whole envelope up front: records of the mixed load average
/// ~770 bytes with their header (7.7 GB for ten million).
const ENCODED_BYTES_TYPICAL: usize = 1024;

const FIELDS: &[&str] = &[
    "position",
    "event_id",
    "type",
    "schema_version",
    "recorded_at",
    "command_id",
    "command_fingerprint",
    "actor",
    "data",
];

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = EventEnvelope;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an event envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventEnvelope, A::Error> {
        let mut position = None;
        let mut event_id = None;
        let mut kind: Option<String> = None;
        let mut schema_version = None;
        let mut recorded_at = None;
        let mut command_id = None;
        let mut command_fingerprint = None;
        let mut actor = None;
        let mut event = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "position" => position = Some(map.next_value()?),
                "event_id" => event_id = Some(map.next_value()?),
                "type" => kind = Some(map.next_value()?),
                "schema_version" => schema_version = Some(map.next_value()?),
                "recorded_at" => recorded_at = Some(map.next_value()?),
                "command_id" => command_id = Some(map.next_value()?),
                "command_fingerprint" => command_fingerprint = Some(map.next_value()?),
                "actor" => actor = Some(map.next_value()?),
                "data" => {
                    let (Some(kind), Some(version)) = (kind.as_deref(), schema_version) else {
                        return Err(de::Error::custom(
                            "\"type\" and \"schema_version\" must come before \"data\"",
                        ));
                    };
                    event = Some(map.next_value_seed(DataSeed(kind, version))?);
                }
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        Ok(EventEnvelope {
            position: position.ok_or_else(|| de::Error::missing_field("position"))?,
            event_id: event_id.ok_or_else(|| de::Error::missing_field("event_id"))?,
            schema_version: schema_version
                .ok_or_else(|| de::Error::missing_field("schema_version"))?,
            recorded_at: recorded_at.ok_or_else(|| de::Error::missing_field("recorded_at"))?,
            command_id: command_id.ok_or_else(|| de::Error::missing_field("command_id"))?,
            command_fingerprint: command_fingerprint
                .ok_or_else(|| de::Error::missing_field("command_fingerprint"))?,
            actor: actor.ok_or_else(|| de::Error::missing_field("actor"))?,
            event: event.ok_or_else(|| de::Error::missing_field("data"))?,
        })
    }
}

impl<'de> Deserialize<'de> for EventEnvelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EventEnvelope, D::Error> {
        deserializer.deserialize_struct("EventEnvelope", FIELDS, EnvelopeVisitor)
    }
}

impl EventEnvelope {
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        // Grown from empty, each payload was reallocated several times on
        // the writer thread.
        let mut bytes = Vec::with_capacity(ENCODED_BYTES_TYPICAL);
        serde_json::to_writer(&mut bytes, self)?;
        Ok(bytes)
    }

    /// The payload is checked to be UTF-8 once, whole, before parsing:
    /// parsing bytes instead re-validates every string one by one, which
    /// cost a replay more than the check of the whole record.
    pub fn decode(bytes: &[u8]) -> Result<EventEnvelope, serde_json::Error> {
        let text = std::str::from_utf8(bytes).map_err(|error| {
            <serde_json::Error as de::Error>::custom(format!("the payload is not UTF-8: {error}"))
        })?;
        serde_json::from_str(text)
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
        let keys: Vec<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 9);
        // Data before type cannot be read without buffering: refused clearly.
        let swapped = br#"{"data":{},"type":"api_key_revoked"}"#;
        let refused = EventEnvelope::decode(swapped)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(refused.contains("must come before"), "{refused}");
        let unknown = String::from_utf8(bytes.clone())
            .expect("utf-8")
            .replace("api_key_revoked", "no_such_event");
        assert!(EventEnvelope::decode(unknown.as_bytes()).is_err());
        let mut not_text = bytes.clone();
        not_text[bytes.len() / 2] = 0xff;
        let refused = EventEnvelope::decode(&not_text)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(refused.contains("not UTF-8"), "{refused}");
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let ledger = Uuid::from_u128(1);
        assert_eq!(event_id(ledger, 1), event_id(ledger, 1));
        assert_ne!(event_id(ledger, 1), event_id(ledger, 2));
        assert_ne!(event_id(ledger, 1), event_id(Uuid::from_u128(2), 1));
    }
}
