use rust_decimal_macros::dec;

use super::fixture::*;
use crate::*;

#[test]
fn cancelling_an_order_releases_its_hold() {
    let mut e = funded();
    let id = rest(&mut e, limit(ALICE, Side::Buy, "100", "1"));
    let ev = e
        .apply(
            Command::Cancel {
                account: ALICE,
                order_id: id,
            },
            2,
        )
        .unwrap();
    assert_eq!(closes(&ev), vec![(id, CloseReason::Cancelled)]);
    assert!(
        matches!(ev[0].kind, EventKind::OrderClosed { released, .. } if released == dec!(100.2))
    );
    assert_eq!(held(&e, ALICE, usd()), dec!(0));
    assert_eq!(avail(&e, ALICE, usd()), dec!(1000000));
}

#[test]
fn cancelling_an_unknown_order_is_rejected() {
    let mut e = funded();
    assert_eq!(
        e.apply(
            Command::Cancel {
                account: ALICE,
                order_id: OrderId(99)
            },
            2
        ),
        Err(Reject::UnknownOrder)
    );
}

#[test]
fn cancelling_someone_elses_order_is_rejected() {
    let mut e = funded();
    let id = rest(&mut e, limit(ALICE, Side::Buy, "100", "1"));
    assert_eq!(
        e.apply(
            Command::Cancel {
                account: BOB,
                order_id: id
            },
            2
        ),
        Err(Reject::NotOrderOwner)
    );
}

#[test]
fn a_snapshot_restores_to_an_identical_engine() {
    let mut e = funded();
    rest(&mut e, limit(ALICE, Side::Buy, "99", "1"));
    rest(&mut e, limit(BOB, Side::Buy, "99", "2"));
    rest(&mut e, limit(BOB, Side::Sell, "101", "1"));
    place(&mut e, limit(ALICE, Side::Buy, "101", "0.4")).unwrap();
    let state = e.snapshot();
    let json = serde_json::to_string(&state).unwrap();
    let restored = Engine::from_state(config(), serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(restored.snapshot(), state);
    // The restored engine behaves the same as the original.
    let mut a = e.clone();
    let mut b = restored;
    let cmd = Command::Place(limit(BOB, Side::Sell, "99", "2"));
    assert_eq!(a.apply(cmd.clone(), 5), b.apply(cmd, 5));
    assert_eq!(a.snapshot(), b.snapshot());
}

#[test]
fn a_snapshot_whose_holds_do_not_match_its_orders_is_refused() {
    let mut e = funded();
    rest(&mut e, limit(ALICE, Side::Buy, "100", "1"));
    let mut state = e.snapshot();
    for b in &mut state.balances {
        if b.account == ALICE && b.asset == usd() {
            b.held += dec!(1);
        }
    }
    assert!(matches!(
        Engine::from_state(config(), state),
        Err(RestoreError::HoldMismatch { .. })
    ));
}
