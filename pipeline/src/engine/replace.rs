//! Replacing an open order's price and/or open quantity.

use crate::error::Reject;
use crate::event::{Event, EventKind};
use crate::spec::units_to_decimal;
use crate::types::ids::{AccountId, OrderId};
use crate::types::money::{Price, Quantity};
use crate::types::order::Side;

use super::Engine;

impl Engine {
    /// Handles `Command::Replace`. A decrease at the same price keeps priority;
    /// anything else re-enters the book at the back of the (new) level, trading
    /// first if the new price crosses.
    pub(super) fn replace(
        &mut self,
        account: AccountId,
        id: OrderId,
        price: Option<Price>,
        quantity: Option<Quantity>,
        ts: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let (m, slot) = self.owned(account, id)?;
        if price.is_none() && quantity.is_none() {
            return Err(Reject::NothingToReplace);
        }
        let spec = &self.specs[m];
        let node = self.books[m].node(slot);
        let ticks = price
            .map(|p| spec.ticks(p))
            .transpose()?
            .unwrap_or(node.ticks);
        let lots = quantity
            .map(|q| spec.lots(q))
            .transpose()?
            .unwrap_or(node.lots);
        spec.check_notional(ticks, lots)?;
        let hold = match node.side {
            Side::Buy => spec
                .buy_hold(ticks, lots)
                .ok_or(Reject::InsufficientFunds)?,
            Side::Sell => spec.base_units(lots),
        };
        let (asset, scale) = self.hold_asset(m, node.side);
        let extra = hold - node.hold;
        if extra > self.ledger.get(account, asset).available {
            return Err(Reject::InsufficientFunds);
        }
        let priority_kept = ticks == node.ticks && lots <= node.lots;
        let mut moved = node.clone();
        moved.ticks = ticks;
        moved.lots = lots;
        moved.hold = hold;
        if !priority_kept {
            self.check_crossing(m, &moved)?;
        }
        // Every check passed: from here on nothing fails.
        let kind = EventKind::OrderReplaced {
            order_id: id,
            account,
            market: spec.market.id,
            price: spec.price(ticks),
            quantity: spec.quantity(u128::from(lots)),
            priority_kept,
            hold: units_to_decimal(hold, scale),
        };
        self.ledger.hold(account, asset, extra);
        self.emit(out, ts, kind);
        if priority_kept {
            self.books[m].set_lots(slot, lots);
            self.books[m].node_mut(slot).hold = hold;
        } else {
            self.books[m].remove(slot);
            self.index.remove(&id);
            self.run_taker(m, moved, ts, out);
        }
        Ok(())
    }
}
