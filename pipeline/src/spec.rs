//! Markets compiled to integers: prices become ticks, quantities lots, amounts
//! whole units of each asset's precision.
//!
//! **Precision.** Every asset gets one scale (decimal places), the largest any market
//! needs, and at least [`MIN_ASSET_SCALE`]: a market's base needs `lot_size.scale()`;
//! its quote needs `tick_size.scale() + lot_size.scale() + 4`. The `+ 4` makes a fee
//! of any whole number of basis points on any `price × quantity` an exact number of
//! quote units, so fees never round and funds are conserved to the last unit. Fees
//! are still computed with upward rounding (in the exchange's favour) should that
//! ever not hold.

use rust_decimal::Decimal;

use crate::error::{ConfigError, Reject};
use crate::types::ids::Asset;
use crate::types::market::Market;
use crate::types::money::{Price, Quantity};

/// Assets never get fewer decimal places than this, so ordinary deposits fit.
pub const MIN_ASSET_SCALE: u32 = 8;
/// The most decimal places a `Decimal` carries.
const MAX_SCALE: u32 = 28;
/// The largest magnitude a `Decimal` mantissa holds (2^96 − 1); supply is capped to it.
pub(crate) const MAX_UNITS: i128 = (1i128 << 96) - 1;

/// An asset with its precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AssetInfo {
    /// The code.
    pub asset: Asset,
    /// Decimal places of one unit.
    pub scale: u32,
}

/// `value / (unit_mantissa × 10^-unit_scale)` if it is a whole non-negative number.
/// `Err(true)` when it is not whole, `Err(false)` when out of range.
pub(crate) fn to_units(value: Decimal, unit_mantissa: i128, unit_scale: u32) -> Result<u128, bool> {
    let (vm, vs) = (value.mantissa(), value.scale());
    if vm < 0 {
        return Err(true);
    }
    let (num, den) = if vs <= unit_scale {
        let f = 10i128.checked_pow(unit_scale - vs).ok_or(false)?;
        (vm.checked_mul(f).ok_or(false)?, unit_mantissa)
    } else {
        let f = 10i128.checked_pow(vs - unit_scale).ok_or(false)?;
        (vm, unit_mantissa.checked_mul(f).ok_or(false)?)
    };
    if num % den != 0 {
        return Err(true);
    }
    Ok((num / den) as u128)
}

/// Units back to a decimal; saturates (never reached: supply is capped to 2^96).
pub(crate) fn units_to_decimal(units: i128, scale: u32) -> Decimal {
    Decimal::try_from_i128_with_scale(units, scale).unwrap_or(if units < 0 {
        Decimal::MIN
    } else {
        Decimal::MAX
    })
}

/// Upward-rounding `notional × bps / 10_000`.
pub(crate) fn fee(notional: i128, bps: u32) -> i128 {
    let x = notional * i128::from(bps);
    (x + 9_999) / 10_000
}

/// A market with its integer conversions.
#[derive(Debug, Clone)]
pub(crate) struct MarketSpec {
    /// The definition as configured.
    pub market: Market,
    /// Index of the base asset in the engine's asset table.
    pub base: usize,
    /// Index of the quote asset.
    pub quote: usize,
    /// Scale of the base asset.
    pub base_scale: u32,
    /// Scale of the quote asset.
    pub quote_scale: u32,
    /// `tick_size` mantissa and scale.
    tick: (i128, u32),
    /// `lot_size` mantissa and scale.
    lot: (i128, u32),
    /// Quote units in one tick × one lot.
    pub quote_per_tick_lot: i128,
    /// Base units in one lot.
    pub base_per_lot: i128,
    /// Minimum order size in lots (rounded up).
    min_lots: u64,
    /// Maximum order size in lots (rounded down).
    max_lots: u64,
    /// Minimum notional in quote units.
    min_notional: i128,
    /// The larger of maker and taker bps: what a resting buy must be able to pay.
    pub max_fee_bps: u32,
}

/// The scale an asset needs for a market role, or a config error.
pub(crate) fn required_scales(m: &Market) -> Result<(u32, u32), ConfigError> {
    let bad = |problem| ConfigError::InvalidMarket {
        market: m.id.to_string(),
        problem,
    };
    if m.tick_size <= Decimal::ZERO || m.lot_size <= Decimal::ZERO {
        return Err(bad("tick and lot size must be positive"));
    }
    if m.min_quantity < Decimal::ZERO
        || m.max_quantity < m.min_quantity
        || m.max_quantity <= Decimal::ZERO
    {
        return Err(bad(
            "need 0 <= min_quantity <= max_quantity, max_quantity > 0",
        ));
    }
    if m.min_notional < Decimal::ZERO || m.maker_fee_bps > 10_000 || m.taker_fee_bps > 10_000 {
        return Err(bad("min_notional must be >= 0 and fees at most 10000 bps"));
    }
    if m.base == m.quote || m.id.as_str() != format!("{}-{}", m.base, m.quote) {
        return Err(bad("id must be BASE-QUOTE of two different assets"));
    }
    let base = m.lot_size.scale().max(MIN_ASSET_SCALE);
    let quote = (m.tick_size.scale() + m.lot_size.scale() + 4).max(MIN_ASSET_SCALE);
    for (a, s) in [(m.base, base), (m.quote, quote)] {
        if s > MAX_SCALE {
            return Err(ConfigError::AssetPrecision(a.to_string()));
        }
    }
    Ok((base, quote))
}

impl MarketSpec {
    /// Compiles a market against the final asset table.
    pub fn new(market: Market, assets: &[AssetInfo]) -> Result<MarketSpec, ConfigError> {
        let bad = |problem| ConfigError::InvalidMarket {
            market: market.id.to_string(),
            problem,
        };
        let idx = |a: Asset| assets.iter().position(|i| i.asset == a).unwrap_or(0);
        let (base, quote) = (idx(market.base), idx(market.quote));
        let (base_scale, quote_scale) = (assets[base].scale, assets[quote].scale);
        let tick = (market.tick_size.mantissa(), market.tick_size.scale());
        let lot = (market.lot_size.mantissa(), market.lot_size.scale());
        let range = || bad("sizes out of range");
        let quote_per_tick_lot = tick
            .0
            .checked_mul(lot.0)
            .and_then(|x| x.checked_mul(10i128.pow(quote_scale - tick.1 - lot.1)))
            .ok_or_else(range)?;
        let base_per_lot = lot
            .0
            .checked_mul(10i128.pow(base_scale - lot.1))
            .ok_or_else(range)?;
        let min_lots = market
            .min_quantity
            .checked_div(market.lot_size)
            .ok_or_else(range)?
            .ceil();
        let min_lots = to_units(min_lots, 1, 0).map_err(|_| range())?;
        let max_lots = market
            .max_quantity
            .checked_div(market.lot_size)
            .ok_or_else(range)?
            .floor();
        let max_lots = to_units(max_lots, 1, 0).map_err(|_| range())?;
        let max_lots = u64::try_from(max_lots).map_err(|_| range())?;
        let min_notional = to_units(market.min_notional, 1, quote_scale)
            .map_err(|_| bad("min_notional finer than the quote precision"))?;
        let max_fee_bps = market.maker_fee_bps.max(market.taker_fee_bps);
        Ok(MarketSpec {
            base,
            quote,
            base_scale,
            quote_scale,
            tick,
            lot,
            quote_per_tick_lot,
            base_per_lot,
            min_lots: u64::try_from(min_lots.max(1)).map_err(|_| range())?,
            max_lots,
            min_notional: min_notional as i128,
            max_fee_bps,
            market,
        })
    }

    /// A price as whole ticks.
    pub fn ticks(&self, price: Price) -> Result<u64, Reject> {
        match to_units(price.value(), self.tick.0, self.tick.1) {
            Ok(t) => u64::try_from(t).map_err(|_| Reject::PriceOutOfRange),
            Err(true) => Err(Reject::PriceOffTick),
            Err(false) => Err(Reject::PriceOutOfRange),
        }
    }

    /// A quantity as whole lots, within the market's limits.
    pub fn lots(&self, quantity: Quantity) -> Result<u64, Reject> {
        let lots = match to_units(quantity.value(), self.lot.0, self.lot.1) {
            Ok(l) => l,
            Err(true) => return Err(Reject::QuantityOffLot),
            Err(false) => return Err(Reject::AboveMaxQuantity),
        };
        if lots < u128::from(self.min_lots) {
            return Err(Reject::BelowMinQuantity);
        }
        if lots > u128::from(self.max_lots) {
            return Err(Reject::AboveMaxQuantity);
        }
        Ok(lots as u64)
    }

    /// A non-negative decimal as whole lots, ignoring the order-size limits.
    pub fn whole_lots(&self, quantity: Decimal) -> Option<u64> {
        to_units(quantity, self.lot.0, self.lot.1)
            .ok()
            .and_then(|l| u64::try_from(l).ok())
    }

    /// `price × quantity` in quote units, `None` on overflow.
    pub fn notional(&self, ticks: u64, lots: u64) -> Option<i128> {
        i128::from(ticks)
            .checked_mul(i128::from(lots))?
            .checked_mul(self.quote_per_tick_lot)
    }

    /// Rejects a limit order below the minimum notional.
    pub fn check_notional(&self, ticks: u64, lots: u64) -> Result<(), Reject> {
        match self.notional(ticks, lots) {
            Some(n) if n < self.min_notional => Err(Reject::BelowMinNotional),
            _ => Ok(()),
        }
    }

    /// What a resting buy of `lots` at `ticks` must hold: the notional plus the
    /// largest fee it could pay. `None` when beyond any possible balance.
    pub fn buy_hold(&self, ticks: u64, lots: u64) -> Option<i128> {
        let n = self.notional(ticks, lots)?;
        if n > MAX_UNITS {
            return None;
        }
        Some(n + fee(n, self.max_fee_bps))
    }

    /// Base units in `lots`.
    pub fn base_units(&self, lots: u64) -> i128 {
        i128::from(lots) * self.base_per_lot
    }

    /// The price of `ticks` as a decimal.
    pub fn price(&self, ticks: u64) -> Price {
        let d = units_to_decimal(i128::from(ticks) * self.tick.0, self.tick.1);
        Price::new(d)
            .unwrap_or_else(|_| Price::new(Decimal::ONE).unwrap_or_else(|_| unreachable!()))
    }

    /// `lots` as a decimal quantity (zero allowed).
    pub fn qty_decimal(&self, lots: u128) -> Decimal {
        let units = i128::try_from(lots)
            .unwrap_or(i128::MAX)
            .saturating_mul(self.lot.0);
        units_to_decimal(units, self.lot.1)
    }

    /// `lots` (> 0) as a [`Quantity`].
    pub fn quantity(&self, lots: u128) -> Quantity {
        Quantity::new(self.qty_decimal(lots))
            .unwrap_or_else(|_| Quantity::new(Decimal::ONE).unwrap_or_else(|_| unreachable!()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn units_are_exact_multiples_or_rejected() {
        assert_eq!(to_units(dec!(1.25), 5, 2), Ok(25));
        assert_eq!(to_units(dec!(1.26), 5, 2), Err(true));
        assert_eq!(to_units(dec!(100), 1, 3), Ok(100_000));
        assert_eq!(to_units(dec!(0.0001), 1, 3), Err(true));
        assert_eq!(to_units(dec!(-1), 1, 0), Err(true));
    }

    #[test]
    fn fees_round_up_in_the_exchanges_favour() {
        assert_eq!(fee(10_000, 10), 10);
        assert_eq!(fee(10_001, 10), 11);
        assert_eq!(fee(0, 10), 0);
    }
}
