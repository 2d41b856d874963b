//! Writes a large ledger through the real engine, for benchmarking the
//! replay tool (`BENCHMARKS.md`): the mixed workload over 100,000 accounts
//! until the log holds at least EVENTS events.
//!
//! cargo run --release -p benches --example fill_ledger -- DIR EVENTS

#![allow(
    clippy::print_stdout,
    reason = "a benchmark helper reports on standard output"
)]

use std::sync::Arc;
use std::time::Instant;

use benches::{MixedWorkload, admin};
use ledger_core::engine::{CommandRequest, Engine, EngineConfig, SystemClock};
use ledger_core::store::snapshot::SnapshotStore;
use ledger_core::store::storage::OsStorage;
use ledger_core::store::{EventLog, FileLog, LogMode};
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHUNK_COMMANDS: usize = 8_192;

fn requests(
    commands: Vec<ledger_core::domain::Command>,
    next_id: &mut u128,
) -> Vec<CommandRequest> {
    commands
        .into_iter()
        .map(|command| {
            *next_id += 1;
            CommandRequest {
                command_id: Uuid::from_u128(*next_id),
                command,
                actor: admin(),
            }
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let (Some(directory), Some(events)) = (arguments.next(), arguments.next()) else {
        return Err("usage: fill_ledger DIR EVENTS".into());
    };
    let events: u64 = events.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let directory = std::path::PathBuf::from(directory);
        let log = Arc::new(FileLog::open(
            directory.join("log"),
            LogMode::ReadWrite {
                ledger_id_if_new: Uuid::new_v4(),
            },
        )?);
        let engine = Engine::start(
            Arc::clone(&log),
            Some(SnapshotStore::new(OsStorage, directory.join("snapshots"))),
            Arc::new(SystemClock),
            EngineConfig::default(),
        )
        .await?;
        let mut workload = MixedWorkload::new(100_000, 7);
        let mut next_id = 0_u128;
        for setup in [workload.setup_commands(), workload.opening_credits()] {
            engine.submit_in_order(requests(setup, &mut next_id)).await;
        }
        let started = Instant::now();
        while log.head().position < events {
            let commands = (0..CHUNK_COMMANDS)
                .map(|_| workload.next_command().command)
                .collect();
            let outcomes = engine
                .submit_in_order(requests(commands, &mut next_id))
                .await;
            if let Some(Err(unavailable)) = outcomes.into_iter().find(Result::is_err) {
                return Err(unavailable.into());
            }
        }
        engine.shutdown().await;
        let head = log.head().position;
        println!(
            "{head} events in {:.1} s ({:.0} events/s)",
            started.elapsed().as_secs_f64(),
            head as f64 / started.elapsed().as_secs_f64()
        );
        Ok(())
    })
}
