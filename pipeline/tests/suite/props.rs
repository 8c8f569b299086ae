//! Property tests: random command streams, invariants after every command.

use pipeline::*;
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::invariants::{ACCOUNTS, Model, btc, check, config, usd};

/// A command before ids are resolved against the engine's open orders.
#[derive(Debug, Clone)]
pub enum Op {
    Place {
        account: u64,
        buy: bool,
        market: bool,
        ticks: u32,
        lots: u32,
        tif: u8,
        post_only: bool,
        stp: u8,
    },
    Cancel {
        pick: usize,
        wrong_owner: bool,
    },
    Replace {
        pick: usize,
        ticks: Option<u32>,
        lots: Option<u32>,
    },
    Deposit {
        account: u64,
        base: bool,
        cents: u32,
    },
    Withdraw {
        account: u64,
        base: bool,
        cents: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let account = 0..=ACCOUNTS;
    prop_oneof![
        6 => (1..=ACCOUNTS, any::<bool>(), prop::bool::weighted(0.1), 190u32..210, 1u32..300, 0u8..3, prop::bool::weighted(0.15), 0u8..3)
            .prop_map(|(account, buy, market, ticks, lots, tif, post_only, stp)| Op::Place { account, buy, market, ticks, lots, tif, post_only, stp }),
        2 => (any::<usize>(), prop::bool::weighted(0.1)).prop_map(|(pick, wrong_owner)| Op::Cancel { pick, wrong_owner }),
        3 => (any::<usize>(), prop::option::of(190u32..210), prop::option::of(1u32..600))
            .prop_map(|(pick, ticks, lots)| Op::Replace { pick, ticks, lots }),
        2 => (account.clone(), any::<bool>(), 1u32..5_000_000).prop_map(|(account, base, cents)| Op::Deposit { account, base, cents }),
        1 => (account, any::<bool>(), 1u32..1_000_000).prop_map(|(account, base, cents)| Op::Withdraw { account, base, cents }),
    ]
}

/// Turns an op into a command, picking existing orders from the engine.
pub fn resolve(e: &Engine, op: &Op) -> Command {
    let asset = |base: bool| if base { btc() } else { usd() };
    let amount = |cents: u32, base: bool| Decimal::new(i64::from(cents), if base { 4 } else { 2 });
    let lots = |l: u32| Quantity::new(Decimal::new(i64::from(l), 2)).unwrap();
    let price = |t: u32| Price::new(Decimal::new(i64::from(t) * 5, 1)).unwrap();
    let pick = |p: usize| {
        e.open_orders()
            .get(p % e.open_order_count().max(1))
            .map(|o| (o.id, o.account))
    };
    match op.clone() {
        Op::Place {
            account,
            buy,
            market,
            ticks,
            lots: l,
            tif,
            post_only,
            stp,
        } => Command::Place(NewOrder {
            account: AccountId(account),
            client_order_id: None,
            market: MarketId::parse("BTC-USD").unwrap(),
            side: if buy { Side::Buy } else { Side::Sell },
            order_type: if market {
                OrderType::Market
            } else {
                OrderType::Limit
            },
            price: (!market).then(|| price(ticks)),
            quantity: lots(l),
            time_in_force: [TimeInForce::Gtc, TimeInForce::Ioc, TimeInForce::Fok][usize::from(tif)],
            post_only,
            stp: [
                SelfTradePrevention::CancelTaker,
                SelfTradePrevention::CancelMaker,
                SelfTradePrevention::CancelBoth,
            ][usize::from(stp)],
        }),
        Op::Cancel {
            pick: p,
            wrong_owner,
        } => {
            let (order_id, account) = pick(p).unwrap_or((OrderId(p as u64 % 50), AccountId(1)));
            let account = if wrong_owner {
                AccountId(account.0 % ACCOUNTS + 1)
            } else {
                account
            };
            Command::Cancel { account, order_id }
        }
        Op::Replace {
            pick: p,
            ticks,
            lots: l,
        } => {
            let (order_id, account) = pick(p).unwrap_or((OrderId(p as u64 % 50), AccountId(1)));
            Command::Replace {
                account,
                order_id,
                price: ticks.map(price),
                quantity: l.map(lots),
            }
        }
        Op::Deposit {
            account,
            base,
            cents,
        } => Command::deposit(AccountId(account), asset(base), amount(cents, base)),
        Op::Withdraw {
            account,
            base,
            cents,
        } => Command::withdraw(AccountId(account), asset(base), amount(cents, base)),
    }
}

pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..200)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_every_command(ops in ops()) {
        let mut e = Engine::new(config());
        let mut model = Model::default();
        for (i, op) in ops.iter().enumerate() {
            let cmd = resolve(&e, op);
            let before = e.snapshot();
            match e.apply(cmd, i as u64) {
                Ok(events) => {
                    prop_assert!(!events.is_empty());
                    model.observe(&events);
                }
                Err(_) => prop_assert_eq!(&e.snapshot(), &before, "a rejection changes nothing"),
            }
            check(&e, &model);
        }
    }
}
