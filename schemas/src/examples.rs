//! One real example of every event type for the catalogue: a fixed story
//! run through the pure domain (`execute`) at fixed times, so the examples
//! are exactly what the ledger writes and never change by accident.

use std::collections::BTreeMap;

use ledger_core::domain::command::{Actor, Command, Context, Role};
use ledger_core::domain::ids::{
    AccountId, Category, HoldId, IssuanceId, KeyId, MerchantId, OrderRef, RedemptionId,
};
use ledger_core::domain::program::{ProgramRules, RiskRules, VelocityLimit};
use ledger_core::domain::{Currency, State, Timestamp, execute};
use serde_json::Value;

fn id<T>(
    parse: fn(String) -> Result<T, ledger_core::domain::ids::InvalidId>,
    text: &str,
) -> Option<T> {
    parse(text.to_owned()).ok()
}

/// When the story's first command is decided.
pub const STORY_START: &str = "2026-02-01T09:00:00Z";

/// The story's commands, each with the seconds to wait before it (also the
/// source of the test suite's binary fixture log).
pub fn story() -> Option<Vec<(i64, Command)>> {
    let cafe = id(MerchantId::parse, "cafe")?;
    let books = id(MerchantId::parse, "books")?;
    let spare = id(MerchantId::parse, "spare")?;
    let alice = id(AccountId::parse, "alice")?;
    let bob = id(AccountId::parse, "bob")?;
    let eur = Currency::parse("EUR").ok()?;
    let mut rules = ProgramRules::with_cap(1_000_000);
    rules.expiry_days = Some(30);
    rules.risk_rules = RiskRules {
        redemption_velocity: None,
        transfer_velocity: Some(VelocityLimit {
            window_seconds: 3_600,
            count_max: None,
            points_max: None,
            soft_count_max: Some(1),
            soft_points_max: None,
        }),
    };
    let apply = |merchant_id: &MerchantId| Command::ApplyMerchant {
        merchant_id: merchant_id.clone(),
        name: format!("The {merchant_id}"),
        currency: eur,
        issue_price: "0.01".parse().unwrap_or_default(),
        redemption_value: "0.008".parse().unwrap_or_default(),
    };
    let approve = |merchant_id: &MerchantId| Command::ApproveMerchant {
        merchant_id: merchant_id.clone(),
        reason: None,
    };
    let deposit = |merchant_id: &MerchantId| Command::RecordDeposit {
        merchant_id: merchant_id.clone(),
        amount: "500".parse().unwrap_or_default(),
    };
    Some(vec![
        (
            0,
            Command::ConfigureProgram {
                rules: Box::new(rules),
            },
        ),
        (1, apply(&cafe)),
        (1, approve(&cafe)),
        (1, deposit(&cafe)),
        (1, apply(&books)),
        (1, approve(&books)),
        (1, deposit(&books)),
        (1, apply(&spare)),
        (
            1,
            Command::RejectMerchant {
                merchant_id: spare,
                reason: Some("incomplete application".to_owned()),
            },
        ),
        (
            1,
            Command::CreateApiKey {
                key_id: id(KeyId::parse, "key_books")?,
                role: Role::Merchant,
                merchant_id: Some(books.clone()),
                key_hash: "5e".repeat(32),
            },
        ),
        (
            1,
            Command::RevokeApiKey {
                key_id: id(KeyId::parse, "key_books")?,
            },
        ),
        (
            60,
            Command::IssuePoints {
                account: alice.clone(),
                merchant_id: cafe.clone(),
                order_ref: id(OrderRef::parse, "receipt-1001")?,
                points: None,
                purchase_amount: Some("42.50".parse().unwrap_or_default()),
                category: Some(id(Category::parse, "coffee")?),
            },
        ),
        (
            60,
            Command::IssuePoints {
                account: alice.clone(),
                merchant_id: books.clone(),
                order_ref: id(OrderRef::parse, "receipt-2001")?,
                points: Some(300),
                purchase_amount: None,
                category: None,
            },
        ),
        (
            60,
            Command::RedeemPoints {
                account: alice.clone(),
                merchant_id: books.clone(),
                points: 30,
                order_ref: id(OrderRef::parse, "basket-77")?,
            },
        ),
        (
            60,
            Command::TransferPoints {
                from: alice.clone(),
                to: bob.clone(),
                points: 5,
            },
        ),
        (
            60,
            Command::TransferPoints {
                from: alice.clone(),
                to: bob.clone(),
                points: 5,
            },
        ),
        (
            60,
            Command::HoldPoints {
                account: alice.clone(),
                merchant_id: cafe.clone(),
                points: 20,
                order_ref: Some(id(OrderRef::parse, "booking-5")?),
                expires_in_seconds: None,
            },
        ),
        (
            60,
            Command::CaptureHold {
                hold_id: HoldId(1),
                points: Some(15),
            },
        ),
        (
            60,
            Command::HoldPoints {
                account: alice.clone(),
                merchant_id: cafe.clone(),
                points: 10,
                order_ref: None,
                expires_in_seconds: None,
            },
        ),
        (60, Command::ReleaseHold { hold_id: HoldId(2) }),
        (
            60,
            Command::ReverseIssuance {
                issuance_id: IssuanceId(2),
                points: Some(50),
            },
        ),
        (
            60,
            Command::ReverseRedemption {
                redemption_id: RedemptionId(1),
                points: None,
            },
        ),
        (
            31 * 86_400,
            Command::SuspendMerchant {
                merchant_id: books.clone(),
                reason: Some("audit".to_owned()),
            },
        ),
        (
            1,
            Command::ReinstateMerchant {
                merchant_id: books,
                reason: None,
            },
        ),
        (
            1,
            Command::RunExpiry {
                as_of: Timestamp::parse_rfc3339("2026-03-04T00:00:00Z").ok()?,
            },
        ),
    ])
}

/// The first event of each type the story produces, as its `data`.
pub fn examples() -> BTreeMap<&'static str, Value> {
    let mut examples = BTreeMap::new();
    let (Some(story), Ok(mut now)) = (story(), Timestamp::parse_rfc3339(STORY_START)) else {
        return examples;
    };
    let Ok(key_id) = KeyId::parse("admin-1") else {
        return examples;
    };
    let actor = Actor {
        key_id,
        role: Role::Admin,
        merchant_id: None,
    };
    let mut state = State::default();
    for (wait, command) in story {
        now = Timestamp(now.0 + wait * 1_000_000);
        let context = Context {
            now,
            actor: actor.clone(),
        };
        let Ok(events) = execute(&mut state, &command, &context) else {
            continue;
        };
        for event in events {
            let mut data = Vec::new();
            if event
                .serialize_data(&mut serde_json::Serializer::new(&mut data))
                .is_ok()
                && let Ok(value) = serde_json::from_slice(&data)
            {
                examples.entry(event.kind()).or_insert(value);
            }
        }
    }
    examples
}
