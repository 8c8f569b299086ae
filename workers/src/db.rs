//! One SQL text, two databases.
//!
//! Clearway's own tables are the same on PostgreSQL and SQLite apart from
//! column types, so every query is written once with `$n` placeholders (both
//! drivers bind them by number). Values cross the boundary as [`Arg`] and come
//! back as [`Row`]s of [`Val`]: decimals are bound natively on PostgreSQL
//! (NUMERIC) and as text on SQLite, and read back as exact decimals on both.
//! Many rows go in one statement through [`Tx::exec_values`] and
//! [`Tx::rows_values`] (`batch`).

use anyhow::{Context, Result, bail};
use rust_decimal::Decimal;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Postgres, Sqlite};
use std::str::FromStr;
use std::time::Duration;

mod batch;
mod row;
pub use batch::values_list;
pub use row::{Row, Val};
use row::{lite_row, pg_row};

/// A connection pool to Clearway's database.
#[derive(Clone, Debug)]
pub enum Db {
    /// PostgreSQL (self-hosted or Aurora).
    Pg(sqlx::PgPool),
    /// SQLite, the embedded default, and the queue its writers wait in.
    Lite(sqlx::SqlitePool, WriteQueue),
}

/// SQLite has one write lock per database. A writer that finds it taken
/// waits in SQLite's busy handler, which sleeps in steps growing to 100 ms,
/// so under load a short transaction (the intake's group commit) could wait
/// tens of milliseconds behind the workers' steps. Every transaction this
/// process opens on SQLite first takes its turn here, woken the moment the
/// previous writer finishes; only writers from elsewhere (apalis' fetch and
/// acknowledgement, another process) still meet the busy handler.
///
/// Two lanes: the intake's group commit (a client waits on it) queues for
/// the lock directly; the workers' steps first pass a gate one at a time, so
/// at most one of them is ever queued ahead of the intake — the intake waits
/// for at most the step that holds the lock, never for a backlog of steps.
#[derive(Clone, Debug, Default)]
pub struct WriteQueue {
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Which lane of the [`WriteQueue`] a transaction takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// A client is waiting (the intake's group commit).
    Urgent,
    /// Background work (the workers' steps, operator tools).
    Bulk,
}

/// A turn to write: the lock, and for [`Lane::Bulk`] the gate.
#[derive(Debug)]
pub struct Turn {
    _lock: Option<tokio::sync::OwnedMutexGuard<()>>,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteQueue {
    /// Waits for a turn; after SQLite's own busy timeout (30 s) goes ahead
    /// without one, so a task that nests transactions gets SQLite's
    /// `SQLITE_BUSY` as before rather than waiting on itself forever.
    async fn turn(&self, lane: Lane) -> Turn {
        let wait = async {
            let gate = match lane {
                Lane::Urgent => None,
                Lane::Bulk => Some(self.gate.clone().lock_owned().await),
            };
            Turn {
                _lock: Some(self.lock.clone().lock_owned().await),
                _gate: gate,
            }
        };
        match tokio::time::timeout(BUSY_TIMEOUT, wait).await {
            Ok(turn) => turn,
            Err(_) => {
                tracing::warn!(
                    ?lane,
                    "no turn to write after {BUSY_TIMEOUT:?}; going ahead"
                );
                Turn {
                    _lock: None,
                    _gate: None,
                }
            }
        }
    }
}

/// How long a SQLite writer waits for the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// An open transaction on a [`Db`].
pub enum Tx {
    /// A PostgreSQL transaction.
    Pg(sqlx::Transaction<'static, Postgres>),
    /// A SQLite transaction, and this process' turn to write (released
    /// after the transaction ends: fields drop in order).
    Lite(sqlx::Transaction<'static, Sqlite>, Turn),
}

/// A bound parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// An integer.
    I64(i64),
    /// Text.
    Text(String),
    /// An exact decimal.
    Dec(Decimal),
    /// A boolean.
    Bool(bool),
    /// Raw bytes (BLOB, bytea).
    Bytes(Vec<u8>),
    /// A NULL integer. NULLs are typed: PostgreSQL checks a parameter's
    /// declared type against the column.
    NullI64,
    /// A NULL text.
    NullText,
    /// A NULL decimal.
    NullDec,
    /// A PostgreSQL array (`int8[]`, `text[]`, `numeric[]`, `bool[]`): one
    /// column of a multi-row statement (see `batch`). SQLite has no arrays;
    /// there it binds as NULL and is never built.
    Array(Values),
}

/// A column of values, bound as one PostgreSQL array.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// `int8[]`.
    I64(Vec<Option<i64>>),
    /// `text[]`.
    Text(Vec<Option<String>>),
    /// `numeric[]`.
    Dec(Vec<Option<Decimal>>),
    /// `bool[]`.
    Bool(Vec<Option<bool>>),
}

macro_rules! bind_all {
    ($q:expr, $args:expr, $dec:ident) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::I64(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Dec(v) => bind_all!(@dec $dec, q, *v),
                Arg::Bool(v) => q.bind(*v),
                Arg::Bytes(v) => q.bind(v.clone()),
                Arg::NullI64 => q.bind(None::<i64>),
                Arg::NullText => q.bind(None::<String>),
                Arg::NullDec => bind_all!(@nulldec $dec, q),
                Arg::Array(c) => bind_all!(@array $dec, q, c),
            };
        }
        q
    }};
    (@array pg, $q:expr, $c:expr) => {
        match $c {
            Values::I64(v) => $q.bind(v.clone()),
            Values::Text(v) => $q.bind(v.clone()),
            Values::Dec(v) => $q.bind(v.clone()),
            Values::Bool(v) => $q.bind(v.clone()),
        }
    };
    (@array lite, $q:expr, $c:expr) => {{
        let _ = $c;
        $q.bind(None::<String>)
    }};
    (@nulldec pg, $q:expr) => {
        $q.bind(None::<Decimal>)
    };
    (@nulldec lite, $q:expr) => {
        $q.bind(None::<String>)
    };
    (@dec pg, $q:expr, $v:expr) => {
        $q.bind($v)
    };
    // SQLite has no exact decimal type: decimals are stored as text.
    (@dec lite, $q:expr, $v:expr) => {
        $q.bind($v.to_string())
    };
}

/// Clearway's PostgreSQL pools. No ping before each acquire (sqlx's
/// default): it is a round trip per transaction. A connection broken since
/// its last use fails its statement instead; every caller retries (the
/// intake's group commit, then fail-closed recovery; steps by their retry
/// policy).
fn pg_pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
}

/// A PostgreSQL connection one task keeps between its statements instead
/// of handing it back to the pool after each ([`Db::exec_held`]). sqlx
/// pings every connection that goes back to its pool, a round trip; the
/// engine host group-commits ≈ 1,000 times a second at 10,000 orders/s,
/// and that ping was ≈ 15% of its thread's time. Empty until first used,
/// and again after a statement on it failed (the connection then goes back
/// to the pool, whose ping closes it if it is broken). Not for
/// transactions: a statement on it must be one of its own.
#[derive(Debug, Default)]
pub struct HeldConnection(Option<sqlx::pool::PoolConnection<Postgres>>);

impl HeldConnection {
    /// Whether it holds no connection now.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

/// What Clearway's PostgreSQL sessions set `backend_flush_after` to,
/// unless the URL's `options` set it (`?options=-c%20backend_flush_after%3D0`
/// keeps the server's default).
///
/// Why: Clearway's writes extend its tables at ≈ 16 MB/s at 10,000
/// orders/s. With Linux's default of 0, the pages a session writes stay
/// dirty in the kernel until their file's first dirty page is 30 s old;
/// the kernel then writes the whole file's dirty pages at once (≈ 130 MB
/// here), and every commit's WAL flush waits behind them: group commits
/// of 70–130 ms every 30 s. With 256 kB (the checkpointer's own default on
/// Linux) a session asks the kernel to start writing after each 256 kB, so
/// less is left for the burst (measured: commits of 20–60 ms at those
/// moments; intake p99 over 60 s from 12.6–22.1 ms to 7.3–9.8 ms, p99.9
/// from 135–156 ms to 54–65 ms).
pub const BACKEND_FLUSH_AFTER: &str = "256kB";

fn with_backend_flush_after(opts: PgConnectOptions) -> PgConnectOptions {
    if opts
        .get_options()
        .is_some_and(|o| o.contains("backend_flush_after"))
    {
        return opts;
    }
    opts.options([("backend_flush_after", BACKEND_FLUSH_AFTER)])
}

/// Without TLS on loopback, unless asked for: sqlx's default `sslmode` is
/// `prefer`, which sets up TLS whenever the server offers it (Debian's
/// does), and on a connection that never leaves the machine that only
/// costs CPU (measured: ≈ 1.5% of all CPU in the server's libcrypto and
/// libssl, and more in rustls on Clearway's side, at 8,000 orders/s). A
/// `sslmode` in the URL or `PGSSLMODE` is kept as given.
fn without_tls_on_loopback(url: &str, opts: PgConnectOptions) -> PgConnectOptions {
    let asked = url.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|kv| kv.starts_with("sslmode=") || kv.starts_with("ssl-mode="))
    }) || std::env::var_os("PGSSLMODE").is_some();
    let host = opts.get_host();
    let loopback = opts.get_socket().is_some()
        || host.starts_with('/')
        || host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if asked || !loopback {
        return opts;
    }
    opts.ssl_mode(sqlx::postgres::PgSslMode::Disable)
}

/// Runs one statement on a PostgreSQL pool or connection; rows affected.
async fn pg_exec<'c>(on: impl sqlx::PgExecutor<'c>, sql: &str, args: &[Arg]) -> Result<u64> {
    let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), args, pg);
    Ok(q.execute(on)
        .await
        .with_context(|| format!("statement failed: {sql}"))?
        .rows_affected())
}

impl Db {
    /// Connects to `url` (`postgres://…` or `sqlite://…`), creating a SQLite
    /// file when missing. SQLite runs in WAL mode with `synchronous=FULL` on
    /// every connection: a committed transaction survives a power cut, which
    /// is what a 202 promises.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db> {
        if url.starts_with("postgres") {
            let opts = PgConnectOptions::from_str(url).context("Failed to parse DATABASE_URL")?;
            let opts = without_tls_on_loopback(url, with_backend_flush_after(opts));
            let pool = pg_pool_options(max_connections)
                .connect_with(opts)
                .await
                .context("Failed to connect to PostgreSQL")?;
            Ok(Db::Pg(pool))
        } else if url.starts_with("sqlite") {
            let opts = SqliteConnectOptions::from_str(url)
                .context("Failed to parse the SQLite URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(BUSY_TIMEOUT)
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .connect_with(opts)
                .await
                .context("Failed to open the SQLite database")?;
            Ok(Db::Lite(pool, WriteQueue::default()))
        } else {
            bail!("unsupported database URL {url:?}: use postgres://… or sqlite://…")
        }
    }

    /// The same database for a task on another tokio runtime. A PostgreSQL
    /// connection's socket is driven by the runtime that opened it, so a
    /// runtime of its own gets a pool of its own (`max_connections`, opened
    /// lazily, same options); SQLite's connections run on threads of their
    /// own and are shared as they are.
    pub fn for_this_runtime(&self, max_connections: u32) -> Db {
        match self {
            Db::Pg(pool) => Db::Pg(
                pg_pool_options(max_connections)
                    .connect_lazy_with((*pool.connect_options()).clone()),
            ),
            Db::Lite(..) => self.clone(),
        }
    }

    /// Applies Clearway's migrations from `schema/`.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Db::Pg(p) => sqlx::migrate!("../schema/postgres").run(p).await,
            Db::Lite(p, _) => sqlx::migrate!("../schema/sqlite").run(p).await,
        }
        .context("Failed to run Clearway's migrations")
    }

    /// Begins a transaction (in the bulk lane on SQLite; see [`WriteQueue`]).
    pub async fn begin(&self) -> Result<Tx> {
        self.begin_in(Lane::Bulk).await
    }

    /// Begins a transaction in `lane` (which matters on SQLite only).
    pub async fn begin_in(&self, lane: Lane) -> Result<Tx> {
        Ok(match self {
            Db::Pg(p) => Tx::Pg(p.begin().await.context("Failed to begin a transaction")?),
            // Take the write lock at once: a deferred transaction that reads
            // and then writes can fail with SQLITE_BUSY under a concurrent writer.
            Db::Lite(p, queue) => {
                let turn = queue.turn(lane).await;
                let tx = p
                    .begin_with("begin immediate")
                    .await
                    .context("Failed to begin a transaction")?;
                Tx::Lite(tx, turn)
            }
        })
    }

    /// Runs one statement as a transaction of its own; returns rows
    /// affected. PostgreSQL runs a lone statement atomically (one round
    /// trip); SQLite gets `begin immediate` … `commit`.
    pub async fn exec(&self, sql: &str, args: &[Arg]) -> Result<u64> {
        match self {
            Db::Pg(p) => pg_exec(p, sql, args).await,
            Db::Lite(..) => {
                let mut tx = self.begin().await?;
                let n = tx.exec(sql, args).await?;
                tx.commit().await?;
                Ok(n)
            }
        }
    }

    /// [`Db::exec`] on `held`'s connection on PostgreSQL (taken from the
    /// pool when it holds none); SQLite ignores `held`.
    pub async fn exec_held(
        &self,
        held: &mut HeldConnection,
        sql: &str,
        args: &[Arg],
    ) -> Result<u64> {
        let Db::Pg(p) = self else {
            return self.exec(sql, args).await;
        };
        let conn = match &mut held.0 {
            Some(c) => c,
            empty => empty.insert(p.acquire().await.context("Failed to get a connection")?),
        };
        let done = pg_exec(&mut **conn, sql, args).await;
        if done.is_err() {
            // Back to the pool, whose check closes it if it is broken.
            held.0 = None;
        }
        done
    }

    /// Runs one query outside a transaction.
    pub async fn rows(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        match self {
            Db::Pg(p) => {
                let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), args, pg);
                q.fetch_all(p)
                    .await
                    .with_context(|| format!("query failed: {sql}"))?
                    .iter()
                    .map(pg_row)
                    .collect()
            }
            Db::Lite(p, _) => {
                let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), args, lite);
                q.fetch_all(p)
                    .await
                    .with_context(|| format!("query failed: {sql}"))?
                    .iter()
                    .map(lite_row)
                    .collect()
            }
        }
    }

    /// Whether this is the SQLite database.
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Db::Lite(..))
    }
}

impl Tx {
    /// Runs one statement; returns rows affected.
    pub async fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64> {
        let n = match self {
            Tx::Pg(tx) => {
                let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), args, pg);
                q.execute(&mut **tx).await.map(|r| r.rows_affected())
            }
            Tx::Lite(tx, _) => {
                let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), args, lite);
                q.execute(&mut **tx).await.map(|r| r.rows_affected())
            }
        };
        n.with_context(|| format!("statement failed: {sql}"))
    }

    /// Runs one query.
    pub async fn rows(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<Row>> {
        match self {
            Tx::Pg(tx) => {
                let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), args, pg);
                q.fetch_all(&mut **tx)
                    .await
                    .with_context(|| format!("query failed: {sql}"))?
                    .iter()
                    .map(pg_row)
                    .collect()
            }
            Tx::Lite(tx, _) => {
                let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), args, lite);
                q.fetch_all(&mut **tx)
                    .await
                    .with_context(|| format!("query failed: {sql}"))?
                    .iter()
                    .map(lite_row)
                    .collect()
            }
        }
    }

    /// Whether this transaction is on PostgreSQL.
    pub fn is_pg(&self) -> bool {
        matches!(self, Tx::Pg(_))
    }

    /// Rolls back now (dropping a transaction only queues the rollback for
    /// the connection's next use, and its locks are held until then).
    pub async fn rollback(self) -> Result<()> {
        match self {
            Tx::Pg(tx) => tx.rollback().await,
            Tx::Lite(tx, _) => tx.rollback().await,
        }
        .context("Failed to roll back")
    }

    /// Commits.
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Pg(tx) => tx.commit().await,
            Tx::Lite(tx, _) => tx.commit().await,
        }
        .context("Failed to commit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::postgres::PgSslMode;

    #[test]
    fn loopback_connections_skip_tls_unless_a_url_asks_for_it() {
        if std::env::var_os("PGSSLMODE").is_some() {
            return; // the environment decides; nothing of Clearway's to check
        }
        let mode = |url: &str| {
            let opts = PgConnectOptions::from_str(url).unwrap();
            without_tls_on_loopback(url, opts).get_ssl_mode()
        };
        for url in [
            "postgres://postgres@127.0.0.1:5432/db",
            "postgres://postgres@localhost/db",
            "postgres://postgres@[::1]:5432/db",
            "postgres://postgres@127.0.0.1/db?host=/var/run/postgresql",
        ] {
            assert!(matches!(mode(url), PgSslMode::Disable), "{url}");
        }
        for url in [
            "postgres://postgres@db.example.com/db",
            "postgres://postgres@10.0.0.5/db",
        ] {
            assert!(matches!(mode(url), PgSslMode::Prefer), "{url}");
        }
        assert!(matches!(
            mode("postgres://postgres@127.0.0.1/db?sslmode=require"),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode("postgres://postgres@localhost/db?application_name=x&sslmode=prefer"),
            PgSslMode::Prefer
        ));
    }
}
