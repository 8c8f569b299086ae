//! Workflow state and attempt history: the rows operators and auditors read.
//! Attempt rows are only ever inserted.

use crate::db::{Arg, Db, Row, Tx};
use crate::workflow::{Step, WorkflowInput, WorkflowState};
use anyhow::{Context, Result};
use serde::Serialize;

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

/// Inserts a workflow row in state `pending` at its first step, unless present.
pub async fn insert_workflow(tx: &mut Tx, wf: &WorkflowInput, now: i64) -> Result<()> {
    let input = serde_json::to_string(wf).context("Failed to encode a workflow")?;
    tx.exec(
        "insert into workflows (id, kind, order_id, account_id, market, input, state, step, attempts, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, 'pending', $7, 0, $8, $8) on conflict (id) do nothing",
        &[
            Arg::I64(wf.id as i64),
            Arg::Text(wf.kind.as_str().into()),
            wf.order_id().map_or(Arg::NullI64, |o| Arg::I64(o as i64)),
            Arg::I64(wf.account() as i64),
            wf.market().map_or(Arg::NullText, Arg::Text),
            Arg::Text(input),
            Arg::Text(wf.kind.steps()[0].as_str().into()),
            Arg::I64(now),
        ],
    )
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
}

/// Loads workflows by id (missing ids are left out).
pub async fn load(tx: &mut Tx, ids: &[u64]) -> Result<Vec<Loaded>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let sql = format!(
        "select input, state, step from workflows where id in ({}) order by id",
        placeholders(1, ids.len())
    );
    let args: Vec<Arg> = ids.iter().map(|i| Arg::I64(*i as i64)).collect();
    let mut out = Vec::with_capacity(ids.len());
    for r in tx.rows(&sql, &args).await? {
        let input: WorkflowInput =
            serde_json::from_str(&r.text(0)?).context("Malformed workflow input")?;
        let state = parse_state(&r.text(1)?)?;
        let step = Step::parse(&r.text(2)?).context("unknown step in the workflows table")?;
        out.push(Loaded { input, state, step });
    }
    Ok(out)
}

fn parse_state(s: &str) -> Result<WorkflowState> {
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
pub async fn attempts_so_far(
    tx: &mut Tx,
    ids: &[u64],
    step: Step,
) -> Result<std::collections::HashMap<u64, u32>> {
    let mut out = std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "select workflow_id, count(*) from workflow_attempts where step = $1 and outcome <> 'duplicate' \
         and workflow_id in ({}) group by workflow_id",
        placeholders(2, ids.len())
    );
    let mut args = vec![Arg::Text(step.as_str().into())];
    args.extend(ids.iter().map(|i| Arg::I64(*i as i64)));
    for r in tx.rows(&sql, &args).await? {
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
    tx.exec(
        "insert into workflow_attempts (workflow_id, step, attempt, worker, started_at, finished_at, outcome, error) \
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            Arg::I64(a.workflow_id as i64),
            Arg::Text(a.step.clone()),
            Arg::I64(i64::from(a.attempt)),
            Arg::Text(a.worker.clone()),
            Arg::I64(a.started_at),
            Arg::I64(a.finished_at),
            Arg::Text(a.outcome.clone()),
            a.error.clone().map_or(Arg::NullText, Arg::Text),
        ],
    )
    .await?;
    Ok(())
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
    tx.exec(
        "update workflows set state = $2, step = $3, attempts = $4, last_error = $5, updated_at = $6, lease_until = $7 where id = $1",
        &[
            Arg::I64(id as i64),
            Arg::Text(state.as_str().into()),
            Arg::Text(step.as_str().into()),
            Arg::I64(i64::from(attempts)),
            error.map_or(Arg::NullText, |e| Arg::Text(e.into())),
            Arg::I64(now),
            lease_until.map_or(Arg::NullI64, Arg::I64),
        ],
    )
    .await?;
    Ok(())
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

/// Every workflow about `order_id` and every attempt of each, in time order.
pub async fn trace(db: &Db, order_id: u64) -> Result<Vec<(WorkflowRow, Vec<Attempt>)>> {
    let wfs = db
        .rows(
            &format!("select {WORKFLOW_COLS} from workflows where order_id = $1 order by id"),
            &[Arg::I64(order_id as i64)],
        )
        .await?;
    let mut out = Vec::new();
    for w in wfs {
        let w = workflow_row(&w)?;
        let attempts = db
            .rows(
                "select workflow_id, step, attempt, worker, started_at, finished_at, outcome, error \
                 from workflow_attempts where workflow_id = $1 order by id",
                &[Arg::I64(w.id as i64)],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(Attempt {
                    workflow_id: r.i64(0)? as u64,
                    step: r.text(1)?,
                    attempt: r.i64(2)? as u32,
                    worker: r.text(3)?,
                    started_at: r.i64(4)?,
                    finished_at: r.i64(5)?,
                    outcome: r.text(6)?,
                    error: r.opt_text(7)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.push((w, attempts));
    }
    Ok(out)
}
