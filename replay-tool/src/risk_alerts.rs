//! Risk alerts as the log records them, against those `decide` raises: a
//! command's alerts come just before its movement (a redemption, hold or
//! transfer) and are exactly the ones its soft velocity limits raise
//! (`decide::alerts_raised_by`). A log that drops, invents or alters an
//! alert fails at the movement it belongs to.

use ledger_core::domain::decide::alerts_raised_by;
use ledger_core::domain::event::RiskAlertRaised;
use ledger_core::domain::{Event, State};
use ledger_core::engine::EventEnvelope;
use ledger_core::store::Position;

use crate::error::ReplayError;

#[derive(Debug, Default)]
pub struct AlertCheck {
    /// Alerts recorded since the last other event.
    recorded: Vec<(Position, RiskAlertRaised)>,
}

impl AlertCheck {
    /// `envelope`'s event, before it is applied to `state`.
    pub fn check(&mut self, state: &State, envelope: &EventEnvelope) -> Result<(), ReplayError> {
        if let Event::RiskAlertRaised(alert) = &envelope.event {
            self.recorded.push((envelope.position, alert.clone()));
            return Ok(());
        }
        let raised = alerts_raised_by(state, &envelope.event);
        if self.recorded.is_empty() && raised.is_empty() {
            return Ok(());
        }
        let recorded = std::mem::take(&mut self.recorded);
        if recorded.iter().map(|(_, alert)| alert).eq(raised.iter()) {
            return Ok(());
        }
        Err(ReplayError::AlertsMismatch {
            position: envelope.position,
            event_kind: envelope.event.kind(),
            raised: describe(raised.iter()),
            recorded: describe(recorded.iter().map(|(_, alert)| alert)),
        })
    }

    /// At the end of the log: no alert may be left without its movement.
    pub fn finish(&self) -> Result<(), ReplayError> {
        match self.recorded.first() {
            None => Ok(()),
            Some((position, _)) => Err(ReplayError::AlertsMismatch {
                position: *position,
                event_kind: "risk_alert_raised",
                raised: "no alert (no movement follows)".to_owned(),
                recorded: describe(self.recorded.iter().map(|(_, alert)| alert)),
            }),
        }
    }
}

fn describe<'alert>(alerts: impl Iterator<Item = &'alert RiskAlertRaised>) -> String {
    let described: Vec<String> = alerts
        .map(|alert| {
            format!(
                "{} of {}: {} by {} within {} s over the soft limit {}",
                alert.rule,
                alert.account,
                alert.observed,
                alert.measure,
                alert.window_seconds,
                alert.limit
            )
        })
        .collect();
    if described.is_empty() {
        "no alert".to_owned()
    } else {
        described.join("; ")
    }
}
