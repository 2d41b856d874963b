//! The JSON form of an envelope: what the API shows, what the replay tool
//! exports, and how the log stored events before the binary form (such
//! records are still read).
//!
//! One flat object — `{"position", "event_id", "type", "schema_version",
//! "recorded_at", "command_id", "command_fingerprint", "actor", "data"}` —
//! written by hand rather than with `#[serde(flatten)]`, which buffers every
//! envelope and made decoding several times slower. `type` is always written
//! before `data`, and a reader requires that order.

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{DataSeed, EnvelopeError, EventEnvelope, PayloadOf};

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
        fields.serialize_field("data", &PayloadOf(&self.event))?;
        fields.end()
    }
}

struct EnvelopeVisitor;

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
                    event = Some(map.next_value_seed(DataSeed { kind, version })?);
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

/// The payload is checked to be UTF-8 once, whole, before parsing: parsing
/// bytes instead re-validates every string one by one, which cost a replay
/// more than the check of the whole record.
pub(super) fn decode(bytes: &[u8]) -> Result<EventEnvelope, EnvelopeError> {
    let text = std::str::from_utf8(bytes).map_err(EnvelopeError::NotUtf8)?;
    Ok(serde_json::from_str(text)?)
}
