use rust_decimal_macros::dec;

use super::fixture::*;
use crate::*;

#[test]
fn a_resting_limit_buy_holds_price_times_quantity_plus_the_maximum_fee() {
    let mut e = funded();
    let id = rest(&mut e, limit(ALICE, Side::Buy, "100", "2"));
    // 200 USD + 20 bps
    assert_eq!(held(&e, ALICE, usd()), dec!(200.4));
    assert_eq!(avail(&e, ALICE, usd()), dec!(999799.6));
    assert_eq!(e.order(id).unwrap().hold, dec!(200.4));
}

#[test]
fn a_resting_limit_sell_holds_its_quantity_of_base() {
    let mut e = funded();
    rest(&mut e, limit(ALICE, Side::Sell, "100", "2"));
    assert_eq!(held(&e, ALICE, btc()), dec!(2));
}

#[test]
fn a_crossing_limit_order_fills_at_the_resting_price() {
    let mut e = funded();
    let maker = rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    let ev = place(&mut e, limit(BOB, Side::Buy, "105", "1")).unwrap();
    let t = trades(&ev);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].price.value(), dec!(100));
    assert_eq!(t[0].maker_order_id, maker);
    assert_eq!(t[0].quote_amount, dec!(100));
    assert_eq!(t[0].maker_fee, dec!(0.1));
    assert_eq!(t[0].taker_fee, dec!(0.2));
    // Bob paid 100 + 0.2 and got 1 BTC; his price improvement was released.
    assert_eq!(avail(&e, BOB, usd()), dec!(999899.8));
    assert_eq!(held(&e, BOB, usd()), dec!(0));
    assert_eq!(avail(&e, BOB, btc()), dec!(101));
    // Alice received 100 − 0.1.
    assert_eq!(avail(&e, ALICE, usd()), dec!(1000099.9));
    assert_eq!(held(&e, ALICE, btc()), dec!(0));
    assert_eq!(avail(&e, FEES, usd()), dec!(0.3));
}

#[test]
fn a_larger_order_walks_the_book_in_price_then_time_order() {
    let mut e = funded();
    let a1 = rest(&mut e, limit(ALICE, Side::Sell, "101", "1"));
    let a2 = rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    let a3 = rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    let ev = place(&mut e, limit(BOB, Side::Buy, "101", "2.5")).unwrap();
    let makers: Vec<_> = trades(&ev)
        .iter()
        .map(|t| (t.maker_order_id, t.quantity.value()))
        .collect();
    assert_eq!(makers, vec![(a2, dec!(1)), (a3, dec!(1)), (a1, dec!(0.5))]);
    assert_eq!(e.order(a1).unwrap().remaining, dec!(0.5));
    assert!(e.order(a2).is_none());
}

#[test]
fn a_partially_filled_gtc_order_rests_with_its_remainder() {
    let mut e = funded();
    rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    let ev = place(&mut e, limit(BOB, Side::Buy, "100", "3")).unwrap();
    let id = match &ev[0].kind {
        EventKind::OrderAccepted { order } => order.id,
        _ => unreachable!(),
    };
    let o = e.order(id).unwrap();
    assert_eq!((o.remaining, o.filled), (dec!(2), dec!(1)));
    assert_eq!(o.hold, dec!(200.4));
    assert_eq!(held(&e, BOB, usd()), dec!(200.4));
    let d = e.depth(&btc_usd(), 5).unwrap();
    assert_eq!(d.bids.len(), 1);
    assert_eq!(d.bids[0].quantity.value(), dec!(2));
    assert_eq!(d.seq, e.last_seq());
}

#[test]
fn an_ioc_remainder_expires_and_releases_its_hold() {
    let mut e = funded();
    rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    let o = NewOrder {
        time_in_force: TimeInForce::Ioc,
        ..limit(BOB, Side::Buy, "100", "3")
    };
    let ev = place(&mut e, o).unwrap();
    assert_eq!(trades(&ev).len(), 1);
    assert_eq!(closes(&ev)[1].1, CloseReason::Expired);
    assert_eq!(held(&e, BOB, usd()), dec!(0));
    assert_eq!(e.open_order_count(), 0);
}

#[test]
fn a_fok_order_that_cannot_fill_completely_is_rejected_without_side_effects() {
    let mut e = funded();
    rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    let before = e.snapshot();
    let o = NewOrder {
        time_in_force: TimeInForce::Fok,
        ..limit(BOB, Side::Buy, "100", "2")
    };
    assert_eq!(place(&mut e, o), Err(Reject::FokCannotFill));
    assert_eq!(e.snapshot(), before);
}

#[test]
fn a_fok_order_that_can_fill_fills_completely() {
    let mut e = funded();
    rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    rest(&mut e, limit(ALICE, Side::Sell, "101", "1"));
    let o = NewOrder {
        time_in_force: TimeInForce::Fok,
        ..limit(BOB, Side::Buy, "101", "2")
    };
    let ev = place(&mut e, o).unwrap();
    assert_eq!(trades(&ev).len(), 2);
    assert_eq!(closes(&ev).last().unwrap().1, CloseReason::Filled);
}

#[test]
fn a_post_only_order_that_would_cross_is_rejected() {
    let mut e = funded();
    rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    let o = NewOrder {
        post_only: true,
        ..limit(BOB, Side::Buy, "100", "1")
    };
    assert_eq!(place(&mut e, o), Err(Reject::PostOnlyWouldCross));
    let o = NewOrder {
        post_only: true,
        ..limit(BOB, Side::Buy, "99.99", "1")
    };
    assert!(place(&mut e, o).is_ok());
}

#[test]
fn a_market_buy_spends_at_most_the_available_quote_and_releases_the_rest() {
    let mut e = Engine::new(config());
    e.apply(Command::deposit(BOB, usd(), dec!(150.3)), 1)
        .unwrap();
    e.apply(Command::deposit(ALICE, btc(), dec!(5)), 1).unwrap();
    rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    let ev = place(&mut e, market_order(BOB, Side::Buy, "5")).unwrap();
    // 1 lot of 0.001 at 100 costs 0.1002 with fee: 150.3 buys 1.5 BTC (150.3 exactly).
    let bought: rust_decimal::Decimal = trades(&ev).iter().map(|t| t.quantity.value()).sum();
    assert_eq!(bought, dec!(1.5));
    assert_eq!(closes(&ev).last().unwrap().1, CloseReason::Expired);
    assert_eq!(avail(&e, BOB, usd()), dec!(0));
    assert_eq!(held(&e, BOB, usd()), dec!(0));
    assert_eq!(avail(&e, BOB, btc()), dec!(1.5));
}

#[test]
fn a_market_buy_that_cannot_pay_for_one_lot_is_refused() {
    let mut e = Engine::new(config());
    for (account, asset, amount) in [(BOB, usd(), dec!(0.1)), (ALICE, btc(), dec!(1))] {
        let deposit = Command::deposit(account, asset, amount);
        e.apply(deposit, 1).unwrap();
    }
    rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    // One lot of 0.001 at 100 costs 0.1 plus the taker fee: 0.1 is short.
    let seq = e.last_seq();
    let r = place(&mut e, market_order(BOB, Side::Buy, "1"));
    assert_eq!(r, Err(Reject::InsufficientFunds));
    assert_eq!(e.last_seq(), seq, "a rejection consumes no sequence number");
    assert_eq!(avail(&e, BOB, usd()), dec!(0.1));
}

#[test]
fn a_market_sell_into_an_empty_book_expires_unfilled() {
    let mut e = funded();
    let ev = place(&mut e, market_order(ALICE, Side::Sell, "1")).unwrap();
    assert_eq!(closes(&ev)[0].1, CloseReason::Expired);
    assert_eq!(held(&e, ALICE, btc()), dec!(0));
    assert_eq!(avail(&e, ALICE, btc()), dec!(100));
}

#[test]
fn invalid_orders_are_typed_rejections() {
    let mut e = funded();
    let cases = [
        (
            limit(ALICE, Side::Buy, "100.001", "1"),
            Reject::PriceOffTick,
        ),
        (
            limit(ALICE, Side::Buy, "100", "1.0001"),
            Reject::QuantityOffLot,
        ),
        (
            limit(ALICE, Side::Buy, "100", "101"),
            Reject::AboveMaxQuantity,
        ),
        (
            limit(ALICE, Side::Buy, "1", "0.5"),
            Reject::BelowMinNotional,
        ),
        (
            limit(ALICE, Side::Buy, "10000000", "1"),
            Reject::InsufficientFunds,
        ),
        (
            limit(ALICE, Side::Sell, "100", "100.001"),
            Reject::AboveMaxQuantity,
        ),
        (
            NewOrder {
                price: None,
                ..limit(ALICE, Side::Buy, "1", "1")
            },
            Reject::MissingPrice,
        ),
        (
            NewOrder {
                price: Some(Price::parse("1").unwrap()),
                ..market_order(ALICE, Side::Buy, "1")
            },
            Reject::PriceNotAllowed,
        ),
        (
            NewOrder {
                market: MarketId::parse("ETH-USD").unwrap(),
                ..limit(ALICE, Side::Buy, "1", "1")
            },
            Reject::UnknownMarket,
        ),
        (
            NewOrder {
                post_only: true,
                ..market_order(ALICE, Side::Buy, "1")
            },
            Reject::PostOnlyNotAllowed,
        ),
    ];
    for (order, want) in cases {
        let before = e.last_seq();
        assert_eq!(place(&mut e, order.clone()), Err(want), "{order:?}");
        assert_eq!(e.last_seq(), before);
    }
    let tiny = Market {
        min_quantity: dec!(0.01),
        ..market()
    };
    let mut e = Engine::new(EngineConfig {
        markets: vec![tiny],
        fee_account: FEES,
    });
    assert_eq!(
        place(&mut e, limit(ALICE, Side::Buy, "100", "0.005")),
        Err(Reject::BelowMinQuantity)
    );
}

#[test]
fn an_order_that_would_first_meet_its_own_account_is_rejected_as_self_trade() {
    let mut e = funded();
    rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    assert_eq!(
        place(&mut e, limit(ALICE, Side::Buy, "100", "1")),
        Err(Reject::SelfTrade)
    );
}

#[test]
fn cancel_taker_stops_matching_at_the_accounts_own_order() {
    let mut e = funded();
    rest(&mut e, limit(BOB, Side::Sell, "100", "1"));
    let own = rest(&mut e, limit(ALICE, Side::Sell, "101", "1"));
    let ev = place(&mut e, limit(ALICE, Side::Buy, "101", "2")).unwrap();
    assert_eq!(trades(&ev).len(), 1);
    assert_eq!(
        closes(&ev).last().unwrap().1,
        CloseReason::SelfTradePrevented
    );
    assert!(e.order(own).is_some());
    assert_eq!(held(&e, ALICE, usd()), dec!(0));
}

#[test]
fn cancel_maker_removes_the_own_resting_order_and_keeps_matching() {
    let mut e = funded();
    let own = rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    rest(&mut e, limit(BOB, Side::Sell, "100", "1"));
    let o = NewOrder {
        stp: SelfTradePrevention::CancelMaker,
        ..limit(ALICE, Side::Buy, "100", "1")
    };
    let ev = place(&mut e, o).unwrap();
    assert!(closes(&ev).contains(&(own, CloseReason::SelfTradePrevented)));
    assert_eq!(trades(&ev).len(), 1);
    assert_eq!(trades(&ev)[0].maker_account, BOB);
    assert_eq!(held(&e, ALICE, btc()), dec!(0));
}

#[test]
fn cancel_both_removes_the_resting_and_the_incoming_order() {
    let mut e = funded();
    let own = rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    let o = NewOrder {
        stp: SelfTradePrevention::CancelBoth,
        ..limit(ALICE, Side::Buy, "100", "1")
    };
    let ev = place(&mut e, o).unwrap();
    let c = closes(&ev);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0], (own, CloseReason::SelfTradePrevented));
    assert_eq!(c[1].1, CloseReason::SelfTradePrevented);
    assert_eq!(e.open_order_count(), 0);
}

#[test]
fn sequence_numbers_are_global_and_gap_free() {
    let mut e = funded();
    let start = e.last_seq();
    rest(&mut e, limit(ALICE, Side::Sell, "100", "1"));
    let _ = place(&mut e, limit(ALICE, Side::Buy, "1", "0.001"));
    let ev = place(&mut e, limit(BOB, Side::Buy, "100", "1")).unwrap();
    let seqs: Vec<u64> = ev.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (start + 2..start + 2 + seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
}

#[test]
fn room_reserved_for_resting_orders_changes_nothing_but_the_room() {
    let (mut plain, mut roomy) = (funded(), funded());
    roomy.reserve_resting(4_096);
    assert!(roomy.books.iter().all(|b| b.room() >= 4_096));
    for i in 0..300u32 {
        let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
        let price = if i % 2 == 0 { 90 + i % 7 } else { 95 + i % 7 };
        let order = limit(
            if i % 3 == 0 { ALICE } else { BOB },
            side,
            &price.to_string(),
            "1",
        );
        assert_eq!(place(&mut plain, order.clone()), place(&mut roomy, order));
    }
    assert_eq!(plain.open_orders(), roomy.open_orders());
    assert!(roomy.open_order_count() > 0);
    assert!(
        roomy.books.iter().all(|b| b.room() >= 4_096),
        "never shrunk"
    );
}
