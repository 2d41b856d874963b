//! `report`: the audit report — flows per month (issued, redeemed,
//! transferred, expired i.e. breakage, reversed), cap and release-budget
//! utilisation, merchant settlement totals, risk alerts and the largest
//! movements — folded from the verified events alone.

use std::collections::BTreeMap;

use ledger_core::domain::{Event, State};
use projections::Projections;
use projections::risk::Alert;
use projections::settlements::{ClearingEntry, MerchantSettlement};
use serde::Serialize;

use crate::source::VerifiedEvent;

/// How many of the largest movements the report lists.
const LARGEST_MOVEMENTS: usize = 10;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MonthFlows {
    pub issued: u64,
    pub issuances: u64,
    pub redeemed: u64,
    pub redemptions: u64,
    pub transferred: u64,
    pub transfers: u64,
    /// Breakage: points that expired unspent.
    pub expired: u64,
    pub issuance_reversed: u64,
    pub redemption_reversed: u64,
    pub risk_alerts: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Movement {
    pub points: u64,
    pub position: u64,
    pub r#type: &'static str,
    pub account: String,
    pub recorded_at: String,
}

#[derive(Debug, Default)]
pub struct ReportBuilder {
    months: BTreeMap<String, MonthFlows>,
    largest: Vec<Movement>,
    /// Most issued in any one release period, against its budget.
    peak_period_use: Option<(String, u64, Option<u64>)>,
}

impl ReportBuilder {
    pub fn observe(&mut self, verified: &VerifiedEvent, state: &State) {
        let envelope = &verified.envelope;
        let month: String = envelope.recorded_at.to_string().chars().take(7).collect();
        let flows = self.months.entry(month).or_default();
        let moved = match &envelope.event {
            Event::PointsIssued(event) => {
                flows.issued += event.points;
                flows.issuances += 1;
                let period = state.period_at(state.period.start);
                let budget = state.release_budget(&period);
                let use_now = state.period.issued;
                if self
                    .peak_period_use
                    .as_ref()
                    .is_none_or(|(_, peak, _)| use_now > *peak)
                {
                    self.peak_period_use = Some((state.period.start.to_string(), use_now, budget));
                }
                Some((event.points, &event.account))
            }
            Event::PointsRedeemed(event) => {
                flows.redeemed += event.points;
                flows.redemptions += 1;
                Some((event.points, &event.account))
            }
            Event::HoldCaptured(event) => {
                flows.redeemed += event.points;
                flows.redemptions += 1;
                Some((event.points, &event.account))
            }
            Event::PointsTransferred(event) => {
                flows.transferred += event.points;
                flows.transfers += 1;
                Some((event.points, &event.from))
            }
            Event::PointsExpired(event) => {
                flows.expired += event.points;
                None
            }
            Event::IssuanceReversed(event) => {
                flows.issuance_reversed += event.points_reversed;
                Some((event.points_reversed, &event.account))
            }
            Event::RedemptionReversed(event) => {
                flows.redemption_reversed += event.points;
                None
            }
            Event::RiskAlertRaised(_) => {
                flows.risk_alerts += 1;
                None
            }
            _ => None,
        };
        if let Some((points, account)) = moved {
            let smallest_kept = self.largest.last().map_or(0, |movement| movement.points);
            if self.largest.len() < LARGEST_MOVEMENTS || points > smallest_kept {
                self.largest.push(Movement {
                    points,
                    position: envelope.position,
                    r#type: envelope.event.kind(),
                    account: account.as_str().to_owned(),
                    recorded_at: envelope.recorded_at.to_string(),
                });
                self.largest.sort_by(|left, right| {
                    right
                        .points
                        .cmp(&left.points)
                        .then(left.position.cmp(&right.position))
                });
                self.largest.truncate(LARGEST_MOVEMENTS);
            }
        }
    }

    pub fn finish(self, state: &State, models: &Projections) -> Report {
        let supply_cap = state.supply_cap();
        let outstanding = state.supply.outstanding().unwrap_or(0);
        let settlements = models.settlements.report(i64::MIN, i64::MAX);
        Report {
            months: self.months,
            supply: SupplyUse {
                supply_cap,
                outstanding,
                cap_utilisation: share(outstanding, supply_cap),
                issued_total: state.supply.issued_total,
                redeemed_total: state.supply.redeemed_total,
                expired_total: state.supply.expired_total,
                reversed_total: state.supply.reversed_total,
                peak_period: self
                    .peak_period_use
                    .map(|(start, issued, budget)| PeriodUse {
                        start,
                        issued,
                        budget,
                        budget_utilisation: share(issued, budget),
                    }),
            },
            merchants: settlements.merchants,
            clearing: settlements.clearing,
            risk_alerts: models.risk.all().to_vec(),
            largest_movements: self.largest,
        }
    }
}

/// `part` as a fraction of a positive `whole`.
fn share(part: u64, whole: Option<u64>) -> Option<f64> {
    whole
        .filter(|whole| *whole > 0)
        .map(|whole| part as f64 / whole as f64)
}

/// The audit report, as `--json` prints it; `report_text` renders it for
/// people.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// By month of recording, `YYYY-MM`.
    pub months: BTreeMap<String, MonthFlows>,
    pub supply: SupplyUse,
    /// All-time settlement totals per merchant.
    pub merchants: Vec<MerchantSettlement>,
    /// Whose points were spent where.
    pub clearing: Vec<ClearingEntry>,
    pub risk_alerts: Vec<Alert>,
    pub largest_movements: Vec<Movement>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SupplyUse {
    pub supply_cap: Option<u64>,
    pub outstanding: u64,
    pub cap_utilisation: Option<f64>,
    pub issued_total: u64,
    pub redeemed_total: u64,
    pub expired_total: u64,
    pub reversed_total: u64,
    /// The release period that issued most, against its budget.
    pub peak_period: Option<PeriodUse>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeriodUse {
    pub start: String,
    pub issued: u64,
    pub budget: Option<u64>,
    pub budget_utilisation: Option<f64>,
}
