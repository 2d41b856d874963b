//! Given / when / then tests of every rule and every rejection. Each test
//! drives `decide` + `apply` through [`Ledger`], which also checks every
//! state invariant after every accepted command.

mod admin;
mod authorization;
mod earning;
mod expiry;
mod reversals;
mod spending;
mod untrusted;

use super::command::{Actor, Command, Context, Role};
use super::decide;
use super::decide::check_actor;
use super::event::Event;
use super::ids::{
    AccountId, Category, HoldId, IssuanceId, KeyId, MerchantId, OrderRef, RedemptionId,
};
use super::invariants::check_all;
use super::money::{Amount, Currency, Points};
use super::program::ProgramRules;
use super::rejection::Rejection;
use super::state::State;
use super::time::{MICROS_PER_SECOND, Timestamp};

pub(super) struct Ledger {
    pub state: State,
    pub now: Timestamp,
    pub actor: Actor,
    /// Full invariant scans after every command; off only for bulk set-up.
    pub check_invariants: bool,
}

pub(super) fn account(name: &str) -> AccountId {
    AccountId::parse(name).expect("valid account id")
}

pub(super) fn merchant(name: &str) -> MerchantId {
    MerchantId::parse(name).expect("valid merchant id")
}

pub(super) fn order(name: &str) -> OrderRef {
    OrderRef::parse(name).expect("valid order ref")
}

pub(super) fn category(name: &str) -> Category {
    Category::parse(name).expect("valid category")
}

pub(super) fn amount(text: &str) -> Amount {
    text.parse().expect("valid amount")
}

pub(super) fn admin() -> Actor {
    Actor {
        key_id: KeyId::parse("admin").expect("valid key id"),
        role: Role::Admin,
        merchant_id: None,
    }
}

impl Ledger {
    /// An empty ledger on Monday 2026-01-05 10:00 UTC.
    pub fn new() -> Ledger {
        Ledger {
            state: State::default(),
            now: Timestamp::parse_rfc3339("2026-01-05T10:00:00Z").expect("valid timestamp"),
            actor: admin(),
            check_invariants: true,
        }
    }

    /// A ledger with a programme (cap 1,000,000) and active merchants
    /// `cafe` and `cinema`, each funded with 1,000.00 EUR at 0.01 per point.
    pub fn with_merchants() -> Ledger {
        let mut ledger = Ledger::new();
        ledger.ok(Command::ConfigureProgram {
            rules: Box::new(ProgramRules::with_cap(1_000_000)),
        });
        for name in ["cafe", "cinema"] {
            ledger.add_merchant(name, "0.01", "0.008");
        }
        ledger
    }

    pub fn add_merchant(&mut self, name: &str, issue_price: &str, redemption_value: &str) {
        self.ok(Command::ApplyMerchant {
            merchant_id: merchant(name),
            name: format!("The {name}"),
            currency: Currency::parse("EUR").expect("valid currency"),
            issue_price: amount(issue_price),
            redemption_value: amount(redemption_value),
        });
        self.ok(Command::ApproveMerchant {
            merchant_id: merchant(name),
            reason: None,
        });
        self.ok(Command::RecordDeposit {
            merchant_id: merchant(name),
            amount: amount("1000.00"),
        });
    }

    pub fn context(&self) -> Context {
        Context {
            now: self.now,
            actor: self.actor.clone(),
        }
    }

    pub fn run(&mut self, command: Command) -> Result<Vec<Event>, Rejection> {
        let before = self
            .check_invariants
            .then(|| super::state_digest(&self.state));
        let context = self.context();
        let result = decide(&self.state, &command, &context);
        if let Ok(events) = &result {
            // Every event is one the replay tool finds its actor allowed
            // to record.
            for event in events {
                if let Err(reason) = check_actor(&self.state, event, &context.actor) {
                    panic!("{reason}: {event:?} of {command:?}");
                }
                super::apply::apply(&mut self.state, event);
            }
        }
        match &result {
            Ok(events) => {
                assert!(!events.is_empty(), "an accepted command records something");
                if !self.check_invariants {
                    return result;
                }
                if let Err(violation) = check_all(&self.state) {
                    panic!("{violation} after {command:?}");
                }
                // Snapshots are JSON: the state must survive the round trip.
                let json = serde_json::to_string(&self.state).expect("the state serialises");
                let restored: State = serde_json::from_str(&json).expect("the state deserialises");
                assert_eq!(
                    super::state_digest(&restored),
                    super::state_digest(&self.state)
                );
            }
            Err(_) => {
                if let Some(before) = before {
                    assert_eq!(
                        before,
                        super::state_digest(&self.state),
                        "a rejected command leaves the state untouched"
                    );
                }
            }
        }
        result
    }

    pub fn ok(&mut self, command: Command) -> Vec<Event> {
        let description = format!("{command:?}");
        match self.run(command) {
            Ok(events) => events,
            Err(rejection) => panic!("{description} was rejected: {rejection}"),
        }
    }

    pub fn rejected(&mut self, command: Command) -> Rejection {
        // decide alone must agree with execute: no events, a rejection.
        let decided = decide(&self.state, &command, &self.context());
        match self.run(command) {
            Ok(events) => panic!("expected a rejection, got {events:?}"),
            Err(rejection) => {
                assert_eq!(decided.err().as_ref(), Some(&rejection));
                rejection
            }
        }
    }

    pub fn advance_seconds(&mut self, seconds: i64) {
        self.now = Timestamp(self.now.0 + seconds * MICROS_PER_SECOND);
    }

    pub fn advance_days(&mut self, days: i64) {
        self.advance_seconds(days * 86_400);
    }

    pub fn issue(&mut self, to: &str, at: &str, order_ref: &str, points: Points) -> IssuanceId {
        let events = self.ok(issue(to, at, order_ref, points));
        match events.last() {
            Some(Event::PointsIssued(issued)) => issued.issuance_id,
            other => panic!("expected points_issued, got {other:?}"),
        }
    }

    pub fn redeem(&mut self, from: &str, at: &str, points: Points) -> RedemptionId {
        let events = self.ok(redeem(from, at, points));
        match events.last() {
            Some(Event::PointsRedeemed(redeemed)) => redeemed.redemption_id,
            other => panic!("expected points_redeemed, got {other:?}"),
        }
    }

    pub fn hold(&mut self, from: &str, at: &str, points: Points, seconds: u64) -> HoldId {
        let events = self.ok(Command::HoldPoints {
            account: account(from),
            merchant_id: merchant(at),
            points,
            order_ref: None,
            expires_in_seconds: Some(seconds),
        });
        match events.last() {
            Some(Event::PointsHeld(held)) => held.hold_id,
            other => panic!("expected points_held, got {other:?}"),
        }
    }

    pub fn balance(&self, name: &str) -> (Points, Points) {
        self.state
            .accounts
            .get(&account(name))
            .map_or((0, 0), |stored| (stored.balance, stored.held))
    }

    pub fn funding(&self, name: &str) -> Amount {
        self.state.merchants[&merchant(name)].funding
    }
}

pub(super) fn issue(to: &str, at: &str, order_ref: &str, points: Points) -> Command {
    Command::IssuePoints {
        account: account(to),
        merchant_id: merchant(at),
        order_ref: order(order_ref),
        points: Some(points),
        purchase_amount: None,
        category: None,
    }
}

pub(super) fn purchase(to: &str, at: &str, order_ref: &str, amount_text: &str) -> Command {
    Command::IssuePoints {
        account: account(to),
        merchant_id: merchant(at),
        order_ref: order(order_ref),
        points: None,
        purchase_amount: Some(amount(amount_text)),
        category: None,
    }
}

pub(super) fn redeem(from: &str, at: &str, points: Points) -> Command {
    Command::RedeemPoints {
        account: account(from),
        merchant_id: merchant(at),
        points,
        order_ref: order("basket-1"),
    }
}

pub(super) fn transfer(from: &str, to: &str, points: Points) -> Command {
    Command::TransferPoints {
        from: account(from),
        to: account(to),
        points,
    }
}

pub(super) fn configure(ledger: &mut Ledger, change: impl FnOnce(&mut ProgramRules)) {
    let mut rules = ledger
        .state
        .program
        .as_ref()
        .map_or(ProgramRules::with_cap(1_000_000), |program| {
            program.rules.clone()
        });
    change(&mut rules);
    ledger.ok(Command::ConfigureProgram {
        rules: Box::new(rules),
    });
}

pub(super) fn code(rejection: &Rejection) -> &'static str {
    rejection.code()
}
