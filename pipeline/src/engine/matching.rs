//! Price-time matching and trade settlement.

use crate::book::Node;
use crate::event::{CloseReason, Event, EventKind, Trade};
use crate::spec::{fee, units_to_decimal};
use crate::types::ids::TradeId;
use crate::types::order::{OrderType, SelfTradePrevention, Side};

use super::Engine;

impl Engine {
    /// What one lot at `ticks` costs a market buyer, fee included (rounded up, so
    /// `k × cost ≥` the real cost of `k` lots). `None` when beyond any balance.
    fn lot_cost(&self, m: usize, ticks: u64) -> Option<i128> {
        let spec = &self.specs[m];
        let n = spec.notional(ticks, 1)?;
        n.checked_add(fee(n, spec.market.taker_fee_bps))
    }

    /// How many of `lots` a market buy with `budget` can pay for at `ticks`.
    pub(super) fn affordable(&self, m: usize, ticks: u64, lots: u64, budget: i128) -> u64 {
        match self.lot_cost(m, ticks) {
            Some(c) if c > 0 => lots.min(u64::try_from(budget / c).unwrap_or(u64::MAX)),
            _ => 0,
        }
    }

    /// Whether a fill-or-kill order would fill completely, honouring self-trade
    /// prevention and a market buy's budget. Reads only.
    pub(super) fn fok_fillable(&self, m: usize, taker: &Node) -> bool {
        let book = &self.books[m];
        let spec = &self.specs[m];
        let market_buy = taker.order_type == OrderType::Market && taker.side == Side::Buy;
        let (mut need, mut budget) = (taker.lots, taker.hold);
        for (ticks, level) in book.levels(taker.side.opposite()) {
            if !taker.crosses(ticks) {
                return false;
            }
            for (_, maker) in book.queue(level) {
                if maker.account == taker.account {
                    if taker.stp == SelfTradePrevention::CancelMaker {
                        continue;
                    }
                    return false;
                }
                let mut k = need.min(maker.lots);
                if market_buy {
                    k = self.affordable(m, ticks, k, budget);
                    if k == 0 {
                        return false;
                    }
                    let n = spec.notional(ticks, k).unwrap_or(i128::MAX);
                    budget -= n + fee(n, spec.market.taker_fee_bps);
                }
                need -= k;
                if need == 0 {
                    return true;
                }
            }
        }
        false
    }

    /// Matches `taker` against the opposite side until it is filled, stops crossing,
    /// runs out of budget or meets its own account. Returns whether self-trade
    /// prevention cancelled the taker.
    pub(super) fn match_taker(
        &mut self,
        m: usize,
        taker: &mut Node,
        ts: u64,
        out: &mut Vec<Event>,
    ) -> bool {
        let market_buy = taker.order_type == OrderType::Market && taker.side == Side::Buy;
        while taker.lots > 0 {
            let Some((ticks, slot)) = self.books[m].best_head(taker.side.opposite()) else {
                break;
            };
            if !taker.crosses(ticks) {
                break;
            }
            let maker = self.books[m].node(slot);
            let (maker_account, maker_lots) = (maker.account, maker.lots);
            if maker_account == taker.account {
                match taker.stp {
                    SelfTradePrevention::CancelTaker => return true,
                    SelfTradePrevention::CancelMaker => {
                        self.close_resting(m, slot, CloseReason::SelfTradePrevented, ts, out);
                        continue;
                    }
                    SelfTradePrevention::CancelBoth => {
                        self.close_resting(m, slot, CloseReason::SelfTradePrevented, ts, out);
                        return true;
                    }
                }
            }
            let mut lots = taker.lots.min(maker_lots);
            if market_buy {
                lots = self.affordable(m, ticks, lots, taker.hold);
                if lots == 0 {
                    break;
                }
            }
            self.trade(m, taker, slot, ticks, lots, ts, out);
        }
        false
    }

    /// The hold an order needs for `lots` open lots.
    fn need(&self, m: usize, n: &Node, lots: u64) -> i128 {
        let spec = &self.specs[m];
        match n.side {
            // A resting buy's hold never exceeded a balance, so neither does a part of it.
            Side::Buy => spec.buy_hold(n.ticks, lots).unwrap_or(0),
            Side::Sell => spec.base_units(lots),
        }
    }

    /// Settles `lots` between `taker` and the maker in `slot` at the maker's price.
    #[allow(clippy::too_many_arguments)]
    fn trade(
        &mut self,
        m: usize,
        taker: &mut Node,
        slot: u32,
        ticks: u64,
        lots: u64,
        ts: u64,
        out: &mut Vec<Event>,
    ) {
        let spec = &self.specs[m];
        let (base, quote) = (spec.base, spec.quote);
        // Bounded by the buyer's hold, which fits in a balance.
        let notional = spec.notional(ticks, lots).unwrap_or(0);
        let maker_fee = fee(notional, spec.market.maker_fee_bps);
        let taker_fee = fee(notional, spec.market.taker_fee_bps);
        let base_units = spec.base_units(lots);

        let maker = self.books[m].node(slot);
        let (maker_id, maker_account, maker_left) = (maker.id, maker.account, maker.lots - lots);
        let maker_hold_before = maker.hold;
        let maker_hold = self.need(m, maker, maker_left);
        let taker_hold = if taker.order_type == OrderType::Market && taker.side == Side::Buy {
            taker.hold - notional - taker_fee
        } else {
            self.need(m, taker, taker.lots - lots)
        };
        let (buyer, seller, buyer_fee, seller_fee, buyer_used) = match taker.side {
            Side::Buy => (
                taker.account,
                maker_account,
                taker_fee,
                maker_fee,
                taker.hold - taker_hold,
            ),
            Side::Sell => (
                maker_account,
                taker.account,
                maker_fee,
                taker_fee,
                maker_hold_before - maker_hold,
            ),
        };
        let fees = self.config.fee_account;
        self.ledger.pay_held(buyer, seller, quote, notional);
        self.ledger.pay_held(buyer, fees, quote, buyer_fee);
        self.ledger
            .release(buyer, quote, buyer_used - notional - buyer_fee);
        self.ledger.pay_held(seller, buyer, base, base_units);
        self.ledger.transfer(seller, fees, quote, seller_fee);

        taker.lots -= lots;
        taker.filled += lots;
        taker.hold = taker_hold;
        self.books[m].set_lots(slot, maker_left);
        let maker = self.books[m].node_mut(slot);
        maker.filled += lots;
        maker.hold = maker_hold;
        let maker_filled = maker.filled;

        let spec = &self.specs[m];
        let trade = Trade {
            trade_id: TradeId(self.next_trade_id),
            market: spec.market.id,
            price: spec.price(ticks),
            quantity: spec.quantity(u128::from(lots)),
            maker_order_id: maker_id,
            maker_account,
            taker_order_id: taker.id,
            taker_account: taker.account,
            taker_side: taker.side,
            quote_amount: units_to_decimal(notional, spec.quote_scale),
            maker_fee: units_to_decimal(maker_fee, spec.quote_scale),
            taker_fee: units_to_decimal(taker_fee, spec.quote_scale),
            maker_filled: spec.qty_decimal(u128::from(maker_filled)),
            maker_remaining: spec.qty_decimal(u128::from(maker_left)),
            taker_filled: spec.qty_decimal(u128::from(taker.filled)),
            taker_remaining: spec.qty_decimal(u128::from(taker.lots)),
        };
        self.next_trade_id += 1;
        self.emit(out, ts, EventKind::Trade(trade));
        if maker_left == 0 {
            self.close_resting(m, slot, CloseReason::Filled, ts, out);
        }
    }
}
