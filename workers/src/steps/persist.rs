//! persist: orders, fills and trades into the database.
//!
//! - input: a workflow's events;
//! - idempotency key: `order_id:persist` — inserts are keyed by id
//!   (`on conflict do nothing`); every event carries the order's absolute
//!   state after it (filled, open quantity), and an update applies only when
//!   its sequence is newer than the row's (`last_seq < seq`). So a second run
//!   changes nothing, and runs in any order converge on the newest state;
//! - effect: rows in `orders` and `trades`;
//! - recorded: the attempt row written by the runtime in the same transaction.

use super::StepError;
use crate::db::{Arg, Tx};
use crate::workflow::WorkflowInput;
use anyhow::Result;
use pipeline::{CloseReason, EventKind, OrderRecord, Trade};
use rust_decimal::Decimal;

/// Applies one workflow's events to the order and trade tables.
pub async fn run(tx: &mut Tx, wf: &WorkflowInput) -> Result<(), StepError> {
    for ev in &wf.events {
        let (seq, ts) = (ev.seq as i64, ev.ts as i64);
        match &ev.kind {
            EventKind::OrderAccepted { order } => insert_order(tx, order, seq, ts).await?,
            EventKind::Trade(t) => {
                insert_trade(tx, t, seq, ts).await?;
                fill(
                    tx,
                    t.maker_order_id.0,
                    t.maker_filled,
                    t.maker_remaining,
                    seq,
                    ts,
                )
                .await?;
                fill(
                    tx,
                    t.taker_order_id.0,
                    t.taker_filled,
                    t.taker_remaining,
                    seq,
                    ts,
                )
                .await?;
            }
            EventKind::OrderReplaced {
                order_id,
                price,
                quantity,
                ..
            } => {
                tx.exec(
                    "update orders set price = $2, open_quantity = $3, last_seq = $4, updated_at = $5 \
                     where order_id = $1 and last_seq < $4",
                    &[Arg::I64(order_id.0 as i64), Arg::Dec(price.value()), Arg::Dec(quantity.value()), Arg::I64(seq), Arg::I64(ts)],
                )
                .await?;
            }
            EventKind::OrderClosed {
                order_id, reason, ..
            } => {
                tx.exec(
                    "update orders set status = $2, open_quantity = $3, last_seq = $4, updated_at = $5 \
                     where order_id = $1 and last_seq < $4",
                    &[Arg::I64(order_id.0 as i64), Arg::Text(close_status(*reason).into()), Arg::Dec(Decimal::ZERO), Arg::I64(seq), Arg::I64(ts)],
                )
                .await?;
            }
            EventKind::Deposited { .. } | EventKind::Withdrawn { .. } => {}
        }
    }
    Ok(())
}

/// The order status a close reason leaves.
pub fn close_status(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Filled => "filled",
        CloseReason::Cancelled => "cancelled",
        CloseReason::Expired => "expired",
        CloseReason::SelfTradePrevented => "self_trade_prevented",
    }
}

async fn insert_order(tx: &mut Tx, o: &OrderRecord, seq: i64, ts: i64) -> Result<()> {
    tx.exec(
        "insert into orders (order_id, account_id, market, client_order_id, side, order_type, price, quantity, \
         time_in_force, post_only, status, filled, open_quantity, accepted_seq, last_seq, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11, $8, $12, $12, $13, $13) \
         on conflict (order_id) do nothing",
        &[
            Arg::I64(o.id.0 as i64),
            Arg::I64(o.account.0 as i64),
            Arg::Text(o.market.to_string()),
            o.client_order_id.as_ref().map_or(Arg::NullText, |c| Arg::Text(c.to_string())),
            Arg::Text(o.side.as_str().into()),
            Arg::Text(o.order_type.as_str().into()),
            o.price.map_or(Arg::NullDec, |p| Arg::Dec(p.value())),
            Arg::Dec(o.quantity.value()),
            Arg::Text(o.time_in_force.as_str().into()),
            Arg::Bool(o.post_only),
            Arg::Dec(Decimal::ZERO),
            Arg::I64(seq),
            Arg::I64(ts),
        ],
    )
    .await?;
    Ok(())
}

async fn insert_trade(tx: &mut Tx, t: &Trade, seq: i64, ts: i64) -> Result<()> {
    tx.exec(
        "insert into trades (trade_id, seq, market, price, quantity, quote_amount, taker_side, maker_order_id, \
         taker_order_id, maker_account, taker_account, maker_fee, taker_fee, created_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) on conflict (trade_id) do nothing",
        &[
            Arg::I64(t.trade_id.0 as i64),
            Arg::I64(seq),
            Arg::Text(t.market.to_string()),
            Arg::Dec(t.price.value()),
            Arg::Dec(t.quantity.value()),
            Arg::Dec(t.quote_amount),
            Arg::Text(t.taker_side.as_str().into()),
            Arg::I64(t.maker_order_id.0 as i64),
            Arg::I64(t.taker_order_id.0 as i64),
            Arg::I64(t.maker_account.0 as i64),
            Arg::I64(t.taker_account.0 as i64),
            Arg::Dec(t.maker_fee),
            Arg::Dec(t.taker_fee),
            Arg::I64(ts),
        ],
    )
    .await?;
    Ok(())
}

/// Records an order's state after a fill, unless a newer event already did.
async fn fill(
    tx: &mut Tx,
    order_id: u64,
    filled: Decimal,
    open: Decimal,
    seq: i64,
    ts: i64,
) -> Result<()> {
    let n = tx
        .exec(
            "update orders set filled = $2, open_quantity = $3, last_seq = $4, updated_at = $5 \
             where order_id = $1 and last_seq < $4",
            &[
                Arg::I64(order_id as i64),
                Arg::Dec(filled),
                Arg::Dec(open),
                Arg::I64(seq),
                Arg::I64(ts),
            ],
        )
        .await?;
    if n == 0 {
        let known = tx
            .rows(
                "select 1 from orders where order_id = $1",
                &[Arg::I64(order_id as i64)],
            )
            .await?;
        anyhow::ensure!(
            !known.is_empty(),
            "order {order_id} is filled at seq {seq} but is not persisted yet"
        );
    }
    Ok(())
}
