//! Matching-engine throughput and latency, exchange-core style.
//!
//! One market, 1,000 funded accounts, risk checks included (every order takes a
//! hold). Two mixes: exchange-core's (≈9% GTC, ≈3% IOC, ≈6% cancel, ≈82% move) and
//! one with 50% aggressive orders. Commands are generated outside the timed region;
//! each `apply` is timed alone. Run with
//! `cargo bench -p pipeline --bench matching`.

use std::collections::HashMap;
use std::time::Instant;

use hdrhistogram::Histogram;
use pipeline::*;
use rust_decimal::Decimal;

const ACCOUNTS: u64 = 1_000;
const MID: i64 = 10_000; // ticks of 0.01
const WARMUP: usize = 200_000;
const OPS: usize = 3_000_000;

/// A tiny deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Op {
    Gtc,
    Ioc,
    Cancel,
    Move,
}

/// Percentages of (aggressive, passive GTC, cancel, move); aggressive orders are IOC.
struct Mix {
    name: &'static str,
    aggressive: u64,
    gtc: u64,
    cancel: u64,
}

fn market() -> Market {
    Market {
        id: MarketId::parse("BTC-USD").unwrap(),
        base: Asset::parse("BTC").unwrap(),
        quote: Asset::parse("USD").unwrap(),
        tick_size: Decimal::new(1, 2),
        lot_size: Decimal::new(1, 3),
        min_quantity: Decimal::new(1, 3),
        max_quantity: Decimal::new(1000, 0),
        min_notional: Decimal::ZERO,
        maker_fee_bps: 10,
        taker_fee_bps: 20,
    }
}

/// Open orders the generator may cancel or move, with O(1) removal.
#[derive(Default)]
struct Live {
    ids: Vec<(OrderId, AccountId, Side)>,
    pos: HashMap<OrderId, usize>,
}

impl Live {
    fn add(&mut self, id: OrderId, account: AccountId, side: Side) {
        self.pos.insert(id, self.ids.len());
        self.ids.push((id, account, side));
    }
    fn remove(&mut self, id: OrderId) {
        if let Some(i) = self.pos.remove(&id) {
            self.ids.swap_remove(i);
            if let Some(moved) = self.ids.get(i) {
                self.pos.insert(moved.0, i);
            }
        }
    }
    fn observe(&mut self, events: &[Event]) {
        for e in events {
            match &e.kind {
                EventKind::OrderAccepted { order } if order.time_in_force == TimeInForce::Gtc => {
                    self.add(order.id, order.account, order.side)
                }
                EventKind::OrderClosed { order_id, .. } => self.remove(*order_id),
                _ => {}
            }
        }
    }
}

fn price(ticks: i64) -> Price {
    Price::new(Decimal::new(ticks.max(1), 2)).unwrap()
}

fn qty(lots: u64) -> Quantity {
    Quantity::new(Decimal::new(lots as i64, 3)).unwrap()
}

fn order(rng: &mut Rng, side: Side, ticks: i64, tif: TimeInForce) -> Command {
    Command::Place(NewOrder {
        account: AccountId(1 + rng.below(ACCOUNTS)),
        client_order_id: None,
        market: MarketId::parse("BTC-USD").unwrap(),
        side,
        order_type: OrderType::Limit,
        price: Some(price(ticks)),
        quantity: qty(1 + rng.below(100)),
        time_in_force: tif,
        post_only: false,
        stp: SelfTradePrevention::CancelMaker,
    })
}

/// A passive price on `side`: 1..=50 ticks away from the mid.
fn passive(rng: &mut Rng, side: Side) -> i64 {
    let off = 1 + rng.below(50) as i64;
    if side == Side::Buy {
        MID - off
    } else {
        MID + off
    }
}

fn next_command(rng: &mut Rng, mix: &Mix, live: &Live) -> (Op, Command) {
    let r = rng.below(100);
    let side = if rng.below(2) == 0 {
        Side::Buy
    } else {
        Side::Sell
    };
    if r < mix.aggressive || live.ids.is_empty() {
        // Crosses the spread by up to 5 ticks.
        let off = rng.below(6) as i64;
        let t = if side == Side::Buy {
            MID + off
        } else {
            MID - off
        };
        return (Op::Ioc, order(rng, side, t, TimeInForce::Ioc));
    }
    if r < mix.aggressive + mix.gtc {
        let t = passive(rng, side);
        return (Op::Gtc, order(rng, side, t, TimeInForce::Gtc));
    }
    let (id, account, side) = live.ids[rng.below(live.ids.len() as u64) as usize];
    if r < mix.aggressive + mix.gtc + mix.cancel {
        return (
            Op::Cancel,
            Command::Cancel {
                account,
                order_id: id,
            },
        );
    }
    let t = passive(rng, side);
    (
        Op::Move,
        Command::Replace {
            account,
            order_id: id,
            price: Some(price(t)),
            quantity: None,
        },
    )
}

fn run(mix: &Mix) {
    let config = EngineConfig {
        markets: vec![market()],
        fee_account: AccountId(0),
    };
    let mut engine = Engine::new(config);
    for a in 1..=ACCOUNTS {
        for (asset, amount) in [("USD", 1_000_000_000i64), ("BTC", 10_000_000)] {
            let asset = Asset::parse(asset).unwrap();
            let cmd = Command::deposit(AccountId(a), asset, Decimal::from(amount));
            engine.apply(cmd, 0).unwrap();
        }
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut live = Live::default();
    // Seed the book with resting orders on both sides.
    for i in 0..2_000 {
        let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
        let t = passive(&mut rng, side);
        let events = engine
            .apply(order(&mut rng, side, t, TimeInForce::Gtc), 0)
            .unwrap();
        live.observe(&events);
    }
    let mut hist: HashMap<Op, Histogram<u64>> = HashMap::new();
    let (mut busy_ns, mut rejects, mut trades, mut events_out) = (0u128, 0u64, 0u64, 0u64);
    let wall = Instant::now();
    for i in 0..WARMUP + OPS {
        let (op, cmd) = next_command(&mut rng, mix, &live);
        let start = Instant::now();
        let result = engine.apply(cmd, i as u64);
        let ns = start.elapsed().as_nanos();
        match result {
            Ok(events) => {
                live.observe(&events);
                if i >= WARMUP {
                    events_out += events.len() as u64;
                    trades += events
                        .iter()
                        .filter(|e| matches!(e.kind, EventKind::Trade(_)))
                        .count() as u64;
                }
            }
            Err(_) => rejects += 1,
        }
        if i >= WARMUP {
            busy_ns += ns;
            let h = hist
                .entry(op)
                .or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap());
            h.saturating_record(ns.max(1) as u64);
        }
    }
    let wall = wall.elapsed();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    println!(
        "\n== {} ({} ops after {} warm-up) ==",
        mix.name, OPS, WARMUP
    );
    println!(
        "throughput: {} ops/s in apply ({} ops/s wall incl. generation); {} trades, {} events, {} rejects, {} open orders at end",
        OPS as u128 * 1_000_000_000 / busy_ns.max(1),
        (WARMUP + OPS) as u128 * 1_000_000_000 / wall.as_nanos().max(1),
        trades,
        events_out,
        rejects,
        engine.open_order_count()
    );
    println!(
        "{:<8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "op", "share", "p50 ns", "p99 ns", "p99.9 ns", "max ns", "mean ns"
    );
    for op in [Op::Gtc, Op::Ioc, Op::Cancel, Op::Move] {
        if let Some(h) = hist.get(&op) {
            all.add(h).unwrap();
            print_row(&format!("{op:?}"), h, OPS);
        }
    }
    print_row("all", &all, OPS);
}

fn print_row(name: &str, h: &Histogram<u64>, total: usize) {
    println!(
        "{:<8} {:>5}% {:>9} {:>9} {:>9} {:>9} {:>9.0}",
        name,
        h.len() * 100 / total as u64,
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.mean()
    );
}

fn main() {
    run(&Mix {
        name: "exchange-core mix: 9% GTC, 3% IOC, 6% cancel, 82% move",
        aggressive: 3,
        gtc: 9,
        cancel: 6,
    });
    run(&Mix {
        name: "aggressive mix: 50% IOC crossing, 25% GTC, 10% cancel, 15% move",
        aggressive: 50,
        gtc: 25,
        cancel: 10,
    });
}
