//! Events: the engine's only output, and the read models built from engine state.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::command::NewOrder;
use crate::types::ids::{AccountId, Asset, ClientOrderId, MarketId, OrderId, TradeId};
use crate::types::money::{Price, Quantity};
use crate::types::order::{OrderType, SelfTradePrevention, Side, TimeInForce};

/// One thing that happened, numbered by a global gap-free sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Global sequence number: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// The command's timestamp (microseconds), as passed to `apply`.
    pub ts: u64,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An order passed every check and its hold was taken.
    OrderAccepted {
        /// The order as accepted.
        order: OrderRecord,
    },
    /// Two orders traded.
    Trade(Trade),
    /// An open order's price and/or open quantity changed.
    OrderReplaced {
        /// The order.
        order_id: OrderId,
        /// Its owner.
        account: AccountId,
        /// Its market.
        market: MarketId,
        /// The (possibly new) limit price.
        price: Price,
        /// The new open quantity.
        quantity: Quantity,
        /// Whether the order kept its place in the queue.
        priority_kept: bool,
        /// The order's hold after the change (in the hold asset).
        hold: Decimal,
    },
    /// An order left the book or finished; its remaining hold was released.
    OrderClosed {
        /// The order.
        order_id: OrderId,
        /// Its owner.
        account: AccountId,
        /// Its market.
        market: MarketId,
        /// Why.
        reason: CloseReason,
        /// The order's total filled base quantity.
        filled: Decimal,
        /// The hold returned to the available balance.
        released: Decimal,
    },
    /// An account was credited.
    Deposited {
        /// The account.
        account: AccountId,
        /// The asset.
        asset: Asset,
        /// The amount.
        amount: Decimal,
    },
    /// An account was debited.
    Withdrawn {
        /// The account.
        account: AccountId,
        /// The asset.
        asset: Asset,
        /// The amount.
        amount: Decimal,
    },
}

/// Why an order closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Completely filled.
    Filled,
    /// Cancelled by its owner.
    Cancelled,
    /// The unfilled remainder of an IOC, FOK or market order.
    Expired,
    /// Cancelled by self-trade prevention.
    SelfTradePrevented,
}

/// An order: as accepted (in `OrderAccepted`) or as it stands now (queries, snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The engine's id.
    pub id: OrderId,
    /// The owner.
    pub account: AccountId,
    /// The client's reference.
    pub client_order_id: Option<ClientOrderId>,
    /// The market.
    pub market: MarketId,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// The limit price (none for market orders).
    pub price: Option<Price>,
    /// The total quantity: filled plus open (a replace changes it).
    pub quantity: Quantity,
    /// What is left to fill.
    pub remaining: Decimal,
    /// What has been filled.
    pub filled: Decimal,
    /// Time in force.
    pub time_in_force: TimeInForce,
    /// Post-only flag.
    pub post_only: bool,
    /// Self-trade prevention.
    pub stp: SelfTradePrevention,
    /// The asset held: quote for buys, base for sells.
    pub hold_asset: Asset,
    /// The amount held now.
    pub hold: Decimal,
    /// When the order was accepted (microseconds).
    pub ts: u64,
}

impl OrderRecord {
    /// The order as it was placed: the [`NewOrder`] that an `OrderAccepted`
    /// record was made from (quantities as values: `"0.10"` reads back as
    /// `"0.1"`). Lets a stored workflow leave out a command its first event
    /// already holds.
    pub fn as_placed(&self) -> NewOrder {
        NewOrder {
            account: self.account,
            client_order_id: self.client_order_id,
            market: self.market,
            side: self.side,
            order_type: self.order_type,
            price: self.price,
            quantity: self.quantity,
            time_in_force: self.time_in_force,
            post_only: self.post_only,
            stp: self.stp,
        }
    }
}

/// A trade between a resting (maker) and an incoming (taker) order, at the maker's price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// The engine's id.
    pub trade_id: TradeId,
    /// The market.
    pub market: MarketId,
    /// The resting order's price.
    pub price: Price,
    /// The base quantity traded.
    pub quantity: Quantity,
    /// The resting order.
    pub maker_order_id: OrderId,
    /// The resting order's account.
    pub maker_account: AccountId,
    /// The incoming order.
    pub taker_order_id: OrderId,
    /// The incoming order's account.
    pub taker_account: AccountId,
    /// The incoming order's side.
    pub taker_side: Side,
    /// `price × quantity`, in the quote asset.
    pub quote_amount: Decimal,
    /// Fee paid by the maker, in the quote asset.
    pub maker_fee: Decimal,
    /// Fee paid by the taker, in the quote asset.
    pub taker_fee: Decimal,
    /// The maker's filled quantity after this trade. With the three fields
    /// below, this lets a consumer write an order's absolute state, so
    /// applying trades again or out of order converges (see `persist`).
    pub maker_filled: Decimal,
    /// The maker's open quantity after this trade.
    pub maker_remaining: Decimal,
    /// The taker's filled quantity after this trade.
    pub taker_filled: Decimal,
    /// The taker's open quantity after this trade.
    pub taker_remaining: Decimal,
}

/// An account's balance in one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Balance {
    /// Free to spend or withdraw.
    pub available: Decimal,
    /// Reserved by open orders.
    pub held: Decimal,
}

/// One aggregated price level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    /// The level's price.
    pub price: Price,
    /// The total open quantity at that price.
    pub quantity: Quantity,
}

/// An L2 depth snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Depth {
    /// The market.
    pub market: MarketId,
    /// The last event sequence number reflected in this snapshot.
    pub seq: u64,
    /// Bids, best (highest) first.
    pub bids: Vec<Level>,
    /// Asks, best (lowest) first.
    pub asks: Vec<Level>,
}
