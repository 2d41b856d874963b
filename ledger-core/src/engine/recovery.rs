//! Start-up: the newest snapshot that matches the log, then every record
//! after it, applied with the same `apply` the writer uses. A snapshot is
//! trusted only if the log holds the same hash at its position; anything
//! else about it (torn, foreign, from a rewritten history, undecodable) is
//! a warning and a longer replay, never an error.

use tokio::runtime::Runtime;
use uuid::Uuid;

use super::{EngineConfig, EngineError, EventEnvelope, StoredOutcome, WriterSnapshot};
use crate::domain::idempotency::{Fingerprint, IdempotencyIndex};
use crate::domain::{State, Timestamp, try_apply};
use crate::store::snapshot::SnapshotStore;
use crate::store::storage::Storage;
use crate::store::{EventLog, Position};

/// Records read per step of the replay.
const REPLAY_CHUNK_RECORDS: usize = 65_536;

pub(super) struct Recovered {
    pub state: State,
    pub idempotency: IdempotencyIndex<StoredOutcome>,
    pub last_now: Timestamp,
    pub events_replayed: u64,
}

/// The command whose events the replay is in the middle of.
struct CommandSpan {
    command_id: Uuid,
    fingerprint: Fingerprint,
    recorded_at: Timestamp,
    first: Position,
    last: Position,
}

pub(super) fn recover<L: EventLog, S: Storage>(
    log: &L,
    snapshots: Option<&SnapshotStore<S>>,
    config: &EngineConfig,
    runtime: &Runtime,
) -> Result<Recovered, EngineError> {
    let snapshot = match snapshots {
        Some(store) => runtime.block_on(store.newest_usable::<WriterSnapshot, _>(
            super::WRITER_SNAPSHOT,
            log,
            |_, snapshot: &WriterSnapshot| snapshot.state.check_merchant_numbers(),
        ))?,
        None => None,
    };
    let (mut after, mut recovered) = match snapshot {
        Some((position, writer_state)) => {
            tracing::info!(position, "starting from a snapshot");
            (
                position,
                Recovered {
                    state: writer_state.state,
                    idempotency: writer_state.idempotency,
                    last_now: writer_state.last_now,
                    events_replayed: 0,
                },
            )
        }
        None => (
            0,
            Recovered {
                state: State::default(),
                idempotency: IdempotencyIndex::new(config.idempotency_retention_seconds),
                last_now: Timestamp(i64::MIN),
                events_replayed: 0,
            },
        ),
    };
    let mut span: Option<CommandSpan> = None;
    let flush = |span: Option<CommandSpan>, index: &mut IdempotencyIndex<StoredOutcome>| {
        if let Some(span) = span {
            index.forget_expired(span.recorded_at);
            index.record(
                span.command_id,
                span.fingerprint,
                span.recorded_at,
                StoredOutcome::Accepted {
                    first: span.first,
                    last: span.last,
                },
            );
        }
    };
    loop {
        let records = runtime.block_on(log.read(after, REPLAY_CHUNK_RECORDS))?;
        if records.is_empty() {
            break;
        }
        for record in records {
            let corrupt = |detail: String| EngineError::Corrupt {
                position: record.position,
                detail,
            };
            let envelope = EventEnvelope::decode(&record.payload)
                .map_err(|error| corrupt(format!("the envelope does not decode: {error}")))?;
            if envelope.position != record.position {
                return Err(corrupt(format!(
                    "the envelope says position {}",
                    envelope.position
                )));
            }
            try_apply(&mut recovered.state, &envelope.event)
                .map_err(|error| corrupt(error.to_string()))?;
            recovered.last_now = recovered.last_now.max(envelope.recorded_at);
            match &mut span {
                Some(current) if current.command_id == envelope.command_id => {
                    current.last = record.position
                }
                _ => {
                    flush(span.take(), &mut recovered.idempotency);
                    span = Some(CommandSpan {
                        command_id: envelope.command_id,
                        fingerprint: envelope.command_fingerprint,
                        recorded_at: envelope.recorded_at,
                        first: record.position,
                        last: record.position,
                    });
                }
            }
            after = record.position;
            recovered.events_replayed += 1;
        }
    }
    flush(span, &mut recovered.idempotency);
    tracing::info!(
        events = recovered.events_replayed,
        head = after,
        "recovered the ledger state"
    );
    Ok(recovered)
}
