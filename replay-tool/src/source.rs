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

/// Decoded chunks the reader may run ahead of the verifier.
const CHUNKS_AHEAD: usize = 4;

/// The log, read and decoded on a thread of its own so decoding overlaps
/// with re-applying: each chunk arrives verified and decoded, in order.
#[derive(Debug)]
pub struct LogSource {
    ledger_id: uuid::Uuid,
    head: ledger_core::store::Head,
    chunks: std::sync::mpsc::Receiver<Result<Vec<VerifiedEvent>, ReplayError>>,
    current: std::vec::IntoIter<VerifiedEvent>,
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
        let ledger_id = ledger_core::store::EventLog::ledger_id(&log);
        let head = ledger_core::store::EventLog::head(&log);
        let (sender, chunks) = std::sync::mpsc::sync_channel(CHUNKS_AHEAD);
        std::thread::Builder::new()
            .name("replay-reader".to_owned())
            .spawn(move || read_ahead(&log, as_of, &sender))
            .map_err(|error| {
                ReplayError::Output(format!("cannot start the reader thread: {error}"))
            })?;
        Ok(LogSource {
            ledger_id,
            head,
            chunks,
            current: Vec::new().into_iter(),
        })
    }

    pub fn ledger_id(&self) -> uuid::Uuid {
        self.ledger_id
    }

    /// The head when the log was opened: what a full replay reaches.
    pub fn head(&self) -> ledger_core::store::Head {
        self.head
    }

    /// The next event, `None` at the end (or past `as_of`).
    pub fn next_event(&mut self) -> Result<Option<VerifiedEvent>, ReplayError> {
        loop {
            if let Some(event) = self.current.next() {
                return Ok(Some(event));
            }
            match self.chunks.recv() {
                Ok(Ok(chunk)) => self.current = chunk.into_iter(),
                Ok(Err(error)) => return Err(error),
                // The reader finished (or stopped after sending its error).
                Err(_) => return Ok(None),
            }
        }
    }
}

/// Reads, verifies and decodes chunks until the end, `as_of`, an error, or
/// the verifier hanging up.
fn read_ahead(
    log: &FileLog,
    as_of: AsOf,
    chunks: &std::sync::mpsc::SyncSender<Result<Vec<VerifiedEvent>, ReplayError>>,
) {
    let mut after: Position = 0;
    loop {
        let limit = match as_of {
            AsOf::Position(last) => usize::try_from(last.saturating_sub(after))
                .unwrap_or(usize::MAX)
                .min(READ_CHUNK_RECORDS),
            _ => READ_CHUNK_RECORDS,
        };
        if limit == 0 {
            return;
        }
        let decoded = log
            .read_blocking(after, limit)
            .map_err(|source| ReplayError::Corrupt {
                position: after + 1,
                source,
            })
            .and_then(|records| decode_chunk(records, as_of));
        let (chunk, finished) = match decoded {
            Ok(decoded) => decoded,
            Err(error) => {
                let _ = chunks.send(Err(error));
                return;
            }
        };
        let Some(last) = chunk.last() else {
            return;
        };
        after = last.envelope.position;
        if chunks.send(Ok(chunk)).is_err() || finished {
            return;
        }
    }
}

/// The chunk's events up to `as_of`, and whether `as_of` ended it.
fn decode_chunk(
    records: Vec<ledger_core::store::Record>,
    as_of: AsOf,
) -> Result<(Vec<VerifiedEvent>, bool), ReplayError> {
    let mut events = Vec::with_capacity(records.len());
    for record in records {
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
        if let AsOf::Time(until) = as_of
            && envelope.recorded_at > until
        {
            return Ok((events, true));
        }
        events.push(VerifiedEvent {
            envelope,
            previous_hash: record.previous_hash,
            hash: record.hash,
        });
    }
    Ok((events, false))
}
