//! Typed errors: parse errors at the edge, command rejections, configuration and
//! restore errors.

use thiserror::Error;

/// A value could not be parsed into a domain type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Not 1–12 characters of `A-Z0-9`.
    #[error("invalid asset code {0:?}")]
    Asset(String),
    /// Not `BASE-QUOTE` with two valid asset codes.
    #[error("invalid market code {0:?}")]
    Market(String),
    /// Not 1–64 characters of `A-Za-z0-9_-.:`.
    #[error("invalid client order id {0:?}")]
    ClientOrderId(String),
    /// Not a decimal number, or not one that can be held exactly.
    #[error("invalid {what} {value:?}: {why}")]
    Decimal {
        /// Which field.
        what: &'static str,
        /// The offending input (truncated).
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Zero or negative where a positive value is required.
    #[error("invalid {what} {value}: must be greater than zero")]
    NotPositive {
        /// Which field.
        what: &'static str,
        /// The offending value.
        value: String,
    },
}

/// Why the engine refused a command. A rejected command changes nothing and
/// consumes no sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Reject {
    /// The market is not configured.
    #[error("unknown market")]
    UnknownMarket,
    /// The asset is not traded in any configured market.
    #[error("unknown asset")]
    UnknownAsset,
    /// The account's available balance does not cover the hold or withdrawal.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// A post-only order (or its replacement) would trade on arrival.
    #[error("post-only order would cross the book")]
    PostOnlyWouldCross,
    /// Post-only is only allowed on GTC limit orders.
    #[error("post-only is only allowed on GTC limit orders")]
    PostOnlyNotAllowed,
    /// A fill-or-kill order cannot be filled completely right now.
    #[error("fill-or-kill order cannot be filled completely")]
    FokCannotFill,
    /// No open order has this id.
    #[error("unknown order")]
    UnknownOrder,
    /// The order belongs to another account.
    #[error("order belongs to another account")]
    NotOrderOwner,
    /// The price is not a whole multiple of the market's tick size.
    #[error("price is not a multiple of the tick size")]
    PriceOffTick,
    /// The price is too large for the engine's integer representation.
    #[error("price out of range")]
    PriceOutOfRange,
    /// The quantity is not a whole multiple of the market's lot size.
    #[error("quantity is not a multiple of the lot size")]
    QuantityOffLot,
    /// The quantity is below the market's minimum.
    #[error("quantity below the market minimum")]
    BelowMinQuantity,
    /// The quantity is above the market's maximum.
    #[error("quantity above the market maximum")]
    AboveMaxQuantity,
    /// `price × quantity` is below the market's minimum notional.
    #[error("notional below the market minimum")]
    BelowMinNotional,
    /// A limit order needs a price.
    #[error("limit order without a price")]
    MissingPrice,
    /// A market order must not carry a price.
    #[error("market order with a price")]
    PriceNotAllowed,
    /// The order would trade with its own account first and its self-trade
    /// prevention is cancel-taker, so nothing would happen.
    #[error("order would trade with the same account")]
    SelfTrade,
    /// A deposit or withdrawal amount that is not positive, has more decimals
    /// than the asset's precision, or is larger than any balance can be.
    #[error(
        "the amount must be positive, within the asset's precision and at most 2^96 - 1 of its smallest units"
    )]
    InvalidAmount,
    /// A deposit that would take the asset's total supply past 2^96 − 1 of
    /// its smallest units, the most every balance can hold exactly.
    #[error("the deposit would take the asset's total supply past what balances can hold exactly")]
    SupplyLimit,
    /// A replace that changes neither price nor quantity, or changes the price of
    /// a market order.
    #[error("replace changes nothing")]
    NothingToReplace,
}

impl Reject {
    /// A stable snake_case machine code for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Reject::UnknownMarket => "unknown_market",
            Reject::UnknownAsset => "unknown_asset",
            Reject::InsufficientFunds => "insufficient_funds",
            Reject::PostOnlyWouldCross => "post_only_would_cross",
            Reject::PostOnlyNotAllowed => "post_only_not_allowed",
            Reject::FokCannotFill => "fok_cannot_fill",
            Reject::UnknownOrder => "unknown_order",
            Reject::NotOrderOwner => "not_order_owner",
            Reject::PriceOffTick => "price_off_tick",
            Reject::PriceOutOfRange => "price_out_of_range",
            Reject::QuantityOffLot => "quantity_off_lot",
            Reject::BelowMinQuantity => "below_min_quantity",
            Reject::AboveMaxQuantity => "above_max_quantity",
            Reject::BelowMinNotional => "below_min_notional",
            Reject::MissingPrice => "missing_price",
            Reject::PriceNotAllowed => "price_not_allowed",
            Reject::SelfTrade => "self_trade",
            Reject::InvalidAmount => "invalid_amount",
            Reject::SupplyLimit => "supply_limit",
            Reject::NothingToReplace => "nothing_to_replace",
        }
    }
}

/// The engine configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Two markets share an id.
    #[error("market {0} is configured twice")]
    DuplicateMarket(String),
    /// Tick, lot, min/max quantity or min notional is not usable.
    #[error("market {market}: {problem}")]
    InvalidMarket {
        /// The market id.
        market: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// An asset would need more than 28 decimal places.
    #[error("asset {0} needs more than 28 decimal places")]
    AssetPrecision(String),
}

/// A saved [`crate::EngineState`] does not fit the configuration or is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// The configuration itself is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An open order does not fit its market (unknown market, off tick or lot, ...).
    #[error("order {order}: {problem}")]
    InvalidOrder {
        /// The order id.
        order: u64,
        /// What is wrong.
        problem: String,
    },
    /// A balance is negative, off precision or for an unknown asset.
    #[error("balance of account {account} in {asset}: {problem}")]
    InvalidBalance {
        /// The account.
        account: u64,
        /// The asset.
        asset: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// An account's held balance differs from what its open orders hold.
    #[error("account {account} holds {held} {asset} but its open orders need {needed}")]
    HoldMismatch {
        /// The account.
        account: u64,
        /// The asset.
        asset: String,
        /// The held balance in the state.
        held: String,
        /// The sum of the open orders' holds.
        needed: String,
    },
    /// Sequence or id counters are behind the ids in use.
    #[error("counters are behind the ids in use")]
    Counters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_codes_are_snake_case() {
        assert_eq!(Reject::InsufficientFunds.code(), "insufficient_funds");
        assert_eq!(Reject::FokCannotFill.code(), "fok_cannot_fill");
        assert!(
            Reject::SelfTrade
                .code()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
        );
    }
}
