//! Snapshots for crash recovery: the whole state as plain, serializable records.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::book::Node;
use crate::error::RestoreError;
use crate::event::OrderRecord;
use crate::risk::Units;
use crate::spec::{to_units, units_to_decimal};
use crate::types::ids::{AccountId, Asset};
use crate::types::order::{OrderType, Side};

use super::{Engine, EngineConfig};

/// One account's balance in one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceRecord {
    /// The account.
    pub account: AccountId,
    /// The asset.
    pub asset: Asset,
    /// Free funds.
    pub available: Decimal,
    /// Funds held by open orders.
    pub held: Decimal,
}

/// Everything needed to rebuild an engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineState {
    /// The last sequence number emitted.
    pub last_seq: u64,
    /// The id the next order gets.
    pub next_order_id: u64,
    /// The id the next trade gets.
    pub next_trade_id: u64,
    /// Open orders per market, bids then asks, each in priority order.
    pub orders: Vec<OrderRecord>,
    /// Every non-zero balance, by account then asset.
    pub balances: Vec<BalanceRecord>,
}

impl Engine {
    /// The whole state.
    pub fn snapshot(&self) -> EngineState {
        let balances = self
            .ledger
            .all()
            .into_iter()
            .map(|(account, i, u)| {
                let scale = self.assets[i].scale;
                BalanceRecord {
                    account,
                    asset: self.assets[i].asset,
                    available: units_to_decimal(u.available, scale),
                    held: units_to_decimal(u.held, scale),
                }
            })
            .collect();
        EngineState {
            last_seq: self.last_seq,
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            orders: self.open_orders(),
            balances,
        }
    }

    /// Rebuilds an engine from a snapshot, checking that it fits the configuration
    /// and that every held balance equals what the open orders hold.
    pub fn from_state(config: EngineConfig, state: EngineState) -> Result<Engine, RestoreError> {
        let mut e = Engine::try_new(config)?;
        for b in &state.balances {
            let bad = |problem| RestoreError::InvalidBalance {
                account: b.account.0,
                asset: b.asset.to_string(),
                problem,
            };
            let i = e
                .asset_index(&b.asset)
                .ok_or_else(|| bad("unknown asset"))?;
            let scale = e.assets[i].scale;
            let units = |d: Decimal| {
                to_units(d, 1, scale)
                    .ok()
                    .and_then(|u| i128::try_from(u).ok())
            };
            let (Some(available), Some(held)) = (units(b.available), units(b.held)) else {
                return Err(bad("negative or finer than the asset precision"));
            };
            e.ledger.set(b.account, i, Units { available, held });
        }
        let mut needed = vec![];
        for r in state.orders {
            if r.id.0 >= state.next_order_id {
                return Err(RestoreError::Counters);
            }
            let node = e.restore_order(&r)?;
            let m = e
                .market_index(&r.market)
                .map_err(|_| RestoreError::Counters)?;
            let (asset, _) = e.hold_asset(m, node.side);
            needed.push((node.account, asset, node.hold));
            let id = node.id;
            let slot = e.books[m].insert(node);
            if e.index.insert(id, (m as u32, slot)).is_some() {
                return Err(RestoreError::InvalidOrder {
                    order: id.0,
                    problem: "duplicate id".into(),
                });
            }
        }
        e.check_holds(needed)?;
        e.last_seq = state.last_seq;
        e.next_order_id = state.next_order_id;
        e.next_trade_id = state.next_trade_id;
        Ok(e)
    }

    /// Converts a saved open order back into a node, validating it.
    fn restore_order(&self, r: &OrderRecord) -> Result<Node, RestoreError> {
        let bad = |problem: String| RestoreError::InvalidOrder {
            order: r.id.0,
            problem,
        };
        let m = self
            .market_index(&r.market)
            .map_err(|e| bad(e.to_string()))?;
        let spec = &self.specs[m];
        let price = r
            .price
            .ok_or_else(|| bad("open order without a price".into()))?;
        if r.order_type != OrderType::Limit {
            return Err(bad("only limit orders rest".into()));
        }
        let ticks = spec.ticks(price).map_err(|e| bad(e.to_string()))?;
        let open = spec.whole_lots(r.remaining).filter(|l| *l > 0);
        let open = open.ok_or_else(|| bad("remaining is not a positive number of lots".into()))?;
        let filled = spec
            .whole_lots(r.filled)
            .ok_or_else(|| bad("filled is not whole lots".into()))?;
        let mut node = Node::new(
            r.id,
            r.account,
            r.client_order_id,
            r.side,
            r.order_type,
            ticks,
            open,
            r.time_in_force,
            r.post_only,
            r.stp,
            r.ts,
        );
        node.filled = filled;
        node.hold = match r.side {
            Side::Buy => spec
                .buy_hold(ticks, open)
                .ok_or_else(|| bad("hold out of range".into()))?,
            Side::Sell => spec.base_units(open),
        };
        let (_, scale) = self.hold_asset(m, r.side);
        if units_to_decimal(node.hold, scale) != r.hold {
            return Err(bad(format!(
                "hold {} differs from the {} the order needs",
                r.hold,
                units_to_decimal(node.hold, scale)
            )));
        }
        Ok(node)
    }

    /// Checks that held balances equal the sum of open orders' holds.
    fn check_holds(&self, needed: Vec<(AccountId, usize, i128)>) -> Result<(), RestoreError> {
        let mut sums: std::collections::BTreeMap<(AccountId, usize), i128> = Default::default();
        for (a, i, h) in needed {
            *sums.entry((a, i)).or_default() += h;
        }
        for (account, i, _) in self.ledger.all() {
            sums.entry((account, i)).or_default();
        }
        for ((account, i), need) in sums {
            let held = self.ledger.get(account, i).held;
            if held != need {
                let scale = self.assets[i].scale;
                return Err(RestoreError::HoldMismatch {
                    account: account.0,
                    asset: self.assets[i].asset.to_string(),
                    held: units_to_decimal(held, scale).to_string(),
                    needed: units_to_decimal(need, scale).to_string(),
                });
            }
        }
        Ok(())
    }
}
