//! archive: the workflow's final record as one JSON object.
//!
//! - input: one workflow, and what the database holds about it;
//! - idempotency key: the object key `yyyy/mm/dd/<order_id>/<workflow_id>.json`
//!   (`account-<id>` in place of the order for funds movements); the object is
//!   written only if absent (S3 `If-None-Match: *`, a no-replace link on
//!   disk), so the first complete write wins;
//! - effect: the object, and its SHA-256 in `archive_objects`;
//! - recorded: the attempt row, by the runtime.

use super::StepError;
use crate::db::{Arg, Row, Tx};
use crate::sinks::ArchiveStore;
use crate::workflow::WorkflowInput;
use anyhow::Result;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The object key of a workflow's record.
pub fn object_key(wf: &WorkflowInput) -> String {
    let day = chrono::DateTime::from_timestamp_micros(wf.ts as i64)
        .unwrap_or_default()
        .format("%Y/%m/%d");
    match wf.order_id() {
        Some(o) => format!("{day}/{o}/{}.json", wf.id),
        None => format!("{day}/account-{}/{}.json", wf.account(), wf.id),
    }
}

/// Builds the record, stores it if absent, and records key and checksum.
pub async fn run(tx: &mut Tx, store: &ArchiveStore, wf: &WorkflowInput) -> Result<(), StepError> {
    let record = record(tx, wf).await?;
    let bytes = serde_json::to_vec_pretty(&record).map_err(|e| StepError::Permanent(e.into()))?;
    let key = object_key(wf);
    let stored = store.put_if_absent(&key, bytes).await?;
    let sha = hex::encode(Sha256::digest(&stored));
    tx.exec(
        "insert into archive_objects (workflow_id, object_key, sha256, created_at) values ($1, $2, $3, $4) \
         on conflict (workflow_id) do nothing",
        &[Arg::I64(wf.id as i64), Arg::Text(key), Arg::Text(sha), Arg::I64(wf.ts as i64)],
    )
    .await?;
    Ok(())
}

fn rows_json(rows: &[Row], cols: &[&str]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                let mut m = serde_json::Map::new();
                for (i, c) in cols.iter().enumerate() {
                    let v = match &r.0[i] {
                        crate::db::Val::I64(v) => json!(v),
                        crate::db::Val::Text(t) => json!(t),
                        crate::db::Val::Bool(b) => json!(b),
                        crate::db::Val::Null => Value::Null,
                    };
                    m.insert((*c).to_string(), v);
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// The record: the workflow's input, the orders it touched as persisted, its
/// trades, its ledger legs and its step history so far.
async fn record(tx: &mut Tx, wf: &WorkflowInput) -> Result<Value> {
    let id = Arg::I64(wf.id as i64);
    let order_cols = [
        "order_id",
        "account_id",
        "market",
        "client_order_id",
        "side",
        "order_type",
        "price",
        "quantity",
        "time_in_force",
        "status",
        "filled",
        "open_quantity",
        "last_seq",
    ];
    let orders = match wf.order_id() {
        Some(o) => {
            tx.rows(
                &format!(
                    "select {} from orders where order_id = $1",
                    order_cols.join(", ")
                ),
                &[Arg::I64(o as i64)],
            )
            .await?
        }
        None => vec![],
    };
    let trade_cols = [
        "trade_id",
        "seq",
        "market",
        "price",
        "quantity",
        "quote_amount",
        "taker_side",
        "maker_order_id",
        "taker_order_id",
        "maker_fee",
        "taker_fee",
    ];
    let trade_ids: Vec<i64> = wf
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            pipeline::EventKind::Trade(t) => Some(t.trade_id.0 as i64),
            _ => None,
        })
        .collect();
    let mut trades = Vec::new();
    for t in trade_ids {
        trades.extend(
            tx.rows(
                &format!(
                    "select {} from trades where trade_id = $1",
                    trade_cols.join(", ")
                ),
                &[Arg::I64(t)],
            )
            .await?,
        );
    }
    let leg_cols = ["posting", "leg", "account_id", "asset", "amount", "kind"];
    let legs = tx
        .rows(
            &format!(
                "select {} from ledger_entries where workflow_id = $1 order by posting, leg",
                leg_cols.join(", ")
            ),
            std::slice::from_ref(&id),
        )
        .await?;
    let att_cols = [
        "step",
        "attempt",
        "worker",
        "started_at",
        "finished_at",
        "outcome",
        "error",
    ];
    let attempts = tx
        .rows(
            &format!(
                "select {} from workflow_attempts where workflow_id = $1 order by id",
                att_cols.join(", ")
            ),
            &[id],
        )
        .await?;
    Ok(json!({
        "workflow": wf,
        "orders": rows_json(&orders, &order_cols),
        "trades": rows_json(&trades, &trade_cols),
        "ledger": rows_json(&legs, &leg_cols),
        "steps": rows_json(&attempts, &att_cols),
    }))
}
