//! A deliberately naive reference model of the ledger: plain vectors and
//! B-tree maps, linear scans, re-sorting on every debit, no indexes. It is
//! meant to be obviously correct rather than fast, and it is written from
//! the rules in DESIGN.md, not from the engine's code.
//!
//! For every command it lists which refusals would be justified
//! ([`Model::violations`]) and, when the engine accepts, carries the command
//! out itself ([`Model::carry_out`]). The property tests then demand that
//! the engine accepts only what the model finds no fault with, refuses only
//! for a reason the model confirms, and ends with the same balances, lots,
//! holds, funding and supply totals.

use std::collections::{BTreeMap, BTreeSet};

use ledger_core::domain::command::{
    Actor, Command, HOLD_EXPIRY_SECONDS_DEFAULT, HOLD_EXPIRY_SECONDS_MAX, Role,
};
use ledger_core::domain::money::POINTS_PER_COMMAND_MAX;
use ledger_core::domain::program::{ProgramRules, ReversalPolicy};
use ledger_core::domain::time::{MICROS_PER_DAY, MICROS_PER_SECOND};
use ledger_core::domain::{Event, Timestamp};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLot {
    /// Creation order; equals the engine's lot id order.
    pub sequence: u64,
    pub origin: String,
    pub expires_at: Option<i64>,
    pub remaining: u64,
    /// The issuance that created the lot, if any (reversals need it).
    pub issuance: Option<u64>,
}

impl ModelLot {
    fn order_key(&self) -> (i64, u64) {
        (self.expires_at.unwrap_or(i64::MAX), self.sequence)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ModelAccount {
    pub lots: Vec<ModelLot>,
    /// hold number → (merchant, points, expires_at)
    pub holds: BTreeMap<u64, (String, u64, i64)>,
    pub earned_by_day: BTreeMap<i64, u64>,
    pub redemption_times: Vec<(i64, u64)>,
    pub transfer_times: Vec<(i64, u64)>,
}

impl ModelAccount {
    pub fn balance(&self) -> u64 {
        self.lots.iter().map(|lot| lot.remaining).sum()
    }
    pub fn held(&self) -> u64 {
        self.holds.values().map(|(_, points, _)| points).sum()
    }
    fn sort(&mut self) {
        self.lots.retain(|lot| lot.remaining > 0);
        self.lots.sort_by_key(ModelLot::order_key);
    }
    /// Takes points in consumption order; returns the portions taken.
    fn take(&mut self, mut points: u64) -> Vec<ModelLot> {
        self.sort();
        let mut taken = Vec::new();
        for lot in &mut self.lots {
            if points == 0 {
                break;
            }
            let portion = lot.remaining.min(points);
            lot.remaining -= portion;
            points -= portion;
            taken.push(ModelLot {
                remaining: portion,
                ..lot.clone()
            });
        }
        self.sort();
        taken
    }
    /// Times out holds and expires due lots (not what holds reserve).
    /// Returns (points expired).
    fn settle(&mut self, now: i64, as_of: i64) -> u64 {
        self.holds.retain(|_, (_, _, expires_at)| *expires_at > now);
        self.sort();
        let due: u64 = self
            .lots
            .iter()
            .filter(|lot| lot.expires_at.is_some_and(|at| at <= as_of))
            .map(|lot| lot.remaining)
            .sum();
        let expirable = due.min(self.balance() - self.held());
        self.take(expirable);
        expirable
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MerchantState {
    Pending,
    Active,
    Rejected,
    Suspended,
}

#[derive(Debug, Clone)]
pub struct ModelMerchant {
    pub state: MerchantState,
    pub issue_price: Decimal,
    pub redemption_value: Decimal,
    pub funding: Decimal,
}

#[derive(Debug, Clone)]
pub struct ModelIssuance {
    pub account: String,
    pub merchant: String,
    pub points: u64,
    pub reversed: u64,
    pub lot_sequence: u64,
    pub unit_price: Decimal,
}

#[derive(Debug, Clone)]
pub struct ModelRedemption {
    pub account: String,
    pub merchant: String,
    pub points: u64,
    pub reversed: u64,
    pub spent: Vec<ModelLot>,
}

#[derive(Debug, Clone)]
pub enum HoldState {
    Active,
    Done,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub rules: Option<ProgramRules>,
    pub merchants: BTreeMap<String, ModelMerchant>,
    pub accounts: BTreeMap<String, ModelAccount>,
    pub orders: BTreeSet<(String, String)>,
    pub issuances: Vec<ModelIssuance>,
    pub redemptions: Vec<ModelRedemption>,
    /// hold number (1-based index) → (account, merchant, points, expires_at, state)
    pub holds: Vec<(String, String, u64, i64, HoldState)>,
    pub issued_by_day: BTreeMap<i64, u64>,
    pub redeemed_by_day: BTreeMap<i64, u64>,
    pub issued_total: u64,
    pub redeemed_total: u64,
    pub expired_total: u64,
    pub reversed_total: u64,
    pub api_keys: BTreeMap<String, bool>,
    next_lot_sequence: u64,
}

fn day(at: i64) -> i64 {
    at.div_euclid(MICROS_PER_DAY)
}

fn merchant_of(command: &Command, model: &Model) -> Option<String> {
    match command {
        Command::IssuePoints { merchant_id, .. }
        | Command::RedeemPoints { merchant_id, .. }
        | Command::HoldPoints { merchant_id, .. } => Some(merchant_id.to_string()),
        Command::CaptureHold { hold_id, .. } | Command::ReleaseHold { hold_id } => model
            .holds
            .get((hold_id.0 as usize).wrapping_sub(1))
            .map(|hold| hold.1.clone()),
        Command::ReverseIssuance { issuance_id, .. } => model
            .issuances
            .get((issuance_id.0 as usize).wrapping_sub(1))
            .map(|issuance| issuance.merchant.clone()),
        Command::ReverseRedemption { redemption_id, .. } => model
            .redemptions
            .get((redemption_id.0 as usize).wrapping_sub(1))
            .map(|redemption| redemption.merchant.clone()),
        _ => None,
    }
}

fn is_merchant_command(command: &Command) -> bool {
    matches!(
        command,
        Command::IssuePoints { .. }
            | Command::RedeemPoints { .. }
            | Command::HoldPoints { .. }
            | Command::CaptureHold { .. }
            | Command::ReleaseHold { .. }
            | Command::ReverseIssuance { .. }
            | Command::ReverseRedemption { .. }
    )
}

fn bad_points(points: u64) -> bool {
    points == 0 || points > POINTS_PER_COMMAND_MAX
}

impl Model {
    fn outstanding(&self) -> u64 {
        self.issued_total - self.redeemed_total - self.expired_total - self.reversed_total
    }

    fn cap(&self) -> u64 {
        self.rules.as_ref().map_or(0, |rules| rules.supply_cap)
    }

    fn budget(&self, rules: &ProgramRules, today: i64) -> Option<u64> {
        let release = rules.release.as_ref()?;
        let previous = self.redeemed_by_day.get(&(today - 1)).copied().unwrap_or(0);
        let extra = (release.redeemed_factor.0 * Decimal::from(previous))
            .floor()
            .to_u64()
            .unwrap_or(u64::MAX);
        Some(release.base_points + extra)
    }

    fn account(&self, name: &str) -> ModelAccount {
        self.accounts.get(name).cloned().unwrap_or_default()
    }

    fn active(&self, merchant: &str, faults: &mut BTreeSet<&'static str>) {
        match self.merchants.get(merchant) {
            None => {
                faults.insert("not_found");
            }
            Some(found) if found.state != MerchantState::Active => {
                faults.insert("merchant_not_active");
            }
            Some(_) => {}
        }
    }

    fn velocity(
        &self,
        times: &[(i64, u64)],
        limit: Option<&ledger_core::domain::program::VelocityLimit>,
        points: u64,
        now: i64,
        faults: &mut BTreeSet<&'static str>,
    ) {
        let Some(limit) = limit else { return };
        let start = now - limit.window_seconds as i64 * MICROS_PER_SECOND;
        let recent: Vec<_> = times.iter().filter(|(at, _)| *at > start).collect();
        let count = recent.len() as u64 + 1;
        let total = recent.iter().map(|(_, points)| points).sum::<u64>() + points;
        if limit.count_max.is_some_and(|max| count > u64::from(max))
            || limit.points_max.is_some_and(|max| total > max)
        {
            faults.insert("risk_limit_exceeded");
        }
    }

    /// Points an issuance would grant, or the faults that refuse it.
    fn granted(
        &self,
        account: &str,
        points: Option<u64>,
        purchase: Option<Decimal>,
        now: i64,
        faults: &mut BTreeSet<&'static str>,
    ) -> u64 {
        let Some(rules) = &self.rules else { return 0 };
        let earning = &rules.earning_rules;
        let mut granted = match (points, purchase) {
            (Some(points), None) => {
                if bad_points(points) {
                    faults.insert("validation_error");
                }
                points
            }
            (None, Some(amount)) => {
                let priced = (amount * earning.points_per_currency_unit.0)
                    .floor()
                    .to_u64()
                    .unwrap_or(0);
                if priced == 0 {
                    faults.insert("validation_error");
                }
                priced
            }
            _ => {
                faults.insert("validation_error");
                0
            }
        };
        if let Some(max) = earning.per_order_points_max {
            granted = granted.min(max);
        }
        if let Some(max) = earning.per_account_daily_points_max {
            let today = self
                .account(account)
                .earned_by_day
                .get(&day(now))
                .copied()
                .unwrap_or(0);
            let allowance = max.saturating_sub(today);
            if allowance == 0 {
                faults.insert("earning_limit_reached");
            }
            granted = granted.min(allowance);
        }
        granted
    }

    /// The justified refusals of `command`; empty means it must be accepted.
    pub fn violations(
        &self,
        command: &Command,
        actor: &Actor,
        now: Timestamp,
    ) -> BTreeSet<&'static str> {
        let now = now.0;
        let mut faults = BTreeSet::new();
        match actor.role {
            Role::Admin => {}
            Role::Merchant => {
                if !is_merchant_command(command) {
                    faults.insert("forbidden");
                } else if let Some(target) = merchant_of(command, self)
                    && Some(target.as_str()) != actor.merchant_id.as_ref().map(|id| id.as_str())
                {
                    faults.insert("forbidden");
                }
            }
            Role::Auditor | Role::Analyst => {
                faults.insert("forbidden");
            }
        }
        match command {
            Command::ConfigureProgram { rules } => {
                if rules.supply_cap < self.outstanding() {
                    faults.insert("validation_error");
                }
                let issued_today = self.issued_by_day.get(&day(now)).copied().unwrap_or(0);
                if self
                    .budget(rules, day(now))
                    .is_some_and(|budget| issued_today > budget)
                {
                    faults.insert("validation_error");
                }
            }
            Command::ApplyMerchant { merchant_id, .. } => {
                if self.merchants.contains_key(merchant_id.as_str()) {
                    faults.insert("merchant_already_exists");
                }
            }
            Command::ApproveMerchant { merchant_id, .. }
            | Command::RejectMerchant { merchant_id, .. }
            | Command::SuspendMerchant { merchant_id, .. }
            | Command::ReinstateMerchant { merchant_id, .. } => {
                let required = match command {
                    Command::ApproveMerchant { .. } | Command::RejectMerchant { .. } => {
                        MerchantState::Pending
                    }
                    Command::SuspendMerchant { .. } => MerchantState::Active,
                    _ => MerchantState::Suspended,
                };
                match self.merchants.get(merchant_id.as_str()) {
                    None => {
                        faults.insert("not_found");
                    }
                    Some(merchant) if merchant.state != required => {
                        faults.insert("invalid_merchant_transition");
                    }
                    Some(_) => {}
                }
            }
            Command::RecordDeposit { merchant_id, .. } => {
                match self.merchants.get(merchant_id.as_str()) {
                    None => {
                        faults.insert("not_found");
                    }
                    Some(merchant) if merchant.state == MerchantState::Rejected => {
                        faults.insert("merchant_not_active");
                    }
                    Some(_) => {}
                }
            }
            Command::CreateApiKey { key_id, .. } => {
                if self.api_keys.contains_key(key_id.as_str()) {
                    faults.insert("api_key_already_exists");
                }
            }
            Command::RevokeApiKey { key_id } => {
                if self.api_keys.get(key_id.as_str()) != Some(&false) {
                    faults.insert("not_found");
                }
            }
            Command::IssuePoints {
                account,
                merchant_id,
                order_ref,
                points,
                purchase_amount,
                category: _,
            } => {
                if self.rules.is_none() {
                    faults.insert("program_not_configured");
                    return faults;
                }
                self.active(merchant_id.as_str(), &mut faults);
                if self
                    .orders
                    .contains(&(merchant_id.to_string(), order_ref.to_string()))
                {
                    faults.insert("duplicate_order");
                }
                let granted = self.granted(
                    account.as_str(),
                    *points,
                    purchase_amount.map(|amount| amount.0),
                    now,
                    &mut faults,
                );
                if granted > self.cap().saturating_sub(self.outstanding()) {
                    faults.insert("supply_cap_exceeded");
                }
                if let Some(rules) = &self.rules {
                    let issued_today = self.issued_by_day.get(&day(now)).copied().unwrap_or(0);
                    if self
                        .budget(rules, day(now))
                        .is_some_and(|budget| issued_today + granted > budget)
                    {
                        faults.insert("release_budget_exceeded");
                    }
                }
                if let Some(merchant) = self.merchants.get(merchant_id.as_str())
                    && merchant.issue_price * Decimal::from(granted) > merchant.funding
                {
                    faults.insert("merchant_funding_insufficient");
                }
            }
            Command::RedeemPoints {
                account,
                merchant_id,
                points,
                ..
            }
            | Command::HoldPoints {
                account,
                merchant_id,
                points,
                ..
            } => {
                if bad_points(*points) {
                    faults.insert("validation_error");
                }
                if let Command::HoldPoints {
                    expires_in_seconds: Some(seconds),
                    ..
                } = command
                    && (*seconds == 0 || *seconds > HOLD_EXPIRY_SECONDS_MAX)
                {
                    faults.insert("validation_error");
                }
                self.active(merchant_id.as_str(), &mut faults);
                let mut settled = self.account(account.as_str());
                settled.settle(now, now);
                if *points > settled.balance() - settled.held() {
                    faults.insert("insufficient_points");
                }
                let limit = self
                    .rules
                    .as_ref()
                    .and_then(|rules| rules.risk_rules.redemption_velocity.as_ref());
                self.velocity(&settled.redemption_times, limit, *points, now, &mut faults);
            }
            Command::TransferPoints { from, to, points } => {
                if bad_points(*points) || from == to {
                    faults.insert("validation_error");
                }
                let mut settled = self.account(from.as_str());
                settled.settle(now, now);
                if *points > settled.balance() - settled.held() {
                    faults.insert("insufficient_points");
                }
                let limit = self
                    .rules
                    .as_ref()
                    .and_then(|rules| rules.risk_rules.transfer_velocity.as_ref());
                self.velocity(&settled.transfer_times, limit, *points, now, &mut faults);
            }
            Command::CaptureHold { hold_id, points } => {
                match self.holds.get((hold_id.0 as usize).wrapping_sub(1)) {
                    None => {
                        faults.insert("not_found");
                    }
                    Some((_, merchant, held, expires_at, state)) => {
                        if matches!(state, HoldState::Done) || *expires_at <= now {
                            faults.insert("hold_not_active");
                        }
                        let points = points.unwrap_or(*held);
                        if bad_points(points) || points > *held {
                            faults.insert("validation_error");
                        }
                        self.active(merchant, &mut faults);
                    }
                }
            }
            Command::ReleaseHold { hold_id } => {
                match self.holds.get((hold_id.0 as usize).wrapping_sub(1)) {
                    None => {
                        faults.insert("not_found");
                    }
                    Some((.., HoldState::Done)) => {
                        faults.insert("hold_not_active");
                    }
                    Some(_) => {}
                }
            }
            Command::ReverseIssuance {
                issuance_id,
                points,
            } => match self.issuances.get((issuance_id.0 as usize).wrapping_sub(1)) {
                None => {
                    faults.insert("not_found");
                }
                Some(issuance) => {
                    if *points == Some(0) {
                        faults.insert("validation_error");
                    }
                    let reversible = issuance.points - issuance.reversed;
                    let requested = points.unwrap_or(reversible);
                    if requested == 0 || requested > reversible {
                        faults.insert("reversal_exceeds_original");
                    }
                }
            },
            Command::ReverseRedemption {
                redemption_id,
                points,
            } => {
                match self
                    .redemptions
                    .get((redemption_id.0 as usize).wrapping_sub(1))
                {
                    None => {
                        faults.insert("not_found");
                    }
                    Some(redemption) => {
                        if *points == Some(0) {
                            faults.insert("validation_error");
                        }
                        let reversible = redemption.points - redemption.reversed;
                        let requested = points.unwrap_or(reversible);
                        if requested == 0 || requested > reversible {
                            faults.insert("reversal_exceeds_original");
                        }
                        if requested > self.cap().saturating_sub(self.outstanding()) {
                            faults.insert("supply_cap_exceeded");
                        }
                    }
                }
            }
            Command::RunExpiry { as_of } => {
                if as_of.0 > now {
                    faults.insert("validation_error");
                }
            }
        }
        faults
    }

    fn new_lot(
        &mut self,
        origin: String,
        expires_at: Option<i64>,
        points: u64,
        issuance: Option<u64>,
    ) -> ModelLot {
        self.next_lot_sequence += 1;
        ModelLot {
            sequence: self.next_lot_sequence,
            origin,
            expires_at,
            remaining: points,
            issuance,
        }
    }

    fn settle_account(&mut self, account: &str, now: i64, as_of: i64) {
        let entry = self.accounts.entry(account.to_owned()).or_default();
        let expired = entry.settle(now, as_of);
        self.expired_total += expired;
        for hold in &mut self.holds {
            if hold.0 == account && hold.3 <= now {
                hold.4 = HoldState::Done;
            }
        }
    }

    /// Carries out a command the engine accepted. `events` are consulted
    /// only for what the model does not price itself: nothing but the
    /// points an issuance granted, which the model re-derives and checks.
    pub fn carry_out(
        &mut self,
        command: &Command,
        now: Timestamp,
        events: &[Event],
    ) -> Result<(), String> {
        let now = now.0;
        match command {
            Command::ConfigureProgram { rules } => self.rules = Some(rules.as_ref().clone()),
            Command::ApplyMerchant {
                merchant_id,
                issue_price,
                redemption_value,
                ..
            } => {
                self.merchants.insert(
                    merchant_id.to_string(),
                    ModelMerchant {
                        state: MerchantState::Pending,
                        issue_price: issue_price.0,
                        redemption_value: redemption_value.0,
                        funding: Decimal::ZERO,
                    },
                );
            }
            Command::ApproveMerchant { merchant_id, .. }
            | Command::ReinstateMerchant { merchant_id, .. } => {
                self.merchant(merchant_id.as_str())?.state = MerchantState::Active;
            }
            Command::RejectMerchant { merchant_id, .. } => {
                self.merchant(merchant_id.as_str())?.state = MerchantState::Rejected;
            }
            Command::SuspendMerchant { merchant_id, .. } => {
                self.merchant(merchant_id.as_str())?.state = MerchantState::Suspended;
            }
            Command::RecordDeposit {
                merchant_id,
                amount,
            } => {
                self.merchant(merchant_id.as_str())?.funding += amount.0;
            }
            Command::CreateApiKey { key_id, .. } => {
                self.api_keys.insert(key_id.to_string(), false);
            }
            Command::RevokeApiKey { key_id } => {
                self.api_keys.insert(key_id.to_string(), true);
            }
            Command::IssuePoints {
                account,
                merchant_id,
                order_ref,
                points,
                purchase_amount,
                ..
            } => {
                let mut ignored = BTreeSet::new();
                let granted = self.granted(
                    account.as_str(),
                    *points,
                    purchase_amount.map(|amount| amount.0),
                    now,
                    &mut ignored,
                );
                let reported = events.iter().find_map(|event| match event {
                    Event::PointsIssued(issued) => Some(issued.points),
                    _ => None,
                });
                if reported != Some(granted) {
                    return Err(format!(
                        "model grants {granted}, engine issued {reported:?}"
                    ));
                }
                let rules = self.rules.clone().ok_or("issued without a programme")?;
                let expires_at = rules
                    .expiry_days
                    .map(|days| now + i64::from(days) * MICROS_PER_DAY);
                let number = self.issuances.len() as u64 + 1;
                let lot = self.new_lot(merchant_id.to_string(), expires_at, granted, Some(number));
                let merchant = self.merchant(merchant_id.as_str())?;
                merchant.funding -= merchant.issue_price * Decimal::from(granted);
                let unit_price = merchant.issue_price;
                self.issuances.push(ModelIssuance {
                    account: account.to_string(),
                    merchant: merchant_id.to_string(),
                    points: granted,
                    reversed: 0,
                    lot_sequence: lot.sequence,
                    unit_price,
                });
                let entry = self.accounts.entry(account.to_string()).or_default();
                entry.lots.push(lot);
                *entry.earned_by_day.entry(day(now)).or_default() += granted;
                self.orders
                    .insert((merchant_id.to_string(), order_ref.to_string()));
                *self.issued_by_day.entry(day(now)).or_default() += granted;
                self.issued_total += granted;
            }
            Command::RedeemPoints {
                account,
                merchant_id,
                points,
                ..
            } => {
                self.settle_account(account.as_str(), now, now);
                let entry = self.accounts.entry(account.to_string()).or_default();
                let spent = entry.take(*points);
                entry.redemption_times.push((now, *points));
                self.record_redemption(account.as_str(), merchant_id.as_str(), *points, spent, now);
            }
            Command::TransferPoints { from, to, points } => {
                self.settle_account(from.as_str(), now, now);
                let sender = self.accounts.entry(from.to_string()).or_default();
                let moved = sender.take(*points);
                sender.transfer_times.push((now, *points));
                for portion in moved {
                    let lot =
                        self.new_lot(portion.origin, portion.expires_at, portion.remaining, None);
                    self.accounts
                        .entry(to.to_string())
                        .or_default()
                        .lots
                        .push(lot);
                }
            }
            Command::HoldPoints {
                account,
                merchant_id,
                points,
                expires_in_seconds,
                ..
            } => {
                self.settle_account(account.as_str(), now, now);
                let seconds = expires_in_seconds.unwrap_or(HOLD_EXPIRY_SECONDS_DEFAULT);
                let expires_at = now + seconds as i64 * MICROS_PER_SECOND;
                self.holds.push((
                    account.to_string(),
                    merchant_id.to_string(),
                    *points,
                    expires_at,
                    HoldState::Active,
                ));
                let number = self.holds.len() as u64;
                let entry = self.accounts.entry(account.to_string()).or_default();
                entry
                    .holds
                    .insert(number, (merchant_id.to_string(), *points, expires_at));
                entry.redemption_times.push((now, *points));
            }
            Command::CaptureHold { hold_id, points } => {
                let hold = self
                    .holds
                    .get_mut((hold_id.0 as usize).wrapping_sub(1))
                    .ok_or("no such hold")?;
                hold.4 = HoldState::Done;
                let (account, merchant, held) = (hold.0.clone(), hold.1.clone(), hold.2);
                let points = points.unwrap_or(held);
                let entry = self.accounts.entry(account.clone()).or_default();
                entry.holds.remove(&hold_id.0);
                let spent = entry.take(points);
                self.record_redemption(&account, &merchant, points, spent, now);
            }
            Command::ReleaseHold { hold_id } => {
                let hold = self
                    .holds
                    .get_mut((hold_id.0 as usize).wrapping_sub(1))
                    .ok_or("no such hold")?;
                hold.4 = HoldState::Done;
                let account = hold.0.clone();
                self.accounts
                    .entry(account)
                    .or_default()
                    .holds
                    .remove(&hold_id.0);
            }
            Command::ReverseIssuance {
                issuance_id,
                points,
            } => {
                let index = (issuance_id.0 as usize).wrapping_sub(1);
                let issuance = self
                    .issuances
                    .get(index)
                    .cloned()
                    .ok_or("no such issuance")?;
                let requested = points.unwrap_or(issuance.points - issuance.reversed);
                self.settle_account(&issuance.account, now, now);
                let policy = self
                    .rules
                    .as_ref()
                    .map_or(ReversalPolicy::default(), |rules| rules.reversal_policy);
                let entry = self.accounts.entry(issuance.account.clone()).or_default();
                let mut free = entry.balance() - entry.held();
                let mut clawed = 0;
                if let Some(lot) = entry
                    .lots
                    .iter_mut()
                    .find(|lot| lot.sequence == issuance.lot_sequence)
                {
                    let taken = lot.remaining.min(requested).min(free);
                    lot.remaining -= taken;
                    clawed += taken;
                    free -= taken;
                }
                entry.sort();
                if policy == ReversalPolicy::AnyAvailable {
                    let rest = (requested - clawed).min(free);
                    entry.take(rest);
                    clawed += rest;
                }
                self.issuances[index].reversed += requested;
                self.reversed_total += clawed;
                let merchant = self.merchant(&issuance.merchant)?;
                merchant.funding += issuance.unit_price * Decimal::from(clawed);
            }
            Command::ReverseRedemption {
                redemption_id,
                points,
            } => {
                let index = (redemption_id.0 as usize).wrapping_sub(1);
                let redemption = self
                    .redemptions
                    .get(index)
                    .cloned()
                    .ok_or("no such redemption")?;
                let requested = points.unwrap_or(redemption.points - redemption.reversed);
                // Undo the spending from the end: flatten to single points,
                // last spent first, skip what was already restored.
                let restore_order: Vec<&ModelLot> = redemption
                    .spent
                    .iter()
                    .rev()
                    .flat_map(|portion| std::iter::repeat_n(portion, portion.remaining as usize))
                    .skip(redemption.reversed as usize)
                    .take(requested as usize)
                    .collect();
                let mut grouped: Vec<(ModelLot, u64)> = Vec::new();
                for portion in restore_order {
                    match grouped.last_mut() {
                        Some((last, count)) if last.sequence == portion.sequence => *count += 1,
                        _ => grouped.push((portion.clone(), 1)),
                    }
                }
                for (portion, count) in grouped {
                    let lot = self.new_lot(portion.origin, portion.expires_at, count, None);
                    self.accounts
                        .entry(redemption.account.clone())
                        .or_default()
                        .lots
                        .push(lot);
                }
                self.redemptions[index].reversed += requested;
                self.redeemed_total -= requested;
            }
            Command::RunExpiry { as_of } => {
                let names: Vec<String> = self.accounts.keys().cloned().collect();
                for name in names {
                    self.settle_account(&name, now, as_of.0);
                }
            }
        }
        Ok(())
    }

    fn record_redemption(
        &mut self,
        account: &str,
        merchant: &str,
        points: u64,
        spent: Vec<ModelLot>,
        now: i64,
    ) {
        self.redemptions.push(ModelRedemption {
            account: account.to_owned(),
            merchant: merchant.to_owned(),
            points,
            reversed: 0,
            spent,
        });
        *self.redeemed_by_day.entry(day(now)).or_default() += points;
        self.redeemed_total += points;
    }

    fn merchant(&mut self, name: &str) -> Result<&mut ModelMerchant, String> {
        self.merchants
            .get_mut(name)
            .ok_or_else(|| format!("no merchant {name}"))
    }
}
