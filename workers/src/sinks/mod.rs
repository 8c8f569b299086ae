//! Where the publish and archive steps write: the local event log and
//! archive directory (embedded default), or Kinesis and S3.

pub mod kinesis;
pub mod local;
pub mod s3;

use crate::steps::StepError;
use crate::steps::publish::StreamRecord;

/// The stream the publish step writes to.
#[derive(Clone, Debug)]
pub enum EventSink {
    /// An append-only JSON-lines file.
    Local(local::EventLog),
    /// A Kinesis data stream.
    Kinesis(kinesis::KinesisSink),
}

impl EventSink {
    /// Appends the records, all or (after retries) an error.
    pub async fn publish(&self, records: &[StreamRecord]) -> Result<(), StepError> {
        match self {
            EventSink::Local(l) => l.append(records).await,
            EventSink::Kinesis(k) => k.put_records(records).await,
        }
    }

    /// Reads every record back from the beginning (all shards, in order per
    /// shard): what a consumer or an auditor sees.
    pub async fn read_all(&self) -> anyhow::Result<Vec<StreamRecord>> {
        match self {
            EventSink::Local(l) => l.read_all(),
            EventSink::Kinesis(k) => k.read_from(None).await,
        }
    }

    /// Reads the records that arrived at or after `since_us` (µs since the
    /// epoch; the local log is read whole).
    pub async fn read_since(&self, since_us: i64) -> anyhow::Result<Vec<StreamRecord>> {
        match self {
            EventSink::Local(l) => l.read_all(),
            EventSink::Kinesis(k) => k.read_from(Some(since_us)).await,
        }
    }
}

/// The store the archive step writes to.
#[derive(Clone, Debug)]
pub enum ArchiveStore {
    /// A local directory.
    Dir(local::ArchiveDir),
    /// An S3 bucket.
    S3(s3::S3Archive),
}

impl ArchiveStore {
    /// Writes `bytes` at `key` unless an object is there; returns the bytes
    /// that are stored at `key` afterwards (the earlier object if one was).
    pub async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<Vec<u8>, StepError> {
        match self {
            ArchiveStore::Dir(d) => d.put_if_absent(key, bytes).await,
            ArchiveStore::S3(s) => s.put_if_absent(key, bytes).await,
        }
    }

    /// Reads the object at `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StepError> {
        match self {
            ArchiveStore::Dir(d) => d.get(key).await,
            ArchiveStore::S3(s) => s.get(key).await,
        }
    }
}
