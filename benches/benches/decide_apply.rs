//! decide + apply throughput on one thread: the pure state machine alone,
//! no log, no queue. The mix over 1,000,000 accounts.
//!
//! cargo bench -p benches --bench decide_apply

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::{MixedWorkload, admin};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ledger_core::domain::{Context, execute};

// The server uses mimalloc too: the ledger allocates many small, short-lived
// strings and vectors, where glibc's allocator spends more time than the
// domain logic itself (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACCOUNTS: usize = 1_000_000;
const CHUNK: u64 = 65_536;

fn decide_apply(criterion: &mut Criterion) {
    let mut workload = MixedWorkload::new(ACCOUNTS, 42);
    let mut state = workload.prepare();
    let actor = admin();
    let mut accepted: u64 = 0;
    let mut executed: u64 = 0;

    let mut group = criterion.benchmark_group("decide_apply");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("mixed_1m_accounts", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            let mut remaining = iterations;
            while remaining > 0 {
                // Commands are generated outside the timed region.
                let chunk: Vec<_> = (0..remaining.min(CHUNK))
                    .map(|_| workload.next_command())
                    .collect();
                let started = Instant::now();
                for timed in &chunk {
                    let context = Context {
                        now: timed.now,
                        actor: actor.clone(),
                    };
                    if black_box(execute(&mut state, &timed.command, &context)).is_ok() {
                        accepted += 1;
                    }
                }
                elapsed += started.elapsed();
                executed += chunk.len() as u64;
                remaining -= chunk.len() as u64;
            }
            elapsed
        });
    });
    group.finish();
    eprintln!(
        "decide_apply: {executed} commands executed, {accepted} accepted ({:.1}%), {} accounts",
        100.0 * accepted as f64 / executed.max(1) as f64,
        state.accounts.len()
    );
}

criterion_group!(benches, decide_apply);
criterion_main!(benches);
