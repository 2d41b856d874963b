//! Account history: the positions of every event that touched an account,
//! oldest first, for paging through `GET /v1/accounts/{id}/history`.

use ledger_core::domain::ids::AccountId;
use ledger_core::domain::sharded_map::ShardedMap;
use ledger_core::engine::EventEnvelope;
use ledger_core::store::Position;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    positions: ShardedMap<AccountId, Vec<Position>>,
}

impl History {
    pub fn apply(&mut self, envelope: &EventEnvelope) {
        for account in envelope.event.accounts() {
            let positions = self.positions.get_or_insert_with(account, Vec::new);
            // A transfer to oneself is refused, but never record twice.
            if positions.last() != Some(&envelope.position) {
                positions.push(envelope.position);
            }
        }
    }

    /// Up to `limit` positions after `after`, oldest first.
    pub fn page(&self, account: &AccountId, after: Position, limit: usize) -> Vec<Position> {
        let Some(positions) = self.positions.get(account) else {
            return Vec::new();
        };
        let start = positions.partition_point(|position| *position <= after);
        positions[start..].iter().take(limit).copied().collect()
    }
}
