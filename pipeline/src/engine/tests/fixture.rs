//! A BTC-USD market and helpers shared by the engine's unit tests.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use crate::*;

pub const FEES: AccountId = AccountId(0);
pub const ALICE: AccountId = AccountId(1);
pub const BOB: AccountId = AccountId(2);

pub fn btc() -> Asset {
    Asset::parse("BTC").unwrap()
}
pub fn usd() -> Asset {
    Asset::parse("USD").unwrap()
}
pub fn btc_usd() -> MarketId {
    MarketId::parse("BTC-USD").unwrap()
}

/// Tick 0.01, lot 0.001, 0.001..=100 BTC, min notional 1 USD, maker 10 bps, taker 20 bps.
pub fn market() -> Market {
    Market {
        id: btc_usd(),
        base: btc(),
        quote: usd(),
        tick_size: dec!(0.01),
        lot_size: dec!(0.001),
        min_quantity: dec!(0.001),
        max_quantity: dec!(100),
        min_notional: dec!(1),
        maker_fee_bps: 10,
        taker_fee_bps: 20,
    }
}

pub fn config() -> EngineConfig {
    EngineConfig {
        markets: vec![market()],
        fee_account: FEES,
    }
}

/// An engine where Alice and Bob each hold 1,000,000 USD and 100 BTC.
pub fn funded() -> Engine {
    let mut e = Engine::new(config());
    for a in [ALICE, BOB] {
        e.apply(Command::deposit(a, usd(), dec!(1000000)), 1)
            .unwrap();
        e.apply(Command::deposit(a, btc(), dec!(100)), 1).unwrap();
    }
    e
}

pub fn limit(account: AccountId, side: Side, price: &str, qty: &str) -> NewOrder {
    NewOrder {
        account,
        client_order_id: None,
        market: btc_usd(),
        side,
        order_type: OrderType::Limit,
        price: Some(Price::parse(price).unwrap()),
        quantity: Quantity::parse(qty).unwrap(),
        time_in_force: TimeInForce::Gtc,
        post_only: false,
        stp: SelfTradePrevention::CancelTaker,
    }
}

pub fn market_order(account: AccountId, side: Side, qty: &str) -> NewOrder {
    NewOrder {
        order_type: OrderType::Market,
        price: None,
        time_in_force: TimeInForce::Ioc,
        ..limit(account, side, "1", qty)
    }
}

pub fn place(e: &mut Engine, o: NewOrder) -> Result<Vec<Event>, Reject> {
    e.apply(Command::Place(o), 10)
}

/// Places and returns the new order's id.
pub fn rest(e: &mut Engine, o: NewOrder) -> OrderId {
    let events = place(e, o).unwrap();
    match &events[0].kind {
        EventKind::OrderAccepted { order } => order.id,
        other => panic!("expected OrderAccepted, got {other:?}"),
    }
}

pub fn trades(events: &[Event]) -> Vec<&Trade> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Trade(t) => Some(t),
            _ => None,
        })
        .collect()
}

pub fn closes(events: &[Event]) -> Vec<(OrderId, CloseReason)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::OrderClosed {
                order_id, reason, ..
            } => Some((*order_id, *reason)),
            _ => None,
        })
        .collect()
}

pub fn avail(e: &Engine, a: AccountId, asset: Asset) -> Decimal {
    e.balance(a, &asset).available
}

pub fn held(e: &Engine, a: AccountId, asset: Asset) -> Decimal {
    e.balance(a, &asset).held
}
