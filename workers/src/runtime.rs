//! Runs one step for a batch of workflows: the part every transport shares.
//!
//! The unit on the queue is a [`StepJob`] — one step for a batch of
//! workflows — while state, attempts and idempotency stay per workflow.
//! A batch runs its effect once (one transaction, one PutRecords); if it
//! fails, it is split into jobs of one so a single bad workflow cannot hold
//! back the others, and each of those follows the retry policy alone.
//!
//! Every statement covers the whole batch (one multi-row insert of attempt
//! rows, one update of states). Steps whose effect is only in the database
//! (persist, settle) run in one transaction: load, effect, attempts, states
//! and hand-off. Steps with an outside effect (publish, archive) first mark
//! their workflows `running` with a lease (and archive builds its objects)
//! and commit; the effect then runs with no transaction open (no SQLite
//! write lock held while files are synced), and a second transaction
//! records it.

use crate::db::{Db, Tx};
use crate::records::{self, Loaded, StateChange};
use crate::sinks::{ArchiveStore, EventSink};
use crate::steps::{self, StepError};
use crate::workflow::{Step, WorkflowInput, WorkflowState};
use anyhow::Result;
use pipeline::Market;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod failure;

use failure::attempt_row;

/// One message on a step queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepJob {
    /// The step to run.
    pub step: Step,
    /// The workflows to run it for.
    pub workflow_ids: Vec<u64>,
    /// The workflows' inputs, when the queue (not the database) is their
    /// durable home: on SQS the persist message carries them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<WorkflowInput>,
    /// Set on an operator's replay (and in tests that redeliver on purpose):
    /// it makes the idempotency key new, so the transport does not drop the
    /// message as a duplicate and the step's own idempotency is what holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    /// A recovery barrier (`<token>:<group>`, persist queue on SQS only):
    /// carries no workflows; persist records it, and since a FIFO group is
    /// handled in order, everything sent to the group before it is persisted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barrier: Option<String>,
}

impl StepJob {
    /// The idempotency key of this job: `<first workflow>-<last workflow>:<step>`
    /// (a batch of one is `order:step`-like: `<id>:<step>`).
    pub fn idempotency_key(&self) -> String {
        if let Some(b) = &self.barrier {
            return format!("barrier:{b}");
        }
        let key = match (self.workflow_ids.first(), self.workflow_ids.last()) {
            (Some(a), Some(b)) if a == b => format!("{a}:{}", self.step),
            (Some(a), Some(b)) => format!("{a}-{b}-{}:{}", self.workflow_ids.len(), self.step),
            _ => format!("empty:{}", self.step),
        };
        match &self.replay {
            Some(r) => format!("{key}:replay-{r}"),
            None => key,
        }
    }

    /// A job for `step` of `workflow_ids`.
    pub fn new(step: Step, workflow_ids: Vec<u64>) -> StepJob {
        StepJob {
            step,
            workflow_ids,
            inputs: vec![],
            replay: None,
            barrier: None,
        }
    }
}

/// What the transport does with the message after [`Runtime::execute`].
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Done: acknowledge, and enqueue these follow-up jobs (unless the
    /// transport already did inside the step's transaction).
    Done(Vec<StepJob>),
    /// Failed, will be retried: redeliver after this many milliseconds.
    Retry {
        /// Delay before the next attempt.
        after_ms: u64,
        /// What went wrong.
        error: String,
        /// The step failed only because an earlier workflow it builds on
        /// has not been through it yet (a fill, cancel or replace whose
        /// order's placement is not persisted,
        /// [`crate::steps::persist::NotYetPersisted`]). On a FIFO queue
        /// that earlier workflow's message is behind this one (a split
        /// batch's jobs go to the back of the group) or, on moto, held back
        /// behind it: holding this one in flight for its backoff would hold
        /// the group, and with it the message it waits for, until its
        /// attempts ran out. So the SQS transport sends it again behind the
        /// rest of its group instead.
        behind_earlier: bool,
    },
    /// Permanently failed or out of attempts: dead-letter it.
    Dead {
        /// What went wrong.
        error: String,
    },
}

/// Everything a step needs.
#[derive(Clone, Debug)]
pub struct StepEnv {
    /// Clearway's database.
    pub db: Db,
    /// The stream.
    pub sink: EventSink,
    /// The archive.
    pub archive: ArchiveStore,
    /// Market definitions (for settlement assets).
    pub markets: Arc<Vec<Market>>,
    /// The account fees are credited to.
    pub fee_account: u64,
    /// This worker's name, recorded with every attempt.
    pub worker: String,
    /// How long a running step holds its workflows before it counts as stuck (µs).
    pub lease_us: i64,
    /// Test hook: fail this many of the next step effects with a transient error.
    pub inject_failures: Arc<AtomicU64>,
    /// Test hook: hold one step in the middle, see [`Stall`].
    pub stall: Option<Stall>,
}

/// Test hook for crash and shutdown tests, from `CLEARWAY_TEST_STALL=step`
/// or `step:ms`: the first run of `step` in this process stops in the
/// middle — for publish and archive after the outside effect (events sent,
/// object stored) and before it is recorded; for persist and settle with
/// the effect written and not yet committed — and logs
/// `test stall: holding <step>`. It holds for `ms` milliseconds, or for
/// ever without them (until the process is killed).
#[derive(Clone, Debug)]
pub struct Stall {
    step: Step,
    hold: Option<std::time::Duration>,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl Stall {
    /// Reads `CLEARWAY_TEST_STALL`; unset or empty means no stall.
    pub fn from_env() -> Result<Option<Stall>> {
        let Some(spec) = std::env::var("CLEARWAY_TEST_STALL")
            .ok()
            .filter(|v| !v.is_empty())
        else {
            return Ok(None);
        };
        let (step, ms) = match spec.split_once(':') {
            Some((s, ms)) => (s, Some(ms.parse::<u64>()?)),
            None => (spec.as_str(), None),
        };
        let step = Step::parse(step)
            .ok_or_else(|| anyhow::anyhow!("CLEARWAY_TEST_STALL: unknown step {step:?}"))?;
        Ok(Some(Stall {
            step,
            hold: ms.map(std::time::Duration::from_millis),
            armed: Arc::new(true.into()),
        }))
    }

    async fn maybe_hold(stall: &Option<Stall>, step: Step, ids: &[u64]) {
        let Some(s) = stall else { return };
        if s.step != step || ids.is_empty() || !s.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        tracing::warn!(%step, workflows = ?ids, "test stall: holding {step}");
        match s.hold {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
        tracing::warn!(%step, "test stall: released {step}");
    }
}

/// Microseconds since the epoch.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The runtime's view of how a transport hands a step's follow-up on.
pub trait Handoff {
    /// Enqueues `job` inside the step's transaction; returns false when the
    /// transport cannot (then the job is returned in [`Outcome::Done`]).
    fn enqueue_in_tx<'a>(
        &'a self,
        tx: &'a mut crate::db::Tx,
        job: &'a StepJob,
    ) -> impl std::future::Future<Output = Result<bool>> + Send + 'a;

    /// Takes queued jobs of `step` (up to `room` workflows) off the queue
    /// inside `tx`, for the running job to do with its own; a rollback puts
    /// them back. Transports that cannot return nothing.
    fn absorb<'a>(
        &'a self,
        tx: &'a mut crate::db::Tx,
        step: Step,
        room: usize,
    ) -> impl std::future::Future<Output = Result<Vec<StepJob>>> + Send + 'a;
}

/// Most workflows a persist or settle job runs at once after absorbing the
/// queued jobs of its step (see [`Handoff::absorb`]), on PostgreSQL.
pub const COALESCE_UP_TO: usize = 1_000;

/// The same on SQLite, where a step's transaction holds the database's one
/// write lock and the intake's group commit waits for it: a batch of 1,000
/// held it for up to 150 ms (measured), which became the intake's tail.
pub const COALESCE_UP_TO_SQLITE: usize = 100;

/// The step runner.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// Shared environment.
    pub env: StepEnv,
}

impl Runtime {
    /// Runs `job`'s step for its workflows and says what to do with the message.
    pub async fn execute<H: Handoff + Sync>(&self, job: &StepJob, handoff: &H) -> Outcome {
        let mut open = None;
        match self.try_execute(job, handoff, &mut open).await {
            Ok(o) => o,
            Err(e) => {
                // Release the failed transaction's locks before recording the
                // failure (which needs them).
                if let Some(tx) = open.take()
                    && let Err(r) = tx.rollback().await
                {
                    tracing::warn!(error = %format!("{r:#}"), "rollback failed");
                }
                self.fail(job, e).await
            }
        }
    }

    async fn try_execute<H: Handoff + Sync>(
        &self,
        job: &StepJob,
        handoff: &H,
        open: &mut Option<Tx>,
    ) -> Result<Outcome, StepError> {
        let env = &self.env;
        let started = now_us();
        if let Some(barrier) = &job.barrier {
            let tx = open.insert(env.db.begin().await?);
            records::pass_barrier(tx, barrier, started).await?;
            commit(open).await?;
            return Ok(Outcome::Done(vec![]));
        }
        // Inputs that travel on the queue are made durable in the database first.
        if !job.inputs.is_empty() {
            let tx = open.insert(env.db.begin().await?);
            records::insert_workflows(tx, &job.inputs, started).await?;
            commit(open).await?;
        }
        let tx = open.insert(env.db.begin().await?);
        // Single-transaction steps take the queued jobs of their step along:
        // under steady traffic each group commit is a small job, and one
        // large batch costs far less than many small ones. (publish and
        // archive commit before their outside effect, so a job they took
        // would be lost in a crash; they get large batches from the one
        // hand-off of a coalesced settle.)
        let mut wanted = job.workflow_ids.clone();
        let up_to = if env.db.is_sqlite() {
            COALESCE_UP_TO_SQLITE
        } else {
            COALESCE_UP_TO
        };
        if matches!(job.step, Step::Persist | Step::Settle)
            && job.replay.is_none()
            && wanted.len() < up_to
        {
            for j in handoff.absorb(tx, job.step, up_to - wanted.len()).await? {
                wanted.extend(j.workflow_ids);
            }
            wanted.sort_unstable();
            wanted.dedup();
        }
        let loaded = records::load(tx, &wanted).await?;
        if loaded.len() != wanted.len() {
            return Err(StepError::Permanent(anyhow::anyhow!(
                "{} of {} workflows in the job are unknown",
                wanted.len() - loaded.len(),
                wanted.len()
            )));
        }
        let (todo, dupes): (Vec<&Loaded>, Vec<&Loaded>) = loaded.iter().partition(|l| {
            l.step == job.step
                && matches!(
                    l.state,
                    WorkflowState::Pending | WorkflowState::Running | WorkflowState::Retrying
                )
        });
        let ids: Vec<u64> = todo.iter().map(|l| l.input.id).collect();
        let prior = records::attempts_so_far(tx, &ids, job.step).await?;
        // `running` here: an earlier attempt started (at `updated_at`) and
        // recorded no outcome — its worker stopped mid-step. It gets a row of
        // its own (`interrupted`), so the trace shows every attempt.
        let interrupted: std::collections::HashMap<u64, i64> = todo
            .iter()
            .filter(|l| l.state == WorkflowState::Running)
            .map(|l| (l.input.id, l.updated_at))
            .collect();
        let attempt_of = |id: u64| {
            prior.get(&id).copied().unwrap_or(0) + 1 + u32::from(interrupted.contains_key(&id))
        };
        let inputs: Vec<&WorkflowInput> = todo.iter().map(|l| &l.input).collect();
        let outside = matches!(job.step, Step::Publish | Step::Archive) && !todo.is_empty();
        let mut objects = vec![];
        if outside {
            let lease = Some(started + env.lease_us);
            let running: Vec<StateChange> = todo
                .iter()
                .map(|l| StateChange {
                    id: l.input.id,
                    state: WorkflowState::Running,
                    step: job.step,
                    attempts: attempt_of(l.input.id),
                    error: None,
                    now: started,
                    lease_until: lease,
                })
                .collect();
            records::set_states(tx, &running).await?;
            if job.step == Step::Archive {
                objects = steps::archive::build(tx, &inputs).await?;
            }
            commit(open).await?;
        }

        if env.inject_failures.load(Ordering::SeqCst) > 0 && !todo.is_empty() {
            env.inject_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(StepError::Transient(anyhow::anyhow!("injected failure")));
        }

        // Effects outside the database first, with no transaction open; then
        // the database effect, the attempt rows and the hand-off in one commit.
        let mut stored = vec![];
        if outside {
            match job.step {
                Step::Publish => {
                    // An interrupted attempt may have sent before it stopped.
                    let crashed_since = interrupted.values().copied().min();
                    steps::publish::run(&env.sink, &inputs, crashed_since).await?
                }
                _ => stored = steps::archive::store(&env.archive, objects).await?,
            }
        }
        if outside {
            Stall::maybe_hold(&env.stall, job.step, &ids).await;
        }
        if open.is_none() {
            *open = Some(env.db.begin().await?);
        }
        let Some(tx) = open.as_mut() else {
            unreachable!("a transaction was just opened")
        };
        if !inputs.is_empty() {
            match job.step {
                Step::Persist => steps::persist::run_batch(tx, &inputs).await?,
                Step::Settle => {
                    steps::settle::run_batch(tx, &inputs, &env.markets, env.fee_account).await?
                }
                Step::Publish => {}
                Step::Archive => steps::archive::record(tx, &inputs, stored).await?,
            }
        }
        let finished = now_us();
        let mut next: std::collections::BTreeMap<Step, Vec<u64>> = Default::default();
        let mut attempts = Vec::with_capacity(loaded.len());
        let mut changes = Vec::with_capacity(todo.len());
        for l in &todo {
            let wf = &l.input;
            let attempt = attempt_of(wf.id);
            if let Some(at) = interrupted.get(&wf.id) {
                attempts.push(attempt_row(
                    wf.id,
                    job.step,
                    attempt - 1,
                    "unknown",
                    (*at, started),
                    "interrupted",
                    Some(
                        "no outcome recorded: the worker stopped in the middle of the step".into(),
                    ),
                ));
            }
            attempts.push(attempt_row(
                wf.id,
                job.step,
                attempt,
                &env.worker,
                (started, finished),
                "done",
                None,
            ));
            let (state, step, attempts) = match wf.kind.next(job.step) {
                Some(s) => {
                    next.entry(s).or_default().push(wf.id);
                    (WorkflowState::Pending, s, 0)
                }
                None => (WorkflowState::Completed, job.step, attempt),
            };
            changes.push(StateChange {
                id: wf.id,
                state,
                step,
                attempts,
                error: None,
                now: finished,
                lease_until: None,
            });
        }
        // A redelivered job whose workflows already moved on: record the
        // duplicate, and hand on again in case the first hand-off was lost.
        for l in &dupes {
            let wf = &l.input;
            attempts.push(attempt_row(
                wf.id,
                job.step,
                0,
                &env.worker,
                (started, finished),
                "duplicate",
                None,
            ));
            if l.state != WorkflowState::Dead
                && l.state != WorkflowState::Completed
                && l.step != job.step
            {
                next.entry(l.step).or_default().push(wf.id);
            }
        }
        records::append_attempts(tx, &attempts).await?;
        records::set_states(tx, &changes).await?;
        let mut later = Vec::new();
        for (step, workflow_ids) in next {
            let job = StepJob::new(step, workflow_ids);
            if !handoff.enqueue_in_tx(tx, &job).await? {
                later.push(job);
            }
        }
        if !outside {
            Stall::maybe_hold(&env.stall, job.step, &ids).await;
        }
        commit(open).await?;
        Ok(Outcome::Done(later))
    }
}

/// Commits the open transaction.
async fn commit(open: &mut Option<Tx>) -> Result<()> {
    match open.take() {
        Some(tx) => tx.commit().await,
        None => Ok(()),
    }
}
