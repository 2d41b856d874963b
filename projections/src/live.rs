//! Keeping the read models current: a task follows the log's head, applies
//! each new record, and publishes the position it reached, so queries can
//! wait (boundedly) for a `min_position` — read-your-writes.

use std::sync::Arc;
use std::time::Duration;

use ledger_core::engine::EventEnvelope;
use ledger_core::store::{EventLog, LogError, Position};
use tokio::sync::{RwLock, RwLockReadGuard, oneshot, watch};

use crate::reconcile::{Difference, WriterSummary, reconcile};
use crate::{OutOfOrder, Projections};

/// A reconciliation waiting for the read models to reach the position of
/// the writer summary it carries.
type PendingReconciliation = (WriterSummary, oneshot::Sender<Vec<Difference>>);

#[derive(Debug)]
pub struct LiveProjections {
    projections: RwLock<Projections>,
    position: watch::Sender<Position>,
    pending_reconciliation: std::sync::Mutex<Option<PendingReconciliation>>,
    /// One snapshot at a time: a periodic one and the one at shutdown must
    /// not write the same file at once.
    pub(crate) snapshotting: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the read models reached position {reached}, not {wanted}, in time")]
pub struct NotCaughtUp {
    pub wanted: Position,
    pub reached: Position,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the record at position {position} is not a valid envelope: {detail}")]
    Undecodable { position: Position, detail: String },
    #[error(transparent)]
    OutOfOrder(#[from] OutOfOrder),
}

impl LiveProjections {
    pub fn new(projections: Projections) -> Arc<LiveProjections> {
        let position = projections.position();
        Arc::new(LiveProjections {
            projections: RwLock::new(projections),
            position: watch::Sender::new(position),
            pending_reconciliation: std::sync::Mutex::new(None),
            snapshotting: tokio::sync::Mutex::new(()),
        })
    }

    pub fn position(&self) -> Position {
        *self.position.borrow()
    }

    pub(crate) fn watch_position(&self) -> watch::Receiver<Position> {
        self.position.subscribe()
    }

    pub async fn read(&self) -> RwLockReadGuard<'_, Projections> {
        self.projections.read().await
    }

    /// Arranges for the read models to be reconciled with `summary` exactly
    /// when they are at its position — the only moment the two can be
    /// compared while commands keep arriving. Call it where the summary is
    /// taken (on the writer's thread, between batches), so the read models
    /// cannot yet be past it. The differences arrive on `result`.
    pub fn reconcile_when_at(
        &self,
        summary: WriterSummary,
        result: oneshot::Sender<Vec<Difference>>,
    ) {
        let mut pending = self
            .pending_reconciliation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *pending = Some((summary, result));
    }

    /// Runs the pending reconciliation if `projections` are at its position.
    fn reconcile_if_due(&self, projections: &Projections) {
        let mut pending = self
            .pending_reconciliation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = pending
            .as_ref()
            .is_some_and(|(summary, _)| summary.position == projections.position());
        if due && let Some((summary, result)) = pending.take() {
            let _ = result.send(reconcile(&summary, projections));
        }
    }

    /// For a reconciliation registered while the read models were already
    /// at its position (no later event would trigger it).
    pub async fn reconcile_now_if_due(&self) {
        let projections = self.projections.read().await;
        self.reconcile_if_due(&projections);
    }

    /// Waits until the read models have applied `wanted`, or `timeout`.
    pub async fn wait_for(&self, wanted: Position, timeout: Duration) -> Result<(), NotCaughtUp> {
        let mut position = self.position.subscribe();
        let reached =
            tokio::time::timeout(timeout, position.wait_for(|reached| *reached >= wanted)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(NotCaughtUp {
                wanted,
                reached: self.position(),
            }),
        }
    }

    /// Applies every record after the current position up to the log's
    /// head; returns the position reached.
    pub async fn catch_up<L: EventLog>(&self, log: &L) -> Result<Position, FollowError> {
        loop {
            let after = self.position();
            let records = log.read(after, crate::FOLD_CHUNK_ENVELOPES).await?;
            if records.is_empty() {
                return Ok(after);
            }
            let mut envelopes = Vec::with_capacity(records.len());
            for record in &records {
                let envelope = EventEnvelope::decode(&record.payload).map_err(|error| {
                    FollowError::Undecodable {
                        position: record.position,
                        detail: error.to_string(),
                    }
                })?;
                envelopes.push(envelope);
            }
            let reached = {
                let mut projections = self.projections.write().await;
                self.apply_reconciling(&mut projections, &envelopes)?;
                projections.position()
            };
            self.position.send_replace(reached);
        }
    }

    /// Applies a chunk read from the log, or a committed batch, in one
    /// batch fold (two threads for a long one), stopping at a pending
    /// reconciliation's position to run it there. A reconciliation
    /// registered during the fold is at the writer's head, not before the
    /// chunk's end, so checking before each fold is enough.
    fn apply_reconciling<E: std::borrow::Borrow<EventEnvelope> + Sync>(
        &self,
        projections: &mut Projections,
        envelopes: &[E],
    ) -> Result<(), OutOfOrder> {
        self.reconcile_if_due(projections);
        let due_at = self
            .pending_reconciliation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .map(|(summary, _)| summary.position);
        let split = due_at.map_or(0, |at| {
            envelopes.partition_point(|envelope| envelope.borrow().position <= at)
        });
        if split > 0 && split < envelopes.len() {
            projections.apply_all(&envelopes[..split])?;
            self.reconcile_if_due(projections);
            projections.apply_all(&envelopes[split..])?;
        } else {
            projections.apply_all(envelopes)?;
        }
        self.reconcile_if_due(projections);
        Ok(())
    }

    /// Follows the engine's committed batches in process (no re-reading or
    /// decoding), catching up from the log whenever a batch does not follow
    /// on from what was applied (a lag or a gap). Returns when the engine
    /// stops.
    pub async fn follow_engine<L: EventLog>(
        self: Arc<Self>,
        mut committed: tokio::sync::broadcast::Receiver<ledger_core::engine::CommittedBatch>,
        log: Arc<L>,
    ) -> Result<(), FollowError> {
        use tokio::sync::broadcast::error::RecvError;
        self.catch_up(log.as_ref()).await?;
        loop {
            match committed.recv().await {
                Ok(batch) => {
                    let first = batch.first().map_or(0, |envelope| envelope.position);
                    if first > self.position() + 1 {
                        self.catch_up(log.as_ref()).await?;
                    }
                    let envelopes: Vec<&EventEnvelope> = batch.iter().collect();
                    let reached = {
                        let mut projections = self.projections.write().await;
                        self.apply_reconciling(&mut projections, &envelopes)?;
                        projections.position()
                    };
                    self.position.send_replace(reached);
                }
                Err(RecvError::Lagged(_)) => {
                    self.catch_up(log.as_ref()).await?;
                }
                Err(RecvError::Closed) => return Ok(()),
            }
        }
    }

    /// Follows the log until it fails or the log's head channel closes.
    pub async fn follow<L: EventLog>(self: Arc<Self>, log: Arc<L>) -> Result<(), FollowError> {
        let mut head = log.subscribe();
        loop {
            self.catch_up(log.as_ref()).await?;
            if head.changed().await.is_err() {
                return Ok(());
            }
        }
    }
}
