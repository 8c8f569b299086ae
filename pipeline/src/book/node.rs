//! An order as the book and the engine keep it: integers only.

use crate::types::ids::{AccountId, ClientOrderId, OrderId};
use crate::types::order::{OrderType, SelfTradePrevention, Side, TimeInForce};

use super::level::NIL;

/// An order in integer form (ticks, lots, asset units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// The engine's id.
    pub id: OrderId,
    /// The owner.
    pub account: AccountId,
    /// The client's reference.
    pub client_order_id: Option<ClientOrderId>,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// Limit price in ticks (0 for market orders).
    pub ticks: u64,
    /// Open lots.
    pub lots: u64,
    /// Filled lots.
    pub filled: u64,
    /// Amount held, in units of the hold asset (quote for buys, base for sells).
    pub hold: i128,
    /// Time in force.
    pub tif: TimeInForce,
    /// Post-only flag.
    pub post_only: bool,
    /// Self-trade prevention.
    pub stp: SelfTradePrevention,
    /// Acceptance time, microseconds.
    pub ts: u64,
    /// The previous (older) order at the same level, or [`NIL`].
    pub prev: u32,
    /// The next (newer) order at the same level, or [`NIL`].
    pub next: u32,
}

impl Node {
    /// An unlinked node.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: OrderId,
        account: AccountId,
        client_order_id: Option<ClientOrderId>,
        side: Side,
        order_type: OrderType,
        ticks: u64,
        lots: u64,
        tif: TimeInForce,
        post_only: bool,
        stp: SelfTradePrevention,
        ts: u64,
    ) -> Node {
        Node {
            id,
            account,
            client_order_id,
            side,
            order_type,
            ticks,
            lots,
            filled: 0,
            hold: 0,
            tif,
            post_only,
            stp,
            ts,
            prev: NIL,
            next: NIL,
        }
    }

    /// Whether a taker at `self.ticks` trades against a maker resting at `maker_ticks`.
    /// Market orders cross everything.
    pub fn crosses(&self, maker_ticks: u64) -> bool {
        match (self.order_type, self.side) {
            (OrderType::Market, _) => true,
            (OrderType::Limit, Side::Buy) => self.ticks >= maker_ticks,
            (OrderType::Limit, Side::Sell) => self.ticks <= maker_ticks,
        }
    }
}
