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
        self.balances.apply(envelope.position, &envelope.event);
        self.settlements.apply(&envelope.event);
        self.supply.apply(&envelope.event);
        self.risk.apply(envelope);
        self.keys.apply(&envelope.event);
        self.position = envelope.position;
        Ok(true)
    }
}

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
