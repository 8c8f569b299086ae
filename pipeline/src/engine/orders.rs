//! Cancelling and closing orders.

use crate::book::Node;
use crate::error::Reject;
use crate::event::{CloseReason, Event, EventKind};
use crate::spec::units_to_decimal;
use crate::types::ids::{AccountId, OrderId};

use super::Engine;

impl Engine {
    /// Finds an open order owned by `account`: (market index, slot).
    pub(super) fn owned(&self, account: AccountId, id: OrderId) -> Result<(usize, u32), Reject> {
        let (m, slot) = *self.index.get(&id).ok_or(Reject::UnknownOrder)?;
        if self.books[m as usize].node(slot).account != account {
            return Err(Reject::NotOrderOwner);
        }
        Ok((m as usize, slot))
    }

    /// Handles `Command::Cancel`.
    pub(super) fn cancel(
        &mut self,
        account: AccountId,
        id: OrderId,
        ts: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let (m, slot) = self.owned(account, id)?;
        self.close_resting(m, slot, CloseReason::Cancelled, ts, out);
        Ok(())
    }

    /// Takes a resting order out of the book and closes it.
    pub(super) fn close_resting(
        &mut self,
        m: usize,
        slot: u32,
        reason: CloseReason,
        ts: u64,
        out: &mut Vec<Event>,
    ) {
        let node = self.books[m].remove(slot);
        self.index.remove(&node.id);
        self.close(m, node, reason, ts, out);
    }

    /// Releases an order's remaining hold and emits `OrderClosed`.
    pub(super) fn close(
        &mut self,
        m: usize,
        node: Node,
        reason: CloseReason,
        ts: u64,
        out: &mut Vec<Event>,
    ) {
        let record = self.record(m, &node);
        self.closed.push(record);
        let (asset, scale) = self.hold_asset(m, node.side);
        self.ledger.release(node.account, asset, node.hold);
        let kind = EventKind::OrderClosed {
            order_id: node.id,
            account: node.account,
            market: self.specs[m].market.id,
            reason,
            filled: self.specs[m].qty_decimal(u128::from(node.filled)),
            released: units_to_decimal(node.hold, scale),
        };
        self.emit(out, ts, kind);
    }
}
