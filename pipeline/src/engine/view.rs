//! Conversions from the engine's integer state to decimal records.

use crate::book::Node;
use crate::event::OrderRecord;
use crate::spec::units_to_decimal;
use crate::types::order::{OrderType, Side};

use super::Engine;

impl Engine {
    /// The asset index and scale an order of `side` holds in market `m`.
    pub(super) fn hold_asset(&self, m: usize, side: Side) -> (usize, u32) {
        let s = &self.specs[m];
        match side {
            Side::Buy => (s.quote, s.quote_scale),
            Side::Sell => (s.base, s.base_scale),
        }
    }

    /// The decimal view of an order.
    pub(super) fn record(&self, m: usize, n: &Node) -> OrderRecord {
        let spec = &self.specs[m];
        let (asset, scale) = self.hold_asset(m, n.side);
        OrderRecord {
            id: n.id,
            account: n.account,
            client_order_id: n.client_order_id,
            market: spec.market.id,
            side: n.side,
            order_type: n.order_type,
            price: (n.order_type == OrderType::Limit).then(|| spec.price(n.ticks)),
            quantity: spec.quantity(u128::from(n.lots) + u128::from(n.filled)),
            remaining: spec.qty_decimal(u128::from(n.lots)),
            filled: spec.qty_decimal(u128::from(n.filled)),
            time_in_force: n.tif,
            post_only: n.post_only,
            stp: n.stp,
            hold_asset: self.assets[asset].asset,
            hold: units_to_decimal(n.hold, scale),
            ts: n.ts,
        }
    }
}
