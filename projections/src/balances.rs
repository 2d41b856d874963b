//! Member accounts: balance, held, available, the lots with what remains
//! of each, what expires soon, and the account's history (the positions of
//! the events that touched it, for paging). The history lives in the same
//! per-account entry so that each event looks an account up once: as a
//! map of its own it cost a second cache-missing lookup per touched
//! account (BENCHMARKS.md, "Ids held inline").

use ledger_core::domain::event::{LotCredit, LotPortion};
use ledger_core::domain::ids::{AccountId, HoldId, LotId, MerchantId};
use ledger_core::domain::sharded_map::ShardedMap;
use ledger_core::domain::{Event, Points, Timestamp};
use ledger_core::store::Position;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotBalance {
    pub lot_id: LotId,
    pub merchant_id: MerchantId,
    pub remaining: Points,
    pub issued_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// An account's lots and holds are kept in vectors sorted by id: an
/// account holds a handful of each, and a small sorted vector is one
/// contiguous block where a B-tree is a node allocation per handful (the
/// B-tree inserts and lookups were a fifth of the fold's time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBalance {
    pub balance: Points,
    pub held: Points,
    lots: Vec<LotBalance>,
    /// The largest lot id ever credited here (0: none), so that a new lot,
    /// whose id is larger in any log the ledger wrote, is seen to go last
    /// without reading the last lot: that read missed the cache on most
    /// credits, where a write to the same place does not hold the fold up.
    newest_lot_id: u64,
    holds: Vec<(HoldId, Points)>,
    /// Positions of the events that touched the account, oldest first.
    history: Vec<Position>,
}

impl AccountBalance {
    /// The lots with points left, by lot id.
    pub fn lots(&self) -> &[LotBalance] {
        &self.lots
    }

    fn lot_index(&self, lot_id: LotId) -> Result<usize, usize> {
        // Debits nearly always take the oldest lot, the first one.
        if self
            .lots
            .first()
            .is_some_and(|first| first.lot_id == lot_id)
        {
            return Ok(0);
        }
        self.lots.binary_search_by_key(&lot_id, |lot| lot.lot_id)
    }

    fn put_lot(&mut self, lot: LotBalance) {
        // Lot ids only grow, so a new lot goes last: checked first, since
        // each step of a binary search over many lots was a cache miss.
        if lot.lot_id.0 > self.newest_lot_id {
            self.newest_lot_id = lot.lot_id.0;
            self.lots.push(lot);
            return;
        }
        match self.lot_index(lot.lot_id) {
            Ok(index) => self.lots[index] = lot,
            Err(index) => self.lots.insert(index, lot),
        }
    }

    fn credit(&mut self, lot: LotBalance) {
        self.balance += lot.remaining;
        self.put_lot(lot);
    }

    /// Takes `(lot, points)` portions from the account's lots.
    fn take(&mut self, portions: impl Iterator<Item = (LotId, Points)>) {
        for (lot_id, points) in portions {
            if let Ok(index) = self.lot_index(lot_id) {
                let lot = &mut self.lots[index];
                lot.remaining = lot.remaining.saturating_sub(points);
                if lot.remaining == 0 {
                    self.lots.remove(index);
                }
            }
            self.balance = self.balance.saturating_sub(points);
        }
    }

    fn take_portions(&mut self, portions: &[LotPortion]) {
        self.take(
            portions
                .iter()
                .map(|portion| (portion.lot_id, portion.points)),
        );
    }

    fn credit_lots(&mut self, credits: &[LotCredit]) {
        for credit in credits {
            self.credit(LotBalance {
                lot_id: credit.lot_id,
                merchant_id: credit.origin_merchant_id.clone(),
                remaining: credit.points,
                issued_at: credit.issued_at,
                expires_at: credit.expires_at,
            });
        }
    }

    fn hold(&mut self, hold_id: HoldId, points: Points) {
        self.held += points;
        match self.holds.binary_search_by_key(&hold_id, |(id, _)| *id) {
            Ok(index) => {
                self.held = self.held.saturating_sub(self.holds[index].1);
                self.holds[index].1 = points;
            }
            Err(index) => self.holds.insert(index, (hold_id, points)),
        }
    }

    fn end_hold(&mut self, hold_id: HoldId) {
        if let Ok(index) = self.holds.binary_search_by_key(&hold_id, |(id, _)| *id) {
            let (_, points) = self.holds.remove(index);
            self.held = self.held.saturating_sub(points);
        }
    }

    /// Up to `limit` positions of the account's events after `after`,
    /// oldest first.
    pub fn history_page(&self, after: Position, limit: usize) -> Vec<Position> {
        let start = self.history.partition_point(|position| *position <= after);
        self.history[start..].iter().take(limit).copied().collect()
    }

    pub fn available(&self) -> Points {
        self.balance.saturating_sub(self.held)
    }

    /// Points that will have expired `days` days after `now`: in lots
    /// expiring by then, including lots already past their expiry that no
    /// expiry run has taken yet (they go at the next one).
    pub fn expiring_within(&self, now: Timestamp, days: u32) -> Points {
        let horizon = now.plus_days(days);
        self.lots
            .iter()
            .filter(|lot| lot.expires_at.is_some_and(|at| at <= horizon))
            .map(|lot| lot.remaining)
            .sum()
    }

    /// Lots in the order debits take them: earliest expiry first.
    pub fn lots_in_order(&self) -> Vec<&LotBalance> {
        let mut lots: Vec<&LotBalance> = self.lots.iter().collect();
        lots.sort_by_key(|lot| (lot.expires_at.map_or(i64::MAX, |at| at.0), lot.lot_id));
        lots
    }
}

/// Sharded for the writer's reason: a map of every member must not stall
/// the fold while it doubles (see `ShardedMap`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    accounts: ShardedMap<AccountId, AccountBalance>,
}

impl Balances {
    pub fn account(&self, account: &AccountId) -> Option<&AccountBalance> {
        self.accounts.get(account)
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &AccountBalance)> {
        self.accounts.iter()
    }

    /// The account's entry, with `position` added to its history: each
    /// touched account is looked up once per event, and touched at most
    /// once per event (the history is appended to without reading its
    /// last position, for the reason of `newest_lot_id`).
    fn touch(&mut self, account: &AccountId, position: Position) -> &mut AccountBalance {
        let entry = self
            .accounts
            .get_or_insert_with(account, AccountBalance::default);
        entry.history.push(position);
        entry
    }

    /// Folds the event at `position` into the accounts it touches.
    pub fn apply(&mut self, position: Position, event: &Event) {
        match event {
            Event::PointsIssued(issued) => {
                self.touch(&issued.account, position).credit(LotBalance {
                    lot_id: issued.lot_id,
                    merchant_id: issued.merchant_id.clone(),
                    remaining: issued.points,
                    issued_at: issued.issued_at,
                    expires_at: issued.expires_at,
                })
            }
            Event::PointsRedeemed(redeemed) => self
                .touch(&redeemed.account, position)
                .take_portions(&redeemed.consumed),
            Event::PointsTransferred(transfer) => {
                let moved = transfer.moved.iter();
                let from = self.touch(&transfer.from, position);
                from.take(moved.map(|credit| (credit.source_lot_id, credit.points)));
                // A transfer to oneself is refused; were one logged, the
                // account's history would still name the event once.
                let to = if transfer.to == transfer.from {
                    from
                } else {
                    self.touch(&transfer.to, position)
                };
                to.credit_lots(&transfer.moved);
            }
            Event::PointsHeld(held) => self
                .touch(&held.account, position)
                .hold(held.hold_id, held.points),
            Event::HoldCaptured(captured) => {
                let entry = self.touch(&captured.account, position);
                entry.end_hold(captured.hold_id);
                entry.take_portions(&captured.consumed);
            }
            Event::HoldReleased(released) => self
                .touch(&released.account, position)
                .end_hold(released.hold_id),
            Event::IssuanceReversed(reversed) => self
                .touch(&reversed.account, position)
                .take_portions(&reversed.clawed_back),
            Event::RedemptionReversed(reversed) => self
                .touch(&reversed.account, position)
                .credit_lots(&reversed.restored),
            Event::PointsExpired(expired) => self
                .touch(&expired.account, position)
                .take_portions(&expired.lots),
            // Events that name accounts without moving points (risk
            // alerts) still belong to their history.
            other => {
                for account in other.accounts() {
                    self.touch(account, position);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ledger_core::domain::event::PointsTransferred;
    use ledger_core::domain::ids::TransferId;

    use super::*;

    fn account(name: &str) -> AccountId {
        AccountId::parse(name).expect("valid")
    }

    /// A transfer of `(source lot, new lot, points)` moves, as a log
    /// would hold it.
    fn transfer(from: &str, to: &str, moves: &[(u64, u64, Points)]) -> Event {
        let at = Timestamp::from_unix_seconds(1_790_000_000);
        Event::PointsTransferred(PointsTransferred {
            transfer_id: TransferId(1),
            from: account(from),
            to: account(to),
            points: moves.iter().map(|(_, _, points)| points).sum(),
            moved: moves
                .iter()
                .map(|&(source, lot, points)| LotCredit {
                    lot_id: LotId(lot),
                    source_lot_id: LotId(source),
                    origin_merchant_id: MerchantId::parse("cafe").expect("valid"),
                    points,
                    issued_at: at,
                    expires_at: None,
                })
                .collect(),
            transferred_at: at,
        })
    }

    fn lots(balances: &Balances, name: &str) -> Vec<(u64, Points)> {
        balances
            .account(&account(name))
            .map(|entry| {
                let lots = entry.lots().iter();
                lots.map(|lot| (lot.lot_id.0, lot.remaining)).collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_lot_older_than_the_newest_credited_still_lands_in_id_order() {
        let mut balances = Balances::default();
        balances.apply(1, &transfer("bob", "ann", &[(1, 5, 50)]));
        // Not a log the ledger writes (lot ids only grow), but the read
        // model must stay ordered and findable all the same.
        balances.apply(2, &transfer("bob", "ann", &[(2, 3, 30)]));
        assert_eq!(lots(&balances, "ann"), vec![(3, 30), (5, 50)]);
        balances.apply(3, &transfer("ann", "cy", &[(3, 8, 10)]));
        assert_eq!(lots(&balances, "ann"), vec![(3, 20), (5, 50)]);
        assert_eq!(
            balances.account(&account("ann")).map(|ann| ann.balance),
            Some(70)
        );
    }

    #[test]
    fn points_expiring_by_a_horizon_include_lots_already_past_due() {
        let day = |days: i64| Timestamp::from_unix_seconds(1_790_000_000 + days * 86_400);
        let mut event = transfer(
            "bob",
            "ann",
            &[(1, 11, 5), (2, 12, 7), (3, 13, 11), (4, 14, 13)],
        );
        if let Event::PointsTransferred(transfer) = &mut event {
            for (credit, expires_at) in
                transfer
                    .moved
                    .iter_mut()
                    .zip([Some(day(-1)), Some(day(10)), Some(day(40)), None])
            {
                credit.expires_at = expires_at;
            }
        }
        let mut balances = Balances::default();
        balances.apply(1, &event);
        let ann = balances.account(&account("ann")).expect("credited");
        assert_eq!(ann.expiring_within(day(0), 0), 5, "past due, not yet run");
        assert_eq!(ann.expiring_within(day(0), 10), 5 + 7);
        assert_eq!(ann.expiring_within(day(0), 30), 5 + 7);
        assert_eq!(ann.expiring_within(day(0), 40), 5 + 7 + 11);
        assert_eq!(ann.expiring_within(day(0), 36_525), 5 + 7 + 11, "never");
    }

    #[test]
    fn a_transfer_to_oneself_is_in_the_history_once_and_moves_nothing() {
        let mut balances = Balances::default();
        balances.apply(1, &transfer("bob", "ann", &[(1, 5, 50)]));
        balances.apply(2, &transfer("ann", "ann", &[(5, 6, 20)]));
        let ann = balances.account(&account("ann")).expect("ann has an entry");
        assert_eq!(ann.history_page(0, 10), vec![1, 2]);
        assert_eq!(ann.balance, 50);
        assert_eq!(lots(&balances, "ann"), vec![(5, 30), (6, 20)]);
    }
}
