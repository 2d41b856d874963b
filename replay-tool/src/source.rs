//! The log as the auditor sees it: opened read-only (beside a running
//! server), each record's checksum and chain link verified by the store,
//! each payload decoded, and the envelope checked against its record.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use ledger_core::engine::EventEnvelope;
use ledger_core::store::{FileLog, Hash, LogError, LogMode, Position};

use crate::command_runs::CommandRuns;
use crate::error::ReplayError;

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

/// Chunks each stage may run ahead of the next (16,384 events at most; 16
/// chunks ahead instead made the stages wait on each other more often).
const CHUNKS_AHEAD: usize = 64;

type Chunk<T> = Result<T, ReplayError>;

/// The log as a pipeline of three threads, so the machine's cores share the
/// work: a reader checks each record's checksum and chain link and copies
/// the payloads out, a decoder parses them and checks the command runs, and
/// the caller re-applies.
/// Events arrive verified and decoded, in order.
#[derive(Debug)]
pub struct LogSource {
    ledger_id: uuid::Uuid,
    head: ledger_core::store::Head,
    idempotency_seconds: u64,
    chunks: Receiver<Chunk<Vec<VerifiedEvent>>>,
    current: std::vec::IntoIter<VerifiedEvent>,
}

impl LogSource {
    /// `idempotency_seconds`: the server's `--idempotency-seconds`, for
    /// the check that a command id takes effect once (`command_runs`).
    pub fn open(
        directory: &Path,
        as_of: AsOf,
        idempotency_seconds: u64,
    ) -> Result<LogSource, ReplayError> {
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
        let (raw_sender, raw_chunks) = sync_channel(CHUNKS_AHEAD);
        let (sender, chunks) = sync_channel(CHUNKS_AHEAD);
        spawn("replay-reader", move || read(&log, as_of, &raw_sender))?;
        let command_runs = CommandRuns::new(idempotency_seconds);
        spawn("replay-decoder", move || {
            decode(&raw_chunks, as_of, command_runs, &sender)
        })?;
        Ok(LogSource {
            ledger_id,
            head,
            idempotency_seconds,
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

    /// The window within which a command id must not take effect twice.
    pub fn idempotency_seconds(&self) -> u64 {
        self.idempotency_seconds
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

fn spawn(name: &str, stage: impl FnOnce() + Send + 'static) -> Result<(), ReplayError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(stage)
        .map(drop)
        .map_err(|error| ReplayError::Output(format!("cannot start the {name} thread: {error}")))
}

/// Records whose checksum and chain link the store verified, payloads
/// copied into one buffer. Small enough to stay a medium-sized allocation
/// the allocator reuses: chunks of 4,096 events were large ones, handed
/// back to the kernel and faulted in afresh, page by zeroed page.
#[derive(Debug, Default)]
struct RawChunk {
    payloads: Vec<u8>,
    records: Vec<RawRecord>,
}

#[derive(Debug)]
struct RawRecord {
    position: Position,
    previous_hash: Hash,
    hash: Hash,
    payload_end: usize,
}

/// Events per chunk handed from one stage to the next. Each hand-over to a
/// stage waiting on a full or empty channel wakes a thread, which on this
/// virtualised machine costs microseconds: with chunks of 64 events the
/// verifying thread spent 4% of its time in `recv`; with 256 `verify` is
/// 4–6% faster, its system time a third lower.
const CHUNK_RECORDS: usize = 256;

/// Reads and verifies the log in one pass up to `as_of`'s position, until
/// the end, an error, or the decoder hanging up.
fn read(log: &FileLog, as_of: AsOf, chunks: &SyncSender<Chunk<RawChunk>>) {
    let limit = match as_of {
        AsOf::Position(last) => usize::try_from(last).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    let mut chunk = RawChunk::default();
    let mut decoder_gone = false;
    let mut last_read: Position = 0;
    let scanned = log.scan_blocking(0, limit, |record| {
        chunk.payloads.extend_from_slice(record.payload);
        chunk.records.push(RawRecord {
            position: record.position,
            previous_hash: record.previous_hash,
            hash: record.hash,
            payload_end: chunk.payloads.len(),
        });
        last_read = record.position;
        if chunk.records.len() == CHUNK_RECORDS && chunks.send(Ok(take(&mut chunk))).is_err() {
            decoder_gone = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if decoder_gone || (!chunk.records.is_empty() && chunks.send(Ok(chunk)).is_err()) {
        return;
    }
    if let Err(source) = scanned {
        let _ = chunks.send(Err(ReplayError::Corrupt {
            position: last_read + 1,
            source,
        }));
    }
}

fn take(chunk: &mut RawChunk) -> RawChunk {
    std::mem::replace(
        chunk,
        RawChunk {
            payloads: Vec::with_capacity(chunk.payloads.capacity()),
            records: Vec::with_capacity(CHUNK_RECORDS),
        },
    )
}

/// Decodes chunks in order, checking the command runs, until the end, the
/// first event past `as_of`'s time, an error, or the verifier hanging up.
fn decode(
    raw_chunks: &Receiver<Chunk<RawChunk>>,
    as_of: AsOf,
    mut command_runs: CommandRuns,
    chunks: &SyncSender<Chunk<Vec<VerifiedEvent>>>,
) {
    for raw in raw_chunks {
        let raw = match raw {
            Ok(raw) => raw,
            Err(error) => {
                let _ = chunks.send(Err(error));
                return;
            }
        };
        let (events, stop) = decode_chunk(&raw, as_of, &mut command_runs);
        // The events before a failure go first: the verifier may find an
        // earlier one, and the first failure in the log is the one named.
        if chunks.send(Ok(events)).is_err() {
            return;
        }
        match stop {
            None => {}
            Some(Stop::AsOf) => return,
            Some(Stop::Failed(error)) => {
                let _ = chunks.send(Err(error));
                return;
            }
        }
    }
}

/// Why decoding stopped before the end of a chunk.
enum Stop {
    /// The next event was recorded after `as_of`'s time.
    AsOf,
    Failed(ReplayError),
}

/// The chunk's events, up to where it stopped, if it did.
fn decode_chunk(
    raw: &RawChunk,
    as_of: AsOf,
    command_runs: &mut CommandRuns,
) -> (Vec<VerifiedEvent>, Option<Stop>) {
    let mut events = Vec::with_capacity(raw.records.len());
    let mut payload_start = 0;
    for record in &raw.records {
        let payload = &raw.payloads[payload_start..record.payload_end];
        payload_start = record.payload_end;
        let envelope = match decode_envelope(record.position, payload) {
            Ok(envelope) => envelope,
            Err(error) => return (events, Some(Stop::Failed(error))),
        };
        if let AsOf::Time(until) = as_of
            && envelope.recorded_at > until
        {
            return (events, Some(Stop::AsOf));
        }
        if let Err(error) = command_runs.check(&envelope) {
            return (events, Some(Stop::Failed(error)));
        }
        events.push(VerifiedEvent {
            envelope,
            previous_hash: record.previous_hash,
            hash: record.hash,
        });
    }
    (events, None)
}

/// One record's envelope, which must claim the record's own position.
fn decode_envelope(position: Position, payload: &[u8]) -> Chunk<EventEnvelope> {
    let envelope = EventEnvelope::decode(payload).map_err(|error| ReplayError::Undecodable {
        position,
        detail: error.to_string(),
    })?;
    if envelope.position != position {
        return Err(ReplayError::Misplaced {
            position,
            claimed: envelope.position,
        });
    }
    Ok(envelope)
}
