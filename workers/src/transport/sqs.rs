//! The SQS FIFO transport: one FIFO queue per step, each with a dead-letter
//! queue through its redrive policy (`maxReceiveCount`), consumed by apalis
//! workers through [`SqsBackend`], an apalis backend of its own.
//!
//! - message group id = market (`funds` for deposits and withdrawals), so a
//!   market's messages are handled in order; deduplication id = the job's
//!   idempotency key (never the MessageId: moto mints a new one for a
//!   de-duplicated send);
//! - long polling, batched receive (10), and deletes — only after the step's
//!   transaction committed and its follow-up was sent — batched by an
//!   [`Acker`] per queue (DeleteMessageBatch);
//! - retry backoff = `ChangeMessageVisibility` on the received message (FIFO
//!   queues have no per-message delay); a heartbeat extends the visibility
//!   of a long step; a step that only waits for an earlier workflow whose
//!   message is behind it (a fill before its order's placement) is sent
//!   again to the back of its group instead of holding the group;
//! - dead letters: exhausted or permanent → sent to the DLQ with the reason
//!   as a message attribute, then deleted; a message that crashes its worker
//!   again and again reaches the DLQ through the redrive policy.

use crate::runtime::{Outcome, Runtime, StepJob};
use crate::transport::Transport;
use crate::workflow::{Step, WorkflowInput};
use anyhow::{Context, Result};
use apalis::prelude::*;
use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use futures::future::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use std::time::Instant;
use tokio_util::task::TaskTracker;

/// SQS accepts up to 256 KiB per message; stay well below.
const MAX_BODY_BYTES: usize = 200 * 1024;
/// Visibility timeout of a received message, in seconds: how long a message
/// held by a crashed worker waits before redelivery (as the 12 s orphan
/// recovery of the database transports). A live worker's heartbeat extends
/// it every third of that.
const VISIBILITY_S: i32 = 12;

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
            let mut job = StepJob::new(Step::Persist, vec![]);
            let mut size = 0;
            for wf in wfs {
                let n = serde_json::to_vec(wf)?.len();
                if size + n > MAX_BODY_BYTES && !job.inputs.is_empty() {
                    entries.push((
                        group.clone(),
                        std::mem::replace(&mut job, StepJob::new(Step::Persist, vec![])),
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

    /// Sends a recovery barrier (`<token>:<group>`) into each of `groups`
    /// on the persist queue.
    pub async fn send_barriers(&self, token: &str, groups: &[String]) -> Result<()> {
        let jobs = groups
            .iter()
            .map(|g| {
                let mut job = StepJob::new(Step::Persist, vec![]);
                job.barrier = Some(format!("{token}:{g}"));
                (g.clone(), job)
            })
            .collect();
        self.send_batch(Step::Persist, jobs).await
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

    /// Sends a received message's body again, to the back of its group,
    /// under a deduplication id of its own (its job's key would be dropped
    /// as a duplicate of the message it copies).
    async fn requeue(&self, step: Step, body: &str, group: &str) -> Result<()> {
        let (url, _) = self.urls(step);
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(format!("requeue:{}", ulid::Ulid::generate()))
            .send()
            .await
            .context("Failed to send a message to the back of its group")?;
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

/// The message group of a workflow: its market, or [`FUNDS_GROUP`] for
/// deposits and withdrawals.
fn group_of(wf: &WorkflowInput) -> String {
    wf.market().unwrap_or_else(|| FUNDS_GROUP.to_string())
}

/// The message group of deposits and withdrawals.
pub const FUNDS_GROUP: &str = "funds";

/// Every message group accepted workflows are sent to on the persist queue
/// (the markets and [`FUNDS_GROUP`]): where recovery sends its barriers.
pub fn persist_groups(markets: &[pipeline::Market]) -> Vec<String> {
    let mut groups: Vec<String> = markets.iter().map(|m| m.id.to_string()).collect();
    groups.push(FUNDS_GROUP.to_string());
    groups
}

/// One received message, as the handler sees it (task data).
#[derive(Clone, Debug)]
struct Delivery {
    handle: String,
    group: String,
    body: String,
}

/// One step's FIFO queue as an apalis [`Backend`]: batched long-poll
/// receive into a buffer, one task per message. Acknowledgement is the
/// handler's (delete, visibility change or dead letter, by outcome); on
/// shutdown, messages received but not started are made visible again at
/// once (`poll_close`), so another worker picks them up without waiting
/// for their visibility timeout.
pub struct SqsBackend {
    queue: SqsQueue,
    step: Step,
    buffer: VecDeque<Task<serde_json::Value>>,
    fetch: Option<BoxFuture<'static, Vec<Message>>>,
    release: Option<BoxFuture<'static, ()>>,
    held: Held,
}

/// Message groups whose message failed in the batch being worked through:
/// the failed message stays in flight for its backoff, and FIFO order means
/// nothing after it in its group may run first. SQS holds the group back on
/// the server from the next receive on; the messages of that group already
/// received in the same batch are put back here, invisible for as long.
/// Cleared with every new batch.
#[derive(Clone, Debug, Default)]
struct Held(Arc<Mutex<HashMap<String, Instant>>>);

impl Held {
    fn hold(&self, group: &str, for_s: i32) {
        let until = Instant::now() + Duration::from_secs(for_s.max(1) as u64);
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let at = held.entry(group.to_string()).or_insert(until);
        *at = (*at).max(until);
    }

    /// Seconds left on `group`'s hold, if held.
    fn left(&self, group: &str) -> Option<i32> {
        let held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let until = held.get(group)?;
        let left = until
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        (left > 0.0).then(|| left.ceil() as i32)
    }

    fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl std::fmt::Debug for SqsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsBackend")
            .field("step", &self.step)
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

/// Errors of [`SqsBackend`] (receive errors are retried inside it, so this
/// is never produced today; apalis requires the type).
#[derive(Debug, thiserror::Error)]
#[error("SQS backend: {0}")]
pub struct SqsBackendError(String);

impl SqsBackend {
    /// The backend of `step`'s queue.
    pub fn new(queue: SqsQueue, step: Step) -> SqsBackend {
        SqsBackend {
            queue,
            step,
            buffer: VecDeque::new(),
            fetch: None,
            release: None,
            held: Held::default(),
        }
    }

    fn with_held(mut self, held: Held) -> SqsBackend {
        self.held = held;
        self
    }

    /// One long-poll ReceiveMessage (up to 10 messages); a failure is
    /// logged and answered with nothing after a pause, so the worker keeps
    /// polling through an outage.
    fn receive(&self) -> BoxFuture<'static, Vec<Message>> {
        let (client, step) = (self.queue.client.clone(), self.step);
        let url = self.queue.urls(step).0.clone();
        Box::pin(async move {
            let out = client
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .visibility_timeout(VISIBILITY_S)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await;
            match out {
                Ok(o) => o.messages.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(%step, error = %aws_sdk_sqs::error::DisplayErrorContext(e), "ReceiveMessage failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    vec![]
                }
            }
        })
    }

    /// A received message as a task. A body that is not JSON still becomes a
    /// task (a JSON string), so the handler dead-letters it.
    fn task(m: Message) -> Option<Task<serde_json::Value>> {
        let body = m.body?;
        let handle = m.receipt_handle?;
        let group = m
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let args = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body.clone()));
        let mut task = TaskBuilder::new(args).data(Delivery {
            handle,
            group,
            body,
        });
        if let Some(id) = m.message_id {
            task = task.task_id(TaskId::from_string(id));
        }
        Some(task.build())
    }

    /// Fills the buffer; Ready once it holds a task.
    fn poll_fill(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        while self.buffer.is_empty() {
            let fetch = match &mut self.fetch {
                Some(f) => f,
                None => self.fetch.insert(self.receive()),
            };
            let msgs = std::task::ready!(fetch.as_mut().poll(cx));
            self.fetch = None;
            // A new batch: what the server hands out now respects its own
            // group holds.
            self.held.clear();
            self.buffer
                .extend(msgs.into_iter().filter_map(SqsBackend::task));
        }
        Poll::Ready(())
    }
}

impl Backend for SqsBackend {
    type Task = Task<serde_json::Value>;
    type Error = SqsBackendError;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), SqsBackendError>> {
        self.poll_fill(cx).map(Ok)
    }

    fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, SqsBackendError>>> {
        loop {
            std::task::ready!(self.poll_fill(cx));
            let Some(task) = self.buffer.pop_front() else {
                return Poll::Ready(None);
            };
            let held = task
                .data()
                .get::<Delivery>()
                .and_then(|d| Some((d.group.clone(), d.handle.clone(), self.held.left(&d.group)?)));
            let Some((group, handle, secs)) = held else {
                return Poll::Ready(Some(Ok(task)));
            };
            tracing::debug!(%group, secs, "put back behind a failed message of its group");
            let (client, url) = (
                self.queue.client.clone(),
                self.queue.urls(self.step).0.clone(),
            );
            tokio::spawn(async move {
                let _ = client
                    .change_message_visibility()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .visibility_timeout(secs)
                    .send()
                    .await;
            });
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), SqsBackendError>> {
        if self.release.is_none() {
            // A receive in flight may still hand us messages: let it go; they
            // come back after their visibility timeout.
            self.fetch = None;
            let handles: Vec<String> = self
                .buffer
                .drain(..)
                .filter_map(|t| t.data().get::<Delivery>().map(|d| d.handle.clone()))
                .collect();
            let (client, url) = (
                self.queue.client.clone(),
                self.queue.urls(self.step).0.clone(),
            );
            self.release = Some(Box::pin(async move {
                for chunk in handles.chunks(10) {
                    let mut req = client.change_message_visibility_batch().queue_url(&url);
                    for (i, h) in chunk.iter().enumerate() {
                        if let Ok(e) = ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(h)
                            .visibility_timeout(0)
                            .build()
                        {
                            req = req.entries(e);
                        }
                    }
                    if let Err(e) = req.send().await {
                        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "could not release buffered messages; they return after their visibility timeout");
                    }
                }
            }));
        }
        match self.release.as_mut() {
            Some(f) => f.as_mut().poll(cx).map(Ok),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl BackendConfig for SqsBackend {
    type Args = serde_json::Value;
    type Id = String;
    type Kind = Ephemeral;
    type Config = ();
    type Layer = tower::layer::util::Identity;

    fn config(&self) -> &() {
        &()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        tower::layer::util::Identity::new()
    }
}

/// Deletes acknowledged messages in batches of up to 10 (DeleteMessageBatch).
/// A handler hands its receipt handle over and goes on; the batch goes out
/// as soon as the previous one returned. A delete lost in a crash means a
/// redelivery, which the step records as a duplicate.
#[derive(Clone, Debug)]
struct Acker {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
}

impl Acker {
    fn spawn(client: aws_sdk_sqs::Client, url: String) -> (Acker, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(10);
            while rx.recv_many(&mut batch, 10).await > 0 {
                let mut req = client.delete_message_batch().queue_url(&url);
                for (i, h) in batch.drain(..).enumerate() {
                    if let Ok(e) = DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h)
                        .build()
                    {
                        req = req.entries(e);
                    }
                }
                match req.send().await {
                    Ok(out) if !out.failed().is_empty() => {
                        tracing::warn!(failed = ?out.failed(), "DeleteMessageBatch: some deletes failed; those messages will be redelivered");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "DeleteMessageBatch failed; the messages will be redelivered");
                    }
                }
            }
        });
        (Acker { tx }, task)
    }

    fn ack(&self, handle: String) {
        // The receiver lives until every worker stopped; a send can only fail
        // after that, and then the message is simply redelivered.
        let _ = self.tx.send(handle);
    }
}

/// What each handler gets.
#[derive(Clone, Debug)]
struct Ctx {
    runtime: Runtime,
    transport: Transport,
    queue: SqsQueue,
    step: Step,
    acker: Acker,
    in_flight: TaskTracker,
    held: Held,
}

async fn handle(
    job: serde_json::Value,
    delivery: Data<Delivery>,
    ctx: Data<Ctx>,
) -> Result<(), BoxDynError> {
    // The tracker is what shutdown waits on (see `run_tracked`).
    let (held, group) = (ctx.held.clone(), delivery.group.clone());
    let in_flight = ctx.in_flight.clone();
    let result = super::run_tracked(&in_flight, handle_message(job, delivery, ctx)).await;
    if result.is_err() {
        // Not acknowledged: it comes back after its visibility timeout.
        held.hold(&group, VISIBILITY_S);
    }
    result
}

async fn handle_message(
    job: serde_json::Value,
    delivery: Data<Delivery>,
    ctx: Data<Ctx>,
) -> Result<(), BoxDynError> {
    let (q, step) = (&ctx.queue, ctx.step);
    let url = q.urls(step).0.clone();
    let job: StepJob = match serde_json::from_value(job) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(%step, error = %e, "malformed message: dead-lettered");
            q.dead_letter(
                step,
                &delivery.body,
                &delivery.group,
                &format!("malformed message: {e}"),
            )
            .await
            .map_err(into_box)?;
            ctx.acker.ack(delivery.handle.clone());
            return Ok(());
        }
    };
    // Heartbeat: keep the message invisible while the step runs.
    let beat = {
        let (client, url, handle) = (q.client.clone(), url.clone(), delivery.handle.clone());
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
    let outcome = ctx.runtime.execute(&job, &ctx.transport).await;
    beat.abort();
    match outcome {
        Outcome::Done(later) => {
            for j in later {
                q.send_batch(j.step, vec![(delivery.group.clone(), j)])
                    .await
                    .map_err(into_box)?;
            }
            ctx.acker.ack(delivery.handle.clone());
        }
        Outcome::Retry {
            error,
            behind_earlier: true,
            ..
        } => {
            // It builds on an earlier workflow whose message is behind it
            // in the group: after a split (whose jobs go to the back) or,
            // on moto, after a crash — moto hands out the last message of
            // a group to come back from flight before the earlier ones,
            // and, holding it in flight, keeps holding them back. Held in
            // flight for a backoff it would come back first every time
            // until its attempts ran out (dead-lettered, the one it waits
            // for never run). Sent again behind the rest of its group, it
            // runs after what it waits for. The attempt is counted.
            q.requeue(step, &delivery.body, &delivery.group)
                .await
                .map_err(into_box)?;
            ctx.acker.ack(delivery.handle.clone());
            tracing::warn!(%step, group = %delivery.group, %error, "step waits for an earlier workflow: sent to the back of its group");
        }
        Outcome::Retry {
            after_ms, error, ..
        } => {
            // FIFO queues have no per-message delay: the message stays in
            // flight for the backoff, and its group waits behind it.
            let secs = after_ms.div_ceil(1000).min(43_200) as i32;
            ctx.held.hold(&delivery.group, secs);
            q.client
                .change_message_visibility()
                .queue_url(&url)
                .receipt_handle(&delivery.handle)
                .visibility_timeout(secs)
                .send()
                .await
                .map_err(|e| into_box(e.into()))?;
            tracing::warn!(%step, group = %delivery.group, retry_in_s = secs, %error, "step failed; will be retried");
        }
        Outcome::Dead { error } => {
            tracing::error!(%step, group = %delivery.group, %error, "step failed for good: dead-lettered");
            q.dead_letter(step, &delivery.body, &delivery.group, &error)
                .await
                .map_err(into_box)?;
            ctx.acker.ack(delivery.handle.clone());
        }
    }
    Ok(())
}

fn into_box(e: anyhow::Error) -> BoxDynError {
    e.into_boxed_dyn_error()
}

/// Runs one apalis worker per step on [`SqsBackend`] until `shutdown` is
/// cancelled; steps in flight get `grace` to finish, buffered messages are
/// released, pending deletes are flushed.
pub async fn run_workers(
    runtime: Runtime,
    transport: Transport,
    queue: SqsQueue,
    shutdown: tokio_util::sync::CancellationToken,
    grace: Duration,
) -> Result<()> {
    let boot = ulid::Ulid::generate().to_string();
    let in_flight = TaskTracker::new();
    let mut ackers = vec![];
    let mut monitor = Monitor::new();
    for step in Step::ALL {
        let (acker, task) = Acker::spawn(queue.client.clone(), queue.urls(step).0.clone());
        ackers.push(task);
        let ctx = Ctx {
            runtime: runtime.clone(),
            transport: transport.clone(),
            queue: queue.clone(),
            step,
            acker,
            in_flight: in_flight.clone(),
            held: Held::default(),
        };
        let boot = boot.clone();
        monitor = monitor.register(move |restarts| {
            WorkerBuilder::new(format!("{step}-sqs-{boot}-{restarts}"))
                .backend(SqsBackend::new(ctx.queue.clone(), step).with_held(ctx.held.clone()))
                .data(ctx.clone())
                .concurrency(1)
                .build(handle)
        });
    }
    let ran = super::run_monitor(
        monitor,
        async move { shutdown.cancelled().await },
        grace,
        &in_flight,
    )
    .await;
    // The monitor dropped the workers and with them every Acker handle; each
    // acker task now sends its last batch and ends.
    for task in ackers {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    ran
}

impl SqsQueue {
    /// Messages on `step`'s dead-letter queue (visible + in flight), from
    /// the approximate counters SQS keeps.
    pub async fn dead_letters(&self, step: Step) -> Result<i64> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.urls(step).1)
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
        Ok(n(A::ApproximateNumberOfMessages) + n(A::ApproximateNumberOfMessagesNotVisible))
    }
}
