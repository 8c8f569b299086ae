//! Market definitions as configured by the operator.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{Asset, MarketId};

/// A market's static definition. Amounts are exact decimals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Market {
    /// The market code, `BASE-QUOTE`.
    pub id: MarketId,
    /// The asset bought and sold.
    pub base: Asset,
    /// The asset prices are quoted in; fees are charged in it.
    pub quote: Asset,
    /// Prices must be whole multiples of this.
    pub tick_size: Decimal,
    /// Quantities must be whole multiples of this.
    pub lot_size: Decimal,
    /// The smallest accepted order quantity.
    pub min_quantity: Decimal,
    /// The largest accepted order quantity.
    pub max_quantity: Decimal,
    /// The smallest accepted `price × quantity` of a limit order.
    pub min_notional: Decimal,
    /// Fee charged to the resting side of a trade, in basis points of the quote amount.
    pub maker_fee_bps: u32,
    /// Fee charged to the incoming side of a trade, in basis points of the quote amount.
    pub taker_fee_bps: u32,
}
