//! `POST /v1/orders` body and its conversion into a [`NewOrder`].

use pipeline::{
    AccountId, ClientOrderId, MarketId, NewOrder, OrderType, Price, Quantity, SelfTradePrevention,
    Side, TimeInForce,
};
use serde::Deserialize;

use crate::error::ApiError;

/// A new order as sent by a client. Decimals are strings (`"101.25"`). An
/// optional field given as `null` is absent: it takes its default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// `BASE-QUOTE`, e.g. `BTC-USD`.
    pub market: String,
    /// `buy` or `sell`.
    pub side: Side,
    /// `limit` (default) or `market`.
    #[serde(rename = "type", default)]
    pub order_type: Option<OrderType>,
    /// Required for limit orders.
    #[serde(default)]
    pub price: Option<String>,
    /// The base quantity.
    pub quantity: String,
    /// `gtc` (default), `ioc` or `fok`.
    #[serde(default)]
    pub time_in_force: Option<TimeInForce>,
    /// Reject instead of trading on arrival (default false).
    #[serde(default)]
    pub post_only: Option<bool>,
    /// The client's reference, unique per account for 24 hours (idempotency key).
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// `cancel_taker` (default), `cancel_maker` or `cancel_both`.
    #[serde(default)]
    pub stp: Option<SelfTradePrevention>,
}

/// A request bound to the authenticated account.
#[derive(Debug)]
pub struct OwnedRequest(pub AccountId, pub CreateOrderRequest);

impl TryFrom<OwnedRequest> for NewOrder {
    type Error = ApiError;

    fn try_from(OwnedRequest(account, r): OwnedRequest) -> Result<NewOrder, ApiError> {
        let invalid = |code, e: pipeline::ParseError| ApiError::invalid(code, e.to_string());
        let market = MarketId::parse(&r.market).map_err(|e| invalid("invalid_market", e))?;
        let price = r
            .price
            .as_deref()
            .map(Price::parse)
            .transpose()
            .map_err(|e| invalid("invalid_price", e))?;
        let quantity = Quantity::parse(&r.quantity).map_err(|e| invalid("invalid_quantity", e))?;
        let client_order_id = r
            .client_order_id
            .as_deref()
            .map(ClientOrderId::parse)
            .transpose()
            .map_err(|e| invalid("invalid_client_order_id", e))?;
        Ok(NewOrder {
            account,
            client_order_id,
            market,
            side: r.side,
            order_type: r.order_type.unwrap_or(OrderType::Limit),
            price,
            quantity,
            time_in_force: r.time_in_force.unwrap_or(TimeInForce::Gtc),
            post_only: r.post_only.unwrap_or(false),
            stp: r.stp.unwrap_or_default(),
        })
    }
}
