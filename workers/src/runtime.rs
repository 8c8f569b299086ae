//! Runs one step for a batch of workflows: the part every transport shares.
//!
//! The unit on the queue is a [`StepJob`] — one step for a batch of
//! workflows — while state, attempts and idempotency stay per workflow.
//! A batch runs its effect once (one transaction, one PutRecords); if it
//! fails, it is split into jobs of one so a single bad workflow cannot hold
//! back the others, and each of those follows the retry policy alone.

use crate::db::Db;
use crate::records::{self, Attempt, Loaded};
use crate::sinks::{ArchiveStore, EventSink};
use crate::steps::{self, StepError};
use crate::workflow::{Step, WorkflowInput, WorkflowState};
use anyhow::Result;
use pipeline::Market;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
}

impl StepJob {
    /// The idempotency key of this job: `<first workflow>-<last workflow>:<step>`
    /// (a batch of one is `order:step`-like: `<id>:<step>`).
    pub fn idempotency_key(&self) -> String {
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
}

/// The step runner.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// Shared environment.
    pub env: StepEnv,
}

impl Runtime {
    /// Runs `job`'s step for its workflows and says what to do with the message.
    pub async fn execute<H: Handoff + Sync>(&self, job: &StepJob, handoff: &H) -> Outcome {
        match self.try_execute(job, handoff).await {
            Ok(o) => o,
            Err(e) => self.fail(job, e).await,
        }
    }

    async fn try_execute<H: Handoff + Sync>(
        &self,
        job: &StepJob,
        handoff: &H,
    ) -> Result<Outcome, StepError> {
        let env = &self.env;
        let started = now_us();
        // Inputs that travel on the queue are made durable in the database first.
        if !job.inputs.is_empty() {
            let mut tx = env.db.begin().await?;
            for wf in &job.inputs {
                records::insert_workflow(&mut tx, wf, started).await?;
            }
            tx.commit().await?;
        }
        let mut tx = env.db.begin().await?;
        let loaded = records::load(&mut tx, &job.workflow_ids).await?;
        if loaded.len() != job.workflow_ids.len() {
            return Err(StepError::Permanent(anyhow::anyhow!(
                "{} of {} workflows in the job are unknown",
                job.workflow_ids.len() - loaded.len(),
                job.workflow_ids.len()
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
        let prior = records::attempts_so_far(&mut tx, &ids, job.step).await?;
        let lease = started + env.lease_us;
        for l in &todo {
            let attempt = prior.get(&l.input.id).copied().unwrap_or(0) + 1;
            records::set_state(
                &mut tx,
                l.input.id,
                WorkflowState::Running,
                job.step,
                attempt,
                None,
                started,
                Some(lease),
            )
            .await?;
        }
        tx.commit().await?;

        if env.inject_failures.load(Ordering::SeqCst) > 0 && !todo.is_empty() {
            env.inject_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(StepError::Transient(anyhow::anyhow!("injected failure")));
        }

        // External effects first (they cannot join the transaction), then the
        // database effect, the attempt rows and the hand-off in one commit.
        let inputs: Vec<&WorkflowInput> = todo.iter().map(|l| &l.input).collect();
        if job.step == Step::Publish && !inputs.is_empty() {
            steps::publish::run(&env.sink, &inputs).await?;
        }
        let mut tx = env.db.begin().await?;
        for wf in &inputs {
            match job.step {
                Step::Persist => steps::persist::run(&mut tx, wf).await?,
                Step::Settle => {
                    steps::settle::run(&mut tx, wf, &env.markets, env.fee_account).await?
                }
                Step::Publish => {}
                Step::Archive => steps::archive::run(&mut tx, &env.archive, wf).await?,
            }
        }
        let finished = now_us();
        let mut next: std::collections::BTreeMap<Step, Vec<u64>> = Default::default();
        for l in &todo {
            let wf = &l.input;
            let attempt = prior.get(&wf.id).copied().unwrap_or(0) + 1;
            records::append_attempt(
                &mut tx,
                &attempt_row(
                    wf.id,
                    job.step,
                    attempt,
                    &env.worker,
                    started,
                    finished,
                    "done",
                    None,
                ),
            )
            .await?;
            match wf.kind.next(job.step) {
                Some(s) => {
                    records::set_state(
                        &mut tx,
                        wf.id,
                        WorkflowState::Pending,
                        s,
                        0,
                        None,
                        finished,
                        None,
                    )
                    .await?;
                    next.entry(s).or_default().push(wf.id);
                }
                None => {
                    records::set_state(
                        &mut tx,
                        wf.id,
                        WorkflowState::Completed,
                        job.step,
                        attempt,
                        None,
                        finished,
                        None,
                    )
                    .await?
                }
            }
        }
        // A redelivered job whose workflows already moved on: record the
        // duplicate, and hand on again in case the first hand-off was lost.
        for l in &dupes {
            let wf = &l.input;
            records::append_attempt(
                &mut tx,
                &attempt_row(
                    wf.id,
                    job.step,
                    0,
                    &env.worker,
                    started,
                    finished,
                    "duplicate",
                    None,
                ),
            )
            .await?;
            if l.state != WorkflowState::Dead
                && l.state != WorkflowState::Completed
                && l.step != job.step
            {
                next.entry(l.step).or_default().push(wf.id);
            }
        }
        let mut later = Vec::new();
        for (step, workflow_ids) in next {
            let job = StepJob {
                step,
                workflow_ids,
                inputs: vec![],
                replay: None,
            };
            if !handoff.enqueue_in_tx(&mut tx, &job).await? {
                later.push(job);
            }
        }
        tx.commit().await?;
        Ok(Outcome::Done(later))
    }

    /// Records a failed attempt and decides: split, retry or dead-letter.
    async fn fail(&self, job: &StepJob, err: StepError) -> Outcome {
        let error = err.to_string();
        if job.workflow_ids.len() > 1 && err.is_transient() {
            // Split: every workflow becomes a job of one, retried on its own.
            tracing::warn!(step = %job.step, workflows = job.workflow_ids.len(), error, "batch failed; splitting");
            let singles = job
                .workflow_ids
                .iter()
                .map(|id| StepJob {
                    step: job.step,
                    workflow_ids: vec![*id],
                    inputs: vec![],
                    replay: None,
                })
                .collect();
            return Outcome::Done(singles);
        }
        match self.record_failure(job, &err).await {
            Ok(Some(after_ms)) => Outcome::Retry { after_ms, error },
            Ok(None) => Outcome::Dead { error },
            Err(e) => {
                // Could not even record: let the transport redeliver later.
                tracing::error!(step = %job.step, error = %format!("{e:#}"), "failed to record a failed attempt");
                Outcome::Retry {
                    after_ms: job.step.retry_policy().cap_ms,
                    error,
                }
            }
        }
    }

    /// Appends the failed attempt; returns the retry delay, or `None` when
    /// the workflow is now dead.
    async fn record_failure(&self, job: &StepJob, err: &StepError) -> Result<Option<u64>> {
        let env = &self.env;
        let now = now_us();
        let mut tx = env.db.begin().await?;
        let prior = records::attempts_so_far(&mut tx, &job.workflow_ids, job.step).await?;
        let policy = job.step.retry_policy();
        let mut retry_after = None;
        for id in &job.workflow_ids {
            let attempt = prior.get(id).copied().unwrap_or(0) + 1;
            let retry = err.is_transient() && policy.allows_retry(attempt);
            let (outcome, state) = if retry {
                ("retry", WorkflowState::Retrying)
            } else {
                ("dead", WorkflowState::Dead)
            };
            let msg = err.to_string();
            records::append_attempt(
                &mut tx,
                &attempt_row(
                    *id,
                    job.step,
                    attempt,
                    &env.worker,
                    now,
                    now_us(),
                    outcome,
                    Some(msg.clone()),
                ),
            )
            .await?;
            records::set_state(
                &mut tx,
                *id,
                state,
                job.step,
                attempt,
                Some(&msg),
                now,
                None,
            )
            .await?;
            if retry {
                retry_after = Some(policy.backoff_ms(attempt, rand::random()));
            }
        }
        tx.commit().await?;
        Ok(retry_after)
    }
}

#[allow(clippy::too_many_arguments)]
fn attempt_row(
    id: u64,
    step: Step,
    attempt: u32,
    worker: &str,
    started: i64,
    finished: i64,
    outcome: &str,
    error: Option<String>,
) -> Attempt {
    Attempt {
        workflow_id: id,
        step: step.as_str().into(),
        attempt,
        worker: worker.into(),
        started_at: started,
        finished_at: finished,
        outcome: outcome.into(),
        error,
    }
}
