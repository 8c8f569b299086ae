//! publish: the workflow's events to the stream.
//!
//! - input: a batch of workflows' events;
//! - idempotency key: `order_id:publish` — the runtime skips workflows whose
//!   publish step is recorded as done; every record carries its event id (the
//!   engine's sequence number), so a consumer drops the duplicate that a crash
//!   between "sent" and "recorded" can produce;
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

/// Publishes a batch of workflows' events in one call to the sink.
pub async fn run(sink: &EventSink, batch: &[&WorkflowInput]) -> Result<(), StepError> {
    let recs: Vec<StreamRecord> = batch.iter().flat_map(|wf| records(wf)).collect();
    sink.publish(&recs).await
}
