//! A PostgreSQL transaction whose `BEGIN` is cancelled in flight (a task
//! aborted, a timeout, a `select!` at shutdown) must not leave its pooled
//! connection inside a transaction: every later statement on it would run
//! in that transaction and never be committed (transact-rs/sqlx#4393,
//! patched in `infra/vendor/sqlx-postgres`).

use super::harness::pg_admin_url;
use std::time::Duration;
use workers::db::{Arg, Db};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_begin_leaves_no_transaction_open_on_its_connection() -> anyhow::Result<()> {
    // One connection, so each try reuses the one a cancelled begin left;
    // another one looks at it from outside.
    let db = Db::connect(&pg_admin_url(), 1).await?;
    let observer = Db::connect(&pg_admin_url(), 1).await?;
    let pid = db.rows("select pg_backend_pid()::int8", &[]).await?[0].i64(0)?;
    let mut cancelled = 0;
    for i in 0..400u64 {
        // Cancel after 0–199 µs: some land while BEGIN is on the wire.
        let wait = Duration::from_micros(i % 200);
        if tokio::time::timeout(wait, db.begin()).await.is_err() {
            cancelled += 1;
        }
        // A statement of its own, then the session must be idle, not idle
        // in a transaction.
        let same = db.rows("select pg_backend_pid()::int8", &[]).await?[0].i64(0)?;
        assert_eq!(same, pid, "the pool kept its one connection");
        let state = observer
            .rows(
                "select state from pg_stat_activity where pid = $1",
                &[Arg::I64(pid)],
            )
            .await?[0]
            .text(0)?;
        assert_eq!(
            state, "idle",
            "try {i}: the connection was left inside a transaction"
        );
    }
    assert!(cancelled > 0, "no begin was cancelled");
    Ok(())
}
