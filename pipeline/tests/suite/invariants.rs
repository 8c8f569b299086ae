//! A model built from the event stream, and the invariants checked after every command.

use std::collections::BTreeMap;

use pipeline::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

pub const FEES: AccountId = AccountId(0);
pub const ACCOUNTS: u64 = 4;

pub fn btc() -> Asset {
    Asset::parse("BTC").unwrap()
}
pub fn usd() -> Asset {
    Asset::parse("USD").unwrap()
}

/// Coarse ticks and few price points so random orders cross often; odd fees.
pub fn config() -> EngineConfig {
    let market = Market {
        id: MarketId::parse("BTC-USD").unwrap(),
        base: btc(),
        quote: usd(),
        tick_size: dec!(0.5),
        lot_size: dec!(0.01),
        min_quantity: dec!(0.01),
        max_quantity: dec!(5),
        min_notional: dec!(0),
        maker_fee_bps: 7,
        taker_fee_bps: 13,
    };
    EngineConfig {
        markets: vec![market],
        fee_account: FEES,
    }
}

/// What the events say should be true.
#[derive(Default, Debug)]
pub struct Model {
    /// Open quantity per open order.
    pub open: BTreeMap<OrderId, Decimal>,
    pub placed: Decimal,
    pub filled: Decimal,
    pub cancelled: Decimal,
    /// Deposits − withdrawals per asset.
    pub supply: BTreeMap<Asset, Decimal>,
    pub last_seq: u64,
}

impl Model {
    pub fn observe(&mut self, events: &[Event]) {
        for ev in events {
            assert_eq!(ev.seq, self.last_seq + 1, "sequence numbers are gap-free");
            self.last_seq = ev.seq;
            match &ev.kind {
                EventKind::OrderAccepted { order } => {
                    self.placed += order.quantity.value();
                    self.open.insert(order.id, order.quantity.value());
                }
                EventKind::Trade(t) => {
                    let q = t.quantity.value();
                    *self.open.get_mut(&t.maker_order_id).unwrap() -= q;
                    *self.open.get_mut(&t.taker_order_id).unwrap() -= q;
                    self.filled += q + q;
                }
                EventKind::OrderReplaced {
                    order_id, quantity, ..
                } => {
                    let old = self.open.insert(*order_id, quantity.value()).unwrap();
                    let delta = quantity.value() - old;
                    if delta > Decimal::ZERO {
                        self.placed += delta;
                    } else {
                        self.cancelled -= delta;
                    }
                }
                EventKind::OrderClosed {
                    order_id, reason, ..
                } => {
                    let left = self.open.remove(order_id).unwrap();
                    if *reason == CloseReason::Filled {
                        assert_eq!(left, Decimal::ZERO, "a filled order has nothing left");
                    }
                    self.cancelled += left;
                }
                EventKind::Deposited { asset, amount, .. } => {
                    *self.supply.entry(*asset).or_default() += amount
                }
                EventKind::Withdrawn { asset, amount, .. } => {
                    *self.supply.entry(*asset).or_default() -= amount
                }
            }
        }
    }
}

/// Every invariant of the issue, checked against the engine's state.
pub fn check(e: &Engine, model: &Model) {
    assert_eq!(e.last_seq(), model.last_seq);
    // The book is never crossed.
    let depth = e
        .depth(&MarketId::parse("BTC-USD").unwrap(), usize::MAX)
        .unwrap();
    if let (Some(b), Some(a)) = (depth.bids.first(), depth.asks.first()) {
        assert!(b.price < a.price, "crossed book: {b:?} >= {a:?}");
    }
    // Quantity is conserved: placed = filled + open + cancelled (a trade fills two orders).
    let orders = e.open_orders();
    let open: Decimal = orders.iter().map(|o| o.remaining).sum();
    assert_eq!(model.placed, model.filled + open + model.cancelled);
    assert_eq!(orders.len(), model.open.len());
    for o in &orders {
        assert_eq!(
            model.open.get(&o.id),
            Some(&o.remaining),
            "order {:?}",
            o.id
        );
    }
    // Holds equal exactly what open orders need; no balance is negative; funds conserved.
    let mut need: BTreeMap<(AccountId, Asset), Decimal> = BTreeMap::new();
    for o in &orders {
        let price = o.price.unwrap().value();
        let expected = match o.side {
            Side::Buy => price * o.remaining * dec!(1.0013),
            Side::Sell => o.remaining,
        };
        assert_eq!(o.hold, expected, "hold of {:?}", o.id);
        *need.entry((o.account, o.hold_asset)).or_default() += o.hold;
    }
    for asset in [btc(), usd()] {
        let mut total = Decimal::ZERO;
        for a in 0..=ACCOUNTS {
            let b = e.balance(AccountId(a), &asset);
            assert!(
                b.available >= Decimal::ZERO && b.held >= Decimal::ZERO,
                "negative {b:?}"
            );
            assert_eq!(
                b.held,
                need.get(&(AccountId(a), asset))
                    .copied()
                    .unwrap_or_default()
            );
            total += b.available + b.held;
        }
        assert_eq!(
            total,
            model.supply.get(&asset).copied().unwrap_or_default(),
            "{asset} supply"
        );
        assert_eq!(total, e.total_supply(&asset));
    }
}
