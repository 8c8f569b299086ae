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
//!
//! A resting (maker) order's fill is persisted and settled by the taker's
//! workflow, another account's. The hub hands the poller each such workflow
//! delivered to a watched maker ([`Hub::take_follows`]), and the poller
//! follows it by id and reports its steps to the maker too: with the
//! maker's order id and `"role": "maker"`, and nothing of the taker's
//! account or order.

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

/// Who a workflow's progress is reported to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Watcher {
    /// The account whose command it is.
    Owner,
    /// A maker whose order the workflow filled.
    Maker {
        /// The maker's account.
        account: u64,
        /// The maker's order.
        order_id: u64,
    },
}

/// The poller's memory.
#[derive(Debug, Default)]
struct Poller {
    /// (workflow id, to whom) → what was reported; forgotten once out of
    /// the window.
    reported: HashMap<(i64, Watcher), Reported>,
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
        for (account, f) in hub.take_follows() {
            let maker = Watcher::Maker {
                account,
                order_id: f.order_id,
            };
            self.reported
                .entry((f.workflow_id as i64, maker))
                .or_insert(Reported {
                    account,
                    ..Reported::default()
                });
        }
        let accounts: Vec<u64> = watched.keys().copied().collect();
        let mut seen = HashSet::new();
        for chunk in accounts.chunks(IDS_PER_QUERY) {
            for row in changed_rows(db, from, chunk).await? {
                seen.insert(row.i64(0)?);
                self.report(&row, Watcher::Owner, &watched, hub)?;
            }
        }
        // Unfinished workflows not read above, each with whom it is
        // reported to: an owner's whose row changed before the window, and
        // those followed for makers.
        let mut followed: HashMap<i64, Vec<Watcher>> = HashMap::new();
        for ((id, to), r) in &self.reported {
            if !r.finished && (*to != Watcher::Owner || !seen.contains(id)) {
                followed.entry(*id).or_default().push(*to);
            }
        }
        let ids: Vec<i64> = followed.keys().copied().collect();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            for row in rows_by_id(db, chunk).await? {
                for to in &followed[&row.i64(0)?] {
                    self.report(&row, *to, &watched, hub)?;
                }
            }
        }
        self.reported.retain(|_, r| {
            watched.contains_key(&r.account) && (!r.finished || r.updated_at >= from)
        });
        self.last_poll = started;
        Ok(())
    }

    fn report(
        &mut self,
        row: &Row,
        to: Watcher,
        watched: &HashMap<u64, i64>,
        hub: &Hub,
    ) -> Result<()> {
        let (id, updated_at) = (row.i64(0)?, row.i64(6)?);
        // A maker's follow starts at a fill delivered while it was watched.
        let (account, order_id, changed_at) = match to {
            Watcher::Owner => (row.i64(2)? as u64, row.opt_i64(3)?, updated_at),
            Watcher::Maker { account, order_id } => (account, Some(order_id as i64), i64::MAX),
        };
        if watched
            .get(&account)
            .is_none_or(|since| changed_at < *since)
        {
            return Ok(());
        }
        let (state, step) = (row.text(4)?, row.text(5)?);
        let steps = if state == "completed" {
            DONE.len()
        } else {
            step_index(&step)
        };
        let before = self.reported.get(&(id, to)).copied().unwrap_or_default();
        let data = |progress: &str, step: &str, state: &str| {
            let mut v = json!({"type": "workflow", "workflow_id": id, "kind": row.text(1).ok(),
                   "order_id": order_id, "step": step,
                   "progress": progress, "state": state});
            if to != Watcher::Owner {
                v["role"] = json!("maker");
            }
            v
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
            (id, to),
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
