//! From durable commits to messages: trades and depth diffs per market,
//! order updates per account; and the book snapshots cached in Redis.

use pipeline::{Depth, Event, EventKind, OrderId, Trade};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::redis::RedisLink;
use super::{Follow, Hub, Message};
use crate::host::{Committed, DepthDiff, EngineHandle};
use crate::wire::{BookSnapshot, Fill, Level};

/// Forwards every commit of `host` to the hub and to Redis, until `stop`.
pub async fn run(
    host: EngineHandle,
    hub: Arc<Hub>,
    redis: Option<Arc<RedisLink>>,
    stop: CancellationToken,
) {
    let mut rx = host.committed();
    loop {
        let c = tokio::select! {
            c = rx.recv() => c,
            _ = stop.cancelled() => return,
        };
        match c {
            Ok(c) => forward(&c, &hub, redis.as_deref()),
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "the market-data feed fell behind the engine");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

fn forward(c: &Committed, hub: &Hub, redis: Option<&RedisLink>) {
    // Building the messages is most of the feed's cost: skip it when nobody
    // would get them (no session here, no Redis to fan out to).
    if redis.is_none() && !hub.has_sessions() {
        return;
    }
    for m in messages(c) {
        if let Some(r) = redis {
            r.publish(&m);
        }
        hub.deliver(m);
    }
    if let Some(r) = redis {
        for d in &c.books {
            if let Ok(text) = serde_json::to_string(&BookSnapshot::from(d.clone())) {
                r.set_book(d.market.as_str(), text);
            }
        }
    }
}

/// The messages of one commit, in sequence order: for each event its trade
/// and order updates, then the depth diffs (which end at the commit's last
/// sequence number).
pub fn messages(c: &Committed) -> Vec<Message> {
    let mut out = Vec::new();
    let mut starts = c.workflows.iter().peekable();
    let mut workflow = 0;
    for e in &c.events {
        while let Some(id) = starts.next_if(|id| **id <= e.seq) {
            workflow = *id;
        }
        event_messages(e, workflow, &mut out);
    }
    out.extend(c.diffs.iter().map(depth_message));
    out
}

fn depth_message(d: &DepthDiff) -> Message {
    let mut data = serde_json::to_value(d).unwrap_or(Value::Null);
    data["type"] = json!("depth");
    Message::market(format!("depth:{}", d.market.as_str()), data)
}

/// The fill of `t` for order `id`, with the workflow that persists and
/// settles it (the taker's).
fn fill(e: &Event, t: &Trade, id: OrderId, workflow: u64) -> Value {
    let (filled, remaining) = if t.maker_order_id == id {
        (t.maker_filled, t.maker_remaining)
    } else {
        (t.taker_filled, t.taker_remaining)
    };
    let mut v = serde_json::to_value(Fill::of(id, t)).unwrap_or(Value::Null);
    v["type"] = json!("order");
    v["event"] = json!("fill");
    v["order_id"] = json!(id.0);
    v["market"] = json!(t.market.as_str());
    v["filled"] = json!(filled.normalize());
    v["remaining"] = json!(remaining.normalize());
    v["sequence"] = json!(e.seq);
    v["workflow_id"] = json!(workflow);
    v
}

fn event_messages(e: &Event, workflow: u64, out: &mut Vec<Message>) {
    match &e.kind {
        EventKind::OrderAccepted { order } => out.push(Message::orders(
            order.account.0,
            json!({"type": "order", "event": "accepted", "order_id": order.id.0,
                   "client_order_id": order.client_order_id.map(|c| c.as_str().to_string()),
                   "market": order.market.as_str(), "side": order.side.as_str(),
                   "price": order.price.map(|p| p.value().normalize()),
                   "quantity": order.quantity.value().normalize(),
                   "sequence": e.seq}),
        )),
        EventKind::Trade(t) => {
            out.push(Message::market(
                format!("trades:{}", t.market.as_str()),
                json!({"type": "trade", "market": t.market.as_str(), "trade_id": t.trade_id.0,
                       "price": t.price.value().normalize(),
                       "quantity": t.quantity.value().normalize(),
                       "taker_side": t.taker_side.as_str(), "sequence": e.seq, "ts": e.ts}),
            ));
            // The maker's order has no workflow of its own for this fill:
            // the progress poller follows the taker's for it.
            out.push(
                Message::orders(t.maker_account.0, fill(e, t, t.maker_order_id, workflow))
                    .following(Follow {
                        workflow_id: workflow,
                        order_id: t.maker_order_id.0,
                    }),
            );
            out.push(Message::orders(
                t.taker_account.0,
                fill(e, t, t.taker_order_id, workflow),
            ));
        }
        EventKind::OrderReplaced {
            order_id,
            account,
            market,
            price,
            quantity,
            ..
        } => out.push(Message::orders(
            account.0,
            json!({"type": "order", "event": "replaced", "order_id": order_id.0,
                   "market": market.as_str(), "price": price.value().normalize(),
                   "remaining": quantity.value().normalize(), "sequence": e.seq}),
        )),
        EventKind::OrderClosed {
            order_id,
            account,
            market,
            reason,
            filled,
            ..
        } => out.push(Message::orders(
            account.0,
            json!({"type": "order", "event": "closed", "order_id": order_id.0,
                   "market": market.as_str(), "reason": reason, "filled": filled.normalize(),
                   "sequence": e.seq}),
        )),
        EventKind::Deposited { .. } | EventKind::Withdrawn { .. } => {}
    }
}

/// The snapshot a [`Depth`] becomes on the wire.
impl From<Depth> for BookSnapshot {
    fn from(d: Depth) -> BookSnapshot {
        BookSnapshot {
            market: d.market.as_str().to_string(),
            sequence: d.seq,
            bids: d.bids.iter().map(Level::from).collect(),
            asks: d.asks.iter().map(Level::from).collect(),
        }
    }
}
