//! `verify`: re-applies every event to a fresh state through `ledger-core`
//! and checks every state invariant after every event. The store has
//! already checked each record's checksum, position and chain link.
//!
//! Invariants are checked incrementally so a replay costs O(events), not
//! O(events × accounts): after each event, the accounts it touched are
//! checked whole (invariants 1 and 3), the supply invariants (2, 4) are
//! checked against a running sum of all balances, and the funding of the
//! merchant the event names (5; no other merchant's funding changes). A
//! full `check_all` at the end confirms the running sum, every merchant
//! and every index. Invariant 7's first half is read off the envelopes
//! as they are decoded (`command_runs`); its second half (one issuance
//! per order) `apply` checks. Each movement's risk alerts are held to the
//! ones its soft velocity limits raise (`risk_alerts`), and each event to
//! what its recorded actor was allowed to do (`decide::check_actor`).

use std::time::{Duration, Instant};

use ledger_core::domain::decide::check_actor;
use ledger_core::domain::invariants::{check_account, check_merchant_funding, check_supply_totals};
use ledger_core::domain::{State, Timestamp, check_all, try_apply};
use ledger_core::store::{Hash, Position};
use serde::Serialize;
use uuid::Uuid;

use crate::error::ReplayError;
use crate::risk_alerts::AlertCheck;
use crate::source::{LogSource, VerifiedEvent};

/// What a passed verification establishes.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub ledger_id: Uuid,
    pub events: u64,
    pub head_position: Position,
    pub head_hash: String,
    pub last_recorded_at: Option<Timestamp>,
    pub accounts: usize,
    pub merchants: usize,
    pub supply_cap: Option<u64>,
    pub issued_total: u64,
    pub redeemed_total: u64,
    pub expired_total: u64,
    pub reversed_total: u64,
    pub outstanding: u64,
    /// The window within which every command id was checked to take
    /// effect at most once.
    pub idempotency_seconds: u64,
    pub seconds: f64,
}

/// A head an auditor recorded earlier: the record at `position` must still
/// have this hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedHead {
    pub position: Position,
    pub hash: Hash,
}

impl std::str::FromStr for ExpectedHead {
    type Err = String;

    fn from_str(text: &str) -> Result<ExpectedHead, String> {
        let (position, hash) = text
            .split_once(':')
            .ok_or_else(|| "expected POSITION:HASH".to_owned())?;
        let position = position
            .parse()
            .map_err(|_| format!("`{position}` is not a position"))?;
        let mut bytes = [0; 32];
        hex::decode_to_slice(hash, &mut bytes)
            .map_err(|_| "the hash must be 64 hexadecimal digits".to_owned())?;
        Ok(ExpectedHead {
            position,
            hash: bytes,
        })
    }
}

/// Replays `source` to its end; `on_event` is handed every verified event
/// after it was applied (for progress, and for callers that also build
/// read models, which keep it for a batch fold).
pub fn verify(
    source: &mut LogSource,
    expected_head: Option<ExpectedHead>,
    mut on_event: impl FnMut(VerifiedEvent, &State),
) -> Result<(Verified, State), ReplayError> {
    let started = Instant::now();
    let mut state = State::default();
    let mut alert_check = AlertCheck::default();
    let mut balances_total: u128 = 0;
    let mut events: u64 = 0;
    let mut last: Option<(Position, Hash, Timestamp)> = None;
    let mut expected_head_seen = false;
    while let Some(verified) = source.next_event()? {
        let envelope = &verified.envelope;
        let position = envelope.position;
        let event_kind = envelope.event.kind();
        if let Some((_, _, previous)) = last
            && envelope.recorded_at < previous
        {
            return Err(ReplayError::TimeWentBack {
                position,
                previous,
                recorded_at: envelope.recorded_at,
            });
        }
        let occurred_at = envelope.event.occurred_at();
        if occurred_at != envelope.recorded_at {
            return Err(ReplayError::TimeMismatch {
                position,
                event_kind,
                occurred_at,
                recorded_at: envelope.recorded_at,
            });
        }
        alert_check.check(&state, envelope)?;
        check_actor(&state, &envelope.event, &envelope.actor).map_err(|reason| {
            ReplayError::NotAllowed {
                position,
                event_kind,
                reason,
            }
        })?;
        let touched = envelope.event.accounts();
        let before: u128 = touched
            .clone()
            .map(|account| {
                state
                    .accounts
                    .get(account)
                    .map_or(0, |held| u128::from(held.balance))
            })
            .sum();
        try_apply(&mut state, &envelope.event).map_err(|error| ReplayError::DoesNotApply {
            position,
            event_kind,
            reason: error.reason,
        })?;
        let mut after: u128 = 0;
        for account_id in touched {
            if let Some(account) = state.accounts.get(account_id) {
                after += u128::from(account.balance);
                check_account(&state, account_id, account).map_err(|violation| {
                    ReplayError::Invariant {
                        position,
                        event_kind,
                        violation,
                    }
                })?;
            }
        }
        balances_total = (balances_total + after).saturating_sub(before);
        check_supply_totals(&state, balances_total)
            .and_then(|()| match envelope.event.merchant() {
                Some(merchant_id) => check_merchant_funding(&state, merchant_id),
                None => Ok(()),
            })
            .map_err(|violation| ReplayError::Invariant {
                position,
                event_kind,
                violation,
            })?;
        if let Some(expected) = expected_head
            && expected.position == position
        {
            if expected.hash != verified.hash {
                return Err(head_mismatch(expected, &hex::encode(verified.hash)));
            }
            expected_head_seen = true;
        }
        events += 1;
        last = Some((position, verified.hash, envelope.recorded_at));
        on_event(verified, &state);
    }
    if let Some(expected) = expected_head
        && !expected_head_seen
    {
        return Err(head_mismatch(
            expected,
            &format!(
                "the log ends at position {}",
                last.map_or(0, |(position, _, _)| position)
            ),
        ));
    }
    alert_check.finish()?;
    if let Some((position, _, _)) = last {
        check_all(&state).map_err(|violation| ReplayError::Invariant {
            position,
            event_kind: "end of log",
            violation,
        })?;
    }
    let head_hash = last.map_or_else(
        || ledger_core::store::genesis_hash(source.ledger_id()),
        |(_, hash, _)| hash,
    );
    let supply = &state.supply;
    let verified = Verified {
        ledger_id: source.ledger_id(),
        events,
        head_position: last.map_or(0, |(position, _, _)| position),
        head_hash: hex::encode(head_hash),
        last_recorded_at: last.map(|(_, _, at)| at),
        accounts: state.accounts.len(),
        merchants: state.merchants.len(),
        supply_cap: state.supply_cap(),
        issued_total: supply.issued_total,
        redeemed_total: supply.redeemed_total,
        expired_total: supply.expired_total,
        reversed_total: supply.reversed_total,
        outstanding: supply.outstanding().unwrap_or(0),
        idempotency_seconds: source.idempotency_seconds(),
        seconds: Duration::as_secs_f64(&started.elapsed()),
    };
    Ok((verified, state))
}

fn head_mismatch(expected: ExpectedHead, found: &str) -> ReplayError {
    ReplayError::HeadMismatch {
        position: expected.position,
        expected: hex::encode(expected.hash),
        found: found.to_owned(),
    }
}
