//! State-machine property tests of the pure domain. Random sequences of
//! valid and invalid commands — retries, reused idempotency keys, equal
//! timestamps, cap and budget edges, suspended merchants, merchant and
//! analyst keys — run against the domain and the reference model. After
//! every step: all state invariants hold, and the model agrees on every
//! account's lots and holds, merchant funding and the supply totals.
//! At the end: replaying the log (also through its JSON form) on an empty
//! state rebuilds the identical state digest.

use ledger_core::domain::command::{Actor, Command, Role};
use ledger_core::domain::ids::{
    AccountId, HoldId, IssuanceId, KeyId, MerchantId, OrderRef, RedemptionId,
};
use ledger_core::domain::money::{Amount, Currency};
use ledger_core::domain::program::{ProgramRules, ReleasePolicy, ReversalPolicy, VelocityLimit};
use ledger_core::domain::time::MICROS_PER_SECOND;
use ledger_core::domain::{Event, State, Timestamp, apply, state_digest, try_apply};
use ledger_core::engine::{EventEnvelope, WRITER_SNAPSHOT};
use ledger_core::store::snapshot::{decode_body, encode_body};
use projections::snapshot::READ_MODELS_SNAPSHOT;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rust_decimal::Decimal;
use tests::simulation::{Simulation, Submission};
use uuid::Uuid;

const ACCOUNTS: [&str; 4] = ["ann", "bob", "cid", "dee"];
const MERCHANTS: [&str; 3] = ["cafe", "cinema", "fuel"];

fn account(index: usize) -> AccountId {
    AccountId::parse(ACCOUNTS[index % ACCOUNTS.len()]).expect("valid")
}

fn merchant(index: usize) -> MerchantId {
    MerchantId::parse(MERCHANTS[index % MERCHANTS.len()]).expect("valid")
}

fn amount_cents(cents: i64) -> Amount {
    Amount(Decimal::new(cents, 2))
}

#[derive(Debug, Clone)]
enum ActorChoice {
    Admin,
    MerchantKey(usize),
    Analyst,
}

impl ActorChoice {
    fn actor(&self) -> Actor {
        match self {
            ActorChoice::Admin => Actor {
                key_id: KeyId::parse("admin").expect("valid"),
                role: Role::Admin,
                merchant_id: None,
            },
            ActorChoice::MerchantKey(index) => Actor {
                key_id: KeyId::parse(format!("key-{}", merchant(*index))).expect("valid"),
                role: Role::Merchant,
                merchant_id: Some(merchant(*index)),
            },
            ActorChoice::Analyst => Actor {
                key_id: KeyId::parse("analyst").expect("valid"),
                role: Role::Analyst,
                merchant_id: None,
            },
        }
    }
}

#[derive(Debug, Clone)]
enum Operation {
    Submit(ActorChoice, Command),
    /// Resubmit an earlier submission with its own command id.
    Retry(usize),
    /// Reuse an earlier submission's command id for another command.
    ReuseKey(usize, Command),
    AdvanceSeconds(i64),
}

fn points() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 1u64..300,
        1 => Just(0u64),
        1 => 300u64..3000,
    ]
}

fn program() -> impl Strategy<Value = ProgramRules> {
    (
        100u64..6000,
        prop_oneof![Just(None), (1u32..3).prop_map(Some)],
        prop_oneof![
            2 => Just(None),
            1 => (50u64..1500, prop_oneof![Just("0"), Just("0.5"), Just("1")])
                .prop_map(|(base_points, factor)| Some(ReleasePolicy {
                    period_days: 1,
                    base_points,
                    redeemed_factor: factor.parse().expect("valid"),
                })),
        ],
        prop_oneof![
            Just(ReversalPolicy::UnspentOnly),
            Just(ReversalPolicy::AnyAvailable)
        ],
        prop_oneof![Just("1"), Just("2.5")],
        prop_oneof![Just(None), (50u64..200).prop_map(Some)],
        prop_oneof![Just(None), (100u64..400).prop_map(Some)],
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(VelocityLimit {
                window_seconds: 6 * 3600,
                count_max: Some(2),
                points_max: None,
                soft_count_max: None,
                soft_points_max: Some(100),
            })),
        ],
    )
        .prop_map(
            |(cap, expiry_days, release, reversal_policy, rate, per_order, daily, velocity)| {
                let mut rules = ProgramRules::with_cap(cap);
                rules.expiry_days = expiry_days;
                rules.release = release;
                rules.reversal_policy = reversal_policy;
                rules.earning_rules.points_per_currency_unit = rate.parse().expect("valid");
                rules.earning_rules.per_order_points_max = per_order;
                rules.earning_rules.per_account_daily_points_max = daily;
                rules.risk_rules.redemption_velocity = velocity.clone();
                rules.risk_rules.transfer_velocity = velocity;
                rules
            },
        )
}

fn command() -> impl Strategy<Value = Command> {
    let issue = (
        0usize..4,
        0usize..3,
        0usize..8,
        prop_oneof![
            points().prop_map(|points| (Some(points), None)),
            (1i64..30_000).prop_map(|cents| (None, Some(amount_cents(cents)))),
        ],
    )
        .prop_map(
            |(to, at, order, (points, purchase_amount))| Command::IssuePoints {
                account: account(to),
                merchant_id: merchant(at),
                order_ref: OrderRef::parse(format!("o{order}")).expect("valid"),
                points,
                purchase_amount,
                category: None,
            },
        );
    let redeem =
        (0usize..4, 0usize..3, points()).prop_map(|(from, at, points)| Command::RedeemPoints {
            account: account(from),
            merchant_id: merchant(at),
            points,
            order_ref: OrderRef::parse("basket").expect("valid"),
        });
    let transfer =
        (0usize..4, 0usize..4, points()).prop_map(|(from, to, points)| Command::TransferPoints {
            from: account(from),
            to: account(to),
            points,
        });
    let hold = (
        0usize..4,
        0usize..3,
        points(),
        prop_oneof![
            Just(None),
            Just(Some(0u64)),
            (30u64..7200).prop_map(Some),
            (86_400u64..3 * 86_400).prop_map(Some),
        ],
    )
        .prop_map(
            |(from, at, points, expires_in_seconds)| Command::HoldPoints {
                account: account(from),
                merchant_id: merchant(at),
                points,
                order_ref: None,
                expires_in_seconds,
            },
        );
    let capture = (1u64..8, prop_oneof![Just(None), (0u64..100).prop_map(Some)]).prop_map(
        |(hold, points)| Command::CaptureHold {
            hold_id: HoldId(hold),
            points,
        },
    );
    let release = (1u64..8).prop_map(|hold| Command::ReleaseHold {
        hold_id: HoldId(hold),
    });
    let reverse_issuance = (
        1u64..12,
        prop_oneof![Just(None), (0u64..200).prop_map(Some)],
    )
        .prop_map(|(issuance, points)| Command::ReverseIssuance {
            issuance_id: IssuanceId(issuance),
            points,
        });
    let reverse_redemption = (
        1u64..10,
        prop_oneof![Just(None), (0u64..200).prop_map(Some)],
    )
        .prop_map(|(redemption, points)| Command::ReverseRedemption {
            redemption_id: RedemptionId(redemption),
            points,
        });
    let lifecycle = (0usize..3, 0u8..6).prop_map(|(index, action)| {
        let merchant_id = merchant(index);
        match action {
            0 => Command::ApplyMerchant {
                merchant_id,
                name: "A merchant".into(),
                currency: Currency::parse("EUR").expect("valid"),
                issue_price: amount_cents(1),
                redemption_value: amount_cents(1),
            },
            1 => Command::ApproveMerchant {
                merchant_id,
                reason: None,
            },
            2 => Command::RejectMerchant {
                merchant_id,
                reason: None,
            },
            3 => Command::SuspendMerchant {
                merchant_id,
                reason: None,
            },
            _ => Command::ReinstateMerchant {
                merchant_id,
                reason: None,
            },
        }
    });
    let deposit = (0usize..3, 1i64..5000).prop_map(|(index, cents)| Command::RecordDeposit {
        merchant_id: merchant(index),
        amount: amount_cents(cents),
    });
    let keys = (0u8..3, prop::bool::ANY).prop_map(|(key, create)| {
        let key_id = KeyId::parse(format!("k{key}")).expect("valid");
        if create {
            Command::CreateApiKey {
                key_id,
                role: Role::Analyst,
                merchant_id: None,
                key_hash: "0".repeat(64),
            }
        } else {
            Command::RevokeApiKey { key_id }
        }
    });
    prop_oneof![
        20 => issue,
        12 => redeem,
        6 => transfer,
        6 => hold,
        5 => capture,
        3 => release,
        4 => reverse_issuance,
        4 => reverse_redemption,
        2 => program().prop_map(|rules| Command::ConfigureProgram { rules: Box::new(rules) }),
        4 => lifecycle,
        3 => deposit,
        1 => keys,
    ]
}

/// Expiry runs need the simulation's clock, so they are built at run time
/// from a signed offset (positive: in the future, which must be refused).
fn expiry_offset_seconds() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), Just(-3600), Just(-86_400), Just(1)]
}

fn operation() -> impl Strategy<Value = Operation> {
    let actor = prop_oneof![
        17 => Just(ActorChoice::Admin),
        2 => (0usize..3).prop_map(ActorChoice::MerchantKey),
        1 => Just(ActorChoice::Analyst),
    ];
    prop_oneof![
        70 => (actor, command()).prop_map(|(actor, command)| Operation::Submit(actor, command)),
        4 => expiry_offset_seconds().prop_map(|offset| Operation::Submit(
            ActorChoice::Admin,
            Command::RunExpiry { as_of: Timestamp(offset) },
        )),
        12 => prop_oneof![Just(0i64), Just(1), Just(600), Just(3600), Just(86_400), Just(2 * 86_400)]
            .prop_map(Operation::AdvanceSeconds),
        5 => any::<usize>().prop_map(Operation::Retry),
        1 => (any::<usize>(), command()).prop_map(|(index, command)| Operation::ReuseKey(index, command)),
    ]
}

fn admin() -> Actor {
    ActorChoice::Admin.actor()
}

fn setup(rules: ProgramRules) -> Result<Simulation, TestCaseError> {
    let start = Timestamp::parse_rfc3339("2026-03-02T08:00:00Z").expect("valid");
    let mut simulation = Simulation::new(start);
    let mut commands = vec![Command::ConfigureProgram {
        rules: Box::new(rules),
    }];
    for index in 0..2 {
        commands.push(Command::ApplyMerchant {
            merchant_id: merchant(index),
            name: "A merchant".into(),
            currency: Currency::parse("EUR").expect("valid"),
            issue_price: amount_cents(1),
            redemption_value: amount_cents(1),
        });
        commands.push(Command::ApproveMerchant {
            merchant_id: merchant(index),
            reason: None,
        });
        commands.push(Command::RecordDeposit {
            merchant_id: merchant(index),
            amount: amount_cents(5_000),
        });
    }
    for (number, command) in commands.into_iter().enumerate() {
        let outcome = simulation
            .submit(Submission {
                command_id: Uuid::from_u128(number as u128 + 1),
                command,
                actor: admin(),
            })
            .map_err(TestCaseError::fail)?;
        prop_assert!(outcome.is_ok(), "set-up refused: {outcome:?}");
    }
    Ok(simulation)
}

fn run(rules: ProgramRules, operations: Vec<Operation>) -> Result<Simulation, TestCaseError> {
    let mut simulation = setup(rules)?;
    let mut next_id: u128 = 1_000;
    for operation in operations {
        match operation {
            Operation::AdvanceSeconds(seconds) => {
                simulation.now = Timestamp(simulation.now.0 + seconds * MICROS_PER_SECOND);
            }
            Operation::Submit(actor, command) => {
                let command = match command {
                    Command::RunExpiry { as_of } => Command::RunExpiry {
                        as_of: Timestamp(simulation.now.0 + as_of.0 * MICROS_PER_SECOND),
                    },
                    other => other,
                };
                next_id += 1;
                let _answer = simulation
                    .submit(Submission {
                        command_id: Uuid::from_u128(next_id),
                        command,
                        actor: actor.actor(),
                    })
                    .map_err(TestCaseError::fail)?;
            }
            Operation::Retry(index) => {
                if simulation.submissions.is_empty() {
                    continue;
                }
                let original = simulation.submissions[index % simulation.submissions.len()].clone();
                let first = simulation.index.lookup(
                    original.command_id,
                    ledger_core::domain::idempotency::Fingerprint::of(
                        &original.command,
                        &original.actor,
                    ),
                );
                let first = match first {
                    ledger_core::domain::idempotency::Lookup::Replay(outcome) => outcome.clone(),
                    other => {
                        return Err(TestCaseError::fail(format!(
                            "a submitted command id is not remembered: {other:?}"
                        )));
                    }
                };
                let digest = state_digest(&simulation.state);
                let log_length = simulation.log.len();
                let answer = simulation.submit(original).map_err(TestCaseError::fail)?;
                prop_assert_eq!(answer, first, "a retry gets the first answer");
                prop_assert_eq!(
                    state_digest(&simulation.state),
                    digest,
                    "a retry has no effect"
                );
                prop_assert_eq!(simulation.log.len(), log_length);
            }
            Operation::ReuseKey(index, command) => {
                if simulation.submissions.is_empty() {
                    continue;
                }
                let original = simulation.submissions[index % simulation.submissions.len()].clone();
                if original.command == command {
                    continue;
                }
                let digest = state_digest(&simulation.state);
                let answer = simulation
                    .submit(Submission {
                        command_id: original.command_id,
                        command,
                        actor: original.actor,
                    })
                    .map_err(TestCaseError::fail)?;
                prop_assert_eq!(
                    answer,
                    Err(ledger_core::domain::Rejection::IdempotencyKeyReused)
                );
                prop_assert_eq!(state_digest(&simulation.state), digest);
            }
        }
    }
    Ok(simulation)
}

/// Applying the log to an empty state — directly, and after a round trip
/// through the JSON every stored event goes through — rebuilds the state.
fn check_replay(simulation: &Simulation) -> Result<(), TestCaseError> {
    let expected = state_digest(&simulation.state);
    let mut replayed = State::default();
    let mut decoded_replay = State::default();
    // The alerts before each movement are the ones `alerts_raised_by`
    // finds for it, which is how the replay tool audits them.
    let mut alerts = Vec::new();
    for event in &simulation.log {
        if let Event::RiskAlertRaised(alert) = event {
            alerts.push(alert.clone());
        } else {
            prop_assert_eq!(
                &ledger_core::domain::decide::alerts_raised_by(&replayed, event),
                &std::mem::take(&mut alerts),
                "the alerts before {:?}",
                event
            );
        }
        apply(&mut replayed, event);
        let json =
            serde_json::to_string(event).map_err(|error| TestCaseError::fail(error.to_string()))?;
        let decoded: Event = serde_json::from_str(&json)
            .map_err(|error| TestCaseError::fail(format!("{error}: {json}")))?;
        prop_assert_eq!(&decoded, event);
        try_apply(&mut decoded_replay, &decoded)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
    }
    prop_assert_eq!(state_digest(&replayed), expected);
    prop_assert_eq!(state_digest(&decoded_replay), expected);

    // The read models, folded by their own code from the same events,
    // agree with the writer's state on every balance, hold, lot and total.
    let mut projections = projections::Projections::new();
    for (index, event) in simulation.log.iter().enumerate() {
        let envelope = EventEnvelope {
            position: index as u64 + 1,
            event_id: Uuid::from_u128(index as u128),
            schema_version: event.schema_version(),
            recorded_at: simulation.now,
            command_id: Uuid::from_u128(index as u128),
            command_fingerprint: ledger_core::domain::idempotency::Fingerprint([0; 32]),
            actor: admin(),
            event: event.clone(),
        };
        // What is shown matches the committed schemas, and both stored
        // forms (binary, and JSON as older logs hold it) read back whole.
        let fail = |error: &dyn std::fmt::Display| TestCaseError::fail(error.to_string());
        let json = envelope.encode_json().map_err(|error| fail(&error))?;
        let shown: serde_json::Value =
            serde_json::from_slice(&json).map_err(|error| fail(&error))?;
        schemas()
            .check_envelope(&shown)
            .map_err(TestCaseError::fail)?;
        let stored = envelope.encode().map_err(|error| fail(&error))?;
        let read = EventEnvelope::decode(&stored).map_err(|error| fail(&error))?;
        prop_assert_eq!(&read, &envelope);
        let read_json = EventEnvelope::decode(&json).map_err(|error| fail(&error))?;
        prop_assert_eq!(&read_json, &envelope);
        // A damaged or forged record (its checksum recomputed) is refused
        // or misread, never a panic; a cut one is always refused.
        for cut in [1, stored.len() / 2, stored.len() - 1] {
            prop_assert!(
                EventEnvelope::decode(&stored[..cut]).is_err(),
                "cut at {}",
                cut
            );
        }
        let mut damaged = stored.clone();
        for step in 0..8 {
            let at = (index * 7 + step * 31) % damaged.len();
            damaged[at] ^= 0xa5;
            let _ = EventEnvelope::decode(&damaged);
        }
        projections.apply(&read).map_err(|error| fail(&error))?;
    }
    for submission in &simulation.submissions {
        let command = serde_json::to_value(&submission.command)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        schemas()
            .check_command(&command)
            .map_err(TestCaseError::fail)?;
    }
    // Snapshot bodies restore exactly what was saved: the writer's state
    // and the read models.
    let fail = |error: &dyn std::fmt::Display| TestCaseError::fail(error.to_string());
    let body = encode_body(WRITER_SNAPSHOT, &simulation.state).map_err(|error| fail(&error))?;
    let restored: State = decode_body(WRITER_SNAPSHOT, &body).map_err(|error| fail(&error))?;
    prop_assert_eq!(state_digest(&restored), expected);
    let body = encode_body(READ_MODELS_SNAPSHOT, &projections).map_err(|error| fail(&error))?;
    let restored: projections::Projections =
        decode_body(READ_MODELS_SNAPSHOT, &body).map_err(|error| fail(&error))?;
    prop_assert_eq!(&restored, &projections);

    let summary =
        projections::reconcile::WriterSummary::of(&simulation.state, simulation.log.len() as u64);
    let differences = projections::reconcile::reconcile(&summary, &projections);
    prop_assert!(
        differences.is_empty(),
        "reconciliation found {differences:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(1000),
        max_shrink_iters: 20_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_command_sequences_keep_every_invariant_and_match_the_model(
        rules in program(),
        operations in prop::collection::vec(operation(), 1..120),
    ) {
        let simulation = run(rules, operations)?;
        check_replay(&simulation)?;
    }
}

#[test]
fn the_generator_reaches_the_interesting_outcomes() {
    // Guards the property test against a generator that silently stops
    // producing acceptances or the edge-case refusals it exists to probe.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut codes = std::collections::BTreeSet::new();
    let mut accepted = 0usize;
    let mut alerts = 0usize;
    for _ in 0..300 {
        let rules = program()
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let operations = prop::collection::vec(operation(), 60..120)
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let simulation = run(rules, operations).expect("the property holds");
        alerts += simulation
            .log
            .iter()
            .filter(|event| matches!(event, Event::RiskAlertRaised(_)))
            .count();
        for (_, outcome) in simulation.submissions.iter().map(|submission| {
            let fingerprint = ledger_core::domain::idempotency::Fingerprint::of(
                &submission.command,
                &submission.actor,
            );
            (
                submission,
                simulation.index.lookup(submission.command_id, fingerprint),
            )
        }) {
            match outcome {
                ledger_core::domain::idempotency::Lookup::Replay(Ok(_)) => accepted += 1,
                ledger_core::domain::idempotency::Lookup::Replay(Err(rejection)) => {
                    codes.insert(rejection.code());
                }
                _ => {}
            }
        }
    }
    assert!(accepted > 5_000, "only {accepted} commands accepted");
    assert!(alerts > 50, "only {alerts} risk alerts raised");
    for code in [
        "insufficient_points",
        "supply_cap_exceeded",
        "release_budget_exceeded",
        "merchant_not_active",
        "merchant_funding_insufficient",
        "duplicate_order",
        "risk_limit_exceeded",
        "hold_not_active",
        "reversal_exceeds_original",
        "earning_limit_reached",
        "forbidden",
        "not_found",
        "validation_error",
        "invalid_merchant_transition",
    ] {
        assert!(
            codes.contains(code),
            "the generator never produced {code}; got {codes:?}"
        );
    }
}

/// The committed schemas, compiled once for all cases.
fn schemas() -> &'static tests::schemas::Schemas {
    static SCHEMAS: std::sync::OnceLock<tests::schemas::Schemas> = std::sync::OnceLock::new();
    SCHEMAS.get_or_init(|| tests::schemas::Schemas::load().expect("the committed schemas compile"))
}
