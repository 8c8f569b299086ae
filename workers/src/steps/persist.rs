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
use pipeline::{
    ClientOrderId, CloseReason, Event, EventKind, MarketId, OrderRecord, OrderType, Side,
    TimeInForce, Trade,
};
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

/// The columns of `orders`, in the order [`OrderRow::args`] gives them.
pub const ORDER_COLUMNS: &str = "order_id, account_id, market, client_order_id, side, order_type, price, quantity, \
     time_in_force, post_only, status, filled, open_quantity, accepted_seq, last_seq, created_at, updated_at";

/// An order's row: inserted as [`OrderRow::accepted`] makes it, then
/// changed by each [`Change`] of [`order_changes`]. `ops verify` folds the
/// journal's events with the same three to know what each row must hold
/// (see [`crate::audit`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OrderRow {
    /// `order_id`.
    pub order_id: u64,
    /// `account_id`.
    pub account_id: u64,
    /// `market`.
    pub market: MarketId,
    /// `client_order_id`.
    pub client_order_id: Option<ClientOrderId>,
    /// `side`.
    pub side: Side,
    /// `order_type`.
    pub order_type: OrderType,
    /// `price`: the limit price, the newest a replace set.
    pub price: Option<Decimal>,
    /// `quantity`: as placed (a replace changes the open quantity only).
    pub quantity: Decimal,
    /// `time_in_force`.
    pub time_in_force: TimeInForce,
    /// `post_only`.
    pub post_only: bool,
    /// `status`: `open`, or the [`close_status`] of its close.
    pub status: &'static str,
    /// `filled`.
    pub filled: Decimal,
    /// `open_quantity`.
    pub open_quantity: Decimal,
    /// `accepted_seq`: the sequence number of its `order_accepted` event.
    pub accepted_seq: i64,
    /// `last_seq`: that of the newest event applied to it.
    pub last_seq: i64,
    /// `created_at`: its `order_accepted` event's time.
    pub created_at: i64,
    /// `updated_at`: the newest applied event's time.
    pub updated_at: i64,
}

impl OrderRow {
    /// The row an `order_accepted` event at `seq`, `ts` inserts: open,
    /// nothing filled.
    pub fn accepted(o: &OrderRecord, seq: i64, ts: i64) -> OrderRow {
        OrderRow {
            order_id: o.id.0,
            account_id: o.account.0,
            market: o.market,
            client_order_id: o.client_order_id,
            side: o.side,
            order_type: o.order_type,
            price: o.price.map(|p| p.value()),
            quantity: o.quantity.value(),
            time_in_force: o.time_in_force,
            post_only: o.post_only,
            status: "open",
            filled: Decimal::ZERO,
            open_quantity: o.quantity.value(),
            accepted_seq: seq,
            last_seq: seq,
            created_at: ts,
            updated_at: ts,
        }
    }

    /// Its values, one per column of [`ORDER_COLUMNS`].
    pub fn args(&self) -> Vec<Arg> {
        vec![
            Arg::I64(self.order_id as i64),
            Arg::I64(self.account_id as i64),
            Arg::Text(self.market.to_string()),
            self.client_order_id
                .as_ref()
                .map_or(Arg::NullText, |c| Arg::Text(c.to_string())),
            Arg::Text(self.side.as_str().into()),
            Arg::Text(self.order_type.as_str().into()),
            self.price.map_or(Arg::NullDec, Arg::Dec),
            Arg::Dec(self.quantity),
            Arg::Text(self.time_in_force.as_str().into()),
            Arg::Bool(self.post_only),
            Arg::Text(self.status.into()),
            Arg::Dec(self.filled),
            Arg::Dec(self.open_quantity),
            Arg::I64(self.accepted_seq),
            Arg::I64(self.last_seq),
            Arg::I64(self.created_at),
            Arg::I64(self.updated_at),
        ]
    }
}

/// A change to an order row that applies only if its event is newer.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The event's sequence number.
    pub seq: i64,
    /// The event's time.
    pub ts: i64,
    /// The order's filled quantity after it (a trade's), else unchanged.
    pub filled: Option<Decimal>,
    /// The order's open quantity after it.
    pub open: Decimal,
    /// A replace's new price, else unchanged.
    pub price: Option<Decimal>,
    /// A close's status, else unchanged.
    pub status: Option<&'static str>,
}

impl Change {
    /// What the update statement of [`run_batch`] does to `row`.
    pub fn apply(&self, row: &mut OrderRow) {
        if row.last_seq < self.seq {
            row.filled = self.filled.unwrap_or(row.filled);
            row.open_quantity = self.open;
            row.price = self.price.or(row.price);
            row.status = self.status.unwrap_or(row.status);
            row.last_seq = self.seq;
            row.updated_at = self.ts;
        }
    }
}

/// The order rows `ev` changes, each with its change: a trade's maker and
/// taker, a replaced or a closed order.
pub fn order_changes(ev: &Event) -> [Option<(u64, Change)>; 2] {
    let (seq, ts) = (ev.seq as i64, ev.ts as i64);
    let change = |filled, open, price, status| Change {
        seq,
        ts,
        filled,
        open,
        price,
        status,
    };
    match &ev.kind {
        EventKind::Trade(t) => [
            Some((
                t.maker_order_id.0,
                change(Some(t.maker_filled), t.maker_remaining, None, None),
            )),
            Some((
                t.taker_order_id.0,
                change(Some(t.taker_filled), t.taker_remaining, None, None),
            )),
        ],
        EventKind::OrderReplaced {
            order_id,
            price,
            quantity,
            ..
        } => [
            Some((
                order_id.0,
                change(None, quantity.value(), Some(price.value()), None),
            )),
            None,
        ],
        EventKind::OrderClosed {
            order_id, reason, ..
        } => [
            Some((
                order_id.0,
                change(None, Decimal::ZERO, None, Some(close_status(*reason))),
            )),
            None,
        ],
        EventKind::OrderAccepted { .. }
        | EventKind::Deposited { .. }
        | EventKind::Withdrawn { .. } => [None, None],
    }
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
            match &ev.kind {
                EventKind::OrderAccepted { order } => {
                    orders.push(OrderRow::accepted(order, seq, ts).args());
                }
                EventKind::Trade(t) => trades.push(trade_row(t, seq, ts)),
                _ => {}
            }
            for (id, c) in order_changes(ev).into_iter().flatten() {
                changes.entry(id).or_default().push(c);
            }
        }
    }
    tx.exec_values(
        &format!(
            "insert into orders ({ORDER_COLUMNS}) \
             select * from {{rows}} where true on conflict (order_id) do nothing"
        ),
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
