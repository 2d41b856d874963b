//! The read models: a settlement story with known figures, reconciliation
//! that reports planted differences, and live following with
//! read-your-writes on a real engine and file log.

use std::sync::Arc;
use std::time::Duration;

use ledger_core::domain::command::{Actor, Command, Role};
use ledger_core::domain::ids::{AccountId, KeyId, MerchantId, OrderRef};
use ledger_core::domain::money::Currency;
use ledger_core::domain::program::{ProgramRules, ReleasePolicy};
use ledger_core::domain::{Amount, Timestamp};
use ledger_core::engine::{
    CommandRequest, Engine, EngineConfig, EventEnvelope, ManualClock, Outcome,
};
use ledger_core::store::snapshot::{Snapshot, SnapshotStore};
use ledger_core::store::storage::OsStorage;
use ledger_core::store::{EventLog, FileLog, FileLogOptions, Head, LogMode};
use projections::Projections;
use projections::live::LiveProjections;
use projections::reconcile::{Difference, WriterSummary, reconcile};
use uuid::Uuid;

pub(super) fn admin() -> Actor {
    Actor {
        key_id: KeyId::parse("admin").expect("valid"),
        role: Role::Admin,
        merchant_id: None,
    }
}

fn amount(text: &str) -> Amount {
    text.parse().expect("valid amount")
}

pub(super) fn merchant(name: &str) -> MerchantId {
    MerchantId::parse(name).expect("valid")
}

pub(super) fn account(name: &str) -> AccountId {
    AccountId::parse(name).expect("valid")
}

pub(super) fn story() -> Vec<Command> {
    let mut rules = ProgramRules::with_cap(1_000_000);
    rules.release = Some(ReleasePolicy {
        period_days: 1,
        base_points: 10_000,
        redeemed_factor: amount("0.5"),
    });
    let mut commands = vec![Command::ConfigureProgram {
        rules: Box::new(rules),
    }];
    for (name, issue_price, redemption_value) in
        [("cafe", "0.01", "0.008"), ("cinema", "0.02", "0.015")]
    {
        commands.push(Command::ApplyMerchant {
            merchant_id: merchant(name),
            name: name.to_owned(),
            currency: Currency::parse("EUR").expect("valid"),
            issue_price: amount(issue_price),
            redemption_value: amount(redemption_value),
        });
        commands.push(Command::ApproveMerchant {
            merchant_id: merchant(name),
            reason: None,
        });
        commands.push(Command::RecordDeposit {
            merchant_id: merchant(name),
            amount: amount("500.00"),
        });
    }
    let issue = |to: &str, at: &str, order: &str, points: u64| Command::IssuePoints {
        account: account(to),
        merchant_id: merchant(at),
        order_ref: OrderRef::parse(order).expect("valid"),
        points: Some(points),
        purchase_amount: None,
        category: None,
    };
    commands.push(issue("ann", "cafe", "c-1", 1_000));
    commands.push(issue("ann", "cinema", "m-1", 500));
    commands.push(Command::RedeemPoints {
        account: account("ann"),
        merchant_id: merchant("cinema"),
        points: 1_200,
        order_ref: OrderRef::parse("ticket-1").expect("valid"),
    });
    commands.push(Command::TransferPoints {
        from: account("ann"),
        to: account("bob"),
        points: 100,
    });
    commands
}

async fn run_story(directory: &std::path::Path) -> (Arc<FileLog>, Engine, Vec<Outcome>) {
    let (log, engine, outcomes) = run_commands(directory, None, story()).await;
    for outcome in &outcomes {
        assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome:?}");
    }
    (log, engine, outcomes)
}

/// `commands` through an engine on a file log in `directory` (with writer
/// snapshots in `snapshots`), at a fixed time, as the admin.
pub(super) async fn run_commands(
    directory: &std::path::Path,
    snapshots: Option<SnapshotStore<OsStorage>>,
    commands: Vec<Command>,
) -> (Arc<FileLog>, Engine, Vec<Outcome>) {
    let log = Arc::new(
        FileLog::open_with(
            OsStorage,
            directory.to_path_buf(),
            LogMode::ReadWrite {
                ledger_id_if_new: Uuid::from_u128(5),
            },
            FileLogOptions::default(),
        )
        .expect("opens"),
    );
    let clock = Arc::new(ManualClock::at(
        Timestamp::parse_rfc3339("2026-03-10T12:00:00Z").expect("valid"),
    ));
    let engine = Engine::start(Arc::clone(&log), snapshots, clock, EngineConfig::default())
        .await
        .expect("starts");
    let mut outcomes = Vec::new();
    for (index, command) in commands.into_iter().enumerate() {
        let outcome = engine
            .submit(CommandRequest {
                command_id: Uuid::from_u128(index as u128 + 1),
                command,
                actor: admin(),
            })
            .await
            .expect("available");
        outcomes.push(outcome);
    }
    (log, engine, outcomes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlements_supply_and_balances_add_up() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (log, engine, _) = run_story(directory.path()).await;
    let live = LiveProjections::new(Projections::new());
    live.catch_up(log.as_ref()).await.expect("catches up");
    let projections = live.read().await;

    // Balances: ann earned 1,500 and spent 1,200 — neither lot expires, so
    // the older one (cafe's) went first — then gave bob 100 of cinema's.
    let ann = projections
        .balances
        .account(&account("ann"))
        .expect("ann exists");
    assert_eq!((ann.balance, ann.held), (200, 0));
    let bob = projections
        .balances
        .account(&account("bob"))
        .expect("bob exists");
    assert_eq!(bob.balance, 100);
    assert_eq!(
        bob.lots_in_order()[0].merchant_id,
        merchant("cinema"),
        "transfers keep the origin"
    );

    // Settlements for the day.
    let day = Timestamp::parse_rfc3339("2026-03-10T00:00:00Z")
        .expect("valid")
        .day_index();
    let report = projections.settlements.report(day, day + 1);
    let cafe = &report.merchants[0];
    let cinema = &report.merchants[1];
    assert_eq!(cafe.merchant_id, merchant("cafe"));
    assert_eq!(
        (cafe.totals.points_issued, cafe.totals.funds_consumed),
        (1_000, amount("10.00"))
    );
    assert_eq!(
        (cafe.totals.points_redeemed, cafe.totals.amount_owed),
        (0, Amount::ZERO)
    );
    assert_eq!(cafe.net, amount("-10.00"));
    assert_eq!(
        (cinema.totals.points_issued, cinema.totals.funds_consumed),
        (500, amount("10.00"))
    );
    assert_eq!(
        (cinema.totals.points_redeemed, cinema.totals.amount_owed),
        (1_200, amount("18.000"))
    );
    assert_eq!(cinema.net, amount("8.000"));
    // Whose points were spent where: 1,000 of cafe's and 200 of cinema's at the cinema.
    let clearing: Vec<_> = report
        .clearing
        .iter()
        .map(|entry| {
            (
                entry.issuer_merchant_id.as_str(),
                entry.redeemer_merchant_id.as_str(),
                entry.points,
            )
        })
        .collect();
    assert_eq!(
        clearing,
        vec![("cafe", "cinema", 1_000), ("cinema", "cinema", 200)]
    );
    // Another day has nothing.
    assert!(
        projections
            .settlements
            .report(day + 1, day + 2)
            .clearing
            .is_empty()
    );
    let cafe_account = projections
        .settlements
        .merchant(&merchant("cafe"))
        .expect("cafe");
    assert_eq!(cafe_account.funding, amount("490.00"));

    // Supply, and tomorrow's budget: 10,000 + 0.5 × 1,200.
    let today = Timestamp::parse_rfc3339("2026-03-10T18:00:00Z").expect("valid");
    let view = projections.supply.view(today);
    assert_eq!(
        (view.issued_total, view.redeemed_total, view.outstanding),
        (1_500, 1_200, 300)
    );
    assert_eq!((view.supply_cap, view.headroom), (Some(1_000_000), 999_700));
    assert_eq!(
        (view.current_period.budget, view.current_period.issued),
        (Some(10_000), 1_500)
    );
    let tomorrow = projections.supply.view(today.plus_days(1));
    assert_eq!(
        (
            tomorrow.current_period.budget,
            tomorrow.current_period.issued
        ),
        (Some(10_600), 0)
    );

    // History pages through ann's events.
    let history = projections.history_page(&account("ann"), 0, 100);
    assert_eq!(history.len(), 4, "two issuances, a redemption, a transfer");
    assert_eq!(
        projections.history_page(&account("ann"), history[1], 1),
        vec![history[2]]
    );
    drop(projections);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_agrees_with_the_writer_and_reports_a_planted_difference() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (log, engine, _) = run_story(directory.path()).await;
    let (_, head) = engine.state_digest().await.expect("inspects");
    engine.shutdown().await;
    // The writer's state, rebuilt from the same log by the domain's apply.
    let mut state = ledger_core::domain::State::default();
    for record in log.read_blocking(0, usize::MAX).expect("reads") {
        let envelope = EventEnvelope::decode(&record.payload).expect("decodes");
        ledger_core::domain::apply(&mut state, &envelope.event);
    }
    let live = LiveProjections::new(Projections::new());
    live.catch_up(log.as_ref()).await.expect("catches up");
    let projections = live.read().await;
    let summary = WriterSummary::of(&state, head.position);
    assert_eq!(reconcile(&summary, &projections), Vec::new());

    let mut planted = summary.clone();
    if let Some(ann) = planted.accounts.get_mut(&account("ann")) {
        ann.0 += 1;
    }
    planted.supply.0 += 7;
    let differences = reconcile(&planted, &projections);
    assert!(differences.contains(&Difference::Balance {
        account: account("ann"),
        writer: 201,
        projections: 200,
    }));
    assert!(differences.contains(&Difference::Supply {
        total: "issued_total",
        writer: 1_507,
        projections: 1_500,
    }));
    let behind = WriterSummary {
        position: head.position + 1,
        ..summary
    };
    assert!(matches!(
        reconcile(&behind, &projections)[..],
        [Difference::Position { .. }]
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_can_wait_for_their_own_writes() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (log, engine, outcomes) = run_story(directory.path()).await;
    let live = LiveProjections::new(Projections::new());
    let follower = tokio::spawn(Arc::clone(&live).follow(Arc::clone(&log)));
    let Some(Outcome::Accepted { position, .. }) = outcomes.last() else {
        panic!("the story ends with an accepted command");
    };
    live.wait_for(*position, Duration::from_secs(5))
        .await
        .expect("catches up");
    assert_eq!(
        live.read()
            .await
            .balances
            .account(&account("bob"))
            .map(|bob| bob.balance),
        Some(100)
    );
    // One more write, then read it back through the follower.
    let outcome = engine
        .submit(CommandRequest {
            command_id: Uuid::from_u128(999),
            command: Command::TransferPoints {
                from: account("bob"),
                to: account("cid"),
                points: 40,
            },
            actor: admin(),
        })
        .await
        .expect("available");
    let Outcome::Accepted { position, .. } = outcome else {
        panic!("accepted: {outcome:?}");
    };
    live.wait_for(position, Duration::from_secs(5))
        .await
        .expect("catches up");
    assert_eq!(
        live.read()
            .await
            .balances
            .account(&account("cid"))
            .map(|cid| cid.balance),
        Some(40)
    );
    // Waiting for a position nobody wrote gives up after the bound.
    let too_far = live
        .wait_for(position + 10, Duration::from_millis(50))
        .await;
    assert_eq!(
        too_far,
        Err(projections::live::NotCaughtUp {
            wanted: position + 10,
            reached: position,
        })
    );
    engine.shutdown().await;
    follower.abort();
}

#[test]
fn applying_is_idempotent_by_position_and_refuses_gaps() {
    let envelope = |position: u64| EventEnvelope {
        position,
        event_id: Uuid::from_u128(u128::from(position)),
        schema_version: 1,
        recorded_at: Timestamp(0),
        command_id: Uuid::from_u128(u128::from(position)),
        command_fingerprint: ledger_core::domain::idempotency::Fingerprint([0; 32]),
        actor: admin(),
        event: ledger_core::domain::Event::ApiKeyRevoked(
            ledger_core::domain::event::ApiKeyRevoked {
                key_id: KeyId::parse("k").expect("valid"),
                revoked_at: Timestamp(0),
            },
        ),
    };
    let mut projections = Projections::new();
    assert_eq!(projections.apply(&envelope(1)), Ok(true));
    assert_eq!(projections.apply(&envelope(1)), Ok(false));
    assert!(projections.apply(&envelope(3)).is_err());
    assert_eq!(projections.position(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_feed_keeps_the_read_models_current_and_fills_gaps_from_the_log() {
    let directory = tempfile::tempdir().expect("temporary directory");
    // The story is committed before anyone subscribes: the follower must
    // take it from the log, then the live batches from the engine.
    let (log, engine, _) = run_story(directory.path()).await;
    let live = LiveProjections::new(Projections::new());
    let follower = tokio::spawn(
        Arc::clone(&live).follow_engine(engine.subscribe_committed(), Arc::clone(&log)),
    );
    let mut last = 0;
    for (index, points) in [10u64, 20, 30].into_iter().enumerate() {
        let outcome = engine
            .submit(CommandRequest {
                command_id: Uuid::from_u128(2_000 + index as u128),
                command: Command::TransferPoints {
                    from: account("ann"),
                    to: account("dee"),
                    points,
                },
                actor: admin(),
            })
            .await
            .expect("available");
        let Outcome::Accepted { position, .. } = outcome else {
            panic!("accepted: {outcome:?}");
        };
        last = position;
    }
    live.wait_for(last, Duration::from_secs(5))
        .await
        .expect("catches up");
    let projections = live.read().await;
    assert_eq!(projections.position(), last);
    assert_eq!(
        projections
            .balances
            .account(&account("dee"))
            .map(|dee| dee.balance),
        Some(60)
    );
    assert_eq!(
        projections
            .balances
            .account(&account("ann"))
            .map(|ann| ann.balance),
        Some(140)
    );
    drop(projections);
    engine.shutdown().await;
    drop(engine);
    // The feed closes with the engine; the follower ends cleanly.
    let ended = tokio::time::timeout(Duration::from_secs(5), follower).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_model_snapshots_restore_the_models_and_untrustworthy_ones_are_ignored() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (log, engine, _) = run_story(&directory.path().join("log")).await;
    engine.shutdown().await;
    let store = Arc::new(SnapshotStore::new(
        OsStorage,
        directory.path().join("read-models"),
    ));

    // A genuine snapshot part-way through the story...
    let early_position = 5;
    let records = log.read(0, early_position as usize).await.expect("reads");
    let mut early = Projections::new();
    for record in &records {
        early
            .apply(&EventEnvelope::decode(&record.payload).expect("decodes"))
            .expect("applies");
    }
    let early_head = Head {
        position: early_position,
        hash: records.last().expect("five records").hash,
    };
    store
        .save(
            projections::snapshot::READ_MODELS_SNAPSHOT,
            early_head,
            &early,
        )
        .expect("saves");
    // ...and one at the head, written by the live read models.
    let live = LiveProjections::new(Projections::new());
    live.catch_up(log.as_ref()).await.expect("catches up");
    let written = live
        .write_snapshot(Arc::clone(&store), log.as_ref())
        .await
        .expect("writes")
        .expect("something to write");
    let head = log.head();
    assert_eq!(written.position, head.position);
    let full = live.read().await.clone();
    let loaded = projections::snapshot::load(store.as_ref(), log.as_ref())
        .await
        .expect("reads the log");
    assert_eq!(loaded, full, "the newest snapshot restores the read models");

    // Each forgery takes the newest snapshot's place; start-up must fall
    // back to the genuine early one and catch up from there.
    let candidates = store.candidates().expect("lists");
    let early_body = store.read(&candidates[1].1).expect("reads").body;
    let genuine_body = store.read(&candidates[0].1).expect("reads").body;
    let layout = projections::snapshot::READ_MODELS_SNAPSHOT.layout;
    let mut undecodable = layout.to_le_bytes().to_vec();
    undecodable.extend_from_slice(b"not read models");
    let mut other_layout = genuine_body.clone();
    other_layout[..4].copy_from_slice(&(layout + 1).to_le_bytes());
    let forgeries = [
        (
            "an older state under a wrong hash",
            [0xAB; 32],
            early_body.clone(),
        ),
        ("an older state under the right hash", head.hash, early_body),
        ("a body that does not decode", head.hash, undecodable),
        (
            "the current state in another layout",
            head.hash,
            other_layout,
        ),
    ];
    for (forgery, head_hash, body) in forgeries {
        store
            .write(&Snapshot {
                position: head.position,
                head_hash,
                body,
            })
            .expect("writes");
        let loaded = projections::snapshot::load(store.as_ref(), log.as_ref())
            .await
            .expect("reads the log");
        assert_eq!(loaded.position(), early_position, "{forgery}");
        let restarted = LiveProjections::new(loaded);
        restarted.catch_up(log.as_ref()).await.expect("catches up");
        assert_eq!(*restarted.read().await, full, "{forgery}");
    }

    // Periodic snapshots follow the read models as they move.
    let periodic = Arc::new(SnapshotStore::new(
        OsStorage,
        directory.path().join("periodic"),
    ));
    let fresh = LiveProjections::new(Projections::new());
    tokio::spawn(Arc::clone(&fresh).snapshot_periodically(
        Arc::clone(&periodic),
        Arc::clone(&log),
        4,
        0,
    ));
    fresh.catch_up(log.as_ref()).await.expect("catches up");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let newest = periodic.candidates().expect("lists");
        if newest.first().map(|(position, _)| *position) == Some(head.position) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no periodic snapshot at the head: {newest:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let loaded = projections::snapshot::load(periodic.as_ref(), log.as_ref())
        .await
        .expect("reads the log");
    assert_eq!(loaded, full);
}

/// Catching up folds the log in chunks, and a chunk is one batch fold; a
/// reconciliation registered for a position inside a chunk still runs
/// exactly there, not at the chunk's end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconciliation_due_inside_a_catch_up_chunk_runs_at_its_position() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (log, engine, _) = run_story(directory.path()).await;
    engine.shutdown().await;
    let envelopes: Vec<EventEnvelope> = log
        .read_blocking(0, usize::MAX)
        .expect("reads")
        .iter()
        .map(|record| EventEnvelope::decode(&record.payload).expect("decodes"))
        .collect();
    let middle = envelopes.len() / 2;
    let mut state = ledger_core::domain::State::default();
    for envelope in &envelopes[..middle] {
        ledger_core::domain::apply(&mut state, &envelope.event);
    }
    let at = envelopes[middle - 1].position;
    // The writer at the middle against the read models there: no
    // difference; against the read models at the end: differences.
    for (claimed, expect_differences) in [(at, false), (log.head().position, true)] {
        let live = LiveProjections::new(Projections::new());
        let (result, mut differences) = tokio::sync::oneshot::channel();
        live.reconcile_when_at(WriterSummary::of(&state, claimed), result);
        live.catch_up(log.as_ref()).await.expect("catches up");
        let differences = differences
            .try_recv()
            .expect("the reconciliation ran during the catch-up");
        assert_eq!(
            !differences.is_empty(),
            expect_differences,
            "{differences:?}"
        );
    }
}
