//! Workflow progress for `orders` subscribers: a poller reads the rows of
//! `workflows` changed since its last poll (for the accounts with a
//! subscriber on this instance) and reports each step completed.
//!
//! A row at step `s` (not completed) has completed the steps before `s`; a
//! completed row has completed all four; a dead row reports `dead` once.
//! Steps a row skipped between two polls are reported all the same, in
//! order. Each poll reads every unfinished workflow of those accounts, and
//! the finished ones stamped since shortly before the previous poll (a worker
//! stamps `updated_at` before its transaction commits); a workflow seen
//! unfinished is followed by id until it finishes, so a late commit is never
//! missed. What was reported is remembered per workflow: nothing is said twice.

use anyhow::Result;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use workers::db::{Arg, Db, Row};
use workers::workflow::Step;

use super::{Hub, Message};

/// How far before the previous poll each poll looks again (µs).
const LOOKBACK_US: i64 = 2_000_000;
/// Accounts (or workflow ids) per query.
const IDS_PER_QUERY: usize = 100;
/// What each completed step is reported as.
const DONE: [&str; 4] = ["persisted", "settled", "published", "archived"];

/// What was reported for one workflow.
#[derive(Clone, Copy, Debug, Default)]
struct Reported {
    /// Steps reported completed (0–4).
    steps: usize,
    /// Whether `dead` was reported.
    dead: bool,
    /// Whether the workflow is completed or dead.
    finished: bool,
    /// Its account.
    account: u64,
    /// The row's `updated_at` when last seen.
    updated_at: i64,
}

/// The poller's memory.
#[derive(Debug, Default)]
struct Poller {
    /// Workflow id → what was reported; forgotten once out of the window.
    reported: HashMap<i64, Reported>,
    /// When the last successful poll started (µs).
    last_poll: i64,
}

/// Polls every `every` until `stop`.
pub async fn run(db: Db, hub: Arc<Hub>, every: Duration, stop: CancellationToken) {
    let mut poller = Poller {
        last_poll: workers::runtime::now_us(),
        ..Poller::default()
    };
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        match poller.poll(&db, &hub).await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %format!("{e:#}"), "workflow progress poll failed");
            }
            Err(_) => {}
        }
    }
}

fn step_index(step: &str) -> usize {
    Step::ALL
        .iter()
        .position(|s| s.as_str() == step)
        .unwrap_or(0)
}

impl Poller {
    async fn poll(&mut self, db: &Db, hub: &Hub) -> Result<()> {
        let started = workers::runtime::now_us();
        let watched: HashMap<u64, i64> = hub.watched().into_iter().collect();
        let from = self.last_poll - LOOKBACK_US;
        let accounts: Vec<u64> = watched.keys().copied().collect();
        let mut seen = HashSet::new();
        for chunk in accounts.chunks(IDS_PER_QUERY) {
            for row in changed_rows(db, from, chunk).await? {
                seen.insert(row.i64(0)?);
                self.report(&row, &watched, hub)?;
            }
        }
        let followed: Vec<i64> = self
            .reported
            .iter()
            .filter(|(id, r)| !r.finished && !seen.contains(*id))
            .map(|(id, _)| *id)
            .collect();
        for chunk in followed.chunks(IDS_PER_QUERY) {
            for row in rows_by_id(db, chunk).await? {
                self.report(&row, &watched, hub)?;
            }
        }
        self.reported.retain(|_, r| {
            watched.contains_key(&r.account) && (!r.finished || r.updated_at >= from)
        });
        self.last_poll = started;
        Ok(())
    }

    fn report(&mut self, row: &Row, watched: &HashMap<u64, i64>, hub: &Hub) -> Result<()> {
        let (id, account, updated_at) = (row.i64(0)?, row.i64(2)? as u64, row.i64(6)?);
        if watched
            .get(&account)
            .is_none_or(|since| updated_at < *since)
        {
            return Ok(());
        }
        let (state, step) = (row.text(4)?, row.text(5)?);
        let steps = if state == "completed" {
            DONE.len()
        } else {
            step_index(&step)
        };
        let before = self.reported.get(&id).copied().unwrap_or_default();
        let data = |progress: &str, step: &str, state: &str| {
            json!({"type": "workflow", "workflow_id": id, "kind": row.text(1).ok(),
                   "order_id": row.opt_i64(3).ok().flatten(), "step": step,
                   "progress": progress, "state": state})
        };
        // One poll may catch several steps done at once: each message has
        // the state the workflow had after its step — `completed` after the
        // last, the state read now after the newest, `pending` (at the next
        // step) after the ones in between.
        let state_after = |i: usize| {
            if i + 1 == DONE.len() {
                "completed"
            } else if i + 1 == steps {
                state.as_str()
            } else {
                "pending"
            }
        };
        for (i, progress) in DONE.iter().enumerate().take(steps).skip(before.steps) {
            hub.deliver(Message::orders(
                account,
                data(progress, Step::ALL[i].as_str(), state_after(i)),
            ));
        }
        let dead = state == "dead";
        if dead && !before.dead {
            hub.deliver(Message::orders(account, data("dead", &step, "dead")));
        }
        self.reported.insert(
            id,
            Reported {
                steps: steps.max(before.steps),
                dead: dead || before.dead,
                finished: dead || state == "completed",
                account,
                updated_at,
            },
        );
        Ok(())
    }
}

/// The columns [`Poller::report`] reads.
const COLS: &str = "id, kind, account_id, order_id, state, step, updated_at";

/// The unfinished workflows of `accounts` and those finished at or after
/// `from`, oldest change first. The state lists let the `(state,
/// updated_at)` index serve both parts.
async fn changed_rows(db: &Db, from: i64, accounts: &[u64]) -> Result<Vec<Row>> {
    let list: Vec<String> = (0..accounts.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "select {COLS} from workflows where account_id in ({}) \
         and (state in ('pending', 'running', 'retrying') \
              or (state in ('completed', 'dead') and updated_at >= $1)) \
         order by updated_at, id",
        list.join(", ")
    );
    let mut args = vec![Arg::I64(from)];
    args.extend(accounts.iter().map(|a| Arg::I64(*a as i64)));
    db.rows(&sql, &args).await
}

/// The workflows with `ids`.
async fn rows_by_id(db: &Db, ids: &[i64]) -> Result<Vec<Row>> {
    let list: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 1)).collect();
    let sql = format!(
        "select {COLS} from workflows where id in ({}) order by updated_at, id",
        list.join(", ")
    );
    let args: Vec<Arg> = ids.iter().map(|id| Arg::I64(*id)).collect();
    db.rows(&sql, &args).await
}
