//! The engine task's loop: batch, apply, group-commit, reply; fail closed and
//! rebuild from the journal when a commit fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use pipeline::Command;
use tokio::sync::{broadcast, mpsc};
use workers::config::{Services, engine_config};
use workers::db::HeldConnection;
use workers::workflow::WorkflowInput;

use super::md::{BookTracker, Committed, touched};
use super::snapshot::Snapshotter;
use super::{Accepted, Core, MAX_BATCH, Reply, Request};
use crate::error::ApiError;
use crate::metrics::Metrics;
use workers::client_ids::{ClientIds, Lookup};

/// Commit attempts before the engine fails closed.
const COMMIT_ATTEMPTS: u32 = 3;

/// A group commit this slow is logged: every order behind it waited.
const SLOW_COMMIT: Duration = Duration::from_millis(20);

/// Replies waiting for the batch's commit.
type Pending = Vec<(Reply, Result<Accepted, ApiError>)>;

/// The engine task's state.
pub(super) struct Host {
    /// Database and transport.
    services: Services,
    /// Requests from handlers.
    rx: mpsc::Receiver<Request>,
    /// Shared with every handle: recovered and accepting.
    ready: Arc<AtomicBool>,
    /// Counters.
    metrics: Arc<Metrics>,
    /// The last timestamp handed to the engine (kept monotonic).
    last_ts: u64,
    /// Where committed events and book diffs go.
    committed: broadcast::Sender<Arc<Committed>>,
    /// The books as last published.
    books: BookTracker,
    /// The connection group commits run on, kept between them.
    held: HeldConnection,
    /// Snapshots of the engine, so a restart replays only the journal's tail.
    snapshots: Snapshotter,
}

impl Host {
    /// A host that has not recovered yet.
    pub(super) fn new(
        services: Services,
        rx: mpsc::Receiver<Request>,
        ready: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
        committed: broadcast::Sender<Arc<Committed>>,
    ) -> Host {
        Host {
            snapshots: Snapshotter::new(services.snapshots, services.db.clone()),
            services,
            rx,
            ready,
            metrics,
            last_ts: 0,
            committed,
            books: BookTracker::default(),
            held: HeldConnection::default(),
        }
    }

    /// The host with a PostgreSQL pool of its own, opened on the runtime
    /// this is called on ([`workers::db::Db::for_this_runtime`]).
    pub(super) fn with_own_pool(mut self, max_connections: u32) -> Host {
        self.services.db = self.services.db.for_this_runtime(max_connections);
        self
    }

    /// Recovers, then serves until every handle is dropped.
    pub(super) async fn run(mut self) {
        let Some(mut core) = self.recover().await else {
            return;
        };
        while let Some(first) = self.rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let (mut pending, mut wfs) = (Pending::new(), Vec::new());
            for req in batch {
                match req {
                    Request::Command { cmd, reply } => {
                        let result = self.apply(&mut core, cmd, &mut wfs);
                        pending.push((reply, result));
                    }
                    Request::Read(read) => {
                        // A read must not see what is not durable yet.
                        if !self
                            .flush_or_rebuild(&mut core, &mut pending, &mut wfs)
                            .await
                        {
                            return;
                        }
                        read(&core);
                    }
                }
            }
            if !self
                .flush_or_rebuild(&mut core, &mut pending, &mut wfs)
                .await
            {
                return;
            }
            self.snapshots.maybe_take(&core.engine, &core.client_ids);
        }
    }

    /// [`Host::flush`]es; when the commit failed, rebuilds `core` from the
    /// journal. False once every handle is dropped: nobody is left to serve.
    async fn flush_or_rebuild(
        &mut self,
        core: &mut Core,
        pending: &mut Pending,
        wfs: &mut Vec<WorkflowInput>,
    ) -> bool {
        if self.flush(core, pending, wfs).await {
            return true;
        }
        match self.recover().await {
            Some(rebuilt) => {
                *core = rebuilt;
                true
            }
            None => false,
        }
    }

    fn now(&mut self) -> u64 {
        let now = u64::try_from(workers::runtime::now_us()).unwrap_or(0);
        self.last_ts = self.last_ts.max(now);
        self.last_ts
    }

    /// Applies one command; accepted ones join `wfs` for the group commit.
    fn apply(
        &mut self,
        core: &mut Core,
        cmd: Command,
        wfs: &mut Vec<WorkflowInput>,
    ) -> Result<Accepted, ApiError> {
        match core.client_ids.lookup(&cmd) {
            Lookup::New => {}
            Lookup::Retry(events) => {
                return Ok(Accepted {
                    events,
                    replayed: true,
                });
            }
            Lookup::Conflict(space, id) => {
                return Err(ApiError::ClientIdConflict(space, id.to_string()));
            }
        }
        let ts = self.now();
        let events = core.engine.apply(cmd.clone(), ts).map_err(|r| {
            self.metrics.rejects.fetch_add(1, Ordering::Relaxed);
            ApiError::Rejected(r)
        })?;
        core.client_ids.record(&cmd, &events);
        core.client_ids.expire(ts);
        core.closed
            .record(core.engine.closed_by_last_apply(), &events);
        wfs.extend(WorkflowInput::new(cmd, ts, events.clone()));
        Ok(Accepted {
            events,
            replayed: false,
        })
    }

    /// Group-commits `wfs`, then answers `pending`: with their results when the
    /// commit held, else 503 to all (their outcome is unknown to the client).
    /// Returns whether the commit held.
    async fn flush(
        &mut self,
        core: &Core,
        pending: &mut Pending,
        wfs: &mut Vec<WorkflowInput>,
    ) -> bool {
        let ok = wfs.is_empty() || self.commit(wfs).await;
        if ok && !wfs.is_empty() {
            let events: Vec<_> = wfs.iter().flat_map(|w| w.events.iter().cloned()).collect();
            let (diffs, books) = self.books.diff(&core.engine, Some(touched(&events)));
            let workflows = wfs.iter().map(|w| w.id).collect();
            self.broadcast(events, workflows, diffs, books);
        }
        for (reply, result) in pending.drain(..) {
            let _ = reply.send(if ok {
                result
            } else {
                Err(ApiError::Unavailable)
            });
        }
        wfs.clear();
        ok
    }

    /// Sends a [`Committed`] to whoever listens (nobody is fine).
    fn broadcast(
        &self,
        events: Vec<pipeline::Event>,
        workflows: Vec<u64>,
        diffs: Vec<super::DepthDiff>,
        books: Vec<pipeline::Depth>,
    ) {
        if events.is_empty() && books.is_empty() {
            return;
        }
        let _ = self.committed.send(Arc::new(Committed {
            events,
            workflows,
            diffs,
            books,
        }));
    }

    /// After a rebuild: the first one sets the published books; a later one
    /// publishes how the rebuilt books differ from what was published (a
    /// batch whose commit was reported failed may have been durable).
    fn publish_rebuilt(&mut self, core: &Core) {
        if self.books.is_empty() {
            let books = self.books.baseline(&core.engine);
            self.broadcast(Vec::new(), Vec::new(), Vec::new(), books);
        } else {
            let (diffs, books) = self.books.diff(&core.engine, None);
            self.broadcast(Vec::new(), Vec::new(), diffs, books);
        }
    }

    async fn commit(&mut self, wfs: &[WorkflowInput]) -> bool {
        let Services { db, transport, .. } = &self.services;
        let mut delay = Duration::from_millis(20);
        for attempt in 1..=COMMIT_ATTEMPTS {
            let started = std::time::Instant::now();
            match transport
                .commit_accepted_held(db, &mut self.held, wfs)
                .await
            {
                Ok(()) => {
                    let took = started.elapsed();
                    if took >= SLOW_COMMIT {
                        tracing::warn!(
                            took_ms = took.as_millis() as u64,
                            batch = wfs.len(),
                            "slow group commit"
                        );
                    }
                    self.metrics.commit_latency.observe(took);
                    self.metrics
                        .committed_workflows
                        .fetch_add(wfs.len() as u64, Ordering::Relaxed);
                    return true;
                }
                Err(e) if attempt == COMMIT_ATTEMPTS => {
                    tracing::error!(error = ?e, batch = wfs.len(), "group commit failed; the engine fails closed");
                    break;
                }
                Err(e) => tracing::warn!(error = %e, attempt, "group commit failed; retrying"),
            }
            tokio::time::sleep(delay).await;
            delay *= 4;
        }
        self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Stops accepting, rebuilds the engine from the journal (retrying with
    /// backoff), then accepts again. Requests meanwhile get 503. `None` once
    /// every handle is dropped: nobody is left to serve.
    async fn recover(&mut self) -> Option<Core> {
        self.ready.store(false, Ordering::Release);
        let mut delay = Duration::from_millis(100);
        loop {
            let attempt = rebuild(self.services.clone(), self.metrics.clone());
            tokio::pin!(attempt);
            let result = loop {
                tokio::select! {
                    r = &mut attempt => break r,
                    req = self.rx.recv() => match req {
                        Some(req) => refuse(req),
                        None => return None,
                    },
                }
            };
            match result {
                Ok(core) => {
                    self.metrics.rebuilds.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        seq = core.engine.last_seq(),
                        open_orders = core.engine.open_order_count(),
                        "engine rebuilt from the journal"
                    );
                    self.publish_rebuilt(&core);
                    self.snapshots.recovered(core.engine.last_seq());
                    self.ready.store(true, Ordering::Release);
                    return Some(core);
                }
                Err(e) => {
                    tracing::error!(error = ?e, retry_in_ms = delay.as_millis() as u64, "engine rebuild failed");
                    if self.rx.is_closed() {
                        return None;
                    }
                    tokio::time::sleep(delay).await;
                    // Short cap: once the journal is back, 503s should stop quickly.
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Drain, then load: on SQS the persist queue must be empty first. Loads
/// the newest usable snapshot (a snapshot that cannot be used is logged,
/// and the whole journal is replayed instead), then replays the journal
/// after it.
async fn rebuild(services: workers::config::Services, metrics: Arc<Metrics>) -> Result<Core> {
    workers::recovery::drain(&services, Duration::from_secs(60)).await?;
    let db = services.db;
    let started = std::time::Instant::now();
    let restored = match super::snapshot::load(&db, services.snapshots).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "engine snapshot not used; replaying the whole journal");
            None
        }
    };
    let (mut engine, mut client_ids, from) = match restored {
        Some(r) => (r.engine, r.client_ids, r.seq),
        None => (
            pipeline::Engine::try_new(engine_config())?,
            ClientIds::with_window(services.snapshots.client_id_window_us),
            0,
        ),
    };
    engine.reserve_resting(super::RESERVED_RESTING_ORDERS);
    // One pass over the journal after the snapshot rebuilds the engine,
    // the index of client order ids and the recently closed orders.
    let mut closed = super::RecentlyClosed::default();
    let mut replayed = 0u64;
    let engine = workers::recovery::replay(&db, engine, |wf, engine| {
        client_ids.record(&wf.command, &wf.events);
        client_ids.expire(wf.ts);
        closed.record(engine.closed_by_last_apply(), &wf.events);
        replayed += 1;
    })
    .await?;
    metrics.rebuild_snapshot_seq.store(from, Ordering::Relaxed);
    metrics.rebuild_replayed.store(replayed, Ordering::Relaxed);
    tracing::info!(
        snapshot_seq = from,
        replayed,
        took_ms = started.elapsed().as_millis() as u64,
        "journal replayed"
    );
    Ok(Core {
        engine,
        client_ids,
        closed,
    })
}

fn refuse(req: Request) {
    match req {
        Request::Command { reply, .. } => {
            let _ = reply.send(Err(ApiError::Unavailable));
        }
        // Dropping the read drops its reply channel: the caller gets 503.
        Request::Read(_) => {}
    }
}
