//! Supply: the cap, the cumulative totals, headroom, the current release
//! period's budget and use, and a daily series for charts.

use std::collections::BTreeMap;

use ledger_core::domain::program::ProgramRules;
use ledger_core::domain::state::{period_start, release_budget};
use ledger_core::domain::{Event, Points, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplyDay {
    pub issued: Points,
    /// Redemptions and captures, before cancellations (what the release
    /// budget counts).
    pub redeemed: Points,
    pub redemptions_reversed: Points,
    pub expired: Points,
    pub reversed: Points,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supply {
    rules: Option<ProgramRules>,
    pub issued_total: Points,
    /// Net of cancelled redemptions.
    pub redeemed_total: Points,
    pub expired_total: Points,
    /// Clawed back by issuance reversals.
    pub reversed_total: Points,
    days: BTreeMap<i64, SupplyDay>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodView {
    pub start: Timestamp,
    pub length_days: u32,
    /// `None`: no release policy, only the cap limits issuance.
    pub budget: Option<Points>,
    pub issued: Points,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupplyView {
    pub supply_cap: Option<Points>,
    pub outstanding: Points,
    pub issued_total: Points,
    pub redeemed_total: Points,
    pub expired_total: Points,
    pub reversed_total: Points,
    pub headroom: Points,
    pub current_period: PeriodView,
}

impl Supply {
    fn day(&mut self, at: Timestamp) -> &mut SupplyDay {
        self.days.entry(at.day_index()).or_default()
    }

    pub fn outstanding(&self) -> Points {
        self.issued_total
            .saturating_sub(self.redeemed_total)
            .saturating_sub(self.expired_total)
            .saturating_sub(self.reversed_total)
    }

    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::ProgramConfigured(configured) => self.rules = Some(configured.rules.clone()),
            Event::PointsIssued(issued) => {
                self.issued_total += issued.points;
                self.day(issued.issued_at).issued += issued.points;
            }
            Event::PointsRedeemed(redeemed) => {
                self.redeemed_total += redeemed.points;
                self.day(redeemed.redeemed_at).redeemed += redeemed.points;
            }
            Event::HoldCaptured(captured) => {
                self.redeemed_total += captured.points;
                self.day(captured.captured_at).redeemed += captured.points;
            }
            Event::RedemptionReversed(reversed) => {
                self.redeemed_total = self.redeemed_total.saturating_sub(reversed.points);
                self.day(reversed.reversed_at).redemptions_reversed += reversed.points;
            }
            Event::PointsExpired(expired) => {
                self.expired_total += expired.points;
                self.day(expired.expired_at).expired += expired.points;
            }
            Event::IssuanceReversed(reversed) => {
                self.reversed_total += reversed.points_reversed;
                self.day(reversed.reversed_at).reversed += reversed.points_reversed;
            }
            _ => {}
        }
    }

    fn sum_days(&self, first_day: i64, days: u32, field: impl Fn(&SupplyDay) -> Points) -> Points {
        self.days
            .range(first_day..first_day + i64::from(days))
            .map(|(_, day)| field(day))
            .sum()
    }

    /// The supply as of `now` (the current period is the one `now` is in).
    pub fn view(&self, now: Timestamp) -> SupplyView {
        let release = self.rules.as_ref().and_then(|rules| rules.release.as_ref());
        let length_days = release.map_or(1, |release| release.period_days);
        let start = period_start(now, length_days);
        let first_day = start.day_index();
        let previous_redeemed =
            self.sum_days(first_day - i64::from(length_days), length_days, |day| {
                day.redeemed
            });
        let supply_cap = self.rules.as_ref().map(|rules| rules.supply_cap);
        let outstanding = self.outstanding();
        SupplyView {
            supply_cap,
            outstanding,
            issued_total: self.issued_total,
            redeemed_total: self.redeemed_total,
            expired_total: self.expired_total,
            reversed_total: self.reversed_total,
            headroom: supply_cap.map_or(0, |cap| cap.saturating_sub(outstanding)),
            current_period: PeriodView {
                start,
                length_days,
                budget: release_budget(release, previous_redeemed),
                issued: self.sum_days(first_day, length_days, |day| day.issued),
            },
        }
    }

    /// The daily series over UTC days `from_day..to_day`.
    pub fn series(&self, from_day: i64, to_day: i64) -> Vec<(i64, SupplyDay)> {
        self.days
            .range(from_day..to_day)
            .map(|(day, totals)| (*day, *totals))
            .collect()
    }
}
