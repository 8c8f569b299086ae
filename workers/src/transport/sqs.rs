//! The SQS FIFO transport: one FIFO queue per step, each with a dead-letter
//! queue through its redrive policy (`maxReceiveCount`).
//!
//! - message group id = market (`account-<id>` for funds movements), so a
//!   market's messages are handled in order; deduplication id = the job's
//!   idempotency key (never the MessageId: moto mints a new one for a
//!   de-duplicated send);
//! - long polling, batched receive (10) and per-message delete only after the
//!   step's transaction committed and its follow-up was sent;
//! - retry backoff = `ChangeMessageVisibility` on the received message (FIFO
//!   queues have no per-message delay); a heartbeat extends the visibility
//!   of a long step;
//! - dead letters: exhausted or permanent → sent to the DLQ with the reason
//!   as a message attribute, then deleted; a message that crashes its worker
//!   again and again reaches the DLQ through the redrive policy.

use crate::runtime::{Outcome, Runtime, StepJob};
use crate::transport::Transport;
use crate::workflow::{Step, WorkflowInput};
use anyhow::{Context, Result};
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use std::collections::HashMap;
use std::time::Duration;

/// SQS accepts up to 256 KiB per message; stay well below.
const MAX_BODY_BYTES: usize = 200 * 1024;
/// Visibility timeout of a received message, in seconds.
const VISIBILITY_S: i32 = 30;

/// The step queues and their dead-letter queues.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    urls: HashMap<Step, (String, String)>,
}

impl SqsQueue {
    /// Looks up `<prefix>-<step>.fifo` and `<prefix>-<step>-dlq.fifo` (the
    /// URLs the service returns: account ids differ between emulators).
    pub async fn connect(client: aws_sdk_sqs::Client, prefix: &str) -> Result<SqsQueue> {
        let mut urls = HashMap::new();
        for step in Step::ALL {
            let url = |name: String| {
                let client = client.clone();
                async move {
                    client
                        .get_queue_url()
                        .queue_name(&name)
                        .send()
                        .await
                        .with_context(|| format!("Failed to find the SQS queue {name}"))?
                        .queue_url
                        .context("no queue URL")
                }
            };
            let main = url(format!("{prefix}-{step}.fifo")).await?;
            let dlq = url(format!("{prefix}-{step}-dlq.fifo")).await?;
            urls.insert(step, (main, dlq));
        }
        Ok(SqsQueue { client, urls })
    }

    /// The queue URL and DLQ URL of `step`.
    pub fn urls(&self, step: Step) -> &(String, String) {
        &self.urls[&step]
    }

    /// The client.
    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    /// Sends the persist messages of accepted workflows, carrying their
    /// inputs, grouped by market and cut to fit the message size limit.
    pub async fn send_accepted(&self, wfs: &[WorkflowInput]) -> Result<()> {
        let mut by_group: std::collections::BTreeMap<String, Vec<&WorkflowInput>> =
            Default::default();
        for wf in wfs {
            by_group.entry(group_of(wf)).or_default().push(wf);
        }
        let mut entries = Vec::new();
        for (group, wfs) in by_group {
            let mut job = StepJob {
                step: Step::Persist,
                workflow_ids: vec![],
                inputs: vec![],
                replay: None,
            };
            let mut size = 0;
            for wf in wfs {
                let n = serde_json::to_vec(wf)?.len();
                if size + n > MAX_BODY_BYTES && !job.inputs.is_empty() {
                    entries.push((
                        group.clone(),
                        std::mem::replace(
                            &mut job,
                            StepJob {
                                step: Step::Persist,
                                workflow_ids: vec![],
                                inputs: vec![],
                                replay: None,
                            },
                        ),
                    ));
                    size = 0;
                }
                size += n;
                job.workflow_ids.push(wf.id);
                job.inputs.push(wf.clone());
            }
            entries.push((group, job));
        }
        self.send_batch(Step::Persist, entries).await
    }

    /// Sends one job (a split or a replay) to its step's queue.
    pub async fn send(&self, job: &StepJob, _delay_ms: u64) -> Result<()> {
        self.send_batch(
            job.step,
            vec![(
                format!("wf-{}", job.workflow_ids.first().copied().unwrap_or(0)),
                job.clone(),
            )],
        )
        .await
    }

    async fn send_batch(&self, step: Step, jobs: Vec<(String, StepJob)>) -> Result<()> {
        let (url, _) = self.urls(step);
        for chunk in jobs.chunks(10) {
            let mut req = self.client.send_message_batch().queue_url(url);
            for (i, (group, job)) in chunk.iter().enumerate() {
                let body = serde_json::to_string(job)?;
                req = req.entries(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .message_group_id(group)
                        .message_deduplication_id(dedupe_id(&job.idempotency_key()))
                        .build()?,
                );
            }
            let out = req.send().await.context("SendMessageBatch failed")?;
            anyhow::ensure!(
                out.failed().is_empty(),
                "SendMessageBatch rejected {} messages: {:?}",
                out.failed().len(),
                out.failed()
            );
        }
        Ok(())
    }

    async fn dead_letter(&self, step: Step, body: &str, group: &str, reason: &str) -> Result<()> {
        let (_, dlq) = self.urls(step);
        let reason: String = reason.chars().take(1000).collect();
        self.client
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(dedupe_id(&format!("dead:{body}")))
            .message_attributes(
                "reason",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(reason)
                    .build()?,
            )
            .send()
            .await
            .context("Failed to send to the dead-letter queue")?;
        Ok(())
    }
}

/// A deduplication id is at most 128 characters; long keys are hashed.
fn dedupe_id(key: &str) -> String {
    use sha2::{Digest, Sha256};
    if key.len() <= 128
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c))
    {
        key.to_string()
    } else {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}

fn group_of(wf: &WorkflowInput) -> String {
    wf.market()
        .unwrap_or_else(|| format!("account-{}", wf.account()))
}

/// Runs one consumer per step until `shutdown` flips; a message in flight
/// at shutdown is finished within `grace`, the rest stay on the queue.
pub async fn run_workers(
    runtime: Runtime,
    transport: Transport,
    queue: SqsQueue,
    shutdown: tokio_util::sync::CancellationToken,
    grace: Duration,
) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for step in Step::ALL {
        let (rt, tr, q, stop) = (
            runtime.clone(),
            transport.clone(),
            queue.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move { consume(step, rt, tr, q, stop).await });
    }
    shutdown.cancelled().await;
    let drained = tokio::time::timeout(grace, async {
        while let Some(r) = tasks.join_next().await {
            if let Ok(Err(e)) = r {
                tracing::error!(error = %format!("{e:#}"), "SQS consumer failed");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace elapsed; in-flight messages will be redelivered");
        tasks.abort_all();
    }
    Ok(())
}

async fn consume(
    step: Step,
    rt: Runtime,
    tr: Transport,
    q: SqsQueue,
    stop: tokio_util::sync::CancellationToken,
) -> Result<()> {
    let (url, _) = q.urls(step).clone();
    while !stop.is_cancelled() {
        let recv = q
            .client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(VISIBILITY_S)
            .message_system_attribute_names(MessageSystemAttributeName::All);
        let out = tokio::select! {
            r = recv.send() => r,
            _ = stop.cancelled() => break,
        };
        let msgs = match out {
            Ok(o) => o.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(%step, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "ReceiveMessage failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for m in msgs {
            let (Some(body), Some(handle)) = (m.body(), m.receipt_handle()) else {
                continue;
            };
            let group = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            let job: StepJob = match serde_json::from_str(body) {
                Ok(j) => j,
                Err(e) => {
                    tracing::error!(%step, error = %e, "malformed message: dead-lettered");
                    q.dead_letter(step, body, &group, &format!("malformed message: {e}"))
                        .await?;
                    q.client
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                    continue;
                }
            };
            // Heartbeat: keep the message invisible while the step runs.
            let beat = {
                let (client, url, handle) = (q.client.clone(), url.clone(), handle.to_string());
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs((VISIBILITY_S / 3) as u64)).await;
                        let _ = client
                            .change_message_visibility()
                            .queue_url(&url)
                            .receipt_handle(&handle)
                            .visibility_timeout(VISIBILITY_S)
                            .send()
                            .await;
                    }
                })
            };
            let outcome = rt.execute(&job, &tr).await;
            beat.abort();
            match outcome {
                Outcome::Done(later) => {
                    for j in later {
                        q.send_batch(j.step, vec![(group.clone(), j)]).await?;
                    }
                    q.client
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
                Outcome::Retry { after_ms, .. } => {
                    let secs = after_ms.div_ceil(1000).min(43_200) as i32;
                    q.client
                        .change_message_visibility()
                        .queue_url(&url)
                        .receipt_handle(handle)
                        .visibility_timeout(secs)
                        .send()
                        .await?;
                }
                Outcome::Dead { error } => {
                    q.dead_letter(step, body, &group, &error).await?;
                    q.client
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
            }
        }
    }
    Ok(())
}

impl SqsQueue {
    /// Messages on `step`'s queue (visible + in flight) and on its DLQ,
    /// from the approximate counters SQS keeps.
    pub async fn backlog(&self, step: Step) -> Result<(i64, i64)> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let count = |url: String| {
            let client = self.client.clone();
            async move {
                let out = client
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(A::ApproximateNumberOfMessages)
                    .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                    .send()
                    .await
                    .context("GetQueueAttributes failed")?;
                let attrs = out.attributes().cloned().unwrap_or_default();
                let n = |a: A| {
                    attrs
                        .get(&a)
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or(0)
                };
                Ok::<_, anyhow::Error>(
                    n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible),
                )
            }
        };
        let (main, dlq) = self.urls(step).clone();
        Ok((count(main).await?, count(dlq).await?))
    }
}
