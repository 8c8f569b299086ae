//! The failure path of a step: split a failed batch, or record the failed
//! attempt and decide between retry and dead-letter.

use super::{Outcome, Runtime, StepJob, now_us};
use crate::records::{self, Attempt, StateChange};
use crate::steps::StepError;
use crate::workflow::{Step, WorkflowState};
use anyhow::Result;

impl Runtime {
    /// Records a failed attempt and decides: split, retry or dead-letter.
    /// A failed batch of more than one is split whatever the error, so one
    /// bad workflow cannot take the others with it.
    pub(super) async fn fail(&self, job: &StepJob, err: StepError) -> Outcome {
        let error = err.to_string();
        let behind_earlier = err.waits_for_earlier();
        if job.workflow_ids.len() > 1 {
            tracing::warn!(step = %job.step, workflows = job.workflow_ids.len(), error, "batch failed; splitting");
            // Each job of one keeps its workflow's input when the queue
            // carries them (an SQS persist message): the batch's inputs may
            // not have reached the database (its first transaction is what
            // failed), and the batch's message is deleted once its jobs are
            // sent, so a job without its input would name a workflow nobody
            // knows — dead-lettered, and the accepted order lost.
            let singles = job
                .workflow_ids
                .iter()
                .map(|id| {
                    let mut single = StepJob::new(job.step, vec![*id]);
                    single.inputs = job.inputs.iter().filter(|i| i.id == *id).cloned().collect();
                    single
                })
                .collect();
            return Outcome::Done(singles);
        }
        if job.workflow_ids.is_empty() {
            // A recovery barrier: no workflow to record an attempt for, and
            // nothing to lose by trying again. Dead-lettered, it would sit
            // in the persist DLQ, which stops every start-up.
            return if err.is_transient() {
                tracing::warn!(step = %job.step, error, "barrier failed; will be retried");
                Outcome::Retry {
                    after_ms: job.step.retry_policy().base_ms,
                    error,
                    behind_earlier,
                }
            } else {
                Outcome::Dead { error }
            };
        }
        match self.record_failure(job, &err).await {
            Ok(Some(after_ms)) => Outcome::Retry {
                after_ms,
                error,
                behind_earlier,
            },
            Ok(None) => Outcome::Dead { error },
            Err(e) => {
                // Could not even record: let the transport redeliver later.
                tracing::error!(step = %job.step, error = %format!("{e:#}"), "failed to record a failed attempt");
                Outcome::Retry {
                    after_ms: job.step.retry_policy().cap_ms,
                    error,
                    behind_earlier,
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
        let (mut attempts, mut changes) = (vec![], vec![]);
        let msg = err.to_string();
        for id in &job.workflow_ids {
            let attempt = prior.get(id).copied().unwrap_or(0) + 1;
            let retry = err.is_transient() && policy.allows_retry(attempt);
            let (outcome, state) = if retry {
                ("retry", WorkflowState::Retrying)
            } else {
                ("dead", WorkflowState::Dead)
            };
            attempts.push(attempt_row(
                *id,
                job.step,
                attempt,
                &env.worker,
                (now, now_us()),
                outcome,
                Some(msg.clone()),
            ));
            changes.push(StateChange {
                id: *id,
                state,
                step: job.step,
                attempts: attempt,
                error: Some(msg.clone()),
                now,
                lease_until: None,
            });
            if retry {
                retry_after = Some(policy.backoff_ms(attempt, rand::random()));
            }
        }
        records::append_attempts(&mut tx, &attempts).await?;
        records::set_states(&mut tx, &changes).await?;
        tx.commit().await?;
        Ok(retry_after)
    }
}

/// An attempt row; `times` is (started, finished).
pub(super) fn attempt_row(
    id: u64,
    step: Step,
    attempt: u32,
    worker: &str,
    times: (i64, i64),
    outcome: &str,
    error: Option<String>,
) -> Attempt {
    Attempt {
        workflow_id: id,
        step: step.as_str().into(),
        attempt,
        worker: worker.into(),
        started_at: times.0,
        finished_at: times.1,
        outcome: outcome.into(),
        error,
    }
}
