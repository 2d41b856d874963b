//! The log as the auditor sees it: opened read-only (beside a running
//! server), each record's checksum and chain link verified by the store,
//! each payload decoded, and the envelope checked against its record.

use std::path::Path;

use ledger_core::engine::EventEnvelope;
use ledger_core::store::{FileLog, Hash, LogError, LogMode, Position};

use crate::error::ReplayError;

const READ_CHUNK_RECORDS: usize = 4_096;

/// Where a replay stops: after a position, or before the first event
/// recorded after a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Head,
    Position(Position),
    Time(ledger_core::domain::Timestamp),
}

impl std::str::FromStr for AsOf {
    type Err = String;

    fn from_str(text: &str) -> Result<AsOf, String> {
        if let Ok(position) = text.parse::<Position>() {
            return Ok(AsOf::Position(position));
        }
        ledger_core::domain::Timestamp::parse_rfc3339(text)
            .map(AsOf::Time)
            .map_err(|_| format!("`{text}` is neither a log position nor an RFC 3339 timestamp"))
    }
}

/// One verified record: the envelope, and the chain hashes around it.
#[derive(Debug, Clone)]
pub struct VerifiedEvent {
    pub envelope: EventEnvelope,
    pub previous_hash: Hash,
    pub hash: Hash,
}

#[derive(Debug)]
pub struct LogSource {
    log: FileLog,
    after: Position,
    pending: std::vec::IntoIter<ledger_core::store::Record>,
    as_of: AsOf,
    done: bool,
}

impl LogSource {
    pub fn open(directory: &Path, as_of: AsOf) -> Result<LogSource, ReplayError> {
        let log =
            FileLog::open(directory.join("log"), LogMode::ReadOnly).map_err(
                |source| match source {
                    LogError::NotFound { .. } => ReplayError::NoLedger {
                        directory: directory.to_owned(),
                    },
                    source => ReplayError::Open { source },
                },
            )?;
        Ok(LogSource {
            log,
            after: 0,
            pending: Vec::new().into_iter(),
            as_of,
            done: false,
        })
    }

    pub fn ledger_id(&self) -> uuid::Uuid {
        ledger_core::store::EventLog::ledger_id(&self.log)
    }

    /// The head when the log was opened: what a full replay reaches.
    pub fn head(&self) -> ledger_core::store::Head {
        ledger_core::store::EventLog::head(&self.log)
    }

    /// The next event, `None` at the end (or past `as_of`).
    pub fn next_event(&mut self) -> Result<Option<VerifiedEvent>, ReplayError> {
        if self.done {
            return Ok(None);
        }
        let record = match self.pending.next() {
            Some(record) => record,
            None => {
                let limit = match self.as_of {
                    AsOf::Position(last) => usize::try_from(last.saturating_sub(self.after))
                        .unwrap_or(usize::MAX)
                        .min(READ_CHUNK_RECORDS),
                    _ => READ_CHUNK_RECORDS,
                };
                if limit == 0 {
                    self.done = true;
                    return Ok(None);
                }
                let records = self
                    .log
                    .read_blocking(self.after, limit)
                    .map_err(|source| ReplayError::Corrupt {
                        position: self.after + 1,
                        source,
                    })?;
                let mut records = records.into_iter();
                match records.next() {
                    Some(record) => {
                        self.pending = records;
                        record
                    }
                    None => {
                        self.done = true;
                        return Ok(None);
                    }
                }
            }
        };
        let envelope =
            EventEnvelope::decode(&record.payload).map_err(|error| ReplayError::Undecodable {
                position: record.position,
                detail: error.to_string(),
            })?;
        if envelope.position != record.position {
            return Err(ReplayError::Misplaced {
                position: record.position,
                claimed: envelope.position,
            });
        }
        if let AsOf::Time(until) = self.as_of
            && envelope.recorded_at > until
        {
            self.done = true;
            return Ok(None);
        }
        self.after = record.position;
        Ok(Some(VerifiedEvent {
            envelope,
            previous_hash: record.previous_hash,
            hash: record.hash,
        }))
    }
}
