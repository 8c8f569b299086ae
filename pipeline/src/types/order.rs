//! Order attributes: side, type, time in force, self-trade prevention.

use serde::{Deserialize, Serialize};

/// Which side of the book an order is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Buys the base asset, pays the quote asset.
    Buy,
    /// Sells the base asset, receives the quote asset.
    Sell,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// Limit (has a price, may rest) or market (no price, never rests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    /// Trades at the given price or better; a GTC remainder rests in the book.
    Limit,
    /// Trades against whatever rests, IOC-like; a market buy is bounded by the
    /// account's available quote.
    Market,
}

/// How long an order stays in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Good till cancelled: the remainder rests.
    Gtc,
    /// Immediate or cancel: the remainder expires.
    Ioc,
    /// Fill or kill: fills completely at once or is rejected.
    Fok,
}

/// What happens when an incoming order would trade with a resting order of the
/// same account. The incoming order's setting decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfTradePrevention {
    /// The incoming order's remainder is cancelled (rejected if nothing happened yet).
    #[default]
    CancelTaker,
    /// The resting order is cancelled and matching continues.
    CancelMaker,
    /// Both are cancelled.
    CancelBoth,
}

impl Side {
    /// The stable wire and database name: `buy` or `sell`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl OrderType {
    /// The stable wire and database name: `limit` or `market`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Limit => "limit",
            OrderType::Market => "market",
        }
    }
}

impl TimeInForce {
    /// The stable wire and database name: `gtc`, `ioc` or `fok`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Gtc => "gtc",
            TimeInForce::Ioc => "ioc",
            TimeInForce::Fok => "fok",
        }
    }
}
