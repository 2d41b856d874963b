//! `rebuild --out DIR`: the read models from scratch, written as CSV (and
//! JSON on request) with a manifest naming the position and head hash they
//! reflect, so two auditors can tell they looked at the same history.

use std::path::Path;

use projections::Projections;
use serde::Serialize;
use serde_json::json;

use crate::error::ReplayError;
use crate::verify::Verified;

#[derive(Debug, Serialize)]
struct BalanceRow<'row> {
    account: &'row str,
    balance: u64,
    held: u64,
    available: u64,
}

#[derive(Debug, Serialize)]
struct LotRow<'row> {
    account: &'row str,
    lot_id: u64,
    merchant_id: &'row str,
    remaining: u64,
    issued_at: String,
    expires_at: String,
}

#[derive(Debug, Serialize)]
struct SettlementRow<'row> {
    merchant_id: &'row str,
    currency: &'row str,
    points_issued: u64,
    funds_consumed: String,
    points_redeemed: u64,
    amount_owed: String,
    points_reversed: u64,
    net: String,
}

#[derive(Debug, Serialize)]
struct ClearingRow<'row> {
    issuer_merchant_id: &'row str,
    redeemer_merchant_id: &'row str,
    points: String,
}

#[derive(Debug, Serialize)]
struct SupplyRow {
    day: String,
    issued: u64,
    redeemed: u64,
    redemptions_reversed: u64,
    expired: u64,
    reversed: u64,
}

fn output_error(path: &Path, error: impl std::fmt::Display) -> ReplayError {
    ReplayError::Output(format!("cannot write {}: {error}", path.display()))
}

fn write_csv<Row: Serialize>(
    directory: &Path,
    name: &str,
    rows: impl IntoIterator<Item = Row>,
) -> Result<String, ReplayError> {
    let path = directory.join(name);
    let mut writer = csv::Writer::from_path(&path).map_err(|error| output_error(&path, error))?;
    for row in rows {
        writer
            .serialize(row)
            .map_err(|error| output_error(&path, error))?;
    }
    writer.flush().map_err(|error| output_error(&path, error))?;
    Ok(name.to_owned())
}

fn write_json(
    directory: &Path,
    name: &str,
    value: &serde_json::Value,
) -> Result<String, ReplayError> {
    let path = directory.join(name);
    let text = serde_json::to_string_pretty(value).map_err(|error| output_error(&path, error))?;
    std::fs::write(&path, text).map_err(|error| output_error(&path, error))?;
    Ok(name.to_owned())
}

fn day_text(day: i64) -> String {
    ledger_core::domain::Timestamp::from_unix_seconds(day * 86_400)
        .to_string()
        .chars()
        .take(10)
        .collect()
}

/// Writes the read models into `out` (created if missing; files in it with
/// the same names are replaced). Returns the files written.
pub fn write(
    out: &Path,
    models: &Projections,
    verified: &Verified,
    with_json: bool,
) -> Result<Vec<String>, ReplayError> {
    std::fs::create_dir_all(out).map_err(|error| output_error(out, error))?;
    let mut accounts: Vec<_> = models.balances.accounts().collect();
    accounts.sort_by(|left, right| left.0.cmp(right.0));
    let mut files = Vec::new();
    files.push(write_csv(
        out,
        "balances.csv",
        accounts.iter().map(|(account, balance)| BalanceRow {
            account: account.as_str(),
            balance: balance.balance,
            held: balance.held,
            available: balance.available(),
        }),
    )?);
    files.push(write_csv(
        out,
        "lots.csv",
        accounts.iter().flat_map(|(account, balance)| {
            balance.lots_in_order().into_iter().map(|lot| LotRow {
                account: account.as_str(),
                lot_id: lot.lot_id.0,
                merchant_id: lot.merchant_id.as_str(),
                remaining: lot.remaining,
                issued_at: lot.issued_at.to_string(),
                expires_at: lot.expires_at.map(|at| at.to_string()).unwrap_or_default(),
            })
        }),
    )?);
    let report = models.settlements.report(i64::MIN, i64::MAX);
    files.push(write_csv(
        out,
        "settlements.csv",
        report.merchants.iter().map(|merchant| SettlementRow {
            merchant_id: merchant.merchant_id.as_str(),
            currency: merchant.currency.as_str(),
            points_issued: merchant.totals.points_issued,
            funds_consumed: merchant.totals.funds_consumed.to_string(),
            points_redeemed: merchant.totals.points_redeemed,
            amount_owed: merchant.totals.amount_owed.to_string(),
            points_reversed: merchant.totals.points_reversed,
            net: merchant.net.to_string(),
        }),
    )?);
    files.push(write_csv(
        out,
        "clearing.csv",
        report.clearing.iter().map(|entry| ClearingRow {
            issuer_merchant_id: entry.issuer_merchant_id.as_str(),
            redeemer_merchant_id: entry.redeemer_merchant_id.as_str(),
            points: entry.points.to_string(),
        }),
    )?);
    let series = models.supply.series(i64::MIN, i64::MAX);
    files.push(write_csv(
        out,
        "supply_series.csv",
        series.iter().map(|(day, totals)| SupplyRow {
            day: day_text(*day),
            issued: totals.issued,
            redeemed: totals.redeemed,
            redemptions_reversed: totals.redemptions_reversed,
            expired: totals.expired,
            reversed: totals.reversed,
        }),
    )?);
    if with_json {
        let balances: Vec<_> = accounts
            .iter()
            .map(|(account, balance)| {
                json!({"account": account, "balance": balance.balance, "held": balance.held,
                       "available": balance.available(), "lots": balance.lots_in_order()})
            })
            .collect();
        files.push(write_json(out, "balances.json", &json!(balances))?);
        files.push(write_json(
            out,
            "settlements.json",
            &json!({"merchants": report.merchants, "clearing": report.clearing}),
        )?);
        let supply: Vec<_> = series
            .iter()
            .map(|(day, totals)| json!({"day": day_text(*day), "totals": totals}))
            .collect();
        files.push(write_json(out, "supply_series.json", &json!(supply))?);
    }
    let manifest = json!({
        "ledger_id": verified.ledger_id,
        "position": verified.head_position,
        "head_hash": verified.head_hash,
        "events": verified.events,
        "last_recorded_at": verified.last_recorded_at,
        "files": files,
    });
    write_json(out, "manifest.json", &manifest)?;
    files.push("manifest.json".to_owned());
    Ok(files)
}
