//! publish: the workflow's events to the stream.
//!
//! - input: a batch of workflows' events;
//! - idempotency key: `order_id:publish` — the runtime skips workflows whose
//!   publish step is recorded as done; a workflow found `running` had an
//!   attempt that crashed between "sent" and "recorded", so the stream is
//!   read back from when that attempt started and only the records it lacks
//!   are sent; every record also carries its event id (the engine's sequence
//!   number) for consumers;
//! - effect: one append (local event log) or PutRecords calls (Kinesis) for
//!   the whole batch, partition key = market;
//! - recorded: the attempt rows, by the runtime, after the effect succeeded.

use super::StepError;
use crate::sinks::EventSink;
use crate::workflow::WorkflowInput;
use pipeline::EventKind;
use serde::{Deserialize, Serialize};

/// One record on the stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// De-duplication key for consumers: the event's sequence number.
    pub event_id: String,
    /// The workflow that published it.
    pub workflow_id: u64,
    /// Partition key: the market, or `account-<id>` for funds movements.
    pub partition: String,
    /// The event itself.
    pub event: pipeline::Event,
}

/// The stream records of one workflow.
pub fn records(wf: &WorkflowInput) -> Vec<StreamRecord> {
    let partition = wf
        .market()
        .unwrap_or_else(|| format!("account-{}", wf.account()));
    wf.events
        .iter()
        .map(|e| StreamRecord {
            event_id: e.seq.to_string(),
            workflow_id: wf.id,
            partition: match &e.kind {
                EventKind::Trade(t) => t.market.to_string(),
                _ => partition.clone(),
            },
            event: e.clone(),
        })
        .collect()
}

/// How far before a crashed attempt's start the stream is read back (clock
/// skew between this host and the stream's arrival timestamps).
const READ_BACK_MARGIN_US: i64 = 60_000_000;

/// Publishes a batch of workflows' events in one call to the sink. With
/// `crashed_since` (µs; when an earlier attempt of one of them started and
/// never finished), the records already on the stream since then are left
/// out, so a crash between sending and recording does not send twice.
pub async fn run(
    sink: &EventSink,
    batch: &[&WorkflowInput],
    crashed_since: Option<i64>,
) -> Result<(), StepError> {
    let mut recs: Vec<StreamRecord> = batch.iter().flat_map(|wf| records(wf)).collect();
    if let Some(since) = crashed_since {
        let present: std::collections::HashSet<String> = sink
            .read_since(since - READ_BACK_MARGIN_US)
            .await
            .map_err(StepError::Transient)?
            .into_iter()
            .map(|r| r.event_id)
            .collect();
        let before = recs.len();
        recs.retain(|r| !present.contains(&r.event_id));
        tracing::info!(
            already = before - recs.len(),
            sending = recs.len(),
            "publish after a crashed attempt: sending only what the stream lacks"
        );
    }
    if recs.is_empty() {
        return Ok(());
    }
    sink.publish(&recs).await
}
