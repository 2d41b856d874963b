//! Stored envelopes are positional (postcard): a log written by this build
//! must read the same in every later one. `tests/fixtures/ledger-v2` holds
//! one event of every type (the schema catalogue's example story, run
//! through the real engine) in the binary form, and its bytes never change:
//!
//! * it must keep verifying against the head recorded when it was written;
//! * every record still at its type's current schema version must decode
//!   and re-encode to exactly its stored bytes, so a payload whose layout
//!   changed (a field added, removed, reordered or retyped, an enum variant
//!   moved) fails here until its schema version is bumped with an upcast
//!   (`schemas/README.md`);
//! * records at an older version must decode (upcast).
//!
//! A log of the JSON era (`ledger-v1`) continued by this build holds both
//! forms and verifies whole.
//!
//! The fixture was written with
//! `cargo run -p tests --bin write-story-ledger -- tests/fixtures/ledger-v2`
//! (`tests/src/bin/write_story_ledger.rs`), which refuses to overwrite it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ledger_core::domain::Timestamp;
use ledger_core::domain::command::{Actor, Command, Role};
use ledger_core::domain::event::{EVENT_KINDS, current_schema_version};
use ledger_core::domain::ids::KeyId;
use ledger_core::engine::{CommandRequest, Engine, EventEnvelope, ManualClock, Outcome};
use ledger_core::store::{FileLog, LogMode};
use serde_json::Value;
use uuid::Uuid;

use super::replay::verified_json;

/// The head of `tests/fixtures/ledger-v2` when it was written.
const FIXTURE_HEAD: &str = "28:4c6f5a1f8884f8814cb869c1aaaf85972a66e1dea031cce9a3d27b6b7db3b8dc";
/// Event types in the fixture: every type there was when it was written.
const FIXTURE_KINDS: usize = 20;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn admin() -> Actor {
    Actor {
        key_id: KeyId::parse("admin-1").expect("valid"),
        role: Role::Admin,
        merchant_id: None,
    }
}

async fn start_engine(directory: &Path, clock: Arc<ManualClock>) -> Engine {
    tests::fixture_ledger::start_engine(directory, clock)
        .await
        .expect("engine starts")
}

async fn submit(engine: &Engine, number: u128, command: Command) -> Outcome {
    engine
        .submit(CommandRequest {
            command_id: Uuid::from_u128(number),
            command,
            actor: admin(),
        })
        .await
        .expect("answered")
}

fn stored_records(directory: &Path) -> Vec<ledger_core::store::Record> {
    let log = FileLog::open(directory.join("log"), LogMode::ReadOnly).expect("opens read-only");
    log.read_blocking(0, 10_000).expect("readable")
}

#[test]
fn a_binary_log_written_before_still_verifies_and_re_encodes_to_its_bytes() {
    let directory = fixture("ledger-v2");
    let path = directory.to_str().expect("UTF-8 path");
    let verified = verified_json(&["verify", path, "--expect-head", FIXTURE_HEAD]);
    let records = stored_records(&directory);
    assert_eq!(verified["verified"]["events"], Value::from(records.len()));
    let schemas = tests::schemas::Schemas::load().expect("the committed schemas compile");
    let mut kinds = std::collections::BTreeSet::new();
    for record in &records {
        let envelope = EventEnvelope::decode(&record.payload)
            .unwrap_or_else(|error| panic!("position {}: {error}", record.position));
        let kind = envelope.event.kind();
        kinds.insert(kind);
        if envelope.schema_version == current_schema_version(kind) {
            let encoded = envelope.encode().expect("encodes");
            assert!(
                encoded == record.payload,
                "position {}: a `{kind}` at schema version {} no longer encodes to the bytes \
                 stored at that version: its layout changed, so bump its schema version and \
                 upcast the old one (schemas/README.md)",
                record.position,
                envelope.schema_version
            );
        } else {
            assert!(envelope.schema_version < current_schema_version(kind));
        }
        let shown = serde_json::to_value(&envelope).expect("serialises");
        schemas
            .check_envelope(&shown)
            .unwrap_or_else(|error| panic!("position {}: {error}", record.position));
    }
    assert_eq!(kinds.len(), FIXTURE_KINDS, "{kinds:?}");
    assert!(FIXTURE_KINDS <= EVENT_KINDS.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_era_log_continued_in_binary_verifies_and_recovers_whole() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let log = directory.path().join("log");
    std::fs::create_dir(&log).expect("creates");
    for entry in std::fs::read_dir(fixture("ledger-v1").join("log")).expect("lists") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), log.join(entry.file_name())).expect("copies");
    }
    let json_era = stored_records(directory.path());
    let clock = Arc::new(ManualClock::at(
        Timestamp::parse_rfc3339("2027-01-01T00:00:00Z").expect("valid"),
    ));
    let command = || Command::CreateApiKey {
        key_id: KeyId::parse("after-the-upgrade").expect("valid"),
        role: Role::Auditor,
        merchant_id: None,
        key_hash: "cd".repeat(32),
    };
    let engine = start_engine(directory.path(), Arc::clone(&clock)).await;
    let outcome = submit(&engine, 0xb1, command()).await;
    let Outcome::Accepted { position, .. } = outcome else {
        panic!("refused: {outcome:?}");
    };
    engine.shutdown().await;

    let records = stored_records(directory.path());
    assert_eq!(records.len(), json_era.len() + 1);
    assert!(
        records[..json_era.len()]
            .iter()
            .all(|record| record.payload[0] == b'{')
    );
    let appended = &records[json_era.len()];
    assert_ne!(appended.payload[0], b'{', "new records are binary");
    let path = directory.path().to_str().expect("UTF-8 path");
    let head = format!("{}:{}", appended.position, hex::encode(appended.hash));
    let verified = verified_json(&["verify", path, "--expect-head", &head]);
    assert_eq!(verified["verified"]["events"], Value::from(records.len()));

    // Restarted on the mixed log, the engine recovers from both forms, and
    // a retry of the binary-era command is answered from the log.
    let engine = start_engine(directory.path(), clock).await;
    let retried = submit(&engine, 0xb1, command()).await;
    assert!(
        matches!(retried, Outcome::Accepted { position: again, .. } if again == position),
        "{retried:?}"
    );
    engine.shutdown().await;
    assert_eq!(stored_records(directory.path()).len(), records.len());
}
