//! The HTTP API against the real `ledger-server` process on a free local
//! port: the programme story end to end, every error code, roles and
//! merchant scope, idempotency across restarts, batches, the live event
//! stream, metrics, graceful shutdown, and `kill -9` under load.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger_core::store::snapshot::SnapshotStore;
use ledger_core::store::storage::OsStorage;
use serde_json::{Value, json};
use tests::server::{ADMIN_KEY, Answer, Server};

fn start(directory: &Path) -> Server {
    start_with(directory, &[])
}

fn start_with(directory: &Path, extra_args: &[&str]) -> Server {
    // No hourly expiry run in the middle of a test's positions.
    let mut arguments = vec!["--expiry-interval-seconds", "0"];
    arguments.extend_from_slice(extra_args);
    Server::start(
        Path::new(env!("CARGO_BIN_EXE_ledger-server-under-test")),
        directory,
        &arguments,
    )
}

fn accepted(answer: &Answer, what: &str) -> u64 {
    assert_eq!(answer.status, 201, "{what}: {}", answer.text);
    assert_eq!(answer.content_type, "application/json", "{what}");
    answer.body["position"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: no position in {}", answer.text))
}

/// Snapshot files in `directory`, as the server's snapshot store lists them.
fn snapshot_files(directory: &Path) -> usize {
    SnapshotStore::new(OsStorage, directory.to_path_buf())
        .candidates()
        .expect("lists the snapshots")
        .len()
}

fn refused(answer: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(
        (answer.status, answer.code()),
        (status, code),
        "{what}: {}",
        answer.text
    );
    assert!(
        answer.content_type.starts_with("application/problem+json"),
        "{what}: content type {}",
        answer.content_type
    );
    for field in ["type", "title", "status", "detail", "code"] {
        assert!(
            !answer.body[field].is_null(),
            "{what}: no `{field}` in {}",
            answer.text
        );
    }
}

fn head(server: &Server) -> u64 {
    server.admin("GET", "/readyz", None).body["head_position"]
        .as_u64()
        .expect("readyz reports the head")
}

/// A programme with two active, funded merchants (`cafe` and `books`, in
/// EUR, issuing at 0.01 and redeemed at 0.008).
fn alliance(server: &Server, program: Value) {
    accepted(
        &server.admin("PUT", "/v1/program", Some(&program)),
        "program",
    );
    for merchant in ["cafe", "books"] {
        let application = json!({
            "merchant_id": merchant, "name": format!("The {merchant}"), "currency": "EUR",
            "issue_price": "0.01", "redemption_value": "0.008",
        });
        accepted(
            &server.admin("POST", "/v1/merchants", Some(&application)),
            merchant,
        );
        accepted(
            &server.admin("POST", &format!("/v1/merchants/{merchant}/approve"), None),
            "approve",
        );
        accepted(
            &server.admin(
                "POST",
                &format!("/v1/merchants/{merchant}/deposits"),
                Some(&json!({"amount": "10000"})),
            ),
            "deposit",
        );
    }
}

fn issue(server: &Server, account: &str, merchant: &str, order: &str, points: u64) -> Answer {
    server.admin(
        "POST",
        "/v1/issuances",
        Some(&json!({"account": account, "merchant_id": merchant, "order_ref": order, "points": points})),
    )
}

fn account(server: &Server, account: &str, min_position: u64) -> Value {
    let answer = server.admin(
        "GET",
        &format!("/v1/accounts/{account}?min_position={min_position}"),
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.body["as_of_position"].as_u64() >= Some(min_position));
    answer.body
}

#[test]
fn a_programme_story_adds_up_in_balances_settlements_and_supply() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let server = start(directory.path());
    alliance(
        &server,
        json!({
            "supply_cap": 1_000_000,
            "earning_rules": {
                "points_per_currency_unit": "10",
                "category_multipliers": [{"category": "books", "multiplier": "2"}],
            },
        }),
    );
    // Earning by the rules: 12.34 EUR × 10, rounded down, × 2 for books.
    let earned = server.admin(
        "POST",
        "/v1/issuances",
        Some(
            &json!({"account": "alice", "merchant_id": "books", "order_ref": "b-1",
                     "purchase_amount": "12.34", "category": "books"}),
        ),
    );
    accepted(&earned, "earning by rules");
    assert_eq!(
        earned.body["events"][0]["data"]["points"],
        json!(246),
        "{}",
        earned.text
    );
    let books_issuance = earned.body["issuance_id"].as_u64().expect("issuance id");
    let cafe_issuance = issue(&server, "alice", "cafe", "c-1", 1_000);
    accepted(&cafe_issuance, "cafe issuance");
    let cafe_issuance = cafe_issuance.body["issuance_id"]
        .as_u64()
        .expect("issuance id");

    // Spent at the other merchant, moved, held and captured, held and released.
    let redemption = server.admin(
        "POST",
        "/v1/redemptions",
        Some(
            &json!({"account": "alice", "merchant_id": "books", "points": 300, "order_ref": "r-1"}),
        ),
    );
    accepted(&redemption, "redemption");
    let redemption_id = redemption.body["redemption_id"]
        .as_u64()
        .expect("redemption id");
    let transfer = server.admin(
        "POST",
        "/v1/transfers",
        Some(&json!({"from": "alice", "to": "bob", "points": 200})),
    );
    accepted(&transfer, "transfer");
    assert!(transfer.body["transfer_id"].is_u64());
    let hold = server.admin(
        "POST",
        "/v1/holds",
        Some(&json!({"account": "alice", "merchant_id": "cafe", "points": 100})),
    );
    accepted(&hold, "hold");
    let hold_id = hold.body["hold_id"].as_u64().expect("hold id");
    let held = account(&server, "alice", accepted(&hold, "hold"));
    assert_eq!(
        (
            held["balance"].as_u64(),
            held["held"].as_u64(),
            held["available"].as_u64()
        ),
        (Some(746), Some(100), Some(646))
    );
    let capture = server.admin(
        "POST",
        &format!("/v1/holds/{hold_id}/capture"),
        Some(&json!({"points": 60})),
    );
    accepted(&capture, "capture");
    assert!(capture.body["redemption_id"].is_u64());
    let second_hold = server.admin(
        "POST",
        "/v1/holds",
        Some(&json!({"account": "bob", "merchant_id": "cafe", "points": 50})),
    );
    let second_hold_id = second_hold.body["hold_id"].as_u64().expect("hold id");
    accepted(
        &server.admin("POST", &format!("/v1/holds/{second_hold_id}/release"), None),
        "release",
    );
    // A hold that runs out, ended by the expiry run.
    let short_hold = server.admin(
        "POST",
        "/v1/holds",
        Some(&json!({"account": "bob", "merchant_id": "cafe", "points": 10, "expires_in_seconds": 1})),
    );
    accepted(&short_hold, "short hold");

    // Reversals: part of the cafe issuance, all of the redemption.
    let reversal = server.admin(
        "POST",
        "/v1/reversals",
        Some(&json!({"issuance_id": cafe_issuance, "points": 100})),
    );
    accepted(&reversal, "issuance reversal");
    assert!(reversal.body["reversal_id"].is_u64());
    accepted(
        &server.admin(
            "POST",
            "/v1/reversals",
            Some(&json!({"redemption_id": redemption_id})),
        ),
        "redemption reversal",
    );
    assert!(books_issuance > 0);
    std::thread::sleep(Duration::from_millis(1_100));
    let run = server.admin("POST", "/v1/expiry-runs", Some(&json!({})));
    let last = accepted(&run, "expiry run");
    let completed = run.body["events"]
        .as_array()
        .and_then(|events| {
            events
                .iter()
                .find(|event| event["type"] == "expiry_run_completed")
        })
        .expect("the run reports itself");
    assert_eq!(
        completed["data"]["holds_timed_out"],
        json!(1),
        "{}",
        run.text
    );

    // alice: 246 + 1000 − 300 − 200 − 60 (captured) − 100 (reversed) + 300 (redemption reversed).
    let alice = account(&server, "alice", last);
    let bob = account(&server, "bob", last);
    assert_eq!(
        (alice["balance"].as_u64(), alice["held"].as_u64()),
        (Some(886), Some(0))
    );
    assert_eq!(
        (bob["balance"].as_u64(), bob["available"].as_u64()),
        (Some(200), Some(200))
    );

    let supply = server
        .admin("GET", &format!("/v1/supply?min_position={last}"), None)
        .body;
    assert_eq!(supply["issued_total"], json!(1_246));
    assert_eq!(supply["redeemed_total"], json!(60));
    assert_eq!(supply["reversed_total"], json!(100));
    assert_eq!(supply["outstanding"], json!(1_086));
    assert_eq!(supply["headroom"], json!(1_000_000 - 1_086));
    assert_eq!(
        supply["outstanding"].as_u64(),
        Some(886 + 200),
        "balances sum to the outstanding supply"
    );

    let settlements = server.admin("GET", &format!("/v1/settlements?min_position={last}"), None);
    assert_eq!(settlements.status, 200, "{}", settlements.text);
    let merchants: BTreeMap<String, Value> = settlements.body["merchants"]
        .as_array()
        .expect("merchants")
        .iter()
        .map(|merchant| {
            (
                merchant["merchant_id"].as_str().unwrap_or("").to_owned(),
                merchant.clone(),
            )
        })
        .collect();
    assert_eq!(merchants["cafe"]["points_issued"], json!(1_000));
    assert_eq!(merchants["cafe"]["points_redeemed"], json!(60));
    assert_eq!(merchants["books"]["points_issued"], json!(246));
    assert_eq!(
        merchants["books"]["points_redeemed"],
        json!(0),
        "the redemption was reversed"
    );
    let clearing = settlements.body["clearing"]
        .as_array()
        .expect("clearing matrix");
    let cleared: u64 = clearing
        .iter()
        .filter_map(|entry| entry["points"].as_u64())
        .sum();
    assert_eq!(
        cleared, 60,
        "only the captured points cleared: {}",
        settlements.text
    );

    let merchant = server.admin(
        "GET",
        &format!("/v1/merchants/cafe?min_position={last}"),
        None,
    );
    assert_eq!(
        merchant.body["status"],
        json!("active"),
        "{}",
        merchant.text
    );
    assert_eq!(merchant.body["totals"]["points_issued"], json!(1_000));

    let history = server.admin("GET", "/v1/accounts/alice/history?limit=3", None);
    let page = history.body["events"].as_array().expect("events");
    assert_eq!(page.len(), 3, "{}", history.text);
    assert_eq!(page[0]["type"], json!("points_issued"));
    let next = history.body["next_after"].as_u64().expect("next_after");
    let rest = server.admin(
        "GET",
        &format!("/v1/accounts/alice/history?after={next}&limit=1000"),
        None,
    );
    assert!(
        rest.body["events"]
            .as_array()
            .is_some_and(|events| !events.is_empty())
    );
    // Every event the server wrote matches the committed schemas.
    let schemas = tests::schemas::Schemas::load().expect("the committed schemas compile");
    let all = server.admin("GET", "/v1/events?limit=10000", None);
    let stored = all.body["events"].as_array().expect("events");
    assert_eq!(stored.len(), 20, "{}", all.text);
    for envelope in stored {
        schemas
            .check_envelope(envelope)
            .unwrap_or_else(|error| panic!("{error}"));
    }
}

/// An account's answer says how much will have expired by a horizon (30
/// days unless the query names one), for members to be told in time.
#[test]
fn an_account_answer_says_what_expires_soon() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let server = start(directory.path());
    alliance(&server, json!({"supply_cap": 1_000_000, "expiry_days": 90}));
    let issued = accepted(&issue(&server, "eve", "cafe", "e-1", 100), "issuance");
    let expiring = |query: &str| {
        let answer = server.admin(
            "GET",
            &format!("/v1/accounts/eve?min_position={issued}{query}"),
            None,
        );
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body["expiring"].clone()
    };
    let soon = expiring("");
    assert_eq!(
        (&soon["within_days"], &soon["points"]),
        (&json!(30), &json!(0)),
        "{soon}"
    );
    assert!(soon["by"].is_string(), "{soon}");
    let by_then = expiring("&expiring_within_days=91");
    assert_eq!(by_then["points"], json!(100), "{by_then}");
    for bad in ["99999", "-1", "soon"] {
        refused(
            &server.admin(
                "GET",
                &format!("/v1/accounts/eve?expiring_within_days={bad}"),
                None,
            ),
            400,
            "validation_error",
            bad,
        );
    }
}

/// The risk read model over HTTP: the alerts a soft velocity limit
/// raised, filtered by account and merchant and paged by position.
#[test]
fn risk_alerts_are_listed_filtered_and_paged() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let server = start(directory.path());
    alliance(
        &server,
        json!({"supply_cap": 1_000_000, "risk_rules": {
            "redemption_velocity": {"window_seconds": 3_600, "soft_count_max": 1}}}),
    );
    accepted(&issue(&server, "alice", "cafe", "a-1", 100), "issuance");
    let redeem = |order: &str| {
        server.admin(
            "POST",
            "/v1/redemptions",
            Some(&json!({"account": "alice", "merchant_id": "books", "points": 10, "order_ref": order})),
        )
    };
    accepted(&redeem("r-1"), "first redemption, within the soft limit");
    let second = redeem("r-2");
    let head = accepted(&second, "second redemption, past the soft limit");
    let alert_position = second.body["events"][0]["position"]
        .as_u64()
        .expect("the alert comes first");
    let list = |query: &str| {
        let answer = server.admin(
            "GET",
            &format!("/v1/risk-alerts?min_position={head}{query}"),
            None,
        );
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body
    };
    let all = list("");
    assert_eq!(
        all["alerts"],
        json!([{
            "position": alert_position, "account": "alice", "merchant_id": "books",
            "rule": "redemption_velocity", "measure": "count", "observed": 2, "limit": 1,
            "window_seconds": 3_600, "raised_at": all["alerts"][0]["raised_at"],
        }]),
        "{all}"
    );
    assert_eq!(all["next_after"], json!(alert_position));
    assert_eq!(
        list("&account=alice")["alerts"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(list("&account=bob")["alerts"], json!([]));
    assert_eq!(list("&merchant_id=cafe")["alerts"], json!([]));
    let after = list(&format!("&after={alert_position}"));
    assert_eq!(
        (&after["alerts"], &after["next_after"]),
        (&json!([]), &json!(alert_position))
    );
    refused(
        &server.admin("GET", "/v1/risk-alerts?limit=0", None),
        400,
        "validation_error",
        "a page of nothing",
    );
    refused(
        &server.admin("GET", "/v1/risk-alerts?account=no%20spaces", None),
        400,
        "validation_error",
        "a malformed account",
    );
}

#[test]
fn every_error_code_of_the_contract_and_no_event_from_a_refusal() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let server = start_with(
        directory.path(),
        &[
            "--body-limit-bytes",
            "4096",
            "--min-position-wait-ms",
            "100",
        ],
    );
    refused(
        &issue(&server, "alice", "cafe", "o-0", 10),
        409,
        "program_not_configured",
        "before the programme",
    );
    alliance(
        &server,
        json!({
            "supply_cap": 10_000,
            "release": {"period_days": 1, "base_points": 5_000},
            "risk_rules": {"redemption_velocity": {"window_seconds": 3_600, "count_max": 2}},
        }),
    );
    accepted(&issue(&server, "alice", "cafe", "o-1", 1_000), "issuance");
    let before = head(&server);

    // validation_error: bad JSON, wrong content type, unknown field, wrong
    // type, zero, negative and absurd points, malformed ids, oversize body.
    let bearer = format!("Bearer {ADMIN_KEY}");
    let auth = ("authorization", bearer.as_str());
    let json_type = ("content-type", "application/json");
    let raw = |body: &str, headers: &[(&str, &str)]| {
        server
            .try_request("POST", "/v1/issuances", Some(body), headers)
            .expect("answered")
    };
    refused(
        &raw("{\"account\":", &[auth, json_type]),
        400,
        "validation_error",
        "bad JSON",
    );
    let plain = raw(
        r#"{"account":"a","merchant_id":"cafe","order_ref":"x","points":1}"#,
        &[auth, ("content-type", "text/plain")],
    );
    refused(&plain, 400, "validation_error", "content type");
    assert_eq!(plain.body["field"], json!("content-type"));
    for (body, field) in [
        (
            json!({"account": "a", "merchant_id": "cafe", "order_ref": "x", "points": 1, "bonus": 5}),
            "bonus",
        ),
        (
            json!({"account": "a", "merchant_id": "cafe", "order_ref": "x", "points": "ten"}),
            "points",
        ),
        (
            json!({"account": "a", "merchant_id": "cafe", "order_ref": "x", "points": -1}),
            "points",
        ),
        (
            json!({"account": "a", "merchant_id": "cafe", "order_ref": "x", "points": 1.5}),
            "points",
        ),
        (
            json!({"account": "a b", "merchant_id": "cafe", "order_ref": "x", "points": 1}),
            "account",
        ),
        (
            json!({"merchant_id": "cafe", "order_ref": "x", "points": 1}),
            "body",
        ),
    ] {
        let answer = server.admin("POST", "/v1/issuances", Some(&body));
        refused(&answer, 400, "validation_error", &body.to_string());
        assert_eq!(answer.body["field"], json!(field), "{}", answer.text);
    }
    for points in [0_u64, 1_000_000_000_001] {
        let answer = issue(&server, "alice", "cafe", "x", points);
        refused(
            &answer,
            400,
            "validation_error",
            &format!("{points} points"),
        );
    }
    let oversize = format!(
        r#"{{"account":"a","merchant_id":"cafe","order_ref":"{}","points":1}}"#,
        "x".repeat(5_000)
    );
    refused(
        &raw(&oversize, &[auth, json_type]),
        400,
        "validation_error",
        "oversize body",
    );
    refused(
        &server.admin("GET", "/v1/events?limit=0", None),
        400,
        "validation_error",
        "limit 0",
    );
    refused(
        &server.admin("GET", "/v1/settlements?from=yesterday", None),
        400,
        "validation_error",
        "bad date",
    );
    refused(
        &server.admin("GET", "/v1/settlements?from=2026-12-01&to=2026-11-01", None),
        400,
        "validation_error",
        "a period that ends before it starts",
    );
    refused(
        &server.admin("POST", "/v1/holds/abc/capture", None),
        400,
        "validation_error",
        "bad hold id",
    );

    // unauthorized, forbidden, not_found.
    refused(
        &server
            .try_request("GET", "/v1/supply", None, &[])
            .expect("answered"),
        401,
        "unauthorized",
        "no key",
    );
    refused(
        &server.call("wrong-key", "GET", "/v1/supply", None, &[]),
        401,
        "unauthorized",
        "unknown key",
    );
    let analyst = server.admin("POST", "/v1/api-keys", Some(&json!({"role": "analyst"})));
    accepted(&analyst, "analyst key");
    let analyst_key = analyst.body["key"].as_str().expect("the secret, once");
    refused(
        &server.call(
            analyst_key,
            "POST",
            "/v1/issuances",
            Some(&json!({"account": "a", "merchant_id": "cafe", "order_ref": "z", "points": 1})),
            &[],
        ),
        403,
        "forbidden",
        "analyst issuing",
    );
    refused(
        &server.admin("GET", "/v1/merchants/nobody", None),
        404,
        "not_found",
        "unknown merchant",
    );
    refused(
        &server.admin("GET", "/v1/nothing-here", None),
        404,
        "not_found",
        "unknown route",
    );
    refused(
        &server.admin("DELETE", "/v1/supply", None),
        405,
        "method_not_allowed",
        "a route called with a method it does not take",
    );
    refused(
        &server.admin("POST", "/v1/reversals", Some(&json!({"issuance_id": 999}))),
        404,
        "not_found",
        "unknown issuance",
    );

    // The business refusals.
    let redeem = |account: &str, points: u64, order: &str| {
        server.admin("POST", "/v1/redemptions", Some(&json!({"account": account, "merchant_id": "books", "points": points, "order_ref": order})))
    };
    refused(
        &redeem("alice", 5_000, "r-big"),
        409,
        "insufficient_points",
        "overspend",
    );
    refused(
        &issue(&server, "alice", "cafe", "o-budget", 4_500),
        409,
        "release_budget_exceeded",
        "budget",
    );
    refused(
        &issue(&server, "alice", "cafe", "o-1", 10),
        409,
        "duplicate_order",
        "same order twice",
    );
    accepted(
        &server.admin(
            "POST",
            "/v1/merchants/books/suspend",
            Some(&json!({"reason": "audit"})),
        ),
        "suspend",
    );
    refused(
        &issue(&server, "alice", "books", "o-2", 10),
        409,
        "merchant_not_active",
        "suspended merchant",
    );
    accepted(
        &server.admin("POST", "/v1/merchants/books/reinstate", None),
        "reinstate",
    );
    accepted(&server.admin("POST", "/v1/merchants", Some(&json!({"merchant_id": "poor", "name": "Poor", "currency": "EUR", "issue_price": "1", "redemption_value": "1"}))), "poor applies");
    accepted(
        &server.admin("POST", "/v1/merchants/poor/approve", None),
        "approve poor",
    );
    refused(
        &issue(&server, "alice", "poor", "o-3", 10),
        409,
        "merchant_funding_insufficient",
        "unfunded",
    );
    accepted(&redeem("alice", 1, "r-1"), "first redemption");
    accepted(&redeem("alice", 1, "r-2"), "second redemption");
    refused(
        &redeem("alice", 1, "r-3"),
        429,
        "risk_limit_exceeded",
        "velocity",
    );
    accepted(
        &server.admin("PUT", "/v1/program", Some(&json!({"supply_cap": 1_500}))),
        "lower cap",
    );
    refused(
        &issue(&server, "alice", "cafe", "o-cap", 600),
        409,
        "supply_cap_exceeded",
        "cap",
    );
    let keyed = |points: u64| {
        server.call(ADMIN_KEY, "POST", "/v1/issuances", Some(&json!({"account": "alice", "merchant_id": "cafe", "order_ref": "o-k", "points": points})), &[("idempotency-key", "k-1")])
    };
    accepted(&keyed(5), "keyed issuance");
    refused(
        &keyed(6),
        422,
        "idempotency_key_reused",
        "same key, other body",
    );
    refused(
        &server.admin("GET", "/v1/supply?min_position=1000000", None),
        503,
        "not_caught_up",
        "far future position",
    );

    // Refusals left no event: only the accepted commands moved the head.
    let events = server.admin(
        "GET",
        &format!("/v1/events?after={before}&limit=1000"),
        None,
    );
    let kinds: Vec<&str> = events.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "api_key_created",
            "merchant_suspended",
            "merchant_reinstated",
            "merchant_applied",
            "merchant_approved",
            "points_redeemed",
            "points_redeemed",
            "program_configured",
            "points_issued"
        ],
        "{}",
        events.text
    );
}

#[test]
fn roles_and_merchant_scope_are_enforced_and_revoked_keys_stop_working() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let server = start(directory.path());
    alliance(&server, json!({"supply_cap": 100_000}));
    let create = |body: Value| {
        let answer = server.admin("POST", "/v1/api-keys", Some(&body));
        accepted(&answer, "key");
        (
            answer.body["key_id"].as_str().expect("key id").to_owned(),
            answer.body["key"].as_str().expect("key").to_owned(),
        )
    };
    let (cafe_key_id, cafe) = create(json!({"role": "merchant", "merchant_id": "cafe"}));
    let (_, auditor) = create(json!({"role": "auditor"}));
    let (_, analyst) = create(json!({"role": "analyst"}));
    refused(
        &server.admin("POST", "/v1/api-keys", Some(&json!({"role": "merchant"}))),
        400,
        "validation_error",
        "merchant key without merchant",
    );

    let issuance = |key: &str, merchant: &str, order: &str| {
        server.call(key, "POST", "/v1/issuances", Some(&json!({"account": "alice", "merchant_id": merchant, "order_ref": order, "points": 100})), &[])
    };
    let own = issuance(&cafe, "cafe", "c-1");
    let position = accepted(&own, "a merchant issues for itself");
    assert_eq!(
        own.body["events"][0]["actor"]["key_id"],
        json!(cafe_key_id),
        "the event records the acting key"
    );
    refused(
        &issuance(&cafe, "books", "b-1"),
        403,
        "forbidden",
        "for another merchant",
    );
    refused(
        &issuance(&auditor, "cafe", "a-1"),
        403,
        "forbidden",
        "auditor issuing",
    );
    refused(
        &server.call(
            &cafe,
            "PUT",
            "/v1/program",
            Some(&json!({"supply_cap": 1})),
            &[],
        ),
        403,
        "forbidden",
        "merchant configuring",
    );
    refused(
        &server.call(
            &cafe,
            "POST",
            "/v1/transfers",
            Some(&json!({"from": "alice", "to": "bob", "points": 1})),
            &[],
        ),
        403,
        "forbidden",
        "merchant transferring",
    );

    let read = |key: &str, path: &str| server.call(key, "GET", path, None, &[]).status;
    let supply = format!("/v1/supply?min_position={position}");
    assert_eq!(read(&cafe, "/v1/merchants/cafe"), 200);
    assert_eq!(
        read(&cafe, "/v1/merchants/books"),
        403,
        "another merchant's data"
    );
    assert_eq!(read(&cafe, "/v1/settlements"), 403);
    assert_eq!(read(&cafe, "/v1/events"), 403);
    assert_eq!(read(&cafe, "/v1/accounts/alice"), 200);
    assert_eq!(read(&auditor, "/v1/events"), 200);
    assert_eq!(read(&auditor, &supply), 200);
    assert_eq!(read(&auditor, "/v1/accounts/alice"), 403);
    assert_eq!(read(&analyst, "/v1/settlements"), 200);
    assert_eq!(read(&analyst, "/v1/accounts/alice/history"), 200);
    assert_eq!(read(&analyst, "/v1/events"), 403);
    assert_eq!(read(&cafe, "/v1/risk-alerts"), 403);
    assert_eq!(read(&auditor, "/v1/risk-alerts"), 200);
    assert_eq!(read(&analyst, "/v1/risk-alerts"), 200);

    accepted(
        &server.admin("DELETE", &format!("/v1/api-keys/{cafe_key_id}"), None),
        "revoke",
    );
    refused(
        &server.admin("DELETE", "/v1/api-keys/bootstrap-admin", None),
        400,
        "validation_error",
        "the bootstrap key is not revoked through the API",
    );
    // The keys as an admin audits them: never a secret or its hash.
    let keys = server.admin("GET", "/v1/api-keys", None);
    assert_eq!(keys.status, 200, "{}", keys.text);
    let listed = keys.body["keys"].as_array().expect("keys");
    assert_eq!(listed.len(), 3, "{}", keys.text);
    let cafe_listed = listed
        .iter()
        .find(|key| key["key_id"] == json!(cafe_key_id))
        .expect("the cafe's key is listed");
    assert_eq!(
        cafe_listed,
        &json!({"key_id": cafe_key_id, "role": "merchant", "merchant_id": "cafe", "revoked": true})
    );
    assert!(
        !keys.text.contains(&cafe) && !keys.text.contains("hash"),
        "{}",
        keys.text
    );
    assert_eq!(read(&analyst, "/v1/api-keys"), 403);
    assert_eq!(read(&auditor, "/v1/api-keys"), 403);
    // The merchants, as a back office lists them.
    let merchants = server.call(&analyst, "GET", "/v1/merchants", None, &[]);
    assert_eq!(merchants.status, 200, "{}", merchants.text);
    let listed: Vec<(&str, &str)> = merchants.body["merchants"]
        .as_array()
        .expect("merchants")
        .iter()
        .filter_map(|merchant| {
            Some((
                merchant["merchant_id"].as_str()?,
                merchant["status"].as_str()?,
            ))
        })
        .collect();
    assert_eq!(listed, vec![("books", "active"), ("cafe", "active")]);
    assert_eq!(read(&auditor, "/v1/merchants"), 403);
    refused(
        &issuance(&cafe, "cafe", "c-2"),
        401,
        "unauthorized",
        "revoked key",
    );
    assert_eq!(
        read(&cafe, "/v1/accounts/alice"),
        401,
        "a revoked key reads nothing either"
    );
}

#[test]
fn idempotent_retries_answer_the_same_after_a_restart_and_after_kill_9() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut server = start(directory.path());
    alliance(&server, json!({"supply_cap": 100_000}));
    let body = json!({"account": "alice", "merchant_id": "cafe", "order_ref": "o-1", "points": 70});
    let send = |server: &Server, key: &str, body: &Value| {
        server.call(
            ADMIN_KEY,
            "POST",
            "/v1/issuances",
            Some(body),
            &[("idempotency-key", key)],
        )
    };
    let first = send(&server, "retry-1", &body);
    accepted(&first, "first");
    let by_body_id = server.admin("POST", "/v1/transfers", Some(&json!({"from": "alice", "to": "bob", "points": 5, "command_id": "6f1c1e4e-7c59-4d5e-9a53-0c1f7f6d7a10"})));
    accepted(&by_body_id, "transfer with a command_id");
    let key = server.admin("POST", "/v1/api-keys", Some(&json!({"role": "auditor"})));
    accepted(&key, "key");

    for restart in ["graceful", "kill -9"] {
        if restart == "graceful" {
            assert!(
                server.terminate().success(),
                "SIGTERM ends the server with status 0"
            );
            // The restart below serves from these restored read models
            // (the log has nothing after them): keys and balances included.
            let read_model_snapshots =
                snapshot_files(&directory.path().join("snapshots").join("read-models"));
            assert_eq!(
                read_model_snapshots, 1,
                "a graceful stop snapshots the read models"
            );
            server.restart();
        } else {
            server.restart();
        }
        let again = send(&server, "retry-1", &body);
        assert_eq!(
            (again.status, &again.body),
            (201, &first.body),
            "{restart}: the same answer"
        );
        let again = server.admin("POST", "/v1/transfers", Some(&json!({"from": "alice", "to": "bob", "points": 5, "command_id": "6f1c1e4e-7c59-4d5e-9a53-0c1f7f6d7a10"})));
        assert_eq!(
            again.body, by_body_id.body,
            "{restart}: body command ids too"
        );
        refused(
            &send(
                &server,
                "retry-1",
                &json!({"account": "alice", "merchant_id": "cafe", "order_ref": "o-1", "points": 71}),
            ),
            422,
            "idempotency_key_reused",
            restart,
        );
        let balance = account(&server, "alice", 0);
        assert_eq!(balance["balance"], json!(65), "{restart}: one effect only");
        let auditor_key = key.body["key"].as_str().expect("secret");
        assert_eq!(
            server
                .call(auditor_key, "GET", "/v1/events", None, &[])
                .status,
            200,
            "{restart}: keys survive"
        );
    }
    // A retried key creation shows the same secret, not a second key.
    let create = |server: &Server| {
        server.call(
            ADMIN_KEY,
            "POST",
            "/v1/api-keys",
            Some(&json!({"role": "analyst"})),
            &[("idempotency-key", "key-1")],
        )
    };
    let created = create(&server);
    accepted(&created, "key creation");
    assert_eq!(create(&server).body, created.body);
}

#[test]
fn a_batch_decides_in_order_and_answers_each_command() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let server = start(directory.path());
    alliance(&server, json!({"supply_cap": 100_000}));
    let batch = json!({"commands": [
        {"type": "issuance", "account": "alice", "merchant_id": "cafe", "order_ref": "b-1", "points": 100},
        {"type": "redemption", "account": "alice", "merchant_id": "books", "points": 60, "order_ref": "r-1"},
        {"type": "redemption", "account": "alice", "merchant_id": "books", "points": 60, "order_ref": "r-2"},
        {"type": "transfer", "from": "alice", "to": "bob", "points": -1},
        {"type": "teleport"},
        {"type": "hold", "account": "alice", "merchant_id": "books", "points": 40},
        {"type": "hold_capture", "hold_id": 1},
    ]});
    let send = || {
        server.call(
            ADMIN_KEY,
            "POST",
            "/v1/batch",
            Some(&batch),
            &[("idempotency-key", "batch-1")],
        )
    };
    let answer = send();
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.content_type, "application/json");
    let results = answer.body["results"].as_array().expect("results");
    let statuses: Vec<(u64, &str)> = results
        .iter()
        .map(|result| {
            (
                result["status"].as_u64().unwrap_or(0),
                result["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (201, ""),
            (201, ""),
            (409, "insufficient_points"),
            (400, "validation_error"),
            (400, "validation_error"),
            (201, ""),
            (201, "")
        ],
        "{}",
        answer.text
    );
    assert_eq!(results[3]["field"], json!("commands[3].points"));
    assert!(
        results[0]["position"].as_u64() < results[1]["position"].as_u64(),
        "in order"
    );
    let retried = send();
    let positions = |answer: &Answer| -> Vec<Value> {
        answer.body["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|result| result["position"].clone())
            .collect()
    };
    assert_eq!(
        positions(&retried),
        positions(&answer),
        "a retried batch has no second effect"
    );
    assert_eq!(account(&server, "alice", 0)["balance"], json!(0));
    refused(
        &server.admin("POST", "/v1/batch", Some(&json!({"commands": []}))),
        400,
        "validation_error",
        "empty batch",
    );
    let too_many: Vec<Value> = (0..10_001).map(|_| json!({"type": "expiry_run"})).collect();
    let oversized = server.admin("POST", "/v1/batch", Some(&json!({"commands": too_many})));
    refused(&oversized, 400, "validation_error", "10,001 commands");
}

#[test]
fn the_event_stream_delivers_live_events_and_resumes_after_the_last_seen() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let server = start(directory.path());
    alliance(&server, json!({"supply_cap": 100_000}));
    let resume_from = head(&server);
    let open = |extra: &[(&str, &str)], after: u64| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let mut request = agent
            .get(server.url(&format!("/v1/events/stream?after={after}")))
            .header("authorization", format!("Bearer {ADMIN_KEY}"));
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.call().expect("the stream opens");
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok()),
            Some("text/event-stream")
        );
        BufReader::new(response.into_body().into_reader())
    };
    // Opened at the head: everything it shows is live.
    let mut live = open(&[], resume_from);
    let position = accepted(
        &issue(&server, "alice", "cafe", "live-1", 5),
        "live issuance",
    );
    let mut ids = Vec::new();
    let mut line = String::new();
    while ids.last() != Some(&position) {
        line.clear();
        assert!(
            live.read_line(&mut line).expect("the stream reads") > 0,
            "the stream ended early"
        );
        if let Some(id) = line.trim_end().strip_prefix("id: ") {
            ids.push(id.parse::<u64>().expect("numeric id"));
        }
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            let envelope: Value = serde_json::from_str(data).expect("JSON data");
            assert!(envelope["hash"].is_string() && envelope["prev_hash"].is_string());
        }
    }
    assert_eq!(ids, [position]);
    // Reconnecting with Last-Event-ID starts right after it.
    let last_seen = (position - 2).to_string();
    let mut resumed = open(&[("last-event-id", &last_seen)], 0);
    let mut first_id = None;
    while first_id.is_none() {
        line.clear();
        assert!(resumed.read_line(&mut line).expect("reads") > 0);
        first_id = line
            .trim_end()
            .strip_prefix("id: ")
            .map(|id| id.parse::<u64>().expect("numeric"));
    }
    assert_eq!(first_id, Some(position - 1));
}

#[test]
fn health_readiness_and_metrics_report_the_server() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let server = start_with(
        directory.path(),
        &[
            "--reconcile-interval-seconds",
            "1",
            "--snapshot-every",
            "100",
        ],
    );
    alliance(&server, json!({"supply_cap": 100_000}));
    accepted(&issue(&server, "alice", "cafe", "m-1", 5), "issuance");
    refused(
        &issue(&server, "alice", "cafe", "m-1", 5),
        409,
        "duplicate_order",
        "again",
    );
    assert_eq!(
        server
            .try_request("GET", "/healthz", None, &[])
            .expect("answered")
            .status,
        200
    );
    let ready = server
        .try_request("GET", "/readyz", None, &[])
        .expect("answered");
    assert_eq!(
        (ready.status, &ready.body["ready"]),
        (200, &json!(true)),
        "{}",
        ready.text
    );
    let metrics = server
        .try_request("GET", "/metrics", None, &[])
        .expect("answered");
    assert_eq!(metrics.status, 200);
    for expected in [
        r#"http_requests_total{route="/v1/issuances",method="POST",status="201"}"#,
        r#"ledger_commands_total{type="issue_points",result="accepted"} 1"#,
        r#"ledger_commands_total{type="issue_points",result="duplicate_order"} 1"#,
        "http_request_duration_seconds_bucket",
        "ledger_append_seconds_bucket",
        "ledger_batch_commands_bucket",
        "ledger_queue_depth",
        "ledger_projection_lag_events",
        "ledger_snapshotter_position",
    ] {
        assert!(
            metrics.text.contains(expected),
            "no {expected} in\n{}",
            metrics.text
        );
    }

    // Reconciliation runs every second, also while commands keep coming,
    // and finds the read models in agreement with the writer.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for order in 0..300 {
                accepted(
                    &issue(&server, "bob", "books", &format!("load-{order}"), 1),
                    "load",
                );
            }
        });
        let mut agreed = false;
        for _ in 0..100 {
            let metrics = server
                .try_request("GET", "/metrics", None, &[])
                .expect("answered");
            assert!(
                !metrics.text.contains(r#"result="differed""#),
                "{}",
                metrics.text
            );
            if metrics
                .text
                .contains(r#"ledger_reconciliations_total{result="agreed"}"#)
            {
                assert!(
                    metrics.text.contains("ledger_reconciliation_differences 0"),
                    "{}",
                    metrics.text
                );
                agreed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(agreed, "no reconciliation agreed within 10 s");
    });

    // The load above crossed --snapshot-every: both kinds of snapshot were
    // written in the background, and say so.
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = server
            .try_request("GET", "/metrics", None, &[])
            .expect("answered")
            .text;
        if ["writer", "read_models"].iter().all(|kind| {
            metrics.contains(&format!(r#"ledger_snapshot_bytes{{kind="{kind}"}}"#))
                && metrics.contains(&format!(
                    r#"ledger_snapshot_seconds_count{{kind="{kind}"}}"#
                ))
        }) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for kind in ["writer", "read_models"] {
        assert!(
            metrics.contains(&format!(r#"ledger_snapshot_bytes{{kind="{kind}"}}"#)),
            "no {kind} snapshot metric within 10 s in\n{metrics}"
        );
    }
}

#[test]
fn kill_9_under_concurrent_load_keeps_every_acknowledged_command_and_nothing_half_done() {
    let directory = tempfile::tempdir().expect("temporary directory");
    // Snapshots of both kinds are being written all through the load, so
    // the kill can land in one; the restarts recover from whatever of them
    // is usable, plus the log.
    let mut server = start_with(directory.path(), &["--snapshot-every", "25"]);
    alliance(&server, json!({"supply_cap": 100_000_000}));
    let acknowledged: Arc<Mutex<Vec<(String, Value)>>> = Arc::new(Mutex::new(Vec::new()));
    let address = server.address;
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let acknowledged = Arc::clone(&acknowledged);
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(5))).build().into();
                for index in 0.. {
                    let key = format!("w{worker}-{index}");
                    let body = json!({"from": "pool", "to": format!("member-{worker}"), "points": 1});
                    let (path, body) = if index % 2 == 0 {
                        ("/v1/issuances", json!({"account": "pool", "merchant_id": "cafe", "order_ref": key, "points": 3}))
                    } else {
                        ("/v1/transfers", body)
                    };
                    let sent = agent
                        .post(format!("http://{address}{path}"))
                        .header("authorization", format!("Bearer {ADMIN_KEY}"))
                        .header("idempotency-key", &key)
                        .send_json(&body);
                    match sent {
                        Ok(mut response) if response.status() == 201 => {
                            let answer: Value = response.body_mut().read_json().expect("JSON");
                            acknowledged.lock().expect("lock").push((key, answer));
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    while acknowledged.lock().expect("lock").len() < 300 {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();
    for worker in workers {
        worker.join().expect("the worker ends when the server dies");
    }
    let snapshots = directory.path().join("snapshots");
    for kind in [snapshots.clone(), snapshots.join("read-models")] {
        let written = snapshot_files(&kind);
        assert!(
            written > 0,
            "no snapshot in {} before the restart",
            kind.display()
        );
    }
    server.restart();
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let mut all_events = Vec::new();
    let mut after = 0;
    loop {
        let page = server.admin(
            "GET",
            &format!("/v1/events?after={after}&limit=10000"),
            None,
        );
        let events = page.body["events"].as_array().expect("events").clone();
        if events.is_empty() {
            break;
        }
        after = page.body["next_after"].as_u64().expect("next_after");
        all_events.extend(events);
    }
    let schemas = tests::schemas::Schemas::load().expect("the committed schemas compile");
    for event in &all_events {
        schemas
            .check_envelope(event)
            .unwrap_or_else(|error| panic!("{error}"));
    }
    let by_position: BTreeMap<u64, &Value> = all_events
        .iter()
        .map(|event| (event["position"].as_u64().unwrap_or(0), event))
        .collect();
    for (key, answer) in &acknowledged {
        let position = answer["position"].as_u64().expect("position");
        let stored = by_position
            .get(&position)
            .unwrap_or_else(|| panic!("{key}: acknowledged at {position}, gone after kill -9"));
        assert_eq!(
            stored["command_id"], answer["events"][0]["command_id"],
            "{key}"
        );
    }
    // Every stored command is whole: the balances the read models rebuilt
    // from the log add up to the supply, and the writer agrees after a
    // second restart.
    let supply = server.admin("GET", "/v1/supply", None).body;
    let mut balances = account(&server, "pool", 0)["balance"]
        .as_u64()
        .expect("balance");
    for worker in 0..8 {
        balances += account(&server, &format!("member-{worker}"), 0)["balance"]
            .as_u64()
            .expect("balance");
    }
    assert_eq!(Some(balances), supply["outstanding"].as_u64());
    let transfers = all_events
        .iter()
        .filter(|event| event["type"] == "points_transferred")
        .count() as u64;
    let issued = all_events
        .iter()
        .filter(|event| event["type"] == "points_issued")
        .count() as u64;
    assert_eq!(supply["issued_total"].as_u64(), Some(issued * 3));
    assert_eq!(balances, issued * 3);
    let members: u64 = (0..8)
        .map(|worker| {
            account(&server, &format!("member-{worker}"), 0)["balance"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(members, transfers);
    // An acknowledged key retried after the crash is answered, not redone.
    if let Some((key, answer)) = acknowledged
        .iter()
        .find(|(_, answer)| answer["issuance_id"].is_u64())
    {
        let retry = server.call(
            ADMIN_KEY,
            "POST",
            "/v1/issuances",
            Some(&json!({"account": "pool", "merchant_id": "cafe", "order_ref": key, "points": 3})),
            &[("idempotency-key", key)],
        );
        assert_eq!(&retry.body, answer);
    }
}

#[test]
fn the_openapi_document_is_served_and_every_documented_operation_is_routed() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let server = start(directory.path());
    let document = server
        .try_request("GET", "/openapi.json", None, &[])
        .expect("answered");
    assert_eq!(document.status, 200);
    assert_eq!(document.body["openapi"], json!("3.1.0"));
    let paths = document.body["paths"].as_object().expect("paths");
    for required in [
        "/v1/program",
        "/v1/issuances",
        "/v1/batch",
        "/v1/events/stream",
        "/v1/settlements",
    ] {
        assert!(paths.contains_key(required), "{required} is documented");
    }
    let mut checked = 0;
    for (path, item) in paths {
        if path == "/v1/events/stream" {
            continue;
        }
        for method in item.as_object().expect("operations").keys() {
            let concrete = path.replace("{id}", "1").replace("{key_id}", "no-such-key");
            let answer = server.call(ADMIN_KEY, &method.to_uppercase(), &concrete, None, &[]);
            assert_ne!(
                answer.status, 405,
                "{method} {path} is documented but not routed"
            );
            assert!(
                !(answer.status == 404 && answer.body["detail"] == "no such route"),
                "{method} {path} is documented but not routed"
            );
            checked += 1;
        }
    }
    assert!(checked >= 28, "only {checked} operations checked");
}
