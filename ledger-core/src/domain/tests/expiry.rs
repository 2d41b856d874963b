use super::*;
use crate::domain::event::HoldReleaseReason;
use crate::domain::ids::LotId;

fn expiry_run(ledger: &mut Ledger) -> Vec<Event> {
    let as_of = ledger.now;
    ledger.ok(Command::RunExpiry { as_of })
}

fn completed(events: &[Event]) -> &crate::domain::event::ExpiryRunCompleted {
    match events.last() {
        Some(Event::ExpiryRunCompleted(completed)) => completed,
        other => panic!("expected expiry_run_completed, got {other:?}"),
    }
}

#[test]
fn due_lots_expire_and_others_stay() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(10));
    ledger.issue("ann", "cafe", "o1", 10);
    ledger.issue("bob", "cafe", "o2", 20);
    ledger.advance_days(5);
    ledger.issue("ann", "cafe", "o3", 30);
    ledger.advance_days(5);
    let events = expiry_run(&mut ledger);
    let summary = completed(&events);
    assert_eq!((summary.accounts_expired, summary.points_expired), (2, 30));
    assert!(!summary.more_pending);
    assert_eq!(ledger.balance("ann"), (30, 0));
    assert_eq!(ledger.balance("bob"), (0, 0));
    assert_eq!(ledger.state.supply.expired_total, 30);
    // Nothing left to expire: the run is still recorded.
    let events = expiry_run(&mut ledger);
    assert_eq!(events.len(), 1);
    assert_eq!(completed(&events).points_expired, 0);
}

#[test]
fn expiry_as_of_the_past_and_never_the_future() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(10));
    ledger.issue("ann", "cafe", "o1", 10);
    let due = ledger.now.plus_days(10);
    ledger.advance_days(20);
    ledger.issue("ann", "cafe", "o2", 10);
    let before_due = Timestamp(due.0 - 1);
    let events = ledger.ok(Command::RunExpiry { as_of: before_due });
    assert_eq!(completed(&events).points_expired, 0);
    let events = ledger.ok(Command::RunExpiry { as_of: due });
    assert_eq!(completed(&events).points_expired, 10);
    let future = ledger.now.plus_days(1);
    let rejection = ledger.rejected(Command::RunExpiry { as_of: future });
    assert_eq!(code(&rejection), "validation_error");
}

#[test]
fn held_points_outlive_their_expiry_until_the_hold_lets_go() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(1));
    ledger.issue("ann", "cafe", "o1", 100);
    let hold = ledger.hold("ann", "cinema", 60, 7 * 86_400);
    ledger.advance_days(2);
    let events = expiry_run(&mut ledger);
    let Event::PointsExpired(expired) = &events[0] else {
        panic!("expected points_expired first, got {events:?}");
    };
    assert_eq!((expired.points, expired.points_retained_by_holds), (40, 60));
    assert_eq!(ledger.balance("ann"), (60, 60));
    // Capturing spends the retained, past-due points.
    ledger.ok(Command::CaptureHold {
        hold_id: hold,
        points: Some(50),
    });
    assert_eq!(ledger.balance("ann"), (10, 0));
    // The released rest expires on the next run.
    let events = expiry_run(&mut ledger);
    assert_eq!(completed(&events).points_expired, 10);
}

#[test]
fn runs_time_out_stale_holds_before_expiring() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(1));
    ledger.issue("ann", "cafe", "o1", 100);
    ledger.hold("ann", "cinema", 60, 3600);
    ledger.advance_days(2);
    let events = expiry_run(&mut ledger);
    assert!(
        matches!(&events[0], Event::HoldReleased(released) if released.reason == HoldReleaseReason::TimedOut)
    );
    let summary = completed(&events);
    assert_eq!((summary.holds_timed_out, summary.points_expired), (1, 100));
    assert_eq!(ledger.balance("ann"), (0, 0));
}

#[test]
fn debits_expire_due_lots_first_so_expired_points_are_never_spent() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(1));
    ledger.issue("ann", "cafe", "o1", 100);
    configure(&mut ledger, |rules| rules.expiry_days = None);
    ledger.issue("ann", "cafe", "o2", 10);
    ledger.advance_days(1);
    let rejection = ledger.rejected(redeem("ann", "cinema", 11));
    assert!(matches!(
        rejection,
        Rejection::InsufficientPoints { available: 10, .. }
    ));
    let events = ledger.ok(redeem("ann", "cinema", 10));
    assert!(matches!(&events[0], Event::PointsExpired(expired) if expired.points == 100));
    assert_eq!(ledger.state.supply.expired_total, 100);
}

#[test]
fn a_run_is_bounded_and_says_more_is_pending() {
    use crate::domain::decide::expiry::LOTS_SCANNED_PER_RUN_MAX;
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(1));
    let lots = LOTS_SCANNED_PER_RUN_MAX + 5;
    ledger.check_invariants = false;
    for index in 0..lots {
        ledger.issue(&format!("member-{index}"), "cafe", &format!("o{index}"), 1);
    }
    ledger.check_invariants = true;
    ledger.advance_days(1);
    let events = expiry_run(&mut ledger);
    let summary = completed(&events);
    assert!(summary.more_pending);
    assert_eq!(summary.accounts_expired, LOTS_SCANNED_PER_RUN_MAX as u64);
    let events = expiry_run(&mut ledger);
    let summary = completed(&events);
    assert!(!summary.more_pending);
    assert_eq!(summary.accounts_expired, 5);
    assert_eq!(ledger.state.outstanding(), 0);
}

/// The full check compares the expiry index with the accounts' lots: each
/// kind of damage is named, whichever end of the index it sits at.
#[test]
fn the_full_check_names_every_damage_to_the_expiry_index() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(10));
    ledger.issue("ann", "cafe", "o1", 10);
    ledger.issue("bob", "cafe", "o2", 20);
    ledger.advance_days(1);
    ledger.issue("ann", "cafe", "o3", 30);
    assert_eq!(check_all(&ledger.state), Ok(()));
    let entries: Vec<_> = ledger
        .state
        .lot_expiries
        .iter()
        .map(|(key, owner)| (*key, owner.clone()))
        .collect();
    assert_eq!(entries.len(), 3);
    let ((first_expiry, first_lot), first_owner) = entries[0].clone();
    assert_eq!(first_owner, account("ann"));
    let (last_expiry, _) = entries[2].0;
    let damaged = |damage: &dyn Fn(&mut State)| {
        let mut state = ledger.state.clone();
        damage(&mut state);
        match check_all(&state) {
            Ok(()) => panic!("damage to the expiry index went unnoticed"),
            Err(violation) => violation.detail,
        }
    };

    let missing = damaged(&|state| {
        state.lot_expiries.remove(&(first_expiry, first_lot));
    });
    assert!(
        missing.contains(&format!("lot {first_lot} of ann")) && missing.contains("missing"),
        "{missing}"
    );

    let wrong_owner = damaged(&|state| {
        state
            .lot_expiries
            .insert((first_expiry, first_lot), account("bob"));
    });
    assert!(
        wrong_owner.contains("of bob, but ann holds it"),
        "{wrong_owner}"
    );

    let stale_before = damaged(&|state| {
        state
            .lot_expiries
            .insert((Timestamp(first_expiry.0 - 1), LotId(900)), account("ann"));
    });
    assert!(
        stale_before.contains("lot 900 of ann, which is gone"),
        "{stale_before}"
    );

    let stale_after = damaged(&|state| {
        state
            .lot_expiries
            .insert((Timestamp(last_expiry.0 + 1), LotId(901)), account("bob"));
    });
    assert!(
        stale_after.contains("lot 901 of bob, which is gone"),
        "{stale_after}"
    );
}

/// What the full check finds after `damage` to ann's account, in a copy
/// of the ledger's state.
fn found_after_damage_to_ann(
    ledger: &Ledger,
    damage: &dyn Fn(&mut crate::domain::state::Account),
) -> (u8, String) {
    assert_eq!(check_all(&ledger.state), Ok(()));
    let mut state = ledger.state.clone();
    if let Some(ann) = state.accounts.get_mut(&account("ann")) {
        damage(ann);
    }
    match check_all(&state) {
        Err(violation) => (violation.invariant, violation.detail),
        Ok(()) => panic!("the damage went unnoticed"),
    }
}

/// The full check also guards the newest key each account keeps, which
/// lets a credit go last without reading the last lot.
#[test]
fn the_full_check_names_a_lot_beyond_the_newest_key_credited() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(10));
    ledger.issue("ann", "cafe", "o1", 10);
    let (_, detail) = found_after_damage_to_ann(&ledger, &|ann| ann.newest_lot_key = (0, 0));
    assert!(detail.contains("after the newest key credited"), "{detail}");
}

/// The account check names each kind of damage to the lots: the balance
/// against the lots first, then an empty lot kept, then lots out of
/// consumption order.
#[test]
fn the_account_check_names_an_empty_lot_and_lots_out_of_order() {
    let mut ledger = Ledger::with_merchants();
    configure(&mut ledger, |rules| rules.expiry_days = Some(10));
    ledger.issue("ann", "cafe", "o1", 10);
    ledger.issue("ann", "cafe", "o2", 20);
    let damaged = |damage: &dyn Fn(&mut crate::domain::state::Account)| {
        found_after_damage_to_ann(&ledger, damage)
    };

    let (invariant, detail) = damaged(&|ann| {
        ann.balance -= ann.lots[0].remaining;
        ann.lots[0].remaining = 0;
    });
    assert_eq!(invariant, 0);
    assert!(detail.contains("empty lot"), "{detail}");

    let (invariant, detail) = damaged(&|ann| ann.lots.swap(0, 1));
    assert_eq!(invariant, 0);
    assert!(detail.contains("out of consumption order"), "{detail}");

    // Both at once, and a balance that no longer matches: the balance is
    // named first.
    let (invariant, detail) = damaged(&|ann| {
        ann.lots[0].remaining = 0;
        ann.lots.swap(0, 1);
    });
    assert_eq!(invariant, 3);
    assert!(detail.contains("lots sum to"), "{detail}");
}
