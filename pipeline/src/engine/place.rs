//! Placing a new order: validate, hold, match, then rest or close.

use crate::book::Node;
use crate::command::NewOrder;
use crate::error::Reject;
use crate::event::{CloseReason, Event, EventKind};
use crate::types::ids::OrderId;
use crate::types::order::{OrderType, SelfTradePrevention, Side, TimeInForce};

use super::Engine;

impl Engine {
    /// Handles `Command::Place`.
    pub(super) fn place(
        &mut self,
        o: NewOrder,
        ts: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let m = self.market_index(&o.market)?;
        let taker = self.check_new(m, &o, ts)?;
        // Every check passed: from here on nothing fails.
        self.next_order_id += 1;
        let (asset, _) = self.hold_asset(m, taker.side);
        self.ledger.hold(taker.account, asset, taker.hold);
        let order = self.record(m, &taker);
        self.emit(out, ts, EventKind::OrderAccepted { order });
        self.run_taker(m, taker, ts, out);
        Ok(())
    }

    /// Every check for a new order; returns the order ready to match.
    fn check_new(&self, m: usize, o: &NewOrder, ts: u64) -> Result<Node, Reject> {
        let spec = &self.specs[m];
        let ticks = match (o.order_type, o.price) {
            (OrderType::Limit, Some(p)) => spec.ticks(p)?,
            (OrderType::Limit, None) => return Err(Reject::MissingPrice),
            (OrderType::Market, Some(_)) => return Err(Reject::PriceNotAllowed),
            (OrderType::Market, None) => 0,
        };
        if o.post_only && (o.order_type == OrderType::Market || o.time_in_force != TimeInForce::Gtc)
        {
            return Err(Reject::PostOnlyNotAllowed);
        }
        let lots = spec.lots(o.quantity)?;
        if o.order_type == OrderType::Limit {
            spec.check_notional(ticks, lots)?;
        }
        let (asset, _) = self.hold_asset(m, o.side);
        let available = self.ledger.get(o.account, asset).available;
        let hold = match (o.side, o.order_type) {
            (Side::Buy, OrderType::Limit) => spec
                .buy_hold(ticks, lots)
                .ok_or(Reject::InsufficientFunds)?,
            (Side::Buy, OrderType::Market) => available,
            (Side::Sell, _) => spec.base_units(lots),
        };
        if hold > available || hold <= 0 {
            return Err(Reject::InsufficientFunds);
        }
        // A market buy that cannot pay for one lot at the best ask would
        // only expire unfilled: refuse it, as a limit order short of funds is.
        if o.side == Side::Buy
            && o.order_type == OrderType::Market
            && let Some((best, _)) = self.books[m].best_head(Side::Sell)
            && self.affordable(m, best, 1, hold) == 0
        {
            return Err(Reject::InsufficientFunds);
        }
        let mut taker = Node::new(
            OrderId(self.next_order_id),
            o.account,
            o.client_order_id,
            o.side,
            o.order_type,
            ticks,
            lots,
            o.time_in_force,
            o.post_only,
            o.stp,
            ts,
        );
        taker.hold = hold;
        self.check_crossing(m, &taker)?;
        if o.time_in_force == TimeInForce::Fok && !self.fok_fillable(m, &taker) {
            return Err(Reject::FokCannotFill);
        }
        Ok(taker)
    }

    /// Post-only and immediate self-trade checks for an order about to match.
    pub(super) fn check_crossing(&self, m: usize, taker: &Node) -> Result<(), Reject> {
        let book = &self.books[m];
        let Some((ticks, head)) = book.best_head(taker.side.opposite()) else {
            return Ok(());
        };
        if !taker.crosses(ticks) {
            return Ok(());
        }
        if taker.post_only {
            return Err(Reject::PostOnlyWouldCross);
        }
        if taker.stp == SelfTradePrevention::CancelTaker && book.node(head).account == taker.account
        {
            return Err(Reject::SelfTrade);
        }
        Ok(())
    }

    /// Matches an accepted (or re-priced) order, then rests it or closes it.
    pub(super) fn run_taker(&mut self, m: usize, mut taker: Node, ts: u64, out: &mut Vec<Event>) {
        let stp_cancelled = self.match_taker(m, &mut taker, ts, out);
        let reason = if taker.lots == 0 {
            CloseReason::Filled
        } else if stp_cancelled {
            CloseReason::SelfTradePrevented
        } else if taker.order_type == OrderType::Limit && taker.tif == TimeInForce::Gtc {
            let id = taker.id;
            let slot = self.books[m].insert(taker);
            self.index.insert(id, (m as u32, slot));
            return;
        } else {
            CloseReason::Expired
        };
        self.close(m, taker, reason, ts, out);
    }
}
