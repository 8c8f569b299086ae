//! What the runtime writes: workflow rows, their state, and attempt rows —
//! each a single multi-row statement per batch.

use crate::db::{Arg, Tx};
use crate::workflow::{Step, WorkflowInput, WorkflowState};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashMap;

fn ids_arg(ids: &[u64]) -> Vec<Vec<Arg>> {
    ids.iter().map(|i| vec![Arg::I64(*i as i64)]).collect()
}

/// Inserts workflow rows (see [`workflow_rows`]) unless present; `{rows}`
/// as in [`Tx::exec_values`].
pub const INSERT_WORKFLOWS: &str = "insert into workflows (id, kind, order_id, account_id, market, input, state, step, attempts, created_at, updated_at) \
     select * from {rows} where true on conflict (id) do nothing";

/// The rows [`INSERT_WORKFLOWS`] takes: each workflow `pending` at its
/// first step.
pub fn workflow_rows(wfs: &[WorkflowInput], now: i64) -> Result<Vec<Vec<Arg>>> {
    let mut rows = Vec::with_capacity(wfs.len());
    for wf in wfs {
        let input = serde_json::to_string(wf).context("Failed to encode a workflow")?;
        rows.push(vec![
            Arg::I64(wf.id as i64),
            Arg::Text(wf.kind.as_str().into()),
            wf.order_id().map_or(Arg::NullI64, |o| Arg::I64(o as i64)),
            Arg::I64(wf.account() as i64),
            wf.market().map_or(Arg::NullText, Arg::Text),
            Arg::Text(input),
            Arg::Text("pending".into()),
            Arg::Text(wf.kind.steps()[0].as_str().into()),
            Arg::I64(0),
            Arg::I64(now),
            Arg::I64(now),
        ]);
    }
    Ok(rows)
}

/// Inserts workflow rows in state `pending` at their first step, unless present.
pub async fn insert_workflows(tx: &mut Tx, wfs: &[WorkflowInput], now: i64) -> Result<()> {
    tx.exec_values(INSERT_WORKFLOWS, &workflow_rows(wfs, now)?)
        .await?;
    Ok(())
}

/// A loaded workflow: its input and where it stands.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// What it carries.
    pub input: WorkflowInput,
    /// Its state.
    pub state: WorkflowState,
    /// Its current step.
    pub step: Step,
    /// When its state last changed (µs since the epoch).
    pub updated_at: i64,
}

/// Loads workflows by id, in id order (missing ids are left out). On
/// PostgreSQL the rows are locked until the transaction ends, so a
/// redelivered job waits for the first one and then sees it moved on.
pub async fn load(tx: &mut Tx, ids: &[u64]) -> Result<Vec<Loaded>> {
    let sql = if tx.is_pg() {
        "select id, input, state, step, updated_at from workflows where id in (select column1 from {rows}) order by id for update"
    } else {
        "select id, input, state, step, updated_at from workflows where id in (select column1 from {rows}) order by id"
    };
    let mut out = Vec::with_capacity(ids.len());
    for r in tx.rows_values(sql, &ids_arg(ids)).await? {
        let input: WorkflowInput =
            serde_json::from_str(&r.text(1)?).context("Malformed workflow input")?;
        let state = parse_state(&r.text(2)?)?;
        let step = Step::parse(&r.text(3)?).context("unknown step in the workflows table")?;
        out.push(Loaded {
            input,
            state,
            step,
            updated_at: r.i64(4)?,
        });
    }
    out.sort_by_key(|l| l.input.id);
    Ok(out)
}

pub(super) fn parse_state(s: &str) -> Result<WorkflowState> {
    Ok(match s {
        "pending" => WorkflowState::Pending,
        "running" => WorkflowState::Running,
        "retrying" => WorkflowState::Retrying,
        "completed" => WorkflowState::Completed,
        "dead" => WorkflowState::Dead,
        other => anyhow::bail!("unknown workflow state {other:?}"),
    })
}

/// Attempts of `step` recorded so far, per workflow id.
pub async fn attempts_so_far(tx: &mut Tx, ids: &[u64], step: Step) -> Result<HashMap<u64, u32>> {
    let mut out = HashMap::new();
    let sql = format!(
        "select workflow_id, count(*) from workflow_attempts where step = '{}' and outcome <> 'duplicate' \
         and workflow_id in (select column1 from {{rows}}) group by workflow_id",
        step.as_str()
    );
    for r in tx.rows_values(&sql, &ids_arg(ids)).await? {
        out.insert(r.i64(0)? as u64, r.i64(1)? as u32);
    }
    Ok(out)
}

/// One attempt, as appended to the history.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// The workflow.
    pub workflow_id: u64,
    /// The step.
    pub step: String,
    /// 1 for the first attempt of this step.
    pub attempt: u32,
    /// Which worker ran it.
    pub worker: String,
    /// Start (µs since the epoch).
    pub started_at: i64,
    /// End (µs since the epoch).
    pub finished_at: i64,
    /// done, duplicate, retry or dead.
    pub outcome: String,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// Appends an attempt row.
pub async fn append_attempt(tx: &mut Tx, a: &Attempt) -> Result<()> {
    append_attempts(tx, std::slice::from_ref(a)).await
}

/// Appends attempt rows, in order.
pub async fn append_attempts(tx: &mut Tx, attempts: &[Attempt]) -> Result<()> {
    let rows: Vec<Vec<Arg>> = attempts
        .iter()
        .map(|a| {
            vec![
                Arg::I64(a.workflow_id as i64),
                Arg::Text(a.step.clone()),
                Arg::I64(i64::from(a.attempt)),
                Arg::Text(a.worker.clone()),
                Arg::I64(a.started_at),
                Arg::I64(a.finished_at),
                Arg::Text(a.outcome.clone()),
                a.error.clone().map_or(Arg::NullText, Arg::Text),
            ]
        })
        .collect();
    tx.exec_values(
        "insert into workflow_attempts (workflow_id, step, attempt, worker, started_at, finished_at, outcome, error) \
         select * from {rows} where true",
        &rows,
    )
    .await?;
    Ok(())
}

/// A workflow's new state, step, attempt count, error and lease.
#[derive(Clone, Debug)]
pub struct StateChange {
    /// The workflow.
    pub id: u64,
    /// Its new state.
    pub state: WorkflowState,
    /// Its current step.
    pub step: Step,
    /// Attempts of that step so far.
    pub attempts: u32,
    /// The last error, if any.
    pub error: Option<String>,
    /// When (µs since the epoch).
    pub now: i64,
    /// Until when a running attempt holds it.
    pub lease_until: Option<i64>,
}

/// Sets a workflow's state, step, attempt count, error and lease.
#[allow(clippy::too_many_arguments)]
pub async fn set_state(
    tx: &mut Tx,
    id: u64,
    state: WorkflowState,
    step: Step,
    attempts: u32,
    error: Option<&str>,
    now: i64,
    lease_until: Option<i64>,
) -> Result<()> {
    let c = StateChange {
        id,
        state,
        step,
        attempts,
        error: error.map(str::to_string),
        now,
        lease_until,
    };
    set_states(tx, &[c]).await
}

/// Applies state changes, one statement per batch (one change per workflow).
pub async fn set_states(tx: &mut Tx, changes: &[StateChange]) -> Result<()> {
    let rows: Vec<Vec<Arg>> = changes
        .iter()
        .map(|c| {
            vec![
                Arg::I64(c.id as i64),
                Arg::Text(c.state.as_str().into()),
                Arg::Text(c.step.as_str().into()),
                Arg::I64(i64::from(c.attempts)),
                c.error.clone().map_or(Arg::NullText, Arg::Text),
                Arg::I64(c.now),
                c.lease_until.map_or(Arg::NullI64, Arg::I64),
            ]
        })
        .collect();
    tx.exec_values(
        "update workflows set state = v.column2, step = v.column3, attempts = v.column4, last_error = v.column5, \
         updated_at = v.column6, lease_until = v.column7 from {rows} where workflows.id = v.column1",
        &rows,
    )
    .await?;
    Ok(())
}

/// Records that the recovery barrier `id` (`<token>:<group>`) reached persist.
pub async fn pass_barrier(tx: &mut Tx, id: &str, now: i64) -> Result<()> {
    let token = id.split_once(':').map_or(id, |(t, _)| t);
    tx.exec(
        "insert into recovery_barriers (id, token, passed_at) values ($1, $2, $3) on conflict (id) do nothing",
        &[Arg::Text(id.into()), Arg::Text(token.into()), Arg::I64(now)],
    )
    .await?;
    Ok(())
}
