//! Transports: how step jobs travel between workers. Three implementations,
//! one behaviour (retry with backoff, dead-letter, graceful shutdown):
//! `sqlite` and `postgres` through apalis' storages ([`dbqueue`]), and `sqs`
//! ([`sqs`]).

pub mod dbqueue;
pub mod sqs;

use crate::db::{Db, Tx};
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
        if wfs.is_empty() {
            return Ok(());
        }
        match self {
            Transport::Db(q) => {
                let mut tx = db.begin().await?;
                let now = now_us();
                for wf in wfs {
                    records::insert_workflow(&mut tx, wf, now).await?;
                }
                let job = StepJob::new(Step::Persist, wfs.iter().map(|w| w.id).collect());
                q.push(&mut tx, &job, 0).await?;
                tx.commit().await
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
                tx.commit().await
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
