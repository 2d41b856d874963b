//! Snapshot bodies are positional (postcard): a change to the shape of the
//! writer's state or of the read models must come with a new layout number
//! (`WRITER_SNAPSHOT`, `READ_MODELS_SNAPSHOT`), or a new build could misread
//! an old snapshot instead of skipping it. This test writes both snapshots
//! of a fixed ledger (the read-model story plus a hold, an API key and a
//! refused command) and compares their SHA-256 with
//! `tests/fixtures/snapshot-layouts.txt`:
//!
//! * the encoding changed and the layout number did not: fail, bump it;
//! * after bumping (or after changing the fixed ledger below, which changes
//!   the digests without changing any shape), record the new digests with
//!   `UPDATE_SNAPSHOT_LAYOUTS=1 cargo test -p tests --test suite snapshot_layout`.

use std::path::Path;
use std::sync::Arc;

use ledger_core::domain::command::{Command, Role};
use ledger_core::domain::ids::{KeyId, OrderRef};
use ledger_core::engine::WRITER_SNAPSHOT;
use ledger_core::store::snapshot::{SnapshotKind, SnapshotStore};
use ledger_core::store::storage::OsStorage;
use projections::Projections;
use projections::live::LiveProjections;
use projections::snapshot::READ_MODELS_SNAPSHOT;
use sha2::{Digest, Sha256};

use super::read_models::{account, merchant, run_commands, story};

const RECORD: &str = "tests/fixtures/snapshot-layouts.txt";

fn fixed_ledger() -> Vec<Command> {
    let mut commands = story();
    commands.push(Command::HoldPoints {
        account: account("bob"),
        merchant_id: merchant("cafe"),
        points: 10,
        order_ref: None,
        expires_in_seconds: None,
    });
    commands.push(Command::CreateApiKey {
        key_id: KeyId::parse("analyst-1").expect("valid"),
        role: Role::Analyst,
        merchant_id: None,
        key_hash: "ab".repeat(32),
    });
    // Refused (more than bob has): remembered only by the writer's snapshot.
    commands.push(Command::RedeemPoints {
        account: account("bob"),
        merchant_id: merchant("cinema"),
        points: 1_000_000,
        order_ref: OrderRef::parse("too-much").expect("valid"),
    });
    commands
}

fn newest_body(store: &SnapshotStore<OsStorage>) -> Vec<u8> {
    let candidates = store.candidates().expect("lists");
    let (_, path) = candidates.first().expect("a snapshot was written");
    store.read(path).expect("reads").body
}

async fn snapshot_bodies(directory: &Path) -> (Vec<u8>, Vec<u8>) {
    let writer_snapshots = SnapshotStore::new(OsStorage, directory.join("snapshots"));
    let (log, engine, _) = run_commands(
        &directory.join("log"),
        Some(SnapshotStore::new(OsStorage, directory.join("snapshots"))),
        fixed_ledger(),
    )
    .await;
    engine.shutdown().await;
    let read_model_snapshots =
        Arc::new(SnapshotStore::new(OsStorage, directory.join("read-models")));
    let live = LiveProjections::new(Projections::new());
    live.catch_up(log.as_ref()).await.expect("catches up");
    live.write_snapshot(Arc::clone(&read_model_snapshots), log.as_ref())
        .await
        .expect("writes")
        .expect("something to write");
    (
        newest_body(&writer_snapshots),
        newest_body(&read_model_snapshots),
    )
}

fn record_line(kind: SnapshotKind, body: &[u8]) -> String {
    format!(
        "{} {} {}",
        kind.name,
        kind.layout,
        hex::encode(Sha256::digest(body))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_snapshot_encoding_comes_with_a_new_layout_number() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (writer, read_models) = snapshot_bodies(directory.path()).await;
    let lines = [
        record_line(WRITER_SNAPSHOT, &writer),
        record_line(READ_MODELS_SNAPSHOT, &read_models),
    ];
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/snapshot-layouts.txt");
    if std::env::var_os("UPDATE_SNAPSHOT_LAYOUTS").is_some() {
        let text = format!(
            "# kind, layout number, SHA-256 of the snapshot body of the fixed ledger in\n# tests/tests/suite/snapshot_layout.rs\n{}\n",
            lines.join("\n")
        );
        std::fs::write(&path, text).expect("writes the record");
        return;
    }
    let recorded = std::fs::read_to_string(&path).expect("reads the record");
    let recorded: Vec<&str> = recorded
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect();
    for (kind, line) in [WRITER_SNAPSHOT, READ_MODELS_SNAPSHOT]
        .into_iter()
        .zip(&lines)
    {
        let before = recorded
            .iter()
            .find(|recorded| recorded.split(' ').next() == Some(kind.name))
            .unwrap_or_else(|| panic!("{RECORD} has no line for {}", kind.name));
        let layout_before = before.split(' ').nth(1).unwrap_or_default();
        if layout_before == kind.layout.to_string() {
            assert_eq!(
                before, line,
                "the {} snapshot encoding changed but its layout number did not: bump `layout` \
                 (an old snapshot would be misread), then record the new digest with \
                 UPDATE_SNAPSHOT_LAYOUTS=1 (if only the fixed ledger changed, just record)",
                kind.name
            );
        } else {
            panic!(
                "the {} layout number is now {}, {RECORD} says {layout_before}: record the new \
                 digest with UPDATE_SNAPSHOT_LAYOUTS=1",
                kind.name, kind.layout
            );
        }
    }
}
