//! # benches
//!
//! Benchmarks of the points ledger, run in release builds: criterion
//! benches under `benches/` and, later, load generators as binaries. This
//! library holds the deterministic workload generators they share, so every
//! benchmark drives the same realistic command mix.

use ledger_core::domain::command::{Actor, Command, Context, Role};
use ledger_core::domain::idempotency::Fingerprint;
use ledger_core::domain::ids::{AccountId, HoldId, IssuanceId, KeyId, MerchantId, OrderRef};
use ledger_core::domain::money::{Amount, Currency, SUPPLY_CAP_MAX};
use ledger_core::domain::program::ProgramRules;
use ledger_core::domain::{Event, State, Timestamp, execute};
use ledger_core::engine::EventEnvelope;
use std::sync::Arc;
use uuid::Uuid;

/// SplitMix64: a tiny, seedable generator, so runs are repeatable without a
/// randomness dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// Uniform in `0..bound` (bound > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// One command ready to execute, with the writer's clock reading.
#[derive(Debug, Clone)]
pub struct TimedCommand {
    pub command: Command,
    pub now: Timestamp,
}

pub fn admin() -> Actor {
    Actor {
        key_id: KeyId::parse("bench-admin").unwrap_or_else(|error| panic!("{error}")),
        role: Role::Admin,
        merchant_id: None,
    }
}

fn id<T>(parsed: Result<T, ledger_core::domain::ids::InvalidId>) -> T {
    parsed.unwrap_or_else(|error| panic!("generated id is invalid: {error}"))
}

/// The issue's mix: 60% issuance, 25% redemption, 10% transfer, 5% other
/// (holds, captures, reversals, deposits), over a fixed set of accounts.
#[derive(Debug)]
pub struct MixedWorkload {
    random: SplitMix64,
    accounts: Arc<[AccountId]>,
    merchants: Arc<[MerchantId]>,
    next_order: u64,
    order_prefix: String,
    holds_placed: u64,
    issuances_made: u64,
    now: Timestamp,
}

impl MixedWorkload {
    pub const MERCHANTS: usize = 100;

    pub fn new(accounts: usize, seed: u64) -> MixedWorkload {
        MixedWorkload {
            random: SplitMix64::new(seed),
            accounts: (0..accounts)
                .map(|index| id(AccountId::parse(format!("member-{index:07}"))))
                .collect(),
            merchants: (0..Self::MERCHANTS)
                .map(|index| id(MerchantId::parse(format!("merchant-{index:03}"))))
                .collect(),
            next_order: 0,
            order_prefix: "order".to_owned(),
            holds_placed: 0,
            issuances_made: 0,
            now: Timestamp::from_unix_seconds(1_790_000_000),
        }
    }

    /// Another generator over the same accounts and merchants (shared, not
    /// copied), with its own seed and order references.
    pub fn sibling(&self, seed: u64, order_prefix: &str) -> MixedWorkload {
        MixedWorkload {
            random: SplitMix64::new(seed),
            accounts: Arc::clone(&self.accounts),
            merchants: Arc::clone(&self.merchants),
            next_order: 0,
            order_prefix: order_prefix.to_owned(),
            holds_placed: 0,
            issuances_made: self.issuances_made,
            now: self.now,
        }
    }

    /// Distinct order references per generator, for several generators
    /// over the same accounts.
    pub fn with_order_prefix(mut self, prefix: &str) -> MixedWorkload {
        self.order_prefix = prefix.to_owned();
        self
    }

    /// The set-up commands: a programme, and funded, active merchants.
    pub fn setup_commands(&self) -> Vec<Command> {
        let mut rules = ProgramRules::with_cap(SUPPLY_CAP_MAX);
        rules.expiry_days = Some(365);
        let mut setup = vec![Command::ConfigureProgram {
            rules: Box::new(rules),
        }];
        for merchant_id in self.merchants.iter() {
            setup.push(Command::ApplyMerchant {
                merchant_id: merchant_id.clone(),
                name: format!("Merchant {merchant_id}"),
                currency: Currency::parse("EUR").unwrap_or_else(|error| panic!("{error}")),
                issue_price: amount("0.01"),
                redemption_value: amount("0.008"),
            });
            setup.push(Command::ApproveMerchant {
                merchant_id: merchant_id.clone(),
                reason: None,
            });
            setup.push(Command::RecordDeposit {
                merchant_id: merchant_id.clone(),
                amount: amount("1000000000000"),
            });
        }
        setup
    }

    /// One opening credit of 1,000 points per account.
    pub fn opening_credits(&mut self) -> Vec<Command> {
        (0..self.accounts.len())
            .map(|index| {
                self.issuances_made += 1;
                Command::IssuePoints {
                    account: self.accounts[index].clone(),
                    merchant_id: self.merchants[index % Self::MERCHANTS].clone(),
                    order_ref: self.order_ref(),
                    points: Some(1_000),
                    purchase_amount: None,
                    category: None,
                }
            })
            .collect()
    }

    /// A programme, funded active merchants and one opening credit of 1,000
    /// points per account: the state the measured mix runs against.
    pub fn prepare(&mut self) -> State {
        let mut state = State::default();
        for command in self.setup_commands() {
            self.run(&mut state, &command);
        }
        for command in self.opening_credits() {
            self.run(&mut state, &command);
        }
        state
    }

    fn run(&mut self, state: &mut State, command: &Command) {
        let context = Context {
            now: self.now,
            actor: admin(),
        };
        if let Err(rejection) = execute(state, command, &context) {
            panic!("set-up command refused: {rejection}");
        }
    }

    fn order_ref(&mut self) -> OrderRef {
        self.next_order += 1;
        id(OrderRef::parse(format!(
            "{}-{}",
            self.order_prefix, self.next_order
        )))
    }

    fn any_account(&mut self) -> AccountId {
        let index = self.random.below(self.accounts.len() as u64) as usize;
        self.accounts[index].clone()
    }

    fn any_merchant(&mut self) -> MerchantId {
        let index = self.random.below(Self::MERCHANTS as u64) as usize;
        self.merchants[index].clone()
    }

    /// The next command of the mix; the clock advances 1 ms per command.
    pub fn next_command(&mut self) -> TimedCommand {
        self.now = Timestamp(self.now.0 + 1_000);
        let roll = self.random.below(1000);
        let command = match roll {
            0..600 => {
                let by_purchase = self.random.below(2) == 0;
                Command::IssuePoints {
                    account: self.any_account(),
                    merchant_id: self.any_merchant(),
                    order_ref: self.order_ref(),
                    points: (!by_purchase).then(|| 1 + self.random.below(500)),
                    purchase_amount: by_purchase.then(|| {
                        Amount(rust_decimal::Decimal::new(
                            100 + self.random.below(20_000) as i64,
                            2,
                        ))
                    }),
                    category: None,
                }
            }
            600..850 => Command::RedeemPoints {
                account: self.any_account(),
                merchant_id: self.any_merchant(),
                points: 1 + self.random.below(50),
                order_ref: id(OrderRef::parse("basket")),
            },
            850..950 => {
                let from = self.any_account();
                let mut to = self.any_account();
                if to == from {
                    to = self.accounts[0].clone();
                }
                Command::TransferPoints {
                    from,
                    to,
                    points: 1 + self.random.below(20),
                }
            }
            950..970 => {
                self.holds_placed += 1;
                Command::HoldPoints {
                    account: self.any_account(),
                    merchant_id: self.any_merchant(),
                    points: 1 + self.random.below(30),
                    order_ref: None,
                    expires_in_seconds: Some(600),
                }
            }
            970..985 => Command::CaptureHold {
                hold_id: HoldId(self.holds_placed.max(1)),
                points: None,
            },
            985..995 => Command::ReverseIssuance {
                issuance_id: IssuanceId(1 + self.random.below(self.issuances_made.max(1))),
                points: Some(1),
            },
            _ => Command::RecordDeposit {
                merchant_id: self.any_merchant(),
                amount: amount("100.00"),
            },
        };
        if matches!(command, Command::IssuePoints { .. }) {
            self.issuances_made += 1;
        }
        TimedCommand {
            command,
            now: self.now,
        }
    }
}

fn amount(text: &str) -> Amount {
    text.parse().unwrap_or_else(|error| panic!("{error}"))
}

/// Every event of the set-up, the opening credits and `mixed_commands` of
/// the mix over `accounts` members, in order, as the log would hold them.
pub fn committed_envelopes(accounts: usize, mixed_commands: usize) -> Vec<EventEnvelope> {
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

/// The read models' batch fold against the one-by-one fold, on the mix
/// these benchmarks use (it lives here, beside the mix's generator).
#[cfg(test)]
mod batch_fold {
    use projections::{OutOfOrder, Projections};

    use super::committed_envelopes;

    fn one_by_one(envelopes: &[ledger_core::engine::EventEnvelope]) -> Projections {
        let mut projections = Projections::new();
        for envelope in envelopes {
            if let Err(error) = projections.apply(envelope) {
                panic!("{error}");
            }
        }
        projections
    }

    #[test]
    fn folding_in_batches_on_two_threads_equals_folding_one_by_one() {
        let envelopes = committed_envelopes(500, 6_000);
        assert!(envelopes.len() > 4_000, "{}", envelopes.len());
        let mut batched = Projections::new();
        // Short runs (one thread), long ones (two), a batch that repeats
        // what was applied, and an empty one.
        let cuts = [0, 1, 300, 2_000, 2_000, 3_500, envelopes.len()];
        let mut applied = 0;
        for window in cuts.windows(2) {
            let from = window[0].saturating_sub(100);
            applied += batched
                .apply_all(&envelopes[from..window[1]])
                .unwrap_or_else(|error| panic!("{error}"));
        }
        assert_eq!(applied, envelopes.len());
        assert_eq!(batched, one_by_one(&envelopes));
    }

    #[test]
    fn a_gap_stops_the_batch_fold_after_the_run_before_it() {
        let envelopes = committed_envelopes(500, 2_000);
        let mut batched = Projections::new();
        let mut with_gap = envelopes[..1_000].to_vec();
        with_gap.extend_from_slice(&envelopes[1_001..1_500]);
        assert_eq!(
            batched.apply_all(&with_gap),
            Err(OutOfOrder {
                applied: envelopes[999].position,
                found: envelopes[1_000].position + 1,
            })
        );
        assert_eq!(batched, one_by_one(&envelopes[..1_000]));
    }
}
