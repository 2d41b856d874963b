//! `report` for people: the audit report as titled tables. `--json`
//! prints the same report whole, for machines.

use comfy_table::{CellAlignment, Table, presets};

use crate::report::Report;

/// Clearing pairs and risk alerts shown in text; `--json` has them all.
const ROWS_SHOWN: usize = 20;

pub fn render(report: &Report) -> String {
    let mut sections = vec![
        section(
            "Flows by month (points; how many in brackets)",
            months(report),
        ),
        section("Supply", supply(report)),
        section("Merchant settlements, all time", merchants(report)),
        section("Clearing: whose points were spent where", clearing(report)),
        section("Risk alerts", risk_alerts(report)),
        section("Largest movements", largest_movements(report)),
    ];
    sections.retain(|section| !section.is_empty());
    sections.join("\n\n")
}

fn section(title: &str, body: String) -> String {
    format!("{title}\n{}\n{body}", "-".repeat(title.len()))
}

/// A table whose first `text_columns` columns are text (left-aligned) and
/// the rest figures (right-aligned).
fn table(header: &[&str], text_columns: usize, rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_style(presets::ASCII_BORDERS_ONLY_CONDENSED);
    table.set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut().skip(text_columns) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    table.to_string()
}

fn months(report: &Report) -> String {
    if report.months.is_empty() {
        return "no events".to_owned();
    }
    let counted = |points: u64, count: u64| format!("{} ({})", grouped(points), grouped(count));
    let rows = report
        .months
        .iter()
        .map(|(month, flows)| {
            vec![
                month.clone(),
                counted(flows.issued, flows.issuances),
                counted(flows.redeemed, flows.redemptions),
                counted(flows.transferred, flows.transfers),
                grouped(flows.expired),
                grouped(flows.issuance_reversed),
                grouped(flows.redemption_reversed),
                grouped(flows.risk_alerts),
            ]
        })
        .collect();
    table(
        &[
            "month",
            "issued",
            "redeemed",
            "transferred",
            "expired (breakage)",
            "issuances reversed",
            "redemptions reversed",
            "risk alerts",
        ],
        1,
        rows,
    )
}

fn supply(report: &Report) -> String {
    let supply = &report.supply;
    let cap = supply
        .supply_cap
        .map_or_else(|| "none configured".to_owned(), grouped);
    let mut lines = vec![
        format!("supply cap            {cap}"),
        format!(
            "outstanding           {}{}",
            grouped(supply.outstanding),
            percent_of(supply.cap_utilisation, "the cap")
        ),
        format!("issued in all         {}", grouped(supply.issued_total)),
        format!("redeemed in all       {}", grouped(supply.redeemed_total)),
        format!("expired in all        {}", grouped(supply.expired_total)),
        format!("reversed in all       {}", grouped(supply.reversed_total)),
    ];
    if let Some(peak) = &supply.peak_period {
        let budget = peak.budget.map_or_else(
            || ", no release budget".to_owned(),
            |budget| {
                format!(
                    " of a budget of {}{}",
                    grouped(budget),
                    percent_of(peak.budget_utilisation, "it")
                )
            },
        );
        lines.push(format!(
            "busiest release period from {}: {} issued{budget}",
            peak.start,
            grouped(peak.issued)
        ));
    }
    lines.join("\n")
}

fn merchants(report: &Report) -> String {
    if report.merchants.is_empty() {
        return "no merchants".to_owned();
    }
    let rows = report
        .merchants
        .iter()
        .map(|merchant| {
            let totals = &merchant.totals;
            vec![
                merchant.merchant_id.to_string(),
                merchant.currency.to_string(),
                grouped(totals.points_issued),
                totals.funds_consumed.to_string(),
                grouped(totals.points_redeemed),
                totals.amount_owed.to_string(),
                grouped(totals.points_reversed),
                merchant.net.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "merchant",
            "currency",
            "points issued",
            "funds consumed",
            "points redeemed",
            "amount owed",
            "points reversed",
            "net owed to it",
        ],
        2,
        rows,
    )
}

fn clearing(report: &Report) -> String {
    if report.clearing.is_empty() {
        return "no points spent".to_owned();
    }
    let mut pairs: Vec<_> = report.clearing.iter().collect();
    pairs.sort_by_key(|pair| std::cmp::Reverse(pair.points));
    let rows = pairs
        .iter()
        .take(ROWS_SHOWN)
        .map(|pair| {
            vec![
                pair.issuer_merchant_id.to_string(),
                pair.redeemer_merchant_id.to_string(),
                grouped_signed(pair.points),
            ]
        })
        .collect();
    let shown = table(&["issued by", "spent at", "points"], 2, rows);
    with_rest(shown, pairs.len(), "pairs", "largest")
}

fn risk_alerts(report: &Report) -> String {
    let alerts = &report.risk_alerts;
    if alerts.is_empty() {
        return "none raised".to_owned();
    }
    let rows = alerts
        .iter()
        .rev()
        .take(ROWS_SHOWN)
        .map(|raised| {
            let alert = &raised.alert;
            vec![
                raised.position.to_string(),
                alert.account.to_string(),
                raised
                    .merchant_id
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string),
                format!("{} ({})", alert.rule, alert.measure),
                grouped(alert.observed),
                grouped(alert.limit),
                format!("{} s", grouped(alert.window_seconds)),
            ]
        })
        .collect();
    let shown = table(
        &[
            "position", "account", "merchant", "rule", "observed", "limit", "window",
        ],
        4,
        rows,
    );
    with_rest(shown, alerts.len(), "alerts", "latest")
}

fn largest_movements(report: &Report) -> String {
    if report.largest_movements.is_empty() {
        return "none".to_owned();
    }
    let rows = report
        .largest_movements
        .iter()
        .map(|movement| {
            vec![
                movement.r#type.to_owned(),
                movement.account.clone(),
                movement.recorded_at.clone(),
                movement.position.to_string(),
                grouped(movement.points),
            ]
        })
        .collect();
    table(
        &["type", "account", "recorded at", "position", "points"],
        3,
        rows,
    )
}

/// `shown`, with a note when `total` is more than it holds.
fn with_rest(shown: String, total: usize, what: &str, which: &str) -> String {
    if total <= ROWS_SHOWN {
        return shown;
    }
    format!("{shown}\nthe {which} {ROWS_SHOWN} of {total} {what}; --json lists them all")
}

/// " (p% of WHAT)" for a known share.
fn percent_of(share: Option<f64>, what: &str) -> String {
    match share {
        None => String::new(),
        Some(share) if share > 0.0 && share < 0.0001 => format!(" (under 0.01% of {what})"),
        Some(share) => format!(" ({:.2}% of {what})", share * 100.0),
    }
}

/// Digits in groups of three: 1,234,567.
fn grouped(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn grouped_signed(number: i128) -> String {
    let magnitude = u64::try_from(number.unsigned_abs())
        .map_or_else(|_| number.unsigned_abs().to_string(), grouped);
    if number < 0 {
        format!("-{magnitude}")
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_grouped_in_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped_signed(-12_345), "-12,345");
        assert_eq!(percent_of(Some(0.5), "the cap"), " (50.00% of the cap)");
        assert_eq!(percent_of(Some(1e-9), "it"), " (under 0.01% of it)");
        assert_eq!(percent_of(None, "it"), "");
    }
}
