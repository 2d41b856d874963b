//! The read models' own speed: folding committed envelopes (already
//! decoded) into every projection, one thread. The mix over
//! 100,000 accounts, from genesis.
//!
//! cargo bench -p benches --bench projections_apply

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::{MixedWorkload, admin};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ledger_core::domain::idempotency::Fingerprint;
use ledger_core::domain::{Command, Context, Event, State, Timestamp, execute};
use ledger_core::engine::EventEnvelope;
use projections::Projections;
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every event of the set-up, the opening credits and `mixed_commands` of
/// the mix over `accounts` members, in order, as the log would hold them.
fn committed_envelopes(accounts: usize, mixed_commands: usize) -> Vec<EventEnvelope> {
    let mut workload = MixedWorkload::new(accounts, 7);
    let mut state = State::default();
    let start = Timestamp::from_unix_seconds(1_790_000_000);
    let mut timed: Vec<(Command, Timestamp)> = workload
        .setup_commands()
        .into_iter()
        .chain(workload.opening_credits())
        .map(|command| (command, start))
        .collect();
    timed.extend((0..mixed_commands).map(|_| {
        let next = workload.next_command();
        (next.command, next.now)
    }));
    let actor = admin();
    let mut envelopes = Vec::new();
    for (index, (command, now)) in timed.into_iter().enumerate() {
        let context = Context {
            now,
            actor: actor.clone(),
        };
        let Ok(events) = execute(&mut state, &command, &context) else {
            continue;
        };
        for event in events {
            envelopes.push(envelope(envelopes.len() as u64 + 1, index, now, event));
        }
    }
    envelopes
}

fn envelope(position: u64, command: usize, now: Timestamp, event: Event) -> EventEnvelope {
    EventEnvelope {
        position,
        event_id: Uuid::from_u128(u128::from(position)),
        schema_version: event.schema_version(),
        recorded_at: now,
        command_id: Uuid::from_u128(command as u128),
        command_fingerprint: Fingerprint([0; 32]),
        actor: admin(),
        event,
    }
}

/// The mix over 100,000 members, most with a lot or two.
fn projections_apply(criterion: &mut Criterion) {
    fold(criterion, "fold_mixed_100k_accounts", 100_000, 400_000);
}

/// Ten thousand members (the load generator's default) and five times the
/// commands: members gather a hundred lots and more.
fn projections_apply_few_members(criterion: &mut Criterion) {
    fold(criterion, "fold_mixed_10k_accounts", 10_000, 2_000_000);
}

fn fold(criterion: &mut Criterion, name: &str, accounts: usize, mixed_commands: usize) {
    let envelopes = committed_envelopes(accounts, mixed_commands);
    let mut group = criterion.benchmark_group("projections");
    group.throughput(Throughput::Elements(envelopes.len() as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(15));
    group.bench_function(name, |bencher| {
        bencher.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let mut projections = Projections::new();
                let started = Instant::now();
                for envelope in &envelopes {
                    if let Err(error) = projections.apply(envelope) {
                        panic!("{error}");
                    }
                }
                elapsed += started.elapsed();
                black_box(&projections);
            }
            elapsed
        });
    });
    group.finish();
}

criterion_group!(benches, projections_apply, projections_apply_few_members);
criterion_main!(benches);
