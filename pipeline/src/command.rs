//! Commands: the engine's only input.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::types::ids::{AccountId, Asset, ClientOrderId, MarketId, OrderId};
use crate::types::money::{Price, Quantity};
use crate::types::order::{OrderType, SelfTradePrevention, Side, TimeInForce};

/// A new order as submitted by an account, already parsed into domain types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    /// The owner.
    pub account: AccountId,
    /// The client's own reference, echoed in events.
    pub client_order_id: Option<ClientOrderId>,
    /// Where to trade.
    pub market: MarketId,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// Required for limit orders, absent for market orders.
    pub price: Option<Price>,
    /// The base quantity.
    pub quantity: Quantity,
    /// GTC, IOC or FOK; market orders never rest whatever this says.
    pub time_in_force: TimeInForce,
    /// Reject instead of trading on arrival (GTC limit orders only).
    pub post_only: bool,
    /// What to do when it would trade with the same account.
    #[serde(default)]
    pub stp: SelfTradePrevention,
}

/// Funds moved into or out of an account by an operator. Stored as
/// `{"deposit": {...}}` or `{"withdraw": {...}}`, as before the transfer id
/// existed, so older journals read unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The account credited or debited.
    pub account: AccountId,
    /// The asset.
    pub asset: Asset,
    /// Strictly positive, within the asset's precision.
    pub amount: Decimal,
    /// The operator's own reference (a bank transfer's, a chain
    /// transaction's): unique per account, as `client_order_id` is, so a
    /// retried request moves the funds once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_transfer_id: Option<ClientOrderId>,
}

/// An instruction to the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Place a new order.
    Place(NewOrder),
    /// Cancel an open order; releases its hold.
    Cancel {
        /// Must own the order.
        account: AccountId,
        /// The order to cancel.
        order_id: OrderId,
    },
    /// Change an open order's price and/or remaining quantity. `quantity` is the new
    /// *open* quantity (what is left to fill), not the original total. A decrease
    /// at the same price keeps time priority; a price change or an increase loses
    /// it, and a new price that crosses trades at once.
    Replace {
        /// Must own the order.
        account: AccountId,
        /// The order to change.
        order_id: OrderId,
        /// The new limit price, if changing.
        price: Option<Price>,
        /// The new open quantity, if changing.
        quantity: Option<Quantity>,
    },
    /// Credit an account's available balance.
    Deposit(Transfer),
    /// Debit an account's available balance: at most what is available.
    Withdraw(Transfer),
}

impl Command {
    /// A deposit without a transfer id.
    pub fn deposit(account: AccountId, asset: Asset, amount: Decimal) -> Command {
        Command::Deposit(Transfer {
            account,
            asset,
            amount,
            client_transfer_id: None,
        })
    }

    /// A withdrawal without a transfer id.
    pub fn withdraw(account: AccountId, asset: Asset, amount: Decimal) -> Command {
        Command::Withdraw(Transfer {
            account,
            asset,
            amount,
            client_transfer_id: None,
        })
    }
}
