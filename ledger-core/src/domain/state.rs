//! The decision state: exactly what `decide` needs to judge a command, and
//! nothing a read model could provide instead. `apply` is its only writer.

use std::collections::{BTreeSet, VecDeque};
use std::marker::PhantomData;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::command::Role;
use super::event::LotPortion;
use super::expiry_index::ExpiryIndex;
use super::ids::{
    AccountId, HoldId, IssuanceId, KeyId, LotId, MerchantId, OrderRef, RedemptionId, SequenceNumber,
};
use super::money::{Amount, Currency, Points, SUPPLY_CAP_MAX};
use super::program::{ProgramRules, ReleasePolicy};
use super::sharded_map::ShardedMap;
use super::time::{MICROS_PER_DAY, Timestamp};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub program: Option<Program>,
    pub merchants: FxHashMap<MerchantId, Merchant>,
    /// Every merchant's id at its number, in the order they applied: a lot
    /// records its origin by number, 4 bytes instead of a 24-byte id in
    /// each of millions of lots. `apply` numbers every origin from here
    /// (and [`State::check_merchant_numbers`] vets a state read from
    /// elsewhere), so every number a lot holds has its id.
    pub merchant_ids: Vec<MerchantId>,
    pub api_keys: FxHashMap<KeyId, ApiKey>,
    pub accounts: ShardedMap<AccountId, Account>,
    pub issuances: SequenceTable<IssuanceId, IssuanceRecord>,
    /// One issuance per (merchant, order_ref): invariant 7. Nested so a
    /// lookup borrows both ids instead of building an owned pair; sharded
    /// because a busy merchant's orders grow without bound.
    pub orders: FxHashMap<MerchantId, ShardedMap<OrderRef, IssuanceId>>,
    pub redemptions: SequenceTable<RedemptionId, RedemptionRecord>,
    pub holds: SequenceTable<HoldId, Hold>,
    /// Active holds by expiry, for timing them out in order.
    pub hold_timeouts: BTreeSet<(Timestamp, HoldId)>,
    /// Non-empty lots that expire, by expiry, for expiry runs in a
    /// deterministic order without scanning every account.
    pub lot_expiries: ExpiryIndex,
    pub supply: SupplyTotals,
    pub period: PeriodState,
    pub next_ids: NextIds,
}

/// Records whose ids are dense sequence numbers from 1, stored by index in
/// fixed-size chunks. No hashing, and growth never moves what is already
/// stored: a doubling hash map or vector of millions of records stalled the
/// single writer for hundreds of milliseconds (measured; BENCHMARKS.md).
#[derive(Debug, Clone)]
pub struct SequenceTable<Id, Record> {
    chunks: Vec<Vec<Record>>,
    length: usize,
    id: PhantomData<fn() -> Id>,
}

const SEQUENCE_CHUNK_RECORDS: usize = 1 << 16;

impl<Id, Record> Default for SequenceTable<Id, Record> {
    fn default() -> Self {
        SequenceTable {
            chunks: Vec::new(),
            length: 0,
            id: PhantomData,
        }
    }
}

impl<Id: SequenceNumber, Record> SequenceTable<Id, Record> {
    fn index(id: Id) -> Option<usize> {
        usize::try_from(id.sequence_number().checked_sub(1)?).ok()
    }

    pub fn get(&self, id: Id) -> Option<&Record> {
        let index = Self::index(id)?;
        self.chunks
            .get(index / SEQUENCE_CHUNK_RECORDS)?
            .get(index % SEQUENCE_CHUNK_RECORDS)
    }

    pub fn get_mut(&mut self, id: Id) -> Option<&mut Record> {
        let index = Self::index(id)?;
        self.chunks
            .get_mut(index / SEQUENCE_CHUNK_RECORDS)?
            .get_mut(index % SEQUENCE_CHUNK_RECORDS)
    }

    /// The id the next record must carry.
    pub fn next_number(&self) -> u64 {
        self.length as u64 + 1
    }

    /// Appends the record of `id`, which must be the next number.
    pub fn push(&mut self, id: Id, record: Record) -> Result<(), String> {
        if id.sequence_number() != self.next_number() {
            return Err(format!(
                "record number {} out of sequence, expected {}",
                id.sequence_number(),
                self.next_number()
            ));
        }
        self.push_next(record);
        Ok(())
    }

    fn push_next(&mut self, record: Record) {
        if self.length.is_multiple_of(SEQUENCE_CHUNK_RECORDS) {
            self.chunks.push(Vec::with_capacity(SEQUENCE_CHUNK_RECORDS));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(record);
            self.length += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        self.chunks.iter().flatten()
    }
}

impl<Id, Record: Serialize> Serialize for SequenceTable<Id, Record> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The length up front: binary formats (snapshots) need it, and a
        // flattened iterator cannot tell it.
        use serde::ser::SerializeSeq;
        let mut sequence = serializer.serialize_seq(Some(self.length))?;
        for record in self.chunks.iter().flatten() {
            sequence.serialize_element(record)?;
        }
        sequence.end()
    }
}

impl<'de, Id: SequenceNumber, Record: Deserialize<'de>> Deserialize<'de>
    for SequenceTable<Id, Record>
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let records = Vec::<Record>::deserialize(deserializer)?;
        let mut table = SequenceTable::default();
        for record in records {
            table.push_next(record);
        }
        Ok(table)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    pub version: u32,
    pub rules: ProgramRules,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MerchantStatus {
    Pending,
    Active,
    Rejected,
    Suspended,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    pub name: String,
    pub currency: Currency,
    pub issue_price: Amount,
    pub redemption_value: Amount,
    pub status: MerchantStatus,
    /// Deposits not yet consumed by issuance. Never negative: invariant 5.
    pub funding: Amount,
    /// Its place in [`State::merchant_ids`].
    pub number: MerchantNumber,
}

/// A merchant's place in [`State::merchant_ids`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MerchantNumber(pub u32);

impl MerchantNumber {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub role: Role,
    pub merchant_id: Option<MerchantId>,
    pub key_hash: String,
    pub revoked: bool,
}

/// A credit of points: one origin merchant, one issue time, one expiry.
///
/// 40 bytes (64 with the origin's id and an `Option<Timestamp>`): every
/// event re-checks its accounts' lots, and a member's lots are read from
/// cold memory, so their size is what that check costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub lot_id: LotId,
    pub remaining: Points,
    pub issued_at: Timestamp,
    /// The expiry's microseconds, `NEVER` for a lot that does not expire.
    expiry: i64,
    pub origin: MerchantNumber,
}

impl Lot {
    const NEVER: i64 = i64::MAX;

    /// `None` for a lot expiring at the last instant a timestamp holds,
    /// which a lot cannot tell apart from never expiring (and no
    /// programme's validity reaches).
    pub fn new(
        lot_id: LotId,
        origin: MerchantNumber,
        remaining: Points,
        issued_at: Timestamp,
        expires_at: Option<Timestamp>,
    ) -> Option<Lot> {
        let expiry = match expires_at {
            Some(at) if at.0 == Lot::NEVER => return None,
            Some(at) => at.0,
            None => Lot::NEVER,
        };
        Some(Lot {
            lot_id,
            remaining,
            issued_at,
            expiry,
            origin,
        })
    }

    /// The same lot holding `remaining` points.
    pub fn with_remaining(self, remaining: Points) -> Lot {
        Lot { remaining, ..self }
    }

    pub fn expires_at(&self) -> Option<Timestamp> {
        (self.expiry != Lot::NEVER).then_some(Timestamp(self.expiry))
    }

    /// Debits take lots in this order: earliest expiry first, never-expiring
    /// lots last, ties broken by lot id (oldest credit first).
    pub fn consumption_key(&self) -> (i64, LotId) {
        (self.expiry, self.lot_id)
    }

    pub fn is_due(&self, as_of: Timestamp) -> bool {
        self.expiry != Lot::NEVER && self.expiry <= as_of.0
    }

    /// `points` of this lot, naming its origin by `origin_merchant_id`.
    pub fn portion(&self, points: Points, origin_merchant_id: &MerchantId) -> LotPortion {
        LotPortion {
            lot_id: self.lot_id,
            origin_merchant_id: origin_merchant_id.clone(),
            points,
            issued_at: self.issued_at,
            expires_at: self.expires_at(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Sum of the lots' remaining points: invariant 3.
    pub balance: Points,
    /// Sum of the active holds' points; never above the balance: invariant 1.
    pub held: Points,
    /// Non-empty lots, in consumption order.
    pub lots: Vec<Lot>,
    /// The largest consumption key (expiry, lot id) ever credited here,
    /// `(0, 0)` before the first: a new lot with a larger one goes last
    /// without reading the last lot, a read that missed the cache on most
    /// credits (where writing the lot in place does not hold `apply` up).
    pub newest_lot_key: (i64, u64),
    pub active_holds: Vec<HoldId>,
    /// Points earned per UTC day, oldest first, kept for
    /// `TIER_WINDOW_DAYS_MAX` days (tiers and the daily earning limit).
    pub earned_by_day: VecDeque<(i64, Points)>,
    /// Redemptions and holds, kept for `VELOCITY_WINDOW_SECONDS_MAX`.
    pub recent_redemptions: VecDeque<(Timestamp, Points)>,
    /// Outgoing transfers, kept for `VELOCITY_WINDOW_SECONDS_MAX`.
    pub recent_transfers: VecDeque<(Timestamp, Points)>,
}

impl Account {
    pub fn available(&self) -> Points {
        self.balance.saturating_sub(self.held)
    }

    pub fn earned_on_day(&self, day: i64) -> Points {
        self.earned_by_day
            .iter()
            .rev()
            .find(|(entry_day, _)| *entry_day == day)
            .map_or(0, |(_, points)| *points)
    }

    /// Points earned on days `first_day..=last_day`.
    pub fn earned_between_days(&self, first_day: i64, last_day: i64) -> Points {
        self.earned_by_day
            .iter()
            .filter(|(day, _)| (first_day..=last_day).contains(day))
            .map(|(_, points)| *points)
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuanceRecord {
    pub account: AccountId,
    pub merchant: MerchantNumber,
    pub points: Points,
    pub lot_id: LotId,
    pub unit_price: Amount,
    pub currency: Currency,
    /// Points covered by reversals so far (clawed back or unrecoverable).
    pub points_reversed: Points,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedemptionRecord {
    pub account: AccountId,
    pub merchant: MerchantNumber,
    pub points: Points,
    /// What was taken, each as the lot it came from holding the points
    /// taken from it (40 bytes a portion instead of 64), in consumption
    /// order; reversals restore from the end.
    pub consumed: Vec<Lot>,
    pub unit_value: Amount,
    pub currency: Currency,
    pub points_reversed: Points,
}

/// What reversing `points` more of a redemption restores: its portions
/// from the last spent backwards, past the `already_reversed` points
/// earlier reversals restored, each with the points taken from it. `decide`
/// builds a reversal from this and `apply` holds a recorded one to it.
pub fn restorable(
    consumed: &[Lot],
    already_reversed: Points,
    points: Points,
) -> Vec<(&Lot, Points)> {
    let mut skip = already_reversed;
    let mut left = points;
    let mut restored = Vec::new();
    for portion in consumed.iter().rev() {
        if left == 0 {
            break;
        }
        let skipped = skip.min(portion.remaining);
        skip -= skipped;
        let taken = (portion.remaining - skipped).min(left);
        if taken > 0 {
            left -= taken;
            restored.push((portion, taken));
        }
    }
    restored
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    Captured,
    Released,
    TimedOut,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub account: AccountId,
    pub merchant_id: MerchantId,
    pub order_ref: Option<OrderRef>,
    pub points: Points,
    pub expires_at: Timestamp,
    pub status: HoldStatus,
}

/// Cumulative supply counters. Outstanding supply is derived, never stored,
/// so the identity of invariant 2 is checked rather than assumed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplyTotals {
    pub issued_total: Points,
    /// Redeemed, net of cancelled redemptions.
    pub redeemed_total: Points,
    pub expired_total: Points,
    /// Clawed back by issuance reversals.
    pub reversed_total: Points,
    /// Restored by cancelled redemptions (already netted out of
    /// `redeemed_total`; kept for reporting).
    pub redemption_reversed_total: Points,
}

impl SupplyTotals {
    /// `issued − redeemed − expired − reversed`, or `None` if the counters
    /// are inconsistent (more left than came in).
    pub fn outstanding(&self) -> Option<Points> {
        self.issued_total
            .checked_sub(self.redeemed_total)?
            .checked_sub(self.expired_total)?
            .checked_sub(self.reversed_total)
    }
}

/// Counters of the release period the last issuance or redemption fell in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodState {
    pub start: Timestamp,
    pub length_days: u32,
    pub issued: Points,
    pub redeemed: Points,
    /// Points redeemed in the period just before `start`, if it was tracked.
    pub previous_redeemed: Points,
}

/// The release period some instant falls in, seen from the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodView {
    pub start: Timestamp,
    pub length_days: u32,
    pub issued: Points,
    pub redeemed: Points,
    pub previous_redeemed: Points,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// Counters of the ids that have no record table of their own (issuances,
/// redemptions and holds are numbered by their tables).
pub struct NextIds {
    pub lot: u64,
    pub transfer: u64,
    pub reversal: u64,
}

impl Default for NextIds {
    fn default() -> Self {
        NextIds {
            lot: 1,
            transfer: 1,
            reversal: 1,
        }
    }
}

impl State {
    /// The id of the merchant numbered `number`.
    pub fn merchant_id(&self, number: MerchantNumber) -> Option<&MerchantId> {
        self.merchant_ids.get(number.index())
    }

    /// The numbering of merchants agrees with the merchants, and every
    /// lot's origin has an id: what a state read from a snapshot must
    /// show before `decide` may look lots' origins up by number.
    pub fn check_merchant_numbers(&self) -> Result<(), String> {
        if self.merchant_ids.len() != self.merchants.len() {
            return Err(format!(
                "{} merchant numbers for {} merchants",
                self.merchant_ids.len(),
                self.merchants.len()
            ));
        }
        for (merchant_id, merchant) in &self.merchants {
            if self.merchant_id(merchant.number) != Some(merchant_id) {
                return Err(format!(
                    "merchant {merchant_id} has number {} of another",
                    merchant.number.0
                ));
            }
        }
        let numbered = |number: MerchantNumber| number.index() < self.merchant_ids.len();
        for (account_id, account) in self.accounts.iter() {
            if let Some(lot) = account.lots.iter().find(|lot| !numbered(lot.origin)) {
                return Err(format!(
                    "lot {} of {account_id} comes from merchant number {}, which no merchant has",
                    lot.lot_id, lot.origin.0
                ));
            }
        }
        if self
            .issuances
            .iter()
            .any(|issuance| !numbered(issuance.merchant))
        {
            return Err("an issuance names a merchant number no merchant has".to_owned());
        }
        let redemption_numbered = |redemption: &RedemptionRecord| {
            numbered(redemption.merchant)
                && redemption.consumed.iter().all(|lot| numbered(lot.origin))
        };
        if !self.redemptions.iter().all(redemption_numbered) {
            return Err("a redemption names a merchant number no merchant has".to_owned());
        }
        Ok(())
    }

    pub fn issuance_of_order(
        &self,
        merchant_id: &MerchantId,
        order_ref: &OrderRef,
    ) -> Option<IssuanceId> {
        self.orders.get(merchant_id)?.get(order_ref).copied()
    }

    pub fn orders_total(&self) -> usize {
        self.orders.values().map(|orders| orders.len()).sum()
    }

    pub fn outstanding(&self) -> Points {
        self.supply.outstanding().unwrap_or(0)
    }

    pub fn supply_cap(&self) -> Option<Points> {
        self.program
            .as_ref()
            .map(|program| program.rules.supply_cap)
    }

    pub fn headroom(&self) -> Points {
        self.supply_cap()
            .map_or(0, |cap| cap.saturating_sub(self.outstanding()))
    }

    pub fn period_length_days(&self) -> u32 {
        self.program
            .as_ref()
            .and_then(|program| program.rules.release.as_ref())
            .map_or(1, |release| release.period_days)
    }

    /// The period `at` falls in under the current rules.
    pub fn period_at(&self, at: Timestamp) -> PeriodView {
        self.period.view_at(at, self.period_length_days())
    }

    /// The release budget of a period under the current rules; `None` when
    /// no release policy limits issuance.
    pub fn release_budget(&self, period: &PeriodView) -> Option<Points> {
        let release = self.program.as_ref()?.rules.release.as_ref();
        release_budget(release, period.previous_redeemed)
    }
}

impl PeriodState {
    /// The period of `length_days` that `at` falls in, with the counters it
    /// starts from: the tracked ones if it is the tracked period, and the
    /// tracked period's redemptions as "previous" if it directly follows.
    pub fn view_at(&self, at: Timestamp, length_days: u32) -> PeriodView {
        let start = period_start(at, length_days);
        if self.length_days == length_days && self.start == start {
            return PeriodView {
                start,
                length_days,
                issued: self.issued,
                redeemed: self.redeemed,
                previous_redeemed: self.previous_redeemed,
            };
        }
        let follows_tracked =
            self.length_days == length_days && self.start.plus_days(self.length_days) == start;
        PeriodView {
            start,
            length_days,
            issued: 0,
            redeemed: 0,
            previous_redeemed: if follows_tracked { self.redeemed } else { 0 },
        }
    }
}

/// `base_points + floor(redeemed_factor × previous_redeemed)`, or `None`
/// without a release policy.
pub fn release_budget(
    release: Option<&ReleasePolicy>,
    previous_redeemed: Points,
) -> Option<Points> {
    let release = release?;
    let from_redemptions = (release.redeemed_factor.0 * Decimal::from(previous_redeemed))
        .floor()
        .to_u64()
        .unwrap_or(SUPPLY_CAP_MAX);
    Some(
        release
            .base_points
            .saturating_add(from_redemptions)
            .min(SUPPLY_CAP_MAX),
    )
}

/// Periods are aligned on the Unix epoch in whole UTC days.
pub fn period_start(at: Timestamp, length_days: u32) -> Timestamp {
    let length_micros = i64::from(length_days.max(1)) * MICROS_PER_DAY;
    Timestamp(at.0.div_euclid(length_micros) * length_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_tables_number_from_one_across_chunks_and_refuse_gaps() {
        let mut table: SequenceTable<HoldId, u64> = SequenceTable::default();
        assert_eq!(table.get(HoldId(0)), None);
        let count = SEQUENCE_CHUNK_RECORDS as u64 + 3;
        for number in 1..=count {
            assert_eq!(table.push(HoldId(number), number * 10), Ok(()));
        }
        assert_eq!(table.len() as u64, count);
        assert_eq!(table.get(HoldId(1)), Some(&10));
        assert_eq!(table.get(HoldId(count)), Some(&(count * 10)));
        assert_eq!(table.get(HoldId(count + 1)), None);
        assert!(table.push(HoldId(count + 2), 0).is_err());
        let json = serde_json::to_string(&table).expect("serialises");
        let back: SequenceTable<HoldId, u64> = serde_json::from_str(&json).expect("parses");
        assert_eq!(
            back.iter().copied().collect::<Vec<_>>(),
            table.iter().copied().collect::<Vec<_>>()
        );
    }
}
