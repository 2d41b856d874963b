//! The engine over a fixture ledger's directory, as the fixture writer
//! (`write-story-ledger`) and the envelope-layout tests both start it: the
//! real file log, no snapshots, a manual clock.

use std::path::Path;
use std::sync::Arc;

use ledger_core::engine::{Engine, EngineConfig, ManualClock};
use ledger_core::store::snapshot::SnapshotStore;
use ledger_core::store::storage::OsStorage;
use ledger_core::store::{FileLog, LogMode};
use uuid::Uuid;

/// The ledger id of `tests/fixtures/ledger-v2` (a ledger made by
/// `start_engine` in a new directory gets this id).
pub const FIXTURE_LEDGER_ID: Uuid = Uuid::from_u128(0x001e_d9e7_0002);

pub async fn start_engine(directory: &Path, clock: Arc<ManualClock>) -> anyhow::Result<Engine> {
    let log = FileLog::open(
        directory.join("log"),
        LogMode::ReadWrite {
            ledger_id_if_new: FIXTURE_LEDGER_ID,
        },
    )?;
    Ok(Engine::start(
        Arc::new(log),
        None::<SnapshotStore<OsStorage>>,
        clock,
        EngineConfig::default(),
    )
    .await?)
}
