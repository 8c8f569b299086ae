//! The database transports: apalis-sqlite and apalis-postgres storages, one
//! queue per step, in Clearway's own database.
//!
//! What Clearway does on top of apalis (each found by reading apalis 1.0):
//! - jobs are inserted by us inside our transaction, so a step's effect and
//!   the hand-off to the next step commit together;
//! - the retry delay is written to the job's `run_at` before the handler
//!   returns an error (apalis alone re-runs a failed job at once); the
//!   attempt limit is Clearway's, kept in `workflow_attempts`;
//! - a permanent failure returns `AbortError` (status `Killed`): that row is
//!   the dead letter, and the workflow is `dead` with its reason;
//! - SQLite's `setup()` is never called: it sets `synchronous=OFF` on a
//!   pooled connection. We run its migrations on our own durable pool;
//! - the payload type is `serde_json::Value`, so a malformed job cannot
//!   kill a worker while decoding: the handler rejects it and it is killed;
//! - idle workers poll with [`Tick`], not apalis' `IntervalStrategy`: that
//!   one re-arms its timer without polling it, so after an empty fetch a
//!   worker could sleep until its next heartbeat (30 s) — measured as 30 s
//!   gaps between steps before this was replaced. [`Tick`] polls every
//!   20 ms while its step is busy and every 250 ms once it has been idle
//!   for a second, and a commit in this process that enqueues a job wakes
//!   that step's worker at once (on PostgreSQL also one in any process,
//!   through apalis' NOTIFY on its job table): an idle `clearway up` took
//!   12% of a core polling four queues 50 times a second each.

use crate::db::{Arg, Db, Tx};
use crate::runtime::{Outcome, Runtime, StepJob};
use crate::transport::Transport;
use crate::workflow::Step;
use anyhow::{Context, Result};
use apalis::prelude::*;
use apalis_core::backend::ext::poll_strategy::{PollSnapshot, PollStrategy};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{Notify, futures::OwnedNotified};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// When an idle worker fetches again: every [`DbQueue::poll`] while work
/// came within the last [`BUSY_FOR`], every [`DbQueue::idle_poll`] after
/// that — and at once when a job for its step commits in this process
/// ([`DbQueue::wake`]). Each tick re-arms and polls the next timer, so the
/// wake-up chain never breaks.
#[derive(Debug)]
struct Tick {
    busy: Duration,
    idle: Duration,
    /// When the worker last got a job (or started).
    last_work: Instant,
    /// The armed timer and the period it was armed with.
    delay: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    wake: Arc<Notify>,
    woken: Option<Pin<Box<OwnedNotified>>>,
}

/// How long after its last job a worker keeps polling at the busy rate.
const BUSY_FOR: Duration = Duration::from_secs(1);

impl Tick {
    fn new(busy: Duration, idle: Duration, wake: Arc<Notify>) -> Tick {
        Tick {
            busy,
            idle,
            last_work: Instant::now(),
            delay: None,
            wake,
            woken: None,
        }
    }

    /// The period an idle worker polls at now.
    fn every(&self) -> Duration {
        if self.last_work.elapsed() < BUSY_FOR {
            self.busy
        } else {
            self.idle
        }
    }
}

impl Clone for Tick {
    fn clone(&self) -> Tick {
        Tick::new(self.busy, self.idle, self.wake.clone())
    }
}

impl PollStrategy for Tick {
    fn poll_drive(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _: &PollSnapshot,
    ) -> Poll<Option<()>> {
        let mut fired = false;
        // A job committed here: fetch now.
        loop {
            let wake = &self.wake;
            let woken = self
                .woken
                .get_or_insert_with(|| Box::pin(wake.clone().notified_owned()));
            match woken.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    fired = true;
                    self.woken = None;
                }
                Poll::Pending => break,
            }
        }
        let every = self.every();
        // Back from idle to busy: a timer armed for the idle period is too late.
        if self.delay.as_ref().is_some_and(|(armed, _)| *armed > every) {
            self.delay = None;
        }
        loop {
            let (_, delay) = self
                .delay
                .get_or_insert_with(|| (every, Box::pin(tokio::time::sleep(every))));
            match delay.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    fired = true;
                    self.delay = None;
                }
                Poll::Pending if fired => return Poll::Ready(Some(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn on_poll(&mut self, snapshot: &PollSnapshot) {
        if snapshot.consecutive_ready > 0 {
            self.last_work = Instant::now();
        }
    }
}

/// One [`Notify`] per step: a commit in this process that enqueued a job
/// for a step wakes that step's worker here, which would otherwise find
/// it only at its next tick.
#[derive(Debug, Default)]
struct Wakers([Arc<Notify>; 4]);

impl Wakers {
    fn of(&self, step: Step) -> &Arc<Notify> {
        // `Step`'s variants are declared in `Step::ALL`'s order.
        &self.0[step as usize]
    }
}

/// PostgreSQL: inserts one job into apalis' table, its arguments
/// ([`pg_job_args`]) numbered from `$first`.
fn pg_insert_job(first: usize) -> String {
    let p = |k: usize| format!("${}", first + k);
    format!(
        "insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, idempotency_key) \
         values ({}, {}, {}, 'Pending', 0, {}::int4, now() + make_interval(secs => {}::float8 / 1000), 0, {}) \
         on conflict (job_type, idempotency_key) do nothing",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5)
    )
}

/// The arguments of [`pg_insert_job`]: a new id, the queue, the job, its
/// attempts, the delay in ms, the idempotency key.
fn pg_job_args(job: &StepJob, delay_ms: u64) -> Result<Vec<Arg>> {
    Ok(vec![
        Arg::Text(ulid::Ulid::generate().to_string()),
        Arg::Text(queue_name(job.step)),
        Arg::Bytes(serde_json::to_vec(job).context("Failed to encode a job")?),
        Arg::I64(APALIS_MAX_ATTEMPTS),
        Arg::I64(delay_ms as i64),
        Arg::Text(job.idempotency_key()),
    ])
}

/// Queue name of a step (apalis' `job_type`).
pub fn queue_name(step: Step) -> String {
    format!("clearway.{step}")
}

/// Most queued jobs one [`DbQueue::absorb`] takes.
pub const ABSORB_JOBS: usize = 256;

/// apalis' own attempt limit is set out of reach: Clearway's retry policy
/// decides, and the job is killed explicitly when it is exhausted.
const APALIS_MAX_ATTEMPTS: i64 = 1_000;

/// The job tables of apalis in Clearway's database.
#[derive(Clone, Debug)]
pub struct DbQueue {
    db: Db,
    /// How often a worker with no job polls while its step is busy (work
    /// came within the last second).
    pub poll: Duration,
    /// How often it polls after that; a job enqueued by this process
    /// wakes it at once ([`DbQueue::wake`]), so this bounds only how late
    /// it sees jobs from other processes and delayed retries.
    pub idle_poll: Duration,
    wakers: Arc<Wakers>,
}

impl DbQueue {
    /// Sets up apalis' tables (its migrations only, see the module docs).
    pub async fn setup(db: &Db) -> Result<DbQueue> {
        match db {
            Db::Lite(pool, _) => {
                let mut m = apalis_sqlite::SqliteStorage::<()>::migrations();
                m.dangerous_set_table_name("_apalis_migrations");
                m.run(pool)
                    .await
                    .context("Failed to run apalis-sqlite's migrations")?;
            }
            Db::Pg(pool) => {
                apalis_postgres::PostgresStorage::<()>::setup(pool)
                    .await
                    .context("Failed to run apalis-postgres' migrations")?;
            }
        }
        Ok(DbQueue {
            db: db.clone(),
            poll: Duration::from_millis(20),
            idle_poll: Duration::from_millis(250),
            wakers: Arc::default(),
        })
    }

    /// Wakes `step`'s worker in this process: a job for it has committed.
    pub fn wake(&self, step: Step) {
        self.wakers.of(step).notify_one();
    }

    /// Inserts a job row inside `tx`; the idempotency key makes a second
    /// hand-off of the same batch a no-op.
    pub async fn push(&self, tx: &mut Tx, job: &StepJob, delay_ms: u64) -> Result<()> {
        match tx {
            Tx::Lite(..) => {
                let body = serde_json::to_vec(job).context("Failed to encode a job")?;
                let id = ulid::Ulid::generate().to_string();
                let key = job.idempotency_key();
                let queue = queue_name(job.step);
                let run_at = chrono::Utc::now().timestamp() + (delay_ms / 1000) as i64;
                tx.exec(
                    "insert into Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key) \
                     values ($1, $2, $3, 'Pending', 0, $4, $5, 0, null, $6) on conflict (job_type, idempotency_key) do nothing",
                    &[Arg::Bytes(body), Arg::Text(id), Arg::Text(queue), Arg::I64(APALIS_MAX_ATTEMPTS), Arg::I64(run_at), Arg::Text(key)],
                )
                .await?;
            }
            Tx::Pg(_) => {
                tx.exec(&pg_insert_job(1), &pg_job_args(job, delay_ms)?)
                    .await?;
            }
        }
        Ok(())
    }

    /// The group commit on PostgreSQL: the accepted workflows' rows and
    /// their persist job in ONE statement (a data-modifying `with`), which
    /// PostgreSQL runs as a transaction of its own — one round trip instead
    /// of four (begin, two inserts, commit).
    pub async fn accept_pg(
        &self,
        db: &Db,
        held: &mut crate::db::HeldConnection,
        rows: &[Vec<Arg>],
        job: &StepJob,
    ) -> Result<()> {
        let width = rows.first().map_or(0, Vec::len);
        let sql = format!(
            "with w as ({} returning 1) {}",
            crate::records::INSERT_WORKFLOWS,
            pg_insert_job(width + 1)
        );
        db.exec_values_alone(held, &sql, rows, pg_job_args(job, 0)?)
            .await?;
        Ok(())
    }

    /// Takes queued jobs of `step` (pending and due, plain hand-offs) off the
    /// queue inside `tx`, up to `room` workflows in all, and returns them:
    /// the caller runs their workflows with its own, and because the jobs are
    /// marked done in the same transaction as the step's effect, a rollback
    /// puts them back. This is how small jobs (a group commit of a few orders
    /// each) coalesce into large batches. At most [`ABSORB_JOBS`] jobs a call.
    pub async fn absorb(&self, tx: &mut Tx, step: Step, room: usize) -> Result<Vec<StepJob>> {
        if room == 0 {
            return Ok(vec![]);
        }
        let queue = Arg::Text(queue_name(step));
        let rows = match tx {
            Tx::Pg(_) => {
                tx.rows(
                    "select id, convert_from(job, 'UTF8') from apalis.jobs \
                     where job_type = $1 and status = 'Pending' and run_at <= now() \
                     order by run_at, id limit $2 for update skip locked",
                    &[queue, Arg::I64(ABSORB_JOBS as i64)],
                )
                .await?
            }
            Tx::Lite(..) => {
                tx.rows(
                    "select id, cast(job as text) from Jobs \
                     where job_type = $1 and status = 'Pending' and run_at <= $2 \
                     order by run_at, id limit $3",
                    &[
                        queue,
                        Arg::I64(chrono::Utc::now().timestamp()),
                        Arg::I64(ABSORB_JOBS as i64),
                    ],
                )
                .await?
            }
        };
        let (mut ids, mut jobs, mut n) = (vec![], vec![], 0);
        for r in rows {
            // Anything unusual (malformed, a replay, inputs, a barrier) is
            // left for its own run.
            let Ok(job) = serde_json::from_str::<StepJob>(&r.text(1)?) else {
                continue;
            };
            if job.step != step
                || job.replay.is_some()
                || job.barrier.is_some()
                || !job.inputs.is_empty()
            {
                continue;
            }
            // Oldest first and never past a job that does not fit: persist
            // needs a maker's placement before its fills.
            if n + job.workflow_ids.len() > room {
                break;
            }
            n += job.workflow_ids.len();
            ids.push(Arg::Text(r.text(0)?));
            jobs.push(job);
        }
        if ids.is_empty() {
            return Ok(jobs);
        }
        let marks: Vec<String> = (2..ids.len() + 2).map(|i| format!("${i}")).collect();
        let sql = match tx {
            Tx::Pg(_) => format!(
                "update apalis.jobs set status = 'Done', done_at = now(), last_result = $1::jsonb \
                 where id in ({})",
                marks.join(", ")
            ),
            Tx::Lite(..) => format!(
                "update Jobs set status = 'Done', done_at = strftime('%s', 'now'), last_result = $1 \
                 where id in ({})",
                marks.join(", ")
            ),
        };
        let mut args = vec![Arg::Text(r#"{"Ok":"absorbed"}"#.into())];
        args.extend(ids);
        tx.exec(&sql, &args).await?;
        Ok(jobs)
    }

    /// Moves a failed job's next run to `after_ms` from now.
    async fn defer(&self, task_id: &str, after_ms: u64) -> Result<()> {
        match &self.db {
            Db::Lite(..) => {
                let run_at = chrono::Utc::now().timestamp() + after_ms.div_ceil(1000) as i64;
                self.db
                    .exec(
                        "update Jobs set run_at = $1 where id = $2",
                        &[Arg::I64(run_at), Arg::Text(task_id.into())],
                    )
                    .await?;
            }
            Db::Pg(_) => {
                self.db
                    .exec(
                        "update apalis.jobs set run_at = now() + make_interval(secs => $1::float8 / 1000) where id = $2",
                        &[Arg::I64(after_ms as i64), Arg::Text(task_id.into())],
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

/// Puts back the SQLite jobs a stopped process left running (or queued for
/// its workers), at once instead of after [`HEARTBEAT`] × [`MISSED_HEARTBEATS`].
/// Only for the process that holds the data directory's lock (`clearway up`,
/// `demo`), before its workers start: then no live worker holds them. Each
/// job keeps its place in the queue (its `run_at`), so a placement held by a
/// killed worker runs before the cancels and fills that build on it, which
/// would otherwise fail with `NotYetPersisted` and back off until it
/// returned. Steps are idempotent, so a job that had done its work runs
/// again harmlessly. Returns how many were put back. On PostgreSQL, workers
/// may run on other machines, whom no data directory's lock speaks for:
/// their jobs return by heartbeat alone, and this returns 0.
pub async fn release_stopped(db: &Db) -> Result<u64> {
    match db {
        Db::Lite(..) => db
            .exec(
                "update Jobs set status = 'Pending', done_at = null, lock_by = null, lock_at = null, \
                 attempts = attempts + 1, \
                 last_result = '{\"Err\": \"Re-enqueued: the process that held it stopped.\"}' \
                 where status in ('Running', 'Queued')",
                &[],
            )
            .await
            .context("Failed to put back the jobs of a stopped process"),
        Db::Pg(_) => Ok(0),
    }
}

/// How often a worker reports alive. apalis re-enqueues the jobs of a worker
/// silent for `HEARTBEAT × MISSED_HEARTBEATS` (its defaults: 60 s on SQLite,
/// 300 s on PostgreSQL) — that is how long a job held by a SIGKILLed worker
/// waits. 12 s keeps recovery well under the one-minute promise; steps take
/// well under a second, so a live worker is never taken for dead.
const HEARTBEAT: Duration = Duration::from_secs(3);
/// Missed heartbeats before a worker's jobs are re-enqueued.
const MISSED_HEARTBEATS: usize = 4;

/// What each handler gets.
#[derive(Clone, Debug)]
struct Ctx {
    runtime: Runtime,
    transport: Transport,
    queue: DbQueue,
    in_flight: TaskTracker,
}

async fn handle(job: serde_json::Value, id: TaskId, ctx: Data<Ctx>) -> Result<(), BoxDynError> {
    // The tracker is what shutdown waits on (see `run_tracked`).
    let in_flight = ctx.in_flight.clone();
    super::run_tracked(&in_flight, handle_job(job, id, ctx)).await
}

async fn handle_job(job: serde_json::Value, id: TaskId, ctx: Data<Ctx>) -> Result<(), BoxDynError> {
    let job: StepJob = match serde_json::from_value(job) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(task = %id, error = %e, "malformed job: dead-lettered");
            return Err(AbortError::new(anyhow::anyhow!("malformed job: {e}")).into());
        }
    };
    match ctx.runtime.execute(&job, &ctx.transport).await {
        Outcome::Done(later) => {
            // Its hand-offs (to later steps only) have committed.
            for step in Step::ALL.into_iter().filter(|s| *s > job.step) {
                ctx.queue.wake(step);
            }
            for j in later {
                ctx.transport
                    .enqueue(&ctx.runtime.env.db, &j, 0)
                    .await
                    .map_err(into_box)?;
            }
            Ok(())
        }
        Outcome::Retry {
            after_ms, error, ..
        } => {
            ctx.queue
                .defer(&id.to_string(), after_ms)
                .await
                .map_err(into_box)?;
            Err(anyhow::anyhow!(error).into_boxed_dyn_error())
        }
        Outcome::Dead { error } => {
            Err(AbortError::new(anyhow::anyhow!(error).into_boxed_dyn_error()).into())
        }
    }
}

fn into_box(e: anyhow::Error) -> BoxDynError {
    e.into_boxed_dyn_error()
}

/// Runs one apalis worker per step until `shutdown` resolves; in-flight
/// steps get `grace` to finish, the rest are released for redelivery.
pub async fn run_workers(
    runtime: Runtime,
    transport: Transport,
    queue: DbQueue,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<()> {
    let boot = ulid::Ulid::generate().to_string();
    let in_flight = TaskTracker::new();
    let ctx = Ctx {
        runtime,
        transport,
        queue: queue.clone(),
        in_flight: in_flight.clone(),
    };
    let mut monitor = Monitor::new();
    for step in Step::ALL {
        let (ctx, boot, db) = (ctx.clone(), boot.clone(), queue.db.clone());
        let (poll, idle_poll) = (queue.poll, queue.idle_poll);
        let wake = queue.wakers.of(step).clone();
        // The same worker on either storage; only the crate differs.
        macro_rules! register {
            ($krate:ident, $storage:ident, $pool:expr) => {{
                let pool = $pool;
                monitor.register(move |restarts| {
                    let cfg = $krate::Config::default()
                        .queue(queue_name(step))
                        .batch_size(1)
                        .heartbeat_interval(HEARTBEAT)
                        .missed_heartbeats(MISSED_HEARTBEATS);
                    let backend = $krate::$storage::<serde_json::Value>::new(&pool)
                        .with_config(cfg)
                        .poll_with_strategy(Tick::new(poll, idle_poll, wake.clone()));
                    WorkerBuilder::new(format!("{step}-{boot}-{restarts}"))
                        .backend(backend)
                        .data(ctx.clone())
                        .concurrency(1)
                        .build(handle)
                })
            }};
        }
        monitor = match db {
            Db::Lite(pool, _) => register!(apalis_sqlite, SqliteStorage, pool),
            Db::Pg(pool) => register!(apalis_postgres, PostgresStorage, pool),
        };
    }
    let listener = match &queue.db {
        Db::Pg(pool) => Some(tokio::spawn(listen_for_jobs(pool.clone(), queue.clone()))),
        Db::Lite(..) => None,
    };
    let ran = super::run_monitor(monitor, shutdown, grace, &in_flight).await;
    if let Some(l) = listener {
        l.abort();
    }
    ran
}

/// The channel apalis-postgres' trigger notifies when a due job is
/// inserted, with the job's type, from whichever process inserted it.
const JOB_INSERTED: &str = "apalis::job::insert";

/// PostgreSQL: wakes this process' worker of a step when any process
/// commits a due job for it (apalis' trigger on its job table), so the
/// workers of `clearway work` start on what `clearway serve` enqueued at
/// once, not at their next poll. A lost connection is opened again; what
/// was notified meanwhile is found by polling.
async fn listen_for_jobs(pool: sqlx::PgPool, queue: DbQueue) {
    let mut failing = false;
    loop {
        let listened = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
            l.listen(JOB_INSERTED).await?;
            Ok::<_, sqlx::Error>(l)
        };
        match listened.await {
            Ok(mut l) => {
                failing = false;
                loop {
                    match l.recv().await {
                        Ok(n) => {
                            if let Some(step) = step_of_insert(n.payload()) {
                                queue.wake(step);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "listening for new jobs failed; polling meanwhile");
                            break;
                        }
                    }
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot listen for new jobs; polling meanwhile");
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The step of a [`JOB_INSERTED`] payload (`{"job_type": "clearway.settle", …}`).
fn step_of_insert(payload: &str) -> Option<Step> {
    #[derive(serde::Deserialize)]
    struct Inserted {
        job_type: String,
    }
    let i: Inserted = serde_json::from_str(payload).ok()?;
    Step::parse(i.job_type.strip_prefix("clearway.")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUSY: Duration = Duration::from_millis(20);
    const IDLE: Duration = Duration::from_secs(3600);

    fn drive(t: &mut Tick) -> Poll<Option<()>> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        t.poll_drive(&mut cx, &PollSnapshot::default())
    }

    fn armed(t: &Tick) -> Option<Duration> {
        t.delay.as_ref().map(|(every, _)| *every)
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_polls_at_the_busy_rate_until_a_second_without_work() {
        let mut t = Tick::new(BUSY, IDLE, Arc::default());
        assert!(drive(&mut t).is_pending());
        assert_eq!(armed(&t), Some(BUSY));
        tokio::time::advance(BUSY).await;
        assert_eq!(drive(&mut t), Poll::Ready(Some(())));
        assert_eq!(armed(&t), Some(BUSY));

        tokio::time::advance(BUSY_FOR).await;
        assert_eq!(drive(&mut t), Poll::Ready(Some(())));
        assert_eq!(armed(&t), Some(IDLE), "idle for a second: the slow rate");

        // A job arrives: back to the busy rate, the idle timer dropped.
        t.on_poll(&PollSnapshot {
            consecutive_ready: 1,
            ..PollSnapshot::default()
        });
        assert!(drive(&mut t).is_pending());
        assert_eq!(armed(&t), Some(BUSY));
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_in_this_process_wakes_an_idle_worker_before_its_tick() {
        let wake = Arc::new(Notify::new());
        let mut t = Tick::new(BUSY, IDLE, wake.clone());
        tokio::time::advance(BUSY_FOR).await;
        assert!(drive(&mut t).is_pending());
        assert_eq!(armed(&t), Some(IDLE));

        wake.notify_one();
        assert_eq!(drive(&mut t), Poll::Ready(Some(())));
        assert!(drive(&mut t).is_pending(), "one wake, one fetch");

        // A wake that comes while no one waits (the worker is running a
        // job) is kept for its next poll.
        drop(t);
        let mut t = Tick::new(BUSY, IDLE, wake.clone());
        wake.notify_one();
        assert_eq!(drive(&mut t), Poll::Ready(Some(())));
    }

    #[test]
    fn a_notified_insert_names_its_step() {
        assert_eq!(
            step_of_insert(
                r#"{"job_type":"clearway.settle","id":"01J","run_at":"2026-11-27T18:00:00+00:00"}"#
            ),
            Some(Step::Settle)
        );
        assert_eq!(step_of_insert(r#"{"job_type":"other.settle"}"#), None);
        assert_eq!(step_of_insert(r#"{"job_type":"clearway.nope"}"#), None);
        assert_eq!(step_of_insert("not json"), None);
    }

    /// Real PostgreSQL (`DATABASE_URL`, or the local server): a job that
    /// another process commits wakes this process' worker of its step. No
    /// worker runs here and the committing queue has wakers of its own, so
    /// only the listener can wake `here`.
    #[tokio::test]
    async fn a_job_committed_by_another_process_wakes_this_ones_worker() -> anyhow::Result<()> {
        use crate::config::TransportKind;
        let admin = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let dir = tempfile::tempdir()?;
        let name = format!("cwtest{}", uuid::Uuid::new_v4().simple());
        let settings = crate::provision::fresh(
            TransportKind::Postgres,
            &name,
            dir.path().to_path_buf(),
            &admin,
            None,
        )
        .await?;
        let db = crate::config::connect(&settings, "notify-test").await?.db;
        let Db::Pg(pool) = &db else {
            anyhow::bail!("not PostgreSQL");
        };
        let here = DbQueue::setup(&db).await?;
        let woken = here.wakers.of(Step::Settle).clone();
        let listener = tokio::spawn(listen_for_jobs(pool.clone(), here));
        let elsewhere = Transport::Db(DbQueue::setup(&db).await?);
        // The listener may not be listening yet: commit a job (each a new
        // one) until a wake comes, for at most 30 s.
        let mut id = 1;
        let got = loop {
            elsewhere
                .enqueue(&db, &StepJob::new(Step::Settle, vec![id]), 0)
                .await?;
            if tokio::time::timeout(Duration::from_millis(200), woken.notified())
                .await
                .is_ok()
            {
                break true;
            }
            id += 1;
            if id > 150 {
                break false;
            }
        };
        listener.abort();
        assert!(got, "no wake after {id} committed jobs");
        Ok(())
    }

    #[test]
    fn each_step_has_a_waker_of_its_own() {
        let w = Wakers::default();
        for (i, a) in Step::ALL.iter().enumerate() {
            for b in &Step::ALL[i + 1..] {
                assert!(!Arc::ptr_eq(w.of(*a), w.of(*b)), "{a} and {b}");
            }
        }
    }
}
