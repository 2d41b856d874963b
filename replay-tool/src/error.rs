//! Everything a replay can find wrong, each naming where.

use std::path::PathBuf;

use ledger_core::domain::{InvariantViolation, Timestamp};
use ledger_core::store::{LogError, Position};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no ledger in {} (expected a `log` directory with segments)", directory.display())]
    NoLedger { directory: PathBuf },
    #[error("cannot open the log: {source}")]
    Open { source: LogError },
    #[error("the log is damaged at or after position {position}: {source}")]
    Corrupt {
        position: Position,
        source: LogError,
    },
    #[error("position {position}: the payload is not a readable event: {detail}")]
    Undecodable { position: Position, detail: String },
    #[error("position {position}: the record claims to be position {claimed}")]
    Misplaced {
        position: Position,
        claimed: Position,
    },
    #[error(
        "position {position}: recorded at {recorded_at}, before the previous event ({previous})"
    )]
    TimeWentBack {
        position: Position,
        previous: Timestamp,
        recorded_at: Timestamp,
    },
    #[error(
        "position {position} ({event_kind}): the event says it happened at {occurred_at}, its record says {recorded_at}"
    )]
    TimeMismatch {
        position: Position,
        event_kind: &'static str,
        occurred_at: Timestamp,
        recorded_at: Timestamp,
    },
    #[error("position {position} ({event_kind}): the event does not fit the state: {reason}")]
    DoesNotApply {
        position: Position,
        event_kind: &'static str,
        reason: String,
    },
    #[error("position {position} ({event_kind}): {violation}")]
    Invariant {
        position: Position,
        event_kind: &'static str,
        violation: InvariantViolation,
    },
    #[error("position {position} ({event_kind}): recorded by a key not allowed to: {reason}")]
    NotAllowed {
        position: Position,
        event_kind: &'static str,
        reason: String,
    },
    #[error(
        "position {position} ({event_kind}): its soft velocity limits raise {raised}; the log records {recorded} with it"
    )]
    AlertsMismatch {
        position: Position,
        event_kind: &'static str,
        raised: String,
        recorded: String,
    },
    #[error(
        "position {position} ({event_kind}): command {command_id} takes effect again; it already did at position {first_position} (invariant 7: one command id takes effect at most once)"
    )]
    CommandRepeated {
        position: Position,
        event_kind: &'static str,
        command_id: uuid::Uuid,
        first_position: Position,
    },
    #[error(
        "the expected head does not match at position {position}: expected hash {expected}, the log has {found}"
    )]
    HeadMismatch {
        position: Position,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Output(String),
}
