//! Periodic reconciliation: the writer's state and the read models, built
//! by different code from the same events, compared at the same position.
//! Any difference is a bug in one of them; it is logged and exported.

use std::sync::Arc;
use std::time::Duration;

use ledger_core::engine::Engine;
use projections::live::LiveProjections;
use projections::reconcile::WriterSummary;
use tokio::sync::oneshot;

/// How long a reconciliation waits for the read models to reach the
/// writer's position before it is counted as skipped.
const CATCH_UP_WAIT: Duration = Duration::from_secs(30);

/// Reconciles every `interval` until the engine stops.
pub async fn run_periodically(
    engine: Engine,
    projections: Arc<LiveProjections>,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        if !reconcile_once(&engine, &projections).await {
            return;
        }
    }
}

/// One reconciliation; false once the engine has stopped.
pub async fn reconcile_once(engine: &Engine, projections: &Arc<LiveProjections>) -> bool {
    let (result, differences) = oneshot::channel();
    let live = Arc::clone(projections);
    // The summary is taken and registered on the writer's thread between
    // batches, so the read models cannot have passed its position yet.
    let registered = engine
        .read_state(move |state, head| {
            live.reconcile_when_at(WriterSummary::of(state, head.position), result);
            head.position
        })
        .await;
    let Ok(position) = registered else {
        return false;
    };
    projections.reconcile_now_if_due().await;
    match tokio::time::timeout(CATCH_UP_WAIT, differences).await {
        Ok(Ok(differences)) => {
            metrics::gauge!("ledger_reconciliation_differences").set(differences.len() as f64);
            let result = if differences.is_empty() {
                "agreed"
            } else {
                "differed"
            };
            metrics::counter!("ledger_reconciliations_total", "result" => result).increment(1);
            if differences.is_empty() {
                tracing::debug!(position, "read models agree with the writer");
            } else {
                tracing::error!(
                    position,
                    count = differences.len(),
                    first = ?differences.first(),
                    "read models differ from the writer"
                );
            }
        }
        _ => {
            metrics::counter!("ledger_reconciliations_total", "result" => "skipped").increment(1);
            tracing::warn!(
                position,
                "reconciliation skipped: the read models did not reach the position in time"
            );
        }
    }
    true
}
