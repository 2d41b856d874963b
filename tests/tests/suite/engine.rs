//! The engine: single writer, group commit, idempotency, restart from the
//! log and from snapshots, fail-stop on log errors, bounded queue.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ledger_core::domain::command::{Actor, Command, Role};
use ledger_core::domain::ids::{AccountId, KeyId, MerchantId, OrderRef};
use ledger_core::domain::money::Currency;
use ledger_core::domain::program::ProgramRules;
use ledger_core::domain::state::MerchantNumber;
use ledger_core::domain::{Rejection, State, Timestamp, apply, check_all, state_digest};
use ledger_core::engine::{
    CommandRequest, Engine, EngineConfig, EngineStatus, EventEnvelope, ManualClock, Outcome,
};
use ledger_core::store::simulated::{Faults, SimulatedStorage};
use ledger_core::store::snapshot::{Snapshot, SnapshotStore, decode_body, encode_body};
use ledger_core::store::storage::{OsStorage, Storage};
use ledger_core::store::{EventLog, FileLog, FileLogOptions, LogMode, MemoryLog};
use uuid::Uuid;

const LEDGER: Uuid = Uuid::from_u128(0xe9_91e);

fn admin() -> Actor {
    Actor {
        key_id: KeyId::parse("admin").expect("valid"),
        role: Role::Admin,
        merchant_id: None,
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(
        Timestamp::parse_rfc3339("2026-06-01T09:00:00Z").expect("valid"),
    ))
}

fn request(command_id: u128, command: Command) -> CommandRequest {
    CommandRequest {
        command_id: Uuid::from_u128(command_id),
        command,
        actor: admin(),
    }
}

fn account(index: usize) -> AccountId {
    AccountId::parse(format!("member-{index}")).expect("valid")
}

fn merchant(name: &str) -> MerchantId {
    MerchantId::parse(name).expect("valid")
}

fn setup_commands() -> Vec<Command> {
    let mut commands = vec![Command::ConfigureProgram {
        rules: Box::new(ProgramRules::with_cap(10_000_000)),
    }];
    for name in ["cafe", "cinema"] {
        commands.push(Command::ApplyMerchant {
            merchant_id: merchant(name),
            name: name.to_owned(),
            currency: Currency::parse("EUR").expect("valid"),
            issue_price: "0.01".parse().expect("valid"),
            redemption_value: "0.01".parse().expect("valid"),
        });
        commands.push(Command::ApproveMerchant {
            merchant_id: merchant(name),
            reason: None,
        });
        commands.push(Command::RecordDeposit {
            merchant_id: merchant(name),
            amount: "100000".parse().expect("valid"),
        });
    }
    commands
}

fn issue(to: usize, order: String, points: u64) -> Command {
    Command::IssuePoints {
        account: account(to),
        merchant_id: merchant("cafe"),
        order_ref: OrderRef::parse(order).expect("valid"),
        points: Some(points),
        purchase_amount: None,
        category: None,
    }
}

fn open_file_log(directory: &Path) -> Arc<FileLog> {
    Arc::new(
        FileLog::open_with(
            OsStorage,
            directory.join("log"),
            LogMode::ReadWrite {
                ledger_id_if_new: LEDGER,
            },
            FileLogOptions::default(),
        )
        .expect("the log opens"),
    )
}

fn snapshots(directory: &Path) -> SnapshotStore<OsStorage> {
    SnapshotStore::new(OsStorage, directory.join("snapshots"))
}

async fn start<L: EventLog, S: Storage>(
    log: Arc<L>,
    snapshots: Option<SnapshotStore<S>>,
    clock: Arc<ManualClock>,
    config: EngineConfig,
) -> Engine {
    Engine::start(log, snapshots, clock, config)
        .await
        .expect("the engine starts")
}

async fn submit_ok(engine: &Engine, id: u128, command: Command) -> (u64, Arc<[EventEnvelope]>) {
    match engine.submit(request(id, command)).await {
        Ok(Outcome::Accepted { position, events }) => (position, events),
        other => panic!("command {id} was not accepted: {other:?}"),
    }
}

/// The programme and two funded merchants, as commands 1, 2, ...
async fn set_up(engine: &Engine) {
    for (index, command) in setup_commands().into_iter().enumerate() {
        submit_ok(engine, index as u128 + 1, command).await;
    }
}

/// An engine on a file log (and snapshots) in `directory`.
async fn started(directory: &Path, config: EngineConfig) -> (Arc<FileLog>, Engine) {
    let log = open_file_log(directory);
    let engine = start(
        Arc::clone(&log),
        Some(snapshots(directory)),
        clock(),
        config,
    )
    .await;
    (log, engine)
}

/// Every record of the log, decoded.
fn log_envelopes(log: &FileLog) -> Vec<EventEnvelope> {
    log.read_blocking(0, usize::MAX)
        .expect("the log reads")
        .iter()
        .map(|record| EventEnvelope::decode(&record.payload).expect("envelopes decode"))
        .collect()
}

fn replayed_state(envelopes: &[EventEnvelope]) -> State {
    let mut state = State::default();
    for envelope in envelopes {
        apply(&mut state, &envelope.event);
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_get_durable_answers_in_log_order() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (log, engine) = started(directory.path(), EngineConfig::default()).await;
    set_up(&engine).await;
    const CALLERS: usize = 64;
    const COMMANDS_PER_CALLER: usize = 60;
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for step in 0..COMMANDS_PER_CALLER {
                let id = 1_000_000 + (caller * COMMANDS_PER_CALLER + step) as u128;
                // Interleaved on shared accounts: issue, redeem (sometimes
                // more than there is), transfer to a neighbour.
                // Every fourth command spends from an account that never
                // earned, so refusals are in the mix whatever the schedule.
                let command = match step % 4 {
                    3 => Command::RedeemPoints {
                        account: account(100 + caller),
                        merchant_id: merchant("cinema"),
                        points: 1,
                        order_ref: OrderRef::parse("basket").expect("valid"),
                    },
                    0 => issue(caller % 8, format!("order-{caller}-{step}"), 50),
                    1 => Command::RedeemPoints {
                        account: account(caller % 8),
                        merchant_id: merchant("cinema"),
                        points: 20 + (step as u64 % 7) * 10,
                        order_ref: OrderRef::parse("basket").expect("valid"),
                    },
                    _ => Command::TransferPoints {
                        from: account(caller % 8),
                        to: account((caller + 1) % 8),
                        points: 5,
                    },
                };
                let answer = engine.submit(request(id, command)).await;
                answers.push((id, answer));
            }
            answers
        }));
    }
    let mut accepted: BTreeMap<u64, Arc<[EventEnvelope]>> = BTreeMap::new();
    let mut rejected = 0;
    for task in tasks {
        let answers = task.await.expect("caller task");
        let mut last_position = 0;
        for (id, answer) in answers {
            match answer.expect("the engine stays available") {
                Outcome::Accepted { position, events } => {
                    // Acknowledgement order is log order for each caller.
                    assert!(
                        position > last_position,
                        "caller saw positions go backwards"
                    );
                    last_position = position;
                    assert_eq!(events.last().map(|event| event.position), Some(position));
                    assert!(
                        events
                            .iter()
                            .all(|event| event.command_id == Uuid::from_u128(id))
                    );
                    accepted.insert(position, events);
                }
                Outcome::Rejected(rejection) => {
                    assert_eq!(rejection.code(), "insufficient_points", "{rejection:?}");
                    rejected += 1;
                }
            }
        }
    }
    assert!(accepted.len() > 2_000, "only {} accepted", accepted.len());
    assert!(
        rejected >= CALLERS * COMMANDS_PER_CALLER / 4,
        "only {rejected} refusals"
    );
    let (digest, head) = engine.state_digest().await.expect("inspects");
    engine.shutdown().await;

    // The log holds exactly the acknowledged events, byte-for-byte the
    // envelopes the callers were given, and nothing else after set-up.
    let envelopes = log_envelopes(&log);
    assert_eq!(envelopes.len() as u64, head.position);
    let acknowledged: Vec<&EventEnvelope> =
        accepted.values().flat_map(|events| events.iter()).collect();
    let logged_after_setup: Vec<&EventEnvelope> = envelopes
        .iter()
        .skip(envelopes.len() - acknowledged.len())
        .collect();
    assert_eq!(logged_after_setup, acknowledged);
    let state = replayed_state(&envelopes);
    check_all(&state).expect("invariants hold");
    assert_eq!(
        state_digest(&state),
        digest,
        "the log rebuilds the writer's state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_get_the_first_answer_also_after_a_restart() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (log, engine) = started(directory.path(), EngineConfig::default()).await;
    set_up(&engine).await;
    let first = engine
        .submit(request(500, issue(1, "o-1".into(), 100)))
        .await;
    let retry = engine
        .submit(request(500, issue(1, "o-1".into(), 100)))
        .await;
    assert_eq!(first, retry);
    let reused = engine
        .submit(request(500, issue(1, "o-2".into(), 100)))
        .await;
    assert_eq!(
        reused,
        Ok(Outcome::Rejected(Rejection::IdempotencyKeyReused))
    );
    let refused_redemption = || {
        request(
            501,
            Command::RedeemPoints {
                account: account(9),
                merchant_id: merchant("cafe"),
                points: 1,
                order_ref: OrderRef::parse("b").expect("valid"),
            },
        )
    };
    let refused = engine.submit(refused_redemption()).await;
    assert!(matches!(
        refused,
        Ok(Outcome::Rejected(Rejection::InsufficientPoints { .. }))
    ));
    assert_eq!(
        engine
            .submit(request(501, issue(9, "o-9".into(), 10)))
            .await,
        Ok(Outcome::Rejected(Rejection::IdempotencyKeyReused))
    );
    let head = log.head();
    engine.shutdown().await;
    drop(engine);
    drop(log);

    // Restart from the snapshot, then from the log alone (snapshots removed).
    for keep_snapshots in [true, false] {
        if !keep_snapshots {
            let _ = std::fs::remove_dir_all(directory.path().join("snapshots"));
        }
        let log = open_file_log(directory.path());
        let engine = start(
            Arc::clone(&log),
            Some(snapshots(directory.path())),
            clock(),
            EngineConfig::default(),
        )
        .await;
        let again = engine
            .submit(request(500, issue(1, "o-1".into(), 100)))
            .await;
        assert_eq!(
            again, first,
            "after restart (snapshots kept: {keep_snapshots})"
        );
        let reused = engine
            .submit(request(500, issue(1, "o-2".into(), 100)))
            .await;
        assert_eq!(
            reused,
            Ok(Outcome::Rejected(Rejection::IdempotencyKeyReused))
        );
        if keep_snapshots {
            // Rejections leave no event; only the snapshot remembers them.
            // The different command first: a fresh decision of the original
            // would record it again and hide a forgotten rejection.
            assert_eq!(
                engine
                    .submit(request(501, issue(9, "o-9".into(), 10)))
                    .await,
                Ok(Outcome::Rejected(Rejection::IdempotencyKeyReused))
            );
            assert_eq!(engine.submit(refused_redemption()).await, refused);
        }
        assert_eq!(log.head(), head, "no second effect");
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_with_and_without_snapshots_rebuild_the_identical_state() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let config = EngineConfig {
        snapshot_every_events: 100,
        ..EngineConfig::default()
    };
    let expected = {
        let log = open_file_log(directory.path());
        let engine = start(
            Arc::clone(&log),
            Some(snapshots(directory.path())),
            clock(),
            config.clone(),
        )
        .await;
        set_up(&engine).await;
        for step in 0..450usize {
            submit_ok(
                &engine,
                10_000 + step as u128,
                issue(step % 13, format!("o-{step}"), 7),
            )
            .await;
        }
        let digest = engine.state_digest().await.expect("inspects");
        let periodic = snapshots(directory.path()).candidates().expect("lists");
        assert!(
            periodic
                .iter()
                .any(|(position, _)| *position < digest.1.position),
            "periodic snapshots were written before the end: {periodic:?}"
        );
        engine.shutdown().await;
        digest
    };
    let with_snapshot = {
        let log = open_file_log(directory.path());
        let engine = start(
            log,
            Some(snapshots(directory.path())),
            clock(),
            config.clone(),
        )
        .await;
        let digest = engine.state_digest().await.expect("inspects");
        engine.shutdown().await;
        digest
    };
    let without_snapshot = {
        let log = open_file_log(directory.path());
        let engine = start::<_, OsStorage>(log, None, clock(), config.clone()).await;
        let digest = engine.state_digest().await.expect("inspects");
        engine.shutdown().await;
        digest
    };
    assert_eq!(with_snapshot, expected);
    assert_eq!(without_snapshot, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_periodic_snapshot_written_beside_the_writer_restores_its_state_and_rejections() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let config = EngineConfig {
        snapshot_every_events: 50,
        ..EngineConfig::default()
    };
    let (log, engine) = started(directory.path(), config.clone()).await;
    set_up(&engine).await;
    let overdrawn = |id: u128, member: usize| {
        request(
            id,
            Command::RedeemPoints {
                account: account(member),
                merchant_id: merchant("cafe"),
                points: 1_000_000,
                order_ref: OrderRef::parse(format!("r-{id}")).expect("valid"),
            },
        )
    };
    let mut rejected = Vec::new();
    let mut next_issue = 0usize;
    let mut issue_next = async |engine: &Engine| {
        let step = next_issue;
        next_issue += 1;
        submit_ok(
            engine,
            10_000 + step as u128,
            issue(step % 7, format!("o-{step}"), 5),
        )
        .await;
    };
    for step in 0..120usize {
        issue_next(&engine).await;
        if step % 20 == 0 {
            let id = 20_000 + step as u128;
            let outcome = engine.submit(overdrawn(id, step % 7)).await;
            assert!(
                matches!(
                    outcome,
                    Ok(Outcome::Rejected(Rejection::InsufficientPoints { .. }))
                ),
                "{outcome:?}"
            );
            rejected.push((id, step % 7, outcome));
        }
    }

    // The snapshotter writes on its own thread: keep the writer busy until
    // it has written one past every rejection, and keep that one alone.
    let rejections_head = log.head().position;
    let store = snapshots(directory.path());
    let mut waited = 0;
    let periodic = loop {
        let candidates = store.candidates().expect("lists");
        if let Some((_, path)) = candidates
            .iter()
            .find(|(position, _)| *position > rejections_head)
        {
            break store.read(path).expect("reads");
        }
        assert!(
            waited < 2_000,
            "no periodic snapshot past {rejections_head}: {candidates:?}"
        );
        issue_next(&engine).await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        waited += 1;
    };
    for _ in 0..10 {
        issue_next(&engine).await;
    }
    let expected = engine.state_digest().await.expect("inspects");
    assert!(periodic.position < expected.1.position, "a tail to replay");
    engine.shutdown().await;
    drop(engine);
    drop(log);
    std::fs::remove_dir_all(directory.path().join("snapshots")).expect("removes");
    store.write(&periodic).expect("writes");

    let (_log, engine) = started(directory.path(), config).await;
    assert_eq!(engine.state_digest().await.expect("inspects"), expected);
    for (id, member, outcome) in rejected {
        // Only the snapshot remembers a rejection: a different command
        // under its id is refused, and a retry gets the first answer.
        assert_eq!(
            engine
                .submit(request(id, issue(member, format!("x-{id}"), 1)))
                .await,
            Ok(Outcome::Rejected(Rejection::IdempotencyKeyReused)),
            "command {id}"
        );
        assert_eq!(engine.submit(overdrawn(id, member)).await, outcome);
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_does_not_match_the_log_or_does_not_decode_is_ignored() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (log, engine) = started(directory.path(), EngineConfig::default()).await;
    set_up(&engine).await;
    engine.shutdown().await;
    drop(engine);
    drop(log);
    let store = snapshots(directory.path());
    let (_, path) = store.candidates().expect("lists")[0].clone();
    let older = store.read(&path).expect("reads");

    let (log, engine) = started(directory.path(), EngineConfig::default()).await;
    submit_ok(&engine, 100, issue(1, "o-1".into(), 500)).await;
    let expected = engine.state_digest().await.expect("inspects");
    engine.shutdown().await;
    drop(engine);
    drop(log);
    let (position, path) = store.candidates().expect("lists")[0].clone();
    let genuine = store.read(&path).expect("reads");
    assert!(position > older.position);

    // Each forgery sits at the newest real position, where start-up looks
    // first. Trusting any would lose the issuance or change a lot.
    let layout = ledger_core::engine::WRITER_SNAPSHOT.layout;
    let misnumbered = {
        // The body is the writer's state first; the rest stays as it was.
        let kind = ledger_core::engine::WRITER_SNAPSHOT;
        let mut state: State = decode_body(kind, &genuine.body).expect("decodes");
        let state_bytes = encode_body(kind, &state).expect("encodes").len();
        let rest = &genuine.body[state_bytes..];
        let member = state
            .accounts
            .iter()
            .find(|(_, account)| !account.lots.is_empty())
            .map(|(id, _)| id.clone())
            .expect("a member holds a lot");
        if let Some(account) = state.accounts.get_mut(&member) {
            account.lots[0].origin = MerchantNumber(u32::MAX);
        }
        [encode_body(kind, &state).expect("encodes"), rest.to_vec()].concat()
    };
    let forgeries = [
        (
            "an older state tagged with a wrong hash",
            Snapshot {
                position,
                head_hash: [0xAB; 32],
                body: older.body.clone(),
            },
        ),
        (
            "the right hash but a body that does not decode",
            Snapshot {
                position,
                head_hash: genuine.head_hash,
                body: [&layout.to_le_bytes()[..], b"not a writer state"].concat(),
            },
        ),
        (
            "an older state under the right hash, in another layout",
            Snapshot {
                position,
                head_hash: genuine.head_hash,
                body: [&(layout + 1).to_le_bytes()[..], &older.body[4..]].concat(),
            },
        ),
        (
            "the right hash and layout, a lot from a merchant number no merchant has",
            Snapshot {
                position,
                head_hash: genuine.head_hash,
                body: misnumbered,
            },
        ),
    ];
    for (forgery, snapshot) in forgeries {
        std::fs::remove_file(&path).expect("removes");
        store.write(&snapshot).expect("writes");
        let log = open_file_log(directory.path());
        let engine = start(
            log,
            Some(snapshots(directory.path())),
            clock(),
            EngineConfig::default(),
        )
        .await;
        assert_eq!(
            engine.state_digest().await.expect("inspects"),
            expected,
            "{forgery}"
        );
        engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_failure_stops_the_writer_and_nothing_half_done_remains() {
    let storage = SimulatedStorage::new();
    let open = || {
        Arc::new(
            FileLog::open_with(
                storage.clone(),
                PathBuf::from("/ledger"),
                LogMode::ReadWrite {
                    ledger_id_if_new: LEDGER,
                },
                FileLogOptions::default(),
            )
            .expect("opens"),
        )
    };
    let log = open();
    let engine =
        start::<_, SimulatedStorage>(Arc::clone(&log), None, clock(), EngineConfig::default())
            .await;
    set_up(&engine).await;
    let before = engine.state_digest().await.expect("inspects");
    storage.set_faults(Faults {
        fail_sync_in: Some(1),
        ..Faults::default()
    });
    let failed = engine
        .submit(request(100, issue(1, "o-1".into(), 10)))
        .await;
    assert!(
        failed.is_err(),
        "an unacknowledged append must not be reported as done: {failed:?}"
    );
    assert!(matches!(engine.status(), EngineStatus::Stopped { .. }));
    let later = engine
        .submit(request(101, issue(1, "o-2".into(), 10)))
        .await;
    assert!(later.is_err());
    // Joins the stopped writer thread, which releases its handle on the log.
    engine.shutdown().await;
    drop(engine);
    drop(log);
    let log = open();
    let engine = start::<_, SimulatedStorage>(log, None, clock(), EngineConfig::default()).await;
    assert_eq!(
        engine.state_digest().await.expect("inspects"),
        before,
        "recovered without the failed batch"
    );
    submit_ok(&engine, 100, issue(1, "o-1".into(), 10)).await;
    engine.shutdown().await;
}

/// A log whose appends wait until the test lets them through.
struct GatedLog {
    inner: MemoryLog,
    gate: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl EventLog for GatedLog {
    fn ledger_id(&self) -> Uuid {
        self.inner.ledger_id()
    }
    fn head(&self) -> ledger_core::store::Head {
        self.inner.head()
    }
    async fn append(
        &self,
        expected: u64,
        payloads: &ledger_core::store::PayloadBatch,
    ) -> Result<ledger_core::store::Head, ledger_core::store::LogError> {
        let _ = self.gate.lock().expect("gate").recv();
        self.inner.append(expected, payloads).await
    }
    async fn read(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ledger_core::store::Record>, ledger_core::store::LogError> {
        self.inner.read(after, limit).await
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<ledger_core::store::Head> {
        self.inner.subscribe()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_unavailable_instead_of_growing() {
    let (open_gate, gate) = std::sync::mpsc::channel();
    let log = Arc::new(GatedLog {
        inner: MemoryLog::new(LEDGER),
        gate: std::sync::Mutex::new(gate),
    });
    let config = EngineConfig {
        queue_capacity: 4,
        batch_commands_max: 1,
        ..EngineConfig::default()
    };
    let engine = start::<_, OsStorage>(log, None, clock(), config).await;
    // The first command occupies the writer (its append waits at the gate);
    // four more fill the queue; the next one is refused at once.
    async fn queue_depth_reaches(engine: &Engine, depth: usize) {
        for _ in 0..1_000 {
            if engine.queue_depth() == depth {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("the queue never reached {depth}");
    }
    let mut waiting = Vec::new();
    for id in 0..5u128 {
        let engine_handle = engine.clone();
        waiting.push(tokio::spawn(async move {
            engine_handle
                .submit(request(
                    id,
                    Command::ConfigureProgram {
                        rules: Box::new(ProgramRules::with_cap(1000 + id as u64)),
                    },
                ))
                .await
        }));
        // The writer has taken the first before the others queue up.
        queue_depth_reaches(&engine, if id == 0 { 0 } else { id as usize }).await;
    }
    assert_eq!(engine.queue_depth(), 4);
    let refused = engine
        .submit(request(
            99,
            Command::ConfigureProgram {
                rules: Box::new(ProgramRules::with_cap(5)),
            },
        ))
        .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|error| error.reason.contains("full")),
        "{refused:?}"
    );
    for _ in 0..5 {
        open_gate.send(()).expect("gate open");
    }
    for task in waiting {
        assert!(matches!(
            task.await.expect("task"),
            Ok(Outcome::Accepted { .. })
        ));
    }
    drop(open_gate);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_scheduler_expires_due_lots_as_the_system() {
    use ledger_core::domain::Event;
    use ledger_core::engine::expiry_scheduler::{run_expiry_schedule, scheduler_actor};
    let directory = tempfile::tempdir().expect("temporary directory");
    let log = open_file_log(directory.path());
    let clock = clock();
    let engine = start(
        Arc::clone(&log),
        Some(snapshots(directory.path())),
        Arc::clone(&clock),
        EngineConfig::default(),
    )
    .await;
    set_up(&engine).await;
    let mut rules = ProgramRules::with_cap(10_000_000);
    rules.expiry_days = Some(1);
    submit_ok(
        &engine,
        50,
        Command::ConfigureProgram {
            rules: Box::new(rules),
        },
    )
    .await;
    submit_ok(&engine, 51, issue(1, "o-1".into(), 300)).await;
    clock.advance_seconds(2 * 86_400);
    let schedule = tokio::spawn(run_expiry_schedule(
        engine.clone(),
        clock.clone(),
        std::time::Duration::from_millis(20),
    ));
    let mut expired = None;
    for _ in 0..250 {
        expired = log_envelopes(&log)
            .into_iter()
            .find(|envelope| matches!(envelope.event, Event::PointsExpired(_)));
        if expired.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    schedule.abort();
    let expired = expired.expect("the scheduler expired the due lot");
    assert_eq!(expired.actor, scheduler_actor());
    let Event::PointsExpired(points) = &expired.event else {
        unreachable!("matched above");
    };
    assert_eq!((points.account.clone(), points.points), (account(1), 300));
    engine.shutdown().await;
}
