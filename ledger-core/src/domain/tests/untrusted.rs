//! `try_apply` on events no `decide` produced, as a log under audit may
//! hold them: each is refused naming what does not fit, where the same
//! event with that one thing right applies.

use super::*;
use crate::domain::event::PointsIssued;
use crate::domain::ids::LotId;
use crate::domain::try_apply;

/// The issuance `decide` records next for `order_ref`, not applied.
fn next_issuance(ledger: &Ledger, order_ref: &str) -> PointsIssued {
    let command = issue("bob", "cafe", order_ref, 20);
    match decide(&ledger.state, &command, &ledger.context()).as_deref() {
        Ok([Event::PointsIssued(issued)]) => issued.clone(),
        other => panic!("expected one points_issued, got {other:?}"),
    }
}

fn refusal(ledger: &Ledger, issued: PointsIssued) -> String {
    let mut state = ledger.state.clone();
    match try_apply(&mut state, &Event::PointsIssued(issued)) {
        Ok(()) => panic!("applied"),
        Err(error) => error.reason,
    }
}

#[test]
fn an_issuance_that_does_not_fit_is_refused_for_what_does_not() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 10);
    let fresh = next_issuance(&ledger, "o2");

    let mut state = ledger.state.clone();
    try_apply(&mut state, &Event::PointsIssued(fresh.clone())).expect("as decided, it applies");

    let repeated_order = PointsIssued {
        order_ref: order("o1"),
        ..fresh.clone()
    };
    assert_eq!(
        refusal(&ledger, repeated_order),
        "order o1 of cafe already earned"
    );

    let skipped_lot = PointsIssued {
        lot_id: LotId(fresh.lot_id.0 + 1),
        ..fresh.clone()
    };
    assert_eq!(
        refusal(&ledger, skipped_lot),
        format!("lot id {}, expected {}", fresh.lot_id.0 + 1, fresh.lot_id.0)
    );

    let wrong_funding = PointsIssued {
        funding_after: amount("999.80"),
        ..fresh.clone()
    };
    assert_eq!(fresh.funding_after, amount("999.70"));
    assert_eq!(
        refusal(&ledger, wrong_funding),
        format!(
            "funding after is recorded as {}, computed {:?}",
            amount("999.80"),
            Some(fresh.funding_after)
        )
    );
}
