//! archive: the workflow's final record as one JSON object.
//!
//! - input: one workflow, and what the database holds about it;
//! - idempotency key: the object key `yyyy/mm/dd/<order_id>/<workflow_id>.json`
//!   (`account-<id>` in place of the order for funds movements); the object is
//!   written only if absent (S3 `If-None-Match: *`, a no-replace link on
//!   disk), so the first complete write wins;
//! - effect: the object, and its SHA-256 in `archive_objects`; a batch reads
//!   each table once and records every checksum in one statement;
//! - recorded: the attempt row, by the runtime.

use super::StepError;
use crate::db::{Arg, Row, Tx};
use crate::sinks::ArchiveStore;
use crate::workflow::WorkflowInput;
use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

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
    run_batch(tx, store, &[wf]).await
}

/// Builds a batch's records, stores them and records their checksums, all
/// in `tx`. The runtime runs the three parts separately ([`build`] in its
/// first transaction, [`store`] between, [`record`] in its last), so no
/// write lock is held while files are written.
pub async fn run_batch(
    tx: &mut Tx,
    archive: &ArchiveStore,
    wfs: &[&WorkflowInput],
) -> Result<(), StepError> {
    let objects = build(tx, wfs).await?;
    let stored = store(archive, objects).await?;
    record(tx, wfs, stored).await
}

/// The objects (key, bytes) of a batch, read with one query per table.
pub async fn build(
    tx: &mut Tx,
    wfs: &[&WorkflowInput],
) -> Result<Vec<(String, Vec<u8>)>, StepError> {
    let mut objects = Vec::with_capacity(wfs.len());
    for (wf, record) in wfs.iter().zip(records(tx, wfs).await?) {
        let bytes =
            serde_json::to_vec_pretty(&record).map_err(|e| StepError::Permanent(e.into()))?;
        objects.push((object_key(wf), bytes));
    }
    Ok(objects)
}

/// Stores each object unless its key exists (in parallel; on disk each
/// file and each directory is synced once); returns (key, stored bytes).
pub async fn store(
    archive: &ArchiveStore,
    objects: Vec<(String, Vec<u8>)>,
) -> Result<Vec<(String, Vec<u8>)>, StepError> {
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    let stored: Vec<Vec<u8>> = match archive {
        ArchiveStore::Dir(d) => d.put_many(objects).await?,
        other => {
            futures::stream::iter(objects)
                .map(|(k, b)| async move { other.put_if_absent(&k, b).await })
                .buffered(16)
                .try_collect()
                .await?
        }
    };
    Ok(keys.into_iter().zip(stored).collect())
}

/// Records the stored objects' keys and checksums, in one statement.
pub async fn record(
    tx: &mut Tx,
    wfs: &[&WorkflowInput],
    stored: Vec<(String, Vec<u8>)>,
) -> Result<(), StepError> {
    let rows: Vec<Vec<Arg>> = wfs
        .iter()
        .zip(stored)
        .map(|(wf, (key, bytes))| {
            vec![
                Arg::I64(wf.id as i64),
                Arg::Text(key),
                Arg::Text(hex::encode(Sha256::digest(&bytes))),
                Arg::I64(wf.ts as i64),
            ]
        })
        .collect();
    tx.exec_values(
        "insert into archive_objects (workflow_id, object_key, sha256, created_at) select * from {rows} where true \
         on conflict (workflow_id) do nothing",
        &rows,
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

fn id_rows(ids: impl IntoIterator<Item = u64>) -> Vec<Vec<Arg>> {
    let set: std::collections::BTreeSet<u64> = ids.into_iter().collect();
    set.into_iter().map(|i| vec![Arg::I64(i as i64)]).collect()
}

/// Rows grouped by the integer in column `col`.
fn by_key(rows: Vec<Row>, col: usize) -> Result<HashMap<u64, Vec<Row>>> {
    let mut out: HashMap<u64, Vec<Row>> = HashMap::new();
    for r in rows {
        out.entry(r.i64(col)? as u64).or_default().push(r);
    }
    Ok(out)
}

/// The records, one per workflow: its input, the orders it touched as
/// persisted, its trades, its ledger legs and its step history so far.
async fn records(tx: &mut Tx, wfs: &[&WorkflowInput]) -> Result<Vec<Value>> {
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
    let leg_cols = ["posting", "leg", "account_id", "asset", "amount", "kind"];
    let att_cols = [
        "step",
        "attempt",
        "worker",
        "started_at",
        "finished_at",
        "outcome",
        "error",
    ];
    let trade_ids = |wf: &WorkflowInput| -> Vec<u64> {
        wf.events
            .iter()
            .filter_map(|e| match &e.kind {
                pipeline::EventKind::Trade(t) => Some(t.trade_id.0),
                _ => None,
            })
            .collect()
    };
    let wf_ids = id_rows(wfs.iter().map(|w| w.id));
    let sql = format!(
        "select {} from orders where order_id in (select column1 from {{rows}})",
        order_cols.join(", ")
    );
    let orders = by_key(
        tx.rows_values(&sql, &id_rows(wfs.iter().filter_map(|w| w.order_id())))
            .await?,
        0,
    )?;
    let sql = format!(
        "select {} from trades where trade_id in (select column1 from {{rows}})",
        trade_cols.join(", ")
    );
    let trades = by_key(
        tx.rows_values(&sql, &id_rows(wfs.iter().flat_map(|w| trade_ids(w))))
            .await?,
        0,
    )?;
    let sql = format!(
        "select {}, workflow_id from ledger_entries where workflow_id in (select column1 from {{rows}}) order by posting, leg",
        leg_cols.join(", ")
    );
    let legs = by_key(tx.rows_values(&sql, &wf_ids).await?, leg_cols.len())?;
    let sql = format!(
        "select {}, workflow_id from workflow_attempts where workflow_id in (select column1 from {{rows}}) order by id",
        att_cols.join(", ")
    );
    let attempts = by_key(tx.rows_values(&sql, &wf_ids).await?, att_cols.len())?;
    let none = Vec::new();
    Ok(wfs
        .iter()
        .map(|wf| {
            let orders = wf.order_id().and_then(|o| orders.get(&o)).unwrap_or(&none);
            let trades: Vec<Row> = trade_ids(wf)
                .iter()
                .flat_map(|t| trades.get(t).cloned().unwrap_or_default())
                .collect();
            json!({
                "workflow": wf,
                "orders": rows_json(orders, &order_cols),
                "trades": rows_json(&trades, &trade_cols),
                "ledger": rows_json(legs.get(&wf.id).unwrap_or(&none), &leg_cols),
                "steps": rows_json(attempts.get(&wf.id).unwrap_or(&none), &att_cols),
            })
        })
        .collect())
}
