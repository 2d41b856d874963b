//! decide + apply throughput on one thread: the pure state machine alone,
//! no log, no queue. The issue's mix over 1,000,000 accounts.
//!
//! cargo bench -p benches --bench decide_apply

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::{MixedWorkload, admin};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ledger_core::domain::ids::{AccountId, MerchantId, OrderRef};
use ledger_core::domain::{Command, Context, Timestamp, decide, execute};

// The server uses mimalloc too: the ledger allocates many small, short-lived
// strings and vectors, where glibc's allocator spends more time than the
// domain logic itself (measured in BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHUNK: u64 = 65_536;

/// The mix over a million members, most with a lot or two.
fn decide_apply(criterion: &mut Criterion) {
    mixed(criterion, "mixed_1m_accounts", 1_000_000);
}

/// The mix over ten thousand members (the load generator's default), who
/// gather hundreds of lots each as the run goes on.
fn decide_apply_few_members(criterion: &mut Criterion) {
    mixed(criterion, "mixed_10k_accounts", 10_000);
}

fn mixed(criterion: &mut Criterion, name: &str, accounts: usize) {
    let mut workload = MixedWorkload::new(accounts, 42);
    let mut state = workload.prepare();
    let actor = admin();
    let mut accepted: u64 = 0;
    let mut executed: u64 = 0;

    let mut group = criterion.benchmark_group("decide_apply");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(name, |bencher| {
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
        "decide_apply/{name}: {executed} commands executed, {accepted} accepted ({:.1}%), {} accounts",
        100.0 * accepted as f64 / executed.max(1) as f64,
        state.accounts.len()
    );
}

/// A member who has earned 500 times and never spent: deciding one
/// redemption from such an account (decide only, nothing applied).
fn decide_redemption_from_many_lots(criterion: &mut Criterion) {
    const LOTS: usize = 500;
    let workload = MixedWorkload::new(1, 42);
    let actor = admin();
    let start = Timestamp::from_unix_seconds(1_790_000_000);
    let context = Context {
        now: start,
        actor: actor.clone(),
    };
    let mut state = ledger_core::domain::State::default();
    for command in workload.setup_commands() {
        if let Err(rejection) = execute(&mut state, &command, &context) {
            panic!("set-up refused: {rejection}");
        }
    }
    let account = AccountId::parse("member-many-lots").unwrap_or_else(|error| panic!("{error}"));
    let merchant = MerchantId::parse("merchant-000").unwrap_or_else(|error| panic!("{error}"));
    for order in 0..LOTS {
        let issue = Command::IssuePoints {
            account: account.clone(),
            merchant_id: merchant.clone(),
            order_ref: OrderRef::parse(format!("o-{order}"))
                .unwrap_or_else(|error| panic!("{error}")),
            points: Some(10),
            purchase_amount: None,
            category: None,
        };
        if let Err(rejection) = execute(&mut state, &issue, &context) {
            panic!("issuance refused: {rejection}");
        }
    }
    let redeem = Command::RedeemPoints {
        account,
        merchant_id: merchant,
        points: 25,
        order_ref: OrderRef::parse("basket-1").unwrap_or_else(|error| panic!("{error}")),
    };
    let mut group = criterion.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    group.bench_function("redemption_from_500_lots", |bencher| {
        bencher.iter(|| black_box(decide(&state, &redeem, &context)));
    });
    group.finish();
}

criterion_group!(
    benches,
    decide_apply,
    decide_apply_few_members,
    decide_redemption_from_many_lots
);
criterion_main!(benches);
