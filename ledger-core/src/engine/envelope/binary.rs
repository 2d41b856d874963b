//! The binary form of an envelope: how the log stores events. The fields
//! follow one another in a fixed order, in postcard's encoding (varint
//! integers, length-prefixed strings, raw bytes for ids and hashes), after
//! a tag byte that no JSON envelope starts with.
//!
//! Reading a record costs no text scanning, no RFC 3339 parsing and no hex
//! decoding, and a record is about a third of its JSON size, which the
//! chain hash, the page cache and the disk all see. The price: the layout
//! of every payload type is fixed by its schema version. Adding, removing
//! or reordering a field of an event, or a variant of an enum inside one,
//! is a schema version bump with an upcast of the old version, exactly as
//! a change of meaning is; JSON's tolerance of a new defaulted field does
//! not carry over.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserializer, Serialize, Serializer};

use super::{DataSeed, EnvelopeError, EventEnvelope, PayloadOf};
use crate::domain::command::Actor;

/// The first byte of a binary envelope; JSON envelopes start with `{`.
pub(super) const FORMAT_TAG: u8 = 0x01;

/// position, event_id, type, schema_version, recorded_at, command_id,
/// command_fingerprint, actor key, role, merchant, data.
const FIELD_COUNT: usize = 11;

struct Fields<'envelope>(&'envelope EventEnvelope);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let envelope = self.0;
        let mut fields = serializer.serialize_tuple(FIELD_COUNT)?;
        fields.serialize_element(&envelope.position)?;
        fields.serialize_element(&envelope.event_id)?;
        fields.serialize_element(envelope.event.kind())?;
        // Written in the current shape, so at the current version.
        fields.serialize_element(&envelope.event.schema_version())?;
        fields.serialize_element(&envelope.recorded_at)?;
        fields.serialize_element(&envelope.command_id)?;
        fields.serialize_element(&envelope.command_fingerprint)?;
        // The actor field by field: its JSON form leaves out an absent
        // merchant, which a format without field names cannot do.
        fields.serialize_element(&envelope.actor.key_id)?;
        fields.serialize_element(&envelope.actor.role)?;
        fields.serialize_element(&envelope.actor.merchant_id)?;
        fields.serialize_element(&PayloadOf(&envelope.event))?;
        fields.end()
    }
}

struct FieldsVisitor;

fn next<'de, T: serde::Deserialize<'de>, A: SeqAccess<'de>>(
    fields: &mut A,
    name: &'static str,
) -> Result<T, A::Error> {
    fields
        .next_element()?
        .ok_or_else(|| de::Error::missing_field(name))
}

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = EventEnvelope;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a binary event envelope")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut fields: A) -> Result<EventEnvelope, A::Error> {
        let position = next(&mut fields, "position")?;
        let event_id = next(&mut fields, "event_id")?;
        let kind: &'de str = next(&mut fields, "type")?;
        let schema_version = next(&mut fields, "schema_version")?;
        let recorded_at = next(&mut fields, "recorded_at")?;
        let command_id = next(&mut fields, "command_id")?;
        let command_fingerprint = next(&mut fields, "command_fingerprint")?;
        let actor = Actor {
            key_id: next(&mut fields, "actor.key_id")?,
            role: next(&mut fields, "actor.role")?,
            merchant_id: next(&mut fields, "actor.merchant_id")?,
        };
        let event = fields
            .next_element_seed(DataSeed {
                kind,
                version: schema_version,
            })?
            .ok_or_else(|| de::Error::missing_field("data"))?;
        Ok(EventEnvelope {
            position,
            event_id,
            schema_version,
            recorded_at,
            command_id,
            command_fingerprint,
            actor,
            event,
        })
    }
}

/// Room for a whole envelope up front: binary envelopes of the mixed load
/// are a few hundred bytes; grown from empty, each payload was reallocated
/// several times on the writer thread.
const ENCODED_BYTES_TYPICAL: usize = 512;

/// The binary envelope, tag byte first.
pub(super) fn encode(envelope: &EventEnvelope) -> Result<Vec<u8>, EnvelopeError> {
    let mut bytes = Vec::with_capacity(ENCODED_BYTES_TYPICAL);
    encode_into(envelope, &mut bytes)?;
    Ok(bytes)
}

/// The binary envelope, tag byte first, appended to `bytes`.
pub(super) fn encode_into(
    envelope: &EventEnvelope,
    bytes: &mut Vec<u8>,
) -> Result<(), EnvelopeError> {
    bytes.push(FORMAT_TAG);
    postcard::to_extend(&Fields(envelope), Appender(bytes))?;
    Ok(())
}

/// Lends a vector to postcard, which takes its output by value.
struct Appender<'bytes>(&'bytes mut Vec<u8>);

impl Extend<u8> for Appender<'_> {
    fn extend<Bytes: IntoIterator<Item = u8>>(&mut self, bytes: Bytes) {
        self.0.extend(bytes);
    }
}

/// Reads the envelope after the tag byte; every byte must belong to it.
pub(super) fn decode(bytes: &[u8]) -> Result<EventEnvelope, EnvelopeError> {
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    let envelope = (&mut deserializer).deserialize_tuple(FIELD_COUNT, FieldsVisitor)?;
    let rest = deserializer.finalize()?;
    if !rest.is_empty() {
        return Err(EnvelopeError::TrailingBytes { count: rest.len() });
    }
    Ok(envelope)
}
