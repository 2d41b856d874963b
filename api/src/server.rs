//! Wiring: the file log, the engine, the read models and the expiry
//! scheduler for one data directory, and the router over them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use ledger_core::engine::expiry_scheduler::run_expiry_schedule;
use ledger_core::engine::{Engine, EngineConfig, SystemClock};
use ledger_core::store::snapshot::SnapshotStore;
use ledger_core::store::storage::OsStorage;
use ledger_core::store::{EventLog, FileLog, FileLogOptions, LogMode};
use projections::live::LiveProjections;
use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::KeyDerivation;
use crate::config::Config;
use crate::routes;

/// What every handler shares: one reference-counted value, because axum
/// clones the state for every request.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(Debug)]
pub struct Shared {
    pub engine: Engine,
    pub projections: Arc<LiveProjections>,
    pub read_model_snapshots: Arc<SnapshotStore<OsStorage>>,
    pub log: Arc<FileLog>,
    pub admin_key_hash: Option<String>,
    pub key_derivation: KeyDerivation,
    pub config: Arc<Config>,
    /// Turns true when the server begins to shut down; long-lived streams
    /// end on it so the shutdown does not wait for them.
    pub shutdown: watch::Receiver<bool>,
}

/// Opens (or creates) the ledger in `config.data_dir`, recovers the engine,
/// brings the read models up to date and starts following the engine.
pub async fn start(config: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let log = FileLog::open_with(
        OsStorage,
        config.data_dir.join("log"),
        LogMode::ReadWrite {
            // Used only when the directory holds no ledger yet.
            ledger_id_if_new: Uuid::new_v4(),
        },
        FileLogOptions::default(),
    )
    .with_context(|| format!("cannot open the ledger in {}", config.data_dir.display()))?;
    let log = Arc::new(log);
    let key_derivation = KeyDerivation::load_or_create(&config.data_dir)
        .context("cannot read or create the API key derivation secret")?;
    let engine_config = EngineConfig {
        queue_capacity: config.queue_capacity,
        batch_commands_max: config.batch_max,
        snapshot_every_events: config.snapshot_every,
        idempotency_retention_seconds: config.idempotency_seconds,
    };
    let snapshot_directory = config.data_dir.join("snapshots");
    let read_model_snapshots = Arc::new(SnapshotStore::new(
        OsStorage,
        snapshot_directory.join("read-models"),
    ));
    let engine = Engine::start(
        Arc::clone(&log),
        Some(SnapshotStore::new(OsStorage, snapshot_directory)),
        Arc::new(SystemClock),
        engine_config,
    )
    .await
    .context("cannot start the engine")?;
    let projections = LiveProjections::new(
        projections::snapshot::load(read_model_snapshots.as_ref(), log.as_ref())
            .await
            .context("cannot read the log to check the read-model snapshots")?,
    );
    let loaded_at = projections.position();
    projections
        .catch_up(log.as_ref())
        .await
        .context("cannot build the read models from the log")?;
    if config.snapshot_every > 0 {
        tokio::spawn(Arc::clone(&projections).snapshot_periodically(
            Arc::clone(&read_model_snapshots),
            Arc::clone(&log),
            config.snapshot_every,
            loaded_at,
        ));
    }
    let follower =
        Arc::clone(&projections).follow_engine(engine.subscribe_committed(), Arc::clone(&log));
    tokio::spawn(async move {
        if let Err(error) = follower.await {
            tracing::error!(%error, "the read models stopped following the ledger");
        }
    });
    if config.reconcile_interval_seconds > 0 {
        tokio::spawn(crate::reconciliation::run_periodically(
            engine.clone(),
            Arc::clone(&projections),
            Duration::from_secs(config.reconcile_interval_seconds),
        ));
    }
    if config.expiry_interval_seconds > 0 {
        tokio::spawn(run_expiry_schedule(
            engine.clone(),
            Arc::new(SystemClock),
            Duration::from_secs(config.expiry_interval_seconds),
        ));
    }
    tracing::info!(
        ledger_id = %log.ledger_id(),
        head = log.head().position,
        directory = %config.data_dir.display(),
        "ledger open"
    );
    Ok(AppState(Arc::new(Shared {
        engine,
        projections,
        read_model_snapshots,
        log,
        admin_key_hash: config.admin_key.as_deref().map(crate::auth::hash_secret),
        key_derivation,
        config: Arc::new(config),
        shutdown,
    })))
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    routes::routes()
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(crate::observe::observe_request))
        .with_state(state)
}
