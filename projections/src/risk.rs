//! Risk alerts raised by soft velocity limits, by account and by merchant
//! (the merchant of the command that raised it, when there is one).

use ledger_core::domain::Event;
use ledger_core::domain::event::RiskAlertRaised;
use ledger_core::domain::ids::{AccountId, MerchantId};
use ledger_core::engine::EventEnvelope;
use ledger_core::store::Position;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub position: Position,
    #[serde(flatten)]
    pub alert: RiskAlertRaised,
    pub merchant_id: Option<MerchantId>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    #[serde(with = "alerts_as_tuples")]
    alerts: Vec<Alert>,
    /// Alerts of the command being applied, waiting for the event that
    /// names its merchant.
    open: Vec<(Uuid, usize)>,
}

/// An alert's own serde form merges the event's fields into it (for
/// reports), which only self-describing formats can read back; snapshots
/// keep each as a plain tuple.
mod alerts_as_tuples {
    use ledger_core::domain::event::RiskAlertRaised;
    use ledger_core::domain::ids::MerchantId;
    use ledger_core::store::Position;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Alert;

    pub fn serialize<S: Serializer>(alerts: &[Alert], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            alerts
                .iter()
                .map(|alert| (alert.position, &alert.alert, &alert.merchant_id)),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Alert>, D::Error> {
        let tuples =
            Vec::<(Position, RiskAlertRaised, Option<MerchantId>)>::deserialize(deserializer)?;
        Ok(tuples
            .into_iter()
            .map(|(position, alert, merchant_id)| Alert {
                position,
                alert,
                merchant_id,
            })
            .collect())
    }
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
