//! The intake's snapshots: the engine's state and the client order id
//! index, as of a sequence number, so a restart replays only the journal
//! after it ([`workers::snapshot`]).
//!
//! Taken on the engine's thread right after a group commit (so it holds
//! nothing that is not durable): the engine is cloned there (a few ms for
//! 100,000 open orders), the index's entries are shared, not copied.
//! Everything else — the records, their JSON, its SHA-256 and the insert —
//! runs on the intake's main runtime and its blocking threads, one
//! snapshot at a time: done on the engine's thread, hashing and sending a
//! 28 MB snapshot stalled group commits by 50–130 ms (measured).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use pipeline::{Engine, EngineState};
use serde::Serialize;
use workers::db::Db;
use workers::snapshot::SnapshotPolicy;

use workers::client_ids::{ClientIdEntry, ClientIds};

/// A snapshot as written; read back as [`workers::snapshot::Contents`]
/// (here and by `clearway ops verify`).
#[derive(Serialize)]
struct Out<'a> {
    engine: &'a EngineState,
    client_ids: Vec<&'a ClientIdEntry>,
    client_id_window_us: u64,
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
    let snap: workers::snapshot::Contents = serde_json::from_str(&stored.state)
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
        client_ids: ClientIds::from_entries(snap.client_ids, policy.client_id_window_us),
        seq,
    }))
}

/// Takes a snapshot every [`SnapshotPolicy::every`] sequence numbers.
pub(super) struct Snapshotter {
    policy: SnapshotPolicy,
    /// The main runtime, and a database pool of its own, for the writes.
    main: tokio::runtime::Handle,
    db: Db,
    /// The next snapshot once the engine's sequence reaches this.
    next: u64,
    /// A snapshot is being written.
    busy: Arc<AtomicBool>,
}

impl Snapshotter {
    /// Call on the main runtime, with its database.
    pub(super) fn new(policy: SnapshotPolicy, db: Db) -> Snapshotter {
        Snapshotter {
            policy,
            main: tokio::runtime::Handle::current(),
            db,
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
    pub(super) fn maybe_take(&mut self, engine: &Engine, client_ids: &ClientIds) {
        let seq = engine.last_seq();
        if seq < self.next || self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        self.next = seq.saturating_add(self.policy.every);
        // A clone is a few copies of flat tables; turning it into records
        // (`Engine::snapshot`) takes 10× longer and happens off this thread.
        let started = Instant::now();
        let engine = engine.clone();
        let (entries, window_us) = (client_ids.entries(), client_ids.window_us());
        let copied = started.elapsed();
        let (db, busy) = (self.db.clone(), self.busy.clone());
        self.main.spawn(async move {
            let written = async {
                let (json, sum) = tokio::task::spawn_blocking(move || {
                    let state = engine.snapshot();
                    let out = Out {
                        engine: &state,
                        client_ids: entries.iter().map(|p| &**p).collect(),
                        client_id_window_us: window_us,
                    };
                    let json = serde_json::to_string(&out)?;
                    let sum = workers::snapshot::sha256(&json);
                    anyhow::Ok((json, sum))
                })
                .await??;
                let (bytes, built) = (json.len(), started.elapsed());
                workers::snapshot::save(&db, seq, json, sum, workers::runtime::now_us()).await?;
                anyhow::Ok((bytes, built))
            }
            .await;
            match written {
                Ok((bytes, built)) => tracing::info!(
                    seq,
                    bytes,
                    copy_us = copied.as_micros() as u64,
                    built_ms = built.as_millis() as u64,
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
