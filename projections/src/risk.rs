//! Risk alerts raised by soft velocity limits, by account and by merchant
//! (the merchant of the command that raised it, when there is one).

use ledger_core::domain::Event;
use ledger_core::domain::event::RiskAlertRaised;
use ledger_core::domain::ids::{AccountId, MerchantId};
use ledger_core::engine::EventEnvelope;
use ledger_core::store::Position;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub position: Position,
    #[serde(flatten)]
    pub alert: RiskAlertRaised,
    pub merchant_id: Option<MerchantId>,
}

#[derive(Debug, Clone, Default)]
pub struct Risk {
    alerts: Vec<Alert>,
    /// Alerts of the command being applied, waiting for the event that
    /// names its merchant.
    open: Vec<(Uuid, usize)>,
}

impl Risk {
    pub fn apply(&mut self, envelope: &EventEnvelope) {
        let command = envelope.command_id;
        self.open.retain(|(key, _)| *key == command);
        let merchant_id = match &envelope.event {
            Event::PointsRedeemed(redeemed) => Some(&redeemed.merchant_id),
            Event::PointsHeld(held) => Some(&held.merchant_id),
            _ => None,
        };
        if let Some(merchant_id) = merchant_id {
            for (_, index) in &self.open {
                if let Some(alert) = self.alerts.get_mut(*index) {
                    alert.merchant_id = Some(merchant_id.clone());
                }
            }
        }
        if let Event::RiskAlertRaised(raised) = &envelope.event {
            self.open.push((command, self.alerts.len()));
            self.alerts.push(Alert {
                position: envelope.position,
                alert: raised.clone(),
                merchant_id: None,
            });
        }
    }

    pub fn all(&self) -> &[Alert] {
        &self.alerts
    }

    pub fn for_account<'risk>(
        &'risk self,
        account: &'risk AccountId,
    ) -> impl Iterator<Item = &'risk Alert> {
        self.alerts
            .iter()
            .filter(move |alert| &alert.alert.account == account)
    }

    pub fn for_merchant<'risk>(
        &'risk self,
        merchant_id: &'risk MerchantId,
    ) -> impl Iterator<Item = &'risk Alert> {
        self.alerts
            .iter()
            .filter(move |alert| alert.merchant_id.as_ref() == Some(merchant_id))
    }
}
