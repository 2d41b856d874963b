//! Reconciliation: the writer's decision state and the read models were
//! built by different code from the same events; at the same position they
//! must agree on every balance, hold, lot and supply total. Every
//! difference is listed.

use std::collections::BTreeMap;

use ledger_core::domain::ids::{AccountId, LotId};
use ledger_core::domain::{Points, State};
use ledger_core::store::Position;
use serde::Serialize;

use crate::Projections;

/// What reconciliation needs of the writer's state, taken on the writer's
/// thread at a known position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterSummary {
    pub position: Position,
    /// account → (balance, held, lot id → remaining)
    pub accounts: BTreeMap<AccountId, (Points, Points, BTreeMap<LotId, Points>)>,
    /// (issued, redeemed, expired, reversed)
    pub supply: (Points, Points, Points, Points),
}

impl WriterSummary {
    pub fn of(state: &State, position: Position) -> WriterSummary {
        let accounts = state
            .accounts
            .iter()
            .filter(|(_, account)| account.balance > 0 || account.held > 0)
            .map(|(id, account)| {
                let lots = account
                    .lots
                    .iter()
                    .map(|lot| (lot.lot_id, lot.remaining))
                    .collect();
                (id.clone(), (account.balance, account.held, lots))
            })
            .collect();
        let supply = &state.supply;
        WriterSummary {
            position,
            accounts,
            supply: (
                supply.issued_total,
                supply.redeemed_total,
                supply.expired_total,
                supply.reversed_total,
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    Position {
        writer: Position,
        projections: Position,
    },
    Balance {
        account: AccountId,
        writer: Points,
        projections: Points,
    },
    Held {
        account: AccountId,
        writer: Points,
        projections: Points,
    },
    Lots {
        account: AccountId,
        writer: Vec<(LotId, Points)>,
        projections: Vec<(LotId, Points)>,
    },
    Supply {
        total: &'static str,
        writer: Points,
        projections: Points,
    },
}

pub fn reconcile(writer: &WriterSummary, projections: &Projections) -> Vec<Difference> {
    let mut differences = Vec::new();
    if writer.position != projections.position() {
        differences.push(Difference::Position {
            writer: writer.position,
            projections: projections.position(),
        });
        return differences;
    }
    let mut projected: BTreeMap<AccountId, (Points, Points, BTreeMap<LotId, Points>)> = projections
        .balances
        .accounts()
        .filter(|(_, account)| account.balance > 0 || account.held > 0)
        .map(|(id, account)| {
            let lots = account
                .lots()
                .iter()
                .map(|lot| (lot.lot_id, lot.remaining))
                .collect();
            (id.clone(), (account.balance, account.held, lots))
        })
        .collect();
    let empty = (0, 0, BTreeMap::new());
    for (account, (balance, held, lots)) in &writer.accounts {
        let (projected_balance, projected_held, projected_lots) =
            projected.remove(account).unwrap_or_else(|| empty.clone());
        if *balance != projected_balance {
            differences.push(Difference::Balance {
                account: account.clone(),
                writer: *balance,
                projections: projected_balance,
            });
        }
        if *held != projected_held {
            differences.push(Difference::Held {
                account: account.clone(),
                writer: *held,
                projections: projected_held,
            });
        }
        if *lots != projected_lots {
            differences.push(Difference::Lots {
                account: account.clone(),
                writer: lots.iter().map(|(id, points)| (*id, *points)).collect(),
                projections: projected_lots
                    .iter()
                    .map(|(id, points)| (*id, *points))
                    .collect(),
            });
        }
    }
    for (account, (balance, held, _)) in projected {
        differences.push(Difference::Balance {
            account: account.clone(),
            writer: 0,
            projections: balance,
        });
        if held > 0 {
            differences.push(Difference::Held {
                account,
                writer: 0,
                projections: held,
            });
        }
    }
    let supply = &projections.supply;
    let pairs = [
        ("issued_total", writer.supply.0, supply.issued_total),
        ("redeemed_total", writer.supply.1, supply.redeemed_total),
        ("expired_total", writer.supply.2, supply.expired_total),
        ("reversed_total", writer.supply.3, supply.reversed_total),
    ];
    for (total, writer_total, projected_total) in pairs {
        if writer_total != projected_total {
            differences.push(Difference::Supply {
                total,
                writer: writer_total,
                projections: projected_total,
            });
        }
    }
    differences
}
