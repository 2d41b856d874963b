//! Writes the schema catalogue's example story (one event of every type)
//! through the real engine into a new ledger directory, then prints the
//! head and the number of event types, to record beside a committed
//! fixture log. `tests/fixtures/ledger-v2` was written with it; a fixture
//! is written once and never rewritten.
//!
//! write-story-ledger DIRECTORY

#![allow(
    clippy::print_stdout,
    reason = "prints the head and type count to record beside the fixture"
)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use ledger_core::domain::Timestamp;
use ledger_core::domain::command::{Actor, Role};
use ledger_core::domain::ids::KeyId;
use ledger_core::engine::{CommandRequest, EventEnvelope, ManualClock};
use ledger_core::store::{FileLog, LogMode};
use uuid::Uuid;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let directory: PathBuf = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow!("usage: write-story-ledger DIRECTORY"))?
        .into();
    if directory.exists() {
        bail!(
            "{} exists: a fixture is written once, into a new directory",
            directory.display()
        );
    }
    let story =
        schemas::examples::story().ok_or_else(|| anyhow!("the example story does not build"))?;
    let clock = Arc::new(ManualClock::at(Timestamp::parse_rfc3339(
        schemas::examples::STORY_START,
    )?));
    let engine = tests::fixture_ledger::start_engine(&directory, Arc::clone(&clock)).await?;
    let actor = Actor {
        key_id: KeyId::parse("admin-1")?,
        role: Role::Admin,
        merchant_id: None,
    };
    for (number, (wait_seconds, command)) in story.into_iter().enumerate() {
        clock.advance_seconds(wait_seconds);
        engine
            .submit(CommandRequest {
                command_id: Uuid::from_u128(number as u128 + 1),
                command,
                actor: actor.clone(),
            })
            .await
            .map_err(|error| anyhow!("command {number} was not answered: {error}"))?;
    }
    engine.shutdown().await;
    // The lock belongs to a running writer, not to the fixture.
    std::fs::remove_file(directory.join("log").join("LOCK")).context("the writer's lock file")?;
    let log = FileLog::open(directory.join("log"), LogMode::ReadOnly)?;
    let records = log.read_blocking(0, 10_000)?;
    let head = records
        .last()
        .ok_or_else(|| anyhow!("the story wrote no events"))?;
    let mut kinds = BTreeSet::new();
    for record in &records {
        kinds.insert(EventEnvelope::decode(&record.payload)?.event.kind());
    }
    println!(
        "head {}:{}, {} event types",
        head.position,
        hex::encode(head.hash),
        kinds.len()
    );
    Ok(())
}
