//! Drives the real domain (decide + apply, with the idempotency index in
//! front, as the engine does) and the reference model side by side, and
//! compares them after every step.

use std::collections::BTreeSet;

use ledger_core::domain::idempotency::{Fingerprint, IdempotencyIndex, Lookup};
use ledger_core::domain::invariants::check_all;
use ledger_core::domain::{Actor, Command, Context, Event, Rejection, State, Timestamp, execute};
use uuid::Uuid;

use crate::model::Model;

pub type Outcome = Result<Vec<Event>, Rejection>;

#[derive(Debug, Clone)]
pub struct Submission {
    pub command_id: Uuid,
    pub command: Command,
    pub actor: Actor,
}

#[derive(Debug)]
pub struct Simulation {
    pub state: State,
    pub model: Model,
    pub index: IdempotencyIndex<Outcome>,
    pub now: Timestamp,
    /// Every event accepted so far, in order: the log.
    pub log: Vec<Event>,
    pub submissions: Vec<Submission>,
}

impl Simulation {
    pub fn new(now: Timestamp) -> Simulation {
        Simulation {
            state: State::default(),
            model: Model::default(),
            // Long enough that no test sequence outlives it: forgetting is
            // unit-tested on its own.
            index: IdempotencyIndex::new(365 * 86_400),
            now,
            log: Vec::new(),
            submissions: Vec::new(),
        }
    }

    /// Submits a command under `command_id`; returns what the caller would
    /// be answered, or a description of a disagreement.
    pub fn submit(&mut self, submission: Submission) -> Result<Outcome, String> {
        let fingerprint = Fingerprint::of(&submission.command, &submission.actor);
        let outcome = match self.index.lookup(submission.command_id, fingerprint) {
            Lookup::Replay(outcome) => return Ok(outcome.clone()),
            Lookup::KeyReused => return Ok(Err(Rejection::IdempotencyKeyReused)),
            Lookup::New => self.decide_fresh(&submission)?,
        };
        self.index.record(
            submission.command_id,
            fingerprint,
            self.now,
            outcome.clone(),
        );
        self.submissions.push(submission);
        Ok(outcome)
    }

    fn decide_fresh(&mut self, submission: &Submission) -> Result<Outcome, String> {
        let faults: BTreeSet<&str> =
            self.model
                .violations(&submission.command, &submission.actor, self.now);
        let context = Context {
            now: self.now,
            actor: submission.actor.clone(),
        };
        let outcome = execute(&mut self.state, &submission.command, &context);
        match &outcome {
            Ok(events) => {
                if !faults.is_empty() {
                    return Err(format!(
                        "engine accepted {:?} but the model finds {faults:?}; events {events:?}",
                        submission.command
                    ));
                }
                self.model
                    .carry_out(&submission.command, self.now, events)
                    .map_err(|error| {
                        format!("model cannot follow {:?}: {error}", submission.command)
                    })?;
                self.log.extend(events.iter().cloned());
            }
            Err(rejection) => {
                if !faults.contains(rejection.code()) {
                    return Err(format!(
                        "engine refused {:?} with {rejection:?}; the model finds only {faults:?}",
                        submission.command
                    ));
                }
            }
        }
        check_all(&self.state)
            .map_err(|violation| format!("{violation} after {:?}", submission.command))?;
        self.compare_with_model()?;
        Ok(outcome)
    }

    /// Balances, holds, lots (origin, expiry, remaining, in consumption
    /// order), merchant funding and the supply totals must all agree.
    pub fn compare_with_model(&self) -> Result<(), String> {
        let names: BTreeSet<String> = self
            .state
            .accounts
            .keys()
            .map(ToString::to_string)
            .chain(self.model.accounts.keys().cloned())
            .collect();
        for name in names {
            let engine = self
                .state
                .accounts
                .iter()
                .find(|(id, _)| id.as_str() == name)
                .map(|(_, account)| account);
            let engine_lots: Vec<(String, Option<i64>, u64)> = engine
                .map(|account| {
                    account
                        .lots
                        .iter()
                        .map(|lot| {
                            (
                                self.state.merchant_id(lot.origin).map_or_else(
                                    || "an unnumbered merchant".to_owned(),
                                    ToString::to_string,
                                ),
                                lot.expires_at().map(|at| at.0),
                                lot.remaining,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut model_account = self.model.accounts.get(&name).cloned().unwrap_or_default();
            model_account.lots.retain(|lot| lot.remaining > 0);
            model_account
                .lots
                .sort_by_key(|lot| (lot.expires_at.unwrap_or(i64::MAX), lot.sequence));
            let model_lots: Vec<(String, Option<i64>, u64)> = model_account
                .lots
                .iter()
                .map(|lot| (lot.origin.clone(), lot.expires_at, lot.remaining))
                .collect();
            if engine_lots != model_lots {
                return Err(format!(
                    "account {name}: engine lots {engine_lots:?}, model lots {model_lots:?}"
                ));
            }
            let engine_held = engine.map_or(0, |account| account.held);
            if engine_held != model_account.held() {
                return Err(format!(
                    "account {name}: engine holds {engine_held}, model {}",
                    model_account.held()
                ));
            }
        }
        let supply = &self.state.supply;
        let engine_totals = (
            supply.issued_total,
            supply.redeemed_total,
            supply.expired_total,
            supply.reversed_total,
        );
        let model_totals = (
            self.model.issued_total,
            self.model.redeemed_total,
            self.model.expired_total,
            self.model.reversed_total,
        );
        if engine_totals != model_totals {
            return Err(format!(
                "supply (issued, redeemed, expired, reversed): engine {engine_totals:?}, model {model_totals:?}"
            ));
        }
        for (name, merchant) in &self.model.merchants {
            let engine = self
                .state
                .merchants
                .iter()
                .find(|(id, _)| id.as_str() == name)
                .map(|(_, merchant)| merchant.funding.0);
            if engine != Some(merchant.funding) {
                return Err(format!(
                    "merchant {name}: engine funding {engine:?}, model {}",
                    merchant.funding
                ));
            }
        }
        Ok(())
    }
}
