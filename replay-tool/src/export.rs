//! `export`: the events as JSON Lines (each the stored envelope with its
//! chain hashes) or CSV (one row per event, the data as JSON), filtered by
//! account, merchant, type and time range.

use std::io::Write;

use ledger_core::domain::Timestamp;
use ledger_core::domain::ids::{AccountId, MerchantId};
use serde::Serialize;

use crate::error::ReplayError;
use crate::source::VerifiedEvent;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub account: Option<AccountId>,
    pub merchant: Option<MerchantId>,
    pub types: Vec<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl Filter {
    pub fn admits(&self, verified: &VerifiedEvent) -> bool {
        let envelope = &verified.envelope;
        let event = &envelope.event;
        if !self.types.is_empty() && !self.types.iter().any(|kind| kind == event.kind()) {
            return false;
        }
        if self.from.is_some_and(|from| envelope.recorded_at < from)
            || self.to.is_some_and(|to| envelope.recorded_at >= to)
        {
            return false;
        }
        if let Some(account) = &self.account
            && !event.accounts().any(|touched| touched == account)
        {
            return false;
        }
        if let Some(merchant) = &self.merchant
            && event.merchant() != Some(merchant)
        {
            return false;
        }
        true
    }
}

/// The envelope as stored, with the chain hashes beside it.
pub fn envelope_json(verified: &VerifiedEvent) -> Result<serde_json::Value, ReplayError> {
    let mut value = serde_json::to_value(&verified.envelope)
        .map_err(|error| ReplayError::Output(error.to_string()))?;
    if let serde_json::Value::Object(fields) = &mut value {
        fields.insert(
            "prev_hash".to_owned(),
            hex::encode(verified.previous_hash).into(),
        );
        fields.insert("hash".to_owned(), hex::encode(verified.hash).into());
    }
    Ok(value)
}

#[derive(Debug, Serialize)]
struct EventRow {
    position: u64,
    event_id: String,
    r#type: &'static str,
    recorded_at: String,
    command_id: String,
    actor_key_id: String,
    hash: String,
    data: String,
}

pub enum Exporter<W: Write> {
    JsonLines(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> std::fmt::Debug for Exporter<W> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Exporter::JsonLines(_) => "Exporter::JsonLines",
            Exporter::Csv(_) => "Exporter::Csv",
        })
    }
}

impl<W: Write> Exporter<W> {
    pub fn write(&mut self, verified: &VerifiedEvent) -> Result<(), ReplayError> {
        let output = |error: &dyn std::fmt::Display| ReplayError::Output(error.to_string());
        match self {
            Exporter::JsonLines(writer) => {
                let line = envelope_json(verified)?;
                writeln!(writer, "{line}").map_err(|error| output(&error))
            }
            Exporter::Csv(writer) => {
                let envelope = &verified.envelope;
                let mut data = Vec::new();
                let mut serializer = serde_json::Serializer::new(&mut data);
                envelope
                    .event
                    .serialize_data(&mut serializer)
                    .map_err(|error| output(&error))?;
                writer
                    .serialize(EventRow {
                        position: envelope.position,
                        event_id: envelope.event_id.to_string(),
                        r#type: envelope.event.kind(),
                        recorded_at: envelope.recorded_at.to_string(),
                        command_id: envelope.command_id.to_string(),
                        actor_key_id: envelope.actor.key_id.as_str().to_owned(),
                        hash: hex::encode(verified.hash),
                        data: String::from_utf8_lossy(&data).into_owned(),
                    })
                    .map_err(|error| output(&error))
            }
        }
    }

    pub fn finish(self) -> Result<(), ReplayError> {
        let result = match self {
            Exporter::JsonLines(mut writer) => writer.flush(),
            Exporter::Csv(mut writer) => writer.flush(),
        };
        result.map_err(|error| ReplayError::Output(error.to_string()))
    }
}
