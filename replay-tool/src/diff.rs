//! `diff --server URL --key KEY`: reconciliation of a live server's read
//! models against the ones rebuilt here from the log, at the same
//! position. Every difference is listed; none means they agree.

use std::time::Duration;

use projections::Projections;
use serde_json::{Value, json};

use crate::error::ReplayError;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Difference {
    pub what: String,
    pub rebuilt: Value,
    pub server: Value,
}

#[derive(Debug)]
pub struct ServerReader {
    agent: ureq::Agent,
    base: String,
    authorization: String,
}

impl ServerReader {
    pub fn new(url: &str, key: &str) -> ServerReader {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        ServerReader {
            agent,
            base: url.trim_end_matches('/').to_owned(),
            authorization: format!("Bearer {key}"),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, ReplayError> {
        let url = format!("{}{path}", self.base);
        let failed = |detail: String| ReplayError::Output(format!("GET {url}: {detail}"));
        let mut response = self
            .agent
            .get(&url)
            .header("authorization", &self.authorization)
            .call()
            .map_err(|error| failed(error.to_string()))?;
        let status = response.status().as_u16();
        let body: Value = response
            .body_mut()
            .read_json()
            .map_err(|error| failed(error.to_string()))?;
        if status != 200 {
            return Err(failed(format!("{status} {body}")));
        }
        Ok(body)
    }

    /// The position the server's read models are at now.
    pub fn position(&self) -> Result<u64, ReplayError> {
        self.get("/v1/supply")?["as_of_position"]
            .as_u64()
            .ok_or_else(|| {
                ReplayError::Output("the server's answer has no as_of_position".to_owned())
            })
    }
}

fn compare(differences: &mut Vec<Difference>, what: String, rebuilt: Value, server: &Value) {
    if &rebuilt != server {
        differences.push(Difference {
            what,
            rebuilt,
            server: server.clone(),
        });
    }
}

/// Compares the rebuilt models (at `position`) with the server's, which
/// must answer at exactly that position.
pub fn diff(
    server: &ServerReader,
    models: &Projections,
    position: u64,
) -> Result<Vec<Difference>, ReplayError> {
    let mut differences = Vec::new();
    let at = |path: &str| -> Result<Value, ReplayError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let answer = server.get(&format!("{path}{separator}min_position={position}"))?;
        if answer["as_of_position"].as_u64() != Some(position) {
            return Err(ReplayError::Output(format!(
                "the server moved on from position {position} while being compared; run diff again on a quiet server or a stopped writer"
            )));
        }
        Ok(answer)
    };
    let supply = at("/v1/supply")?;
    let rebuilt_supply =
        serde_json::to_value(models.supply.view(ledger_core::domain::Timestamp(0)))
            .map_err(|error| ReplayError::Output(error.to_string()))?;
    for field in [
        "supply_cap",
        "outstanding",
        "issued_total",
        "redeemed_total",
        "expired_total",
        "reversed_total",
        "headroom",
    ] {
        compare(
            &mut differences,
            format!("supply.{field}"),
            rebuilt_supply[field].clone(),
            &supply[field],
        );
    }
    let mut accounts: Vec<_> = models.balances.accounts().collect();
    accounts.sort_by(|left, right| left.0.cmp(right.0));
    for (account, balance) in accounts {
        let answer = at(&format!("/v1/accounts/{account}"))?;
        for (field, value) in [
            ("balance", balance.balance),
            ("held", balance.held),
            ("available", balance.available()),
        ] {
            compare(
                &mut differences,
                format!("account {account} {field}"),
                json!(value),
                &answer[field],
            );
        }
        let lots: Vec<Value> = balance
            .lots_in_order()
            .into_iter()
            .map(|lot| json!({"lot_id": lot.lot_id, "remaining": lot.remaining}))
            .collect();
        let server_lots: Vec<Value> = answer["lots"]
            .as_array()
            .map(|lots| {
                lots.iter()
                    .map(|lot| json!({"lot_id": lot["lot_id"], "remaining": lot["remaining"]}))
                    .collect()
            })
            .unwrap_or_default();
        compare(
            &mut differences,
            format!("account {account} lots"),
            json!(lots),
            &json!(server_lots),
        );
    }
    let settlements = at("/v1/settlements")?;
    let report = models.settlements.report(i64::MIN, i64::MAX);
    compare(
        &mut differences,
        "settlements.merchants".to_owned(),
        serde_json::to_value(&report.merchants)
            .map_err(|error| ReplayError::Output(error.to_string()))?,
        &settlements["merchants"],
    );
    compare(
        &mut differences,
        "settlements.clearing".to_owned(),
        serde_json::to_value(&report.clearing)
            .map_err(|error| ReplayError::Output(error.to_string()))?,
        &settlements["clearing"],
    );
    // What settlements leave out: each merchant's standing and funding.
    for settlement in &report.merchants {
        let merchant_id = &settlement.merchant_id;
        let Some(rebuilt) = models.settlements.merchant(merchant_id) else {
            continue;
        };
        let answer = at(&format!("/v1/merchants/{merchant_id}"))?;
        for (field, value) in [
            ("status", serde_json::to_value(rebuilt.status)),
            ("funding_balance", serde_json::to_value(rebuilt.funding)),
            (
                "deposits_total",
                serde_json::to_value(rebuilt.deposits_total),
            ),
        ] {
            let value = value.map_err(|error| ReplayError::Output(error.to_string()))?;
            compare(
                &mut differences,
                format!("merchant {merchant_id} {field}"),
                value,
                &answer[field],
            );
        }
    }
    Ok(differences)
}
