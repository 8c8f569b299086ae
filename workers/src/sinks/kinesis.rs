//! The publish step's production stream: Kinesis, through PutRecords.

use crate::steps::StepError;
use crate::steps::publish::StreamRecord;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use std::time::Duration;

/// Kinesis allows 500 records per PutRecords call.
const MAX_RECORDS_PER_CALL: usize = 500;
/// Rounds of re-sending the records that a call reported as failed.
const MAX_ROUNDS: u32 = 6;

/// A Kinesis data stream.
#[derive(Clone, Debug)]
pub struct KinesisSink {
    client: aws_sdk_kinesis::Client,
    stream: String,
}

impl KinesisSink {
    /// A sink writing to `stream`.
    pub fn new(client: aws_sdk_kinesis::Client, stream: impl Into<String>) -> KinesisSink {
        KinesisSink {
            client,
            stream: stream.into(),
        }
    }

    /// The client (for tests that read the stream back).
    pub fn client(&self) -> &aws_sdk_kinesis::Client {
        &self.client
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Reads the stream shard by shard to its end: from TRIM_HORIZON, or
    /// from the records that arrived at or after `since_us` (µs since the epoch).
    pub async fn read_from(&self, since_us: Option<i64>) -> anyhow::Result<Vec<StreamRecord>> {
        use anyhow::Context;
        use aws_sdk_kinesis::types::ShardIteratorType;
        let c = &self.client;
        let shards = c.list_shards().stream_name(&self.stream).send().await?;
        let mut records = vec![];
        for shard in shards.shards() {
            let req = c
                .get_shard_iterator()
                .stream_name(&self.stream)
                .shard_id(shard.shard_id());
            let req = match since_us {
                None => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
                Some(us) => req
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(aws_sdk_kinesis::primitives::DateTime::from_secs_and_nanos(
                        us.div_euclid(1_000_000),
                        (us.rem_euclid(1_000_000) * 1_000) as u32,
                    )),
            };
            let mut it = req
                .send()
                .await?
                .shard_iterator
                .context("no shard iterator")?;
            loop {
                let out = c.get_records().shard_iterator(&it).send().await?;
                for r in &out.records {
                    records.push(serde_json::from_slice(r.data().as_ref())?);
                }
                let caught_up = out.millis_behind_latest.unwrap_or(0) == 0;
                match out.next_shard_iterator {
                    Some(next) if !(out.records.is_empty() && caught_up) => it = next,
                    _ => break,
                }
            }
        }
        Ok(records)
    }

    /// Puts every record; records that a call reports as failed (throttled,
    /// internal error) are sent again with backoff; after that it is a
    /// transient error and the whole step is retried.
    pub async fn put_records(&self, records: &[StreamRecord]) -> Result<(), StepError> {
        for chunk in records.chunks(MAX_RECORDS_PER_CALL) {
            let mut pending: Vec<PutRecordsRequestEntry> = Vec::with_capacity(chunk.len());
            for r in chunk {
                let data = serde_json::to_vec(r).map_err(|e| StepError::Permanent(e.into()))?;
                let entry = PutRecordsRequestEntry::builder()
                    .data(Blob::new(data))
                    .partition_key(&r.partition)
                    .build()
                    .map_err(|e| StepError::Permanent(e.into()))?;
                pending.push(entry);
            }
            let mut round = 0;
            while !pending.is_empty() {
                round += 1;
                let out = self
                    .client
                    .put_records()
                    .stream_name(&self.stream)
                    .set_records(Some(pending.clone()))
                    .send()
                    .await
                    .map_err(|e| {
                        StepError::Transient(anyhow::anyhow!(
                            "PutRecords failed: {}",
                            aws_sdk_kinesis::error::DisplayErrorContext(e)
                        ))
                    })?;
                if out.failed_record_count().unwrap_or(0) == 0 {
                    break;
                }
                pending = pending
                    .into_iter()
                    .zip(out.records())
                    .filter(|(_, res)| res.error_code().is_some())
                    .map(|(entry, _)| entry)
                    .collect();
                if round >= MAX_ROUNDS {
                    return Err(StepError::Transient(anyhow::anyhow!(
                        "{} records still failing after {round} PutRecords rounds",
                        pending.len()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50 << round)).await;
            }
        }
        Ok(())
    }
}
