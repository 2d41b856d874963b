//! The engine end to end, in process: commands from N concurrent callers
//! through the bounded queue to the single writer, decided, appended to the
//! durable file log (one fdatasync per batch), answered, and followed by
//! the read models. Reports commands/s and the latency each caller saw
//! (HdrHistogram) at 1, 64 and 1024 callers, then the read models' apply
//! rate over the whole log.
//!
//! cargo bench -p benches --bench engine_end_to_end
//! (`LEDGER_BENCH_SECONDS` sets each phase's length, default 5.)

#![allow(
    clippy::print_stdout,
    reason = "a load generator reports on standard output"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::{MixedWorkload, admin};
use hdrhistogram::Histogram;
use ledger_core::engine::{
    CommandRequest, Engine, EngineConfig, EventEnvelope, Outcome, SystemClock,
};
use ledger_core::store::storage::OsStorage;
use ledger_core::store::{EventLog, FileLog, FileLogOptions, LogMode};
use projections::Projections;
use projections::live::LiveProjections;
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACCOUNTS: usize = 100_000;

fn fail(error: impl std::fmt::Display) -> ! {
    panic!("{error}")
}

/// Submits `commands` from `parallel` tasks (1: strictly in order).
async fn submit_all(
    engine: &Engine,
    commands: Vec<ledger_core::domain::Command>,
    first_id: u128,
    parallel: usize,
) {
    let chunks: Vec<Vec<_>> = commands
        .chunks(commands.len().div_ceil(parallel).max(1))
        .map(<[_]>::to_vec)
        .collect();
    let mut tasks = Vec::new();
    let mut next_id = first_id;
    for chunk in chunks {
        let engine = engine.clone();
        let start_id = next_id;
        next_id += chunk.len() as u128;
        tasks.push(tokio::spawn(async move {
            for (offset, command) in chunk.into_iter().enumerate() {
                let request = CommandRequest {
                    command_id: Uuid::from_u128(start_id + offset as u128),
                    command,
                    actor: admin(),
                };
                match engine.submit(request).await {
                    Ok(Outcome::Accepted { .. }) => {}
                    other => fail(format!("set-up command not accepted: {other:?}")),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap_or_else(|error| fail(error));
    }
}

struct PhaseResult {
    commands: u64,
    accepted: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

async fn phase(
    engine: &Engine,
    base: &MixedWorkload,
    callers: usize,
    seconds: u64,
    seed: u64,
) -> PhaseResult {
    let workloads: Vec<MixedWorkload> = (0..callers)
        .map(|caller| {
            base.sibling(
                seed * 1_000_003 + caller as u64,
                &format!("phase{seed}-caller{caller}"),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (caller, mut workload) in workloads.into_iter().enumerate() {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .unwrap_or_else(|error| fail(error));
            let (mut commands, mut accepted) = (0u64, 0u64);
            let mut id = (u128::from(seed) << 96) | ((caller as u128) << 64);
            while Instant::now() < deadline {
                let command = workload.next_command().command;
                id += 1;
                let sent = Instant::now();
                let outcome = engine
                    .submit(CommandRequest {
                        command_id: Uuid::from_u128(id),
                        command,
                        actor: admin(),
                    })
                    .await;
                let micros = sent.elapsed().as_micros() as u64;
                let _ = latency.record(micros.max(1));
                commands += 1;
                match outcome {
                    Ok(Outcome::Accepted { .. }) => accepted += 1,
                    Ok(Outcome::Rejected(_)) => {}
                    Err(unavailable) => fail(unavailable),
                }
            }
            (commands, accepted, latency)
        }));
    }
    let mut result = PhaseResult {
        commands: 0,
        accepted: 0,
        elapsed: Duration::ZERO,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|error| fail(error)),
    };
    for task in tasks {
        let (commands, accepted, latency) = task.await.unwrap_or_else(|error| fail(error));
        result.commands += commands;
        result.accepted += accepted;
        result
            .latency
            .add(latency)
            .unwrap_or_else(|error| fail(error));
    }
    result.elapsed = started.elapsed();
    result
}

fn main() {
    let seconds: u64 = std::env::var("LEDGER_BENCH_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|error| fail(error));
    runtime.block_on(async move {
        let scratch = tempfile::tempdir().unwrap_or_else(|error| fail(error));
        let log = Arc::new(
            FileLog::open_with(
                OsStorage,
                scratch.path().join("log"),
                LogMode::ReadWrite {
                    ledger_id_if_new: Uuid::from_u128(1),
                },
                FileLogOptions::default(),
            )
            .unwrap_or_else(|error| fail(error)),
        );
        let engine = Engine::start::<_, OsStorage>(Arc::clone(&log), None, Arc::new(SystemClock), EngineConfig::default())
            .await
            .unwrap_or_else(|error| fail(error));
        let live = LiveProjections::new(Projections::new());
        let follower = tokio::spawn(Arc::clone(&live).follow_engine(engine.subscribe_committed(), Arc::clone(&log)));

        let mut workload = MixedWorkload::new(ACCOUNTS, 7).with_order_prefix("opening");
        submit_all(&engine, workload.setup_commands(), 1, 1).await;
        submit_all(&engine, workload.opening_credits(), 1_000, 256).await;
        println!("set-up: {ACCOUNTS} accounts with one lot each; log head {}", log.head().position);
        println!("| callers | commands/s (durable) | accepted | p50 | p99 | p99.9 | max | projections behind at end |");
        println!("|---|---|---|---|---|---|---|---|");
        for (index, callers) in [1usize, 64, 1024].into_iter().enumerate() {
            let result = phase(&engine, &workload, callers, seconds, index as u64 + 1).await;
            let behind = log.head().position.saturating_sub(live.position());
            let rate = result.commands as f64 / result.elapsed.as_secs_f64();
            let quantile = |q: f64| result.latency.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "| {callers} | {rate:.0} | {:.1}% | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {behind} events |",
                100.0 * result.accepted as f64 / result.commands.max(1) as f64,
                quantile(0.5),
                quantile(0.99),
                quantile(0.999),
                result.latency.max() as f64 / 1000.0,
            );
        }
        let head = log.head().position;
        live.wait_for(head, Duration::from_secs(120))
            .await
            .unwrap_or_else(|error| fail(error));
        engine.shutdown().await;
        follower.abort();

        // The read models' own speed: decode once, then fold every event.
        let records = log.read_blocking(0, usize::MAX).unwrap_or_else(|error| fail(error));
        let decode_started = Instant::now();
        let envelopes: Vec<EventEnvelope> = records
            .iter()
            .map(|record| EventEnvelope::decode(&record.payload).unwrap_or_else(|error| fail(error)))
            .collect();
        let decoding = decode_started.elapsed();
        let apply_started = Instant::now();
        let mut projections = Projections::new();
        for envelope in &envelopes {
            projections.apply(envelope).unwrap_or_else(|error| fail(error));
        }
        let applying = apply_started.elapsed();
        // As the log follower catches up: in chunks, model by model.
        let chunks_started = Instant::now();
        let mut in_chunks = Projections::new();
        for chunk in envelopes.chunks(projections::FOLD_CHUNK_ENVELOPES) {
            in_chunks
                .apply_all(chunk)
                .unwrap_or_else(|error| fail(error));
        }
        let applying_in_chunks = chunks_started.elapsed();
        let rate = |elapsed: Duration| envelopes.len() as f64 / elapsed.as_secs_f64();
        println!(
            "projections: {} events applied one by one in {:.3} s = {:.0} events/s; in chunks of 4,096 (two threads) {:.0} events/s; decoding the envelopes first: {:.0} events/s",
            envelopes.len(),
            applying.as_secs_f64(),
            rate(applying),
            rate(applying_in_chunks),
            rate(decoding),
        );
    });
}
