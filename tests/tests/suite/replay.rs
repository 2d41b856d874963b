//! The replay tool (`ledger-replay`, run as a process) on logs the real
//! engine wrote: verification passes, and every kind of damage or rewrite
//! fails naming the position; `--as-of` reproduces what the server showed
//! then; `rebuild`, `export` and `report` write what they promise; `diff`
//! agrees with a live server and reports a planted difference.

use std::path::Path;
use std::process::{Command as Process, Output};
use std::sync::Arc;

use ledger_core::domain::command::{Actor, Command, Role};
use ledger_core::domain::ids::{AccountId, KeyId, MerchantId, OrderRef};
use ledger_core::domain::program::{ProgramRules, VelocityLimit};
use ledger_core::domain::{Currency, Timestamp};
use ledger_core::engine::{CommandRequest, Engine, EngineConfig, ManualClock, Outcome};
use ledger_core::store::snapshot::SnapshotStore;
use ledger_core::store::storage::OsStorage;
use ledger_core::store::{EventLog, FileLog, FileLogOptions, LogMode};
use serde_json::{Value, json};
use tests::server::Server;
use uuid::Uuid;

const LEDGER: Uuid = Uuid::from_u128(0x7e91a7);
const SEGMENT_BYTES: u64 = 8 * 1024;
/// The ledger's soft limit on redemptions per member and day.
const SOFT_REDEMPTIONS_A_DAY: u32 = 2;

fn replay(arguments: &[&str]) -> Output {
    Process::new(env!("CARGO_BIN_EXE_ledger-replay-under-test"))
        .args(arguments)
        .output()
        .expect("ledger-replay runs")
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub(super) fn verified_json(arguments: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(arguments);
    let output = replay(&all);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

fn id<T>(parse: fn(String) -> Result<T, ledger_core::domain::ids::InvalidId>, text: &str) -> T {
    parse(text.to_owned()).expect("valid id")
}

/// Writes a ledger through the real engine into `directory/log`, in small
/// segments: a programme, two merchants, 240 issuances with redemptions
/// and transfers among them, a minute apart. `variant` changes one
/// issuance's points (a rewritten history). Returns the heads after each
/// command, as (position, hash).
async fn write_ledger(directory: &Path, variant: u64) -> Vec<(u64, String)> {
    let log = FileLog::open_with(
        OsStorage,
        directory.join("log"),
        LogMode::ReadWrite {
            ledger_id_if_new: LEDGER,
        },
        FileLogOptions {
            segment_bytes_max: SEGMENT_BYTES,
            ..FileLogOptions::default()
        },
    )
    .expect("log opens");
    let log = Arc::new(log);
    let clock = Arc::new(ManualClock::at(
        Timestamp::parse_rfc3339("2026-01-31T20:00:00Z").expect("valid"),
    ));
    let engine = Engine::start(
        Arc::clone(&log),
        None::<SnapshotStore<OsStorage>>,
        clock.clone(),
        EngineConfig::default(),
    )
    .await
    .expect("engine starts");
    let admin = Actor {
        key_id: id(KeyId::parse, "auditor-test"),
        role: Role::Admin,
        merchant_id: None,
    };
    let mut rules = ProgramRules::with_cap(10_000_000);
    // A member's third redemption within a day raises a risk alert.
    rules.risk_rules.redemption_velocity = Some(VelocityLimit {
        window_seconds: 86_400,
        count_max: None,
        points_max: None,
        soft_count_max: Some(SOFT_REDEMPTIONS_A_DAY),
        soft_points_max: None,
    });
    let mut commands = vec![Command::ConfigureProgram {
        rules: Box::new(rules),
    }];
    for merchant in ["m0", "m1"] {
        commands.push(Command::ApplyMerchant {
            merchant_id: id(MerchantId::parse, merchant),
            name: merchant.to_owned(),
            currency: Currency::parse("EUR").expect("valid"),
            issue_price: "0.01".parse().expect("valid"),
            redemption_value: "0.01".parse().expect("valid"),
        });
        commands.push(Command::ApproveMerchant {
            merchant_id: id(MerchantId::parse, merchant),
            reason: None,
        });
        commands.push(Command::RecordDeposit {
            merchant_id: id(MerchantId::parse, merchant),
            amount: "100000".parse().expect("valid"),
        });
    }
    for index in 0..240_u64 {
        let member = id(AccountId::parse, &format!("member-{}", index % 12));
        commands.push(Command::IssuePoints {
            account: member.clone(),
            merchant_id: id(MerchantId::parse, if index % 2 == 0 { "m0" } else { "m1" }),
            order_ref: id(OrderRef::parse, &format!("order-{index}")),
            points: Some(20 + index + if index == 120 { variant } else { 0 }),
            purchase_amount: None,
            category: None,
        });
        if index % 3 == 0 {
            commands.push(Command::RedeemPoints {
                account: member.clone(),
                merchant_id: id(MerchantId::parse, "m1"),
                points: 7,
                order_ref: id(OrderRef::parse, &format!("redeem-{index}")),
            });
        }
        if index % 5 == 0 {
            commands.push(Command::TransferPoints {
                from: member,
                to: id(AccountId::parse, "saver"),
                points: 3,
            });
        }
    }
    let mut heads = Vec::new();
    for (number, command) in commands.into_iter().enumerate() {
        let outcome = engine
            .submit(CommandRequest {
                command_id: Uuid::from_u128(number as u128 + 1),
                command,
                actor: admin.clone(),
            })
            .await
            .expect("the engine answers");
        assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
        let head = log.head();
        heads.push((head.position, hex::encode(head.hash)));
        clock.advance_seconds(60);
    }
    engine.shutdown().await;
    heads
}

fn ledger(directory: &Path, variant: u64) -> Vec<(u64, String)> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(write_ledger(directory, variant))
}

fn segments(directory: &Path) -> Vec<std::path::PathBuf> {
    let mut segments: Vec<_> = std::fs::read_dir(directory.join("log"))
        .expect("log directory")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    segments.sort();
    segments
}

/// The records of a segment: (position, offset of the record, length).
fn records_of(segment: &Path) -> Vec<(u64, usize, usize)> {
    let bytes = std::fs::read(segment).expect("segment");
    let mut offset = 128;
    let mut records = Vec::new();
    while offset + 64 <= bytes.len() {
        let length =
            u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
        let position =
            u64::from_le_bytes(bytes[offset + 8..offset + 16].try_into().expect("8 bytes"));
        records.push((position, offset, 64 + length));
        offset += 64 + length;
    }
    records
}

/// Every file under `directory` with its bytes.
fn directory_contents(directory: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut contents = std::collections::BTreeMap::new();
    let mut pending = vec![directory.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("readable directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("readable file");
                contents.insert(path, bytes);
            }
        }
    }
    contents
}

fn copy_ledger(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("log")).expect("directory");
    for entry in std::fs::read_dir(from.join("log")).expect("log") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, to.join("log").join(path.file_name().expect("name"))).expect("copied");
    }
}

fn assert_finding_at(output: &Output, position: u64, what: &str) {
    assert_eq!(output.status.code(), Some(1), "{what}: {}", text(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("position {position}")),
        "{what}: expected position {position} in {}",
        text(output)
    );
}

#[test]
fn verification_passes_on_a_real_log_and_fails_on_each_kind_of_damage() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let original = directory.path().join("original");
    let heads = ledger(&original, 0);
    let (head_position, head_hash) = heads.last().cloned().expect("a head");
    let segment_files = segments(&original);
    assert!(
        segment_files.len() >= 4,
        "small segments: {segment_files:?}"
    );
    let original_path = original.to_str().expect("UTF-8 path");

    let before = directory_contents(&original);
    let verified = verified_json(&["verify", original_path]);
    assert_eq!(verified["verified"]["head_position"], json!(head_position));
    assert_eq!(verified["verified"]["head_hash"], json!(head_hash));
    let expect = format!("{}:{}", heads[50].0, heads[50].1);
    verified_json(&["verify", original_path, "--expect-head", &expect]);
    let out = directory.path().join("rebuilt");
    verified_json(&[
        "rebuild",
        original_path,
        "--out",
        out.to_str().expect("path"),
    ]);
    verified_json(&["report", original_path]);
    assert_eq!(replay(&["export", original_path]).status.code(), Some(0));
    assert!(
        directory_contents(&original) == before,
        "the tool changed the data directory"
    );

    // A flipped byte inside a record's payload in a middle segment.
    let middle = &segment_files[segment_files.len() / 2];
    let (position, offset, _) = records_of(middle)[2];
    let flipped = directory.path().join("flipped");
    copy_ledger(&original, &flipped);
    let target = flipped.join("log").join(middle.file_name().expect("name"));
    let mut bytes = std::fs::read(&target).expect("segment");
    bytes[offset + 64 + 5] ^= 0x20;
    std::fs::write(&target, bytes).expect("written");
    assert_finding_at(
        &replay(&["verify", flipped.to_str().expect("path")]),
        position,
        "flipped byte",
    );

    // A middle segment cut short.
    let truncated = directory.path().join("truncated");
    copy_ledger(&original, &truncated);
    let target = truncated
        .join("log")
        .join(middle.file_name().expect("name"));
    let records = records_of(middle);
    let (cut_position, cut_offset, _) = records[records.len() / 2];
    let bytes = std::fs::read(&target).expect("segment");
    std::fs::write(&target, &bytes[..cut_offset + 10]).expect("written");
    let output = replay(&["verify", truncated.to_str().expect("path")]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "truncated: {}",
        text(&output)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&cut_position.to_string()),
        "truncated at {cut_position}: {}",
        text(&output)
    );

    // A record removed, and two records swapped.
    let (removed_position, removed_offset, removed_length) = records[1];
    let removed = directory.path().join("removed");
    copy_ledger(&original, &removed);
    let target = removed.join("log").join(middle.file_name().expect("name"));
    let mut bytes = std::fs::read(&target).expect("segment");
    bytes.drain(removed_offset..removed_offset + removed_length);
    std::fs::write(&target, bytes).expect("written");
    assert_finding_at(
        &replay(&["verify", removed.to_str().expect("path")]),
        removed_position,
        "removed record",
    );

    let swapped = directory.path().join("swapped");
    copy_ledger(&original, &swapped);
    let target = swapped.join("log").join(middle.file_name().expect("name"));
    let bytes = std::fs::read(&target).expect("segment");
    let (first_position, first_offset, first_length) = records[1];
    let (_, second_offset, second_length) = records[2];
    let mut reordered = bytes[..first_offset].to_vec();
    reordered.extend_from_slice(&bytes[second_offset..second_offset + second_length]);
    reordered.extend_from_slice(&bytes[first_offset..first_offset + first_length]);
    reordered.extend_from_slice(&bytes[second_offset + second_length..]);
    std::fs::write(&target, reordered).expect("written");
    assert_finding_at(
        &replay(&["verify", swapped.to_str().expect("path")]),
        first_position,
        "swapped records",
    );

    // A history rewritten from position 130 on with a recomputed chain
    // verifies on its own; only the head recorded earlier exposes it.
    let rewritten = directory.path().join("rewritten");
    let rewritten_heads = ledger(&rewritten, 1);
    assert_eq!(rewritten_heads.len(), heads.len());
    let rewritten_path = rewritten.to_str().expect("path");
    verified_json(&["verify", rewritten_path]);
    let recorded = format!("{head_position}:{head_hash}");
    let output = replay(&["verify", rewritten_path, "--expect-head", &recorded]);
    assert_finding_at(&output, head_position, "rewritten history");
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not match"));
    let early = format!("{}:{}", heads[10].0, heads[10].1);
    verified_json(&["verify", rewritten_path, "--expect-head", &early]);

    // Clear errors for a missing ledger and a bad argument; exit code 2.
    let missing = replay(&[
        "verify",
        directory.path().join("nothing").to_str().expect("path"),
    ]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no ledger"));
    let bad = replay(&["verify", original_path, "--as-of", "last tuesday"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

#[test]
fn as_of_rebuild_export_and_report_reproduce_the_ledger_at_a_point() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let data = directory.path().join("data");
    let mut server = Server::start(
        Path::new(env!("CARGO_BIN_EXE_ledger-server-under-test")),
        &data,
        &["--expiry-interval-seconds", "0"],
    );
    let admin = |method: &str, path: &str, body: Value| {
        let answer = server.admin(method, path, Some(&body));
        assert_eq!(answer.status, 201, "{path}: {}", answer.text);
        answer.body["position"].as_u64().expect("position")
    };
    admin("PUT", "/v1/program", json!({"supply_cap": 1_000_000}));
    for merchant in ["cafe", "books"] {
        admin(
            "POST",
            "/v1/merchants",
            json!({"merchant_id": merchant, "name": merchant, "currency": "EUR", "issue_price": "0.01", "redemption_value": "0.01"}),
        );
        admin(
            "POST",
            &format!("/v1/merchants/{merchant}/approve"),
            json!({}),
        );
        admin(
            "POST",
            &format!("/v1/merchants/{merchant}/deposits"),
            json!({"amount": "1000"}),
        );
    }
    admin(
        "POST",
        "/v1/issuances",
        json!({"account": "alice", "merchant_id": "cafe", "order_ref": "o-1", "points": 500}),
    );
    let checkpoint = admin(
        "POST",
        "/v1/redemptions",
        json!({"account": "alice", "merchant_id": "books", "points": 120, "order_ref": "r-1"}),
    );
    let live_then = server
        .admin(
            "GET",
            &format!("/v1/accounts/alice?min_position={checkpoint}"),
            None,
        )
        .body;
    assert_eq!(live_then["as_of_position"], json!(checkpoint));
    admin(
        "POST",
        "/v1/transfers",
        json!({"from": "alice", "to": "bob", "points": 80}),
    );
    admin(
        "POST",
        "/v1/issuances",
        json!({"account": "bob", "merchant_id": "books", "order_ref": "o-2", "points": 40}),
    );
    let data_path = data.to_str().expect("path");

    // While the server runs, the tool reads beside it.
    let head = verified_json(&["verify", data_path]);
    assert!(head["verified"]["head_position"].as_u64() > Some(checkpoint));

    let then = directory.path().join("then");
    let checkpoint_text = checkpoint.to_string();
    let rebuilt = verified_json(&[
        "rebuild",
        data_path,
        "--as-of",
        &checkpoint_text,
        "--out",
        then.to_str().expect("path"),
    ]);
    assert_eq!(rebuilt["verified"]["head_position"], json!(checkpoint));
    let balances: Value = serde_json::from_str(
        &std::fs::read_to_string(then.join("balances.json")).expect("balances.json"),
    )
    .expect("JSON");
    let alice = balances
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["account"] == "alice"))
        .expect("alice");
    assert_eq!(
        (&alice["balance"], &alice["available"]),
        (&live_then["balance"], &live_then["available"])
    );
    let csv = std::fs::read_to_string(then.join("balances.csv")).expect("balances.csv");
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        ["account,balance,held,available", "alice,380,0,380"]
    );
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(then.join("manifest.json")).expect("manifest"),
    )
    .expect("JSON");
    assert_eq!(manifest["position"], json!(checkpoint));
    let clearing = std::fs::read_to_string(then.join("clearing.csv")).expect("clearing.csv");
    assert!(clearing.contains("cafe,books,120"), "{clearing}");
    // The same point named by time: the checkpoint event's own timestamp.
    let at_checkpoint = server.admin(
        "GET",
        &format!("/v1/events?after={}&limit=1", checkpoint - 1),
        None,
    );
    let recorded_at = at_checkpoint.body["events"][0]["recorded_at"]
        .as_str()
        .expect("recorded_at")
        .to_owned();
    let by_time = verified_json(&["verify", data_path, "--as-of", &recorded_at]);
    assert_eq!(
        by_time["verified"]["head_position"],
        json!(checkpoint),
        "as of {recorded_at}"
    );
    let refused = replay(&[
        "rebuild",
        data_path,
        "--out",
        data.join("out").to_str().expect("path"),
    ]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "never writes into the data directory: {}",
        text(&refused)
    );

    let exported = replay(&["export", data_path, "--account", "bob"]);
    assert_eq!(exported.status.code(), Some(0), "{}", text(&exported));
    let kinds: Vec<String> = String::from_utf8_lossy(&exported.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).expect("JSON line")["type"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["points_transferred", "points_issued"]);
    let csv_export = replay(&[
        "export",
        data_path,
        "--format",
        "csv",
        "--type",
        "points_issued",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&csv_export.stdout).lines().count(),
        3,
        "{}",
        text(&csv_export)
    );

    let report = verified_json(&["report", data_path]);
    let month = report["report"]["months"]
        .as_object()
        .and_then(|months| months.values().next())
        .cloned()
        .expect("a month");
    assert_eq!(
        (&month["issued"], &month["redeemed"], &month["transferred"]),
        (&json!(540), &json!(120), &json!(80))
    );
    assert_eq!(
        report["report"]["largest_movements"][0]["points"],
        json!(500)
    );
    // The same report for people: titled tables, not JSON.
    let for_people = replay(&["report", data_path]);
    assert_eq!(for_people.status.code(), Some(0), "{}", text(&for_people));
    let for_people = String::from_utf8_lossy(&for_people.stdout);
    let month_row = for_people
        .lines()
        .find(|line| line.contains("540 ("))
        .unwrap_or_else(|| panic!("no month row issuing 540 in {for_people}"));
    assert!(
        month_row.contains("120 (") && month_row.contains("80 ("),
        "{month_row}"
    );
    for title in [
        "Flows by month",
        "Supply",
        "Merchant settlements",
        "Clearing",
        "Risk alerts",
        "Largest movements",
    ] {
        assert!(for_people.contains(title), "no {title} in {for_people}");
    }
    assert!(!for_people.contains("\"months\""), "{for_people}");
    server.kill();
}

#[test]
fn diff_agrees_with_a_live_server_and_reports_a_planted_difference() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let start = |name: &str| {
        Server::start(
            Path::new(env!("CARGO_BIN_EXE_ledger-server-under-test")),
            &directory.path().join(name),
            &["--expiry-interval-seconds", "0"],
        )
    };
    let story = |server: &Server, alice_points: u64| {
        for (method, path, body) in [
            ("PUT", "/v1/program", json!({"supply_cap": 1_000_000})),
            (
                "POST",
                "/v1/merchants",
                json!({"merchant_id": "cafe", "name": "Cafe", "currency": "EUR", "issue_price": "0.01", "redemption_value": "0.01"}),
            ),
            ("POST", "/v1/merchants/cafe/approve", json!({})),
            (
                "POST",
                "/v1/merchants/cafe/deposits",
                json!({"amount": "1000"}),
            ),
            (
                "POST",
                "/v1/issuances",
                json!({"account": "alice", "merchant_id": "cafe", "order_ref": "o-1", "points": alice_points}),
            ),
            (
                "POST",
                "/v1/transfers",
                json!({"from": "alice", "to": "bob", "points": 25}),
            ),
        ] {
            let answer = server.admin(method, path, Some(&body));
            assert_eq!(answer.status, 201, "{path}: {}", answer.text);
        }
    };
    let honest = start("honest");
    story(&honest, 300);
    let honest_dir = directory.path().join("honest");
    let diff_against = |server: &Server| {
        let url = format!("http://{}", server.address);
        replay(&[
            "--json",
            "diff",
            honest_dir.to_str().expect("path"),
            "--server",
            &url,
            "--key",
            tests::server::ADMIN_KEY,
        ])
    };
    let agreed = diff_against(&honest);
    assert_eq!(agreed.status.code(), Some(0), "{}", text(&agreed));
    let answer: Value = serde_json::from_slice(&agreed.stdout).expect("JSON");
    assert_eq!(answer["differences"], json!([]));

    // The same story with one amount changed: a server whose read models
    // disagree with this log at the same position.
    let planted = start("planted");
    story(&planted, 301);
    let differed = diff_against(&planted);
    assert_eq!(differed.status.code(), Some(1), "{}", text(&differed));
    let answer: Value = serde_json::from_slice(&differed.stdout).expect("JSON");
    let what: Vec<&str> = answer["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .filter_map(|difference| difference["what"].as_str())
        .collect();
    assert!(what.contains(&"account alice balance"), "{what:?}");
    assert!(what.contains(&"supply.outstanding"), "{what:?}");
    assert!(
        what.contains(&"merchant cafe funding_balance"),
        "one point more cost the cafe a cent more: {what:?}"
    );
    assert!(
        !what.iter().any(|what| what.starts_with("account bob")),
        "bob is the same on both: {what:?}"
    );
}

/// A history rewritten with a lower supply cap in its first event and the
/// chain recomputed: every record is well-formed and every event applies,
/// so only the invariant checks can tell. Verification must name
/// invariant 2 at the first issuance that takes the outstanding supply
/// over the forged cap.
#[test]
fn a_well_chained_history_that_breaks_an_invariant_fails_at_that_event() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let original = directory.path().join("original");
    ledger(&original, 0);
    let forged_cap = 100;
    let mut outstanding: i128 = 0;
    let mut first_breach = None;
    let forged = forge(&original, &directory.path().join("forged"), |envelope| {
        match &mut envelope.event {
            ledger_core::domain::Event::ProgramConfigured(configured) => {
                configured.rules.supply_cap = forged_cap;
            }
            ledger_core::domain::Event::PointsIssued(issued) => {
                outstanding += i128::from(issued.points);
            }
            ledger_core::domain::Event::PointsRedeemed(redeemed) => {
                outstanding -= i128::from(redeemed.points);
            }
            _ => {}
        }
        if first_breach.is_none() && outstanding > i128::from(forged_cap) {
            first_breach = Some(envelope.position);
        }
    });
    let breach = first_breach.expect("the story issues more than the forged cap");
    let output = replay(&["verify", forged.to_str().expect("path")]);
    assert_finding_at(&output, breach, "forged cap");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invariant 2") && stderr.contains(&format!("supply cap {forged_cap}")),
        "{}",
        text(&output)
    );
}

/// Invariant 5 is checked per event for the merchant the event names: a
/// history rewritten so that one merchant's first deposit was almost
/// nothing (every later funding figure of that merchant lowered to match,
/// chain recomputed) must fail at the first issuance that takes its
/// funding below zero.
#[test]
fn a_history_that_overdraws_a_merchant_fails_at_the_overdraft() {
    use ledger_core::domain::{Amount, Event};
    let directory = tempfile::tempdir().expect("temporary directory");
    let original = directory.path().join("original");
    ledger(&original, 0);
    let mut shifted: Option<(MerchantId, rust_decimal::Decimal)> = None;
    let mut first_overdraft = None;
    let forged = forge(&original, &directory.path().join("forged"), |envelope| {
        if shifted.is_none()
            && let Event::DepositRecorded(deposit) = &mut envelope.event
        {
            let kept = rust_decimal::Decimal::new(1, 2);
            let shift = deposit.amount.amount.0 - kept;
            deposit.amount.amount = Amount(kept);
            deposit.funding_after = Amount(deposit.funding_after.0 - shift);
            shifted = Some((deposit.merchant_id.clone(), shift));
            return;
        }
        let Some((merchant_id, shift)) = &shifted else {
            return;
        };
        let funding_after = match &mut envelope.event {
            Event::DepositRecorded(event) if &event.merchant_id == merchant_id => {
                &mut event.funding_after
            }
            Event::PointsIssued(event) if &event.merchant_id == merchant_id => {
                &mut event.funding_after
            }
            Event::IssuanceReversed(event) if &event.merchant_id == merchant_id => {
                &mut event.funding_after
            }
            _ => return,
        };
        *funding_after = Amount(funding_after.0 - shift);
        if first_overdraft.is_none() && funding_after.is_negative() {
            first_overdraft = Some(envelope.position);
        }
    });
    let overdraft = first_overdraft.expect("the story spends more than a cent of funding");
    let output = replay(&["verify", forged.to_str().expect("path")]);
    assert_finding_at(&output, overdraft, "overdrawn merchant");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invariant 5"), "{}", text(&output));
}

/// What a merchant is owed is computed, not read: a history rewritten so
/// that the first redemption owes its merchant a hundred times its value
/// (chain recomputed; the points, lots and invariants untouched) must fail
/// at that redemption.
#[test]
fn a_well_chained_history_that_inflates_a_settlement_fails_at_that_event() {
    use ledger_core::domain::{Amount, Event};
    let directory = tempfile::tempdir().expect("temporary directory");
    let original = directory.path().join("original");
    ledger(&original, 0);
    let mut inflated = None;
    let forged = forge(&original, &directory.path().join("forged"), |envelope| {
        if inflated.is_none()
            && let Event::PointsRedeemed(redeemed) = &mut envelope.event
        {
            redeemed.value_owed.amount =
                Amount(redeemed.value_owed.amount.0 * rust_decimal::Decimal::from(100));
            inflated = Some(envelope.position);
        }
    });
    let position = inflated.expect("the story redeems");
    let output = replay(&["verify", forged.to_str().expect("path")]);
    assert_finding_at(&output, position, "inflated value owed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("value owed is recorded as"),
        "{}",
        text(&output)
    );
}

/// An event's own time is its record's: a history rewritten so that the
/// first issuance is dated a second later than recorded (its lot's expiry
/// moved with it, so the lot is still valid for exactly the programme's
/// expiry; the day and period the same; chain recomputed) must fail at
/// that issuance. Every event applies to the state; only the record's
/// time can tell.
#[test]
fn a_well_chained_history_that_redates_an_event_fails_at_that_event() {
    use ledger_core::domain::Event;
    const SECOND_MICROS: i64 = 1_000_000;
    let directory = tempfile::tempdir().expect("temporary directory");
    let original = directory.path().join("original");
    ledger(&original, 0);
    let mut redated = None;
    let forged = forge(&original, &directory.path().join("forged"), |envelope| {
        if redated.is_none()
            && let Event::PointsIssued(issued) = &mut envelope.event
        {
            issued.issued_at.0 += SECOND_MICROS;
            if let Some(expires_at) = &mut issued.expires_at {
                expires_at.0 += SECOND_MICROS;
            }
            redated = Some(envelope.position);
        }
    });
    let position = redated.expect("the story issues");
    let output = replay(&["verify", forged.to_str().expect("path")]);
    assert_finding_at(&output, position, "redated issuance");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the event says it happened at"),
        "{}",
        text(&output)
    );
}

/// Invariant 7, first half: a history rewritten so that the last
/// issuance carries the id and fingerprint of the first one (a retry that
/// took effect twice; chain recomputed, every event applies) must fail at
/// the last issuance naming the first. The check honours the server's
/// retention window: told that ids were remembered only a minute, it
/// passes, because the two are hours apart. A command id that goes on
/// straight after its own run with a different command fails too.
#[test]
fn a_well_chained_history_that_repeats_a_command_fails_at_the_repeat() {
    use ledger_core::domain::Event;
    let directory = tempfile::tempdir().expect("temporary directory");
    let original = directory.path().join("original");
    ledger(&original, 0);
    let last_issuance = {
        let log = FileLog::open(original.join("log"), LogMode::ReadOnly).expect("opens");
        log.read_blocking(0, 100_000)
            .expect("readable")
            .iter()
            .rev()
            .find_map(|record| {
                let envelope =
                    ledger_core::engine::EventEnvelope::decode(&record.payload).expect("decodes");
                matches!(envelope.event, Event::PointsIssued(_)).then_some(envelope.position)
            })
            .expect("the story issues")
    };
    let mut first = None;
    let repeated = forge(&original, &directory.path().join("repeated"), |envelope| {
        if !matches!(envelope.event, Event::PointsIssued(_)) {
            return;
        }
        match first {
            None => {
                first = Some((
                    envelope.position,
                    envelope.command_id,
                    envelope.command_fingerprint,
                ))
            }
            Some((_, command_id, fingerprint)) if envelope.position == last_issuance => {
                envelope.command_id = command_id;
                envelope.command_fingerprint = fingerprint;
            }
            Some(_) => {}
        }
    });
    let (first_position, ..) = first.expect("the story issues");
    let repeated = repeated.to_str().expect("path");
    let output = replay(&["verify", repeated]);
    assert_finding_at(&output, last_issuance, "repeated command");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invariant 7")
            && stderr.contains(&format!("already did at position {first_position}")),
        "{}",
        text(&output)
    );
    let forgotten = verified_json(&["verify", "--idempotency-seconds", "60", repeated]);
    assert_eq!(forgotten["verified"]["idempotency_seconds"], json!(60));

    // An issuance straight after another (each one event): the second
    // given the first's id, its own fingerprint kept.
    let mut previous_issuance = None;
    let mut continued = None;
    let reused = forge(&original, &directory.path().join("reused"), |envelope| {
        let issuance = matches!(envelope.event, Event::PointsIssued(_));
        if continued.is_none()
            && issuance
            && let Some(command_id) = previous_issuance
        {
            continued = Some(envelope.position);
            envelope.command_id = command_id;
        }
        previous_issuance = issuance.then_some(envelope.command_id);
    });
    let output = replay(&["verify", reused.to_str().expect("path")]);
    let position = continued.expect("the story issues after its start");
    assert_finding_at(&output, position, "reused command id");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("already did at position {}", position - 1)),
        "{}",
        text(&output)
    );
}

/// The pipeline's stages check different things, and a later stage sees
/// an event after an earlier stage has moved on: whichever stage finds it,
/// the first failure in the log is the one named. A forged cap breaks
/// invariant 2 at an issuance (found by the verifying thread); a repeated
/// command id two events later (found by the decoder) must not be
/// reported instead.
#[test]
fn the_first_failure_in_the_log_is_named_whichever_check_finds_it() {
    use ledger_core::domain::Event;
    let directory = tempfile::tempdir().expect("temporary directory");
    let original = directory.path().join("original");
    ledger(&original, 0);
    let forged_cap = 100;
    let mut outstanding: i128 = 0;
    let mut breach = None;
    let mut first_command = None;
    let forged = forge(&original, &directory.path().join("forged"), |envelope| {
        if first_command.is_none() {
            first_command = Some((envelope.command_id, envelope.command_fingerprint));
        }
        match &mut envelope.event {
            Event::ProgramConfigured(configured) => configured.rules.supply_cap = forged_cap,
            Event::PointsIssued(issued) => outstanding += i128::from(issued.points),
            Event::PointsRedeemed(redeemed) => outstanding -= i128::from(redeemed.points),
            _ => {}
        }
        match breach {
            None if outstanding > i128::from(forged_cap) => breach = Some(envelope.position),
            Some(position) if envelope.position == position + 2 => {
                if let Some((command_id, fingerprint)) = first_command {
                    envelope.command_id = command_id;
                    envelope.command_fingerprint = fingerprint;
                }
            }
            _ => {}
        }
    });
    let breach = breach.expect("the story issues more than the forged cap");
    let output = replay(&["verify", forged.to_str().expect("path")]);
    assert_finding_at(&output, breach, "forged cap before a repeated command");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invariant 2") && !stderr.contains("invariant 7"),
        "{}",
        text(&output)
    );
}

/// Risk alerts are held to the soft velocity limits: a history whose
/// first alert is altered fails at the movement it came with; one whose
/// programme is rewritten with a lower soft limit (so that a member's
/// second redemption of the day should have raised an alert, and did not)
/// fails at the first such redemption. Chains recomputed in both.
#[test]
fn a_well_chained_history_with_wrong_risk_alerts_fails_at_the_movement() {
    use ledger_core::domain::Event;
    let directory = tempfile::tempdir().expect("temporary directory");
    let original = directory.path().join("original");
    ledger(&original, 0);

    let mut altered = None;
    let forged = forge(&original, &directory.path().join("altered"), |envelope| {
        if altered.is_none()
            && let Event::RiskAlertRaised(alert) = &mut envelope.event
        {
            alert.observed += 1;
            altered = Some(envelope.position);
        }
    });
    let alert = altered.expect("the story raises alerts");
    let output = replay(&["verify", forged.to_str().expect("path")]);
    assert_finding_at(&output, alert + 1, "altered alert");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("its soft velocity limits raise"),
        "{}",
        text(&output)
    );

    let mut redemptions = std::collections::HashMap::new();
    let mut unalerted = None;
    let mut after_alert = false;
    let forged = forge(&original, &directory.path().join("lowered"), |envelope| {
        match &mut envelope.event {
            Event::ProgramConfigured(configured) => {
                if let Some(limit) = &mut configured.rules.risk_rules.redemption_velocity {
                    limit.soft_count_max = Some(SOFT_REDEMPTIONS_A_DAY - 1);
                }
            }
            Event::PointsRedeemed(redeemed) => {
                let count = redemptions.entry(redeemed.account.clone()).or_insert(0);
                *count += 1;
                if unalerted.is_none() && *count == 2 && !after_alert {
                    unalerted = Some(envelope.position);
                }
            }
            _ => {}
        }
        after_alert = matches!(envelope.event, Event::RiskAlertRaised(_));
    });
    let position = unalerted.expect("a member redeems twice a day");
    let output = replay(&["verify", forged.to_str().expect("path")]);
    assert_finding_at(&output, position, "a missing alert");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the log records no alert"),
        "{}",
        text(&output)
    );
}

/// Who did what is audited too: a history whose first redemption (at m1)
/// is rewritten as recorded by a merchant key of m0, or by an analyst,
/// fails at that redemption (chains recomputed).
#[test]
fn a_well_chained_history_with_an_unauthorised_actor_fails_at_its_event() {
    use ledger_core::domain::Event;
    let directory = tempfile::tempdir().expect("temporary directory");
    let original = directory.path().join("original");
    ledger(&original, 0);
    for (name, role, merchant, expected) in [
        (
            "other-merchant",
            Role::Merchant,
            Some("m0"),
            "acts for merchant m0, not m1",
        ),
        ("analyst", Role::Analyst, None, "records no events"),
    ] {
        let mut rewritten = None;
        let forged = forge(&original, &directory.path().join(name), |envelope| {
            if rewritten.is_none() && matches!(envelope.event, Event::PointsRedeemed(_)) {
                envelope.actor = Actor {
                    key_id: id(KeyId::parse, "till-7"),
                    role,
                    merchant_id: merchant.map(|merchant| id(MerchantId::parse, merchant)),
                };
                rewritten = Some(envelope.position);
            }
        });
        let position = rewritten.expect("the story redeems");
        let output = replay(&["verify", forged.to_str().expect("path")]);
        assert_finding_at(&output, position, name);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("not allowed to") && stderr.contains(expected),
            "{}",
            text(&output)
        );
    }
}

/// A copy of the log at `original` with every envelope passed through
/// `rewrite` and the chain recomputed: well-formed records that only the
/// invariant checks can fault.
fn forge(
    original: &Path,
    forged: &Path,
    mut rewrite: impl FnMut(&mut ledger_core::engine::EventEnvelope),
) -> std::path::PathBuf {
    let source = FileLog::open(original.join("log"), LogMode::ReadOnly).expect("opens");
    let records = source.read_blocking(0, 100_000).expect("readable");
    let payloads: Vec<Vec<u8>> = records
        .iter()
        .map(|record| {
            let mut envelope =
                ledger_core::engine::EventEnvelope::decode(&record.payload).expect("decodes");
            rewrite(&mut envelope);
            envelope.encode().expect("encodes")
        })
        .collect();
    let log = FileLog::open(
        forged.join("log"),
        LogMode::ReadWrite {
            ledger_id_if_new: LEDGER,
        },
    )
    .expect("a new log");
    log.append_blocking(0, &payloads).expect("appended");
    forged.to_owned()
}

/// `tests/fixtures/ledger-v1` was written by the server before
/// `api_key_created` went to version 2 (the hash now names its algorithm).
/// Its bytes never change: it must keep verifying against the head recorded
/// then, its stored events must match the version 1 schemas, and reading
/// them must upcast to the current shape.
#[test]
fn a_log_written_before_an_event_version_bump_still_verifies_and_reads_upcast() {
    const FIXTURE_HEAD: &str = "8:07ddede4c2afbffb9904afb5be9ea59a966e27221f50708696f25a1d276bdc04";
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ledger-v1");
    let fixture_path = fixture.to_str().expect("UTF-8 path");
    let verified = verified_json(&["verify", fixture_path, "--expect-head", FIXTURE_HEAD]);
    assert_eq!(verified["verified"]["events"], json!(8));

    let schemas = tests::schemas::Schemas::load().expect("the committed schemas compile");
    let log = FileLog::open(fixture.join("log"), LogMode::ReadOnly).expect("opens read-only");
    let records = log.read_blocking(0, 100).expect("readable");
    let mut projections = projections::Projections::new();
    let mut upcast = 0;
    for record in &records {
        let stored: Value = serde_json::from_slice(&record.payload).expect("JSON");
        schemas
            .check_envelope(&stored)
            .unwrap_or_else(|error| panic!("as stored: {error}"));
        let envelope =
            ledger_core::engine::EventEnvelope::decode(&record.payload).expect("decodes");
        let current: Value = serde_json::to_value(&envelope).expect("serialises");
        schemas
            .check_envelope(&current)
            .unwrap_or_else(|error| panic!("as read now: {error}"));
        if let ledger_core::domain::Event::ApiKeyCreated(created) = &envelope.event {
            assert_eq!(stored["schema_version"], json!(1));
            assert_eq!(current["schema_version"], json!(2));
            assert_eq!(
                created.key_hash.algorithm,
                ledger_core::domain::event::KeyHashAlgorithm::Sha256
            );
            assert_eq!(json!(created.key_hash.hex), stored["data"]["key_hash"]);
            upcast += 1;
        }
        projections
            .apply(&envelope)
            .expect("the read models take it");
    }
    assert_eq!(upcast, 2, "the fixture holds two version 1 key creations");
    let hex = records
        .iter()
        .filter_map(|record| serde_json::from_slice::<Value>(&record.payload).ok())
        .find(|stored| stored["type"] == "api_key_created")
        .and_then(|stored| stored["data"]["key_hash"].as_str().map(str::to_owned))
        .expect("a stored key hash");
    assert!(
        projections.keys.by_hash(&hex).is_some(),
        "a key created under version 1 still authenticates"
    );
}
