//! Read-model snapshots, so a restart replays only the log's tail instead
//! of folding the whole history again. Same file format and the same trust
//! rule as the writer's (`ledger_core::store::snapshot`): one is used only
//! if the log holds the same hash at its position; anything else about it
//! is a warning and a longer catch-up, never an error.

use std::sync::Arc;

use ledger_core::store::snapshot::{SnapshotError, SnapshotKind, SnapshotStore};
use ledger_core::store::storage::Storage;
use ledger_core::store::{EventLog, Head, LogError, Position};

use crate::Projections;
use crate::live::LiveProjections;

/// Read-model snapshots. Bump `layout` whenever the serialised shape of
/// [`Projections`] changes: snapshots of another layout are then skipped
/// instead of misread.
pub const READ_MODELS_SNAPSHOT: SnapshotKind = SnapshotKind {
    name: "read_models",
    // 4: account history inside each account's balance entry.
    // 5: each balance entry keeps the largest lot id it was credited.
    layout: 5,
};

/// The read models of the newest usable snapshot, or empty ones.
pub async fn load<L: EventLog, S: Storage>(
    store: &SnapshotStore<S>,
    log: &L,
) -> Result<Projections, LogError> {
    let at_its_position = |position: Position, projections: &Projections| {
        if projections.position() == position {
            Ok(())
        } else {
            Err(format!(
                "it holds read models at position {}, not {position}",
                projections.position()
            ))
        }
    };
    match store
        .newest_usable(READ_MODELS_SNAPSHOT, log, at_its_position)
        .await?
    {
        Some((position, projections)) => {
            tracing::info!(position, "starting the read models from a snapshot");
            Ok(projections)
        }
        None => Ok(Projections::new()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the log holds no record at the read models' position {0}")]
    PositionNotInLog(Position),
    #[error("the snapshot thread failed: {0}")]
    Thread(#[from] tokio::task::JoinError),
}

/// A snapshot written: where and how big.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub position: Position,
    pub bytes: usize,
}

impl LiveProjections {
    /// Snapshots the read models at the position they have reached.
    /// Queries are never blocked, and the follower only while the models
    /// are copied (under a shared lock); serialising and writing happen on
    /// a blocking thread. `None` when
    /// nothing has been applied yet.
    pub async fn write_snapshot<L: EventLog, S: Storage>(
        &self,
        store: Arc<SnapshotStore<S>>,
        log: &L,
    ) -> Result<Option<Written>, WriteError> {
        let copy = self.read().await.clone();
        let position = copy.position();
        if position == 0 {
            return Ok(None);
        }
        let record = log.read(position - 1, 1).await?;
        let Some(record) = record.first() else {
            return Err(WriteError::PositionNotInLog(position));
        };
        let head = Head {
            position,
            hash: record.hash,
        };
        let bytes =
            tokio::task::spawn_blocking(move || store.save(READ_MODELS_SNAPSHOT, head, &copy))
                .await??;
        Ok(Some(Written { position, bytes }))
    }

    /// A snapshot now, unless the newest one is already at the read models'
    /// position; the outcome is logged, since failing costs only a longer
    /// start. Returns the position of the newest snapshot afterwards.
    pub async fn snapshot_logged<L: EventLog, S: Storage>(
        &self,
        store: Arc<SnapshotStore<S>>,
        log: &L,
    ) -> Option<Position> {
        let _one_at_a_time = self.snapshotting.lock().await;
        let newest = store
            .candidates()
            .ok()
            .and_then(|candidates| candidates.first().map(|(position, _)| *position));
        if newest == Some(self.position()) {
            return newest;
        }
        match self.write_snapshot(store, log).await {
            Ok(Some(written)) => Some(written.position),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, "could not write a read-model snapshot");
                None
            }
        }
    }

    /// Writes a snapshot whenever the read models have moved `every_events`
    /// past the last one (at `last`: where they were loaded from); runs for
    /// as long as the read models exist.
    pub async fn snapshot_periodically<L: EventLog, S: Storage>(
        self: Arc<Self>,
        store: Arc<SnapshotStore<S>>,
        log: Arc<L>,
        every_events: u64,
        mut last: Position,
    ) {
        let mut position = self.watch_position();
        loop {
            let due = last.saturating_add(every_events.max(1));
            if position.wait_for(|reached| *reached >= due).await.is_err() {
                return;
            }
            last = self
                .snapshot_logged(Arc::clone(&store), log.as_ref())
                .await
                .unwrap_or_else(|| self.position());
        }
    }
}
