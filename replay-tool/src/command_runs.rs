//! Invariant 7, first half, as the log shows it: the events of one command
//! are one run of positions under its id and fingerprint, and an id whose
//! run began within the retention window before never begins another (the
//! engine answers such a retry from its index, without events). Checked
//! as the envelopes are decoded, off the verifying thread: it needs the
//! envelopes in order, not the state.

use ledger_core::domain::idempotency::{Fingerprint, IdempotencyIndex};
use ledger_core::engine::EventEnvelope;
use ledger_core::store::Position;
use uuid::Uuid;

use crate::error::ReplayError;

#[derive(Debug)]
pub struct CommandRuns {
    /// Each command id of the window with the position its run began at,
    /// remembered as the writer remembers it, in the writer's own index.
    began: IdempotencyIndex<Position>,
    current: Option<Run>,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    command_id: Uuid,
    fingerprint: Fingerprint,
    began: Position,
}

impl CommandRuns {
    /// `idempotency_seconds`: the server's `--idempotency-seconds`.
    pub fn new(idempotency_seconds: u64) -> CommandRuns {
        CommandRuns {
            began: IdempotencyIndex::new(idempotency_seconds),
            current: None,
        }
    }

    /// The next envelope of the log, in order.
    pub fn check(&mut self, envelope: &EventEnvelope) -> Result<(), ReplayError> {
        let command_id = envelope.command_id;
        let fingerprint = envelope.command_fingerprint;
        let repeated = |first_position| ReplayError::CommandRepeated {
            position: envelope.position,
            event_kind: envelope.event.kind(),
            command_id,
            first_position,
        };
        if let Some(run) = self.current
            && run.command_id == command_id
        {
            // The same id again straight after its own run is the same
            // command only if it is the same command.
            return if run.fingerprint == fingerprint {
                Ok(())
            } else {
                Err(repeated(run.began))
            };
        }
        self.began.forget_expired(envelope.recorded_at);
        if let Some(&first_position) = self.began.first_outcome(command_id) {
            return Err(repeated(first_position));
        }
        self.began.record(
            command_id,
            fingerprint,
            envelope.recorded_at,
            envelope.position,
        );
        self.current = Some(Run {
            command_id,
            fingerprint,
            began: envelope.position,
        });
        Ok(())
    }
}
