//! The expiry scheduler: runs expiry as an ordinary command at a fixed
//! interval, as the system, with `as_of` = now. A run that stops at its bound
//! (`more_pending`) is followed at once by another. Admins can also run
//! expiry themselves for any past `as_of`.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{Clock, CommandRequest, Engine, Outcome};
use crate::domain::command::{Actor, Command, Role};
use crate::domain::event::Event;
use crate::domain::ids::KeyId;

/// The actor every scheduled run is recorded under.
pub fn scheduler_actor() -> Actor {
    Actor {
        key_id: KeyId::parse("system:expiry-scheduler")
            .unwrap_or_else(|error| unreachable!("a constant id is valid: {error}")),
        role: Role::Admin,
        merchant_id: None,
    }
}

/// Most back-to-back runs while the ledger reports more pending, before
/// waiting for the next interval (a bound, not a tuning knob).
const FOLLOW_UP_RUNS_MAX: usize = 1_000;

/// Runs expiry every `interval` until the engine stops. Spawn it on the
/// runtime; abort the task to stop it early.
pub async fn run_expiry_schedule(engine: Engine, clock: Arc<dyn Clock>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for _ in 0..FOLLOW_UP_RUNS_MAX {
            let request = CommandRequest {
                command_id: Uuid::new_v4(),
                command: Command::RunExpiry { as_of: clock.now() },
                actor: scheduler_actor(),
            };
            match engine.submit(request).await {
                Ok(Outcome::Accepted { events, .. }) => {
                    let more_pending = events.iter().any(|envelope| {
                        matches!(&envelope.event, Event::ExpiryRunCompleted(completed) if completed.more_pending)
                    });
                    if !more_pending {
                        break;
                    }
                }
                Ok(Outcome::Rejected(rejection)) => {
                    tracing::warn!(%rejection, "a scheduled expiry run was refused");
                    break;
                }
                Err(unavailable) => {
                    tracing::info!(%unavailable, "the expiry scheduler stops with the engine");
                    return;
                }
            }
        }
    }
}
