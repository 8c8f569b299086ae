//! Transports: how step jobs travel between workers. Three implementations,
//! one behaviour (retry with backoff, dead-letter, graceful shutdown):
//! `sqlite` and `postgres` through apalis' storages ([`dbqueue`]), and `sqs`
//! ([`sqs`]).

pub mod dbqueue;
pub mod sqs;

use crate::db::{Db, HeldConnection, Tx};
use crate::records;
use crate::runtime::{Handoff, StepJob, now_us};
use crate::workflow::{Step, WorkflowInput};
use anyhow::Result;

/// The transport a deployment uses.
#[derive(Clone, Debug)]
pub enum Transport {
    /// apalis-sqlite or apalis-postgres, in Clearway's own database.
    Db(dbqueue::DbQueue),
    /// SQS FIFO queues with dead-letter queues.
    Sqs(sqs::SqsQueue),
}

impl Transport {
    /// The group commit behind every 202: the accepted workflows become
    /// durable and their first step is enqueued, all or nothing. On the
    /// database transports that is one transaction (workflow rows + job);
    /// on SQS it is one SendMessageBatch whose persist message carries the
    /// workflows' inputs.
    pub async fn commit_accepted(&self, db: &Db, wfs: &[WorkflowInput]) -> Result<()> {
        self.commit_accepted_held(db, &mut HeldConnection::default(), wfs)
            .await
    }

    /// [`Transport::commit_accepted`] on `held`'s PostgreSQL connection
    /// (the engine host keeps one between its group commits).
    pub async fn commit_accepted_held(
        &self,
        db: &Db,
        held: &mut HeldConnection,
        wfs: &[WorkflowInput],
    ) -> Result<()> {
        if wfs.is_empty() {
            return Ok(());
        }
        match self {
            Transport::Db(q) => {
                let job = StepJob::new(Step::Persist, wfs.iter().map(|w| w.id).collect());
                if db.is_sqlite() {
                    let mut tx = db.begin_in(crate::db::Lane::Urgent).await?;
                    records::insert_workflows(&mut tx, wfs, now_us()).await?;
                    q.push(&mut tx, &job, 0).await?;
                    tx.commit().await?;
                } else {
                    let rows = records::workflow_rows(wfs, now_us())?;
                    q.accept_pg(db, held, &rows, &job).await?;
                }
                q.wake(Step::Persist);
                Ok(())
            }
            Transport::Sqs(q) => q.send_accepted(wfs).await,
        }
    }

    /// Enqueues `job` outside any step (splits, replays), after `delay_ms`.
    pub async fn enqueue(&self, db: &Db, job: &StepJob, delay_ms: u64) -> Result<()> {
        match self {
            Transport::Db(q) => {
                let mut tx = db.begin().await?;
                q.push(&mut tx, job, delay_ms).await?;
                tx.commit().await?;
                if delay_ms == 0 {
                    q.wake(job.step);
                }
                Ok(())
            }
            Transport::Sqs(q) => q.send(job, delay_ms).await,
        }
    }
}

impl Handoff for Transport {
    async fn enqueue_in_tx(&self, tx: &mut Tx, job: &StepJob) -> Result<bool> {
        match self {
            Transport::Db(q) => {
                q.push(tx, job, 0).await?;
                Ok(true)
            }
            Transport::Sqs(_) => Ok(false),
        }
    }

    async fn absorb(&self, tx: &mut Tx, step: Step, room: usize) -> Result<Vec<StepJob>> {
        match self {
            Transport::Db(q) => q.absorb(tx, step, room).await,
            // A received SQS message cannot be taken over by another one's
            // handler; SQS batches by receiving ten at a time.
            Transport::Sqs(_) => Ok(vec![]),
        }
    }
}

/// Runs the step workers of `services` until `shutdown` is cancelled; steps
/// in flight then get `grace` to finish, and the rest stay queued for
/// redelivery.
pub async fn run_workers(
    services: &crate::config::Services,
    shutdown: tokio_util::sync::CancellationToken,
    grace: std::time::Duration,
) -> Result<()> {
    let (rt, tr) = (services.runtime.clone(), services.transport.clone());
    match &services.transport {
        Transport::Db(q) => {
            dbqueue::run_workers(
                rt,
                tr,
                q.clone(),
                async move { shutdown.cancelled().await },
                grace,
            )
            .await
        }
        Transport::Sqs(q) => sqs::run_workers(rt, tr, q.clone(), shutdown, grace).await,
    }
}

/// Runs the step workers of `monitor` until `shutdown` resolves (a worker
/// that stops on an error is restarted), then lets the steps in flight
/// finish (see [`finish_in_flight`]).
async fn run_monitor(
    monitor: apalis::prelude::Monitor,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
    in_flight: &tokio_util::task::TaskTracker,
) -> Result<()> {
    use anyhow::Context;
    let ran = monitor
        .should_restart(|w, e| {
            tracing::error!(worker = %w.name(), error = %e, "worker stopped; restarting");
            true
        })
        .shutdown_timeout(grace)
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await
        .context("the worker monitor failed");
    finish_in_flight(in_flight, grace).await;
    ran
}

/// Runs a step as a task of its own on `in_flight` and waits for it.
/// Before, the step was a tracked future inside apalis' handler, so its
/// life was the handler's: once in CI a step held across SIGTERM finished
/// its outside effect and was never recorded, and shutdown had not waited
/// for it (the cause inside apalis is not pinned down). A task of its own
/// runs on whatever becomes of the handler, and shutdown waits for it
/// ([`finish_in_flight`]); if the handler is gone, its job was never
/// acknowledged and comes back, a duplicate the step recognises. A panic in
/// the step is the handler's panic, as before.
async fn run_tracked<F>(
    in_flight: &tokio_util::task::TaskTracker,
    step: F,
) -> Result<(), apalis::prelude::BoxDynError>
where
    F: std::future::Future<Output = Result<(), apalis::prelude::BoxDynError>> + Send + 'static,
{
    match in_flight.spawn(step).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(anyhow::anyhow!("the step's task was cancelled: {e}").into()),
    }
}

/// After the workers stopped pulling: waits up to `within` for the steps
/// still running (apalis does not wait for its handler tasks). A step still
/// running then is cut off with the process; its job or message was never
/// acknowledged, so it is redelivered, and the step's idempotency holds.
async fn finish_in_flight(in_flight: &tokio_util::task::TaskTracker, within: std::time::Duration) {
    in_flight.close();
    if !in_flight.is_empty() {
        tracing::info!(steps = in_flight.len(), "waiting for steps in flight");
    }
    if tokio::time::timeout(within, in_flight.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            steps = in_flight.len(),
            "shutdown grace elapsed; steps still in flight will be redelivered"
        );
    }
}
