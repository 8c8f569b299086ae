//! The order as answered by `POST /v1/orders`, `DELETE` and `GET`.

use pipeline::{Event, EventKind, OrderId, OrderRecord, Trade};
use rust_decimal::Decimal;
use serde::Serialize;
use workers::steps::persist::close_status;

use super::plain;

/// An order's state with its fills.
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    /// The engine's id.
    pub order_id: u64,
    /// The client's reference.
    pub client_order_id: Option<String>,
    /// The market.
    pub market: String,
    /// `buy` or `sell`.
    pub side: String,
    /// `limit` or `market`.
    #[serde(rename = "type")]
    pub order_type: String,
    /// The limit price.
    #[serde(serialize_with = "plain::option")]
    pub price: Option<Decimal>,
    /// Filled plus open.
    #[serde(serialize_with = "plain::serialize")]
    pub quantity: Decimal,
    /// `open`, `partially_filled`, `filled`, `cancelled`, `expired` or `self_trade_prevented`.
    pub status: String,
    /// Filled so far.
    #[serde(serialize_with = "plain::serialize")]
    pub filled: Decimal,
    /// Still open in the book (0 once closed).
    #[serde(serialize_with = "plain::serialize")]
    pub remaining: Decimal,
    /// The fills known to this answer.
    pub fills: Vec<Fill>,
    /// The last event sequence number reflected.
    pub sequence: u64,
    /// Related resources.
    pub links: Links,
}

/// One fill of an order.
#[derive(Debug, Clone, Serialize)]
pub struct Fill {
    /// The trade.
    pub trade_id: u64,
    /// The maker's price.
    #[serde(serialize_with = "plain::serialize")]
    pub price: Decimal,
    /// The base quantity.
    #[serde(serialize_with = "plain::serialize")]
    pub quantity: Decimal,
    /// The fee this order paid, in the quote asset.
    #[serde(serialize_with = "plain::serialize")]
    pub fee: Decimal,
    /// `maker` or `taker`.
    pub liquidity: &'static str,
}

/// Links to the order and its trace.
#[derive(Debug, Clone, Serialize)]
pub struct Links {
    /// `GET` the order.
    #[serde(rename = "self")]
    pub this: String,
    /// Its workflows and step attempts.
    pub trace: String,
}

impl Links {
    /// The links of order `id`.
    pub fn of(id: u64) -> Links {
        Links {
            this: format!("/v1/orders/{id}"),
            trace: format!("/v1/orders/{id}/trace"),
        }
    }
}

impl Fill {
    /// The fill of `trade` from the side of order `id`.
    pub fn of(id: OrderId, t: &Trade) -> Fill {
        let maker = t.maker_order_id == id;
        Fill {
            trade_id: t.trade_id.0,
            price: t.price.value(),
            quantity: t.quantity.value(),
            fee: if maker { t.maker_fee } else { t.taker_fee },
            liquidity: if maker { "maker" } else { "taker" },
        }
    }
}

/// The open status of an order with `filled` so far.
pub fn open_status(filled: Decimal) -> &'static str {
    if filled.is_zero() {
        "open"
    } else {
        "partially_filled"
    }
}

impl OrderView {
    /// A view of an order record (as accepted or as it stands in the engine).
    pub fn from_record(o: &OrderRecord, seq: u64) -> OrderView {
        OrderView {
            order_id: o.id.0,
            client_order_id: o.client_order_id.map(|c| c.as_str().to_string()),
            market: o.market.as_str().to_string(),
            side: o.side.as_str().into(),
            order_type: o.order_type.as_str().into(),
            price: o.price.map(|p| p.value()),
            quantity: o.quantity.value(),
            status: open_status(o.filled).into(),
            filled: o.filled,
            remaining: o.remaining,
            fills: vec![],
            sequence: seq,
            links: Links::of(o.id.0),
        }
    }

    /// Applies the events of one command to the view of order `self.order_id`.
    pub fn apply(&mut self, events: &[Event]) {
        let id = OrderId(self.order_id);
        for e in events {
            match &e.kind {
                EventKind::Trade(t) if t.maker_order_id == id || t.taker_order_id == id => {
                    let (filled, remaining) = if t.maker_order_id == id {
                        (t.maker_filled, t.maker_remaining)
                    } else {
                        (t.taker_filled, t.taker_remaining)
                    };
                    self.filled = filled;
                    self.remaining = remaining;
                    self.status = open_status(filled).into();
                    self.fills.push(Fill::of(id, t));
                }
                EventKind::OrderReplaced {
                    order_id, quantity, ..
                } if *order_id == id => {
                    self.remaining = quantity.value();
                    self.quantity = self.filled + quantity.value();
                }
                EventKind::OrderClosed {
                    order_id,
                    reason,
                    filled,
                    ..
                } if *order_id == id => {
                    self.filled = *filled;
                    self.remaining = Decimal::ZERO;
                    self.status = close_status(*reason).into();
                }
                _ => continue,
            }
            self.sequence = e.seq;
        }
    }

    /// The answer to a place: the accepted order with what happened at once.
    pub fn from_place(events: &[Event]) -> Option<OrderView> {
        let (seq, order) = events.iter().find_map(|e| match &e.kind {
            EventKind::OrderAccepted { order } => Some((e.seq, order)),
            _ => None,
        })?;
        let mut view = OrderView::from_record(order, seq);
        view.apply(events);
        // The command's last event, which may be another order's (a
        // resting order of the same account closed by self-trade
        // prevention), as the answer's `sequence` promises.
        view.sequence = events.last().map_or(view.sequence, |e| e.seq);
        Some(view)
    }

    /// Whether the order has left the book.
    pub fn is_closed(&self) -> bool {
        !matches!(self.status.as_str(), "open" | "partially_filled")
    }
}
