//! The read models' own speed: folding committed envelopes (already
//! decoded) into every projection, one event at a time on one thread, and
//! in the log follower's chunks on two. The mix over 100,000
//! accounts, from genesis.
//!
//! cargo bench -p benches --bench projections_apply

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::committed_envelopes;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use projections::Projections;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The mix over 100,000 members, most with a lot or two.
fn projections_apply(criterion: &mut Criterion) {
    fold(criterion, "fold_mixed_100k_accounts", 100_000, 400_000);
}

/// The same mix folded as the log follower catches up: chunks of 4,096
/// envelopes, each folded on two threads (`Projections::apply_all`).
fn projections_apply_in_chunks(criterion: &mut Criterion) {
    fold_with(
        criterion,
        "fold_mixed_100k_accounts_chunks_two_threads",
        100_000,
        400_000,
        FoldBy::Chunks,
    );
    fold_with(
        criterion,
        "fold_mixed_10k_accounts_chunks_two_threads",
        10_000,
        2_000_000,
        FoldBy::Chunks,
    );
}

/// Ten thousand members (the load generator's default) and five times the
/// commands: members gather a hundred lots and more.
fn projections_apply_few_members(criterion: &mut Criterion) {
    fold(criterion, "fold_mixed_10k_accounts", 10_000, 2_000_000);
}

#[derive(Clone, Copy)]
enum FoldBy {
    Event,
    Chunks,
}

fn fold(criterion: &mut Criterion, name: &str, accounts: usize, mixed_commands: usize) {
    fold_with(criterion, name, accounts, mixed_commands, FoldBy::Event);
}

fn fold_with(
    criterion: &mut Criterion,
    name: &str,
    accounts: usize,
    mixed_commands: usize,
    by: FoldBy,
) {
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
                match by {
                    FoldBy::Event => {
                        for envelope in &envelopes {
                            if let Err(error) = projections.apply(envelope) {
                                panic!("{error}");
                            }
                        }
                    }
                    FoldBy::Chunks => {
                        for chunk in envelopes.chunks(projections::FOLD_CHUNK_ENVELOPES) {
                            if let Err(error) = projections.apply_all(chunk) {
                                panic!("{error}");
                            }
                        }
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

criterion_group!(
    benches,
    projections_apply,
    projections_apply_in_chunks,
    projections_apply_few_members
);
criterion_main!(benches);
