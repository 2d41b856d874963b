//! Where the time of decide + apply goes, per command kind: runs the
//! `decide_apply` mix in rounds and prints throughput per round and the mean
//! decide and apply cost of each kind. A diagnostic companion to the
//! criterion bench (which reports the headline figure).
//!
//! cargo run --release -p benches --example command_costs [ACCOUNTS] [ROUNDS]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use benches::{MixedWorkload, admin};
use ledger_core::domain::{Context, apply, decide};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const COMMANDS_PER_ROUND: usize = 250_000;

#[derive(Default)]
struct Cost {
    commands: u32,
    deciding: Duration,
    applying: Duration,
}

fn main() {
    let mut arguments = std::env::args().skip(1);
    let accounts: usize = arguments
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = arguments
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(8);
    let mut workload = MixedWorkload::new(accounts, 42);
    let started = Instant::now();
    let mut state = workload.prepare();
    eprintln!("prepared {accounts} accounts in {:?}", started.elapsed());
    let actor = admin();
    for round in 0..rounds {
        let chunk: Vec<_> = (0..COMMANDS_PER_ROUND)
            .map(|_| workload.next_command())
            .collect();
        let mut costs: BTreeMap<&str, Cost> = BTreeMap::new();
        let round_started = Instant::now();
        for timed in &chunk {
            let context = Context {
                now: timed.now,
                actor: actor.clone(),
            };
            let decide_started = Instant::now();
            let decided = decide(&state, &timed.command, &context);
            let deciding = decide_started.elapsed();
            if let Ok(events) = decided {
                for event in &events {
                    apply(&mut state, event);
                }
            }
            let cost = costs.entry(timed.command.kind()).or_default();
            cost.commands += 1;
            cost.deciding += deciding;
            cost.applying += decide_started.elapsed() - deciding;
        }
        let rate = COMMANDS_PER_ROUND as f64 / round_started.elapsed().as_secs_f64();
        eprintln!("round {round}: {rate:.0} commands/s (timing overhead included)");
        for (kind, cost) in &costs {
            let commands = f64::from(cost.commands);
            eprintln!(
                "    {kind:<18} {:>7} × decide {:>5.0} ns, apply {:>5.0} ns",
                cost.commands,
                cost.deciding.as_nanos() as f64 / commands,
                cost.applying.as_nanos() as f64 / commands
            );
        }
    }
}
