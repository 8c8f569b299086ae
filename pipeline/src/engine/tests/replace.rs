use rust_decimal_macros::dec;

use super::fixture::*;
use crate::*;

fn replace(
    e: &mut Engine,
    account: AccountId,
    id: OrderId,
    price: Option<&str>,
    qty: Option<&str>,
) -> Result<Vec<Event>, Reject> {
    let price = price.map(|p| Price::parse(p).unwrap());
    let quantity = qty.map(|q| Quantity::parse(q).unwrap());
    e.apply(
        Command::Replace {
            account,
            order_id: id,
            price,
            quantity,
        },
        3,
    )
}

fn bid_ids(e: &Engine) -> Vec<OrderId> {
    e.open_orders()
        .iter()
        .filter(|o| o.side == Side::Buy)
        .map(|o| o.id)
        .collect()
}

#[test]
fn a_quantity_decrease_keeps_priority_and_releases_hold() {
    let mut e = funded();
    let first = rest(&mut e, limit(ALICE, Side::Buy, "100", "2"));
    let second = rest(&mut e, limit(BOB, Side::Buy, "100", "1"));
    let ev = replace(&mut e, ALICE, first, None, Some("1")).unwrap();
    assert!(matches!(
        ev[0].kind,
        EventKind::OrderReplaced {
            priority_kept: true,
            ..
        }
    ));
    assert_eq!(bid_ids(&e), vec![first, second]);
    assert_eq!(held(&e, ALICE, usd()), dec!(100.2));
}

#[test]
fn a_quantity_increase_loses_priority_and_holds_more() {
    let mut e = funded();
    let first = rest(&mut e, limit(ALICE, Side::Buy, "100", "1"));
    let second = rest(&mut e, limit(BOB, Side::Buy, "100", "1"));
    let ev = replace(&mut e, ALICE, first, None, Some("3")).unwrap();
    assert!(matches!(
        ev[0].kind,
        EventKind::OrderReplaced {
            priority_kept: false,
            ..
        }
    ));
    assert_eq!(bid_ids(&e), vec![second, first]);
    assert_eq!(held(&e, ALICE, usd()), dec!(300.6));
}

#[test]
fn a_price_change_loses_priority() {
    let mut e = funded();
    let first = rest(&mut e, limit(ALICE, Side::Buy, "100", "1"));
    let second = rest(&mut e, limit(BOB, Side::Buy, "99", "1"));
    replace(&mut e, ALICE, first, Some("99"), None).unwrap();
    assert_eq!(bid_ids(&e), vec![second, first]);
    assert_eq!(held(&e, ALICE, usd()), dec!(99.198));
}

#[test]
fn a_replace_to_a_crossing_price_trades_at_once() {
    let mut e = funded();
    let ask = rest(&mut e, limit(BOB, Side::Sell, "101", "1"));
    let id = rest(&mut e, limit(ALICE, Side::Buy, "100", "1"));
    let ev = replace(&mut e, ALICE, id, Some("101"), None).unwrap();
    assert_eq!(trades(&ev).len(), 1);
    assert_eq!(
        closes(&ev),
        vec![(ask, CloseReason::Filled), (id, CloseReason::Filled)]
    );
    assert_eq!(held(&e, ALICE, usd()), dec!(0));
}

#[test]
fn a_post_only_replace_that_would_cross_is_rejected() {
    let mut e = funded();
    rest(&mut e, limit(BOB, Side::Sell, "101", "1"));
    let id = rest(
        &mut e,
        NewOrder {
            post_only: true,
            ..limit(ALICE, Side::Buy, "100", "1")
        },
    );
    let before = e.snapshot();
    assert_eq!(
        replace(&mut e, ALICE, id, Some("101"), None),
        Err(Reject::PostOnlyWouldCross)
    );
    assert_eq!(e.snapshot(), before);
}

#[test]
fn a_replace_beyond_the_available_balance_is_rejected() {
    let mut e = Engine::new(config());
    e.apply(Command::deposit(ALICE, usd(), dec!(150)), 1)
        .unwrap();
    let id = rest(&mut e, limit(ALICE, Side::Buy, "100", "1"));
    assert_eq!(
        replace(&mut e, ALICE, id, None, Some("2")),
        Err(Reject::InsufficientFunds)
    );
    assert_eq!(
        replace(&mut e, BOB, id, None, Some("0.5")),
        Err(Reject::NotOrderOwner)
    );
    assert_eq!(
        replace(&mut e, ALICE, id, None, None),
        Err(Reject::NothingToReplace)
    );
    assert_eq!(
        replace(&mut e, ALICE, id, Some("100.005"), None),
        Err(Reject::PriceOffTick)
    );
}
