//! Workflow state and attempt history: the rows operators and auditors read.
//! Attempt rows are only ever inserted. The reads for operators are here;
//! what the runtime writes, batch by batch, is in `write`.

mod write;

pub use write::*;

use crate::db::{Arg, Db, Row};
use anyhow::Result;
use serde::Serialize;
use std::collections::HashMap;

/// `$1, $2, …` for `n` parameters starting at `$from`.
pub fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A workflow as stored.
#[derive(Clone, Debug, Serialize)]
pub struct WorkflowRow {
    /// The workflow id (its first event's sequence number).
    pub id: u64,
    /// order, cancel, replace, deposit, withdrawal.
    pub kind: String,
    /// The order it is about, if any.
    pub order_id: Option<u64>,
    /// The account that issued the command.
    pub account_id: u64,
    /// pending, running, retrying, completed, dead.
    pub state: String,
    /// The current (or last) step.
    pub step: String,
    /// Attempts of the current step so far.
    pub attempts: i64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// When it was accepted (µs since the epoch).
    pub created_at: i64,
    /// When it last changed (µs since the epoch).
    pub updated_at: i64,
    /// Until when the running attempt holds it (µs since the epoch).
    pub lease_until: Option<i64>,
}

const WORKFLOW_COLS: &str = "id, kind, order_id, account_id, state, step, attempts, last_error, created_at, updated_at, lease_until";

fn workflow_row(r: &Row) -> Result<WorkflowRow> {
    Ok(WorkflowRow {
        id: r.i64(0)? as u64,
        kind: r.text(1)?,
        order_id: r.opt_i64(2)?.map(|v| v as u64),
        account_id: r.i64(3)? as u64,
        state: r.text(4)?,
        step: r.text(5)?,
        attempts: r.i64(6)?,
        last_error: r.opt_text(7)?,
        created_at: r.i64(8)?,
        updated_at: r.i64(9)?,
        lease_until: r.opt_i64(10)?,
    })
}

/// Workflows in `state` (or all), newest first. `stuck_after_us` adds the
/// derived "stuck" filter: running past its lease, or not completed and not
/// dead and unchanged for that long.
pub async fn list(
    db: &Db,
    state: Option<&str>,
    stuck_after_us: Option<i64>,
    now: i64,
    limit: i64,
) -> Result<Vec<WorkflowRow>> {
    let (sql, args) = match (state, stuck_after_us) {
        (_, Some(age)) => (
            format!(
                "select {WORKFLOW_COLS} from workflows where state not in ('completed', 'dead') and \
                 ((state = 'running' and lease_until < $1) or updated_at < $2) order by id limit $3"
            ),
            vec![Arg::I64(now), Arg::I64(now - age), Arg::I64(limit)],
        ),
        (Some(s), None) => (
            format!(
                "select {WORKFLOW_COLS} from workflows where state = $1 order by id desc limit $2"
            ),
            vec![Arg::Text(s.into()), Arg::I64(limit)],
        ),
        (None, None) => (
            format!("select {WORKFLOW_COLS} from workflows order by id desc limit $1"),
            vec![Arg::I64(limit)],
        ),
    };
    db.rows(&sql, &args)
        .await?
        .iter()
        .map(workflow_row)
        .collect()
}

/// Counts of workflows per state.
pub async fn counts(db: &Db) -> Result<Vec<(String, i64)>> {
    db.rows(
        "select state, count(*) from workflows group by state order by state",
        &[],
    )
    .await?
    .iter()
    .map(|r| Ok((r.text(0)?, r.i64(1)?)))
    .collect()
}

/// Every workflow of a command on `order_id` (its place, cancel, replace)
/// and every attempt of each, in time order. The fills of a resting order
/// are settled in the workflows of the orders that took them:
/// [`maker_fills`].
pub async fn trace(db: &Db, order_id: u64) -> Result<Vec<(WorkflowRow, Vec<Attempt>)>> {
    let wfs = db
        .rows(
            &format!("select {WORKFLOW_COLS} from workflows where order_id = $1 order by id"),
            &[Arg::I64(order_id as i64)],
        )
        .await?;
    let wfs = wfs.iter().map(workflow_row).collect::<Result<Vec<_>>>()?;
    let mut attempts = attempts_of(db, wfs.iter().map(|w| w.id)).await?;
    Ok(wfs
        .into_iter()
        .map(|w| {
            let a = attempts.remove(&w.id).unwrap_or_default();
            (w, a)
        })
        .collect())
}

/// A workflow of another order's command that filled `order_id` as the
/// resting (maker) order, with the trades it carried for it.
#[derive(Clone, Debug)]
pub struct MakerFill {
    /// The workflow (of the taking order's command).
    pub workflow: WorkflowRow,
    /// The trades of `order_id` in it.
    pub trade_ids: Vec<u64>,
    /// Every attempt of every step of that workflow.
    pub attempts: Vec<Attempt>,
}

/// The workflows that persisted and settled `order_id`'s fills as the
/// maker, in time order (as persist has recorded the trades so far). A
/// workflow's id is the first sequence number of its command, so a trade
/// belongs to the last workflow whose id is not after the trade's.
pub async fn maker_fills(db: &Db, order_id: u64) -> Result<Vec<MakerFill>> {
    let rows = db
        .rows(
            &format!(
                "select {WORKFLOW_COLS}, trade_id from (\
                   select w.*, t.trade_id from trades t \
                   join workflows w on w.id = (select max(id) from workflows where id <= t.seq) \
                   where t.maker_order_id = $1) as f \
                 order by id, trade_id"
            ),
            &[Arg::I64(order_id as i64)],
        )
        .await?;
    let mut out: Vec<MakerFill> = Vec::new();
    for r in &rows {
        let trade_id = r.i64(11)? as u64;
        match out.last_mut() {
            Some(f) if f.workflow.id == r.i64(0)? as u64 => f.trade_ids.push(trade_id),
            _ => out.push(MakerFill {
                workflow: workflow_row(r)?,
                trade_ids: vec![trade_id],
                attempts: Vec::new(),
            }),
        }
    }
    let mut attempts = attempts_of(db, out.iter().map(|f| f.workflow.id)).await?;
    for f in &mut out {
        f.attempts = attempts.remove(&f.workflow.id).unwrap_or_default();
    }
    Ok(out)
}

/// Every attempt of the workflows `ids`, oldest first, by workflow: one
/// query per thousand workflows, not one each.
async fn attempts_of(
    db: &Db,
    ids: impl Iterator<Item = u64>,
) -> Result<HashMap<u64, Vec<Attempt>>> {
    let ids: Vec<Arg> = ids.map(|id| Arg::I64(id as i64)).collect();
    let mut out: HashMap<u64, Vec<Attempt>> = HashMap::new();
    for chunk in ids.chunks(1_000) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "select workflow_id, step, attempt, worker, started_at, finished_at, outcome, error \
             from workflow_attempts where workflow_id in ({}) order by id",
            marks.join(", ")
        );
        for r in db.rows(&sql, chunk).await? {
            let attempt = Attempt {
                workflow_id: r.i64(0)? as u64,
                step: r.text(1)?,
                attempt: r.i64(2)? as u32,
                worker: r.text(3)?,
                started_at: r.i64(4)?,
                finished_at: r.i64(5)?,
                outcome: r.text(6)?,
                error: r.opt_text(7)?,
            };
            out.entry(attempt.workflow_id).or_default().push(attempt);
        }
    }
    Ok(out)
}
