//! persist: orders, fills and trades into the database.
//!
//! - input: a workflow's events;
//! - idempotency key: `order_id:persist` — inserts are keyed by id
//!   (`on conflict do nothing`); every event carries the order's absolute
//!   state after it (filled, open quantity), and an update applies only when
//!   its sequence is newer than the row's (`last_seq < seq`). So a second run
//!   changes nothing, and runs in any order converge on the newest state;
//! - effect: rows in `orders` and `trades`, a few statements per batch;
//! - recorded: the attempt row written by the runtime in the same transaction;
//! - order: a fill, cancel or replace needs the order's placement persisted
//!   first (it is in an earlier workflow of the same market). One that comes
//!   first fails with [`NotYetPersisted`], which the runtime retries — on
//!   SQS behind the rest of the market's message group (see
//!   `Outcome::Retry::behind_earlier` in [`crate::runtime::Outcome`]).

use super::StepError;
use crate::db::{Arg, Tx};
use crate::workflow::WorkflowInput;
use anyhow::Result;
use pipeline::{CloseReason, EventKind, OrderRecord, Trade};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet};

/// The error of a workflow that changes orders (a fill, a cancel, a
/// replace) whose placement is not persisted yet: it came before the
/// earlier workflow it builds on. Transient: that workflow's persist is
/// still to come.
#[derive(Debug, thiserror::Error)]
#[error("orders {orders:?} are filled, cancelled or replaced but not persisted yet")]
pub struct NotYetPersisted {
    /// The orders whose placement is missing.
    pub orders: Vec<u64>,
}

/// Applies one workflow's events to the order and trade tables.
pub async fn run(tx: &mut Tx, wf: &WorkflowInput) -> Result<(), StepError> {
    run_batch(tx, &[wf]).await
}

/// A change to an order row that applies only if its event is newer.
struct Change {
    seq: i64,
    ts: i64,
    filled: Option<Decimal>,
    open: Decimal,
    price: Option<Decimal>,
    status: Option<&'static str>,
}

/// Applies a batch of workflows' events: all new orders in one statement,
/// all trades in one, then the order changes in rounds — round `k` applies
/// each order's `k`-th change in sequence order, so every order appears at
/// most once per statement and the result is that of applying the events
/// one by one.
pub async fn run_batch(tx: &mut Tx, wfs: &[&WorkflowInput]) -> Result<(), StepError> {
    let (mut orders, mut trades) = (vec![], vec![]);
    let mut changes: BTreeMap<u64, Vec<Change>> = BTreeMap::new();
    for wf in wfs {
        for ev in &wf.events {
            let (seq, ts) = (ev.seq as i64, ev.ts as i64);
            let mut change = |id: u64, c: Change| changes.entry(id).or_default().push(c);
            match &ev.kind {
                EventKind::OrderAccepted { order } => orders.push(order_row(order, seq, ts)),
                EventKind::Trade(t) => {
                    trades.push(trade_row(t, seq, ts));
                    for (id, f, open) in [
                        (t.maker_order_id.0, t.maker_filled, t.maker_remaining),
                        (t.taker_order_id.0, t.taker_filled, t.taker_remaining),
                    ] {
                        let filled = Some(f);
                        change(
                            id,
                            Change {
                                seq,
                                ts,
                                filled,
                                open,
                                price: None,
                                status: None,
                            },
                        );
                    }
                }
                EventKind::OrderReplaced {
                    order_id,
                    price,
                    quantity,
                    ..
                } => {
                    let (price, open) = (Some(price.value()), quantity.value());
                    change(
                        order_id.0,
                        Change {
                            seq,
                            ts,
                            filled: None,
                            open,
                            price,
                            status: None,
                        },
                    );
                }
                EventKind::OrderClosed {
                    order_id, reason, ..
                } => {
                    let (open, status) = (Decimal::ZERO, Some(close_status(*reason)));
                    change(
                        order_id.0,
                        Change {
                            seq,
                            ts,
                            filled: None,
                            open,
                            price: None,
                            status,
                        },
                    );
                }
                EventKind::Deposited { .. } | EventKind::Withdrawn { .. } => {}
            }
        }
    }
    tx.exec_values(
        "insert into orders (order_id, account_id, market, client_order_id, side, order_type, price, quantity, \
         time_in_force, post_only, status, filled, open_quantity, accepted_seq, last_seq, created_at, updated_at) \
         select * from {rows} where true on conflict (order_id) do nothing",
        &orders,
    )
    .await?;
    tx.exec_values(
        "insert into trades (trade_id, seq, market, price, quantity, quote_amount, taker_side, maker_order_id, \
         taker_order_id, maker_account, taker_account, maker_fee, taker_fee, created_at) \
         select * from {rows} where true on conflict (trade_id) do nothing",
        &trades,
    )
    .await?;
    for list in changes.values_mut() {
        list.sort_by_key(|c| c.seq);
    }
    for round in 0.. {
        let rows: Vec<Vec<Arg>> = changes
            .iter()
            .filter_map(|(id, list)| list.get(round).map(|c| change_row(*id, c)))
            .collect();
        if rows.is_empty() {
            break;
        }
        tx.exec_values(
            "update orders set filled = coalesce(v.column2, orders.filled), open_quantity = v.column3, \
             price = coalesce(v.column4, orders.price), status = coalesce(v.column5, orders.status), \
             last_seq = v.column6, updated_at = v.column7 from {rows} \
             where orders.order_id = v.column1 and orders.last_seq < v.column6",
            &rows,
        )
        .await?;
    }
    // A change (fill, cancel, replace) of an order that is not persisted yet
    // is out of order: the update above matched no row and would be lost
    // when the placement's insert comes later (a cancelled order would read
    // back as open). Fail, and so roll back, and retry.
    let changed: BTreeSet<u64> = changes.keys().copied().collect();
    let ids: Vec<Vec<Arg>> = changed.iter().map(|i| vec![Arg::I64(*i as i64)]).collect();
    let known = tx
        .rows_values(
            "select order_id from orders where order_id in (select column1 from {rows})",
            &ids,
        )
        .await?;
    if known.len() != changed.len() {
        let known: BTreeSet<u64> = known
            .iter()
            .filter_map(|r| r.i64(0).ok())
            .map(|v| v as u64)
            .collect();
        let orders = changed.difference(&known).copied().collect();
        return Err(StepError::Transient(NotYetPersisted { orders }.into()));
    }
    Ok(())
}

fn change_row(id: u64, c: &Change) -> Vec<Arg> {
    vec![
        Arg::I64(id as i64),
        c.filled.map_or(Arg::NullDec, Arg::Dec),
        Arg::Dec(c.open),
        c.price.map_or(Arg::NullDec, Arg::Dec),
        c.status.map_or(Arg::NullText, |s| Arg::Text(s.into())),
        Arg::I64(c.seq),
        Arg::I64(c.ts),
    ]
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

fn order_row(o: &OrderRecord, seq: i64, ts: i64) -> Vec<Arg> {
    vec![
        Arg::I64(o.id.0 as i64),
        Arg::I64(o.account.0 as i64),
        Arg::Text(o.market.to_string()),
        o.client_order_id
            .as_ref()
            .map_or(Arg::NullText, |c| Arg::Text(c.to_string())),
        Arg::Text(o.side.as_str().into()),
        Arg::Text(o.order_type.as_str().into()),
        o.price.map_or(Arg::NullDec, |p| Arg::Dec(p.value())),
        Arg::Dec(o.quantity.value()),
        Arg::Text(o.time_in_force.as_str().into()),
        Arg::Bool(o.post_only),
        Arg::Text("open".into()),
        Arg::Dec(Decimal::ZERO),
        Arg::Dec(o.quantity.value()),
        Arg::I64(seq),
        Arg::I64(seq),
        Arg::I64(ts),
        Arg::I64(ts),
    ]
}

fn trade_row(t: &Trade, seq: i64, ts: i64) -> Vec<Arg> {
    vec![
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
    ]
}
