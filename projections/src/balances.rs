//! Member balances: balance, held, available, the lots with what remains
//! of each, and what expires soon.

use std::collections::BTreeMap;

use ledger_core::domain::event::{LotCredit, LotPortion};
use ledger_core::domain::ids::{AccountId, HoldId, LotId, MerchantId};
use ledger_core::domain::{Event, Points, Timestamp};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotBalance {
    pub lot_id: LotId,
    pub merchant_id: MerchantId,
    pub remaining: Points,
    pub issued_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBalance {
    pub balance: Points,
    pub held: Points,
    pub lots: BTreeMap<LotId, LotBalance>,
    pub holds: BTreeMap<HoldId, Points>,
}

impl AccountBalance {
    pub fn available(&self) -> Points {
        self.balance.saturating_sub(self.held)
    }

    /// Points in lots expiring after `now` and at most `days` days later.
    pub fn expiring_within(&self, now: Timestamp, days: u32) -> Points {
        let horizon = now.plus_days(days);
        self.lots
            .values()
            .filter(|lot| lot.expires_at.is_some_and(|at| at > now && at <= horizon))
            .map(|lot| lot.remaining)
            .sum()
    }

    /// Lots in the order debits take them: earliest expiry first.
    pub fn lots_in_order(&self) -> Vec<&LotBalance> {
        let mut lots: Vec<&LotBalance> = self.lots.values().collect();
        lots.sort_by_key(|lot| (lot.expires_at.map_or(i64::MAX, |at| at.0), lot.lot_id));
        lots
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    accounts: FxHashMap<AccountId, AccountBalance>,
}

impl Balances {
    pub fn account(&self, account: &AccountId) -> Option<&AccountBalance> {
        self.accounts.get(account)
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &AccountBalance)> {
        self.accounts.iter()
    }

    fn entry(&mut self, account: &AccountId) -> &mut AccountBalance {
        // One lookup: cloning the id is a reference count, while a second
        // probe of a map of every account is a cache miss (measured).
        self.accounts.entry(account.clone()).or_default()
    }

    fn take(&mut self, account: &AccountId, portions: &[LotPortion]) {
        let entry = self.entry(account);
        for portion in portions {
            if let Some(lot) = entry.lots.get_mut(&portion.lot_id) {
                lot.remaining = lot.remaining.saturating_sub(portion.points);
                if lot.remaining == 0 {
                    entry.lots.remove(&portion.lot_id);
                }
            }
            entry.balance = entry.balance.saturating_sub(portion.points);
        }
    }

    fn credit(&mut self, account: &AccountId, credits: &[LotCredit]) {
        let entry = self.entry(account);
        for credit in credits {
            entry.balance += credit.points;
            entry.lots.insert(
                credit.lot_id,
                LotBalance {
                    lot_id: credit.lot_id,
                    merchant_id: credit.origin_merchant_id.clone(),
                    remaining: credit.points,
                    issued_at: credit.issued_at,
                    expires_at: credit.expires_at,
                },
            );
        }
    }

    fn end_hold(&mut self, account: &AccountId, hold_id: HoldId) {
        let entry = self.entry(account);
        if let Some(points) = entry.holds.remove(&hold_id) {
            entry.held = entry.held.saturating_sub(points);
        }
    }

    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::PointsIssued(issued) => {
                let entry = self.entry(&issued.account);
                entry.balance += issued.points;
                entry.lots.insert(
                    issued.lot_id,
                    LotBalance {
                        lot_id: issued.lot_id,
                        merchant_id: issued.merchant_id.clone(),
                        remaining: issued.points,
                        issued_at: issued.issued_at,
                        expires_at: issued.expires_at,
                    },
                );
            }
            Event::PointsRedeemed(redeemed) => self.take(&redeemed.account, &redeemed.consumed),
            Event::PointsTransferred(transfer) => {
                let taken: Vec<LotPortion> = transfer
                    .moved
                    .iter()
                    .map(|credit| LotPortion {
                        lot_id: credit.source_lot_id,
                        origin_merchant_id: credit.origin_merchant_id.clone(),
                        points: credit.points,
                        issued_at: credit.issued_at,
                        expires_at: credit.expires_at,
                    })
                    .collect();
                self.take(&transfer.from, &taken);
                self.credit(&transfer.to, &transfer.moved);
            }
            Event::PointsHeld(held) => {
                let entry = self.entry(&held.account);
                entry.held += held.points;
                entry.holds.insert(held.hold_id, held.points);
            }
            Event::HoldCaptured(captured) => {
                self.end_hold(&captured.account, captured.hold_id);
                self.take(&captured.account, &captured.consumed);
            }
            Event::HoldReleased(released) => self.end_hold(&released.account, released.hold_id),
            Event::IssuanceReversed(reversed) => {
                self.take(&reversed.account, &reversed.clawed_back)
            }
            Event::RedemptionReversed(reversed) => {
                self.credit(&reversed.account, &reversed.restored)
            }
            Event::PointsExpired(expired) => self.take(&expired.account, &expired.lots),
            _ => {}
        }
    }
}
