//! What every PostgreSQL session of Clearway sets.

use super::harness::pg_admin_url;
use workers::db::{BACKEND_FLUSH_AFTER, Db, HeldConnection};

async fn backend_flush_after(db: &Db) -> anyhow::Result<String> {
    db.rows("show backend_flush_after", &[]).await?[0].text(0)
}

#[tokio::test]
async fn sessions_ask_the_kernel_to_write_early_unless_the_url_says_otherwise() -> anyhow::Result<()>
{
    let url = pg_admin_url();
    let db = Db::connect(&url, 1).await?;
    assert_eq!(backend_flush_after(&db).await?, BACKEND_FLUSH_AFTER);
    // The engine's own pool, opened on another runtime, has the same options.
    assert_eq!(
        backend_flush_after(&db.for_this_runtime(1)).await?,
        BACKEND_FLUSH_AFTER
    );

    let sep = if url.contains('?') { '&' } else { '?' };
    let own = Db::connect(
        &format!("{url}{sep}options=-c%20backend_flush_after%3D0"),
        1,
    )
    .await?;
    assert_eq!(backend_flush_after(&own).await?, "0");
    Ok(())
}

#[tokio::test]
async fn a_loopback_session_runs_without_tls_unless_the_url_asks() -> anyhow::Result<()> {
    let url = pg_admin_url();
    if url.contains("sslmode") || std::env::var_os("PGSSLMODE").is_some() {
        return Ok(()); // the URL or the environment decides, as documented
    }
    let db = Db::connect(&url, 1).await?;
    let ssl = db
        .rows(
            "select coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)::text",
            &[],
        )
        .await?[0]
        .text(0)?;
    assert_eq!(ssl, "false", "{url}");
    Ok(())
}

#[tokio::test]
async fn a_held_connection_is_kept_between_statements_and_let_go_after_a_failure()
-> anyhow::Result<()> {
    let db = Db::connect(&pg_admin_url(), 2).await?;
    let mut held = HeldConnection::default();
    assert!(held.is_empty());
    // A temporary table lives in one session: the second statement finds
    // it only on the same connection.
    db.exec_held(&mut held, "create temporary table held_probe (x int)", &[])
        .await?;
    assert!(!held.is_empty());
    for _ in 0..3 {
        db.exec_held(&mut held, "insert into held_probe values (1)", &[])
            .await?;
    }
    assert!(
        db.exec_held(&mut held, "insert into no_such_table values (1)", &[])
            .await
            .is_err()
    );
    assert!(held.is_empty(), "a failed statement lets its connection go");
    db.exec_held(&mut held, "select 1", &[]).await?;
    assert!(!held.is_empty());
    Ok(())
}
