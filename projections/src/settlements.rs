//! Merchant settlements: per merchant and UTC day, what it issued and paid
//! for, what was redeemed at it and what it is owed; and the clearing
//! matrix — whose points (the lots' origin merchants) were spent where.

use std::collections::BTreeMap;

use ledger_core::domain::event::LotPortion;
use ledger_core::domain::ids::MerchantId;
use ledger_core::domain::state::MerchantStatus;
use ledger_core::domain::{Amount, Currency, Event, Points, Timestamp};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::{add_money, subtract_money};

/// One merchant's movements, summed over some days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantTotals {
    pub points_issued: Points,
    /// Issuance cost, net of refunds from issuance reversals.
    pub funds_consumed: Amount,
    /// Redeemed at this merchant, net of cancelled redemptions.
    pub points_redeemed: Points,
    /// Owed to this merchant for redemptions, net of cancellations.
    pub amount_owed: Amount,
    /// Points clawed back from its issuances.
    pub points_reversed: Points,
}

impl MerchantTotals {
    /// What the operator owes the merchant (negative: the merchant owes).
    pub fn net(&self) -> Amount {
        subtract_money(self.amount_owed, self.funds_consumed)
    }

    fn add(&mut self, other: &MerchantTotals) {
        self.points_issued += other.points_issued;
        self.funds_consumed = add_money(self.funds_consumed, other.funds_consumed);
        self.points_redeemed += other.points_redeemed;
        self.amount_owed = add_money(self.amount_owed, other.amount_owed);
        self.points_reversed += other.points_reversed;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerchantAccount {
    pub name: String,
    pub currency: Currency,
    pub status: MerchantStatus,
    pub funding: Amount,
    pub deposits_total: Amount,
    /// Since the beginning.
    pub totals: MerchantTotals,
    days: BTreeMap<i64, MerchantTotals>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlements {
    merchants: FxHashMap<MerchantId, MerchantAccount>,
    /// Day → (issuer, redeemer) → points, net of cancellations. Hashed
    /// within the day: a B-tree keyed by merchant-name pairs compared
    /// strings at every level for every redeemed lot.
    clearing: BTreeMap<i64, FxHashMap<(MerchantId, MerchantId), i128>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MerchantSettlement {
    pub merchant_id: MerchantId,
    pub currency: Currency,
    #[serde(flatten)]
    pub totals: MerchantTotals,
    pub net: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClearingEntry {
    pub issuer_merchant_id: MerchantId,
    pub redeemer_merchant_id: MerchantId,
    pub points: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettlementReport {
    pub merchants: Vec<MerchantSettlement>,
    pub clearing: Vec<ClearingEntry>,
}

impl Settlements {
    pub fn merchant(&self, merchant_id: &MerchantId) -> Option<&MerchantAccount> {
        self.merchants.get(merchant_id)
    }

    /// Every merchant, in no order.
    pub fn merchants(&self) -> impl Iterator<Item = (&MerchantId, &MerchantAccount)> {
        self.merchants.iter()
    }

    /// Applies `change` to the merchant's day and all-time totals and
    /// hands the merchant back for the event's other fields: one lookup
    /// per event.
    fn change(
        &mut self,
        merchant_id: &MerchantId,
        at: Timestamp,
        change: impl Fn(&mut MerchantTotals),
    ) -> Option<&mut MerchantAccount> {
        let merchant = self.merchants.get_mut(merchant_id)?;
        change(merchant.days.entry(at.day_index()).or_default());
        change(&mut merchant.totals);
        Some(merchant)
    }

    fn clear(&mut self, at: Timestamp, redeemer: &MerchantId, portions: &[LotPortion], sign: i128) {
        if portions.is_empty() {
            return;
        }
        let day = self.clearing.entry(at.day_index()).or_default();
        for portion in portions {
            *day.entry((portion.origin_merchant_id.clone(), redeemer.clone()))
                .or_default() += sign * i128::from(portion.points);
        }
    }

    fn set_status(&mut self, merchant_id: &MerchantId, status: MerchantStatus) {
        if let Some(merchant) = self.merchants.get_mut(merchant_id) {
            merchant.status = status;
        }
    }

    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::MerchantApplied(applied) => {
                self.merchants.insert(
                    applied.merchant_id.clone(),
                    MerchantAccount {
                        name: applied.name.clone(),
                        currency: applied.currency,
                        status: MerchantStatus::Pending,
                        funding: Amount::ZERO,
                        deposits_total: Amount::ZERO,
                        totals: MerchantTotals::default(),
                        days: BTreeMap::new(),
                    },
                );
            }
            Event::MerchantApproved(change) | Event::MerchantReinstated(change) => {
                self.set_status(&change.merchant_id, MerchantStatus::Active);
            }
            Event::MerchantRejected(change) => {
                self.set_status(&change.merchant_id, MerchantStatus::Rejected)
            }
            Event::MerchantSuspended(change) => {
                self.set_status(&change.merchant_id, MerchantStatus::Suspended)
            }
            Event::DepositRecorded(deposit) => {
                if let Some(merchant) = self.merchants.get_mut(&deposit.merchant_id) {
                    merchant.funding = deposit.funding_after;
                    merchant.deposits_total =
                        add_money(merchant.deposits_total, deposit.amount.amount);
                }
            }
            Event::PointsIssued(issued) => {
                let cost = issued.funds_consumed.amount;
                let merchant = self.change(&issued.merchant_id, issued.issued_at, |totals| {
                    totals.points_issued += issued.points;
                    totals.funds_consumed = add_money(totals.funds_consumed, cost);
                });
                if let Some(merchant) = merchant {
                    merchant.funding = issued.funding_after;
                }
            }
            Event::PointsRedeemed(redeemed) => {
                let owed = redeemed.value_owed.amount;
                self.change(&redeemed.merchant_id, redeemed.redeemed_at, |totals| {
                    totals.points_redeemed += redeemed.points;
                    totals.amount_owed = add_money(totals.amount_owed, owed);
                });
                self.clear(
                    redeemed.redeemed_at,
                    &redeemed.merchant_id,
                    &redeemed.consumed,
                    1,
                );
            }
            Event::HoldCaptured(captured) => {
                let owed = captured.value_owed.amount;
                self.change(&captured.merchant_id, captured.captured_at, |totals| {
                    totals.points_redeemed += captured.points;
                    totals.amount_owed = add_money(totals.amount_owed, owed);
                });
                self.clear(
                    captured.captured_at,
                    &captured.merchant_id,
                    &captured.consumed,
                    1,
                );
            }
            Event::IssuanceReversed(reversed) => {
                let refund = reversed.funds_returned.amount;
                let merchant = self.change(&reversed.merchant_id, reversed.reversed_at, |totals| {
                    totals.points_reversed += reversed.points_reversed;
                    totals.funds_consumed = subtract_money(totals.funds_consumed, refund);
                });
                if let Some(merchant) = merchant {
                    merchant.funding = reversed.funding_after;
                }
            }
            Event::RedemptionReversed(reversed) => {
                let returned = reversed.value_returned.amount;
                self.change(&reversed.merchant_id, reversed.reversed_at, |totals| {
                    totals.points_redeemed = totals.points_redeemed.saturating_sub(reversed.points);
                    totals.amount_owed = subtract_money(totals.amount_owed, returned);
                });
                let portions: Vec<LotPortion> = reversed
                    .restored
                    .iter()
                    .map(|credit| LotPortion {
                        lot_id: credit.source_lot_id,
                        origin_merchant_id: credit.origin_merchant_id.clone(),
                        points: credit.points,
                        issued_at: credit.issued_at,
                        expires_at: credit.expires_at,
                    })
                    .collect();
                self.clear(reversed.reversed_at, &reversed.merchant_id, &portions, -1);
            }
            _ => {}
        }
    }

    /// Per merchant, and the clearing matrix, over UTC days
    /// `from_day..to_day` (`to_day` exclusive).
    pub fn report(&self, from_day: i64, to_day: i64) -> SettlementReport {
        // An empty or inverted range is an empty period (`range` would panic).
        let to_day = to_day.max(from_day);
        let mut merchants: Vec<MerchantSettlement> = self
            .merchants
            .iter()
            .map(|(merchant_id, merchant)| {
                let mut totals = MerchantTotals::default();
                for (_, day) in merchant.days.range(from_day..to_day) {
                    totals.add(day);
                }
                MerchantSettlement {
                    merchant_id: merchant_id.clone(),
                    currency: merchant.currency,
                    net: totals.net(),
                    totals,
                }
            })
            .collect();
        merchants.sort_by(|left, right| left.merchant_id.cmp(&right.merchant_id));
        let mut matrix: BTreeMap<(MerchantId, MerchantId), i128> = BTreeMap::new();
        for (_, day) in self.clearing.range(from_day..to_day) {
            for ((issuer, redeemer), points) in day {
                *matrix
                    .entry((issuer.clone(), redeemer.clone()))
                    .or_default() += points;
            }
        }
        SettlementReport {
            merchants,
            clearing: matrix
                .into_iter()
                .filter(|(_, points)| *points != 0)
                .map(|((issuer, redeemer), points)| ClearingEntry {
                    issuer_merchant_id: issuer,
                    redeemer_merchant_id: redeemer,
                    points,
                })
                .collect(),
        }
    }
}
