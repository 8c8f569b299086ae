//! Wire types: request bodies and responses, snake_case JSON, decimals as
//! strings without trailing zeros (`plain`).

mod order_request;
mod order_view;
pub(crate) mod plain;

pub use order_request::{CreateOrderRequest, OwnedRequest};
pub use order_view::{Fill, Links, OrderView, open_status};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// `POST /v1/deposits` and `POST /v1/withdrawals`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundsRequest {
    /// The account credited or debited.
    pub account_id: u64,
    /// The asset code, e.g. `USD`.
    pub asset: String,
    /// A positive decimal string.
    pub amount: String,
    /// The operator's own reference for the transfer, unique per account
    /// among its deposits and withdrawals for 24 hours: a retry with the
    /// same parameters gets the original answer (200), a reuse with other
    /// parameters is a 409. Without it, every request moves funds.
    #[serde(default)]
    pub client_transfer_id: Option<String>,
}

/// The answer to a deposit or withdrawal.
#[derive(Debug, Clone, Serialize)]
pub struct FundsResponse {
    /// The account.
    pub account_id: u64,
    /// The asset.
    pub asset: String,
    /// The amount moved.
    #[serde(serialize_with = "plain::serialize")]
    pub amount: Decimal,
    /// The operator's reference, when the request gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_transfer_id: Option<String>,
    /// The event's sequence number.
    pub sequence: u64,
    /// The workflow that settles it (`clearway ops show` it).
    pub workflow_id: u64,
    /// The account's balance in that asset afterwards (for a retry: now).
    pub balance: BalanceView,
}

/// One asset's balance.
#[derive(Debug, Clone, Serialize)]
pub struct BalanceView {
    /// Free to spend or withdraw.
    #[serde(serialize_with = "plain::serialize")]
    pub available: Decimal,
    /// Reserved by open orders.
    #[serde(serialize_with = "plain::serialize")]
    pub held: Decimal,
}

impl From<pipeline::Balance> for BalanceView {
    fn from(b: pipeline::Balance) -> BalanceView {
        BalanceView {
            available: b.available,
            held: b.held,
        }
    }
}

/// `GET /v1/markets/{market}/book`: the top levels of a book and the engine
/// sequence number they reflect (the starting point for depth diffs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BookSnapshot {
    /// The market.
    pub market: String,
    /// The last engine sequence number reflected.
    pub sequence: u64,
    /// Bids, best (highest) first.
    pub bids: Vec<Level>,
    /// Asks, best (lowest) first.
    pub asks: Vec<Level>,
}

/// A price level of a book snapshot or of a depth diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    /// The level's price.
    #[serde(serialize_with = "plain::serialize")]
    pub price: Decimal,
    /// The total open quantity at that price; in a depth diff, 0 when the
    /// level is gone.
    #[serde(serialize_with = "plain::serialize")]
    pub quantity: Decimal,
}

impl From<&pipeline::Level> for Level {
    fn from(l: &pipeline::Level) -> Level {
        Level {
            price: l.price.value(),
            quantity: l.quantity.value(),
        }
    }
}
