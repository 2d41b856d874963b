//! # projections
//!
//! Read models folded from the committed event log, keyed by global
//! position: member balances, lots and history, merchant
//! settlements and the issuer → redeemer clearing matrix, supply and budget
//! views, risk alerts. Each is a pure fold over event envelopes, idempotent
//! by position and rebuildable from genesis; the server and the replay tool
//! run the same code. `reconcile` compares them with the writer's state;
//! `live` keeps them following the log; `snapshot` saves and restores them.
//!
//! Architecture invariant: the folds are written from the events alone,
//! independently of the domain's `apply`, so reconciliation between the two
//! means something.

pub mod balances;
pub mod keys;
pub mod live;
pub mod reconcile;
pub mod risk;
pub mod settlements;
pub mod snapshot;
pub mod supply;

use std::borrow::Borrow;

use ledger_core::domain::Amount;
use ledger_core::domain::ids::AccountId;
use ledger_core::engine::EventEnvelope;
use ledger_core::store::Position;

/// Every read model, at one position. Serialisable for snapshots (see
/// [`snapshot`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Projections {
    position: Position,
    pub balances: balances::Balances,
    pub settlements: settlements::Settlements,
    pub supply: supply::Supply,
    pub risk: risk::Risk,
    pub keys: keys::Keys,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the event at position {found} cannot follow position {applied}: the log must be applied in order, without gaps"
)]
pub struct OutOfOrder {
    pub applied: Position,
    pub found: Position,
}

impl Projections {
    pub fn new() -> Projections {
        Projections::default()
    }

    /// Up to `limit` positions of `account`'s events after `after`,
    /// oldest first (none for an account no event named).
    pub fn history_page(
        &self,
        account: &AccountId,
        after: Position,
        limit: usize,
    ) -> Vec<Position> {
        self.balances
            .account(account)
            .map_or_else(Vec::new, |entry| entry.history_page(after, limit))
    }

    /// The last position applied.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Applies the next envelope. An envelope at or before the current
    /// position was already applied and is ignored (`Ok(false)`): the folds
    /// are idempotent by position. A gap is an error.
    pub fn apply(&mut self, envelope: &EventEnvelope) -> Result<bool, OutOfOrder> {
        if envelope.position <= self.position {
            return Ok(false);
        }
        if envelope.position != self.position + 1 {
            return Err(OutOfOrder {
                applied: self.position,
                found: envelope.position,
            });
        }
        self.fold_run(std::slice::from_ref(envelope));
        Ok(true)
    }

    /// Applies `envelopes` in order, as [`Projections::apply`] one by one
    /// would (those already applied are skipped; at a gap the ones before
    /// it are applied and the gap is the error), and returns how many were
    /// applied. A long run is folded on two threads: the read models are
    /// independent folds, so the merchant settlements and the supply and
    /// risk views follow the run on a thread of their own while this one
    /// folds balances, history and keys.
    pub fn apply_all<E: Borrow<EventEnvelope> + Sync>(
        &mut self,
        envelopes: &[E],
    ) -> Result<usize, OutOfOrder> {
        let mut applied = 0;
        let mut rest = envelopes;
        loop {
            let stale = rest
                .iter()
                .map(Borrow::<EventEnvelope>::borrow)
                .take_while(|envelope| envelope.position <= self.position)
                .count();
            rest = &rest[stale..];
            let in_order = rest
                .iter()
                .map(Borrow::<EventEnvelope>::borrow)
                .zip(self.position + 1..)
                .take_while(|(envelope, expected)| envelope.position == *expected)
                .count();
            if in_order == 0 {
                return match rest.first() {
                    Some(gap) => Err(OutOfOrder {
                        applied: self.position,
                        found: Borrow::<EventEnvelope>::borrow(gap).position,
                    }),
                    None => Ok(applied),
                };
            }
            let (run, after) = rest.split_at(in_order);
            self.fold_run(run);
            applied += run.len();
            rest = after;
        }
    }

    /// Folds envelopes that follow on from the current position, each the
    /// next.
    fn fold_run<E: Borrow<EventEnvelope> + Sync>(&mut self, run: &[E]) {
        let Some(last) = run.last().map(Borrow::<EventEnvelope>::borrow) else {
            return;
        };
        let Projections {
            position,
            balances,
            settlements,
            supply,
            risk,
            keys,
        } = self;
        let mut folded_merchants = false;
        if run.len() >= PARALLEL_FOLD_EVENTS_MIN {
            std::thread::scope(|scope| {
                // A thread that cannot be started leaves the fold to this
                // one; it never fails the fold.
                folded_merchants = std::thread::Builder::new()
                    .name("projections-fold".to_owned())
                    .spawn_scoped(scope, || {
                        fold_merchant_models(run, settlements, supply, risk)
                    })
                    .is_ok();
                fold_account_models(run, balances, keys);
            });
        } else {
            fold_account_models(run, balances, keys);
        }
        if !folded_merchants {
            fold_merchant_models(run, settlements, supply, risk);
        }
        *position = last.position;
    }
}

fn fold_account_models<E: Borrow<EventEnvelope>>(
    run: &[E],
    balances: &mut balances::Balances,
    keys: &mut keys::Keys,
) {
    for envelope in run.iter().map(Borrow::<EventEnvelope>::borrow) {
        balances.apply(envelope.position, &envelope.event);
        keys.apply(&envelope.event);
    }
}

fn fold_merchant_models<E: Borrow<EventEnvelope>>(
    run: &[E],
    settlements: &mut settlements::Settlements,
    supply: &mut supply::Supply,
    risk: &mut risk::Risk,
) {
    for envelope in run.iter().map(Borrow::<EventEnvelope>::borrow) {
        settlements.apply(&envelope.event);
        supply.apply(&envelope.event);
        risk.apply(envelope);
    }
}

/// Envelopes folded together where a whole log is folded: the log
/// follower's chunk (records applied per lock acquisition, so queries are
/// never locked out for long while it catches up), the replay tool's, and
/// the benchmarks'.
pub const FOLD_CHUNK_ENVELOPES: usize = 4_096;

/// Below this many events a run is folded on the calling thread: starting
/// and joining a thread costs about as much as folding a few dozen events.
const PARALLEL_FOLD_EVENTS_MIN: usize = 512;

/// Saturating money sums: a read model never panics. Bounded inputs
/// (≤ 10¹² points per event, ≤ 10⁶ per point) keep real sums far below
/// the 7.9 × 10²⁸ where saturation would start.
pub(crate) fn add_money(left: Amount, right: Amount) -> Amount {
    Amount(
        left.0
            .checked_add(right.0)
            .unwrap_or(rust_decimal::Decimal::MAX),
    )
}

pub(crate) fn subtract_money(left: Amount, right: Amount) -> Amount {
    Amount(
        left.0
            .checked_sub(right.0)
            .unwrap_or(rust_decimal::Decimal::MIN),
    )
}
