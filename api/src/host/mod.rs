//! The engine host: ONE task owns the [`pipeline::Engine`] (single writer),
//! on a thread and runtime of its own ([`EngineHandle::spawn`]).
//! Handlers talk to it through an mpsc of requests; it applies commands in
//! batches, group-commits the accepted ones to the transport and only then
//! replies (no 202 without a durable enqueue). Reads go through the same
//! queue, so they never see a command that is not durable yet.
//!
//! After each durable commit the host broadcasts a [`Committed`]: the
//! batch's events and a depth diff per changed book ([`md`]). Nothing is
//! broadcast that is not durable.
//!
//! Every so many sequence numbers it writes a snapshot of the engine and
//! the client order id index ([`workers::client_ids`], `snapshot.rs`);
//! recovery loads the newest
//! usable one and replays only the journal after it.
//!
//! The engine's thread keeps the process' priority while the binary lowers
//! the shared runtime's threads ([`priority`]).

mod closed;
pub mod md;
pub mod priority;
mod run;
mod snapshot;

use anyhow::{Context, Result};
use pipeline::{Command, Engine, Event};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{broadcast, mpsc, oneshot};
use workers::config::Services;

use crate::error::ApiError;
use crate::metrics::Metrics;

pub use closed::RecentlyClosed;
pub use md::{Committed, DepthDiff};
pub use workers::client_ids::ClientIds;

/// The most commands group-committed at once.
pub const MAX_BATCH: usize = 512;

/// Resting orders each market's book has room for from the start
/// ([`pipeline::Engine::reserve_resting`]): past it a book grows by
/// doubling again. 144 bytes of address space an order, touched only as
/// orders rest.
pub const RESERVED_RESTING_ORDERS: usize = 1 << 18;

/// PostgreSQL connections of the engine's own pool: its commits are serial;
/// recovery reads alongside one.
const ENGINE_CONNECTIONS: u32 = 2;

/// How many commits a slow [`EngineHandle::committed`] subscriber may lag
/// before it misses some.
pub const COMMITTED_BUFFER: usize = 4096;

/// What the engine answered to an accepted command.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The events the command produced (for a retried `client_order_id`,
    /// the events of the original command).
    pub events: Vec<Event>,
    /// True when this is a retry answered from the idempotency map.
    pub replayed: bool,
}

/// What reads see: the engine and the `client_order_id` map.
#[derive(Debug)]
pub struct Core {
    /// The matching engine.
    pub engine: Engine,
    /// `(account, client_order_id)` → the original place.
    pub client_ids: ClientIds,
    /// Orders closed but perhaps not persisted yet.
    pub closed: RecentlyClosed,
}

type Reply = oneshot::Sender<Result<Accepted, ApiError>>;

enum Request {
    /// Apply a command; reply once it is durable.
    Command { cmd: Command, reply: Reply },
    /// Run a read against the committed state.
    Read(Box<dyn FnOnce(&Core) + Send>),
}

/// A cheap, cloneable handle to the engine task.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    /// The queue into the engine task.
    tx: mpsc::Sender<Request>,
    /// Whether the engine has recovered and accepts commands.
    ready: Arc<AtomicBool>,
    /// What each durable commit changed.
    committed: broadcast::Sender<Arc<Committed>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Command { cmd, .. } => write!(f, "Command({cmd:?})"),
            Request::Read(_) => f.write_str("Read"),
        }
    }
}

impl EngineHandle {
    /// Starts the engine on a thread of its own: it rebuilds from the
    /// journal, then serves until every handle is dropped.
    ///
    /// The engine is the one serial stage every order passes through, so it
    /// does not queue behind the HTTP connections' tasks for a turn on the
    /// shared runtime: it runs on a single-threaded runtime of its own, with
    /// a PostgreSQL pool whose sockets that runtime drives
    /// ([`Db::for_this_runtime`](workers::db::Db::for_this_runtime)).
    /// The thread inherits the caller's priority; the binary calls this from
    /// its main thread, which it does not lower ([`priority`]).
    pub fn spawn(services: &Services, metrics: Arc<Metrics>) -> Result<EngineHandle> {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let ready = Arc::new(AtomicBool::new(false));
        let (committed, _) = broadcast::channel(COMMITTED_BUFFER);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("Failed to build the engine's runtime")?;
        let host = run::Host::new(
            services.clone(),
            rx,
            ready.clone(),
            metrics,
            committed.clone(),
        );
        std::thread::Builder::new()
            .name("clearway-engine".into())
            // The pool is made inside the runtime: its sockets and its
            // maintenance task belong there.
            .spawn(move || {
                tracing::debug!(nice = ?priority::this_thread_nice(), "engine thread started");
                rt.block_on(async { host.with_own_pool(ENGINE_CONNECTIONS).run().await })
            })
            .context("Failed to start the engine thread")?;
        Ok(EngineHandle {
            tx,
            ready,
            committed,
        })
    }

    /// Every durable commit from now on: its events and book diffs.
    pub fn committed(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.committed.subscribe()
    }

    /// Whether recovery is done and the engine accepts commands.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Applies `cmd`; returns once its events are durable.
    pub async fn submit(&self, cmd: Command) -> Result<Accepted, ApiError> {
        if !self.is_ready() {
            return Err(ApiError::Unavailable);
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Command { cmd, reply })
            .await
            .map_err(|_| ApiError::Unavailable)?;
        rx.await.map_err(|_| ApiError::Unavailable)?
    }

    /// Runs `f` against the committed engine state.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Core) -> T + Send + 'static,
    {
        if !self.is_ready() {
            return Err(ApiError::Unavailable);
        }
        let (tx, rx) = oneshot::channel();
        let read = Box::new(move |core: &Core| {
            let _ = tx.send(f(core));
        });
        self.tx
            .send(Request::Read(read))
            .await
            .map_err(|_| ApiError::Unavailable)?;
        rx.await.map_err(|_| ApiError::Unavailable)
    }
}
