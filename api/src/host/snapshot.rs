//! The intake's snapshots: the engine's state and the client order id
//! index, as of a sequence number, so a restart replays only the journal
//! after it ([`workers::snapshot`]).
//!
//! Taken on the engine's thread right after a group commit (so it holds
//! nothing that is not durable): the engine's state is copied there, the
//! index's entries are shared, not copied; the JSON is built on a blocking
//! thread and written by a task of its own, one at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use pipeline::{Engine, EngineState};
use serde::{Deserialize, Serialize};
use workers::db::Db;
use workers::snapshot::SnapshotPolicy;

use super::idem::{ClientIds, Placed};

/// A snapshot as written.
#[derive(Serialize)]
struct Out<'a> {
    engine: &'a EngineState,
    client_ids: Vec<&'a Placed>,
}

/// A snapshot as read.
#[derive(Deserialize)]
struct In {
    engine: EngineState,
    client_ids: Vec<Placed>,
}

/// What a loaded snapshot restores.
pub(super) struct Restored {
    /// The engine as of `seq`.
    pub engine: Engine,
    /// The client order id index as of `seq`.
    pub client_ids: ClientIds,
    /// The sequence number it was taken at.
    pub seq: u64,
}

/// Loads the newest usable snapshot. `Ok(None)` when there is none; an
/// error when one is there but cannot be used (the caller replays the
/// whole journal instead).
pub(super) async fn load(db: &Db, policy: SnapshotPolicy) -> Result<Option<Restored>> {
    let Some(stored) = workers::snapshot::newest_usable(db, policy.replay_at_least).await? else {
        return Ok(None);
    };
    let seq = stored.seq;
    let snap: In = serde_json::from_str(&stored.state)
        .with_context(|| format!("the engine snapshot at sequence {seq} is malformed"))?;
    anyhow::ensure!(
        snap.engine.last_seq == seq,
        "the engine snapshot stored at sequence {seq} holds sequence {}",
        snap.engine.last_seq
    );
    let engine = Engine::from_state(workers::config::engine_config(), snap.engine)
        .with_context(|| format!("the engine snapshot at sequence {seq} does not restore"))?;
    Ok(Some(Restored {
        engine,
        client_ids: ClientIds::from_entries(snap.client_ids),
        seq,
    }))
}

/// Takes a snapshot every [`SnapshotPolicy::every`] sequence numbers.
pub(super) struct Snapshotter {
    policy: SnapshotPolicy,
    /// The next snapshot once the engine's sequence reaches this.
    next: u64,
    /// A snapshot is being written.
    busy: Arc<AtomicBool>,
}

impl Snapshotter {
    pub(super) fn new(policy: SnapshotPolicy) -> Snapshotter {
        Snapshotter {
            policy,
            next: u64::MAX,
            busy: Arc::default(),
        }
    }

    /// After a recovery to sequence `seq`: the next snapshot is due one
    /// interval on.
    pub(super) fn recovered(&mut self, seq: u64) {
        self.next = match self.policy.every {
            0 => u64::MAX,
            every => seq.saturating_add(every),
        };
    }

    /// Takes a snapshot of `engine` and `client_ids` when one is due and
    /// none is being written. Call only when everything applied is durable.
    pub(super) fn maybe_take(&mut self, db: &Db, engine: &Engine, client_ids: &ClientIds) {
        let seq = engine.last_seq();
        if seq < self.next || self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        self.next = seq.saturating_add(self.policy.every);
        let started = Instant::now();
        let state = engine.snapshot();
        let entries = client_ids.entries();
        let copied = started.elapsed();
        let (db, busy) = (db.clone(), self.busy.clone());
        tokio::spawn(async move {
            let written = async {
                let json = tokio::task::spawn_blocking(move || {
                    let out = Out {
                        engine: &state,
                        client_ids: entries.iter().map(|p| &**p).collect(),
                    };
                    serde_json::to_string(&out)
                })
                .await??;
                workers::snapshot::save(&db, seq, &json, workers::runtime::now_us()).await?;
                anyhow::Ok(json.len())
            }
            .await;
            match written {
                Ok(bytes) => tracing::info!(
                    seq,
                    bytes,
                    copy_us = copied.as_micros() as u64,
                    took_ms = started.elapsed().as_millis() as u64,
                    "engine snapshot written"
                ),
                Err(e) => {
                    tracing::warn!(seq, error = %format!("{e:#}"), "engine snapshot not written")
                }
            }
            busy.store(false, Ordering::Release);
        });
    }
}
