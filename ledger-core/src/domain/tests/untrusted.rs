//! `try_apply` on events no `decide` produced, as a log under audit may
//! hold them: each is refused naming what does not fit, where the same
//! event with that one thing right applies.

use super::*;
use crate::domain::event::PointsIssued;
use crate::domain::ids::LotId;
use crate::domain::state::MerchantNumber;
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

    // A lot keeps its expiry in 8 bytes, the last instant meaning never.
    let expiring_at_the_end_of_time = PointsIssued {
        expires_at: Some(Timestamp(i64::MAX)),
        ..fresh.clone()
    };
    assert_eq!(
        refusal(&ledger, expiring_at_the_end_of_time),
        format!("lot {} expires at the last instant there is", fresh.lot_id)
    );
}

#[test]
fn a_transfer_naming_another_origin_is_refused() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 10);
    let events =
        decide(&ledger.state, &transfer("ann", "bob", 4), &ledger.context()).expect("decided");
    let Some(Event::PointsTransferred(transferred)) = events.last() else {
        panic!("expected a transfer, got {events:?}");
    };
    let mut state = ledger.state.clone();
    try_apply(&mut state, &Event::PointsTransferred(transferred.clone()))
        .expect("as decided, it applies");

    let mut forged = transferred.clone();
    forged.moved[0].origin_merchant_id = merchant("cinema");
    let mut state = ledger.state.clone();
    let refused =
        try_apply(&mut state, &Event::PointsTransferred(forged)).map_err(|error| error.reason);
    assert_eq!(
        refused,
        Err(format!(
            "lot {} is recorded with other origin or dates",
            transferred.moved[0].source_lot_id
        ))
    );
}

#[test]
fn merchant_numbers_that_do_not_fit_are_reported() {
    let mut ledger = Ledger::with_merchants();
    ledger.issue("ann", "cafe", "o1", 10);
    assert_eq!(ledger.state.check_merchant_numbers(), Ok(()));
    let merchants = ledger.state.merchant_ids.len() as u32;

    let mut unnumbered_origin = ledger.state.clone();
    let Some(ann) = unnumbered_origin.accounts.get_mut(&account("ann")) else {
        panic!("ann has an account");
    };
    let lot_id = ann.lots[0].lot_id;
    ann.lots[0].origin = MerchantNumber(merchants);
    assert_eq!(
        unnumbered_origin.check_merchant_numbers(),
        Err(format!(
            "lot {lot_id} of ann comes from merchant number {merchants}, which no merchant has"
        ))
    );
    let violation = check_all(&unnumbered_origin).expect_err("check_all reports it");
    assert_eq!(violation.invariant, 0);

    let mut swapped = ledger.state.clone();
    swapped.merchant_ids.swap(0, 1);
    assert!(
        swapped
            .check_merchant_numbers()
            .is_err_and(|why| why.contains("has number")),
        "a merchant must be at its own number"
    );

    let mut short = ledger.state.clone();
    short.merchant_ids.pop();
    assert_eq!(
        short.check_merchant_numbers(),
        Err(format!(
            "{} merchant numbers for {merchants} merchants",
            merchants - 1
        ))
    );
}
